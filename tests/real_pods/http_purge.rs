//! eZ Platform's HTTP cache invalidation on the real node (issue 18): Varnish
//! with the VCL the operator generates caches a tagged page; a purge sent the
//! way eZ's purge client sends it (PURGEKEYS with xkey tags, PURGE for a URL,
//! to HTTPCACHE_PURGE_SERVER = WEBCLUSTER_HTTP_CACHE_URL) from an app pod is
//! refused without the token or with a wrong one, and evicts with the token
//! examples/ezplatform.yaml configures (a generated shared secret).

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::pods::{exec_until, exec_with_input, real_node_placement};
use crate::{APP_CONTAINER, RealTest, START_TIMEOUT, example_spec, real_app};

const CLUSTER: &str = "ez";
/// The client the app pod runs (`php` reads it from stdin).
const CLIENT: &str = include_str!("http_purge.php");
/// The page the app pod's Apache serves at /page.php.
const PAGE: &str = include_str!("http_purge_page.php");
/// How long a soft-purged page may be served stale: Varnish's default grace
/// (10 s) is the bound, with room for a busy node.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(30);

/// The app on the real node with examples/ezplatform.yaml's HTTP cache
/// purge settings: its HTTPCACHE_* env, shared secrets and token.
fn spec() -> Value {
    let example = example_spec("ezplatform");
    let mut app = real_app(1);
    let env: Vec<Value> = example["app"]["env"]
        .as_array()
        .expect("the example's env")
        .iter()
        .filter(|v| v["name"].as_str().is_some_and(|n| n.starts_with("HTTPCACHE_")))
        .cloned()
        .collect();
    assert_eq!(env.len(), 2, "the example sets HTTPCACHE_PURGE_TYPE and HTTPCACHE_PURGE_SERVER: {env:?}");
    app["env"] = json!(env);
    app["sharedSecrets"] = example["app"]["sharedSecrets"].clone();
    let token = &example["httpCache"]["invalidateTokenSecret"];
    assert_eq!(token, "HTTPCACHE_VARNISH_INVALIDATE_TOKEN", "the example names eZ's token variable");
    json!({
        "app": app,
        "httpCache": {"replicas": 1, "memory": "32Mi", "invalidateTokenSecret": token, "pod": real_node_placement()},
    })
}

/// One answer of the client.
struct Answer {
    status: String,
    x_varnish: String,
    age: String,
    body: String,
}

impl Answer {
    /// Varnish's X-Varnish header names the request and, on a hit, the
    /// request that stored the object.
    fn hit(&self) -> bool {
        self.x_varnish.split_whitespace().count() == 2
    }

    fn code(&self) -> &str {
        self.status.split_whitespace().nth(1).unwrap_or_default()
    }
}

struct Client<'a> {
    ns: &'a str,
    pod: &'a str,
}

impl Client<'_> {
    async fn run(&self, args: &[&str]) -> Answer {
        let mut command = vec!["php", "--"];
        command.extend_from_slice(args);
        let out = exec_with_input(self.ns, self.pod, APP_CONTAINER, &command, CLIENT)
            .await
            .unwrap_or_else(|e| panic!("the client runs in the app pod ({args:?}): {e}"));
        let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"));
        let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Answer { status: field("status"), x_varnish: field("x_varnish"), age: field("age"), body: field("body") }
    }

    async fn get(&self, path: &str) -> Answer {
        self.run(&["get", path]).await
    }

    /// How many times the app rendered page `id` (its own count, not through Varnish).
    async fn renders(&self, id: u32) -> u32 {
        let out = exec_with_input(self.ns, self.pod, APP_CONTAINER, &["cat", &format!("/tmp/renders-{id}")], "")
            .await
            .unwrap_or_else(|e| panic!("reading the render count of page {id}: {e}"));
        out.trim().parse().unwrap_or_else(|e| panic!("render count {out:?}: {e}"))
    }

    /// Page `id` is served from the cache as its render `n`, without a new render.
    async fn assert_cached(&self, id: u32, n: u32, after: &str) {
        let answer = self.get(&page(id)).await;
        assert_eq!(answer.code(), "200", "{after}: {}", answer.status);
        assert!(answer.hit(), "{after}: page {id} is a hit (X-Varnish {})", answer.x_varnish);
        assert_eq!(answer.body, format!("render {n}"), "{after}: page {id} still as rendered the {n}th time");
        assert_eq!(self.renders(id).await, n, "{after}: the app did not render page {id} again");
    }

    /// Page `id` comes from the app, as its render `n`.
    async fn assert_rendered(&self, id: u32, n: u32, after: &str) {
        let answer = self.get(&page(id)).await;
        assert!(!answer.hit(), "{after}: page {id} is a miss (X-Varnish {})", answer.x_varnish);
        assert_eq!(answer.body, format!("render {n}"), "{after}: page {id} rendered again");
        assert_eq!(self.renders(id).await, n, "{after}");
    }

    /// An invalidation that must be refused, and leave page `id` (render `n`) cached.
    async fn assert_refused(&self, args: &[&str], id: u32, n: u32) {
        let answer = self.run(args).await;
        assert_eq!(answer.code(), "403", "{args:?} is refused: {}", answer.status);
        self.assert_cached(id, n, &format!("after the refused {args:?}")).await;
    }
}

