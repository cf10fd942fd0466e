//! The local control plane (`hack/cluster.sh`) behaves like a real cluster for
//! what the operator needs: nodes in zones, Deployments, StatefulSets with
//! bound claims, garbage collection, Jobs and CronJobs that complete.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

#[path = "harness/mod.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Node, PersistentVolumeClaim, PersistentVolumeClaimSpec, Pod, PodSpec, PodTemplateSpec,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use harness::cluster::{TestNamespace, cluster, kubectl_ok};
use harness::wait::wait_for;

const ZONE: &str = "topology.kubernetes.io/zone";

fn labels(app: &str) -> BTreeMap<String, String> {
    [("app".to_string(), app.to_string())].into()
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_string()), ..Default::default() }
}

fn pod_template(app: &str, restart_policy: Option<&str>) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(labels(app)), ..Default::default() }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "main".into(),
                image: Some("registry.example/none:1".into()),
                ..Default::default()
            }],
            restart_policy: restart_policy.map(Into::into),
            ..Default::default()
        }),
    }
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    Deployment {
        metadata: meta(name),
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector { match_labels: Some(labels(name)), ..Default::default() },
            template: pod_template(name, None),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn job_spec(app: &str) -> JobSpec {
    JobSpec { backoff_limit: Some(0), template: pod_template(app, Some("Never")), ..Default::default() }
}

async fn pods_with_label(pods: &Api<Pod>, app: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("app={app}"))).await.map(|list| list.items).unwrap_or_default()
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

#[tokio::test]
async fn three_ready_nodes_in_three_zones() {
    let client = cluster().await;
    let _ns = TestNamespace::new("nodes").await;

    let out = kubectl_ok(&[
        "get",
        "nodes",
        // The kwok nodes; the real node (hack/node.sh) has tests of its own (tests/node.rs).
        "-l",
        "type=kwok",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name} {.metadata.labels.topology\.kubernetes\.io/zone} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
    ]);
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 3, "kubectl get nodes:\n{out}");
    assert!(rows.iter().all(|r| r.len() == 3 && r[2] == "True"), "not all Ready:\n{out}");
    let zones: BTreeSet<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(zones, BTreeSet::from(["zone-a", "zone-b", "zone-c"]), "kubectl get nodes:\n{out}");

    // The typed view agrees, and every node can hold a benchmark's worth of pods.
    let nodes = Api::<Node>::all(client).list(&ListParams::default().labels("type=kwok")).await.unwrap();
    for node in &nodes.items {
        let labels = node.labels();
        assert!(labels.contains_key(ZONE), "{} has no zone", node.name_any());
        assert_eq!(labels.get("kubernetes.io/hostname"), Some(&node.name_any()));
        let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref()).unwrap();
        // The API server canonicalises 1000 to "1k".
        let pods = allocatable.get("pods").map(|q| q.0.as_str());
        assert!(matches!(pods, Some("1k" | "1000")), "{}: allocatable pods {pods:?}", node.name_any());
        assert_eq!(allocatable.get("cpu"), Some(&Quantity("64".into())), "{}", node.name_any());
    }
}

#[tokio::test]
async fn deployment_becomes_ready_and_deleting_it_collects_replicasets_and_pods() {
    let ns = TestNamespace::new("deployment").await;
    let deployments: Api<Deployment> = ns.api();
    let replicasets: Api<ReplicaSet> = ns.api();
    let pods: Api<Pod> = ns.api();

    deployments.create(&PostParams::default(), &deployment("web", 3)).await.unwrap();
    wait_for("Deployment web to have 3 ready replicas", Duration::from_secs(60), || async {
        deployments.get("web").await.ok().and_then(|d| d.status).and_then(|s| s.ready_replicas) == Some(3)
    })
    .await;
    let running = pods_with_label(&pods, "web").await;
    assert_eq!(running.len(), 3);
    assert!(running.iter().all(|p| phase(p) == "Running"), "pods not Running");
    assert!(running.iter().all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()), "pods not scheduled");
    assert_eq!(replicasets.list(&ListParams::default()).await.unwrap().items.len(), 1);

    // Deleting the owner garbage-collects its ReplicaSet, which takes its pods.
    deployments.delete("web", &DeleteParams::background()).await.unwrap();
    wait_for("the ReplicaSet of Deployment web to be collected", Duration::from_secs(60), || async {
        matches!(replicasets.list(&ListParams::default()).await, Ok(l) if l.items.is_empty())
    })
    .await;
    wait_for("the pods of Deployment web to be deleted", Duration::from_secs(60), || async {
        pods_with_label(&pods, "web").await.is_empty()
    })
    .await;
}

