//! Server-side apply of the desired children, skipping those that still match
//! what was applied last; pruning of children the spec no longer asks for; the
//! role label of database replicas.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};
use kube::{Api, Client};
use serde_json::json;

use super::caches::ChildCaches;
use super::digest::{Digest, hash_of};
use super::error::{Error, is_not_found, is_rejection};
use super::metrics::Metrics;
use crate::desired::meta::MANAGER;
use crate::desired::{Child, ROLE_LABEL, ROLE_REPLICA, names};

/// What one apply pass did.
#[derive(Debug, Default)]
pub struct ApplyOutcome {
    /// Children written.
    pub applied: usize,
    /// Of those, children the cache did not show yet (created).
    pub created: usize,
    /// Children that still matched and were left alone.
    pub unchanged: usize,
    /// Changes the API server refused, as messages for status and Events.
    pub rejections: Vec<String>,
}

/// What was applied to one child, and the child's version right after.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Applied {
    hash: u64,
    version: u64,
}

type ChildKey = (&'static str, String, String);

/// Applies in flight at once for one WebCluster.
const APPLY_CONCURRENCY: usize = 4;

/// What happened to one child.
enum ChildResult {
    Unchanged,
    Applied { created: bool },
    Rejected(String),
}

/// Applies children and remembers what it applied, so an unchanged child
/// costs no request.
pub struct Applier {
    client: Client,
    metrics: Arc<Metrics>,
    applied: Mutex<HashMap<ChildKey, Applied>>,
    /// Per WebCluster uid: the hash of the desired (kind, name) set last pruned against.
    pruned: Mutex<HashMap<String, u64>>,
}

impl Applier {
    /// An applier with an empty memory.
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        Self { client, metrics, applied: Mutex::new(HashMap::new()), pruned: Mutex::new(HashMap::new()) }
    }

    fn api(&self, resource: &ApiResource, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, resource)
    }

    fn remembered(&self, key: &ChildKey) -> Option<Applied> {
        self.applied.lock().ok()?.get(key).copied()
    }

    fn remember(&self, key: ChildKey, applied: Applied) {
        if let Ok(mut memory) = self.applied.lock() {
            memory.insert(key, applied);
        }
    }

    /// Server-side applies every child that differs from what is cached, a few
    /// at a time (children of one WebCluster do not depend on each other at the
    /// API level). Jobs are created once and never changed (their pod template is immutable).
    pub async fn apply(
        &self,
        caches: &ChildCaches,
        children: &[Child],
        namespace: &str,
    ) -> Result<ApplyOutcome, Error> {
        // Collected first: a closure inside the stream trips the compiler's Send inference.
        let pending: Vec<_> = children.iter().map(|child| self.apply_one(caches, child, namespace)).collect();
        let results: Vec<Result<ChildResult, Error>> =
            futures::stream::iter(pending).buffer_unordered(APPLY_CONCURRENCY).collect().await;
        let mut outcome = ApplyOutcome::default();
        for result in results {
            match result? {
                ChildResult::Unchanged => outcome.unchanged += 1,
                ChildResult::Applied { created } => {
                    outcome.applied += 1;
                    outcome.created += usize::from(created);
                }
                ChildResult::Rejected(message) => outcome.rejections.push(message),
            }
        }
        outcome.rejections.sort();
        Ok(outcome)
    }

    async fn apply_one(&self, caches: &ChildCaches, child: &Child, namespace: &str) -> Result<ChildResult, Error> {
        let (kind, name) = (child.kind(), child.name().to_string());
        let key = (kind, namespace.to_string(), name.clone());
        let desired = child.to_json();
        let hash = hash_of(&desired.to_string());
        let last = self.remembered(&key);
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
        match self.api(&child.api_resource(), namespace).patch(&name, &params, &Patch::Apply(&desired)).await {
            Ok(object) => {
                self.remember(key, Applied { hash, version: Digest::of(&object.metadata).version });
                self.metrics.applied(kind);
                Ok(ChildResult::Applied { created: current.is_none() })
            }
            Err(error) if is_rejection(&error) => Ok(ChildResult::Rejected(format!("{kind} {name}: {error}"))),
            Err(error) => Err(Error::api("apply", kind, namespace, &name, error)),
        }
    }

    /// Deletes children of the WebCluster `uid` that the spec no longer asks
    /// for. Never data objects (claims, the generated Secret): the caches leave them out. The scan of the
    /// caches only runs when the set of desired children differs from the one
    /// last pruned against: nothing can be stale otherwise.
    pub async fn prune(
        &self,
        caches: &ChildCaches,
        children: &[Child],
        namespace: &str,
        uid: &str,
    ) -> Result<usize, Error> {
        let desired: BTreeSet<(&str, &str)> = children.iter().map(|c| (c.kind(), c.name())).collect();
        let desired_hash = hash_of(&desired);
        if self.pruned.lock().ok().and_then(|p| p.get(uid).copied()) == Some(desired_hash) {
            return Ok(0);
        }
        let mut deleted = 0;
        for (resource, name) in caches.controlled_by(namespace, uid) {
            if desired.contains(&(resource.kind.as_str(), name.as_str())) {
                continue;
            }
            match self.api(&resource, namespace).delete(&name, &DeleteParams::background()).await {
                Ok(_) => {
                    self.metrics.deleted(&resource.kind);
                    deleted += 1;
                }
                Err(error) if is_not_found(&error) => {}
                Err(error) => return Err(Error::api("delete", &resource.kind, namespace, &name, error)),
            }
        }
        if let Ok(mut pruned) = self.pruned.lock() {
            pruned.insert(uid.to_string(), desired_hash);
        }
        Ok(deleted)
    }

    /// Labels each database replica (every pod but the primary, ordinal 0) for the
    /// read-only Service. The primary needs no write: the read-write Service
    /// selects it by pod name.
    pub async fn label_database_replicas(
        &self,
        caches: &ChildCaches,
        namespace: &str,
        cluster: &str,
        replicas: i32,
    ) -> Result<(), Error> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        for ordinal in 1..=replicas {
            let name = names::database_pod(cluster, ordinal);
            if caches.pod_has_label(namespace, &name, ROLE_LABEL, ROLE_REPLICA) != Some(false) {
                continue; // labelled already, or not created yet
            }
            let patch = json!({ "metadata": { "labels": { ROLE_LABEL: ROLE_REPLICA } } });
            match pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(error) if is_not_found(&error) => {}
                Err(error) => return Err(Error::api("label", "Pod", namespace, &name, error)),
            }
        }
        Ok(())
    }
}
