//! The data services of a WebCluster against real servers (issue 5, "What must
//! show it"): the exact start scripts, probes and configuration rendered into
//! the ConfigMaps run PostgreSQL and MariaDB (a primary and replicas),
//! memcached and Redis from the Debian packages on loopback, in temporary
//! folders, with the environment the pods get (loopback host, one port per
//! pod). The packages are in hack/apt-packages.txt (`make test` installs the
//! missing ones first); run alone, a missing one fails naming its package.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

#[path = "data_services/extra.rs"]
mod extra;
#[path = "data_services/failover.rs"]
mod failover;
#[path = "harness/mod.rs"]
mod harness;
#[path = "data_services/loopback.rs"]
mod loopback;
#[path = "data_services/safety.rs"]
mod safety;
#[path = "data_services/synchronous.rs"]
mod synchronous;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::fs::TempDir;
use harness::process::{Process, free_port};
use harness::wait::wait_until;
use loopback::{
    BASE_PATH, Rendered, Session, assert_no_secrets, files_dir, owned_dir, postgres_bin_dir, random_alphanumeric,
    report, require_program, run_as, run_bounded, server, summary,
};
use webcluster::api::DatabaseEngine as Engine;
use webcluster::desired::credentials::{AppDatabase, DsnPart, Endpoint, dsn_key};

const SECOND: Duration = Duration::from_secs(1);
/// How long a replica may take to show a committed row.
const REPLICATION_BOUND: Duration = Duration::from_secs(30);
/// How long a pod may take to become ready (a replica copies the primary first).
const READY_BOUND: Duration = Duration::from_secs(90);
/// Writes whose replication lag is measured.
const LAG_SAMPLES: i64 = 100;

fn cluster_yaml(spec: &str) -> String {
    format!(
        "apiVersion: webcluster.io/v1alpha1\nkind: WebCluster\nmetadata:\n  name: t\n  namespace: default\nspec:\n  app:\n    image: example.org/app:1\n{spec}"
    )
}

// ------------------------------------------------------------------ databases

/// The engine's name as a WebCluster spells it (`postgresql`, `mariadb`).
fn engine_name(engine: Engine) -> String {
    let name = serde_json::to_value(engine).ok().and_then(|v| v.as_str().map(str::to_string));
    name.expect("an engine serialises as its name")
}

/// One database StatefulSet played on loopback: pod `t-db-<i>` is instance i.
struct Database {
    engine: Engine,
    rendered: Rendered,
    tmp: TempDir,
    config_dir: PathBuf,
    path: String,
    ports: BTreeMap<usize, u16>,
    servers: BTreeMap<usize, Process>,
    logs: Vec<PathBuf>,
    /// The pod the read-write Service reaches (pod 0 until a failover).
    primary: usize,
    /// The role labels the operator gave (`DB_ROLE` at the next start).
    roles: BTreeMap<usize, &'static str>,
}

impl Database {
    fn new(engine: Engine) -> Self {
        Self::with_managed(engine, "")
    }

    /// The database of a WebCluster whose `managed` block also has `more` (indented lines).
    fn with_managed(engine: Engine, more: &str) -> Self {
        let path = match engine {
            Engine::Postgresql => format!("{}:{BASE_PATH}", postgres_bin_dir().display()),
            Engine::Mariadb => {
                for program in ["mariadbd", "mariadb-install-db"] {
                    require_program(program, "mariadb-server");
                }
                for program in ["mariadb", "mariadb-dump"] {
                    require_program(program, "mariadb-client");
                }
                BASE_PATH.to_string()
            }
        };
        require_program("stdbuf", "coreutils");
        let rendered = Rendered::new(&cluster_yaml(&format!(
            "  database:\n    engine: {}\n    managed:\n      replicas: 2\n      maxReplicaLagSeconds: 10\n{more}",
            engine_name(engine)
        )));
        let tmp = TempDir::new(&engine_name(engine));
        let files = rendered.config_map("t-db-config");
        let expected: &[&str] = match engine {
            Engine::Postgresql => &["common.sh", "peers", "pg_hba.conf", "postgresql.conf", "probe.sh", "start.sh"],
            Engine::Mariadb => &["common.sh", "my.cnf", "peers", "probe.sh", "start.sh"],
        };
        assert_eq!(files.keys().map(String::as_str).collect::<Vec<_>>(), expected, "files of t-db-config");
        let port = match engine {
            Engine::Postgresql => 5432,
            Engine::Mariadb => 3306,
        };
        assert_eq!(
            files["peers"],
            format!(
                "t-db-0.t-db-hl.default.svc:{port}\nt-db-1.t-db-hl.default.svc:{port}\nt-db-2.t-db-hl.default.svc:{port}\n"
            ),
            "every pod's stable name"
        );
        let config_dir = files_dir(&tmp, "config", &files);
        Self {
            engine,
            rendered,
            tmp,
            config_dir,
            path,
            ports: BTreeMap::new(),
            servers: BTreeMap::new(),
            logs: Vec::new(),
            primary: 0,
            roles: BTreeMap::new(),
        }
    }

