//! Generated values: created once, never regenerated. The only randomness of
//! the operator, kept out of the pure builder.

use std::collections::BTreeMap;

use rand::Rng;

use crate::api::WebCluster;
use crate::desired::credentials::{ALPHABET, GENERATED_LENGTH, generated_keys};

/// The values the builder needs: every existing value as it is, and a new
/// random value for each key the spec asks for that has none yet.
pub fn complete(cluster: &WebCluster, existing: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let mut values = existing.cloned().unwrap_or_default();
    for key in generated_keys(&cluster.spec) {
        values.entry(key).or_insert_with(random_value);
    }
    values
}

fn random_value() -> String {
    let mut rng = rand::rng();
    (0..GENERATED_LENGTH).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> WebCluster {
        let spec =
            serde_saphyr::from_str("app: {image: a, sharedSecrets: [KEY]}\ndatabase: {engine: mariadb, managed: {}}")
                .expect("valid spec");
        WebCluster::new("shop", spec)
    }

    #[test]
    fn existing_values_are_kept() {
        let existing = BTreeMap::from([("db-password".to_string(), "kept".to_string())]);
        let values = complete(&cluster(), Some(&existing));
        assert_eq!(values["db-password"], "kept");
        assert_eq!(values.len(), 4, "{values:?}");
    }

    #[test]
    fn new_values_are_long_and_url_safe() {
        let values = complete(&cluster(), None);
        let value = &values["shared.KEY"];
        assert_eq!(value.len(), GENERATED_LENGTH);
        assert!(value.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(values["db-password"], values["db-superuser-password"]);
    }
}
