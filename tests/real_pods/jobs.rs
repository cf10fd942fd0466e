//! Jobs on the real node: a CronJob scheduled every minute runs for real; a
//! task that runs longer than its period never overlaps itself (from the
//! Jobs' start and completion times); a migration Job runs for real, and
//! completes before the app rolls to a new image.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};
use serde_json::json;
use webcluster::desired::meta::{Component, selector_string};
use webcluster::desired::names;

use crate::harness::pods::{APP_IMAGE, REAL_NODE, describe_pods, node_of, tag_image};
use crate::{RealTest, START_TIMEOUT, real_app};

const CLUSTER: &str = "tasks";
/// The slow task runs this long, more than its one-minute period.
pub(crate) const SLOW_SECONDS: u64 = 75;
/// Bound of the cron test: up to a minute to the first schedule, the slow
/// run, the second run's start, pod start-up on a busy node.
const CRON_TIMEOUT: Duration = Duration::from_secs(60 + SLOW_SECONDS + 120);
/// The app image's second tag, for the rollout.
const APP_IMAGE_V2: &str = "localhost/webcluster/php-apache:2";

/// The Jobs CronJob `cron_job` created, oldest first.
async fn jobs_of(jobs: &Api<Job>, cron_job: &str) -> Vec<Job> {
    let mut owned: Vec<Job> = jobs
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|j| j.owner_references().iter().any(|o| o.kind == "CronJob" && o.name == cron_job))
        .collect();
    owned.sort_by_key(|j| j.status.as_ref().and_then(|s| s.start_time.clone()).map(|t| t.0));
    owned
}

pub(crate) fn start_time(job: &Job) -> Option<Timestamp> {
    job.status.as_ref()?.start_time.as_ref().map(|t| t.0)
}

pub(crate) fn completion_time(job: &Job) -> Option<Timestamp> {
    job.status.as_ref()?.completion_time.as_ref().map(|t| t.0)
}

pub(crate) fn succeeded(job: &Job) -> bool {
    job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) >= 1
}

/// The finished pod of Job `job`: it ran on the real node and exited 0; returns its log.
pub(crate) async fn finished_pod_log(pods: &Api<Pod>, job: &str) -> String {
    let list = pods.list(&ListParams::default().labels(&format!("job-name={job}"))).await.expect("Job pods");
    let pod = list
        .items
        .into_iter()
        .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
        .unwrap_or_else(|| panic!("Job {job} has a Succeeded pod"));
    assert_eq!(node_of(&pod), Some(REAL_NODE), "Job {job} ran on the real node");
    let exit = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    assert_eq!(exit, Some(0), "Job {job}'s container exited 0");
    pods.logs(&pod.name_any(), &LogParams::default()).await.unwrap_or_else(|e| panic!("logs of Job {job}: {e}"))
}