    fn port(&mut self, ordinal: usize) -> u16 {
        *self.ports.entry(ordinal).or_insert_with(free_port)
    }

    /// The pod's environment, with loopback addresses and temporary folders.
    fn env(&mut self, ordinal: usize) -> BTreeMap<String, String> {
        let pod = format!("t-db-{ordinal}");
        let mut env = self.rendered.pod_env("t-db", &pod);
        assert_eq!(env.get("DB_PRIMARY_POD").map(String::as_str), Some("t-db-0"));
        let primary_port = self.port(self.primary);
        let port = self.port(ordinal);
        let data = self.tmp.join(&pod).join("data");
        let run = self.tmp.join(&pod).join("run");
        if !data.exists() {
            owned_dir(&self.tmp, &pod);
            owned_dir(&self.tmp, &format!("{pod}/data"));
            owned_dir(&self.tmp, &format!("{pod}/run"));
        }
        env.insert("DB_PRIMARY_HOST".into(), "127.0.0.1".into());
        env.insert("DB_PRIMARY_PORT".into(), primary_port.to_string());
        env.insert("DB_PORT".into(), port.to_string());
        env.insert("DB_DATA_DIR".into(), data.display().to_string());
        env.insert("DB_SOCKET_DIR".into(), run.display().to_string());
        env.insert("DB_CONFIG_DIR".into(), self.config_dir.display().to_string());
        env.insert("DB_WAIT_SECONDS".into(), "60".into());
        env.insert("DB_HEAL_AFTER_SECONDS".into(), "20".into());
        env.insert("PATH".into(), self.path.clone());
        if let Some(role) = self.roles.get(&ordinal) {
            env.insert("DB_ROLE".into(), (*role).into());
        }
        env
    }

    fn script(&mut self, ordinal: usize, script: &str) -> Command {
        let env = self.env(ordinal);
        let mut cmd = Command::new("/bin/sh");
        cmd.arg(self.config_dir.join(script)).env_clear().envs(env).current_dir(self.tmp.path());
        cmd
    }

    fn start(&mut self, ordinal: usize) {
        let cmd = self.script(ordinal, "start.sh");
        let log = self.tmp.join(format!("t-db-{ordinal}.log"));
        if !self.logs.contains(&log) {
            self.logs.push(log.clone());
        }
        let name = format!("{} t-db-{ordinal}", engine_name(self.engine));
        self.servers.insert(ordinal, server(&name, cmd, log));
        self.write_peers();
    }

    /// Stops pod `ordinal` like Kubernetes does; true when it shut down on SIGTERM.
    fn stop(&mut self, ordinal: usize) -> bool {
        let stopped = self.servers.remove(&ordinal).is_none_or(|mut server| server.stop(Duration::from_secs(30)));
        self.write_peers();
        stopped
    }

    /// The `peers` file as pod 0 sees it through DNS: a replica's name
    /// resolves while its pod exists (here: while it runs), at its loopback port.
    fn write_peers(&mut self) {
        let running: Vec<usize> = self.servers.keys().copied().filter(|&o| o > 0).collect();
        let peers: String = running.into_iter().map(|o| format!("127.0.0.1:{}\n", self.port(o))).collect();
        let path = self.config_dir.join("peers");
        let tmp = self.config_dir.join(".peers.tmp");
        std::fs::write(&tmp, peers).expect("write peers");
        std::fs::rename(&tmp, &path).expect("rename peers");
    }

