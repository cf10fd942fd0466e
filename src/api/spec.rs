//! The `WebCluster` custom resource: what a user writes.
//!
//! Every field's doc comment becomes its description in the CRD, so
//! `kubectl explain webcluster.spec...` teaches the API. Cross-field rules are
//! CEL (`x-kubernetes-validations`) so the API server refuses bad input at
//! admission; `super::validate` checks the same rules offline for `render`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvFromSource, EnvVar, LocalObjectReference, PodSecurityContext, ResourceRequirements, SecurityContext,
    Toleration, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::formats::{
    MAX_TIME_ZONE_LENGTH, SCHEDULE_HINT, SCHEDULE_RANGE_HINT, TIME_ZONE_HINT, memory_range_hint, memory_range_rule,
    schedule_ranges_rule, schedule_rule, time_zone_rule,
};
use super::status::WebClusterStatus;

/// Longest WebCluster name: leaves room for the longest suffix the operator adds
/// (`-migrate-<10 hex>`) within the 63-character DNS label limit.
pub const MAX_NAME_LENGTH: usize = 40;
/// CronJob names are limited to 52 characters (Kubernetes appends 11 to name Jobs);
/// `<webcluster>-<job>` must fit.
pub const MAX_CRONJOB_NAME_LENGTH: usize = 52;

/// `spec.httpCache.invalidateTokenSecret` names one of `spec.app.sharedSecrets`.
const INVALIDATE_TOKEN_RULE: &str = "!has(self.spec.httpCache) || !has(self.spec.httpCache.invalidateTokenSecret) || (has(self.spec.app.sharedSecrets) && self.spec.httpCache.invalidateTokenSecret in self.spec.app.sharedSecrets)";
/// The message of [`INVALIDATE_TOKEN_RULE`]; `validate` reports the same.
pub const INVALIDATE_TOKEN_MESSAGE: &str =
    "spec.httpCache.invalidateTokenSecret: must be one of spec.app.sharedSecrets (the operator generates its value)";

