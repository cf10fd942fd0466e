//! The operator binary as a process: two replicas with leader election (only
//! the leader writes; when it is killed the other takes over within the lease
//! duration), and a /metrics endpoint a Prometheus parser reads.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

#[path = "harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::cluster::{TestNamespace, ensure_crd, kubeconfig_path, kubectl_apply};
use harness::conditions::wait_ready;
use harness::process::{OperatorProcess, log_dir, operator_binary};
use harness::wait::{SETUP_TIMEOUT, wait_for};
use k8s_openapi::api::core::v1::Service;
use kube::api::DeleteParams;
use webcluster::api::WebCluster;

const LEASE_SECONDS: u64 = 6;

/// A replica watching only `namespace`, electing its leader on a Lease there
/// (so no other operator, such as `make demo`'s, competes for it).
async fn start(namespace: &str, identity: &str) -> OperatorProcess {
    let (mut command, port) = OperatorProcess::command(&operator_binary(), namespace);
    command
        .args(["--leader-election", "true", "--lease-namespace", namespace])
        .args(["--lease-duration-seconds", &LEASE_SECONDS.to_string(), "--log-level", "info,kube=warn"])
        .env("KUBECONFIG", kubeconfig_path())
        .env("POD_NAME", identity);
    let log = log_dir().join(format!("{namespace}-{identity}.log"));
    let mut operator = OperatorProcess::spawn(identity, command, port, log).expect("the operator binary starts");
    operator.wait_serving(SETUP_TIMEOUT).await.expect("the operator serves /healthz");
    operator
}

/// Objects the process applied; -1 when /metrics does not parse.
fn applied(operator: &OperatorProcess) -> f64 {
    operator.scrape().map_or(-1.0, |s| s.applied())
}

#[tokio::test]
async fn only_the_leader_writes_and_a_follower_takes_over() {
    ensure_crd().await;
    let ns = TestNamespace::new("leader").await;
    let first = start(ns.name(), "operator-a").await;
    let second = start(ns.name(), "operator-b").await;
    kubectl_apply(ns.name(), "examples/mosparo.yaml");
    wait_ready(&ns.api::<WebCluster>(), "mosparo").await;

    let (a, b) = (applied(&first), applied(&second));
    assert!(a >= 0.0 && b >= 0.0, "both /metrics endpoints parse");
    assert!((a > 0.0) != (b > 0.0), "exactly one process applied objects: {a} and {b}");
    let (leader, follower) = if a > 0.0 { (first, second) } else { (second, first) };
    let leader_metrics = leader.scrape().expect("leader metrics");
    assert_eq!(leader_metrics.leader(), 1.0);
    assert!(leader_metrics.reconciles() > 0.0, "reconciles are counted");
    let follower_metrics = follower.scrape().expect("follower metrics");
    assert_eq!(follower_metrics.leader(), 0.0);
    assert_eq!(follower_metrics.applied(), 0.0, "the follower wrote nothing");

    // Kill the leader without a chance to release the lease, then break something.
    let killed = Instant::now();
    drop(leader);
    ns.api::<Service>().delete("mosparo-app", &DeleteParams::default()).await.expect("delete a child");
    let services = ns.api::<Service>();
    // The follower's own figures, not the Service alone, show that it took over.
    let what = "the follower to lead, write and restore the deleted Service";
    wait_for(what, Duration::from_secs(LEASE_SECONDS * 2 + 20), || {
        let services = services.clone();
        let took_over = follower.scrape().is_ok_and(|s| s.leader() == 1.0 && s.applied() > 0.0);
        async move { took_over && matches!(services.get_opt("mosparo-app").await, Ok(Some(_))) }
    })
    .await;
    let takeover = killed.elapsed();
    assert!(applied(&follower) > 0.0, "the follower now writes");
    eprintln!("leader takeover and repair after {takeover:?} (lease {LEASE_SECONDS}s)");
    assert!(takeover < Duration::from_secs(LEASE_SECONDS * 2 + 10), "takeover took {takeover:?}");
}
