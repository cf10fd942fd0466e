//! The CRD on the real API server: it installs as a structural schema, explains
//! itself, accepts every example, and gives the same verdict as `render` on
//! the whole invalid corpus (which proves the CEL rules and the schema, as
//! offline tests cannot).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

#[path = "harness/mod.rs"]
mod harness;

use std::path::Path;
use std::time::Duration;

use harness::cluster::{TestNamespace, cluster, ensure_crd, install_crd, kubectl, kubectl_ok, repo_root};
use harness::corpus::invalid_manifests;
use harness::wait::wait_for;
use webcluster::render;

/// The examples every test applies.
const EXAMPLES: [&str; 3] = ["roundcube", "ezplatform", "mosparo"];

#[tokio::test]
async fn the_crd_is_structural_and_established() {
    install_crd(&cluster().await).await.expect("the CRD installs and becomes Established");
    let conditions = kubectl_ok(&[
        "get",
        "crd",
        "webclusters.webcluster.io",
        "-o",
        "jsonpath={range .status.conditions[*]}{.type}={.status}{\"\\n\"}{end}",
    ]);
    assert!(conditions.contains("Established=True"), "{conditions}");
    assert!(conditions.contains("NamesAccepted=True"), "{conditions}");
    assert!(!conditions.contains("NonStructuralSchema=True"), "{conditions}");
}

/// `kubectl explain` output; the API server publishes a new CRD's OpenAPI a
/// moment after it is Established, so this waits for up to 30 s.
async fn explain(path: &str) -> String {
    wait_for(&format!("kubectl explain {path}"), Duration::from_secs(30), || async {
        kubectl(&["explain", path]).status.success()
    })
    .await;
    kubectl_ok(&["explain", path])
}

#[tokio::test]
async fn kubectl_explain_teaches_the_api() {
    ensure_crd().await;
    let spec = explain("webcluster.spec").await;
    assert!(spec.contains("Shared sessions and cache"), "{spec}");
    let managed = explain("webcluster.spec.database.managed.replicas").await;
    assert!(managed.contains("Read replicas following the primary"), "{managed}");
}

#[tokio::test]
async fn every_example_applies_cleanly() {
    ensure_crd().await;
    let ns = TestNamespace::new("examples-apply").await;
    for example in EXAMPLES {
        let path = repo_root().join(format!("examples/{example}.yaml"));
        let out = kubectl(&["apply", "--server-side", "-n", ns.name(), "-f", &path.to_string_lossy()]);
        assert!(out.status.success(), "{example}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// `render`'s verdict on a manifest: `Err` with its message when it refuses.
fn render_verdict(text: &str) -> Result<(), String> {
    render::manifests(text).map(drop).map_err(|e| e.to_string())
}

/// The API server's verdict: a server-side dry-run create in `namespace`.
fn server_verdict(namespace: &str, path: &Path) -> Result<(), String> {
    let out = kubectl(&["create", "--dry-run=server", "-n", namespace, "-f", &path.to_string_lossy()]);
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

/// Every manifest of the invalid corpus goes through `render` and through the
/// real API server (server-side dry run): both must refuse it, and both
/// messages must contain every `# expect:` text (the field path first). Every
/// example must pass both. Any disagreement fails the test, listed.
#[tokio::test]
async fn render_and_the_api_server_agree_on_every_manifest() {
    ensure_crd().await;
    let ns = TestNamespace::new("verdicts").await;
    let corpus = invalid_manifests();
    let mut failures = Vec::new();
    for invalid in &corpus {
        let name = invalid.path.file_name().unwrap_or_default().to_string_lossy();
        let verdicts =
            [("render", render_verdict(&invalid.text)), ("API server", server_verdict(ns.name(), &invalid.path))];
        for (judge, verdict) in verdicts {
            match verdict {
                Ok(()) => failures.push(format!("{name}: {judge} accepted it")),
                Err(message) => {
                    for expected in invalid.expectations.iter().filter(|e| !message.contains(e.as_str())) {
                        failures.push(format!("{name}: {judge} refused it without {expected:?}: {message}"));
                    }
                }
            }
        }
    }
    for example in EXAMPLES {
        let path = repo_root().join(format!("examples/{example}.yaml"));
        let text = std::fs::read_to_string(&path).expect("the example is readable");
        if let Err(message) = render_verdict(&text) {
            failures.push(format!("examples/{example}.yaml: render refused it: {message}"));
        }
        if let Err(message) = server_verdict(ns.name(), &path) {
            failures.push(format!("examples/{example}.yaml: the API server refused it: {message}"));
        }
    }
    assert!(failures.is_empty(), "{} disagreement(s):\n{}", failures.len(), failures.join("\n"));
    println!("{} invalid manifests refused by both, {} examples accepted by both", corpus.len(), EXAMPLES.len());
}

#[tokio::test]
async fn the_database_engine_cannot_change() {
    ensure_crd().await;
    let ns = TestNamespace::new("engine").await;
    let manifest = |engine: &str| {
        format!(
            "apiVersion: webcluster.io/v1alpha1\nkind: WebCluster\nmetadata: {{name: shop, namespace: {}}}\nspec:\n  app: {{image: 'shop:1'}}\n  database: {{engine: {engine}, managed: {{}}}}\n",
            ns.name()
        )
    };
    let file = std::env::temp_dir().join(format!("{}-engine.yaml", ns.name()));
    std::fs::write(&file, manifest("postgresql")).expect("write");
    kubectl_ok(&["apply", "--server-side", "-f", &file.to_string_lossy()]);
    std::fs::write(&file, manifest("mariadb")).expect("write");
    let out = kubectl(&["apply", "--server-side", "-f", &file.to_string_lossy()]);
    let _ = std::fs::remove_file(&file);
    assert!(!out.status.success(), "the engine changed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("spec.database.engine: is immutable"), "{stderr}");
}

/// Memory sizes near their bounds, in every notation: `render` (exact
/// arithmetic) and the API server (CEL `quantity()`, which rounds up to nano
/// units and cuts exponents to 32 bits) give the same verdict, accepted or refused.
#[tokio::test]
async fn memory_sizes_get_the_same_verdict_from_both() {
    ensure_crd().await;
    let ns = TestNamespace::new("memory-sizes").await;
    let dir = harness::fs::TempDir::new("memory-sizes");
    // Quoted: a string the quantity parser reads; bare: a YAML number.
    let sizes = [
        "16Mi",
        "16777216",
        "'16777216'",
        "64Gi",
        "'100M'",
        "'0.015625Gi'",
        "'1.6777216e7'",
        "'16777215.9999999999'",
        "'16777216e4294967296'",
        "'16777215.999999999'",
        "16777215",
        "'15.9Mi'",
        "'64.0000001Gi'",
        "68719476737",
        "'68719476737'",
        "70G",
        "-1Gi",
        "'1e999999999999999999'",
    ];
    let mut disagreements = Vec::new();
    for (index, size) in sizes.iter().enumerate() {
        let manifest = format!(
            "apiVersion: webcluster.io/v1alpha1\nkind: WebCluster\nmetadata: {{name: m{index}}}\nspec:\n  app: {{image: 'shop:1'}}\n  httpCache: {{memory: {size}}}\n"
        );
        let path = dir.join(format!("m{index}.yaml"));
        std::fs::write(&path, &manifest).expect("write");
        let (offline, server) = (render_verdict(&manifest), server_verdict(ns.name(), &path));
        if offline.is_ok() != server.is_ok() {
            disagreements.push(format!("{size}: render {offline:?}, API server {server:?}"));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
