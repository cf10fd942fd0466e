//! The managed database: one StatefulSet of a primary and read replicas (pod 0
//! is the first rollout's primary), a read-write and a read-only Service, the
//! configuration and the agent script the pods run, and a PodDisruptionBudget.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, EnvVar, ExecAction, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    Service, ServicePort, ServiceSpec, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::credentials::{DB_PASSWORD, DB_REPLICATION_PASSWORD, DB_SUPERUSER_PASSWORD, extra_password_key};
use super::meta::{Component, Parent};
use super::pod::{
    config_map_volume, disruption_budget, empty_dir_volume, from_secret, plain, pod_label_env, pod_name_env,
    read_only_container, resources, service_pod, tcp_probe,
};
use super::storage::{claim_retention, claim_template};
use super::{Child, Plan, names};
use crate::api::{DatabaseEngine, ManagedDatabase};

/// Pod label the controller sets on every database pod: the read-write
/// Service selects `primary`, the read-only one `replica`, and a pod's agent
/// starts in the role it names (`DB_ROLE`).
pub const ROLE_LABEL: &str = "webcluster.io/role";
/// [`ROLE_LABEL`] value of the primary.
pub const ROLE_PRIMARY: &str = "primary";
/// [`ROLE_LABEL`] value of a replica.
pub const ROLE_REPLICA: &str = "replica";
/// The replication user's name.
pub const REPLICATION_USER: &str = "replicator";
/// Where the ConfigMap with scripts and configuration is mounted.
const CONFIG_DIR: &str = "/webcluster";
/// A writable runtime folder for sockets and passfiles.
const SOCKET_DIR: &str = "/run/webcluster-db";
/// The uid the official postgres and mariadb images run as.
const DATABASE_UID: i64 = 999;

/// The engine's name in `WEBCLUSTER_DB_ENGINE`.
pub fn engine_name(engine: DatabaseEngine) -> &'static str {
    match engine {
        DatabaseEngine::Postgresql => "postgresql",
        DatabaseEngine::Mariadb => "mariadb",
    }
}

/// The engine's port.
pub fn port(engine: DatabaseEngine) -> i32 {
    match engine {
        DatabaseEngine::Postgresql => 5432,
        DatabaseEngine::Mariadb => 3306,
    }
}

fn default_image(engine: DatabaseEngine) -> &'static str {
    match engine {
        DatabaseEngine::Postgresql => "postgres:17",
        DatabaseEngine::Mariadb => "mariadb:11.8",
    }
}

fn data_dir(engine: DatabaseEngine) -> &'static str {
    match engine {
        DatabaseEngine::Postgresql => "/var/lib/postgresql/data",
        DatabaseEngine::Mariadb => "/var/lib/mysql",
    }
}

/// The files of the database ConfigMap: the agent (`start.sh`: start, and the
/// failover commands), readiness probe, configuration, `peers`: every pod's
/// stable name (`host:port` a line), which a primary asks before it
/// initialises an empty data directory, and once the primary has served,
/// `identity`: its data's identity, so that it refuses to initialise even
/// when no replica is left to ask.
/// Files rather than environment variables, so changes restart no pod.
pub fn config_files(parent: &Parent, engine: DatabaseEngine, managed: &ManagedDatabase) -> BTreeMap<String, String> {
    let files: &[(&str, &str)] = match engine {
        DatabaseEngine::Postgresql => &[
            ("common.sh", include_str!("scripts/common.sh")),
            ("start.sh", include_str!("scripts/postgresql-start.sh")),
            ("probe.sh", include_str!("scripts/postgresql-probe.sh")),
            ("postgresql.conf", include_str!("scripts/postgresql.conf")),
            ("pg_hba.conf", include_str!("scripts/pg_hba.conf")),
        ],
        DatabaseEngine::Mariadb => &[
            ("common.sh", include_str!("scripts/common.sh")),
            ("start.sh", include_str!("scripts/mariadb-start.sh")),
            ("probe.sh", include_str!("scripts/mariadb-probe.sh")),
            ("my.cnf", include_str!("scripts/my.cnf")),
        ],
    };
    let mut files: BTreeMap<String, String> = files.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    files.insert("peers".into(), peers(parent, engine, managed));
    files
}

fn peers(parent: &Parent, engine: DatabaseEngine, managed: &ManagedDatabase) -> String {
    let headless = names::database_headless(parent.name);
    (0..managed.pods())
        .map(|ordinal| {
            let pod = names::database_pod(parent.name, ordinal);
            format!("{}:{}\n", parent.pod_host(&pod, &headless), port(engine))
        })
        .collect()
}

