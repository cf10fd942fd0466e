//! Automatic failover on the real node (issue 17), both engines, with
//! `synchronousReplicas: 1`: an app pod writes through
//! WEBCLUSTER_DB_WRITE_URL every 100 ms, a new connection per write, while
//! the primary pod is deleted with grace period 0, then, right after, while
//! the new primary's server processes are killed (kill -9). Each time the
//! operator promotes a replica; `-db-rw` follows it, the status and an Event
//! say so; writes resume within a bound and every acknowledged one is on the
//! new primary; the old primary comes back as a replica and serves `-db-ro`
//! with every acknowledged write. Then the primary is cut off from the
//! network (its network namespace drops every packet): it is failed over
//! and fenced, and once healed it takes no write. Last, a planned switchover
//! asked in the spec moves the primary with the same checks.
//!
//! Without synchronous replication (`synchronousReplicas: 0`) the same kill
//! -9 failover runs once more and the test reports how many acknowledged
//! writes the new primary lacks: asynchronous mode promises none.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams};
use serde_json::json;
use webcluster::api::WebCluster;
use webcluster::desired::{ROLE_LABEL, names};

use crate::database::replicated_database;
use crate::harness::pods::{
    Partition, exec_until, exec_with_input, pod_ready, ready_endpoint_pods, sh, signal_script, wait_endpoints,
    wait_pod, wait_ready_on_real_node,
};
use crate::{APP_CONTAINER, Engine, PROBE_TIMEOUT, RealTest, START_TIMEOUT};

const CLUSTER: &str = "shop";
const WRITE_URL: &str = "WEBCLUSTER_DB_WRITE_URL";
/// The writer the app pod runs (`php` reads it from stdin).
const WRITER: &str = include_str!("writer.php");
/// How long the writer writes: the failover and the writes after it fit.
const WRITE_SECONDS: &str = "90";
/// Acknowledged writes before the primary is deleted.
const WRITES_BEFORE: usize = 20;
/// The longest write gap accepted. The goal is 10 s (docs/database.md has
/// the figures); under `make test` the 2 cores are shared by a dozen
/// real-pod tests.
const GAP_BOUND: Duration = Duration::from_secs(60);
/// Acknowledged writes once the new primary is behind `-db-rw`: writes resumed.
const WRITES_AFTER: usize = 10;
/// How long the failover may take to show behind `-db-rw` (a promotion that
/// times out is tried again).
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(180);

/// What the failover must keep of the acknowledged writes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Replication {
    /// `synchronousReplicas: 1`: every acknowledged write survives.
    Synchronous,
    /// `synchronousReplicas: 0`: acknowledged writes may be lost; counted.
    Asynchronous,
}

/// What the writer printed: acknowledged ids with their times, and failures.
struct Writes {
    acknowledged: Vec<(u64, u64)>,
    failed: usize,
}

impl Writes {
    fn parse(output: &str) -> Self {
        let mut acknowledged = Vec::new();
        let mut failed = 0;
        for line in output.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["ok", id, ms] => acknowledged.push((id.parse().expect("an id"), ms.parse().expect("a time"))),
                ["err", ..] => failed += 1,
                _ => {}
            }
        }
        Self { acknowledged, failed }
    }

    /// The longest time between two acknowledged writes in a row.
    fn gap(&self) -> Duration {
        let longest = self.acknowledged.windows(2).map(|pair| pair[1].1 - pair[0].1).max().unwrap_or(0);
        Duration::from_millis(longest)
    }

    /// How many writes were acknowledged at or after `epoch_ms`.
    fn acknowledged_since(&self, epoch_ms: u64) -> usize {
        self.acknowledged.iter().filter(|(_, at)| *at >= epoch_ms).count()
    }

    fn ids(&self) -> BTreeSet<u64> {
        self.acknowledged.iter().map(|(id, _)| *id).collect()
    }
}

/// The ids in the table, through the write DSN or at `host`.
async fn ids_at(test: &RealTest, app: &str, host: Option<&str>, acknowledged: &BTreeSet<u64>, what: &str) {
    let mut command = vec!["php", "--", "ids", WRITE_URL];
    command.extend(host);
    let has_all = |out: &str| acknowledged.is_subset(&parse_ids(out));
    exec_until(test.namespace(), app, APP_CONTAINER, &command, WRITER, what, PROBE_TIMEOUT, has_all).await;
}

