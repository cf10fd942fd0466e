//! The optional Varnish HTTP cache in front of the app.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, EnvVar, PodTemplateSpec, ResourceRequirements, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::app::{HTTP_PORT_NAME, SERVICE_PORT, http_service};
use super::credentials::shared_key;
use super::meta::{Component, Parent};
use super::pod::{
    config_map_volume, disruption_budget, from_secret, read_only_container, resources, scratch, service_pod, tcp_probe,
};
use super::{Child, names};
use crate::api::HttpCacheSpec;
use crate::api::formats::bytes_quantity;

const VARNISH_IMAGE: &str = "varnish:7.7";
/// The uid of the official image's `varnish` user.
const VARNISH_UID: i64 = 1000;
const VARNISH_PORT: i32 = 8080;

/// The Varnish container's copy of the invalidation token (the shared secret
/// `spec.httpCache.invalidateTokenSecret` names), read by the VCL with `std.getenv`.
pub const INVALIDATE_TOKEN_VAR: &str = "WEBCLUSTER_INVALIDATE_TOKEN";
/// The generated VCL; `WEBCLUSTER_APP_HOST`/`PORT` are filled in as in a user's.
const GENERATED_VCL: &str = include_str!("scripts/http-cache.vcl");
/// Token-checked `PURGE` and `PURGEKEYS`, when a token is configured.
const INVALIDATE_VCL: &str = include_str!("scripts/http-cache-invalidate.vcl");
/// Without a token nobody may invalidate, and the VCL needs neither std nor xkey.
const REFUSE_VCL: &str = "
sub webcluster_invalidate {
    # spec.httpCache.invalidateTokenSecret is not set.
    return (synth(403, \"Invalidation is off\"));
}
";

/// `WEBCLUSTER_HTTP_CACHE_URL`: where the app sends purges.
pub fn url(parent: &Parent) -> String {
    format!("http://{}", parent.service_host(&names::http_cache(parent.name)))
}

/// Varnish's objects.
pub fn objects(parent: &Parent) -> Vec<Child> {
    let Some(spec) = &parent.spec.http_cache else { return Vec::new() };
    // One pod at a time: with the default two, one always serves during a drain.
    let budget =
        disruption_budget(parent, names::http_cache(parent.name), Component::HttpCache, "varnish", IntOrString::Int(1));
    vec![config(parent, spec), deployment(parent, spec), service(parent), budget]
}

/// The VCL, the user's or the generated one, with the backend placeholders filled.
fn vcl(parent: &Parent, spec: &HttpCacheSpec) -> String {
    let host = parent.service_host(&names::app(parent.name));
    let port = SERVICE_PORT.to_string();
    let vcl = match &spec.vcl {
        Some(vcl) => vcl.clone(),
        None => {
            let invalidation = if spec.invalidate_token_secret.is_some() { INVALIDATE_VCL } else { REFUSE_VCL };
            format!("{GENERATED_VCL}{invalidation}")
        }
    };
    vcl.replace("WEBCLUSTER_APP_HOST", &host).replace("WEBCLUSTER_APP_PORT", &port)
}

/// The token's variable, from the generated Secret, when one is configured.
fn token_env(parent: &Parent, spec: &HttpCacheSpec) -> Option<Vec<EnvVar>> {
    let name = spec.invalidate_token_secret.as_ref()?;
    Some(vec![from_secret(INVALIDATE_TOKEN_VAR, &names::credentials(parent.name), &shared_key(name))])
}

fn config(parent: &Parent, spec: &HttpCacheSpec) -> Child {
    ConfigMap {
        metadata: parent.meta(names::http_cache_config(parent.name), Component::HttpCache, "varnish"),
        data: Some(BTreeMap::from([("default.vcl".to_string(), vcl(parent, spec))])),
        ..ConfigMap::default()
    }
    .into()
}

fn deployment(parent: &Parent, spec: &HttpCacheSpec) -> Child {
    // Under a read-only root: varnishd compiles the VCL in its working folder, the C
    // compiler writes its temporary files to /tmp.
    let (workdir, workdir_mount) = scratch("workdir", "/var/lib/varnish");
    let (tmp, tmp_mount) = scratch("tmp", "/tmp");
    let container = Container {
        name: "varnish".into(),
        image: Some(spec.image.clone().unwrap_or_else(|| VARNISH_IMAGE.into())),
        command: Some(
            [
                "varnishd",
                "-F",
                "-f",
                "/etc/varnish/default.vcl",
                "-a",
                &format!(":{VARNISH_PORT}"),
                "-s",
                &format!("malloc,{}M", super::memory_bytes(&spec.memory) >> 20),
            ]
            .map(String::from)
            .to_vec(),
        ),
        ports: Some(vec![ContainerPort {
            name: Some(HTTP_PORT_NAME.into()),
            container_port: VARNISH_PORT,
            ..ContainerPort::default()
        }]),
        env: token_env(parent, spec),
        readiness_probe: Some(tcp_probe(VARNISH_PORT, 5)),
        liveness_probe: Some(tcp_probe(VARNISH_PORT, 20)),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "vcl".into(),
                mount_path: "/etc/varnish".into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            workdir_mount,
            tmp_mount,
        ]),
        resources: Some(spec.resources.clone().unwrap_or_else(|| default_resources(super::memory_bytes(&spec.memory)))),
        security_context: Some(read_only_container()),
        ..Container::default()
    };
    Deployment {
        metadata: parent.meta(names::http_cache(parent.name), Component::HttpCache, "varnish"),
        spec: DeploymentSpec {
            replicas: Some(spec.replicas),
            selector: parent.selector(Component::HttpCache),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(parent.labels(Component::HttpCache, "varnish")),
                    ..ObjectMeta::default()
                }),
                spec: Some(service_pod(
                    parent,
                    Component::HttpCache,
                    container,
                    vec![config_map_volume("vcl", names::http_cache_config(parent.name)), workdir, tmp],
                    VARNISH_UID,
                    spec.pod.as_ref(),
                )),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
    .into()
}

