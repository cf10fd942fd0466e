//! The CRD as the API server gets it: the derived one, with the quantity
//! pattern on every quantity. Quantities come from k8s-openapi's types
//! (resources, emptyDir sizes) as bare `x-kubernetes-int-or-string` schemas, so
//! the API server would store any string there and fail later, when the
//! operator applies a child.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use super::WebCluster;
use super::formats::QUANTITY_PATTERN;

/// The `x-kubernetes-int-or-string` fields that are not quantities (paths with
/// `[]` for list items and `{}` for map values). Every other such field is one.
const INT_OR_STRING_FIELDS: [&str; 1] = ["spec.app.disruptionBudget.maxUnavailable"];

/// The WebCluster CRD, as `crds/webcluster.yaml` holds it.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = WebCluster::crd();
    for version in &mut crd.spec.versions {
        if let Some(props) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut())
            && let Ok(mut schema) = serde_json::to_value(&*props)
        {
            mark_quantities(&mut schema, "", &mut |_| {});
            if let Ok(marked) = serde_json::from_value(schema) {
                *props = marked;
            }
        }
    }
    crd
}

/// Puts the quantity pattern on every quantity below `schema`, telling `found` each path.
fn mark_quantities(schema: &mut Value, path: &str, found: &mut impl FnMut(&str)) {
    let Some(node) = schema.as_object_mut() else { return };
    let is_int_or_string = node.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    if is_int_or_string && !INT_OR_STRING_FIELDS.contains(&path) {
        node.insert("pattern".into(), Value::String(QUANTITY_PATTERN.into()));
        found(path);
    }
    if let Some(Value::Object(properties)) = node.get_mut("properties") {
        for (name, property) in properties {
            let child = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
            mark_quantities(property, &child, found);
        }
    }
    if let Some(items) = node.get_mut("items") {
        mark_quantities(items, &format!("{path}[]"), found);
    }
    if let Some(values) = node.get_mut("additionalProperties") {
        mark_quantities(values, &format!("{path}{{}}"), found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new int-or-string field fails here until it is listed as a quantity
    /// below or in [`INT_OR_STRING_FIELDS`].
    #[test]
    fn every_quantity_gets_the_pattern() {
        let crd = WebCluster::crd();
        let mut schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let mut found = Vec::new();
        mark_quantities(&mut schema["openAPIV3Schema"], "", &mut |path| found.push(path.to_string()));
        let expected = [
            "spec.app.env[].valueFrom.resourceFieldRef.divisor",
            "spec.app.pod.volumes[].downwardAPI.items[].resourceFieldRef.divisor",
            "spec.app.pod.volumes[].emptyDir.sizeLimit",
            "spec.app.pod.volumes[].ephemeral.volumeClaimTemplate.spec.resources.limits{}",
            "spec.app.pod.volumes[].ephemeral.volumeClaimTemplate.spec.resources.requests{}",
            "spec.app.pod.volumes[].projected.sources[].downwardAPI.items[].resourceFieldRef.divisor",
            "spec.app.resources.limits{}",
            "spec.app.resources.requests{}",
            "spec.cache.memory",
            "spec.cache.persistence.size",
            "spec.cache.resources.limits{}",
            "spec.cache.resources.requests{}",
            "spec.database.managed.resources.limits{}",
            "spec.database.managed.resources.requests{}",
            "spec.database.managed.storage.size",
            "spec.httpCache.memory",
            "spec.httpCache.resources.limits{}",
            "spec.httpCache.resources.requests{}",
            "spec.storage.volume.size",
        ];
        found.sort();
        assert_eq!(found, expected);
        let written = serde_json::to_string(&super::crd()).unwrap();
        let pattern = serde_json::to_string(QUANTITY_PATTERN).unwrap();
        assert_eq!(written.matches(&pattern).count(), expected.len());
    }

    /// Every field's path below `schema` that has no description.
    fn undocumented(schema: &Value, path: &str, missing: &mut Vec<String>) {
        let Some(node) = schema.as_object() else { return };
        if let Some(Value::Object(properties)) = node.get("properties") {
            for (name, property) in properties {
                let child = format!("{path}.{name}");
                if property.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
                    missing.push(child.clone());
                }
                undocumented(property, &child, missing);
            }
        }
        if let Some(items) = node.get("items") {
            undocumented(items, &format!("{path}[]"), missing);
        }
        if let Some(values) = node.get("additionalProperties") {
            undocumented(values, &format!("{path}{{}}"), missing);
        }
    }

    /// `kubectl explain` stays complete: every field of the spec, ours and
    /// Kubernetes' types alike, carries its description.
    #[test]
    fn every_field_is_documented() {
        let schema = serde_json::to_value(&super::crd().spec.versions[0].schema).unwrap();
        let mut missing = Vec::new();
        undocumented(&schema["openAPIV3Schema"]["properties"]["spec"], "spec", &mut missing);
        assert!(missing.is_empty(), "fields without a description: {missing:#?}");
    }
}
