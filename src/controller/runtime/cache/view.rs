//! What the caches keep of each kind beside its [`Digest`](super::digest::Digest):
//! nothing for most kinds, a slimmed copy (packed as JSON) of the few the
//! status and the plan read.

use std::fmt::Debug;

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
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::core::PartialObjectMeta;
use serde::de::DeserializeOwned;

use super::packed::Packed;
use crate::desired::HOLD_ANNOTATION;
use crate::desired::gateway::HTTPRoute;

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

    /// The kind comes from a CRD the cluster may lack: it is watched once the
    /// API server serves it (and counts as listed, empty, until then).
    const OPTIONAL: bool = false;

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

metadata_only!(ConfigMap, Service, Ingress, PodDisruptionBudget, HorizontalPodAutoscaler, NetworkPolicy);

/// What the failover reads of a database pod (its labels are in its digest).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PodState {
    /// The Ready condition is True and the pod is not being deleted.
    pub ready: bool,
    /// Since when it is ready or not: the Ready condition's last transition,
    /// else the pod's creation.
    pub since: Option<Timestamp>,
}

impl Cached for Pod {
    type Watched = Pod;
    type View = PodState;
    fn view(pod: Pod) -> PodState {
        let condition = pod.status.and_then(|s| s.conditions).and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"));
        let deleting = pod.metadata.deletion_timestamp.is_some();
        PodState {
            ready: !deleting && condition.as_ref().is_some_and(|c| c.status == "True"),
            since: condition.and_then(|c| c.last_transition_time).or(pod.metadata.creation_timestamp).map(|t| t.0),
        }
    }
}

impl Cached for HTTPRoute {
    type Watched = PartialObjectMeta<HTTPRoute>;
    type View = ();
    const OPTIONAL: bool = true;
    fn view(_: Self::Watched) {}
}

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
