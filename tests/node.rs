//! The local cluster's real node (`hack/node.sh`, started by `hack/cluster.sh
//! up`): it is Ready beside the 3 kwok nodes, and a pod on it resolves a
//! Service name through CoreDNS and reaches another pod through the Service's
//! ClusterIP (kube-proxy), with `kubectl exec` and `kubectl logs` working
//! against its pods.
//!
//! Self-contained on purpose (the shared harness is being reworked): a kube
//! client from the cluster's kubeconfig and the toolchain's kubectl through
//! `hack/kubectl.sh`. Each test works in a namespace of its own, deleted at
//! the end.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde_json::json;

/// The real node's label and taint (hack/node.sh).
const REAL_NODE_LABEL: &str = "webcluster.io/node=real";
const REAL_NODE_TAINT: &str = "webcluster.io/real-node";
/// The kwok nodes' label (hack/cluster.sh).
const KWOK_NODE_LABEL: &str = "type=kwok";

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn describe(what: &str, output: &Output) -> String {
    format!(
        "{what}: {}\n--- stderr ---\n{}\n--- stdout ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    )
}

fn script(args: &[&str]) -> Output {
    Command::new("bash")
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("running bash {args:?}: {e}"))
}

/// `hack/cluster.sh up` once per test process (a no-op when the cluster and
/// its real node run and are healthy).
fn ensure_cluster() {
    static UP: OnceLock<Result<(), String>> = OnceLock::new();
    let up = UP.get_or_init(|| {
        let out = script(&["hack/cluster.sh", "up"]);
        if out.status.success() { Ok(()) } else { Err(describe("hack/cluster.sh up", &out)) }
    });
    if let Err(e) = up {
        panic!("test cluster unavailable: {e}");
    }
}

fn kubeconfig_path() -> PathBuf {
    match std::env::var_os("WEBCLUSTER_CLUSTER_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("kubeconfig"),
        _ => repo_root().join(".cluster/kubeconfig"),
    }
}

async fn client() -> Client {
    ensure_cluster();
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    Client::try_from(config).unwrap()
}

/// kubectl against the local cluster (hack/kubectl.sh).
fn kubectl(args: &[&str]) -> Output {
    let mut all = vec!["hack/kubectl.sh"];
    all.extend_from_slice(args);
    script(&all)
}

/// Polls `check` until it yields a value, failing after `timeout` with the
/// last thing it reported.
async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

