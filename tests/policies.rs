//! Policies enforced for real on the real node:
//!
//! - NetworkPolicy (kube-router in firewall-only mode, `hack/node.sh netpol`):
//!   connection attempts from real pods. Pods without the app's labels cannot
//!   open a connection to the database or the cache; pods labelled as the
//!   app, a migration or a cron task can; the database replica streams from
//!   the primary. The chart's optional operator NetworkPolicy lets a pod of
//!   the operator's labels reach the API server and nothing else.
//! - Pod Security Admission (the API server's built-in admission): the three
//!   examples run in namespaces labelled `pod-security.kubernetes.io/enforce=restricted`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

#[path = "harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ContainerPort, Event, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use harness::cluster::{TestNamespace, ensure_crd, kubeconfig_path, kubectl_apply, kubectl_ok, unique_name};
use harness::conditions::{is_ready, wait_condition};
use harness::fs::TempDir;
use harness::helm::{CHART, helm_ok};
use harness::pods::{
    APP_IMAGE, RealNodeStorage, client_pod, describe_pods, ensure_images, ensure_network_policy, ensure_real_node,
    real_node_app_pod, real_node_placement, sh, wait_ready_on_real_node,
};
use harness::process::{OperatorProcess, log_dir, operator_binary};
use harness::wait::{SETUP_TIMEOUT, poll, wait_for};
use webcluster::api::WebCluster;
use webcluster::desired::meta::{COMPONENT_LABEL, Component, INSTANCE_LABEL};
use webcluster::desired::names;

/// How long pods on the real node may take to start (2 shared cores).
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// How long kube-router may take to let a new pod's allowed traffic through.
const POLICY_TIMEOUT: Duration = Duration::from_secs(60);
/// A refused connection is a dropped one: nc gives up after this many seconds.
const CONNECT_SECONDS: u32 = 3;

/// Whether pod `from` opens a TCP connection to `host`:`port` (nc -z).
async fn connects(ns: &str, from: &str, host: &str, port: u16) -> bool {
    let script = format!("nc -z -w {CONNECT_SECONDS} {host} {port}");
    sh(ns, from, "client", &script).await.is_ok()
}

/// Waits until `from` reaches `host`:`port` (kube-router adds a new pod to the
/// allowed sets within seconds).
async fn assert_connects(ns: &str, from: &str, host: &str, port: u16) {
    let what = format!("{from} connecting to {host}:{port}");
    if let Err(e) = poll(&what, POLICY_TIMEOUT, || connects(ns, from, host, port)).await {
        panic!("{e}: the policy should admit it");
    }
}

/// `from` cannot reach `host`:`port`: three attempts, each dropped.
async fn assert_refused(ns: &str, from: &str, host: &str, port: u16) {
    for attempt in 1..=3 {
        assert!(!connects(ns, from, host, port).await, "{from} reached {host}:{port} (attempt {attempt}): not refused");
    }
}

/// Creates client pods `(name, labels)` and waits until they are Ready on the real node.
async fn client_pods(ns: &TestNamespace, specs: &[(&str, Value)]) {
    let pods: Api<Pod> = ns.api();
    for (name, labels) in specs {
        pods.create(&PostParams::default(), &client_pod(name, labels.clone())).await.unwrap();
    }
    let names: Vec<String> = specs.iter().map(|(name, _)| name.to_string()).collect();
    wait_ready_on_real_node(&pods, &names, START_TIMEOUT).await;
}

/// The operator binary watching only `ns`, once it serves.
async fn start_operator(ns: &TestNamespace) -> OperatorProcess {
    let (mut command, port) = OperatorProcess::command(&operator_binary(), ns.name());
    command.args(["--log-level", "info,kube=warn"]).env("KUBECONFIG", kubeconfig_path());
    let log = log_dir().join(format!("{}-operator.log", ns.name()));
    let mut operator = OperatorProcess::spawn("operator", command, port, log).expect("the operator binary starts");
    operator.wait_serving(SETUP_TIMEOUT).await.expect("the operator serves /healthz");
    operator
}

