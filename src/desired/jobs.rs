//! Cron tasks: one CronJob each, never overlapping itself, in the app's pod template.

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobTemplateSpec};

use super::meta::{Component, Parent};
use super::workload::{run_once, workload_container};
use super::{Child, Plan, names};
use crate::api::CronTaskSpec;

/// Seconds after a missed start time within which a run may still start.
const STARTING_DEADLINE_SECONDS: i64 = 300;

/// One CronJob per task. While a migration runs they are suspended, so no task
/// sees a half-migrated database.
pub fn objects(parent: &Parent, plan: &Plan) -> Vec<Child> {
    let image = &plan.serving_image;
    parent.spec.jobs.iter().map(|task| cron_job(parent, task, image, plan.migration_running)).collect()
}

fn cron_job(parent: &Parent, task: &CronTaskSpec, image: &str, migration_running: bool) -> Child {
    let container = workload_container(parent, image, Some(task.command.clone()));
    CronJob {
        metadata: parent.meta(names::cron_task(parent.name, &task.name), Component::Cron, parent.name),
        spec: CronJobSpec {
            schedule: task.schedule.clone(),
            time_zone: task.time_zone.clone(),
            // Never two runs at once, on any node.
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(STARTING_DEADLINE_SECONDS),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            suspend: Some(task.suspend || migration_running),
            job_template: JobTemplateSpec {
                metadata: None,
                spec: Some(run_once(parent, Component::Cron, container, 0, task.active_deadline_seconds)),
            },
        },
        ..CronJob::default()
    }
    .into()
}
