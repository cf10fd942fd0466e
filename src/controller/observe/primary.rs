//! What the database primary says of itself in its log: the identity
//! of its data once it serves (`primary ready on port … (system identifier N)`
//! or `(GTID domain N)`), or why it refuses to serve (`REFUSING to initialise
//! …`). Needs `pods/log get` only: no connection to the database.
//!
//! The log is read only while something is unsettled (no identity recorded
//! yet, or a database pod not ready), once per change of the database
//! StatefulSet's status, and again every [`RECHECK`] while a pod that has
//! logged stays unsettled: a refusing primary changes nothing the operator watches.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::{Api, Client};

use crate::controller::error::{ApiError, Fault};
use crate::desired::names;

/// How often an unsettled primary's log is read again.
pub const RECHECK: Duration = Duration::from_secs(30);
/// The head of the log read: the start script logs its verdict early.
const LOG_BYTES: i64 = 256 * 1024;
/// A log request that takes longer is given up until the next read.
const LOG_TIMEOUT: Duration = Duration::from_secs(5);

const READY_LINE: &str = "primary ready on port ";
const REFUSAL_LINE: &str = "REFUSING to initialise";
/// The start scripts' log prefix (scripts/common.sh).
const LOG_PREFIX: &str = "webcluster-db: ";

/// What the primary's log said, read while the database was unsettled.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    /// The identity of the primary's data, when it logged that it serves.
    pub identity: Option<String>,
    /// The start script's refusal, when that is the newest verdict.
    pub refusal: Option<String>,
    /// The log had lines: the pod runs for real (kwok's pods have none),
    /// so it is worth reading again while unsettled.
    pub logs_seen: bool,
}

/// The last reading of each WebCluster's primary log, by uid.
#[derive(Default)]
pub struct PrimaryLogs {
    memo: Mutex<HashMap<String, Memo>>,
}

#[derive(Clone)]
struct Memo {
    /// The database StatefulSet's status when the log was read.
    fingerprint: String,
    read_at: Instant,
    reading: Reading,
}

impl PrimaryLogs {
    /// The verdict of the primary `pod` of the StatefulSet `database`, read
    /// again when due; `None` while the database is settled (an identity
    /// recorded and every pod ready).
    pub async fn read(
        &self,
        client: &Client,
        (namespace, uid): (&str, &str),
        recorded: Option<&str>,
        database: Option<(&StatefulSet, &str)>,
    ) -> Result<Option<Reading>, ApiError> {
        let Some((database, pod)) = database else { return Ok(None) };
        if recorded.is_some() && all_ready(database) {
            self.forget(uid);
            return Ok(None);
        }
        let fingerprint = format!("{pod}/{}", fingerprint(database));
        let memo = self.memo.lock().ok().and_then(|memo| memo.get(uid).cloned());
        if let Some(memo) = memo.filter(|m| !due(m, &fingerprint, Instant::now())) {
            return Ok(Some(memo.reading));
        }
        let reading = match log_head(client, namespace, pod).await? {
            Some(log) => parse(&log),
            None => Reading::default(),
        };
        if let Ok(mut memo) = self.memo.lock() {
            memo.insert(uid.to_string(), Memo { fingerprint, read_at: Instant::now(), reading: reading.clone() });
        }
        Ok(Some(reading))
    }

    /// Forgets a WebCluster (deleted, or settled).
    pub fn forget(&self, uid: &str) {
        if let Ok(mut memo) = self.memo.lock() {
            memo.remove(uid);
        }
    }

    /// Forgets every WebCluster but `live` (the uids a full list returned).
    pub fn retain(&self, live: &std::collections::HashSet<String>) {
        if let Ok(mut memo) = self.memo.lock() {
            memo.retain(|uid, _| live.contains(uid));
        }
    }
}

fn all_ready(database: &StatefulSet) -> bool {
    let wanted = database.spec.replicas.unwrap_or(1);
    database.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0) >= wanted
}

/// What of the StatefulSet's status changes when its pods come and go.
fn fingerprint(database: &StatefulSet) -> String {
    let status = database.status.clone().unwrap_or_default();
    format!(
        "{:?}/{}/{:?}/{:?}/{:?}",
        status.observed_generation,
        status.replicas,
        status.ready_replicas,
        status.current_revision,
        status.update_revision
    )
}