/// The database (PostgreSQL primary + replica) and the cache (memcached) of a
/// WebCluster admit the app, migration and cron pods and nobody else; the
/// replica streams from the primary with the policies enforced.
#[tokio::test]
async fn network_policies_admit_only_the_apps_pods_to_the_database_and_cache() {
    const CLUSTER: &str = "guarded";
    let started = Instant::now();
    ensure_real_node().await;
    tokio::task::spawn_blocking(ensure_network_policy).await.unwrap();
    tokio::task::spawn_blocking(|| ensure_images(&["client", "postgres", "memcached", "php-apache"])).await.unwrap();
    ensure_crd().await;
    let ns = TestNamespace::new("netpol").await;
    let storage = RealNodeStorage::new(&ns, 2, 0).await;
    let operator = start_operator(&ns).await;

    let cluster = json!({
        "apiVersion": "webcluster.io/v1alpha1",
        "kind": "WebCluster",
        "metadata": {"name": CLUSTER, "namespace": ns.name()},
        "spec": {
            "app": {
                "image": APP_IMAGE, "replicas": 1, "port": 8000,
                "healthCheck": {"path": "/", "initialDelaySeconds": 0, "periodSeconds": 3},
                "pod": real_node_app_pod(),
            },
            "database": {"engine": "postgresql", "managed": {
                "replicas": 1,
                "storage": {"size": "1Gi", "storageClassName": storage.class()},
                "pod": real_node_placement(),
            }},
            "cache": {"backend": "memcached", "replicas": 1, "memory": "16Mi", "pod": real_node_placement()},
            "deletionPolicy": "Delete",
        },
    });
    let clusters = ns.api::<WebCluster>();
    clusters.patch(CLUSTER, &PatchParams::apply("policies-test").force(), &Patch::Apply(&cluster)).await.unwrap();
    let db: Vec<String> = (0..2).map(|i| names::database_pod(CLUSTER, i)).collect();
    wait_ready_on_real_node(&ns.api::<Pod>(), &db, START_TIMEOUT).await;
    wait_condition(&clusters, CLUSTER, "Ready", "Ready=True", START_TIMEOUT, |c| c.status == "True").await;

    let labelled = |component: Component| json!({INSTANCE_LABEL: CLUSTER, COMPONENT_LABEL: component.as_str()});
    let members = [
        ("as-app", labelled(Component::App)),
        ("as-migration", labelled(Component::Migration)),
        ("as-cron", labelled(Component::Cron)),
    ];
    // Same instance, another component; and the app's component of another instance.
    let strangers = [
        ("stranger", json!({"app": "stranger"})),
        ("as-http-cache", labelled(Component::HttpCache)),
        ("other-instance", json!({INSTANCE_LABEL: "other", COMPONENT_LABEL: Component::App.as_str()})),
    ];
    client_pods(&ns, &[members.as_slice(), strangers.as_slice()].concat()).await;
    let targets = [(names::database_write(CLUSTER), 5432), (names::cache_headless(CLUSTER), 11211)];
    let n = ns.name();
    for (member, _) in &members {
        for (host, port) in &targets {
            assert_connects(n, member, host, *port).await;
        }
    }
    for (stranger, _) in &strangers {
        for (host, port) in &targets {
            assert_refused(n, stranger, host, *port).await;
        }
    }
    // The replica connected to the primary with the policies already enforced.
    let streaming = "psql -X -At -h \"$DB_SOCKET_DIR\" -p \"$DB_PORT\" -U postgres -d postgres \
                     -c \"SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'\"";
    let what = "the replica streaming from the primary";
    let primary = db[0].clone();
    wait_for(what, POLICY_TIMEOUT, || {
        let (n, primary) = (n.to_string(), primary.clone());
        async move { sh(&n, &primary, "database", streaming).await.is_ok_and(|out| out.trim() == "1") }
    })
    .await;
    eprintln!(
        "netpol: 3 members admitted, 3 strangers refused, replica streaming; {:.0}s",
        started.elapsed().as_secs_f64()
    );
    drop(operator);
}

