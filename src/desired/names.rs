//! Deterministic names of every child object, of the pods of the StatefulSets
//! and of the containers the controller reads. All fit 63 characters for
//! WebCluster names up to `api::MAX_NAME_LENGTH`. The builder and the
//! controller both name things through this module only.

use sha2::{Digest, Sha256};

/// The app Deployment and Service.
pub fn app(cluster: &str) -> String {
    format!("{cluster}-app")
}

/// The container of app, migration and cron pods (the controller reads its image).
pub const APP_CONTAINER: &str = "app";
/// The container of database pods.
pub const DATABASE_CONTAINER: &str = "database";

/// Pod `ordinal` of the StatefulSet `set`.
fn stateful_pod(set: &str, ordinal: i32) -> String {
    format!("{set}-{ordinal}")
}

/// The cache StatefulSet (and the redis primary's Service).
pub fn cache(cluster: &str) -> String {
    format!("{cluster}-cache")
}

/// The headless Service that gives every cache pod a DNS name.
pub fn cache_headless(cluster: &str) -> String {
    format!("{cluster}-cache-hl")
}

/// The ConfigMap with the redis configuration.
pub fn cache_config(cluster: &str) -> String {
    format!("{cluster}-cache-config")
}

/// Cache pod `ordinal`; redis's primary is ordinal 0.
pub fn cache_pod(cluster: &str, ordinal: i32) -> String {
    stateful_pod(&cache(cluster), ordinal)
}

/// The database StatefulSet.
pub fn database(cluster: &str) -> String {
    format!("{cluster}-db")
}

/// Database pod `ordinal`.
pub fn database_pod(cluster: &str, ordinal: i32) -> String {
    stateful_pod(&database(cluster), ordinal)
}

/// The first rollout's database primary: ordinal 0 (then the operator elects one).
pub fn database_primary(cluster: &str) -> String {
    database_pod(cluster, 0)
}

/// The stable DNS name of `pod` of a StatefulSet behind `headless_service`.
pub fn pod_host(pod: &str, headless_service: &str, namespace: &str) -> String {
    format!("{pod}.{headless_service}.{namespace}.svc")
}

/// The read-write database Service (the primary).
pub fn database_write(cluster: &str) -> String {
    format!("{cluster}-db-rw")
}

/// The read-only database Service (the ready replicas).
pub fn database_read(cluster: &str) -> String {
    format!("{cluster}-db-ro")
}

/// The headless Service of the database StatefulSet.
pub fn database_headless(cluster: &str) -> String {
    format!("{cluster}-db-hl")
}

/// The ConfigMap with the database configuration and scripts.
pub fn database_config(cluster: &str) -> String {
    format!("{cluster}-db-config")
}

/// The Secret of generated passwords, shared secrets and DSNs.
pub fn credentials(cluster: &str) -> String {
    format!("{cluster}-credentials")
}

/// The copy of the generated values the controller restores them from.
pub fn credentials_copy(cluster: &str) -> String {
    format!("{cluster}-credentials-keep")
}

/// The database StatefulSet's claim template (and the pods' volume).
pub const DATABASE_CLAIM_TEMPLATE: &str = "data";

/// The claim of database pod `ordinal`, made from [`DATABASE_CLAIM_TEMPLATE`].
pub fn database_claim(cluster: &str, ordinal: i32) -> String {
    format!("{DATABASE_CLAIM_TEMPLATE}-{}", database_pod(cluster, ordinal))
}

/// The shared ReadWriteMany claim.
pub fn files(cluster: &str) -> String {
    format!("{cluster}-files")
}

/// The Varnish Deployment and Service.
pub fn http_cache(cluster: &str) -> String {
    format!("{cluster}-http-cache")
}

/// The ConfigMap with Varnish's VCL.
pub fn http_cache_config(cluster: &str) -> String {
    format!("{cluster}-http-cache-vcl")
}

/// The CronJob of one cron task.
pub fn cron_task(cluster: &str, task: &str) -> String {
    format!("{cluster}-{task}")
}

/// The migration Job of one image: a new image gets a new Job, the same image never runs twice.
pub fn migration(cluster: &str, image: &str) -> String {
    let digest = Sha256::digest(image.as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("{cluster}-migrate-{hex}")
}

/// The NetworkPolicy guarding the database.
pub fn database_policy(cluster: &str) -> String {
    format!("{cluster}-db-access")
}

/// The NetworkPolicy guarding the cache.
pub fn cache_policy(cluster: &str) -> String {
    format!("{cluster}-cache-access")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_names_follow_the_image() {
        let a = migration("shop", "app:1");
        assert_eq!(a, migration("shop", "app:1"));
        assert_ne!(a, migration("shop", "app:2"));
        assert_eq!(a.len(), "shop-migrate-".len() + 10);
    }
}