    /// Appends settings to a configuration file (before the pods start).
    fn append_config(&mut self, file: &str, text: &str) {
        let path = self.config_dir.join(file);
        let mut content = std::fs::read_to_string(&path).expect("read config");
        content.push_str(text);
        std::fs::write(&path, content).expect("write config");
    }

    /// Empties pod `ordinal`'s data folder, as a lost or replaced claim does.
    fn wipe(&mut self, ordinal: usize) {
        let data = self.tmp.join(format!("t-db-{ordinal}")).join("data");
        std::fs::remove_dir_all(&data).expect("remove data");
        owned_dir(&self.tmp, &format!("t-db-{ordinal}/data"));
    }

    /// The pid of pod `ordinal`'s database server (the script's child), from its pid file.
    fn server_pid(&self, ordinal: usize) -> String {
        let pod = self.tmp.join(format!("t-db-{ordinal}"));
        let file = match self.engine {
            Engine::Postgresql => pod.join("data/pgdata/postmaster.pid"),
            Engine::Mariadb => pod.join("run/mariadb.pid"),
        };
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        text.lines().next().unwrap_or_default().trim().to_string()
    }

    /// Everything pod `ordinal` logged so far (over its restarts).
    fn log_text(&self, ordinal: usize) -> String {
        std::fs::read_to_string(self.tmp.join(format!("t-db-{ordinal}.log"))).unwrap_or_default()
    }

    /// Waits until pod `ordinal`'s log has a line containing `needle`; returns it.
    fn wait_log(&mut self, ordinal: usize, needle: &str, timeout: Duration) -> String {
        let mut found = None;
        wait_until(timeout, Duration::from_millis(300), || {
            found = self.log_text(ordinal).lines().find(|l| l.contains(needle)).map(str::to_string);
            found.is_some()
        });
        found.unwrap_or_else(|| {
            panic!("t-db-{ordinal} logs no \"{needle}\" within {timeout:?}:\n{}", self.log_tail(ordinal))
        })
    }

    /// Asserts pod `ordinal`'s probe fails at every try for `period`.
    fn assert_never_ready(&mut self, ordinal: usize, period: Duration) {
        let ready = wait_until(period, Duration::from_millis(500), || self.probe(ordinal).0);
        assert!(!ready, "t-db-{ordinal} is ready:\n{}", self.log_tail(ordinal));
    }

    fn probe(&mut self, ordinal: usize) -> (bool, String) {
        let mut cmd = self.script(ordinal, "probe.sh");
        run_as().apply(&mut cmd);
        run_bounded(cmd, Duration::from_secs(20))
    }

    fn log_tail(&self, ordinal: usize) -> String {
        self.servers.get(&ordinal).map(Process::log_tail).unwrap_or_default()
    }

    fn assert_running(&mut self, ordinal: usize) {
        let running = self.servers.get_mut(&ordinal).is_some_and(Process::running);
        assert!(running, "t-db-{ordinal} exited; its log:\n{}", self.log_tail(ordinal));
    }

    fn wait_ready(&mut self, ordinal: usize, timeout: Duration) {
        let mut last = String::new();
        let ready = wait_until(timeout, Duration::from_millis(300), || {
            self.assert_running(ordinal);
            let (ok, out) = self.probe(ordinal);
            last = out;
            ok
        });
        assert!(
            ready,
            "t-db-{ordinal} not ready within {timeout:?}; probe said: {last}\nlog:\n{}",
            self.log_tail(ordinal)
        );
    }

    fn wait_unready(&mut self, ordinal: usize, timeout: Duration) -> bool {
        wait_until(timeout, Duration::from_millis(300), || !self.probe(ordinal).0)
    }

    fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "-eL", program]).env_clear().env("PATH", &self.path);
        cmd
    }

    /// A session through the write/read DSN parts of the generated Secret, to pod `ordinal`.
    fn connect(&mut self, ordinal: usize) -> Result<Session, String> {
        self.connect_to(ordinal, AppDatabase::Main)
    }

    /// A session to `database` of pod `ordinal`, through its write (the
    /// primary) or read DSN parts of the generated Secret.
    fn connect_to(&mut self, ordinal: usize, database: AppDatabase) -> Result<Session, String> {
        let endpoint = if ordinal == self.primary { Endpoint::Write } else { Endpoint::Read };
        let secret = |part| self.rendered.secret_value("t-credentials", &dsn_key(database, endpoint, part));
        let (user, password, name) = (secret(DsnPart::User), secret(DsnPart::Password), secret(DsnPart::Name));
        self.connect_as(ordinal, &user, &password, &name)
    }

    /// A session to database `name` of pod `ordinal` as `user`.
    fn connect_as(&mut self, ordinal: usize, user: &str, password: &str, name: &str) -> Result<Session, String> {
        let port = self.port(ordinal).to_string();
        let cmd = match self.engine {
            Engine::Postgresql => {
                let mut cmd = self.client("psql");
                cmd.args(["-X", "-q", "-tA", "-h", "127.0.0.1", "-p", &port, "-U", user, "-d", name]);
                cmd.env("PGPASSWORD", password).env("PGCONNECT_TIMEOUT", "5");
                cmd
            }
            Engine::Mariadb => {
                let mut cmd = self.client("mariadb");
                cmd.args([
                    "--no-defaults",
                    "-n",
                    "-B",
                    "-N",
                    "--force",
                    "--connect-timeout=5",
                    "-h",
                    "127.0.0.1",
                    "-P",
                    &port,
                ]);
                cmd.args(["-u", user, name]).env("MYSQL_PWD", password);
                cmd
            }
        };
        let mut session = Session::spawn(cmd)?;
        session.value("SELECT 1;", 10 * SECOND)?;
        Ok(session)
    }

    fn connect_to_within(&mut self, ordinal: usize, database: AppDatabase, timeout: Duration) -> Session {
        let mut last = String::new();
        let mut session = None;
        wait_until(timeout, Duration::from_millis(300), || match self.connect_to(ordinal, database) {
            Ok(s) => {
                session = Some(s);
                true
            }
            Err(e) => {
                last = e;
                false
            }
        });
        session.unwrap_or_else(|| {
            panic!(
                "cannot open {database:?} on t-db-{ordinal} within {timeout:?}: {last}\nlog:\n{}",
                self.log_tail(ordinal)
            )
        })
    }

    fn connect_within(&mut self, ordinal: usize, timeout: Duration) -> Session {
        self.connect_to_within(ordinal, AppDatabase::Main, timeout)
    }

    /// A superuser session over the pod's local socket.
    fn admin(&mut self, ordinal: usize) -> Session {
        let env = self.env(ordinal);
        let cmd = match self.engine {
            Engine::Postgresql => {
                let mut cmd = self.client("psql");
                cmd.args([
                    "-X",
                    "-q",
                    "-tA",
                    "-h",
                    &env["DB_SOCKET_DIR"],
                    "-p",
                    &env["DB_PORT"],
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                ]);
                cmd
            }
            Engine::Mariadb => {
                let mut cmd = self.client("mariadb");
                let socket = format!("{}/mariadb.sock", env["DB_SOCKET_DIR"]);
                cmd.args(["--no-defaults", "-n", "-B", "-N", "--force", "--protocol=socket", "-S", &socket, "-uroot"]);
                cmd.env("MYSQL_PWD", &env["DB_SUPERUSER_PASSWORD"]);
                cmd
            }
        };
        let mut session = Session::spawn(cmd).expect("admin session");
        session.value("SELECT 1;", 10 * SECOND).unwrap_or_else(|e| panic!("admin session to t-db-{ordinal}: {e}"));
        session
    }

    fn insert(&mut self, writer: &mut Session, id: i64) {
        writer
            .query(&format!("INSERT INTO items (id, note) VALUES ({id}, 'row {id}');"), 10 * SECOND)
            .unwrap_or_else(|e| panic!("insert {id} through the write DSN: {e}"));
    }

    /// Waits until pod `ordinal` shows row `id` (reconnecting while it starts).
    fn wait_row(&mut self, ordinal: usize, id: i64, timeout: Duration) {
        let mut session: Option<Session> = None;
        let mut last = String::new();
        let seen = wait_until(timeout, Duration::from_millis(100), || {
            if session.is_none() {
                match self.connect(ordinal) {
                    Ok(s) => session = Some(s),
                    Err(e) => {
                        last = e;
                        return false;
                    }
                }
            }
            let s = session.as_mut().expect("session");
            match s.value(&format!("SELECT count(*) FROM items WHERE id = {id};"), 10 * SECOND) {
                Ok(v) => v == "1",
                Err(e) => {
                    last = e;
                    session = None;
                    false
                }
            }
        });
        assert!(
            seen,
            "t-db-{ordinal} does not show row {id} within {timeout:?} ({last})\nlog:\n{}",
            self.log_tail(ordinal)
        );
    }

    fn count(&mut self, ordinal: usize) -> String {
        let mut session = self.connect_within(ordinal, 30 * SECOND);
        session.value("SELECT count(*) FROM items;", 10 * SECOND).expect("count rows")
    }

    /// Median (and p90, max) time from a commit on the primary until the row
    /// shows on replica `ordinal`.
    fn measure_lag(&mut self, writer: &mut Session, ordinal: usize, first_id: i64) -> (f64, f64, f64) {
        let mut reader = self.connect_within(ordinal, 30 * SECOND);
        let mut samples = Vec::new();
        for id in first_id..first_id + LAG_SAMPLES {
            self.insert(writer, id);
            let committed = Instant::now();
            let sql = format!("SELECT count(*) FROM items WHERE id = {id};");
            loop {
                let v = reader.value(&sql, 10 * SECOND).unwrap_or_else(|e| panic!("read on t-db-{ordinal}: {e}"));
                if v == "1" {
                    break;
                }
                assert!(
                    committed.elapsed() < REPLICATION_BOUND,
                    "row {id} did not reach t-db-{ordinal} within {REPLICATION_BOUND:?}"
                );
            }
            samples.push(committed.elapsed());
        }
        summary(samples)
    }

    fn stop_all(&mut self) {
        let ordinals: Vec<usize> = self.servers.keys().rev().copied().collect();
        for ordinal in ordinals {
            self.stop(ordinal);
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Replicas first, the primary last (each Process's own Drop would do any order).
        self.stop_all();
    }
}

/// The scenario of issue 5 for one engine.
fn primary_and_replicas(engine: Engine) {
    let started = Instant::now();
    let mut db = Database::new(engine);
    let user = db.env(0)["DB_USER"].clone();

    // The primary initialises and accepts writes through the write DSN.
    db.start(0);
    db.wait_ready(0, READY_BOUND);
    let mut writer = db.connect_within(0, 30 * SECOND);
    writer.query("CREATE TABLE items (id INT PRIMARY KEY, note VARCHAR(100));", 10 * SECOND).expect("create table");
    db.insert(&mut writer, 1);

    // Two replicas copy the primary and follow it.
    db.start(1);
    db.start(2);
    db.wait_ready(1, READY_BOUND);
    db.wait_ready(2, READY_BOUND);
    db.insert(&mut writer, 2);
    for replica in [1, 2] {
        db.wait_row(replica, 1, REPLICATION_BOUND);
        db.wait_row(replica, 2, REPLICATION_BOUND);
        let (ok, out) = db.probe(replica);
        assert!(ok, "probe of replica t-db-{replica} fails: {out}");
    }
    let (ok, out) = db.probe(0);
    assert!(ok, "probe of the primary fails: {out}");

    // Replication lag, commit to visible on a replica.
    let (median, p90, max) = db.measure_lag(&mut writer, 1, 1000);
    report(&format!(
        "replication lag {} median: {median:.2} ms (p90 {p90:.2} ms, max {max:.2} ms, {LAG_SAMPLES} writes)",
        engine_name(engine)
    ));

    // A replica that stops replicating is not ready.
    let repl_user = db.env(0)["DB_REPLICATION_USER"].clone();
    match engine {
        Engine::Mariadb => {
            db.admin(2).query("STOP SLAVE;", 10 * SECOND).expect("stop slave");
        }
        Engine::Postgresql => {
            // The primary refuses the replication user and drops t-db-2's stream.
            let sql = format!(
                "ALTER ROLE \"{repl_user}\" NOLOGIN;\nSELECT count(pg_terminate_backend(pid)) FROM pg_stat_replication WHERE application_name = 't-db-2';"
            );
            db.admin(0).query(&sql, 10 * SECOND).expect("cut t-db-2's replication");
        }
    }
    // Unready once its data is maxReplicaLagSeconds (10) old, however idle the primary.
    assert!(db.wait_unready(2, 30 * SECOND), "probe of t-db-2 passes while its replication is stopped");
    if engine == Engine::Postgresql {
        let sql = format!("ALTER ROLE \"{repl_user}\" LOGIN;");
        db.admin(0).query(&sql, 10 * SECOND).expect("allow replication again");
    }
    assert!(db.stop(2), "t-db-2 did not stop on SIGTERM:\n{}", db.log_tail(2));
    let (ok, _) = db.probe(2);
    assert!(!ok, "probe of a stopped replica passes");
    for id in 3..=20 {
        db.insert(&mut writer, id);
    }
    // Restarted with its data, it catches up.
    db.start(2);
    db.wait_row(2, 20, REPLICATION_BOUND + READY_BOUND);
    db.wait_ready(2, READY_BOUND);

    // A replica added after the writes catches up too.
    db.start(3);
    db.wait_ready(3, READY_BOUND);
    db.wait_row(3, 20, REPLICATION_BOUND);
    db.insert(&mut writer, 21);
    db.wait_row(3, 21, REPLICATION_BOUND);
    let primary_count = db.count(0);
    assert_eq!(db.count(3), primary_count, "rows on the added replica");

    // The primary restarts with its data and re-applies the roles: a password
    // changed behind its back is the generated one again.
    let tamper = match engine {
        Engine::Postgresql => format!("ALTER ROLE \"{user}\" PASSWORD 'tampered';"),
        Engine::Mariadb => format!("ALTER USER '{user}'@'%' IDENTIFIED BY 'tampered';"),
    };
    db.admin(0).query(&tamper, 10 * SECOND).expect("change the app password");
    drop(writer);
    assert!(db.connect(0).is_err(), "the app connects with a wrong password");
    assert!(db.stop(0), "the primary did not stop on SIGTERM:\n{}", db.log_tail(0));
    db.start(0);
    db.wait_ready(0, READY_BOUND);
    let mut writer = db.connect_within(0, 30 * SECOND);
    db.insert(&mut writer, 22);
    for replica in [1, 2, 3] {
        db.wait_row(replica, 22, REPLICATION_BOUND);
        db.wait_ready(replica, READY_BOUND);
    }
    drop(writer);
    db.stop_all();

    let mut logs = db.logs.clone();
    logs.sort();
    assert_no_secrets(&logs, &db.rendered.secrets);
    if engine == Engine::Mariadb {
        assert_no_secret_in_binary_logs(&db);
    }
    report(&format!("{} scenario took {:.1} s", engine_name(engine), started.elapsed().as_secs_f64()));
}

/// Issue 20, finding 6: no generated password in any pod's binary or relay
/// log (the users replicate with their password hashes).
fn assert_no_secret_in_binary_logs(db: &Database) {
    let mut checked = 0;
    for ordinal in 0..4 {
        let dir = db.tmp.join(format!("t-db-{ordinal}/data/mysql"));
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("mariadb-bin.0") || name.starts_with("mariadb-relay-bin.0")) {
                continue;
            }
            let bytes = std::fs::read(entry.path()).expect("read a binary log");
            for secret in &db.rendered.secrets {
                let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
                assert!(!found, "t-db-{ordinal}'s {name} holds a generated password in clear");
            }
            checked += 1;
        }
    }
    assert!(checked >= 4, "binary and relay logs checked: {checked}");
    report(&format!("mariadb: no generated password in {checked} binary and relay logs"));
}

