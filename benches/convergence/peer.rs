//! Step 6: the peer operator, bitpoke's wordpress-operator (Go,
//! controller-runtime), at the same N on the same cluster: N `Wordpress`
//! objects, the nearest equivalent of the slim WebCluster it has (an app
//! Deployment of 2 replicas, its Service, an Ingress, a generated Secret and a
//! claim for shared files; it manages no database, cache or cron object).
//!
//! The Go module proxy refuses the peer as a module, so it is built once from a
//! pinned snapshot (`hack/peer/build-wordpress-operator.sh`); the bench takes
//! the binary and its CRD from paths ([`Settings`]) and says so when they are absent.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use crate::harness::http::{self, Scrape};
use crate::harness::process::{Process, free_port};
use crate::harness::wait::{SETUP_TIMEOUT, poll};
use crate::operator::reaction;
use crate::procstat::{peak_rss_kib, rss_kib};
use crate::results::PeerResult;
use crate::settings::{FIELD_MANAGER, Res, Settings};
use crate::watch::{Shared, wait_counted, watch_children};

/// The peer's commit (`hack/peer/build-wordpress-operator.sh`).
pub const PEER_COMMIT: &str = "9b763fd90a3995cfcbc9d1df83c9f964a1e3c703";

/// The objects the peer creates for one Wordpress `name` (checked by a run
/// against this cluster): (kind, name, API group and version).
fn children_of(name: &str) -> [(&'static str, String, &'static str); 5] {
    [
        ("Secret", format!("{name}-wp"), "v1"),
        ("Deployment", name.to_string(), "apps/v1"),
        ("Service", name.to_string(), "v1"),
        ("Ingress", name.to_string(), "networking.k8s.io/v1"),
        ("PersistentVolumeClaim", format!("{name}-media"), "v1"),
    ]
}

/// Wordpress `name` in `ns`: 2 replicas, a route, a media claim.
fn wordpress(name: &str, ns: &str) -> serde_json::Value {
    json!({
        "apiVersion": "wordpress.presslabs.org/v1alpha1",
        "kind": "Wordpress",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 2,
            "image": "registry.example/bench/app:1.0",
            "routes": [{"domain": format!("{name}.peer.test"), "path": "/"}],
            "media": {"persistentVolumeClaim": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            }},
        },
    })
}

fn wordpress_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("wordpress.presslabs.org", "v1alpha1", "Wordpress");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

/// Why the peer cannot run, when its binary or CRD is missing.
pub fn missing(settings: &Settings) -> Option<String> {
    let absent = |path: &Path| (!path.exists()).then(|| path.display().to_string());
    let paths: Vec<String> = [&settings.peer, &settings.peer_crd].into_iter().filter_map(|p| absent(p)).collect();
    (!paths.is_empty()).then(|| {
        format!(
            "{} missing: build it with `hack/peer/build-wordpress-operator.sh SRC_DIR` from a snapshot of \
             bitpoke/wordpress-operator at {PEER_COMMIT} (BENCHMARKS.md, Method), or set BENCH_PEER and BENCH_PEER_CRD",
            paths.join(" and ")
        )
    })
}

/// Installs the peer's CRD (server-side apply, as the operator's own).
pub async fn install_crd(settings: &Settings, client: &Client) -> Res<()> {
    let yaml = std::fs::read_to_string(&settings.peer_crd)
        .map_err(|e| format!("the peer's CRD {}: {e}", settings.peer_crd.display()))?;
    crate::harness::cluster::install_crd_yaml(client, &yaml).await.map_err(|e| format!("the peer's CRD: {e}"))
}

/// The peer binary watching `ns`, its metrics and health on loopback ports.
struct Peer {
    process: Process,
    metrics_port: u16,
}

