//! `make bench`: how fast the operator converges N WebClusters compared with a bare
//! client applying the same objects, what it costs (memory, CPU, API requests) while
//! idle and during a forced resync, and how fast it repairs a deleted child.
//!
//! Needs a running cluster (KUBECONFIG) and the release binary (`BENCH_OPERATOR`,
//! default `target/release/webcluster-operator`); `make bench` provides both. Writes
//! `BENCHMARKS.md` and `benchmarks/convergence.svg` (after every size, so an
//! interrupted run still leaves what was measured). Environment:
//!   BENCH_SIZES            comma-separated N (default 10,100,1000)
//!   BENCH_CONCURRENCY      in-flight requests of the bare client = operator --concurrency (8)
//!   BENCH_IDLE_SECONDS     idle window after convergence (120); CPU is read over its
//!   BENCH_CPU_IDLE_SECONDS first part (60)
//!   BENCH_REACTIONS        deletions of a child timed per size (100)
//!   BENCH_TIMEOUT_SECONDS  limit per wait (2400: at N=1000 Ready takes over 15 min)
//!   BENCH_SKIP_RAW         1 skips the bare client (for profiling runs: set
//!                          BENCH_OPERATOR to a wrapper that starts a profiler)

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child as Process, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, Pod};
use k8s_openapi::api::networking::v1::ServiceCIDR;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use webcluster::api::WebCluster;
use webcluster::controller::{Metrics, counting_client};
use webcluster::desired::{self, Plan, names};

type Res<T> = Result<T, String>;

static START: OnceLock<Instant> = OnceLock::new();

fn elapsed() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

macro_rules! progress {
    ($($arg:tt)*) => {{
        println!("[bench {:7.1}s] {}", elapsed(), format_args!($($arg)*));
        let _ = std::io::stdout().flush();
    }};
}

const SLIM: &str = r#"
apiVersion: webcluster.io/v1alpha1
kind: WebCluster
metadata:
  name: template
spec:
  app:
    image: registry.example/bench/app:1.0
    replicas: 2
  cache:
    backend: memcached
    replicas: 1
  database:
    engine: postgresql
    managed:
      replicas: 1
"#;

const FIELD_MANAGER: &str = "webcluster-bench";
const RESYNC_ANNOTATION: &str = "bench/resync";
const SERVICE_CIDR_NAME: &str = "webcluster-bench";
const SERVICE_CIDR: &str = "10.112.0.0/16";

struct Settings {
    sizes: Vec<usize>,
    concurrency: usize,
    idle: Duration,
    cpu_idle: Duration,
    reactions: usize,
    timeout: Duration,
    operator: PathBuf,
    root: PathBuf,
    skip_raw: bool,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Res<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| format!("{name}: not a number: {v}")),
        _ => Ok(default),
    }
}

impl Settings {
    fn from_env() -> Res<Self> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let sizes = std::env::var("BENCH_SIZES").unwrap_or_else(|_| "10,100,1000".into());
        let mut sizes = sizes
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse::<usize>().map_err(|_| format!("BENCH_SIZES: not a number: {s}")))
            .collect::<Res<Vec<_>>>()?;
        sizes.sort_unstable();
        sizes.dedup();
        if sizes.is_empty() || sizes[0] == 0 {
            return Err("BENCH_SIZES must list positive sizes".into());
        }
        let idle = Duration::from_secs(env_num("BENCH_IDLE_SECONDS", 120)?);
        let cpu_idle = Duration::from_secs(env_num("BENCH_CPU_IDLE_SECONDS", 60)?).min(idle);
        let operator = std::env::var("BENCH_OPERATOR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target/release/webcluster-operator"));
        Ok(Self {
            sizes,
            concurrency: env_num("BENCH_CONCURRENCY", 8)?,
            idle,
            cpu_idle,
            reactions: env_num("BENCH_REACTIONS", 100)?,
            timeout: Duration::from_secs(env_num("BENCH_TIMEOUT_SECONDS", 2400)?),
            operator,
            root,
            skip_raw: std::env::var("BENCH_SKIP_RAW").is_ok_and(|v| v == "1"),
        })
    }
}

/// Everything measured at one N; `None` where a step failed or did not run.
#[derive(Default, Clone)]
struct SizeResult {
    n: usize,
    children: usize,
    pods: usize,
    t_raw: Option<f64>,
    raw_requests: Option<(u64, u64)>,
    t_children: Option<f64>,
    t_ready: Option<f64>,
    cpu_converge: Option<f64>,
    rss_converge_kib: Option<u64>,
    rss_peak_kib: Option<u64>,
    cpu_idle: Option<f64>,
    converge_requests: Option<(u64, u64)>,
    idle_requests: Option<(u64, u64)>,
    idle_reconciles: Option<f64>,
    resync_requests: Option<(u64, u64)>,
    resync_seconds: Option<f64>,
    reaction: Option<Reaction>,
    errors: Vec<String>,
    wall: f64,
}

#[derive(Clone)]
struct Reaction {
    samples: Vec<f64>,
    failures: usize,
}

impl Reaction {
    fn quantile(&self, q: f64) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let mut sorted = self.samples.clone();
        sorted.sort_by(f64::total_cmp);
        // Nearest rank.
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Some(sorted[rank - 1])
    }
}

// ---------------------------------------------------------------- the cluster

async fn client() -> Res<Client> {
    let config = kube::Config::infer().await.map_err(|e| format!("no kubeconfig (set KUBECONFIG): {e}"))?;
    counting_client(config, Metrics::shared()).map_err(|e| e.to_string())
}

async fn install_crd(client: &Client, root: &Path) -> Res<()> {
    let yaml =
        std::fs::read_to_string(root.join("crds/webcluster.yaml")).map_err(|e| format!("crds/webcluster.yaml: {e}"))?;
    let crd: CustomResourceDefinition =
        serde_saphyr::from_str(&yaml).map_err(|e| format!("crds/webcluster.yaml: {e}"))?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.name_any();
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&crd))
        .await
        .map_err(|e| format!("applying the CRD: {e}"))?;
    poll_for_a_minute("the CRD did not become Established", || async {
        let current = api.get(&name).await.map_err(|e| e.to_string())?;
        let conditions = current.status.and_then(|s| s.conditions).unwrap_or_default();
        Ok(conditions.iter().any(|c| c.type_ == "Established" && c.status == "True"))
    })
    .await
}

