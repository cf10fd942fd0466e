//! The prune step: deletion of children the spec no longer asks for.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use kube::api::DeleteParams;
use kube::core::DynamicObject;
use kube::{Api, Client};

use super::error::{ApiError, is_not_found};
use super::runtime::cache::ChildCaches;
use super::runtime::cache::digest::hash_of;
use super::runtime::memory::ClusterMemory;
use super::runtime::metrics::Metrics;
use crate::desired::Child;

/// Deletes stale children, remembering per WebCluster the desired set it last pruned against.
pub struct Pruner {
    client: Client,
    metrics: Arc<Metrics>,
    /// Per WebCluster uid: the hash of the desired (kind, name) set last pruned against.
    pruned: ClusterMemory<Option<u64>>,
}

impl Pruner {
    /// A pruner with an empty memory.
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        Self { client, metrics, pruned: ClusterMemory::default() }
    }

    /// Deletes children of the WebCluster `uid` that the spec no longer asks
    /// for. Never data objects (claims, the generated Secret): the caches leave
    /// them out. The scan of the caches only runs when the set of desired
    /// children differs from the one last pruned against: nothing can be stale otherwise.
    pub async fn prune(
        &self,
        caches: &ChildCaches,
        children: &[Child],
        namespace: &str,
        uid: &str,
    ) -> Result<usize, ApiError> {
        let desired: BTreeSet<(&str, &str)> = children.iter().map(|c| (c.kind(), c.name())).collect();
        let desired_hash = hash_of(&desired);
        if self.pruned.read(uid, |last| *last) == Some(Some(desired_hash)) {
            return Ok(0);
        }
        let mut deleted = 0;
        for (resource, name) in caches.controlled_by(namespace, uid) {
            if desired.contains(&(resource.kind.as_str(), name.as_str())) {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &resource);
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {
                    self.metrics.deleted(&resource.kind);
                    deleted += 1;
                }
                Err(error) if is_not_found(&error) => {}
                Err(error) => return Err(ApiError::new("delete", &resource.kind, namespace, &name, error)),
            }
        }
        self.pruned.with(uid, |last| *last = Some(desired_hash));
        Ok(deleted)
    }

    /// Forgets the WebCluster `uid` (deleted).
    pub fn forget(&self, uid: &str) {
        self.pruned.forget(uid);
    }

    /// Forgets every WebCluster not in `live`.
    pub fn retain(&self, live: &HashSet<String>) {
        self.pruned.retain(live);
    }
}
