//! The controller on the real control plane: examples reach Ready, updates
//! follow, drift is repaired, migrations gate rollouts, deletion honours the
//! policy, an idle cluster costs no writes, a restart loses nothing.
//! Each test runs its own operator, scoped to its own namespace.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

#[path = "harness/mod.rs"]
mod harness;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use harness::cluster::{TestNamespace, cluster_config, ensure_crd, kubectl_apply, kubectl_ok, repo_root};
use harness::conditions::{condition, current, is_ready, wait_condition, wait_ready, wait_reason, wait_status};
use harness::wait::{
    READY_TIMEOUT, SETUP_TIMEOUT, assert_holds_for, poll, wait_for, wait_for_deletion, wait_for_object,
};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::oneshot;
use webcluster::api::WebCluster;
use webcluster::controller::{self, Metrics, Settings};
use webcluster::desired::ROLE_LABEL;

/// An operator running in this process, watching one namespace.
struct Operator {
    metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    async fn start(namespace: &str) -> Self {
        ensure_crd().await;
        let metrics = Metrics::shared();
        let config = cluster_config().await;
        let client = controller::counting_client(config, metrics.clone()).expect("a counting client");
        let settings = Settings { namespace: Some(namespace.into()), concurrency: 4, ..Settings::default() };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(client, settings, metrics.clone(), async move {
            let _ = stopped.await;
        }));
        Self { metrics, stop: Some(stop), task }
    }

    /// Stops gracefully (the reconcile in flight finishes).
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), &mut self.task).await;
    }

    /// Ends abruptly, as a killed process would.
    fn kill(self) {
        self.task.abort();
    }

    /// Waits until no reconcile is in flight (the last one's status write
    /// and Events are sent).
    async fn wait_quiet(&self) {
        wait_for("no reconcile in flight", SETUP_TIMEOUT, || {
            let quiet = self.metrics.reconciles_in_flight.get() == 0;
            async move { quiet }
        })
        .await;
    }
}

async fn apply_yaml(ns: &TestNamespace, yaml: &str) {
    let mut value: serde_json::Value = serde_saphyr::from_str(yaml).expect("test manifest is YAML");
    value["metadata"]["namespace"] = json!(ns.name());
    let name = value["metadata"]["name"].as_str().expect("a name").to_string();
    ns.api::<WebCluster>()
        .patch(&name, &PatchParams::apply("test").force(), &Patch::Apply(&value))
        .await
        .unwrap_or_else(|e| panic!("applying {name}: {e}"));
}

async fn wait_ready_in(ns: &TestNamespace, name: &str) -> WebCluster {
    wait_ready(&ns.api::<WebCluster>(), name).await
}

async fn deployment_image(ns: &TestNamespace, name: &str) -> Option<String> {
    let deployment = ns.api::<Deployment>().get_opt(name).await.ok()??;
    deployment.spec.template.spec?.containers.first()?.image.clone()
}

/// Every object `render` lists for the example exists in the namespace.
async fn assert_children_exist(ns: &TestNamespace, example: &str) {
    let input = std::fs::read_to_string(repo_root().join(example)).expect("example readable");
    let mut clusters = webcluster::render::parse(&input).expect("example parses");
    for cluster in &mut clusters {
        cluster.metadata.namespace = Some(ns.name().into());
        let children =
            webcluster::desired::children(cluster, &webcluster::desired::Plan::offline(cluster)).expect("builds");
        for child in children {
            let resource = child.api_resource();
            let api: Api<kube::core::DynamicObject> = Api::namespaced_with(ns.client(), ns.name(), &resource);
            assert!(
                api.get_opt(child.name()).await.expect("get works").is_some(),
                "{} {} of {example} does not exist",
                child.kind(),
                child.name()
            );
        }
    }
}

async fn role_label(pods: &Api<Pod>, pod: &str) -> Option<String> {
    pods.get(pod).await.ok()?.labels().get(ROLE_LABEL).cloned()
}

