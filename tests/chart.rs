//! The Helm chart (`charts/webcluster-operator`), `deploy/install.yaml` and the
//! least-privilege RBAC: lint, drift, no wildcards, server dry-run, install /
//! upgrade / uninstall, and the operator binary reaching Ready with nothing but
//! the chart's ServiceAccount token.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

#[path = "harness/mod.rs"]
mod harness;

use std::cell::RefCell;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::cluster::{
    TestNamespace, describe, ensure_crd, kubeconfig_path, kubectl, kubectl_apply, kubectl_ok, repo_root, toolchain_bin,
    unique_name,
};
use harness::conditions::{condition, describe as describe_condition, is_ready};
use harness::fs::TempDir;
use harness::helm::{CHART, Release, helm_cluster_ok, helm_command, helm_ok};
use harness::process::{OperatorProcess, log_dir, operator_binary};
use harness::wait::{READY_TIMEOUT, SETUP_TIMEOUT, assert_holds_for, poll, wait_for};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::config::Kubeconfig;
use serde_json::Value;
use webcluster::api::WebCluster;

// ---------------------------------------------------------------------------
// helpers

/// `helm template <release> <chart> --namespace <namespace> <extra>`.
fn template(release: &str, namespace: &str, extra: &[&str]) -> String {
    helm_ok(&[&["template", release, CHART, "--namespace", namespace], extra].concat())
}

/// The objects of a multi-document YAML stream (empty documents dropped).
fn documents(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).expect("rendered YAML parses");
    docs.into_iter().filter(|doc| doc.is_object()).collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|doc| doc["kind"] == kind).collect()
}

fn name_of(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

fn exists(args: &[&str]) -> bool {
    let output = kubectl(&[&["get"], args, &["-o", "name", "--ignore-not-found"]].concat());
    assert!(output.status.success(), "{}", describe(&format!("kubectl get {}", args.join(" ")), &output));
    !String::from_utf8_lossy(&output.stdout).trim().is_empty()
}

fn get_json(args: &[&str]) -> Value {
    serde_json::from_str(&kubectl_ok(&[&["get"], args, &["-o", "json"]].concat())).expect("kubectl prints JSON")
}

fn container_env(deployment: &Value, name: &str) -> Option<Value> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| e.get("value").cloned().unwrap_or_else(|| e["valueFrom"].clone()))
}

// ---------------------------------------------------------------------------
// offline checks

#[test]
fn chart_lints_cleanly() {
    helm_ok(&["lint", CHART]);
    helm_ok(&["lint", "--strict", CHART]);
    helm_ok(&["lint", "--strict", CHART, "--set", "watchNamespace=foo"]);
    helm_ok(&[
        "lint",
        "--strict",
        CHART,
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "replicaCount=1",
    ]);
    // The schema rejects what the templates would otherwise render wrongly.
    for bad in ["replicaCount=two", "logFormat=xml", "unknownValue=1", "watchNamespace=Not_A_Namespace"] {
        let output = helm_command(&["lint", "--strict", CHART, "--set", bad]).output().expect("running helm");
        assert!(!output.status.success(), "helm lint accepted --set {bad}");
    }
}

#[test]
fn chart_crd_is_an_exact_copy() {
    let root = repo_root();
    let crd = std::fs::read_to_string(root.join("crds/webcluster.yaml")).expect("crds/webcluster.yaml");
    let copy = std::fs::read_to_string(root.join(CHART).join("crds/webcluster.yaml"))
        .expect("charts/webcluster-operator/crds/webcluster.yaml");
    assert!(
        crd == copy,
        "charts/webcluster-operator/crds/webcluster.yaml drifted from crds/webcluster.yaml: run `make chart`"
    );
}

/// Runs `hack/generate-install.sh` into `out`; returns the install.yaml it wrote.
fn generate_install(out: &TempDir) -> String {
    let output = Command::new("bash")
        .arg("hack/generate-install.sh")
        .arg(out.path())
        .env("HELM", toolchain_bin().join("helm"))
        .current_dir(repo_root())
        .output()
        .expect("running hack/generate-install.sh");
    assert!(output.status.success(), "{}", describe("hack/generate-install.sh", &output));
    std::fs::read_to_string(out.join("deploy/install.yaml")).expect("generated install.yaml")
}

