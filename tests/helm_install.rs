//! The operator as platform teams run it: `make image` (hack/image.sh) built
//! here, imported into the real node's containerd, `helm install`ed from
//! charts/webcluster-operator onto the real node (placement through values).
//!
//! - install: 2 operator pods Running from that image with the chart's
//!   ServiceAccount, exactly one holding the Lease; `/readyz` answers 200 on
//!   both and names the role (the follower also says so in `/metrics`); the
//!   kubelet's own probe counters show the chart's probes passing; a WebCluster
//!   reaches Ready, its children applied by the leader pod;
//! - failover: the leader pod deleted with grace 0, the other pod takes the
//!   Lease and repairs a child deleted meanwhile;
//! - upgrade: `helm upgrade` with a changed value rolls both pods while no two
//!   pods ever report being the leader (the only writer of children).
//!
//! Each test has its own namespace and release watching only that namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

#[path = "harness/mod.rs"]
mod harness;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use harness::cluster::{TestNamespace, describe, ensure_crd, kubectl_apply, kubectl_ok, repo_root};
use harness::conditions::wait_condition;
use harness::fs::TempDir;
use harness::helm::Release;
use harness::http::{Scrape, get_from};
use harness::pods::{
    APP_IMAGE, REAL_NODE, REAL_NODE_LABEL_KEY, REAL_NODE_LABEL_VALUE, REAL_NODE_TAINT, describe_pods, ensure_images,
    ensure_real_node, node_of, pod_ready, real_node_app_pod, restarts,
};
use harness::wait::{poll, wait_for, wait_for_object};
use webcluster::api::WebCluster;
use webcluster::desired::meta::MANAGER;
use webcluster::desired::names;

/// The chart's metrics port (values.yaml `metrics.port`).
const METRICS_PORT: u16 = 8080;
/// The operator's lease duration (its default; the chart sets none).
const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long pods on the real node may take to start (2 shared cores, other tests running).
const START_TIMEOUT: Duration = Duration::from_secs(300);
const WEBCLUSTER: &str = "site";

/// Builds the image (`hack/image.sh import`: a release build, then `ctr import`
/// into the real node) once per test process; returns its config digest.
fn ensure_operator_image() -> &'static str {
    static DIGEST: OnceLock<Result<String, String>> = OnceLock::new();
    let digest = DIGEST.get_or_init(|| {
        let output = std::process::Command::new("bash")
            .args(["hack/image.sh", "import"])
            .current_dir(repo_root())
            .output()
            .map_err(|e| format!("running hack/image.sh import: {e}"))?;
        if !output.status.success() {
            return Err(describe("hack/image.sh import", &output));
        }
        let tar = repo_root().join("target/image/webcluster-operator.tar");
        let manifest = std::process::Command::new("tar").arg("-xOf").arg(&tar).arg("manifest.json").output();
        let manifest: Value = serde_json::from_slice(&manifest.map_err(|e| e.to_string())?.stdout)
            .map_err(|e| format!("manifest.json of {}: {e}", tar.display()))?;
        let config = manifest[0]["Config"].as_str().ok_or("manifest.json names no config")?;
        Ok(format!("sha256:{}", config.trim_end_matches(".json")))
    });
    digest.as_deref().unwrap_or_else(|e| panic!("the operator image: {e}"))
}

/// A release of the chart on the real node, watching only its test namespace.
/// Fields drop in order: the release is uninstalled before the namespace goes.
struct Installed {
    release: Release,
    ns: TestNamespace,
    _values: TempDir,
    image_id: &'static str,
}