/// The first rollout's primary (pod 0) and the replicas carry the labels the
/// read-write and read-only Services select.
async fn assert_role_labels(ns: &TestNamespace, name: &str, replicas: i32) {
    let pods = ns.api::<Pod>();
    for ordinal in 0..=replicas {
        let pod = format!("{name}-db-{ordinal}");
        let role = if ordinal == 0 { "primary" } else { "replica" };
        wait_for(&format!("{pod} labelled {role}"), Duration::from_secs(30), || async {
            role_label(&pods, &pod).await.as_deref() == Some(role)
        })
        .await;
    }
    for (service, role) in [("rw", "primary"), ("ro", "replica")] {
        let found = ns.api::<Service>().get(&format!("{name}-db-{service}")).await.expect("a database Service");
        let selector = found.spec.and_then(|s| s.selector).unwrap_or_default();
        assert_eq!(selector.get(ROLE_LABEL).map(String::as_str), Some(role), "{name}-db-{service} selects the {role}");
    }
}

#[tokio::test]
async fn every_example_reaches_ready_with_its_figures() {
    for (example, name) in [
        ("examples/roundcube.yaml", "roundcube"),
        ("examples/ezplatform.yaml", "ezplatform"),
        ("examples/mosparo.yaml", "mosparo"),
    ] {
        let ns = TestNamespace::new(&format!("example-{name}")).await;
        let operator = Operator::start(ns.name()).await;
        kubectl_apply(ns.name(), example);
        wait_ready_in(&ns, name).await;
        assert_children_exist(&ns, example).await;
        let cluster = ns.api::<WebCluster>().get(name).await.expect("the WebCluster");
        let status = cluster.status.clone().expect("a status");
        let app = status.app.expect("app figures");
        assert_eq!(app.ready_replicas, cluster.spec.app.replicas, "{example}: ready app replicas");
        assert_eq!(app.image.as_deref(), Some(cluster.spec.app.image.as_str()));
        let database = status.database.expect("database figures");
        let managed = cluster.spec.database.as_ref().and_then(|d| d.managed.as_ref()).expect("managed database");
        assert_eq!(database.ready_replicas, 1 + managed.replicas, "{example}: ready database pods");
        assert_eq!(database.primary.as_deref(), Some(format!("{name}-db-0").as_str()));
        assert_role_labels(&ns, name, managed.replicas).await;
        let cache = status.cache.expect("cache figures");
        let cache_spec = cluster.spec.cache.as_ref().expect("a cache");
        assert_eq!(cache.ready_replicas, cache_spec.replicas);
        assert_eq!(status.observed_generation, cluster.metadata.generation);
        let table = kubectl_ok(&["get", "wc", "-n", ns.name()]);
        assert!(table.contains(name) && table.contains("True"), "kubectl get wc shows it Ready:\n{table}");
        operator.stop().await;
    }
}

const SMALL: &str = r#"
apiVersion: webcluster.io/v1alpha1
kind: WebCluster
metadata: {name: shop}
spec:
  app: {image: "shop:1", replicas: 2}
  cache: {backend: memcached, replicas: 2}
  httpCache: {}
  jobs:
    - {name: cleanup, schedule: "*/5 * * * *", command: [cleanup]}
    - {name: report, schedule: "0 * * * *", command: [report]}
"#;

