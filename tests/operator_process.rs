//! The operator binary as a process: two replicas with leader election (only
//! the leader writes; when it is killed the other takes over within the lease
//! duration), and a /metrics endpoint a Prometheus parser reads.

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::DeleteParams;
use support::{TestNamespace, kubectl_ok, wait_for};
use webcluster::api::WebCluster;

const LEASE_SECONDS: u64 = 6;

/// A running `webcluster-operator run`, killed when dropped.
struct Process {
    child: Child,
    port: u16,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn start(namespace: &str, identity: &str) -> Process {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_webcluster-operator"))
        .args(["run", "--namespace", namespace, "--leader-election", "true", "--lease-namespace", namespace])
        .args(["--lease-duration-seconds", &LEASE_SECONDS.to_string()])
        .args(["--metrics-address", &format!("127.0.0.1:{port}"), "--log-level", "info,kube=warn"])
        .env("KUBECONFIG", support::kubeconfig_path())
        .env("POD_NAME", identity)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the operator binary starts");
    Process { child, port }
}

/// Scrapes /metrics and parses it with a Prometheus text-format parser.
async fn scrape(port: u16) -> Option<prometheus_parse::Scrape> {
    let body = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
    })
    .await
    .ok()??;
    let lines = body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).ok()
}

fn value(scrape: &prometheus_parse::Scrape, name: &str) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

async fn applied(port: u16) -> f64 {
    scrape(port).await.map(|s| value(&s, "webcluster_operator_objects_applied_total")).unwrap_or(-1.0)
}

#[tokio::test]
async fn only_the_leader_writes_and_a_follower_takes_over() {
    let ns = TestNamespace::new("leader").await;
    let crd = support::repo_root().join("crds/webcluster.yaml");
    kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", &crd.to_string_lossy()]);
    let first = start(ns.name(), "operator-a");
    let second = start(ns.name(), "operator-b");
    let example = support::repo_root().join("examples/mosparo.yaml");
    kubectl_ok(&["apply", "--server-side", "-n", ns.name(), "-f", &example.to_string_lossy()]);

    let clusters = ns.api::<WebCluster>();
    let ready = || {
        let clusters = clusters.clone();
        async move {
            let Ok(Some(cluster)) = clusters.get_opt("mosparo").await else { return false };
            cluster.status.is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        }
    };
    wait_for("mosparo to be Ready", Duration::from_secs(120), ready).await;

    let (a, b) = (applied(first.port).await, applied(second.port).await);
    assert!(a >= 0.0 && b >= 0.0, "both /metrics endpoints parse");
    assert!((a > 0.0) != (b > 0.0), "exactly one process applied objects: {a} and {b}");
    let (leader, follower) = if a > 0.0 { (first, second) } else { (second, first) };
    let leader_metrics = scrape(leader.port).await.expect("leader metrics");
    assert_eq!(value(&leader_metrics, "webcluster_operator_leader"), 1.0);
    assert!(value(&leader_metrics, "webcluster_operator_reconciles_total") > 0.0, "reconciles are counted");
    let follower_metrics = scrape(follower.port).await.expect("follower metrics");
    assert_eq!(value(&follower_metrics, "webcluster_operator_leader"), 0.0);
    assert_eq!(
        value(&follower_metrics, "webcluster_operator_objects_applied_total"),
        0.0,
        "the follower wrote nothing"
    );

    // Kill the leader without a chance to release the lease, then break something.
    let killed = Instant::now();
    drop(leader);
    ns.api::<Service>().delete("mosparo-app", &DeleteParams::default()).await.expect("delete a child");
    let services = ns.api::<Service>();
    wait_for("the follower to restore the deleted Service", Duration::from_secs(LEASE_SECONDS * 2 + 20), || {
        let services = services.clone();
        async move { matches!(services.get_opt("mosparo-app").await, Ok(Some(_))) }
    })
    .await;
    let takeover = killed.elapsed();
    assert!(applied(follower.port).await > 0.0, "the follower now writes");
    eprintln!("leader takeover and repair after {takeover:?} (lease {LEASE_SECONDS}s)");
    assert!(takeover < Duration::from_secs(LEASE_SECONDS * 2 + 10), "takeover took {takeover:?}");
}
