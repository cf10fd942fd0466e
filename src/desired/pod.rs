//! Pod pieces the components share: security contexts, probes, environment
//! variables and scheduling.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, EnvVar, EnvVarSource, ObjectFieldSelector,
    PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, TCPSocketAction, TopologySpreadConstraint, Volume, VolumeMount,
    WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Child;
use super::meta::{Component, Parent};
use crate::api::PodPlacement;

/// Where the zone of a node is labelled.
pub const ZONE_KEY: &str = "topology.kubernetes.io/zone";

/// Requests of `cpu` and `memory_request`, a limit of `memory_limit` (no CPU
/// limit: throttling hurts latency more than a busy neighbour does).
pub fn resources(cpu: &str, memory_request: &str, memory_limit: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory_request.into())),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), Quantity(memory_limit.into()))])),
        ..ResourceRequirements::default()
    }
}

/// A PodDisruptionBudget named `name` over the pods of `component`. Pods that
/// are not ready may always be evicted, so a crash-looping pod never blocks a drain.
pub fn disruption_budget(
    parent: &Parent,
    name: String,
    component: Component,
    software: &str,
    max_unavailable: IntOrString,
) -> Child {
    PodDisruptionBudget {
        metadata: parent.meta(name, component, software),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(max_unavailable),
            selector: Some(parent.selector(component)),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
    .into()
}

/// Spread the pods of `component` over `topology_key`, preferred, not required.
pub fn spread(parent: &Parent, component: Component, topology_key: &str) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew: 1,
        topology_key: topology_key.into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(parent.selector(component)),
        ..TopologySpreadConstraint::default()
    }
}

/// A TCP probe on `port`.
pub fn tcp_probe(port: i32, period_seconds: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(port), host: None }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// An environment variable holding the pod's own name.
pub fn pod_name_env(name: &str) -> EnvVar {
    field_env(name, "metadata.name".into())
}

/// `name` set to the pod's label `label` when its container starts (empty without it).
pub fn pod_label_env(name: &str, label: &str) -> EnvVar {
    field_env(name, format!("metadata.labels['{label}']"))
}

fn field_env(name: &str, field_path: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path, api_version: None }),
            ..EnvVarSource::default()
        }),
    }
}

/// Places `pod` as the user's `placement` says: node selector, tolerations,
/// affinity, priority class and topology spread. Where the user gives no
/// affinity, `default_affinity` applies; the user's spread constraints come
/// after those of `default_spread` whose topology key they do not use.
pub fn place(
    mut pod: PodSpec,
    placement: Option<&PodPlacement>,
    default_affinity: Option<Affinity>,
    default_spread: Vec<TopologySpreadConstraint>,
) -> PodSpec {
    let placement = placement.cloned().unwrap_or_default();
    pod.node_selector = (!placement.node_selector.is_empty()).then_some(placement.node_selector);
    pod.tolerations = non_empty(placement.tolerations);
    pod.affinity = placement.affinity.or(default_affinity);
    pod.priority_class_name = placement.priority_class_name;
    let user = placement.topology_spread_constraints;
    let mut spread: Vec<_> =
        default_spread.into_iter().filter(|d| user.iter().all(|u| u.topology_key != d.topology_key)).collect();
    spread.extend(user);
    pod.topology_spread_constraints = non_empty(spread);
    pod
}

/// The pod of the cache, the database or Varnish: one container running as
/// `uid`, no API token, placed as `placement` says (one pod per node unless it
/// gives an affinity).
pub fn service_pod(
    parent: &Parent,
    component: Component,
    container: Container,
    volumes: Vec<Volume>,
    uid: i64,
    placement: Option<&PodPlacement>,
) -> PodSpec {
    let pod = PodSpec {
        containers: vec![container],
        volumes: non_empty(volumes),
        security_context: Some(restricted_pod(Some(uid))),
        automount_service_account_token: Some(false),
        ..PodSpec::default()
    };
    place(pod, placement, Some(spread_affinity(parent, component)), vec![spread(parent, component, ZONE_KEY)])
}

/// Prefer one pod of a component per node.
fn spread_affinity(parent: &Parent, component: Component) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                weight: 100,
                pod_affinity_term: PodAffinityTerm {
                    label_selector: Some(parent.selector(component)),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..PodAffinityTerm::default()
                },
            }]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

