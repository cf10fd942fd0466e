//! The apply step: server-side apply of the desired children, skipping those
//! that still match what was applied last; [`roles`] labels the database
//! pods, [`failover`] moves the primary role through the pods' [`agent`].

pub mod agent;
pub mod failover;
pub mod failovers;
pub mod roles;
pub mod unserved;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::core::DynamicObject;
use kube::{Api, Client};

use super::error::ApiError;
use super::runtime::cache::ChildCaches;
use super::runtime::cache::digest::{Digest, hash_of};
use super::runtime::memory::ClusterMemory;
use super::runtime::metrics::Metrics;
use crate::desired::Child;
use crate::desired::meta::MANAGER;

/// What one apply pass did.
#[derive(Debug, Default)]
pub struct ApplyOutcome {
    /// Children written.
    pub applied: usize,
    /// Of those, children the cache did not show yet (created).
    pub created: usize,
    /// Children that still matched and were left alone.
    pub unchanged: usize,
    /// Children the API server did not take (refused, forbidden or failed), by kind and name.
    pub failures: Vec<ApiError>,
}

/// What was applied to one child, and the child's version and generation right after.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Applied {
    hash: u64,
    version: u64,
    /// The generation the API server gave the applied spec: the child's
    /// status describes that spec once its observedGeneration reaches it.
    generation: Option<i64>,
}

/// A child of one WebCluster: kind and name.
type ChildKey = (&'static str, String);

/// Applies in flight at once for one WebCluster.
const APPLY_CONCURRENCY: usize = 4;

/// What happened to one child.
enum ChildResult {
    Unchanged,
    Applied { created: bool },
}

/// Applies children and remembers what it applied, so an unchanged child
/// costs no request.
pub struct Applier {
    client: Client,
    metrics: Arc<Metrics>,
    /// Per WebCluster uid: what was applied to each of its desired children.
    applied: ClusterMemory<HashMap<ChildKey, Applied>>,
}

impl Applier {
    /// An applier with an empty memory.
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        Self { client, metrics, applied: ClusterMemory::default() }
    }

    /// Forgets the WebCluster `uid` (deleted).
    pub fn forget(&self, uid: &str) {
        self.applied.forget(uid);
    }

    /// Forgets every WebCluster not in `live`.
    pub fn retain(&self, live: &HashSet<String>) {
        self.applied.retain(live);
    }

    /// The generation the last apply of child `kind`/`name` of the WebCluster
    /// `uid` returned. The watch caches may still show an older one.
    pub fn generation(&self, uid: &str, kind: &'static str, name: &str) -> Option<i64> {
        self.applied.read(uid, |memory| memory.get(&(kind, name.to_string())).and_then(|a| a.generation)).flatten()
    }

    /// Server-side applies every child that differs from what is cached, a few
    /// at a time (children of one WebCluster do not depend on each other at the
    /// API level). Jobs are created once and never changed (their pod template is immutable).
    /// A child the API server does not take leaves the others applied.
    /// Afterwards the memory of the WebCluster `uid` holds its desired children only.
    pub async fn apply(&self, caches: &ChildCaches, children: &[Child], namespace: &str, uid: &str) -> ApplyOutcome {
        // Collected first: a closure inside the stream trips the compiler's Send inference.
        let pending: Vec<_> = children.iter().map(|child| self.apply_one(caches, child, namespace, uid)).collect();
        let results: Vec<Result<ChildResult, ApiError>> =
            futures::stream::iter(pending).buffer_unordered(APPLY_CONCURRENCY).collect().await;
        let mut outcome = ApplyOutcome::default();
        for result in results {
            match result {
                Ok(ChildResult::Unchanged) => outcome.unchanged += 1,
                Ok(ChildResult::Applied { created }) => {
                    outcome.applied += 1;
                    outcome.created += usize::from(created);
                }
                Err(failure) => outcome.failures.push(failure),
            }
        }
        outcome.failures.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
        self.applied.with(uid, |memory| keep_desired(memory, children));
        outcome
    }

    async fn apply_one(
        &self,
        caches: &ChildCaches,
        child: &Child,
        namespace: &str,
        uid: &str,
    ) -> Result<ChildResult, ApiError> {
        let (kind, name) = (child.kind(), child.name().to_string());
        let key = (kind, name.clone());
        let desired = child.to_json();
        let hash = hash_of(&desired.to_string());
        let last = self.applied.read(uid, |memory| memory.get(&key).copied()).flatten();
        // Some(still matches what was applied last), None when the child is not cached.
        let current = caches.with_digest(kind, namespace, &name, |digest| match last {
            _ if matches!(child, Child::Job(_)) => true,
            Some(last) => last.hash == hash && last.version == digest.version && digest.holds(child.meta()),
            None => false,
        });
        let unchanged = current == Some(true);
        if unchanged {
            return Ok(ChildResult::Unchanged);
        }
        let params = PatchParams::apply(MANAGER).force();
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &child.api_resource());
        match api.patch(&name, &params, &Patch::Apply(&desired)).await {
            Ok(object) => {
                let applied = Applied {
                    hash,
                    version: Digest::of(&object.metadata).version,
                    generation: object.metadata.generation,
                };
                self.applied.with(uid, |memory| memory.insert(key, applied));
                self.metrics.applied(kind);
                Ok(ChildResult::Applied { created: current.is_none() })
            }
            Err(error) => Err(ApiError::new("apply", kind, namespace, &name, error)),
        }
    }
}

/// Forgets what was applied to children no longer desired (an old image's
/// migration Job, a removed cron task): they are pruned, never applied again.
fn keep_desired(memory: &mut HashMap<ChildKey, Applied>, children: &[Child]) {
    let desired: HashSet<(&str, &str)> = children.iter().map(|c| (c.kind(), c.name())).collect();
    memory.retain(|(kind, name), _| desired.contains(&(*kind, name.as_str())));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WebCluster;
    use crate::desired::{Plan, children};

    fn children_of(image: &str) -> Vec<Child> {
        let spec = format!("app: {{image: '{image}', migration: {{command: [m]}}}}");
        let mut cluster = WebCluster::new("shop", serde_saphyr::from_str(&spec).unwrap_or_else(|e| panic!("{e}")));
        cluster.metadata.namespace = Some("ns".into());
        children(&cluster, &Plan::offline(&cluster)).unwrap_or_default()
    }

    #[test]
    fn the_memory_holds_only_desired_children() {
        let mut memory = HashMap::new();
        let first = children_of("shop:1");
        for child in &first {
            memory.insert((child.kind(), child.name().to_string()), Applied { hash: 1, version: 1, generation: None });
        }
        keep_desired(&mut memory, &first);
        assert_eq!(memory.len(), first.len());
        let second = children_of("shop:2");
        keep_desired(&mut memory, &second);
        assert_eq!(memory.len(), first.len() - 1, "the first image's migration Job is forgotten");
        assert!(memory.keys().all(|(kind, name)| second.iter().any(|c| c.kind() == *kind && c.name() == name)));
    }
}
