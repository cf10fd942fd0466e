//! Offline validation for `render`: the same rules the API server applies at
//! admission. Ranges, lengths, patterns and required fields are read from the
//! generated CRD schema itself (so they cannot drift); the CEL rules, which need
//! a CEL engine, are restated here in Rust, and the shared corpus of invalid
//! manifests in `tests/invalid/` proves both agree.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use regex::Regex;
use serde_json::Value;

use super::formats::{
    QUANTITY_HINT, QUANTITY_PATTERN, SCHEDULE_HINT, SCHEDULE_RANGE_HINT, TIME_ZONE_HINT, is_quantity, is_schedule,
    is_time_zone, memory_bytes, memory_range_hint, schedule_ranges_ascend,
};
use super::{
    DatabaseEngine, DatabaseSpec, EXTRA_DIFFERS_MESSAGE, EXTRA_RESERVED_MESSAGE, EXTRA_USERS_MESSAGE, ExtraDatabase,
    INVALIDATE_TOKEN_MESSAGE, MAX_CRONJOB_NAME_LENGTH, MAX_NAME_LENGTH, MAX_UNAVAILABLE_MESSAGE, ManagedDatabase,
    RESERVED_DATABASE_NAMES, RESERVED_USERS, SEMI_SYNC_MESSAGE, SWITCHOVER_MESSAGE, SYNCHRONOUS_MESSAGE, WebCluster,
};

/// One field that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, for example `spec.app.replicas`.
    pub path: String,
    /// What is allowed.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Checks a WebCluster's raw JSON against the CRD's OpenAPI schema
/// (required, minimum/maximum, length, item counts, unique list entries,
/// patterns, enums, integers in int-or-string fields).
pub fn check_schema(object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let (Some(spec), Some(spec_schema)) = (object.get("spec"), SCHEMA.pointer("/properties/spec")) {
        walk(spec, spec_schema, "spec", &mut errors);
    }
    if let Some(metadata) = object.get("metadata") {
        walk(metadata, &METADATA_SCHEMA, "metadata", &mut errors);
    }
    errors
}

/// The CRD's OpenAPI schema, built once.
static SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    super::crd()
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
});

/// ObjectMeta's schema (the CRD only says `type: object`; the API server
/// decodes metadata strictly), built once.
static METADATA_SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    let generator =
        schemars::generate::SchemaSettings::openapi3().with(|s| s.inline_subschemas = true).into_generator();
    serde_json::to_value(generator.into_root_schema_for::<ObjectMeta>()).unwrap_or(Value::Null)
});

/// Every `pattern` of the schema, compiled once (`None`: the API server's
/// regex engine may read it, ours cannot, so it is not checked offline).
static PATTERNS: LazyLock<BTreeMap<String, Option<Regex>>> = LazyLock::new(|| {
    let mut patterns = BTreeMap::new();
    collect_patterns(&SCHEMA, &mut patterns);
    patterns
});

fn collect_patterns(schema: &Value, patterns: &mut BTreeMap<String, Option<Regex>>) {
    match schema {
        Value::Object(node) => {
            if let Some(pattern) = node.get("pattern").and_then(Value::as_str) {
                patterns.entry(pattern.to_string()).or_insert_with(|| Regex::new(pattern).ok());
            }
            node.values().for_each(|child| collect_patterns(child, patterns));
        }
        Value::Array(items) => items.iter().for_each(|child| collect_patterns(child, patterns)),
        _ => {}
    }
}