/// A PHP web application run on many nodes: the app behind a load balancer, shared
/// sessions and cache, a primary/replica database, shared files, singleton cron jobs,
/// an optional HTTP cache and a run-once migration per image.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "webcluster.io",
    version = "v1alpha1",
    kind = "WebCluster",
    plural = "webclusters",
    shortname = "wc",
    category = "all",
    namespaced,
    status = "WebClusterStatus",
    derive = "PartialEq",
    doc = "A PHP web application run on many nodes behind a load balancer, with its shared cache, database, files and cron jobs.",
    scale(
        spec_replicas_path = ".spec.app.replicas",
        status_replicas_path = ".status.app.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "App", type_ = "string", description = "Ready/desired app replicas", json_path = ".status.app.summary"),
    printcolumn(name = "Database", type_ = "string", json_path = ".status.database.summary"),
    printcolumn(name = "Cache", type_ = "string", json_path = ".status.cache.summary"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 40").message("metadata.name: must be at most 40 characters, so that every generated object name fits 63"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name: must be a DNS-1035 label (lower-case letters, digits, '-', starting with a letter)"),
    validation = Rule::new("!has(self.spec.jobs) || self.spec.jobs.all(j, self.metadata.name.size() + j.name.size() <= 51)").message("spec.jobs[].name: '<webcluster name>-<job name>' must be at most 52 characters (a CronJob name limit)"),
    validation = Rule::new(INVALIDATE_TOKEN_RULE).message(INVALIDATE_TOKEN_MESSAGE)
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebClusterSpec {
    /// The web application: its image, replicas, port and pod settings.
    pub app: AppSpec,
    /// The load balancer entry: an Ingress for the app (or for Varnish when httpCache is on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    /// A Gateway API HTTPRoute for the app (or for Varnish when httpCache is on), instead
    /// of or beside the Ingress. Needs the Gateway API CRDs (gateway.networking.k8s.io/v1)
    /// on the cluster; without them the WebCluster says so in its Ready condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_route: Option<HttpRouteSpec>,
    /// Shared sessions and cache: memcached nodes (every node listed for client-side hashing) or Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,
    /// An optional Varnish HTTP cache in front of the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_cache: Option<HttpCacheSpec>,
    /// The database: a managed primary/replica PostgreSQL or MariaDB, or external DSNs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,
    /// Shared files: one ReadWriteMany volume mounted at several paths, or S3 credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// Cron tasks (cleanup and others). Each runs as a CronJob that never overlaps itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub jobs: Vec<CronTaskSpec>,
    /// What deleting the WebCluster does to data (database volumes, the files claim, the
    /// generated Secret): Retain (default) keeps them, Delete removes them.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What happens to data objects when the WebCluster is deleted.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Keep database volumes, the files claim and the generated Secret.
    #[default]
    Retain,
    /// Delete them with the WebCluster.
    Delete,
}

/// The web application.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppSpec {
    /// Container image of the application, for example `roundcube/roundcubemail:1.6.11-apache-nonroot`.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Number of app pods. Ignored while autoscaling is set (the HPA owns the count).
    #[serde(default = "default_app_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// Port the application listens on inside the container.
    #[serde(default = "default_app_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Overrides the image's entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Overrides the image's arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Extra environment variables. They come after the operator's `WEBCLUSTER_*`
    /// variables, so `$(WEBCLUSTER_DB_WRITE_URL)` expands in their values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Environment variables from ConfigMaps or Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    /// CPU and memory requests and limits of the app container. With autoscaling and no
    /// CPU request here, the container requests 100m CPU: the HPA computes utilisation from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// HTTP readiness and liveness check. Without it the probes open a TCP connection to `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Seconds an app pod may take to start (the startupProbe, which checks like the
    /// readiness probe) before it is restarted. Liveness checks begin only after it.
    #[serde(default = "default_startup_timeout")]
    #[schemars(range(min = 10, max = 3600))]
    pub startup_timeout_seconds: i32,
    /// Pod-level settings: labels, scheduling, security, extra volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodOverrides>,
    /// Container security context. Without it the operator sets a restricted one
    /// (non-root, no privilege escalation, all capabilities dropped, RuntimeDefault seccomp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// PodDisruptionBudget. Created by default when replicas > 1 with maxUnavailable 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption_budget: Option<DisruptionBudget>,
    /// A HorizontalPodAutoscaler for the app Deployment. While set, the operator no longer sets the replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// A Job run once per new app image, before that image rolls out (schema migrations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<Migration>,
    /// Names of environment variables whose random values the operator generates once and
    /// gives every pod alike (for example `ROUNDCUBEMAIL_DES_KEY`). Values never change afterwards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 128)), extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = Rule::new("self.all(n, n.matches('^[A-Za-z_][A-Za-z0-9_]*$'))").message("spec.app.sharedSecrets: each entry must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"))]
    pub shared_secrets: Vec<String>,
}

fn default_startup_timeout() -> i32 {
    300
}

fn default_app_replicas() -> i32 {
    2
}

fn default_app_port() -> i32 {
    8080
}

/// HTTP health check used for the readiness and liveness probes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// HTTP path that answers 2xx or 3xx when the app is healthy.
    #[serde(default = "default_health_path")]
    #[schemars(regex(pattern = r"^/"))]
    pub path: String,
    /// Port to probe. Defaults to `spec.app.port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Seconds after start before the first probe.
    #[serde(default = "default_initial_delay")]
    #[schemars(range(min = 0, max = 3600))]
    pub initial_delay_seconds: i32,
    /// Seconds between probes.
    #[serde(default = "default_period")]
    #[schemars(range(min = 1, max = 3600))]
    pub period_seconds: i32,
    /// HTTP path of the liveness probe: one that answers while the app's
    /// dependencies (database, cache) are down. Without it the liveness probe opens
    /// a TCP connection to the port, so a database outage never restarts app pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/"))]
    pub liveness_path: Option<String>,
}

fn default_health_path() -> String {
    "/".into()
}

fn default_initial_delay() -> i32 {
    5
}

fn default_period() -> i32 {
    10
}

