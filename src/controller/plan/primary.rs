//! Whether to change the database primary. A primary not ready (or gone)
//! for `failoverDelaySeconds`, while a replica is ready to take over, is
//! failed over; never while the StatefulSet rolls out a new revision, whose
//! restarts are planned. A primary just promoted is given the time the
//! kubelet needs to see it Ready first: it was not ready a moment ago, as it
//! turned from replica to primary. A switchover the spec asks for, not handled
//! yet, goes ahead once the primary and the target are ready.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::{PrimaryChange, Switchover, WebCluster};
use crate::controller::observe::Snapshot;
use crate::controller::observe::pods::DatabasePod;
#[cfg(test)]
use crate::controller::runtime::cache::PodState;
use crate::desired::PROMOTED_READY_WITHIN;

/// The primary, and what to do about it.
#[derive(Clone, Debug, PartialEq)]
pub enum Election {
    /// The primary serves, or no replica could take over.
    Keep {
        /// The primary's pod.
        primary: String,
    },
    /// The primary is not ready: fail over if it is not back within `left`.
    Wait {
        /// The primary's pod.
        primary: String,
        /// What is left of the delay.
        left: Duration,
    },
    /// Fail over from `from` to the most advanced of `candidates`.
    FailOver {
        /// The primary that is not ready.
        from: String,
        /// The ready replicas, by ordinal.
        candidates: Vec<String>,
    },
    /// Switch over from `from` to `to`, as the switchover `request` asks.
    SwitchOver {
        /// The primary.
        from: String,
        /// The replica asked for.
        to: String,
        /// The other ready replicas, which follow `to`.
        others: Vec<String>,
        /// The request.
        request: String,
    },
    /// The switchover `request` asks for the primary there is: handled.
    SwitchedAlready {
        /// The request.
        request: String,
    },
}

/// What this operator did last to a WebCluster's primary, which its status
/// may not show yet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Remembered<'a> {
    /// The switchover request handled last.
    pub switchover: Option<&'a str>,
    /// The last change of primary.
    pub change: Option<&'a PrimaryChange>,
}

/// The election of `cluster`'s managed database at `now`; `None` without one.
pub fn of_cluster(
    cluster: &WebCluster,
    snapshot: &Snapshot,
    remembered: Remembered<'_>,
    now: Timestamp,
) -> Option<Election> {
    let managed = cluster.spec.database.as_ref()?.managed.as_ref()?;
    let pods = &snapshot.database_pods;
    let primary = pods.iter().find(|pod| Some(&pod.name) == snapshot.database_primary.as_ref())?;
    let status = snapshot.database.as_ref().and_then(|set| set.status.as_ref());
    let rolling_out = status.is_some_and(|s| s.update_revision.is_some() && s.current_revision != s.update_revision);
    let delay = Duration::from_secs(u64::try_from(managed.failover_delay_seconds).unwrap_or(0));
    let recorded = cluster.status.as_ref().and_then(|s| s.database.as_ref());
    let changes = [remembered.change, recorded.and_then(|d| d.last_primary_change.as_ref())];
    let promoted_at = changes.into_iter().flatten().filter(|c| c.to == primary.name).map(|c| c.time.0).max();
    let election = elect(pods, primary, (delay, promoted_at), rolling_out, now);
    if !matches!(election, Election::Keep { .. }) || rolling_out {
        return Some(election);
    }
    let handled = remembered.switchover.or(recorded.and_then(|d| d.last_switchover.as_deref()));
    let asked = managed.switchover.as_ref().filter(|s| Some(s.request.as_str()) != handled);
    Some(asked.and_then(|asked| switch_over(pods, primary, asked)).unwrap_or(election))
}

/// The switchover `asked` from the ready `primary`: `None` while its target
/// is not ready (it waits).
fn switch_over(pods: &[DatabasePod], primary: &DatabasePod, asked: &Switchover) -> Option<Election> {
    let request = asked.request.clone();
    let target = pods.get(usize::try_from(asked.pod).ok()?)?;
    if target.name == primary.name {
        return Some(Election::SwitchedAlready { request });
    }
    if !target.state.is_some_and(|s| s.ready) {
        return None;
    }
    let ready_replica = |pod: &&DatabasePod| pod.name != primary.name && pod.state.is_some_and(|s| s.ready);
    let others = pods.iter().filter(ready_replica).filter(|pod| pod.name != target.name);
    let others = others.map(|pod| pod.name.clone()).collect();
    Some(Election::SwitchOver { from: primary.name.clone(), to: target.name.clone(), others, request })
}