/// An environment variable with a literal value.
pub fn plain(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

/// An environment variable read from a Secret key.
pub fn from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret.into(), key: key.into(), optional: None }),
            ..EnvVarSource::default()
        }),
    }
}

/// The restricted container security context (Pod Security Standards "restricted").
pub fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
        run_as_non_root: Some(true),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

/// [`restricted_container`] with a read-only root filesystem: for the servers the
/// operator runs itself, whose images write only where it mounts a volume
/// ([`scratch`] where nothing else is mounted).
pub fn read_only_container() -> SecurityContext {
    SecurityContext { read_only_root_filesystem: Some(true), ..restricted_container() }
}

/// A writable empty folder at `path` under a read-only root: the volume and its mount.
pub fn scratch(name: &str, path: &str) -> (Volume, VolumeMount) {
    (empty_dir_volume(name), VolumeMount { name: name.into(), mount_path: path.into(), ..VolumeMount::default() })
}

/// A restricted pod security context running as `uid` (images whose USER is a
/// name need a number, or the kubelet cannot verify runAsNonRoot).
pub fn restricted_pod(uid: Option<i64>) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: uid,
        run_as_group: uid,
        fs_group: uid,
        seccomp_profile: Some(runtime_default_seccomp()),
        ..PodSecurityContext::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }
}

/// A volume of the ConfigMap `config_map`.
pub fn config_map_volume(name: &str, config_map: String) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource { name: config_map, ..ConfigMapVolumeSource::default() }),
        ..Volume::default()
    }
}

/// An empty scratch volume.
pub fn empty_dir_volume(name: &str) -> Volume {
    Volume { name: name.into(), empty_dir: Some(Default::default()), ..Volume::default() }
}

