//! Generated credentials: a deleted generated Secret comes back with the same
//! values from its copy; values lost from both while the data remains are
//! never replaced (Ready=False says how to restore them); and no generated
//! password, shared secret or external DSN reaches the operator's most verbose
//! log, an Event or the status. An external extra database's DSN is read from
//! its own Secret (issue 21).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

#[path = "harness/mod.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::cluster::{TestNamespace, ensure_crd, kubectl_apply};
use harness::conditions::{wait_ready, wait_reason};
use harness::process::OperatorProcess;
use harness::wait::{READY_TIMEOUT, assert_holds_for, wait_for_object};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use webcluster::api::WebCluster;

/// The keys the operator generates for the Roundcube example.
const ROUNDCUBE_GENERATED: [&str; 4] =
    ["db-password", "db-superuser-password", "db-replication-password", "shared.ROUNDCUBEMAIL_DES_KEY"];

fn strings(secret: &Secret) -> BTreeMap<String, String> {
    let data = secret.data.clone().unwrap_or_default();
    data.into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned())).collect()
}

fn opaque(name: &str, data: &BTreeMap<String, String>) -> Secret {
    Secret {
        metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
        data: Some(data.iter().map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes()))).collect()),
        ..Secret::default()
    }
}

/// Waits for Secret `name` to exist, other than the one of uid `gone` if given.
async fn wait_secret(secrets: &Api<Secret>, name: &str, gone: Option<String>) -> Secret {
    let what = format!("Secret {name} (re)created");
    wait_for_object(secrets, name, &what, READY_TIMEOUT, move |s| s.uid() != gone).await
}

#[tokio::test]
async fn a_deleted_secret_comes_back_unchanged_and_lost_values_are_never_replaced() {
    ensure_crd().await;
    let ns = TestNamespace::new("credentials-kept").await;
    let mut operator = OperatorProcess::start(ns.name(), "operator", "info").await;
    kubectl_apply(ns.name(), "examples/roundcube.yaml");
    let clusters = ns.api::<WebCluster>();
    wait_ready(&clusters, "roundcube").await;
    let secrets = ns.api::<Secret>();
    let original = secrets.get("roundcube-credentials").await.unwrap();
    let values = strings(&original);
    let copy = secrets.get("roundcube-credentials-keep").await.unwrap();
    let kept: BTreeMap<String, String> =
        ROUNDCUBE_GENERATED.iter().map(|k| (k.to_string(), values[*k].clone())).collect();
    assert_eq!(strings(&copy), kept, "the copy holds exactly the generated values");
    assert!(copy.owner_references().is_empty(), "under deletionPolicy Retain the copy has no owner reference");

    // Someone deletes the generated Secret: it comes back with the same values.
    let deleted = Instant::now();
    secrets.delete("roundcube-credentials", &DeleteParams::default()).await.unwrap();
    let restored = wait_secret(&secrets, "roundcube-credentials", original.uid()).await;
    eprintln!("the deleted Secret was restored after {:?}", deleted.elapsed());
    assert_eq!(strings(&restored), values, "every value, DSNs included, is as before");
    wait_ready(&clusters, "roundcube").await;

    // Both gone while the database claims remain: no new passwords, Ready=False says how to restore.
    // Deleted while no operator runs: a running one restores whichever goes first from the other.
    operator.process.stop(Duration::from_secs(10));
    secrets.delete("roundcube-credentials", &DeleteParams::default()).await.unwrap();
    secrets.delete("roundcube-credentials-keep", &DeleteParams::default()).await.unwrap();
    let _operator = OperatorProcess::start(ns.name(), "operator-restarted", "info").await;
    let lost = wait_reason(&clusters, "roundcube", "Ready", "CredentialsLost").await;
    let ready = harness::conditions::condition(&lost, "Ready").unwrap().clone();
    assert_eq!(ready.status, "False");
    for needle in ["roundcube-credentials", "data-roundcube-db-0", "Restore", "db-password"] {
        assert!(ready.message.contains(needle), "the message names {needle}: {}", ready.message);
    }
    assert_holds_for("no generated Secret recreated", Duration::from_secs(3), || {
        let secrets = secrets.clone();
        async move {
            let absent = |s: Option<Secret>| s.is_none();
            absent(secrets.get_opt("roundcube-credentials").await.unwrap())
                && absent(secrets.get_opt("roundcube-credentials-keep").await.unwrap())
        }
    })
    .await;

    // The documented recovery: the Secret back from a backup (`kubectl get -o yaml` keeps its labels).
    let mut backup = opaque("roundcube-credentials", &values);
    backup.metadata.labels = original.metadata.labels.clone();
    secrets.create(&PostParams::default(), &backup).await.unwrap();
    wait_ready(&clusters, "roundcube").await;
    assert_eq!(strings(&secrets.get("roundcube-credentials").await.unwrap()), values);
    assert_eq!(strings(&wait_secret(&secrets, "roundcube-credentials-keep", None).await), kept);
}

