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

/// Uids of the children seen, by (kind, name), and the Ready WebClusters.
#[derive(Default)]
pub struct Seen {
    pub objects: HashMap<(String, String), String>,
    pub ready: HashSet<String>,
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