/// Polls `check` every 200 ms until it holds; fails with `failure` after 60 s.
async fn poll_for_a_minute<F, Fut>(failure: &str, mut check: F) -> Res<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Res<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await? {
        if Instant::now() > deadline {
            return Err(format!("{failure} within 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// kwokctl's service range is a /24 (254 ClusterIPs); each slim WebCluster has 3
/// ClusterIP Services. Adds a second range (ServiceCIDR, GA since Kubernetes 1.33).
async fn ensure_service_range(client: &Client) -> Res<()> {
    let api: Api<ServiceCIDR> = Api::all(client.clone());
    let object = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "ServiceCIDR",
        "metadata": {"name": SERVICE_CIDR_NAME},
        "spec": {"cidrs": [SERVICE_CIDR]},
    });
    api.patch(SERVICE_CIDR_NAME, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object))
        .await
        .map_err(|e| format!("adding ServiceCIDR {SERVICE_CIDR}: {e}"))?;
    poll_for_a_minute(&format!("ServiceCIDR {SERVICE_CIDR} did not become Ready"), || async {
        let current = api.get(SERVICE_CIDR_NAME).await.map_err(|e| e.to_string())?;
        let conditions = current.status.and_then(|s| s.conditions).unwrap_or_default();
        Ok(conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
    .await
}

async fn create_namespace(client: &Client, ns: &str) -> Res<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    wait_namespace_gone(client, ns, Duration::from_secs(600)).await?;
    let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    api.patch(ns, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object))
        .await
        .map_err(|e| format!("creating namespace {ns}: {e}"))?;
    Ok(())
}

async fn wait_namespace_gone(client: &Client, ns: &str, timeout: Duration) -> Res<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        match api.get_opt(ns).await.map_err(|e| e.to_string())? {
            None => return Ok(()),
            Some(_) if started.elapsed() > timeout => {
                return Err(format!("namespace {ns} still terminating after {}s", timeout.as_secs()));
            }
            Some(_) => {
                if last_report.elapsed() > Duration::from_secs(15) {
                    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
                    let left = pods.list_metadata(&ListParams::default()).await.map(|l| l.items.len()).unwrap_or(0);
                    progress!(
                        "  waiting for namespace {ns} to go ({:.0}s, {left} pods left)",
                        started.elapsed().as_secs_f64()
                    );
                    last_report = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

async fn delete_namespace(client: &Client, ns: &str) -> Res<f64> {
    let started = Instant::now();
    let api: Api<Namespace> = Api::all(client.clone());
    match api.delete(ns, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(0.0),
        Err(e) => return Err(format!("deleting namespace {ns}: {e}")),
    }
    wait_namespace_gone(client, ns, Duration::from_secs(900)).await?;
    Ok(started.elapsed().as_secs_f64())
}

/// Claims deleted with a namespace leave their PVs Released (reclaim policy
/// Retain); make them Available again, as `hack/cluster.sh up` does.
async fn recycle_pvs(client: &Client) -> Res<usize> {
    let api: Api<PersistentVolume> = Api::all(client.clone());
    let pvs = api.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
    let released: Vec<String> = pvs
        .items
        .iter()
        .filter(|pv| pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released"))
        .map(|pv| pv.name_any())
        .collect();
    // A merge patch with null removes the field.
    let patch = json!({"spec": {"claimRef": null}});
    let results = futures::stream::iter(released.iter().map(|name| {
        let (api, patch) = (api.clone(), patch.clone());
        async move { api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await }
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
    Ok(results.iter().filter(|r| r.is_ok()).count())
}

/// Waits until `needed` ReadWriteOnce PVs are Available, recycling Released ones.
async fn ensure_pvs(client: &Client, needed: usize) -> Res<()> {
    let api: Api<PersistentVolume> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let recycled = recycle_pvs(client).await?;
        let pvs = api.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        let rwo = |pv: &PersistentVolume| {
            pv.spec
                .as_ref()
                .and_then(|s| s.access_modes.as_ref())
                .is_some_and(|m| m.iter().any(|m| m == "ReadWriteOnce"))
        };
        let phase = |pv: &PersistentVolume| pv.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        let available = pvs.items.iter().filter(|pv| rwo(pv) && phase(pv) == "Available").count();
        let total = pvs.items.iter().filter(|pv| rwo(pv)).count();
        if available >= needed {
            return Ok(());
        }
        if total < needed {
            return Err(format!(
                "needs {needed} ReadWriteOnce PVs, the cluster has {total} (start it with CLUSTER_PVS_RWO>={needed})"
            ));
        }
        if Instant::now() > deadline {
            return Err(format!("only {available} of the {needed} PVs needed became Available"));
        }
        if recycled > 0 {
            progress!("  recycled {recycled} Released PVs; {available}/{needed} Available");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Pods the nodes still take.
async fn free_pod_capacity(client: &Client) -> Res<usize> {
    let nodes: Api<Node> = Api::all(client.clone());
    let capacity: usize = nodes
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items
        .iter()
        .filter_map(|n| n.status.as_ref()?.allocatable.as_ref()?.get("pods")?.0.parse::<usize>().ok())
        .sum();
    let pods: Api<Pod> = Api::all(client.clone());
    let used = pods.list_metadata(&ListParams::default()).await.map_err(|e| e.to_string())?.items.len();
    Ok(capacity.saturating_sub(used))
}

// ---------------------------------------------------------------- desired state

fn clusters(n: usize, ns: &str) -> Res<Vec<WebCluster>> {
    let template = webcluster::render::parse(SLIM).map_err(|e| e.to_string())?.remove(0);
    Ok((0..n)
        .map(|i| {
            let mut wc = template.clone();
            wc.metadata.name = Some(format!("wc-{i:05}"));
            wc.metadata.namespace = Some(ns.into());
            wc
        })
        .collect())
}

/// (kind, name, API resource, object) of every child the builder produces.
type Desired = Vec<(&'static str, String, ApiResource, Value)>;

fn desired(clusters: &[WebCluster]) -> Res<Desired> {
    let mut out = Vec::new();
    for (i, wc) in clusters.iter().enumerate() {
        let mut wc = wc.clone();
        wc.metadata.uid = Some(format!("00000000-0000-4000-8000-{i:012x}"));
        for child in desired::children(&wc, &Plan::offline(&wc)).map_err(|e| e.to_string())? {
            let mut object = child.to_json();
            // No owner: the WebCluster does not exist for the baseline.
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("ownerReferences");
            }
            out.push((child.kind(), child.name().to_string(), child.api_resource(), object));
        }
    }
    Ok(out)
}

fn pods_of(desired: &Desired) -> usize {
    desired
        .iter()
        .filter(|(kind, ..)| matches!(*kind, "Deployment" | "StatefulSet"))
        .map(|(_, _, _, o)| o.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1) as usize)
        .sum()
}

async fn apply_with_retry(api: &Api<DynamicObject>, name: &str, object: &Value) -> Res<()> {
    let params = PatchParams::apply("webcluster-operator").force();
    let mut attempt = 0;
    loop {
        match api.patch(name, &params, &Patch::Apply(object)).await {
            Ok(_) => return Ok(()),
            Err(_) if attempt < 3 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => return Err(format!("applying {name}: {e}")),
        }
    }
}

// ---------------------------------------------------------------- step 1: bare client

async fn raw_apply(settings: &Settings, objects: &Desired, ns: &str) -> Res<(f64, (u64, u64))> {
    let config = kube::Config::infer().await.map_err(|e| e.to_string())?;
    let metrics = Metrics::shared();
    let client = counting_client(config, metrics.clone()).map_err(|e| e.to_string())?;
    let apis: HashMap<&'static str, Api<DynamicObject>> = objects
        .iter()
        .map(|(kind, _, resource, _)| (*kind, Api::namespaced_with(client.clone(), ns, resource)))
        .collect();
    let started = Instant::now();
    let results = futures::stream::iter(objects.iter().map(|(kind, name, _, object)| {
        let api = &apis[kind];
        async move { apply_with_retry(api, name, object).await }
    }))
    .buffer_unordered(settings.concurrency)
    .collect::<Vec<_>>()
    .await;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        return Err(e);
    }
    Ok((seconds, (metrics.reads(), metrics.writes())))
}

// ---------------------------------------------------------------- watching the namespace

/// Uids of the children seen, by (kind, name), and the Ready WebClusters.
#[derive(Default)]
struct Seen {
    objects: HashMap<(String, String), String>,
    ready: HashSet<String>,
}

type Shared = Arc<Mutex<Seen>>;

/// Watches `api` and feeds every applied or deleted object into `seen`.
fn spawn_watch<K>(
    api: Api<K>,
    seen: Shared,
    record: impl Fn(&mut Seen, K, bool) + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
        while let Some(event) = stream.next().await {
            let Ok(event) = event else { continue };
            let Ok(mut seen) = seen.lock() else { return };
            match event {
                Event::Apply(o) | Event::InitApply(o) => record(&mut seen, o, true),
                Event::Delete(o) => record(&mut seen, o, false),
                Event::Init | Event::InitDone => {}
            }
        }
    })
}

fn watch_children(
    client: &Client,
    ns: &str,
    kinds: &BTreeMap<&'static str, ApiResource>,
    seen: &Shared,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (kind, resource) in kinds {
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::namespaced_with(client.clone(), ns, resource);
        let kind = kind.to_string();
        tasks.push(spawn_watch(api, seen.clone(), move |seen, o, exists| {
            let key = (kind.clone(), o.name_any());
            if exists {
                seen.objects.insert(key, o.uid().unwrap_or_default());
            } else {
                seen.objects.remove(&key);
            }
        }));
    }
    let api: Api<WebCluster> = Api::namespaced(client.clone(), ns);
    tasks.push(spawn_watch(api, seen.clone(), |seen, wc, exists| {
        let ready = exists
            && wc
                .status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            seen.ready.insert(wc.name_any());
        } else {
            seen.ready.remove(&wc.name_any());
        }
    }));
    tasks
}

// ---------------------------------------------------------------- the operator process

struct Operator {
    process: Process,
    pid: u32,
    port: u16,
}

fn free_port() -> Res<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

impl Operator {
    fn start(settings: &Settings, ns: &str, log: &Path) -> Res<Self> {
        let port = free_port()?;
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err_file = log_file.try_clone().map_err(|e| e.to_string())?;
        let process = Command::new(&settings.operator)
            .args(["run", "--namespace", ns, "--metrics-address", &format!("127.0.0.1:{port}")])
            .args(["--resync-seconds", "3600", "--concurrency", &settings.concurrency.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .spawn()
            .map_err(|e| format!("starting {}: {e} (run `cargo build --release`)", settings.operator.display()))?;
        let pid = process.id();
        Ok(Self { process, pid, port })
    }

    fn scrape(&self) -> Res<Scrape> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
        let mut response = String::new();
        stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b).ok_or("no HTTP body from /metrics")?;
        let mut values = HashMap::new();
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            if let Some((key, value)) = line.rsplit_once(' ')
                && let Ok(value) = value.parse::<f64>()
            {
                values.insert(key.to_string(), value);
            }
        }
        Ok(Scrape(values))
    }

    async fn wait_serving(&mut self) -> Res<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.process.try_wait() {
                return Err(format!("the operator exited: {status}"));
            }
            if self.scrape().is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("the operator's /metrics did not answer within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn alive(&mut self) -> Res<()> {
        match self.process.try_wait() {
            Ok(Some(status)) => Err(format!("the operator exited: {status}")),
            _ => Ok(()),
        }
    }

    fn cpu_seconds(&self) -> Res<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).map_err(|e| e.to_string())?;
        // Fields after the command name (which may hold spaces): state is field 3; utime 14, stime 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or("bad /proc/<pid>/stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).ok_or("bad /proc/<pid>/stat");
        Ok((ticks(11)? + ticks(12)?) as f64 / clock_ticks())
    }

    fn peak_rss_kib(&self) -> Res<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).map_err(|e| e.to_string())?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| "no VmHWM in /proc/<pid>/status".into())
    }

    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.process.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        progress!("  the operator did not stop on SIGTERM within 15 s; killing it");
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

struct Scrape(HashMap<String, f64>);

impl Scrape {
    fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }
    fn reads(&self) -> u64 {
        self.get("webcluster_operator_api_requests_total{verb=\"read\"}") as u64
    }
    fn writes(&self) -> u64 {
        self.get("webcluster_operator_api_requests_total{verb=\"write\"}") as u64
    }
    fn reconciles(&self) -> f64 {
        self.0.iter().filter(|(k, _)| k.starts_with("webcluster_operator_reconciles_total{")).map(|(_, v)| v).sum()
    }
    fn requests_since(&self, before: &Scrape) -> (u64, u64) {
        (self.reads().saturating_sub(before.reads()), self.writes().saturating_sub(before.writes()))
    }
}

