//! What exists and what is Ready in the operator's namespace, seen by watches
//! (metadata watches of every child kind, a watch of the WebClusters).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::core::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use webcluster::api::WebCluster;

/// Uids of the children seen, by (kind, name), the Ready WebClusters, and the
/// Deployments and StatefulSets whose every replica is ready.
#[derive(Default)]
pub struct Seen {
    pub objects: HashMap<(String, String), String>,
    pub ready: HashSet<String>,
    pub ready_workloads: HashSet<(String, String)>,
}

pub type Shared = Arc<Mutex<Seen>>;

/// Watches `api` and feeds every applied or deleted object into `seen`.
fn spawn_watch<K>(
    api: Api<K>,
    seen: Shared,
    record: impl Fn(&mut Seen, K, bool) + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
        while let Some(event) = stream.next().await {
            let Ok(event) = event else { continue };
            let Ok(mut seen) = seen.lock() else { return };
            match event {
                Event::Apply(o) | Event::InitApply(o) => record(&mut seen, o, true),
                Event::Delete(o) => record(&mut seen, o, false),
                Event::Init | Event::InitDone => {}
            }
        }
    })
}

/// Watches every child kind of `kinds` and the WebClusters in `ns`, into `seen`.
pub fn watch_children(
    client: &Client,
    ns: &str,
    kinds: &BTreeMap<String, ApiResource>,
    seen: &Shared,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (kind, resource) in kinds {
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::namespaced_with(client.clone(), ns, resource);
        let kind = kind.to_string();
        tasks.push(spawn_watch(api, seen.clone(), move |seen, o, exists| {
            let key = (kind.clone(), o.name_any());
            if exists {
                seen.objects.insert(key, o.uid().unwrap_or_default());
            } else {
                seen.objects.remove(&key);
            }
        }));
    }
    // Untyped: the operator under test may be another build with another status.
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<WebCluster>(&()));
    tasks.push(spawn_watch(api, seen.clone(), |seen, wc, exists| {
        if exists && is_ready(&wc) {
            seen.ready.insert(wc.name_any());
        } else {
            seen.ready.remove(&wc.name_any());
        }
    }));
    tasks
}

/// `Ready=True` among the status conditions of an untyped WebCluster.
fn is_ready(cluster: &DynamicObject) -> bool {
    let conditions = cluster.data.pointer("/status/conditions").and_then(|c| c.as_array());
    conditions.into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Watches the Deployments and StatefulSets in `ns` into `seen.ready_workloads`:
/// the T_ready_raw of the bare client's objects.
pub fn watch_workloads(client: &Client, ns: &str, seen: &Shared) -> Vec<tokio::task::JoinHandle<()>> {
    ["Deployment", "StatefulSet"]
        .into_iter()
        .map(|kind| {
            let resource = ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk("apps", "v1", kind));
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
            spawn_watch(api, seen.clone(), move |seen, workload, exists| {
                let key = (kind.to_string(), workload.name_any());
                if exists && all_replicas_ready(&workload) {
                    seen.ready_workloads.insert(key);
                } else {
                    seen.ready_workloads.remove(&key);
                }
            })
        })
        .collect()
}

/// The status describes the current spec and every wanted replica is ready.
fn all_replicas_ready(workload: &DynamicObject) -> bool {
    let number = |path: &str| workload.data.pointer(path).and_then(serde_json::Value::as_i64);
    let observed = number("/status/observedGeneration") >= workload.metadata.generation;
    observed && number("/status/readyReplicas").unwrap_or(0) >= number("/spec/replicas").unwrap_or(1)
}

/// Waits until `count` of what was seen reaches `total`, with progress every 5 s;
/// the seconds since `started`. `alive` fails the wait when a process under test exited.
pub async fn wait_counted(
    what: &str,
    total: usize,
    seen: &Shared,
    started: std::time::Instant,
    timeout: std::time::Duration,
    count: impl Fn(&Seen) -> usize,
    mut alive: impl FnMut() -> Result<(), String>,
) -> Result<f64, String> {
    let mut last_report = std::time::Instant::now();
    loop {
        let done = count(&*seen.lock().map_err(|_| "poisoned")?);
        let seconds = started.elapsed().as_secs_f64();
        if done >= total {
            progress!("{what}: {total} of {total} after {seconds:.2}s");
            return Ok(seconds);
        }
        alive()?;
        if started.elapsed() > timeout {
            return Err(format!("{what}: {done}/{total} after {}s", timeout.as_secs()));
        }
        if last_report.elapsed() > std::time::Duration::from_secs(5) {
            progress!("{what}: {done}/{total} after {seconds:.0}s");
            last_report = std::time::Instant::now();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