#[test]
fn postgresql_primary_and_replicas() {
    primary_and_replicas(Engine::Postgresql);
}

#[test]
fn mariadb_primary_and_replicas() {
    primary_and_replicas(Engine::Mariadb);
}

// ------------------------------------------------------------------ memcached

fn wait_tcp(addr: &str, timeout: Duration, server: &mut Process) -> TcpStream {
    let mut stream = None;
    wait_until(timeout, Duration::from_millis(100), || {
        assert!(server.running(), "{} exited:\n{}", server.name(), server.log_tail());
        stream = TcpStream::connect(addr).ok();
        stream.is_some()
    });
    let stream =
        stream.unwrap_or_else(|| panic!("{} does not listen on {addr}:\n{}", server.name(), server.log_tail()));
    stream.set_read_timeout(Some(10 * SECOND)).expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// The memcached text protocol, enough for sessions.
struct Memcached {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
}

impl Memcached {
    fn new(stream: TcpStream) -> Self {
        Self { reader: BufReader::new(stream.try_clone().expect("clone")), stream }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("memcached reply");
        line.trim_end().to_string()
    }

    fn set(&mut self, key: &str, value: &str) {
        let request = format!("set {key} 0 0 {}\r\n{value}\r\n", value.len());
        self.stream.write_all(request.as_bytes()).expect("send");
        assert_eq!(self.line(), "STORED");
    }

    fn get(&mut self, key: &str) -> Option<String> {
        self.stream.write_all(format!("get {key}\r\n").as_bytes()).expect("send");
        let header = self.line();
        if header == "END" {
            return None;
        }
        let len: usize = header.rsplit(' ').next().and_then(|n| n.parse().ok()).expect("VALUE header");
        let mut data = vec![0; len + 2];
        self.reader.read_exact(&mut data).expect("value");
        assert_eq!(self.line(), "END");
        Some(String::from_utf8_lossy(&data[..len]).into_owned())
    }
}

/// A consistent-hashing ring over the configured host list (160 points a
/// node, as ketama), answering the index of the node of a key.
struct Ring {
    points: Vec<(u32, usize)>,
}

fn hash32(text: &str, part: usize) -> u32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    u32::from_be_bytes([digest[part * 4], digest[part * 4 + 1], digest[part * 4 + 2], digest[part * 4 + 3]])
}