impl Installed {
    async fn new(test: &str) -> Self {
        ensure_real_node().await;
        let image_id = tokio::task::spawn_blocking(ensure_operator_image).await.expect("building the image");
        tokio::task::spawn_blocking(|| ensure_images(&["php-apache"])).await.expect("importing images");
        ensure_crd().await;
        let ns = TestNamespace::new(test).await;
        let values = TempDir::new(test);
        let file = values.join("values.json");
        let placement = json!({
            "watchNamespace": ns.name(),
            // Never pulled: the pods run the image hack/image.sh imported.
            "image": {"pullPolicy": "Never"},
            "logLevel": "info,kube=warn",
            "nodeSelector": {REAL_NODE_LABEL_KEY: REAL_NODE_LABEL_VALUE},
            "tolerations": [{"key": REAL_NODE_TAINT, "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
        });
        std::fs::write(&file, placement.to_string()).unwrap();
        let file = file.to_string_lossy().into_owned();
        let name = ns.name().to_string();
        let release =
            tokio::task::spawn_blocking(move || Release::install(&name, &["-f", &file, "--wait", "--timeout", "300s"]))
                .await
                .expect("helm install");
        Self { release, ns, _values: values, image_id }
    }

    fn pods(&self) -> Api<Pod> {
        self.ns.api::<Pod>()
    }

    /// The release's pods that are not being deleted.
    async fn operator_pods(&self) -> Vec<Pod> {
        let selector = format!("app.kubernetes.io/instance={}", self.release.name);
        let list = self.pods().list(&ListParams::default().labels(&selector)).await.expect("listing pods");
        list.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect()
    }

    /// Waits until `count` operator pods are Ready on the real node; returns them.
    async fn ready_operator_pods(&self, count: usize) -> Vec<Pod> {
        let found = Arc::new(Mutex::new(Vec::new()));
        let result = poll(&format!("{count} Ready operator pods on the real node"), START_TIMEOUT, || {
            let found = found.clone();
            async move {
                let pods = self.operator_pods().await;
                let ok = pods.len() == count && pods.iter().all(|p| pod_ready(p) && node_of(p) == Some(REAL_NODE));
                *found.lock().unwrap() = pods;
                ok
            }
        })
        .await;
        if let Err(e) = result {
            panic!("{e}; pods: {}", describe_pods(&self.pods()).await);
        }
        std::mem::take(&mut *found.lock().unwrap())
    }

    /// The Lease's holder, if any.
    async fn holder(&self) -> Option<String> {
        let lease = self.ns.api::<Lease>().get_opt(&self.release.fullname()).await.ok()??;
        lease.spec?.holder_identity
    }

    /// A WebCluster whose app pod runs on the real node, Ready.
    async fn apply_ready_webcluster(&self) {
        let cluster = json!({
            "apiVersion": "webcluster.io/v1alpha1",
            "kind": "WebCluster",
            "metadata": {"name": WEBCLUSTER, "namespace": self.ns.name()},
            "spec": {"app": {
                "image": APP_IMAGE,
                "replicas": 1,
                "port": 8000,
                "healthCheck": {"path": "/", "initialDelaySeconds": 0, "periodSeconds": 3},
                "pod": real_node_app_pod(),
            }},
        });
        let api = self.ns.api::<WebCluster>();
        api.patch(WEBCLUSTER, &PatchParams::apply("helm-install-test").force(), &Patch::Apply(&cluster))
            .await
            .expect("applying the WebCluster");
        wait_condition(&api, WEBCLUSTER, "Ready", "Ready=True", START_TIMEOUT, |c| c.status == "True").await;
    }

    /// The three examples, applied as they are (their pods need not run): each
    /// reconciled once, its status written for its generation.
    async fn apply_reconciled_examples(&self) {
        let api = self.ns.api::<WebCluster>();
        for example in EXAMPLES {
            kubectl_apply(self.ns.name(), &format!("examples/{example}.yaml"));
        }
        for example in EXAMPLES {
            let api = api.clone();
            wait_for(&format!("the example {example} reconciled"), START_TIMEOUT, || {
                let api = api.clone();
                async move {
                    let cluster = api.get(example).await.ok();
                    let seen = cluster.as_ref().and_then(|c| c.status.as_ref()).and_then(|s| s.observed_generation);
                    seen.is_some() && seen == cluster.and_then(|c| c.metadata.generation)
                }
            })
            .await;
        }
    }
}

const EXAMPLES: [&str; 3] = ["roundcube", "ezplatform", "mosparo"];

fn pod_ip(pod: &Pod) -> String {
    pod.status.as_ref().and_then(|s| s.pod_ip.clone()).expect("a running pod has an IP")
}

/// `GET path` on the pod's metrics port, from the node's host (the pod network's gateway).
fn pod_get(pod: &Pod, path: &str) -> Result<(u16, String), String> {
    get_from(&pod_ip(pod), METRICS_PORT, path)
}

fn pod_scrape(pod: &Pod) -> Result<Scrape, String> {
    Scrape::get_from(&pod_ip(pod), METRICS_PORT)
}

/// The samples of `metric` for container `operator` in `namespace`, from the
/// kubelet's `/metrics/{endpoint}` on the real node: `(labels, value)`.
fn kubelet_operator_samples(endpoint: &str, metric: &str, namespace: &str) -> Vec<(prometheus_parse::Labels, f64)> {
    let text = kubectl_ok(&["get", "--raw", &format!("/api/v1/nodes/{REAL_NODE}/proxy/metrics/{endpoint}")]);
    let scrape = Scrape::parse(&text).expect("the kubelet's metrics parse");
    scrape
        .samples()
        .filter(|s| s.metric == metric)
        .filter(|s| s.labels.get("namespace") == Some(namespace) && s.labels.get("container") == Some("operator"))
        .map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            };
            (s.labels.clone(), value)
        })
        .collect()
}