/// The chart's operator NetworkPolicy (networkPolicy.enabled, apiServer set to
/// the API server's endpoints) on a pod with the operator's labels: it reaches
/// the API server (directly and through the `kubernetes` Service) and nothing
/// else; a pod without those labels reaches both (the refusals are the
/// policy's); only the metrics port is open to other pods.
#[tokio::test]
async fn operator_network_policy_admits_the_api_server_and_nothing_else() {
    ensure_real_node().await;
    tokio::task::spawn_blocking(ensure_network_policy).await.unwrap();
    tokio::task::spawn_blocking(|| ensure_images(&["client"])).await.unwrap();
    let ns = TestNamespace::new("netpol-operator").await;
    let slices: Api<EndpointSlice> = Api::namespaced(ns.client(), "default");
    let slice = slices.list(&ListParams::default().labels("kubernetes.io/service-name=kubernetes")).await.unwrap();
    let slice = slice.items.into_iter().next().expect("the kubernetes Service's EndpointSlice");
    let api_ip = slice.endpoints.as_ref().expect("endpoints")[0].addresses[0].clone();
    let api_port = slice.ports.as_ref().and_then(|p| p[0].port).expect("the API server's port") as u16;

    let release = unique_name("op");
    let rendered = helm_ok(&[
        "template",
        &release,
        CHART,
        "--namespace",
        ns.name(),
        "--show-only",
        "templates/networkpolicy.yaml",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        &format!("networkPolicy.apiServer[0].cidr={api_ip}/32"),
        "--set",
        &format!("networkPolicy.apiServer[0].port={api_port}"),
    ]);
    let dir = TempDir::new("netpol-operator");
    let file = dir.join("policy.yaml");
    std::fs::write(&file, rendered).unwrap();
    kubectl_ok(&["apply", "-n", ns.name(), "-f", &file.to_string_lossy()]);

    // Listens on the metrics port (8080) and on 9000, as the operator's pods would be selected.
    let operator_labels =
        json!({"app.kubernetes.io/name": "webcluster-operator", "app.kubernetes.io/instance": release});
    let mut as_operator = client_pod("as-operator", operator_labels);
    // The policy names the port `metrics`, as the chart's container does.
    let container = &mut as_operator.spec.as_mut().unwrap().containers[0];
    container.ports =
        Some(vec![ContainerPort { name: Some("metrics".into()), container_port: 8080, ..Default::default() }]);
    let pods: Api<Pod> = ns.api();
    pods.create(&PostParams::default(), &as_operator).await.unwrap();
    client_pods(&ns, &[("neighbour", json!({"app": "neighbour"}))]).await;
    wait_ready_on_real_node(&pods, &["as-operator".to_string()], START_TIMEOUT).await;
    let n = ns.name();
    for (pod, port) in [("as-operator", 8080), ("as-operator", 9000), ("neighbour", 7000)] {
        let listen = format!("nohup nc -lk {port} >/dev/null 2>&1 </dev/null & sleep 0.2");
        sh(n, pod, "client", &listen).await.unwrap();
    }
    let ip = |pod: Pod| pod.status.and_then(|s| s.pod_ip).unwrap();
    let operator_ip = ip(pods.get("as-operator").await.unwrap());
    let neighbour_ip = ip(pods.get("neighbour").await.unwrap());

    // Egress: the API server only.
    assert_connects(n, "as-operator", &api_ip, api_port).await;
    assert_connects(n, "as-operator", "10.0.0.1", 443).await;
    assert_connects(n, "neighbour", &neighbour_ip, 7000).await;
    assert_connects(n, "neighbour", "10.0.0.10", 53).await;
    assert_refused(n, "as-operator", &neighbour_ip, 7000).await;
    assert_refused(n, "as-operator", "10.0.0.10", 53).await;
    // Ingress: the metrics port only.
    assert_connects(n, "neighbour", &operator_ip, 8080).await;
    assert_refused(n, "neighbour", &operator_ip, 9000).await;
    eprintln!(
        "netpol-operator: API server {api_ip}:{api_port} reached, DNS and a neighbour refused, metrics port open"
    );
    eprintln!("pods: {}", describe_pods(&pods).await);
}