// ---------------------------------------------------------------- step 2-5: the operator

async fn apply_clusters(client: &Client, clusters: &[WebCluster], ns: &str, concurrency: usize) -> Res<()> {
    let api: Api<WebCluster> = Api::namespaced(client.clone(), ns);
    let results = futures::stream::iter(clusters.iter().map(|wc| {
        let api = api.clone();
        async move {
            let name = wc.name_any();
            let params = PatchParams::apply(FIELD_MANAGER).force();
            api.patch(&name, &params, &Patch::Apply(wc)).await.map_err(|e| format!("applying WebCluster {name}: {e}"))
        }
    }))
    .buffer_unordered(concurrency)
    .collect::<Vec<_>>()
    .await;
    results.into_iter().find(Result::is_err).map_or(Ok(()), |e| e.map(|_| ()))
}

async fn operator_steps(
    settings: &Settings,
    client: &Client,
    n: usize,
    ns: &str,
    is_largest: bool,
    result: &mut SizeResult,
) -> Res<()> {
    let clusters = clusters(n, ns)?;
    let expected: Vec<(String, String)> =
        desired(&clusters)?.into_iter().map(|(kind, name, ..)| (kind.to_string(), name)).collect();
    let kinds: BTreeMap<&'static str, ApiResource> =
        desired(&clusters[..1])?.into_iter().map(|(kind, _, resource, _)| (kind, resource)).collect();
    let seen: Shared = Arc::default();
    let watches = watch_children(client, ns, &kinds, &seen);
    let log = settings.root.join(format!("target/bench-logs/operator-{n}.log"));
    let mut operator = Operator::start(settings, ns, &log)?;
    progress!("N={n} step 2/5: operator pid {} started (log {})", operator.pid, log.display());
    let outcome = run_operator(settings, client, &mut operator, &clusters, &expected, &seen, is_largest, result).await;
    if let Ok(rss) = operator.peak_rss_kib() {
        result.rss_peak_kib = Some(rss);
    }
    operator.stop();
    for task in watches {
        task.abort();
    }
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn run_operator(
    settings: &Settings,
    client: &Client,
    operator: &mut Operator,
    clusters: &[WebCluster],
    expected: &[(String, String)],
    seen: &Shared,
    is_largest: bool,
    result: &mut SizeResult,
) -> Res<()> {
    let n = clusters.len();
    let ns = clusters[0].namespace().unwrap_or_default();
    operator.wait_serving().await?;
    // The controller's caches list an empty namespace; give them a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = operator.scrape()?;

    let started = Instant::now();
    apply_clusters(client, clusters, &ns, settings.concurrency).await?;
    progress!(
        "N={n} step 2/5: {n} WebClusters applied in {:.2}s; waiting for {} children and Ready",
        started.elapsed().as_secs_f64(),
        expected.len()
    );
    let mut last_report = Instant::now();
    loop {
        let (present, ready) = {
            let seen = seen.lock().map_err(|_| "poisoned")?;
            (expected.iter().filter(|key| seen.objects.contains_key(*key)).count(), seen.ready.len())
        };
        let now = started.elapsed().as_secs_f64();
        if result.t_children.is_none() && present == expected.len() {
            result.t_children = Some(now);
            progress!("N={n} step 2/5: T_children = {now:.2}s (every one of {} children exists)", expected.len());
        }
        if ready == n {
            result.t_ready = Some(now);
            progress!("N={n} step 2/5: T_ready = {now:.2}s (every WebCluster Ready=True)");
            break;
        }
        operator.alive()?;
        if started.elapsed() > settings.timeout {
            return Err(format!(
                "not converged after {}s: {present}/{} children, {ready}/{n} Ready",
                settings.timeout.as_secs(),
                expected.len()
            ));
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            progress!("N={n} step 2/5: {now:.0}s: children {present}/{}, Ready {ready}/{n}", expected.len());
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let converged = operator.scrape()?;
    result.converge_requests = Some(converged.requests_since(&before));
    result.cpu_converge = Some(operator.cpu_seconds()?);
    result.rss_converge_kib = Some(operator.peak_rss_kib()?);
    progress!(
        "N={n} step 3/5: footprint at convergence: peak RSS {:.1} MiB, CPU {:.2}s; requests while converging: {:?} (reads, writes)",
        result.rss_converge_kib.unwrap_or(0) as f64 / 1024.0,
        result.cpu_converge.unwrap_or(0.0),
        result.converge_requests.unwrap_or_default()
    );

    // Step 3+4: idle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    progress!(
        "N={n} step 4/5: idle for {}s (CPU over the first {}s)",
        settings.idle.as_secs(),
        settings.cpu_idle.as_secs()
    );
    let idle_start = operator.scrape()?;
    let cpu_start = operator.cpu_seconds()?;
    tokio::time::sleep(settings.cpu_idle).await;
    result.cpu_idle = Some(operator.cpu_seconds()? - cpu_start);
    tokio::time::sleep(settings.idle - settings.cpu_idle).await;
    operator.alive()?;
    let idle_end = operator.scrape()?;
    result.idle_requests = Some(idle_end.requests_since(&idle_start));
    result.idle_reconciles = Some(idle_end.reconciles() - idle_start.reconciles());
    progress!(
        "N={n} step 4/5: idle: {:?} (reads, writes), {} reconciles, CPU {:.2}s over {}s",
        result.idle_requests.unwrap_or_default(),
        result.idle_reconciles.unwrap_or(0.0),
        result.cpu_idle.unwrap_or(0.0),
        settings.cpu_idle.as_secs()
    );

    // Step 4: one forced resync of all N.
    let before = operator.scrape()?;
    let stamp = format!(
        "{:.3}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64()
    );
    let api: Api<WebCluster> = Api::namespaced(client.clone(), &ns);
    let resync_started = Instant::now();
    let patch = json!({"metadata": {"annotations": {RESYNC_ANNOTATION: stamp}}});
    let results = futures::stream::iter(clusters.iter().map(|wc| {
        let (api, patch) = (api.clone(), patch.clone());
        async move { api.patch(&wc.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await }
    }))
    .buffer_unordered(settings.concurrency)
    .collect::<Vec<_>>()
    .await;
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        return Err(format!("annotating WebClusters: {e}"));
    }
    loop {
        let now = operator.scrape()?;
        if now.reconciles() - before.reconciles() >= n as f64 {
            break;
        }
        if resync_started.elapsed() > settings.timeout {
            return Err(format!("resync: only {} of {n} reconciles", now.reconciles() - before.reconciles()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    result.resync_seconds = Some(resync_started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = operator.scrape()?;
    result.resync_requests = Some(after.requests_since(&before));
    progress!(
        "N={n} step 4/5: resync of {n} took {:.2}s; requests {:?} (reads, writes), {} reconciles",
        result.resync_seconds.unwrap_or(0.0),
        result.resync_requests.unwrap_or_default(),
        after.reconciles() - before.reconciles()
    );

    // Step 5: reaction to a deleted child.
    if settings.reactions > 0 {
        progress!(
            "N={n} step 5/5: deleting a random WebCluster's app Service {} times{}",
            settings.reactions,
            if is_largest { "" } else { " (not the largest N)" }
        );
        result.reaction = Some(reaction(settings, client, &ns, clusters, seen).await?);
        if let Some(r) = &result.reaction {
            progress!(
                "N={n} step 5/5: reaction p50 {}s, p99 {}s, {} not repaired",
                fmt_opt(r.quantile(0.5), 3),
                fmt_opt(r.quantile(0.99), 3),
                r.failures
            );
        }
    }
    operator.alive()
}

async fn reaction(
    settings: &Settings,
    client: &Client,
    ns: &str,
    clusters: &[WebCluster],
    seen: &Shared,
) -> Res<Reaction> {
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), ns);
    let mut out = Reaction { samples: Vec::new(), failures: 0 };
    for _ in 0..settings.reactions {
        let wc = &clusters[rand::random_range(0..clusters.len())];
        let name = names::app(&wc.name_any());
        let key = ("Service".to_string(), name.clone());
        let old = seen.lock().map_err(|_| "poisoned")?.objects.get(&key).cloned();
        let Some(old) = old else {
            out.failures += 1;
            continue;
        };
        let started = Instant::now();
        services.delete(&name, &DeleteParams::default()).await.map_err(|e| format!("deleting Service {name}: {e}"))?;
        loop {
            let current = seen.lock().map_err(|_| "poisoned")?.objects.get(&key).cloned();
            if current.is_some_and(|uid| uid != old) {
                out.samples.push(started.elapsed().as_secs_f64());
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                out.failures += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(out)
}

// ---------------------------------------------------------------- one size

async fn run_size(settings: &Settings, client: &Client, n: usize, is_largest: bool) -> SizeResult {
    let started = Instant::now();
    let mut result = SizeResult { n, ..SizeResult::default() };
    if let Err(e) = run_size_steps(settings, client, n, is_largest, &mut result).await {
        progress!("N={n} FAILED: {e}");
        result.errors.push(e);
    }
    result.wall = started.elapsed().as_secs_f64();
    progress!("N={n} done in {:.0}s", result.wall);
    result
}

async fn run_size_steps(
    settings: &Settings,
    client: &Client,
    n: usize,
    is_largest: bool,
    result: &mut SizeResult,
) -> Res<()> {
    let raw_ns = format!("bench-raw-{n}");
    let op_ns = format!("bench-op-{n}");
    let objects = desired(&clusters(n, &raw_ns)?)?;
    result.children = objects.len();
    result.pods = pods_of(&objects);
    let claims = 2 * n;
    let free = free_pod_capacity(client).await?;
    if free < result.pods {
        return Err(format!(
            "needs room for {} pods, the nodes take {free} more (start the cluster with a larger CLUSTER_NODE_PODS)",
            result.pods
        ));
    }

    progress!(
        "N={n} step 1/5: bare client applies {} children ({} per WebCluster) into {raw_ns}, {} in flight",
        objects.len(),
        objects.len() / n,
        settings.concurrency
    );
    ensure_pvs(client, claims).await?;
    if !settings.skip_raw {
        raw_step(settings, client, &objects, &raw_ns, result).await?;
        ensure_pvs(client, claims).await?;
    }
    create_namespace(client, &op_ns).await?;
    let outcome = operator_steps(settings, client, n, &op_ns, is_largest, result).await;
    progress!("N={n}: deleting {op_ns}");
    let deleted = delete_namespace(client, &op_ns).await;
    outcome?;
    let seconds = deleted?;
    progress!("N={n}: {op_ns} deleted in {seconds:.0}s");
    Ok(())
}

/// Step 1: the bare client applies `objects` into `raw_ns`, which is deleted afterwards.
async fn raw_step(
    settings: &Settings,
    client: &Client,
    objects: &Desired,
    raw_ns: &str,
    result: &mut SizeResult,
) -> Res<()> {
    let n = result.n;
    create_namespace(client, raw_ns).await?;
    match raw_apply(settings, objects, raw_ns).await {
        Ok((seconds, requests)) => {
            result.t_raw = Some(seconds);
            result.raw_requests = Some(requests);
            progress!("N={n} step 1/5: T_raw = {seconds:.2}s ({:.0} objects/s)", objects.len() as f64 / seconds);
        }
        Err(e) => {
            progress!("N={n} step 1/5: T_raw FAILED: {e}");
            result.errors.push(format!("T_raw: {e}"));
        }
    }
    progress!("N={n} step 1/5: deleting {raw_ns}");
    let seconds = delete_namespace(client, raw_ns).await?;
    progress!("N={n} step 1/5: {raw_ns} deleted in {seconds:.0}s");
    Ok(())
}

// ---------------------------------------------------------------- report

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.digits$}"))
}

fn fmt_req(v: Option<(u64, u64)>) -> String {
    v.map_or_else(|| "—".into(), |(r, w)| format!("{r} / {w}"))
}

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| k as f64 / 1024.0)
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_string()))
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("unknown".into(), |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0));
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("- CPU: {model}, {cpus} CPUs available (nproc)\n- Memory: {memory}\n- Kernel: Linux {}\n", kernel.trim())
}

fn versions(root: &Path) -> String {
    let mut out = String::new();
    let env = std::fs::read_to_string(root.join("hack/versions.env")).unwrap_or_default();
    for line in env.lines().filter(|l| !l.starts_with('#') && l.contains('=')) {
        let _ = writeln!(out, "- {}", line.replace('=', ": "));
    }
    let rustc = Command::new("rustc").arg("--version").output().ok().and_then(|o| String::from_utf8(o.stdout).ok());
    let _ = writeln!(out, "- {}", rustc.unwrap_or_else(|| "rustc: unknown".into()).trim());
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    let mut crates = Vec::new();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("name = \"").and_then(|n| n.strip_suffix('"'))
            && matches!(name, "kube" | "k8s-openapi" | "tokio")
            && let Some(version) =
                lines.next().and_then(|v| v.strip_prefix("version = \"")).and_then(|v| v.strip_suffix('"'))
        {
            crates.push(format!("{name} {version}"));
        }
    }
    let _ = writeln!(out, "- crates: {}", crates.join(", "));
    out
}

