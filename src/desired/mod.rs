//! The desired state: a pure, deterministic function from a WebCluster and its
//! [`Plan`] to every child object. The controller applies its output; `render`
//! prints it. Nothing here talks to the API server.

mod app;
mod cache;
mod child;
pub mod credentials;
mod database;
#[cfg(test)]
mod defaults_tests;
pub mod gateway;
mod http_cache;
mod jobs;
pub mod meta;
pub mod names;
mod network;
mod pod;
mod storage;
mod wiring;
mod workload;

use std::collections::BTreeMap;

pub use app::HOLD_ANNOTATION;
pub use cache::backend_name as cache_backend_name;
pub use child::Child;
pub use database::{PROMOTED_READY_WITHIN, ROLE_LABEL, ROLE_PRIMARY, ROLE_REPLICA};
pub use database::{engine_name, port as database_port};

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::api::WebCluster;
pub use meta::Parent;

/// The controller's decisions for one reconcile, and the values it read, that
/// the builder cannot derive from the spec alone. The controller's plan step
/// computes it from what it observed; `render` uses [`Plan::offline`].
/// Its `Debug` shows the generated keys, never their values.
#[derive(Clone, Default, PartialEq)]
pub struct Plan {
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
    /// Generated values were lost while data written with them remains: the
    /// builder emits neither generated Secret, so no new password reaches a pod.
    pub withhold_credentials: bool,
    /// The identity of the managed database's data (`status.database.identity`):
    /// pod 0 with an empty data directory refuses to initialise while it is known.
    pub database_identity: Option<String>,
    /// The database pod the operator elected primary (`None` before any
    /// election: pod 0 of the first rollout).
    pub database_primary: Option<String>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("generated", &credentials::Redacted(&self.generated))
            .field("external_db", &self.external_db)
            .field("serving_image", &self.serving_image)
            .field("hold_first_rollout", &self.hold_first_rollout)
            .field("migration_running", &self.migration_running)
            .field("start_migration", &self.start_migration)
            .field("database_identity", &self.database_identity)
            .field("database_primary", &self.database_primary)
            .field("withhold_credentials", &self.withhold_credentials)
            .finish()
    }
}

/// The external database's DSNs (their `Debug` hides them: they hold passwords).
#[derive(Clone, PartialEq)]
pub struct ExternalUrls {
    /// Read-write DSN.
    pub write: String,
    /// Read-only DSN (the write DSN when none was given).
    pub read: String,
    /// Those of `external.databases`, by name (their own `databases` empty).
    pub databases: BTreeMap<String, ExternalUrls>,
}

impl ExternalUrls {
    /// Every external database's DSNs, all empty: what the Secret holds while they are not read.
    pub fn empty(external: &crate::api::ExternalDatabase) -> Self {
        Self::from_refs(external, |_| String::new())
    }

    /// Every Secret key the external databases' DSNs are read from.
    pub fn references(external: &crate::api::ExternalDatabase) -> Vec<&crate::api::SecretKeyRef> {
        let extras =
            external.databases.iter().flat_map(|d| [Some(&d.write_url_secret_ref), d.read_url_secret_ref.as_ref()]);
        [Some(&external.write_url_secret_ref), external.read_url_secret_ref.as_ref()]
            .into_iter()
            .chain(extras)
            .flatten()
            .collect()
    }

    /// Every external database's DSNs, each read by `read` from its Secret reference;
    /// a database without a read reference reads through its write DSN.
    pub fn from_refs(
        external: &crate::api::ExternalDatabase,
        mut read: impl FnMut(&crate::api::SecretKeyRef) -> String,
    ) -> Self {
        let mut pair = |write: &crate::api::SecretKeyRef, read_ref: Option<&crate::api::SecretKeyRef>| {
            let write = read(write);
            let read = read_ref.map(&mut read).unwrap_or_else(|| write.clone());
            Self { write, read, databases: BTreeMap::new() }
        };
        let mut urls = pair(&external.write_url_secret_ref, external.read_url_secret_ref.as_ref());
        for extra in &external.databases {
            let extra_urls = pair(&extra.write_url_secret_ref, extra.read_url_secret_ref.as_ref());
            urls.databases.insert(extra.name.clone(), extra_urls);
        }
        urls
    }
}

impl std::fmt::Debug for ExternalUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExternalUrls { write: <redacted>, read: <redacted>")?;
        if !self.databases.is_empty() {
            write!(f, ", databases: {:?}", self.databases.keys().collect::<Vec<_>>())?;
        }
        f.write_str(" }")
    }
}

impl Plan {
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
        let external_db = cluster
            .spec
            .database
            .as_ref()
            .and_then(|db| db.external.as_ref())
            .map(|ext| ExternalUrls::from_refs(ext, |r| format!("from-secret://{}/{}", r.name, r.key)));
        Self {
            generated,
            external_db,
            serving_image: cluster.spec.app.image.clone(),
            hold_first_rollout: false,
            migration_running: false,
            start_migration: true,
            withhold_credentials: false,
            database_identity: None,
            database_primary: None,
        }
    }
}

/// Why the builder could not produce the objects.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BuildError {
    /// The WebCluster has no name or namespace yet.
    #[error("the WebCluster has no {0}; set metadata.{0}")]
    MissingMetadata(&'static str),
    /// A memory size the API server should have refused.
    #[error("{0}: {hint}", hint = crate::api::formats::memory_range_hint())]
    MemoryOutOfRange(&'static str),
}

/// Bytes of a memory size, checked before anything is built (so the
/// builders' fallback never serves).
fn memory_bytes(memory: &Quantity) -> u64 {
    crate::api::formats::memory_bytes(&memory.0).unwrap_or(crate::api::formats::MIN_MEMORY.1)
}

fn check_memory(cluster: &WebCluster) -> Result<(), BuildError> {
    let spec = &cluster.spec;
    let sizes = [
        ("spec.cache.memory", spec.cache.as_ref().map(|c| &c.memory)),
        ("spec.httpCache.memory", spec.http_cache.as_ref().map(|h| &h.memory)),
    ];
    match sizes.into_iter().find(|(_, m)| m.is_some_and(|m| crate::api::formats::memory_bytes(&m.0).is_none())) {
        Some((path, _)) => Err(BuildError::MemoryOutOfRange(path)),
        None => Ok(()),
    }
}

/// Every cache node a client must know, as host:port (empty without a cache).
pub fn cache_hosts(cluster: &WebCluster) -> Vec<String> {
    match (Parent::new(cluster), &cluster.spec.cache) {
        (Ok(parent), Some(spec)) => cache::hosts(&parent, spec),
        _ => Vec::new(),
    }
}

/// Every child object of `cluster`, in a stable order (dependencies first).
pub fn children(cluster: &WebCluster, plan: &Plan) -> Result<Vec<Child>, BuildError> {
    let parent = Parent::new(cluster)?;
    check_memory(cluster)?;
    let mut children = Vec::new();
    children.extend(credentials::secrets(&parent, plan));
    children.extend(storage::objects(&parent));
    children.extend(cache::objects(&parent));
    children.extend(database::objects(&parent, plan));
    children.extend(app::objects(&parent, plan));
    children.extend(jobs::objects(&parent, plan));
    children.extend(http_cache::objects(&parent));
    children.extend(network::objects(&parent));
    Ok(children)
}