#[test]
fn install_yaml_is_what_the_generator_writes() {
    let out = TempDir::new("generate-install");
    let generated = generate_install(&out);
    let committed = std::fs::read_to_string(repo_root().join("deploy/install.yaml")).expect("deploy/install.yaml");
    assert!(generated == committed, "deploy/install.yaml drifted from the chart: run `make chart`");
    let crd = std::fs::read_to_string(out.join(CHART).join("crds/webcluster.yaml")).expect("generated CRD");
    assert_eq!(crd, std::fs::read_to_string(repo_root().join("crds/webcluster.yaml")).expect("crds/webcluster.yaml"));

    // Deterministic: a second run writes the same bytes.
    let second = generate_install(&TempDir::new("generate-install"));
    assert!(generated == second, "hack/generate-install.sh is not deterministic");

    // The Namespace first, then the CRD, then the chart.
    let docs = documents(&committed);
    assert_eq!(docs[0]["kind"], "Namespace");
    assert_eq!(name_of(&docs[0]), "webcluster-system");
    assert_eq!(docs[1]["kind"], "CustomResourceDefinition");
    for doc in &docs[2..] {
        if doc["kind"] != "ClusterRole" && doc["kind"] != "ClusterRoleBinding" {
            assert_eq!(doc["metadata"]["namespace"], "webcluster-system", "{} {}", doc["kind"], name_of(doc));
        }
    }
}

fn assert_no_wildcards(docs: &[Value], context: &str) {
    let roles: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole").collect();
    assert!(!roles.is_empty(), "{context}: no roles rendered");
    for role in roles {
        let rules = role["rules"].as_array().unwrap_or_else(|| panic!("{context}: {} has no rules", name_of(role)));
        assert!(!rules.is_empty());
        for rule in rules {
            for field in ["verbs", "resources", "apiGroups", "resourceNames", "nonResourceURLs"] {
                for item in rule[field].as_array().into_iter().flatten() {
                    let item = item.as_str().expect("RBAC rule entries are strings");
                    assert!(
                        !item.contains('*'),
                        "{context}: {} {} has a wildcard in {field}: {rule}",
                        role["kind"],
                        name_of(role)
                    );
                }
            }
            assert!(rule["verbs"].as_array().is_some_and(|v| !v.is_empty()), "{context}: a rule without verbs");
        }
    }
}