fn walk(value: &Value, schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if let Some(expected) = type_mismatch(value, schema) {
        errors.push(FieldError { path: path.to_string(), message: format!("must be of type {expected}") });
        return;
    }
    let mut fail = |message: String| errors.push(FieldError { path: path.to_string(), message });
    match value {
        Value::Number(n) => {
            if schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) && !n.is_i64() {
                fail(format!("{n} must be an integer or a string"));
            }
            let number = n.as_f64().unwrap_or_default();
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64).filter(|min| number < *min) {
                fail(format!("must be at least {min}"));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64).filter(|max| number > *max) {
                fail(format!("must be at most {max}"));
            }
        }
        Value::String(s) => check_string(s, schema, &mut fail),
        Value::Array(items) => {
            let count = items.len() as u64;
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64).filter(|min| count < *min) {
                fail(format!("must have at least {min} item(s)"));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64).filter(|max| count > *max) {
                fail(format!("must have at most {max} item(s)"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    walk(item, item_schema, &format!("{path}[{index}]"), errors);
                }
            }
            check_unique(items, schema, path, errors);
        }
        Value::Object(fields) => {
            for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                // The API server drops a null field before it checks what is required.
                if let Some(name) = required.as_str().filter(|name| fields.get(*name).is_none_or(Value::is_null)) {
                    errors.push(FieldError { path: format!("{path}.{name}"), message: "is required".into() });
                }
            }
            for (name, field) in fields {
                let known = schema.get("properties").and_then(|p| p.get(name)).or(schema.get("additionalProperties"));
                if let Some(field_schema) = known {
                    // A null field is pruned by the API server, unknown ones are refused first.
                    if !field.is_null() {
                        walk(field, field_schema, &format!("{path}.{name}"), errors);
                    }
                } else if schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) != Some(true) {
                    let known: Vec<&str> = schema
                        .get("properties")
                        .and_then(Value::as_object)
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    errors.push(FieldError {
                        path: format!("{path}.{name}"),
                        message: format!("unknown field: allowed are {}", known.join(", ")),
                    });
                }
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

/// Removes every field whose value is null, at any depth: the API server
/// prunes them before it defaults and validates (a null item of a list stays).
pub fn prune_nulls(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            fields.retain(|_, field| !field.is_null());
            fields.values_mut().for_each(prune_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(prune_nulls),
        _ => {}
    }
}

/// Writes every integral float (`1000.0`, YAML's `1e3`) as an integer, as
/// kubectl sends it to the API server (it converts YAML and JSON to
/// JSON through float64).
pub fn integral_floats_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15) {
                *value = Value::from(f as i64);
            }
        }
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_as_integers),
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// The type the schema wants when `value` has another one.
fn type_mismatch(value: &Value, schema: &Value) -> Option<&'static str> {
    let int_or_string = schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
    let fits = match (schema.get("type").and_then(Value::as_str), value) {
        (_, Value::Null) if nullable => true,
        (_, Value::Null) if int_or_string => return Some("integer or string"),
        (_, Value::String(_) | Value::Number(_)) if int_or_string => return None,
        (None, _) if int_or_string => return Some("integer or string"),
        (None, _) => true,
        (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
        (Some("number"), Value::Number(_)) | (Some("string"), Value::String(_)) | (Some("boolean"), Value::Bool(_)) => {
            true
        }
        (Some("array"), Value::Array(_)) | (Some("object"), Value::Object(_)) => true,
        (Some(_), _) => false,
    };
    if fits {
        None
    } else {
        schema.get("type").and_then(Value::as_str).map(|t| match t {
            "integer" => "integer",
            "number" => "number",
            "string" => "string",
            "boolean" => "boolean",
            "array" => "array",
            _ => "object",
        })
    }
}

fn check_string(s: &str, schema: &Value, fail: &mut impl FnMut(String)) {
    let length = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64).filter(|min| length < *min) {
        fail(format!("must be at least {min} character(s) long"));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64).filter(|max| length > *max) {
        fail(format!("must be at most {max} characters long"));
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.iter().any(|a| a.as_str() == Some(s))
    {
        let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        fail(format!("unsupported value {s:?}: allowed values are {}", names.join(", ")));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        let matches = PATTERNS.get(pattern).and_then(Option::as_ref).is_none_or(|re| re.is_match(s));
        if matches {
        } else if pattern == QUANTITY_PATTERN {
            fail(format!("{s:?} {QUANTITY_HINT}"));
        } else {
            fail(format!("{s:?} must match the pattern {pattern}"));
        }
    }
}