/// Pod-level overrides for the app, migration and cron job pods. Their placement
/// fields are the ones the cache, database and HTTP cache take.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodOverrides {
    /// Extra pod labels (the operator's own labels win on conflict).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Scheduling: node selector, tolerations, affinity, priority class, topology spread.
    #[serde(flatten)]
    pub placement: PodPlacement,
    /// ServiceAccount the app pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Secrets for pulling the app image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Pod security context. Without it the operator sets runAsNonRoot and RuntimeDefault seccomp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    /// Extra volumes (for example a ConfigMap with config files the image reads). Each name appears once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub volumes: Vec<Volume>,
    /// Extra volume mounts in the app, migration and job containers. Each mountPath appears once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["mountPath"]))]
    pub volume_mounts: Vec<VolumeMount>,
}

/// Where a component's pods run. The app, cache, database and HTTP cache take
/// the same fields.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodPlacement {
    /// Node selector of the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity of the pods. The cache, database and HTTP cache prefer one pod per node without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
    /// Topology spread constraints of the pods, added to the defaults: app pods spread
    /// across nodes and zones, cache, database and Varnish pods across zones (all
    /// ScheduleAnyway, so one-zone clusters still schedule). A constraint given here
    /// replaces the default on the same topologyKey. Migration and cron pods are placed like app pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
}

/// `maxUnavailable` as a PodDisruptionBudget takes it.
pub const MAX_UNAVAILABLE_RULE: &str = "type(self) == int ? self >= 0 : self.matches('^([0-9]|[1-9][0-9]|100)%$')";
/// What the rule tells.
pub const MAX_UNAVAILABLE_MESSAGE: &str =
    "spec.app.disruptionBudget.maxUnavailable: must be a number of pods (0 or more) or a percentage from 0% to 100%";

/// PodDisruptionBudget settings for the app.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisruptionBudget {
    /// Pods that may be unavailable during voluntary disruptions (a number or a percentage).
    #[x_kube(validation = Rule::new(MAX_UNAVAILABLE_RULE).message(MAX_UNAVAILABLE_MESSAGE))]
    pub max_unavailable: IntOrString,
}

/// HorizontalPodAutoscaler settings for the app.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("spec.app.autoscaling: minReplicas must not exceed maxReplicas"))]
pub struct Autoscaling {
    /// Lower bound of app pods.
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Upper bound of app pods.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU utilisation (percent of requests) the HPA aims for.
    #[serde(rename = "targetCPUUtilizationPercentage", default = "default_cpu_target")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

fn default_cpu_target() -> i32 {
    75
}

/// A migration run once per app image.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Migration {
    /// Command run in the new image (with the app's environment and volumes).
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// Seconds the migration may run before it counts as failed.
    #[serde(default = "default_migration_deadline")]
    #[schemars(range(min = 1, max = 86400))]
    pub active_deadline_seconds: i64,
    /// Retries of a failed migration pod before the migration counts as failed.
    /// Kubernetes waits 10 s, 20 s, 40 s, ... between them, so a start-up race
    /// a new pod does not repeat (the database Service's endpoints not yet
    /// published) heals within the deadline. Each retry is a new pod, which a
    /// NetworkPolicy enforcer admits only once it has seen its address: the
    /// command itself should wait for the database.
    #[serde(default = "default_migration_backoff_limit")]
    #[schemars(range(min = 0, max = 20))]
    pub backoff_limit: i32,
}

fn default_migration_deadline() -> i64 {
    600
}

fn default_migration_backoff_limit() -> i32 {
    6
}

/// The load balancer entry.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressSpec {
    /// Host name the Ingress answers, for example `mail.example.com`.
    #[schemars(regex(pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"))]
    pub host: String,
    /// IngressClass to use. Without it the cluster's default class serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Path prefix routed to the app.
    #[serde(default = "default_ingress_path")]
    #[schemars(regex(pattern = r"^/"))]
    pub path: String,
    /// TLS for the host, from a Secret of type kubernetes.io/tls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressTls>,
    /// Annotations for the Ingress controller.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn default_ingress_path() -> String {
    "/".into()
}

