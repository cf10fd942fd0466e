//! The web application: Deployment, Service, PodDisruptionBudget, HPA and the
//! migration Job.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ContainerPort, HTTPGetAction, Probe, Service, ServicePort, ServiceSpec, TCPSocketAction, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{Component, Parent};
use super::pod::{self, ZONE_KEY, spread};
use super::workload::{run_once, workload_container, workload_template};
use super::{Child, Plan, names};

/// Service port of the app (and of Varnish in front of it).
pub const SERVICE_PORT: i32 = 80;
/// Name of the HTTP container port and Service port (of the app and of Varnish).
pub const HTTP_PORT_NAME: &str = "http";

/// The app container's CPU request when autoscaling is on and the user gave none:
/// the HPA computes utilisation as a share of it.
const AUTOSCALED_CPU_REQUEST: &str = "100m";

/// Annotation of an app Deployment whose first rollout waits (for the database
/// or the first migration). The controller releases it once, by dropping it.
pub const HOLD_ANNOTATION: &str = "webcluster.io/first-rollout";

/// The app's objects.
pub fn objects(parent: &Parent, plan: &Plan) -> Vec<Child> {
    let mut objects = vec![service(parent), deployment(parent, &plan.serving_image, plan.hold_first_rollout)];
    objects.extend(autoscaler(parent));
    if let Some(pdb) = disruption_budget(parent) {
        objects.push(pdb);
    }
    if let Some(job) = migration_job(parent).filter(|_| plan.start_migration) {
        objects.push(job);
    }
    objects
}

