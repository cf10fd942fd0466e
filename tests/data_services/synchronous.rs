//! Synchronous replication on loopback (issue 17), both engines: with
//! `synchronousReplicas: 1` a commit returns only once a replica has it, so
//! with the replica gone a write waits until it returns, and the primary
//! killed right after its last acknowledged write loses none of them. The
//! write latency it costs is measured against the same pair of servers
//! replicating asynchronously.

use std::time::{Duration, Instant};

use super::loopback::{Session, summary};
use super::{Database, Engine, READY_BOUND, SECOND, engine_name, report};
use crate::safety::signal;

/// Commits timed in each mode.
const TIMED_COMMITS: i64 = 200;
/// How long a write must stay unacknowledged while no replica has it.
const HELD: Duration = Duration::from_secs(5);

/// A primary and one replica, `synchronous` replicas to acknowledge each
/// commit, with the test table; the primary's session.
fn primary_and_replica(engine: Engine, synchronous: i32) -> (Database, Session) {
    let mut db = Database::with_managed(engine, &format!("      synchronousReplicas: {synchronous}\n"));
    let env = db.env(0);
    let expected = (synchronous > 0).then(|| synchronous.to_string());
    assert_eq!(env.get("DB_SYNCHRONOUS_REPLICAS"), expected.as_ref(), "the pods' DB_SYNCHRONOUS_REPLICAS");
    db.start(0);
    db.wait_ready(0, READY_BOUND);
    // Before any write: a synchronous primary's first write waits for a replica.
    db.start(1);
    db.wait_ready(1, READY_BOUND);
    let mut writer = db.connect_within(0, 30 * SECOND);
    writer.query("CREATE TABLE items (id INT PRIMARY KEY, note VARCHAR(100));", 10 * SECOND).expect("create table");
    (db, writer)
}

/// Median, p90 and worst commit time in milliseconds of rows `ids`.
fn commit_times(db: &mut Database, writer: &mut Session, ids: std::ops::RangeInclusive<i64>) -> (f64, f64, f64) {
    let samples = ids
        .map(|id| {
            let started = Instant::now();
            db.insert(writer, id);
            started.elapsed()
        })
        .collect();
    summary(samples)
}

fn synchronous_replication(engine: Engine) {
    let (mut asynchronous, mut writer) = primary_and_replica(engine, 0);
    let async_times = commit_times(&mut asynchronous, &mut writer, 1..=TIMED_COMMITS);
    drop((writer, asynchronous));

    let (mut db, mut writer) = primary_and_replica(engine, 1);
    let sync_times = commit_times(&mut db, &mut writer, 1..=TIMED_COMMITS);

    // No replica: a write waits, and completes once the replica is back.
    assert!(db.stop(1), "t-db-1 did not stop");
    let waiting = TIMED_COMMITS + 1;
    let answer = writer.query(&format!("INSERT INTO items (id, note) VALUES ({waiting}, 'waits');"), HELD);
    assert!(answer.is_err(), "a commit returned with no replica to have it: {answer:?}");
    let back = Instant::now();
    db.start(1);
    db.wait_row(1, waiting, READY_BOUND);
    let released = back.elapsed();
    assert!(db.has_row(0, waiting), "the held write is on the primary once the replica has it");
    drop(writer);

    // Every acknowledged write survives the primary killed right after it.
    let mut writer = db.connect_within(0, 30 * SECOND);
    let last = waiting + 50;
    for id in waiting + 1..=last {
        db.insert(&mut writer, id);
    }
    signal(&db.server_pid(0), "KILL");
    db.wait_exit(0);
    db.promote(1);
    db.wait_ready(1, READY_BOUND);
    assert_eq!(db.count(1), last.to_string(), "the promoted replica lacks an acknowledged write");

    let ms = |(median, p90, max): (f64, f64, f64)| format!("median {median:.2} ms, p90 {p90:.2} ms, max {max:.1} ms");
    report(&format!(
        "{} commit on loopback, {TIMED_COMMITS} rows: asynchronous {}; synchronous {}; a write held {:.0} s without a replica returned {:.1} s after the replica was started again",
        engine_name(engine),
        ms(async_times),
        ms(sync_times),
        HELD.as_secs_f64(),
        released.as_secs_f64()
    ));
}

#[test]
fn postgresql_synchronous_replication() {
    synchronous_replication(Engine::Postgresql);
}

#[test]
fn mariadb_synchronous_replication() {
    synchronous_replication(Engine::Mariadb);
}
