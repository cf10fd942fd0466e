//! Status that never goes silent and that GitOps tools can trust. kstatus
//! itself (cli-utils v0.37.2, built by hack/kstatus.sh) and the Argo CD health
//! check of docs/status.md (run by Debian's lua5.4) read WebClusters as
//! Current/InProgress/Failed and Healthy/Progressing/Degraded: over fixtures,
//! and over what the operator writes on the local cluster for a rollout, a
//! change the API server refuses, a failed migration, pods Pod Security
//! Admission refuses, a forbidden request (RBAC) and a long API error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

#[path = "harness/mod.rs"]
mod harness;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use harness::cluster::{TestNamespace, ensure_crd, kubeconfig_path, repo_root};
use harness::conditions::{condition, describe, wait_condition, wait_ready, wait_reason};
use harness::process::{OperatorProcess, log_dir, operator_binary};
use harness::wait::{READY_TIMEOUT, SETUP_TIMEOUT, poll};
use k8s_openapi::api::core::v1::{Event, Namespace};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use webcluster::api::WebCluster;

/// kstatus, built once per test process.
fn kstatus_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let output = Command::new("bash").arg("hack/kstatus.sh").current_dir(repo_root()).output().expect("bash runs");
        assert!(output.status.success(), "hack/kstatus.sh: {}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8_lossy(&output.stdout);
        PathBuf::from(stdout.lines().last().expect("the binary's path").trim())
    })
}

/// Runs `program` with `input` on stdin; its stdout split at the first tab.
fn run_with_input(mut command: Command, input: &str) -> (String, String) {
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawns");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("writes stdin");
    let output = child.wait_with_output().expect("runs");
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout).trim_end().to_string();
    let (status, message) = stdout.split_once('\t').unwrap_or((&stdout, ""));
    (status.to_string(), message.to_string())
}

/// kstatus' verdict on `object` (Current, InProgress, Failed...) and its message.
fn kstatus(object: &Value) -> (String, String) {
    run_with_input(Command::new(kstatus_binary()), &object.to_string())
}

/// The Lua of docs/status.md's Argo CD health check.
fn health_check() -> String {
    let docs = std::fs::read_to_string(repo_root().join("docs/status.md")).expect("docs/status.md");
    let start = docs.find("```lua\n").expect("a lua block in docs/status.md") + "```lua\n".len();
    let end = start + docs[start..].find("```").expect("the block's end");
    docs[start..end].to_string()
}

