//! Pods the API server refused to create for the WebCluster's Jobs (Pod
//! Security Admission, a ResourceQuota). A Job's status says nothing of it:
//! only its controller's FailedCreate Events do. Read only for a Job that
//! shows no pod at all, so a healthy cluster costs no request here.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use kube::{Api, Client};

use super::Snapshot;
use crate::controller::error::ApiError;

/// The Jobs whose pods may have been refused: the migration Job while it has
/// no pod, and every Job a CronJob has active.
pub fn suspects(snapshot: &Snapshot) -> Vec<String> {
    let migration =
        snapshot.migration_job.iter().filter(|job| without_pods(job)).filter_map(|j| j.metadata.name.clone());
    let cron = snapshot
        .cron_jobs
        .values()
        .filter_map(|cron| cron.status.as_ref()?.active.clone())
        .flatten()
        .filter_map(|reference| reference.name);
    migration.chain(cron).collect()
}

/// Of `jobs`, those whose newest pod creation the API server refused, by name, with its words.
pub async fn refused_jobs(
    client: &Client,
    namespace: &str,
    jobs: &[String],
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut refused = BTreeMap::new();
    for job in jobs {
        if let Some(words) = refusal(client, namespace, job).await? {
            refused.insert(job.clone(), words);
        }
    }
    Ok(refused)
}

/// A Job still running with no pod active, ready, done or failed.
fn without_pods(job: &Job) -> bool {
    let Some(status) = &job.status else { return true };
    let finished = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"));
    let pods = [status.active, status.ready, status.succeeded, status.failed].into_iter().flatten().sum::<i32>();
    !finished && pods == 0
}

/// The API's words of the Job's newest FailedCreate Event, unless a pod was
/// created after it.
async fn refusal(client: &Client, namespace: &str, job: &str) -> Result<Option<String>, ApiError> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let selector = format!("involvedObject.kind=Job,involvedObject.name={job}");
    let list = events
        .list(&ListParams::default().fields(&selector))
        .await
        .map_err(|e| ApiError::new("list Events of", "Job", namespace, job, e))?;
    Ok(newest_refusal(list.items))
}

/// The message of the newest pod-creation Event if it is a FailedCreate.
fn newest_refusal(events: Vec<Event>) -> Option<String> {
    let creation = |e: &Event| matches!(e.reason.as_deref(), Some("FailedCreate" | "SuccessfulCreate"));
    let newest = events.into_iter().filter(creation).max_by_key(|e| (when(e), e.count.unwrap_or(1)))?;
    (newest.reason.as_deref() == Some("FailedCreate")).then(|| newest.message.unwrap_or_default())
}

/// When an Event last happened, in seconds, whichever API wrote it.
fn when(event: &Event) -> i64 {
    let series = event.series.as_ref().and_then(|s| s.last_observed_time.as_ref()).map(|t| t.0);
    let time = series
        .or(event.event_time.as_ref().map(|t| t.0))
        .or(event.last_timestamp.as_ref().map(|t| t.0))
        .or(event.metadata.creation_timestamp.as_ref().map(|t| t.0));
    time.map_or(0, |t| t.as_millisecond())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn event(reason: &str, second: i64) -> Event {
        Event {
            reason: Some(reason.into()),
            message: Some(format!("{reason} at {second}")),
            last_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::from_second(second).unwrap_or_default())),
            ..Event::default()
        }
    }

    #[test]
    fn the_newest_creation_event_decides() {
        assert_eq!(
            newest_refusal(vec![event("SuccessfulCreate", 1), event("FailedCreate", 2)]).as_deref(),
            Some("FailedCreate at 2")
        );
        assert_eq!(newest_refusal(vec![event("FailedCreate", 1), event("SuccessfulCreate", 2)]), None);
        assert_eq!(newest_refusal(vec![event("Completed", 3)]), None);
    }

    #[test]
    fn a_job_with_a_pod_is_not_suspect() {
        use k8s_openapi::api::batch::v1::JobStatus;
        assert!(without_pods(&Job::default()));
        let running = Job { status: Some(JobStatus { active: Some(1), ..JobStatus::default() }), ..Job::default() };
        assert!(!without_pods(&running));
    }
}
