//! Reads what the builder and the status need from the cluster: the generated
//! Secret, the external DSNs, and the state of the workloads.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::error::Error;
use crate::api::{SecretKeyRef, WebCluster};
use crate::build::{ExternalUrls, names};

/// The cluster's state as one reconcile sees it.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Data of the generated Secret, if it exists.
    pub generated: Option<BTreeMap<String, String>>,
    /// The external DSNs, or why they could not be read.
    pub external_db: Option<Result<ExternalUrls, String>>,
    /// Whether the S3 credentials Secret exists.
    pub s3_credentials_found: Option<bool>,
    /// The app Deployment.
    pub deployment: Option<Deployment>,
    /// The database StatefulSet.
    pub database: Option<StatefulSet>,
    /// The cache StatefulSet.
    pub cache: Option<StatefulSet>,
    /// The CronJobs of the cron tasks, by task name.
    pub cron_jobs: BTreeMap<String, CronJob>,
    /// The migration Job of `spec.app.image`.
    pub migration_job: Option<Job>,
    /// The shared files claim.
    pub files_claim: Option<PersistentVolumeClaim>,
}

/// Reads the snapshot of `cluster`; the independent reads run concurrently.
pub async fn snapshot(client: &Client, cluster: &WebCluster, namespace: &str) -> Result<Snapshot, Error> {
    let name = cluster.metadata.name.as_deref().ok_or(Error::MissingMetadata("name"))?;
    let spec = &cluster.spec;
    let managed_db = spec.database.as_ref().is_some_and(|db| db.managed.is_some());
    let (generated, deployment, database, cache, migration_job, cron_jobs, storage, external_db) = futures::try_join!(
        get_if::<Secret>(true, client, namespace, names::credentials(name)),
        get_if::<Deployment>(true, client, namespace, names::app(name)),
        get_if::<StatefulSet>(managed_db, client, namespace, names::database(name)),
        get_if::<StatefulSet>(spec.cache.is_some(), client, namespace, names::cache(name)),
        get_if::<Job>(spec.app.migration.is_some(), client, namespace, names::migration(name, &spec.app.image)),
        cron_jobs(client, cluster, namespace, name),
        storage(client, cluster, namespace, name),
        external(client, cluster, namespace),
    )?;
    let (files_claim, s3_credentials_found) = storage;
    Ok(Snapshot {
        generated: generated.map(secret_strings),
        external_db,
        s3_credentials_found,
        deployment,
        database,
        cache,
        cron_jobs,
        migration_job,
        files_claim,
    })
}

/// [`get`] when `wanted`, else nothing (owns the name, for concurrent reads).
async fn get_if<K>(wanted: bool, client: &Client, namespace: &str, name: String) -> Result<Option<K>, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    if wanted { get(client, namespace, &name).await } else { Ok(None) }
}

async fn cron_jobs(
    client: &Client,
    cluster: &WebCluster,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, CronJob>, Error> {
    let mut found = BTreeMap::new();
    for task in &cluster.spec.jobs {
        if let Some(cron_job) = get::<CronJob>(client, namespace, &names::cron_task(name, &task.name)).await? {
            found.insert(task.name.clone(), cron_job);
        }
    }
    Ok(found)
}

/// The files claim, and whether the S3 credentials Secret exists.
async fn storage(
    client: &Client,
    cluster: &WebCluster,
    namespace: &str,
    name: &str,
) -> Result<(Option<PersistentVolumeClaim>, Option<bool>), Error> {
    let Some(storage) = &cluster.spec.storage else { return Ok((None, None)) };
    let claim = match &storage.volume {
        Some(volume) => {
            let claim = volume.existing_claim.clone().unwrap_or_else(|| names::files(name));
            get(client, namespace, &claim).await?
        }
        None => None,
    };
    let s3_found = match &storage.s3 {
        Some(s3) => Some(get::<Secret>(client, namespace, &s3.credentials_secret_ref.name).await?.is_some()),
        None => None,
    };
    Ok((claim, s3_found))
}

async fn external(
    client: &Client,
    cluster: &WebCluster,
    namespace: &str,
) -> Result<Option<Result<ExternalUrls, String>>, Error> {
    let Some(external) = cluster.spec.database.as_ref().and_then(|db| db.external.as_ref()) else { return Ok(None) };
    let urls =
        external_urls(client, namespace, &external.write_url_secret_ref, external.read_url_secret_ref.as_ref()).await?;
    Ok(Some(urls))
}

/// GET one object; `None` when it does not exist.
pub async fn get<K>(client: &Client, namespace: &str, name: &str) -> Result<Option<K>, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| Error::api("get", &K::kind(&()), namespace, name, e))
}

fn secret_strings(secret: Secret) -> BTreeMap<String, String> {
    secret
        .data
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(key, value)| String::from_utf8(value.0).ok().map(|v| (key, v)))
        .collect()
}

async fn external_urls(
    client: &Client,
    namespace: &str,
    write: &SecretKeyRef,
    read: Option<&SecretKeyRef>,
) -> Result<Result<ExternalUrls, String>, Error> {
    let write_url = match secret_value(client, namespace, write).await? {
        Ok(url) => url,
        Err(message) => return Ok(Err(message)),
    };
    let read_url = match read {
        Some(reference) => match secret_value(client, namespace, reference).await? {
            Ok(url) => url,
            Err(message) => return Ok(Err(message)),
        },
        None => write_url.clone(),
    };
    Ok(Ok(ExternalUrls { write: write_url, read: read_url }))
}

async fn secret_value(
    client: &Client,
    namespace: &str,
    reference: &SecretKeyRef,
) -> Result<Result<String, String>, Error> {
    let Some(secret) = get::<Secret>(client, namespace, &reference.name).await? else {
        return Ok(Err(format!("Secret {} not found (spec.database.external)", reference.name)));
    };
    Ok(secret_strings(secret)
        .remove(&reference.key)
        .ok_or_else(|| format!("Secret {} has no key {} (spec.database.external)", reference.name, reference.key)))
}
