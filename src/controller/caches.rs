//! Caches of every child kind, filled by watches, and the triggers that map a
//! changed child back to its WebCluster. Each object is kept as a [`Digest`] of
//! its metadata; the few kinds the status and the rollout read also keep a
//! slimmed copy (a [`Cached::View`]), so a reconcile reads its snapshot from
//! memory instead of GETting it.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::{Stream, StreamExt, future};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolumeClaim, Pod, PodSpec, PodTemplateSpec, Secret, Service,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::digest::Digest;
use crate::api::WebCluster;
use crate::desired::HOLD_ANNOTATION;
use crate::desired::meta::{Component, INSTANCE_LABEL, managed_selector};

/// A stream of WebClusters to reconcile because a child changed.
pub type Trigger = Pin<Box<dyn Stream<Item = ObjectRef<WebCluster>> + Send>>;

/// How one kind is watched, and what is kept of it beside its digest.
pub trait Cached: 'static {
    /// What the watch yields: the object, or its metadata only.
    type Watched: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static;
    /// What the controller reads of the object beyond its digest.
    type View: Clone + Send + Sync + 'static;

    /// Reduces a watched object to its view.
    fn view(object: Self::Watched) -> Self::View;
}

macro_rules! metadata_only {
    ($($kind:ident),* $(,)?) => {
        $(impl Cached for $kind {
            type Watched = PartialObjectMeta<$kind>;
            type View = ();
            fn view(_: Self::Watched) {}
        })*
    };
}

metadata_only!(ConfigMap, Service, Ingress, PodDisruptionBudget, HorizontalPodAutoscaler, NetworkPolicy, Pod);

/// The metadata a view keeps: name, generation and the hold annotation.
fn slim_meta(meta: ObjectMeta) -> ObjectMeta {
    let hold = meta.annotations.and_then(|mut a| a.remove_entry(HOLD_ANNOTATION));
    ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        generation: meta.generation,
        annotations: hold.map(|entry| [entry].into()),
        ..ObjectMeta::default()
    }
}

/// Keeps only each container's name and image: the rollout reads the serving image.
fn slim_template(template: &mut PodTemplateSpec) {
    template.metadata = None;
    let containers = template.spec.take().map(|pod| pod.containers).unwrap_or_default();
    let containers =
        containers.into_iter().map(|c| Container { name: c.name, image: c.image, ..Container::default() }).collect();
    template.spec = Some(PodSpec { containers, ..PodSpec::default() });
}

/// A slimmed object kept as its JSON. k8s-openapi structs are wide: a
/// StatefulSet takes 2.6 KB even when empty, its slimmed JSON a few hundred
/// bytes (about 10 KB of structs per WebCluster before). A reconcile decodes
/// the handful it reads.
pub struct Packed<K> {
    json: Arc<[u8]>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Packed<K> {
    fn clone(&self) -> Self {
        Self { json: self.json.clone(), kind: PhantomData }
    }
}

impl<K: Serialize + DeserializeOwned> Packed<K> {
    fn pack(object: &K) -> Self {
        let json = serde_json::to_vec(object).unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot encode a cached object; it reads as missing");
            Vec::new()
        });
        Self { json: json.into(), kind: PhantomData }
    }

    /// The object; `None` if it could not be kept (the caller treats it as not cached).
    pub fn unpack(&self) -> Option<K> {
        serde_json::from_slice(&self.json).ok()
    }
}

macro_rules! viewed {
    ($($kind:ident => |$object:ident| $slim:block),* $(,)?) => {
        $(impl Cached for $kind {
            type Watched = $kind;
            type View = Packed<$kind>;
            fn view(mut $object: $kind) -> Packed<$kind> {
                $object.metadata = slim_meta(std::mem::take(&mut $object.metadata));
                $slim
                Packed::pack(&$object)
            }
        })*
    };
}

