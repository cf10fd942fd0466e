//! Child processes stopped on drop (servers, operator binaries), and free
//! loopback ports.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::cluster::repo_root;
use super::http::{self, Scrape};
use super::wait::poll_every;

/// A free loopback port, never handed out twice in this process.
pub fn free_port() -> u16 {
    static USED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("binding a free loopback port");
        if USED.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// Sends `signal` (`-TERM`, `-KILL`, `-0`) to `target` (a pid, or `-pgid`
/// for a process group) with kill(1); true when it was delivered.
fn signal(target: &str, signal: &str) -> bool {
    Command::new("kill").args([signal, "--", target]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// A child process in its own process group, its output appended to a log
/// file. Dropping it stops the whole group: at once by default (as a killed
/// pod), or after SIGTERM and a grace period ([`Process::graceful_on_drop`]).
pub struct Process {
    name: String,
    child: Option<Child>,
    pid: u32,
    log: PathBuf,
    drop_grace: Duration,
}

impl Process {
    /// Spawns `cmd` (stdin closed, stdout and stderr appended to `log`).
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Result<Self, String> {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stdout(file).stderr(err).process_group(0);
        let child = cmd.spawn().map_err(|e| format!("cannot start {name} ({cmd:?}): {e}"))?;
        Ok(Self { name: name.to_string(), pid: child.id(), child: Some(child), log, drop_grace: Duration::ZERO })
    }

    /// Makes the drop stop the process as Kubernetes stops a pod: SIGTERM,
    /// then after `grace` SIGKILL to the group.
    pub fn graceful_on_drop(mut self, grace: Duration) -> Self {
        self.drop_grace = grace;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How the process ended, if it did.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|child| child.try_wait().ok().flatten())
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    /// Its whole log.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 40 lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits up to `timeout` for the process to end.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline || self.child.is_none() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, up to `grace` for the process to end (none: SIGKILL at once),
    /// then SIGKILL to whatever is left of its group. True when it ended on
    /// SIGTERM.
    pub fn stop(&mut self, grace: Duration) -> bool {
        if self.child.is_none() {
            return true;
        }
        let clean = !grace.is_zero() && signal(&self.pid.to_string(), "-TERM") && self.wait_exit(grace).is_some();
        let group = format!("-{}", self.pid);
        signal(&group, "-KILL");
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        // The leader is gone; wait until no member of its group is left.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && signal(&group, "-0") {
            signal(&group, "-KILL");
            std::thread::sleep(Duration::from_millis(50));
        }
        clean
    }

    /// Freezes the process (SIGSTOP): its connections stay open, it reads nothing.
    pub fn pause(&self) {
        assert!(signal(&self.pid.to_string(), "-STOP"), "SIGSTOP to {} ({})", self.name, self.pid);
    }

    /// Lets a paused process run again (SIGCONT).
    pub fn resume(&self) {
        assert!(signal(&self.pid.to_string(), "-CONT"), "SIGCONT to {} ({})", self.name, self.pid);
    }

    /// Kills the process group at once, as a crash or an evicted pod would end.
    pub fn kill(&mut self) {
        self.stop(Duration::ZERO);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop(self.drop_grace);
    }
}

/// Where the logs of operator processes go (`target/test-logs/`).
pub fn log_dir() -> PathBuf {
    let dir = repo_root().join("target/test-logs");
    let _ = fs::create_dir_all(&dir);
    dir
}

/// The operator binary built for this test or bench run.
pub fn operator_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_webcluster-operator"))
}

/// `webcluster-operator run` as a child process, watching one namespace, with
/// its /healthz, /readyz and /metrics on a free loopback port.
pub struct OperatorProcess {
    pub process: Process,
    pub port: u16,
}

impl OperatorProcess {
    /// The command `<binary> run --namespace <namespace> --metrics-address
    /// 127.0.0.1:<port>` and that port; add arguments and environment, then
    /// [`OperatorProcess::spawn`] it.
    pub fn command(binary: &Path, namespace: &str) -> (Command, u16) {
        let port = free_port();
        let mut command = Command::new(binary);
        command.args(["run", "--namespace", namespace, "--metrics-address", &format!("127.0.0.1:{port}")]);
        (command, port)
    }

    /// The operator binary watching `namespace` on the test cluster with the
    /// log filter `log_level`, its log in `target/test-logs/<namespace>-<name>.log`,
    /// once it serves /healthz.
    pub async fn start(namespace: &str, name: &str, log_level: &str) -> Self {
        let (mut command, port) = Self::command(&operator_binary(), namespace);
        command.args(["--log-level", log_level]).env("KUBECONFIG", super::cluster::kubeconfig_path());
        let log = log_dir().join(format!("{namespace}-{name}.log"));
        let mut operator = Self::spawn(name, command, port, log).expect("the operator binary starts");
        operator.wait_serving(super::wait::SETUP_TIMEOUT).await.expect("the operator serves /healthz");
        operator
    }

    /// Starts `command` (from [`OperatorProcess::command`]) with its output in `log`.
    pub fn spawn(name: &str, command: Command, port: u16, log: PathBuf) -> Result<Self, String> {
        Ok(Self { process: Process::spawn(name, command, log)?, port })
    }

    /// Waits until /healthz answers 200; fails at once when the process exits.
    pub async fn wait_serving(&mut self, timeout: Duration) -> Result<(), String> {
        let mut exited = None;
        let serving = poll_every("the operator's /healthz to answer 200", timeout, Duration::from_millis(100), || {
            exited = exited.or_else(|| self.process.exited());
            let healthy = exited.is_none() && http::status(self.port, "/healthz") == Some(200);
            async move { healthy || exited.is_some() }
        })
        .await;
        match exited {
            Some(status) => Err(format!("the operator exited ({status}):\n{}", self.process.log_tail())),
            None => serving.map_err(|e| format!("{e}:\n{}", self.process.log_tail())),
        }
    }

    /// Its /metrics, parsed.
    pub fn scrape(&self) -> Result<Scrape, String> {
        Scrape::get(self.port)
    }

    /// The status code of `GET path` on its port.
    pub fn http_status(&self, path: &str) -> Option<u16> {
        http::status(self.port, path)
    }
}
