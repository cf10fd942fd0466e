//! Faults on the control plane and the operator, each followed by convergence:
//! kube-apiserver restarted mid-reconcile of several WebClusters, etcd
//! restarted, the operator SIGKILLed mid-apply of a large WebCluster, watches
//! that expire (410 Gone) and must relist, children edited by hand while the
//! operator is down. After each, within the bound the test states: every
//! WebCluster Ready for its generation with figures that match its workloads,
//! exactly its children (none duplicated, none orphaned), the child of another
//! owner untouched, the generated passwords unchanged. Each prints its time to converge.
//!
//! These tests restart etcd and kube-apiserver, so they run on a cluster of
//! their own (`.cluster/faults/`, kwok nodes only: no pod needs to run for
//! real), one test at a time. Stop it with
//! `WEBCLUSTER_CLUSTER_DIR=.cluster/faults bash hack/cluster.sh down`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

#[path = "harness/mod.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use harness::cluster::{TestNamespace, ensure_crd, restart_component, use_own_cluster};
use harness::conditions::{condition, is_ready};
use harness::process::OperatorProcess;
use harness::wait::{READY_TIMEOUT, poll};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use webcluster::api::WebCluster;
use webcluster::desired::gateway::HTTPRoute;
use webcluster::desired::meta::{INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGER, managed_selector};
use webcluster::desired::{Plan, children, names};

/// How long a WebCluster may take to converge after a fault ends.
const CONVERGE_BOUND: Duration = Duration::from_secs(120);

/// One fault at a time: each restarts what the others rely on.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The fault cluster, its CRD and a namespace for `test`.
async fn setup(test: &str) -> TestNamespace {
    use_own_cluster("faults");
    ensure_crd().await;
    TestNamespace::new(test).await
}

/// A WebCluster with every component and `tasks` cron tasks (a yearly
/// schedule, so no Job of theirs runs during a test).
async fn create(ns: &TestNamespace, name: &str, tasks: usize) {
    let jobs: Vec<String> = (0..tasks).map(|i| cron_task(i).to_string()).collect();
    let spec = format!(
        "app: {{image: 'shop:1', replicas: 2, sharedSecrets: [APP_SECRET], migration: {{command: [migrate]}}}}\n\
         database: {{engine: postgresql, managed: {{replicas: 1}}}}\n\
         cache: {{backend: redis, replicas: 2, memory: 64Mi}}\n\
         storage: {{volume: {{size: 1Gi, mounts: [{{path: /files}}]}}}}\n\
         jobs: [{}]",
        jobs.join(", ")
    );
    let mut cluster = WebCluster::new(name, serde_saphyr::from_str(&spec).expect("a valid spec"));
    cluster.metadata.namespace = Some(ns.name().into());
    ns.api::<WebCluster>().create(&PostParams::default(), &cluster).await.unwrap();
}

/// Cron task `i` (a yearly schedule, so no Job of it runs during a test).
fn cron_task(i: usize) -> serde_json::Value {
    json!({"name": format!("task{i}"), "schedule": "0 0 1 1 *", "command": ["run", i.to_string()]})
}

/// A Service labelled as a child of `cluster` but controlled by a ConfigMap:
/// the child of another owner, which the operator must never touch. Returns
/// its resourceVersion.
async fn decoy(ns: &TestNamespace, cluster: &str) -> String {
    let owner = ConfigMap {
        metadata: ObjectMeta { name: Some("decoy-owner".into()), ..ObjectMeta::default() },
        ..ConfigMap::default()
    };
    let owner = match ns.api::<ConfigMap>().create(&PostParams::default(), &owner).await {
        Ok(created) => created,
        Err(_) => ns.api::<ConfigMap>().get("decoy-owner").await.unwrap(),
    };
    let labels = [(MANAGED_BY_LABEL, MANAGER), (INSTANCE_LABEL, cluster)];
    let service: Service = serde_json::from_value(json!({
        "metadata": {
            "name": format!("{cluster}-decoy"),
            "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            "ownerReferences": [OwnerReference {
                api_version: "v1".into(), kind: "ConfigMap".into(), name: "decoy-owner".into(),
                uid: owner.uid().unwrap(), controller: Some(true), block_owner_deletion: None,
            }],
        },
        "spec": {"ports": [{"port": 80}]},
    }))
    .unwrap();
    let created = ns.api::<Service>().create(&PostParams::default(), &service).await.unwrap();
    created.resource_version().unwrap()
}

