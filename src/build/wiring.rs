//! The wiring contract: the `WEBCLUSTER_*` environment, the shared volume and
//! the pod settings every app, migration and cron container gets alike.

use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, PersistentVolumeClaimVolumeSource, PodSpec, SecretKeySelector, Volume, VolumeMount,
};

use super::credentials::{DSN_PARTS, Endpoint, SHARED_PREFIX};
use super::meta::{Context, restricted_container, restricted_pod};
use super::{cache, http_cache, names, storage};

/// Name of the shared files volume in pod specs.
const FILES_VOLUME: &str = "files";

/// The operator's environment variables, in contract order. They precede the
/// user's `env`, so `$(WEBCLUSTER_...)` references there expand.
pub fn contract_env(ctx: &Context) -> Vec<EnvVar> {
    let mut env = Vec::new();
    if let Some(db) = &ctx.spec.database {
        env.push(plain("WEBCLUSTER_DB_ENGINE", super::database::engine_name(db.engine)));
        for endpoint in [Endpoint::Write, Endpoint::Read] {
            for part in DSN_PARTS {
                let prefix = endpoint.key_prefix();
                let var = format!("WEBCLUSTER_DB_{}_{}", prefix.to_uppercase(), part.to_uppercase());
                env.push(from_secret(&var, &names::credentials(ctx.name), &format!("{prefix}-{part}")));
            }
        }
    }
    if let Some(spec) = &ctx.spec.cache {
        env.push(plain("WEBCLUSTER_CACHE_BACKEND", cache::backend_name(spec.backend)));
        env.push(plain("WEBCLUSTER_CACHE_URL", &cache::url(ctx, spec)));
        env.push(plain("WEBCLUSTER_CACHE_HOSTS", &cache::hosts(ctx, spec).join(",")));
    }
    env.extend(storage::env(ctx));
    if ctx.spec.http_cache.is_some() {
        env.push(plain("WEBCLUSTER_HTTP_CACHE_URL", &http_cache::url(ctx)));
    }
    for name in &ctx.spec.app.shared_secrets {
        env.push(from_secret(name, &names::credentials(ctx.name), &format!("{SHARED_PREFIX}{name}")));
    }
    env
}

/// An environment variable with a literal value.
pub fn plain(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

/// An environment variable read from a Secret key.
pub fn from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret.into(), key: key.into(), optional: None }),
            ..EnvVarSource::default()
        }),
    }
}

/// The app's container as app, migration and cron pods run it: image, command,
/// environment, volumes and security context. Probes and ports are the app's.
pub fn workload_container(ctx: &Context, image: &str, command: Option<Vec<String>>) -> Container {
    let app = &ctx.spec.app;
    let mut env = contract_env(ctx);
    env.extend(app.env.iter().cloned());
    let args = if command.is_some() { None } else { app.args.clone() };
    Container {
        name: "app".into(),
        image: Some(image.into()),
        command: command.or_else(|| app.command.clone()),
        args,
        env: Some(env),
        env_from: (!app.env_from.is_empty()).then(|| app.env_from.clone()),
        resources: app.resources.clone(),
        volume_mounts: non_empty(volume_mounts(ctx)),
        security_context: Some(app.security_context.clone().unwrap_or_else(restricted_container)),
        ..Container::default()
    }
}

fn volume_mounts(ctx: &Context) -> Vec<VolumeMount> {
    let mut mounts: Vec<VolumeMount> = storage::shared_mounts(ctx)
        .iter()
        .map(|m| VolumeMount {
            name: FILES_VOLUME.into(),
            mount_path: m.path.clone(),
            sub_path: m.sub_path.clone(),
            ..VolumeMount::default()
        })
        .collect();
    mounts.extend(ctx.spec.app.pod.iter().flat_map(|p| p.volume_mounts.iter().cloned()));
    mounts
}

/// The pod spec app, migration and cron pods share, around `container`.
pub fn workload_pod(ctx: &Context, container: Container, restart_policy: &str) -> PodSpec {
    let pod = ctx.spec.app.pod.clone().unwrap_or_default();
    let mut volumes = Vec::new();
    if let Some(claim) = storage::claim_name(ctx) {
        volumes.push(Volume {
            name: FILES_VOLUME.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource { claim_name: claim, read_only: None }),
            ..Volume::default()
        });
    }
    volumes.extend(pod.volumes);
    PodSpec {
        containers: vec![container],
        restart_policy: Some(restart_policy.into()),
        volumes: non_empty(volumes),
        security_context: Some(pod.security_context.unwrap_or_else(|| restricted_pod(None))),
        // Apps need no API access unless the user gives them an account.
        automount_service_account_token: pod.service_account_name.is_none().then_some(false),
        service_account_name: pod.service_account_name,
        image_pull_secrets: non_empty(pod.image_pull_secrets),
        node_selector: (!pod.node_selector.is_empty()).then_some(pod.node_selector),
        tolerations: non_empty(pod.tolerations),
        affinity: pod.affinity,
        ..PodSpec::default()
    }
}

/// `None` for an empty list, so the rendered object has no empty fields.
pub fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}
