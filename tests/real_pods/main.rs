//! The workloads WebCluster generates, running for REAL on the local cluster's
//! real node (kubelet, containerd, runc; hack/node.sh): every pod is placed
//! there through the placement overrides, and what the pods do is checked
//! from inside them (`kubectl exec`), not from their objects.
//!
//! - database: both engines, a primary and replicas, written and read through
//!   the DSNs the operator injects, a replica's receiver stopped and
//!   restored, a replica added, the primary's server stopped, the primary pod
//!   deleted;
//! - failover: both engines, the primary pod deleted while an app pod writes:
//!   a replica promoted, writes resume, none acknowledged is lost, the old
//!   primary rejoins as a replica;
//! - dfs: eZ Platform's DFS metadata through Doctrine DBAL in a second
//!   database of the managed server, its files on the shared volume;
//! - cache: every memcached node answers an app pod, a Redis replica serves
//!   the primary's write by its pod DNS name;
//! - storage: two app pods share a ReadWriteMany volume at every mount path,
//!   with an HTTP cache in front of them;
//! - http_purge: Varnish with the generated VCL caches a tagged page; eZ
//!   Platform's purges (by xkey tag, by URL) from an app pod evict it with
//!   the example's token only;
//! - seed_symfony: mosparo's and eZ Platform's examples, their cache, files,
//!   database, sessions and cleanup through Symfony and Doctrine as the
//!   applications use them;
//! - roundcube: Roundcube itself (Debian's packages) from its example with 3
//!   replicas, against Dovecot and an SMTP sink: logins, attachments, the
//!   read DSN and cleandb, through its own code;
//! - jobs: a CronJob runs every minute, a task longer than its period never
//!   overlaps itself, a migration runs before the app rolls to a new image;
//! - probes: every generated probe passes on healthy pods (Ready, no
//!   restarts), and each readiness probe fails when its server stops;
//! - read-only roots: every container whose spec says `readOnlyRootFilesystem`
//!   (redis, memcached, PostgreSQL, MariaDB, Varnish) is Ready with it, and a
//!   write to `/` fails in it.
//!
//! All tests live in this one test binary so they run at once (`cargo test`
//! runs binaries one after another): the cron test alone needs about 2.5
//! minutes of schedule. Each test has its own namespace, its own operator
//! process watching only it, and its own local volumes on the real node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../harness/mod.rs"]
mod harness;

mod cache;
mod database;
mod dfs;
mod failover;
mod http_purge;
mod jobs;
mod roundcube;
mod seed_symfony;
mod storage;

use std::time::{Duration, Instant};

use harness::cluster::{TestNamespace, ensure_crd, kubeconfig_path};
use harness::conditions::wait_condition;
use harness::pods::{
    APP_IMAGE, REAL_NODE, RealNodeStorage, describe_pods, ensure_images, ensure_real_node, node_of, pod_ready,
    real_node_app_pod, restarts, sh,
};
use harness::process::{OperatorProcess, log_dir, operator_binary};
use harness::wait::SETUP_TIMEOUT;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use webcluster::api::WebCluster;
use webcluster::desired::meta::{Component, selector_string};
use webcluster::desired::names;

/// A managed database engine; each module adds what it needs of it.
#[derive(Clone, Copy)]
enum Engine {
    Postgresql,
    Mariadb,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Postgresql => "postgresql",
            Engine::Mariadb => "mariadb",
        }
    }
}

/// How long pods of a WebCluster may take to start for real on the one real
/// node while the other tests of this binary start theirs (2 shared cores).
pub const START_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a pod may take to turn NotReady or Ready again after a probe's
/// outcome changes (periods of 3-10 s, thresholds of 2-3, kubelet status sync).
/// A deadline, not a goal: under the whole `make test` on 2 cores one run saw
/// the first failing probe 63 s after Apache was stopped (alone: within 10 s).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(180);

/// The images (hack/images/ recipes) these tests run.
const IMAGES: &[&str] = &["postgres", "mariadb", "redis", "memcached", "varnish", "php-apache"];

