//! The load balancer entries (Ingress, HTTPRoute) and NetworkPolicies derived from the
//! topology: only app, migration and cron pods reach the database and cache;
//! database and cache pods reach their own peers (replicas follow the primary).

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec,
    IngressTLS, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
    ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::app::SERVICE_PORT;
use super::meta::{COMPONENT_LABEL, Component, INSTANCE_LABEL, Parent};
use super::{Child, cache, database, names};

/// The Ingress and the NetworkPolicies.
pub fn objects(parent: &Parent) -> Vec<Child> {
    let mut objects = Vec::new();
    objects.extend(ingress(parent));
    objects.extend(super::gateway::route(parent));
    if let Some(db) = parent.spec.database.as_ref().filter(|db| db.managed.is_some()) {
        objects.push(policy(
            parent,
            names::database_policy(parent.name),
            Component::Database,
            database::port(db.engine),
        ));
    }
    if let Some(spec) = &parent.spec.cache {
        objects.push(policy(parent, names::cache_policy(parent.name), Component::Cache, cache::port(spec.backend)));
    }
    objects
}

fn ingress(parent: &Parent) -> Option<Child> {
    let spec = parent.spec.ingress.as_ref()?;
    let backend = entry_service(parent);
    let mut metadata = parent.meta(names::app(parent.name), Component::Network, "webcluster");
    metadata.annotations = (!spec.annotations.is_empty()).then(|| spec.annotations.clone());
    Some(
        Ingress {
            metadata,
            spec: Some(IngressSpec {
                ingress_class_name: spec.class_name.clone(),
                tls: spec.tls.as_ref().map(|tls| {
                    vec![IngressTLS {
                        hosts: Some(vec![spec.host.clone()]),
                        secret_name: Some(tls.secret_name.clone()),
                    }]
                }),
                rules: Some(vec![IngressRule {
                    host: Some(spec.host.clone()),
                    http: Some(HTTPIngressRuleValue {
                        paths: vec![HTTPIngressPath {
                            path: Some(spec.path.clone()),
                            path_type: "Prefix".into(),
                            backend: IngressBackend {
                                service: Some(IngressServiceBackend {
                                    name: backend,
                                    port: Some(ServiceBackendPort { number: Some(SERVICE_PORT), name: None }),
                                }),
                                resource: None,
                            },
                        }],
                    }),
                }]),
                ..IngressSpec::default()
            }),
            ..Ingress::default()
        }
        .into(),
    )
}

/// The Service the Ingress and the HTTPRoute send traffic to: Varnish's when
/// it is on, else the app's.
pub fn entry_service(parent: &Parent) -> String {
    if parent.spec.http_cache.is_some() { names::http_cache(parent.name) } else { names::app(parent.name) }
}

/// Lets the workload pods and the component's own pods reach `port` of `component`.
fn policy(parent: &Parent, name: String, component: Component, port: i32) -> Child {
    let workloads = LabelSelector {
        match_labels: Some([(INSTANCE_LABEL.to_string(), parent.name.to_string())].into()),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: COMPONENT_LABEL.into(),
            operator: "In".into(),
            values: Some(
                [Component::App, Component::Migration, Component::Cron, component]
                    .map(|c| c.as_str().to_string())
                    .to_vec(),
            ),
        }]),
    };
    NetworkPolicy {
        metadata: parent.meta(name, Component::Network, "webcluster"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(parent.selector(component)),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer { pod_selector: Some(workloads), ..NetworkPolicyPeer::default() }]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(port)),
                    protocol: Some("TCP".into()),
                    end_port: None,
                }]),
            }]),
            ..NetworkPolicySpec::default()
        }),
    }
    .into()
}