/// Varnish keeps per-object overhead and thread stacks beside its `-s malloc`
/// storage: `memory` + 64Mi requested, `memory` × 1.5 + 64Mi the limit.
fn default_resources(memory: u64) -> ResourceRequirements {
    const OVERHEAD: u64 = 64 << 20;
    let request = memory + OVERHEAD;
    let limit = memory + memory.div_ceil(2) + OVERHEAD;
    resources("50m", &bytes_quantity(request), &bytes_quantity(limit))
}

fn service(parent: &Parent) -> Child {
    http_service(parent, names::http_cache(parent.name), Component::HttpCache, "varnish")
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Container;

    use super::super::{Child, Plan, children};
    use crate::api::{WebCluster, WebClusterSpec};

    /// The VCL and the Varnish container of WebCluster `shop` with `spec`.
    fn varnish(yaml: &str) -> (String, Container) {
        let spec: WebClusterSpec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        let mut cluster = WebCluster::new("shop", spec);
        cluster.metadata.namespace = Some("ns".into());
        let built = children(&cluster, &Plan::offline(&cluster)).unwrap_or_else(|e| panic!("{e}"));
        let vcl = built.iter().find_map(|c| match c {
            Child::ConfigMap(m) if c.name() == "shop-http-cache-vcl" => m.data.as_ref()?.get("default.vcl").cloned(),
            _ => None,
        });
        let container = built.iter().find_map(|c| match c {
            Child::Deployment(d) if c.name() == "shop-http-cache" => Some(d.spec.template.spec.clone()?.containers),
            _ => None,
        });
        (vcl.unwrap_or_default(), container.unwrap_or_default().remove(0))
    }

    const TOKEN: &str = "app: {image: a, sharedSecrets: [APP_SECRET, PURGE_TOKEN]}\n\
                         httpCache: {invalidateTokenSecret: PURGE_TOKEN}";

    #[test]
    fn with_a_token_the_vcl_purges_urls_and_xkey_tags_for_requests_that_carry_it() {
        let (vcl, container) = varnish(TOKEN);
        assert!(vcl.starts_with("vcl 4.1;\n"), "{vcl}");
        assert!(
            vcl.contains(".host = \"shop-app.ns.svc\";\n    .port = \"80\";"),
            "the backend is the app Service: {vcl}"
        );
        assert!(vcl.contains("import std;\nimport xkey;"), "{vcl}");
        for needle in [
            "req.method == \"PURGE\" || req.method == \"PURGEKEYS\"",
            "req.http.X-Invalidate-Token != std.getenv(\"WEBCLUSTER_INVALIDATE_TOKEN\")",
            "return (synth(403,",
            "return (purge);",
            "xkey.purge(req.http.xkey-purge)",
            "xkey.softpurge(req.http.xkey-softpurge)",
        ] {
            assert!(vcl.contains(needle), "{needle} in {vcl}");
        }
        // The token is checked before anything is evicted.
        let check = vcl.find("std.getenv").unwrap_or(usize::MAX);
        assert!(check < vcl.find("return (purge)").unwrap_or(0) && check < vcl.find("xkey.purge(").unwrap_or(0));
        let env = container.env.unwrap_or_default();
        assert_eq!(env.len(), 1, "{env:?}");
        assert_eq!(env[0].name, "WEBCLUSTER_INVALIDATE_TOKEN");
        let from = env[0].value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref());
        assert_eq!(from.map(|r| (r.name.as_str(), r.key.as_str())), Some(("shop-credentials", "shared.PURGE_TOKEN")));
        assert_eq!(env[0].value, None, "the value never appears in the Deployment");
    }

    #[test]
    fn without_a_token_the_vcl_refuses_every_invalidation_and_needs_no_vmod() {
        let (vcl, container) = varnish("app: {image: a, sharedSecrets: [PURGE_TOKEN]}\nhttpCache: {}");
        assert!(vcl.contains("call webcluster_invalidate;"), "{vcl}");
        let sub = &vcl[vcl.find("sub webcluster_invalidate").unwrap_or(0)..];
        assert!(sub.contains("return (synth(403, \"Invalidation is off\"));"), "{sub}");
        for needle in ["import", "purge);", "xkey.", "getenv"] {
            assert!(!vcl.contains(needle), "no {needle} in {vcl}");
        }
        assert_eq!(container.env, None, "a shared secret alone is not handed to Varnish");
    }

    #[test]
    fn nobody_asks_the_app_for_its_token_through_varnish() {
        for yaml in [TOKEN, "app: {image: a}\nhttpCache: {}"] {
            let (vcl, _) = varnish(yaml);
            let guard = vcl.find("_ez_http_invalidatetoken").unwrap_or(usize::MAX);
            assert!(guard < vcl.find("call webcluster_invalidate").unwrap_or(0), "{vcl}");
            assert!(vcl.contains("vnd\\.ezplatform\\.invalidate-token"), "{vcl}");
        }
    }

    #[test]
    fn a_user_vcl_is_kept_with_its_placeholders_filled_and_gets_the_token_too() {
        let yaml = format!("{TOKEN}\n").replace(
            "httpCache: {invalidateTokenSecret: PURGE_TOKEN}",
            "httpCache: {invalidateTokenSecret: PURGE_TOKEN, vcl: \"vcl 4.1; backend app { .host = \\\"WEBCLUSTER_APP_HOST\\\"; .port = \\\"WEBCLUSTER_APP_PORT\\\"; }\"}",
        );
        let (vcl, container) = varnish(&yaml);
        assert_eq!(vcl, "vcl 4.1; backend app { .host = \"shop-app.ns.svc\"; .port = \"80\"; }");
        assert_eq!(container.env.unwrap_or_default()[0].name, "WEBCLUSTER_INVALIDATE_TOKEN");
    }
}