#[tokio::test]
async fn children_follow_spec_updates_and_removed_ones_are_deleted() {
    let ns = TestNamespace::new("updates").await;
    let operator = Operator::start(ns.name()).await;
    apply_yaml(&ns, SMALL).await;
    wait_ready_in(&ns, "shop").await;

    let updated = SMALL
        .replace("shop:1", "shop:2")
        .replace("replicas: 2}\n  cache", "replicas: 4}\n  cache")
        .replace("*/5 * * * *", "*/10 * * * *")
        .replace("backend: memcached", "backend: redis")
        .replace("  httpCache: {}\n", "")
        .replace("    - {name: report, schedule: \"0 * * * *\", command: [report]}\n", "");
    apply_yaml(&ns, &updated).await;

    let deployments = ns.api::<Deployment>();
    wait_for("the app to run shop:2 with 4 replicas", READY_TIMEOUT, || {
        let deployments = deployments.clone();
        async move {
            let Ok(Some(d)) = deployments.get_opt("shop-app").await else { return false };
            d.spec.replicas == Some(4)
                && d.spec.template.spec.and_then(|p| p.containers[0].image.clone()).as_deref() == Some("shop:2")
        }
    })
    .await;
    let cron_jobs = ns.api::<CronJob>();
    wait_for("the cleanup schedule to change and the report CronJob to go", READY_TIMEOUT, || {
        let cron_jobs = cron_jobs.clone();
        async move {
            let schedule = cron_jobs.get_opt("shop-cleanup").await.ok().flatten().map(|c| c.spec.schedule);
            schedule.as_deref() == Some("*/10 * * * *") && matches!(cron_jobs.get_opt("shop-report").await, Ok(None))
        }
    })
    .await;
    let config_maps = ns.api::<ConfigMap>();
    let sets = ns.api::<StatefulSet>();
    wait_for("the cache to be redis and Varnish to be gone", READY_TIMEOUT, || {
        let (config_maps, sets, deployments) = (config_maps.clone(), sets.clone(), deployments.clone());
        async move {
            let redis = sets
                .get_opt("shop-cache")
                .await
                .ok()
                .flatten()
                .and_then(|s| s.spec.template.spec?.containers[0].image.clone());
            redis.is_some_and(|image| image.starts_with("redis"))
                && matches!(config_maps.get_opt("shop-cache-config").await, Ok(Some(_)))
                && matches!(deployments.get_opt("shop-http-cache").await, Ok(None))
                && matches!(config_maps.get_opt("shop-http-cache-vcl").await, Ok(None))
        }
    })
    .await;
    wait_ready_in(&ns, "shop").await;
    operator.stop().await;
}

#[tokio::test]
async fn deleted_or_edited_children_are_restored() {
    let ns = TestNamespace::new("drift").await;
    let operator = Operator::start(ns.name()).await;
    apply_yaml(&ns, SMALL).await;
    wait_ready_in(&ns, "shop").await;

    let services = ns.api::<Service>();
    services.delete("shop-app", &DeleteParams::default()).await.expect("delete the app Service");
    let deployments = ns.api::<Deployment>();
    deployments
        .patch("shop-app", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"replicas": 7}})))
        .await
        .expect("scale the Deployment by hand");
    let config_maps = ns.api::<ConfigMap>();
    config_maps
        .patch(
            "shop-http-cache-vcl",
            &PatchParams::default(),
            &Patch::Merge(&json!({"data": {"default.vcl": "vcl 4.1;"}})),
        )
        .await
        .expect("edit the VCL by hand");

    wait_for("the Service, the replica count and the VCL to be restored", Duration::from_secs(20), || {
        let (services, deployments, config_maps) = (services.clone(), deployments.clone(), config_maps.clone());
        async move {
            let service = matches!(services.get_opt("shop-app").await, Ok(Some(_)));
            let replicas = deployments.get_opt("shop-app").await.ok().flatten().and_then(|d| d.spec.replicas);
            let vcl = config_maps
                .get_opt("shop-http-cache-vcl")
                .await
                .ok()
                .flatten()
                .and_then(|c| c.data?.get("default.vcl").cloned());
            service && replicas == Some(2) && vcl.is_some_and(|v| v.contains("backend app"))
        }
    })
    .await;
    operator.stop().await;
}

const MIGRATING: &str = r#"
apiVersion: webcluster.io/v1alpha1
kind: WebCluster
metadata: {name: blog}
spec:
  app:
    image: "blog:1"
    replicas: 2
    # No retry: the first failed pod fails the migration (the default retries 6 times).
    migration: {command: [migrate], backoffLimit: 0}
  database: {engine: postgresql, managed: {replicas: 1}}
  jobs:
    - {name: cleanup, schedule: "*/5 * * * *", command: [cleanup]}
"#;

