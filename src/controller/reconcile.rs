//! The driver: one reconcile of one WebCluster runs observe → plan → desired
//! children → apply → prune → report, and retries with backoff on failure.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};

use super::Settings;
use super::apply::failovers::Failovers;
use super::apply::{Applier, roles, unserved};
use super::error::{ApiError, Error, Fault};
use super::observe::primary::{self, PrimaryLogs};
use super::observe::{self, references, refused};
use super::plan;
use super::plan::primary::{Election, Remembered};
use super::prune::Pruner;
use super::report::{Reporter, Trouble};
use super::runtime::cache::ChildCaches;
use super::runtime::metrics::Metrics;
use super::runtime::pacing::ClusterKey;
use crate::api::WebCluster;
use crate::desired;

/// Shared state of the reconciles: the caches and what each step keeps.
pub struct Context {
    client: Client,
    settings: Settings,
    caches: ChildCaches,
    applier: Applier,
    primary_logs: PrimaryLogs,
    failovers: Failovers,
    pruner: Pruner,
    reporter: Reporter,
    metrics: Arc<Metrics>,
    /// Consecutive failures per WebCluster, for the backoff.
    failures: Mutex<HashMap<ClusterKey, u32>>,
}

impl Context {
    /// The state of a controller that has not reconciled anything yet.
    pub fn new(client: Client, settings: Settings, caches: ChildCaches, metrics: Arc<Metrics>) -> Self {
        Self {
            applier: Applier::new(client.clone(), metrics.clone()),
            primary_logs: PrimaryLogs::default(),
            failovers: Failovers::default(),
            pruner: Pruner::new(client.clone(), metrics.clone()),
            reporter: Reporter::new(client.clone(), settings.status_interval),
            client,
            settings,
            caches,
            metrics,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets a deleted WebCluster.
    pub fn forget(&self, cluster: &WebCluster) {
        if let Some(uid) = cluster.uid() {
            self.applier.forget(&uid);
            self.primary_logs.forget(&uid);
            self.pruner.forget(&uid);
            self.failovers.forget(&uid);
        }
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&key(cluster));
        }
    }

    /// Failed reconciles of `cluster` in a row so far.
    fn attempts(&self, cluster: &WebCluster) -> u32 {
        self.failures.lock().ok().and_then(|failures| failures.get(&key(cluster)).copied()).unwrap_or(0)
    }

    /// Forgets every WebCluster but `live` (the uids a full list returned).
    pub fn retain(&self, live: &HashSet<String>) {
        self.applier.retain(live);
        self.primary_logs.retain(live);
        self.pruner.retain(live);
        self.failovers.retain(live);
    }
}

