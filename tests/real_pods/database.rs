//! The managed database on the real node, for both engines: a primary and two
//! replicas Ready for real, one of them acknowledging each commit
//! (`synchronousReplicas: 1`); a row written through WEBCLUSTER_DB_WRITE_URL and
//! read back through WEBCLUSTER_DB_READ_URL from an app pod; one replica's
//! receiver stopped (its readiness probe fails, it leaves `-db-ro`) and
//! restored (it catches up and returns); 2 -> 3 replicas (the new one catches
//! up); the primary's server stopped (its readiness probe fails, it leaves
//! `-db-rw`); the primary pod deleted (every committed row is there after).

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::DeleteParams;
use serde_json::{Value, json};
use webcluster::desired::names;

use crate::harness::pods::{
    exec_until, exec_with_input, pod_ready, real_node_placement, restarts, sh, signal_script, stop_until_not_ready,
    wait_endpoints, wait_pod, wait_ready_on_real_node,
};
use crate::{APP_CONTAINER, Engine, PROBE_TIMEOUT, RealTest, START_TIMEOUT, real_app};

const CLUSTER: &str = "shop";
const WRITE_URL: &str = "WEBCLUSTER_DB_WRITE_URL";
const READ_URL: &str = "WEBCLUSTER_DB_READ_URL";
/// The client the app pod runs (`php` reads it from stdin).
const CLIENT: &str = include_str!("db.php");
/// How long replication may take to carry a row (a replica restarting its
/// receiver retries every 5 s).
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(60);

impl Engine {
    /// Command names of the server's processes.
    pub(crate) fn server_processes(self) -> &'static [&'static str] {
        match self {
            Engine::Postgresql => &["postgres"],
            Engine::Mariadb => &["mariadbd"],
        }
    }

    /// Prints `on` when the primary waits for a replica at each commit: the
    /// quorum PostgreSQL applies, MariaDB's semi-synchronous status.
    fn synchronous_script(self) -> &'static str {
        match self {
            Engine::Postgresql => {
                "psql -X -tA -h \"$DB_SOCKET_DIR\" -p \"$DB_PORT\" -U postgres -d postgres -c \
                 \"SELECT CASE WHEN current_setting('synchronous_standby_names') = 'ANY 1 (*)' \
                 AND EXISTS (SELECT FROM pg_stat_replication WHERE sync_state = 'quorum') THEN 'on' ELSE 'off' END\""
            }
            Engine::Mariadb => {
                "MYSQL_PWD=\"$DB_SUPERUSER_PASSWORD\" mariadb --protocol=socket -S \"$DB_SOCKET_DIR/mariadb.sock\" \
                 -uroot -N -B -e \"SELECT LOWER(VARIABLE_VALUE) FROM information_schema.GLOBAL_STATUS \
                 WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_STATUS'\""
            }
        }
    }

    /// Stops (`false`) or restarts (`true`) the replica's receiver, as the
    /// server's superuser over its socket. PostgreSQL: a replication slot
    /// that does not exist makes the walreceiver (restarted on reload) fail;
    /// resetting it streams again. MariaDB: the replica's IO thread.
    fn receiver_script(self, running: bool) -> String {
        match (self, running) {
            (Engine::Postgresql, running) => {
                let setting = if running {
                    "ALTER SYSTEM RESET primary_slot_name"
                } else {
                    "ALTER SYSTEM SET primary_slot_name = 'webcluster_test_missing_slot'"
                };
                format!(
                    "psql -X -v ON_ERROR_STOP=1 -h \"$DB_SOCKET_DIR\" -p \"$DB_PORT\" -U postgres -d postgres \
                     -c \"{setting}\" -c 'SELECT pg_reload_conf()'"
                )
            }
            (Engine::Mariadb, running) => format!(
                "MYSQL_PWD=\"$DB_SUPERUSER_PASSWORD\" mariadb --protocol=socket -S \"$DB_SOCKET_DIR/mariadb.sock\" \
                 -uroot -e '{} SLAVE IO_THREAD'",
                if running { "START" } else { "STOP" }
            ),
        }
    }
}

