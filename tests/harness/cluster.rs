//! The local cluster (`hack/cluster.sh`: real etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler, kwok faking nodes and pods),
//! its kubectl, the WebCluster CRD, and a namespace per test.
//!
//! Set `KEEP_TEST_NAMESPACES=1` to keep each test's namespace for debugging.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config, ResourceExt};

use super::wait::{SETUP_TIMEOUT, wait_for_object};

/// The field manager of what the harness applies.
const FIELD_MANAGER: &str = "webcluster-test-harness";

/// The repository root (where `hack/`, `crds/` and `.cluster/` live).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A cluster folder of this test process's own ([`use_own_cluster`]).
static OWN_CLUSTER_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Makes this test process use a cluster of its own, `.cluster/<name>/`
/// (kwok nodes only), instead of the shared one: for tests that restart the
/// control plane, which would disturb every other test. Call it before
/// anything else touches the cluster; later calls keep the first folder.
pub fn use_own_cluster(name: &str) {
    let dir = OWN_CLUSTER_DIR.get_or_init(|| repo_root().join(".cluster").join(name));
    assert!(dir.ends_with(name), "this test process already uses the cluster in {}", dir.display());
}

/// The cluster folder: [`use_own_cluster`]'s, `$WEBCLUSTER_CLUSTER_DIR`, or `.cluster/`.
pub fn cluster_dir() -> PathBuf {
    if let Some(dir) = OWN_CLUSTER_DIR.get() {
        return dir.clone();
    }
    match std::env::var_os("WEBCLUSTER_CLUSTER_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join(".cluster"),
    }
}

/// The test cluster's kubeconfig, written by `hack/cluster.sh up` into the
/// [`cluster_dir`] (the script honours `WEBCLUSTER_CLUSTER_DIR` too).
pub fn kubeconfig_path() -> PathBuf {
    cluster_dir().join("kubeconfig")
}

/// `what failed (status)` with the output's stderr and stdout.
pub fn describe(what: &str, output: &Output) -> String {
    format!(
        "{what} failed ({}):\n--- stderr ---\n{}\n--- stdout ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    )
}

fn run_script(script: &str, args: &[&str]) -> Result<Output, String> {
    let output = Command::new("bash")
        .arg(script)
        .args(args)
        .env("WEBCLUSTER_CLUSTER_DIR", cluster_dir())
        .current_dir(repo_root())
        .output()
        .map_err(|e| format!("could not run `bash {script}`: {e}"))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(describe(&format!("`bash {script} {}`", args.join(" ")), &output))
    }
}

/// The folder with the pinned toolchain's binaries (`kubectl`, `helm`, ...):
/// the last line of `bash hack/toolchain.sh`, run once per test process.
pub fn toolchain_bin() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let bin = BIN.get_or_init(|| {
        let output = run_script("hack/toolchain.sh", &[])?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .ok_or_else(|| "hack/toolchain.sh printed no bin folder".to_string())?;
        Ok(PathBuf::from(last.trim()))
    });
    match bin {
        Ok(bin) => bin.clone(),
        Err(e) => panic!("toolchain unavailable: {e}"),
    }
}

/// Runs `bash hack/cluster.sh up` once per test process (a fast no-op when the
/// cluster already runs). Panics with the script's output when it fails; every
/// later caller panics with the same message.
pub fn ensure_cluster() {
    static UP: OnceLock<Result<(), String>> = OnceLock::new();
    let up = UP.get_or_init(|| {
        run_script("hack/cluster.sh", &["up"])?;
        no_unscoped_demo_operator()
    });
    if let Err(e) = up {
        panic!("test cluster unavailable: {e}");
    }
}

/// Restarts one control-plane component of the test cluster
/// (`hack/cluster.sh restart <component> <signal>`: the process stopped with
/// `signal`, `TERM` or `KILL`, then started again with its own flags); returns
/// once the API server answers /readyz again. Only for a cluster of the test's
/// own ([`use_own_cluster`]).
pub fn restart_component(component: &str, signal: &str) {
    assert!(OWN_CLUSTER_DIR.get().is_some(), "restarting {component} would disturb every test on the shared cluster");
    ensure_cluster();
    if let Err(e) = run_script("hack/cluster.sh", &["restart", component, signal]) {
        panic!("restarting {component}: {e}");
    }
}

/// Fails when the operator of an older `make demo` runs: it watched every
/// namespace and would act in the tests' namespaces too (today's demo watches
/// only `demo`).
fn no_unscoped_demo_operator() -> Result<(), String> {
    let Ok(pid) = std::fs::read_to_string(kubeconfig_path().with_file_name("operator.pid")) else { return Ok(()) };
    let pid = pid.trim();
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return Ok(()) };
    let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let operator = args.first().is_some_and(|a| a.ends_with("webcluster-operator")) && args.iter().any(|a| a == "run");
    if operator && !args.iter().any(|a| a == "--namespace" || a.starts_with("--namespace=")) {
        return Err(format!(
            "the operator of an earlier `make demo` (pid {pid}) watches every namespace, the tests' too; \
             stop it (`make demo-down`, or `kill {pid}`) and run `make demo` again, whose operator watches only `demo`"
        ));
    }
    Ok(())
}

