//! Shared sessions and cache: memcached nodes (clients hash over the full list)
//! or a Redis primary with replicas that follow it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, EnvVar, PodTemplateSpec, ResourceRequirements, Service, ServicePort,
    ServiceSpec, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{Component, POD_NAME_LABEL, Parent};
use super::pod::{
    config_map_volume, disruption_budget, empty_dir_volume, plain, pod_name_env, read_only_container, resources,
    service_pod, tcp_probe,
};
use super::storage::claim_template;
use super::{Child, names};
use crate::api::formats::bytes_quantity;
use crate::api::{CacheBackend, CacheSpec};

/// Default images: the official ones.
const MEMCACHED_IMAGE: &str = "memcached:1.6-alpine";
const REDIS_IMAGE: &str = "redis:8.0-alpine";
/// The uid the official images run as (numeric, so runAsNonRoot can be verified).
const MEMCACHED_UID: i64 = 11211;
const REDIS_UID: i64 = 999;
/// The redis start script, run by the pods and by the tests against a real server.
pub const REDIS_START_SCRIPT: &str = include_str!("scripts/redis-start.sh");
/// Where the redis ConfigMap is mounted.
const REDIS_CONFIG_DIR: &str = "/webcluster";

/// The backend's name in `WEBCLUSTER_CACHE_BACKEND`.
pub fn backend_name(backend: CacheBackend) -> &'static str {
    match backend {
        CacheBackend::Memcached => "memcached",
        CacheBackend::Redis => "redis",
    }
}

/// The port the backend listens on.
pub fn port(backend: CacheBackend) -> i32 {
    match backend {
        CacheBackend::Memcached => 11211,
        CacheBackend::Redis => 6379,
    }
}

/// Every node a client must know, as host:port. memcached: each pod's stable DNS
/// name (the list for client-side consistent hashing); redis: the primary.
pub fn hosts(parent: &Parent, spec: &CacheSpec) -> Vec<String> {
    let port = port(spec.backend);
    match spec.backend {
        CacheBackend::Memcached => {
            (0..spec.replicas).map(|i| format!("{}:{port}", cache_pod_host(parent, i))).collect()
        }
        CacheBackend::Redis => vec![format!("{}:{port}", parent.service_host(&names::cache(parent.name)))],
    }
}

/// The stable DNS name of cache pod `ordinal`.
fn cache_pod_host(parent: &Parent, ordinal: i32) -> String {
    parent.pod_host(&names::cache_pod(parent.name, ordinal), &names::cache_headless(parent.name))
}

/// One URL for the cache. memcached with several nodes uses the multi-host form
/// Symfony's cache adapter reads (`memcached:?host[a:11211]&host[b:11211]`).
pub fn url(parent: &Parent, spec: &CacheSpec) -> String {
    let hosts = hosts(parent, spec);
    match (spec.backend, hosts.as_slice()) {
        (CacheBackend::Memcached, [single]) => format!("memcached://{single}"),
        (CacheBackend::Memcached, many) => {
            let list: Vec<String> = many.iter().map(|h| format!("host[{h}]")).collect();
            format!("memcached:?{}", list.join("&"))
        }
        (CacheBackend::Redis, _) => format!("redis://{}", hosts.join(",")),
    }
}

/// The cache's address for apps that add the scheme themselves (eZ Platform
/// reads `CACHE_DSN` as `memcached://%cache_dsn%` or `redis://%cache_dsn%`):
/// memcached's first node with the others as `host[...]` parameters, which
/// Symfony's MemcachedAdapter adds to the first; Redis's primary.
pub fn dsn(parent: &Parent, spec: &CacheSpec) -> String {
    let hosts = hosts(parent, spec);
    let Some((first, others)) = hosts.split_first() else { return String::new() };
    if others.is_empty() {
        return first.clone();
    }
    let others: Vec<String> = others.iter().map(|h| format!("host[{h}]")).collect();
    format!("{first}?{}", others.join("&"))
}

/// The cache's objects.
pub fn objects(parent: &Parent) -> Vec<Child> {
    let Some(spec) = &parent.spec.cache else { return Vec::new() };
    let mut objects = vec![headless_service(parent, spec)];
    if spec.backend == CacheBackend::Redis {
        objects.push(redis_config(parent, spec));
        objects.push(redis_primary_service(parent));
    }
    objects.push(stateful_set(parent, spec));
    // One pod at a time: a drain never takes every session at once.
    let name = names::cache(parent.name);
    objects.push(disruption_budget(parent, name, Component::Cache, software(spec), IntOrString::Int(1)));
    objects
}

fn software(spec: &CacheSpec) -> &'static str {
    backend_name(spec.backend)
}

