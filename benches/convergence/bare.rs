//! Step 1: a bare client server-side-applies the children the builder gives
//! the N WebClusters, as fast as it can (the baseline T_raw), and the control
//! plane makes their workloads ready (the baseline T_ready_raw).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DynamicObject;
use webcluster::controller::{Metrics, counting_client};

use crate::cluster::{create_namespace, delete_namespace};
use crate::harness::http::Scrape;
use crate::results::SizeResult;
use crate::settings::{Res, Settings};
use crate::watch::{Seen, Shared, wait_counted, watch_workloads};
use crate::workload::Desired;

async fn apply_with_retry(api: &Api<DynamicObject>, name: &str, object: &serde_json::Value) -> Res<()> {
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

/// Applies `objects` into `ns`; when it started, the seconds it took and the requests sent (reads, writes).
async fn raw_apply(settings: &Settings, objects: &Desired, ns: &str) -> Res<(Instant, f64, (u64, u64))> {
    let config = kube::Config::infer().await.map_err(|e| e.to_string())?;
    let metrics = Metrics::shared();
    let client = counting_client(config, metrics.clone()).map_err(|e| e.to_string())?;
    let apis: HashMap<&str, Api<DynamicObject>> = objects
        .iter()
        .map(|(kind, _, resource, _)| (kind.as_str(), Api::namespaced_with(client.clone(), ns, resource)))
        .collect();
    let started = Instant::now();
    let results = futures::stream::iter(objects.iter().map(|(kind, name, _, object)| {
        let api = &apis[kind.as_str()];
        async move { apply_with_retry(api, name, object).await }
    }))
    .buffer_unordered(settings.concurrency)
    .collect::<Vec<_>>()
    .await;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        return Err(e);
    }
    Ok((started, seconds, Scrape::parse(&metrics.encode())?.requests()))
}

/// Step 1: the bare client applies `objects` into `raw_ns`, which is deleted afterwards.
pub async fn raw_step(
    settings: &Settings,
    client: &Client,
    objects: &Desired,
    raw_ns: &str,
    result: &mut SizeResult,
) -> Res<()> {
    let n = result.n;
    create_namespace(client, raw_ns).await?;
    let seen: Shared = Arc::default();
    let watches = watch_workloads(client, raw_ns, &seen);
    let outcome = async {
        let (started, seconds, requests) = raw_apply(settings, objects, raw_ns).await?;
        result.t_raw = Some(seconds);
        result.raw_requests = Some(requests);
        progress!("N={n} step 1/6: T_raw = {seconds:.2}s ({:.0} objects/s)", objects.len() as f64 / seconds);
        wait_workloads_ready(settings, objects, &seen, started, result).await
    }
    .await;
    if let Err(e) = outcome {
        progress!("N={n} step 1/6: FAILED: {e}");
        result.errors.push(format!("bare client: {e}"));
    }
    for task in watches {
        task.abort();
    }
    progress!("N={n} step 1/6: deleting {raw_ns}");
    let seconds = delete_namespace(client, raw_ns).await?;
    progress!("N={n} step 1/6: {raw_ns} deleted in {seconds:.0}s");
    Ok(())
}

/// T_ready_raw: from the bare client's first request until every Deployment
/// and StatefulSet it applied has all its replicas ready.
async fn wait_workloads_ready(
    settings: &Settings,
    objects: &Desired,
    seen: &Shared,
    started: Instant,
    result: &mut SizeResult,
) -> Res<()> {
    let workloads = objects.iter().filter(|(kind, ..)| matches!(kind.as_str(), "Deployment" | "StatefulSet")).count();
    let what = format!("N={} step 1/6: workloads ready (T_ready_raw)", result.n);
    let count = |seen: &Seen| seen.ready_workloads.len();
    result.t_ready_raw = Some(wait_counted(&what, workloads, seen, started, settings.timeout, count, || Ok(())).await?);
    Ok(())
}