/// The election over `pods` (by ordinal), whose primary now is `primary`,
/// promoted at `promoted_at` if the operator promoted it.
pub fn elect(
    pods: &[DatabasePod],
    primary: &DatabasePod,
    (delay, promoted_at): (Duration, Option<Timestamp>),
    rolling_out: bool,
    now: Timestamp,
) -> Election {
    let keep = Election::Keep { primary: primary.name.clone() };
    let state = primary.state.unwrap_or_default();
    if state.ready || rolling_out {
        return keep;
    }
    let candidates: Vec<String> = pods
        .iter()
        .filter(|pod| pod.name != primary.name && pod.state.is_some_and(|s| s.ready))
        .map(|pod| pod.name.clone())
        .collect();
    if candidates.is_empty() {
        return keep;
    }
    let seen_ready_by = promoted_at.and_then(|at| at.checked_add(PROMOTED_READY_WITHIN).ok());
    // A kubelet's clock ahead of ours does not lengthen the delay.
    let down_since = state.since.map(|since| since.min(now)).max(seen_ready_by);
    let down_for = down_since.map_or(SignedDuration::ZERO, |since| now.duration_since(since));
    let left = SignedDuration::try_from(delay).unwrap_or(SignedDuration::MAX) - down_for;
    match Duration::try_from(left).ok().filter(|left| !left.is_zero()) {
        Some(left) => Election::Wait { primary: primary.name.clone(), left },
        None => Election::FailOver { from: primary.name.clone(), candidates },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_secs(5);

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_000_000 + second).unwrap_or_default()
    }

    fn pod(ordinal: usize, ready: bool, since: i64) -> DatabasePod {
        DatabasePod {
            name: format!("shop-db-{ordinal}"),
            state: Some(PodState { ready, since: Some(at(since)) }),
            labelled_primary: false,
        }
    }

    fn keep(ordinal: usize) -> Election {
        Election::Keep { primary: format!("shop-db-{ordinal}") }
    }

    #[test]
    fn a_primary_down_for_the_delay_with_a_ready_replica_is_failed_over() {
        let pods = [pod(0, false, 100), pod(1, true, 0), pod(2, false, 0), pod(3, true, 0)];
        assert_eq!(
            elect(&pods, &pods[0], (DELAY, None), false, at(99)),
            Election::Wait { primary: "shop-db-0".into(), left: DELAY }
        );
        let wait = elect(&pods, &pods[0], (DELAY, None), false, at(102));
        assert_eq!(wait, Election::Wait { primary: "shop-db-0".into(), left: Duration::from_secs(3) });
        let failover = elect(&pods, &pods[0], (DELAY, None), false, at(105));
        let candidates = vec!["shop-db-1".to_string(), "shop-db-3".to_string()];
        assert_eq!(failover, Election::FailOver { from: "shop-db-0".into(), candidates });
    }

    #[test]
    fn a_ready_primary_is_kept() {
        let pods = [pod(0, true, 0), pod(1, false, 0)];
        assert_eq!(
            elect(&pods, &pods[1], (DELAY, None), false, at(1000)),
            Election::FailOver { from: "shop-db-1".into(), candidates: vec!["shop-db-0".into()] }
        );
        assert_eq!(elect(&pods, &pods[0], (DELAY, None), false, at(1000)), keep(0));
    }

    #[test]
    fn no_failover_without_a_ready_replica_or_during_a_rollout() {
        let alone = [pod(0, false, 0), pod(1, false, 0)];
        assert_eq!(elect(&alone, &alone[0], (DELAY, None), false, at(1000)), keep(0));
        let rolling = [pod(0, false, 0), pod(1, true, 0)];
        assert_eq!(elect(&rolling, &rolling[0], (DELAY, None), true, at(1000)), keep(0));
    }

    #[test]
    fn a_switchover_waits_for_its_target_and_names_the_others() {
        let asked = Switchover { pod: 2, request: "maintenance".into() };
        let pods = [pod(0, true, 0), pod(1, true, 0), pod(2, false, 0)];
        assert_eq!(switch_over(&pods, &pods[0], &asked), None);
        let pods = [pod(0, true, 0), pod(1, true, 0), pod(2, true, 0)];
        let switch = Election::SwitchOver {
            from: "shop-db-0".into(),
            to: "shop-db-2".into(),
            others: vec!["shop-db-1".into()],
            request: "maintenance".into(),
        };
        assert_eq!(switch_over(&pods, &pods[0], &asked), Some(switch));
        let done = Election::SwitchedAlready { request: "maintenance".into() };
        assert_eq!(switch_over(&pods, &pods[2], &asked), Some(done));
        let beyond = Switchover { pod: 3, request: "maintenance".into() };
        assert_eq!(switch_over(&pods, &pods[0], &beyond), None);
    }

    #[test]
    fn a_primary_just_promoted_has_time_to_be_seen_ready() {
        let grace = i64::try_from(PROMOTED_READY_WITHIN.as_secs()).unwrap_or(i64::MAX);
        let promoted = Some(at(100));
        // Not ready since it turned from replica to primary, before the kubelet probed it again.
        let pods = [pod(0, false, 99), pod(1, true, 0)];
        let wait = elect(&pods, &pods[0], (DELAY, promoted), false, at(101));
        let left = DELAY + PROMOTED_READY_WITHIN - Duration::from_secs(1);
        assert_eq!(wait, Election::Wait { primary: "shop-db-0".into(), left });
        let failover = elect(&pods, &pods[0], (DELAY, promoted), false, at(100 + grace + 5));
        assert!(matches!(failover, Election::FailOver { .. }), "{failover:?}");
        // Down since after that: the delay alone.
        let pods = [pod(0, false, 200), pod(1, true, 0)];
        let failover = elect(&pods, &pods[0], (DELAY, promoted), false, at(205));
        assert!(matches!(failover, Election::FailOver { .. }), "{failover:?}");
    }

    #[test]
    fn a_primary_pod_that_is_gone_waits_the_whole_delay() {
        let gone = DatabasePod { name: "shop-db-0".into(), state: None, labelled_primary: false };
        let pods = [gone, pod(1, true, 0)];
        let election = elect(&pods, &pods[0], (DELAY, None), false, at(1000));
        assert_eq!(election, Election::Wait { primary: "shop-db-0".into(), left: DELAY });
    }
}
