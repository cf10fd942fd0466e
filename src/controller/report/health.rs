//! Ready and kstatus' abnormal-true conditions beside it: Reconciling while
//! the operator works towards Ready, Stalled when it cannot get there without
//! someone's action (a spec change, a permission, a Secret). kstatus, and so
//! Flux and kpt, read them as InProgress and Failed; the Argo CD health check
//! in the README reads the same.

use std::collections::BTreeMap;

use super::conditions::{ConditionType, Reason, Verdict, verdict};
use crate::controller::error::Fault;

/// Failed reconciles in a row after which a transient failure stalls.
/// With the backoff (1, 2, 4, 8 s) that is about 15 s of failures.
pub const STALL_AFTER: u32 = 5;

/// What went wrong in this reconcile beyond what the snapshot shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trouble {
    /// Requests the API server did not take: what kind of failure, and a
    /// summary naming the child and the API's words.
    pub failures: Vec<(Fault, String)>,
    /// Failed reconciles in a row before this one.
    pub attempts: u32,
    /// Jobs whose pods the API server refused, by name, with its words.
    pub refused_pods: BTreeMap<String, String>,
    /// Secrets (or keys) the app's pods need that do not exist.
    pub missing_secrets: Vec<String>,
}

/// The verdict on a failed request: the worst failure first (a refusal, then
/// a missing permission, then a transient failure), with how many more failed.
/// A transient failure counts from its second attempt on: a lone conflict,
/// retried a second later, must not flip Ready.
pub fn failure_verdict(trouble: &Trouble) -> Option<Verdict> {
    let rank = |fault: &Fault| match fault {
        Fault::Refused => 0,
        Fault::Forbidden => 1,
        Fault::Transient => 2,
    };
    let shown: Vec<&(Fault, String)> =
        trouble.failures.iter().filter(|(fault, _)| *fault != Fault::Transient || trouble.attempts > 0).collect();
    let (fault, what) = shown.iter().min_by_key(|(fault, _)| rank(fault))?;
    let more = match shown.len() - 1 {
        0 => String::new(),
        n => format!(" ({n} more in the log)"),
    };
    let attempts = trouble.attempts + 1;
    Some(match fault {
        Fault::Refused => {
            verdict(false, Reason::SpecRejected, format!("the API server refused a change; fix the spec: {what}{more}"))
        }
        Fault::Forbidden => verdict(
            false,
            Reason::Forbidden,
            format!("grant the operator's service account this permission: {what}{more}"),
        ),
        Fault::Transient if attempts >= STALL_AFTER => verdict(
            false,
            Reason::ApplyFailing,
            format!("failed {attempts} times in a row, retried with backoff up to every 5 min: {what}{more}"),
        ),
        Fault::Transient => verdict(false, Reason::ApplyFailed, format!("retried with backoff: {what}{more}")),
    })
}

