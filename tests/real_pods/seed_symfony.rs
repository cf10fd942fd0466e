//! mosparo's and eZ Platform's multi-node documents (../shared/seeds), proven
//! with the libraries those Symfony applications wire their nodes through:
//! Debian's Symfony Cache, HttpFoundation sessions and Doctrine DBAL
//! (hack/images/php-symfony) run in the app pods of examples/mosparo.yaml and
//! examples/ezplatform.yaml, each with the example's own `env`.
//!
//! - mosparo: Symfony's MemcachedAdapter from the multi-host MEMCACHED_URL
//!   stores items through one pod, another reads them, every memcached node
//!   holds a share; the three synchronised paths written by one pod are read
//!   by the others; Doctrine DBAL connects with the settings the setup wizard
//!   wrote from the WebCluster's credentials; the cleanup CronJob never runs
//!   twice at once.
//! - eZ Platform: DBAL through DATABASE_URL as the example sets it (its
//!   serverVersion the server's); the tag-aware CACHE_POOL over
//!   `memcached://` + CACHE_DSN spreads items over every node, another pod
//!   reads them, a tag invalidated by a third pod evicts them everywhere; a
//!   Symfony session stored through one pod is read through two others.

use serde_json::{Value, json};
use webcluster::desired::names;

use crate::harness::pods::{ensure_images, exec_until, exec_with_input, real_node_placement, wait_ready_on_real_node};
use crate::jobs::{SLOW_SECONDS, completion_time, start_time, wait_jobs};
use crate::{APP_CONTAINER, RealTest, START_TIMEOUT, example_spec};

/// The app base with Symfony Cache, HttpFoundation and Doctrine DBAL.
const IMAGE: &str = "localhost/webcluster/php-symfony:1";
/// The image's Apache port (the examples' images listen on 8080).
const PORT: u16 = 8000;
/// The probe the app pods run (`php` reads it from stdin).
const PROBE: &str = include_str!("seed_symfony.php");
/// The session page the app pods' Apache serves.
const SESSION_PAGE: &str = include_str!("seed_session.php");
/// Cache items per run: enough that every node of the hash ring gets some.
const ITEMS: usize = 300;

/// Starts test `test_name` (2 database volumes and the shared one) with the
/// probe image imported; the spec of examples/`cluster`.yaml, made to run here.
async fn start_example(test_name: &str, cluster: &str) -> (RealTest, Value) {
    let test = RealTest::start(test_name, 2, 1).await;
    tokio::task::spawn_blocking(|| ensure_images(&["php-symfony"])).await.expect("importing php-symfony");
    let mut spec = example_spec(cluster);
    on_real_node(&mut spec, &test);
    (test, spec)
}

/// The changes every example needs to run here, on top of its own spec (its
/// `env` untouched): the probe image instead of the application's, which
/// listens on its own port; every pod on the real node; volumes that fit
/// the node's local ones (20Gi) in this test's class, deleted with the test.
fn on_real_node(spec: &mut Value, test: &RealTest) {
    let app = &mut spec["app"];
    app["image"] = json!(IMAGE);
    app["port"] = json!(PORT);
    // The real node's label and taint, beside the example's securityContext.
    let placement = real_node_placement();
    app["pod"]["nodeSelector"] = placement["nodeSelector"].clone();
    app["pod"]["tolerations"] = placement["tolerations"].clone();
    spec["cache"]["pod"] = placement.clone();
    if spec.get("httpCache").is_some() {
        spec["httpCache"]["pod"] = placement.clone();
    }
    let managed = &mut spec["database"]["managed"];
    managed["pod"] = placement;
    managed["storage"] = json!({"size": "1Gi", "storageClassName": test.storage.class()});
    spec["storage"]["volume"]["size"] = json!("1Gi");
    spec["storage"]["volume"]["storageClassName"] = json!(test.storage.class());
    spec["deletionPolicy"] = json!("Delete");
}

