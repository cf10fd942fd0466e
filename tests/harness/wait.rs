//! Waiting on conditions with a deadline, never for a fixed time: watches
//! (kube's `await_condition`) for one object, polling for anything else.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// How long a WebCluster may take to become Ready on the local cluster.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a set-up step may take (a CRD Established, a namespace's ServiceAccount).
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Time between two checks of a polled condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Checks `check` every `every` until it holds; `Err` naming `what` once
/// `timeout` passed first.
pub async fn poll_every<F, Fut>(what: &str, timeout: Duration, every: Duration, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(every).await;
    }
}

/// [`poll_every`] at [`POLL_INTERVAL`].
pub async fn poll<F, Fut>(what: &str, timeout: Duration, check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll_every(what, timeout, POLL_INTERVAL, check).await
}

/// [`poll`], panicking when `timeout` passes first.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if let Err(e) = poll(what, timeout, check).await {
        panic!("{e}");
    }
}

/// Checks `holds` for the whole `window` and fails the moment it does not:
/// for what must stay true (no writes while idle), not a sleep.
pub async fn assert_holds_for<F, Fut>(what: &str, window: Duration, mut holds: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        assert!(holds().await, "{what} stopped holding after {:?} of {window:?}", start.elapsed());
        if start.elapsed() >= window {
            return;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The blocking form of [`poll_every`] for tests without a runtime: true once
/// `check` holds, false when `timeout` passed first.
pub fn wait_until(timeout: Duration, every: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// Watches object `name` until it exists and `condition` holds for it, and
/// returns it; `Err` naming `what` when `timeout` passes first.
pub async fn watch_until<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    condition: impl Fn(&K) -> bool + Send + 'static,
) -> Result<K, String>
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + 'static,
{
    let watch = await_condition(api.clone(), name, move |object: Option<&K>| object.is_some_and(&condition));
    match tokio::time::timeout(timeout, watch).await {
        Ok(Ok(Some(object))) => Ok(object),
        Ok(Ok(None)) => Err(format!("{name} is gone while waiting for {what}")),
        Ok(Err(e)) => Err(format!("watching {name} while waiting for {what}: {e}")),
        Err(_) => Err(format!("timed out after {timeout:?} waiting for {what}")),
    }
}

/// [`watch_until`], panicking when `timeout` passes first.
pub async fn wait_for_object<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    condition: impl Fn(&K) -> bool + Send + 'static,
) -> K
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + 'static,
{
    watch_until(api, name, what, timeout, condition).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Watches object `name` (of `uid`) until it is gone; panics naming `what`
/// when `timeout` passes first.
pub async fn wait_for_deletion<K>(api: &Api<K>, name: &str, uid: &str, what: &str, timeout: Duration)
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + 'static,
{
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, conditions::is_deleted(uid))).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("watching {name} while waiting for {what}: {e}"),
        Err(_) => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}