/// The kubelet's probe results for container `operator` of each pod:
/// `(pod, probe type, result) -> count`, from its /metrics/probes.
fn probe_results(namespace: &str) -> BTreeMap<(String, String, String), f64> {
    kubelet_operator_samples("probes", "prober_probe_total", namespace)
        .into_iter()
        .map(|(labels, value)| {
            let label = |name: &str| labels.get(name).unwrap_or_default().to_string();
            ((label("pod"), label("probe_type"), label("result")), value)
        })
        .collect()
}

/// Each operator pod's working set in MiB (what the memory limit counts), from
/// the kubelet's /metrics/resource.
fn operator_memory_mib(namespace: &str) -> BTreeMap<String, f64> {
    kubelet_operator_samples("resource", "container_memory_working_set_bytes", namespace)
        .into_iter()
        .map(|(labels, bytes)| (labels.get("pod").unwrap_or_default().to_string(), bytes / 1_048_576.0))
        .collect()
}

/// Install: 2 pods from the local image, one leader, /readyz and /metrics by
/// role, probes passing for real, a WebCluster reconciled by the leader pod.
#[tokio::test]
async fn helm_install_runs_two_operator_pods_from_the_local_image_one_leading() {
    let started = Instant::now();
    let installed = Installed::new("helm-install").await;
    let ns = installed.ns.name().to_string();
    let pods = installed.ready_operator_pods(2).await;
    eprintln!("install: 2 operator pods Ready {:.0}s after the test started", started.elapsed().as_secs_f64());
    for pod in &pods {
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.service_account_name.as_deref(), Some(installed.release.fullname().as_str()));
        let status = &pod.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            status.image_id.trim_start_matches("docker.io/"),
            installed.image_id,
            "{} runs the image built here",
            pod.name_any()
        );
        assert_eq!(pod.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    }
    let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    wait_for("a Lease holder among the pods", START_TIMEOUT, || {
        let names = names.clone();
        let installed = &installed;
        async move { installed.holder().await.is_some_and(|h| names.contains(&h)) }
    })
    .await;
    let holder = installed.holder().await.unwrap();
    for pod in &pods {
        let leads = pod.name_any() == holder;
        let role = if leads { "leader" } else { "follower" };
        // The leader's caches sync after it took the Lease: wait for its 200.
        let ready = Arc::new(Mutex::new(String::new()));
        let seen = ready.clone();
        wait_for(&format!("/readyz 200 on the {role} {}", pod.name_any()), START_TIMEOUT, || {
            let answer = pod_get(pod, "/readyz");
            *seen.lock().unwrap() = format!("{answer:?}");
            async move { matches!(answer, Ok((200, _))) }
        })
        .await;
        let body = ready.lock().unwrap().clone();
        assert!(body.contains(role), "{}'s /readyz names its role {role}: {body}", pod.name_any());
        let scrape = pod_scrape(pod).unwrap();
        assert_eq!((scrape.leader(), scrape.follower()), if leads { (1.0, 0.0) } else { (0.0, 1.0) }, "{role} metrics");
    }

    // The kubelet's own counters: both probes succeeded on both pods, none failed.
    wait_for("a successful liveness and readiness probe of each pod", START_TIMEOUT, || {
        let results = probe_results(&ns);
        let names = names.clone();
        async move {
            names.iter().all(|pod| {
                ["Liveness", "Readiness"].iter().all(|probe| {
                    results.get(&(pod.clone(), probe.to_string(), "successful".into())).is_some_and(|n| *n >= 1.0)
                })
            })
        }
    })
    .await;
    // Readiness may fail in the first second (the server not yet bound); liveness never.
    let failed: Vec<_> = probe_results(&ns)
        .into_iter()
        .filter(|((_, probe, result), n)| probe == "Liveness" && result != "successful" && *n > 0.0)
        .collect();
    assert!(failed.is_empty(), "no liveness probe of the operator pods failed: {failed:?}");

    let idle = operator_memory_mib(&ns);
    installed.apply_ready_webcluster().await;
    installed.apply_reconciled_examples().await;
    eprintln!(
        "install: operator working set (MiB) idle {idle:?}, after the three examples {:?}",
        operator_memory_mib(&ns)
    );
    let leader = pods.iter().find(|p| p.name_any() == holder).unwrap();
    let scrape = pod_scrape(leader).unwrap();
    assert!(scrape.applied() > 0.0 && scrape.reconciles() > 0.0, "the leader pod applied the children");
    let follower = pods.iter().find(|p| p.name_any() != holder).unwrap();
    assert_eq!(pod_scrape(follower).unwrap().applied(), 0.0, "the follower applied nothing");
    let service = installed.ns.api::<Service>().get(&names::app(WEBCLUSTER)).await;
    let managers: Vec<String> =
        service.map(|s| s.managed_fields().iter().filter_map(|m| m.manager.clone()).collect()).unwrap_or_default();
    assert!(managers.iter().any(|m| m == MANAGER), "the app Service is applied by {MANAGER}: {managers:?}");
    for pod in installed.operator_pods().await {
        assert_eq!(restarts(&pod), 0, "{} never restarted (liveness held)", pod.name_any());
    }
    eprintln!(
        "install: WebCluster Ready, reconciled by {holder}, {:.0}s after the test started",
        started.elapsed().as_secs_f64()
    );
}

