//! The app's container and pod as app, migration and cron pods run them alike:
//! image, command, the wiring environment, the shared volume, the user's pod settings.

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, TopologySpreadConstraint, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::meta::{Component, Parent};
use super::pod::{non_empty, place, restricted_container, restricted_pod};
use super::wiring::contract_env;
use super::{names, storage};

/// Name of the shared files volume in pod specs.
const FILES_VOLUME: &str = "files";

/// The app's container as app, migration and cron pods run it: image, command,
/// environment, volumes and security context. Probes and ports are the app's.
pub fn workload_container(parent: &Parent, image: &str, command: Option<Vec<String>>) -> Container {
    let app = &parent.spec.app;
    let mut env = contract_env(parent);
    env.extend(app.env.iter().cloned());
    let args = if command.is_some() { None } else { app.args.clone() };
    Container {
        name: names::APP_CONTAINER.into(),
        image: Some(image.into()),
        command: command.or_else(|| app.command.clone()),
        args,
        env: Some(env),
        env_from: (!app.env_from.is_empty()).then(|| app.env_from.clone()),
        resources: app.resources.clone(),
        volume_mounts: non_empty(volume_mounts(parent)),
        security_context: Some(app.security_context.clone().unwrap_or_else(restricted_container)),
        ..Container::default()
    }
}

fn volume_mounts(parent: &Parent) -> Vec<VolumeMount> {
    let mut mounts: Vec<VolumeMount> = storage::shared_mounts(parent)
        .iter()
        .map(|m| VolumeMount {
            name: FILES_VOLUME.into(),
            mount_path: m.path.clone(),
            sub_path: m.sub_path.clone(),
            ..VolumeMount::default()
        })
        .collect();
    mounts.extend(parent.spec.app.pod.iter().flat_map(|p| p.volume_mounts.iter().cloned()));
    mounts
}

/// The pod template of app, migration and cron pods: the user's pod labels
/// under the operator's, around [`workload_pod`].
pub fn workload_template(
    parent: &Parent,
    component: Component,
    container: Container,
    restart_policy: &str,
    default_spread: Vec<TopologySpreadConstraint>,
) -> PodTemplateSpec {
    let mut labels = parent.spec.app.pod.as_ref().map(|p| p.labels.clone()).unwrap_or_default();
    labels.extend(parent.labels(component, parent.name));
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
        spec: Some(workload_pod(parent, container, restart_policy, default_spread)),
    }
}

/// A Job that runs `container` once (the migration, a cron task's run). A
/// failed run is retried in the same pod (OnFailure): NetworkPolicy
/// enforcement admits a pod's address only some time after it starts, so a
/// run that connects at once can be refused, and a new pod per retry would
/// race it every time; the same pod's retry, 10 s later, is admitted.
pub fn run_once(
    parent: &Parent,
    component: Component,
    container: Container,
    backoff_limit: i32,
    active_deadline_seconds: i64,
) -> JobSpec {
    JobSpec {
        backoff_limit: Some(backoff_limit),
        active_deadline_seconds: Some(active_deadline_seconds),
        template: workload_template(parent, component, container, "OnFailure", Vec::new()),
        ..JobSpec::default()
    }
}

/// The pod spec app, migration and cron pods share, around `container`, placed
/// as `spec.app.pod` says (`default_spread` where it gives no topology spread).
fn workload_pod(
    parent: &Parent,
    container: Container,
    restart_policy: &str,
    default_spread: Vec<TopologySpreadConstraint>,
) -> PodSpec {
    let pod = parent.spec.app.pod.clone().unwrap_or_default();
    let mut volumes = Vec::new();
    if let Some(claim) = storage::claim_name(parent) {
        volumes.push(Volume {
            name: FILES_VOLUME.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource { claim_name: claim, read_only: None }),
            ..Volume::default()
        });
    }
    volumes.extend(pod.volumes);
    let spec = PodSpec {
        containers: vec![container],
        restart_policy: Some(restart_policy.into()),
        volumes: non_empty(volumes),
        security_context: Some(pod.security_context.unwrap_or_else(|| restricted_pod(None))),
        // Apps need no API access unless the user gives them an account.
        automount_service_account_token: pod.service_account_name.is_none().then_some(false),
        service_account_name: pod.service_account_name,
        image_pull_secrets: non_empty(pod.image_pull_secrets),
        ..PodSpec::default()
    };
    place(spec, Some(&pod.placement), None, default_spread)
}
