//! Failovers and switchovers as the controller runs them, and what it keeps
//! between reconciles about each WebCluster's: the primary it promoted last
//! (until the caches show its label) and the former primary it has not yet
//! seen run as a replica.
//!
//! A former primary's pod can come back (recreated, or its container
//! restarted) in the role it had when its container was created, before the
//! failover moved its label; its fence can reach it before its agent runs.
//! So the operator asks it (`start.sh position`) until it says replica, and
//! fences it again each time it says primary: a pod not labelled primary
//! never keeps serving as one.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use kube::Client;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::failover::{self, Cause, Recheck};
use crate::api::{PrimaryChange, WebCluster};
use crate::controller::plan::primary::Election;
use crate::controller::report::Reporter;
use crate::controller::runtime::cache::ChildCaches;
use crate::desired::{self, ROLE_LABEL, ROLE_PRIMARY};

/// How soon a former primary that did not say replica is asked again, at
/// most: the wait doubles from one second with each answer that is not one.
const RECHECK_MAX: Duration = Duration::from_secs(30);

/// What a change of primary did.
#[derive(Debug, Default)]
pub struct Changed {
    /// The new primary, when one was promoted.
    pub primary: Option<String>,
    /// Its record for the status.
    pub change: Option<PrimaryChange>,
    /// The switchover request handled (carried out, failed, or found done).
    pub switchover: Option<String>,
}

/// A former primary not yet seen as a replica.
#[derive(Clone, Debug)]
struct Former {
    pod: String,
    /// The new primary, for the Event of a late fence.
    primary: String,
    /// Answers so far that were not "replica".
    asked: u32,
}

/// The failovers' memory, by WebCluster uid.
#[derive(Default)]
pub struct Failovers {
    promoted: Mutex<HashMap<String, String>>,
    changes: Mutex<HashMap<String, PrimaryChange>>,
    switchovers: Mutex<HashMap<String, String>>,
    former: Mutex<HashMap<String, Former>>,
}

impl Failovers {
    /// Forgets the WebCluster `uid`.
    pub fn forget(&self, uid: &str) {
        self.retain_by(|key| key != uid);
    }

    /// Forgets every WebCluster but `live`.
    pub fn retain(&self, live: &HashSet<String>) {
        self.retain_by(|uid| live.contains(uid));
    }

    fn retain_by(&self, keep: impl Fn(&str) -> bool) {
        if let Ok(mut promoted) = self.promoted.lock() {
            promoted.retain(|uid, _| keep(uid));
        }
        if let Ok(mut former) = self.former.lock() {
            former.retain(|uid, _| keep(uid));
        }
        if let Ok(mut changes) = self.changes.lock() {
            changes.retain(|uid, _| keep(uid));
        }
        if let Ok(mut switchovers) = self.switchovers.lock() {
            switchovers.retain(|uid, _| keep(uid));
        }
    }

    /// The switchover request this operator handled last for the WebCluster
    /// `uid`: its status may not show it yet, and it must not run twice.
    pub fn switchover_handled(&self, uid: &str) -> Option<String> {
        self.switchovers.lock().ok()?.get(uid).cloned()
    }

    /// The last change of primary this operator made to the WebCluster `uid`.
    pub fn last_change(&self, uid: &str) -> Option<PrimaryChange> {
        self.changes.lock().ok()?.get(uid).cloned()
    }

    fn handled(&self, uid: &str, request: &str) {
        if let Ok(mut switchovers) = self.switchovers.lock() {
            switchovers.insert(uid.to_string(), request.to_string());
        }
    }

    /// The primary the last failover promoted while the caches do not show
    /// its label yet; from then on the labels tell (a person may move them).
    pub fn promoted(&self, caches: &ChildCaches, namespace: &str, uid: &str) -> Option<String> {
        let mut promoted = self.promoted.lock().ok()?;
        let pod = promoted.get(uid)?.clone();
        if caches.pod_has_label(namespace, &pod, ROLE_LABEL, ROLE_PRIMARY) == Some(true) {
            promoted.remove(uid);
            return None;
        }
        Some(pod)
    }