#[test]
fn rbac_has_no_wildcards_and_follows_watch_namespace() {
    // All namespaces: a ClusterRole(+Binding) for the workload, a Role for the Lease.
    let docs = documents(&template("rel", "ops", &[]));
    assert_no_wildcards(&docs, "default values");
    let cluster_roles = of_kind(&docs, "ClusterRole");
    assert_eq!(cluster_roles.len(), 1);
    assert_eq!(name_of(cluster_roles[0]), "rel-webcluster-operator-ops", "cluster-scoped names hold the namespace");
    assert_eq!(name_of(of_kind(&docs, "ClusterRoleBinding")[0]), "rel-webcluster-operator-ops");
    let roles = of_kind(&docs, "Role");
    assert_eq!(roles.len(), 1, "only the leader-election Role");
    assert_eq!(roles[0]["metadata"]["namespace"], "ops");
    let lease_rules = roles[0]["rules"].as_array().expect("rules");
    assert!(lease_rules.iter().all(|r| r["apiGroups"] == serde_json::json!(["coordination.k8s.io"])));
    assert!(lease_rules.iter().all(|r| r["resources"] == serde_json::json!(["leases"])));
    let workload = serde_json::to_string(&cluster_roles[0]["rules"]).expect("JSON");
    assert!(!workload.contains("leases"), "leases belong to the namespaced Role only");

    // One namespace: a Role(+Binding) there instead, no cluster-scoped object.
    let docs = documents(&template("rel", "ops", &["--set", "watchNamespace=foo"]));
    assert_no_wildcards(&docs, "watchNamespace=foo");
    assert!(of_kind(&docs, "ClusterRole").is_empty() && of_kind(&docs, "ClusterRoleBinding").is_empty());
    let roles = of_kind(&docs, "Role");
    assert_eq!(roles.len(), 2);
    let workload = roles.iter().find(|r| r["metadata"]["namespace"] == "foo").expect("a Role in foo");
    let binding = of_kind(&docs, "RoleBinding")
        .into_iter()
        .find(|r| r["metadata"]["namespace"] == "foo")
        .expect("a RoleBinding in foo");
    assert_eq!(binding["roleRef"]["name"], workload["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["namespace"], "ops");
    let deployment = of_kind(&docs, "Deployment")[0];
    assert_eq!(container_env(deployment, "WATCH_NAMESPACE"), Some(Value::from("foo")));

    // Everything switched on still has no wildcard.
    let docs = documents(&template(
        "rel",
        "ops",
        &["--set", "serviceMonitor.enabled=true", "--set", "networkPolicy.enabled=true"],
    ));
    assert_no_wildcards(&docs, "all options");
    assert_eq!(of_kind(&docs, "ServiceMonitor").len(), 1);
    assert_eq!(of_kind(&docs, "NetworkPolicy").len(), 1);
}

#[test]
fn deployment_is_restricted_and_elects_a_leader() {
    let docs = documents(&template("webcluster-operator", "ops", &[]));
    assert!(of_kind(&docs, "ServiceMonitor").is_empty() && of_kind(&docs, "NetworkPolicy").is_empty());
    let deployment = of_kind(&docs, "Deployment")[0];
    assert_eq!(name_of(deployment), "webcluster-operator");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "ghcr.io/webcluster/webcluster-operator:0.1.0");
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(container_env(deployment, "LEADER_ELECTION"), Some(Value::from("true")));
    assert_eq!(container_env(deployment, "LEASE_NAME"), Some(Value::from("webcluster-operator")));
    assert_eq!(container_env(deployment, "METRICS_ADDRESS"), Some(Value::from("0.0.0.0:8080")));
    assert_eq!(container_env(deployment, "WATCH_NAMESPACE"), Some(Value::from("")));
    for (name, path) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        assert_eq!(container_env(deployment, name).expect(name)["fieldRef"]["fieldPath"], path);
    }
    assert_eq!(of_kind(&docs, "PodDisruptionBudget")[0]["spec"]["minAvailable"], 1);
    assert_eq!(of_kind(&docs, "Service")[0]["spec"]["ports"][0]["targetPort"], "metrics");

    // One replica: no PDB (it would block every drain); another image.
    let docs = documents(&template(
        "webcluster-operator",
        "ops",
        &["--set", "replicaCount=1", "--set", "image.repository=example.org/op", "--set", "image.tag=dev"],
    ));
    assert!(of_kind(&docs, "PodDisruptionBudget").is_empty());
    assert_eq!(
        of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["image"],
        "example.org/op:dev"
    );
}

// ---------------------------------------------------------------------------
// against the cluster

#[tokio::test]
async fn rendered_chart_passes_a_server_side_dry_run() {
    ensure_crd().await;
    let ns = TestNamespace::new("chart-dry-run").await;
    let dir = TempDir::new("chart-dry-run");
    let watch = format!("watchNamespace={}", ns.name());
    for (label, extra) in
        [("default", ["--set", "networkPolicy.enabled=true"]), ("watch-namespace", ["--set-string", &watch])]
    {
        let rendered = template(&unique_name("dry"), ns.name(), &extra);
        let file = dir.path().join(format!("{label}.yaml"));
        std::fs::write(&file, &rendered).expect("writing the render");
        kubectl_ok(&["apply", "--dry-run=server", "-n", ns.name(), "-f", &file.to_string_lossy()]);
    }
    // With the CRD included, as a first install would send it.
    let rendered = template(&unique_name("dry"), ns.name(), &["--include-crds"]);
    let file = dir.path().join("with-crds.yaml");
    std::fs::write(&file, &rendered).expect("writing the render");
    kubectl_ok(&["apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", &file.to_string_lossy()]);
}