/// The example's cron task `name`.
fn task<'a>(spec: &'a mut Value, name: &str) -> &'a mut Value {
    let tasks = spec["jobs"].as_array_mut().expect("the example's jobs");
    tasks.iter_mut().find(|t| t["name"] == name).unwrap_or_else(|| panic!("task {name}"))
}

/// Applies the spec, waits for its cache and database pods and `apps` app
/// pods, Ready on the real node; returns the app pods' names.
async fn start(test: &RealTest, cluster: &str, spec: Value, apps: usize) -> Vec<String> {
    let cache_nodes = spec["cache"]["replicas"].as_i64().expect("cache replicas") as i32;
    let db_pods = 1 + spec["database"]["managed"]["replicas"].as_i64().expect("database replicas") as i32;
    test.apply(cluster, spec).await;
    let mut pods: Vec<String> = (0..cache_nodes).map(|i| names::cache_pod(cluster, i)).collect();
    pods.extend((0..db_pods).map(|i| names::database_pod(cluster, i)));
    wait_ready_on_real_node(&test.pods(), &pods, START_TIMEOUT).await;
    test.wait_ready(cluster, START_TIMEOUT).await;
    let mut apps = test.ready_app_pods(cluster, apps).await;
    apps.sort();
    eprintln!(
        "{cluster}: {} cache, {db_pods} database, {} app pods Ready after {:.0}s",
        cache_nodes,
        apps.len(),
        test.elapsed()
    );
    apps
}

/// Runs the probe in app pod `pod` with `args`; its trimmed output.
async fn probe(test: &RealTest, pod: &str, args: &[&str]) -> String {
    test.php(pod, PROBE, args).await
}

/// Items through `apps[0]`'s pool, read back through `apps[1]`'s; every node
/// of `nodes` holds a share. Returns the items per node.
async fn cache_spreads(test: &RealTest, app: &str, apps: &[String], nodes: usize) -> Vec<(String, usize)> {
    let items = ITEMS.to_string();
    assert_eq!(probe(test, &apps[0], &["put", app, &items]).await, format!("stored {ITEMS}"));
    let read = probe(test, &apps[1], &["get", app, &items]).await;
    assert_eq!(read, format!("hits {ITEMS} of {ITEMS} by {}", apps[0]), "{} reads what {} stored", apps[1], apps[0]);
    let stats = probe(test, &apps[1], &["stats", app]).await;
    let per_node: Vec<(String, usize)> = stats
        .lines()
        .map(|line| {
            let (server, count) = line.split_once(' ').expect("SERVER ITEMS");
            (server.to_string(), count.parse().unwrap_or_else(|_| panic!("a count: {line}")))
        })
        .collect();
    assert_eq!(per_node.len(), nodes, "the pool knows every memcached node: {stats}");
    for (server, count) in &per_node {
        assert!(*count > 0, "memcached node {server} holds a share of the {ITEMS} items: {stats}");
    }
    let total: usize = per_node.iter().map(|(_, c)| c).sum();
    assert!(total >= ITEMS, "the nodes hold every item: {stats}");
    per_node
}