struct Goal {
    name: &'static str,
    verdict: Option<bool>,
    detail: String,
    fix: &'static str,
}

fn goals(results: &[SizeResult]) -> Vec<Goal> {
    let converged: Vec<&SizeResult> = results.iter().filter(|r| r.t_ready.is_some()).collect();
    let at = |n: usize| results.iter().find(|r| r.n == n && r.t_children.is_some() && r.t_raw.is_some());
    let largest_measured = results.iter().rev().find(|r| r.t_children.is_some() && r.t_raw.is_some());
    let mut out = Vec::new();

    let target = at(1000).or(largest_measured);
    let (verdict, detail) = match target {
        Some(r) => {
            let (raw, children) = (r.t_raw.unwrap_or(0.0), r.t_children.unwrap_or(0.0));
            let ratio = children / raw;
            let limit = 1.25 * raw;
            let note =
                if r.n == 1000 { String::new() } else { format!(" (measured at N={}, N=1000 did not run)", r.n) };
            (
                Some(children <= limit),
                format!(
                    "T_children {children:.2}s vs 1.25 × T_raw = {limit:.2}s: ratio {ratio:.2}, {} by {:.2}s ({:+.0}%){note}",
                    if children <= limit { "met" } else { "missed" },
                    (limit - children).abs(),
                    (children / limit - 1.0) * 100.0
                ) + &requests_note(r),
            )
        }
        None => (None, "not measured".into()),
    };
    out.push(Goal {
        name: "T_children(1000) ≤ 1.25 × T_raw(1000)",
        verdict,
        detail,
        fix: "On this 2-core machine the control plane is CPU-bound (kube-apiserver near one core while \
              kube-controller-manager, the scheduler and kwok create and start the pods), so T_children follows \
              the number of writes. Besides the 14 children per WebCluster the operator writes, within the same \
              window, the WebCluster status (at once when Ready or the generation changes, other figures at most \
              every 5 s), a role label on each database replica, Events, and the release of the held app \
              Deployment once the database is ready. Fewer writes in that window would close the gap: a replica \
              StatefulSet whose pod template carries the role (no pod labels), and a longer status interval \
              (--status-interval-seconds) while children are still starting.",
    });

    let mem_target =
        results.iter().find(|r| r.n == 1000 && r.rss_peak_kib.is_some()).or_else(|| converged.last().copied());
    let (verdict, detail) = match mem_target {
        Some(r) => {
            let peak = mib(r.rss_peak_kib.or(r.rss_converge_kib)).unwrap_or(0.0);
            let note =
                if r.n == 1000 { String::new() } else { format!(" (measured at N={}, N=1000 did not run)", r.n) };
            (
                Some(peak <= 64.0),
                format!(
                    "peak RSS {peak:.1} MiB vs 64 MiB: {} by {:.1} MiB{note}",
                    if peak <= 64.0 { "met" } else { "missed" },
                    (64.0 - peak).abs()
                ),
            )
        }
        None => (None, "not measured".into()),
    };
    out.push(Goal {
        name: "peak memory ≤ 64 MiB at N=1000",
        verdict,
        detail,
        fix: "The resident set grows with N: the cached WebClusters (spec and status, managedFields dropped), a \
              digest per child and database pod, slimmed views of the workloads the status reads, and the \
              applier's hash and version per child; the allocator also keeps memory freed after the convergence \
              burst (compare the peak at T_ready with the overall peak). Caching WebClusters as the fields the \
              controller reads, and bounding what the allocator retains (fewer runtime worker threads, an \
              allocator that returns freed pages) are where to look.",
    });

    let writes: Vec<String> = results
        .iter()
        .filter_map(|r| Some((r.n, r.idle_requests?.1, r.resync_requests?.1)))
        .map(|(n, idle, resync)| format!("N={n}: {idle} idle, {resync} resync"))
        .collect();
    let measured = results.iter().any(|r| r.idle_requests.is_some() && r.resync_requests.is_some());
    let zero =
        results.iter().all(|r| r.idle_requests.is_none_or(|q| q.1 == 0) && r.resync_requests.is_none_or(|q| q.1 == 0));
    out.push(Goal {
        name: "zero writes idle and during the resync",
        verdict: measured.then_some(zero),
        detail: if measured { format!("writes: {}", writes.join("; ")) } else { "not measured".into() },
        fix: "Each write seen here is a child or status the operator re-sent although it had not changed; the \
              applier's hash-and-version memory and the status comparison decide what is skipped. The operator's log \
              (target/bench-logs/operator-N.log, `applied children`) names the WebClusters that wrote.",
    });

    let reaction = results.iter().rev().find(|r| r.reaction.as_ref().is_some_and(|x| !x.samples.is_empty()));
    let (verdict, detail) = match reaction {
        Some(r) => {
            let reaction = r.reaction.as_ref().expect("filtered above");
            let p99 = reaction.quantile(0.99).unwrap_or(f64::INFINITY);
            let ok = p99 <= 1.0 && reaction.failures == 0;
            (
                Some(ok),
                format!(
                    "p99 {p99:.3}s vs 1 s at N={}: {} by {:.3}s; {} of {} deletions not repaired within 30 s",
                    r.n,
                    if ok { "met" } else { "missed" },
                    (1.0 - p99).abs(),
                    reaction.failures,
                    reaction.samples.len() + reaction.failures
                ),
            )
        }
        None => (None, "not measured".into()),
    };
    out.push(Goal {
        name: "reaction p99 ≤ 1 s",
        verdict,
        detail,
        fix: "A deleted child reaches the controller through the child watch (a trigger for its WebCluster); the \
              reconcile then observes with GETs and re-applies. Skipping the GETs for children whose trigger was a \
              deletion, and keeping the queue short (concurrency), bound the delay.",
    });
    out
}

