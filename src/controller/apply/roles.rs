//! The role labels of the database pods: the read-write Service selects the
//! primary by it, the read-only one the replicas, and a pod's agent starts in
//! the role its label names.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::controller::error::{ApiError, is_not_found};
use crate::controller::runtime::cache::ChildCaches;
use crate::desired::{ROLE_LABEL, ROLE_PRIMARY, ROLE_REPLICA, names};

/// Labels pod `primary` primary and every other database pod of `cluster`
/// (ordinals 0..`pods`) replica. Pods labelled already, or not created yet,
/// cost no request.
pub async fn label_database_pods(
    client: &Client,
    caches: &ChildCaches,
    namespace: &str,
    cluster: &str,
    pods: i32,
    primary: &str,
) -> Result<(), ApiError> {
    for ordinal in 0..pods {
        let name = names::database_pod(cluster, ordinal);
        let role = if name == primary { ROLE_PRIMARY } else { ROLE_REPLICA };
        if caches.pod_has_label(namespace, &name, ROLE_LABEL, role) == Some(false) {
            set_role(client, namespace, &name, role).await?;
        }
    }
    Ok(())
}

/// Gives pod `name` the role label `role`; a pod that does not exist needs
/// none. The pod's resourceVersion once labelled, when it exists.
pub async fn set_role(client: &Client, namespace: &str, name: &str, role: &str) -> Result<Option<String>, ApiError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let patch = json!({ "metadata": { "labels": { ROLE_LABEL: role } } });
    match pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(pod) => Ok(pod.metadata.resource_version),
        Err(error) if is_not_found(&error) => Ok(None),
        Err(error) => Err(ApiError::new("label", "Pod", namespace, name, error)),
    }
}