/// One test's world: a namespace, local volumes on the real node and an
/// operator process watching only that namespace. Dropped in field order:
/// the operator stops first, then the volumes and the namespace go.
pub struct RealTest {
    pub operator: OperatorProcess,
    pub storage: RealNodeStorage,
    pub ns: TestNamespace,
    pub started: Instant,
}

impl RealTest {
    /// Waits for the real node, installs the CRD, creates the namespace with
    /// `rwo` ReadWriteOnce and `rwx` ReadWriteMany local volumes, and starts the operator.
    pub async fn start(test: &str, rwo: usize, rwx: usize) -> Self {
        let started = Instant::now();
        ensure_real_node().await;
        tokio::task::spawn_blocking(|| ensure_images(IMAGES)).await.expect("importing images");
        ensure_crd().await;
        let ns = TestNamespace::new(test).await;
        let storage = RealNodeStorage::new(&ns, rwo, rwx).await;
        let (mut command, port) = OperatorProcess::command(&operator_binary(), ns.name());
        command.args(["--log-level", "info,kube=warn"]).env("KUBECONFIG", kubeconfig_path());
        let log = log_dir().join(format!("{}-operator.log", ns.name()));
        let mut operator = OperatorProcess::spawn("operator", command, port, log).expect("the operator binary starts");
        operator.wait_serving(SETUP_TIMEOUT).await.expect("the operator serves /healthz");
        Self { operator, storage, ns, started }
    }

    pub fn pods(&self) -> Api<Pod> {
        self.ns.api::<Pod>()
    }

    pub fn namespace(&self) -> &str {
        self.ns.name()
    }

    /// Applies WebCluster `name` with `spec` (server-side, forcing conflicts).
    pub async fn apply(&self, name: &str, spec: Value) {
        let cluster = json!({
            "apiVersion": "webcluster.io/v1alpha1",
            "kind": "WebCluster",
            "metadata": {"name": name, "namespace": self.namespace()},
            "spec": spec,
        });
        self.ns
            .api::<WebCluster>()
            .patch(name, &PatchParams::apply("real-pods-test").force(), &Patch::Apply(&cluster))
            .await
            .unwrap_or_else(|e| panic!("applying WebCluster {name}: {e}"));
    }

    /// Merge-patches the spec of WebCluster `name`.
    pub async fn patch_spec(&self, name: &str, spec: Value) {
        self.ns
            .api::<WebCluster>()
            .patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": spec})))
            .await
            .unwrap_or_else(|e| panic!("patching WebCluster {name}: {e}"));
    }

    /// Waits until WebCluster `name` reports Ready=True.
    pub async fn wait_ready(&self, name: &str, timeout: Duration) {
        let api = self.ns.api::<WebCluster>();
        wait_condition(&api, name, "Ready", "Ready=True", timeout, |c| c.status == "True").await;
    }