/// Ready, Reconciling and Stalled from the component verdicts and the
/// reconcile's own failure (which wins). Ready names a component that
/// stalls before one that merely progresses.
pub fn summary(parts: &[(ConditionType, Verdict)], failure: Option<Verdict>) -> [(ConditionType, Verdict); 3] {
    let stalled_part = parts.iter().find(|(_, v)| !v.ok && v.reason.stalls());
    let failing = stalled_part.or_else(|| parts.iter().find(|(_, v)| !v.ok));
    let ready = match (&failure, failing) {
        (Some(failure), _) => failure.clone(),
        (None, Some((kind, part))) => verdict(false, Reason::ComponentFalse(*kind), part.message.clone()),
        (None, None) => verdict(true, Reason::AllComponentsReady, "every component is ready"),
    };
    let stall = failure.filter(|v| v.reason.stalls()).or_else(|| stalled_part.map(|(_, v)| v.clone()));
    let (reconciling, stalled) = match stall {
        Some(stall) => (
            verdict(false, Reason::Stalled, "stalled; see the Stalled condition"),
            verdict(true, stall.reason, stall.message),
        ),
        None if ready.ok => (
            verdict(false, Reason::Reconciled, "every component is ready"),
            verdict(false, Reason::Reconciled, "every component is ready"),
        ),
        None => (
            verdict(true, ready.reason, ready.message.clone()),
            verdict(false, Reason::Progressing, "the operator makes progress towards Ready"),
        ),
    };
    [(ConditionType::Ready, ready), (ConditionType::Reconciling, reconciling), (ConditionType::Stalled, stalled)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(summary: &[(ConditionType, Verdict); 3]) -> [(bool, Reason); 3] {
        summary.clone().map(|(_, v)| (v.ok, v.reason))
    }

    fn parts(app: Verdict, migration: Verdict) -> Vec<(ConditionType, Verdict)> {
        vec![(ConditionType::AppReady, app), (ConditionType::MigrationComplete, migration)]
    }

    fn ok() -> Verdict {
        verdict(true, Reason::Succeeded, "fine")
    }

    #[test]
    fn ready_is_neither_reconciling_nor_stalled() {
        let summary = summary(&parts(ok(), ok()), None);
        assert_eq!(
            statuses(&summary),
            [(true, Reason::AllComponentsReady), (false, Reason::Reconciled), (false, Reason::Reconciled)]
        );
    }

    #[test]
    fn a_rollout_reconciles() {
        let rolling = verdict(false, Reason::RollingOut, "1/2");
        let summary = summary(&parts(rolling, ok()), None);
        let ready = Reason::ComponentFalse(ConditionType::AppReady);
        assert_eq!(statuses(&summary), [(false, ready), (true, ready), (false, Reason::Progressing)]);
    }

    #[test]
    fn a_failed_migration_stalls_and_ready_names_it_before_a_rollout() {
        let rolling = verdict(false, Reason::WaitingForMigration, "waits");
        let failed = verdict(false, Reason::Failed, "exit 1");
        let summary = summary(&parts(rolling, failed), None);
        let ready = Reason::ComponentFalse(ConditionType::MigrationComplete);
        assert_eq!(statuses(&summary), [(false, ready), (false, Reason::Stalled), (true, Reason::Failed)]);
        assert_eq!(summary[0].1.message, "exit 1");
    }

    fn trouble(faults: &[Fault], attempts: u32) -> Trouble {
        let failures = faults.iter().map(|f| (*f, format!("apply Deployment shop-app: {f:?}"))).collect();
        Trouble { failures, attempts, ..Trouble::default() }
    }

    #[test]
    fn a_refusal_stalls_at_once_and_wins_over_other_failures() {
        let failure = failure_verdict(&trouble(&[Fault::Transient, Fault::Refused, Fault::Forbidden], 1));
        let summary = summary(&parts(ok(), ok()), failure);
        let [(_, ready), _, (_, stalled)] = &summary;
        assert_eq!((ready.reason, stalled.ok, stalled.reason), (Reason::SpecRejected, true, Reason::SpecRejected));
        assert!(
            ready.message.contains("Refused") && ready.message.ends_with("(2 more in the log)"),
            "{}",
            ready.message
        );
    }

    #[test]
    fn a_forbidden_request_stalls() {
        let failure = failure_verdict(&trouble(&[Fault::Forbidden], 0));
        let reasons = statuses(&summary(&parts(ok(), ok()), failure));
        assert_eq!(reasons[2], (true, Reason::Forbidden));
    }

    #[test]
    fn a_transient_failure_reconciles_until_it_repeats() {
        assert_eq!(failure_verdict(&trouble(&[Fault::Transient], 0)), None, "the first attempt is retried quietly");
        let first = failure_verdict(&trouble(&[Fault::Transient], 1));
        let reasons = statuses(&summary(&parts(ok(), ok()), first));
        assert_eq!(reasons, [(false, Reason::ApplyFailed), (true, Reason::ApplyFailed), (false, Reason::Progressing)]);
        let repeated = failure_verdict(&trouble(&[Fault::Transient], STALL_AFTER - 1));
        let reasons = statuses(&summary(&parts(ok(), ok()), repeated));
        assert_eq!(reasons[2], (true, Reason::ApplyFailing));
    }
}