/// `None` for an empty list, so the rendered object has no empty fields.
pub fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodTemplateSpec;

    use super::*;
    use crate::api::{WebCluster, WebClusterSpec};
    use crate::desired::{Child, Plan, children};

    const PLACEMENT: &str =
        "{nodeSelector: {disk: ssd}, tolerations: [{key: real, operator: Exists}], priorityClassName: important}";

    fn cluster(placement: &str) -> WebCluster {
        let yaml = format!(
            "app: {{image: a, pod: {placement}, migration: {{command: [m]}}}}\n\
             cache: {{backend: redis, pod: {placement}}}\n\
             httpCache: {{pod: {placement}}}\n\
             database: {{engine: postgresql, managed: {{pod: {placement}}}}}\n\
             jobs: [{{name: clean, schedule: '* * * * *', command: [c]}}]"
        );
        let spec: WebClusterSpec = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{e}"));
        let mut cluster = WebCluster::new("shop", spec);
        cluster.metadata.namespace = Some("ns".into());
        cluster
    }

    /// Every pod template the builder produces, by the name of its object.
    fn pods(cluster: &WebCluster) -> Vec<(String, PodSpec)> {
        let template = |t: &PodTemplateSpec| t.spec.clone().unwrap_or_default();
        children(cluster, &Plan::offline(cluster))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|child| {
                let name = child.name().to_string();
                let pod = match child {
                    Child::Deployment(d) => template(&d.spec.template),
                    Child::StatefulSet(s) => template(&s.spec.template),
                    Child::Job(j) => template(&j.spec?.template),
                    Child::CronJob(c) => template(&c.spec.job_template.spec?.template),
                    _ => return None,
                };
                Some((name, pod))
            })
            .collect()
    }

    #[test]
    fn every_component_is_placed_as_its_spec_says() {
        let pods = pods(&cluster(PLACEMENT));
        assert_eq!(pods.len(), 6, "app, migration, cron, cache, database, Varnish: {pods:?}");
        for (name, pod) in pods {
            assert_eq!(pod.node_selector, Some([("disk".to_string(), "ssd".to_string())].into()), "{name}");
            assert_eq!(pod.tolerations.map(|t| t.len()), Some(1), "{name}");
            assert_eq!(pod.priority_class_name.as_deref(), Some("important"), "{name}");
        }
    }

    #[test]
    fn without_placement_the_defaults_hold() {
        for (name, pod) in pods(&cluster("{}")) {
            assert_eq!(
                (&pod.node_selector, &pod.tolerations, &pod.priority_class_name),
                (&None, &None, &None),
                "{name}"
            );
            let data_tier = ["shop-cache", "shop-db", "shop-http-cache"].contains(&name.as_str());
            assert_eq!(pod.affinity.is_some(), data_tier, "{name}: one pod per node by default");
            let keys: Vec<String> =
                pod.topology_spread_constraints.iter().flatten().map(|c| c.topology_key.clone()).collect();
            let expected: &[&str] = match name.as_str() {
                "shop-app" => &["kubernetes.io/hostname", ZONE_KEY],
                _ if data_tier => &[ZONE_KEY],
                _ => &[],
            };
            assert_eq!(keys, expected, "{name}: spread by default");
        }
    }

    /// The writable mounts of each container (every mount not marked read-only).
    fn writable_mounts(pod: &PodSpec) -> Vec<&str> {
        let mounts = pod.containers.iter().flat_map(|c| c.volume_mounts.iter().flatten());
        mounts.filter(|m| m.read_only != Some(true)).map(|m| m.mount_path.as_str()).collect()
    }

    fn read_only_root(pod: &PodSpec) -> Option<bool> {
        pod.containers[0].security_context.as_ref().and_then(|c| c.read_only_root_filesystem)
    }

    #[test]
    fn the_servers_run_on_a_read_only_root_writing_only_to_their_volumes() {
        for (backend, engine) in [("redis", "postgresql"), ("memcached", "mariadb")] {
            let yaml = format!(
                "app: {{image: a, migration: {{command: [m]}}}}\ncache: {{backend: {backend}}}\nhttpCache: {{}}\n\
                 database: {{engine: {engine}, managed: {{}}}}\njobs: [{{name: clean, schedule: '* * * * *', command: [c]}}]"
            );
            let spec: WebClusterSpec = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{e}"));
            let mut cluster = WebCluster::new("shop", spec);
            cluster.metadata.namespace = Some("ns".into());
            for (name, pod) in pods(&cluster) {
                let writable: &[&str] = match name.as_str() {
                    "shop-cache" if backend == "redis" => &["/data"],
                    "shop-cache" => &[],
                    "shop-db" if engine == "postgresql" => &["/var/lib/postgresql/data", "/run/webcluster-db"],
                    "shop-db" => &["/var/lib/mysql", "/run/webcluster-db"],
                    "shop-http-cache" => &["/var/lib/varnish", "/tmp"],
                    // The app's image is the user's: its root stays writable unless app.securityContext says otherwise.
                    _ => {
                        assert_eq!(read_only_root(&pod), None, "{name}");
                        continue;
                    }
                };
                assert_eq!(read_only_root(&pod), Some(true), "{name} ({backend}, {engine})");
                assert_eq!(writable_mounts(&pod), writable, "{name} ({backend}, {engine})");
                let volumes: Vec<&str> = pod.volumes.iter().flatten().map(|v| v.name.as_str()).collect();
                for mount in pod.containers[0].volume_mounts.iter().flatten() {
                    assert!(volumes.contains(&mount.name.as_str()) || mount.name == "data", "{name}: {}", mount.name);
                }
            }
        }
    }

    #[test]
    fn the_app_containers_take_a_read_only_root_from_the_app_security_context() {
        let yaml = "app: {image: a, migration: {command: [m]}, securityContext: {readOnlyRootFilesystem: true},\n\
                    pod: {volumes: [{name: tmp, emptyDir: {}}], volumeMounts: [{name: tmp, mountPath: /tmp}]}}\n\
                    jobs: [{name: clean, schedule: '* * * * *', command: [c]}]";
        let spec: WebClusterSpec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        let mut cluster = WebCluster::new("shop", spec);
        cluster.metadata.namespace = Some("ns".into());
        let pods = pods(&cluster);
        assert_eq!(pods.len(), 3, "app, migration, cron: {pods:?}");
        for (name, pod) in pods {
            assert_eq!(read_only_root(&pod), Some(true), "{name}");
            assert_eq!(writable_mounts(&pod), ["/tmp"], "{name}");
        }
    }

    #[test]
    fn the_app_pod_overrides_still_refuse_unknown_fields() {
        assert!(serde_saphyr::from_str::<WebClusterSpec>("app: {image: a, pod: {nodeSelectr: {a: b}}}").is_err());
    }
}
