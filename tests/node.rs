//! The local cluster's real node (`hack/node.sh`, started by `hack/cluster.sh
//! up`): it is Ready beside the 3 kwok nodes, and a pod on it resolves a
//! Service name through CoreDNS and reaches another pod through the Service's
//! ClusterIP (kube-proxy), with `kubectl exec` and `kubectl logs` working
//! against its pods.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

#[path = "harness/mod.rs"]
mod harness;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use harness::cluster::{TestNamespace, cluster, describe, kubectl, repo_root};
use harness::wait::wait_for;

/// The real node's name, label and taint (hack/node.sh).
const REAL_NODE: &str = "webcluster-real";
const REAL_NODE_LABEL: &str = "webcluster.io/node=real";
const REAL_NODE_TAINT: &str = "webcluster.io/real-node";
/// The kwok nodes' label (hack/cluster.sh).
const KWOK_NODE_LABEL: &str = "type=kwok";
/// The cluster DNS address the kubelet gives pods (hack/node.sh).
const CLUSTER_DNS: &str = "10.0.0.10";
/// How long a pod on the real node may take to be Ready.
const POD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long DNS and Service routes may take to follow a new Service.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(30);

fn is_ready(node: &Node) -> bool {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn ready_nodes(nodes: &Api<Node>, selector: &str) -> Vec<Node> {
    let list = nodes.list(&ListParams::default().labels(selector)).await;
    list.map(|l| l.items.into_iter().filter(is_ready).collect()).unwrap_or_default()
}

#[tokio::test]
async fn three_kwok_nodes_and_one_real_node_are_ready() {
    let nodes: Api<Node> = Api::all(cluster().await);
    wait_for("3 Ready kwok nodes and 1 Ready real node", Duration::from_secs(60), || async {
        ready_nodes(&nodes, KWOK_NODE_LABEL).await.len() == 3 && ready_nodes(&nodes, REAL_NODE_LABEL).await.len() == 1
    })
    .await;
    let kwok = ready_nodes(&nodes, KWOK_NODE_LABEL).await;
    assert!(
        kwok.iter().all(|n| !n.labels().contains_key("webcluster.io/node")),
        "a kwok node carries the real node's label"
    );

    // The real node runs a real kubelet and containerd, and keeps pods away unless they tolerate it.
    let real = ready_nodes(&nodes, REAL_NODE_LABEL).await.remove(0);
    assert_eq!(real.name_any(), REAL_NODE);
    let info = real.status.as_ref().and_then(|s| s.node_info.as_ref()).unwrap();
    assert!(info.container_runtime_version.starts_with("containerd://2."), "{}", info.container_runtime_version);
    assert!(info.kubelet_version.starts_with("v1."), "kubelet {}", info.kubelet_version);
    let taints = real.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    assert!(taints.iter().any(|t| t.key == REAL_NODE_TAINT && t.effect == "NoSchedule"), "taints: {taints:?}");
}

/// The client image's tag, from `hack/images.sh list` (NAME TAG lines).
fn client_image() -> String {
    let out =
        std::process::Command::new("bash").args(["hack/images.sh", "list"]).current_dir(repo_root()).output().unwrap();
    assert!(out.status.success(), "{}", describe("hack/images.sh list", &out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("client ").map(|tag| tag.trim().to_string()))
        .expect("hack/images.sh list names no client image")
}

/// A pod of the client image on the real node, running `script` with bash.
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

async fn pod_ready(pods: &Api<Pod>, name: &str) -> bool {
    let pod = pods.get(name).await.ok();
    let conditions = pod.as_ref().and_then(|p| p.status.as_ref()).and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `kubectl exec` of a bash command in a pod: its stdout when it succeeds.
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
    let ns = TestNamespace::new("node-net").await;
    let pods: Api<Pod> = ns.api();
    let services: Api<Service> = ns.api();
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

    for name in ["echo", "client"] {
        wait_for(&format!("pod {name} Ready on the real node"), POD_TIMEOUT, || pod_ready(&pods, name)).await;
        let pod = pods.get(name).await.unwrap();
        assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some(REAL_NODE), "{name} is not on the real node");
    }

    // SVC.NS.svc through the pod's resolv.conf: search path, CoreDNS at the cluster DNS address.
    let name = format!("echo.{}.svc", ns.name());
    let lookup = format!("getent hosts {name}");
    let resolves =
        || exec(ns.name(), "client", &lookup).is_ok_and(|out| out.split_whitespace().next() == Some(&cluster_ip));
    wait_for(&format!("{name} to resolve to {cluster_ip}"), ROUTE_TIMEOUT, || async { resolves() }).await;
    let resolved = exec(ns.name(), "client", &lookup).unwrap();
    assert!(resolved.contains(&format!("{name}.cluster.local")), "getent: {resolved}");
    let resolv_conf = exec(ns.name(), "client", "cat /etc/resolv.conf").unwrap();
    assert!(resolv_conf.contains(&format!("nameserver {CLUSTER_DNS}")), "resolv.conf:\n{resolv_conf}");

    // Through the ClusterIP (kube-proxy's rules) to the other pod.
    let connect = format!("nc -w 5 {name} 80 </dev/null");
    let answers = || exec(ns.name(), "client", &connect).is_ok_and(|out| out.trim() == "hello from echo");
    wait_for("a reply from pod echo through the echo Service", ROUTE_TIMEOUT, || async { answers() }).await;

    // kubectl logs reaches the real kubelet too.
    let logs = kubectl(&["logs", "-n", ns.name(), "echo"]);
    assert!(logs.status.success(), "{}", describe("kubectl logs", &logs));
    assert!(String::from_utf8_lossy(&logs.stdout).contains("listening on 8080"));
}
