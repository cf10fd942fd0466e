//! Pods that run for real on the local cluster's real node (`hack/node.sh`):
//! the placement that puts a component there, storage the node can mount
//! (local PersistentVolumes with node affinity), `kubectl exec` with stdin,
//! pod readiness, restarts and Service endpoints, and the node's containerd
//! (`ctr`) for retagging images.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, PersistentVolume, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Config, ResourceExt};
use serde_json::{Value, json};

use super::cluster::{TestNamespace, cluster, cluster_config, describe, kubeconfig_path, repo_root, toolchain_bin};
use super::wait::{wait_for_object, watch_until};

/// The real node's name, label and taint (hack/node.sh).
pub const REAL_NODE: &str = "webcluster-real";
pub const REAL_NODE_LABEL_KEY: &str = "webcluster.io/node";
pub const REAL_NODE_LABEL_VALUE: &str = "real";
pub const REAL_NODE_TAINT: &str = "webcluster.io/real-node";
/// The app base image (hack/images/php-apache): Apache + PHP on 8000 as uid 33.
pub const APP_IMAGE: &str = "localhost/webcluster/php-apache:1";
/// The client image (hack/images/client): bash, nc, curl, psql, redis-cli; `sleep infinity`.
pub const CLIENT_IMAGE: &str = "localhost/webcluster/client:1";
/// The uid the app image runs as.
pub const APP_UID: i64 = 33;
/// How long the real node may take to be Ready (it is started by `hack/cluster.sh up`).
pub const NODE_TIMEOUT: Duration = Duration::from_secs(120);
/// Time between two checks of pods and endpoints (a kubelet reports every few seconds).
pub const POD_POLL: Duration = Duration::from_millis(500);