#[tokio::test]
async fn helm_install_upgrade_and_uninstall() {
    ensure_crd().await;
    let ns = TestNamespace::new("chart-install").await;
    let mut release = Release::install(ns.name(), &["--wait", "--timeout", "120s"]);
    let (name, cluster_name, n) = (release.fullname(), release.cluster_name(), ns.name().to_string());
    let leader = format!("{name}-leader-election");
    let namespaced = [
        ("serviceaccount", name.clone()),
        ("role", leader.clone()),
        ("rolebinding", leader.clone()),
        ("deployment", name.clone()),
        ("service", format!("{name}-metrics")),
        ("poddisruptionbudget", name.clone()),
    ];
    for (kind, object) in &namespaced {
        assert!(exists(&[kind, object, "-n", &n]), "{kind} {object} was not installed");
    }
    for kind in ["clusterrole", "clusterrolebinding"] {
        assert!(exists(&[kind, &cluster_name]), "{kind} {cluster_name} was not installed");
    }
    let deployment = get_json(&["deployment", &name, "-n", &n]);
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["status"]["readyReplicas"], 2, "helm --wait returned before the pods were Ready");
    assert_eq!(container_env(&deployment, "LOG_LEVEL"), Some(Value::from("info")));
    let pdb = get_json(&["poddisruptionbudget", &name, "-n", &n]);
    assert_eq!(pdb["spec"]["minAvailable"], 1);

    helm_cluster_ok(&[
        "upgrade",
        &release.name,
        CHART,
        "--namespace",
        &n,
        "--set",
        "replicaCount=3",
        "--set",
        "logLevel=debug",
        "--wait",
        "--timeout",
        "120s",
    ]);
    let deployment = get_json(&["deployment", &name, "-n", &n]);
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(container_env(&deployment, "LOG_LEVEL"), Some(Value::from("debug")));
    assert_eq!(deployment["status"]["readyReplicas"], 3);
    let status = helm_cluster_ok(&["status", &release.name, "--namespace", &n, "-o", "json"]);
    let status: Value = serde_json::from_str(&status).expect("helm status JSON");
    assert_eq!(status["version"], 2);
    assert_eq!(status["info"]["status"], "deployed");

    release.uninstall();
    wait_for("the release's objects to be deleted", Duration::from_secs(60), || {
        let gone = namespaced.iter().all(|(kind, object)| !exists(&[kind, object, "-n", &n]))
            && ["clusterrole", "clusterrolebinding"].iter().all(|kind| !exists(&[kind, &cluster_name]));
        async move { gone }
    })
    .await;
}

// ---------------------------------------------------------------------------
// the operator binary with the chart's ServiceAccount

/// Log lines of `operator` that say the API refused something.
fn forbidden(operator: &OperatorProcess) -> Vec<String> {
    let log = operator.process.log();
    let mut lines: Vec<String> = log
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("forbidden"))
        .map(|l| l.chars().take(600).collect())
        .collect();
    lines.truncate(5);
    lines
}

/// Fails the test when the chart's RBAC refused the operator something or the operator exited.
fn assert_running_with_rights(operator: &mut OperatorProcess, doing: &str) {
    let refused = forbidden(operator);
    assert!(refused.is_empty(), "the chart's RBAC misses a permission ({doing}):\n{}", refused.join("\n"));
    if let Some(status) = operator.process.exited() {
        panic!("the operator exited ({status}):\n{}", operator.process.log());
    }
}

/// A kubeconfig with the test cluster's server and CA and only `token` as credentials.
fn token_kubeconfig(token: &str, namespace: &str, path: &Path) {
    let admin = Kubeconfig::read_from(kubeconfig_path()).expect("reading the cluster kubeconfig");
    let context_name = admin.current_context.clone().expect("a current context");
    let context = admin
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.clone())
        .expect("the current context");
    let cluster = admin
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.clone())
        .expect("the context's cluster");
    let server = cluster.server.expect("a server");
    let ca = match (&cluster.certificate_authority_data, &cluster.certificate_authority) {
        (Some(data), _) => format!("certificate-authority-data: {data}"),
        (None, Some(file)) => format!("certificate-authority: {file}"),
        (None, None) => "insecure-skip-tls-verify: true".to_string(),
    };
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}\n    {ca}\n\
         users:\n- name: operator\n  user:\n    token: {token}\n\
         contexts:\n- name: operator\n  context:\n    cluster: test\n    user: operator\n    namespace: {namespace}\n\
         current-context: operator\n"
    );
    std::fs::write(path, yaml).expect("writing the token kubeconfig");
}

