//! Reads what the builder and the status need from the cluster: the generated
//! Secret, the external DSNs, and the state of the workloads.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use self::primary::PrimaryLogs;
use super::error::ApiError;
use super::runtime::cache::{CacheOf, Cached, ChildCaches, Packed};
use crate::api::{PrimaryChange, SecretKeyRef, WebCluster};
use crate::desired::credentials::{Redacted, generated_keys};
use crate::desired::{ExternalUrls, names};

pub mod pods;
pub mod primary;
pub mod references;
pub mod refused;

/// The generated values as the cluster holds them. Its `Debug` shows keys only.
#[derive(Clone, Default)]
pub struct Credentials {
    /// Data of the generated Secret, if it exists.
    pub current: Option<BTreeMap<String, String>>,
    /// Data of its copy, if it exists.
    pub copy: Option<BTreeMap<String, String>>,
    /// Claims holding data written with the generated values (the database
    /// primary's, the files claim); read only while a value is missing from both Secrets.
    pub data_claims: Vec<String>,
}

impl Credentials {
    /// The keys among `keys` that neither Secret holds.
    pub fn missing<'a>(&self, keys: &'a [String]) -> Vec<&'a String> {
        let holds =
            |data: &Option<BTreeMap<String, String>>, key: &String| data.as_ref().is_some_and(|d| d.contains_key(key));
        keys.iter().filter(|key| !holds(&self.current, key) && !holds(&self.copy, key)).collect()
    }

    /// Every value, the Secret's winning over its copy's.
    pub fn values(&self) -> BTreeMap<String, String> {
        let mut values = self.copy.clone().unwrap_or_default();
        values.extend(self.current.clone().unwrap_or_default());
        values
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("current", &self.current.as_ref().map(Redacted))
            .field("copy", &self.copy.as_ref().map(Redacted))
            .field("data_claims", &self.data_claims)
            .finish()
    }
}

