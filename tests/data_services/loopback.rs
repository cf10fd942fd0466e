//! The data pods of a WebCluster played on loopback: rendering a WebCluster
//! and reading the pods' files and environment from it, folders owned by an
//! unprivileged user, servers run as that user, and SQL sessions over the
//! engines' own command-line clients. Ports, processes, folders and waits come
//! from the shared harness.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, EnvVar, Probe};
use rand::Rng;
use webcluster::desired::credentials::ALPHABET;
use webcluster::desired::{Child as Object, Plan};

use crate::harness::fs::TempDir;
use crate::harness::process::Process;

/// The unprivileged user servers run as when the tests run as root.
const TEST_USER: &str = "webcluster-test";
/// The PATH of every spawned process (the PostgreSQL binaries are prepended).
pub const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// ---------------------------------------------------------------- rendering

/// The children rendered from one WebCluster, with random alphanumeric
/// generated values in place of the offline placeholders.
pub struct Rendered {
    children: Vec<Object>,
    /// The generated values (passwords): they must show in no log.
    pub secrets: Vec<String>,
}

impl Rendered {
    /// Renders the single WebCluster in `yaml`.
    pub fn new(yaml: &str) -> Self {
        let clusters =
            webcluster::render::parse(yaml).unwrap_or_else(|e| panic!("test WebCluster does not parse: {e}"));
        let cluster = clusters.into_iter().next().expect("one WebCluster");
        let mut plan = Plan::offline(&cluster);
        for value in plan.generated.values_mut() {
            *value = random_alphanumeric(32);
        }
        let secrets = plan.generated.values().cloned().collect();
        let children = webcluster::desired::children(&cluster, &plan).expect("the WebCluster builds");
        Self { children, secrets }
    }

    fn child(&self, kind: &str, name: &str) -> &Object {
        self.children
            .iter()
            .find(|c| c.kind() == kind && c.name() == name)
            .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
    }

    /// The data of a rendered ConfigMap.
    pub fn config_map(&self, name: &str) -> BTreeMap<String, String> {
        match self.child("ConfigMap", name) {
            Object::ConfigMap(cm) => cm.data.clone().unwrap_or_default(),
            _ => unreachable!(),
        }
    }

    /// A value of a rendered Secret.
    pub fn secret_value(&self, name: &str, key: &str) -> String {
        let Object::Secret(secret) = self.child("Secret", name) else { unreachable!() };
        let data = secret.data.as_ref().expect("secret data");
        let bytes = data.get(key).unwrap_or_else(|| panic!("secret {name} has no key {key}"));
        String::from_utf8(bytes.0.clone()).expect("utf-8 secret")
    }

    fn first_container(&self, kind: &str, name: &str) -> Container {
        let spec = match self.child(kind, name) {
            Object::StatefulSet(s) => s.spec.template.spec.clone(),
            Object::Deployment(d) => d.spec.template.spec.clone(),
            _ => None,
        };
        spec.expect("pod spec").containers.into_iter().next().expect("a container")
    }

    /// The environment the first container of a StatefulSet's pod `pod` gets:
    /// literal values, Secret keys resolved, `metadata.name` = `pod`.
    pub fn pod_env(&self, stateful_set: &str, pod: &str) -> BTreeMap<String, String> {
        let container = self.first_container("StatefulSet", stateful_set);
        container.env.unwrap_or_default().iter().map(|var| (var.name.clone(), self.resolve(var, pod))).collect()
    }

    /// The liveness probe of a StatefulSet's first container.
    pub fn liveness_probe(&self, stateful_set: &str) -> Probe {
        let container = self.first_container("StatefulSet", stateful_set);
        container.liveness_probe.unwrap_or_else(|| panic!("{stateful_set} has no liveness probe"))
    }

    /// A literal environment variable of the app Deployment.
    pub fn app_env(&self, deployment: &str, name: &str) -> String {
        let container = self.first_container("Deployment", deployment);
        let env = container.env.unwrap_or_default();
        let var = env.iter().find(|v| v.name == name).unwrap_or_else(|| panic!("the app has no {name}"));
        var.value.clone().unwrap_or_else(|| panic!("{name} is not a literal value"))
    }

