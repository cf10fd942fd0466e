//! Metadata-only caches of every child kind (managedFields stripped), and the
//! triggers that map a changed child back to its WebCluster.

use std::pin::Pin;

use futures::{Stream, StreamExt, future};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::api::WebCluster;
use crate::build::meta::{COMPONENT_LABEL, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGER};

/// A stream of WebClusters to reconcile because a child changed.
pub type Trigger = Pin<Box<dyn Stream<Item = ObjectRef<WebCluster>> + Send>>;

/// Label selector of every object the operator creates (pods included).
fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGER}")
}

/// The WebCluster a labelled object belongs to.
fn owner_of<K: Resource>(object: &K) -> Option<ObjectRef<WebCluster>> {
    let instance = object.labels().get(INSTANCE_LABEL)?;
    Some(ObjectRef::new(instance).within(&object.namespace()?))
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<PartialObjectMeta<K>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Watches one kind's metadata into `writer`; yields the owning WebClusters of changes.
fn watch<K>(api: Api<PartialObjectMeta<K>>, selector: String, writer: Writer<PartialObjectMeta<K>>) -> Trigger
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let stream = watcher(api, watcher::Config::default().labels(&selector))
        .default_backoff()
        .modify(|object| object.managed_fields_mut().clear())
        .reflect(writer)
        .touched_objects()
        .filter_map(|object| future::ready(object.ok().and_then(|o| owner_of(&o))));
    Box::pin(stream)
}

fn meta_of<K: Resource<DynamicType = ()> + Clone>(
    store: &Store<PartialObjectMeta<K>>,
    namespace: &str,
    name: &str,
) -> Option<ObjectMeta> {
    store.get(&ObjectRef::new(name).within(namespace)).map(|o| o.metadata.clone())
}

macro_rules! child_stores {
    ($($kind:ident),* $(,)?) => {
        /// One metadata store per child kind.
        #[allow(non_snake_case)] // fields are named after their kinds
        #[derive(Clone)]
        pub struct ChildStores {
            $($kind: Store<PartialObjectMeta<$kind>>,)*
            /// Database and cache pods (for role labels).
            pub pods: Store<PartialObjectMeta<Pod>>,
        }

        impl ChildStores {
            /// Starts the watches; returns the stores and the triggers to merge into the controller.
            pub fn watch(client: &Client, namespace: Option<&str>) -> (Self, Vec<Trigger>) {
                let mut triggers = Vec::new();
                $(
                    #[allow(non_snake_case)]
                    let $kind = {
                        let (reader, writer) = kube::runtime::reflector::store();
                        triggers.push(watch(api::<$kind>(client, namespace), managed_selector(), writer));
                        reader
                    };
                )*
                let (pods, writer) = kube::runtime::reflector::store();
                let pod_selector = format!("{},{COMPONENT_LABEL}=database", managed_selector());
                triggers.push(watch(api::<Pod>(client, namespace), pod_selector, writer));
                (Self { $($kind,)* pods }, triggers)
            }

            /// Resolves when every store holds its first full list.
            pub async fn ready(&self) -> bool {
                $(if self.$kind.wait_until_ready().await.is_err() { return false; })*
                self.pods.wait_until_ready().await.is_ok()
            }

            /// The cached metadata of one child.
            pub fn meta(&self, kind: &str, namespace: &str, name: &str) -> Option<ObjectMeta> {
                match kind {
                    $(stringify!($kind) => meta_of(&self.$kind, namespace, name),)*
                    _ => None,
                }
            }

            /// Every cached child in `namespace` whose controller is the WebCluster `uid`.
            pub fn controlled_by(&self, namespace: &str, uid: &str) -> Vec<(ApiResource, ObjectMeta)> {
                let mut found = Vec::new();
                $(
                    for object in self.$kind.state() {
                        let controlled = object.metadata.owner_references.iter().flatten()
                            .any(|o| o.controller == Some(true) && o.uid == uid);
                        if controlled && object.metadata.namespace.as_deref() == Some(namespace) {
                            found.push((ApiResource::erase::<$kind>(&()), object.metadata.clone()));
                        }
                    }
                )*
                found
            }
        }
    };
}

crate::with_child_kinds!(child_stores);

/// Database pods of one WebCluster, from the pod store.
pub fn database_pods(stores: &ChildStores, namespace: &str, cluster: &str) -> Vec<ObjectMeta> {
    stores
        .pods
        .state()
        .iter()
        .filter(|p| {
            p.metadata.namespace.as_deref() == Some(namespace)
                && p.labels().get(INSTANCE_LABEL).map(String::as_str) == Some(cluster)
        })
        .map(|p| p.metadata.clone())
        .collect()
}

/// Merges the triggers into one stream.
pub fn merge(triggers: Vec<Trigger>) -> impl Stream<Item = ObjectRef<WebCluster>> + Send {
    futures::stream::select_all(triggers)
}
