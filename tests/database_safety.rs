//! Database safety on the real node (issue 20, "What must show it"), for both
//! engines, a primary and one replica placed on the local cluster's real node:
//!
//! - a replica whose primary purged what it needs (PostgreSQL: its slot lost
//!   and the WAL removed; MariaDB: the binary logs purged) comes back Ready by
//!   itself, with every row;
//! - deleting the primary's claim and pod never gives the app an empty
//!   database: the new pod 0 refuses (NotReady, `REFUSING to initialise` in
//!   its log, `DatabaseReady=False` with reason `PrimaryRefuses`, the app's
//!   write DSN answers nothing), and the recovery of docs/database.md (one
//!   file in its data folder) brings back every row and the same
//!   `status.database.identity`.
//!
//! Each test has its own namespace, local volumes and operator process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::cluster::{TestNamespace, ensure_crd, kubeconfig_path};
use harness::conditions::wait_condition;
use harness::pods::{
    APP_IMAGE, RealNodeStorage, ensure_images, ensure_real_node, exec_until, exec_with_input, pod_ready,
    real_node_app_pod, real_node_placement, sh, wait_pod, wait_ready_on_real_node,
};
use harness::process::{OperatorProcess, log_dir, operator_binary};
use harness::wait::{SETUP_TIMEOUT, assert_holds_for, wait_for};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams};
use serde_json::{Value, json};
use std::sync::Mutex;
use webcluster::api::WebCluster;
use webcluster::desired::meta::{Component, selector_string};
use webcluster::desired::names;

const CLUSTER: &str = "safe";
/// Pods starting on the one real node while other tests start theirs.
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// A probe's outcome reaching the pod's Ready condition, or a replica healing.
const PROBE_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the refusing primary is watched.
const REFUSAL_WATCH: Duration = Duration::from_secs(30);
/// The real-pod tests' database client, run by `php` in the app pod.
const CLIENT: &str = include_str!("real_pods/db.php");
const WRITE_URL: &str = "WEBCLUSTER_DB_WRITE_URL";

/// A namespace with local volumes on the real node and an operator watching it
/// (dropped in field order: the operator first).
struct World {
    _operator: OperatorProcess,
    storage: RealNodeStorage,
    ns: TestNamespace,
}

impl World {
    async fn new(test: &str, volumes: usize) -> Self {
        ensure_real_node().await;
        tokio::task::spawn_blocking(|| ensure_images(&["postgres", "mariadb", "php-apache"]))
            .await
            .expect("importing images");
        ensure_crd().await;
        let ns = TestNamespace::new(test).await;
        let storage = RealNodeStorage::new(&ns, volumes, 0).await;
        let (mut command, port) = OperatorProcess::command(&operator_binary(), ns.name());
        command.args(["--log-level", "info,kube=warn"]).env("KUBECONFIG", kubeconfig_path());
        let log = log_dir().join(format!("{}-operator.log", ns.name()));
        let mut operator = OperatorProcess::spawn("operator", command, port, log).expect("the operator binary starts");
        operator.wait_serving(SETUP_TIMEOUT).await.expect("the operator serves /healthz");
        Self { _operator: operator, storage, ns }
    }

    fn namespace(&self) -> &str {
        self.ns.name()
    }

    async fn apply(&self, spec: Value) {
        let cluster = json!({
            "apiVersion": "webcluster.io/v1alpha1", "kind": "WebCluster",
            "metadata": {"name": CLUSTER, "namespace": self.namespace()}, "spec": spec,
        });
        let params = PatchParams::apply("database-safety-test").force();
        self.ns.api::<WebCluster>().patch(CLUSTER, &params, &Patch::Apply(&cluster)).await.expect("apply");
    }

    async fn replicas(&self, replicas: i32) {
        let spec = json!({"spec": {"database": {"managed": {"replicas": replicas}}}});
        self.ns.api::<WebCluster>().patch(CLUSTER, &PatchParams::default(), &Patch::Merge(spec)).await.expect("scale");
    }

