//! The Gateway API entry: an HTTPRoute (gateway.networking.k8s.io/v1) that
//! attaches to the Gateways the user names and sends a path of its hostnames
//! to the app, or to Varnish when the HTTP cache is on.
//!
//! The types are the few fields the operator writes, not the whole API: the
//! `gateway-api` crate builds on kube 4 and k8s-openapi 0.28, which cannot
//! share a build with kube 5 and k8s-openapi 0.29.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::app::SERVICE_PORT;
use super::meta::{Component, Parent};
use super::{Child, names};
use crate::api::{HttpRouteSpec, ParentReference};

/// An HTTPRoute, as far as the operator writes one.
#[allow(clippy::upper_case_acronyms)] // the kind's own spelling
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct HTTPRoute {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The route.
    #[serde(default)]
    pub spec: HTTPRouteSpec,
}

impl k8s_openapi::Resource for HTTPRoute {
    const API_VERSION: &'static str = "gateway.networking.k8s.io/v1";
    const GROUP: &'static str = "gateway.networking.k8s.io";
    const KIND: &'static str = "HTTPRoute";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "httproutes";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

/// With apiVersion and kind, as k8s-openapi's types write themselves.
impl Serialize for HTTPRoute {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Typed<'a> {
            #[serde(rename = "apiVersion")]
            api_version: &'a str,
            kind: &'a str,
            metadata: &'a ObjectMeta,
            spec: &'a HTTPRouteSpec,
        }
        use k8s_openapi::Resource;
        Typed { api_version: Self::API_VERSION, kind: Self::KIND, metadata: &self.metadata, spec: &self.spec }
            .serialize(serializer)
    }
}

impl k8s_openapi::Metadata for HTTPRoute {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The spec of an HTTPRoute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteSpec {
    /// The Gateways (or their listeners) the route attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentRef>,
    /// Host names the route answers; none: every host of the listener.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Matches and where they go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HTTPRouteRule>,
}

/// A Gateway the route attaches to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// Always `gateway.networking.k8s.io`.
    pub group: String,
    /// Always `Gateway`.
    pub kind: String,
    /// The Gateway's name.
    pub name: String,
    /// The Gateway's namespace; none: the route's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// One listener of the Gateway; none: every listener that allows the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// One rule: the path prefix to one Service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteRule {
    /// What requests the rule takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HTTPRouteMatch>,
    /// Where they go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
}

/// A request match on the path.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HTTPRouteMatch {
    /// The path match.
    pub path: PathMatch,
}

/// A path match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PathMatch {
    /// `PathPrefix`: the path and everything below it, element by element.
    #[serde(rename = "type")]
    pub type_: String,
    /// The path.
    pub value: String,
}

/// A Service port requests go to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendRef {
    /// Always `""` (core).
    pub group: String,
    /// Always `Service`.
    pub kind: String,
    /// The Service's name (in the route's namespace).
    pub name: String,
    /// The Service's port.
    pub port: i32,
}

/// The HTTPRoute, when the spec asks for one. Named like the app Service and
/// the Ingress; its backend is the one the Ingress has.
pub fn route(parent: &Parent) -> Option<Child> {
    let spec: &HttpRouteSpec = parent.spec.http_route.as_ref()?;
    Some(
        HTTPRoute {
            metadata: parent.meta(names::app(parent.name), Component::Network, "webcluster"),
            spec: HTTPRouteSpec {
                parent_refs: spec.parent_refs.iter().map(parent_ref).collect(),
                hostnames: spec.hostnames.clone(),
                rules: vec![HTTPRouteRule {
                    matches: vec![HTTPRouteMatch {
                        path: PathMatch { type_: "PathPrefix".into(), value: spec.path.clone() },
                    }],
                    backend_refs: vec![BackendRef {
                        group: String::new(),
                        kind: "Service".into(),
                        name: super::network::entry_service(parent),
                        port: SERVICE_PORT,
                    }],
                }],
            },
        }
        .into(),
    )
}

fn parent_ref(reference: &ParentReference) -> ParentRef {
    ParentRef {
        group: "gateway.networking.k8s.io".into(),
        kind: "Gateway".into(),
        name: reference.name.clone(),
        namespace: reference.namespace.clone(),
        section_name: reference.section_name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{WebCluster, WebClusterSpec};
    use crate::desired::{Plan, children};

    fn routes(yaml: &str) -> Vec<serde_json::Value> {
        let spec: WebClusterSpec = serde_saphyr::from_str(yaml).unwrap();
        let mut cluster = WebCluster::new("shop", spec);
        cluster.metadata.namespace = Some("ns".into());
        let built = children(&cluster, &Plan::offline(&cluster)).unwrap();
        built.iter().filter(|c| c.kind() == "HTTPRoute").map(Child::to_json).collect()
    }

    const ROUTE: &str = "httpRoute: {parentRefs: [{name: edge, namespace: infra, sectionName: https}, {name: local}], \
                         hostnames: [shop.example.com], path: /shop}";

    #[test]
    fn the_route_attaches_to_the_named_gateways_and_goes_to_the_app() {
        let route = &routes(&format!("app: {{image: a}}\n{ROUTE}"))[0];
        assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(route["kind"], "HTTPRoute");
        assert_eq!(route["metadata"]["name"], "shop-app");
        assert_eq!(route["metadata"]["ownerReferences"][0]["kind"], "WebCluster");
        let spec = &route["spec"];
        assert_eq!(
            spec["parentRefs"],
            serde_json::json!([
                {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge", "namespace": "infra", "sectionName": "https"},
                {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "local"}
            ])
        );
        assert_eq!(spec["hostnames"], serde_json::json!(["shop.example.com"]));
        assert_eq!(spec["rules"][0]["matches"][0]["path"], serde_json::json!({"type": "PathPrefix", "value": "/shop"}));
        assert_eq!(
            spec["rules"][0]["backendRefs"],
            serde_json::json!([{"group": "", "kind": "Service", "name": "shop-app", "port": SERVICE_PORT}])
        );
    }

    #[test]
    fn with_the_http_cache_the_route_goes_to_varnish_beside_the_ingress() {
        let built =
            routes(&format!("app: {{image: a}}\nhttpCache: {{}}\ningress: {{host: shop.example.com}}\n{ROUTE}"));
        assert_eq!(built[0]["spec"]["rules"][0]["backendRefs"][0]["name"], "shop-http-cache");
        assert!(routes("app: {image: a}\ningress: {host: shop.example.com}").is_empty(), "no route unless asked");
    }

    #[test]
    fn the_path_defaults_to_the_root() {
        let route = &routes("app: {image: a}\nhttpRoute: {parentRefs: [{name: edge}]}")[0];
        assert_eq!(route["spec"]["rules"][0]["matches"][0]["path"]["value"], "/");
        assert!(route["spec"].get("hostnames").is_none());
    }
}
