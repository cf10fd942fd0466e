//! The report step: the status ([`status`], pure) written at once when it
//! matters and paced otherwise, and Events on condition transitions ([`events`]).

pub mod conditions;
mod events;
pub mod health;
pub mod status;
mod text;
#[cfg(test)]
mod truth_tests;

use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Recorder, Reporter as EventReporter};
use kube::{Api, Client};
use serde_json::json;

use super::apply::failover::{Cause, FailoverError, Promotion};
use super::error::ApiError;
use super::observe::Snapshot;
use super::plan::Rollout;
use super::runtime::pacing::{ClusterKey, StatusPacer};
use crate::api::WebCluster;
use crate::desired::meta::MANAGER;
pub use health::Trouble;
use status::{Computed, StatusInput, compute, compute_failure, urgent};

/// Writes statuses and records Events.
pub struct Reporter {
    client: Client,
    recorder: Recorder,
    pacer: StatusPacer,
}

impl Reporter {
    /// A reporter whose figure-only status writes are at least `status_interval` apart.
    pub fn new(client: Client, status_interval: Duration) -> Self {
        let reporter = EventReporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
        Self { recorder: Recorder::new(client.clone(), reporter), client, pacer: StatusPacer::new(status_interval) }
    }

    /// Computes the status of `cluster` and writes it when it changed, then
    /// records the Events of its transitions. `Some(wait)` when a figure-only
    /// change waits for the pacing interval: the next reconcile after `wait` writes it.
    pub async fn report(
        &self,
        cluster: &WebCluster,
        key: &ClusterKey,
        snapshot: &Snapshot,
        rollout: &Rollout,
        trouble: &Trouble,
    ) -> Result<Option<Duration>, ApiError> {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let computed = compute(&StatusInput { cluster, snapshot, rollout, trouble, now });
        self.write(cluster, key, computed).await
    }

    /// Writes Ready, Reconciling and Stalled for a reconcile that failed before
    /// it could read the cluster's state; the rest of the status stays as it was.
    pub async fn report_failure(
        &self,
        cluster: &WebCluster,
        key: &ClusterKey,
        trouble: &Trouble,
    ) -> Result<(), ApiError> {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        match compute_failure(cluster, trouble, &now) {
            Some(computed) => self.write(cluster, key, computed).await.map(|_| ()),
            None => Ok(()),
        }
    }

    /// Records the Event of a change of primary from `from`.
    pub async fn primary_change(
        &self,
        cluster: &WebCluster,
        from: &str,
        cause: &Cause,
        outcome: &Result<Promotion, FailoverError>,
    ) {
        let namespace = cluster.metadata.namespace.as_deref().unwrap_or_default();
        events::publish(&self.recorder, cluster, vec![events::primary_change(namespace, from, cause, outcome)]).await;
    }

    /// Records that the former primary `pod` ran as a primary after the failover to `primary`, and was fenced.
    pub async fn late_fence(&self, cluster: &WebCluster, pod: &str, primary: &str) {
        let namespace = cluster.metadata.namespace.as_deref().unwrap_or_default();
        events::publish(&self.recorder, cluster, vec![events::late_fence(namespace, pod, primary)]).await;
    }

    async fn write(
        &self,
        cluster: &WebCluster,
        key: &ClusterKey,
        computed: Computed,
    ) -> Result<Option<Duration>, ApiError> {
        if cluster.status.as_ref() == Some(&computed.status) {
            return Ok(None);
        }
        if !urgent(cluster.status.as_ref(), &computed.status)
            && let Some(wait) = self.pacer.wait(key, Instant::now())
        {
            return Ok(Some(wait));
        }
        let (namespace, name) = key;
        let api: Api<WebCluster> = Api::namespaced(self.client.clone(), namespace);
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({ "status": computed.status })))
            .await
            .map_err(|e| ApiError::new("update status of", "WebCluster", namespace, name, e))?;
        self.pacer.wrote(key.clone(), Instant::now());
        let before = cluster.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
        events::publish(&self.recorder, cluster, events::transitions(before, &computed.verdicts)).await;
        Ok(None)
    }
}