/// Path prefix of an HTTPRoute: `/`, or `/`-separated segments of URL characters
/// (no empty, `.` or `..` segment, no `%`, `#` or `?`), as Gateway API takes it.
pub const ROUTE_PATH_PATTERN: &str = r"^/(((\.{0,2}[-A-Za-z0-9_~!$&'()*+,;=:@]|\.{3})[-A-Za-z0-9._~!$&'()*+,;=:@]*)(/(\.{0,2}[-A-Za-z0-9_~!$&'()*+,;=:@]|\.{3})[-A-Za-z0-9._~!$&'()*+,;=:@]*)*/?)?$";

/// The Gateway API HTTPRoute.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteSpec {
    /// The Gateways the route attaches to (their listeners must allow routes from this
    /// namespace). Each Gateway or listener once; a Gateway named twice needs a sectionName
    /// in both (Gateway API refuses the route otherwise, and Ready says so).
    #[schemars(length(min = 1, max = 32))]
    pub parent_refs: Vec<ParentReference>,
    /// Host names the route answers, for example `mail.example.com` or `*.example.com`.
    /// Without them every host name of the listener.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(
            length(min = 1, max = 253),
            regex(pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        )
    )]
    pub hostnames: Vec<String>,
    /// Path prefix routed to the app (whole path segments: `/mail` takes `/mail/x`, not `/mailbox`).
    #[serde(default = "default_ingress_path")]
    #[schemars(length(max = 1024), regex(pattern = ROUTE_PATH_PATTERN))]
    pub path: String,
}

/// A Gateway, or one of its listeners.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParentReference {
    /// Name of the Gateway.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Gateway. Without it the WebCluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: Option<String>,
    /// Name of one listener of the Gateway. Without it every listener that allows the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub section_name: Option<String>,
}

/// TLS settings of the Ingress.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressTls {
    /// Secret holding the certificate and key.
    #[schemars(length(min = 1))]
    pub secret_name: String,
}

/// Backend of the shared cache.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CacheBackend {
    /// Independent memcached nodes; clients hash keys over the full node list.
    Memcached,
    /// A Redis primary, optionally with replicas that follow it.
    Redis,
}

/// Shared sessions and cache.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!has(self.persistence) || self.backend == 'redis'").message("spec.cache.persistence: only the redis backend persists data"))]
pub struct CacheSpec {
    /// memcached or redis.
    pub backend: CacheBackend,
    /// Number of cache pods. memcached: nodes the keys are hashed over; redis: pod 0 is the
    /// primary and the others replicate from it.
    #[serde(default = "default_cache_replicas")]
    #[schemars(range(min = 1, max = 32))]
    pub replicas: i32,
    /// Container image. Defaults to the official `memcached` or `redis` image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Memory for cached data per pod, a quantity from 16Mi to 64Gi (memcached `-m`
    /// takes it in whole MiB, redis `maxmemory` in bytes).
    #[serde(default = "default_cache_memory")]
    #[x_kube(validation = Rule::new(memory_range_rule()).message(format!("spec.cache.memory: {}", memory_range_hint()).as_str()))]
    pub memory: Quantity,
    /// Requests and limits. Without them: 50m CPU and `memory` requested, `memory`
    /// plus 25% as the memory limit (connections and overhead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Redis only: keep data on a volume (append-only file) across restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<VolumeSize>,
    /// Where the cache pods run: node selector, tolerations, affinity, priority class, topology spread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodPlacement>,
}

fn default_cache_replicas() -> i32 {
    2
}

fn default_cache_memory() -> Quantity {
    Quantity("64Mi".into())
}

/// Size and class of a volume claim.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeSize {
    /// Requested size, for example `10Gi`.
    #[serde(default = "default_volume_size")]
    pub size: Quantity,
    /// StorageClass. Without it the cluster's default class is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

fn default_volume_size() -> Quantity {
    Quantity("1Gi".into())
}

