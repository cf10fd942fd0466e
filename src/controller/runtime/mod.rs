//! Infrastructure around the pipeline's steps: the watch caches, the
//! controller loop that calls the driver, leader election, the HTTP server,
//! metrics and the pacing of status writes.

pub(crate) mod cache;
pub(crate) mod coalesce;
pub mod leader;
pub(crate) mod memory;
pub mod metrics;
pub(crate) mod pacing;
pub mod server;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{Future, StreamExt};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use super::Settings;
use super::reconcile::{self, Context};
use crate::api::WebCluster;
use cache::ChildCaches;
use coalesce::Urgency;
use metrics::Metrics;

/// A client that counts every request it sends in `metrics`.
pub fn counting_client(config: kube::Config, metrics: Arc<Metrics>) -> Result<Client, kube::Error> {
    let builder = kube::client::ClientBuilder::try_from(config)?;
    let layer = tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
        metrics.count_request(request.method());
        tracing::trace!(target: "webcluster::requests", method = %request.method(), path = request.uri().path(), "request");
        request
    });
    Ok(builder.with_layer(&layer).build())
}

/// Drops what the controller never reads from a cached WebCluster. The field
/// managers' trees (and a client-side apply's copy of the spec) were most of
/// each cached object: about 14 KiB per WebCluster in a heap profile at N=1000.
fn slim_cluster(cluster: &mut WebCluster) {
    cluster.managed_fields_mut().clear();
    cluster.annotations_mut().remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// Runs the controller until `shutdown` resolves; the reconcile in flight finishes first.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (caches, triggers) = ChildCaches::watch(&client, settings.namespace.as_deref());
    let clusters: Api<WebCluster> = match &settings.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let context = Arc::new(Context::new(client, settings.clone(), caches.clone(), metrics.clone()));
    let (cluster_store, cluster_writer) = kube::runtime::reflector::store();
    // Set at the WebCluster watch's first full list. (Not `Store::wait_until_ready`:
    // its one-shot channel wakes only one waiter, and the controller is that one.)
    let clusters_listed = Arc::new(AtomicBool::new(false));
    let synced = tokio::spawn(report_synced(clusters_listed.clone(), caches, metrics.clone()));
    let forgetting = context.clone();
    let mut listing = None;
    let cluster_events = watcher(clusters, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(slim_cluster)
        .reflect(cluster_writer)
        .inspect(move |event| {
            if matches!(event, Ok(watcher::Event::InitDone)) {
                clusters_listed.store(true, Ordering::Release);
            }
            forget_deleted(&forgetting, &mut listing, event);
        })
        .applied_objects()
        .filter_map(|cluster| futures::future::ready(cluster.ok().map(|cluster| cluster_trigger(&cluster))));
    // The WebClusters' own events and their children's pass one coalescer, so
    // the echo of a reconcile's writes folds into one trigger with the rest.
    let mut all_triggers = triggers;
    all_triggers.push(Box::pin(cluster_events));
    let coalesced = coalesce::coalesce(cache::merge(all_triggers), settings.coalesce_window);
    // The controller's own stream stays empty: every trigger comes coalesced.
    let controller = Controller::for_stream(futures::stream::pending(), cluster_store)
        .with_config(ControllerConfig::default().concurrency(settings.concurrency))
        .reconcile_on(coalesced)
        .graceful_shutdown_on(shutdown);
    tracing::info!("starting the controller");
    controller
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile did not finish");
            }
        })
        .await;
    synced.abort();
    metrics.caches_synced.set(0);
    tracing::info!("controller stopped");
}

/// A WebCluster event: urgent while its spec is newer than its status says was
/// reconciled (new or edited), progress otherwise (the echo of a status write).
fn cluster_trigger(cluster: &WebCluster) -> (ObjectRef<WebCluster>, Urgency) {
    let reconciled = cluster.status.as_ref().and_then(|status| status.observed_generation);
    let urgency =
        if reconciled.is_some() && reconciled == cluster.metadata.generation { Urgency::Settle } else { Urgency::Now };
    (ObjectRef::from_obj(cluster), urgency)
}

/// Sets the `caches_synced` gauge (and so `/readyz`) once the WebCluster watch
/// and every child watch hold their first full list. A watch that fails (a
/// missing permission) keeps it at 0.
async fn report_synced(clusters_listed: Arc<AtomicBool>, caches: ChildCaches, metrics: Arc<Metrics>) {
    while !(clusters_listed.load(Ordering::Acquire) && caches.ready()) {
        tokio::time::sleep(SYNC_POLL).await;
    }
    tracing::info!("watch caches synced");
    metrics.caches_synced.set(1);
}

/// How often `report_synced` looks at the caches until they are synced.
const SYNC_POLL: Duration = Duration::from_millis(200);

/// Makes the steps forget a WebCluster its watch reports deleted, and every
/// WebCluster a relist no longer returns (deleted while the watch was down).
fn forget_deleted(
    context: &Context,
    listing: &mut Option<HashSet<String>>,
    event: &Result<watcher::Event<WebCluster>, watcher::Error>,
) {
    match event {
        Ok(watcher::Event::Delete(cluster)) => context.forget(cluster),
        Ok(watcher::Event::Init) => *listing = Some(HashSet::new()),
        Ok(watcher::Event::InitApply(cluster)) => {
            if let (Some(live), Some(uid)) = (listing.as_mut(), cluster.uid()) {
                live.insert(uid);
            }
        }
        Ok(watcher::Event::InitDone) => {
            if let Some(live) = listing.take() {
                context.retain(&live);
            }
        }
        _ => {}
    }
}
