//! Steps 2 to 5: the operator as a child process converges the N WebClusters
//! (T_children, T_ready, footprint), idles, resyncs, and repairs deleted
//! children (the timing of step 5 serves the peer too).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};
use kube::{Client, ResourceExt};
use serde_json::json;
use webcluster::api::WebCluster;
use webcluster::desired::names;

use crate::harness::http::Scrape;
use crate::harness::process::OperatorProcess;
use crate::harness::wait::{SETUP_TIMEOUT, poll};
use crate::procstat::{cpu_seconds, peak_rss_kib, rss_kib};
use crate::results::{Reaction, SizeResult};
use crate::settings::{FIELD_MANAGER, RESYNC_ANNOTATION, Res, Settings};
use crate::watch::{Shared, watch_children};
use crate::workload::{clusters, manifest, rendered};

/// The release binary watching one namespace.
struct Operator {
    process: OperatorProcess,
}

impl Operator {
    fn start(settings: &Settings, ns: &str, log: &Path) -> Res<Self> {
        let (mut command, port) = OperatorProcess::command(&settings.operator, ns);
        command.args(["--resync-seconds", "3600", "--concurrency", &settings.concurrency.to_string()]);
        let _ = std::fs::remove_file(log);
        let process = OperatorProcess::spawn("the operator", command, port, log.to_path_buf())
            .map_err(|e| format!("{e} (run `cargo build --release`)"))?;
        Ok(Self { process })
    }

    fn pid(&self) -> u32 {
        self.process.process.pid()
    }

    fn scrape(&self) -> Res<Scrape> {
        self.process.scrape()
    }

    /// Waits until it serves and its caches synced (/readyz).
    async fn wait_serving(&mut self) -> Res<()> {
        self.process.wait_serving(Duration::from_secs(30)).await?;
        let port = self.process.port;
        poll("the operator's /readyz to answer 200", SETUP_TIMEOUT, || async move {
            crate::harness::http::status(port, "/readyz") == Some(200)
        })
        .await
    }

    fn alive(&mut self) -> Res<()> {
        match self.process.process.exited() {
            Some(status) => Err(format!("the operator exited: {status}")),
            None => Ok(()),
        }
    }

    fn cpu_seconds(&self) -> Res<f64> {
        cpu_seconds(self.pid())
    }

    fn peak_rss_kib(&self) -> Res<u64> {
        peak_rss_kib(self.pid())
    }

    fn stop(mut self) {
        if !self.process.process.stop(Duration::from_secs(15)) {
            progress!("  the operator did not stop on SIGTERM within 15 s; killed it");
        }
    }
}

/// WebClusters as untyped objects: the operator under test may be another
/// build, whose CRD and status this checkout's types need not read.
fn untyped_clusters(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<WebCluster>(&()))
}

async fn apply_clusters(client: &Client, clusters: &[WebCluster], ns: &str, concurrency: usize) -> Res<()> {
    let api = untyped_clusters(client, ns);
    let results = futures::stream::iter(clusters.iter().map(|wc| {
        let api = api.clone();
        async move {
            let name = wc.name_any();
            let object: serde_json::Value =
                serde_saphyr::from_str(&manifest(&name, ns)).map_err(|e| format!("WebCluster {name}: {e}"))?;
            let params = PatchParams::apply(FIELD_MANAGER).force();
            api.patch(&name, &params, &Patch::Apply(&object))
                .await
                .map(|_| ())
                .map_err(|e| format!("applying WebCluster {name}: {e}"))
        }
    }))
    .buffer_unordered(concurrency)
    .collect::<Vec<_>>()
    .await;
    results.into_iter().find(Result::is_err).map_or(Ok(()), |e| e.map(|_| ()))
}

