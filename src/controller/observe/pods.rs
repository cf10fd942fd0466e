//! The database pods as the caches see them, and which one is the primary now.

use crate::api::WebCluster;
use crate::controller::runtime::cache::{ChildCaches, PodState};
use crate::desired::{ROLE_LABEL, ROLE_PRIMARY, names};

/// One database pod.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabasePod {
    /// The pod's name.
    pub name: String,
    /// Its readiness; `None` while it does not exist.
    pub state: Option<PodState>,
    /// It carries the primary role label.
    pub labelled_primary: bool,
}

/// Pods 0..`pods` of `cluster`'s database, by ordinal.
pub fn database_pods(caches: &ChildCaches, namespace: &str, cluster: &str, pods: i32) -> Vec<DatabasePod> {
    (0..pods)
        .map(|ordinal| {
            let name = names::database_pod(cluster, ordinal);
            DatabasePod {
                state: caches.pod_state(namespace, &name),
                labelled_primary: caches.pod_has_label(namespace, &name, ROLE_LABEL, ROLE_PRIMARY) == Some(true),
                name,
            }
        })
        .collect()
}

/// The primary now: the one this operator promoted last (`promoted`: the
/// caches may not show its labels yet), else the pod labelled primary, else
/// the one the status records, else pod 0; `None` without pods.
pub fn current_primary<'a>(
    pods: &'a [DatabasePod],
    cluster: &WebCluster,
    promoted: Option<&str>,
) -> Option<&'a DatabasePod> {
    let recorded = cluster.status.as_ref().and_then(|s| s.database.as_ref()).and_then(|d| d.primary.as_deref());
    let named = |name: Option<&str>| pods.iter().find(|pod| Some(pod.name.as_str()) == name);
    named(promoted)
        .or_else(|| pods.iter().find(|pod| pod.labelled_primary))
        .or_else(|| named(recorded))
        .or_else(|| pods.first())
}