/// The optional Varnish HTTP cache in front of the app.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCacheSpec {
    /// Varnish image. Defaults to the official `varnish` image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Number of Varnish pods. Two by default, so a drain or a crash never cuts the
    /// traffic the Ingress sends through Varnish; a PodDisruptionBudget (maxUnavailable 1) keeps one.
    #[serde(default = "default_http_cache_replicas")]
    #[schemars(range(min = 1, max = 32))]
    pub replicas: i32,
    /// Cache size, a quantity from 16Mi to 64Gi (`-s malloc`, in whole MiB).
    #[serde(default = "default_http_cache_memory")]
    #[x_kube(validation = Rule::new(memory_range_rule()).message(format!("spec.httpCache.memory: {}", memory_range_hint()).as_str()))]
    pub memory: Quantity,
    /// Requests and limits of the Varnish container. Without them: 50m CPU, memory
    /// `memory` plus 64Mi requested and `memory` × 1.5 plus 64Mi as the limit
    /// (Varnish keeps per-object overhead and thread stacks beside the `-s malloc` storage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// A complete VCL replacing the generated one. The backend must be named `app`
    /// and point at host `WEBCLUSTER_APP_HOST`, port `WEBCLUSTER_APP_PORT` (replaced when rendered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcl: Option<String>,
    /// The entry of `spec.app.sharedSecrets` that authorises cache invalidation, for
    /// example `HTTPCACHE_VARNISH_INVALIDATE_TOKEN` (eZ Platform). The generated VCL then
    /// evicts on `PURGE` (that URL) and `PURGEKEYS` (the xkey tags listed in the
    /// `xkey-purge` or `xkey-softpurge` header) when the request's `X-Invalidate-Token`
    /// header carries that secret's value, and answers 403 otherwise. Without it the
    /// generated VCL refuses every invalidation. Varnish reads the value from its
    /// environment (`WEBCLUSTER_INVALIDATE_TOKEN`, also there for a `vcl` of your own);
    /// tag purges need the xkey vmod (varnish-modules, in the official image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub invalidate_token_secret: Option<String>,
    /// Where the Varnish pods run: node selector, tolerations, affinity, priority class, topology spread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodPlacement>,
}

fn default_http_cache_replicas() -> i32 {
    2
}

fn default_http_cache_memory() -> Quantity {
    Quantity("256Mi".into())
}

/// Database engine.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseEngine {
    /// PostgreSQL with streaming replication.
    Postgresql,
    /// MariaDB with GTID binlog replication.
    Mariadb,
}

/// The database.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.managed) != has(self.external)").message("spec.database: set exactly one of managed or external"))]
#[x_kube(validation = Rule::new(SEMI_SYNC_RULE).message(SEMI_SYNC_MESSAGE))]
pub struct DatabaseSpec {
    /// postgresql or mariadb. Cannot change once set: data is not converted.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.database.engine: is immutable; data is not converted between engines"))]
    pub engine: DatabaseEngine,
    /// A primary with read replicas run by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedDatabase>,
    /// A database run elsewhere, given as DSNs in Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDatabase>,
}

/// Most extra databases beside the main one.
pub const MAX_EXTRA_DATABASES: usize = 8;
/// Names of the engines' own databases, which an extra database cannot take.
pub const RESERVED_DATABASE_NAMES: [&str; 7] =
    ["postgres", "template0", "template1", "mysql", "information_schema", "performance_schema", "sys"];
/// Names of the engines' own users and the replication user, which an extra database's user cannot take.
pub const RESERVED_USERS: [&str; 5] = ["postgres", "root", "mysql", "mariadb", "replicator"];

/// An extra database's name or user must differ from the main ones.
const EXTRA_DIFFERS_RULE: &str = "!has(self.databases) || self.databases.all(d, d.name != (has(self.databaseName) ? self.databaseName : 'app') && d.user != (has(self.user) ? self.user : 'app'))";
/// What [`EXTRA_DIFFERS_RULE`] tells.
pub const EXTRA_DIFFERS_MESSAGE: &str =
    "spec.database.managed.databases: each name and user must differ from the main databaseName and user";