/// `value` as a Lua table constructor, as Argo CD hands `obj` to a health check.
fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        // Rust's escapes (\", \\, \n, \u{…}) are Lua 5.4's.
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!("{{{}}}", items.iter().map(lua_literal).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => {
            let fields: Vec<String> = map.iter().map(|(k, v)| format!("[{k:?}] = {}", lua_literal(v))).collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// The Argo CD health (Healthy, Progressing, Degraded) the check gives `object`, and its message.
fn argo_health(object: &Value) -> (String, String) {
    let script = format!(
        "obj = {}\nlocal hs = (function()\n{}\nend)()\nio.write(hs.status, \"\\t\", hs.message or \"\")\n",
        lua_literal(object),
        health_check()
    );
    let mut lua = Command::new("lua5.4");
    lua.arg("-");
    run_with_input(lua, &script)
}

/// Both verdicts on a WebCluster as the API server returns it.
fn verdicts(cluster: &WebCluster) -> (String, String) {
    let mut object = serde_json::to_value(cluster).expect("serializes");
    object["apiVersion"] = json!("webcluster.io/v1alpha1");
    object["kind"] = json!("WebCluster");
    (kstatus(&object).0, argo_health(&object).0)
}

#[test]
fn fixtures_read_as_kstatus_and_argo_cd_expect() {
    let expected = [
        ("ready.json", "Current", "Healthy"),
        ("rolling-out.json", "InProgress", "Progressing"),
        ("ready-for-an-older-generation.json", "InProgress", "Progressing"),
        ("spec-rejected.json", "Failed", "Degraded"),
        ("pods-refused.json", "Failed", "Degraded"),
    ];
    let dir = repo_root().join("tests/status_truth");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/status_truth")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut listed: Vec<String> = expected.iter().map(|(f, _, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed, "every fixture has an expectation");
    for (file, kstatus_says, argo_says) in expected {
        let text = std::fs::read_to_string(dir.join(file)).expect("fixture");
        let object: Value = serde_json::from_str(&text).expect("fixture is JSON");
        assert_eq!(kstatus(&object).0, kstatus_says, "kstatus on {file}");
        let (health, message) = argo_health(&object);
        assert_eq!(health, argo_says, "Argo CD on {file}: {message}");
    }
    let nothing_yet = json!({"apiVersion": "webcluster.io/v1alpha1", "kind": "WebCluster", "metadata": {"name": "a"}});
    assert_eq!(argo_health(&nothing_yet).0, "Progressing", "no status yet");
}

/// Applies `yaml` in the test namespace, as a user would (server-side, as kubectl sends it).
async fn apply_yaml(ns: &TestNamespace, yaml: &str) {
    kubectl_stdin(&["-n", ns.name(), "apply", "--server-side", "--force-conflicts", "-f", "-"], yaml);
}

fn web_cluster(name: &str, spec: &str) -> String {
    format!("apiVersion: webcluster.io/v1alpha1\nkind: WebCluster\nmetadata: {{name: {name}}}\nspec:\n{spec}")
}

/// Every version of WebCluster `name` the watch delivers, from now on.
struct Recorder {
    versions: Arc<Mutex<Vec<WebCluster>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    fn start(api: Api<WebCluster>, name: &str) -> Self {
        let versions = Arc::new(Mutex::new(Vec::new()));
        let sink = versions.clone();
        let stream = watcher::watcher(api, watcher::Config::default().fields(&format!("metadata.name={name}")));
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Ok(watcher::Event::Apply(cluster) | watcher::Event::InitApply(cluster)) = event {
                    sink.lock().expect("lock").push(cluster);
                }
            }
        });
        Self { versions, task }
    }

    fn stop(self) -> Vec<WebCluster> {
        self.task.abort();
        self.versions.lock().expect("lock").clone()
    }
}

#[tokio::test]
async fn a_rollout_reads_in_progress_until_it_is_current() {
    ensure_crd().await;
    let ns = TestNamespace::new("kstatus-rollout").await;
    let operator = OperatorProcess::start(ns.name(), "operator", "info").await;
    let api = ns.api::<WebCluster>();
    let recorder = Recorder::start(api.clone(), "shop");
    apply_yaml(&ns, &web_cluster("shop", "  app: {image: 'shop:1', replicas: 2}\n")).await;
    let ready = wait_ready(&api, "shop").await;
    let mut versions = recorder.stop();
    versions.push(ready);
    let judged: Vec<(String, String, bool)> = versions
        .iter()
        .filter(|c| c.status.is_some())
        .map(|c| {
            let (kstatus, argo) = verdicts(c);
            (kstatus, argo, condition(c, "Ready").is_some_and(|r| r.status == "True"))
        })
        .collect();
    println!("rollout as kstatus and Argo CD saw it: {:?}", judged.iter().map(|(k, a, _)| (k, a)).collect::<Vec<_>>());
    for (kstatus, argo, ready) in &judged {
        let expected = if *ready { ("Current", "Healthy") } else { ("InProgress", "Progressing") };
        assert_eq!((kstatus.as_str(), argo.as_str()), expected, "{judged:?}");
    }
    assert!(judged.iter().any(|(_, _, ready)| !ready), "the rollout was seen in progress: {judged:?}");
    assert_eq!(judged.last().map(|(k, a, _)| (k.as_str(), a.as_str())), Some(("Current", "Healthy")));
    drop(operator);
}

