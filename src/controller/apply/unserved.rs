//! Children of kinds the API server does not serve (an HTTPRoute without the
//! Gateway API CRDs): left out of apply, each reported as a refusal that names
//! what to install, so the rest of the WebCluster runs.

use kube::core::Status;

use crate::controller::error::ApiError;
use crate::controller::runtime::cache::ChildCaches;
use crate::desired::Child;

/// The children the API server serves, and a failure for each of the others.
pub fn split(caches: &ChildCaches, children: Vec<Child>, namespace: &str) -> (Vec<Child>, Vec<ApiError>) {
    let (served, unserved): (Vec<Child>, Vec<Child>) = children.into_iter().partition(|c| caches.serves(c.kind()));
    let failures = unserved.iter().map(|child| not_served(child, namespace)).collect();
    (served, failures)
}

/// A 404 as discovery answered it, in words that say what to do.
fn not_served(child: &Child, namespace: &str) -> ApiError {
    let resource = child.api_resource();
    let message = format!(
        "the cluster does not serve {} ({}): install its CRDs (for HTTPRoute, Gateway API's standard channel), or remove the field that asks for it",
        resource.kind, resource.api_version
    );
    let status = Status { code: 404, reason: "NotFound".into(), ..Status::failure(&message, "NotFound") };
    ApiError::new("apply", &resource.kind, namespace, child.name(), kube::Error::Api(Box::new(status)))
}
