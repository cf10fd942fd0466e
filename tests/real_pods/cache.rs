//! The cache on the real node: every memcached node of WEBCLUSTER_CACHE_HOSTS
//! answers an app pod (and keeps only its own keys: the nodes share nothing);
//! a Redis replica serves the primary's write by its pod DNS name. A cache
//! server stopped takes its pod out of readiness until it is back.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use webcluster::desired::names;

use crate::harness::pods::{exec_until, exec_with_input, real_node_placement, sh, wait_ready_on_real_node};
use crate::{APP_CONTAINER, RealTest, START_TIMEOUT, real_app, wait_ready_again};

const CLUSTER: &str = "shop";
/// The client the app pod runs (`php` reads it from stdin).
const CLIENT: &str = include_str!("cache.php");

fn cache_spec(backend: &str, replicas: i32) -> serde_json::Value {
    json!({
        "app": real_app(1),
        "cache": {"backend": backend, "replicas": replicas, "memory": "16Mi", "pod": real_node_placement()},
    })
}

/// Starts the WebCluster with `replicas` cache pods; returns the test, the
/// cache pods' names and the app pod's.
async fn start(test_name: &str, backend: &str, replicas: i32) -> (RealTest, Vec<String>, String) {
    let test = RealTest::start(test_name, 0, 0).await;
    test.apply(CLUSTER, cache_spec(backend, replicas)).await;
    let cache: Vec<String> = (0..replicas).map(|i| names::cache_pod(CLUSTER, i)).collect();
    wait_ready_on_real_node(&test.pods(), &cache, START_TIMEOUT).await;
    test.wait_ready(CLUSTER, START_TIMEOUT).await;
    let app = test.ready_app_pods(CLUSTER, 1).await.remove(0);
    let healthy = test.assert_healthy().await;
    eprintln!("{backend}: {healthy} pods Ready and healthy after {:.0}s", test.elapsed());
    (test, cache, app)
}

/// Stops the server of cache pod `pod` (its PID 1): the pod leaves readiness
/// and comes back Ready once the kubelet restarted it.
async fn stop_server(test: &RealTest, pod: &str, container: &str) {
    let since = Timestamp::from_second(Timestamp::now().as_second()).expect("a timestamp");
    sh(test.namespace(), pod, container, "kill -TERM 1").await.expect("stopping the cache server");
    wait_ready_again(test, pod, since, 1).await;
}

/// Memcached with 3 nodes (bound: about 2 minutes).
#[tokio::test]
async fn every_memcached_node_answers_an_app_pod() {
    let (test, cache, app) = start("real-memcached", "memcached", 3).await;
    let out = exec_with_input(test.namespace(), &app, APP_CONTAINER, &["php", "--", "memcached"], CLIENT)
        .await
        .expect("the cache client runs in the app pod");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "one answer per WEBCLUSTER_CACHE_HOSTS entry: {out}");
    for (ordinal, line) in lines.iter().enumerate() {
        let pod = &cache[ordinal];
        assert!(line.starts_with(&format!("{pod}.")), "entry {ordinal} names pod {pod}: {line}");
        assert!(line.ends_with("own=yes others=0"), "{pod} keeps its own key and no other node's: {line}");
        assert!(!line.contains("pid=?"), "{pod} reports its stats: {line}");
    }
    eprintln!("memcached answers from {app}:\n{out}");
    stop_server(&test, &cache[2], "memcached").await;
}

/// Redis primary and replica (bound: about 2 minutes).
#[tokio::test]
async fn a_redis_replica_reads_the_primary_write_by_its_pod_dns_name() {
    let (test, cache, app) = start("real-redis", "redis", 2).await;
    let replica_host = format!("{}.{}.{}.svc", cache[1], names::cache_headless(CLUSTER), test.namespace());
    let value = format!("written-by-{app}");
    let command = ["php", "--", "redis", "real-pods-key", &value, &replica_host];
    let what = format!("the replica {replica_host} to serve the primary's write");
    let expected = format!("slave {value}");
    let out =
        exec_until(test.namespace(), &app, APP_CONTAINER, &command, CLIENT, &what, Duration::from_secs(60), |out| {
            out.trim() == expected
        })
        .await;
    eprintln!("redis replica {replica_host} answered: {}", out.trim());
    stop_server(&test, &cache[1], "redis").await;
    exec_until(test.namespace(), &app, APP_CONTAINER, &command, CLIENT, &what, Duration::from_secs(60), |out| {
        out.trim() == expected
    })
    .await;
}