/// How many requests the operator needed for what the bare client did in one write per child.
fn requests_note(r: &SizeResult) -> String {
    match (r.converge_requests, r.raw_requests) {
        (Some((reads, writes)), Some((_, raw_writes))) => format!(
            "; while converging the operator sent {reads} reads and {writes} writes ({:.0} and {:.0} per \
             WebCluster), the bare client {raw_writes} writes",
            reads as f64 / r.n as f64,
            writes as f64 / r.n as f64
        ),
        _ => String::new(),
    }
}

fn report(settings: &Settings, results: &[SizeResult], total: f64, complete: bool) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by `make bench` (`benches/convergence.rs`); every number below was measured in the run described \
         here{}. Total bench wall time: {:.0} s ({:.1} min).\n",
        if complete { "" } else { " — the run was still going or stopped early; sizes missing below did not run" },
        total,
        total / 60.0
    );
    let _ = writeln!(md, "## Machine\n\n{}", machine());
    let _ = writeln!(md, "## Versions\n\n{}", versions(&settings.root));
    let _ = writeln!(
        md,
        "## Method\n\n\
         A local control plane (`hack/cluster.sh` with `WEBCLUSTER_CLUSTER_DIR=/tmp/wc-bench`: real etcd, \
         kube-apiserver, kube-controller-manager, kube-scheduler; kwok fakes 3 nodes in 3 zones and makes pods \
         Running/Ready; a default StorageClass with pre-created PVs; `make bench` sizes the node pod capacity \
         and the PVs for the largest N). kwokctl's Service range is a /24 (254 ClusterIPs) and each slim \
         WebCluster has 3 ClusterIP Services, so the bench adds a ServiceCIDR {SERVICE_CIDR}. The operator and \
         the bench run on the same machine as the control plane, so they share its CPUs.\n\n\
         Each WebCluster is slim: app 2 replicas, memcached 1 node, managed PostgreSQL 1 primary + 1 replica, \
         nothing else: {} children and {} pods each ({} PVCs). For each N, in fresh namespaces (deleted afterwards; \
         Released PVs are made Available again):\n\n\
         1. **T_raw(N)** — a bare client (the operator's counting kube client, {c} requests in flight with \
         `buffer_unordered({c})`) server-side-applies exactly the children `build()` produces for the N \
         WebClusters (owner references removed, since the WebClusters do not exist in that namespace) into \
         `bench-raw-N`. Wall time from the first request to the last response. The namespace is deleted before step 2.\n\
         2. **The operator** — `target/release/webcluster-operator run --namespace bench-op-N --concurrency {c} \
         --resync-seconds 3600` as a child process. Once its /metrics answers (+2 s for its caches), the bench \
         server-side-applies the N WebClusters ({c} in flight). **T_children** = from the first WebCluster apply \
         until every expected child (the names `build()` gives) exists, seen by metadata watches of every child \
         kind; **T_ready** = until every WebCluster has `Ready=True` (watch). The app Deployment is part of the \
         expected children; the operator creates it at once, with 0 replicas until the database primary is Ready.\n\
         3. **Footprint** — the operator's peak RSS (`VmHWM`) at T_ready and at the end of all steps; CPU seconds \
         (utime+stime ÷ CLK_TCK) from its start to T_ready, and over the first {cpu}s of the idle window.\n\
         4. **Idle cost** — 5 s after T_ready, API requests (`webcluster_operator_api_requests_total`, reads = \
         GET/LIST/WATCH, writes = the rest) during {idle}s idle. Then a forced resync: a merge patch adds the \
         annotation `{RESYNC_ANNOTATION}: <time>` to every WebCluster, the bench waits until \
         `reconciles_total` grew by N, waits 5 s more, and reads the request counters.\n\
         5. **Reaction** — {reactions} times: delete the `<name>-app` Service of a random WebCluster and time until a \
         Service with that name and a new uid exists (seen by the bench's watch), 100 ms between deletions. Done at \
         every N that converged; the goal uses the largest.\n",
        result_or(results, |r| r.children / r.n.max(1)),
        result_or(results, |r| r.pods / r.n.max(1)),
        2,
        c = settings.concurrency,
        cpu = settings.cpu_idle.as_secs(),
        idle = settings.idle.as_secs(),
        reactions = settings.reactions,
    );

    let _ = writeln!(md, "## Results\n");
    let _ = writeln!(
        md,
        "| N | children | T_raw (s) | T_children (s) | T_children / T_raw | T_ready (s) | peak RSS at T_ready / overall (MiB) | CPU to T_ready (s) | CPU idle {cpu}s (s) | requests converging (r / w) | requests idle {idle}s (r / w) | reconciles idle | resync time (s) | requests resync (r / w) | reaction p50 / p99 / max (s) | bare client requests (r / w) | size wall time (s) |",
        cpu = settings.cpu_idle.as_secs(),
        idle = settings.idle.as_secs()
    );
    let _ = writeln!(md, "|{}", "---|".repeat(17));
    for r in results {
        let ratio = match (r.t_children, r.t_raw) {
            (Some(c), Some(raw)) if raw > 0.0 => format!("{:.2}", c / raw),
            _ => "—".into(),
        };
        let reaction = r.reaction.as_ref().map_or_else(
            || "—".into(),
            |x| {
                let max = x.samples.iter().copied().fold(f64::NAN, f64::max);
                format!(
                    "{} / {} / {}{}",
                    fmt_opt(x.quantile(0.5), 3),
                    fmt_opt(x.quantile(0.99), 3),
                    fmt_opt((!max.is_nan()).then_some(max), 3),
                    if x.failures > 0 { format!(" ({} not repaired)", x.failures) } else { String::new() }
                )
            },
        );
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
            r.n,
            r.children,
            fmt_opt(r.t_raw, 2),
            fmt_opt(r.t_children, 2),
            ratio,
            fmt_opt(r.t_ready, 2),
            fmt_opt(mib(r.rss_converge_kib), 1),
            fmt_opt(mib(r.rss_peak_kib), 1),
            fmt_opt(r.cpu_converge, 2),
            fmt_opt(r.cpu_idle, 2),
            fmt_req(r.converge_requests),
            fmt_req(r.idle_requests),
            fmt_opt(r.idle_reconciles, 0),
            fmt_opt(r.resync_seconds, 2),
            fmt_req(r.resync_requests),
            reaction,
            fmt_req(r.raw_requests),
            r.wall
        );
    }
    let failures: Vec<String> =
        results.iter().flat_map(|r| r.errors.iter().map(move |e| format!("- N={}: {e}", r.n))).collect();
    if !failures.is_empty() {
        let _ = writeln!(md, "\nFailures:\n\n{}", failures.join("\n"));
    }
    let not_run: Vec<String> =
        settings.sizes.iter().filter(|n| !results.iter().any(|r| r.n == **n)).map(|n| n.to_string()).collect();
    if !not_run.is_empty() {
        let _ = writeln!(md, "\nNot run: N = {} (a smaller size failed, or the run stopped).", not_run.join(", "));
    }
    let _ = writeln!(md, "\n![Convergence time against N](benchmarks/convergence.svg)\n");
    let _ = writeln!(md, "## Goals\n");
    for goal in goals(results) {
        let mark = match goal.verdict {
            Some(true) => "**met**",
            Some(false) => "**missed**",
            None => "not measured",
        };
        let _ = writeln!(md, "- {}: {mark} — {}", goal.name, goal.detail);
        if goal.verdict == Some(false) {
            let _ = writeln!(md, "  - What would close it: {}", goal.fix);
        }
    }
    md
}