    /// Runs the client in the app pod: Ok(its answer).
    async fn client(&self, app: &str, args: &[&str]) -> Result<String, String> {
        let command = [&["php", "--"][..], args].concat();
        let out = exec_with_input(self.namespace(), app, names::APP_CONTAINER, &command, CLIENT).await;
        out.map(|o| o.trim().to_string())
    }

    async fn client_until(&self, app: &str, args: &[&str], expected: &str, timeout: Duration) {
        let command = [&["php", "--"][..], args].concat();
        let what = format!("`{}` to answer '{expected}'", args.join(" "));
        exec_until(self.namespace(), app, names::APP_CONTAINER, &command, CLIENT, &what, timeout, |out| {
            out.trim() == expected
        })
        .await;
    }

    /// The rows database pod `ordinal` holds, read at its own address.
    async fn count_at(&self, app: &str, ordinal: i32, expected: &str) {
        let host = format!(
            "{}.{}.{}.svc",
            names::database_pod(CLUSTER, ordinal),
            names::database_headless(CLUSTER),
            self.namespace()
        );
        self.client_until(app, &["count", WRITE_URL, "-", &host], expected, PROBE_TIMEOUT).await;
    }

    async fn database_log(&self, pod: &str) -> String {
        let params = LogParams { container: Some(names::DATABASE_CONTAINER.into()), ..LogParams::default() };
        self.ns.api::<Pod>().logs(pod, &params).await.unwrap_or_default()
    }

    /// Waits until pod `pod`'s database log has a line containing `needle`; returns it.
    async fn wait_log(&self, pod: &str, needle: &str, timeout: Duration) -> String {
        let found = Mutex::new(None);
        let slot = &found;
        wait_for(&format!("{pod} to log \"{needle}\""), timeout, || async move {
            let line = self.database_log(pod).await.lines().find(|l| l.contains(needle)).map(str::to_string);
            let seen = line.is_some();
            *slot.lock().unwrap() = line;
            seen
        })
        .await;
        found.into_inner().unwrap().unwrap_or_default()
    }
}

async fn app_pod(world: &World) -> String {
    let pods = &world.ns.api::<Pod>();
    let selector = &selector_string(CLUSTER, Component::App);
    let found = Mutex::new(None);
    let slot = &found;
    wait_for("a Ready app pod", START_TIMEOUT, || async move {
        let list = pods.list(&ListParams::default().labels(selector)).await.map(|l| l.items).unwrap_or_default();
        let ready = list.into_iter().find(|p| pod_ready(p) && p.metadata.deletion_timestamp.is_none());
        *slot.lock().unwrap() = ready.map(|p| p.name_any());
        slot.lock().unwrap().is_some()
    })
    .await;
    found.into_inner().unwrap().unwrap_or_default()
}

/// Makes the primary remove what a stopped replica needs, as the database
/// superuser over the pod's socket.
fn purge_script(engine: &str) -> &'static str {
    match engine {
        "postgresql" => {
            r#"set -e
q() { psql -X -tA -v ON_ERROR_STOP=1 -h "$DB_SOCKET_DIR" -p "$DB_PORT" -U postgres -d postgres -c "$1"; }
q "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'"; q "ALTER SYSTEM SET wal_keep_size = 0"; q 'SELECT pg_reload_conf()'
q 'CREATE TABLE IF NOT EXISTS filler (x int)'
for i in 1 2 3 4 5 6; do q 'INSERT INTO filler VALUES (1)'; q 'SELECT pg_switch_wal()'; done
q 'CHECKPOINT'
q 'ALTER SYSTEM RESET max_slot_wal_keep_size'; q 'ALTER SYSTEM RESET wal_keep_size'; q 'SELECT pg_reload_conf()'
q 'SELECT slot_name, wal_status FROM pg_replication_slots'"#
        }
        _ => {
            r#"set -e
q() { MYSQL_PWD="$DB_SUPERUSER_PASSWORD" mariadb --protocol=socket -S "$DB_SOCKET_DIR/mariadb.sock" -uroot -N -B -e "$1"; }
q 'FLUSH BINARY LOGS'
file=$(q 'SHOW MASTER STATUS' | cut -f1)
for i in $(seq 1 60); do
  q "PURGE BINARY LOGS TO '$file'"
  [ "$(q 'SHOW BINARY LOGS' | wc -l)" -eq 1 ] && { q 'SHOW BINARY LOGS'; exit 0; }
  sleep 1
done
exit 1"#
        }
    }
}

