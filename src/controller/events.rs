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

/// The Event for a condition that changed; the first status only reports readiness.
fn event_for(condition: &Condition, first: bool) -> Option<Event> {
    let ok = condition.status == "True";
    let (type_, reason) = match (condition.type_.as_str(), ok) {
        ("Ready", true) => (EventType::Normal, "Ready"),
        ("Ready", false) if first => return None,
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

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn conditions(ready: &str, app: &str) -> Vec<Condition> {
        [("Ready", ready), ("AppReady", app)]
            .into_iter()
            .map(|(kind, status)| Condition {
                type_: kind.into(),
                status: status.into(),
                reason: "Reason".into(),
                message: "message".into(),
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                observed_generation: None,
            })
            .collect()
    }

    fn reasons(before: &[Condition], after: &[Condition]) -> Vec<String> {
        transitions(before, after).into_iter().map(|e| e.reason).collect()
    }

    #[test]
    fn the_first_status_reports_only_readiness() {
        assert!(reasons(&[], &conditions("False", "False")).is_empty());
        assert_eq!(reasons(&[], &conditions("True", "True")), ["Ready", "RolloutFinished"]);
    }

    #[test]
    fn later_changes_say_what_changed() {
        assert_eq!(reasons(&conditions("False", "True"), &conditions("True", "True")), ["Ready"]);
        assert_eq!(
            reasons(&conditions("True", "True"), &conditions("False", "False")),
            ["Degraded", "ComponentNotReady"]
        );
        assert!(reasons(&conditions("True", "True"), &conditions("True", "True")).is_empty(), "no change, no Event");
    }
}