/// An external database's DSNs, with passwords no generated value could equal.
const EXTERNAL_WRITE: &str = "mysql://shop:Wr1tePassw0rdExt3rnal@db.example.com:3306/shop";
const EXTERNAL_READ: &str = "mysql://reader:Re4dPassw0rdExt3rnal@replica.example.com:3306/shop";

async fn create_external(ns: &TestNamespace, cluster: &str, dsn_secret: &str) {
    let data =
        BTreeMap::from([("write".to_string(), EXTERNAL_WRITE.into()), ("read".to_string(), EXTERNAL_READ.into())]);
    ns.api::<Secret>().create(&PostParams::default(), &opaque(dsn_secret, &data)).await.unwrap();
    let spec = format!(
        "app: {{image: 'shop:1', sharedSecrets: [APP_SECRET]}}\n\
         database: {{engine: mariadb, external: {{writeURLSecretRef: {{name: {dsn_secret}, key: write}}, \
         readURLSecretRef: {{name: {dsn_secret}, key: read}}}}}}"
    );
    let mut cluster = WebCluster::new(cluster, serde_saphyr::from_str(&spec).expect("a valid spec"));
    cluster.metadata.namespace = Some(ns.name().into());
    ns.api::<WebCluster>().create(&PostParams::default(), &cluster).await.unwrap();
}

/// Every secret value of the namespace, plain and base64: each value of the
/// generated Secrets but the plain DSN parts (host, port, name, user), and
/// the external DSNs and their passwords.
async fn secret_values(ns: &TestNamespace) -> Vec<String> {
    let mut values = vec![EXTERNAL_WRITE.to_string(), EXTERNAL_READ.to_string()];
    values.extend(["Wr1tePassw0rdExt3rnal", "Re4dPassw0rdExt3rnal"].map(String::from));
    let secrets = ns.api::<Secret>().list(&ListParams::default()).await.unwrap();
    for secret in secrets.items.iter().filter(|s| s.name_any().contains("-credentials")) {
        let plain = ["-host", "-port", "-name", "-user"];
        let secret_keys = strings(secret).into_iter().filter(|(key, _)| !plain.iter().any(|p| key.ends_with(p)));
        values.extend(secret_keys.map(|(_, value)| value).filter(|value| !value.is_empty()));
    }
    // And each as a Secret's JSON carries it (base64), should a body be logged.
    let encoded: Vec<String> = values
        .iter()
        .map(|value| {
            serde_json::to_string(&ByteString(value.clone().into_bytes())).unwrap().trim_matches('"').to_string()
        })
        .collect();
    values.extend(encoded);
    values
}

#[tokio::test]
async fn no_secret_reaches_the_verbose_log_events_or_status() {
    ensure_crd().await;
    let ns = TestNamespace::new("secret-leak").await;
    let operator = OperatorProcess::start(ns.name(), "operator", "trace").await;
    let clusters = ns.api::<WebCluster>();
    // A full example, and a WebCluster on an external database.
    kubectl_apply(ns.name(), "examples/roundcube.yaml");
    create_external(&ns, "shop", "shop-db").await;
    wait_ready(&clusters, "roundcube").await;
    wait_ready(&clusters, "shop").await;

    // A failure: the generated Secret of `broken` exists, immutable, with other values,
    // so the API server refuses every apply of it (its body holds the DSNs).
    let stale = BTreeMap::from([("shared.APP_SECRET".to_string(), "St4leSharedSecretValue".to_string())]);
    let mut immutable = opaque("broken-credentials", &stale);
    immutable.immutable = Some(true);
    ns.api::<Secret>().create(&PostParams::default(), &immutable).await.unwrap();
    create_external(&ns, "broken", "broken-db").await;
    let refused = wait_for_object(&clusters, "broken", "Ready=False on broken", READY_TIMEOUT, |c| {
        harness::conditions::condition(c, "Ready")
            .is_some_and(|r| r.status == "False" && r.message.contains("credentials"))
    })
    .await;
    eprintln!(
        "the failure as status says it: {}",
        harness::conditions::describe(harness::conditions::condition(&refused, "Ready"))
    );

    let values = secret_values(&ns).await;
    assert!(values.len() >= 10, "the generated and external values were found: {}", values.len());
    let log = operator.process.log();
    assert!(log.contains("TRACE"), "the operator logs at trace level");
    let events = ns.api::<Event>().list(&ListParams::default()).await.unwrap();
    assert!(!events.items.is_empty(), "the operator recorded Events");
    let events = serde_json::to_string(&events.items).unwrap();
    let statuses = clusters.list(&ListParams::default()).await.unwrap();
    let statuses = serde_json::to_string(&statuses.items.iter().map(|c| &c.status).collect::<Vec<_>>()).unwrap();
    for (place, text) in [("the operator's log", &log), ("an Event", &events), ("a status", &statuses)] {
        let leaked: Vec<&String> = values.iter().filter(|value| text.contains(value.as_str())).collect();
        assert!(leaked.is_empty(), "{} secret value(s) in {place} ({} bytes)", leaked.len(), text.len());
    }
    eprintln!("{} secret values absent from {} bytes of trace log, the Events and the status", values.len(), log.len());
}

