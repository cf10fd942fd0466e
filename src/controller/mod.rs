//! The controller: watches WebClusters and keeps their children as the builder
//! describes them, then tells the truth in status.

mod apply;
mod caches;
mod digest;
pub mod error;
mod events;
pub mod leader;
pub mod metrics;
mod observe;
mod pacing;
mod reconcile;
mod rollout;
mod secrets;
pub mod server;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Future, StreamExt};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

pub use error::Error;
pub use metrics::Metrics;

use crate::api::WebCluster;
use crate::desired::meta::MANAGER;

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// WebClusters reconciled at once.
    pub concurrency: u16,
    /// Time between two reconciles of an unchanged WebCluster.
    pub resync: Duration,
    /// Quiet time after a trigger before a reconcile starts: a burst of child
    /// updates (a rollout, pods turning ready) costs one reconcile, not one each.
    pub debounce: Duration,
    /// Least time between two status writes of one WebCluster whose generation
    /// and readiness did not change (figures of pods turning ready one by one).
    pub status_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: None,
            concurrency: 8,
            resync: Duration::from_secs(600),
            debounce: Duration::from_millis(250),
            status_interval: Duration::from_secs(5),
        }
    }
}

/// Shared state of the reconcilers.
pub struct Context {
    client: Client,
    settings: Settings,
    caches: caches::ChildCaches,
    applier: apply::Applier,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    /// Consecutive failures per WebCluster, for the backoff.
    failures: Mutex<HashMap<pacing::ClusterKey, u32>>,
    status_pacer: pacing::StatusPacer,
}

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
    let (caches, triggers) = caches::ChildCaches::watch(&client, settings.namespace.as_deref());
    let clusters: Api<WebCluster> = match &settings.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let reporter = Reporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
    let context = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        applier: apply::Applier::new(client.clone(), metrics.clone()),
        client,
        caches,
        settings: settings.clone(),
        metrics,
        failures: Mutex::new(HashMap::new()),
        status_pacer: pacing::StatusPacer::new(settings.status_interval),
    });
    let (cluster_store, cluster_writer) = kube::runtime::reflector::store();
    let cluster_events = watcher(clusters, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(slim_cluster)
        .reflect(cluster_writer)
        .applied_objects();
    let controller = Controller::for_stream(cluster_events, cluster_store)
        .with_config(ControllerConfig::default().concurrency(settings.concurrency).debounce(settings.debounce))
        .reconcile_on(caches::merge(triggers))
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
    tracing::info!("controller stopped");
}