fn is_ready(node: &Node) -> bool {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn ready_nodes(nodes: &Api<Node>, selector: &str) -> Result<Vec<Node>, String> {
    let list = nodes.list(&ListParams::default().labels(selector)).await.map_err(|e| e.to_string())?;
    Ok(list.items.into_iter().filter(is_ready).collect())
}

#[tokio::test]
async fn three_kwok_nodes_and_one_real_node_are_ready() {
    let nodes: Api<Node> = Api::all(client().await);
    let (kwok, real) = wait_for("3 Ready kwok nodes and 1 Ready real node", Duration::from_secs(60), || async {
        let kwok = ready_nodes(&nodes, KWOK_NODE_LABEL).await?;
        let real = ready_nodes(&nodes, REAL_NODE_LABEL).await?;
        if kwok.len() == 3 && real.len() == 1 {
            Ok((kwok, real))
        } else {
            Err(format!("{} kwok, {} real", kwok.len(), real.len()))
        }
    })
    .await;
    assert!(
        kwok.iter().all(|n| !n.labels().contains_key("webcluster.io/node")),
        "a kwok node carries the real node's label"
    );
    // The real node runs a real kubelet and keeps pods away unless they tolerate it.
    let real = &real[0];
    let info = &real.status.as_ref().and_then(|s| s.node_info.as_ref()).unwrap();
    assert!(
        info.container_runtime_version.starts_with("containerd://2."),
        "runtime {}",
        info.container_runtime_version
    );
    assert!(info.kubelet_version.starts_with("v1."), "kubelet {}", info.kubelet_version);
    let taints = real.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    assert!(
        taints.iter().any(|t| t.key == REAL_NODE_TAINT && t.effect == "NoSchedule"),
        "real node taints: {taints:?}"
    );
}

/// A namespace deleted (without waiting) when dropped, also when the test fails.
struct TestNamespace(String);

impl TestNamespace {
    async fn new(client: &Client, prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("{prefix}-{}-{nanos:x}", std::process::id());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
        Self(name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let out = kubectl(&["delete", "namespace", &self.0, "--wait=false", "--ignore-not-found"]);
        if !out.status.success() {
            eprintln!("{}", describe("deleting the test namespace", &out));
        }
    }
}

/// The client image's tag, from `hack/images.sh list` (NAME TAG lines).
fn client_image() -> String {
    let out = script(&["hack/images.sh", "list"]);
    assert!(out.status.success(), "{}", describe("hack/images.sh list", &out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("client ").map(|tag| tag.trim().to_string()))
        .expect("hack/images.sh list names no client image")
}

/// A pod of the client image on the real node running `script` as its shell.
fn real_node_pod(name: &str, image: &str, script: &str, port: Option<u16>) -> Pod {
    let mut container = json!({
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["bash", "-c", script],
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
    });
    if let Some(port) = port {
        container["ports"] = json!([{"containerPort": port}]);
        container["readinessProbe"] = json!({"tcpSocket": {"port": port}, "periodSeconds": 1});
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {"webcluster.io/node": "real"},
            "tolerations": [{"key": REAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65534, "runAsGroup": 65534},
            "terminationGracePeriodSeconds": 1,
            "containers": [container],
        }
    }))
    .unwrap()
}

async fn wait_pod_ready(pods: &Api<Pod>, name: &str) -> Pod {
    wait_for(&format!("pod {name} Ready on the real node"), Duration::from_secs(120), || async {
        let pod = pods.get(name).await.map_err(|e| e.to_string())?;
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready { Ok(pod) } else { Err(format!("{:?}", status.map(|s| (&s.phase, &s.container_statuses)))) }
    })
    .await
}

/// `kubectl exec` in the client pod; Ok(stdout) when the command succeeds.
fn exec(ns: &str, pod: &str, command: &str) -> Result<String, String> {
    let out = kubectl(&["exec", "-n", ns, pod, "--", "bash", "-c", command]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(describe(command, &out))
    }
}

#[tokio::test]
async fn a_pod_on_the_real_node_resolves_a_service_and_reaches_a_pod_through_its_cluster_ip() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "node-net").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.0);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns.0);
    let image = client_image();

    // A server that answers each TCP connection with its pod name, and says so in its log.
    let server = "printf 'listening on 8080\\n'; \
        while true; do printf 'hello from %s\\n' \"$HOSTNAME\" | nc -N -l 8080 >/dev/null || exit 1; done";
    pods.create(&PostParams::default(), &real_node_pod("echo", &image, server, Some(8080))).await.unwrap();
    pods.create(&PostParams::default(), &real_node_pod("client", &image, "exec sleep infinity", None)).await.unwrap();
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "echo"},
        "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    let cluster_ip = services.create(&PostParams::default(), &service).await.unwrap().spec.unwrap().cluster_ip.unwrap();

    let echo = wait_pod_ready(&pods, "echo").await;
    let client_pod = wait_pod_ready(&pods, "client").await;
    for pod in [&echo, &client_pod] {
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("webcluster-real"), "{} is not on the real node", pod.name_any());
    }

    // SVC.NS.svc through the pod's resolv.conf (search path, CoreDNS at the cluster DNS IP).
    let name = format!("echo.{}.svc", ns.0);
    let resolved = wait_for(&format!("{name} to resolve to {cluster_ip}"), Duration::from_secs(30), || async {
        let out = exec(&ns.0, "client", &format!("getent hosts {name}"))?;
        if out.split_whitespace().next() == Some(cluster_ip.as_str()) { Ok(out) } else { Err(out) }
    })
    .await;
    assert!(resolved.contains(&format!("{name}.cluster.local")), "getent: {resolved}");
    let dns = exec(&ns.0, "client", "cat /etc/resolv.conf").unwrap();
    assert!(dns.contains("nameserver 10.0.0.10"), "resolv.conf:\n{dns}");

    // Through the ClusterIP (kube-proxy's rules) to the other pod.
    let reply = wait_for("a reply through the echo Service", Duration::from_secs(30), || async {
        let out = exec(&ns.0, "client", &format!("nc -w 5 {name} 80 </dev/null"))?;
        if out.contains("hello from echo") { Ok(out) } else { Err(out) }
    })
    .await;
    assert_eq!(reply.trim(), "hello from echo");

    // kubectl logs reaches the real kubelet too.
    let logs = kubectl(&["logs", "-n", &ns.0, "echo"]);
    assert!(logs.status.success(), "{}", describe("kubectl logs", &logs));
    assert!(String::from_utf8_lossy(&logs.stdout).contains("listening on 8080"));
}
