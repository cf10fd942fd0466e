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

/// The object does not exist.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// What a failed API call needs before a retry can succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The API server refused the object (400, 404, 422 and other 4xx): only a
    /// change of the spec can help, so it waits for one.
    Refused,
    /// The operator lacks a permission (401, 403): an administrator must grant it.
    Forbidden,
    /// A conflict, throttling (409, 429), a server error (5xx) or no answer:
    /// retried with backoff.
    Transient,
}

impl Fault {
    /// The kind of `error`.
    pub fn of(error: &kube::Error) -> Fault {
        match api_code(error) {
            Some(401 | 403) => Fault::Forbidden,
            Some(408 | 409 | 429) => Fault::Transient,
            Some(code) if (400..500).contains(&code) => Fault::Refused,
            _ => Fault::Transient,
        }
    }
}

/// The HTTP status code of an error the API server answered.
pub fn api_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// The API server's own words for `error` (its Status message), without the
/// client's wrapping; the whole error for failures without an answer.
pub fn api_words(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => elide_value(&status.message),
        kube::Error::Api(status) => format!("{} {}", status.code, status.reason),
        other => other.to_string(),
    }
}

/// Longest rejected value kept in [`api_words`].
const VALUE_MAX: usize = 80;

/// `words` with a long rejected value (`Invalid value: <a whole object>: why`)
/// elided, so the field and the reason fit a condition; the log keeps the value.
fn elide_value(words: &str) -> String {
    const MARK: &str = "Invalid value: ";
    let Some(start) = words.find(MARK).map(|at| at + MARK.len()) else { return words.to_string() };
    match words[start..].rfind(": ") {
        Some(length) if length > VALUE_MAX => format!("{}…{}", &words[..start], &words[start + length..]),
        _ => words.to_string(),
    }
}

impl ApiError {
    /// What failed, short enough for a condition: the child, the HTTP code, the API's words.
    pub fn summary(&self) -> String {
        let code = api_code(&self.source).map(|c| format!(" (HTTP {c})")).unwrap_or_default();
        format!("{} {} {}{code}: {}", self.action, self.kind, self.name, api_words(&self.source))
    }

    /// The kind of failure.
    pub fn fault(&self) -> Fault {
        Fault::of(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(code: u16, message: &str) -> kube::Error {
        let status = kube::core::Status { code, message: message.into(), ..kube::core::Status::failure(message, "") };
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn faults_follow_the_status_code() {
        let fault = |code| Fault::of(&answered(code, "m"));
        assert_eq!([400, 404, 422].map(fault), [Fault::Refused; 3]);
        assert_eq!([401, 403].map(fault), [Fault::Forbidden; 2]);
        assert_eq!([408, 409, 429, 500, 503].map(fault), [Fault::Transient; 5]);
        assert_eq!(Fault::of(&kube::Error::LinesCodecMaxLineLengthExceeded), Fault::Transient, "no answer");
    }

    #[test]
    fn a_long_rejected_value_is_elided() {
        let dump = format!("[{}]", r#"{"name":"data"},"#.repeat(20));
        let words = format!(
            r#"StatefulSet.apps "db" is invalid: spec.volumeClaimTemplates: Invalid value: {dump}: field is immutable"#
        );
        assert_eq!(
            api_words(&answered(422, &words)),
            r#"StatefulSet.apps "db" is invalid: spec.volumeClaimTemplates: Invalid value: …: field is immutable"#
        );
        let short = r#"spec.replicas: Invalid value: -1: must be greater than or equal to 0"#;
        assert_eq!(api_words(&answered(422, short)), short);
    }

    #[test]
    fn the_summary_names_the_child_the_code_and_the_api_words() {
        let error = ApiError::new("apply", "StatefulSet", "ns", "shop-db", answered(422, "spec: Forbidden: immutable"));
        assert_eq!(error.summary(), "apply StatefulSet shop-db (HTTP 422): spec: Forbidden: immutable");
    }
}