/// Kind and metadata of every object in the namespace with the operator's
/// label, of every kind the builder makes (one whose API the cluster does not serve has none).
async fn managed_objects(ns: &TestNamespace) -> Vec<(String, ObjectMeta)> {
    let params = ListParams::default().labels(&managed_selector(None));
    let mut found = Vec::new();
    macro_rules! list {
        ($($kind:ident),* $(,)?) => {$(
            match ns.api::<$kind>().list_metadata(&params).await {
                Ok(list) => found.extend(list.items.into_iter().map(|o| (stringify!($kind).to_string(), o.metadata))),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => panic!("listing {}: {e}", stringify!($kind)),
            }
        )*};
    }
    webcluster::with_child_kinds!(list);
    found
}

/// The generated values of each WebCluster that has them.
async fn passwords(ns: &TestNamespace, clusters: &[String]) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
    let mut all = BTreeMap::new();
    for cluster in clusters {
        if let Some(secret) = ns.api::<Secret>().get_opt(&names::credentials(cluster)).await.unwrap() {
            let data = secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
            all.insert(cluster.clone(), data);
        }
    }
    all
}

/// What must hold after a fault: each WebCluster Ready for its generation,
/// its app figures those of its Deployment, exactly its children; the decoy
/// as it was; the passwords as they were. `Err` says the first that does not.
async fn converged(
    ns: &TestNamespace,
    clusters: &[String],
    decoy_version: &str,
    before: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
) -> Result<(), String> {
    let mut expected = BTreeSet::new();
    let mut uids = BTreeMap::new();
    for name in clusters {
        let cluster = ns.api::<WebCluster>().get(name).await.map_err(|e| e.to_string())?;
        let generation = cluster.metadata.generation;
        let status = cluster.status.clone().unwrap_or_default();
        if !is_ready(&cluster) || status.observed_generation != generation {
            let ready = harness::conditions::describe(condition(&cluster, "Ready"));
            return Err(format!(
                "{name}: Ready {ready}, generation {generation:?} observed {:?}",
                status.observed_generation
            ));
        }
        let deployment = ns.api::<Deployment>().get(&names::app(name)).await.map_err(|e| e.to_string())?;
        let ready_pods = deployment.status.and_then(|s| s.ready_replicas).unwrap_or(0);
        let app = status.app.unwrap_or_default();
        if app.ready_replicas != ready_pods || deployment.spec.replicas != Some(cluster.spec.app.replicas) {
            return Err(format!(
                "{name}: status says {} app pods ready, the Deployment {ready_pods}",
                app.ready_replicas
            ));
        }
        let desired = children(&cluster, &Plan::offline(&cluster)).unwrap();
        expected.extend(desired.iter().map(|c| (c.kind().to_string(), c.name().to_string())));
        uids.insert(name.clone(), cluster.uid().unwrap());
    }
    let mut live = BTreeSet::new();
    for (kind, meta) in managed_objects(ns).await {
        let name = meta.name.clone().unwrap_or_default();
        let controller = meta.owner_references.iter().flatten().find(|o| o.controller == Some(true));
        if controller.is_some_and(|o| o.kind != "WebCluster")
            || (kind == "PersistentVolumeClaim" && name.starts_with("data-"))
        {
            continue; // the decoy, StatefulSet claims
        }
        let instance = meta.labels.as_ref().and_then(|l| l.get(INSTANCE_LABEL)).cloned().unwrap_or_default();
        let owner_ok = controller.is_none_or(|o| uids.get(&instance) == Some(&o.uid));
        if !owner_ok || !live.insert((kind.clone(), name.clone())) {
            return Err(format!("{kind} {name}: not controlled by WebCluster {instance}, or listed twice"));
        }
    }
    if live != expected {
        let extra: Vec<_> = live.difference(&expected).collect();
        let missing: Vec<_> = expected.difference(&live).collect();
        return Err(format!("children differ: orphaned or duplicated {extra:?}, missing {missing:?}"));
    }
    let decoy = ns.api::<Service>().get(&format!("{}-decoy", clusters[0])).await.map_err(|e| e.to_string())?;
    if decoy.resource_version().as_deref() != Some(decoy_version) {
        return Err("the decoy Service of another owner was changed".into());
    }
    let now = passwords(ns, clusters).await;
    for (cluster, values) in before {
        if now.get(cluster) != Some(values) {
            return Err(format!("the generated Secret of {cluster} changed"));
        }
    }
    Ok(())
}

