//! The wiring contract: the `WEBCLUSTER_*` environment every app, migration and
//! cron container gets alike.

use k8s_openapi::api::core::v1::EnvVar;

use super::credentials::{DsnPart, Endpoint, app_databases, dsn_key, dsn_var, shared_key};
use super::meta::Parent;
use super::pod::{from_secret, plain};
use super::{cache, http_cache, names, storage};

/// The operator's environment variables, in contract order. They precede the
/// user's `env`, so `$(WEBCLUSTER_...)` references there expand.
pub fn contract_env(parent: &Parent) -> Vec<EnvVar> {
    let mut env = Vec::new();
    if let Some(db) = &parent.spec.database {
        env.push(plain("WEBCLUSTER_DB_ENGINE", super::database::engine_name(db.engine)));
        for database in app_databases(db) {
            for endpoint in Endpoint::ALL {
                for part in DsnPart::ALL {
                    let (var, key) = (dsn_var(database, endpoint, part), dsn_key(database, endpoint, part));
                    env.push(from_secret(&var, &names::credentials(parent.name), &key));
                }
            }
        }
    }
    if let Some(spec) = &parent.spec.cache {
        env.push(plain("WEBCLUSTER_CACHE_BACKEND", cache::backend_name(spec.backend)));
        env.push(plain("WEBCLUSTER_CACHE_URL", &cache::url(parent, spec)));
        env.push(plain("WEBCLUSTER_CACHE_HOSTS", &cache::hosts(parent, spec).join(",")));
        env.push(plain("WEBCLUSTER_CACHE_DSN", &cache::dsn(parent, spec)));
    }
    env.extend(storage::env(parent));
    if parent.spec.http_cache.is_some() {
        env.push(plain("WEBCLUSTER_HTTP_CACHE_URL", &http_cache::url(parent)));
    }
    for name in &parent.spec.app.shared_secrets {
        env.push(from_secret(name, &names::credentials(parent.name), &shared_key(name)));
    }
    env
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{Child, Plan, children};
    use crate::api::{WebCluster, WebClusterSpec};

    /// The app container's variables: literal values, or `secret/key` for Secret references.
    fn app_env(yaml: &str) -> BTreeMap<String, String> {
        let spec: WebClusterSpec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        let mut cluster = WebCluster::new("shop", spec);
        cluster.metadata.namespace = Some("ns".into());
        let built = children(&cluster, &Plan::offline(&cluster)).unwrap_or_else(|e| panic!("{e}"));
        let pod = built.iter().find_map(|c| match c {
            Child::Deployment(d) => d.spec.template.spec.clone(),
            _ => None,
        });
        let container = pod.map(|mut p| p.containers.remove(0)).unwrap_or_default();
        container
            .env
            .unwrap_or_default()
            .into_iter()
            .map(|var| {
                let from = var.value_from.and_then(|f| f.secret_key_ref).map(|r| format!("{}/{}", r.name, r.key));
                (var.name, var.value.or(from).unwrap_or_default())
            })
            .collect()
    }

    #[test]
    fn the_cache_dsn_lists_every_memcached_node_as_symfony_reads_it() {
        let env = app_env("app: {image: a}\ncache: {backend: memcached, replicas: 3}");
        let node = |i: i32| format!("shop-cache-{i}.shop-cache-hl.ns.svc:11211");
        assert_eq!(env["WEBCLUSTER_CACHE_DSN"], format!("{}?host[{}]&host[{}]", node(0), node(1), node(2)));
        let one = app_env("app: {image: a}\ncache: {backend: memcached, replicas: 1}");
        assert_eq!(one["WEBCLUSTER_CACHE_DSN"], node(0));
        let redis = app_env("app: {image: a}\ncache: {backend: redis}");
        assert_eq!(redis["WEBCLUSTER_CACHE_DSN"], "shop-cache.ns.svc:6379");
    }

    #[test]
    fn an_extra_database_has_every_part_of_the_main_one_under_its_name() {
        let env =
            app_env("app: {image: a}\ndatabase: {engine: mariadb, managed: {databases: [{name: dfs, user: ezdfs}]}}");
        for end in ["WRITE", "READ"] {
            for part in ["URL", "HOST", "PORT", "NAME", "USER", "PASSWORD"] {
                let key = format!("{}-{}", end.to_lowercase(), part.to_lowercase());
                assert_eq!(env[&format!("WEBCLUSTER_DB_{end}_{part}")], format!("shop-credentials/{key}"));
                assert_eq!(env[&format!("WEBCLUSTER_DB_DFS_{end}_{part}")], format!("shop-credentials/db.dfs.{key}"));
            }
        }
        assert_eq!(env.keys().filter(|k| k.starts_with("WEBCLUSTER_DB_")).count(), 1 + 2 * 12);
    }
}