viewed! {
    Secret => |object| {},
    PersistentVolumeClaim => |object| {},
    Deployment => |object| { slim_template(&mut object.spec.template); },
    StatefulSet => |object| {
        object.spec.template = PodTemplateSpec::default();
        object.spec.volume_claim_templates = None;
    },
    Job => |object| {
        if let Some(spec) = object.spec.as_mut() {
            spec.template = PodTemplateSpec::default();
        }
    },
    CronJob => |object| { object.spec.job_template = Default::default(); },
}

/// One cached object.
struct Entry<V> {
    digest: Digest,
    view: V,
}

/// Entries of one kind by namespace, then name (a namespace is stored once).
type Entries<V> = HashMap<String, HashMap<String, Entry<V>>>;

/// The cache of one kind.
pub struct KindCache<V> {
    entries: RwLock<Entries<V>>,
    /// The first full list has arrived.
    listed: AtomicBool,
}

impl<V> Default for KindCache<V> {
    fn default() -> Self {
        Self { entries: RwLock::new(HashMap::new()), listed: AtomicBool::new(false) }
    }
}

impl<V> KindCache<V> {
    fn read<T>(&self, namespace: &str, name: &str, f: impl FnOnce(&Entry<V>) -> T) -> Option<T> {
        let entries = self.entries.read().ok()?;
        entries.get(namespace)?.get(name).map(f)
    }

    fn insert(&self, (namespace, name): (String, String), entry: Entry<V>) {
        if let Ok(mut entries) = self.entries.write() {
            entries.entry(namespace).or_default().insert(name, entry);
        }
    }

    fn remove(&self, (namespace, name): &(String, String)) {
        if let Ok(mut entries) = self.entries.write()
            && let Some(names) = entries.get_mut(namespace)
        {
            names.remove(name);
            if names.is_empty() {
                entries.remove(namespace);
            }
        }
    }

    /// After a (re)list: drops what the list did not contain.
    fn retain(&self, listed: &HashSet<(String, String)>) {
        if let Ok(mut entries) = self.entries.write() {
            for (namespace, names) in entries.iter_mut() {
                names.retain(|name, _| listed.contains(&(namespace.clone(), name.clone())));
            }
            entries.retain(|_, names| !names.is_empty());
        }
        self.listed.store(true, Ordering::Release);
    }

    /// Names of the objects in `namespace` whose controller is `uid`, data objects excluded.
    fn controlled_by(&self, namespace: &str, uid: &str) -> Vec<String> {
        let Ok(entries) = self.entries.read() else { return Vec::new() };
        let names = entries.get(namespace).into_iter().flatten();
        names.filter(|(_, e)| e.digest.controlled_by(uid) && !e.digest.is_data()).map(|(n, _)| n.clone()).collect()
    }
}

/// The cache of kind `K` inside [`ChildCaches`].
pub trait CacheOf<K: Cached> {
    /// The cache.
    fn cache(&self) -> &KindCache<K::View>;
}

/// The WebCluster a labelled object belongs to.
fn owner_of(meta: &ObjectMeta) -> Option<ObjectRef<WebCluster>> {
    let instance = meta.labels.as_ref()?.get(INSTANCE_LABEL)?;
    Some(ObjectRef::new(instance).within(meta.namespace.as_deref()?))
}

fn key_of(meta: &ObjectMeta) -> (String, String) {
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

/// Watches kind `K` into `cache`; yields the owning WebClusters of changes.
fn watch<K: Cached>(
    client: &Client,
    namespace: Option<&str>,
    selector: &str,
    cache: Arc<KindCache<K::View>>,
) -> Trigger {
    let api: Api<K::Watched> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
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
        owner
    });
    Box::pin(stream.filter_map(future::ready))
}