/// `kubectl auth can-i` as the kubeconfig's user.
fn can_i(kubeconfig: &Path, args: &[&str]) -> bool {
    let output = Command::new(toolchain_bin().join("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([&["auth", "can-i"], args].concat())
        .output()
        .expect("running kubectl auth can-i");
    String::from_utf8_lossy(&output.stdout).trim() == "yes"
}

fn binary_supports(flag: &str) -> bool {
    let output = Command::new(operator_binary())
        .args(["run", "--help"])
        .output()
        .expect("running webcluster-operator run --help");
    String::from_utf8_lossy(&output.stdout).contains(flag)
}

/// Installs the chart into one namespace, then runs the operator binary with the
/// chart's ServiceAccount token against another (`watch_namespace`: the chart's
/// Role mode, else its ClusterRole), and waits for every example to be Ready.
async fn operator_runs_with_chart_rbac(test: &str, watch_namespace: bool, examples: &[(&str, &str)]) {
    ensure_crd().await;
    let operator_ns = TestNamespace::new(&format!("{test}-op")).await;
    let app_ns = TestNamespace::new(&format!("{test}-app")).await;
    let watch = format!("watchNamespace={}", app_ns.name());
    let extra: Vec<&str> = if watch_namespace { vec!["--set-string", &watch] } else { vec![] };
    let release = Release::install(operator_ns.name(), &extra);
    let account = release.fullname();
    let token = kubectl_ok(&["create", "token", &account, "-n", operator_ns.name(), "--duration=1h"]);
    let dir = TempDir::new(test);
    let kubeconfig = dir.path().join("kubeconfig");
    token_kubeconfig(token.trim(), app_ns.name(), &kubeconfig);

    // The token carries the chart's rights and nothing more.
    let app = app_ns.name();
    assert!(can_i(&kubeconfig, &["watch", "webclusters.webcluster.io", "-n", app]));
    assert!(can_i(&kubeconfig, &["patch", "webclusters.webcluster.io", "--subresource=status", "-n", app]));
    assert!(can_i(&kubeconfig, &["create", "statefulsets.apps", "-n", app]));
    assert!(!can_i(&kubeconfig, &["patch", "webclusters.webcluster.io", "-n", app]), "spec is never written");
    assert!(!can_i(&kubeconfig, &["delete", "webclusters.webcluster.io", "-n", app]));
    assert!(!can_i(&kubeconfig, &["create", "pods", "-n", app]));
    assert!(!can_i(&kubeconfig, &["list", "nodes"]));
    assert!(!can_i(&kubeconfig, &["create", "clusterroles.rbac.authorization.k8s.io"]));
    assert!(!can_i(&kubeconfig, &["create", "rolebindings.rbac.authorization.k8s.io", "-n", app]));
    assert!(can_i(&kubeconfig, &["create", "leases.coordination.k8s.io", "-n", operator_ns.name()]));
    assert!(!can_i(&kubeconfig, &["create", "leases.coordination.k8s.io", "-n", app]));
    if watch_namespace {
        assert!(!can_i(&kubeconfig, &["list", "webclusters.webcluster.io", "-n", operator_ns.name()]));
        assert!(!can_i(&kubeconfig, &["list", "secrets", "-n", "default"]));
    }

    let (mut command, port) = OperatorProcess::command(&operator_binary(), app);
    command
        .args(["--log-format", "text", "--log-level", "info,webcluster=debug"])
        .env("KUBECONFIG", &kubeconfig)
        .env("NO_COLOR", "1")
        .env("POD_NAME", format!("{test}-operator"))
        .env("POD_NAMESPACE", operator_ns.name())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("WATCH_NAMESPACE")
        .env_remove("LEADER_ELECTION")
        .env_remove("LEASE_NAME");
    // With leader election in the Role mode: the chart's lease Role (create,
    // then get/update/patch of its own Lease only) must suffice.
    for flag in ["--leader-election", "--lease-name", "--lease-namespace"] {
        assert!(binary_supports(flag), "`webcluster-operator run` lost {flag}, which the chart's Deployment sets");
    }
    if watch_namespace {
        command.args(["--leader-election=true", "--lease-name", &account, "--lease-namespace", operator_ns.name()]);
    } else {
        command.arg("--leader-election=false");
    }
    let log = log_dir().join(format!("{test}-{}.log", app_ns.name()));
    let mut operator = OperatorProcess::spawn(test, command, port, log).expect("starting webcluster-operator");
    operator.wait_serving(SETUP_TIMEOUT).await.unwrap_or_else(|e| panic!("{e}"));

    let api = app_ns.api::<WebCluster>();
    for (example, name) in examples {
        kubectl_apply(app, example);
        let last = RefCell::new(None);
        let ready = poll(&format!("{example}: WebCluster {name} to be Ready"), READY_TIMEOUT, || {
            assert_running_with_rights(&mut operator, example);
            let (api, last) = (api.clone(), &last);
            async move {
                let cluster = api.get_opt(name).await.ok().flatten();
                last.replace(cluster.as_ref().and_then(|c| condition(c, "Ready").cloned()));
                cluster.as_ref().is_some_and(is_ready)
            }
        })
        .await;
        if let Err(e) = ready {
            let last = describe_condition(last.borrow().as_ref());
            panic!("{e} (last: {last}); operator log:\n{}", operator.process.log());
        }
    }
    assert_eq!(operator.http_status("/readyz"), Some(200), "operator log:\n{}", operator.process.log());
    if watch_namespace {
        let lease = get_json(&["lease", &account, "-n", operator_ns.name()]);
        assert_eq!(lease["spec"]["holderIdentity"], format!("{test}-operator"), "the operator holds the chart's Lease");
    }
    // Events were recorded by the operator's account too (a refused one is only logged).
    let recorded = poll("an Event about a WebCluster", SETUP_TIMEOUT, || {
        let events = kubectl_ok(&["get", "events.events.k8s.io", "-n", app, "-o", "json"]);
        let events: Value = serde_json::from_str(&events).expect("events JSON");
        let found = events["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|e| e["regarding"]["kind"] == "WebCluster"));
        async move { found }
    })
    .await;
    assert_running_with_rights(&mut operator, "recording Events");
    assert!(recorded.is_ok(), "the operator recorded no Event about its WebClusters");
    drop(operator);
    drop(release);
}

#[tokio::test]
async fn operator_binary_reaches_ready_with_the_chart_cluster_role() {
    operator_runs_with_chart_rbac("chart-sa-cluster", false, &[("examples/mosparo.yaml", "mosparo")]).await;
}

#[tokio::test]
async fn operator_binary_reaches_ready_with_the_chart_namespace_role() {
    operator_runs_with_chart_rbac(
        "chart-sa-ns",
        true,
        &[("examples/roundcube.yaml", "roundcube"), ("examples/ezplatform.yaml", "ezplatform")],
    )
    .await;
}

/// Grants the account `operator` of `ns` a Role `name` with `rules`, in `ns`.
async fn grant(ns: &TestNamespace, name: &str, rules: Value) {
    let role: Role = serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "rules": rules}))
        .expect("a Role from the chart's rules");
    ns.api::<Role>().create(&PostParams::default(), &role).await.expect("creating the Role");
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": ns.name()}],
    }))
    .expect("a RoleBinding");
    ns.api::<RoleBinding>().create(&PostParams::default(), &binding).await.expect("creating the RoleBinding");
}