/// The ids the writer's `ids` printed, one a line.
fn parse_ids(output: &str) -> BTreeSet<u64> {
    output.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// The ids in the table through the write DSN, read once.
async fn ids_now(test: &RealTest, app: &str) -> BTreeSet<u64> {
    let command = ["php", "--", "ids", WRITE_URL];
    let out = exec_with_input(test.namespace(), app, APP_CONTAINER, &command, WRITER).await;
    parse_ids(&out.unwrap_or_else(|e| panic!("reading the ids on the new primary: {e}")))
}

/// Waits until the status records `primary`, changed from `from` by `kind`
/// (Failover or Switchover).
async fn wait_recorded_primary(test: &RealTest, from: &str, primary: &str, kind: &str) {
    let api = test.ns.api::<WebCluster>();
    let start = Instant::now();
    loop {
        let cluster = api.get(CLUSTER).await.expect("the WebCluster");
        let database = cluster.status.and_then(|s| s.database);
        let recorded = database.as_ref().and_then(|d| d.primary.as_deref());
        let change = database.as_ref().and_then(|d| d.last_primary_change.as_ref());
        let told = change.is_some_and(|c| (c.kind.as_str(), c.from.as_str(), c.to.as_str()) == (kind, from, primary));
        if recorded == Some(primary) && told {
            return;
        }
        assert!(
            start.elapsed() < FAILOVER_TIMEOUT,
            "status.database does not record the {kind} from {from} to {primary}: {database:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The note of the newest of the operator's Events `reason` whose note tells
/// `story`, recorded after `since` (each change of primary has its own Event).
async fn primary_event(test: &RealTest, reason: &str, story: &str, since: Timestamp) -> String {
    let events = test.ns.api::<Event>().list(&ListParams::default()).await.expect("listing Events").items;
    let of_reason: Vec<&Event> = events.iter().filter(|e| e.reason.as_deref() == Some(reason)).collect();
    let time = |e: &Event| e.event_time.as_ref().map(|t| t.0);
    let telling = of_reason.iter().filter(|e| e.note.as_deref().is_some_and(|n| n.contains(story)));
    let newest = telling.filter(|e| time(e).is_some_and(|t| t >= since)).max_by_key(|e| time(e));
    let notes: Vec<(Option<Timestamp>, Option<&String>)> =
        of_reason.iter().map(|e| (time(e), e.note.as_ref())).collect();
    let found = newest.and_then(|e| e.note.clone());
    found.unwrap_or_else(|| panic!("no {reason} Event since {since} telling {story:?} among {notes:?}"))
}

/// How the primary is taken away.
#[derive(Clone, Copy, Debug)]
enum Disruption {
    /// Its pod deleted with grace period 0.
    PodDeleted,
    /// Its server's processes killed (kill -9); the container restarts.
    ServerKilled,
    /// Its network namespace cut off (every packet dropped) until the
    /// failover is done, then healed.
    Partitioned,
    /// A planned switchover to the pod of this ordinal, asked in the spec.
    Switchover(i32),
}

/// Writes tried at the old primary `pod` directly, as the app user, until it
/// is a Ready replica: every one must be refused.
async fn old_primary_refuses_writes(test: &RealTest, app: &str, pod: &str, first_id: u64) {
    let (ns, pods) = (test.namespace(), test.pods());
    let host = names::pod_host(pod, &names::database_headless(CLUSTER), ns);
    let start = Instant::now();
    for id in first_id.. {
        let id = id.to_string();
        let command = ["php", "--", "try", WRITE_URL, host.as_str(), id.as_str()];
        let answer = exec_with_input(ns, app, APP_CONTAINER, &command, WRITER).await.unwrap_or_else(|e| e);
        assert!(!answer.trim().starts_with("ok"), "the old primary {pod} took write {id} after the partition healed");
        let now = pods.get(pod).await.expect("the old primary's pod");
        if pod_ready(&now) && now.labels().get(ROLE_LABEL).map(String::as_str) == Some("replica") {
            return;
        }
        assert!(start.elapsed() < START_TIMEOUT, "{pod} not back Ready as a replica within {START_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One failover while the app pod writes, from the primary behind `-db-rw`.
async fn fail_over_while_writing(
    test: &RealTest,
    engine: Engine,
    app: &str,
    (disruption, replication): (Disruption, Replication),
    first_id: u64,
) {
    let (ns, client, pods) = (test.namespace().to_string(), test.ns.client(), test.pods());
    let (write_service, read_service) = (names::database_write(CLUSTER), names::database_read(CLUSTER));
    let old = ready_endpoint_pods(&client, &ns, &write_service).await.into_iter().next().expect("a primary");
    let writer = {
        let (ns, app, first) = (ns.clone(), app.to_string(), first_id.to_string());
        tokio::spawn(async move {
            let command = ["php", "--", "run", WRITE_URL, WRITE_SECONDS, first.as_str()];
            exec_with_input(&ns, &app, APP_CONTAINER, &command, WRITER).await
        })
    };
    let what = format!("{WRITES_BEFORE} writes before the primary goes");
    let ids = ["php", "--", "ids", WRITE_URL];
    let written = |out: &str| parse_ids(out).range(first_id..).count();
    exec_until(&ns, app, APP_CONTAINER, &ids, WRITER, &what, PROBE_TIMEOUT, |out| written(out) >= WRITES_BEFORE).await;

    let disrupted = Instant::now();
    let since = Timestamp::now();
    let mut partition = None;
    match disruption {
        Disruption::PodDeleted => {
            let now = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() };
            pods.delete(&old, &now).await.expect("deleting the primary pod");
        }
        Disruption::ServerKilled => {
            let kill = signal_script("KILL", engine.server_processes());
            // The container ends with its server: the killing shell may end with it (137, SIGKILL).
            if let Err(error) = sh(&ns, &old, "database", &kill).await {
                assert!(error.contains("exit code 137"), "killing the primary's server: {error}");
            }
        }
        Disruption::Partitioned => {
            let pod = pods.get(&old).await.expect("the primary's pod");
            let ip = pod.status.and_then(|s| s.pod_ip).expect("the primary's address");
            partition = Some(Partition::cut(&ip));
        }
        Disruption::Switchover(pod) => {
            let switchover = json!({"pod": pod, "request": format!("to-{pod}")});
            test.patch_spec(CLUSTER, json!({"database": {"managed": {"switchover": switchover}}})).await;
        }
    }
    wait_endpoints(&client, &ns, &write_service, "a replica promoted behind -db-rw", FAILOVER_TIMEOUT, |ready| {
        ready.len() == 1 && !ready.contains(&old)
    })
    .await;
    let behind_rw = disrupted.elapsed();
    let promoted_ms = u64::try_from(Timestamp::now().as_millisecond()).expect("a time after 1970");
    let primary = ready_endpoint_pods(&client, &ns, &write_service).await.into_iter().next().expect("the new primary");
    let note = match disruption {
        Disruption::Switchover(pod) => {
            assert_eq!(primary, names::database_pod(CLUSTER, pod), "the switchover went to the pod asked for");
            wait_recorded_primary(test, &old, &primary, "Switchover").await;
            let story = format!("switchover to-{pod} from {old}: {primary} ");
            primary_event(test, "SwitchedOver", &story, since).await
        }
        _ => {
            wait_recorded_primary(test, &old, &primary, "Failover").await;
            primary_event(test, "FailedOver", &format!("{old} was not ready: {primary} "), since).await
        }
    };

    // Healed, the old primary takes no write: it was fenced through the kubelet.
    if let Some(partition) = partition {
        partition.heal();
        old_primary_refuses_writes(test, app, &old, first_id + 50_000).await;
    }

    // The old primary returns as a replica and serves -db-ro again.
    let what = format!("{old} back Ready as a replica");
    wait_pod(&pods, &old, &what, START_TIMEOUT, |pod| {
        pod_ready(pod) && pod.labels().get(ROLE_LABEL).map(String::as_str) == Some("replica")
    })
    .await;
    wait_endpoints(&client, &ns, &read_service, "the old primary behind -db-ro", PROBE_TIMEOUT, |ready| {
        ready.contains(&old)
    })
    .await;
    let rejoined = disrupted.elapsed();

    let output = writer.await.expect("the writer task").unwrap_or_else(|e| panic!("the writer failed: {e}"));
    let writes = Writes::parse(&output);
    let (gap, acknowledged) = (writes.gap(), writes.ids());
    eprintln!(
        "{} failover ({disruption:?}): {old} -> {primary} behind -db-rw {:.1} s after, write gap {:.1} s, \
         {} writes acknowledged, {} failed; {old} a Ready replica after {:.0} s; event: {note}",
        engine.name(),
        behind_rw.as_secs_f64(),
        gap.as_secs_f64(),
        acknowledged.len(),
        writes.failed,
        rejoined.as_secs_f64()
    );
    let after = writes.acknowledged_since(promoted_ms);
    assert!(after >= WRITES_AFTER, "writes resumed after the failover: {after} acknowledged since");
    assert!(gap <= GAP_BOUND, "writes stopped for {gap:?} (bound {GAP_BOUND:?})");
    let old_host = names::pod_host(&old, &names::database_headless(CLUSTER), &ns);
    match replication {
        Replication::Synchronous => {
            ids_at(test, app, None, &acknowledged, "every acknowledged write on the new primary").await;
            ids_at(test, app, Some(&old_host), &acknowledged, "every acknowledged write on the old primary").await;
            eprintln!("{} failover ({disruption:?}): every acknowledged write kept on both", engine.name());
        }
        Replication::Asynchronous => {
            let kept = ids_now(test, app).await;
            let lost = acknowledged.difference(&kept).count();
            // The rejoined old primary holds what the new one has: its own
            // unreplicated writes, if any, were rewound away.
            ids_at(test, app, Some(&old_host), &kept, "every write of the new primary on the old primary").await;
            eprintln!(
                "{} failover ({disruption:?}), asynchronous: {lost} of {} acknowledged writes lost",
                engine.name(),
                acknowledged.len()
            );
        }
    }
}

/// Starts the cluster of a primary and `replicas` with `(synchronousReplicas,
/// failoverDelaySeconds)`; its app pod, once pod 0 is behind `-db-rw`.
async fn writing_cluster(
    name: &str,
    engine: Engine,
    replicas: usize,
    (synchronous_replicas, delay): (u32, u32),
) -> (RealTest, String) {
    let test = RealTest::start(&format!("{name}-{}", engine.name()), 1 + replicas, 0).await;
    let mut spec = replicated_database(&test, engine, delay);
    spec["database"]["managed"]["synchronousReplicas"] = json!(synchronous_replicas);
    spec["database"]["managed"]["replicas"] = json!(replicas);
    test.apply(CLUSTER, spec).await;
    let db: Vec<String> = (0..=replicas).map(|i| names::database_pod(CLUSTER, i as i32)).collect();
    wait_ready_on_real_node(&test.pods(), &db, START_TIMEOUT).await;
    test.wait_ready(CLUSTER, START_TIMEOUT).await;
    let app = test.ready_app_pods(CLUSTER, 1).await.remove(0);
    let write_service = names::database_write(CLUSTER);
    wait_endpoints(
        &test.ns.client(),
        test.namespace(),
        &write_service,
        "pod 0 behind -db-rw",
        PROBE_TIMEOUT,
        |ready| ready.len() == 1 && ready.contains(&db[0]),
    )
    .await;
    (test, app)
}

/// The primary pod deleted, then the new primary's server killed: two
/// failovers in a row, a partition, then a planned switchover, each while
/// the app writes.
async fn fails_over_and_switches_over(engine: Engine) {
    let (test, app) = writing_cluster("real-failover", engine, 2, (1, 5)).await;
    let ns = test.namespace().to_string();
    let synchronous = |disruption| (disruption, Replication::Synchronous);
    fail_over_while_writing(&test, engine, &app, synchronous(Disruption::PodDeleted), 1).await;
    // A killed server's container restarts within seconds: fail over first.
    test.patch_spec(CLUSTER, json!({"database": {"managed": {"failoverDelaySeconds": 1}}})).await;
    fail_over_while_writing(&test, engine, &app, synchronous(Disruption::ServerKilled), 100_000).await;
    // The primary cut off from the network: alive, unreachable, then healed.
    fail_over_while_writing(&test, engine, &app, synchronous(Disruption::Partitioned), 300_000).await;
    // A planned switchover to a replica: no write is lost, even those the
    // old primary took while it was asked to stop.
    let write_service = names::database_write(CLUSTER);
    let primary = ready_endpoint_pods(&test.ns.client(), &ns, &write_service).await;
    let target = (0..3).find(|i| !primary.contains(&names::database_pod(CLUSTER, *i))).expect("a replica");
    fail_over_while_writing(&test, engine, &app, synchronous(Disruption::Switchover(target)), 200_000).await;
    let api = test.ns.api::<WebCluster>();
    let status = api.get(CLUSTER).await.expect("the WebCluster").status.and_then(|s| s.database);
    eprintln!(
        "{}: three failovers and a switchover done after {:.0} s; status.database: {status:?}",
        engine.name(),
        test.elapsed()
    );
}

/// Without synchronous replication: the primary's server killed while the
/// app writes; the failover is checked as above and the lost acknowledged
/// writes are counted.
async fn fails_over_asynchronously(engine: Engine) {
    // One replica: the other tests' pods share the real node's 2 CPUs.
    let (test, app) = writing_cluster("real-async-failover", engine, 1, (0, 1)).await;
    let scenario = (Disruption::ServerKilled, Replication::Asynchronous);
    fail_over_while_writing(&test, engine, &app, scenario, 1).await;
}

/// PostgreSQL: three failovers and a switchover (bound: about 12 minutes).
#[tokio::test]
async fn postgresql_fails_over_and_switches_over_while_the_app_writes() {
    fails_over_and_switches_over(Engine::Postgresql).await;
}

/// MariaDB: three failovers and a switchover (bound: about 12 minutes).
#[tokio::test]
async fn mariadb_fails_over_and_switches_over_while_the_app_writes() {
    fails_over_and_switches_over(Engine::Mariadb).await;
}

/// PostgreSQL without synchronous replication: one failover, losses counted.
#[tokio::test]
async fn postgresql_fails_over_asynchronously_and_counts_lost_writes() {
    fails_over_asynchronously(Engine::Postgresql).await;
}

/// MariaDB without synchronous replication: one failover, losses counted.
#[tokio::test]
async fn mariadb_fails_over_asynchronously_and_counts_lost_writes() {
    fails_over_asynchronously(Engine::Mariadb).await;
}