macro_rules! child_caches {
    ($($kind:ident),* $(,)?) => {
        /// One cache per child kind, and one of database pods.
        #[allow(non_snake_case)] // fields are named after their kinds
        #[derive(Clone)]
        pub struct ChildCaches {
            $($kind: Arc<KindCache<<$kind as Cached>::View>>,)*
            pods: Arc<KindCache<()>>,
        }

        $(impl CacheOf<$kind> for ChildCaches {
            fn cache(&self) -> &KindCache<<$kind as Cached>::View> {
                &self.$kind
            }
        })*

        impl CacheOf<Pod> for ChildCaches {
            fn cache(&self) -> &KindCache<()> {
                &self.pods
            }
        }

        impl ChildCaches {
            /// Starts the watches; returns the caches and the triggers to merge into the controller.
            pub fn watch(client: &Client, namespace: Option<&str>) -> (Self, Vec<Trigger>) {
                let caches = Self { $($kind: Arc::default(),)* pods: Arc::default() };
                let children = managed_selector(None);
                let database_pods = managed_selector(Some(Component::Database));
                let triggers = vec![
                    $(watch::<$kind>(client, namespace, &children, caches.$kind.clone()),)*
                    watch::<Pod>(client, namespace, &database_pods, caches.pods.clone()),
                ];
                (caches, triggers)
            }

            /// Every cache holds its first full list.
            pub fn ready(&self) -> bool {
                $(self.$kind.listed.load(Ordering::Acquire) &&)* self.pods.listed.load(Ordering::Acquire)
            }

            /// `f` of one child's digest, read in place; `None` when the child is not cached.
            pub fn with_digest<T>(&self, kind: &str, namespace: &str, name: &str, f: impl FnOnce(&Digest) -> T) -> Option<T> {
                match kind {
                    $(stringify!($kind) => self.$kind.read(namespace, name, |e| f(&e.digest)),)*
                    _ => None,
                }
            }

            /// Every cached child in `namespace` whose controller is the WebCluster
            /// `uid`, data objects excluded.
            pub fn controlled_by(&self, namespace: &str, uid: &str) -> Vec<(ApiResource, String)> {
                let mut found = Vec::new();
                $(
                    let resource = ApiResource::erase::<$kind>(&());
                    found.extend(self.$kind.controlled_by(namespace, uid).into_iter().map(|n| (resource.clone(), n)));
                )*
                found
            }
        }
    };
}

crate::with_child_kinds!(child_caches);

impl ChildCaches {
    /// The view of one cached object.
    pub fn get<K: Cached>(&self, namespace: &str, name: &str) -> Option<K::View>
    where
        Self: CacheOf<K>,
    {
        CacheOf::<K>::cache(self).read(namespace, name, |e| e.view.clone())
    }

    /// Whether the cached pod `name` has the label `key=value`; `None` when it is not cached.
    pub fn pod_has_label(&self, namespace: &str, name: &str, key: &str, value: &str) -> Option<bool> {
        self.pods.read(namespace, name, |e| e.digest.has_label(key, value))
    }
}

/// Merges the triggers into one stream.
pub fn merge(triggers: Vec<Trigger>) -> impl Stream<Item = ObjectRef<WebCluster>> + Send {
    futures::stream::select_all(triggers)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{StatefulSetSpec, StatefulSetStatus};

    use super::*;

    #[test]
    fn a_viewed_object_reads_back_slimmed() {
        let set = StatefulSet {
            metadata: ObjectMeta {
                name: Some("shop-db".into()),
                generation: Some(3),
                labels: Some([("a".to_string(), "b".to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: StatefulSetSpec { replicas: Some(2), ..StatefulSetSpec::default() },
            status: Some(StatefulSetStatus { ready_replicas: Some(1), replicas: 2, ..StatefulSetStatus::default() }),
        };
        let read = <StatefulSet as Cached>::view(set.clone()).unpack().expect("decodes");
        assert_eq!(read.status, set.status);
        assert_eq!(read.spec.replicas, Some(2));
        assert_eq!(read.metadata.generation, Some(3));
        assert_eq!(read.metadata.labels, None, "labels are not kept");
    }
}