fn page(id: u32) -> String {
    format!("/page.php?id={id}")
}

/// Caches, refused and accepted purges of eZ's kinds (bound: about 2 minutes).
#[tokio::test]
async fn ez_platform_purges_evict_with_the_token_only() {
    let test = RealTest::start("real-http-purge", 0, 0).await;
    let ns = test.namespace().to_string();
    test.apply(CLUSTER, spec()).await;
    test.wait_ready(CLUSTER, START_TIMEOUT).await;
    let app = test.ready_app_pods(CLUSTER, 1).await.remove(0);
    let healthy = test.assert_healthy().await;
    eprintln!("http purge: {healthy} pods Ready and healthy after {:.0}s", test.elapsed());
    exec_with_input(&ns, &app, APP_CONTAINER, &["sh", "-c", "cat > /var/www/html/page.php"], PAGE)
        .await
        .expect("the tagged page is installed");
    let client = Client { ns: &ns, pod: &app };

    // Cached: the second request is a hit and the app rendered the page once.
    let first = client.get(&page(1)).await;
    assert_eq!((first.code(), first.hit(), first.body.as_str()), ("200", false, "render 1"), "{}", first.status);
    let second = client.get(&page(1)).await;
    assert!(second.hit(), "the second request is a hit: X-Varnish {}", second.x_varnish);
    eprintln!(
        "http purge: miss X-Varnish {:?}, then hit X-Varnish {:?} Age {:?}",
        first.x_varnish, second.x_varnish, second.age
    );
    client.assert_cached(1, 1, "a third request").await;

    // eZ's tag purge (FOSHttpCache's default header, xkey-softpurge) without the token, with a wrong one.
    client.assert_refused(&["purgekeys", "xkey-softpurge", "c1", "none"], 1, 1).await;
    client.assert_refused(&["purgekeys", "xkey-softpurge", "c1", "wrong"], 1, 1).await;
    client.assert_refused(&["purgekeys", "xkey-purge", "c1 ez-all", "none"], 1, 1).await;
    // Nobody reads the app's token through Varnish.
    let token_route = client.get("/_ez_http_invalidatetoken").await;
    assert_eq!(token_route.code(), "403", "eZ's token route through Varnish: {}", token_route.status);

    // With the app's token: a soft purge expires the page; Varnish refetches it
    // (serving the stale copy during its grace) and then serves the new render.
    let soft = client.run(&["purgekeys", "xkey-softpurge", "c1", "app"]).await;
    assert_eq!(soft.status, "HTTP/1.1 200 Purged 0, expired 1", "the soft purge by tag");
    exec_until(
        &ns,
        &app,
        APP_CONTAINER,
        &["php", "--", "get", &page(1)],
        CLIENT,
        "page 1 rendered anew after the soft purge",
        REFRESH_TIMEOUT,
        |out| out.contains("\"body\":\"render 2\""),
    )
    .await;
    assert_eq!(client.renders(1).await, 2, "one render after the soft purge");
    client.assert_cached(1, 2, "the refreshed page").await;

    // A hard purge by tag evicts at once: the next request is a miss.
    let hard = client.run(&["purgekeys", "xkey-purge", "ez-all", "app"]).await;
    assert_eq!(hard.status, "HTTP/1.1 200 Purged 1, expired 0", "the purge by tag");
    client.assert_rendered(1, 3, "the purge by tag").await;

    // A URL purge evicts that URL only.
    client.assert_rendered(2, 1, "page 2's first request").await;
    client.assert_cached(2, 1, "page 2's second request").await;
    client.assert_refused(&["purge", &page(2), "none"], 2, 1).await;
    client.assert_refused(&["purge", &page(2), "wrong"], 2, 1).await;
    let purge = client.run(&["purge", &page(2), "app"]).await;
    assert_eq!(purge.code(), "200", "the URL purge: {}", purge.status);
    client.assert_rendered(2, 2, "the URL purge").await;
    client.assert_cached(1, 3, "page 1 after page 2's URL purge").await;
    eprintln!("http purge: done after {:.0}s", test.elapsed());
}