// ---------------------------------------------------------------------------
// Pod Security Admission

/// Pods of the namespace the API server refused to create (FailedCreate events
/// of their controllers), as `controller: message` lines.
async fn refused_pods(ns: &TestNamespace) -> Vec<String> {
    let events: Api<Event> = ns.api();
    let list = events.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
    list.iter()
        .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
        .map(|e| {
            format!("{}: {}", e.involved_object.name.clone().unwrap_or_default(), e.message.clone().unwrap_or_default())
        })
        .collect()
}

/// Each example (examples/*.yaml) applied into a namespace whose Pod Security
/// level `enforce` is restricted, reconciled by an operator process: Ready (its
/// pods on the kwok nodes were admitted and run), no pod refused.
#[tokio::test]
async fn examples_run_in_namespaces_enforcing_the_restricted_pod_security_standard() {
    ensure_crd().await;
    for example in ["roundcube", "mosparo", "ezplatform"] {
        let started = Instant::now();
        let ns = TestNamespace::new(&format!("psa-{example}")).await;
        kubectl_ok(&["label", "namespace", ns.name(), "pod-security.kubernetes.io/enforce=restricted"]);
        let operator = start_operator(&ns).await;
        kubectl_apply(ns.name(), &format!("examples/{example}.yaml"));
        let clusters = ns.api::<WebCluster>();
        let name = clusters.list(&ListParams::default()).await.unwrap().items[0].name_any();
        // Ready, or a pod refused (then Ready would never come).
        let ready = poll(&format!("{example} Ready"), START_TIMEOUT, || async {
            clusters.get(&name).await.is_ok_and(|c| is_ready(&c)) || !refused_pods(&ns).await.is_empty()
        })
        .await;
        let refused = refused_pods(&ns).await;
        assert!(refused.is_empty(), "{example}: pods refused under enforce=restricted: {refused:#?}");
        if let Err(e) = ready {
            panic!("{e}; pods: {}", describe_pods(&ns.api::<Pod>()).await);
        }
        eprintln!("psa: {example} Ready under enforce=restricted in {:.0}s", started.elapsed().as_secs_f64());
        drop(operator);
    }
}

/// Offline: the chart's operator NetworkPolicy restricts egress only when
/// `networkPolicy.apiServer` names the API server's endpoints.
#[test]
fn operator_network_policy_restricts_egress_only_with_api_server_endpoints() {
    let render = |extra: &[&str]| -> Value {
        let args = [&["template", "r", CHART, "--show-only", "templates/networkpolicy.yaml"], extra].concat();
        serde_saphyr::from_str(&helm_ok(&args)).expect("the rendered NetworkPolicy parses")
    };
    let open = render(&["--set", "networkPolicy.enabled=true"]);
    assert_eq!(open["spec"]["policyTypes"], json!(["Ingress"]));
    assert!(open["spec"].get("egress").is_none());
    let closed = render(&[
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "networkPolicy.apiServer[0].cidr=10.250.0.1/32",
        "--set",
        "networkPolicy.apiServer[0].port=36443",
    ]);
    assert_eq!(closed["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        closed["spec"]["egress"],
        json!([{"to": [{"ipBlock": {"cidr": "10.250.0.1/32"}}], "ports": [{"port": 36443, "protocol": "TCP"}]}])
    );
}
