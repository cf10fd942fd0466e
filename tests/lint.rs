//! kube-score and kubeconform (pinned, built from the Go module proxy) over
//! every rendered example and the Helm chart, kubeconform with JSON schemas
//! made from the local API server's OpenAPI (the WebCluster CRD included):
//! `hack/lint.sh check`. A finding not in hack/lint-allowlist.txt fails, and
//! so does an allowlist entry that no longer matches anything.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

#[path = "harness/mod.rs"]
mod harness;

use std::path::Path;
use std::process::{Command, Output};

use harness::cluster::{cluster_dir, describe, ensure_cluster, ensure_crd, repo_root};
use harness::fs::TempDir;
use harness::process::operator_binary;

/// `bash hack/lint.sh check <operator> <extra...>` with `allowlist` instead of the repository's.
fn lint(extra: &[&Path], allowlist: Option<&Path>) -> Output {
    let mut command = Command::new("bash");
    command.arg("hack/lint.sh").arg("check").arg(operator_binary()).args(extra);
    command.current_dir(repo_root()).env("WEBCLUSTER_CLUSTER_DIR", cluster_dir());
    if let Some(allowlist) = allowlist {
        command.env("LINT_ALLOWLIST", allowlist);
    }
    command.output().expect("bash runs hack/lint.sh")
}

async fn cluster_with_crd() {
    tokio::task::spawn_blocking(ensure_cluster).await.expect("the cluster starts");
    ensure_crd().await;
}

#[tokio::test]
async fn the_examples_and_the_chart_have_only_allowlisted_findings() {
    cluster_with_crd().await;
    let output = lint(&[], None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", describe("hack/lint.sh check", &output));
    // The counts the closing note reports.
    eprintln!("{stdout}");
    assert!(stdout.contains("findings: kube-score "), "{stdout}");
}

/// A manifest with a privileged container and a misspelt field is two new
/// findings, one per tool; an allowlist entry that matches nothing is stale.
#[tokio::test]
async fn a_new_finding_or_a_stale_entry_fails() {
    cluster_with_crd().await;
    let dir = TempDir::new("lint");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad, namespace: default}\n\
         spec:\n  replicas: 2\n  selector: {matchLabels: {app: bad}}\n  template:\n\
         \x20   metadata: {labels: {app: bad}}\n    spec:\n      containers:\n\
         \x20     - {name: c, image: 'bad:1', imagePullPolicy: Always, securityContext: {privileged: true}, portz: []}\n",
    )
    .unwrap();
    let allowlist = dir.join("allowlist.txt");
    let mut entries = std::fs::read_to_string(repo_root().join("hack/lint-allowlist.txt")).unwrap();
    entries.push_str("kube-score | no-such-check | * | * | * | matches nothing\n");
    std::fs::write(&allowlist, entries).unwrap();
    let output = lint(&[&bad], Some(&allowlist));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{}", describe("hack/lint.sh check", &output));
    let new = |tool: &str, check: &str| format!("NEW FINDING: {tool} | {check} | extra-bad | Deployment/bad");
    for expected in [
        new("kube-score", "container-security-context-privileged"),
        new("kubeconform", "invalid"),
        "STALE ALLOWLIST ENTRY".to_string(),
        "kube-score | no-such-check".to_string(),
    ] {
        assert!(stdout.contains(&expected), "{expected:?} in:\n{stdout}");
    }
    assert!(stdout.contains("portz"), "kubeconform names the unknown field:\n{stdout}");
}