fn result_or(results: &[SizeResult], f: impl Fn(&SizeResult) -> usize) -> usize {
    results.first().map_or(0, f)
}

/// Label, colour and value of one line of the plot.
type Series = (&'static str, &'static str, fn(&SizeResult) -> Option<f64>);

fn svg(results: &[SizeResult]) -> String {
    let (w, h) = (760.0, 460.0);
    let (left, right, top, bottom) = (70.0, 170.0, 40.0, 60.0);
    let series: [Series; 3] = [
        ("T_raw", "#4c78a8", |r| r.t_raw),
        ("T_children", "#f58518", |r| r.t_children),
        ("T_ready", "#54a24b", |r| r.t_ready),
    ];
    let ns: Vec<f64> = results.iter().map(|r| r.n as f64).collect();
    let (min_n, max_n) = (ns.iter().copied().fold(f64::INFINITY, f64::min), ns.iter().copied().fold(0.0, f64::max));
    let max_t = results.iter().flat_map(|r| series.iter().filter_map(|s| (s.2)(r))).fold(0.0, f64::max).max(1.0);
    let y_max = nice_ceiling(max_t * 1.05);
    let (lo, hi) = if min_n.is_finite() && max_n > min_n { (min_n.log10(), max_n.log10()) } else { (-0.5, 0.5) };
    let x = |n: f64| {
        let v = if max_n > min_n { (n.log10() - lo) / (hi - lo) } else { 0.5 };
        left + v * (w - left - right)
    };
    let y = |t: f64| top + (1.0 - t / y_max) * (h - top - bottom);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">Convergence time against N (slim WebClusters)</text>"#,
        (w - right + left) / 2.0
    );
    for i in 0..=5 {
        let t = y_max * i as f64 / 5.0;
        let _ = writeln!(
            out,
            r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            w - right,
            y(t),
            y(t)
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y(t) + 4.0,
            trim_number(t)
        );
    }
    for n in &ns {
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" x2="{:.1}" y1="{top}" y2="{}" stroke="#eee"/>"##,
            x(*n),
            x(*n),
            h - bottom
        );
        let _ = writeln!(out, r#"<text x="{:.1}" y="{}" text-anchor="middle">{n}</text>"#, x(*n), h - bottom + 18.0);
    }
    let _ = writeln!(out, r##"<line x1="{left}" x2="{left}" y1="{top}" y2="{}" stroke="#333"/>"##, h - bottom);
    let _ = writeln!(
        out,
        r##"<line x1="{left}" x2="{}" y1="{}" y2="{}" stroke="#333"/>"##,
        w - right,
        h - bottom,
        h - bottom
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">N (WebClusters, log scale)</text>"#,
        (w - right + left) / 2.0,
        h - 18.0
    );
    let _ = writeln!(
        out,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">seconds</text>"#,
        (h - bottom + top) / 2.0,
        (h - bottom + top) / 2.0
    );
    for (i, (label, color, value)) in series.iter().enumerate() {
        let points: Vec<(f64, f64)> = results.iter().filter_map(|r| value(r).map(|t| (x(r.n as f64), y(t)))).collect();
        if points.len() > 1 {
            let path: Vec<String> = points.iter().map(|(px, py)| format!("{px:.1},{py:.1}")).collect();
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                path.join(" ")
            );
        }
        for (px, py) in &points {
            let _ = writeln!(out, r#"<circle cx="{px:.1}" cy="{py:.1}" r="4" fill="{color}"/>"#);
        }
        let ly = top + 20.0 + 22.0 * i as f64;
        let lx = w - right + 20.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="3"/>"#,
            lx + 24.0
        );
        let _ = writeln!(out, r#"<text x="{}" y="{}">{label}</text>"#, lx + 30.0, ly + 4.0);
    }
    let _ = writeln!(out, "</svg>");
    out
}

