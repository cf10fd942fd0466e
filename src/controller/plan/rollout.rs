//! Ordering decisions: which image the app runs, when the migration runs, and
//! whether the CronJobs pause. Pure functions of the spec and the snapshot.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;

use super::{Planned, Rollout};
use crate::api::WebCluster;
use crate::controller::observe::Snapshot;
use crate::desired::{ExternalUrls, HOLD_ANNOTATION, Plan, names};

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
    deployment?.spec.template.spec.as_ref()?.containers.iter().find(|c| c.name == names::APP_CONTAINER)?.image.clone()
}

/// Ready pods of a StatefulSet.
pub fn ready_replicas(set: Option<&StatefulSet>) -> i32 {
    set.and_then(|s| s.status.as_ref()).and_then(|s| s.ready_replicas).unwrap_or(0)
}

/// The database can take the app: the primary is ready (or the DSNs were read).
fn database_ready(cluster: &WebCluster, snapshot: &Snapshot) -> bool {
    match &cluster.spec.database {
        None => true,
        Some(db) if db.managed.is_some() => ready_replicas(snapshot.database.as_ref()) >= 1,
        Some(_) => matches!(snapshot.external_db, Some(Ok(_))),
    }
}

/// The migration Job's phase from its status.
fn migration_phase(cluster: &WebCluster, snapshot: &Snapshot) -> MigrationPhase {
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

/// The app's first rollout has not happened: the Deployment does not exist
/// yet or still carries the hold annotation.
fn first_rollout_pending(deployment: Option<&Deployment>) -> bool {
    deployment.is_none_or(|d| d.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(HOLD_ANNOTATION)))
}

/// The decisions for the builder (generated values, DSNs, the serving image,
/// whether the first rollout waits and a migration runs) and, for the status,
/// where the rollout stands.
pub fn decide(cluster: &WebCluster, snapshot: &Snapshot, generated: BTreeMap<String, String>) -> Planned {
    let db_ready = database_ready(cluster, snapshot);
    let phase = migration_phase(cluster, snapshot);
    let image_may_serve = matches!(phase, MigrationPhase::NotConfigured | MigrationPhase::Succeeded);
    let first_rollout = first_rollout_pending(snapshot.deployment.as_ref());
    let serving_image = match current_image(snapshot.deployment.as_ref()) {
        // A pending, running or failed migration keeps the old version serving.
        Some(old) if !first_rollout && !image_may_serve => old,
        _ => cluster.spec.app.image.clone(),
    };
    let plan = Plan {
        generated,
        external_db: snapshot.external_db.clone().and_then(Result::ok).or_else(|| placeholder_external(cluster)),
        serving_image,
        hold_first_rollout: first_rollout && !(db_ready && image_may_serve),
        migration_running: phase == MigrationPhase::Running,
        start_migration: db_ready || snapshot.migration_job.is_some(),
        withhold_credentials: false,
        database_identity: snapshot.database_identity.clone(),
        database_primary: snapshot.database_primary.clone(),
    };
    Planned { plan, rollout: Rollout { migration: phase, first_rollout_pending: first_rollout } }
}

/// Without readable external DSNs the Secret keeps empty values (the status says why).
fn placeholder_external(cluster: &WebCluster) -> Option<ExternalUrls> {
    Some(ExternalUrls::empty(cluster.spec.database.as_ref()?.external.as_ref()?))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentSpec, StatefulSetStatus};
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

    use super::*;

    fn cluster(migration: bool) -> WebCluster {
        let migration = if migration { ", migration: {command: [migrate]}" } else { "" };
        let yaml = format!("app: {{image: 'shop:2'{migration}}}\ndatabase: {{engine: postgresql, managed: {{}}}}");
        WebCluster::new("shop", serde_saphyr::from_str(&yaml).expect("valid spec"))
    }

    fn deployment(image: &str, held: bool) -> Deployment {
        let mut deployment = Deployment {
            spec: DeploymentSpec {
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: names::APP_CONTAINER.into(),
                            image: Some(image.into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        };
        if held {
            deployment.metadata.annotations = Some([(HOLD_ANNOTATION.to_string(), "held".to_string())].into());
        }
        deployment
    }

    fn snapshot(deployment: Option<Deployment>, database_ready: bool) -> Snapshot {
        let ready = StatefulSetStatus { ready_replicas: Some(i32::from(database_ready)), ..Default::default() };
        Snapshot {
            deployment,
            database: Some(StatefulSet { status: Some(ready), ..Default::default() }),
            ..Snapshot::default()
        }
    }

    fn plan(cluster: &WebCluster, snapshot: &Snapshot) -> Plan {
        decide(cluster, snapshot, BTreeMap::new()).plan
    }

    fn plan_of(snapshot: &Snapshot) -> Plan {
        plan(&cluster(false), snapshot)
    }

    #[test]
    fn the_first_rollout_waits_for_the_database() {
        let observed = plan(&cluster(false), &snapshot(None, false));
        assert!(observed.hold_first_rollout);
        assert_eq!(observed.serving_image, "shop:2");
        let held = snapshot(Some(deployment("shop:2", true)), false);
        assert!(plan_of(&held).hold_first_rollout, "a held Deployment stays held");
    }

    #[test]
    fn a_ready_database_releases_the_held_deployment() {
        assert!(!plan_of(&snapshot(Some(deployment("shop:2", true)), true)).hold_first_rollout);
    }

    #[test]
    fn a_released_deployment_is_never_held_again() {
        let observed = plan_of(&snapshot(Some(deployment("shop:2", false)), false));
        assert!(!observed.hold_first_rollout, "a database outage must not scale the app to zero");
    }

    #[test]
    fn a_pending_migration_holds_the_first_rollout_and_keeps_the_old_image_later() {
        let first = plan(&cluster(true), &snapshot(None, true));
        assert!(first.hold_first_rollout && first.start_migration);
        let later = plan(&cluster(true), &snapshot(Some(deployment("shop:1", false)), true));
        assert!(!later.hold_first_rollout);
        assert_eq!(later.serving_image, "shop:1", "the old image serves until the migration succeeds");
    }
}