/// What the reserved-names rule tells.
pub const EXTRA_RESERVED_MESSAGE: &str = "spec.database.managed.databases: a name cannot be one of the engines' own databases (postgres, template0, template1, mysql, information_schema, performance_schema, sys), a user cannot be postgres, root, mysql, mariadb, replicator or start with pg_";
/// No extra database takes a reserved name or user (`pg_` starts PostgreSQL's own roles).
fn extra_reserved_rule() -> String {
    let list = |names: &[&str]| names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    format!(
        "self.all(d, !(d.name in [{}]) && !(d.user in [{}]) && !d.user.startsWith('pg_'))",
        list(&RESERVED_DATABASE_NAMES),
        list(&RESERVED_USERS)
    )
}

/// MariaDB's semi-synchronous replication waits for one replica's acknowledgement.
const SEMI_SYNC_RULE: &str = "self.engine != 'mariadb' || !has(self.managed) || !has(self.managed.synchronousReplicas) || self.managed.synchronousReplicas <= 1";
/// What [`SEMI_SYNC_RULE`] tells.
pub const SEMI_SYNC_MESSAGE: &str =
    "spec.database.managed.synchronousReplicas: MariaDB's semi-synchronous replication waits for one replica: 0 or 1";
/// Writes cannot wait for more replicas than there are.
const SYNCHRONOUS_RULE: &str =
    "!has(self.synchronousReplicas) || self.synchronousReplicas <= (has(self.replicas) ? self.replicas : 1)";
/// What [`SYNCHRONOUS_RULE`] tells.
pub const SYNCHRONOUS_MESSAGE: &str = "spec.database.managed.synchronousReplicas: must not exceed replicas (a write would wait for replicas that do not exist)";

/// A switchover goes to a pod that exists.
const SWITCHOVER_RULE: &str =
    "!has(self.switchover) || self.switchover.pod <= (has(self.replicas) ? self.replicas : 1)";
/// What [`SWITCHOVER_RULE`] tells.
pub const SWITCHOVER_MESSAGE: &str =
    "spec.database.managed.switchover.pod: must be a database pod's ordinal, from 0 to replicas";

/// What the unique-users rule tells.
pub const EXTRA_USERS_MESSAGE: &str = "spec.database.managed.databases: each user must appear once";

/// A primary/replica database run by the operator with the official image.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new(EXTRA_DIFFERS_RULE).message(EXTRA_DIFFERS_MESSAGE))]
#[x_kube(validation = Rule::new(SYNCHRONOUS_RULE).message(SYNCHRONOUS_MESSAGE))]
#[x_kube(validation = Rule::new(SWITCHOVER_RULE).message(SWITCHOVER_MESSAGE))]
pub struct ManagedDatabase {
    /// Image. Defaults to the official `postgres` or `mariadb` image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Read replicas following the primary (0 = primary only; reads then go to the primary).
    #[serde(default = "default_db_replicas")]
    #[schemars(range(min = 0, max = 8))]
    pub replicas: i32,
    /// Name of the application's database.
    #[serde(default = "default_db_name")]
    #[schemars(regex(pattern = r"^[a-z_][a-z0-9_]{0,62}$"))]
    pub database_name: String,
    /// Name of the application's database user.
    #[serde(default = "default_db_user")]
    #[schemars(regex(pattern = r"^[a-z_][a-z0-9_]{0,31}$"))]
    pub user: String,
    /// More databases on the same server, each with its own user and generated
    /// password (never regenerated), created by the primary at every start and
    /// replicated like the main one. The app gets `WEBCLUSTER_DB_<NAME>_WRITE_URL`,
    /// `_READ_URL` and their parts. Removing one from the list drops nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_EXTRA_DATABASES), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[x_kube(
        validation = Rule::new(extra_reserved_rule()).message(EXTRA_RESERVED_MESSAGE),
        validation = Rule::new("self.all(a, self.exists_one(b, b.user == a.user))").message(EXTRA_USERS_MESSAGE)
    )]
    pub databases: Vec<ExtraDatabase>,
    /// Data volume of each database pod.
    #[serde(default = "default_db_storage")]
    pub storage: VolumeSize,
    /// Requests and limits of the database container. Without them: 100m CPU and
    /// 256Mi memory requested, a 1Gi memory limit (room for the engines' default buffers
    /// and connections; raise it with the buffers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Seconds a replica may lag behind the primary and still serve reads.
    #[serde(default = "default_max_lag")]
    #[schemars(range(min = 1, max = 86400))]
    pub max_replica_lag_seconds: i32,
    /// Seconds the primary may stay not ready, or gone, before the operator
    /// fails over to the ready replica that received the most. A primary back
    /// sooner (a restarted container) stays the primary.
    #[serde(default = "default_failover_delay")]
    #[schemars(range(min = 1, max = 3600))]
    pub failover_delay_seconds: i32,
    /// Replicas that must have each commit before the primary acknowledges it
    /// (0, the default: asynchronous). From 1, a write acknowledged to the app
    /// survives the loss of the primary; in exchange each commit waits for a
    /// replica (a round trip), and writes wait while fewer replicas are
    /// connected. PostgreSQL: `synchronous_standby_names = 'ANY n (*)'`;
    /// MariaDB: semi-synchronous replication, which waits for one replica (1 at most).
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0, max = 8))]
    pub synchronous_replicas: i32,
    /// A planned switchover of the primary to another pod, carried out once
    /// per `request` (status.database.lastSwitchover names the last one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switchover: Option<Switchover>,
    /// Where the database pods run: node selector, tolerations, affinity, priority class, topology spread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodPlacement>,
}

