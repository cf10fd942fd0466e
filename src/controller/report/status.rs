//! The status: conditions and figures computed from the snapshot. Pure, so an
//! unchanged cluster yields an identical status and nothing is written.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::conditions::{ConditionType, Reason, Verdict, verdict};
use super::health::{Trouble, failure_verdict, summary};
use super::text::{CONDITION_MESSAGE_MAX, cut};
use crate::api::{
    AppStatus, CacheStatus, CronTaskStatus, DatabaseStatus, ManagedDatabase, MigrationStatus, WebCluster,
    WebClusterStatus,
};
use crate::controller::observe::Snapshot;
use crate::controller::observe::pods::DatabasePod;
use crate::controller::plan::{MigrationPhase, Rollout, current_image, lost_credentials, ready_replicas};
use crate::desired::meta::{Component, selector_string};
use crate::desired::names;

/// Everything status needs beyond the snapshot.
pub struct StatusInput<'a> {
    /// The WebCluster.
    pub cluster: &'a WebCluster,
    /// The cluster's state.
    pub snapshot: &'a Snapshot,
    /// Where the rollout stands, as the plan step decided.
    pub rollout: &'a Rollout,
    /// Requests that failed and pods the API server refused.
    pub trouble: &'a Trouble,
    /// Now, for conditions that change.
    pub now: Time,
}

/// A new status and the verdicts its conditions say (the Events are chosen from them).
#[derive(Clone, Debug, PartialEq)]
pub struct Computed {
    /// The status to write.
    pub status: WebClusterStatus,
    /// Every condition's verdict, Ready first.
    pub verdicts: Vec<(ConditionType, Verdict)>,
}

/// The new status. Conditions keep their lastTransitionTime while their status holds.
pub fn compute(input: &StatusInput) -> Computed {
    let cluster = input.cluster;
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    let verdicts = verdicts(input);
    let previous = cluster.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let generation = cluster.metadata.generation;
    let conditions = verdicts.iter().map(|(kind, v)| condition(*kind, v, previous, generation, &input.now)).collect();
    let status = WebClusterStatus {
        observed_generation: generation,
        conditions,
        selector: Some(selector_string(name, Component::App)),
        app: Some(app_status(cluster, input.snapshot)),
        database: database_status(cluster, input.snapshot),
        cache: cache_status(cluster, input.snapshot),
        jobs: jobs_status(cluster, input.snapshot),
        migration: migration_status(cluster, &input.rollout.migration),
    };
    Computed { status, verdicts }
}

/// The status of a reconcile that failed before it read the cluster's state:
/// the previous one, with Ready, Reconciling and Stalled saying what failed.
/// `None` while the failure is not worth a status yet (a first transient one).
pub fn compute_failure(cluster: &WebCluster, trouble: &Trouble, now: &Time) -> Option<Computed> {
    let previous = cluster.status.clone().unwrap_or_default();
    let failure = failure_verdict(trouble)?;
    let verdicts: Vec<(ConditionType, Verdict)> = summary(&[], Some(failure)).into();
    let generation = cluster.metadata.generation;
    let mut conditions = previous.conditions.clone();
    for (kind, v) in &verdicts {
        let new = condition(*kind, v, &previous.conditions, generation, now);
        match conditions.iter_mut().find(|c| c.type_ == new.type_) {
            Some(old) => *old = new,
            None => conditions.push(new),
        }
    }
    let status = WebClusterStatus { observed_generation: generation, conditions, ..previous };
    Some(Computed { status, verdicts })
}

/// A change that is written at once rather than paced: the first status, a new
/// generation (the user waits for it), a new database primary or switchover
/// handled, Ready or Stalled flipping, or Ready's reason.
pub fn urgent(before: Option<&WebClusterStatus>, after: &WebClusterStatus) -> bool {
    let Some(before) = before else { return true };
    let key = |status: &WebClusterStatus, kind: ConditionType| {
        status.conditions.iter().find(|c| c.type_ == kind.as_str()).map(|c| (c.status.clone(), c.reason.clone()))
    };
    // A new primary, and a switchover handled (it must not run twice).
    let primary = |status: &WebClusterStatus| {
        status.database.as_ref().map(|d| (d.primary.clone(), d.last_switchover.clone())).unwrap_or_default()
    };
    before.observed_generation != after.observed_generation
        || primary(before) != primary(after)
        || [ConditionType::Ready, ConditionType::Stalled].into_iter().any(|kind| key(before, kind) != key(after, kind))
}