#[tokio::test]
async fn a_successful_migration_runs_before_the_new_image_rolls_out() {
    let ns = TestNamespace::new("migrate-ok").await;
    let operator = Operator::start(ns.name()).await;
    apply_yaml(&ns, MIGRATING).await;
    wait_ready_in(&ns, "blog").await;
    apply_yaml(&ns, &MIGRATING.replace("blog:1", "blog:2")).await;
    wait_for("the app to run blog:2", READY_TIMEOUT, || async {
        deployment_image(&ns, "blog-app").await.as_deref() == Some("blog:2")
    })
    .await;
    wait_ready_in(&ns, "blog").await;

    let job_name = webcluster::desired::names::migration("blog", "blog:2");
    let job = ns.api::<Job>().get(&job_name).await.expect("the migration Job of blog:2");
    let finished = job.status.and_then(|s| s.completion_time).expect("the migration completed");
    let replica_sets = ns.api::<ReplicaSet>().list(&ListParams::default()).await.expect("ReplicaSets");
    let new = replica_sets
        .items
        .iter()
        .find(|rs| {
            rs.spec.template.as_ref().and_then(|t| t.spec.as_ref()?.containers[0].image.clone()).as_deref()
                == Some("blog:2")
        })
        .expect("a ReplicaSet of blog:2");
    let rolled_out = new.metadata.creation_timestamp.clone().expect("created");
    assert!(
        rolled_out.0 >= finished.0,
        "blog:2 rolled out at {rolled_out:?}, before its migration finished at {finished:?}"
    );
    assert_eq!(
        ns.api::<Job>()
            .list(&ListParams::default().labels("app.kubernetes.io/component=migration"))
            .await
            .expect("jobs")
            .items
            .len(),
        1,
        "old migration Jobs are pruned"
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_failed_migration_keeps_the_old_image_and_says_why() {
    let ns = TestNamespace::new("migrate-fail").await;
    let operator = Operator::start(ns.name()).await;
    apply_yaml(&ns, MIGRATING).await;
    wait_ready_in(&ns, "blog").await;
    // The test cluster's kwok stages fail pods carrying this label.
    let failing = MIGRATING
        .replace("blog:1", "blog:2")
        .replace("replicas: 2\n", "replicas: 2\n    pod: {labels: {webcluster.test/fail: \"true\"}}\n");
    apply_yaml(&ns, &failing).await;
    let api = ns.api::<WebCluster>();
    wait_status(&api, "blog", "MigrationComplete", "False").await;
    let cluster = wait_reason(&api, "blog", "MigrationComplete", "Failed").await;
    let message = &condition(&cluster, "MigrationComplete").expect("the condition").message;
    assert!(message.contains("previous image keeps serving"), "{message}");
    assert_eq!(deployment_image(&ns, "blog-app").await.as_deref(), Some("blog:1"), "the old image keeps serving");
    let ready = current(&api, "blog", "Ready").await.expect("Ready");
    assert_eq!(ready.status, "False");
    operator.stop().await;
}

#[tokio::test]
async fn a_failed_first_migration_holds_the_app_at_zero_pods() {
    let ns = TestNamespace::new("first-migration").await;
    let operator = Operator::start(ns.name()).await;
    let failing =
        MIGRATING.replace("replicas: 2\n", "replicas: 2\n    pod: {labels: {webcluster.test/fail: \"true\"}}\n");
    apply_yaml(&ns, &failing).await;
    wait_reason(&ns.api::<WebCluster>(), "blog", "AppReady", "MigrationFailed").await;
    let deployment = ns.api::<Deployment>().get("blog-app").await.expect("the app Deployment exists while held");
    assert_eq!(deployment.spec.replicas, Some(0), "no app pod runs before the first migration succeeds");
    let annotations = deployment.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get(webcluster::desired::HOLD_ANNOTATION).map(String::as_str), Some("held"));
    operator.stop().await;
}

/// What deleting a WebCluster leaves behind.
#[derive(Debug, PartialEq)]
struct Leftovers {
    /// Claims not marked for deletion.
    live_claims: usize,
    /// Whether the generated Secret stays.
    secret: bool,
    /// Whether no Service is left.
    services_gone: bool,
}

async fn leftovers(ns: &TestNamespace) -> Leftovers {
    let claims = ns.api::<PersistentVolumeClaim>().list(&ListParams::default()).await.expect("claims");
    let live_claims = claims.items.iter().filter(|c| c.metadata.deletion_timestamp.is_none()).count();
    let secret = matches!(ns.api::<Secret>().get_opt("wiki-credentials").await, Ok(Some(s)) if s.metadata.deletion_timestamp.is_none());
    let services_gone = ns.api::<Service>().list(&ListParams::default()).await.expect("services").items.is_empty();
    Leftovers { live_claims, secret, services_gone }
}

/// Deletes a WebCluster with `policy` (in the foreground: it is gone once the
/// garbage collector removed what it owns) and waits for `expected` leftovers.
async fn deletion_leaves(policy: &str, expected: Leftovers, why: &str) {
    let ns = TestNamespace::new(&format!("delete-{}", policy.to_lowercase())).await;
    let operator = Operator::start(ns.name()).await;
    let manifest = format!(
        "apiVersion: webcluster.io/v1alpha1\nkind: WebCluster\nmetadata: {{name: wiki}}\nspec:\n  app: {{image: 'wiki:1'}}\n  database: {{engine: mariadb, managed: {{replicas: 1}}}}\n  storage: {{volume: {{mounts: [{{path: /files}}]}}}}\n  deletionPolicy: {policy}\n"
    );
    apply_yaml(&ns, &manifest).await;
    let cluster = wait_ready_in(&ns, "wiki").await;
    let api = ns.api::<WebCluster>();
    api.delete("wiki", &DeleteParams::foreground()).await.expect("delete the WebCluster");
    let uid = cluster.metadata.uid.clone().expect("a uid");
    wait_for_deletion(&api, "wiki", &uid, "the WebCluster and what it owns to go", READY_TIMEOUT).await;
    let deployments = ns.api::<Deployment>();
    let sets = ns.api::<StatefulSet>();
    wait_for("the workloads to be garbage-collected", READY_TIMEOUT, || {
        let (deployments, sets) = (deployments.clone(), sets.clone());
        async move {
            deployments.list(&ListParams::default()).await.is_ok_and(|l| l.items.is_empty())
                && sets.list(&ListParams::default()).await.is_ok_and(|l| l.items.is_empty())
        }
    })
    .await;
    let what = format!("{policy}: {why} ({expected:?})");
    if let Err(e) = poll(&what, READY_TIMEOUT, || async { leftovers(&ns).await == expected }).await {
        panic!("{e}; left: {:?}", leftovers(&ns).await);
    }
    if expected.live_claims > 0 {
        // Nothing removes retained data later (the claims have no owner).
        assert_holds_for(&what, Duration::from_secs(5), || async { leftovers(&ns).await == expected }).await;
    }
    operator.stop().await;
}

#[tokio::test]
async fn deletion_retains_data_unless_asked_to_delete_it() {
    let retained = Leftovers { live_claims: 3, secret: true, services_gone: true };
    let why = "both database claims, the files claim and the generated Secret stay; everything else is collected";
    deletion_leaves("Retain", retained, why).await;
    let deleted = Leftovers { live_claims: 0, secret: false, services_gone: true };
    deletion_leaves("Delete", deleted, "the claims and the generated Secret go too").await;
}

/// Whether the status shows Ready and every pod the spec asks for ready, so
/// no figure is left to write.
fn figures_final(cluster: &WebCluster) -> bool {
    let Some(status) = &cluster.status else { return false };
    let spec = &cluster.spec;
    let app = status.app.as_ref().is_some_and(|a| a.ready_replicas == spec.app.replicas);
    let database = spec
        .database
        .as_ref()
        .and_then(|d| d.managed.as_ref())
        .is_none_or(|managed| status.database.as_ref().is_some_and(|d| d.ready_replicas == 1 + managed.replicas));
    let cache =
        spec.cache.as_ref().is_none_or(|c| status.cache.as_ref().is_some_and(|s| s.ready_replicas == c.replicas));
    is_ready(cluster) && app && database && cache && status.observed_generation == cluster.metadata.generation
}

#[tokio::test]
async fn an_idle_web_cluster_costs_no_writes() {
    let ns = TestNamespace::new("idle").await;
    let operator = Operator::start(ns.name()).await;
    kubectl_apply(ns.name(), "examples/roundcube.yaml");
    let api = ns.api::<WebCluster>();
    // A cron run (`*/30` in the example) is news the status must record: the
    // tasks are suspended so that the idle minute holds none, whatever the clock.
    let mut jobs = api.get("roundcube").await.expect("the WebCluster").spec.jobs;
    jobs.iter_mut().for_each(|job| job.suspend = true);
    let patch = Patch::Merge(json!({"spec": {"jobs": jobs}}));
    api.patch("roundcube", &PatchParams::default(), &patch).await.expect("suspending the cron tasks");
    wait_for_object(&api, "roundcube", "Ready with its final figures", READY_TIMEOUT, figures_final).await;
    operator.wait_quiet().await;
    let cluster_before = api.get("roundcube").await.expect("the WebCluster");
    let writes_before = operator.metrics.writes();
    assert_holds_for("no write by the operator over a minute of idling", Duration::from_secs(60), || {
        let writes = operator.metrics.writes() - writes_before;
        async move { writes == 0 }
    })
    .await;
    let writes = operator.metrics.writes() - writes_before;
    let cluster_after = api.get("roundcube").await.expect("the WebCluster");
    assert_eq!(writes, 0, "the operator wrote {writes} times in a minute of idling");
    assert_eq!(cluster_before.resource_version(), cluster_after.resource_version(), "the status did not change");
    operator.stop().await;
}

async fn secret_data(ns: &TestNamespace, name: &str) -> BTreeMap<String, String> {
    let secret = ns.api::<Secret>().get(name).await.expect("the generated Secret");
    secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned())).collect()
}