impl Ring {
    fn new(hosts: &[String]) -> Self {
        let mut points: Vec<(u32, usize)> = hosts
            .iter()
            .enumerate()
            .flat_map(|(node, host)| {
                (0..40).flat_map(move |i| (0..4).map(move |part| (hash32(&format!("{host}-{i}"), part), node)))
            })
            .collect();
        points.sort();
        Self { points }
    }

    fn node(&self, key: &str) -> usize {
        let h = hash32(key, 0);
        let at = self.points.partition_point(|(p, _)| *p < h);
        self.points[at % self.points.len()].1
    }
}

#[test]
fn memcached_sessions_across_nodes() {
    let memcached = require_program("memcached", "memcached");
    let rendered = Rendered::new(&cluster_yaml("  cache:\n    backend: memcached\n    replicas: 2\n"));
    let hosts: Vec<String> = rendered.app_env("t-app", "WEBCLUSTER_CACHE_HOSTS").split(',').map(String::from).collect();
    assert_eq!(hosts.len(), 2, "WEBCLUSTER_CACHE_HOSTS lists every node: {hosts:?}");
    let tmp = TempDir::new("memcached");
    let mut servers = Vec::new();
    let mut nodes = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        assert!(host.starts_with(&format!("t-cache-{i}.")) && host.ends_with(":11211"), "node {i} is {host}");
        let port = free_port();
        let mut cmd = Command::new(&memcached);
        cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0", "-m", "16"]);
        let mut server = server(&format!("memcached {i}"), cmd, tmp.join(format!("memcached-{i}.log")));
        let stream = wait_tcp(&format!("127.0.0.1:{port}"), 10 * SECOND, &mut server);
        servers.push(server);
        nodes.push(Memcached::new(stream));
    }
    let ring = Ring::new(&hosts);
    let sessions: Vec<(String, String)> = (0..200)
        .map(|i| {
            (format!("sess_{}", random_alphanumeric(26)), format!("user|i:{i};token|s:{}", random_alphanumeric(16)))
        })
        .collect();
    for (key, value) in &sessions {
        nodes[ring.node(key)].set(key, value);
    }
    let mut per_node = [0; 2];
    for (key, value) in &sessions {
        let node = ring.node(key);
        assert_eq!(nodes[node].get(key).as_deref(), Some(value.as_str()), "session {key} read back");
        assert_eq!(nodes[1 - node].get(key), None, "session {key} only on its node");
        per_node[node] += 1;
    }
    assert!(per_node.iter().all(|&n| n > 20), "keys land on both nodes: {per_node:?}");
    // Another client from the same list agrees on every key.
    let other = Ring::new(&hosts);
    assert!(sessions.iter().all(|(k, _)| other.node(k) == ring.node(k)));
    report(&format!("memcached sessions per node: {per_node:?}"));
}

