//! Failover on loopback (issue 17, the loopback half of "What must show it"):
//! the commands the operator runs in the database pods (`start.sh position`,
//! `quiesce`, `promote`, `follow HOST PORT`, `fence [planned]`) and the start of a former
//! primary as a replica, against real servers of both engines.

use std::time::{Duration, Instant};

use super::safety::{fill, primary_with_rows, signal};
use super::{Database, Engine, READY_BOUND, REPLICATION_BOUND, SECOND, engine_name, report, wait_until};
use crate::loopback::{run_as, run_bounded};

/// How long a command the operator runs in a pod may take.
const COMMAND_BOUND: Duration = Duration::from_secs(90);
/// A former primary rejoining: rewound or seeded again, then caught up.
const REJOIN_BOUND: Duration = Duration::from_secs(120);
/// A row written only on a former primary, after the others moved on.
const DIVERGED_ROW: i64 = 1000;

impl Database {
    /// Runs `start.sh ARGS` in pod `ordinal` as the operator does (kubectl exec).
    fn try_control(&mut self, ordinal: usize, args: &[&str]) -> (bool, String) {
        let mut cmd = self.script(ordinal, "start.sh");
        cmd.args(args);
        run_as().apply(&mut cmd);
        run_bounded(cmd, COMMAND_BOUND)
    }

    /// Like [`Self::try_control`]; fails the test when the command fails.
    fn control(&mut self, ordinal: usize, args: &[&str]) -> String {
        let (ok, out) = self.try_control(ordinal, args);
        assert!(ok, "start.sh {} in t-db-{ordinal} failed:\n{out}\nlog:\n{}", args.join(" "), self.log_tail(ordinal));
        out
    }

    /// Pod `ordinal`'s role and position, as `start.sh position` tells them
    /// (waiting while its server starts).
    fn position(&mut self, ordinal: usize) -> (String, u64) {
        let mut out = String::new();
        let answered = wait_until(READY_BOUND, Duration::from_millis(300), || {
            let (ok, text) = self.try_control(ordinal, &["position"]);
            out = text;
            ok
        });
        assert!(answered, "t-db-{ordinal} tells no position: {out}\nlog:\n{}", self.log_tail(ordinal));
        let line = out.lines().find(|l| l.starts_with("role=")).unwrap_or_else(|| panic!("no position in {out}"));
        let field = |key: &str| {
            let value = line.split_whitespace().find_map(|word| word.strip_prefix(key));
            value.unwrap_or_else(|| panic!("no {key} in {line}")).to_string()
        };
        let position = field("position=").parse().unwrap_or_else(|e| panic!("{line}: {e}"));
        (field("role="), position)
    }

    /// Waits until pod `ordinal`'s start script has ended (its server
    /// stopped or died), as the container of a pod ends; forgets it.
    pub(super) fn wait_exit(&mut self, ordinal: usize) {
        let server = self.servers.get_mut(&ordinal).unwrap_or_else(|| panic!("t-db-{ordinal} does not run"));
        let exited = server.wait_exit(60 * SECOND);
        assert!(exited.is_some(), "t-db-{ordinal} still runs:\n{}", server.log_tail());
        self.stop(ordinal);
    }

    /// Starts pod `ordinal` with the role label `role`.
    fn start_as(&mut self, ordinal: usize, role: &'static str) {
        self.roles.insert(ordinal, role);
        self.start(ordinal);
    }

    /// Promotes pod `ordinal` and records it as the pod `-db-rw` reaches.
    pub(super) fn promote(&mut self, ordinal: usize) -> Duration {
        let started = Instant::now();
        self.control(ordinal, &["promote"]);
        let took = started.elapsed();
        self.primary = ordinal;
        self.roles.insert(ordinal, "primary");
        took
    }

    /// Repoints replica `ordinal` at the current primary as the operator
    /// does: it detaches (beside the promotion there), then follows.
    fn follow(&mut self, ordinal: usize) {
        self.control(ordinal, &["detach"]);
        let port = self.port(self.primary).to_string();
        self.control(ordinal, &["follow", "127.0.0.1", &port]);
    }

    pub(super) fn has_row(&mut self, ordinal: usize, id: i64) -> bool {
        let mut session = self.connect_within(ordinal, 30 * SECOND);
        let count = session.value(&format!("SELECT count(*) FROM items WHERE id = {id};"), 10 * SECOND);
        count.unwrap_or_else(|e| panic!("count on t-db-{ordinal}: {e}")) == "1"
    }
}