#[tokio::test]
async fn a_restart_mid_reconcile_converges_without_losing_passwords() {
    let ns = TestNamespace::new("restart").await;
    let first = Operator::start(ns.name()).await;
    kubectl_apply(ns.name(), "examples/roundcube.yaml");
    let secrets = ns.api::<Secret>();
    wait_for("the generated Secret", READY_TIMEOUT, || {
        let secrets = secrets.clone();
        async move { matches!(secrets.get_opt("roundcube-credentials").await, Ok(Some(_))) }
    })
    .await;
    let passwords = secret_data(&ns, "roundcube-credentials").await;
    first.kill();

    let second = Operator::start(ns.name()).await;
    wait_ready_in(&ns, "roundcube").await;
    let after = secret_data(&ns, "roundcube-credentials").await;
    for key in ["db-password", "db-superuser-password", "db-replication-password", "shared.ROUNDCUBEMAIL_DES_KEY"] {
        assert_eq!(passwords.get(key), after.get(key), "{key} changed across the restart");
    }
    let deployments = ns.api::<Deployment>().list(&ListParams::default()).await.expect("deployments");
    assert_eq!(deployments.items.len(), 1, "one app Deployment");
    let jobs = ns.api::<Job>().list(&ListParams::default()).await.expect("jobs");
    assert_eq!(jobs.items.len(), 1, "one migration Job");
    second.stop().await;
}

