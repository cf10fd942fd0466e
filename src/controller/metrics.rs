//! Prometheus metrics of the operator: API requests by kind of verb, reconciles
//! by result, reconcile duration, objects applied per kind, leadership.

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
    /// WebClusters queued or being reconciled.
    pub queue_depth: Gauge,
    writes_total: AtomicU64,
    reads_total: AtomicU64,
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
        let queue_depth = Gauge::default();
        registry.register("api_requests", "Kubernetes API requests sent, by verb class", requests.clone());
        registry.register("reconciles", "Reconciles of WebClusters, by result", reconciles.clone());
        registry.register("reconcile_duration_seconds", "Time one reconcile takes", reconcile_seconds.clone());
        registry.register("objects_applied", "Child objects applied with server-side apply, by kind", applied.clone());
        registry.register("objects_deleted", "Child objects pruned, by kind", deleted.clone());
        registry.register("leader", "1 while this process is the leader", leader.clone());
        registry.register("queue_depth", "WebClusters waiting for or in a reconcile", queue_depth.clone());
        Self {
            registry,
            requests,
            reconciles,
            reconcile_seconds,
            applied,
            deleted,
            leader,
            queue_depth,
            writes_total: AtomicU64::new(0),
            reads_total: AtomicU64::new(0),
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
        let total = if write { &self.writes_total } else { &self.reads_total };
        total.fetch_add(1, Ordering::Relaxed);
    }

    /// Write requests (POST, PUT, PATCH, DELETE) sent so far.
    pub fn writes(&self) -> u64 {
        self.writes_total.load(Ordering::Relaxed)
    }

    /// Read requests (GET, LIST, WATCH) sent so far.
    pub fn reads(&self) -> u64 {
        self.reads_total.load(Ordering::Relaxed)
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
