//! `make bench`: how fast the operator converges N WebClusters compared with a bare
//! client applying the same objects, what it costs (memory, CPU, API requests) while
//! idle and during a forced resync, and how fast it repairs a deleted child.
//!
//! Needs a running cluster (KUBECONFIG) and the release binary (`BENCH_OPERATOR`,
//! default `target/release/webcluster-operator`); `make bench` provides both. Writes
//! `BENCHMARKS.md` and `benchmarks/convergence.svg`, or `BENCH_REPORT`/`BENCH_CHART` (after every size, so an
//! interrupted run still leaves what was measured). Environment: see [`settings`].
//! `BENCH_OPERATOR` may be another revision's build (a before/after comparison
//! runs this one bench against both): the bench installs that binary's CRD,
//! expects the children its `render` gives, and reads WebClusters untyped.
//!
//! One module per concern: [`settings`], [`cluster`] (preparing the cluster),
//! [`workload`] (the WebClusters and their children), [`bare`] (the bare client),
//! [`watch`] (what exists and is Ready), [`operator`] (the operator's steps),
//! [`peer`] (the peer operator's),
//! [`procstat`] (/proc figures), [`goals`], [`markdown`] and [`svg`] (the report).
//! Scrapes, processes, ports and the CRD come from the shared test harness.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Seconds since the bench started.
fn elapsed() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

macro_rules! progress {
    ($($arg:tt)*) => {{
        println!("[bench {:7.1}s] {}", $crate::elapsed(), format_args!($($arg)*));
        let _ = std::io::Write::flush(&mut std::io::stdout());
    }};
}

#[path = "../../tests/harness/mod.rs"]
mod harness;

mod bare;
mod cluster;
mod goals;
mod markdown;
mod operator;
mod peer;
mod procstat;
mod results;
mod settings;
mod svg;
mod watch;
mod workload;

use kube::Client;
use results::SizeResult;
use settings::{Res, SERVICE_CIDR, Settings};

/// Every step at one N: the bare client in `bench-raw-N`, the operator in
/// `bench-op-N`, then the peer operator in `bench-peer-N`.
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
    // The children of the operator under test, as its own `render` gives them.
    let scratch = settings.root.join(format!("target/bench-logs/webclusters-{n}.yaml"));
    let objects = workload::rendered(&settings.operator, &workload::clusters(n, &raw_ns)?, &scratch)?;
    result.footprint.children = objects.len();
    result.pods = workload::pods_of(&objects);
    let claims = 2 * n;
    let free = cluster::free_pod_capacity(client).await?;
    if free < result.pods {
        return Err(format!(
            "needs room for {} pods, the nodes take {free} more (start the cluster with a larger CLUSTER_NODE_PODS)",
            result.pods
        ));
    }

    progress!(
        "N={n} step 1/6: bare client applies {} children ({} per WebCluster) into {raw_ns}, {} in flight",
        objects.len(),
        objects.len() / n,
        settings.concurrency
    );
    cluster::ensure_pvs(settings, claims)?;
    if !settings.skip_raw {
        bare::raw_step(settings, client, &objects, &raw_ns, result).await?;
        cluster::ensure_pvs(settings, claims)?;
    }
    cluster::create_namespace(client, &op_ns).await?;
    let outcome = operator::operator_steps(settings, client, n, &op_ns, is_largest, result).await;
    let peer_runs = !settings.skip_peer && peer::missing(settings).is_none();
    if is_largest && !peer_runs && !settings.keep_cluster {
        // Nothing follows: the cluster's stop ends what the deletion would (N=2000: 32,000 objects).
        let requested = cluster::request_namespace_deletion(client, &op_ns).await;
        progress!("N={n}: deletion of {op_ns} requested; the cluster stops next");
        outcome?;
        return requested.map(|_| ());
    }
    progress!("N={n}: deleting {op_ns}");
    let deleted = cluster::delete_namespace(client, &op_ns).await;
    outcome?;
    let seconds = deleted?;
    progress!("N={n}: {op_ns} deleted in {seconds:.0}s");
    if !peer_runs {
        return Ok(());
    }
    let peer_ns = format!("bench-peer-{n}");
    progress!("N={n} step 6/6: the peer operator converges {n} Wordpress objects in {peer_ns}");
    cluster::ensure_pvs(settings, n)?;
    cluster::create_namespace(client, &peer_ns).await?;
    result.peer = Some(peer::peer_steps(settings, client, n, &peer_ns).await);
    let seconds = cluster::delete_namespace(client, &peer_ns).await?;
    progress!("N={n}: {peer_ns} deleted in {seconds:.0}s");
    Ok(())
}

async fn run() -> Res<()> {
    let settings = Settings::from_env()?;
    let client = cluster::client().await?;
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
    // The CRD of the operator under test (another build's, with BENCH_OPERATOR).
    let crd = std::process::Command::new(&settings.operator).arg("crd").output().map_err(|e| e.to_string())?;
    harness::cluster::install_crd_yaml(&client, &String::from_utf8_lossy(&crd.stdout)).await?;
    cluster::ensure_service_range(&client).await?;
    progress!("CRD installed; ServiceCIDR {SERVICE_CIDR} added for ClusterIPs");
    match peer::missing(&settings) {
        _ if settings.skip_peer => progress!("the peer operator is skipped (BENCH_PEER=none)"),
        Some(why) => progress!("the peer operator does not run: {why}"),
        None => {
            peer::install_crd(&settings, &client).await?;
            progress!("the peer operator {} and its CRD are installed", settings.peer.display());
        }
    }
    let mut results = Vec::new();
    let largest = *settings.sizes.last().unwrap_or(&0);
    let mut stopped = false;
    for &n in &settings.sizes {
        let result = run_size(&settings, &client, n, n == largest).await;
        let failed = result.t_ready.is_none();
        results.push(result);
        markdown::write_report(&settings, &results, elapsed(), false)?;
        if failed {
            progress!("N={n} did not converge; larger sizes are skipped");
            stopped = true;
            break;
        }
    }
    markdown::write_report(&settings, &results, elapsed(), !stopped)?;
    let text = std::fs::read_to_string(&settings.report).unwrap_or_default();
    let summary = text.split("## Results").nth(1).unwrap_or_default();
    println!("\n## Results{summary}");
    progress!("wrote {} and {}; total {:.0}s", settings.report.display(), settings.chart.display(), elapsed());
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
