//! Kubernetes Events on meaningful transitions: a condition that flips, not
//! every reconcile. The recorder aggregates repeats into series.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};

use crate::api::WebCluster;

/// An Event for each condition whose status changed between `before` and `after`.
pub fn transitions(before: &[Condition], after: &[Condition]) -> Vec<Event> {
    after
        .iter()
        .filter(|new| before.iter().find(|old| old.type_ == new.type_).is_none_or(|old| old.status != new.status))
        .filter_map(|new| event_for(new, before.is_empty()))
        .collect()
}

fn event_for(condition: &Condition, first: bool) -> Option<Event> {
    let ok = condition.status == "True";
    let (type_, reason) = match (condition.type_.as_str(), ok) {
        ("Ready", true) => (EventType::Normal, if first { "Ready" } else { "Recovered" }),
        ("Ready", false) if first => (EventType::Normal, "Created"),
        ("Ready", false) => (EventType::Warning, "Degraded"),
        ("AppReady", false) if condition.reason == "RollingOut" => (EventType::Normal, "RolloutStarted"),
        ("AppReady", true) => (EventType::Normal, "RolloutFinished"),
        ("MigrationComplete", false) if condition.reason == "Failed" => (EventType::Warning, "MigrationFailed"),
        ("MigrationComplete", false) if condition.reason == "Running" => (EventType::Normal, "MigrationStarted"),
        ("MigrationComplete", true) if condition.reason == "Succeeded" => (EventType::Normal, "MigrationSucceeded"),
        (_, false) if !first => (EventType::Warning, "ComponentNotReady"),
        _ => return None,
    };
    Some(Event {
        type_,
        reason: reason.into(),
        note: Some(format!("{}: {}", condition.type_, condition.message)),
        action: "Reconcile".into(),
        secondary: None,
    })
}

/// Publishes events; a failure to record one is logged, never fatal.
pub async fn publish(recorder: &Recorder, cluster: &WebCluster, events: Vec<Event>) {
    let reference = cluster.object_ref(&());
    for event in events {
        if let Err(error) = recorder.publish(&event, &reference).await {
            tracing::warn!(cluster = %cluster.name_any(), %error, reason = %event.reason, "could not record an Event");
        }
    }
}