/// The placement fields (`pod:` of the cache, database and HTTP cache) that
/// put pods on the real node: its label selected, its taint tolerated.
pub fn real_node_placement() -> Value {
    json!({
        "nodeSelector": {REAL_NODE_LABEL_KEY: REAL_NODE_LABEL_VALUE},
        "tolerations": [{"key": REAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
    })
}

/// `spec.app.pod` for app, migration and cron pods on the real node, running
/// as the app image's uid with that group owning shared volumes.
pub fn real_node_app_pod() -> Value {
    let mut pod = real_node_placement();
    pod["securityContext"] = json!({
        "runAsNonRoot": true, "runAsUser": APP_UID, "runAsGroup": APP_UID, "fsGroup": APP_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    });
    pod
}

fn node_ready(node: &Node) -> bool {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Starts the cluster (with its real node) if needed and waits until the real node is Ready.
pub async fn ensure_real_node() {
    let nodes: Api<Node> = Api::all(cluster().await);
    let what = format!("the real node {REAL_NODE} to be Ready (hack/node.sh; logs in .cluster/node/logs/)");
    wait_for_object(&nodes, REAL_NODE, &what, NODE_TIMEOUT, node_ready).await;
}

/// Whether the pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Container restarts of the pod, all containers together.
pub fn restarts(pod: &Pod) -> i32 {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
    statuses.map_or(0, |s| s.iter().map(|c| c.restart_count).sum())
}

/// The node the pod was scheduled to.
pub fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// `name (phase, ready, restarts, node)` of every pod, for failure messages.
pub async fn describe_pods(pods: &Api<Pod>) -> String {
    match pods.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .iter()
            .map(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
                format!(
                    "{} ({phase}, ready={}, restarts={}, node={})",
                    p.name_any(),
                    pod_ready(p),
                    restarts(p),
                    node_of(p).unwrap_or("-")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => format!("listing pods: {e}"),
    }
}

/// Watches pod `name` until it exists and `condition` holds ([`watch_until`]);
/// panics naming `what` and listing the namespace's pods when `timeout` passes first.
pub async fn wait_pod(
    pods: &Api<Pod>,
    name: &str,
    what: &str,
    timeout: Duration,
    condition: impl Fn(&Pod) -> bool + Send + 'static,
) -> Pod {
    match watch_until(pods, name, what, timeout, condition).await {
        Ok(pod) => pod,
        Err(e) => panic!("{e}\npods: {}", describe_pods(pods).await),
    }
}

/// Waits until pods `names` all run on the real node and are Ready; returns them.
pub async fn wait_ready_on_real_node(pods: &Api<Pod>, names: &[String], timeout: Duration) -> Vec<Pod> {
    let mut ready = Vec::new();
    for name in names {
        let what = format!("pod {name} Ready on the real node");
        ready.push(wait_pod(pods, name, &what, timeout, |p| pod_ready(p) && node_of(p) == Some(REAL_NODE)).await);
    }
    ready
}

/// Pods whose endpoint in Service `service` is ready (from its EndpointSlices).
pub async fn ready_endpoint_pods(client: &Client, namespace: &str, service: &str) -> BTreeSet<String> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let selector = format!("kubernetes.io/service-name={service}");
    let Ok(list) = slices.list(&ListParams::default().labels(&selector)).await else { return BTreeSet::new() };
    list.items
        .iter()
        .flat_map(|slice| slice.endpoints.iter().flatten())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
        .filter_map(|e| e.target_ref.as_ref().and_then(|t| t.name.clone()))
        .collect()
}

/// Waits until the ready endpoints of `service` satisfy `check`.
pub async fn wait_endpoints(
    client: &Client,
    namespace: &str,
    service: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&BTreeSet<String>) -> bool,
) {
    let start = Instant::now();
    loop {
        let ready = ready_endpoint_pods(client, namespace, service).await;
        if check(&ready) {
            return;
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {what}; ready endpoints of {service}: {ready:?}");
        }
        tokio::time::sleep(POD_POLL).await;
    }
}

/// `kubectl exec -i` of `command` in `pod` (container `container`), `stdin`
/// as its input; Ok(stdout) when it exits 0, else Err with both outputs.
pub fn exec(namespace: &str, pod: &str, container: &str, command: &[&str], stdin: &str) -> Result<String, String> {
    let kubectl = toolchain_bin().join("kubectl");
    let mut child = Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(["exec", "-i", "-n", namespace, pod, "-c", container, "--"])
        .args(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {}: {e}", kubectl.display()))?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).map_err(|e| format!("writing to kubectl exec: {e}"))?;
    }
    let output = child.wait_with_output().map_err(|e| format!("kubectl exec: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(describe(&format!("exec {command:?} in {namespace}/{pod}"), &output))
    }
}

/// [`exec`] of `sh -c script`, off the async runtime's worker.
pub async fn sh(namespace: &str, pod: &str, container: &str, script: &str) -> Result<String, String> {
    let (namespace, pod, container, script) =
        (namespace.to_owned(), pod.to_owned(), container.to_owned(), script.to_owned());
    tokio::task::spawn_blocking(move || exec(&namespace, &pod, &container, &["sh", "-c", &script], ""))
        .await
        .map_err(|e| format!("exec task: {e}"))?
}

/// [`exec`] of `command` with `stdin`, off the async runtime's worker.
pub async fn exec_with_input(
    namespace: &str,
    pod: &str,
    container: &str,
    command: &[&str],
    stdin: &str,
) -> Result<String, String> {
    let (namespace, pod, container, stdin) =
        (namespace.to_owned(), pod.to_owned(), container.to_owned(), stdin.to_owned());
    let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let command: Vec<&str> = command.iter().map(String::as_str).collect();
        exec(&namespace, &pod, &container, &command, &stdin)
    })
    .await
    .map_err(|e| format!("exec task: {e}"))?
}

/// Polls [`exec_with_input`] until it succeeds and `accept` takes its output;
/// returns that output, or panics with the last answer after `timeout`.
#[allow(clippy::too_many_arguments)]
pub async fn exec_until(
    namespace: &str,
    pod: &str,
    container: &str,
    command: &[&str],
    stdin: &str,
    what: &str,
    timeout: Duration,
    accept: impl Fn(&str) -> bool,
) -> String {
    let start = Instant::now();
    loop {
        let last = exec_with_input(namespace, pod, container, command, stdin).await;
        if let Ok(out) = &last
            && accept(out)
        {
            return out.clone();
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {what}; last answer: {last:?}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A shell snippet sending `signal` (STOP, CONT, TERM) to every process of
/// the container whose command name is one of `names`: "stops" a server
/// without ending its container (run as the server's own uid; shell builtins
/// only). STOP repeats until a pass finds no process left running, so a child
/// forked during a pass is stopped too.
pub fn signal_script(signal: &str, names: &[&str]) -> String {
    let pattern = names.join("|");
    format!(
        r#"n=0; pass=0
while :; do
  found=0
  for p in /proc/[0-9]*; do
    read -r c < "$p/comm" 2>/dev/null || continue
    case "$c" in {pattern}) ;; *) continue ;; esac
    state=; while read -r key value rest; do [ "$key" = State: ] && state=$value; done < "$p/status"
    [ {signal} = STOP ] && [ "$state" = T ] && continue
    kill -{signal} "${{p#/proc/}}" 2>/dev/null && found=$((found + 1))
  done
  n=$((n + found)); pass=$((pass + 1))
  [ {signal} = STOP ] && [ "$found" -gt 0 ] && [ "$pass" -lt 20 ] || break
done
[ "$n" -gt 0 ] || {{ echo 'no {pattern} process' >&2; exit 1; }}
echo "$n""#
    )
}

/// Stops processes `processes` in `container` of pod `name` (a [`signal_script`])
/// until the pod is NotReady, and returns it. One pass is not enough: a
/// server's parent that is the container's PID 1 ignores SIGSTOP sent from
/// inside, and Apache's prefork parent forks a fresh worker when a worker was
/// stopped mid-request, so each round stops what came since.
pub async fn stop_until_not_ready(
    pods: &Api<Pod>,
    namespace: &str,
    name: &str,
    container: &str,
    processes: &[&str],
    timeout: Duration,
) -> Pod {
    const ROUND: Duration = Duration::from_secs(20);
    let what = format!("{name} NotReady with {} stopped", processes.join(", "));
    let deadline = Instant::now() + timeout;
    loop {
        sh(namespace, name, container, &signal_script("STOP", processes))
            .await
            .unwrap_or_else(|e| panic!("stopping {processes:?} in {name}: {e}"));
        let round = ROUND.min(deadline.saturating_duration_since(Instant::now()));
        match watch_until(pods, name, &what, round, |p| !pod_ready(p)).await {
            Ok(pod) => return pod,
            Err(e) if Instant::now() >= deadline => panic!("{e}\npods: {}", describe_pods(pods).await),
            Err(_) => eprintln!("{name}: still Ready after a round of SIGSTOP; stopping what came since"),
        }
    }
}

/// Storage the real node can mount: a StorageClass of this test's own and
/// `local` PersistentVolumes (folders of this machine, which is the node)
/// with node affinity to the real node. Unlike hostPath volumes, local
/// volumes get the pod's fsGroup, as network volumes do, so non-root servers
/// can write to them. ReadWriteMany is the same kind of folder shared by the
/// pods of the single real node. Dropping it deletes the class and the PVs
/// (their protection finalizer waits for the claims) and the folders.
pub struct RealNodeStorage {
    class: String,
    pvs: Vec<String>,
    dir: PathBuf,
    config: Config,
}

impl RealNodeStorage {
    /// `rwo` ReadWriteOnce and `rwx` ReadWriteMany volumes of 20Gi for the
    /// claims of namespace `ns`, in class `<namespace>-local`.
    pub async fn new(ns: &TestNamespace, rwo: usize, rwx: usize) -> Self {
        let client = ns.client();
        let class = format!("{}-local", ns.name());
        let dir = Path::new("/tmp/webcluster-real-pv").join(ns.name());
        let params = PatchParams::apply("webcluster-test-harness").force();
        let storage_class = json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": class},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
        });
        Api::<StorageClass>::all(client.clone())
            .patch(&class, &params, &Patch::Apply(&storage_class))
            .await
            .unwrap_or_else(|e| panic!("creating StorageClass {class}: {e}"));
        let volumes: Api<PersistentVolume> = Api::all(client);
        let mut pvs = Vec::new();
        let modes = std::iter::repeat_n("ReadWriteOnce", rwo).chain(std::iter::repeat_n("ReadWriteMany", rwx));
        for (i, mode) in modes.enumerate() {
            let name = format!("{class}-{i}");
            let path = dir.join(i.to_string());
            std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
            let pv = json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": name},
                "spec": {
                    "storageClassName": class,
                    "capacity": {"storage": "20Gi"},
                    "accessModes": [mode],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "local": {"path": path},
                    "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [REAL_NODE]}
                    ]}]}},
                },
            });
            volumes
                .patch(&name, &params, &Patch::Apply(&pv))
                .await
                .unwrap_or_else(|e| panic!("creating PersistentVolume {name}: {e}"));
            pvs.push(name);
        }
        Self { class, pvs, dir, config: cluster_config().await }
    }

    /// The StorageClass the claims must name.
    pub fn class(&self) -> &str {
        &self.class
    }
}

