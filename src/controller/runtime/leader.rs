//! Leader election on a coordination.k8s.io Lease: only the holder reconciles,
//! a follower takes over within the lease duration when the leader dies.

use std::sync::Arc;
use std::time::Duration;

use futures::Future;
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;

use super::metrics::Metrics;
use super::run;
use crate::controller::Settings;

/// Where the lease lives and who we are.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Name of the Lease.
    pub name: String,
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// This process's identity (the pod name).
    pub identity: String,
    /// Seconds a lease is valid without renewal.
    pub duration_seconds: u64,
}

/// Why leader election stopped the operator.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be read or written.
    #[error("leader election on Lease {namespace}/{name}: {source}")]
    Lease {
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
        /// What failed.
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
    /// Another process took the lease: stop so no two writers act at once.
    #[error("lost the leadership of Lease {0}; stopping so that only one operator writes")]
    Lost(String),
}

/// Waits for the lease, then runs the controller until `shutdown` resolves or
/// the lease is lost. Releases the lease on the way out.
pub async fn run_as_leader(
    client: Client,
    settings: Settings,
    lease: LeaseSettings,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), LeaderError> {
    let lease_error =
        |source| LeaderError::Lease { namespace: lease.namespace.clone(), name: lease.name.clone(), source };
    let grace = (lease.duration_seconds / 3).max(1);
    let manager = LeaseManagerBuilder::new(client.clone(), &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(&lease.identity)
        .with_duration(lease.duration_seconds)
        .with_grace(grace)
        .build()
        .await
        .map_err(lease_error)?;
    let (mut is_leader, watcher) = manager.watch().await;
    metrics.set_standby(true);
    let mut shutdown = Box::pin(shutdown);
    tracing::info!(lease = %lease.name, identity = %lease.identity, "waiting for the leadership");
    loop {
        if *is_leader.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = is_leader.changed() => if changed.is_err() { return Err(LeaderError::Lost(lease.name.clone())) },
            _ = &mut shutdown => return Ok(()),
        }
    }
    tracing::info!(lease = %lease.name, "became the leader");
    metrics.set_standby(false);
    metrics.leader.set(1);
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let mut leadership = is_leader.clone();
    let guard = tokio::spawn(async move {
        while leadership.changed().await.is_ok() {
            if !*leadership.borrow() {
                break;
            }
        }
        let _ = lost_tx.send(());
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<bool>();
    let stop = async move {
        let lost = tokio::select! {
            _ = &mut shutdown => false,
            _ = lost_rx => true,
        };
        let _ = stop_tx.send(lost);
    };
    run(client, settings, metrics.clone(), stop).await;
    metrics.leader.set(0);
    guard.abort();
    let lost = stop_rx.await.unwrap_or(false);
    // Closing the channel makes the watcher release the lease for a fast handover.
    drop(is_leader);
    let _ = tokio::time::timeout(Duration::from_secs(5), watcher).await;
    if lost { Err(LeaderError::Lost(lease.name)) } else { Ok(()) }
}