#[tokio::test]
async fn a_change_kubernetes_cannot_apply_is_reported_not_retried() {
    let ns = TestNamespace::new("rejected").await;
    let operator = Operator::start(ns.name()).await;
    let manifest = |size: &str| {
        format!(
            "apiVersion: webcluster.io/v1alpha1\nkind: WebCluster\nmetadata: {{name: wiki}}\nspec:\n  app: {{image: 'wiki:1'}}\n  database: {{engine: postgresql, managed: {{replicas: 0, storage: {{size: {size}}}}}}}\n"
        )
    };
    apply_yaml(&ns, &manifest("10Gi")).await;
    wait_ready_in(&ns, "wiki").await;
    // A StatefulSet's volume claim templates are immutable.
    apply_yaml(&ns, &manifest("20Gi")).await;
    let cluster = wait_reason(&ns.api::<WebCluster>(), "wiki", "Ready", "SpecRejected").await;
    let message = &condition(&cluster, "Ready").expect("Ready").message;
    assert!(message.contains("StatefulSet wiki-db"), "{message}");
    operator.wait_quiet().await;
    let writes = operator.metrics.writes();
    assert_holds_for("at most one retry of the refused change", Duration::from_secs(10), || {
        let retries = operator.metrics.writes() - writes;
        async move { retries <= 1 }
    })
    .await;
    let retries = operator.metrics.writes() - writes;
    assert!(retries <= 1, "the operator retried the refused change {retries} times in 10 s");
    operator.stop().await;
}