impl Peer {
    async fn start(settings: &Settings, ns: &str, log: &Path) -> Res<Self> {
        let (metrics_port, health_port) = (free_port(), free_port());
        let mut command = Command::new(&settings.peer);
        command.env("WATCH_NAMESPACE", ns).args([
            format!("--metrics-addr=127.0.0.1:{metrics_port}"),
            format!("--healthz-addr=127.0.0.1:{health_port}"),
            "--leader-election=false".into(),
        ]);
        let _ = std::fs::remove_file(log);
        let process = Process::spawn("the peer operator", command, log.to_path_buf())?;
        poll("the peer's /readyz to answer 200", SETUP_TIMEOUT, || async move {
            http::status(health_port, "/readyz") == Some(200)
        })
        .await?;
        Ok(Self { process, metrics_port })
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// API requests of the peer's client: (reads = GET, writes = the rest).
    fn requests(&self) -> Res<(u64, u64)> {
        let scrape = Scrape::get(self.metrics_port)?;
        let all = scrape.sum("rest_client_requests_total", &[]);
        let reads = scrape.sum("rest_client_requests_total", &[("method", "GET")]);
        Ok((reads as u64, (all - reads) as u64))
    }

    fn alive(&mut self) -> Res<()> {
        match self.process.exited() {
            Some(status) => Err(format!("the peer exited: {status}:\n{}", self.process.log_tail())),
            None => Ok(()),
        }
    }
}

/// Requests between two readings.
fn since(now: (u64, u64), before: (u64, u64)) -> (u64, u64) {
    (now.0.saturating_sub(before.0), now.1.saturating_sub(before.1))
}

/// Step 6 at one N in namespace `ns`.
pub async fn peer_steps(settings: &Settings, client: &Client, n: usize, ns: &str) -> PeerResult {
    let mut result = PeerResult::default();
    if let Err(e) = run_peer(settings, client, n, ns, &mut result).await {
        progress!("N={n} step 6/6: peer FAILED: {e}");
        result.errors.push(e);
    }
    result
}

async fn run_peer(settings: &Settings, client: &Client, n: usize, ns: &str, result: &mut PeerResult) -> Res<()> {
    let names: Vec<String> = (0..n).map(|i| format!("wp-{i:05}")).collect();
    let expected: Vec<(String, String)> =
        names.iter().flat_map(|name| children_of(name).map(|(kind, child, _)| (kind.to_string(), child))).collect();
    result.footprint.children = expected.len();
    let kinds: BTreeMap<String, ApiResource> = children_of("x")
        .into_iter()
        .map(|(kind, _, api_version)| {
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            (kind.to_string(), ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind)))
        })
        .collect();
    let seen: Shared = Arc::default();
    let watches = watch_children(client, ns, &kinds, &seen);
    let log = settings.root.join(format!("target/bench-logs/peer-{n}.log"));
    let mut peer = Peer::start(settings, ns, &log).await?;
    progress!("N={n} step 6/6: peer pid {} started (log {})", peer.pid(), log.display());
    let outcome = measure(settings, client, &mut peer, ns, &names, &expected, &seen, result).await;
    result.footprint.rss_peak_kib = peak_rss_kib(peer.pid()).ok();
    let _ = peer.process.stop(Duration::from_secs(15));
    for task in watches {
        task.abort();
    }
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    settings: &Settings,
    client: &Client,
    peer: &mut Peer,
    ns: &str,
    names: &[String],
    expected: &[(String, String)],
    seen: &Shared,
    result: &mut PeerResult,
) -> Res<()> {
    let n = names.len();
    let before = peer.requests()?;
    let started = Instant::now();
    apply_wordpresses(settings, client, names, ns).await?;
    let count = |seen: &crate::watch::Seen| expected.iter().filter(|key| seen.objects.contains_key(*key)).count();
    let what = format!("N={n} step 6/6: peer children");
    let t_children =
        wait_counted(&what, expected.len(), seen, started, settings.timeout, count, || peer.alive()).await?;
    result.footprint.t_children = Some(t_children);
    result.footprint.record_converged(since(peer.requests()?, before), peer.pid())?;
    progress!("N={n} step 6/6: peer T_children = {t_children:.2}s; {}", result.footprint.converged_summary());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_start = peer.requests()?;
    tokio::time::sleep(settings.idle).await;
    peer.alive()?;
    result.footprint.idle_requests = Some(since(peer.requests()?, idle_start));
    result.footprint.rss_idle_kib = Some(rss_kib(peer.pid())?);
    progress!(
        "N={n} step 6/6: peer idle {}s: requests {:?} (reads, writes)",
        settings.idle.as_secs(),
        result.footprint.idle_requests.unwrap_or_default()
    );
    if settings.reactions > 0 {
        let timed = reaction(settings, client, ns, names, seen).await?;
        progress!("N={n} step 6/6: peer reaction {}", timed.summary());
        result.footprint.reaction = Some(timed);
    }
    peer.alive()
}

/// Server-side applies the Wordpress objects, a few in flight.
async fn apply_wordpresses(settings: &Settings, client: &Client, names: &[String], ns: &str) -> Res<()> {
    let api = wordpress_api(client, ns);
    let results = futures::stream::iter(names.iter().map(|name| {
        let api = api.clone();
        async move {
            let params = PatchParams::apply(FIELD_MANAGER).force();
            api.patch(name, &params, &Patch::Apply(&wordpress(name, ns)))
                .await
                .map(|_| ())
                .map_err(|e| format!("applying Wordpress {name}: {e}"))
        }
    }))
    .buffer_unordered(settings.concurrency)
    .collect::<Vec<_>>()
    .await;
    results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
}
