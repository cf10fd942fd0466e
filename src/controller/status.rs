//! The status: conditions and figures computed from the snapshot. Pure, so an
//! unchanged cluster yields an identical status and nothing is written.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::observe::Snapshot;
use super::rollout::{MigrationPhase, current_image, first_rollout_pending, migration_phase, ready_replicas};
use crate::api::{
    AppStatus, CacheStatus, CronTaskStatus, DatabaseStatus, MigrationStatus, WebCluster, WebClusterStatus,
};
use crate::desired::meta::{Component, selector_string};
use crate::desired::names;

/// Condition types, in the order status lists them.
pub const CONDITION_TYPES: [&str; 7] =
    ["Ready", "AppReady", "CacheReady", "DatabaseReady", "StorageReady", "JobsReady", "MigrationComplete"];

/// One condition before timestamps: status, reason, message.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// True or False.
    pub ok: bool,
    /// CamelCase reason.
    pub reason: String,
    /// What a person can act on.
    pub message: String,
}

fn verdict(ok: bool, reason: &str, message: impl Into<String>) -> Verdict {
    Verdict { ok, reason: reason.into(), message: message.into() }
}

/// Everything status needs beyond the snapshot.
pub struct StatusInput<'a> {
    /// The WebCluster.
    pub cluster: &'a WebCluster,
    /// The cluster's state.
    pub snapshot: &'a Snapshot,
    /// Changes the API server refused (immutable fields, invalid values).
    pub rejections: &'a [String],
    /// Now, for conditions that change.
    pub now: Time,
}

/// The new status. Conditions keep their lastTransitionTime while their status holds.
pub fn compute(input: &StatusInput) -> WebClusterStatus {
    let cluster = input.cluster;
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    let verdicts = verdicts(input);
    let previous = cluster.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let generation = cluster.metadata.generation;
    let conditions = CONDITION_TYPES
        .iter()
        .zip(verdicts)
        .map(|(kind, v)| condition(kind, v, previous, generation, &input.now))
        .collect();
    WebClusterStatus {
        observed_generation: generation,
        conditions,
        selector: Some(selector_string(name, Component::App)),
        app: Some(app_status(cluster, input.snapshot)),
        database: database_status(cluster, input.snapshot),
        cache: cache_status(cluster, input.snapshot),
        jobs: jobs_status(cluster, input.snapshot),
        migration: migration_status(cluster, input.snapshot),
    }
}

/// A change that is written at once rather than paced: the first status, a new
/// generation (the user waits for it), or Ready flipping.
pub fn urgent(before: Option<&WebClusterStatus>, after: &WebClusterStatus) -> bool {
    let Some(before) = before else { return true };
    before.observed_generation != after.observed_generation || ready(before) != ready(after)
}

/// The status of the Ready condition.
fn ready(status: &WebClusterStatus) -> Option<&str> {
    status.conditions.iter().find(|c| c.type_ == CONDITION_TYPES[0]).map(|c| c.status.as_str())
}