/// `x-kubernetes-list-type`: a `set` holds each value once, a `map` each key once.
fn check_unique(items: &[Value], schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let keys: Vec<&str> = match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => Vec::new(),
        Some("map") => schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect(),
        _ => return,
    };
    let mut seen = BTreeSet::new();
    for (index, item) in items.iter().enumerate() {
        let identity = if keys.is_empty() {
            item.to_string()
        } else {
            keys.iter()
                .map(|key| format!("{key}={}", item.get(key).unwrap_or(&Value::Null)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !seen.insert(identity.clone()) {
            let unique =
                if keys.is_empty() { "each value".to_string() } else { format!("each {}", keys.join(" and ")) };
            errors.push(FieldError {
                path: format!("{path}[{index}]"),
                message: format!("Duplicate value: {identity}: {unique} may appear once in the list"),
            });
        }
    }
}

/// The CRD's CEL rules (`x-kubernetes-validations`), restated for offline use.
/// Transition rules (engine immutability) need the old object and only run at admission.
pub fn check_rules(cluster: &WebCluster) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut fail = |path: &str, message: &str| {
        errors.push(FieldError { path: path.into(), message: message.into() });
    };
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        fail("metadata.name", "is required");
    } else if name.len() > MAX_NAME_LENGTH {
        fail("metadata.name", "must be at most 40 characters, so that every generated object name fits 63");
    } else if !is_dns1035_label(name) {
        fail("metadata.name", "must be a DNS-1035 label (lower-case letters, digits, '-', starting with a letter)");
    }
    let spec = &cluster.spec;
    if spec.app.shared_secrets.iter().any(|n| !is_env_name(n)) {
        fail("spec.app.sharedSecrets", "each entry must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
    }
    let token = spec.http_cache.as_ref().and_then(|h| h.invalidate_token_secret.as_ref());
    if token.is_some_and(|name| !spec.app.shared_secrets.contains(name)) {
        let (path, message) = INVALIDATE_TOKEN_MESSAGE.split_once(": ").unwrap_or_default();
        fail(path, message);
    }
    if spec.app.autoscaling.as_ref().is_some_and(|a| a.min_replicas > a.max_replicas) {
        fail("spec.app.autoscaling", "minReplicas must not exceed maxReplicas");
    }
    if spec.cache.as_ref().is_some_and(|c| c.persistence.is_some() && c.backend != super::CacheBackend::Redis) {
        fail("spec.cache.persistence", "only the redis backend persists data");
    }
    let memories = [
        ("spec.cache.memory", spec.cache.as_ref().map(|c| &c.memory)),
        ("spec.httpCache.memory", spec.http_cache.as_ref().map(|h| &h.memory)),
    ];
    for (path, memory) in memories {
        // A string that is no quantity is the schema pattern's to report.
        if memory.is_some_and(|m| is_quantity(&m.0) && memory_bytes(&m.0).is_none()) {
            fail(path, &memory_range_hint());
        }
    }
    if spec.database.as_ref().is_some_and(|d| d.managed.is_some() == d.external.is_some()) {
        fail("spec.database", "set exactly one of managed or external");
    }
    if let Some(database) = &spec.database {
        for message in synchronous_errors(database) {
            let (path, message) = message.split_once(": ").unwrap_or_default();
            fail(path, message);
        }
    }
    if let Some(managed) = spec.database.as_ref().and_then(|d| d.managed.as_ref()) {
        for message in extra_database_errors(managed) {
            let (path, message) = message.split_once(": ").unwrap_or_default();
            fail(path, message);
        }
    }
    if let Some(storage) = &spec.storage {
        if storage.volume.is_some() == storage.s3.is_some() {
            fail("spec.storage", "set exactly one of volume or s3");
        }
        if storage.volume.as_ref().is_some_and(|v| v.existing_claim.is_some() && v.storage_class_name.is_some()) {
            fail("spec.storage.volume", "storageClassName does not apply to an existingClaim");
        }
    }
    if spec.app.disruption_budget.as_ref().is_some_and(|b| !is_pods_or_percentage(&b.max_unavailable)) {
        let (path, message) = MAX_UNAVAILABLE_MESSAGE.split_once(": ").unwrap_or_default();
        fail(path, message);
    }
    for (index, job) in spec.jobs.iter().enumerate() {
        if !is_schedule(&job.schedule) {
            fail(&format!("spec.jobs[{index}].schedule"), SCHEDULE_HINT);
        } else if !schedule_ranges_ascend(&job.schedule) {
            fail(&format!("spec.jobs[{index}].schedule"), SCHEDULE_RANGE_HINT);
        }
        if job.time_zone.as_deref().is_some_and(|zone| !is_time_zone(zone)) {
            fail(&format!("spec.jobs[{index}].timeZone"), TIME_ZONE_HINT);
        }
        if name.len() + 1 + job.name.len() > MAX_CRONJOB_NAME_LENGTH {
            fail(
                &format!("spec.jobs[{index}].name"),
                "'<webcluster name>-<job name>' must be at most 52 characters (a CronJob name limit)",
            );
        }
    }
    errors
}

/// The CEL rules of `spec.database.managed` on replica counts (synchronousReplicas, switchover), as their messages.
fn synchronous_errors(database: &DatabaseSpec) -> Vec<&'static str> {
    let Some(managed) = &database.managed else { return Vec::new() };
    let mut errors = Vec::new();
    if managed.synchronous_replicas > managed.replicas {
        errors.push(SYNCHRONOUS_MESSAGE);
    }
    if database.engine == DatabaseEngine::Mariadb && managed.synchronous_replicas > 1 {
        errors.push(SEMI_SYNC_MESSAGE);
    }
    if managed.switchover.as_ref().is_some_and(|s| s.pod > managed.replicas) {
        errors.push(SWITCHOVER_MESSAGE);
    }
    errors
}