// ------------------------------------------------------------------ redis

/// Sends one RESP command and returns the reply as text (errors start with `-`).
fn redis(stream: &mut BufReader<TcpStream>, args: &[&str]) -> String {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.get_mut().write_all(out.as_bytes()).expect("send");
    read_reply(stream)
}

fn read_reply(stream: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    stream.read_line(&mut line).expect("redis reply");
    let line = line.trim_end();
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" | ":" => rest.to_string(),
        "-" => line.to_string(),
        "$" => {
            let Ok(len) = rest.parse::<usize>() else {
                return "(nil)".into();
            };
            let mut data = vec![0; len + 2];
            stream.read_exact(&mut data).expect("bulk");
            String::from_utf8_lossy(&data[..len]).into_owned()
        }
        "*" => {
            let n = rest.parse::<usize>().unwrap_or(0);
            (0..n).map(|_| read_reply(stream)).collect::<Vec<_>>().join("\n")
        }
        _ => panic!("unexpected redis reply {line}"),
    }
}

#[test]
fn redis_replica_follows_primary() {
    require_program("redis-server", "redis-server");
    let rendered = Rendered::new(&cluster_yaml("  cache:\n    backend: redis\n    replicas: 2\n"));
    let files = rendered.config_map("t-cache-config");
    assert!(
        files.contains_key("redis.conf") && files.contains_key("start.sh"),
        "files of t-cache-config: {:?}",
        files.keys()
    );
    let tmp = TempDir::new("redis");
    let config_dir = files_dir(&tmp, "config", &files);
    let ports = [free_port(), free_port()];
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let pod = format!("t-cache-{i}");
        let mut env = rendered.pod_env("t-cache", &pod);
        assert_eq!(env.get("REDIS_PRIMARY_POD").map(String::as_str), Some("t-cache-0"));
        let data = owned_dir(&tmp, &pod);
        env.insert("REDIS_PRIMARY_HOST".into(), "127.0.0.1".into());
        env.insert("REDIS_PRIMARY_PORT".into(), ports[0].to_string());
        env.insert("REDIS_PORT".into(), port.to_string());
        env.insert("REDIS_CONFIG_DIR".into(), config_dir.display().to_string());
        env.insert("REDIS_DATA_DIR".into(), data.display().to_string());
        env.insert("PATH".into(), BASE_PATH.into());
        let mut cmd = Command::new("/bin/sh");
        cmd.arg(config_dir.join("start.sh")).env_clear().envs(env).current_dir(&data);
        let mut server = server(&format!("redis {pod}"), cmd, tmp.join(format!("{pod}.log")));
        let stream = wait_tcp(&format!("127.0.0.1:{port}"), 10 * SECOND, &mut server);
        servers.push(server);
        clients.push(BufReader::new(stream));
    }
    let (primary, replica) = clients.split_at_mut(1);
    let (primary, replica) = (&mut primary[0], &mut replica[0]);
    let value = random_alphanumeric(24);
    assert_eq!(redis(primary, &["SET", "session:1", &value]), "OK");
    let mut got = String::new();
    let seen = wait_until(REPLICATION_BOUND, Duration::from_millis(100), || {
        got = redis(replica, &["GET", "session:1"]);
        got == value
    });
    assert!(
        seen,
        "the replica does not show the write within {REPLICATION_BOUND:?} (got {got}):\n{}",
        servers[1].log_tail()
    );
    let info = redis(replica, &["INFO", "replication"]);
    assert!(info.contains("role:slave") && info.contains("master_link_status:up"), "replica state:\n{info}");
    assert!(redis(replica, &["SET", "x", "y"]).starts_with("-READONLY"), "the replica accepts writes");
}
