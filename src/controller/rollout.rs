//! Ordering decisions: which image the app runs, when the migration runs, and
//! whether the CronJobs pause. Pure functions of the spec and the snapshot.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;

use super::observe::Snapshot;
use crate::api::WebCluster;
use crate::build::{ExternalUrls, Observed};

/// Where the migration of `spec.app.image` stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MigrationPhase {
    /// No migration is configured.
    NotConfigured,
    /// Waiting for the database before the Job is created.
    Pending,
    /// The Job runs.
    Running,
    /// The Job succeeded: the image may serve.
    Succeeded,
    /// The Job failed; the message says why.
    Failed(String),
}

impl MigrationPhase {
    /// The phase's name in status.
    pub fn name(&self) -> &'static str {
        match self {
            MigrationPhase::NotConfigured => "NotConfigured",
            MigrationPhase::Pending => "Pending",
            MigrationPhase::Running => "Running",
            MigrationPhase::Succeeded => "Succeeded",
            MigrationPhase::Failed(_) => "Failed",
        }
    }
}

/// The image the app Deployment runs now.
pub fn current_image(deployment: Option<&Deployment>) -> Option<String> {
    deployment?.spec.template.spec.as_ref()?.containers.iter().find(|c| c.name == "app")?.image.clone()
}

/// Ready pods of a StatefulSet.
pub fn ready_replicas(set: Option<&StatefulSet>) -> i32 {
    set.and_then(|s| s.status.as_ref()).and_then(|s| s.ready_replicas).unwrap_or(0)
}

/// The database can take the app: the primary is ready (or the DSNs were read).
pub fn database_ready(cluster: &WebCluster, snapshot: &Snapshot) -> bool {
    match &cluster.spec.database {
        None => true,
        Some(db) if db.managed.is_some() => ready_replicas(snapshot.database.as_ref()) >= 1,
        Some(_) => matches!(snapshot.external_db, Some(Ok(_))),
    }
}

/// The migration Job's phase from its status.
pub fn migration_phase(cluster: &WebCluster, snapshot: &Snapshot) -> MigrationPhase {
    if cluster.spec.app.migration.is_none() {
        return MigrationPhase::NotConfigured;
    }
    match &snapshot.migration_job {
        None => MigrationPhase::Pending,
        Some(job) => job_phase(job),
    }
}

fn job_phase(job: &Job) -> MigrationPhase {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref()).cloned().unwrap_or_default();
    let holds = |kind: &str| conditions.iter().find(|c| c.type_ == kind && c.status == "True");
    if holds("Complete").is_some() {
        return MigrationPhase::Succeeded;
    }
    if let Some(failed) = holds("Failed") {
        let why = failed.message.clone().or(failed.reason.clone()).unwrap_or_else(|| "the Job failed".into());
        return MigrationPhase::Failed(why);
    }
    MigrationPhase::Running
}

/// What the builder needs to know about the cluster: generated values, DSNs,
/// the serving image and whether a migration runs.
pub fn observed(cluster: &WebCluster, snapshot: &Snapshot, generated: BTreeMap<String, String>) -> Observed {
    let current = current_image(snapshot.deployment.as_ref());
    let db_ready = database_ready(cluster, snapshot);
    let phase = migration_phase(cluster, snapshot);
    let desired = &cluster.spec.app.image;
    let serving_image = match (&phase, &current) {
        // Nothing serves yet: wait for the database before the first rollout.
        (MigrationPhase::NotConfigured, None) => db_ready.then(|| desired.clone()),
        (MigrationPhase::NotConfigured | MigrationPhase::Succeeded, _) => Some(desired.clone()),
        // A pending, running or failed migration keeps the old version serving.
        (_, Some(old)) => Some(old.clone()),
        (_, None) => None,
    };
    Observed {
        generated,
        external_db: snapshot.external_db.clone().and_then(Result::ok).or_else(|| placeholder_external(cluster)),
        serving_image,
        migration_running: phase == MigrationPhase::Running,
        start_migration: db_ready || snapshot.migration_job.is_some(),
    }
}

/// Without readable external DSNs the Secret keeps empty values (the status says why).
fn placeholder_external(cluster: &WebCluster) -> Option<ExternalUrls> {
    cluster.spec.database.as_ref()?.external.as_ref()?;
    Some(ExternalUrls { write: String::new(), read: String::new() })
}