/// Issue 21: an external extra database's DSN is read from its own Secret into
/// the generated Secret, split into the same parts as the main database's, and
/// reaches the app as `WEBCLUSTER_DB_<NAME>_*`; while its Secret is missing,
/// Ready says which.
#[tokio::test]
async fn an_external_extra_database_is_read_from_its_own_secret() {
    const DFS: &str = "mysql://ezdfs:Df5Passw0rdExt3rnal@dfs.example.com:3307/dfs";
    ensure_crd().await;
    let ns = TestNamespace::new("external-extra").await;
    let _operator = OperatorProcess::start(ns.name(), "operator", "info").await;
    let (clusters, secrets) = (ns.api::<WebCluster>(), ns.api::<Secret>());
    let main = BTreeMap::from([("write".to_string(), EXTERNAL_WRITE.to_string())]);
    secrets.create(&PostParams::default(), &opaque("shop-db", &main)).await.unwrap();
    let spec = "app: {image: 'shop:1'}\n\
                database: {engine: mariadb, external: {writeURLSecretRef: {name: shop-db, key: write}, \
                databases: [{name: dfs, writeURLSecretRef: {name: dfs-db, key: url}}]}}";
    let mut cluster = WebCluster::new("shop", serde_saphyr::from_str(spec).expect("a valid spec"));
    cluster.metadata.namespace = Some(ns.name().into());
    clusters.create(&PostParams::default(), &cluster).await.unwrap();

    let missing = wait_for_object(&clusters, "shop", "Ready=False naming dfs-db", READY_TIMEOUT, |c| {
        harness::conditions::condition(c, "Ready").is_some_and(|r| r.status == "False" && r.message.contains("dfs-db"))
    })
    .await;
    eprintln!("missing: {}", harness::conditions::describe(harness::conditions::condition(&missing, "Ready")));
    let dfs = BTreeMap::from([("url".to_string(), DFS.to_string())]);
    secrets.create(&PostParams::default(), &opaque("dfs-db", &dfs)).await.unwrap();
    wait_ready(&clusters, "shop").await;

    let values = strings(&secrets.get("shop-credentials").await.unwrap());
    let expected = [
        ("url", DFS),
        ("host", "dfs.example.com"),
        ("port", "3307"),
        ("name", "dfs"),
        ("user", "ezdfs"),
        ("password", "Df5Passw0rdExt3rnal"),
    ];
    for endpoint in ["write", "read"] {
        for (part, value) in expected {
            let key = format!("db.dfs.{endpoint}-{part}");
            assert_eq!(values.get(&key).map(String::as_str), Some(value), "{key} (no read reference: the write DSN)");
        }
    }
    assert_eq!(values.get("write-url").map(String::as_str), Some(EXTERNAL_WRITE), "the main database's DSN");
    let deployment =
        ns.api::<k8s_openapi::api::apps::v1::Deployment>().get("shop-app").await.expect("the app Deployment");
    let pod = deployment.spec.template.spec.expect("a pod template");
    let env = pod.containers[0].env.clone().unwrap_or_default();
    let var = env.iter().find(|v| v.name == "WEBCLUSTER_DB_DFS_WRITE_URL").expect("WEBCLUSTER_DB_DFS_WRITE_URL");
    let key =
        var.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref()).map(|r| (r.name.as_str(), r.key.as_str()));
    assert_eq!(key, Some(("shop-credentials", "db.dfs.write-url")));
}
