//! Watches that fill the caches and map a changed child to its WebCluster.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt, future};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::ApiResource;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, Resource};

use super::digest::Digest;
use super::kind::{Entry, KindCache};
use super::view::Cached;
use crate::api::WebCluster;
use crate::controller::runtime::coalesce::Urgency;
use crate::desired::meta::INSTANCE_LABEL;

/// A stream of WebClusters to reconcile because something changed, with how
/// soon: a deleted child at once, a child's other changes once quiet.
pub type Trigger = Pin<Box<dyn Stream<Item = (ObjectRef<WebCluster>, Urgency)> + Send>>;

/// The WebCluster a labelled object belongs to.
fn owner_of(meta: &ObjectMeta) -> Option<ObjectRef<WebCluster>> {
    let instance = meta.labels.as_ref()?.get(INSTANCE_LABEL)?;
    Some(ObjectRef::new(instance).within(meta.namespace.as_deref()?))
}

fn key_of(meta: &ObjectMeta) -> (String, String) {
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

/// Watches kind `K` into `cache`; yields the owning WebClusters of changes.
pub fn watch<K: Cached>(
    client: &Client,
    namespace: Option<&str>,
    selector: &str,
    cache: Arc<KindCache<K::View>>,
) -> Trigger {
    let api: Api<K::Watched> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let discovered = cache.clone();
    // Keys seen since the last (re)list started.
    let mut listing: Option<HashSet<(String, String)>> = None;
    let stream = watcher(api, watcher::Config::default().labels(selector)).default_backoff().map(move |event| {
        let (object, deleted) = match event {
            Ok(Event::Apply(object)) => (object, false),
            Ok(Event::InitApply(object)) => {
                listing.get_or_insert_default().insert(key_of(object.meta()));
                (object, false)
            }
            Ok(Event::Delete(object)) => (object, true),
            Ok(Event::Init) => {
                listing = Some(HashSet::new());
                return None;
            }
            Ok(Event::InitDone) => {
                cache.retain(&listing.take().unwrap_or_default());
                return None;
            }
            Err(error) => {
                // The watcher retries with backoff; say why, so a missing permission is visible.
                tracing::warn!(kind = K::Watched::kind(&()).as_ref(), %error, "watch failed; retrying");
                return None;
            }
        };
        let (key, owner) = (key_of(object.meta()), owner_of(object.meta()));
        if deleted {
            cache.remove(&key);
        } else {
            let digest = Digest::of(object.meta());
            cache.insert(key, Entry { digest, view: K::view(object) });
        }
        owner.map(|owner| (owner, if deleted { Urgency::Now } else { Urgency::Settle }))
    });
    let changes = stream.filter_map(future::ready);
    if !K::OPTIONAL {
        return Box::pin(changes);
    }
    let served = until_served::<K::Watched, _>(client.clone(), discovered);
    Box::pin(
        futures::stream::once(async move {
            served.await;
            changes
        })
        .flatten(),
    )
}

/// How often a kind the API server does not serve is looked for again.
const SERVED_RECHECK: Duration = Duration::from_secs(15);

/// Returns once the API server serves kind `K` (its CRD is installed); until
/// then the cache is empty and counts as listed, so the controller runs without it.
async fn until_served<K: Resource<DynamicType = ()>, V>(client: Client, cache: Arc<KindCache<V>>) {
    let resource = ApiResource::erase::<K>(&());
    let mut said = false;
    loop {
        match client.list_api_group_resources(&resource.api_version).await {
            Ok(list) if list.resources.iter().any(|r| r.name == resource.plural) => {
                tracing::info!(kind = resource.kind, "the API server serves the kind; watching it");
                cache.set_served(true);
                return;
            }
            answer => {
                if !said {
                    let error = answer.err().map(|e| e.to_string()).unwrap_or_default();
                    tracing::info!(kind = resource.kind, api = resource.api_version, %error, "the API server does not serve the kind (its CRD is not installed); watching it once it does");
                    said = true;
                }
                cache.set_served(false);
            }
        }
        tokio::time::sleep(SERVED_RECHECK).await;
    }
}

/// Merges the triggers into one stream.
pub fn merge(triggers: Vec<Trigger>) -> impl Stream<Item = (ObjectRef<WebCluster>, Urgency)> + Send {
    futures::stream::select_all(triggers)
}
