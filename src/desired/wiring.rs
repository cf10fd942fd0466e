//! The wiring contract: the `WEBCLUSTER_*` environment every app, migration and
//! cron container gets alike.

use k8s_openapi::api::core::v1::EnvVar;

use super::credentials::{DsnPart, Endpoint, SHARED_PREFIX, dsn_key};
use super::meta::Parent;
use super::pod::{from_secret, plain};
use super::{cache, http_cache, names, storage};

/// The operator's environment variables, in contract order. They precede the
/// user's `env`, so `$(WEBCLUSTER_...)` references there expand.
pub fn contract_env(parent: &Parent) -> Vec<EnvVar> {
    let mut env = Vec::new();
    if let Some(db) = &parent.spec.database {
        env.push(plain("WEBCLUSTER_DB_ENGINE", super::database::engine_name(db.engine)));
        for endpoint in Endpoint::ALL {
            for part in DsnPart::ALL {
                let var = format!("WEBCLUSTER_DB_{}_{}", endpoint.key_prefix(), part.name()).to_uppercase();
                env.push(from_secret(&var, &names::credentials(parent.name), &dsn_key(endpoint, part)));
            }
        }
    }
    if let Some(spec) = &parent.spec.cache {
        env.push(plain("WEBCLUSTER_CACHE_BACKEND", cache::backend_name(spec.backend)));
        env.push(plain("WEBCLUSTER_CACHE_URL", &cache::url(parent, spec)));
        env.push(plain("WEBCLUSTER_CACHE_HOSTS", &cache::hosts(parent, spec).join(",")));
    }
    env.extend(storage::env(parent));
    if parent.spec.http_cache.is_some() {
        env.push(plain("WEBCLUSTER_HTTP_CACHE_URL", &http_cache::url(parent)));
    }
    for name in &parent.spec.app.shared_secrets {
        env.push(from_secret(name, &names::credentials(parent.name), &format!("{SHARED_PREFIX}{name}")));
    }
    env
}
