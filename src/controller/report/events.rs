//! Kubernetes Events on meaningful transitions: a condition that flips, not
//! every reconcile. The recorder aggregates repeats into series.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};

use super::conditions::{ConditionType, Reason, Verdict};
use crate::api::WebCluster;

/// An Event for each condition whose status changed between `before` (the
/// conditions as written) and `after` (the new verdicts).
pub fn transitions(before: &[Condition], after: &[(ConditionType, Verdict)]) -> Vec<Event> {
    let first = before.is_empty();
    after
        .iter()
        .filter(|(kind, v)| {
            before.iter().find(|old| old.type_ == kind.as_str()).is_none_or(|old| (old.status == "True") != v.ok)
        })
        .filter_map(|(kind, v)| event_for(*kind, v, first))
        .collect()
}

/// The Event for a condition that changed. The first status reports only what
/// is ready, never what is still coming up.
fn event_for(kind: ConditionType, v: &Verdict, first: bool) -> Option<Event> {
    use ConditionType as C;
    let (type_, reason) = match (kind, v.ok, v.reason) {
        (C::Ready, true, _) => (EventType::Normal, "Ready"),
        (C::AppReady, true, _) => (EventType::Normal, "RolloutFinished"),
        (C::MigrationComplete, true, Reason::Succeeded) => (EventType::Normal, "MigrationSucceeded"),
        _ if first => return None,
        (C::Ready, false, _) => (EventType::Warning, "Degraded"),
        (C::AppReady, false, Reason::RollingOut) => (EventType::Normal, "RolloutStarted"),
        (C::MigrationComplete, false, Reason::Failed) => (EventType::Warning, "MigrationFailed"),
        (C::MigrationComplete, false, Reason::Running) => (EventType::Normal, "MigrationStarted"),
        (_, false, _) => (EventType::Warning, "ComponentNotReady"),
        (_, true, _) => return None,
    };
    Some(Event {
        type_,
        reason: reason.into(),
        note: Some(format!("{}: {}", kind.as_str(), v.message)),
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
    use crate::controller::report::conditions::verdict;

    /// Ready, AppReady and MigrationComplete as verdicts with these reasons.
    fn after(ready: bool, app: (bool, Reason), migration: (bool, Reason)) -> Vec<(ConditionType, Verdict)> {
        vec![
            (ConditionType::Ready, verdict(ready, Reason::AllComponentsReady, "m")),
            (ConditionType::AppReady, verdict(app.0, app.1, "m")),
            (ConditionType::MigrationComplete, verdict(migration.0, migration.1, "m")),
        ]
    }

    /// The conditions as status wrote `after`.
    fn written(after: &[(ConditionType, Verdict)]) -> Vec<Condition> {
        after
            .iter()
            .map(|(kind, v)| Condition {
                type_: kind.as_str().into(),
                status: if v.ok { "True" } else { "False" }.into(),
                reason: v.reason.to_string(),
                message: v.message.clone(),
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                observed_generation: None,
            })
            .collect()
    }

    fn reasons(before: &[Condition], after: &[(ConditionType, Verdict)]) -> Vec<String> {
        transitions(before, after).into_iter().map(|e| e.reason).collect()
    }

    const DONE: (bool, Reason) = (true, Reason::Succeeded);

    #[test]
    fn the_first_status_reports_only_readiness() {
        let coming_up = after(false, (false, Reason::RollingOut), (false, Reason::Running));
        assert!(reasons(&[], &coming_up).is_empty(), "{:?}", reasons(&[], &coming_up));
        let failed = after(false, (false, Reason::MigrationFailed), (false, Reason::Failed));
        assert!(reasons(&[], &failed).is_empty(), "{:?}", reasons(&[], &failed));
        let ready = after(true, (true, Reason::DeploymentReady), DONE);
        assert_eq!(reasons(&[], &ready), ["Ready", "RolloutFinished", "MigrationSucceeded"]);
    }

    #[test]
    fn later_changes_say_what_changed() {
        let ready = after(true, (true, Reason::DeploymentReady), DONE);
        let starting = after(false, (true, Reason::DeploymentReady), DONE);
        assert_eq!(reasons(&written(&starting), &ready), ["Ready"]);
        let rolling = after(false, (false, Reason::RollingOut), DONE);
        assert_eq!(reasons(&written(&ready), &rolling), ["Degraded", "RolloutStarted"]);
        let broken = after(false, (false, Reason::PodsNotReady), (false, Reason::Failed));
        assert_eq!(reasons(&written(&ready), &broken), ["Degraded", "ComponentNotReady", "MigrationFailed"]);
        assert!(reasons(&written(&ready), &ready).is_empty(), "no change, no Event");
    }
}
