//! Prometheus metrics of the operator: API requests by kind of verb, reconciles
//! by result, reconcile duration, objects applied per kind, leadership, and
//! whether the caches are synced (which `/readyz` reports).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `read` (GET, LIST, WATCH) or `write` (POST, PUT, PATCH, DELETE).
    pub verb: String,
}

/// Label of the reconcile counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or `error`.
    pub result: String,
}

/// Label of the applied-objects counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Kind of the object.
    pub kind: String,
}

/// Every metric the operator exports, plus plain totals tests can read.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_seconds: Histogram,
    applied: Family<KindLabels, Counter>,
    deleted: Family<KindLabels, Counter>,
    /// 1 while this process holds the leader lease.
    pub leader: Gauge,
    /// Reconciles running now.
    pub reconciles_in_flight: Gauge,
    /// 1 while the controller runs and every watch cache holds its first full list.
    pub caches_synced: Gauge,
    /// 1 while this process is a follower waiting for the leader lease (it
    /// reconciles nothing, by design): how a ready follower says what it is.
    pub follower: Gauge,
    writes_total: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("webcluster_operator");
        let requests = Family::<RequestLabels, Counter>::default();
        let reconciles = Family::<ResultLabels, Counter>::default();
        let reconcile_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let applied = Family::<KindLabels, Counter>::default();
        let deleted = Family::<KindLabels, Counter>::default();
        let leader = Gauge::default();
        let reconciles_in_flight = Gauge::default();
        let caches_synced = Gauge::default();
        let follower = Gauge::default();
        registry.register("api_requests", "Kubernetes API requests sent, by verb class", requests.clone());
        registry.register("reconciles", "Reconciles of WebClusters, by result", reconciles.clone());
        registry.register("reconcile_duration_seconds", "Time one reconcile takes", reconcile_seconds.clone());
        registry.register("objects_applied", "Child objects applied with server-side apply, by kind", applied.clone());
        registry.register("objects_deleted", "Child objects pruned, by kind", deleted.clone());
        registry.register("leader", "1 while this process is the leader", leader.clone());
        registry.register(
            "follower",
            "1 while this process is a follower waiting for the leader lease",
            follower.clone(),
        );
        registry.register("reconciles_in_flight", "Reconciles running now", reconciles_in_flight.clone());
        registry.register(
            "caches_synced",
            "1 while the controller runs and its watch caches hold their first full list",
            caches_synced.clone(),
        );
        Self {
            registry,
            requests,
            reconciles,
            reconcile_seconds,
            applied,
            deleted,
            leader,
            reconciles_in_flight,
            caches_synced,
            follower,
            writes_total: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// A shared instance.
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts one API request by its HTTP method.
    pub fn count_request(&self, method: &http::Method) {
        let write = !matches!(*method, http::Method::GET | http::Method::HEAD | http::Method::OPTIONS);
        let verb = if write { "write" } else { "read" };
        self.requests.get_or_create(&RequestLabels { verb: verb.into() }).inc();
        if write {
            self.writes_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Write requests (POST, PUT, PATCH, DELETE) sent so far.
    pub fn writes(&self) -> u64 {
        self.writes_total.load(Ordering::Relaxed)
    }

    /// Marks this process as a follower waiting for the lease, or not.
    pub fn set_standby(&self, standby: bool) {
        self.follower.set(i64::from(standby));
    }

    /// Ready to serve its role: a follower waiting for the lease, or a
    /// controller whose caches are synced (so it reconciles). A controller
    /// whose watches fail (a missing permission) never is.
    pub fn ready(&self) -> bool {
        self.follower.get() == 1 || self.caches_synced.get() == 1
    }

    /// What `/readyz` says: the role, and whether the caches are synced.
    pub fn readiness(&self) -> &'static str {
        match (self.follower.get() == 1, self.caches_synced.get() == 1, self.leader.get() == 1) {
            (true, _, _) => "ok: follower, waiting for the leader lease\n",
            (false, true, true) => "ok: leader, caches synced, reconciling\n",
            (false, true, false) => "ok: caches synced, reconciling\n",
            (false, false, _) => "the watch caches are not synced\n",
        }
    }

    /// Records one finished reconcile.
    pub fn reconciled(&self, success: bool, seconds: f64) {
        let result = if success { "success" } else { "error" };
        self.reconciles.get_or_create(&ResultLabels { result: result.into() }).inc();
        self.reconcile_seconds.observe(seconds);
    }

    /// Records one applied child.
    pub fn applied(&self, kind: &str) {
        self.applied.get_or_create(&KindLabels { kind: kind.into() }).inc();
    }

    /// Records one pruned child.
    pub fn deleted(&self, kind: &str) {
        self.deleted.get_or_create(&KindLabels { kind: kind.into() }).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_means_synced_caches_or_waiting_for_the_lease() {
        let metrics = Metrics::default();
        assert!(!metrics.ready(), "a controller whose caches never sync is not ready");
        metrics.caches_synced.set(1);
        assert!(metrics.ready());
        metrics.caches_synced.set(0);
        metrics.set_standby(true);
        assert!(metrics.ready(), "a follower waiting for the lease is ready");
        assert!(metrics.encode().contains("webcluster_operator_follower 1"), "{}", metrics.encode());
        assert!(metrics.readiness().contains("follower"));
    }
}
