//! Offline front end of the builder: WebCluster YAML in, child objects out.
//! The same validation as admission, so bad input fails here first.

use serde_json::Value;

use crate::api::WebCluster;
use crate::api::validate::{self, FieldError, check_rules, check_schema};
use crate::desired::{self, BuildError, Child, Plan};

/// The apiVersion a WebCluster document must have.
const API_VERSION: &str = "webcluster.io/v1alpha1";
/// Top-level fields of a WebCluster document.
const TOP_LEVEL_FIELDS: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

/// Why a file could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The input is not YAML.
    #[error("the input is not valid YAML: {0}")]
    Yaml(String),
    /// A document is not a WebCluster or breaks the schema.
    #[error("document {document}: {}", join(.errors))]
    Invalid {
        /// 1-based index of the document in the file.
        document: usize,
        /// Every field that breaks a rule.
        errors: Vec<FieldError>,
    },
    /// The builder refused the WebCluster.
    #[error("document {document}: {source}")]
    Build {
        /// 1-based index of the document in the file.
        document: usize,
        /// What the builder said.
        source: BuildError,
    },
    /// The output could not be written as YAML.
    #[error("cannot write YAML: {0}")]
    Output(String),
}

fn join(errors: &[FieldError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

fn invalid(document: usize, path: &str, message: impl Into<String>) -> RenderError {
    RenderError::Invalid { document, errors: vec![FieldError { path: path.into(), message: message.into() }] }
}

/// Parses and validates every WebCluster in a YAML stream (documents separated
/// by `---`). Empty documents and objects of other API groups (a ConfigMap an
/// example ships beside its WebCluster) are skipped. A missing namespace means `default`.
pub fn parse(yaml: &str) -> Result<Vec<WebCluster>, RenderError> {
    // A JSON document is read as JSON, as kubectl does (JSON allows characters YAML does not, such as DEL).
    let documents: Vec<Value> = match serde_json::from_str(yaml) {
        Ok(document) => vec![document],
        Err(_) => serde_saphyr::from_multiple_with_options(yaml, stream_options())
            .map_err(|e| RenderError::Yaml(e.to_string()))?,
    };
    documents
        .into_iter()
        .enumerate()
        .filter(|(_, doc)| !doc.is_null() && !is_other_api_group(doc))
        .map(|(index, doc)| parse_document(index + 1, doc))
        .collect()
}

/// The parser's default budget stops at 1,024 documents, which a fleet's
/// manifest (one WebCluster per tenant) outgrows; render reads the user's own
/// file, so the caps scale up while the alias-expansion guards stay as they are.
fn stream_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: 1_000_000,
            max_nodes: 50_000_000,
            max_events: 200_000_000,
        },
    }
}

/// An object with an apiVersion outside `webcluster.io`.
fn is_other_api_group(document: &Value) -> bool {
    document.get("apiVersion").and_then(Value::as_str).is_some_and(|version| !version.starts_with("webcluster.io/"))
}

fn parse_document(document: usize, mut value: Value) -> Result<WebCluster, RenderError> {
    validate::integral_floats_as_integers(&mut value);
    let Some(object) = value.as_object_mut() else {
        return Err(invalid(document, "(document)", "must be a mapping with apiVersion, kind, metadata and spec"));
    };
    if object.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
        return Err(invalid(document, "apiVersion", format!("must be {API_VERSION}")));
    }
    if object.get("kind").and_then(Value::as_str) != Some("WebCluster") {
        return Err(invalid(document, "kind", "must be WebCluster"));
    }
    if let Some(unknown) = object.keys().find(|key| !TOP_LEVEL_FIELDS.contains(&key.as_str())) {
        return Err(invalid(document, unknown, "unknown field: allowed are apiVersion, kind, metadata, spec, status"));
    }
    let metadata = object.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
    if let Some(meta) = metadata.as_object_mut() {
        meta.entry("namespace").or_insert_with(|| Value::String("default".into()));
    }
    // The API server prunes null fields before it decodes (after it refused unknown ones).
    let mut pruned = value.clone();
    validate::prune_nulls(&mut pruned);
    let cluster: WebCluster = serde_path_to_error::deserialize(&pruned).map_err(|e| {
        let (path, message) = describe(e.path().to_string(), e.into_inner().to_string());
        invalid(document, &path, message)
    })?;
    let mut errors = check_schema(&value);
    errors.extend(check_rules(&cluster));
    if errors.is_empty() { Ok(cluster) } else { Err(RenderError::Invalid { document, errors }) }
}

/// Names the field of a deserialisation error: serde reports a missing field at
/// its parent's path.
fn describe(path: String, message: String) -> (String, String) {
    let path = if path == "." { "(document)".to_string() } else { path };
    let missing = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
    match missing {
        Some(field) => (format!("{path}.{field}"), "is required".into()),
        None => (path, message),
    }
}

/// Every child object of every WebCluster in `yaml`, as multi-document YAML.
pub fn manifests(yaml: &str) -> Result<String, RenderError> {
    let clusters = parse(yaml)?;
    let mut documents = Vec::new();
    for (index, cluster) in clusters.iter().enumerate() {
        let children = desired::children(cluster, &Plan::offline(cluster))
            .map_err(|source| RenderError::Build { document: index + 1, source })?;
        documents.extend(children.iter().map(Child::to_json));
    }
    to_yaml_stream(&documents)
}

/// The CRD as YAML, as `crds/webcluster.yaml` holds it.
pub fn crd_yaml() -> Result<String, RenderError> {
    to_yaml_stream(&[serde_json::to_value(crate::api::crd()).map_err(|e| RenderError::Output(e.to_string()))?])
}

fn to_yaml_stream(documents: &[Value]) -> Result<String, RenderError> {
    let mut out = String::new();
    for document in documents {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(document).map_err(|e| RenderError::Output(e.to_string()))?);
    }
    Ok(out)
}
