//! The conditions of a WebCluster's status, as tests and the bench read them.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use webcluster::api::WebCluster;

use super::wait::{READY_TIMEOUT, watch_until};

/// The condition `type_` of `cluster`, if its status has one.
pub fn condition<'a>(cluster: &'a WebCluster, type_: &str) -> Option<&'a Condition> {
    cluster.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)
}

/// Whether `cluster` has `Ready=True`.
pub fn is_ready(cluster: &WebCluster) -> bool {
    condition(cluster, "Ready").is_some_and(|c| c.status == "True")
}

/// `status (reason: message)` of the condition, for failure messages.
pub fn describe(condition: Option<&Condition>) -> String {
    condition.map_or_else(|| "none".into(), |c| format!("{} ({}: {})", c.status, c.reason, c.message))
}

/// The condition `type_` of WebCluster `name` as it is now.
pub async fn current(api: &Api<WebCluster>, name: &str, type_: &str) -> Option<Condition> {
    let cluster = api.get_opt(name).await.ok()??;
    condition(&cluster, type_).cloned()
}

/// Watches WebCluster `name` until its condition `type_` satisfies `check`;
/// returns the WebCluster.
pub async fn wait_condition(
    api: &Api<WebCluster>,
    name: &str,
    type_: &'static str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Condition) -> bool + Send + 'static,
) -> WebCluster {
    let what = format!("{what} on WebCluster {name}");
    match watch_until(api, name, &what, timeout, move |cluster| condition(cluster, type_).is_some_and(&check)).await {
        Ok(cluster) => cluster,
        Err(e) => panic!("{e}; {type_} is {}", describe(current(api, name, type_).await.as_ref())),
    }
}

/// Watches WebCluster `name` until its condition `type_` has `status`.
pub async fn wait_status(api: &Api<WebCluster>, name: &str, type_: &'static str, status: &'static str) -> WebCluster {
    wait_condition(api, name, type_, &format!("{type_}={status}"), READY_TIMEOUT, move |c| c.status == status).await
}

/// Watches WebCluster `name` until its condition `type_` has `reason`.
pub async fn wait_reason(api: &Api<WebCluster>, name: &str, type_: &'static str, reason: &'static str) -> WebCluster {
    let what = format!("{type_} with reason {reason}");
    wait_condition(api, name, type_, &what, READY_TIMEOUT, move |c| c.reason == reason).await
}

/// Watches WebCluster `name` until it is Ready.
pub async fn wait_ready(api: &Api<WebCluster>, name: &str) -> WebCluster {
    wait_status(api, name, "Ready", "True").await
}