/// The Events of WebCluster `name`, as (reason, note).
async fn events_of(ns: &TestNamespace, name: &str) -> Vec<(String, String)> {
    let events: Api<Event> = ns.api();
    let selector = format!("involvedObject.kind=WebCluster,involvedObject.name={name}");
    let list = events.list(&ListParams::default().fields(&selector)).await.expect("events list");
    list.items.into_iter().map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default())).collect()
}

/// Waits for a Warning Event `reason` on WebCluster `name`; returns its note.
async fn wait_event(ns: &TestNamespace, name: &str, reason: &str) -> String {
    let note = Arc::new(Mutex::new(None));
    let found = poll(&format!("Event {reason} on WebCluster {name}"), SETUP_TIMEOUT, || {
        let (events, note) = (events_of(ns, name), note.clone());
        async move {
            let found = events.await.into_iter().find(|(r, _)| r == reason).map(|(_, n)| n);
            let seen = found.is_some();
            *note.lock().expect("lock") = found;
            seen
        }
    })
    .await;
    found.unwrap_or_else(|e| panic!("{e}"));
    note.lock().expect("lock").take().expect("found")
}

/// Waits until WebCluster `name` is Stalled for `reason`; checks kstatus, Argo CD, the Event.
async fn assert_stalled(ns: &TestNamespace, name: &str, reason: &'static str) -> WebCluster {
    let api = ns.api::<WebCluster>();
    let what = format!("Stalled=True ({reason})");
    let cluster =
        wait_condition(&api, name, "Stalled", &what, READY_TIMEOUT, move |c| c.status == "True" && c.reason == reason)
            .await;
    assert_eq!(
        verdicts(&cluster),
        ("Failed".into(), "Degraded".into()),
        "{name}: {}",
        describe(condition(&cluster, "Stalled"))
    );
    let ready = condition(&cluster, "Ready").expect("Ready");
    assert_eq!(ready.status, "False");
    assert!(condition(&cluster, "Reconciling").is_some_and(|c| c.status == "False"));
    let note = wait_event(ns, name, reason).await;
    assert!(note.len() <= 1000, "Event note of {} bytes", note.len());
    cluster
}

#[tokio::test]
async fn a_refused_change_and_a_failed_migration_read_failed() {
    ensure_crd().await;
    let ns = TestNamespace::new("kstatus-failed").await;
    let operator = OperatorProcess::start(ns.name(), "operator", "info").await;
    let wiki = |size: &str| {
        web_cluster(
            "wiki",
            &format!(
                "  app: {{image: 'wiki:1'}}\n  database: {{engine: postgresql, managed: {{replicas: 0, storage: {{size: {size}}}}}}}\n"
            ),
        )
    };
    apply_yaml(&ns, &wiki("10Gi")).await;
    // The test cluster's kwok stages fail pods carrying this label.
    let blog = web_cluster(
        "blog",
        "  app:\n    image: 'blog:1'\n    migration: {command: [migrate], backoffLimit: 0}\n    pod: {labels: {webcluster.test/fail: \"true\"}}\n",
    );
    apply_yaml(&ns, &blog).await;
    wait_ready(&ns.api::<WebCluster>(), "wiki").await;
    // A StatefulSet's volume claim templates are immutable.
    apply_yaml(&ns, &wiki("20Gi")).await;
    let wiki = assert_stalled(&ns, "wiki", "SpecRejected").await;
    let message = &condition(&wiki, "Ready").expect("Ready").message;
    assert!(message.contains("StatefulSet wiki-db (HTTP 422)") && message.contains("is invalid"), "{message}");
    assert!(message.contains("field is immutable"), "the reason survives a long rejected value: {message}");
    // A first migration: the app waits for it, and says so first.
    let blog = assert_stalled(&ns, "blog", "MigrationFailed").await;
    println!(
        "refused: {}\nmigration: {}",
        describe(condition(&wiki, "Stalled")),
        describe(condition(&blog, "Stalled"))
    );
    drop(operator);
}