impl Drop for RealNodeStorage {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TEST_NAMESPACES").is_some_and(|v| !v.is_empty() && v != "0") {
            return;
        }
        // As TestNamespace's drop: a fresh runtime on a thread of its own.
        let (class, pvs, config) = (self.class.clone(), self.pvs.clone(), self.config.clone());
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let client = Client::try_from(config).ok()?;
                let volumes: Api<PersistentVolume> = Api::all(client.clone());
                for pv in &pvs {
                    let _ = volumes.delete(pv, &DeleteParams::background()).await;
                }
                let _ = Api::<StorageClass>::all(client).delete(&class, &DeleteParams::background()).await;
                Some(())
            })
        })
        .join();
        if !matches!(deleted, Ok(Some(()))) {
            eprintln!("warning: could not delete StorageClass {} and its PVs", self.class);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The real node's containerd client: `ctr` from the node's build and its socket.
fn ctr() -> (PathBuf, PathBuf) {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let bin = BIN.get_or_init(|| {
        let output = Command::new("bash")
            .args(["hack/node.sh", "build"])
            .current_dir(repo_root())
            .output()
            .map_err(|e| format!("running hack/node.sh build: {e}"))?;
        if !output.status.success() {
            return Err(describe("hack/node.sh build", &output));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
        Ok(PathBuf::from(last.trim()))
    });
    let bin = bin.as_ref().unwrap_or_else(|e| panic!("the real node's binaries: {e}"));
    let socket = kubeconfig_path().with_file_name("node").join("run/containerd.sock");
    (bin.join("ctr"), socket)
}

/// Images (recipes of hack/images/) the node needs, imported into its
/// containerd with `hack/node.sh import` unless every tag of theirs is there
/// already. Callers take turns: each checks its own recipes (one process's
/// tests ask for different sets).
pub fn ensure_images(recipes: &[&str]) {
    static TURN: Mutex<()> = Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let done = (|| -> Result<(), String> {
        let run = |args: &[&str]| -> Result<String, String> {
            let output = Command::new(args[0])
                .args(&args[1..])
                .current_dir(repo_root())
                .output()
                .map_err(|e| format!("running {args:?}: {e}"))?;
            if output.status.success() {
                Ok(String::from_utf8_lossy(&output.stdout).into_owned())
            } else {
                Err(describe(&format!("{args:?}"), &output))
            }
        };
        let (ctr, socket) = ctr();
        let socket = socket.to_string_lossy().into_owned();
        let ctr = ctr.to_string_lossy().into_owned();
        let listed = run(&["bash", "hack/images.sh", "list"])?;
        let missing = || -> Result<BTreeSet<String>, String> {
            let present = run(&[&ctr, "--address", &socket, "-n", "k8s.io", "images", "ls", "-q"])?;
            let present: BTreeSet<&str> = present.lines().map(str::trim).collect();
            Ok(listed
                .lines()
                .filter_map(|line| line.split_once(' '))
                .filter(|(recipe, tag)| recipes.contains(recipe) && !present.contains(qualified(tag).as_str()))
                .map(|(recipe, _)| recipe.to_string())
                .collect())
        };
        let before = missing()?;
        if before.is_empty() {
            return Ok(());
        }
        let mut import = vec!["bash", "hack/node.sh", "import"];
        import.extend(before.iter().map(String::as_str));
        // Judged by what containerd holds afterwards, not by the script's status.
        let imported = run(&import);
        let after = missing()?;
        match (after.is_empty(), imported) {
            (true, _) => Ok(()),
            (false, Err(e)) => Err(e),
            (false, Ok(_)) => Err(format!("still missing after the import: {after:?}")),
        }
    })();
    if let Err(e) = done {
        panic!("importing images into the real node: {e}");
    }
}

/// A tag as containerd names it (`postgres:17` is `docker.io/library/postgres:17`).
fn qualified(tag: &str) -> String {
    let first = tag.split('/').next().unwrap_or_default();
    if !tag.contains('/') {
        format!("docker.io/library/{tag}")
    } else if first.contains('.') || first.contains(':') || first == "localhost" {
        tag.to_string()
    } else {
        format!("docker.io/{tag}")
    }
}

/// Tags image `source` as `target` in the real node's containerd (as a
/// registry push of a second tag would), so the node runs it without a pull.
pub fn tag_image(source: &str, target: &str) {
    let (ctr, socket) = ctr();
    let output = Command::new(&ctr)
        .arg("--address")
        .arg(&socket)
        .args(["-n", "k8s.io", "images", "tag", "--force", &qualified(source), &qualified(target)])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", ctr.display()));
    assert!(output.status.success(), "{}", describe(&format!("ctr images tag {source} {target}"), &output));
}

/// NetworkPolicy enforcement on the real node (kube-router, `hack/node.sh netpol
/// up`: a no-op when it runs), once per test process.
pub fn ensure_network_policy() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let done = DONE.get_or_init(|| {
        let output = Command::new("bash")
            .args(["hack/node.sh", "netpol", "up"])
            .current_dir(repo_root())
            .output()
            .map_err(|e| format!("running hack/node.sh netpol up: {e}"))?;
        if output.status.success() { Ok(()) } else { Err(describe("hack/node.sh netpol up", &output)) }
    });
    if let Err(e) = done {
        panic!("NetworkPolicy enforcement on the real node: {e}");
    }
}

/// A pod of the client image (`sleep infinity`; bash, nc, curl, psql) on the
/// real node with `labels`, restricted as the restricted Pod Security Standard asks.
pub fn client_pod(name: &str, labels: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "nodeSelector": {REAL_NODE_LABEL_KEY: REAL_NODE_LABEL_VALUE},
            "tolerations": [{"key": REAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
            "securityContext": {
                "runAsNonRoot": true, "runAsUser": 65534, "runAsGroup": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "client",
                "image": CLIENT_IMAGE,
                "imagePullPolicy": "Never",
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            }],
        }
    }))
    .expect("a client pod")
}

