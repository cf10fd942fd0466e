//! The role label of database replicas: the read-only Service selects them by it.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::controller::error::{ApiError, is_not_found};
use crate::controller::runtime::cache::ChildCaches;
use crate::desired::{ROLE_LABEL, ROLE_REPLICA, names};

/// Labels each database replica (every pod but the primary, ordinal 0) for the
/// read-only Service. The primary needs no write: the read-write Service
/// selects it by pod name. Pods labelled already, or not created yet, cost no request.
pub async fn label_database_replicas(
    client: &Client,
    caches: &ChildCaches,
    namespace: &str,
    cluster: &str,
    replicas: i32,
) -> Result<(), ApiError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for ordinal in 1..=replicas {
        let name = names::database_pod(cluster, ordinal);
        if caches.pod_has_label(namespace, &name, ROLE_LABEL, ROLE_REPLICA) != Some(false) {
            continue;
        }
        let patch = json!({ "metadata": { "labels": { ROLE_LABEL: ROLE_REPLICA } } });
        match pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {}
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(ApiError::new("label", "Pod", namespace, &name, error)),
        }
    }
    Ok(())
}