fn service_port(spec: &CacheSpec) -> ServicePort {
    ServicePort {
        name: Some(software(spec).into()),
        port: port(spec.backend),
        target_port: Some(IntOrString::Int(port(spec.backend))),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

fn headless_service(parent: &Parent, spec: &CacheSpec) -> Child {
    Service {
        metadata: parent.meta(names::cache_headless(parent.name), Component::Cache, software(spec)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(parent.selector_labels(Component::Cache)),
            ports: Some(vec![service_port(spec)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
    .into()
}

/// The redis write endpoint: always pod 0, selected by pod name.
fn redis_primary_service(parent: &Parent) -> Child {
    let spec = parent.spec.cache.as_ref();
    let mut selector = parent.selector_labels(Component::Cache);
    selector.insert(POD_NAME_LABEL.into(), names::cache_pod(parent.name, 0));
    Service {
        metadata: parent.meta(names::cache(parent.name), Component::Cache, "redis"),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: spec.map(|s| vec![service_port(s)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
    .into()
}

fn redis_config(parent: &Parent, spec: &CacheSpec) -> Child {
    let conf = format!(
        "# Generated by webcluster-operator.\nbind * -::*\nprotected-mode no\nmaxmemory {}\nmaxmemory-policy volatile-lru\nappendonly {}\nreplica-read-only yes\n",
        super::memory_bytes(&spec.memory),
        if spec.persistence.is_some() { "yes" } else { "no" },
    );
    ConfigMap {
        metadata: parent.meta(names::cache_config(parent.name), Component::Cache, "redis"),
        data: Some(BTreeMap::from([
            ("redis.conf".to_string(), conf),
            ("start.sh".to_string(), REDIS_START_SCRIPT.to_string()),
        ])),
        ..ConfigMap::default()
    }
    .into()
}

fn container(parent: &Parent, spec: &CacheSpec) -> Container {
    let port = port(spec.backend);
    let (image, command, env, mounts) = match spec.backend {
        CacheBackend::Memcached => (
            MEMCACHED_IMAGE,
            vec![
                "memcached".into(),
                "-m".into(),
                (super::memory_bytes(&spec.memory) >> 20).to_string(),
                "-c".into(),
                "4096".into(),
                "-p".into(),
                port.to_string(),
            ],
            Vec::new(),
            Vec::new(),
        ),
        CacheBackend::Redis => (
            REDIS_IMAGE,
            vec!["/bin/sh".into(), format!("{REDIS_CONFIG_DIR}/start.sh")],
            redis_env(parent),
            redis_mounts(),
        ),
    };
    Container {
        name: software(spec).into(),
        image: Some(spec.image.clone().unwrap_or_else(|| image.into())),
        command: Some(command),
        env: (!env.is_empty()).then_some(env),
        ports: Some(vec![ContainerPort {
            name: Some(software(spec).into()),
            container_port: port,
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(tcp_probe(port, 5)),
        liveness_probe: Some(tcp_probe(port, 20)),
        resources: Some(spec.resources.clone().unwrap_or_else(|| memory_resources(super::memory_bytes(&spec.memory)))),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        // Redis writes only to its data folder, memcached nowhere.
        security_context: Some(read_only_container()),
        ..Container::default()
    }
}

fn redis_env(parent: &Parent) -> Vec<EnvVar> {
    vec![
        plain("REDIS_PRIMARY_POD", &names::cache_pod(parent.name, 0)),
        plain("REDIS_PRIMARY_HOST", &cache_pod_host(parent, 0)),
        plain("REDIS_PORT", &port(CacheBackend::Redis).to_string()),
        plain("REDIS_CONFIG_DIR", REDIS_CONFIG_DIR),
        plain("REDIS_DATA_DIR", "/data"),
        pod_name_env("REDIS_POD_NAME"),
    ]
}

fn redis_mounts() -> Vec<VolumeMount> {
    vec![
        VolumeMount {
            name: "config".into(),
            mount_path: REDIS_CONFIG_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount { name: "data".into(), mount_path: "/data".into(), ..VolumeMount::default() },
    ]
}

/// Memory request = the cache size; limit adds 25% for connections and overhead.
fn memory_resources(memory: u64) -> ResourceRequirements {
    let limit = memory + memory.div_ceil(4);
    resources("50m", &bytes_quantity(memory), &bytes_quantity(limit))
}

fn stateful_set(parent: &Parent, spec: &CacheSpec) -> Child {
    let uid = match spec.backend {
        CacheBackend::Memcached => MEMCACHED_UID,
        CacheBackend::Redis => REDIS_UID,
    };
    let mut volumes = Vec::new();
    let mut claims = Vec::new();
    if spec.backend == CacheBackend::Redis {
        volumes.push(config_map_volume("config", names::cache_config(parent.name)));
        match &spec.persistence {
            Some(size) => claims.push(claim_template(parent, "data", size, Component::Cache, "redis")),
            None => volumes.push(empty_dir_volume("data")),
        }
    }
    StatefulSet {
        metadata: parent.meta(names::cache(parent.name), Component::Cache, software(spec)),
        spec: StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(names::cache_headless(parent.name)),
            selector: parent.selector(Component::Cache),
            pod_management_policy: Some("Parallel".into()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(parent.labels(Component::Cache, software(spec))),
                    ..ObjectMeta::default()
                }),
                spec: Some(service_pod(
                    parent,
                    Component::Cache,
                    container(parent, spec),
                    volumes,
                    uid,
                    spec.pod.as_ref(),
                )),
            },
            volume_claim_templates: (!claims.is_empty()).then_some(claims),
            persistent_volume_claim_retention_policy: super::storage::claim_retention(parent),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    }
    .into()
}