fn due(memo: &Memo, fingerprint: &str, now: Instant) -> bool {
    memo.fingerprint != fingerprint || (memo.reading.logs_seen && now.duration_since(memo.read_at) >= RECHECK)
}

/// The head of the primary's log; `None` when it has none to give (no such
/// pod or container yet, a fake pod, a slow answer: read again later).
async fn log_head(client: &Client, namespace: &str, pod: &str) -> Result<Option<String>, ApiError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = LogParams {
        container: Some(names::DATABASE_CONTAINER.to_string()),
        limit_bytes: Some(LOG_BYTES),
        ..LogParams::default()
    };
    match tokio::time::timeout(LOG_TIMEOUT, pods.logs(pod, &params)).await {
        Ok(Ok(log)) => Ok(Some(log)),
        Ok(Err(error)) if Fault::of(&error) == Fault::Forbidden => {
            Err(ApiError::new("read the log of", "Pod", namespace, pod, error))
        }
        Ok(Err(error)) => {
            tracing::debug!(namespace, pod, %error, "no log of the database primary");
            Ok(None)
        }
        Err(_) => {
            tracing::warn!(namespace, pod, timeout = ?LOG_TIMEOUT, "the database primary's log did not come");
            Ok(None)
        }
    }
}

/// The newest verdict of the start script in `log`.
fn parse(log: &str) -> Reading {
    let mut reading = Reading { logs_seen: !log.trim().is_empty(), ..Reading::default() };
    for line in log.lines() {
        if let Some(rest) = line.split_once(READY_LINE).map(|(_, rest)| rest) {
            let identity = rest.split_once('(').and_then(|(_, inner)| inner.strip_suffix(')'));
            reading.identity = identity.map(str::to_string);
            reading.refusal = None;
        } else if line.contains(REFUSAL_LINE) {
            let words = line.split_once(LOG_PREFIX).map_or(line, |(_, words)| words);
            reading.refusal = Some(words.to_string());
            reading.identity = None;
        }
    }
    reading
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{StatefulSetSpec, StatefulSetStatus};

    use super::*;

    #[test]
    fn the_newest_verdict_of_the_log_counts() {
        let ready = "webcluster-db: primary ready on port 5432 (system identifier 7713879700472976088)";
        let refusing =
            "webcluster-db: REFUSING to initialise an empty primary: replica x holds data (GTID position 1-1-9)";
        let reading = parse(&format!("starting\n{ready}\n"));
        assert_eq!(reading.identity.as_deref(), Some("system identifier 7713879700472976088"));
        assert_eq!(reading.refusal, None);
        let reading = parse(&format!("{refusing}\n{refusing}\n"));
        assert_eq!(reading.identity, None);
        assert_eq!(
            reading.refusal.as_deref(),
            Some("REFUSING to initialise an empty primary: replica x holds data (GTID position 1-1-9)")
        );
        let mariadb = parse(&format!("{refusing}\nwebcluster-db: primary ready on port 3306 (GTID domain 1131231904)"));
        assert_eq!((mariadb.identity.as_deref(), mariadb.refusal), (Some("GTID domain 1131231904"), None));
        assert!(!parse("").logs_seen, "a fake pod's empty log");
    }

    fn database(ready: i32) -> StatefulSet {
        StatefulSet {
            spec: StatefulSetSpec { replicas: Some(3), ..StatefulSetSpec::default() },
            status: Some(StatefulSetStatus {
                replicas: 3,
                ready_replicas: Some(ready),
                ..StatefulSetStatus::default()
            }),
            ..StatefulSet::default()
        }
    }

    #[test]
    fn the_log_is_read_again_on_a_change_or_while_a_real_pod_stays_unsettled() {
        let now = Instant::now();
        let memo = |logs_seen: bool| Memo {
            fingerprint: fingerprint(&database(2)),
            read_at: now,
            reading: Reading { logs_seen, ..Reading::default() },
        };
        let same = fingerprint(&database(2));
        assert!(!due(&memo(true), &same, now + Duration::from_secs(5)), "unchanged, read 5 s ago");
        assert!(due(&memo(true), &same, now + RECHECK), "a real pod unsettled for 30 s");
        assert!(!due(&memo(false), &same, now + RECHECK * 10), "a fake pod: only on a change");
        assert!(due(&memo(false), &fingerprint(&database(3)), now), "the StatefulSet's status changed");
        assert!(all_ready(&database(3)) && !all_ready(&database(2)));
    }
}
