//! Caches of every child kind, filled by watches, and the triggers that map a
//! changed child back to its WebCluster. Each object is kept as a [`Digest`] of
//! its metadata; the few kinds the status and the plan read also keep a
//! slimmed copy (a [`Cached::View`]), so a reconcile reads its snapshot from
//! memory instead of GETting it.
//!
//! [`view`] says what is kept of each kind, [`packed`] how a view is stored,
//! [`kind`] is the cache of one kind, [`watch`] fills it, and [`ChildCaches`]
//! is the set of every kind's cache.

pub mod digest;
mod kind;
mod packed;
mod view;
mod watch;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::core::ApiResource;

use crate::desired::gateway::HTTPRoute;
use crate::desired::meta::{Component, managed_selector};
use digest::Digest;
use kind::KindCache;
pub use packed::Packed;
pub use view::{Cached, PodState};
use watch::watch;
pub use watch::{Trigger, merge};

/// The cache of kind `K` inside [`ChildCaches`].
pub trait CacheOf<K: Cached> {
    /// The cache.
    fn cache(&self) -> &KindCache<K::View>;
}

macro_rules! child_caches {
    ($($kind:ident),* $(,)?) => {
        /// One cache per child kind, and one of database pods.
        #[allow(non_snake_case)] // fields are named after their kinds
        #[derive(Clone)]
        pub struct ChildCaches {
            $($kind: Arc<KindCache<<$kind as Cached>::View>>,)*
            pods: Arc<KindCache<PodState>>,
        }

        $(impl CacheOf<$kind> for ChildCaches {
            fn cache(&self) -> &KindCache<<$kind as Cached>::View> {
                &self.$kind
            }
        })*

        impl CacheOf<Pod> for ChildCaches {
            fn cache(&self) -> &KindCache<PodState> {
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

            /// Every cache holds its first full list. A kind from a CRD is not
            /// waited for: without permission to list it (an older Role), the
            /// rest still runs, and applying one says what is missing.
            pub fn ready(&self) -> bool {
                $((<$kind as Cached>::OPTIONAL || self.$kind.listed()) &&)* self.pods.listed()
            }

            /// The API server serves `kind` (a kind from a CRD may be missing).
            pub fn serves(&self, kind: &str) -> bool {
                match kind {
                    $(stringify!($kind) => self.$kind.served(),)*
                    _ => true,
                }
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

    /// The state of the cached database pod `name`; `None` when it is not cached.
    pub fn pod_state(&self, namespace: &str, name: &str) -> Option<PodState> {
        self.pods.read(namespace, name, |e| e.view)
    }

    /// Whether the cached pod `name` has the label `key=value`; `None` when it is not cached.
    pub fn pod_has_label(&self, namespace: &str, name: &str, key: &str, value: &str) -> Option<bool> {
        self.pods.read(namespace, name, |e| e.digest.has_label(key, value))
    }
}
