//! The production defaults of the builder: resources, disruption budgets,
//! probes, zone spread, and that the user's values replace each of them.

use k8s_openapi::api::core::v1::{Container, PodSpec, Probe, ResourceRequirements};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::pod::ZONE_KEY;
use super::{Child, Plan, children};
use crate::api::{WebCluster, WebClusterSpec};

const FULL: &str = "app: {image: a}\n\
                    cache: {backend: redis, memory: 128Mi}\n\
                    httpCache: {memory: 256Mi}\n\
                    database: {engine: postgresql, managed: {}}";

fn built(yaml: &str) -> Vec<Child> {
    let spec: WebClusterSpec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
    let mut cluster = WebCluster::new("shop", spec);
    cluster.metadata.namespace = Some("ns".into());
    children(&cluster, &Plan::offline(&cluster)).unwrap_or_else(|e| panic!("{e}"))
}

/// The pod of the Deployment or StatefulSet `name`.
fn pod(children: &[Child], name: &str) -> PodSpec {
    children
        .iter()
        .find_map(|child| match child {
            Child::Deployment(d) if child.name() == name => d.spec.template.spec.clone(),
            Child::StatefulSet(s) if child.name() == name => s.spec.template.spec.clone(),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no workload {name}"))
}

fn container(children: &[Child], name: &str) -> Container {
    pod(children, name).containers.remove(0)
}

fn budgets(children: &[Child]) -> Vec<PodDisruptionBudget> {
    children
        .iter()
        .filter_map(|child| match child {
            Child::PodDisruptionBudget(pdb) => Some(pdb.clone()),
            _ => None,
        })
        .collect()
}

/// (cpu request, memory request, memory limit).
fn figures(resources: Option<ResourceRequirements>) -> (Option<String>, Option<String>, Option<String>) {
    let resources = resources.unwrap_or_default();
    let get = |map: &Option<std::collections::BTreeMap<String, Quantity>>, key: &str| {
        map.as_ref().and_then(|m| m.get(key)).map(|q| q.0.clone())
    };
    (get(&resources.requests, "cpu"), get(&resources.requests, "memory"), get(&resources.limits, "memory"))
}

fn some(cpu: &str, request: &str, limit: &str) -> (Option<String>, Option<String>, Option<String>) {
    (Some(cpu.into()), Some(request.into()), Some(limit.into()))
}

#[test]
fn the_database_cache_and_varnish_get_requests_and_limits_from_their_memory() {
    let children = built(FULL);
    assert_eq!(figures(container(&children, "shop-db").resources), some("100m", "256Mi", "1Gi"));
    assert_eq!(figures(container(&children, "shop-cache").resources), some("50m", "128Mi", "160Mi"));
    assert_eq!(figures(container(&children, "shop-http-cache").resources), some("50m", "320Mi", "448Mi"));
}

/// Sizes derived from a memory quantity in any unit: memcached `-m` and
/// Varnish `-s malloc` in whole MiB, redis `maxmemory` in bytes, the limits
/// rounded up to a byte.
#[test]
fn derived_sizes_come_from_the_memory_quantity() {
    let children = built("app: {image: a}\ncache: {backend: memcached, memory: 100M}\nhttpCache: {memory: 1.5Gi}");
    let memcached = container(&children, "shop-cache");
    assert_eq!(memcached.command.unwrap_or_default()[1..3], ["-m".to_string(), "95".into()]);
    assert_eq!(figures(memcached.resources), some("50m", "100000000", "125000000"));
    let varnish = container(&children, "shop-http-cache");
    assert!(varnish.command.unwrap_or_default().contains(&"malloc,1536M".to_string()));
    assert_eq!(figures(varnish.resources), some("50m", "1600Mi", "2368Mi"));
    let redis = built("app: {image: a}\ncache: {backend: redis, memory: 134217728}");
    let conf = redis.iter().find_map(|c| match c {
        Child::ConfigMap(m) if c.name() == "shop-cache-config" => m.data.as_ref()?.get("redis.conf").cloned(),
        _ => None,
    });
    assert!(conf.unwrap_or_default().contains("maxmemory 134217728\n"));
}

#[test]
fn the_users_resources_replace_the_defaults() {
    let mine = "resources: {requests: {cpu: 1, memory: 2Gi}, limits: {memory: 4Gi}}";
    let children = built(&format!(
        "app: {{image: a}}\ncache: {{backend: redis, {mine}}}\nhttpCache: {{{mine}}}\n\
         database: {{engine: mariadb, managed: {{{mine}}}}}"
    ));
    for name in ["shop-db", "shop-cache", "shop-http-cache"] {
        assert_eq!(figures(container(&children, name).resources), some("1", "2Gi", "4Gi"), "{name}");
    }
}

#[test]
fn varnish_runs_two_pods_by_default_and_the_user_may_say_otherwise() {
    let replicas = |children: Vec<Child>| {
        children.into_iter().find_map(|c| match c {
            Child::Deployment(d) if d.metadata.name.as_deref() == Some("shop-http-cache") => d.spec.replicas,
            _ => None,
        })
    };
    assert_eq!(replicas(built(FULL)), Some(2));
    assert_eq!(replicas(built("app: {image: a}\nhttpCache: {replicas: 1}")), Some(1));
}

#[test]
fn every_component_has_a_budget_that_lets_unhealthy_pods_go() {
    let budgets = budgets(&built(FULL));
    let mut names: Vec<String> = budgets.iter().filter_map(|b| b.metadata.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["shop-app", "shop-cache", "shop-db", "shop-http-cache"]);
    for budget in budgets {
        let spec = budget.spec.unwrap_or_default();
        assert_eq!(spec.unhealthy_pod_eviction_policy.as_deref(), Some("AlwaysAllow"), "{:?}", budget.metadata.name);
        assert!(spec.max_unavailable.is_some() && spec.selector.is_some());
    }
}

fn probes(yaml: &str) -> (Probe, Probe, Probe) {
    let app = container(&built(yaml), "shop-app");
    let unwrap = |p: Option<Probe>| p.unwrap_or_else(|| panic!("a probe"));
    (unwrap(app.readiness_probe), unwrap(app.startup_probe), unwrap(app.liveness_probe))
}

#[test]
fn the_app_gets_a_startup_probe_and_a_liveness_probe_no_dependency_fails() {
    let (readiness, startup, liveness) = probes("app: {image: a, port: 8080, healthCheck: {path: /health}}");
    let path = |p: &Probe| p.http_get.as_ref().and_then(|h| h.path.clone());
    assert_eq!(path(&readiness).as_deref(), Some("/health"));
    assert_eq!(path(&startup).as_deref(), Some("/health"), "the startup probe checks like readiness");
    assert_eq!((startup.period_seconds, startup.failure_threshold), (Some(10), Some(30)), "300 s to start");
    assert_eq!(path(&liveness), None, "liveness does not ask a path that needs the database");
    assert!(liveness.tcp_socket.is_some());

    let (_, startup, liveness) = probes(
        "app: {image: a, startupTimeoutSeconds: 600, healthCheck: {path: /ready, periodSeconds: 20, livenessPath: /alive}}",
    );
    assert_eq!((startup.period_seconds, startup.failure_threshold), (Some(20), Some(30)));
    assert_eq!(path(&liveness).as_deref(), Some("/alive"));
}

#[test]
fn an_autoscaled_app_always_requests_cpu() {
    let cpu = |yaml: &str| figures(container(&built(yaml), "shop-app").resources).0;
    assert_eq!(cpu("app: {image: a}"), None, "no HPA: the user decides");
    let scaled = "autoscaling: {minReplicas: 2, maxReplicas: 4}";
    assert_eq!(cpu(&format!("app: {{image: a, {scaled}}}")).as_deref(), Some("100m"));
    let mine = format!("app: {{image: a, {scaled}, resources: {{requests: {{cpu: 250m, memory: 1Gi}}}}}}");
    assert_eq!(cpu(&mine).as_deref(), Some("250m"), "the user's request stays");
    let limit = format!("app: {{image: a, {scaled}, resources: {{limits: {{cpu: 50m}}}}}}");
    assert_eq!(cpu(&limit), None, "a CPU limit alone is the request (the API server copies it)");
}

#[test]
fn zone_spread_merges_with_the_users_constraints() {
    let keys = |pod: PodSpec| -> Vec<(String, String)> {
        pod.topology_spread_constraints
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.topology_key, c.when_unsatisfiable))
            .collect()
    };
    let children = built(FULL);
    for name in ["shop-db", "shop-cache", "shop-http-cache"] {
        assert_eq!(keys(pod(&children, name)), [(ZONE_KEY.to_string(), "ScheduleAnyway".to_string())], "{name}");
    }
    let rack = "{topologySpreadConstraints: [{maxSkew: 1, topologyKey: rack, whenUnsatisfiable: DoNotSchedule}]}";
    let zone = "{topologySpreadConstraints: [{maxSkew: 2, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule}]}";
    let children = built(&format!(
        "app: {{image: a}}\ncache: {{backend: redis, pod: {rack}}}\ndatabase: {{engine: postgresql, managed: {{pod: {zone}}}}}"
    ));
    let pair = |key: &str, when: &str| (key.to_string(), when.to_string());
    assert_eq!(
        keys(pod(&children, "shop-cache")),
        [pair(ZONE_KEY, "ScheduleAnyway"), pair("rack", "DoNotSchedule")],
        "the user's constraint comes beside the default"
    );
    assert_eq!(
        keys(pod(&children, "shop-db")),
        [pair(ZONE_KEY, "DoNotSchedule")],
        "the user's zone rule replaces ours"
    );
}

fn migration_retries(yaml: &str) -> Option<i32> {
    built(yaml).iter().find_map(|child| match child {
        Child::Job(job) => job.spec.as_ref().and_then(|spec| spec.backoff_limit),
        _ => None,
    })
}

#[test]
fn a_migration_retries_start_up_races_unless_told_otherwise() {
    assert_eq!(migration_retries("app: {image: a, migration: {command: [m]}}"), Some(6));
    assert_eq!(migration_retries("app: {image: a, migration: {command: [m], backoffLimit: 0}}"), Some(0));
}