#[tokio::test]
async fn statefulset_with_volume_claim_template_binds_its_claim() {
    let ns = TestNamespace::new("statefulset").await;
    let sets: Api<StatefulSet> = ns.api();
    let claims: Api<PersistentVolumeClaim> = ns.api();

    let mut template = pod_template("db", None);
    template.spec.as_mut().unwrap().containers[0].volume_mounts =
        Some(vec![VolumeMount { name: "data".into(), mount_path: "/data".into(), ..Default::default() }]);
    let set = StatefulSet {
        metadata: meta("db"),
        spec: StatefulSetSpec {
            replicas: Some(1),
            service_name: Some("db".into()),
            selector: LabelSelector { match_labels: Some(labels("db")), ..Default::default() },
            template,
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: meta("data"),
                // No storageClassName: the default class `standard` is filled in.
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some([("storage".to_string(), Quantity("1Gi".into()))].into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        },
        ..Default::default()
    };
    sets.create(&PostParams::default(), &set).await.unwrap();

    wait_for("PVC data-db-0 to be Bound", Duration::from_secs(60), || async {
        claims.get("data-db-0").await.ok().and_then(|c| c.status).and_then(|s| s.phase).as_deref() == Some("Bound")
    })
    .await;
    wait_for("StatefulSet db to have 1 ready replica", Duration::from_secs(60), || async {
        sets.get("db").await.ok().and_then(|s| s.status).and_then(|s| s.ready_replicas) == Some(1)
    })
    .await;
    let claim = claims.get("data-db-0").await.unwrap();
    assert_eq!(claim.spec.unwrap().storage_class_name.as_deref(), Some("standard"));
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_its_dependents() {
    let ns = TestNamespace::new("gc").await;
    let maps: Api<ConfigMap> = ns.api();

    let owner = maps
        .create(&PostParams::default(), &ConfigMap { metadata: meta("owner"), ..Default::default() })
        .await
        .unwrap();
    let dependent = ConfigMap {
        metadata: ObjectMeta {
            name: Some("dependent".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: owner.name_any(),
                uid: owner.uid().unwrap(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        ..Default::default()
    };
    maps.create(&PostParams::default(), &dependent).await.unwrap();
    let bystander = maps
        .create(&PostParams::default(), &ConfigMap { metadata: meta("bystander"), ..Default::default() })
        .await
        .unwrap();

    maps.delete("owner", &DeleteParams::background()).await.unwrap();
    wait_for("ConfigMap dependent to be garbage-collected", Duration::from_secs(60), || async {
        matches!(maps.get_opt("dependent").await, Ok(None))
    })
    .await;
    assert_eq!(maps.get("bystander").await.unwrap().uid(), bystander.uid());
}

async fn wait_for_succeeded_job_pod(ns: &TestNamespace, app: &str, job_owner: &str, timeout: Duration) {
    let jobs: Api<Job> = ns.api();
    let pods: Api<Pod> = ns.api();
    wait_for(&format!("a pod of {job_owner} to succeed"), timeout, || async {
        pods_with_label(&pods, app).await.iter().any(|p| phase(p) == "Succeeded")
    })
    .await;
    wait_for(&format!("a Job of {job_owner} to complete"), Duration::from_secs(60), || async {
        jobs.list(&ListParams::default())
            .await
            .is_ok_and(|l| l.items.iter().any(|j| j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) >= 1))
    })
    .await;
}

#[tokio::test]
async fn job_pod_completes() {
    let ns = TestNamespace::new("job").await;
    let jobs: Api<Job> = ns.api();
    jobs.create(
        &PostParams::default(),
        &Job { metadata: meta("once"), spec: Some(job_spec("once")), ..Default::default() },
    )
    .await
    .unwrap();
    wait_for_succeeded_job_pod(&ns, "once", "Job once", Duration::from_secs(60)).await;
}

#[tokio::test]
async fn cronjob_starts_a_job_whose_pod_completes() {
    let ns = TestNamespace::new("cronjob").await;
    let cronjobs: Api<CronJob> = ns.api();
    let jobs: Api<Job> = ns.api();
    let cronjob = CronJob {
        metadata: meta("tick"),
        spec: CronJobSpec {
            schedule: "* * * * *".into(),
            job_template: JobTemplateSpec { metadata: None, spec: Some(job_spec("tick")) },
            ..Default::default()
        },
        ..Default::default()
    };
    cronjobs.create(&PostParams::default(), &cronjob).await.unwrap();

    // The first run is at the next full minute.
    wait_for_succeeded_job_pod(&ns, "tick", "CronJob tick", Duration::from_secs(130)).await;
    let owned_by_cronjob = jobs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .any(|job| job.owner_references().iter().any(|o| o.kind == "CronJob" && o.name == "tick"));
    assert!(owned_by_cronjob, "no Job owned by CronJob tick");
}