/// Every version of one object a watch delivered, with its resourceVersion.
/// On the local cluster that is etcd's revision, one counter across all
/// objects, so versions of different objects order in time.
struct Timeline<K> {
    versions: Arc<std::sync::Mutex<Vec<(u64, K)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl<K> Timeline<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    /// Starts recording object `name`; returns once the watch listed it.
    async fn record(api: Api<K>, name: &str) -> Self {
        use futures::StreamExt;
        use kube::runtime::watcher::{self, Event};
        let versions = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (listed, mut on_listed) = tokio::sync::watch::channel(false);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stream = watcher::watcher(api, config);
        let sink = versions.clone();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Apply(object) | Event::InitApply(object)) => {
                        let version = object.resource_version().and_then(|v| v.parse().ok()).unwrap_or(0);
                        sink.lock().unwrap().push((version, object));
                    }
                    Ok(Event::InitDone) => {
                        let _ = listed.send(true);
                    }
                    _ => {}
                }
            }
        });
        tokio::time::timeout(SETUP_TIMEOUT, on_listed.wait_for(|done| *done)).await.unwrap().unwrap();
        Self { versions, task }
    }

    /// The recorded versions so far.
    fn versions(&self) -> Vec<(u64, K)> {
        self.versions.lock().unwrap().clone()
    }

    /// The object as it was at `version`: the last recorded version not after it.
    fn at(&self, version: u64) -> Option<K> {
        self.versions().into_iter().rev().find(|(v, _)| *v <= version).map(|(_, object)| object)
    }
}

impl<K> Drop for Timeline<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a Deployment does not yet run its current spec everywhere, if it does not.
fn deployment_behind(d: &Deployment) -> Option<String> {
    let s = d.status.clone().unwrap_or_default();
    let desired = d.spec.replicas.unwrap_or(1);
    let figures = [s.replicas, s.updated_replicas, s.ready_replicas].map(|n| n.unwrap_or(0));
    let current = s.observed_generation >= d.metadata.generation && figures == [desired; 3];
    (!current).then(|| {
        format!(
            "generation {:?} observed {:?}, replicas/updated/ready {figures:?} of {desired}",
            d.metadata.generation, s.observed_generation
        )
    })
}

/// Why a StatefulSet does not yet run its current spec everywhere, if it does not.
fn stateful_set_behind(set: &StatefulSet) -> Option<String> {
    let s = set.status.clone().unwrap_or_default();
    let desired = set.spec.replicas.unwrap_or(1);
    let figures = [s.replicas, s.updated_replicas.unwrap_or(0), s.ready_replicas.unwrap_or(0)];
    let current = s.observed_generation >= set.metadata.generation && figures == [desired; 3];
    (!current).then(|| {
        format!(
            "generation {:?} observed {:?}, replicas/updated/ready {figures:?} of {desired}",
            set.metadata.generation, s.observed_generation
        )
    })
}

#[tokio::test]
async fn a_new_generation_is_not_ready_before_every_child_runs_its_spec() {
    let ns = TestNamespace::new("generation").await;
    let operator = Operator::start(ns.name()).await;
    apply_yaml(&ns, SMALL).await;
    wait_ready_in(&ns, "shop").await;
    let clusters = ns.api::<WebCluster>();
    let statuses = Timeline::record(clusters.clone(), "shop").await;
    let app = Timeline::record(ns.api::<Deployment>(), "shop-app").await;
    let cache = Timeline::record(ns.api::<StatefulSet>(), "shop-cache").await;

    let changed = SMALL.replace("shop:1", "shop:2").replace("backend: memcached,", "backend: memcached, memory: 96Mi,");
    apply_yaml(&ns, &changed).await;
    let generation = clusters.get("shop").await.unwrap().metadata.generation;
    let ready_at_generation =
        |c: &WebCluster| is_ready(c) && c.status.as_ref().and_then(|s| s.observed_generation) == generation;
    wait_for("Ready for the new generation, seen by the watch", READY_TIMEOUT, || {
        let seen = statuses.versions().iter().any(|(_, c)| ready_at_generation(c));
        async move { seen }
    })
    .await;

    let mut checked = 0;
    for (version, cluster) in statuses.versions().iter().filter(|(_, c)| ready_at_generation(c)) {
        let deployment = app.at(*version).expect("the app Deployment was recorded");
        let set = cache.at(*version).expect("the cache StatefulSet was recorded");
        for (child, behind) in [
            ("Deployment shop-app", deployment_behind(&deployment)),
            ("StatefulSet shop-cache", stateful_set_behind(&set)),
        ] {
            assert_eq!(
                behind,
                None,
                "status at version {version} says Ready for generation {generation:?} ({:?}) while {child} is behind",
                condition(cluster, "Ready")
            );
        }
        checked += 1;
    }
    assert!(checked > 0);
    let image = deployment_image(&ns, "shop-app").await;
    assert_eq!(image.as_deref(), Some("shop:2"), "the change rolled out");
    operator.stop().await;
}