fn condition(
    kind: ConditionType,
    v: &Verdict,
    previous: &[Condition],
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if v.ok { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == kind.as_str() && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: kind.as_str().into(),
        status: status.into(),
        reason: v.reason.to_string(),
        message: cut(&v.message, CONDITION_MESSAGE_MAX),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// Every condition's verdict: Ready (which sums up the others) first, then
/// the components, then kstatus' Reconciling and Stalled.
fn verdicts(input: &StatusInput) -> Vec<(ConditionType, Verdict)> {
    let (cluster, snapshot, refused) = (input.cluster, input.snapshot, &input.trouble.refused_pods);
    let parts = vec![
        (ConditionType::AppReady, app_verdict(cluster, snapshot, input.rollout, &input.trouble.missing_secrets)),
        (ConditionType::CacheReady, cache_verdict(cluster, snapshot)),
        (ConditionType::DatabaseReady, database_verdict(cluster, snapshot)),
        (ConditionType::StorageReady, storage_verdict(cluster, snapshot)),
        (ConditionType::JobsReady, jobs_verdict(cluster, snapshot, refused)),
        (ConditionType::MigrationComplete, migration_verdict(cluster, &input.rollout.migration, refused)),
    ];
    let failure = lost_credentials(cluster, &snapshot.credentials)
        .map(|lost| verdict(false, Reason::CredentialsLost, lost))
        .or_else(|| failure_verdict(input.trouble));
    let [ready, reconciling, stalled] = summary(&parts, failure);
    std::iter::once(ready).chain(parts).chain([reconciling, stalled]).collect()
}

fn desired_app_replicas(cluster: &WebCluster, snapshot: &Snapshot) -> i32 {
    let app = &cluster.spec.app;
    match &app.autoscaling {
        Some(_) => snapshot.deployment.as_ref().and_then(|d| d.spec.replicas).unwrap_or(0),
        None => app.replicas,
    }
}

fn app_verdict(cluster: &WebCluster, snapshot: &Snapshot, rollout: &Rollout, missing_secrets: &[String]) -> Verdict {
    if !missing_secrets.is_empty() {
        let missing = missing_secrets.join("; ");
        return verdict(
            false,
            Reason::SecretMissing,
            format!("{missing}: the app's pods cannot start until it exists"),
        );
    }
    let deployment = match &snapshot.deployment {
        Some(deployment) if !rollout.first_rollout_pending => deployment,
        _ => return held_verdict(cluster, &rollout.migration),
    };
    let desired = desired_app_replicas(cluster, snapshot);
    let status = deployment.status.clone().unwrap_or_default();
    let (ready, updated) = (status.ready_replicas.unwrap_or(0), status.updated_replicas.unwrap_or(0));
    let observed = status.observed_generation >= deployment.metadata.generation;
    let name = names::app(cluster.metadata.name.as_deref().unwrap_or_default());
    if observed && ready >= desired && updated >= desired && status.replicas.unwrap_or(0) == desired {
        verdict(true, Reason::DeploymentReady, format!("{ready}/{desired} app pods ready"))
    } else if let Some(stuck) = deployment_stuck(&name, &status).filter(|_| observed) {
        stuck
    } else {
        verdict(
            false,
            Reason::RollingOut,
            format!("Deployment {name}: {ready}/{desired} pods ready, {updated} updated"),
        )
    }
}

/// Why a Deployment cannot bring up its pods, as its own conditions say:
/// pods the API server refused (Pod Security Admission, a ResourceQuota), or
/// no progress within its deadline.
fn deployment_stuck(name: &str, status: &k8s_openapi::api::apps::v1::DeploymentStatus) -> Option<Verdict> {
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let holds = |kind: &str, value: &str| {
        conditions.iter().find(|c| c.type_.as_deref() == Some(kind) && c.status.as_deref() == Some(value))
    };
    if let Some(failure) = holds("ReplicaFailure", "True") {
        let why = failure.reason.as_deref().unwrap_or("ReplicaFailure");
        let words = failure.message.as_deref().unwrap_or_default();
        return Some(verdict(
            false,
            Reason::PodsRefused,
            format!("Deployment {name} cannot create pods ({why}): {words}"),
        ));
    }
    let stuck = holds("Progressing", "False").filter(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))?;
    let words = stuck.message.as_deref().unwrap_or_default();
    Some(verdict(false, Reason::ProgressDeadlineExceeded, format!("Deployment {name}: {words}")))
}

/// Why the first rollout still waits.
fn held_verdict(cluster: &WebCluster, migration: &MigrationPhase) -> Verdict {
    match migration {
        MigrationPhase::Failed(why) => {
            verdict(false, Reason::MigrationFailed, format!("the first migration failed: {why}"))
        }
        MigrationPhase::Pending | MigrationPhase::Running => {
            verdict(false, Reason::WaitingForMigration, "the app starts after the migration Job succeeds")
        }
        MigrationPhase::NotConfigured | MigrationPhase::Succeeded if cluster.spec.database.is_some() => {
            verdict(false, Reason::WaitingForDatabase, "the app starts when the database primary is ready")
        }
        MigrationPhase::NotConfigured | MigrationPhase::Succeeded => {
            let name = names::app(cluster.metadata.name.as_deref().unwrap_or_default());
            verdict(false, Reason::Creating, format!("Deployment {name} starts its first rollout"))
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
        return verdict(false, Reason::Creating, format!("StatefulSet {set_name} does not exist yet"));
    };
    let ready = ready_replicas(Some(set));
    let status = set.status.clone().unwrap_or_default();
    let updated = status.updated_replicas.unwrap_or(0);
    // Counts of a spec the StatefulSet controller has not seen yet describe the one before.
    let observed = status.observed_generation >= set.metadata.generation;
    if observed && ready >= desired && updated >= desired && status.replicas == desired {
        verdict(true, Reason::StatefulSetReady, format!("{ready}/{desired} {what} pods ready"))
    } else {
        verdict(
            false,
            Reason::PodsNotReady,
            format!("StatefulSet {set_name}: {ready}/{desired} {what} pods ready, {updated} updated"),
        )
    }
}

fn cache_verdict(cluster: &WebCluster, snapshot: &Snapshot) -> Verdict {
    let Some(cache) = &cluster.spec.cache else { return verdict(true, Reason::NotConfigured, "no cache asked for") };
    let name = names::cache(cluster.metadata.name.as_deref().unwrap_or_default());
    stateful_verdict(&name, snapshot.cache.as_ref(), cache.replicas, "cache")
}

fn database_verdict(cluster: &WebCluster, snapshot: &Snapshot) -> Verdict {
    let Some(db) = &cluster.spec.database else { return verdict(true, Reason::NotConfigured, "no database asked for") };
    match (&db.managed, &snapshot.external_db) {
        (Some(managed), _) => {
            let cluster_name = cluster.metadata.name.as_deref().unwrap_or_default();
            if let Some(refusal) = snapshot.primary.as_ref().and_then(|r| r.refusal.as_ref()) {
                let pod = snapshot.database_primary.clone().unwrap_or_else(|| names::database_primary(cluster_name));
                return verdict(false, Reason::PrimaryRefuses, format!("{pod} refuses to serve: {refusal}"));
            }
            if let Some(message) = no_failover_candidate(managed, snapshot) {
                return verdict(false, Reason::NoFailoverCandidate, message);
            }
            stateful_verdict(&names::database(cluster_name), snapshot.database.as_ref(), managed.pods(), "database")
        }
        (None, Some(Ok(_))) => verdict(true, Reason::ExternalDsnsRead, "the external DSNs were read"),
        (None, Some(Err(why))) => verdict(false, Reason::ExternalSecretMissing, why.clone()),
        (None, None) => verdict(false, Reason::ExternalSecretMissing, "the external DSNs were not read yet"),
    }
}

/// Why no failover can happen, when the primary that once served is not
/// ready and no replica is ready to take over.
fn no_failover_candidate(managed: &ManagedDatabase, snapshot: &Snapshot) -> Option<String> {
    snapshot.database_identity.as_ref()?;
    let primary = snapshot.database_primary.as_deref()?;
    let ready = |pod: &DatabasePod| pod.state.is_some_and(|s| s.ready);
    if managed.replicas == 0 || snapshot.database_pods.iter().any(ready) {
        return None;
    }
    Some(format!(
        "the primary {primary} is not ready and no replica is ready to take over (a replica serves only within \
         maxReplicaLagSeconds, {} s, of the primary): writes wait for {primary}; to force a primary see \
         docs/database.md (Forcing a primary)",
        managed.max_replica_lag_seconds
    ))
}

fn storage_verdict(cluster: &WebCluster, snapshot: &Snapshot) -> Verdict {
    let Some(storage) = &cluster.spec.storage else {
        return verdict(true, Reason::NotConfigured, "no shared storage asked for");
    };
    if let Some(s3) = &storage.s3 {
        return match snapshot.s3_credentials_found {
            Some(true) => verdict(true, Reason::CredentialsFound, format!("S3 bucket {}", s3.bucket)),
            _ => verdict(
                false,
                Reason::CredentialsMissing,
                format!("Secret {} not found (spec.storage.s3.credentialsSecretRef)", s3.credentials_secret_ref.name),
            ),
        };
    }
    let class = storage.volume.as_ref().and_then(|v| v.storage_class_name.clone());
    claim_verdict(snapshot.files_claim.as_ref(), class)
}

fn claim_verdict(claim: Option<&PersistentVolumeClaim>, class: Option<String>) -> Verdict {
    let Some(claim) = claim else {
        return verdict(false, Reason::ClaimMissing, "the files PersistentVolumeClaim does not exist yet");
    };
    let name = claim.metadata.name.clone().unwrap_or_default();
    match claim.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Bound") => verdict(true, Reason::ClaimBound, format!("PersistentVolumeClaim {name} is Bound")),
        phase => {
            let class = class
                .or_else(|| claim.spec.as_ref().and_then(|s| s.storage_class_name.clone()))
                .map(|c| format!("StorageClass {c}"))
                .unwrap_or_else(|| "the default StorageClass".into());
            verdict(
                false,
                Reason::ClaimPending,
                format!(
                    "PersistentVolumeClaim {name} is {}: no ReadWriteMany volume available in {class}",
                    phase.unwrap_or("Pending")
                ),
            )
        }
    }
}

fn jobs_verdict(cluster: &WebCluster, snapshot: &Snapshot, refused: &BTreeMap<String, String>) -> Verdict {
    let stuck = cluster.spec.jobs.iter().find_map(|task| {
        let active = snapshot.cron_jobs.get(&task.name)?.status.as_ref()?.active.as_ref()?;
        let job = active.iter().filter_map(|r| r.name.as_deref()).find(|job| refused.contains_key(*job))?;
        Some(format!("Job {job} of cron task {} cannot create pods: {}", task.name, refused[job]))
    });
    if let Some(message) = stuck {
        return verdict(false, Reason::PodsRefused, message);
    }
    let missing: Vec<&str> = cluster
        .spec
        .jobs
        .iter()
        .filter(|t| !snapshot.cron_jobs.contains_key(&t.name))
        .map(|t| t.name.as_str())
        .collect();
    if missing.is_empty() {
        verdict(true, Reason::CronJobsScheduled, format!("{} cron task(s) scheduled", cluster.spec.jobs.len()))
    } else {
        verdict(false, Reason::CronJobsMissing, format!("cron task(s) not created yet: {}", missing.join(", ")))
    }
}

fn migration_verdict(cluster: &WebCluster, migration: &MigrationPhase, refused: &BTreeMap<String, String>) -> Verdict {
    let image = &cluster.spec.app.image;
    let job = names::migration(cluster.metadata.name.as_deref().unwrap_or_default(), image);
    match migration {
        MigrationPhase::Running if refused.contains_key(&job) => verdict(
            false,
            Reason::PodsRefused,
            format!("the migration Job {job} for {image} cannot create pods: {}", refused[&job]),
        ),
        MigrationPhase::NotConfigured => verdict(true, Reason::NotConfigured, "no migration asked for"),
        MigrationPhase::Succeeded => verdict(true, Reason::Succeeded, format!("the migration for {image} succeeded")),
        MigrationPhase::Pending => {
            verdict(false, Reason::Pending, format!("the migration for {image} waits for the database"))
        }
        MigrationPhase::Running => {
            verdict(false, Reason::Running, format!("the migration for {image} runs; the previous image keeps serving"))
        }
        MigrationPhase::Failed(why) => verdict(
            false,
            Reason::Failed,
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
    let before = cluster.status.as_ref().and_then(|s| s.database.as_ref());
    Some(match &db.managed {
        Some(managed) => {
            let ready = ready_replicas(snapshot.database.as_ref());
            let desired = managed.pods();
            DatabaseStatus {
                write_service: Some(names::database_write(name)),
                read_service: Some(names::database_read(name)),
                primary: Some(snapshot.database_primary.clone().unwrap_or_else(|| names::database_primary(name))),
                identity: snapshot.database_identity.clone(),
                last_primary_change: snapshot
                    .primary_change
                    .clone()
                    .or_else(|| before.and_then(|d| d.last_primary_change.clone())),
                last_switchover: snapshot
                    .switchover_handled
                    .clone()
                    .or_else(|| before.and_then(|d| d.last_switchover.clone())),
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

fn migration_status(cluster: &WebCluster, migration: &MigrationPhase) -> Option<MigrationStatus> {
    cluster.spec.app.migration.as_ref()?;
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    Some(MigrationStatus {
        image: cluster.spec.app.image.clone(),
        job: names::migration(name, &cluster.spec.app.image),
        phase: migration.name().into(),
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

    mod compute {
        use k8s_openapi::api::apps::v1::{
            Deployment, DeploymentSpec, DeploymentStatus, StatefulSet, StatefulSetStatus,
        };

        use super::*;
        use crate::controller::error::Fault;

        fn cluster() -> WebCluster {
            let yaml = "app: {image: 'shop:2', replicas: 2}\ndatabase: {engine: postgresql, managed: {replicas: 1}}";
            let mut cluster = WebCluster::new("shop", serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}")));
            cluster.metadata.generation = Some(3);
            cluster
        }

        fn at(seconds: i64) -> Time {
            Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap_or_default())
        }

        fn serving(ready: i32) -> Snapshot {
            let deployment = Deployment {
                spec: DeploymentSpec { replicas: Some(2), ..DeploymentSpec::default() },
                status: Some(DeploymentStatus {
                    replicas: Some(2),
                    ready_replicas: Some(ready),
                    updated_replicas: Some(2),
                    ..DeploymentStatus::default()
                }),
                ..Deployment::default()
            };
            let database = StatefulSet {
                status: Some(StatefulSetStatus {
                    replicas: 2,
                    ready_replicas: Some(2),
                    updated_replicas: Some(2),
                    ..StatefulSetStatus::default()
                }),
                ..StatefulSet::default()
            };
            Snapshot { deployment: Some(deployment), database: Some(database), ..Snapshot::default() }
        }

        fn computed(cluster: &WebCluster, snapshot: &Snapshot, rollout: &Rollout, now: i64) -> Computed {
            compute(&StatusInput { cluster, snapshot, rollout, trouble: &Trouble::default(), now: at(now) })
        }

        const RELEASED: Rollout = Rollout { migration: MigrationPhase::NotConfigured, first_rollout_pending: false };

        fn reason(computed: &Computed, kind: ConditionType) -> (bool, Reason) {
            computed
                .verdicts
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, v)| (v.ok, v.reason))
                .unwrap_or_else(|| panic!("{kind:?}"))
        }

        #[test]
        fn every_condition_is_listed_ready_first() {
            let types: Vec<String> = computed(&cluster(), &serving(2), &RELEASED, 0)
                .status
                .conditions
                .into_iter()
                .map(|c| c.type_)
                .collect();
            assert_eq!(
                types,
                [
                    "Ready",
                    "AppReady",
                    "CacheReady",
                    "DatabaseReady",
                    "StorageReady",
                    "JobsReady",
                    "MigrationComplete",
                    "Reconciling",
                    "Stalled"
                ]
            );
        }

        #[test]
        fn a_serving_cluster_is_ready() {
            let computed = computed(&cluster(), &serving(2), &RELEASED, 0);
            assert_eq!(reason(&computed, ConditionType::Ready), (true, Reason::AllComponentsReady));
            assert_eq!(reason(&computed, ConditionType::DatabaseReady), (true, Reason::StatefulSetReady));
            let status = &computed.status;
            assert_eq!(status.observed_generation, Some(3));
            assert_eq!(
                status.selector.as_deref(),
                Some("app.kubernetes.io/component=app,app.kubernetes.io/instance=shop")
            );
            assert_eq!(
                status.database.as_ref().map(|d| (d.replicas, d.primary.clone())),
                Some((2, Some("shop-db-0".into())))
            );
        }

        #[test]
        fn ready_names_the_first_component_that_is_not() {
            let computed = computed(&cluster(), &serving(1), &RELEASED, 0);
            assert_eq!(reason(&computed, ConditionType::AppReady), (false, Reason::RollingOut));
            let ready = &computed.status.conditions[0];
            assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "AppReadyFalse"));
        }

        #[test]
        fn the_plans_rollout_state_decides_the_app_and_migration_conditions() {
            let held = Rollout { migration: MigrationPhase::Failed("exit 1".into()), first_rollout_pending: true };
            let computed = computed(&cluster(), &serving(2), &held, 0);
            assert_eq!(reason(&computed, ConditionType::AppReady), (false, Reason::MigrationFailed));
            assert_eq!(reason(&computed, ConditionType::MigrationComplete), (false, Reason::Failed));
            let waiting = Rollout { migration: MigrationPhase::NotConfigured, first_rollout_pending: true };
            assert_eq!(reason(&computed_with(&waiting), ConditionType::AppReady), (false, Reason::WaitingForDatabase));
        }

        fn computed_with(rollout: &Rollout) -> Computed {
            computed(&cluster(), &serving(2), rollout, 0)
        }

        /// `serving(2)` with every workload at generation 5, whose controllers observed `observed`.
        fn generations(observed: i64) -> Snapshot {
            let mut snapshot = serving(2);
            for meta in [
                snapshot.deployment.as_mut().map(|d| &mut d.metadata),
                snapshot.database.as_mut().map(|s| &mut s.metadata),
            ]
            .into_iter()
            .flatten()
            {
                meta.generation = Some(5);
            }
            if let Some(status) = snapshot.deployment.as_mut().and_then(|d| d.status.as_mut()) {
                status.observed_generation = Some(observed);
            }
            if let Some(status) = snapshot.database.as_mut().and_then(|s| s.status.as_mut()) {
                status.observed_generation = Some(observed);
            }
            snapshot
        }

        #[test]
        fn counts_of_a_spec_not_yet_observed_are_not_ready() {
            let current = computed(&cluster(), &generations(5), &RELEASED, 0);
            assert_eq!(reason(&current, ConditionType::Ready), (true, Reason::AllComponentsReady));
            let lagging = computed(&cluster(), &generations(4), &RELEASED, 0);
            assert_eq!(reason(&lagging, ConditionType::AppReady), (false, Reason::RollingOut));
            assert_eq!(reason(&lagging, ConditionType::DatabaseReady), (false, Reason::PodsNotReady));
            let ready = &lagging.status.conditions[0];
            assert_eq!((lagging.status.observed_generation, ready.status.as_str()), (Some(3), "False"));
        }

        #[test]
        fn a_stateful_set_is_ready_once_every_pod_runs_the_current_spec() {
            let database_reason = |change: fn(&mut StatefulSetStatus)| {
                let mut snapshot = generations(5);
                if let Some(status) = snapshot.database.as_mut().and_then(|s| s.status.as_mut()) {
                    change(status);
                }
                reason(&computed(&cluster(), &snapshot, &RELEASED, 0), ConditionType::DatabaseReady)
            };
            assert_eq!(database_reason(|_| {}), (true, Reason::StatefulSetReady));
            let rolling = database_reason(|s| s.updated_replicas = Some(1));
            assert_eq!(rolling, (false, Reason::PodsNotReady), "one pod runs the spec before");
            let scaling = database_reason(|s| s.replicas = 3);
            assert_eq!(scaling, (false, Reason::PodsNotReady), "a pod too many");
        }

        #[test]
        fn a_refusing_primary_stalls_and_the_identity_is_recorded() {
            let mut snapshot = generations(5);
            snapshot.database_identity = Some("system identifier 7".into());
            let refusal = "REFUSING to initialise an empty primary: replica shop-db-1 holds data";
            snapshot.primary = Some(crate::controller::observe::primary::Reading {
                refusal: Some(refusal.into()),
                logs_seen: true,
                ..Default::default()
            });
            let computed = computed(&cluster(), &snapshot, &RELEASED, 0);
            assert_eq!(reason(&computed, ConditionType::DatabaseReady), (false, Reason::PrimaryRefuses));
            assert_eq!(reason(&computed, ConditionType::Stalled), (true, Reason::PrimaryRefuses));
            let database = computed.status.database.unwrap_or_default();
            assert_eq!(database.identity.as_deref(), Some("system identifier 7"));
            let message =
                &computed.verdicts.iter().find(|(k, _)| *k == ConditionType::DatabaseReady).unwrap().1.message;
            assert_eq!(message, &format!("shop-db-0 refuses to serve: {refusal}"));
        }

        #[test]
        fn a_primary_down_with_no_replica_to_take_over_says_so() {
            use crate::controller::observe::pods::DatabasePod;
            use crate::controller::runtime::cache::PodState;
            let pod = |ordinal: i32, ready: bool| DatabasePod {
                name: names::database_pod("shop", ordinal),
                state: Some(PodState { ready, since: None }),
                labelled_primary: ordinal == 0,
            };
            let mut snapshot = generations(5);
            snapshot.database_identity = Some("system identifier 7".into());
            snapshot.database_primary = Some(names::database_pod("shop", 0));
            snapshot.database_pods = vec![pod(0, false), pod(1, false)];
            let stuck = computed(&cluster(), &snapshot, &RELEASED, 0);
            assert_eq!(reason(&stuck, ConditionType::DatabaseReady), (false, Reason::NoFailoverCandidate));
            let message = &stuck.verdicts.iter().find(|(k, _)| *k == ConditionType::DatabaseReady).unwrap().1.message;
            assert!(message.starts_with("the primary shop-db-0 is not ready and no replica is ready"), "{message}");
            snapshot.database_pods = vec![pod(0, false), pod(1, true)];
            let candidate = computed(&cluster(), &snapshot, &RELEASED, 0);
            assert_ne!(reason(&candidate, ConditionType::DatabaseReady).1, Reason::NoFailoverCandidate);
        }

        #[test]
        fn a_generation_just_applied_holds_ready_until_the_workloads_observe_it() {
            // The caches still show generation 5, observed; the apply returned 6.
            let applied = |kind: &'static str, _: &str| (kind == "Deployment").then_some(6);
            let snapshot = generations(5).after_apply("shop", applied);
            let computed = computed(&cluster(), &snapshot, &RELEASED, 0);
            assert_eq!(reason(&computed, ConditionType::AppReady), (false, Reason::RollingOut));
            assert_eq!(reason(&computed, ConditionType::DatabaseReady), (true, Reason::StatefulSetReady));
            let older = generations(5).after_apply("shop", |_, _| Some(4));
            assert_eq!(older.deployment.and_then(|d| d.metadata.generation), Some(5), "never lowered");
        }

        #[test]
        fn a_rejected_change_makes_ready_false() {
            let (cluster, snapshot) = (cluster(), serving(2));
            let failures = vec![(Fault::Refused, "apply Deployment shop-app: invalid".to_string())];
            let trouble = Trouble { failures, ..Trouble::default() };
            let input = StatusInput {
                cluster: &cluster,
                snapshot: &snapshot,
                rollout: &RELEASED,
                trouble: &trouble,
                now: at(0),
            };
            assert_eq!(reason(&compute(&input), ConditionType::Ready), (false, Reason::SpecRejected));
        }

        #[test]
        fn a_condition_keeps_its_transition_time_while_its_status_holds() {
            let mut cluster = cluster();
            cluster.status = Some(computed(&cluster, &serving(1), &RELEASED, 100).status);
            let later = computed(&cluster, &serving(2), &RELEASED, 200).status;
            let time =
                |kind: &str| later.conditions.iter().find(|c| c.type_ == kind).map(|c| c.last_transition_time.clone());
            assert_eq!(time("DatabaseReady"), Some(at(100)), "still True: the time stays");
            assert_eq!(time("AppReady"), Some(at(200)), "False became True: the time moves");
        }
    }
}