/// Labels the namespace so Pod Security Admission enforces `restricted`.
async fn enforce_restricted(ns: &TestNamespace) {
    let labels = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    Api::<Namespace>::all(ns.client())
        .patch(ns.name(), &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .expect("labels the namespace");
}

/// An app container the `restricted` profile refuses (privilege escalation allowed).
const ESCALATING: &str = "    securityContext: {allowPrivilegeEscalation: true}\n";

#[tokio::test]
async fn pods_refused_by_pod_security_admission_are_surfaced() {
    ensure_crd().await;
    let ns = TestNamespace::new("psa-refused").await;
    enforce_restricted(&ns).await;
    let operator = OperatorProcess::start(ns.name(), "operator", "info").await;
    let api = ns.api::<WebCluster>();
    let app = format!(
        "  app:\n    image: 'shop:1'\n    replicas: 2\n{ESCALATING}  jobs:\n    - {{name: tick, schedule: '* * * * *', command: [tick]}}\n"
    );
    apply_yaml(&ns, &web_cluster("shop", &app)).await;
    let migrated = format!("  app:\n    image: 'blog:1'\n    migration: {{command: [migrate]}}\n{ESCALATING}");
    apply_yaml(&ns, &web_cluster("blog", &migrated)).await;

    let shop = assert_stalled(&ns, "shop", "PodsRefused").await;
    let app_ready = condition(&shop, "AppReady").expect("AppReady");
    assert_eq!(app_ready.reason, "PodsRefused", "{}", describe(Some(app_ready)));
    assert!(
        app_ready.message.contains("Deployment shop-app cannot create pods")
            && app_ready.message.contains("PodSecurity")
    );
    let blog = assert_stalled(&ns, "blog", "PodsRefused").await;
    let migration = condition(&blog, "MigrationComplete").expect("MigrationComplete");
    assert!(
        migration.message.contains("cannot create pods") && migration.message.contains("PodSecurity"),
        "{}",
        migration.message
    );
    // The CronJob's first Job comes within a minute; the operator looks at its Events every 30 s.
    let what = "JobsReady=False (PodsRefused)";
    let shop = wait_condition(&api, "shop", "JobsReady", what, READY_TIMEOUT + Duration::from_secs(60), |c| {
        c.status == "False" && c.reason == "PodsRefused"
    })
    .await;
    println!(
        "app: {}\nmigration: {}\ncron: {}",
        describe(Some(app_ready)),
        describe(Some(migration)),
        describe(condition(&shop, "JobsReady"))
    );
    drop(operator);
}

/// Cluster-scoped admission objects that make the API server refuse or fail
/// Deployments in one namespace; deleted on drop.
struct Admission {
    objects: Vec<(String, String)>,
}

impl Admission {
    /// Applies `objects`, then waits until a Deployment in `namespace` is no longer admitted.
    async fn install(namespace: &str, objects: Vec<Value>) -> Self {
        let mut installed = Self { objects: Vec::new() };
        for object in objects {
            kubectl_stdin(&["apply", "-f", "-"], &object.to_string());
            let kind = object["kind"].as_str().expect("a kind").to_lowercase();
            installed.objects.push((kind, object["metadata"]["name"].as_str().expect("a name").to_string()));
        }
        let probe = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "probe"}, "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "c"}]}}}});
        let file = write_temp(&probe);
        poll("admission to refuse Deployments", SETUP_TIMEOUT, || {
            let refused = harness::cluster::kubectl(&["-n", namespace, "create", "--dry-run=server", "-f", &file]);
            async move { !refused.status.success() }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        installed
    }

    /// A ValidatingAdmissionPolicy (and its binding) refusing Deployments with `message` (HTTP 422).
    async fn refusing(namespace: &str, message: &str) -> Self {
        let name = format!("refuse-{namespace}");
        let policy = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [deployments()], "namespaceSelector": only(namespace)},
                "validations": [{"expression": "false", "message": message, "reason": "Invalid"}]
            }
        });
        let binding = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"]}
        });
        Self::install(namespace, vec![policy, binding]).await
    }

    /// A webhook nobody serves, failing closed: the API server answers HTTP 500.
    async fn failing(namespace: &str) -> Self {
        let webhook = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": format!("unreachable-{namespace}")},
            "webhooks": [{
                "name": "unreachable.webcluster.test", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                "failurePolicy": "Fail", "timeoutSeconds": 2,
                "clientConfig": {"url": "https://127.0.0.1:1/refuse"},
                "rules": [deployments()], "namespaceSelector": only(namespace)
            }]
        });
        Self::install(namespace, vec![webhook]).await
    }

    fn remove(&mut self) {
        for (kind, name) in self.objects.drain(..).rev() {
            let _ = harness::cluster::kubectl(&["delete", &kind, &name, "--ignore-not-found"]);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.remove();
    }
}