    fn resolve(&self, var: &EnvVar, pod: &str) -> String {
        if let Some(value) = &var.value {
            return value.clone();
        }
        let from = var.value_from.as_ref().unwrap_or_else(|| panic!("{} has no value", var.name));
        if let Some(secret) = &from.secret_key_ref {
            return self.secret_value(&secret.name, &secret.key);
        }
        match &from.field_ref {
            Some(field) if field.field_path == "metadata.name" => pod.to_string(),
            // No label yet: a pod before the operator gave it a role.
            Some(field) if field.field_path.starts_with("metadata.labels[") => String::new(),
            _ => panic!("unsupported source of {}", var.name),
        }
    }
}

/// A random value from the operator's alphabet of generated values.
pub fn random_alphanumeric(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

// ---------------------------------------------------------------- binaries

/// Fails the test with the Debian package to install when `path` is missing.
pub fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install the Debian package `{package}` (apt-get install -y --no-install-recommends {package}; see hack/apt-packages.txt)"
    );
}

/// Like [`require`] for a program looked up in [`BASE_PATH`].
pub fn require_program(program: &str, package: &str) -> PathBuf {
    let found = BASE_PATH.split(':').map(|dir| Path::new(dir).join(program)).find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!("`{program}` is missing: install the Debian package `{package}` (apt-get install -y --no-install-recommends {package}; see hack/apt-packages.txt)")
    })
}

/// The folder of the newest PostgreSQL server binaries of the Debian package.
pub fn postgres_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    let (_, bin) = versions.pop().unwrap_or_else(|| {
        panic!("no /usr/lib/postgresql/<version>/bin/postgres: install the Debian package `postgresql` (see hack/apt-packages.txt)")
    });
    for tool in ["initdb", "pg_basebackup", "pg_isready", "psql"] {
        require(&bin.join(tool).to_string_lossy(), "postgresql");
    }
    bin
}

// ---------------------------------------------------------------- users, folders, servers

/// The uid and gid servers run as: `webcluster-test` (created when missing)
/// when the tests run as root, else the current user (no switch).
#[derive(Clone, Copy, Debug)]
pub struct RunAs {
    pub ids: Option<(u32, u32)>,
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// See [`RunAs`].
pub fn run_as() -> RunAs {
    static RUN_AS: OnceLock<RunAs> = OnceLock::new();
    *RUN_AS.get_or_init(|| {
        // Servers are stopped and their process groups killed with kill(1).
        require_program("kill", "procps");
        if command_output("id", &["-u"]).as_deref() != Some("0") {
            return RunAs { ids: None };
        }
        if command_output("id", &["-u", TEST_USER]).is_none() {
            let created = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    TEST_USER,
                ])
                .status();
            assert!(
                created.is_ok_and(|s| s.success()) || command_output("id", &["-u", TEST_USER]).is_some(),
                "cannot create the user {TEST_USER} (useradd from the Debian package `passwd`)"
            );
        }
        let id = |flag: &str| -> u32 {
            command_output("id", &[flag, TEST_USER]).and_then(|s| s.parse().ok()).expect("id of the test user")
        };
        RunAs { ids: Some((id("-u"), id("-g"))) }
    })
}

impl RunAs {
    /// Makes `cmd` run as this user, in its own process group.
    pub fn apply(self, cmd: &mut Command) {
        if let Some((uid, gid)) = self.ids {
            cmd.uid(uid).gid(gid);
        }
        cmd.process_group(0);
    }

    /// Gives `path` to this user.
    pub fn own(self, path: &Path) {
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
        }
    }
}

