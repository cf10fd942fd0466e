//! Secrets the app's pods name in `spec.app.env` and `spec.app.envFrom` that
//! do not exist (or lack the key): the pods would wait in
//! CreateContainerConfigError while the Deployment says only "0/N ready".
//! Read with a GET each reconcile, as the external DSNs are.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;

use super::get;
use crate::api::WebCluster;
use crate::controller::error::ApiError;

/// What is missing, one message per Secret or key, naming the field that refers to it.
pub async fn missing_secrets(client: &Client, namespace: &str, cluster: &WebCluster) -> Result<Vec<String>, ApiError> {
    let mut missing = Vec::new();
    for (name, (field, keys)) in referenced(cluster) {
        let Some(secret) = get::<Secret>(client, namespace, &name).await? else {
            missing.push(format!("Secret {name} not found ({field})"));
            continue;
        };
        let held = secret.data.unwrap_or_default();
        let absent: Vec<&str> = keys.iter().filter(|key| !held.contains_key(*key)).map(String::as_str).collect();
        if !absent.is_empty() {
            missing.push(format!("Secret {name} has no key {} (spec.app.env)", absent.join(", ")));
        }
    }
    Ok(missing)
}

/// Each Secret the app container needs (optional references left out): the
/// first field naming it, and the keys `env` reads from it.
fn referenced(cluster: &WebCluster) -> BTreeMap<String, (&'static str, Vec<String>)> {
    let app = &cluster.spec.app;
    let mut needed: BTreeMap<String, (&'static str, Vec<String>)> = BTreeMap::new();
    for source in app.env_from.iter().filter_map(|s| s.secret_ref.as_ref()).filter(|r| r.optional != Some(true)) {
        needed.entry(source.name.clone()).or_insert(("spec.app.envFrom", Vec::new()));
    }
    let selectors = app.env.iter().filter_map(|v| v.value_from.as_ref()?.secret_key_ref.as_ref());
    for selector in selectors.filter(|s| s.optional != Some(true)) {
        needed.entry(selector.name.clone()).or_insert(("spec.app.env", Vec::new())).1.push(selector.key.clone());
    }
    needed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_references_only() {
        let spec = "app:\n  image: a\n  envFrom: [{secretRef: {name: s1}}, {secretRef: {name: s2, optional: true}}, {configMapRef: {name: c}}]\n  env:\n    - {name: A, valueFrom: {secretKeyRef: {name: s3, key: k}}}\n    - {name: B, valueFrom: {secretKeyRef: {name: s4, key: k, optional: true}}}\n    - {name: C, value: plain}\n";
        let cluster = WebCluster::new("shop", serde_saphyr::from_str(spec).unwrap_or_else(|e| panic!("{e}")));
        let needed = referenced(&cluster);
        assert_eq!(needed.keys().collect::<Vec<_>>(), ["s1", "s3"]);
        assert_eq!(needed["s3"], ("spec.app.env", vec!["k".to_string()]));
    }
}