/// A planned switchover: the primary stops taking writes, `pod` receives
/// everything it wrote, and only then is `pod` promoted; no committed write
/// is lost. A request, not a pinned primary: a later automatic failover is
/// not undone, and applying the same manifest again does nothing.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Switchover {
    /// The database pod to become the primary, by ordinal (0 to `replicas`).
    #[schemars(range(min = 0, max = 8))]
    pub pod: i32,
    /// Names this request (a date, a ticket): a new value asks again.
    #[schemars(length(min = 1, max = 63))]
    pub request: String,
}

/// One more database of a managed server, with its own user.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtraDatabase {
    /// Name of the database, a name both engines take unquoted; upper-cased in the
    /// variables' names (`dfs`: `WEBCLUSTER_DB_DFS_WRITE_URL`).
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z_][a-z0-9_]{0,62}$"))]
    pub name: String,
    /// Name of its user, the only one (beside the superuser) it grants to.
    #[schemars(length(min = 1, max = 32), regex(pattern = r"^[a-z_][a-z0-9_]{0,31}$"))]
    pub user: String,
}

impl ManagedDatabase {
    /// Database pods: the primary and the read replicas.
    pub fn pods(&self) -> i32 {
        1 + self.replicas
    }
}

fn is_zero(value: &i32) -> bool {
    *value == 0
}

fn default_failover_delay() -> i32 {
    5
}

fn default_db_replicas() -> i32 {
    1
}

fn default_db_name() -> String {
    "app".into()
}

fn default_db_user() -> String {
    "app".into()
}

fn default_db_storage() -> VolumeSize {
    VolumeSize { size: Quantity("10Gi".into()), storage_class_name: None }
}

fn default_max_lag() -> i32 {
    30
}

/// A database run elsewhere (for example by CloudNativePG or mariadb-operator).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalDatabase {
    /// Secret key holding the read-write DSN, for example `pgsql://user:pass@host:5432/db`.
    #[serde(rename = "writeURLSecretRef")]
    pub write_url_secret_ref: SecretKeyRef,
    /// Secret key holding the read-only DSN. Without it reads use the write DSN.
    #[serde(rename = "readURLSecretRef", default, skip_serializing_if = "Option::is_none")]
    pub read_url_secret_ref: Option<SecretKeyRef>,
    /// More databases, each given by its own DSNs: the app gets
    /// `WEBCLUSTER_DB_<NAME>_WRITE_URL`, `_READ_URL` and their parts, as for a managed server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_EXTRA_DATABASES), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub databases: Vec<ExternalExtraDatabase>,
}

/// One more external database.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalExtraDatabase {
    /// Name of the database in the variables' names, upper-cased (`dfs`: `WEBCLUSTER_DB_DFS_WRITE_URL`).
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z_][a-z0-9_]{0,62}$"))]
    pub name: String,
    /// Secret key holding its read-write DSN.
    #[serde(rename = "writeURLSecretRef")]
    pub write_url_secret_ref: SecretKeyRef,
    /// Secret key holding its read-only DSN. Without it reads use the write DSN.
    #[serde(rename = "readURLSecretRef", default, skip_serializing_if = "Option::is_none")]
    pub read_url_secret_ref: Option<SecretKeyRef>,
}