/// Whether the API server serves HTTPRoutes (the Gateway API CRDs are installed).
fn http_routes_served() -> bool {
    harness::cluster::kubectl(&["get", "--raw", "/apis/gateway.networking.k8s.io/v1"]).status.success()
        && kubectl_ok(&["get", "--raw", "/apis/gateway.networking.k8s.io/v1"]).contains("\"httproutes\"")
}

/// The Gateway API CRDs (standard channel of sigs.k8s.io/gateway-api, from the Go module proxy).
fn gateway_api_crds() -> Vec<String> {
    let out = std::process::Command::new("bash").arg(repo_root().join("hack/gateway-api-crds.sh")).output().unwrap();
    assert!(out.status.success(), "hack/gateway-api-crds.sh: {}", String::from_utf8_lossy(&out.stderr));
    let dir = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    ["gatewayclasses", "gateways", "httproutes", "referencegrants"]
        .map(|kind| format!("{dir}/gateway.networking.k8s.io_{kind}.yaml"))
        .to_vec()
}

/// An HTTPRoute without the Gateway API: the rest of the WebCluster runs and
/// Ready says what to install. With the CRDs installed the operator finds them
/// by itself, creates the route (to Varnish here) and prunes it when the spec drops it.
#[tokio::test]
async fn an_http_route_waits_for_the_gateway_api_then_follows_the_spec() {
    use webcluster::desired::gateway::HTTPRoute;
    // The only test that installs or removes these CRDs.
    kubectl_ok(&["delete", "crd", "httproutes.gateway.networking.k8s.io", "--ignore-not-found", "--wait"]);
    wait_for("the API server stops serving HTTPRoutes", SETUP_TIMEOUT, || async { !http_routes_served() }).await;
    let ns = TestNamespace::new("http-route").await;
    let operator = Operator::start(ns.name()).await;
    let routed = SMALL.replace(
        "  httpCache: {}",
        "  httpCache: {}\n  httpRoute: {parentRefs: [{name: edge, namespace: infra, sectionName: web}], hostnames: [shop.example.com], path: /shop}",
    );
    apply_yaml(&ns, &routed).await;
    let clusters: Api<WebCluster> = ns.api();
    let refused = wait_condition(&clusters, "shop", "Ready", "Ready=False naming HTTPRoute", READY_TIMEOUT, |c| {
        c.status == "False" && c.message.contains("does not serve HTTPRoute")
    })
    .await;
    println!("without the CRDs: {}", harness::conditions::describe(condition(&refused, "Ready")));
    wait_for_object(&ns.api::<Deployment>(), "shop-http-cache", "the rest runs", READY_TIMEOUT, |_| true).await;

    for crd in gateway_api_crds() {
        kubectl_ok(&["apply", "--server-side", "-f", &crd]);
    }
    wait_for("the API server serves HTTPRoutes", SETUP_TIMEOUT, || async { http_routes_served() }).await;
    let routes = ns.api::<HTTPRoute>();
    let route = wait_for_object(&routes, "shop-app", "the HTTPRoute", READY_TIMEOUT, |_| true).await;
    let parent = &route.spec.parent_refs[0];
    assert_eq!((parent.name.as_str(), parent.namespace.as_deref()), ("edge", Some("infra")));
    assert_eq!(route.spec.hostnames, ["shop.example.com"]);
    assert_eq!(route.spec.rules[0].matches[0].path.value, "/shop");
    assert_eq!(route.spec.rules[0].backend_refs[0].name, "shop-http-cache", "through Varnish");
    wait_condition(&clusters, "shop", "Ready", "no word of HTTPRoute in Ready", READY_TIMEOUT, |c| {
        !c.message.contains("HTTPRoute")
    })
    .await;

    apply_yaml(&ns, SMALL).await;
    let uid = route.metadata.uid.clone().unwrap();
    wait_for_deletion(&routes, "shop-app", &uid, "the HTTPRoute pruned", READY_TIMEOUT).await;
    operator.stop().await;
}