/// /readyz answers 503 while a watch cache cannot sync (the chart's rights
/// without Pods; /healthz still 200), and 200 once the right is granted.
#[tokio::test]
async fn readyz_fails_while_a_watch_is_forbidden() {
    ensure_crd().await;
    let ns = TestNamespace::new("readyz-forbidden").await;
    let rendered = documents(&template("rel", "ops", &["--set-string", &format!("watchNamespace={}", ns.name())]));
    let role = of_kind(&rendered, "Role").into_iter().find(|r| r["metadata"]["namespace"] == ns.name()).cloned();
    let mut rules = role.expect("the chart's workload Role")["rules"].clone();
    let mut pod_rules = Vec::new();
    for rule in rules.as_array_mut().expect("rules") {
        if let Some(resources) = rule["resources"].as_array_mut()
            && resources.iter().any(|r| r == "pods")
        {
            resources.retain(|r| r != "pods");
            pod_rules.push(serde_json::json!({"apiGroups": [""], "resources": ["pods"], "verbs": rule["verbs"]}));
        }
    }
    assert!(!pod_rules.is_empty(), "the chart's Role has no rule for pods");
    rules.as_array_mut().expect("rules").retain(|r| r["resources"].as_array().is_some_and(|v| !v.is_empty()));
    let account = ServiceAccount {
        metadata: ObjectMeta { name: Some("operator".into()), ..Default::default() },
        ..Default::default()
    };
    ns.api::<ServiceAccount>().create(&PostParams::default(), &account).await.expect("creating the ServiceAccount");
    grant(&ns, "without-pods", rules).await;
    let token = kubectl_ok(&["create", "token", "operator", "-n", ns.name(), "--duration=1h"]);
    let dir = TempDir::new("readyz-forbidden");
    let kubeconfig = dir.join("kubeconfig");
    token_kubeconfig(token.trim(), ns.name(), &kubeconfig);
    assert!(!can_i(&kubeconfig, &["watch", "pods", "-n", ns.name()]), "the token may watch Pods");

    let (mut command, port) = OperatorProcess::command(&operator_binary(), ns.name());
    command
        .args(["--leader-election=false", "--log-format", "text", "--log-level", "info,webcluster=debug"])
        .env("KUBECONFIG", &kubeconfig)
        .env("NO_COLOR", "1")
        .env_remove("KUBERNETES_SERVICE_HOST");
    let log = log_dir().join(format!("readyz-{}.log", ns.name()));
    let mut operator = OperatorProcess::spawn("readyz", command, port, log).expect("starting webcluster-operator");
    operator.wait_serving(SETUP_TIMEOUT).await.unwrap_or_else(|e| panic!("{e}"));
    assert_holds_for("/readyz 503 while the Pod watch is forbidden", Duration::from_secs(10), || {
        let unready = operator.http_status("/readyz") == Some(503) && operator.http_status("/healthz") == Some(200);
        async move { unready }
    })
    .await;
    assert!(!forbidden(&operator).is_empty(), "the log does not say what was forbidden:\n{}", operator.process.log());

    grant(&ns, "pods", serde_json::Value::Array(pod_rules)).await;
    wait_for("/readyz 200 once Pods may be watched", SETUP_TIMEOUT, || {
        let ready = operator.http_status("/readyz") == Some(200);
        async move { ready }
    })
    .await;
}

