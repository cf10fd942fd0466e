//! Property tests of the builder over generated valid WebClusters.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::PodSpec;
use proptest::prelude::*;
use webcluster::api::{
    CacheBackend, CacheSpec, CronTaskSpec, DatabaseEngine, DatabaseSpec, DeletionPolicy, ExternalDatabase,
    ExternalExtraDatabase, ExtraDatabase, HttpCacheSpec, IngressSpec, RESERVED_DATABASE_NAMES, S3Credentials,
    S3Storage, SecretKeyRef, SharedMount, SharedVolume, StorageSpec, WebCluster, WebClusterSpec,
};
use webcluster::desired::{self, Child, Plan};

const STANDARD_LABELS: [&str; 5] = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
];

fn dns_label(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-z]([-a-z0-9]{{0,{}}}[a-z0-9])?", max - 2)).expect("valid regex")
}

fn cache() -> impl Strategy<Value = Option<CacheSpec>> {
    proptest::option::of((prop_oneof![Just(CacheBackend::Memcached), Just(CacheBackend::Redis)], 1..5i32).prop_map(
        |(backend, replicas)| {
            let yaml = format!(
                "backend: {}\nreplicas: {replicas}\n",
                if backend == CacheBackend::Redis { "redis" } else { "memcached" }
            );
            serde_saphyr::from_str::<CacheSpec>(&yaml).expect("valid cache spec")
        },
    ))
}

/// Names of extra databases: identifiers other than the main `app` and the engines' own.
fn extra_names() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::btree_set("[a-z_][a-z0-9_]{0,10}", 0..4).prop_map(|names| {
        names.into_iter().filter(|n| n != "app" && !RESERVED_DATABASE_NAMES.contains(&n.as_str())).collect()
    })
}

fn database() -> impl Strategy<Value = Option<DatabaseSpec>> {
    let engine = prop_oneof![Just(DatabaseEngine::Postgresql), Just(DatabaseEngine::Mariadb)];
    proptest::option::of((engine, proptest::option::of(0..4i32), any::<bool>(), extra_names()).prop_map(
        |(engine, managed_replicas, read_ref, extras)| {
            let mut spec: DatabaseSpec =
                serde_saphyr::from_str("engine: postgresql\nmanaged: {}\n").expect("valid database spec");
            spec.engine = engine;
            let key = |name: &str| SecretKeyRef { name: name.into(), key: "url".into() };
            match managed_replicas {
                Some(replicas) => {
                    if let Some(managed) = spec.managed.as_mut() {
                        managed.replicas = replicas;
                        managed.databases =
                            extras.into_iter().map(|name| ExtraDatabase { user: format!("u_{name}"), name }).collect();
                    }
                }
                None => {
                    spec.managed = None;
                    let databases = extras
                        .into_iter()
                        .map(|name| ExternalExtraDatabase {
                            write_url_secret_ref: key(&format!("{}-write", name.replace('_', "-"))),
                            read_url_secret_ref: read_ref.then(|| key(&format!("{}-read", name.replace('_', "-")))),
                            name,
                        })
                        .collect();
                    spec.external = Some(ExternalDatabase {
                        write_url_secret_ref: key("db-write"),
                        read_url_secret_ref: read_ref.then(|| key("db-read")),
                        databases,
                    });
                }
            }
            spec
        },
    ))
}

/// The extra databases of a spec, by name.
fn extra_databases(cluster: &WebCluster) -> Vec<String> {
    let Some(db) = &cluster.spec.database else { return Vec::new() };
    match (&db.managed, &db.external) {
        (Some(managed), _) => managed.databases.iter().map(|d| d.name.clone()).collect(),
        (None, Some(external)) => external.databases.iter().map(|d| d.name.clone()).collect(),
        (None, None) => Vec::new(),
    }
}

fn storage() -> impl Strategy<Value = Option<StorageSpec>> {
    let paths = proptest::collection::btree_set("/[a-z]{1,8}(/[a-z]{1,8})?", 1..4);
    proptest::option::of((paths, any::<bool>(), any::<bool>()).prop_map(|(paths, use_s3, existing)| {
        if use_s3 {
            let credentials = S3Credentials {
                name: "s3".into(),
                access_key_id_key: "id".into(),
                secret_access_key_key: "key".into(),
            };
            let s3 = S3Storage {
                bucket: "files".into(),
                endpoint: None,
                region: Some("eu-1".into()),
                prefix: None,
                credentials_secret_ref: credentials,
            };
            return StorageSpec { volume: None, s3: Some(s3) };
        }
        let mounts = paths.into_iter().map(|path| SharedMount { path, sub_path: None }).collect();
        let volume = SharedVolume {
            size: k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Gi".into()),
            storage_class_name: None,
            existing_claim: existing.then(|| "files".into()),
            mounts,
        };
        StorageSpec { volume: Some(volume), s3: None }
    }))
}

