//! What the operator reports back. Every field changes only when the cluster
//! changed, so an idle WebCluster causes no status writes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a WebCluster.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebClusterStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, AppReady, CacheReady, DatabaseReady, StorageReady, JobsReady, MigrationComplete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Label selector of the app pods, for the scale subresource (kubectl scale, HPA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The app Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppStatus>,
    /// The managed database, or the external one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseStatus>,
    /// The shared cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStatus>,
    /// The cron tasks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<CronTaskStatus>,
    /// The migration of the newest app image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationStatus>,
}

/// Figures of the app Deployment.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    /// Pods of the Deployment.
    pub replicas: i32,
    /// Pods that are ready.
    pub ready_replicas: i32,
    /// Pods that run the newest pod template.
    pub updated_replicas: i32,
    /// Image the Deployment runs now (differs from spec.app.image while a migration is pending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `ready/desired`, for `kubectl get`.
    pub summary: String,
}

/// Figures of the database.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    /// Service of the read-write endpoint (managed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_service: Option<String>,
    /// Service of the read-only endpoint (managed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_service: Option<String>,
    /// Pod that is the primary (managed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// The identity of the managed database's data, as its primary logged it
    /// once it served: PostgreSQL's `system identifier N` or MariaDB's `GTID
    /// domain N`. Kept once read: while it is recorded, pod 0 with an empty data
    /// directory refuses to initialise a new database (docs/database.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The last change of primary the operator made: a failover or a switchover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_primary_change: Option<PrimaryChange>,
    /// The switchover request (spec.database.managed.switchover.request)
    /// handled last: carried out, or found done already. Each is handled once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_switchover: Option<String>,
    /// Database pods that are ready (primary included).
    pub ready_replicas: i32,
    /// Database pods asked for (primary included).
    pub replicas: i32,
    /// `engine ready/desired` or `engine external`, for `kubectl get`.
    pub summary: String,
}

/// One change of the database primary.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrimaryChange {
    /// `Failover` (the primary was not ready) or `Switchover` (asked for).
    pub kind: String,
    /// The primary before.
    pub from: String,
    /// The primary after.
    pub to: String,
    /// The new primary's position when it was chosen: WAL received (a byte
    /// position) for PostgreSQL, the GTID sequence number for MariaDB.
    pub position: i64,
    /// Milliseconds from the decision to the end of the promotion.
    pub duration_millis: i64,
    /// When the promotion ended.
    pub time: Time,
}

/// Figures of the cache.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CacheStatus {
    /// Every cache node as host:port, as given to the app.
    pub hosts: Vec<String>,
    /// Cache pods that are ready.
    pub ready_replicas: i32,
    /// `backend ready/desired`, for `kubectl get`.
    pub summary: String,
}

/// Figures of one cron task.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CronTaskStatus {
    /// Task name.
    pub name: String,
    /// When a run was last scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When a run last succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// Runs in progress.
    pub active: i32,
}

/// State of the migration of the newest image.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// Image being migrated to.
    pub image: String,
    /// Job running the migration.
    pub job: String,
    /// Pending, Running, Succeeded or Failed.
    pub phase: String,
}