fn condition(kind: &str, v: Verdict, previous: &[Condition], generation: Option<i64>, now: &Time) -> Condition {
    let status = if v.ok { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == kind && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: kind.into(),
        status: status.into(),
        reason: v.reason,
        message: v.message,
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// Verdicts in [`CONDITION_TYPES`] order; Ready sums up the others.
fn verdicts(input: &StatusInput) -> Vec<Verdict> {
    let parts = vec![
        app_verdict(input.cluster, input.snapshot),
        cache_verdict(input.cluster, input.snapshot),
        database_verdict(input.cluster, input.snapshot),
        storage_verdict(input.cluster, input.snapshot),
        jobs_verdict(input.cluster, input.snapshot),
        migration_verdict(input.cluster, input.snapshot),
    ];
    let ready = if let Some(rejection) = input.rejections.first() {
        verdict(false, "SpecRejected", format!("the API server refused a change; fix the spec: {rejection}"))
    } else if let Some((kind, failing)) = CONDITION_TYPES[1..].iter().zip(&parts).find(|(_, v)| !v.ok) {
        verdict(false, &format!("{kind}False"), failing.message.clone())
    } else {
        verdict(true, "AllComponentsReady", "every component is ready")
    };
    std::iter::once(ready).chain(parts).collect()
}

fn desired_app_replicas(cluster: &WebCluster, snapshot: &Snapshot) -> i32 {
    let app = &cluster.spec.app;
    match &app.autoscaling {
        Some(_) => snapshot.deployment.as_ref().and_then(|d| d.spec.replicas).unwrap_or(0),
        None => app.replicas,
    }
}

fn app_verdict(cluster: &WebCluster, snapshot: &Snapshot) -> Verdict {
    let deployment = match &snapshot.deployment {
        Some(deployment) if !first_rollout_pending(Some(deployment)) => deployment,
        _ => return held_verdict(cluster, snapshot),
    };
    let desired = desired_app_replicas(cluster, snapshot);
    let status = deployment.status.clone().unwrap_or_default();
    let (ready, updated) = (status.ready_replicas.unwrap_or(0), status.updated_replicas.unwrap_or(0));
    let observed = status.observed_generation >= deployment.metadata.generation;
    let name = names::app(cluster.metadata.name.as_deref().unwrap_or_default());
    if observed && ready >= desired && updated >= desired && status.replicas.unwrap_or(0) == desired {
        verdict(true, "DeploymentReady", format!("{ready}/{desired} app pods ready"))
    } else {
        verdict(false, "RollingOut", format!("Deployment {name}: {ready}/{desired} pods ready, {updated} updated"))
    }
}

/// Why the first rollout still waits.
fn held_verdict(cluster: &WebCluster, snapshot: &Snapshot) -> Verdict {
    match migration_phase(cluster, snapshot) {
        MigrationPhase::Failed(why) => verdict(false, "MigrationFailed", format!("the first migration failed: {why}")),
        MigrationPhase::Pending | MigrationPhase::Running => {
            verdict(false, "WaitingForMigration", "the app starts after the migration Job succeeds")
        }
        MigrationPhase::NotConfigured | MigrationPhase::Succeeded => {
            verdict(false, "WaitingForDatabase", "the app starts when the database primary is ready")
        }
    }
}

fn stateful_verdict(
    set_name: &str,
    set: Option<&k8s_openapi::api::apps::v1::StatefulSet>,
    desired: i32,
    what: &str,
) -> Verdict {
    let Some(set) = set else {
        return verdict(false, "Creating", format!("StatefulSet {set_name} does not exist yet"));
    };
    let ready = ready_replicas(Some(set));
    if ready >= desired {
        verdict(true, "StatefulSetReady", format!("{ready}/{desired} {what} pods ready"))
    } else {
        verdict(false, "PodsNotReady", format!("StatefulSet {set_name}: {ready}/{desired} {what} pods ready"))
    }
}

fn cache_verdict(cluster: &WebCluster, snapshot: &Snapshot) -> Verdict {
    let Some(cache) = &cluster.spec.cache else { return verdict(true, "NotConfigured", "no cache asked for") };
    let name = names::cache(cluster.metadata.name.as_deref().unwrap_or_default());
    stateful_verdict(&name, snapshot.cache.as_ref(), cache.replicas, "cache")
}

fn database_verdict(cluster: &WebCluster, snapshot: &Snapshot) -> Verdict {
    let Some(db) = &cluster.spec.database else { return verdict(true, "NotConfigured", "no database asked for") };
    match (&db.managed, &snapshot.external_db) {
        (Some(managed), _) => {
            let name = names::database(cluster.metadata.name.as_deref().unwrap_or_default());
            stateful_verdict(&name, snapshot.database.as_ref(), managed.pods(), "database")
        }
        (None, Some(Ok(_))) => verdict(true, "ExternalDsnsRead", "the external DSNs were read"),
        (None, Some(Err(why))) => verdict(false, "ExternalSecretMissing", why.clone()),
        (None, None) => verdict(false, "ExternalSecretMissing", "the external DSNs were not read yet"),
    }
}

fn storage_verdict(cluster: &WebCluster, snapshot: &Snapshot) -> Verdict {
    let Some(storage) = &cluster.spec.storage else {
        return verdict(true, "NotConfigured", "no shared storage asked for");
    };
    if let Some(s3) = &storage.s3 {
        return match snapshot.s3_credentials_found {
            Some(true) => verdict(true, "CredentialsFound", format!("S3 bucket {}", s3.bucket)),
            _ => verdict(
                false,
                "CredentialsMissing",
                format!("Secret {} not found (spec.storage.s3.credentialsSecretRef)", s3.credentials_secret_ref.name),
            ),
        };
    }
    let class = storage.volume.as_ref().and_then(|v| v.storage_class_name.clone());
    claim_verdict(snapshot.files_claim.as_ref(), class)
}

fn claim_verdict(claim: Option<&PersistentVolumeClaim>, class: Option<String>) -> Verdict {
    let Some(claim) = claim else {
        return verdict(false, "ClaimMissing", "the files PersistentVolumeClaim does not exist yet");
    };
    let name = claim.metadata.name.clone().unwrap_or_default();
    match claim.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Bound") => verdict(true, "ClaimBound", format!("PersistentVolumeClaim {name} is Bound")),
        phase => {
            let class = class
                .or_else(|| claim.spec.as_ref().and_then(|s| s.storage_class_name.clone()))
                .map(|c| format!("StorageClass {c}"))
                .unwrap_or_else(|| "the default StorageClass".into());
            verdict(
                false,
                "ClaimPending",
                format!(
                    "PersistentVolumeClaim {name} is {}: no ReadWriteMany volume available in {class}",
                    phase.unwrap_or("Pending")
                ),
            )
        }
    }
}

fn jobs_verdict(cluster: &WebCluster, snapshot: &Snapshot) -> Verdict {
    let missing: Vec<&str> = cluster
        .spec
        .jobs
        .iter()
        .filter(|t| !snapshot.cron_jobs.contains_key(&t.name))
        .map(|t| t.name.as_str())
        .collect();
    if missing.is_empty() {
        verdict(true, "CronJobsScheduled", format!("{} cron task(s) scheduled", cluster.spec.jobs.len()))
    } else {
        verdict(false, "CronJobsMissing", format!("cron task(s) not created yet: {}", missing.join(", ")))
    }
}

fn migration_verdict(cluster: &WebCluster, snapshot: &Snapshot) -> Verdict {
    let image = &cluster.spec.app.image;
    match migration_phase(cluster, snapshot) {
        MigrationPhase::NotConfigured => verdict(true, "NotConfigured", "no migration asked for"),
        MigrationPhase::Succeeded => verdict(true, "Succeeded", format!("the migration for {image} succeeded")),
        MigrationPhase::Pending => {
            verdict(false, "Pending", format!("the migration for {image} waits for the database"))
        }
        MigrationPhase::Running => {
            verdict(false, "Running", format!("the migration for {image} runs; the previous image keeps serving"))
        }
        MigrationPhase::Failed(why) => verdict(
            false,
            "Failed",
            format!(
                "the migration for {image} failed ({why}); the previous image keeps serving. Fix the image or the command and change spec.app.image"
            ),
        ),
    }
}

fn app_status(cluster: &WebCluster, snapshot: &Snapshot) -> AppStatus {
    let desired = desired_app_replicas(cluster, snapshot);
    let status = snapshot.deployment.as_ref().and_then(|d| d.status.clone()).unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    AppStatus {
        replicas: status.replicas.unwrap_or(0),
        ready_replicas: ready,
        updated_replicas: status.updated_replicas.unwrap_or(0),
        image: current_image(snapshot.deployment.as_ref()),
        summary: format!("{ready}/{desired}"),
    }
}

fn database_status(cluster: &WebCluster, snapshot: &Snapshot) -> Option<DatabaseStatus> {
    let db = cluster.spec.database.as_ref()?;
    let engine = crate::desired::engine_name(db.engine);
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    Some(match &db.managed {
        Some(managed) => {
            let ready = ready_replicas(snapshot.database.as_ref());
            let desired = managed.pods();
            DatabaseStatus {
                write_service: Some(names::database_write(name)),
                read_service: Some(names::database_read(name)),
                primary: Some(names::database_primary(name)),
                ready_replicas: ready,
                replicas: desired,
                summary: format!("{engine} {ready}/{desired}"),
            }
        }
        None => DatabaseStatus { summary: format!("{engine} external"), ..DatabaseStatus::default() },
    })
}

fn cache_status(cluster: &WebCluster, snapshot: &Snapshot) -> Option<CacheStatus> {
    let cache = cluster.spec.cache.as_ref()?;
    let ready = ready_replicas(snapshot.cache.as_ref());
    Some(CacheStatus {
        hosts: crate::desired::cache_hosts(cluster),
        ready_replicas: ready,
        summary: format!("{} {ready}/{}", crate::desired::cache_backend_name(cache.backend), cache.replicas),
    })
}

fn jobs_status(cluster: &WebCluster, snapshot: &Snapshot) -> Vec<CronTaskStatus> {
    cluster
        .spec
        .jobs
        .iter()
        .map(|task| {
            let status = snapshot.cron_jobs.get(&task.name).and_then(|c| c.status.clone()).unwrap_or_default();
            CronTaskStatus {
                name: task.name.clone(),
                last_schedule_time: status.last_schedule_time,
                last_successful_time: status.last_successful_time,
                active: status.active.map_or(0, |a| a.len() as i32),
            }
        })
        .collect()
}

fn migration_status(cluster: &WebCluster, snapshot: &Snapshot) -> Option<MigrationStatus> {
    cluster.spec.app.migration.as_ref()?;
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    Some(MigrationStatus {
        image: cluster.spec.app.image.clone(),
        job: names::migration(name, &cluster.spec.app.image),
        phase: migration_phase(cluster, snapshot).name().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(generation: i64, ready: &str, app_ready_pods: i32) -> WebClusterStatus {
        WebClusterStatus {
            observed_generation: Some(generation),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: ready.into(),
                reason: "R".into(),
                message: String::new(),
                observed_generation: Some(generation),
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            }],
            app: Some(AppStatus { ready_replicas: app_ready_pods, ..AppStatus::default() }),
            ..WebClusterStatus::default()
        }
    }

    #[test]
    fn figures_alone_are_not_urgent() {
        assert!(!urgent(Some(&status(1, "False", 0)), &status(1, "False", 1)));
    }

    #[test]
    fn the_first_status_a_new_generation_and_ready_flipping_are_urgent() {
        assert!(urgent(None, &status(1, "False", 0)));
        assert!(urgent(Some(&status(1, "False", 0)), &status(2, "False", 0)));
        assert!(urgent(Some(&status(1, "False", 1)), &status(1, "True", 2)));
        assert!(urgent(Some(&status(1, "True", 2)), &status(1, "False", 1)));
    }
}