fn jobs() -> impl Strategy<Value = Vec<CronTaskSpec>> {
    proptest::collection::btree_set(dns_label(11), 0..4).prop_map(|names| {
        names
            .into_iter()
            .map(|name| CronTaskSpec {
                name,
                schedule: "*/5 * * * *".into(),
                time_zone: None,
                command: vec!["true".into()],
                suspend: false,
                active_deadline_seconds: 60,
            })
            .collect()
    })
}

prop_compose! {
    fn web_cluster()(
        name in dns_label(40),
        replicas in 0..20i32,
        cache in cache(),
        database in database(),
        storage in storage(),
        jobs in jobs(),
        http_cache in any::<bool>(),
        ingress in any::<bool>(),
        migration in any::<bool>(),
        delete in any::<bool>(),
        shared in proptest::collection::btree_set("[A-Z][A-Z0-9_]{0,10}", 0..3),
    ) -> WebCluster {
        let mut spec: WebClusterSpec = serde_saphyr::from_str("app: {image: 'app:1'}").expect("minimal spec");
        spec.app.replicas = replicas;
        spec.app.shared_secrets = shared.into_iter().collect();
        if migration {
            spec.app.migration = serde_saphyr::from_str("command: [migrate]").ok();
        }
        spec.cache = cache;
        spec.database = database;
        spec.storage = storage;
        spec.jobs = jobs.into_iter().filter(|j| name.len() + 1 + j.name.len() <= 52).collect();
        spec.http_cache = http_cache.then(|| serde_saphyr::from_str::<HttpCacheSpec>("{}").expect("defaults"));
        spec.ingress = ingress.then(|| IngressSpec { host: "www.example.com".into(), class_name: None, path: "/".into(), tls: None, annotations: Default::default() });
        spec.deletion_policy = if delete { DeletionPolicy::Delete } else { DeletionPolicy::Retain };
        let mut cluster = WebCluster::new(&name, spec);
        cluster.metadata.namespace = Some("team-a".into());
        cluster.metadata.uid = Some("0b3c1f5e-0000-4000-8000-000000000001".into());
        cluster
    }
}

