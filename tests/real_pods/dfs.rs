//! eZ Platform's DFS cluster setup on the real node (issue 21), for both
//! engines: the app reads its main database at DATABASE_URL and its DFS
//! metadata at DFS_DATABASE_URL (mapped from WEBCLUSTER_DB_DFS_WRITE_URL, a
//! second database with its own user on the same managed server), the binary
//! data on the shared volume at DFS_NFS_PATH. Doctrine DBAL, as eZ uses it,
//! creates the metadata table in `dfs` and reads it back from another app
//! pod, then through the read DSN from the replica.

use std::time::Duration;

use serde_json::json;
use webcluster::desired::names;

use crate::harness::pods::{ensure_images, exec_until, real_node_placement, wait_ready_on_real_node};
use crate::{APP_CONTAINER, Engine, RealTest, START_TIMEOUT, real_app};

const CLUSTER: &str = "ez";
/// The app base with Doctrine DBAL (hack/images/php-dbal).
const IMAGE: &str = "localhost/webcluster/php-dbal:1";
/// The client the app pods run (`php` reads it from stdin).
const CLIENT: &str = include_str!("dfs.php");
/// Where eZ's nfs_adapter writes (the shared volume).
const NFS_PATH: &str = "/var/www/dfs";
/// A binary file as eZ stores it: `$var_dir$/$storage_dir$/...`.
const FILE: &str = "var/site/storage/images/1/2/3/photo.jpg";
/// How long replication may take to carry the metadata row to the replica.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(60);

impl Engine {
    /// What eZ's doctrine.yaml adds to the DSN for the engine.
    fn dsn_options(self) -> &'static str {
        match self {
            Engine::Postgresql => "?serverVersion=17&charset=utf8",
            Engine::Mariadb => "?serverVersion=mariadb-11.8.0&charset=utf8mb4",
        }
    }
}

/// The app of eZ's cluster document: both DSNs, the NFS path on the shared volume.
fn app(engine: Engine) -> serde_json::Value {
    let mut app = real_app(2);
    app["image"] = json!(IMAGE);
    let options = engine.dsn_options();
    app["env"] = json!([
        {"name": "DATABASE_URL", "value": format!("$(WEBCLUSTER_DB_WRITE_URL){options}")},
        {"name": "DFS_DATABASE_URL", "value": format!("$(WEBCLUSTER_DB_DFS_WRITE_URL){options}")},
        {"name": "DFS_READ_URL", "value": format!("$(WEBCLUSTER_DB_DFS_READ_URL){options}")},
        {"name": "DFS_NFS_PATH", "value": NFS_PATH},
    ]);
    app
}

/// Runs the client in app pod `pod` with `args`; its trimmed output.
async fn client(test: &RealTest, pod: &str, args: &[&str]) -> String {
    test.php(pod, CLIENT, args).await
}

async fn dfs_runs_for_real(engine: Engine) {
    // 2 database volumes (primary, replica) and the shared one.
    let test = RealTest::start(&format!("real-dfs-{}", engine.name()), 2, 1).await;
    tokio::task::spawn_blocking(|| ensure_images(&["php-dbal"])).await.expect("importing php-dbal");
    eprintln!("dfs {}: images on the real node after {:.0}s", engine.name(), test.elapsed());
    test.apply(
        CLUSTER,
        json!({
            "app": app(engine),
            "database": {"engine": engine.name(), "managed": {
                "replicas": 1,
                "databaseName": "ezplatform",
                "user": "ezp",
                "databases": [{"name": "dfs", "user": "ezdfs"}],
                "storage": {"size": "1Gi", "storageClassName": test.storage.class()},
                "pod": real_node_placement(),
            }},
            "storage": {"volume": {
                "size": "1Gi",
                "storageClassName": test.storage.class(),
                "mounts": [{"path": NFS_PATH, "subPath": "dfs"}],
            }},
            "deletionPolicy": "Delete",
        }),
    )
    .await;
    let db: Vec<String> = (0..2).map(|i| names::database_pod(CLUSTER, i)).collect();
    wait_ready_on_real_node(&test.pods(), &db, START_TIMEOUT).await;
    test.wait_ready(CLUSTER, START_TIMEOUT).await;
    let apps = test.ready_app_pods(CLUSTER, 2).await;
    let ready = test.elapsed();
    eprintln!("dfs {}: 2 database pods and 2 app pods Ready after {ready:.0}s", engine.name());

    // Each DSN reaches its own database as its own user.
    assert_eq!(client(&test, &apps[0], &["where", "DATABASE_URL"]).await, "ezplatform ezp");
    assert_eq!(client(&test, &apps[0], &["where", "DFS_DATABASE_URL"]).await, "dfs ezdfs");

    // One pod stores a file; the other finds its metadata through DBAL and the file on the volume.
    let text = format!("jpeg bytes of {}", apps[0]);
    let stored = client(&test, &apps[0], &["store", FILE, &text]).await;
    assert_eq!(stored, format!("stored {FILE} {}", text.len()));
    let stat = client(&test, &apps[1], &["stat", FILE]).await;
    assert_eq!(stat, format!("{FILE} {}", text.len()), "{} reads what {} stored", apps[1], apps[0]);
    assert_eq!(client(&test, &apps[1], &["tables", "DFS_DATABASE_URL"]).await, "ezdfsfile");
    assert_eq!(
        client(&test, &apps[0], &["create", "DATABASE_URL", "ezcontentobject"]).await,
        "created ezcontentobject"
    );
    assert_eq!(client(&test, &apps[1], &["tables", "DATABASE_URL"]).await, "ezcontentobject", "the main database");

    // Neither user reads the other's database.
    let crossed = [("DATABASE_URL", "dfs", "ezdfsfile"), ("DFS_DATABASE_URL", "ezplatform", "ezcontentobject")];
    for (var, database, table) in crossed {
        assert_eq!(
            client(&test, &apps[1], &["open", var, database, table]).await,
            "refused",
            "{var}'s user on {database}"
        );
    }
    assert_eq!(client(&test, &apps[1], &["open", "DATABASE_URL", "ezplatform", "ezcontentobject"]).await, "read 1");

    // The replica serves the metadata through the read DSN.
    let expected = format!("{FILE} {}", text.len());
    let command = ["php", "--", "stat", FILE, "DFS_READ_URL"];
    let what = format!("the replica to serve {FILE}'s metadata");
    exec_until(test.namespace(), &apps[1], APP_CONTAINER, &command, CLIENT, &what, REPLICATION_TIMEOUT, |out| {
        out.trim() == expected
    })
    .await;
    let healthy = test.assert_healthy().await;
    eprintln!(
        "dfs {}: Ready after {ready:.0}s; DBAL stored and read the DFS metadata in its own database, the replica served it; {healthy} pods healthy after {:.0}s",
        engine.name(),
        test.elapsed()
    );
}

#[tokio::test]
async fn dfs_metadata_in_its_own_postgresql_database() {
    dfs_runs_for_real(Engine::Postgresql).await;
}

#[tokio::test]
async fn dfs_metadata_in_its_own_mariadb_database() {
    dfs_runs_for_real(Engine::Mariadb).await;
}