fn deployments() -> Value {
    json!({"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]})
}

fn only(namespace: &str) -> Value {
    json!({"matchLabels": {"kubernetes.io/metadata.name": namespace}})
}

fn kubectl_stdin(args: &[&str], input: &str) {
    let mut command = Command::new(harness::cluster::toolchain_bin().join("kubectl"));
    command.arg("--kubeconfig").arg(kubeconfig_path()).args(args);
    run_with_input(command, input);
}

#[tokio::test]
async fn a_long_api_error_is_cut_for_status_and_events_and_logged_in_full() {
    ensure_crd().await;
    let ns = TestNamespace::new("long-error").await;
    let words = format!("refused by this test's policy, word for word: {}the end", "a long reason é ".repeat(190));
    assert!(words.len() > 3000);
    let _policy = Admission::refusing(ns.name(), &words).await;
    let operator = OperatorProcess::start(ns.name(), "operator", "info").await;
    apply_yaml(&ns, &web_cluster("shop", "  app: {image: 'shop:1'}\n")).await;
    let shop = assert_stalled(&ns, "shop", "SpecRejected").await;
    for c in &shop.status.as_ref().expect("status").conditions {
        assert!(c.message.len() <= 512, "{} message of {} bytes", c.type_, c.message.len());
    }
    let ready = condition(&shop, "Ready").expect("Ready");
    assert!(
        ready
            .message
            .starts_with("the API server refused a change; fix the spec: apply Deployment shop-app (HTTP 422)"),
        "{}",
        ready.message
    );
    assert!(ready.message.ends_with('…'), "{}", ready.message);
    let log_has_all = poll("the API's full words in the operator's log", SETUP_TIMEOUT, || {
        let full = operator.process.log().contains(&words);
        async move { full }
    })
    .await;
    log_has_all.unwrap_or_else(|e| panic!("{e}"));
    println!(
        "a {}-byte refusal: condition {} bytes, Event note ≤ 1000 bytes, the log has it all",
        words.len(),
        ready.message.len()
    );
}

/// `object` as JSON in a file of target/test-logs (kubectl -f reads a file).
fn write_temp(object: &Value) -> String {
    let path = log_dir().join(format!("{}.json", harness::cluster::unique_name("object")));
    std::fs::write(&path, object.to_string()).expect("writes");
    path.to_string_lossy().into_owned()
}

/// A kubeconfig that impersonates `user`: the operator then has only the
/// permissions a Role grants that user.
fn impersonating_kubeconfig(user: &str) -> PathBuf {
    let text = std::fs::read_to_string(kubeconfig_path()).expect("kubeconfig");
    let mut config: Value = serde_saphyr::from_str(&text).expect("kubeconfig is YAML");
    for entry in config["users"].as_array_mut().expect("users") {
        entry["user"]["as"] = json!(user);
    }
    let path = log_dir().join(format!("{user}.kubeconfig"));
    std::fs::write(&path, config.to_string()).expect("writes the kubeconfig");
    path
}

/// Every resource the operator works with, all verbs, but Services read-only.
fn role_without_service_writes(namespace: &str, user: &str) -> String {
    let resources = [
        "webclusters",
        "webclusters/status",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "pods",
        "pods/log",
        "pods/exec",
        "events",
        "deployments",
        "statefulsets",
        "jobs",
        "cronjobs",
        "ingresses",
        "networkpolicies",
        "poddisruptionbudgets",
        "horizontalpodautoscalers",
        "httproutes",
        "leases",
        "serviceaccounts",
    ];
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
    "metadata": {"name": "no-service-writes", "namespace": namespace},
    "rules": [
        {"apiGroups": ["*"], "resources": resources, "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]}
    ]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "no-service-writes", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "no-service-writes"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]});
    format!("{role}\n{binding}")
}