/// One app pod and a database of a primary and 2 replicas on the real node,
/// one replica acknowledging each commit.
pub(crate) fn replicated_database(test: &RealTest, engine: Engine, failover_delay_seconds: u32) -> Value {
    json!({
        "app": real_app(1),
        "database": {"engine": engine.name(), "managed": {
            "replicas": 2,
            "maxReplicaLagSeconds": 5,
            "synchronousReplicas": 1,
            "failoverDelaySeconds": failover_delay_seconds,
            // Four such tests run at once beside the others on the real node's
            // 2 CPUs: the default 100m requests left pods Pending.
            "resources": {"requests": {"cpu": "25m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
            "storage": {"size": "1Gi", "storageClassName": test.storage.class()},
            "pod": real_node_placement(),
        }},
        "deletionPolicy": "Delete",
    })
}

/// Runs the client in the app pod with `args`; Ok(its output).
async fn client(test: &RealTest, app: &str, args: &[&str]) -> Result<String, String> {
    let mut command = vec!["php", "--"];
    command.extend_from_slice(args);
    exec_with_input(test.namespace(), app, APP_CONTAINER, &command, CLIENT).await.map(|out| out.trim().to_string())
}

/// Polls the client until its answer is `expected`.
async fn client_until(test: &RealTest, app: &str, args: &[&str], expected: &str, timeout: Duration) {
    let mut command = vec!["php", "--"];
    command.extend_from_slice(args);
    let what = format!("`{}` to answer '{expected}'", args.join(" "));
    exec_until(test.namespace(), app, APP_CONTAINER, &command, CLIENT, &what, timeout, |out| out.trim() == expected)
        .await;
}

/// The stable DNS name of database pod `ordinal`.
fn pod_host(test: &RealTest, ordinal: i32) -> String {
    format!("{}.{}.{}.svc", names::database_pod(CLUSTER, ordinal), names::database_headless(CLUSTER), test.namespace())
}

/// The rows a database pod holds, read at its own address with the app's credentials.
async fn count_at(test: &RealTest, app: &str, ordinal: i32, rows: usize, role: &str) {
    let host = pod_host(test, ordinal);
    client_until(test, app, &["count", WRITE_URL, "-", &host], &format!("{role} {rows}"), REPLICATION_TIMEOUT).await;
}

fn not_ready(pod: &Pod) -> bool {
    !pod_ready(pod)
}

fn set(names: &[String]) -> BTreeSet<String> {
    names.iter().cloned().collect()
}

async fn database_runs_for_real(engine: Engine) {
    // 4 volumes: the primary, two replicas and the one added by scaling.
    let test = RealTest::start(&format!("real-db-{}", engine.name()), 4, 0).await;
    let ns = test.namespace().to_string();
    let client_api = test.ns.client();
    let pods = test.pods();
    // The primary's server stopped and its pod deleted must come back in place
    // here (failover: failover.rs).
    test.apply(CLUSTER, replicated_database(&test, engine, 3600)).await;
    let db: Vec<String> = (0..4).map(|i| names::database_pod(CLUSTER, i)).collect();
    let (primary, replica) = (&db[0], &db[1]);
    let (write_service, read_service) = (names::database_write(CLUSTER), names::database_read(CLUSTER));

    wait_ready_on_real_node(&pods, &db[..3], START_TIMEOUT).await;
    let db_ready = test.elapsed();
    test.wait_ready(CLUSTER, START_TIMEOUT).await;
    let app = test.ready_app_pods(CLUSTER, 1).await.remove(0);
    let healthy = test.assert_healthy().await;
    eprintln!(
        "{}: 3 database pods Ready after {db_ready:.0}s, {healthy} pods healthy after {:.0}s",
        engine.name(),
        test.elapsed()
    );

    // A row through the write DSN, acknowledged once a replica has it, read
    // back through the read DSN from a replica.
    assert_eq!(client(&test, &app, &["put", WRITE_URL, "1"]).await, Ok("primary put 1".to_string()));
    let synchronous = sh(&ns, primary, "database", engine.synchronous_script()).await;
    assert_eq!(synchronous.as_deref().map(str::trim), Ok("on"), "the primary waits for a replica at each commit");
    client_until(&test, &app, &["get", READ_URL, "1"], &format!("replica found {app}"), REPLICATION_TIMEOUT).await;
    wait_endpoints(&client_api, &ns, &read_service, "both replicas behind -db-ro", PROBE_TIMEOUT, |ready| {
        *ready == set(&db[1..3])
    })
    .await;

    // One replica's receiver stopped: its readiness probe fails, it leaves -db-ro.
    sh(&ns, replica, "database", &engine.receiver_script(false)).await.expect("stopping the receiver");
    wait_pod(&pods, replica, &format!("{replica} NotReady with its receiver stopped"), PROBE_TIMEOUT, not_ready).await;
    wait_endpoints(&client_api, &ns, &read_service, "only the healthy replica behind -db-ro", PROBE_TIMEOUT, |ready| {
        *ready == set(&db[2..3])
    })
    .await;
    assert_eq!(client(&test, &app, &["put", WRITE_URL, "2"]).await, Ok("primary put 2".to_string()));
    // Restored: it catches up on the row written meanwhile and returns.
    sh(&ns, replica, "database", &engine.receiver_script(true)).await.expect("restarting the receiver");
    count_at(&test, &app, 1, 2, "replica").await;
    wait_pod(&pods, replica, &format!("{replica} Ready again"), PROBE_TIMEOUT, pod_ready).await;
    wait_endpoints(&client_api, &ns, &read_service, "both replicas behind -db-ro again", PROBE_TIMEOUT, |ready| {
        *ready == set(&db[1..3])
    })
    .await;
    let pod = pods.get(replica).await.expect("the replica");
    assert_eq!(restarts(&pod), 0, "the probe, not a restart, took {replica} out");

    // 2 -> 3 replicas: the new one copies the primary and follows it.
    test.patch_spec(CLUSTER, json!({"database": {"managed": {"replicas": 3}}})).await;
    wait_ready_on_real_node(&pods, &db[3..], START_TIMEOUT).await;
    count_at(&test, &app, 3, 2, "replica").await;
    assert_eq!(client(&test, &app, &["put", WRITE_URL, "3"]).await, Ok("primary put 3".to_string()));
    count_at(&test, &app, 3, 3, "replica").await;
    wait_endpoints(&client_api, &ns, &read_service, "three replicas behind -db-ro", PROBE_TIMEOUT, |ready| {
        *ready == set(&db[1..])
    })
    .await;

    // The primary's server stopped (its container keeps running): its
    // readiness probe fails and it leaves -db-rw; continued, it returns.
    let stopped = stop_until_not_ready(&pods, &ns, primary, "database", engine.server_processes(), PROBE_TIMEOUT).await;
    wait_endpoints(&client_api, &ns, &write_service, "no primary behind -db-rw", PROBE_TIMEOUT, |r| r.is_empty()).await;
    let resume = signal_script("CONT", engine.server_processes());
    sh(&ns, primary, "database", &resume).await.expect("continuing the primary's server");
    wait_pod(&pods, primary, &format!("{primary} Ready again"), PROBE_TIMEOUT, pod_ready).await;
    wait_endpoints(&client_api, &ns, &write_service, "the primary behind -db-rw again", PROBE_TIMEOUT, |r| {
        r.contains(primary.as_str())
    })
    .await;
    assert_eq!(restarts(&stopped), 0, "the liveness probe (TCP) let the stopped primary live");

    // The primary pod deleted: every committed row is there once it is back.
    let old_uid = pods.get(primary).await.expect("the primary").uid();
    pods.delete(primary, &DeleteParams::default()).await.expect("deleting the primary pod");
    let what = format!("{primary} recreated and Ready");
    wait_pod(&pods, primary, &what, START_TIMEOUT, move |p| p.uid() != old_uid && pod_ready(p)).await;
    client_until(&test, &app, &["count", WRITE_URL], "primary 3", REPLICATION_TIMEOUT).await;
    assert_eq!(client(&test, &app, &["put", WRITE_URL, "4"]).await, Ok("primary put 4".to_string()));
    for ordinal in 1..=3 {
        count_at(&test, &app, ordinal, 4, "replica").await;
    }
    client_until(&test, &app, &["count", READ_URL], "replica 4", REPLICATION_TIMEOUT).await;
    eprintln!("{}: done after {:.0}s", engine.name(), test.elapsed());
}

/// PostgreSQL streaming replication on the real node (bound: about 4 minutes).
#[tokio::test]
async fn postgresql_primary_and_replicas_run_for_real() {
    database_runs_for_real(Engine::Postgresql).await;
}

/// MariaDB GTID replication on the real node (bound: about 4 minutes).
#[tokio::test]
async fn mariadb_primary_and_replicas_run_for_real() {
    database_runs_for_real(Engine::Mariadb).await;
}
