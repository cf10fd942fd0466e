//! Issue 21: more databases beside the main one on a managed server. The
//! rendered start scripts create each with its own user and password; the
//! app reaches it through its own DSN parts, on the primary and through a
//! replica, and the main user cannot open it.

use std::time::{Duration, Instant};

use webcluster::api::DatabaseEngine as Engine;
use webcluster::desired::credentials::{AppDatabase, DsnPart, Endpoint, dsn_key};

use super::{Database, READY_BOUND, REPLICATION_BOUND, SECOND, assert_no_secret_in_binary_logs, engine_name};
use crate::harness::wait::wait_until;
use crate::loopback::{Session, assert_no_secrets, report};

/// eZ Platform's DFS metadata database, and a second one.
const DFS: AppDatabase<'static> = AppDatabase::Extra("dfs");
const LOGS: AppDatabase<'static> = AppDatabase::Extra("logs_db");
const EXTRAS: &str =
    "      databases:\n        - name: dfs\n          user: dfs_user\n        - name: logs_db\n          user: logs\n";

/// The DFS metadata table eZ's dfs_schema.sql creates, in the columns both engines read alike.
const DFS_TABLE: &str = "CREATE TABLE ezdfsfile (name_hash VARCHAR(34) PRIMARY KEY, name VARCHAR(255) NOT NULL, \
     size BIGINT NOT NULL, mtime INT NOT NULL, expired SMALLINT NOT NULL DEFAULT 0);";

fn insert_file(session: &mut Session, id: i64) {
    let sql = format!(
        "INSERT INTO ezdfsfile (name_hash, name, size, mtime) VALUES ('h{id}', 'var/site/storage/f{id}', {id}, 0);"
    );
    session.query(&sql, 10 * SECOND).unwrap_or_else(|e| panic!("insert file {id} into dfs: {e}"));
}

impl Database {
    /// The count of file `id` in the dfs table of pod `ordinal`, once it is 1; the time it took.
    fn wait_file(&mut self, ordinal: usize, id: i64) -> Duration {
        let started = Instant::now();
        let mut session = self.connect_to_within(ordinal, DFS, READY_BOUND);
        let sql = format!("SELECT count(*) FROM ezdfsfile WHERE name_hash = 'h{id}';");
        let mut last = String::new();
        let seen =
            wait_until(REPLICATION_BOUND, Duration::from_millis(50), || match session.value(&sql, 10 * SECOND) {
                Ok(v) => v == "1",
                Err(e) => {
                    last = e;
                    false
                }
            });
        assert!(seen, "file {id} does not show in dfs on t-db-{ordinal} within {REPLICATION_BOUND:?}: {last}");
        started.elapsed()
    }

    fn secret(&self, database: AppDatabase, part: DsnPart) -> String {
        self.rendered.secret_value("t-credentials", &dsn_key(database, Endpoint::Write, part))
    }
}