/// The managed database's objects (none for an external database).
pub fn objects(parent: &Parent, plan: &Plan) -> Vec<Child> {
    let Some(db) = &parent.spec.database else { return Vec::new() };
    let Some(managed) = &db.managed else { return Vec::new() };
    let engine = db.engine;
    let mut files = config_files(parent, engine, managed);
    if let Some(identity) = &plan.database_identity {
        files.insert("identity".into(), format!("{identity}\n"));
    }
    // A pod created after an election starts in the role this names before
    // the operator labels it (a new pod has no label yet).
    if let Some(primary) = &plan.database_primary {
        files.insert("primary".into(), format!("{primary}\n"));
    }
    vec![
        ConfigMap {
            metadata: parent.meta(names::database_config(parent.name), Component::Database, engine_name(engine)),
            data: Some(files),
            ..ConfigMap::default()
        }
        .into(),
        service(parent, engine, names::database_headless(parent.name), None),
        service(parent, engine, names::database_write(parent.name), Some(primary_selector(parent))),
        service(parent, engine, names::database_read(parent.name), Some(read_selector(parent, managed))),
        stateful_set(parent, engine, managed),
        disruption_budget(
            parent,
            names::database(parent.name),
            Component::Database,
            engine_name(engine),
            IntOrString::Int(1),
        ),
    ]
}

/// Without the user's: 100m CPU and 256Mi requested, 1Gi limit — room for the
/// engines' default buffers (128 MiB each) and connections, small enough that
/// several database pods fit a developer's node.
fn default_resources() -> ResourceRequirements {
    resources("100m", "256Mi", "1Gi")
}

fn primary_selector(parent: &Parent) -> BTreeMap<String, String> {
    let mut selector = parent.selector_labels(Component::Database);
    selector.insert(ROLE_LABEL.into(), ROLE_PRIMARY.into());
    selector
}

/// Ready replicas; the primary when there are none.
fn read_selector(parent: &Parent, managed: &ManagedDatabase) -> BTreeMap<String, String> {
    if managed.replicas == 0 {
        return primary_selector(parent);
    }
    let mut selector = parent.selector_labels(Component::Database);
    selector.insert(ROLE_LABEL.into(), ROLE_REPLICA.into());
    selector
}

