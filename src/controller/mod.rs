//! The controller: watches WebClusters and keeps their children as the
//! builder ([`crate::desired`]) describes them, then tells the truth in status.
//!
//! One reconcile ([`reconcile`], the driver) runs the pipeline's steps in order:
//!
//! 1. [`observe`]: the cluster's state as the caches (and a few GETs) show it;
//! 2. [`plan`]: the decisions (image, first rollout, migration, generated values);
//! 3. the builder turns the WebCluster and its plan into the desired children;
//! 4. [`apply`]: server-side apply of the children that changed, replica role labels;
//! 5. [`prune`]: deletion of children the spec no longer asks for;
//! 6. [`report`]: status conditions and figures, and Events on transitions.
//!
//! [`runtime`] is the infrastructure around the steps: watch caches, the
//! controller loop, leader election, the HTTP server, metrics and pacing.

mod apply;
pub mod error;
mod observe;
mod plan;
mod prune;
mod reconcile;
mod report;
pub mod runtime;

use std::time::Duration;

pub use error::Error;
pub use runtime::metrics::Metrics;
pub use runtime::{counting_client, run};

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// WebClusters reconciled at once.
    pub concurrency: u16,
    /// Time between two reconciles of an unchanged WebCluster.
    pub resync: Duration,
    /// A deleted child or a new or edited WebCluster reconciles at once; other
    /// triggers (a rollout, pods turning ready, the echo of a status write) wait
    /// until their WebCluster has been quiet this long, so a burst costs one reconcile.
    pub coalesce_window: Duration,
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
            coalesce_window: Duration::from_millis(250),
            status_interval: Duration::from_secs(5),
        }
    }
}
