//! The status never goes silent: pods the API server refused, failed
//! requests and long API errors, as Ready, Reconciling, Stalled and Events say them.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::conditions::ConditionType;
use super::events::transitions;
use super::health::Trouble;
use super::status::{Computed, StatusInput, compute, compute_failure};
use super::text::{CONDITION_MESSAGE_MAX, EVENT_NOTE_MAX};
use crate::api::WebCluster;
use crate::controller::error::Fault;
use crate::controller::observe::Snapshot;
use crate::controller::plan::{MigrationPhase, Rollout};

fn cluster(yaml: &str) -> WebCluster {
    let mut cluster = WebCluster::new("shop", serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}")));
    cluster.metadata.generation = Some(2);
    cluster
}

const RELEASED: Rollout = Rollout { migration: MigrationPhase::NotConfigured, first_rollout_pending: false };

fn status_of(cluster: &WebCluster, snapshot: &Snapshot, rollout: &Rollout, trouble: &Trouble) -> Computed {
    let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    compute(&StatusInput { cluster, snapshot, rollout, trouble, now })
}

/// `(status, reason, message)` of condition `kind`.
fn said(computed: &Computed, kind: &str) -> (String, String, String) {
    let c = computed.status.conditions.iter().find(|c| c.type_ == kind).unwrap_or_else(|| panic!("no {kind}"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// A Deployment whose ReplicaSet's pods Pod Security Admission refused.
fn refused_deployment() -> Deployment {
    let refused = DeploymentCondition {
        type_: Some("ReplicaFailure".into()),
        status: Some("True".into()),
        reason: Some("FailedCreate".into()),
        message: Some(
            r#"pods "shop-app-5d8f" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true"#
                .into(),
        ),
        ..DeploymentCondition::default()
    };
    let status = DeploymentStatus { conditions: Some(vec![refused]), ..DeploymentStatus::default() };
    Deployment { status: Some(status), ..Deployment::default() }
}

#[test]
fn pods_refused_to_a_deployment_stall_with_the_api_words() {
    let cluster = cluster("app: {image: 'shop:2', replicas: 2}");
    let snapshot = Snapshot { deployment: Some(refused_deployment()), ..Snapshot::default() };
    let computed = status_of(&cluster, &snapshot, &RELEASED, &Trouble::default());
    let (status, reason, message) = said(&computed, "AppReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "PodsRefused"));
    assert!(message.contains("Deployment shop-app cannot create pods (FailedCreate)"), "{message}");
    assert!(message.contains("violates PodSecurity"), "{message}");
    assert_eq!(said(&computed, "Ready").1, "AppReadyFalse");
    assert_eq!(said(&computed, "Stalled").0, "True");
    assert_eq!(said(&computed, "Stalled").1, "PodsRefused");
    assert_eq!(said(&computed, "Reconciling").0, "False");
}

#[test]
fn a_migration_job_without_pods_says_why() {
    let cluster = cluster("app: {image: 'shop:2', migration: {command: [migrate]}}");
    let job = names_migration(&cluster);
    let snapshot = Snapshot { migration_job: Some(Job::default()), ..Snapshot::default() };
    let rollout = Rollout { migration: MigrationPhase::Running, first_rollout_pending: true };
    let trouble = Trouble { refused_pods: [(job.clone(), "exceeded quota: q".into())].into(), ..Trouble::default() };
    let computed = status_of(&cluster, &snapshot, &rollout, &trouble);
    let (status, reason, message) = said(&computed, "MigrationComplete");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "PodsRefused"));
    assert!(message.contains(&job) && message.contains("exceeded quota: q"), "{message}");
    let (_, ready_reason, ready_message) = said(&computed, "Ready");
    assert_eq!(ready_reason, "MigrationCompleteFalse", "the stall, not the app waiting for it");
    assert_eq!(ready_message, message);
    assert_eq!(said(&computed, "Stalled").1, "PodsRefused");
}

fn names_migration(cluster: &WebCluster) -> String {
    crate::desired::names::migration("shop", &cluster.spec.app.image)
}

#[test]
fn a_cron_job_stuck_without_pods_is_not_jobs_ready() {
    let cluster = cluster("app: {image: 'shop:2'}\njobs: [{name: clean, schedule: '0 * * * *', command: [clean]}]");
    let active = ObjectReference { name: Some("shop-clean-29000000".into()), ..ObjectReference::default() };
    let cron = CronJob {
        status: Some(CronJobStatus { active: Some(vec![active]), ..CronJobStatus::default() }),
        ..CronJob::default()
    };
    let snapshot = Snapshot { cron_jobs: [("clean".to_string(), cron)].into(), ..Snapshot::default() };
    let refused = [("shop-clean-29000000".to_string(), "forbidden: violates PodSecurity".to_string())];
    let trouble = Trouble { refused_pods: refused.into(), ..Trouble::default() };
    let computed = status_of(&cluster, &snapshot, &RELEASED, &trouble);
    let (status, reason, message) = said(&computed, "JobsReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "PodsRefused"));
    assert!(message.contains("Job shop-clean-29000000 of cron task clean"), "{message}");
}

/// An API error as long as the one seen in the issue (3 057 characters), with multibyte characters.
fn long_api_error() -> String {
    format!(
        "apply StatefulSet shop-db (HTTP 422): StatefulSet.apps \"shop-db\" is invalid: {}",
        "spec: Forbidden: é ".repeat(170)
    )
}

#[test]
fn a_long_api_error_is_cut_for_the_condition_and_the_event() {
    let cluster = cluster("app: {image: 'shop:2'}");
    let snapshot = Snapshot { deployment: Some(Deployment::default()), ..Snapshot::default() };
    let trouble = Trouble { failures: vec![(Fault::Refused, long_api_error())], ..Trouble::default() };
    assert!(long_api_error().len() > 3000);
    let computed = status_of(&cluster, &snapshot, &RELEASED, &trouble);
    for condition in &computed.status.conditions {
        assert!(condition.message.len() <= CONDITION_MESSAGE_MAX, "{}: {}", condition.type_, condition.message.len());
    }
    let (_, reason, message) = said(&computed, "Ready");
    assert_eq!(reason, "SpecRejected");
    assert!(
        message.starts_with("the API server refused a change; fix the spec: apply StatefulSet shop-db (HTTP 422)"),
        "{message}"
    );
    let events = transitions(&[], &computed.verdicts);
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    assert!(reasons.contains(&"SpecRejected"), "{reasons:?}");
    for event in &events {
        let note = event.note.as_deref().unwrap_or_default();
        assert!(note.len() <= EVENT_NOTE_MAX, "{}", note.len());
    }
}

#[test]
fn every_failure_has_an_event_even_on_the_first_status() {
    let cluster = cluster("app: {image: 'shop:2'}");
    let snapshot = Snapshot { deployment: Some(Deployment::default()), ..Snapshot::default() };
    for (fault, reason) in
        [(Fault::Refused, "SpecRejected"), (Fault::Forbidden, "Forbidden"), (Fault::Transient, "ApplyFailed")]
    {
        // A transient failure shows from its second attempt.
        let attempts = u32::from(fault == Fault::Transient);
        let trouble =
            Trouble { failures: vec![(fault, "apply Service shop-app: no".into())], attempts, ..Trouble::default() };
        let computed = status_of(&cluster, &snapshot, &RELEASED, &trouble);
        assert_eq!(said(&computed, "Ready").1, reason);
        let events: Vec<String> = transitions(&[], &computed.verdicts).into_iter().map(|e| e.reason).collect();
        assert_eq!(events, [reason], "{fault:?}");
        let again = transitions(&computed.status.conditions, &computed.verdicts);
        assert!(again.is_empty(), "the same failure again is no new Event");
    }
}

#[test]
fn a_failure_before_the_snapshot_keeps_the_rest_of_the_status() {
    let mut cluster = cluster("app: {image: 'shop:2'}");
    let snapshot = Snapshot { deployment: Some(Deployment::default()), ..Snapshot::default() };
    cluster.status = Some(status_of(&cluster, &snapshot, &RELEASED, &Trouble::default()).status);
    cluster.metadata.generation = Some(3);
    let trouble =
        Trouble { failures: vec![(Fault::Forbidden, "get Secret shop-s3: forbidden".into())], ..Trouble::default() };
    let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    let computed = compute_failure(&cluster, &trouble, &now).expect("a forbidden request is shown at once");
    assert_eq!(computed.status.observed_generation, Some(3));
    assert_eq!(said(&computed, "Ready").1, "Forbidden");
    assert_eq!(said(&computed, "Stalled").0, "True");
    assert_eq!(
        said(&computed, "AppReady"),
        said(&status_of(&cluster, &snapshot, &RELEASED, &Trouble::default()), "AppReady")
    );
    let kinds: Vec<ConditionType> = computed.verdicts.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, [ConditionType::Ready, ConditionType::Reconciling, ConditionType::Stalled]);
}

#[test]
fn a_secret_the_app_needs_and_does_not_find_stalls() {
    let cluster = cluster("app: {image: 'shop:2'}");
    let snapshot = Snapshot { deployment: Some(Deployment::default()), ..Snapshot::default() };
    let missing = vec!["Secret mail not found (spec.app.envFrom)".to_string()];
    let trouble = Trouble { missing_secrets: missing, ..Trouble::default() };
    let computed = status_of(&cluster, &snapshot, &RELEASED, &trouble);
    let (status, reason, message) = said(&computed, "AppReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "SecretMissing"));
    assert!(message.starts_with("Secret mail not found (spec.app.envFrom)"), "{message}");
    assert_eq!(said(&computed, "Stalled").1, "SecretMissing");
    let events: Vec<String> = transitions(&[], &computed.verdicts).into_iter().map(|e| e.reason).collect();
    assert_eq!(events, ["SecretMissing"]);
}