/// The kube config of the test cluster (starting it if needed).
pub async fn cluster_config() -> Config {
    ensure_cluster();
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

/// A client for the test cluster, starting the cluster once per test process.
pub async fn cluster() -> Client {
    Client::try_from(cluster_config().await).expect("building a kube client for the test cluster")
}

/// Runs the toolchain's kubectl against the test cluster.
pub fn kubectl(args: &[&str]) -> Output {
    ensure_cluster();
    let kubectl = toolchain_bin().join("kubectl");
    Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", kubectl.display()))
}

/// Like [`kubectl`], but panics unless it succeeds; returns its stdout.
pub fn kubectl_ok(args: &[&str]) -> String {
    let output = kubectl(args);
    assert!(output.status.success(), "{}", describe(&format!("kubectl {}", args.join(" ")), &output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `kubectl apply --server-side -n <namespace> -f <file>` of a repository file.
pub fn kubectl_apply(namespace: &str, file: &str) {
    let path = repo_root().join(file);
    kubectl_ok(&["apply", "--server-side", "-n", namespace, "-f", &path.to_string_lossy()]);
}

/// Applies `crds/webcluster.yaml` (server-side, forcing conflicts) and waits on
/// a watch until the API server reports it Established.
pub async fn install_crd(client: &Client) -> Result<(), String> {
    let path = repo_root().join("crds/webcluster.yaml");
    let yaml = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    install_crd_yaml(client, &yaml).await.map_err(|e| format!("{}: {e}", path.display()))
}

/// Installs the CRD `yaml` (another build's `webcluster-operator crd`) and waits until it is Established.
pub async fn install_crd_yaml(client: &Client, yaml: &str) -> Result<(), String> {
    let crd: CustomResourceDefinition = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.name_any();
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&crd))
        .await
        .map_err(|e| format!("applying the CRD: {e}"))?;
    match tokio::time::timeout(SETUP_TIMEOUT, await_condition(api, &name, conditions::is_crd_established())).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("watching CRD {name}: {e}")),
        Err(_) => Err(format!("CRD {name} was not Established within {SETUP_TIMEOUT:?}")),
    }
}

/// [`install_crd`] once per test process (tests of other files may have done it already).
pub async fn ensure_crd() {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            let client = cluster().await;
            install_crd(&client).await.unwrap_or_else(|e| panic!("installing the WebCluster CRD: {e}"));
        })
        .await;
}

/// A DNS-1123 label `<prefix>-<random hex>`, at most 63 characters.
pub fn unique_name(prefix: &str) -> String {
    let mut clean: String =
        prefix.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    clean.truncate(50);
    let clean = clean.trim_matches('-');
    format!("{clean}-{:08x}", rand::random::<u32>())
}

/// A namespace `t-<test name>-<random>` that is deleted when dropped (the
/// delete is sent from a separate thread with its own runtime; failures are
/// printed, never panicked on). An operator a test starts watches only its
/// own namespace, and nothing outside the test (say, `make demo`'s operator,
/// which watches `demo`) watches it.
pub struct TestNamespace {
    name: String,
    client: Client,
    config: Config,
}

impl TestNamespace {
    /// Creates the namespace and waits for its `default` ServiceAccount (pods
    /// are rejected until it exists).
    pub async fn new(test_name: &str) -> Self {
        let config = cluster_config().await;
        let client = Client::try_from(config.clone()).expect("building a kube client");
        let name = unique_name(&format!("t-{test_name}"));
        let namespace =
            Namespace { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        let what = format!("the default ServiceAccount in namespace {name}");
        wait_for_object(&accounts, "default", &what, SETUP_TIMEOUT, |_| true).await;
        Self { name, client, config }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// An `Api` for a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TEST_NAMESPACES").is_some_and(|v| !v.is_empty() && v != "0") {
            eprintln!("KEEP_TEST_NAMESPACES set: keeping namespace {}", self.name);
            return;
        }
        // The test's runtime may be a current-thread runtime blocked in this
        // very drop, so the delete must not use it (nor `self.client`, whose
        // background worker lives there): a fresh client on a fresh runtime.
        let name = self.name.clone();
        let config = self.config.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new().name(format!("delete-ns-{name}")).spawn(move || {
            let result = (|| -> Result<(), String> {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
                runtime.block_on(async {
                    let client = Client::try_from(config).map_err(|e| e.to_string())?;
                    match Api::<Namespace>::all(client).delete(&name, &DeleteParams::background()).await {
                        Ok(_) => Ok(()),
                        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                        Err(e) => Err(e.to_string()),
                    }
                })
            })();
            if let Err(e) = result {
                eprintln!("warning: deleting test namespace {name}: {e}");
            }
            let _ = done_tx.send(());
        });
        match spawned {
            Ok(_) => {
                if done_rx.recv_timeout(std::time::Duration::from_secs(15)).is_err() {
                    eprintln!("warning: deleting test namespace {} timed out", self.name);
                }
            }
            Err(e) => eprintln!("warning: could not spawn a thread to delete namespace {}: {e}", self.name),
        }
    }
}