/// Steps 2 to 5 at one N in namespace `ns`.
pub async fn operator_steps(
    settings: &Settings,
    client: &Client,
    n: usize,
    ns: &str,
    is_largest: bool,
    result: &mut SizeResult,
) -> Res<()> {
    let clusters = clusters(n, ns)?;
    // The children of the operator under test, as its own `render` gives them.
    let scratch = settings.root.join(format!("target/bench-logs/webclusters-{n}.yaml"));
    let rendered = rendered(&settings.operator, &clusters, &scratch)?;
    let expected: Vec<(String, String)> =
        rendered.iter().map(|(kind, name, ..)| (kind.clone(), name.clone())).collect();
    let kinds: BTreeMap<String, ApiResource> =
        rendered.into_iter().map(|(kind, _, resource, _)| (kind, resource)).collect();
    let seen: Shared = Arc::default();
    let watches = watch_children(client, ns, &kinds, &seen);
    let log = settings.root.join(format!("target/bench-logs/operator-{n}.log"));
    let mut operator = Operator::start(settings, ns, &log)?;
    progress!("N={n} step 2/6: operator pid {} started (log {})", operator.pid(), log.display());
    let outcome = run_operator(settings, client, &mut operator, &clusters, &expected, &seen, is_largest, result).await;
    if let Ok(rss) = operator.peak_rss_kib() {
        result.footprint.rss_peak_kib = Some(rss);
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
    let before = operator.scrape()?;

    let started = Instant::now();
    apply_clusters(client, clusters, &ns, settings.concurrency).await?;
    progress!(
        "N={n} step 2/6: {n} WebClusters applied in {:.2}s; waiting for {} children and Ready",
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
        if result.footprint.t_children.is_none() && present == expected.len() {
            result.footprint.t_children = Some(now);
            progress!("N={n} step 2/6: T_children = {now:.2}s (every one of {} children exists)", expected.len());
        }
        if ready == n {
            result.t_ready = Some(now);
            progress!("N={n} step 2/6: T_ready = {now:.2}s (every WebCluster Ready=True)");
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
            progress!("N={n} step 2/6: {now:.0}s: children {present}/{}, Ready {ready}/{n}", expected.len());
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let converged = operator.scrape()?;
    result.footprint.record_converged(converged.requests_since(&before), operator.pid())?;
    progress!("N={n} step 3/6: footprint at convergence: {}", result.footprint.converged_summary());

    // Step 3+4: idle, 5 s after T_ready (the method in BENCHMARKS.md).
    tokio::time::sleep(Duration::from_secs(5)).await;
    progress!(
        "N={n} step 4/6: idle for {}s (CPU over the first {}s)",
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
    result.footprint.rss_idle_kib = Some(rss_kib(operator.pid())?);
    result.footprint.idle_requests = Some(idle_end.requests_since(&idle_start));
    result.idle_reconciles = Some(idle_end.reconciles() - idle_start.reconciles());
    progress!(
        "N={n} step 4/6: idle: {:?} (reads, writes), {} reconciles, CPU {:.2}s over {}s",
        result.footprint.idle_requests.unwrap_or_default(),
        result.idle_reconciles.unwrap_or(0.0),
        result.cpu_idle.unwrap_or(0.0),
        settings.cpu_idle.as_secs()
    );

    resync(settings, client, operator, clusters, &ns, result).await?;

    // Step 5: reaction to a deleted child.
    if settings.reactions > 0 {
        progress!(
            "N={n} step 5/6: deleting a random WebCluster's app Service {} times{}",
            settings.reactions,
            if is_largest { "" } else { " (not the largest N)" }
        );
        let services: Vec<String> = clusters.iter().map(|wc| names::app(&wc.name_any())).collect();
        result.footprint.reaction = Some(reaction(settings, client, &ns, &services, seen).await?);
        if let Some(r) = &result.footprint.reaction {
            progress!("N={n} step 5/6: reaction {}", r.summary());
        }
    }
    operator.alive()
}

/// Step 4: one forced resync of all N (an annotation changes on each).
async fn resync(
    settings: &Settings,
    client: &Client,
    operator: &Operator,
    clusters: &[WebCluster],
    ns: &str,
    result: &mut SizeResult,
) -> Res<()> {
    let n = clusters.len();
    let before = operator.scrape()?;
    let stamp = format!(
        "{:.3}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64()
    );
    let api = untyped_clusters(client, ns);
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
        "N={n} step 4/6: resync of {n} took {:.2}s; requests {:?} (reads, writes), {} reconciles",
        result.resync_seconds.unwrap_or(0.0),
        result.resync_requests.unwrap_or_default(),
        after.reconciles() - before.reconciles()
    );
    Ok(())
}

/// Step 5: deletes a random one of the Services `names` and times its replacement.
pub async fn reaction(
    settings: &Settings,
    client: &Client,
    ns: &str,
    names: &[String],
    seen: &Shared,
) -> Res<Reaction> {
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), ns);
    let mut out = Reaction { samples: Vec::new(), failures: 0 };
    for _ in 0..settings.reactions {
        let name = names[rand::random_range(0..names.len())].clone();
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