    /// Names of the app pods of WebCluster `name` that are Ready on the real
    /// node, once there are `count` (and only those) of them.
    pub async fn ready_app_pods(&self, name: &str, count: usize) -> Vec<String> {
        let selector = selector_string(name, Component::App);
        let pods = self.pods();
        let start = Instant::now();
        loop {
            let list = pods.list(&ListParams::default().labels(&selector)).await.map(|l| l.items).unwrap_or_default();
            let live: Vec<&Pod> = list.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
            if live.len() == count && live.iter().all(|p| pod_ready(p) && node_of(p) == Some(REAL_NODE)) {
                return live.iter().map(|p| p.name_any()).collect();
            }
            assert!(
                start.elapsed() < START_TIMEOUT,
                "timed out after {START_TIMEOUT:?} waiting for {count} Ready app pods on the real node; pods: {}",
                describe_pods(&pods).await
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every pod of the namespace that should be running runs on the real
    /// node, becomes Ready (within START_TIMEOUT) with no restart, and carries
    /// readiness and liveness probes: the generated probes pass on healthy
    /// pods. Returns how many pods.
    pub async fn assert_healthy(&self) -> usize {
        let pods = self.pods();
        let start = Instant::now();
        let running = loop {
            let list = pods.list(&ListParams::default()).await.expect("listing pods").items;
            let running: Vec<Pod> = list
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                // Finished pods: Job attempts (a migration pod whose first connection to
                // the database was refused fails, and its Job retries it).
                .filter(|p| !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")))
                .collect();
            if running.iter().all(pod_ready) || start.elapsed() >= START_TIMEOUT {
                break running;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let summary = describe_pods(&pods).await;
        for pod in &running {
            let name = pod.name_any();
            assert_eq!(node_of(pod), Some(REAL_NODE), "{name} runs on the real node; pods: {summary}");
            assert!(pod_ready(pod), "{name} is Ready within {START_TIMEOUT:?}; pods: {summary}");
            assert_eq!(restarts(pod), 0, "{name} never restarted; pods: {summary}");
            for container in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                assert!(container.readiness_probe.is_some(), "{name}/{} has a readiness probe", container.name);
                assert!(container.liveness_probe.is_some(), "{name}/{} has a liveness probe", container.name);
                let read_only = container.security_context.as_ref().and_then(|c| c.read_only_root_filesystem);
                if read_only == Some(true) {
                    self.assert_root_read_only(&name, &container.name).await;
                }
            }
        }
        running.len()
    }

    /// A server that runs Ready under `readOnlyRootFilesystem` really has a
    /// read-only root: a write to `/` fails in its container.
    async fn assert_root_read_only(&self, pod: &str, container: &str) {
        let out = sh(self.namespace(), pod, container, "touch /webcluster-write-check").await;
        let error = out.expect_err(&format!("{pod}/{container}: a write to / fails"));
        assert!(error.contains("Read-only file system"), "{pod}/{container}: {error}");
        eprintln!("{pod}/{container}: ready with a read-only root (touch /x: Read-only file system)");
    }

    /// Runs PHP script `script` (read from stdin) in app pod `pod` with
    /// `args`; its trimmed output.
    pub async fn php(&self, pod: &str, script: &str, args: &[&str]) -> String {
        let mut command = vec!["php", "--"];
        command.extend_from_slice(args);
        let out = harness::pods::exec_with_input(self.namespace(), pod, APP_CONTAINER, &command, script).await;
        out.unwrap_or_else(|e| panic!("`{}` in {pod}: {e}", args.join(" "))).trim().to_string()
    }

    /// Seconds since the test started, for the figures it prints.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// `spec.app` of a WebCluster whose `replicas` app pods run the app base image
/// on the real node, probed over HTTP every 3 seconds.
pub fn real_app(replicas: i32) -> Value {
    json!({
        "image": APP_IMAGE,
        "replicas": replicas,
        "port": 8000,
        "healthCheck": {"path": "/", "initialDelaySeconds": 0, "periodSeconds": 3},
        "pod": real_node_app_pod(),
    })
}

/// The documents of examples/`name`.yaml.
pub fn example_documents(name: &str) -> Vec<Value> {
    let path = harness::cluster::repo_root().join(format!("examples/{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{name}.yaml: {e}"))
}

/// The spec of the WebCluster in examples/`name`.yaml.
pub fn example_spec(name: &str) -> Value {
    let documents = example_documents(name);
    let cluster = documents.into_iter().find(|d| d["kind"] == "WebCluster").expect("the example has a WebCluster");
    cluster["spec"].clone()
}

/// Waits until pod `pod` came back Ready after a restart that happened after
/// `since`: its container restarted `restarts` times in all and its Ready
/// condition last changed after `since` (so it was NotReady in between).
pub async fn wait_ready_again(
    test: &RealTest,
    pod: &str,
    since: k8s_openapi::jiff::Timestamp,
    restarts_now: i32,
) -> Pod {
    let what = format!("{pod} Ready again after its server stopped (restarts {restarts_now})");
    harness::pods::wait_pod(&test.pods(), pod, &what, PROBE_TIMEOUT, move |p| {
        let changed = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_transition_time.as_ref())
            .is_some_and(|t| t.0 >= since);
        pod_ready(p) && restarts(p) == restarts_now && changed
    })
    .await
}

/// The app container's name (of app, migration and cron pods).
pub const APP_CONTAINER: &str = names::APP_CONTAINER;