/// The cluster's state as one reconcile sees it.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The generated values.
    pub credentials: Credentials,
    /// The external DSNs, or why they could not be read.
    pub external_db: Option<Result<ExternalUrls, String>>,
    /// Whether the S3 credentials Secret exists.
    pub s3_credentials_found: Option<bool>,
    /// The app Deployment.
    pub deployment: Option<Deployment>,
    /// The database StatefulSet.
    pub database: Option<StatefulSet>,
    /// The database pods, by ordinal.
    pub database_pods: Vec<pods::DatabasePod>,
    /// The database pod that is the primary now (pods::current_primary).
    pub database_primary: Option<String>,
    /// The change of primary this reconcile made, for the status.
    pub primary_change: Option<PrimaryChange>,
    /// The switchover request this reconcile handled, for the status.
    pub switchover_handled: Option<String>,
    /// The primary's log, read while the database is unsettled.
    pub primary: Option<primary::Reading>,
    /// The identity of the database's data: as the primary's log says, else
    /// as the status recorded it.
    pub database_identity: Option<String>,
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
    (caches, primary_logs): (&ChildCaches, &PrimaryLogs),
    cluster: &WebCluster,
    (namespace, name, uid): (&str, &str, &str),
    promoted: Option<&str>,
) -> Result<Snapshot, ApiError> {
    let spec = &cluster.spec;
    let managed_db = spec.database.as_ref().is_some_and(|db| db.managed.is_some());
    let database: Option<StatefulSet> = managed_db.then(|| cached(caches, namespace, &names::database(name))).flatten();
    let managed = spec.database.as_ref().and_then(|db| db.managed.as_ref());
    let database_pods = managed.map_or_else(Vec::new, |m| pods::database_pods(caches, namespace, name, m.pods()));
    let database_primary = pods::current_primary(&database_pods, cluster, promoted).map(|pod| pod.name.clone());
    let recorded = cluster.status.as_ref().and_then(|s| s.database.as_ref()).and_then(|d| d.identity.clone());
    let unsettled = database.as_ref().zip(database_primary.as_deref());
    let (credentials, storage, external_db, primary) = futures::try_join!(
        credentials(client, caches, cluster, namespace, name),
        storage(client, caches, cluster, namespace, name),
        external(client, cluster, namespace),
        primary_logs.read(client, (namespace, uid), recorded.as_deref(), unsettled),
    )?;
    let database_identity = primary.as_ref().and_then(|r| r.identity.clone()).or(recorded);
    let (files_claim, s3_credentials_found) = storage;
    let cron_jobs = spec
        .jobs
        .iter()
        .filter_map(|task| {
            Some((task.name.clone(), cached::<CronJob>(caches, namespace, &names::cron_task(name, &task.name))?))
        })
        .collect();
    Ok(Snapshot {
        credentials,
        external_db,
        s3_credentials_found,
        deployment: cached(caches, namespace, &names::app(name)),
        database,
        database_pods,
        database_primary,
        primary_change: None,
        switchover_handled: None,
        primary,
        database_identity,
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

/// The generated Secret's values and its copy's. The cache may lag behind a
/// Secret written a moment ago; generating values again would change
/// passwords, so Secrets the cache does not show with every key are read from
/// the API server, and so are the data claims when a value is in neither.
/// All in one round trip: a new WebCluster's first reconcile (neither Secret
/// exists) waits for no serial GET.
async fn credentials(
    client: &Client,
    caches: &ChildCaches,
    cluster: &WebCluster,
    namespace: &str,
    name: &str,
) -> Result<Credentials, ApiError> {
    let (main, copy) = (names::credentials(name), names::credentials_copy(name));
    let keys = generated_keys(&cluster.spec);
    let cached_data = |secret: &str| cached::<Secret>(caches, namespace, secret).map(secret_strings);
    let complete = |data: &Option<BTreeMap<String, String>>| {
        data.as_ref().is_some_and(|values| keys.iter().all(|k| values.contains_key(k)))
    };
    let from_cache = Credentials { current: cached_data(&main), copy: cached_data(&copy), data_claims: Vec::new() };
    if keys.is_empty() || (complete(&from_cache.current) && complete(&from_cache.copy)) {
        return Ok(from_cache);
    }
    let (current, copy, claims) = futures::try_join!(
        get::<Secret>(client, namespace, &main),
        get::<Secret>(client, namespace, &copy),
        data_claims(client, cluster, namespace, name),
    )?;
    let mut found =
        Credentials { current: current.map(secret_strings), copy: copy.map(secret_strings), data_claims: Vec::new() };
    if !found.missing(&keys).is_empty() {
        found.data_claims = claims;
    }
    Ok(found)
}

/// The claims of `cluster` that exist and hold data written with its
/// generated values: the database primary's and the operator's files claim.
async fn data_claims(
    client: &Client,
    cluster: &WebCluster,
    namespace: &str,
    name: &str,
) -> Result<Vec<String>, ApiError> {
    let spec = &cluster.spec;
    let mut candidates = Vec::new();
    if spec.database.as_ref().is_some_and(|db| db.managed.is_some()) {
        candidates.push(names::database_claim(name, 0));
    }
    if spec.storage.as_ref().and_then(|s| s.volume.as_ref()).is_some_and(|v| v.existing_claim.is_none()) {
        candidates.push(names::files(name));
    }
    let live = futures::future::try_join_all(
        candidates.iter().map(|claim| get::<PersistentVolumeClaim>(client, namespace, claim)),
    )
    .await?;
    // A claim being deleted (a WebCluster deleted under `Delete`) holds nothing to protect.
    let holding = live.iter().map(|c| c.as_ref().is_some_and(|c| c.metadata.deletion_timestamp.is_none()));
    Ok(candidates.iter().zip(holding).filter(|(_, holds)| *holds).map(|(claim, _)| claim.clone()).collect())
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
    // Each Secret once, however many references name it (write and read DSNs often share one).
    let references = ExternalUrls::references(external);
    let names: BTreeSet<&str> = references.iter().map(|r| r.name.as_str()).collect();
    let fetched =
        futures::future::try_join_all(names.iter().map(|name| get::<Secret>(client, namespace, name))).await?;
    let secrets: BTreeMap<&str, Option<BTreeMap<String, String>>> =
        names.into_iter().zip(fetched.into_iter().map(|s| s.map(secret_strings))).collect();
    for reference in &references {
        match secrets.get(reference.name.as_str()) {
            Some(Some(data)) if data.contains_key(&reference.key) => {}
            Some(Some(_)) => {
                let why = format!("Secret {} has no key {} (spec.database.external)", reference.name, reference.key);
                return Ok(Some(Err(why)));
            }
            _ => return Ok(Some(Err(format!("Secret {} not found (spec.database.external)", reference.name)))),
        }
    }
    let value = |r: &SecretKeyRef| {
        secrets.get(r.name.as_str()).and_then(|data| data.as_ref()?.get(&r.key).cloned()).unwrap_or_default()
    };
    Ok(Some(Ok(ExternalUrls::from_refs(external, value))))
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
