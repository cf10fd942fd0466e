//! Errors of the reconcile path. Each says what failed and on which object.

use crate::desired::BuildError;

/// Why a reconcile failed. Transient failures are retried with backoff;
/// problems with the user's input are reported in status instead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{action} {kind} {namespace}/{name}: {source}")]
    Api {
        /// What the operator tried, for example `apply`.
        action: &'static str,
        /// Kind of the object.
        kind: String,
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The builder refused the WebCluster.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The WebCluster is missing its metadata (never true for objects from the API server).
    #[error("the WebCluster has no {0}")]
    MissingMetadata(&'static str),
}

impl Error {
    /// An API error on one object.
    pub fn api(action: &'static str, kind: &str, namespace: &str, name: &str, source: kube::Error) -> Self {
        Error::Api { action, kind: kind.into(), namespace: namespace.into(), name: name.into(), source }
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