/// The variables the wiring contract promises for this spec.
fn promised_env(cluster: &WebCluster) -> Vec<String> {
    let spec = &cluster.spec;
    let mut names = Vec::new();
    if spec.database.is_some() {
        names.push("WEBCLUSTER_DB_ENGINE".to_string());
        // The main database's, then each extra database's under its upper-cased name.
        let prefixes = std::iter::once(String::new())
            .chain(extra_databases(cluster).into_iter().map(|n| format!("{}_", n.to_uppercase())));
        for prefix in prefixes {
            for end in ["WRITE", "READ"] {
                for part in ["URL", "HOST", "PORT", "NAME", "USER", "PASSWORD"] {
                    names.push(format!("WEBCLUSTER_DB_{prefix}{end}_{part}"));
                }
            }
        }
    }
    if spec.cache.is_some() {
        names.extend(
            ["WEBCLUSTER_CACHE_BACKEND", "WEBCLUSTER_CACHE_URL", "WEBCLUSTER_CACHE_HOSTS", "WEBCLUSTER_CACHE_DSN"]
                .map(String::from),
        );
    }
    match spec.storage.as_ref().map(|s| s.volume.is_some()) {
        Some(true) => names.push("WEBCLUSTER_FILES_DIR".into()),
        Some(false) => names.extend(
            ["BUCKET", "ENDPOINT", "REGION", "PREFIX", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY"]
                .map(|p| format!("WEBCLUSTER_S3_{p}")),
        ),
        None => {}
    }
    if spec.http_cache.is_some() {
        names.push("WEBCLUSTER_HTTP_CACHE_URL".into());
    }
    names.extend(spec.app.shared_secrets.iter().cloned());
    names
}

/// Pod specs of the app Deployment, the migration Job and every CronJob.
fn workload_pods(children: &[Child]) -> Vec<(String, &PodSpec)> {
    children
        .iter()
        .filter_map(|child| {
            let pod = match child {
                Child::Deployment(d) if d.metadata.name.as_deref().is_some_and(|n| n.ends_with("-app")) => {
                    d.spec.template.spec.as_ref()
                }
                Child::Job(j) => j.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
                Child::CronJob(c) => c.spec.job_template.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
                _ => None,
            }?;
            Some((format!("{} {}", child.kind(), child.name()), pod))
        })
        .collect()
}

/// The keys of a rendered Secret.
fn secret_keys(children: &[Child], name: &str) -> Option<BTreeSet<String>> {
    children.iter().find_map(|child| match child {
        Child::Secret(secret) if child.name() == name => {
            Some(secret.data.iter().flatten().map(|(key, _)| key.clone()).collect())
        }
        _ => None,
    })
}

/// A literal variable of the database StatefulSet's container.
fn database_env(children: &[Child], var: &str) -> Option<String> {
    children.iter().find_map(|child| match child {
        Child::StatefulSet(set) if child.name().ends_with("-db") => {
            let pod = set.spec.template.spec.as_ref()?;
            pod.containers[0].env.iter().flatten().find(|e| e.name == var).and_then(|e| e.value.clone())
        }
        _ => None,
    })
}

fn is_dns1123_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn builder_output_is_valid_and_deterministic(cluster in web_cluster()) {
        let plan = Plan::offline(&cluster);
        let children = desired::children(&cluster, &plan).expect("a named, namespaced WebCluster builds");
        prop_assert_eq!(&children, &desired::children(&cluster, &plan).expect("builds again"));

        let mut seen = BTreeSet::new();
        for child in &children {
            let name = child.name();
            prop_assert!(is_dns1123_label(name), "{} {name:?} is not a DNS-1123 label", child.kind());
            if child.kind() == "CronJob" {
                prop_assert!(name.len() <= 52, "CronJob {name} is longer than 52");
            }
            prop_assert!(seen.insert((child.kind(), name.to_string())), "two {} named {name}", child.kind());
            let meta = child.meta();
            let labels = meta.labels.clone().unwrap_or_default();
            for key in STANDARD_LABELS {
                prop_assert!(labels.contains_key(key), "{} {name} lacks label {key}", child.kind());
            }
            let is_data = labels.get("webcluster.io/data").is_some_and(|v| v == "true");
            let owners = meta.owner_references.clone().unwrap_or_default();
            if is_data && cluster.spec.deletion_policy == DeletionPolicy::Retain {
                prop_assert!(owners.is_empty(), "retained data object {name} must not be garbage-collected");
            } else {
                prop_assert!(
                    owners.iter().any(|o| o.controller == Some(true) && o.kind == "WebCluster" && o.uid == cluster.metadata.uid.clone().unwrap_or_default()),
                    "{} {name} lacks the controller owner reference", child.kind()
                );
            }
        }

        let promised = promised_env(&cluster);
        let credentials = secret_keys(&children, &format!("{}-credentials", cluster.metadata.name.as_deref().unwrap_or_default()));
        for (what, pod) in workload_pods(&children) {
            let env = pod.containers[0].env.clone().unwrap_or_default();
            let names: BTreeSet<String> = env.iter().map(|e| e.name.clone()).collect();
            prop_assert_eq!(names.len(), env.len(), "{} names a variable twice", what);
            for name in &promised {
                prop_assert!(names.contains(name), "{what} lacks {name}");
            }
            // Every variable read from the generated Secret names a key it holds.
            for var in &env {
                let Some(key) = var.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref()) else { continue };
                if credentials.as_ref().is_some_and(|_| key.name.ends_with("-credentials")) {
                    prop_assert!(credentials.as_ref().is_some_and(|keys| keys.contains(&key.key)), "{what}: {} reads key {} the Secret lacks", var.name, key.key);
                }
            }
        }
        // Each extra managed database has its generated password and is created by the start script.
        if let Some(managed) = cluster.spec.database.as_ref().and_then(|d| d.managed.as_ref()) {
            let keys = credentials.clone().unwrap_or_default();
            for extra in &managed.databases {
                prop_assert!(keys.contains(&format!("db.{}.password", extra.name)), "no generated password of {}", extra.name);
            }
            let listed = database_env(&children, "DB_EXTRA_DATABASES");
            let expected: Vec<String> = managed.databases.iter().map(|d| format!("{}:{}", d.name, d.user)).collect();
            prop_assert_eq!(listed, (!expected.is_empty()).then(|| expected.join(" ")));
        }
    }
}

#[test]
fn a_web_cluster_with_only_an_image_renders_just_the_app() {
    let mut cluster = WebCluster::new("solo", serde_saphyr::from_str("app: {image: 'app:1'}").expect("minimal spec"));
    cluster.metadata.namespace = Some("default".into());
    let children = desired::children(&cluster, &Plan::offline(&cluster)).expect("builds");
    let kinds: Vec<&str> = children.iter().map(Child::kind).collect();
    assert_eq!(kinds, ["Service", "Deployment", "PodDisruptionBudget"]);
}