/// Reconciles one WebCluster and records the outcome in the metrics.
pub async fn reconcile(cluster: Arc<WebCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    // The caches fill while the controller polls their watches.
    if !ctx.caches.ready() {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let started = Instant::now();
    ctx.metrics.reconciles_in_flight.inc();
    let result = reconcile_cluster(&cluster, &ctx).await;
    ctx.metrics.reconciles_in_flight.dec();
    ctx.metrics.reconciled(result.is_ok(), started.elapsed().as_secs_f64());
    if result.is_ok()
        && let Ok(mut failures) = ctx.failures.lock()
    {
        failures.remove(&key(&cluster));
    }
    result
}

fn key(cluster: &WebCluster) -> ClusterKey {
    (cluster.namespace().unwrap_or_default(), cluster.name_any())
}

async fn reconcile_cluster(cluster: &WebCluster, ctx: &Context) -> Result<Action, Error> {
    if cluster.metadata.deletion_timestamp.is_some() {
        // Garbage collection removes the children; retained data has no owner reference.
        return Ok(Action::await_change());
    }
    let namespace = cluster.metadata.namespace.as_deref().ok_or(Error::MissingMetadata("namespace"))?;
    let name = cluster.metadata.name.as_deref().ok_or(Error::MissingMetadata("name"))?;
    let uid = cluster.metadata.uid.as_deref().ok_or(Error::MissingMetadata("uid"))?;
    let attempts = ctx.attempts(cluster);

    let cluster_id = (namespace, name, uid);
    let promoted = ctx.failovers.promoted(&ctx.caches, namespace, uid);
    let observed =
        observe::snapshot(&ctx.client, (&ctx.caches, &ctx.primary_logs), cluster, cluster_id, promoted.as_deref());
    let mut snapshot = match observed.await {
        Ok(snapshot) => snapshot,
        Err(error) => {
            // No failure is silent: Ready, Reconciling and Stalled say what failed.
            let trouble = Trouble { failures: vec![(error.fault(), error.summary())], attempts, ..Trouble::default() };
            ctx.reporter.report_failure(cluster, &key(cluster), &trouble).await.map_err(Error::Report)?;
            return Err(Error::Observe(error));
        }
    };
    let mut planned = plan::plan(cluster, &snapshot);
    let (handled, change) = (ctx.failovers.switchover_handled(uid), ctx.failovers.last_change(uid));
    let remembered = Remembered { switchover: handled.as_deref(), change: change.as_ref() };
    let election = plan::primary::of_cluster(cluster, &snapshot, remembered, Timestamp::now());
    let failover_wait = match &election {
        Some(Election::Wait { left, .. }) => Some(*left),
        _ => None,
    };
    let changing = ctx.failovers.change_primary((&ctx.client, &ctx.reporter), cluster, cluster_id, election);
    if let Some(changed) = changing.await {
        if let Some(primary) = changed.primary {
            planned.plan.database_primary = Some(primary.clone());
            snapshot.database_primary = Some(primary);
        }
        snapshot.primary_change = changed.change;
        snapshot.switchover_handled = changed.switchover;
    }
    let children = desired::children(cluster, &planned.plan)?;
    let (children, unserved) = unserved::split(&ctx.caches, children, namespace);
    let waits_for_crd = !unserved.is_empty();
    let mut outcome = ctx.applier.apply(&ctx.caches, &children, namespace, uid).await;
    outcome.failures.extend(unserved);
    if let Some(managed) = cluster.spec.database.as_ref().and_then(|db| db.managed.as_ref())
        && let Some(primary) = &planned.plan.database_primary
        && let Err(error) =
            roles::label_database_pods(&ctx.client, &ctx.caches, namespace, name, managed.pods(), primary).await
    {
        outcome.failures.push(error);
    }
    if let Err(error) = ctx.pruner.prune(&ctx.caches, &children, namespace, uid).await {
        outcome.failures.push(error);
    }
    if outcome.applied > 0 {
        tracing::info!(namespace, name, applied = outcome.applied, unchanged = outcome.unchanged, "applied children");
    }
    for failure in &outcome.failures {
        // The API's full words; status and Events carry a short form.
        tracing::warn!(namespace, name, error = %failure, "the API server did not take a request");
    }
    if outcome.created > 0 && outcome.failures.is_empty() && cluster.status.is_some() {
        // A status now would describe children that do not exist yet and be
        // rewritten at once: their creation triggers the next reconcile, which
        // reports. The first status is written at once: without one, kstatus reads Current.
        return Ok(Action::requeue(ctx.settings.resync));
    }
    let suspects = refused::suspects(&snapshot);
    let refused_pods = match refused::refused_jobs(&ctx.client, namespace, &suspects).await {
        Ok(refused) => refused,
        Err(error) => {
            outcome.failures.push(error);
            Default::default()
        }
    };
    let missing_secrets = match references::missing_secrets(&ctx.client, namespace, cluster).await {
        Ok(missing) => missing,
        Err(error) => {
            outcome.failures.push(error);
            Vec::new()
        }
    };
    let failures = outcome.failures.iter().map(|f| (f.fault(), f.summary())).collect();
    let trouble = Trouble { failures, attempts, refused_pods, missing_secrets };
    let snapshot = snapshot.after_apply(name, |kind, child| ctx.applier.generation(uid, kind, child));
    let paced = ctx
        .reporter
        .report(cluster, &key(cluster), &snapshot, &planned.rollout, &trouble)
        .await
        .map_err(Error::Report)?;
    // A request that may succeed later is retried with backoff (error_policy);
    // a refusal waits for a spec change, checked again every MAX_BACKOFF.
    if let Some(failure) = take_retryable(outcome.failures) {
        return Err(Error::Apply(failure));
    }
    let mut next = paced.unwrap_or(ctx.settings.resync);
    if !trouble.failures.is_empty() {
        next = next.max(MAX_BACKOFF);
    }
    // What the operator does not watch (a user's Secret, a Job's Events, a missing CRD) is looked at again soon.
    if waits_unwatched(&snapshot) || !suspects.is_empty() || !trouble.missing_secrets.is_empty() || waits_for_crd {
        next = next.min(RECHECK);
    }
    // A primary that refuses, or a database pod not ready, changes nothing the operator watches.
    if snapshot.primary.as_ref().is_some_and(|reading| reading.logs_seen) {
        next = next.min(primary::RECHECK);
    }
    // A primary not ready is failed over when its delay ends, if it is not back by then.
    // A former primary is asked what it runs as until it says replica.
    let infrastructure = (&ctx.client, &ctx.caches, &ctx.reporter);
    let recheck = ctx.failovers.recheck_former(infrastructure, cluster, cluster_id).await;
    if let Some(left) = failover_wait.into_iter().chain(recheck).min() {
        next = next.min(left);
    }
    Ok(Action::requeue(next))
}

/// How soon a cluster that waits for something the operator does not watch
/// is reconciled again: a referenced Secret that is missing, a Job without pods.
const RECHECK: Duration = Duration::from_secs(30);

/// A referenced Secret is missing.
fn waits_unwatched(snapshot: &observe::Snapshot) -> bool {
    matches!(snapshot.external_db, Some(Err(_))) || snapshot.s3_credentials_found == Some(false)
}

/// The first failure worth retrying with backoff (anything but a refusal).
fn take_retryable(failures: Vec<ApiError>) -> Option<ApiError> {
    failures.into_iter().find(|f| f.fault() != Fault::Refused)
}

/// Longest wait between two attempts of a failing WebCluster.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Retries with exponential backoff and ±20 % jitter.
pub fn error_policy(cluster: Arc<WebCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    let attempt = match ctx.failures.lock() {
        Ok(mut failures) => {
            let count = failures.entry(key(&cluster)).or_insert(0);
            *count = count.saturating_add(1);
            *count
        }
        Err(_) => 1,
    };
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    let delay = backoff(attempt).mul_f64(jitter);
    tracing::warn!(cluster = %cluster.name_any(), %error, attempt, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The wait before attempt `attempt + 1`: 1 s doubling per failure, at most [`MAX_BACKOFF`] (5 min).
fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << doublings).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_five_minutes() {
        let waits: Vec<u64> = (1..=11).map(|attempt| backoff(attempt).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