/// The app Deployment. While its first rollout is held it runs no pods, so an
/// app that sets up its schema at start-up never meets a missing database.
fn deployment(parent: &Parent, image: &str, held: bool) -> Child {
    let app = &parent.spec.app;
    let name = names::app(parent.name);
    let mut container = workload_container(parent, image, None);
    container.ports = Some(vec![ContainerPort {
        name: Some(HTTP_PORT_NAME.into()),
        container_port: app.port,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }]);
    let (readiness, startup, liveness) = probes(parent);
    container.readiness_probe = Some(readiness);
    container.startup_probe = Some(startup);
    container.liveness_probe = Some(liveness);
    // A CPU limit alone is the request too (the API server copies it).
    let cpu_limit = app.resources.as_ref().and_then(|r| r.limits.as_ref()).is_some_and(|l| l.contains_key("cpu"));
    if app.autoscaling.is_some() && !cpu_limit {
        let requests = container.resources.get_or_insert_default().requests.get_or_insert_default();
        requests.entry("cpu".into()).or_insert_with(|| Quantity(AUTOSCALED_CPU_REQUEST.into()));
    }
    let mut template = workload_template(parent, Component::App, container, "Always", default_spread(parent));
    let annotations = app.pod.as_ref().map(|p| p.annotations.clone()).unwrap_or_default();
    if let Some(meta) = template.metadata.as_mut() {
        meta.annotations = (!annotations.is_empty()).then_some(annotations);
    }
    let mut metadata = parent.meta(name, Component::App, parent.name);
    if held {
        metadata.annotations.get_or_insert_default().insert(HOLD_ANNOTATION.into(), "held".into());
    }
    // With an HPA the operator leaves the count to it (and does not own the field).
    let replicas = if held { Some(0) } else { app.autoscaling.is_none().then_some(app.replicas) };
    Deployment {
        metadata,
        spec: DeploymentSpec {
            replicas,
            selector: parent.selector(Component::App),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".into())),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            revision_history_limit: Some(5),
            template,
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
    .into()
}

/// Spread app pods over nodes and zones, preferring but not requiring it.
fn default_spread(parent: &Parent) -> Vec<TopologySpreadConstraint> {
    ["kubernetes.io/hostname", ZONE_KEY].into_iter().map(|key| spread(parent, Component::App, key)).collect()
}

/// The app's probes: readiness (the health check, or TCP), a startup probe checking the
/// same for up to `startupTimeoutSeconds`, and liveness on the liveness path or TCP, so
/// a failing dependency makes pods unready but never restarts them.
fn probes(parent: &Parent) -> (Probe, Probe, Probe) {
    let app = &parent.spec.app;
    let check = app.health_check.as_ref();
    let port = IntOrString::Int(check.and_then(|c| c.port).unwrap_or(app.port));
    let period = check.map_or(10, |c| c.period_seconds);
    let probe = |path: Option<&String>, failure_threshold: i32| Probe {
        http_get: path.map(|path| HTTPGetAction {
            path: Some(path.clone()),
            port: port.clone(),
            ..HTTPGetAction::default()
        }),
        tcp_socket: path.is_none().then(|| TCPSocketAction { port: port.clone(), host: None }),
        period_seconds: Some(period),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    };
    let readiness = probe(check.map(|c| &c.path), 3);
    let startup = Probe {
        initial_delay_seconds: check.map(|c| c.initial_delay_seconds),
        ..probe(check.map(|c| &c.path), (app.startup_timeout_seconds + period - 1) / period)
    };
    let liveness = probe(check.and_then(|c| c.liveness_path.as_ref()), 6);
    (readiness, startup, liveness)
}

fn service(parent: &Parent) -> Child {
    http_service(parent, names::app(parent.name), Component::App, parent.name)
}

/// A Service on [`SERVICE_PORT`] to the `http` port of a component's pods.
pub fn http_service(parent: &Parent, name: String, component: Component, software: &str) -> Child {
    Service {
        metadata: parent.meta(name, component, software),
        spec: Some(ServiceSpec {
            selector: Some(parent.selector_labels(component)),
            ports: Some(vec![ServicePort {
                name: Some(HTTP_PORT_NAME.into()),
                port: SERVICE_PORT,
                target_port: Some(IntOrString::String(HTTP_PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
    .into()
}

/// A PDB when asked for, or by default when more than one pod serves.
fn disruption_budget(parent: &Parent) -> Option<Child> {
    let app = &parent.spec.app;
    let several = app.autoscaling.as_ref().map_or(app.replicas, |a| a.min_replicas) > 1;
    let max_unavailable = match &app.disruption_budget {
        Some(budget) => budget.max_unavailable.clone(),
        None if several => IntOrString::Int(1),
        None => return None,
    };
    Some(pod::disruption_budget(parent, names::app(parent.name), Component::App, parent.name, max_unavailable))
}

fn autoscaler(parent: &Parent) -> Option<Child> {
    let scaling = parent.spec.app.autoscaling.as_ref()?;
    Some(
        HorizontalPodAutoscaler {
            metadata: parent.meta(names::app(parent.name), Component::App, parent.name),
            spec: HorizontalPodAutoscalerSpec {
                scale_target_ref: CrossVersionObjectReference {
                    api_version: Some("apps/v1".into()),
                    kind: "Deployment".into(),
                    name: names::app(parent.name),
                },
                min_replicas: Some(scaling.min_replicas),
                max_replicas: scaling.max_replicas,
                metrics: Some(vec![MetricSpec {
                    type_: "Resource".into(),
                    resource: Some(ResourceMetricSource {
                        name: "cpu".into(),
                        target: MetricTarget {
                            type_: "Utilization".into(),
                            average_utilization: Some(scaling.target_cpu_utilization_percentage),
                            ..MetricTarget::default()
                        },
                    }),
                    ..MetricSpec::default()
                }]),
                ..HorizontalPodAutoscalerSpec::default()
            },
            ..HorizontalPodAutoscaler::default()
        }
        .into(),
    )
}

/// The migration Job of `spec.app.image`, named by the image so it runs once per image.
fn migration_job(parent: &Parent) -> Option<Child> {
    let migration = parent.spec.app.migration.as_ref()?;
    let image = &parent.spec.app.image;
    let container = workload_container(parent, image, Some(migration.command.clone()));
    Some(
        Job {
            metadata: parent.meta(names::migration(parent.name, image), Component::Migration, parent.name),
            spec: Some(run_once(
                parent,
                Component::Migration,
                container,
                migration.backoff_limit,
                migration.active_deadline_seconds,
            )),
            ..Job::default()
        }
        .into(),
    )
}