/// examples/mosparo.yaml (bound: start, then up to a minute to the cleanup's
/// first schedule, its held run and the next run's start: about 6 minutes).
#[tokio::test]
async fn mosparo_example_wiring_through_symfony_and_doctrine() {
    const CLUSTER: &str = "mosparo";
    let (test, mut spec) = start_example("seed-mosparo", CLUSTER).await;
    // The cleanup every minute instead of every two hours, holding longer
    // than its period and recording its runs on the shared volume, so the
    // CronJob's next schedule comes while a run is still going.
    let hold = format!(
        "echo \"start $(hostname) $(date +%s)\" >> {LOG}; sleep {SLOW_SECONDS}; echo \"end $(hostname) $(date +%s)\" >> {LOG}"
    );
    let cleanup = task(&mut spec, "cleanup");
    cleanup["schedule"] = json!("* * * * *");
    cleanup["command"] = json!(["sh", "-c", hold]);
    // mosparo's console is not in the probe image.
    for other in ["rule-packages", "geoip"] {
        task(&mut spec, other)["command"] = json!(["true"]);
    }
    let apps = start(&test, CLUSTER, spec, 3).await;

    // The multi-host form reaches both nodes; another pod reads the items.
    let url = probe(&test, &apps[0], &["env", "MEMCACHED_URL"]).await;
    let per_node = cache_spreads(&test, "mosparo", &apps, 2).await;
    eprintln!("mosparo: MEMCACHED_URL {url}: {ITEMS} items per node {per_node:?}");

    // One pod writes the synchronised paths (the config file with the
    // database settings from the Secret); the others read them.
    assert_eq!(probe(&test, &apps[0], &["files-write"]).await, "written");
    for reader in &apps[1..] {
        let read = probe(&test, reader, &["files-read"]).await;
        let lines: Vec<&str> = read.lines().collect();
        assert_eq!(lines.len(), 3, "{reader}: {read}");
        for line in lines {
            assert!(line.ends_with(&format!(" {}", apps[0])), "{reader} reads what {} wrote: {line}", apps[0]);
        }
    }

    // DBAL with the wizard's settings, from two pods: both rows in one database.
    let first = probe(&test, &apps[1], &["db", "mosparo"]).await;
    assert!(first.starts_with("mosparo mosparo "), "the database and user of the Secret: {first}");
    let second = probe(&test, &apps[2], &["db", "mosparo"]).await;
    assert!(second.ends_with(&format!("rows=2 by {},{}", apps[1], apps[2])), "one database for every pod: {second}");
    eprintln!("mosparo: files and database shared after {:.0}s; DBAL: {second}", test.elapsed());

    // The cleanup: its second run starts only once the first ended.
    let cleanup = names::cron_task(CLUSTER, "cleanup");
    let runs = wait_jobs(&test, &cleanup, "a second cleanup run to start", |jobs| {
        jobs.len() >= 2 && jobs.iter().all(|j| start_time(j).is_some())
    })
    .await;
    let one_done = completion_time(&runs[0]).expect("the first cleanup run completed before the second started");
    let two_start = start_time(&runs[1]).expect("started");
    assert!(one_done <= two_start, "no overlap: the first run ended {one_done}, the second started {two_start}");
    // The second run's pod records its start a moment after its Job started.
    let command = ["php", "--", "cat", LOG];
    let what = "the second cleanup run's start record";
    let log = exec_until(test.namespace(), &apps[0], APP_CONTAINER, &command, PROBE, what, START_TIMEOUT, |log| {
        log.lines().count() >= 3
    })
    .await;
    assert_no_overlap(&log);
    eprintln!("mosparo: cleanup runs recorded on the shared volume:\n{log}\ndone after {:.0}s", test.elapsed());
}

/// Where the held cleanup records its runs (mosparo's shared var/data).
const LOG: &str = "/mosparo/var/data/cleanup-runs.log";

/// The runs in `log` ("start POD T", "end POD T" lines) follow each other:
/// every start comes after the previous run's end, and the first run ended.
fn assert_no_overlap(log: &str) {
    let mut running: Option<&str> = None;
    let mut ended = 0;
    for line in log.lines() {
        match line.split(' ').collect::<Vec<_>>().as_slice() {
            ["start", pod, _] => {
                assert!(running.is_none(), "{pod} started while {running:?} was running:\n{log}");
                running = Some(pod);
            }
            ["end", pod, _] => {
                assert_eq!(running, Some(*pod), "{pod} ends the run it started:\n{log}");
                running = None;
                ended += 1;
            }
            _ => panic!("a run record: {line}"),
        }
    }
    assert!(ended >= 1 && log.lines().count() >= 3, "one run ended and the next started:\n{log}");
}

