//! The N slim WebClusters and the children the builder gives them.

use kube::core::ApiResource;
use serde_json::Value;
use webcluster::api::WebCluster;
use webcluster::desired::{self, Plan};

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

/// (kind, name, API resource, object) of every child the builder produces.
pub type Desired = Vec<(&'static str, String, ApiResource, Value)>;

pub fn desired(clusters: &[WebCluster]) -> Res<Desired> {
    let mut out = Vec::new();
    for (i, wc) in clusters.iter().enumerate() {
        let mut wc = wc.clone();
        wc.metadata.uid = Some(format!("00000000-0000-4000-8000-{i:012x}"));
        for child in desired::children(&wc, &Plan::offline(&wc)).map_err(|e| e.to_string())? {
            let mut object = child.to_json();
            // No owner: the WebCluster does not exist for the baseline.
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("ownerReferences");
            }
            out.push((child.kind(), child.name().to_string(), child.api_resource(), object));
        }
    }
    Ok(out)
}

/// The pods the Deployments and StatefulSets of `desired` ask for.
pub fn pods_of(desired: &Desired) -> usize {
    desired
        .iter()
        .filter(|(kind, ..)| matches!(*kind, "Deployment" | "StatefulSet"))
        .map(|(_, _, _, o)| o.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1) as usize)
        .sum()
}