    /// Changes `cluster`'s primary as `election` says (nothing unless it
    /// says so) and records the Event; what changed, for the plan and the status.
    pub async fn change_primary(
        &self,
        (client, reporter): (&Client, &Reporter),
        cluster: &WebCluster,
        (namespace, name, uid): (&str, &str, &str),
        election: Option<Election>,
    ) -> Option<Changed> {
        let database = database(client, cluster, namespace, name)?;
        let (from, cause, outcome) = match election? {
            Election::FailOver { from, candidates } => {
                tracing::warn!(namespace, name, primary = %from, ?candidates, "the database primary is not ready: failing over");
                let outcome = database.fail_over(&from, &candidates).await;
                (from, Cause::Failover, outcome)
            }
            Election::SwitchOver { from, to, others, request } => {
                tracing::info!(namespace, name, from = %from, to = %to, %request, "switching the database primary over");
                let outcome = database.switch_over(&from, &to, &others).await;
                (from, Cause::Switchover(request), outcome)
            }
            Election::SwitchedAlready { request } => {
                self.handled(uid, &request);
                return Some(Changed { switchover: Some(request), ..Changed::default() });
            }
            Election::Keep { .. } | Election::Wait { .. } => return None,
        };
        reporter.primary_change(cluster, &from, &cause, &outcome).await;
        let switchover = match cause {
            Cause::Switchover(request) => {
                self.handled(uid, &request);
                Some(request)
            }
            Cause::Failover => None,
        };
        let promotion = match outcome {
            Ok(promotion) => promotion,
            Err(error) => {
                tracing::warn!(namespace, name, from = %from, %error, "the primary did not change");
                return Some(Changed { switchover, ..Changed::default() });
            }
        };
        tracing::info!(namespace, name, from = %from, to = %promotion.to, took = ?promotion.took, "the primary changed");
        if let Ok(mut promoted) = self.promoted.lock() {
            promoted.insert(uid.to_string(), promotion.to.clone());
        }
        let former = Former { pod: from.clone(), primary: promotion.to.clone(), asked: 0 };
        if let Ok(mut formers) = self.former.lock() {
            formers.insert(uid.to_string(), former);
        }
        let kind = if switchover.is_some() { "Switchover" } else { "Failover" };
        let change = PrimaryChange {
            kind: kind.into(),
            from,
            to: promotion.to.clone(),
            position: i64::try_from(promotion.position).unwrap_or(i64::MAX),
            duration_millis: i64::try_from(promotion.took.as_millis()).unwrap_or(i64::MAX),
            time: Time(Timestamp::now()),
        };
        if let Ok(mut changes) = self.changes.lock() {
            changes.insert(uid.to_string(), change.clone());
        }
        Some(Changed { primary: Some(promotion.to), change: Some(change), switchover })
    }

    /// Asks `cluster`'s former primary, if one is not yet seen as a replica,
    /// what it runs as, and fences it when it runs as a primary. Returns when
    /// to ask again; `None` once it said replica, while its pod does not
    /// exist (its creation triggers a reconcile), or without a former primary.
    pub async fn recheck_former(
        &self,
        (client, caches, reporter): (&Client, &ChildCaches, &Reporter),
        cluster: &WebCluster,
        (namespace, name, uid): (&str, &str, &str),
    ) -> Option<Duration> {
        let former = self.former.lock().ok()?.get(uid).cloned()?;
        // A person (or a later failover) made it the primary: nothing to check.
        let labelled_primary = caches.pod_has_label(namespace, &former.pod, ROLE_LABEL, ROLE_PRIMARY);
        if labelled_primary == Some(true) {
            self.settle(uid, &former.pod);
            return None;
        }
        labelled_primary?;
        let database = database(client, cluster, namespace, name)?;
        match database.recheck(&former.pod).await {
            Recheck::Replica => {
                tracing::info!(namespace, name, pod = %former.pod, "the former primary runs as a replica");
                self.settle(uid, &former.pod);
                return None;
            }
            Recheck::Fenced => {
                tracing::warn!(namespace, name, pod = %former.pod, "the former primary ran as a primary: fenced");
                reporter.late_fence(cluster, &former.pod, &former.primary).await;
            }
            Recheck::Unknown(why) => {
                tracing::debug!(namespace, name, pod = %former.pod, %why, "the former primary did not say replica yet");
            }
        }
        let asked = former.asked.saturating_add(1);
        if let Ok(mut formers) = self.former.lock()
            && let Some(entry) = formers.get_mut(uid).filter(|f| f.pod == former.pod)
        {
            entry.asked = asked;
        }
        Some(recheck_after(asked))
    }

    fn settle(&self, uid: &str, pod: &str) {
        if let Ok(mut formers) = self.former.lock()
            && formers.get(uid).is_some_and(|f| f.pod == pod)
        {
            formers.remove(uid);
        }
    }
}

/// The wait before asking a former primary again, after `asked` answers
/// that were not "replica".
fn recheck_after(asked: u32) -> Duration {
    Duration::from_secs(1u64 << asked.saturating_sub(1).min(5)).min(RECHECK_MAX)
}

/// `cluster`'s managed database, for the agent's commands.
fn database<'a>(
    client: &'a Client,
    cluster: &WebCluster,
    namespace: &'a str,
    name: &'a str,
) -> Option<failover::Database<'a>> {
    let engine = cluster.spec.database.as_ref()?.engine;
    Some(failover::Database { client, namespace, cluster: name, port: desired::database_port(engine) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_former_primary_is_asked_again_sooner_first_and_every_thirty_seconds_at_most() {
        let waits: Vec<u64> = (1..=8).map(|asked| recheck_after(asked).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