/// A key in a Secret of the WebCluster's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Shared files.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.volume) != has(self.s3)").message("spec.storage: set exactly one of volume or s3"))]
pub struct StorageSpec {
    /// One ReadWriteMany volume mounted into every app, migration and job pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<SharedVolume>,
    /// An S3 bucket; the app gets its coordinates and credentials as environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,
}

/// A ReadWriteMany volume shared by every app pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!has(self.existingClaim) || !has(self.storageClassName)").message("spec.storage.volume: storageClassName does not apply to an existingClaim"))]
pub struct SharedVolume {
    /// Requested size of the claim the operator creates.
    #[serde(default = "default_files_size")]
    pub size: Quantity,
    /// StorageClass of the claim; it must offer ReadWriteMany.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Use this existing ReadWriteMany claim instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_claim: Option<String>,
    /// Where the volume appears in the containers. The first path is `WEBCLUSTER_FILES_DIR`.
    /// Each path appears once.
    #[schemars(length(min = 1, max = 16), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["path"]))]
    pub mounts: Vec<SharedMount>,
}

fn default_files_size() -> Quantity {
    Quantity("10Gi".into())
}

/// One mount of the shared volume.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SharedMount {
    /// Absolute path in the container.
    #[schemars(regex(pattern = r"^/"))]
    pub path: String,
    /// Sub-path of the volume mounted there (a file or a folder). Without it the volume root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^/]"))]
    pub sub_path: Option<String>,
}

/// An S3 bucket for the app's files.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Storage {
    /// Bucket name.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Endpoint URL for S3-compatible stores. Without it AWS's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Key prefix inside the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Secret with the access key id and secret access key.
    pub credentials_secret_ref: S3Credentials,
}

/// Where the S3 credentials are.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Credentials {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key of the access key id.
    #[serde(rename = "accessKeyIDKey", default = "default_access_key_key")]
    pub access_key_id_key: String,
    /// Key of the secret access key.
    #[serde(default = "default_secret_key_key")]
    pub secret_access_key_key: String,
}

fn default_access_key_key() -> String {
    "AWS_ACCESS_KEY_ID".into()
}

fn default_secret_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".into()
}

/// A cron task run on exactly one node at a time.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronTaskSpec {
    /// Name of the task; the CronJob is `<webcluster>-<name>`.
    #[schemars(length(min = 1, max = 24), regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Five-field cron schedule (minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or
    /// JAN-DEC, day-of-week 0-6 or SUN-SAT; `*`, values, ranges `a-b`, steps `/n`, lists),
    /// for example `13 */2 * * *`, or one of @yearly @annually @monthly @weekly @daily
    /// @midnight @hourly.
    #[schemars(length(max = 128))]
    #[x_kube(
        validation = Rule::new(schedule_rule()).message(format!("spec.jobs[].schedule: {SCHEDULE_HINT}").as_str()),
        validation = Rule::new(schedule_ranges_rule()).message(format!("spec.jobs[].schedule: {SCHEDULE_RANGE_HINT}").as_str())
    )]
    pub schedule: String,
    /// IANA time zone of the schedule, for example `Europe/Berlin`. Without it the controller manager's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_TIME_ZONE_LENGTH))]
    #[x_kube(validation = Rule::new(time_zone_rule()).message(format!("spec.jobs[].timeZone: {TIME_ZONE_HINT}").as_str()))]
    pub time_zone: Option<String>,
    /// Command run in the app image, with the app's environment and volumes.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// Pause the schedule.
    #[serde(default)]
    pub suspend: bool,
    /// Seconds a run may take before it is stopped.
    #[serde(default = "default_job_deadline")]
    #[schemars(range(min = 1, max = 86400))]
    pub active_deadline_seconds: i64,
}

fn default_job_deadline() -> i64 {
    3600
}