/// A failover, a former primary that diverged rejoining, and a planned
/// switchover back to the first pod (a chained failover), for one engine.
fn failover_and_rejoin(engine: Engine) {
    let started = Instant::now();
    let mut db = primary_with_rows(engine, 5, &[1, 2]);
    // Replica 2 falls behind: it is down while rows 6..=10 are written.
    assert!(db.stop(2), "t-db-2 did not stop");
    fill(&mut db, 6..=10);
    db.wait_row(1, 10, REPLICATION_BOUND);

    // The primary's server is killed; replica 2 comes back behind, its
    // primary gone. Positions tell which replica received the most.
    signal(&db.server_pid(0), "KILL");
    db.wait_exit(0);
    db.start(2);
    let ((role_1, ahead), (role_2, behind)) = (db.position(1), db.position(2));
    assert_eq!((role_1.as_str(), role_2.as_str()), ("replica", "replica"));
    assert!(ahead > behind, "t-db-1 received rows 6..=10, t-db-2 did not: positions {ahead} and {behind}");

    // The most advanced replica is promoted, the other follows it and
    // receives what it missed, and the new primary takes writes.
    let promotion = db.promote(1);
    db.follow(2);
    db.wait_ready(1, READY_BOUND);
    assert_eq!(db.position(1).0, "primary");
    fill(&mut db, 11..=15);
    db.wait_row(2, 15, REPLICATION_BOUND);
    assert!(db.has_row(2, 6), "t-db-2 has the rows it missed from the old primary");
    db.wait_ready(2, READY_BOUND);

    // Split brain played out: the old primary comes back as a primary on its
    // own and takes a write no other pod has. Fenced, it starts as the
    // operator labels it, a replica, and rejoins the new primary: its own
    // write is gone, the new primary's rows are there.
    db.primary = 0;
    db.start(0);
    db.wait_ready(0, READY_BOUND);
    fill(&mut db, DIVERGED_ROW..=DIVERGED_ROW);
    db.primary = 1;
    db.control(0, &["fence"]);
    db.wait_exit(0);
    let rejoin = Instant::now();
    db.start_as(0, "replica");
    db.wait_row(0, 15, REJOIN_BOUND);
    let rejoined = rejoin.elapsed();
    db.wait_ready(0, REJOIN_BOUND);
    // It diverged: PostgreSQL rewinds it, MariaDB seeds it again.
    let diverged_rejoin = match engine {
        Engine::Postgresql => "rewound: following",
        Engine::Mariadb => "seeding from a dump of the primary",
    };
    db.wait_log(0, diverged_rejoin, SECOND);
    assert!(!db.has_row(0, DIVERGED_ROW), "the former primary's own write survived its rejoin");
    assert!(!db.has_row(1, DIVERGED_ROW), "the former primary's own write reached the new primary");
    assert_eq!(db.position(0).0, "replica");
    fill(&mut db, 16..=16);
    db.wait_row(0, 16, REPLICATION_BOUND);

    // A planned switchover back to pod 0: the primary stops taking writes
    // (a new session's write is refused) and hands every record over
    // first, so the target has every row.
    db.control(1, &["quiesce"]);
    let mut session = db.connect_within(1, 30 * SECOND);
    let refused = session.query("INSERT INTO items VALUES (900, 'after quiesce');", 10 * SECOND);
    assert!(refused.is_err(), "the quiesced primary took a write: {refused:?}");
    db.control(1, &["fence", "planned"]);
    db.wait_exit(1);
    let switchover = db.promote(0);
    assert!(db.has_row(0, 16), "the switchover target lacks the last row written before it");
    db.follow(2);
    db.start_as(1, "replica");
    fill(&mut db, 17..=17);
    for replica in [1, 2] {
        db.wait_row(replica, 17, REJOIN_BOUND);
        db.wait_ready(replica, READY_BOUND);
        assert_eq!(db.count(replica), "17", "t-db-{replica} has rows 1..=17, nothing else");
    }
    // Nothing diverged: PostgreSQL has nothing to rewind, MariaDB replicates
    // from the former primary's own position (seeded once, when it was new).
    match engine {
        Engine::Postgresql => drop(db.wait_log(1, "rewound: following", SECOND)),
        Engine::Mariadb => {
            db.wait_log(1, "rejoining as a replica of 127.0.0.1 from GTID position", SECOND);
            let seeded = db.log_text(1).matches("seeding from a dump").count();
            assert_eq!(seeded, 1, "the former primary of a planned switchover was seeded again");
        }
    }
    report(&format!(
        "{} failover on loopback: promote {:.2} s, former primary rejoined (diverged) in {:.1} s, switchover promote {:.2} s; whole scenario {:.0} s",
        engine_name(engine),
        promotion.as_secs_f64(),
        rejoined.as_secs_f64(),
        switchover.as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
}

#[test]
fn postgresql_failover_and_rejoin() {
    failover_and_rejoin(Engine::Postgresql);
}

#[test]
fn mariadb_failover_and_rejoin() {
    failover_and_rejoin(Engine::Mariadb);
}
