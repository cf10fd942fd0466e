//! Shared files on the real node: two app pods on the ReadWriteMany claim see
//! each other's files at every mount path, as the app's uid, with Varnish in
//! front of them. The app's HTTP readiness probe fails while its server is
//! stopped and Varnish's while it is down.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::ListParams;
use serde_json::json;
use webcluster::desired::meta::{Component, selector_string};
use webcluster::desired::names;

use crate::harness::pods::{
    APP_UID, REAL_NODE, pod_ready, real_node_placement, restarts, sh, signal_script, stop_until_not_ready,
    wait_endpoints, wait_pod,
};
use crate::{APP_CONTAINER, PROBE_TIMEOUT, RealTest, START_TIMEOUT, real_app, wait_ready_again};

const CLUSTER: &str = "files";
/// The volume's root and a sub-path of it.
const ROOT_MOUNT: &str = "/srv/shared";
const SUB_MOUNT: &str = "/var/www/html/uploads";
const SUB_PATH: &str = "uploads";

/// Two app pods, shared files and Varnish (bound: about 2 minutes).
#[tokio::test]
async fn two_app_pods_share_files_at_every_mount_path() {
    let test = RealTest::start("real-files", 0, 1).await;
    let ns = test.namespace().to_string();
    let spec = json!({
        "app": real_app(2),
        "storage": {"volume": {
            "size": "1Gi",
            "storageClassName": test.storage.class(),
            "mounts": [{"path": ROOT_MOUNT}, {"path": SUB_MOUNT, "subPath": SUB_PATH}],
        }},
        "httpCache": {"replicas": 1, "memory": "32Mi", "pod": real_node_placement()},
    });
    test.apply(CLUSTER, spec).await;
    test.wait_ready(CLUSTER, START_TIMEOUT).await;
    let apps = test.ready_app_pods(CLUSTER, 2).await;
    let healthy = test.assert_healthy().await;
    eprintln!("files: {healthy} pods Ready and healthy after {:.0}s", test.elapsed());

    // Each pod writes at each path; the other reads it, changes it and adds a folder.
    for (writer, reader) in [(&apps[0], &apps[1]), (&apps[1], &apps[0])] {
        for path in [ROOT_MOUNT, SUB_MOUNT] {
            let file = format!("{path}/from-{writer}");
            let write = format!("[ \"$(id -u)\" = {APP_UID} ] && echo {writer} > {file} && stat -c '%u %a' {file}");
            let out = sh(&ns, writer, APP_CONTAINER, &write).await.expect("the app's uid writes the shared volume");
            assert!(out.starts_with(&format!("{APP_UID} ")), "{file} belongs to the app's uid: {out}");
            let read = format!("cat {file} && echo {reader} >> {file} && mkdir -p {path}/dir-{reader}/x && cat {file}");
            let out = sh(&ns, reader, APP_CONTAINER, &read).await.expect("the other pod reads and writes it");
            assert_eq!(out, format!("{writer}\n{writer}\n{reader}\n"), "{reader} sees {file} as {writer} wrote it");
        }
    }
    // The sub-path mount is a folder of the same volume.
    let out = sh(&ns, &apps[0], APP_CONTAINER, &format!("ls {ROOT_MOUNT}/{SUB_PATH}")).await.expect("ls");
    for app in &apps {
        assert!(out.contains(&format!("from-{app}")), "{SUB_MOUNT} is {ROOT_MOUNT}/{SUB_PATH}: {out}");
    }

    // A page through Varnish, from an app pod.
    let varnish = names::http_cache(CLUSTER);
    let fetch = format!("php -r 'echo file_get_contents(\"http://{varnish}.{ns}.svc/\");'");
    let page = sh(&ns, &apps[0], APP_CONTAINER, &fetch).await.expect("a page through the HTTP cache");
    assert!(apps.iter().any(|a| page.trim() == a), "an app pod answered through Varnish: {page}");

    // The app's server stopped: its HTTP readiness probe fails, it leaves the Service.
    let service = names::app(CLUSTER);
    let client = test.ns.client();
    let (stopped, running) = (&apps[0], &apps[1]);
    stop_until_not_ready(&test.pods(), &ns, stopped, APP_CONTAINER, &["apache2"], PROBE_TIMEOUT).await;
    wait_endpoints(&client, &ns, &service, "only the running app pod behind the Service", PROBE_TIMEOUT, |r| {
        r.len() == 1 && r.contains(running.as_str())
    })
    .await;
    sh(&ns, stopped, APP_CONTAINER, &signal_script("CONT", &["apache2"])).await.expect("continuing Apache");
    let pod = wait_pod(&test.pods(), stopped, &format!("{stopped} Ready again"), PROBE_TIMEOUT, pod_ready).await;
    assert_eq!(restarts(&pod), 0, "readiness, not liveness, reacted to the short stop");

    // Varnish down: its pod leaves readiness until it is back.
    let selector = selector_string(CLUSTER, Component::HttpCache);
    let list = test.pods().list(&ListParams::default().labels(&selector)).await.expect("Varnish pods");
    let varnish_pod = list.items.into_iter().next().expect("a Varnish pod");
    let varnish_name = varnish_pod.name_any();
    assert_eq!(varnish_pod.spec.and_then(|s| s.node_name).as_deref(), Some(REAL_NODE));
    let since = Timestamp::from_second(Timestamp::now().as_second()).expect("a timestamp");
    sh(&ns, &varnish_name, "varnish", "kill -TERM 1").await.expect("stopping varnishd");
    wait_ready_again(&test, &varnish_name, since, 1).await;
    let page = sh(&ns, &apps[1], APP_CONTAINER, &fetch).await.expect("a page through the restarted HTTP cache");
    assert!(apps.iter().any(|a| page.trim() == a), "an app pod answered through Varnish again: {page}");
    eprintln!("files: done after {:.0}s", test.elapsed());
}
