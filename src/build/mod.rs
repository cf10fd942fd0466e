//! The desired-state builder: a pure, deterministic function from a WebCluster
//! (plus a few observed facts) to every child object. The controller applies its
//! output; `render` prints it. Nothing here talks to the API server.

mod app;
mod cache;
mod child;
pub mod credentials;
mod database;
mod http_cache;
mod jobs;
pub mod meta;
pub mod names;
mod network;
mod pod;
mod storage;
mod wiring;

use std::collections::BTreeMap;

pub use app::HOLD_ANNOTATION;
pub use cache::backend_name as cache_backend_name;
pub use child::Child;
pub use database::engine_name;
pub use database::{ROLE_LABEL, ROLE_REPLICA, primary_pod};

use crate::api::WebCluster;

/// Facts the builder cannot derive from the spec alone. The controller reads
/// them from the cluster; `render` uses [`Observed::offline`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// Values of the generated Secret (passwords, shared secrets). Created once by
    /// the controller and never regenerated; keys listed by
    /// [`credentials::generated_keys`].
    pub generated: BTreeMap<String, String>,
    /// DSNs read from the Secrets `spec.database.external` points at.
    pub external_db: Option<ExternalUrls>,
    /// Image the app Deployment (and the CronJobs) run.
    pub serving_image: String,
    /// The first rollout waits for the database or the first migration: the
    /// Deployment exists but runs no pods until then.
    pub hold_first_rollout: bool,
    /// A migration Job is running: CronJobs are suspended meanwhile.
    pub migration_running: bool,
    /// The migration Job of `spec.app.image` belongs in the desired state (the
    /// controller holds it back until the database is ready).
    pub start_migration: bool,
}

/// The external database's DSNs.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalUrls {
    /// Read-write DSN.
    pub write: String,
    /// Read-only DSN (the write DSN when none was given).
    pub read: String,
}

impl Observed {
    /// What `render` assumes without a cluster: the spec's image serves, no
    /// migration runs, generated values are visible placeholders.
    pub fn offline(cluster: &WebCluster) -> Self {
        let generated = credentials::generated_keys(&cluster.spec)
            .into_iter()
            .map(|key| {
                let placeholder = format!("generated-{}", key.replace(['.', '_'], "-").to_lowercase());
                (key, placeholder)
            })
            .collect();
        let external_db = cluster.spec.database.as_ref().and_then(|db| db.external.as_ref()).map(|ext| {
            let write = format!("from-secret://{}/{}", ext.write_url_secret_ref.name, ext.write_url_secret_ref.key);
            let read = ext
                .read_url_secret_ref
                .as_ref()
                .map(|r| format!("from-secret://{}/{}", r.name, r.key))
                .unwrap_or_else(|| write.clone());
            ExternalUrls { write, read }
        });
        Self {
            generated,
            external_db,
            serving_image: cluster.spec.app.image.clone(),
            hold_first_rollout: false,
            migration_running: false,
            start_migration: true,
        }
    }
}

/// Why the builder could not produce the objects.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BuildError {
    /// The WebCluster has no name or namespace yet.
    #[error("the WebCluster has no {0}; set metadata.{0}")]
    MissingMetadata(&'static str),
}

/// Every cache node a client must know, as host:port (empty without a cache).
pub fn cache_hosts(cluster: &WebCluster) -> Vec<String> {
    match (meta::Context::new(cluster), &cluster.spec.cache) {
        (Ok(ctx), Some(spec)) => cache::hosts(&ctx, spec),
        _ => Vec::new(),
    }
}

/// Every child object of `cluster`, in a stable order (dependencies first).
pub fn build(cluster: &WebCluster, observed: &Observed) -> Result<Vec<Child>, BuildError> {
    let ctx = meta::Context::new(cluster)?;
    let mut children = Vec::new();
    children.extend(credentials::secret(&ctx, observed));
    children.extend(storage::objects(&ctx));
    children.extend(cache::objects(&ctx));
    children.extend(database::objects(&ctx));
    children.extend(app::objects(&ctx, observed));
    children.extend(jobs::objects(&ctx, observed));
    children.extend(http_cache::objects(&ctx));
    children.extend(network::objects(&ctx));
    Ok(children)
}