/// examples/ezplatform.yaml (bound: about 2 minutes).
#[tokio::test]
async fn ezplatform_example_wiring_through_symfony_and_doctrine() {
    const CLUSTER: &str = "ezplatform";
    let (test, mut spec) = start_example("seed-ezplatform", CLUSTER).await;
    // The image's own command (Apache): there is no eZ console to warm.
    spec["app"].as_object_mut().expect("app").remove("command");
    // The migration connects through DATABASE_URL as eZ's would, the cron
    // task does nothing: eZ's console is not in the probe image.
    let migration = "require 'Doctrine/DBAL/autoload.php';
        $p = (new Doctrine\\DBAL\\Tools\\DsnParser(['mysql' => 'pdo_mysql']))->parse(getenv('DATABASE_URL'));
        echo Doctrine\\DBAL\\DriverManager::getConnection($p)->fetchOne('SELECT VERSION()'), PHP_EOL;";
    spec["app"]["migration"]["command"] = json!(["php", "-r", migration]);
    task(&mut spec, "cron")["command"] = json!(["true"]);
    let apps = start(&test, CLUSTER, spec, 3).await;

    // DBAL through DATABASE_URL, from two pods; the server is the version the
    // DSN's serverVersion names.
    let url = probe(&test, &apps[0], &["env", "DATABASE_URL"]).await;
    let server_version = url.split("serverVersion=mariadb-").nth(1).and_then(|v| v.split('&').next());
    let server_version = server_version.unwrap_or_else(|| panic!("a MariaDB serverVersion in {url}"));
    let first = probe(&test, &apps[0], &["db", "ez"]).await;
    let fields: Vec<&str> = first.split(' ').collect();
    assert_eq!(fields[..2], ["ezplatform", "ezp"], "the example's database and user: {first}");
    let minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    assert_eq!(minor(fields[2]), minor(server_version), "serverVersion {server_version} is the server's {first}");
    assert!(fields[3].starts_with("MariaDB"), "DBAL takes serverVersion {server_version} for MariaDB: {first}");
    let second = probe(&test, &apps[1], &["db", "ez"]).await;
    assert!(second.ends_with(&format!("rows=2 by {},{}", apps[0], apps[1])), "one database for every pod: {second}");
    eprintln!("ezplatform: DBAL through DATABASE_URL: {second}");

    // The cache pool over every node; a tag invalidated through a third pod
    // evicts the items for every pod.
    let per_node = cache_spreads(&test, "ez", &apps, 3).await;
    eprintln!("ezplatform: {ITEMS} items (and their tags) per node {per_node:?}");
    assert_eq!(probe(&test, &apps[2], &["invalidate"]).await, "invalidated");
    let items = ITEMS.to_string();
    assert_eq!(probe(&test, &apps[1], &["get", "ez", &items]).await, format!("hits 0 of {ITEMS} by -"));

    // A session stored through one pod, read through the two others.
    for app in &apps {
        let install = "cat > /var/www/html/session.php";
        exec_with_input(test.namespace(), app, APP_CONTAINER, &["sh", "-c", install], SESSION_PAGE)
            .await
            .unwrap_or_else(|e| panic!("installing the session page in {app}: {e}"));
    }
    let mut urls = Vec::new();
    for app in &apps {
        let pod = test.pods().get(app).await.expect("the app pod");
        let ip = pod.status.and_then(|s| s.pod_ip).expect("a pod IP");
        urls.push(format!("http://{ip}:{PORT}/session.php"));
    }
    let value = format!("cart-of-{}", test.namespace());
    let args = ["session", &urls[1], &urls[2], &urls[0], &value];
    let answers = probe(&test, &apps[0], &args).await;
    let lines: Vec<&str> = answers.lines().collect();
    assert_eq!(lines.len(), 5, "four answers and the session's node: {answers}");
    assert_eq!(lines[0], format!("{} {value}", apps[1]), "{} stores the session", apps[1]);
    assert_eq!(lines[1], format!("{} {value}", apps[2]), "{} reads it with the cookie", apps[2]);
    assert_eq!(lines[2], format!("{} {value}", apps[0]), "{} reads it with the cookie", apps[0]);
    assert_eq!(lines[3], format!("{} -", apps[2]), "without the cookie there is no session");
    assert!(lines[4].starts_with(&format!("node {CLUSTER}-cache-")), "a memcached node holds it: {answers}");
    eprintln!("ezplatform: session served by three pods:\n{answers}\ndone after {:.0}s", test.elapsed());
}