/// Waits for [`converged`] within [`CONVERGE_BOUND`] from `since` (the end
/// of the fault, which began at `began`); prints and returns the time it took.
async fn wait_converged(
    fault: &str,
    (began, since): (Instant, Instant),
    ns: &TestNamespace,
    clusters: &[String],
    decoy_version: &str,
    before: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
) -> Duration {
    let last = std::cell::RefCell::new(String::new());
    let result = poll(&format!("convergence after {fault}"), CONVERGE_BOUND, || {
        let (check, last) = (converged(ns, clusters, decoy_version, before), &last);
        async move { check.await.map_err(|why| *last.borrow_mut() = why).is_ok() }
    })
    .await;
    if let Err(e) = result {
        panic!("{e} (bound {CONVERGE_BOUND:?}); last: {}", last.borrow());
    }
    let took = since.elapsed();
    let lasted = since - began;
    eprintln!("FAULT {fault}: lasted {lasted:.1?}, converged {took:.1?} after it ended (bound {CONVERGE_BOUND:?})");
    took
}

/// Several WebClusters Ready under `operator`, with the decoy and their passwords.
async fn ready_clusters(
    ns: &TestNamespace,
    count: usize,
    tasks: usize,
) -> (Vec<String>, String, BTreeMap<String, BTreeMap<String, Vec<u8>>>) {
    let clusters: Vec<String> = (0..count).map(|i| format!("c{i}")).collect();
    let decoy_version = decoy(ns, &clusters[0]).await;
    for name in &clusters {
        create(ns, name, tasks).await;
    }
    let api = ns.api::<WebCluster>();
    for name in &clusters {
        harness::conditions::wait_ready(&api, name).await;
    }
    let before = passwords(ns, &clusters).await;
    assert_eq!(before.len(), count, "every WebCluster has its generated Secret");
    (clusters, decoy_version, before)
}

#[tokio::test]
async fn kube_apiserver_restarted_mid_reconcile_of_several_webclusters() {
    let _serial = SERIAL.lock().await;
    let ns = setup("apiserver-restart").await;
    let _operator = OperatorProcess::start(ns.name(), "operator", "info").await;
    let clusters: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    let decoy_version = decoy(&ns, &clusters[0]).await;
    for name in &clusters {
        create(&ns, name, 3).await;
    }
    // The restart begins once the first children exist, before every WebCluster is Ready.
    let secrets = ns.api::<Secret>();
    poll("the first generated Secret", READY_TIMEOUT, || {
        let secrets = secrets.clone();
        async move { secrets.get_opt("c0-credentials").await.is_ok_and(|s| s.is_some()) }
    })
    .await
    .unwrap();
    let before = passwords(&ns, &clusters).await;
    let api = ns.api::<WebCluster>();
    let ready_before = futures::future::join_all(clusters.iter().map(|n| api.get(n))).await;
    let all_ready = ready_before.iter().all(|c| c.as_ref().is_ok_and(is_ready));
    assert!(!all_ready, "the restart must come while the WebClusters are still being reconciled");
    let began = Instant::now();
    restart_component("kube-apiserver", "KILL");
    let since = (began, Instant::now());
    wait_converged("kube-apiserver restart (SIGKILL)", since, &ns, &clusters, &decoy_version, &before).await;
}

#[tokio::test]
async fn etcd_restarted() {
    let _serial = SERIAL.lock().await;
    let ns = setup("etcd-restart").await;
    let _operator = OperatorProcess::start(ns.name(), "operator", "info").await;
    let (clusters, decoy_version, before) = ready_clusters(&ns, 2, 2).await;
    // A change in flight when etcd dies: a cron task more. Not a pod more: kwok
    // never retries a pod's Ready patch that failed during the outage.
    let patch = Patch::Merge(json!({"spec": {"jobs": (0..3).map(cron_task).collect::<Vec<_>>()}}));
    for name in &clusters {
        ns.api::<WebCluster>().patch(name, &PatchParams::default(), &patch).await.unwrap();
    }
    let began = Instant::now();
    restart_component("etcd", "KILL");
    let since = (began, Instant::now());
    wait_converged("etcd restart (SIGKILL)", since, &ns, &clusters, &decoy_version, &before).await;
}

/// Cron tasks of the large WebCluster: the most a spec takes.
const TASKS: usize = 32;

