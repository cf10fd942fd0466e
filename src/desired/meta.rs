//! Labels, metadata and owner references every child carries, and the
//! [`Parent`] (the WebCluster's spec and identity) every component builder reads.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::Resource;

use super::{BuildError, names};
use crate::api::{DeletionPolicy, WebCluster, WebClusterSpec};

/// Label keys and values every child carries.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The WebCluster a child belongs to.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// What part of the stack a child is.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// The larger application: the WebCluster.
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
/// Who manages the child; the controller prunes only objects with this label.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The operator's name as manager and field manager.
pub const MANAGER: &str = "webcluster-operator";
/// The label the StatefulSet controller puts on each pod: its name.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Marks objects holding data (kept under `deletionPolicy: Retain`, never pruned).
pub const DATA_LABEL: &str = "webcluster.io/data";

/// Components, as the value of [`COMPONENT_LABEL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// The web application.
    App,
    /// A cron task's pods.
    Cron,
    /// The migration Job's pod.
    Migration,
    /// memcached or redis.
    Cache,
    /// The database.
    Database,
    /// Varnish.
    HttpCache,
    /// The shared files claim.
    Files,
    /// The generated Secret.
    Credentials,
    /// The Ingress and NetworkPolicies.
    Network,
}

impl Component {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::App => "app",
            Component::Cron => "cron",
            Component::Migration => "migration",
            Component::Cache => "cache",
            Component::Database => "database",
            Component::HttpCache => "http-cache",
            Component::Files => "files",
            Component::Credentials => "credentials",
            Component::Network => "network",
        }
    }
}

/// Labels that select the pods of `component` of the WebCluster `cluster`.
pub fn selector_labels(cluster: &str, component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        (INSTANCE_LABEL.to_string(), cluster.to_string()),
        (COMPONENT_LABEL.to_string(), component.as_str().to_string()),
    ])
}

/// [`selector_labels`] as a label selector string (`key=value,...`), as the scale subresource reports it.
pub fn selector_string(cluster: &str, component: Component) -> String {
    let labels = selector_labels(cluster, component);
    labels.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(",")
}

/// The selector of every object the operator manages; with a component, of that component's objects only.
pub fn managed_selector(component: Option<Component>) -> String {
    let managed = format!("{MANAGED_BY_LABEL}={MANAGER}");
    match component {
        Some(component) => format!("{managed},{COMPONENT_LABEL}={}", component.as_str()),
        None => managed,
    }
}

/// What every component builder needs: the spec and the identity of the WebCluster.
pub struct Parent<'a> {
    /// The WebCluster's spec.
    pub spec: &'a WebClusterSpec,
    /// The WebCluster's name.
    pub name: &'a str,
    /// The WebCluster's namespace.
    pub namespace: &'a str,
    owner: OwnerReference,
}

impl<'a> Parent<'a> {
    /// Reads the identity of `cluster`; it needs a name and a namespace.
    pub fn new(cluster: &'a WebCluster) -> Result<Self, BuildError> {
        let name = cluster.metadata.name.as_deref().ok_or(BuildError::MissingMetadata("name"))?;
        let namespace = cluster.metadata.namespace.as_deref().ok_or(BuildError::MissingMetadata("namespace"))?;
        let owner = OwnerReference {
            api_version: WebCluster::api_version(&()).into_owned(),
            kind: WebCluster::kind(&()).into_owned(),
            name: name.to_string(),
            uid: cluster.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        Ok(Self { spec: &cluster.spec, name, namespace, owner })
    }

    /// Labels that select a component's pods: stable for the object's life.
    pub fn selector_labels(&self, component: Component) -> BTreeMap<String, String> {
        selector_labels(self.name, component)
    }

    /// A label selector matching [`Parent::selector_labels`].
    pub fn selector(&self, component: Component) -> LabelSelector {
        LabelSelector { match_labels: Some(self.selector_labels(component)), match_expressions: None }
    }

    /// The standard `app.kubernetes.io/*` labels of a component.
    pub fn labels(&self, component: Component, software: &str) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels(component);
        labels.insert(NAME_LABEL.into(), software.into());
        labels.insert(PART_OF_LABEL.into(), self.name.into());
        labels.insert(MANAGED_BY_LABEL.into(), MANAGER.into());
        labels
    }

    /// Metadata of a child: name, namespace, labels and the controller owner reference.
    pub fn meta(&self, name: String, component: Component, software: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.to_string()),
            labels: Some(self.labels(component, software)),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    /// Metadata of a data object (a claim, the generated Secret). Under
    /// `deletionPolicy: Retain` it has no owner reference, so deleting the
    /// WebCluster (or uninstalling the operator) never garbage-collects it.
    pub fn data_meta(&self, name: String, component: Component, software: &str) -> ObjectMeta {
        let mut meta = self.meta(name, component, software);
        if let Some(labels) = meta.labels.as_mut() {
            labels.insert(DATA_LABEL.into(), "true".into());
        }
        if self.spec.deletion_policy == DeletionPolicy::Retain {
            meta.owner_references = None;
        }
        meta
    }

    /// `<pod>.<headless service>.<namespace>.svc`: a pod's stable DNS name.
    pub fn pod_host(&self, pod: &str, headless_service: &str) -> String {
        names::pod_host(pod, headless_service, self.namespace)
    }

    /// `<service>.<namespace>.svc`.
    pub fn service_host(&self, service: &str) -> String {
        format!("{service}.{}.svc", self.namespace)
    }
}
