//! Generated values: created once, never regenerated. The only randomness of
//! the operator, kept out of the pure builder. A value someone deleted comes
//! back from the copy; one lost from both Secrets while the data written with
//! it remains is never replaced by a new one.

use std::collections::BTreeMap;

use rand::Rng;

use crate::api::WebCluster;
use crate::controller::observe::Credentials;
use crate::desired::credentials::{
    ALPHABET, DB_PASSWORD, DB_REPLICATION_PASSWORD, DB_SUPERUSER_PASSWORD, GENERATED_LENGTH, generated_keys,
};
use crate::desired::names;

/// The values the builder needs: every existing value as it is (the Secret's,
/// else its copy's), and a new random value for each key the spec asks for
/// that has none yet. `None` when values are lost ([`lost`]): nothing new is drawn.
pub fn complete(cluster: &WebCluster, credentials: &Credentials) -> Option<BTreeMap<String, String>> {
    if !lost(cluster, credentials).is_empty() {
        return None;
    }
    let mut values = credentials.values();
    for key in generated_keys(&cluster.spec) {
        values.entry(key).or_insert_with(random_value);
    }
    Some(values)
}

/// Keys whose values are in neither Secret while data written with them
/// remains: every missing key when both Secrets are gone and a data claim
/// exists; a missing database password while the database's claim exists
/// (a shared secret added to the spec later is simply new).
pub fn lost(cluster: &WebCluster, credentials: &Credentials) -> Vec<String> {
    let keys = generated_keys(&cluster.spec);
    let missing = credentials.missing(&keys);
    if missing.is_empty() || credentials.data_claims.is_empty() {
        return Vec::new();
    }
    let both_gone = credentials.current.is_none() && credentials.copy.is_none();
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    let database_data = credentials.data_claims.contains(&names::database_claim(name, 0));
    let database_key =
        |key: &&String| [DB_PASSWORD, DB_SUPERUSER_PASSWORD, DB_REPLICATION_PASSWORD].contains(&key.as_str());
    missing.into_iter().filter(|key| both_gone || (database_data && database_key(key))).cloned().collect()
}

/// What the status says while values are lost: what is missing, why nothing
/// new is generated, and how to recover.
pub fn lost_message(cluster: &WebCluster, credentials: &Credentials) -> Option<String> {
    let lost = lost(cluster, credentials);
    if lost.is_empty() {
        return None;
    }
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    let (main, copy) = (names::credentials(name), names::credentials_copy(name));
    Some(format!(
        "the generated values {} are in neither Secret {main} nor its copy {copy}, while claim(s) {} hold data \
         written with them; no new values are generated (they would not match the data). Restore Secret {main} \
         (or {copy}) with these keys from a backup, or delete the claims to start with empty data",
        lost.join(", "),
        credentials.data_claims.join(", ")
    ))
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

    fn data(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn with(current: Option<BTreeMap<String, String>>, copy: Option<BTreeMap<String, String>>) -> Credentials {
        Credentials { current, copy, data_claims: Vec::new() }
    }

    #[test]
    fn existing_values_are_kept() {
        let values = complete(&cluster(), &with(data(&[("db-password", "kept")]), None)).expect("not lost");
        assert_eq!(values["db-password"], "kept");
        assert_eq!(values.len(), 4, "{:?}", values.keys());
    }

    #[test]
    fn new_values_are_long_and_url_safe() {
        let values = complete(&cluster(), &Credentials::default()).expect("nothing to lose");
        let value = &values["shared.KEY"];
        assert_eq!(value.len(), GENERATED_LENGTH);
        assert!(value.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(values["db-password"], values["db-superuser-password"]);
    }

    #[test]
    fn a_deleted_secret_comes_back_from_its_copy_and_the_secret_wins() {
        let copy = data(&[("db-password", "a"), ("db-superuser-password", "b"), ("db-replication-password", "c")]);
        let mut credentials = with(None, copy.clone());
        credentials.data_claims = vec![names::database_claim("shop", 0)];
        let values = complete(&cluster(), &credentials).expect("restored from the copy");
        assert_eq!((values["db-password"].as_str(), values["db-superuser-password"].as_str()), ("a", "b"));
        assert_eq!(values["shared.KEY"].len(), GENERATED_LENGTH, "a shared secret new to the spec is drawn");
        let edited = with(data(&[("db-password", "edited")]), copy);
        assert_eq!(complete(&cluster(), &edited).expect("not lost")["db-password"], "edited");
    }

    #[test]
    fn values_lost_with_the_data_kept_are_never_replaced() {
        let mut gone = Credentials { data_claims: vec![names::database_claim("shop", 0)], ..Credentials::default() };
        assert_eq!(complete(&cluster(), &gone), None);
        assert_eq!(lost(&cluster(), &gone).len(), 4);
        let message = lost_message(&cluster(), &gone).expect("a message");
        assert!(message.contains("shop-credentials-keep") && message.contains("data-shop-db-0"), "{message}");
        // The Secret without its database passwords: those are lost, not drawn again.
        gone.current = data(&[("shared.KEY", "k")]);
        assert_eq!(lost(&cluster(), &gone), ["db-password", "db-superuser-password", "db-replication-password"]);
        gone.data_claims = vec![names::files("shop")];
        assert!(lost(&cluster(), &gone).is_empty(), "no database data: the passwords are new");
    }
}
