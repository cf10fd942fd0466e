//! Preparing the cluster: the client, a second Service range, namespaces,
//! PersistentVolumes (recycled by `hack/pvs.sh`, as `hack/cluster.sh` does) and
//! pod capacity.

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use webcluster::controller::{Metrics, counting_client};

use crate::harness::wait::{SETUP_TIMEOUT, poll};
use crate::settings::{FIELD_MANAGER, Res, SERVICE_CIDR, SERVICE_CIDR_NAME, Settings};

/// A client for the cluster of `KUBECONFIG`.
pub async fn client() -> Res<Client> {
    let config = kube::Config::infer().await.map_err(|e| format!("no kubeconfig (set KUBECONFIG): {e}"))?;
    counting_client(config, Metrics::shared()).map_err(|e| e.to_string())
}

/// kwokctl's service range is a /24 (254 ClusterIPs); each slim WebCluster has 3
/// ClusterIP Services. Adds a second range (ServiceCIDR, GA since Kubernetes 1.33).
pub async fn ensure_service_range(client: &Client) -> Res<()> {
    let api: Api<ServiceCIDR> = Api::all(client.clone());
    let object = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "ServiceCIDR",
        "metadata": {"name": SERVICE_CIDR_NAME},
        "spec": {"cidrs": [SERVICE_CIDR]},
    });
    api.patch(SERVICE_CIDR_NAME, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object))
        .await
        .map_err(|e| format!("adding ServiceCIDR {SERVICE_CIDR}: {e}"))?;
    poll(&format!("ServiceCIDR {SERVICE_CIDR} to be Ready"), SETUP_TIMEOUT, || async {
        let current = api.get(SERVICE_CIDR_NAME).await.ok();
        let conditions = current.and_then(|c| c.status?.conditions).unwrap_or_default();
        conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
    })
    .await
}

pub async fn create_namespace(client: &Client, ns: &str) -> Res<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    wait_namespace_gone(client, ns, Duration::from_secs(600)).await?;
    let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    api.patch(ns, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object))
        .await
        .map_err(|e| format!("creating namespace {ns}: {e}"))?;
    Ok(())
}

async fn wait_namespace_gone(client: &Client, ns: &str, timeout: Duration) -> Res<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        match api.get_opt(ns).await.map_err(|e| e.to_string())? {
            None => return Ok(()),
            Some(_) if started.elapsed() > timeout => {
                return Err(format!("namespace {ns} still terminating after {}s", timeout.as_secs()));
            }
            Some(_) => {
                if last_report.elapsed() > Duration::from_secs(15) {
                    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
                    let left = pods.list_metadata(&ListParams::default()).await.map(|l| l.items.len()).unwrap_or(0);
                    progress!(
                        "  waiting for namespace {ns} to go ({:.0}s, {left} pods left)",
                        started.elapsed().as_secs_f64()
                    );
                    last_report = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Deletes namespace `ns` and waits until it is gone; the seconds that took.
pub async fn delete_namespace(client: &Client, ns: &str) -> Res<f64> {
    let started = Instant::now();
    if request_namespace_deletion(client, ns).await? {
        wait_namespace_gone(client, ns, Duration::from_secs(900)).await?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Asks for namespace `ns` to be deleted; false when it does not exist.
pub async fn request_namespace_deletion(client: &Client, ns: &str) -> Res<bool> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.delete(ns, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(format!("deleting namespace {ns}: {e}")),
    }
}

/// Waits until `needed` ReadWriteOnce PVs are Available: claims deleted with a
/// namespace leave their PVs Released, and `hack/pvs.sh available` makes them
/// Available again (the cluster of `KUBECONFIG`).
pub fn ensure_pvs(settings: &Settings, needed: usize) -> Res<()> {
    let output = Command::new("bash")
        .arg(settings.root.join("hack/pvs.sh"))
        .args(["available", &needed.to_string()])
        .output()
        .map_err(|e| format!("running hack/pvs.sh: {e}"))?;
    let said = String::from_utf8_lossy(&output.stderr);
    for line in said.lines() {
        progress!("  {line}");
    }
    if output.status.success() {
        Ok(())
    } else {
        Err(said.lines().last().unwrap_or("hack/pvs.sh available failed").to_string())
    }
}

/// Pods the nodes still take.
pub async fn free_pod_capacity(client: &Client) -> Res<usize> {
    let nodes: Api<Node> = Api::all(client.clone());
    let capacity: usize = nodes
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items
        .iter()
        .filter_map(|n| n.status.as_ref()?.allocatable.as_ref()?.get("pods")?.0.parse::<usize>().ok())
        .sum();
    let pods: Api<Pod> = Api::all(client.clone());
    let used = pods.list_metadata(&ListParams::default()).await.map_err(|e| e.to_string())?.items.len();
    Ok(capacity.saturating_sub(used))
}