async fn database_safety(engine: &str) {
    let started = Instant::now();
    // 3 volumes: the primary, the replica, and the primary's claim made anew.
    let world = World::new(&format!("db-safety-{engine}"), 3).await;
    let ns = world.namespace().to_string();
    let pods = world.ns.api::<Pod>();
    world
        .apply(json!({
            "app": {"image": APP_IMAGE, "replicas": 1, "port": 8000, "pod": real_node_app_pod(),
                    "healthCheck": {"path": "/", "initialDelaySeconds": 0, "periodSeconds": 3}},
            "database": {"engine": engine, "managed": {
                "replicas": 1, "maxReplicaLagSeconds": 10,
                // The empty primary's refusal is what this shows, not a failover.
                "failoverDelaySeconds": 3600,
                "storage": {"size": "1Gi", "storageClassName": world.storage.class()},
                "pod": real_node_placement(),
            }},
            "deletionPolicy": "Delete",
        }))
        .await;
    let (primary, replica) = (names::database_pod(CLUSTER, 0), names::database_pod(CLUSTER, 1));
    wait_ready_on_real_node(&pods, &[primary.clone(), replica.clone()], START_TIMEOUT).await;
    let api = world.ns.api::<WebCluster>();
    wait_condition(&api, CLUSTER, "Ready", "Ready=True", START_TIMEOUT, |c| c.status == "True").await;
    let app = app_pod(&world).await;
    for id in ["1", "2", "3"] {
        assert_eq!(world.client(&app, &["put", WRITE_URL, id]).await, Ok(format!("primary put {id}")));
    }
    world.count_at(&app, 1, "replica 3").await;
    eprintln!("{engine}: primary and replica Ready with 3 rows after {:.0}s", started.elapsed().as_secs_f64());
    let identity = recorded_identity(&world).await;
    eprintln!("{engine}: status.database.identity is {identity}");

    // The replica away while the primary writes and removes what it would need.
    world.replicas(0).await;
    let (pods_ref, replica_ref) = (&pods, &replica);
    wait_for(&format!("{replica} gone after scaling to 0 replicas"), START_TIMEOUT, || async move {
        matches!(pods_ref.get_opt(replica_ref).await, Ok(None))
    })
    .await;
    assert_eq!(world.client(&app, &["put", WRITE_URL, "4"]).await, Ok("primary put 4".to_string()));
    let purged = sh(&ns, &primary, names::DATABASE_CONTAINER, purge_script(engine)).await;
    eprintln!("{engine}: purged on the primary: {purged:?}");
    purged.expect("purging on the primary");
    let back = Instant::now();
    world.replicas(1).await;
    wait_ready_on_real_node(&pods, std::slice::from_ref(&replica), START_TIMEOUT).await;
    world.count_at(&app, 1, "replica 4").await;
    let needle = if engine == "postgresql" { "re-cloning" } else { "re-seeding" };
    let line = world.wait_log(&replica, needle, Duration::from_secs(10)).await;
    eprintln!(
        "{engine}: {replica} Ready with every row {:.0}s after it came back: {line}",
        back.elapsed().as_secs_f64()
    );
    // The primary's claim and pod deleted: pod 0 comes back with an empty volume.
    let claims = world.ns.api::<PersistentVolumeClaim>();
    let claim = names::database_claim(CLUSTER, 0);
    let old_claim = claims.get(&claim).await.expect("the primary's claim").uid();
    claims.delete(&claim, &DeleteParams::default()).await.expect("deleting the primary's claim");
    pods.delete(&primary, &DeleteParams::default()).await.expect("deleting the primary pod");
    // A pod recreated while the old claim was still terminating waits for it forever: delete it again.
    let (claims_ref, claim_ref, old_ref, primary_ref) = (&claims, &claim, &old_claim, &primary);
    wait_for("the primary's claim made anew", START_TIMEOUT, || async move {
        match claims_ref.get_opt(claim_ref).await.ok().flatten() {
            Some(c) => c.uid() != *old_ref,
            None => {
                let _ = pods_ref.delete(primary_ref, &DeleteParams::default()).await;
                false
            }
        }
    })
    .await;
    let line = world.wait_log(&primary, "REFUSING to initialise", START_TIMEOUT).await;
    eprintln!("{engine}: {primary} with an empty volume: {line}");
    let refusing =
        wait_condition(&api, CLUSTER, "DatabaseReady", "DatabaseReady=False (PrimaryRefuses)", PROBE_TIMEOUT, |c| {
            c.status == "False" && c.reason == "PrimaryRefuses"
        })
        .await;
    let condition = refusing.status.unwrap().conditions.into_iter().find(|c| c.type_ == "DatabaseReady").unwrap();
    assert!(condition.message.contains("REFUSING to initialise"), "the condition quotes the refusal: {condition:?}");
    eprintln!("{engine}: DatabaseReady is False (PrimaryRefuses: {})", condition.message);
    let (world_ref, app_ref) = (&world, &app);
    let what = format!("{primary} NotReady and the app's write DSN unanswered with the primary's volume empty");
    assert_holds_for(&what, REFUSAL_WATCH, || async move {
        let ready = pods_ref.get(primary_ref).await.is_ok_and(|p| pod_ready(&p));
        let answer = world_ref.client(app_ref, &["count", WRITE_URL]).await;
        if let Ok(answer) = &answer {
            eprintln!("the app's write DSN answered: {answer}");
        }
        !ready && answer.is_err()
    })
    .await;
    eprintln!("{engine}: {primary} NotReady and the write DSN unanswered for {REFUSAL_WATCH:?}");

    // The recovery of docs/database.md: copy the most advanced replica.
    sh(&ns, &primary, names::DATABASE_CONTAINER, r#"touch "$DB_DATA_DIR/webcluster-restore""#)
        .await
        .expect("asking for a restore");
    let restore = Instant::now();
    wait_pod(&pods, &primary, &format!("{primary} Ready after the restore"), PROBE_TIMEOUT, pod_ready).await;
    world.client_until(&app, &["count", WRITE_URL], "primary 4", PROBE_TIMEOUT).await;
    assert_eq!(world.client(&app, &["put", WRITE_URL, "5"]).await, Ok("primary put 5".to_string()));
    world.count_at(&app, 1, "replica 5").await;
    assert_eq!(recorded_identity(&world).await, identity, "the restored primary continues the same data");
    eprintln!(
        "{engine}: restored from {replica}: every row back {:.0}s after the request; done after {:.0}s",
        restore.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// The identity of the database's data the status records, once it does.
async fn recorded_identity(world: &World) -> String {
    let api = world.ns.api::<WebCluster>();
    let identity = |c: &WebCluster| c.status.as_ref()?.database.as_ref()?.identity.clone();
    let what = "status.database.identity recorded";
    let cluster =
        harness::wait::wait_for_object(&api, CLUSTER, what, PROBE_TIMEOUT, move |c| identity(c).is_some()).await;
    identity(&cluster).unwrap_or_default()
}

#[tokio::test]
async fn postgresql_database_safety_for_real() {
    database_safety("postgresql").await;
}

#[tokio::test]
async fn mariadb_database_safety_for_real() {
    database_safety("mariadb").await;
}
