//! Kubernetes Events on meaningful transitions: a condition that flips, not
//! every reconcile. The recorder aggregates repeats into series.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};

use super::conditions::{ConditionType, Reason, Verdict};
use super::text::{EVENT_NOTE_MAX, cut};
use crate::api::WebCluster;
use crate::controller::apply::failover::{Cause, FailoverError, Promotion};

/// An Event for each condition whose status changed between `before` (the
/// conditions as written) and `after` (the new verdicts), and a Warning for
/// every new reason to stall or to retry, the first status included: no
/// failure goes without an Event.
pub fn transitions(before: &[Condition], after: &[(ConditionType, Verdict)]) -> Vec<Event> {
    let first = before.is_empty();
    let old = |kind: ConditionType| before.iter().find(|c| c.type_ == kind.as_str());
    after
        .iter()
        .filter_map(|(kind, v)| {
            let flipped = old(*kind).is_none_or(|c| (c.status == "True") != v.ok);
            let new_reason = flipped || old(*kind).is_some_and(|c| c.reason != v.reason.to_string());
            match kind {
                ConditionType::Stalled => (v.ok && new_reason).then(|| warning(*kind, v)),
                ConditionType::Reconciling => None,
                ConditionType::Ready if !v.ok && new_reason && v.reason == Reason::ApplyFailed => {
                    Some(warning(*kind, v))
                }
                _ if flipped => event_for(*kind, v, first),
                _ => None,
            }
        })
        .collect()
}

/// A Warning named after the verdict's reason.
fn warning(kind: ConditionType, v: &Verdict) -> Event {
    event(EventType::Warning, v.reason.to_string(), kind, v)
}

fn event(type_: EventType, reason: String, kind: ConditionType, v: &Verdict) -> Event {
    Event {
        type_,
        reason,
        note: Some(cut(&format!("{}: {}", kind.as_str(), v.message), EVENT_NOTE_MAX)),
        action: "Reconcile".into(),
        secondary: None,
    }
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
    Some(event(type_, reason.into(), kind, v))
}

/// The Event of a change of primary from `from`: what became of it, with
/// its figures. It relates to the pod promoted, at its resourceVersion once
/// labelled (or `from`, when none was): the recorder counts repeats of one
/// Event, so each promotion gets an Event of its own.
pub fn primary_change(namespace: &str, from: &str, cause: &Cause, outcome: &Result<Promotion, FailoverError>) -> Event {
    let why = match cause {
        Cause::Failover => format!("{from} was not ready"),
        Cause::Switchover(request) => format!("switchover {request} from {from}"),
    };
    let (type_, reason, note) = match (outcome, cause) {
        (Ok(done), _) => {
            let fencing = done.fencing.as_secs_f64();
            let fenced = done.unfenced.as_ref().map_or_else(
                || format!("fenced in {fencing:.1} s"),
                |why| format!("not fenced ({why}, {fencing:.1} s)"),
            );
            let note = format!(
                "{why}: {} (position {}) promoted in {:.1} s; {from} {fenced}; {} replica(s) repointed",
                done.to,
                done.position,
                done.took.as_secs_f64(),
                done.repointed
            );
            let reason = if *cause == Cause::Failover { "FailedOver" } else { "SwitchedOver" };
            (EventType::Normal, reason, note)
        }
        (Err(error), Cause::Failover) => (EventType::Warning, "FailoverFailed", format!("{why}: {error}")),
        (Err(error), Cause::Switchover(_)) => {
            (EventType::Warning, "SwitchoverFailed", format!("{why}: {error}; change the request to try again"))
        }
    };
    let related = match outcome {
        Ok(done) => ObjectReference { resource_version: done.version.clone(), ..pod_reference(namespace, &done.to) },
        Err(_) => pod_reference(namespace, from),
    };
    failover_event(type_, reason, &note, related)
}

/// The Event of a former primary `pod` found running as a primary after the
/// failover to `primary`, and fenced again.
pub fn late_fence(namespace: &str, pod: &str, primary: &str) -> Event {
    let note = format!("{pod} ran as a primary after the failover to {primary}: fenced again, to rejoin as a replica");
    failover_event(EventType::Warning, "FormerPrimaryFenced", &note, pod_reference(namespace, pod))
}

fn failover_event(type_: EventType, reason: &str, note: &str, related: ObjectReference) -> Event {
    let note = Some(cut(note, EVENT_NOTE_MAX));
    Event { type_, reason: reason.into(), note, action: "Failover".into(), secondary: Some(related) }
}

fn pod_reference(namespace: &str, pod: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(pod.into()),
        namespace: Some(namespace.into()),
        ..ObjectReference::default()
    }
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