fn nice_ceiling(v: f64) -> f64 {
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|c| *c >= v).unwrap_or(10.0 * magnitude)
}

fn trim_number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 { format!("{v:.0}") } else { format!("{v:.1}") }
}

fn write_report(settings: &Settings, results: &[SizeResult], total: f64, complete: bool) -> Res<()> {
    let md = report(settings, results, total, complete);
    std::fs::write(settings.root.join("BENCHMARKS.md"), md).map_err(|e| format!("BENCHMARKS.md: {e}"))?;
    let dir = settings.root.join("benchmarks");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("convergence.svg"), svg(results)).map_err(|e| format!("convergence.svg: {e}"))
}

// ---------------------------------------------------------------- main

async fn run() -> Res<()> {
    let settings = Settings::from_env()?;
    let client = client().await?;
    progress!(
        "sizes {:?}, concurrency {}, idle {}s, {} reactions; operator {}",
        settings.sizes,
        settings.concurrency,
        settings.idle.as_secs(),
        settings.reactions,
        settings.operator.display()
    );
    if !settings.operator.exists() {
        return Err(format!("{} does not exist: run `cargo build --release` first", settings.operator.display()));
    }
    std::fs::create_dir_all(settings.root.join("target/bench-logs")).map_err(|e| e.to_string())?;
    install_crd(&client, &settings.root).await?;
    ensure_service_range(&client).await?;
    progress!("CRD installed; ServiceCIDR {SERVICE_CIDR} added for ClusterIPs");
    let mut results = Vec::new();
    let largest = *settings.sizes.last().unwrap_or(&0);
    let mut stopped = false;
    for &n in &settings.sizes {
        let result = run_size(&settings, &client, n, n == largest).await;
        let failed = result.t_ready.is_none();
        results.push(result);
        write_report(&settings, &results, elapsed(), false)?;
        if failed {
            progress!("N={n} did not converge; larger sizes are skipped");
            stopped = true;
            break;
        }
    }
    write_report(&settings, &results, elapsed(), !stopped)?;
    let text = std::fs::read_to_string(settings.root.join("BENCHMARKS.md")).unwrap_or_default();
    let summary = text.split("## Results").nth(1).unwrap_or_default();
    println!("\n## Results{summary}");
    progress!("wrote BENCHMARKS.md and benchmarks/convergence.svg; total {:.0}s", elapsed());
    Ok(())
}

fn main() {
    START.get_or_init(Instant::now);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    if let Err(e) = runtime.block_on(run()) {
        progress!("ERROR: {e}");
        std::process::exit(1);
    }
}
