//! One reconcile of one WebCluster: observe, build, apply, prune, report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::error::Error;
use super::pacing::ClusterKey;
use super::status::{StatusInput, compute, urgent};
use super::{Context, events, observe, rollout, secrets};
use crate::api::WebCluster;
use crate::desired;

/// Reconciles one WebCluster and records the outcome in the metrics.
pub async fn reconcile(cluster: Arc<WebCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    // The caches fill while the controller polls their watches.
    if !ctx.caches.ready() {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let started = Instant::now();
    ctx.metrics.queue_depth.inc();
    let result = reconcile_cluster(&cluster, &ctx).await;
    ctx.metrics.queue_depth.dec();
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

    let snapshot = observe::snapshot(&ctx.client, &ctx.caches, cluster, namespace).await?;
    let generated = secrets::complete(cluster, snapshot.generated.as_ref());
    let plan = rollout::plan(cluster, &snapshot, generated);
    let children = desired::children(cluster, &plan)?;
    let outcome = ctx.applier.apply(&ctx.caches, &children, namespace).await?;
    ctx.applier.prune(&ctx.caches, &children, namespace, uid).await?;
    if let Some(managed) = cluster.spec.database.as_ref().and_then(|db| db.managed.as_ref()) {
        ctx.applier.label_database_replicas(&ctx.caches, namespace, name, managed.replicas).await?;
    }
    if outcome.applied > 0 {
        tracing::info!(namespace, name, applied = outcome.applied, unchanged = outcome.unchanged, "applied children");
    }
    for rejection in &outcome.rejections {
        tracing::warn!(namespace, name, %rejection, "the API server refused a change");
    }
    if outcome.created > 0 {
        // A status now would describe children that do not exist yet and be
        // rewritten at once: their creation triggers the next reconcile, which reports.
        return Ok(Action::requeue(ctx.settings.resync));
    }

    let input = StatusInput {
        cluster,
        snapshot: &snapshot,
        rejections: &outcome.rejections,
        now: Time(k8s_openapi::jiff::Timestamp::now()),
    };
    let status = compute(&input);
    if cluster.status.as_ref() != Some(&status) {
        let key = key(cluster);
        if !urgent(cluster.status.as_ref(), &status)
            && let Some(wait) = ctx.status_pacer.wait(&key, Instant::now())
        {
            // The next reconcile writes the figures as they are then.
            return Ok(Action::requeue(wait));
        }
        let before = cluster.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
        let api: Api<WebCluster> = Api::namespaced(ctx.client.clone(), namespace);
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({ "status": status })))
            .await
            .map_err(|e| Error::api("update status of", "WebCluster", namespace, name, e))?;
        ctx.status_pacer.wrote(key, Instant::now());
        events::publish(&ctx.recorder, cluster, events::transitions(&before, &status.conditions)).await;
    }
    Ok(Action::requeue(ctx.settings.resync))
}

/// Retries with exponential backoff (1 s doubling to 5 min) and ±20 % jitter.
pub fn error_policy(cluster: Arc<WebCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    let attempt = match ctx.failures.lock() {
        Ok(mut failures) => {
            let count = failures.entry(key(&cluster)).or_insert(0);
            *count = count.saturating_add(1);
            *count
        }
        Err(_) => 1,
    };
    let base = Duration::from_secs(1u64 << attempt.saturating_sub(1).min(8)).min(Duration::from_secs(300));
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    let delay = base.mul_f64(jitter);
    tracing::warn!(cluster = %cluster.name_any(), %error, attempt, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
