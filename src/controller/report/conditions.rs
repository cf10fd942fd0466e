//! The status conditions and their reasons, typed: the status computes them and
//! the Events are chosen from them, so neither matches strings.

use std::fmt;

/// A condition type of the WebCluster status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    /// Every other condition holds and the API server accepted every change.
    Ready,
    /// The app Deployment runs the desired pods.
    AppReady,
    /// The cache pods are ready.
    CacheReady,
    /// The database can take the app.
    DatabaseReady,
    /// The shared files are available.
    StorageReady,
    /// Every cron task has its CronJob.
    JobsReady,
    /// The migration of `spec.app.image` succeeded.
    MigrationComplete,
    /// kstatus: the operator is still working towards Ready (abnormal-true).
    Reconciling,
    /// kstatus: the operator cannot make progress without someone's action (abnormal-true).
    Stalled,
}

impl ConditionType {
    /// The type as status writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::AppReady => "AppReady",
            ConditionType::CacheReady => "CacheReady",
            ConditionType::DatabaseReady => "DatabaseReady",
            ConditionType::StorageReady => "StorageReady",
            ConditionType::JobsReady => "JobsReady",
            ConditionType::MigrationComplete => "MigrationComplete",
            ConditionType::Reconciling => "Reconciling",
            ConditionType::Stalled => "Stalled",
        }
    }
}

/// Why a condition has its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Ready: every component is ready.
    AllComponentsReady,
    /// Ready: the API server refused a change.
    SpecRejected,
    /// Ready: the API server forbade a request (a missing RBAC permission).
    Forbidden,
    /// Ready: a request failed (conflict, throttling, server error); retried with backoff.
    ApplyFailed,
    /// Ready: a request kept failing across several retries.
    ApplyFailing,
    /// Ready: generated values are lost while their data remains; none are drawn again.
    CredentialsLost,
    /// Ready: the first component condition that is False (`<type>False`).
    ComponentFalse(ConditionType),
    /// The component is not asked for.
    NotConfigured,
    /// AppReady: the Deployment runs the desired pods.
    DeploymentReady,
    /// AppReady: pods are being replaced or started.
    RollingOut,
    /// AppReady, MigrationComplete, JobsReady: the API server refused the pods
    /// (Pod Security Admission, a ResourceQuota).
    PodsRefused,
    /// AppReady: the Deployment made no progress within its deadline.
    ProgressDeadlineExceeded,
    /// AppReady: a Secret the app's pods name (env, envFrom) does not exist.
    SecretMissing,
    /// AppReady: the first migration failed, so the app never started.
    MigrationFailed,
    /// AppReady: the first rollout waits for the migration.
    WaitingForMigration,
    /// AppReady: the first rollout waits for the database.
    WaitingForDatabase,
    /// A StatefulSet does not exist yet; AppReady: the first rollout starts.
    Creating,
    /// A StatefulSet's pods are ready.
    StatefulSetReady,
    /// Some of a StatefulSet's pods are not ready.
    PodsNotReady,
    /// DatabaseReady: the primary's start script refuses to serve (an empty
    /// data directory while the data is elsewhere or was recorded).
    PrimaryRefuses,
    /// DatabaseReady: the primary is not ready and no replica is ready to
    /// take over (a replica serves only within maxReplicaLagSeconds of the primary).
    NoFailoverCandidate,
    /// DatabaseReady: the external DSNs were read.
    ExternalDsnsRead,
    /// DatabaseReady: the external DSNs could not be read.
    ExternalSecretMissing,
    /// StorageReady: the S3 credentials Secret exists.
    CredentialsFound,
    /// StorageReady: the S3 credentials Secret is missing.
    CredentialsMissing,
    /// StorageReady: the files claim does not exist yet.
    ClaimMissing,
    /// StorageReady: the files claim is bound.
    ClaimBound,
    /// StorageReady: the files claim waits for a volume.
    ClaimPending,
    /// JobsReady: every cron task is scheduled.
    CronJobsScheduled,
    /// JobsReady: some CronJobs do not exist yet.
    CronJobsMissing,
    /// MigrationComplete: the migration waits for the database.
    Pending,
    /// MigrationComplete: the migration Job runs.
    Running,
    /// MigrationComplete: the migration succeeded.
    Succeeded,
    /// MigrationComplete: the migration failed.
    Failed,
    /// Reconciling, Stalled: Ready is True.
    Reconciled,
    /// Stalled: not stalled, the operator makes progress.
    Progressing,
    /// Reconciling: stalled instead (see Stalled).
    Stalled,
}

impl Reason {
    /// Whether a condition False for this reason needs someone's action (a
    /// spec change, a permission, a Secret): kstatus then reads Failed.
    pub fn stalls(self) -> bool {
        matches!(
            self,
            Reason::SpecRejected
                | Reason::Forbidden
                | Reason::ApplyFailing
                | Reason::PodsRefused
                | Reason::ProgressDeadlineExceeded
                | Reason::SecretMissing
                | Reason::MigrationFailed
                | Reason::Failed
                | Reason::ExternalSecretMissing
                | Reason::PrimaryRefuses
                | Reason::CredentialsMissing
                | Reason::CredentialsLost
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Reason::ComponentFalse(kind) = self {
            return write!(f, "{}False", kind.as_str());
        }
        // Every other reason is written as its variant's name.
        write!(f, "{self:?}")
    }
}

/// One condition before timestamps: status, reason, message.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// True or False.
    pub ok: bool,
    /// Why.
    pub reason: Reason,
    /// What a person can act on.
    pub message: String,
}

/// A verdict.
pub fn verdict(ok: bool, reason: Reason, message: impl Into<String>) -> Verdict {
    Verdict { ok, reason, message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_status_writes_them() {
        assert_eq!(Reason::WaitingForDatabase.to_string(), "WaitingForDatabase");
        assert_eq!(Reason::ComponentFalse(ConditionType::AppReady).to_string(), "AppReadyFalse");
    }
}