/// Failover: the leader pod killed (grace 0) while a child is deleted; the
/// other pod takes the Lease and puts the child back.
#[tokio::test]
async fn leader_pod_killed_the_other_takes_the_lease_and_repairs_a_deleted_child() {
    let installed = Installed::new("helm-failover").await;
    let pods = installed.ready_operator_pods(2).await;
    installed.apply_ready_webcluster().await;
    let leader = installed.holder().await.expect("a leader");
    let survivor = pods.iter().map(|p| p.name_any()).find(|n| *n != leader).unwrap();
    let services = installed.ns.api::<Service>();
    let child = names::app(WEBCLUSTER);
    let old_uid = services.get(&child).await.expect("the app Service").uid().unwrap();

    let killed = Instant::now();
    installed
        .pods()
        .delete(&leader, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
        .await
        .unwrap();
    services.delete(&child, &DeleteParams::default()).await.unwrap();
    let limit = LEASE_DURATION * 2;
    wait_for(&format!("a new Lease holder (not {leader})"), limit, || {
        let leader = leader.clone();
        let installed = &installed;
        async move { installed.holder().await.is_some_and(|h| h != leader && !h.is_empty()) }
    })
    .await;
    let taken = killed.elapsed();
    let holder = installed.holder().await.unwrap();
    eprintln!(
        "failover: {holder} ({}) holds the Lease {:.1}s after the leader pod was killed (lease duration {}s)",
        if holder == survivor { "the other pod" } else { "the replacement pod" },
        taken.as_secs_f64(),
        LEASE_DURATION.as_secs()
    );
    let what = format!("the app Service {child} recreated by the new leader");
    wait_for_object(&services, &child, &what, START_TIMEOUT, move |s| s.uid().as_deref() != Some(old_uid.as_str()))
        .await;
    eprintln!("failover: deleted child repaired {:.1}s after the kill", killed.elapsed().as_secs_f64());
}

/// Upgrade: a changed value rolls both operator pods; a sampler reading every
/// pod's /metrics never sees two leaders (only the leader writes children).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_upgrade_rolls_the_operator_without_two_leaders_at_once() {
    let installed = Installed::new("helm-upgrade").await;
    let before: Vec<String> = installed.ready_operator_pods(2).await.iter().map(|p| p.name_any()).collect();
    installed.apply_ready_webcluster().await;

    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(Mutex::new((0usize, 0usize, Vec::<String>::new())));
    let sampler = {
        let (stop, most, pods) = (stop.clone(), most.clone(), installed.pods());
        let selector = format!("app.kubernetes.io/instance={}", installed.release.name);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let list =
                    pods.list(&ListParams::default().labels(&selector)).await.map(|l| l.items).unwrap_or_default();
                let with_ip: Vec<Pod> =
                    list.into_iter().filter(|p| p.status.as_ref().is_some_and(|s| s.pod_ip.is_some())).collect();
                let leaders = tokio::task::spawn_blocking(move || {
                    with_ip
                        .iter()
                        .filter(|p| pod_scrape(p).is_ok_and(|s| s.leader() == 1.0))
                        .map(|p| p.name_any())
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap_or_default();
                {
                    let mut most = most.lock().unwrap();
                    most.0 += 1;
                    if leaders.len() > most.1 {
                        *most = (most.0, leaders.len(), leaders);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    // helm blocks this worker; the sampler runs on the other one.
    tokio::task::block_in_place(|| {
        installed.release.upgrade(&[
            "--reuse-values",
            "--set",
            "logLevel=debug\\,kube=warn",
            "--wait",
            "--timeout",
            "300s",
        ])
    });
    let after = installed.ready_operator_pods(2).await;
    wait_for("one leader among the new pods", START_TIMEOUT, || {
        let names: Vec<String> = after.iter().map(|p| p.name_any()).collect();
        let installed = &installed;
        async move { installed.holder().await.is_some_and(|h| names.contains(&h)) }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    for pod in &after {
        assert!(!before.contains(&pod.name_any()), "{} is a new pod of the upgrade", pod.name_any());
    }
    let (samples, most, leaders) = most.lock().unwrap().clone();
    eprintln!("upgrade: {samples} samples of every pod's /metrics, at most {most} leader(s) at once");
    assert!(samples > 0);
    assert!(most <= 1, "two leaders at once during the upgrade: {leaders:?}");
}