/// The CEL rules of `spec.database.managed.databases`, as their messages.
fn extra_database_errors(managed: &ManagedDatabase) -> Vec<&'static str> {
    let extras = &managed.databases;
    let mut errors = Vec::new();
    if extras.iter().any(|d| d.name == managed.database_name || d.user == managed.user) {
        errors.push(EXTRA_DIFFERS_MESSAGE);
    }
    let reserved = |d: &ExtraDatabase| {
        RESERVED_DATABASE_NAMES.contains(&d.name.as_str())
            || RESERVED_USERS.contains(&d.user.as_str())
            || d.user.starts_with("pg_")
    };
    if extras.iter().any(reserved) {
        errors.push(EXTRA_RESERVED_MESSAGE);
    }
    let users: BTreeSet<&str> = extras.iter().map(|d| d.user.as_str()).collect();
    if users.len() != extras.len() {
        errors.push(EXTRA_USERS_MESSAGE);
    }
    errors
}

/// A DNS-1035 label: what Service names must be.
pub fn is_dns1035_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.last() != Some(&b'-')
}

/// A number of pods (0 or more) or a percentage from 0% to 100%.
fn is_pods_or_percentage(value: &IntOrString) -> bool {
    match value {
        IntOrString::Int(pods) => *pods >= 0,
        IntOrString::String(percent) => percent
            .strip_suffix('%')
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .filter(|digits| digits.len() == 1 || !digits.starts_with('0'))
            .and_then(|digits| digits.parse::<u32>().ok())
            .is_some_and(|percent| percent <= 100),
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1035_labels() {
        assert!(is_dns1035_label("roundcube"));
        assert!(is_dns1035_label("a-1"));
        assert!(!is_dns1035_label("1a"));
        assert!(!is_dns1035_label("a-"));
        assert!(!is_dns1035_label("A"));
        assert!(!is_dns1035_label(""));
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("ROUNDCUBEMAIL_DES_KEY"));
        assert!(is_env_name("_x1"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("A-B"));
    }
}