/// Waits until `check` holds for the Jobs of `cron_job`; returns them.
pub(crate) async fn wait_jobs(test: &RealTest, cron_job: &str, what: &str, check: impl Fn(&[Job]) -> bool) -> Vec<Job> {
    let jobs = test.ns.api::<Job>();
    let start = Instant::now();
    loop {
        let owned = jobs_of(&jobs, cron_job).await;
        if check(&owned) {
            return owned;
        }
        assert!(
            start.elapsed() < CRON_TIMEOUT,
            "timed out after {CRON_TIMEOUT:?} waiting for {what}; jobs: {:?}; pods: {}",
            owned.iter().map(|j| (j.name_any(), start_time(j), completion_time(j))).collect::<Vec<_>>(),
            describe_pods(&test.pods()).await
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Every-minute CronJobs on the real node (bound: CRON_TIMEOUT, about 4 minutes; usually 2.5).
#[tokio::test]
async fn cron_jobs_run_every_minute_and_never_overlap() {
    let test = RealTest::start("real-cron", 0, 0).await;
    let slow = format!("echo start; sleep {SLOW_SECONDS}; echo end");
    test.apply(
        CLUSTER,
        json!({
            "app": real_app(0),
            "jobs": [
                {"name": "tick", "schedule": "* * * * *", "command": ["sh", "-c", "echo tick as uid $(id -u)"]},
                {"name": "slow", "schedule": "* * * * *", "command": ["sh", "-c", slow]},
            ],
        }),
    )
    .await;
    let (tick, slow) = (names::cron_task(CLUSTER, "tick"), names::cron_task(CLUSTER, "slow"));

    let ran = wait_jobs(&test, &tick, "a tick Job to succeed", |jobs| jobs.iter().any(succeeded)).await;
    let first = ran.iter().find(|j| succeeded(j)).expect("a succeeded tick Job");
    let log = finished_pod_log(&test.pods(), &first.name_any()).await;
    assert!(log.contains("tick as uid 33"), "the tick task ran as the app's uid: {log}");
    eprintln!("cron: tick Job {} succeeded after {:.0}s", first.name_any(), test.elapsed());

    // The second run of the slow task starts only once the first completed.
    let runs = wait_jobs(&test, &slow, "a second slow Job to start", |jobs| {
        jobs.len() >= 2 && jobs.iter().all(|j| start_time(j).is_some())
    })
    .await;
    let (one, two) = (&runs[0], &runs[1]);
    let one_done = completion_time(one)
        .unwrap_or_else(|| panic!("{} completed before {} started", one.name_any(), two.name_any()));
    let (one_start, two_start) = (start_time(one).expect("started"), start_time(two).expect("started"));
    assert!(
        one_done <= two_start,
        "no overlap: {} ran {one_start}..{one_done}, {} started {two_start}",
        one.name_any(),
        two.name_any()
    );
    let took = one_done.duration_since(one_start).as_secs();
    assert!(took > 60, "the slow task ran longer than its period: {took}s");
    let log = finished_pod_log(&test.pods(), &one.name_any()).await;
    assert!(log.contains("start") && log.contains("end"), "the slow task ran to its end: {log}");
    eprintln!(
        "cron: slow Job {} ran {one_start}..{one_done} ({took}s), {} started {two_start}; done after {:.0}s",
        one.name_any(),
        two.name_any(),
        test.elapsed()
    );
}

/// A migration before a new image rolls out (bound: about 2 minutes).
#[tokio::test]
async fn a_migration_runs_before_the_app_rolls_to_a_new_image() {
    let test = RealTest::start("real-migration", 0, 0).await;
    tag_image(APP_IMAGE, APP_IMAGE_V2);
    let mut spec = json!({"app": real_app(2)});
    spec["app"]["migration"] =
        json!({"command": ["sh", "-c", "echo migrating for $(hostname); sleep 3; echo migrated"]});
    test.apply(CLUSTER, spec.clone()).await;
    test.wait_ready(CLUSTER, START_TIMEOUT).await;
    test.ready_app_pods(CLUSTER, 2).await;
    let jobs = test.ns.api::<Job>();
    let first = jobs.get(&names::migration(CLUSTER, APP_IMAGE)).await.expect("the first image's migration Job");
    assert!(succeeded(&first), "the first migration succeeded");
    eprintln!("migration: first image Ready after {:.0}s", test.elapsed());

    spec["app"]["image"] = json!(APP_IMAGE_V2);
    test.apply(CLUSTER, spec).await;
    let deployments = test.ns.api::<Deployment>();
    let app = names::app(CLUSTER);
    let selector = selector_string(CLUSTER, Component::App);
    let pods = test.pods();
    let start = Instant::now();
    // Rolled: every app pod runs the new image and is Ready.
    let rolled = loop {
        let list = pods.list(&ListParams::default().labels(&selector)).await.expect("app pods").items;
        let new: Vec<Pod> = list.into_iter().filter(|p| image_of(p) == Some(APP_IMAGE_V2)).collect();
        let deployment = deployments.get(&app).await.expect("the app Deployment");
        let status = deployment.status.unwrap_or_default();
        if status.updated_replicas == Some(2)
            && status.ready_replicas == Some(2)
            && status.replicas == Some(2)
            && new.len() >= 2
        {
            break new;
        }
        assert!(start.elapsed() < START_TIMEOUT, "the rollout to {APP_IMAGE_V2}; pods: {}", describe_pods(&pods).await);
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let job_name = names::migration(CLUSTER, APP_IMAGE_V2);
    let job = jobs.get(&job_name).await.expect("the new image's migration Job");
    assert!(succeeded(&job), "the new image's migration succeeded");
    let log = finished_pod_log(&pods, &job_name).await;
    assert!(log.contains("migrated"), "the migration ran to its end: {log}");
    let done = completion_time(&job).expect("a completion time");
    for pod in &rolled {
        let created = pod.metadata.creation_timestamp.as_ref().expect("a creation time").0;
        assert!(
            done <= created,
            "{} ({APP_IMAGE_V2}) was created at {created}, after the migration completed at {done}",
            pod.name_any()
        );
    }
    eprintln!("migration: rolled to {APP_IMAGE_V2} after its migration, done after {:.0}s", test.elapsed());
}

fn image_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.containers.first()?.image.as_deref()
}
