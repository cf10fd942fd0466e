//! Errors of the reconcile path. Each variant names the step that failed; an
//! [`ApiError`] says what failed and on which object.

use crate::desired::BuildError;

/// Why a reconcile failed. Transient failures are retried with backoff;
/// problems with the user's input are reported in status instead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The WebCluster is missing its metadata (never true for objects from the API server).
    #[error("the WebCluster has no {0}")]
    MissingMetadata(&'static str),
    /// Reading the cluster's state failed.
    #[error("observe: {0}")]
    Observe(ApiError),
    /// The builder refused the WebCluster and its plan.
    #[error("desired state: {0}")]
    Desired(#[from] BuildError),
    /// Applying a child (or a replica's role label) failed.
    #[error("apply: {0}")]
    Apply(ApiError),
    /// Deleting a child the spec no longer asks for failed.
    #[error("prune: {0}")]
    Prune(ApiError),
    /// Writing the status failed.
    #[error("report: {0}")]
    Report(ApiError),
}

/// A Kubernetes API call that failed.
#[derive(Debug, thiserror::Error)]
#[error("{action} {kind} {namespace}/{name}: {source}")]
pub struct ApiError {
    /// What the operator tried, for example `apply`.
    pub action: &'static str,
    /// Kind of the object.
    pub kind: String,
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the object.
    pub name: String,
    /// The API error.
    #[source]
    pub source: kube::Error,
}

impl ApiError {
    /// An API error on one object.
    pub fn new(action: &'static str, kind: &str, namespace: &str, name: &str, source: kube::Error) -> Self {
        ApiError { action, kind: kind.into(), namespace: namespace.into(), name: name.into(), source }
    }
}

/// The API server refused a change as invalid (422) or forbidden by an
/// immutable field: retrying cannot help until the spec changes.
pub fn is_rejection(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 422 || (status.code == 400 && status.reason == "BadRequest"))
}

/// The object does not exist.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}
