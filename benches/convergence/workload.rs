//! The N slim WebClusters and the children the operator binary under test
//! renders for them (the objects of the bare client and the expected children).

use std::path::Path;
use std::process::Command;

use kube::ResourceExt;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;
use webcluster::api::WebCluster;

use crate::settings::Res;

const SLIM: &str = r#"
apiVersion: webcluster.io/v1alpha1
kind: WebCluster
metadata:
  name: template
spec:
  app:
    image: registry.example/bench/app:1.0
    replicas: 2
  cache:
    backend: memcached
    replicas: 1
  database:
    engine: postgresql
    managed:
      replicas: 1
"#;

/// The manifest of WebCluster `name` in `ns` as a user writes it. The bench
/// applies this text, never a re-serialized object, so every build of the
/// operator (an older one's CRD included) reads the same WebCluster.
pub fn manifest(name: &str, ns: &str) -> String {
    SLIM.replacen("  name: template\n", &format!("  name: {name}\n  namespace: {ns}\n"), 1)
}

/// WebClusters `wc-00000` … in namespace `ns`.
pub fn clusters(n: usize, ns: &str) -> Res<Vec<WebCluster>> {
    let template = webcluster::render::parse(SLIM).map_err(|e| e.to_string())?.remove(0);
    Ok((0..n)
        .map(|i| {
            let mut wc = template.clone();
            wc.metadata.name = Some(format!("wc-{i:05}"));
            wc.metadata.namespace = Some(ns.into());
            wc
        })
        .collect())
}

/// (kind, name, API resource, object) of children.
pub type Desired = Vec<(String, String, ApiResource, Value)>;

/// The pods the Deployments and StatefulSets of `desired` ask for.
pub fn pods_of(desired: &Desired) -> usize {
    desired
        .iter()
        .filter(|(kind, ..)| matches!(kind.as_str(), "Deployment" | "StatefulSet"))
        .map(|(_, _, _, o)| o.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1) as usize)
        .sum()
}

/// (kind, name, API resource, object) of every child that `operator render`
/// gives `clusters`, owner references removed (the bare client applies them
/// where no WebCluster exists): the children of the build under test
/// (`BENCH_OPERATOR`), which may be another revision than this checkout's
/// builder. `scratch` holds the input.
pub fn rendered(operator: &Path, clusters: &[WebCluster], scratch: &Path) -> Res<Desired> {
    let input: String = clusters
        .iter()
        .map(|wc| format!("---{}", manifest(&wc.name_any(), &wc.namespace().unwrap_or_default())))
        .collect();
    std::fs::write(scratch, input).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let output = Command::new(operator)
        .args(["render", "-f"])
        .arg(scratch)
        .output()
        .map_err(|e| format!("{} render: {e}", operator.display()))?;
    if !output.status.success() {
        return Err(format!("{} render: {}", operator.display(), String::from_utf8_lossy(&output.stderr)));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut out = Vec::new();
    for doc in text.split("\n---").filter(|d| d.contains("kind:")) {
        let mut object: Value = serde_saphyr::from_str(doc).map_err(|e| format!("render output: {e}"))?;
        let field = |path: &str| object.pointer(path).and_then(Value::as_str).unwrap_or_default().to_string();
        let (api_version, kind, name) = (field("/apiVersion"), field("/kind"), field("/metadata/name"));
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &kind));
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("ownerReferences");
        }
        out.push((kind, name, resource, object));
    }
    Ok(out)
}