// ---------------------------------------------------------------------------
// deploy/install.yaml

const INSTALL_NAMESPACE: &str = "webcluster-system";

/// Deletes what deploy/install.yaml created, except the CRD (other tests use it).
struct InstalledManifest {
    cluster_scoped: Vec<(String, String)>,
}

impl Drop for InstalledManifest {
    fn drop(&mut self) {
        for (kind, name) in &self.cluster_scoped {
            let _ = kubectl(&["delete", kind, name, "--ignore-not-found", "--wait=false"]);
        }
        let _ = kubectl(&["delete", "namespace", INSTALL_NAMESPACE, "--ignore-not-found", "--wait=false"]);
    }
}

#[tokio::test]
async fn install_yaml_applies_and_its_pods_pass_restricted_admission() {
    ensure_crd().await;
    // A previous run's namespace may still be terminating.
    wait_for("namespace webcluster-system from an earlier run to go", Duration::from_secs(90), || {
        let gone = !exists(&["namespace", INSTALL_NAMESPACE]);
        async move { gone }
    })
    .await;
    let manifest = repo_root().join("deploy/install.yaml");
    let docs = documents(&std::fs::read_to_string(&manifest).expect("deploy/install.yaml"));
    let cluster_scoped = docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "ClusterRoleBinding")
        .map(|d| (d["kind"].as_str().unwrap_or_default().to_ascii_lowercase(), name_of(d).to_string()))
        .collect();
    let _cleanup = InstalledManifest { cluster_scoped };
    kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", &manifest.to_string_lossy()]);
    let deployment = of_kind(&docs, "Deployment")[0];
    let name = name_of(deployment).to_string();
    // The Namespace enforces the restricted pod security standard: pods only come when the template complies.
    wait_for("the operator Deployment of install.yaml to be Ready", READY_TIMEOUT, || {
        let output = kubectl(&["get", "deployment", &name, "-n", INSTALL_NAMESPACE, "-o", "json"]);
        let ready = serde_json::from_slice::<Value>(&output.stdout)
            .is_ok_and(|d| d["status"]["readyReplicas"] == 2 && d["status"]["availableReplicas"] == 2);
        async move { ready }
    })
    .await;
    let events = kubectl_ok(&["get", "events", "-n", INSTALL_NAMESPACE]);
    assert!(!events.contains("violates PodSecurity"), "{events}");
}