/// A Service over database pods; without a selector, the headless one over all of them.
fn service(parent: &Parent, engine: DatabaseEngine, name: String, selector: Option<BTreeMap<String, String>>) -> Child {
    let headless = selector.is_none();
    Service {
        metadata: parent.meta(name, Component::Database, engine_name(engine)),
        spec: Some(ServiceSpec {
            cluster_ip: headless.then(|| "None".into()),
            // Replicas must resolve peers while they bootstrap, before they are ready.
            publish_not_ready_addresses: headless.then_some(true),
            selector: Some(selector.unwrap_or_else(|| parent.selector_labels(Component::Database))),
            ports: Some(vec![ServicePort {
                name: Some(engine_name(engine).into()),
                port: port(engine),
                target_port: Some(IntOrString::Int(port(engine))),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
    .into()
}

/// The environment the start and probe scripts read.
fn script_env(parent: &Parent, engine: DatabaseEngine, managed: &ManagedDatabase) -> Vec<EnvVar> {
    let secret = names::credentials(parent.name);
    vec![
        pod_name_env("DB_POD_NAME"),
        pod_label_env("DB_ROLE", ROLE_LABEL),
        plain("DB_PRIMARY_POD", &names::database_primary(parent.name)),
        plain("DB_PRIMARY_HOST", &parent.service_host(&names::database_write(parent.name))),
        plain("DB_PORT", &port(engine).to_string()),
        plain("DB_DATA_DIR", data_dir(engine)),
        plain("DB_CONFIG_DIR", CONFIG_DIR),
        plain("DB_SOCKET_DIR", SOCKET_DIR),
        plain("DB_NAME", &managed.database_name),
        plain("DB_USER", &managed.user),
        from_secret("DB_PASSWORD", &secret, DB_PASSWORD),
        from_secret("DB_SUPERUSER_PASSWORD", &secret, DB_SUPERUSER_PASSWORD),
        plain("DB_REPLICATION_USER", REPLICATION_USER),
        from_secret("DB_REPLICATION_PASSWORD", &secret, DB_REPLICATION_PASSWORD),
        plain("DB_MAX_LAG_SECONDS", &managed.max_replica_lag_seconds.to_string()),
    ]
    .into_iter()
    .chain(synchronous_env(managed))
    .chain(extra_databases_env(&secret, managed))
    .collect()
}

/// `DB_SYNCHRONOUS_REPLICAS`, which the primary applies; nothing while
/// replication is asynchronous, so such pods' environment is unchanged.
fn synchronous_env(managed: &ManagedDatabase) -> Option<EnvVar> {
    (managed.synchronous_replicas > 0)
        .then(|| plain("DB_SYNCHRONOUS_REPLICAS", &managed.synchronous_replicas.to_string()))
}

/// The extra databases the primary creates: `DB_EXTRA_DATABASES` lists
/// `name:user` pairs, `DB_EXTRA_PASSWORD_<name>` holds each user's password.
/// Nothing without extra databases, so such pods' environment is unchanged.
fn extra_databases_env(secret: &str, managed: &ManagedDatabase) -> Vec<EnvVar> {
    if managed.databases.is_empty() {
        return Vec::new();
    }
    let pairs: Vec<String> = managed.databases.iter().map(|d| format!("{}:{}", d.name, d.user)).collect();
    let passwords = managed
        .databases
        .iter()
        .map(|d| from_secret(&format!("DB_EXTRA_PASSWORD_{}", d.name), secret, &extra_password_key(&d.name)));
    std::iter::once(plain("DB_EXTRA_DATABASES", &pairs.join(" "))).chain(passwords).collect()
}

/// How often a database pod's readiness is probed: twice this (two misses)
/// plus the network check's 2 s is how long a primary cut off stays Ready.
/// 2 s halved a partition's write gap, but the exec probes of every database
/// pod then starved a 2-core node under the real-pod tests.
const READINESS_PERIOD_SECONDS: i32 = 5;
/// How long a database probe may run.
const PROBE_TIMEOUT_SECONDS: i32 = 5;

/// How long a pod just promoted may take to be seen Ready: its next
/// readiness probe comes within a period and may take the whole timeout.
pub const PROMOTED_READY_WITHIN: Duration =
    Duration::from_secs((READINESS_PERIOD_SECONDS + PROBE_TIMEOUT_SECONDS).unsigned_abs() as u64);

/// A probe that runs `command` every `period_seconds`, failing after `failures` misses.
fn exec_probe(command: Vec<String>, period_seconds: i32, failures: i32) -> Probe {
    Probe {
        exec: Some(ExecAction { command: Some(command) }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(PROBE_TIMEOUT_SECONDS),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn container(parent: &Parent, engine: DatabaseEngine, managed: &ManagedDatabase) -> Container {
    let db_port = port(engine);
    let script = |name: &str| vec!["/bin/sh".to_string(), format!("{CONFIG_DIR}/{name}")];
    let liveness = match engine {
        DatabaseEngine::Postgresql => tcp_probe(db_port, 10),
        // A bare TCP connection makes MariaDB log "Aborted connection" at every probe.
        DatabaseEngine::Mariadb => exec_probe([script("probe.sh"), vec!["live".into()]].concat(), 10, 3),
    };
    let mut startup = tcp_probe(db_port, 10);
    // A new replica copies the primary's data before it listens: allow an hour.
    startup.failure_threshold = Some(360);
    Container {
        name: names::DATABASE_CONTAINER.into(),
        image: Some(managed.image.clone().unwrap_or_else(|| default_image(engine).into())),
        command: Some(script("start.sh")),
        env: Some(script_env(parent, engine, managed)),
        ports: Some(vec![ContainerPort {
            name: Some(engine_name(engine).into()),
            container_port: db_port,
            ..ContainerPort::default()
        }]),
        startup_probe: Some(startup),
        readiness_probe: Some(exec_probe(script("probe.sh"), READINESS_PERIOD_SECONDS, 2)),
        liveness_probe: Some(liveness),
        resources: Some(managed.resources.clone().unwrap_or_else(default_resources)),
        volume_mounts: Some(vec![
            VolumeMount {
                name: names::DATABASE_CLAIM_TEMPLATE.into(),
                mount_path: data_dir(engine).into(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "config".into(),
                mount_path: CONFIG_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount { name: "run".into(), mount_path: SOCKET_DIR.into(), ..VolumeMount::default() },
        ]),
        // The scripts point every socket, pid and temporary file of both engines at SOCKET_DIR.
        security_context: Some(read_only_container()),
        ..Container::default()
    }
}

fn stateful_set(parent: &Parent, engine: DatabaseEngine, managed: &ManagedDatabase) -> Child {
    let software = engine_name(engine);
    let volumes = vec![config_map_volume("config", names::database_config(parent.name)), empty_dir_volume("run")];
    StatefulSet {
        metadata: parent.meta(names::database(parent.name), Component::Database, software),
        spec: StatefulSetSpec {
            replicas: Some(managed.pods()),
            service_name: Some(names::database_headless(parent.name)),
            selector: parent.selector(Component::Database),
            // The primary (pod 0) first: replicas copy from it.
            pod_management_policy: Some("OrderedReady".into()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(parent.labels(Component::Database, software)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    termination_grace_period_seconds: Some(60),
                    ..service_pod(
                        parent,
                        Component::Database,
                        container(parent, engine, managed),
                        volumes,
                        DATABASE_UID,
                        managed.pod.as_ref(),
                    )
                }),
            },
            volume_claim_templates: Some(vec![claim_template(
                parent,
                names::DATABASE_CLAIM_TEMPLATE,
                &managed.storage,
                Component::Database,
                software,
            )]),
            persistent_volume_claim_retention_policy: claim_retention(parent),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    }
    .into()
}
