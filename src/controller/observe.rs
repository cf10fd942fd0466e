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

/// Reads the snapshot of `cluster`.
pub async fn snapshot(client: &Client, cluster: &WebCluster, namespace: &str) -> Result<Snapshot, Error> {
    let name = cluster.metadata.name.as_deref().ok_or(Error::MissingMetadata("name"))?;
    let spec = &cluster.spec;
    let mut snapshot = Snapshot {
        generated: get::<Secret>(client, namespace, &names::credentials(name)).await?.map(secret_strings),
        deployment: get(client, namespace, &names::app(name)).await?,
        ..Snapshot::default()
    };
    if let Some(db) = &spec.database {
        if db.managed.is_some() {
            snapshot.database = get(client, namespace, &names::database(name)).await?;
        }
        if let Some(external) = &db.external {
            snapshot.external_db = Some(
                external_urls(client, namespace, &external.write_url_secret_ref, external.read_url_secret_ref.as_ref())
                    .await?,
            );
        }
    }
    if spec.cache.is_some() {
        snapshot.cache = get(client, namespace, &names::cache(name)).await?;
    }
    for task in &spec.jobs {
        if let Some(cron_job) = get::<CronJob>(client, namespace, &names::cron_task(name, &task.name)).await? {
            snapshot.cron_jobs.insert(task.name.clone(), cron_job);
        }
    }
    if spec.app.migration.is_some() {
        snapshot.migration_job = get(client, namespace, &names::migration(name, &spec.app.image)).await?;
    }
    if let Some(storage) = &spec.storage {
        if let Some(volume) = &storage.volume {
            let claim = volume.existing_claim.clone().unwrap_or_else(|| names::files(name));
            snapshot.files_claim = get(client, namespace, &claim).await?;
        }
        if let Some(s3) = &storage.s3 {
            let found = get::<Secret>(client, namespace, &s3.credentials_secret_ref.name).await?.is_some();
            snapshot.s3_credentials_found = Some(found);
        }
    }
    Ok(snapshot)
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
