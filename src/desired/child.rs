//! One typed object the builder produces.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::gateway::HTTPRoute;

macro_rules! child_kinds {
    ($($kind:ident),* $(,)?) => {
        /// A child object of a WebCluster, typed by kind.
        #[derive(Clone, Debug, PartialEq)]
        #[allow(clippy::large_enum_variant)] // built once per reconcile, never stored in bulk
        pub enum Child {
            $(
                #[doc = concat!("A ", stringify!($kind), ".")]
                $kind($kind),
            )*
        }

        impl Child {
            /// The object's metadata.
            pub fn meta(&self) -> &ObjectMeta {
                match self { $(Child::$kind(o) => &o.metadata,)* }
            }

            /// The object's kind, for example `Deployment`.
            pub fn kind(&self) -> &'static str {
                match self { $(Child::$kind(_) => <$kind as k8s_openapi::Resource>::KIND,)* }
            }

            /// The object's API coordinates, for dynamic API calls.
            pub fn api_resource(&self) -> kube::core::ApiResource {
                match self { $(Child::$kind(_) => kube::core::ApiResource::erase::<$kind>(&()),)* }
            }

            /// The object as JSON, with apiVersion and kind.
            pub fn to_json(&self) -> serde_json::Value {
                let value = match self { $(Child::$kind(o) => serde_json::to_value(o),)* };
                // Serialising k8s-openapi types into a Value cannot fail: they hold no maps with non-string keys.
                value.unwrap_or_default()
            }
        }

        $(
            impl From<$kind> for Child {
                fn from(object: $kind) -> Self { Child::$kind(object) }
            }
        )*
    };
}

/// Calls `$m!` with every kind the builder produces, so the controller's
/// watches and the [`Child`] enum list the same kinds.
#[macro_export]
macro_rules! with_child_kinds {
    ($m:ident) => {
        $m!(
            Secret,
            ConfigMap,
            PersistentVolumeClaim,
            Service,
            StatefulSet,
            Deployment,
            Job,
            CronJob,
            Ingress,
            PodDisruptionBudget,
            HorizontalPodAutoscaler,
            NetworkPolicy,
            HTTPRoute,
        );
    };
}

with_child_kinds!(child_kinds);

impl Child {
    /// The object's name.
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }
}
