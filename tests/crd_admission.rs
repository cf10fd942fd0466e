//! The CRD on the real API server: it installs as a structural schema, explains
//! itself, accepts every example and refuses the invalid corpus with the
//! expected message (which proves the CEL rules and the schema, as offline
//! tests cannot).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

#[path = "harness/mod.rs"]
mod harness;

use std::time::Duration;

use harness::cluster::{TestNamespace, cluster, ensure_crd, install_crd, kubectl, kubectl_ok, repo_root};
use harness::corpus::invalid_manifests;
use harness::wait::wait_for;

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
    for example in ["roundcube", "ezplatform", "mosparo"] {
        let path = repo_root().join(format!("examples/{example}.yaml"));
        let out = kubectl(&["apply", "--server-side", "-n", ns.name(), "-f", &path.to_string_lossy()]);
        assert!(out.status.success(), "{example}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[tokio::test]
async fn the_api_server_refuses_every_invalid_manifest() {
    ensure_crd().await;
    let ns = TestNamespace::new("invalid").await;
    let mut failures = Vec::new();
    for invalid in invalid_manifests() {
        let out = kubectl(&["apply", "--server-side", "-n", ns.name(), "-f", &invalid.path.to_string_lossy()]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            failures.push(format!("{}: accepted", invalid.path.display()));
        } else if !stderr.contains(&invalid.expected) {
            failures.push(format!("{}: {stderr:?} does not contain {:?}", invalid.path.display(), invalid.expected));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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