#[tokio::test]
async fn operator_killed_mid_apply_of_a_large_webcluster() {
    let _serial = SERIAL.lock().await;
    let ns = setup("operator-kill").await;
    let clusters = vec!["big".to_string()];
    let decoy_version = decoy(&ns, "big").await;
    let mut first = OperatorProcess::start(ns.name(), "first", "info").await;
    let cron_jobs = ns.api::<CronJob>();
    let mut created = watcher(cron_jobs.clone(), watcher::Config::default()).applied_objects().boxed();
    create(&ns, "big", TASKS).await;
    // SIGKILL at the first CronJob: the Secret, claims and Services exist, most CronJobs do not.
    let first_cron_job = tokio::time::timeout(READY_TIMEOUT, created.next()).await;
    let began = Instant::now();
    first.process.kill();
    assert!(matches!(first_cron_job, Ok(Some(Ok(_)))), "a CronJob was created: {first_cron_job:?}");
    let left = cron_jobs.list_metadata(&ListParams::default()).await.unwrap().items.len();
    eprintln!("the operator was killed with {left} of {TASKS} CronJobs created");
    assert!(left < TASKS, "the kill came after the whole apply");
    let before = passwords(&ns, &clusters).await;
    assert_eq!(before.len(), 1, "the generated Secret was written before the kill");
    let _second = OperatorProcess::start(ns.name(), "second", "info").await;
    let since = (began, Instant::now());
    wait_converged("operator SIGKILL mid-apply (32 cron tasks)", since, &ns, &clusters, &decoy_version, &before).await;
}

#[tokio::test]
async fn watches_that_expire_relist_and_repair_what_they_missed() {
    let _serial = SERIAL.lock().await;
    let ns = setup("watch-410").await;
    let operator = OperatorProcess::start(ns.name(), "operator", "info,kube_runtime::watcher=debug").await;
    let (clusters, decoy_version, before) = ready_clusters(&ns, 2, 2).await;
    // Frozen, the operator misses these changes; the API server restarted
    // after them has a new watch cache, so its watches resume from a
    // resourceVersion that is gone: 410, relist.
    let began = Instant::now();
    operator.process.pause();
    ns.api::<Service>().delete(&names::app("c0"), &DeleteParams::default()).await.unwrap();
    let scale = Patch::Merge(json!({"spec": {"replicas": 0}}));
    ns.api::<Deployment>().patch(&names::app("c1"), &PatchParams::default(), &scale).await.unwrap();
    restart_component("kube-apiserver", "KILL");
    operator.process.resume();
    let since = (began, Instant::now());
    wait_converged("watch expired (410 Gone) and relisted", since, &ns, &clusters, &decoy_version, &before).await;
    let log = operator.process.log();
    let gone = log.lines().filter(|l| l.contains("code: 410")).count();
    assert!(gone > 0, "the operator's watches were answered 410 Gone:\n{}", operator.process.log_tail());
    eprintln!("{gone} watch(es) answered 410 Gone and relisted");
}

#[tokio::test]
async fn children_edited_by_hand_while_the_operator_is_down() {
    let _serial = SERIAL.lock().await;
    let ns = setup("hand-edits").await;
    let mut first = OperatorProcess::start(ns.name(), "first", "info").await;
    let (clusters, decoy_version, before) = ready_clusters(&ns, 2, 2).await;
    let config = ns.api::<ConfigMap>().get(&names::cache_config("c0")).await.unwrap();
    let database_pods = ns.api::<StatefulSet>().get(&names::database("c1")).await.unwrap().spec.replicas;
    let began = Instant::now();
    assert!(first.process.stop(Duration::from_secs(10)), "the operator stops on SIGTERM");
    let scale = Patch::Merge(json!({"spec": {"replicas": 0}}));
    ns.api::<Deployment>().patch(&names::app("c0"), &PatchParams::default(), &scale).await.unwrap();
    let edit = Patch::Merge(
        json!({"data": {"redis.conf": "maxmemory 1gb\n"}, "metadata": {"labels": {INSTANCE_LABEL: "c0"}}}),
    );
    ns.api::<ConfigMap>().patch(&names::cache_config("c0"), &PatchParams::default(), &edit).await.unwrap();
    ns.api::<PodDisruptionBudget>().delete(&names::app("c1"), &DeleteParams::default()).await.unwrap();
    ns.api::<StatefulSet>()
        .patch(&names::database("c1"), &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 0}})))
        .await
        .unwrap();
    let _second = OperatorProcess::start(ns.name(), "second", "info").await;
    let since = (began, Instant::now());
    wait_converged("children edited while the operator was down", since, &ns, &clusters, &decoy_version, &before).await;
    let repaired = ns.api::<ConfigMap>().get(&names::cache_config("c0")).await.unwrap();
    assert_eq!(repaired.data, config.data, "the hand-edited ConfigMap is as the operator wrote it");
    let database = ns.api::<StatefulSet>().get(&names::database("c1")).await.unwrap();
    assert_eq!(database.spec.replicas, database_pods, "the database StatefulSet scaled back");
}