#[tokio::test]
async fn a_forbidden_request_stalls_and_names_the_permission() {
    ensure_crd().await;
    let ns = TestNamespace::new("forbidden").await;
    let user = format!("limited-{}", ns.name());
    kubectl_stdin(&["apply", "-f", "-"], &role_without_service_writes(ns.name(), &user));
    let (mut command, port) = OperatorProcess::command(&operator_binary(), ns.name());
    command.args(["--log-level", "info"]).env("KUBECONFIG", impersonating_kubeconfig(&user));
    let log = log_dir().join(format!("{}-operator.log", ns.name()));
    let mut operator = OperatorProcess::spawn("operator", command, port, log).expect("starts");
    operator.wait_serving(SETUP_TIMEOUT).await.expect("serves /healthz");
    apply_yaml(&ns, &web_cluster("shop", "  app: {image: 'shop:1'}\n")).await;
    let shop = assert_stalled(&ns, "shop", "Forbidden").await;
    let message = &condition(&shop, "Ready").expect("Ready").message;
    assert!(message.contains("Service shop") && message.contains("(HTTP 403)"), "{message}");
    assert!(message.contains("cannot patch resource \"services\""), "{message}");
    let reason = wait_reason(&ns.api::<WebCluster>(), "shop", "Ready", "Forbidden").await;
    println!("forbidden: {}", describe(condition(&reason, "Ready")));
    drop(operator);
}

#[tokio::test]
async fn a_server_error_is_retried_with_backoff_stalls_when_it_repeats_and_recovers() {
    ensure_crd().await;
    let ns = TestNamespace::new("server-error").await;
    let mut webhook = Admission::failing(ns.name()).await;
    let operator = OperatorProcess::start(ns.name(), "operator", "info").await;
    let started = std::time::Instant::now();
    apply_yaml(&ns, &web_cluster("shop", "  app: {image: 'shop:1'}\n")).await;
    let api = ns.api::<WebCluster>();
    let failed = wait_reason(&api, "shop", "Ready", "ApplyFailed").await;
    assert_eq!(verdicts(&failed), ("InProgress".into(), "Progressing".into()), "a first failure is retried");
    let message = &condition(&failed, "Ready").expect("Ready").message;
    assert!(
        message.contains("apply Deployment shop-app (HTTP 500)") && message.contains("failed calling webhook"),
        "{message}"
    );
    wait_event(&ns, "shop", "ApplyFailed").await;
    let stalled = assert_stalled(&ns, "shop", "ApplyFailing").await;
    let stalled_after = started.elapsed();
    let message = &condition(&stalled, "Stalled").expect("Stalled").message;
    assert!(message.starts_with("failed 5 times in a row"), "{message}");
    webhook.remove();
    let ready = wait_ready(&api, "shop").await;
    assert_eq!(verdicts(&ready), ("Current".into(), "Healthy".into()));
    let attempts = operator.process.log().matches("the API server did not take a request").count();
    println!(
        "HTTP 500: stalled after {stalled_after:?}, Ready {:?} after the start, {attempts} failed attempts",
        started.elapsed()
    );
    assert!(attempts <= 12, "bounded backoff, not a fast loop: {attempts} attempts");
}
