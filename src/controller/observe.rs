//! Reads what the builder and the status need from the cluster: the generated
//! Secret, the external DSNs, and the state of the workloads.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::runtime::cache::{CacheOf, Cached, ChildCaches, Packed};
use crate::api::{SecretKeyRef, WebCluster};
use crate::desired::credentials::generated_keys;
use crate::desired::{ExternalUrls, names};

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

impl Snapshot {
    /// Raises the generation of each workload to the one its last apply
    /// returned (`applied(kind, name)`), where the watch cache still shows an
    /// older one: the status then waits for the workload to observe the spec
    /// just applied instead of reading readiness from the spec before it.
    pub fn after_apply(mut self, name: &str, applied: impl Fn(&'static str, &str) -> Option<i64>) -> Self {
        raise(&mut self.deployment, &names::app(name), &applied);
        raise(&mut self.database, &names::database(name), &applied);
        raise(&mut self.cache, &names::cache(name), &applied);
        self
    }
}

fn raise<K: k8s_openapi::Resource + Resource<DynamicType = ()>>(
    object: &mut Option<K>,
    name: &str,
    applied: &impl Fn(&'static str, &str) -> Option<i64>,
) {
    let Some(object) = object else { return };
    let Some(generation) = applied(K::KIND, name) else { return };
    let meta = object.meta_mut();
    meta.generation = meta.generation.max(Some(generation));
}

/// Reads the snapshot of `cluster`: the operator's own children from the
/// caches, the user's Secrets and claims (and a generated Secret the cache
/// does not show complete) with GETs.
pub async fn snapshot(
    client: &Client,
    caches: &ChildCaches,
    cluster: &WebCluster,
    namespace: &str,
    name: &str,
) -> Result<Snapshot, ApiError> {
    let spec = &cluster.spec;
    let managed_db = spec.database.as_ref().is_some_and(|db| db.managed.is_some());
    let (generated, storage, external_db) = futures::try_join!(
        generated(client, caches, cluster, namespace, name),
        storage(client, caches, cluster, namespace, name),
        external(client, cluster, namespace),
    )?;
    let (files_claim, s3_credentials_found) = storage;
    let cron_jobs = spec
        .jobs
        .iter()
        .filter_map(|task| {
            Some((task.name.clone(), cached::<CronJob>(caches, namespace, &names::cron_task(name, &task.name))?))
        })
        .collect();
    Ok(Snapshot {
        generated,
        external_db,
        s3_credentials_found,
        deployment: cached(caches, namespace, &names::app(name)),
        database: managed_db.then(|| cached(caches, namespace, &names::database(name))).flatten(),
        cache: spec.cache.as_ref().and_then(|_| cached(caches, namespace, &names::cache(name))),
        cron_jobs,
        migration_job: spec
            .app
            .migration
            .as_ref()
            .and_then(|_| cached(caches, namespace, &names::migration(name, &spec.app.image))),
        files_claim,
    })
}

/// A copy of the cached (slimmed) object.
fn cached<K>(caches: &ChildCaches, namespace: &str, name: &str) -> Option<K>
where
    K: Cached<View = Packed<K>> + Serialize + DeserializeOwned,
    ChildCaches: CacheOf<K>,
{
    caches.get::<K>(namespace, name)?.unpack()
}

/// The generated Secret's values. The cache may lag behind a Secret written a
/// moment ago; generating values again would change passwords, so a Secret
/// the cache does not show with every key is read from the API server.
async fn generated(
    client: &Client,
    caches: &ChildCaches,
    cluster: &WebCluster,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    let secret_name = names::credentials(name);
    let from_cache = cached::<Secret>(caches, namespace, &secret_name).map(secret_strings);
    let keys = generated_keys(&cluster.spec);
    if keys.is_empty() || from_cache.as_ref().is_some_and(|values| keys.iter().all(|k| values.contains_key(k))) {
        return Ok(from_cache);
    }
    Ok(get::<Secret>(client, namespace, &secret_name).await?.map(secret_strings))
}

/// The files claim, and whether the S3 credentials Secret exists.
async fn storage(
    client: &Client,
    caches: &ChildCaches,
    cluster: &WebCluster,
    namespace: &str,
    name: &str,
) -> Result<(Option<PersistentVolumeClaim>, Option<bool>), ApiError> {
    let Some(storage) = &cluster.spec.storage else { return Ok((None, None)) };
    let claim = match storage.volume.as_ref().map(|v| &v.existing_claim) {
        // The user's own claim is not in the operator's caches.
        Some(Some(existing)) => get(client, namespace, existing).await?,
        Some(None) => cached(caches, namespace, &names::files(name)),
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
) -> Result<Option<Result<ExternalUrls, String>>, ApiError> {
    let Some(external) = cluster.spec.database.as_ref().and_then(|db| db.external.as_ref()) else { return Ok(None) };
    let urls =
        external_urls(client, namespace, &external.write_url_secret_ref, external.read_url_secret_ref.as_ref()).await?;
    Ok(Some(urls))
}

/// GET one object; `None` when it does not exist.
pub async fn get<K>(client: &Client, namespace: &str, name: &str) -> Result<Option<K>, ApiError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| ApiError::new("get", &K::kind(&()), namespace, name, e))
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
) -> Result<Result<ExternalUrls, String>, ApiError> {
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
) -> Result<Result<String, String>, ApiError> {
    let Some(secret) = get::<Secret>(client, namespace, &reference.name).await? else {
        return Ok(Err(format!("Secret {} not found (spec.database.external)", reference.name)));
    };
    Ok(secret_strings(secret)
        .remove(&reference.key)
        .ok_or_else(|| format!("Secret {} has no key {} (spec.database.external)", reference.name, reference.key)))
}