/// A sub-folder of `tmp` owned by the server user.
pub fn owned_dir(tmp: &TempDir, name: &str) -> PathBuf {
    let dir = tmp.join(name);
    fs::create_dir_all(&dir).expect("create dir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).expect("chmod");
    run_as().own(&dir);
    dir
}

/// Writes rendered files into a sub-folder of `tmp` that the server user can
/// read (a read-only ConfigMap mount in the pods).
pub fn files_dir(tmp: &TempDir, name: &str, files: &BTreeMap<String, String>) -> PathBuf {
    let dir = tmp.join(name);
    fs::create_dir_all(&dir).expect("create dir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    for (file, content) in files {
        let path = dir.join(file);
        fs::write(&path, content).expect("write file");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    dir
}

/// Runs `cmd` to completion within `timeout` (its process group killed after
/// it); stdout and stderr captured together.
pub fn run_bounded(cmd: Command, timeout: Duration) -> (bool, String) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let log = std::env::temp_dir().join(format!("wct-run-{}-{n}.log", std::process::id()));
    let mut process = Process::spawn("a bounded command", cmd, log.clone()).unwrap_or_else(|e| panic!("{e}"));
    let status = process.wait_exit(timeout);
    drop(process);
    let output = fs::read_to_string(&log).unwrap_or_default();
    let _ = fs::remove_file(&log);
    match status {
        Some(s) => (s.success(), output),
        None => (false, format!("{output}\n(timed out after {timeout:?})")),
    }
}

/// A long-running server (a start script and the server it runs) as the
/// server user, output appended to `log`; dropping it stops it as Kubernetes
/// stops a pod (SIGTERM, 15 s, then SIGKILL to its process group).
pub fn server(name: &str, mut cmd: Command, log: PathBuf) -> Process {
    run_as().apply(&mut cmd);
    Process::spawn(name, cmd, log).unwrap_or_else(|e| panic!("{e}")).graceful_on_drop(Duration::from_secs(15))
}

// ---------------------------------------------------------------- SQL sessions

/// A long-lived command-line SQL client (`psql` or `mariadb`) fed statements
/// on stdin. Each query is followed by a marker SELECT so its output (and any
/// error, which shares the pipe) is known to be complete.
pub struct Session {
    process: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    marker: u64,
}

impl Session {
    /// Starts `cmd` (a client reading SQL from stdin, printing one row per
    /// line, flushing after each statement).
    pub fn spawn(mut cmd: Command) -> Result<Self, String> {
        let (reader, writer) = std::io::pipe().map_err(|e| e.to_string())?;
        let writer2 = writer.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::piped()).stdout(writer).stderr(writer2).process_group(0);
        let mut process = cmd.spawn().map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        drop(cmd);
        let stdin = process.stdin.take().expect("stdin");
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { process, stdin, lines, marker: 0 })
    }

    /// Runs `sql` (complete statements ending with `;`) and returns the output
    /// lines; `Err` with the output when it printed an error.
    pub fn query(&mut self, sql: &str, timeout: Duration) -> Result<Vec<String>, String> {
        self.marker += 1;
        let marker = format!("webcluster-marker-{}", self.marker);
        let input = format!("{sql}\nSELECT '{marker}';\n");
        self.stdin
            .write_all(input.as_bytes())
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("client gone: {e}"))?;
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.trim() == marker => break,
                Ok(line) => out.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no answer within {timeout:?}: {out:?}"));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("client exited: {out:?}"));
                }
            }
        }
        if out.iter().any(|l| l.contains("ERROR")) { Err(out.join("\n")) } else { Ok(out) }
    }

    /// The single value a query prints.
    pub fn value(&mut self, sql: &str, timeout: Duration) -> Result<String, String> {
        let lines = self.query(sql, timeout)?;
        match lines.as_slice() {
            [one] => Ok(one.trim().to_string()),
            other => Err(format!("expected one value, got {other:?}")),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Median, 90th percentile and maximum of durations, in milliseconds.
pub fn summary(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let n = samples.len();
    let median = if n % 2 == 1 { ms(samples[n / 2]) } else { (ms(samples[n / 2 - 1]) + ms(samples[n / 2])) / 2.0 };
    (median, ms(samples[(n * 9 / 10).min(n - 1)]), ms(samples[n - 1]))
}

/// Prints a line that shows even when the test harness captures output.
pub fn report(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Panics when a log file contains one of the generated secrets.
pub fn assert_no_secrets(logs: &[PathBuf], secrets: &[String]) {
    for log in logs {
        let text = fs::read_to_string(log).unwrap_or_default();
        for secret in secrets {
            assert!(!text.contains(secret.as_str()), "{} shows a generated password", log.display());
        }
    }
}