fn extra_databases(engine: Engine) {
    let started = Instant::now();
    let mut db = Database::with_managed(engine, EXTRAS);
    let env = db.env(0);
    assert_eq!(env.get("DB_EXTRA_DATABASES").map(String::as_str), Some("dfs:dfs_user logs_db:logs"));
    db.start(0);
    db.wait_ready(0, READY_BOUND);

    // The main database and dfs, each through its own write DSN parts.
    let mut main = db.connect_within(0, 30 * SECOND);
    main.query("CREATE TABLE items (id INT PRIMARY KEY, note VARCHAR(100));", 10 * SECOND).expect("main table");
    db.insert(&mut main, 1);
    let mut dfs = db.connect_to_within(0, DFS, 30 * SECOND);
    let current = match engine {
        Engine::Postgresql => "SELECT current_database() || ' ' || current_user;",
        Engine::Mariadb => "SELECT CONCAT(DATABASE(), ' ', CURRENT_USER());",
    };
    assert_eq!(
        dfs.value(current, 10 * SECOND).expect("who"),
        match engine {
            Engine::Postgresql => "dfs dfs_user",
            Engine::Mariadb => "dfs dfs_user@%",
        }
    );
    dfs.query(DFS_TABLE, 10 * SECOND).expect("the dfs table");
    insert_file(&mut dfs, 1);
    let mut logs = db.connect_to_within(0, LOGS, 30 * SECOND);
    logs.query("CREATE TABLE entries (id INT PRIMARY KEY);", 10 * SECOND).expect("a table in logs_db");

    // Each user opens its own database only.
    let (main_user, main_password) =
        (db.secret(AppDatabase::Main, DsnPart::User), db.secret(AppDatabase::Main, DsnPart::Password));
    let denied = db.connect_as(0, &main_user, &main_password, "dfs").err();
    assert!(denied.is_some(), "the main user opens dfs");
    let (dfs_user, dfs_password) = (db.secret(DFS, DsnPart::User), db.secret(DFS, DsnPart::Password));
    let main_name = db.secret(AppDatabase::Main, DsnPart::Name);
    let reads_main = db
        .connect_as(0, &dfs_user, &dfs_password, &main_name)
        .and_then(|mut s| s.value("SELECT count(*) FROM items;", 10 * SECOND));
    assert!(reads_main.is_err(), "dfs_user reads the main database's items: {reads_main:?}");
    assert!(db.connect_as(0, &dfs_user, &dfs_password, "logs_db").is_err(), "dfs_user opens logs_db");

    // Replicas copy both databases and follow the primary.
    db.start(1);
    db.start(2);
    db.wait_ready(1, READY_BOUND);
    db.wait_ready(2, READY_BOUND);
    db.wait_file(1, 1);
    db.wait_row(1, 1, REPLICATION_BOUND);
    insert_file(&mut dfs, 2);
    let lag = db.wait_file(2, 2);
    let mut read = db.connect_to_within(1, DFS, 30 * SECOND);
    assert_eq!(read.value("SELECT count(*) FROM ezdfsfile;", 10 * SECOND).expect("count through the read DSN"), "2");
    let refused =
        read.query("INSERT INTO ezdfsfile (name_hash, name, size, mtime) VALUES ('x', 'x', 0, 0);", 10 * SECOND);
    assert!(refused.is_err(), "a replica takes a write to dfs");

    // A password changed behind the primary's back is the generated one again after a restart.
    let tamper = match engine {
        Engine::Postgresql => "ALTER ROLE dfs_user PASSWORD 'tampered';",
        Engine::Mariadb => "ALTER USER 'dfs_user'@'%' IDENTIFIED BY 'tampered';",
    };
    db.admin(0).query(tamper, 10 * SECOND).expect("change dfs_user's password");
    drop((main, dfs, logs, read));
    assert!(db.connect_to(0, DFS).is_err(), "dfs_user connects with a wrong password");
    assert!(db.stop(0), "the primary did not stop on SIGTERM:\n{}", db.log_tail(0));
    db.start(0);
    db.wait_ready(0, READY_BOUND);
    let mut dfs = db.connect_to_within(0, DFS, 30 * SECOND);
    insert_file(&mut dfs, 3);
    let lag_after = db.wait_file(1, 3);
    drop(dfs);
    db.stop_all();

    let mut log_files = db.logs.clone();
    log_files.sort();
    assert_no_secrets(&log_files, &db.rendered.secrets);
    if engine == Engine::Mariadb {
        assert_no_secret_in_binary_logs(&db);
    }
    report(&format!(
        "{}: dfs and logs_db beside the main database; a dfs row on the replica {:.0} ms after its commit (after the primary's restart {:.0} ms); scenario {:.1} s",
        engine_name(engine),
        lag.as_secs_f64() * 1000.0,
        lag_after.as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64()
    ));
}

#[test]
fn postgresql_extra_databases() {
    extra_databases(Engine::Postgresql);
}

#[test]
fn mariadb_extra_databases() {
    extra_databases(Engine::Mariadb);
}