/// The drops of a [`Partition`]: everything in and out of the pod's network
/// namespace but loopback.
const PARTITION_RULES: [[&str; 5]; 2] = [["INPUT", "!", "-i", "lo", "-j"], ["OUTPUT", "!", "-o", "lo", "-j"]];

/// A network partition of one pod on the real node: the pod lives, its
/// processes run, and no packet leaves or reaches its network namespace
/// (kubelet exec still works: it needs no network). Healed by [`Partition::heal`]
/// or when dropped.
pub struct Partition {
    netns: String,
    healed: bool,
}

impl Partition {
    /// Cuts off the pod whose address is `ip`.
    pub fn cut(ip: &str) -> Self {
        let netns = netns_of(ip);
        for rule in PARTITION_RULES {
            iptables_in(&netns, "-I", &rule).unwrap_or_else(|e| panic!("cutting off {ip}: {e}"));
        }
        Self { netns, healed: false }
    }

    /// Lets the pod's traffic through again.
    pub fn heal(mut self) {
        self.lift().unwrap_or_else(|e| panic!("healing the partition of {}: {e}", self.netns));
    }

    fn lift(&mut self) -> Result<(), String> {
        self.healed = true;
        PARTITION_RULES.iter().try_for_each(|rule| iptables_in(&self.netns, "-D", rule))
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        if !self.healed {
            // The pod's namespace may be gone with it.
            let _ = self.lift();
        }
    }
}

fn iptables_in(netns: &str, action: &str, rule: &[&str]) -> Result<(), String> {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", netns, "iptables", "-w", action]).args(rule).arg("DROP");
    let output = command.output().map_err(|e| format!("running ip netns exec {netns} iptables: {e}"))?;
    if output.status.success() { Ok(()) } else { Err(describe(&format!("iptables {action} in {netns}"), &output)) }
}

/// The network namespace (`ip netns` name) that holds address `ip`.
fn netns_of(ip: &str) -> String {
    let list = Command::new("ip").args(["netns", "list"]).output().expect("running ip netns list");
    let names = String::from_utf8_lossy(&list.stdout);
    let holds = |netns: &&str| {
        let addresses = Command::new("ip").args(["netns", "exec", netns, "ip", "-o", "-4", "addr", "show"]).output();
        addresses.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(&format!(" {ip}/")))
    };
    let found = names.lines().filter_map(|line| line.split_whitespace().next()).find(holds);
    found.unwrap_or_else(|| panic!("no network namespace holds {ip}: {names}")).to_string()
}
