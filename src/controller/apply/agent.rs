//! The database agent's commands (`start.sh position | promote | detach | follow |
//! fence`, docs/database.md), run in a database pod through the API server's
//! exec: the kubelet reaches the container without the pod's network, so a
//! primary cut off from the network can still be fenced.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::AttachParams;
use kube::{Api, Client};
use tokio::io::AsyncReadExt;

use crate::desired::names;

/// The agent's path in the database container.
const AGENT: &str = "/webcluster/start.sh";

/// Why an agent command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The API server or the kubelet refused or lost the exec.
    #[error("exec of `start.sh {command}` in pod {pod}: {source}")]
    Exec {
        /// The pod.
        pod: String,
        /// The agent command.
        command: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The command ran and failed.
    #[error("`start.sh {command}` in pod {pod} failed: {output}")]
    Failed {
        /// The pod.
        pod: String,
        /// The agent command.
        command: String,
        /// What it printed.
        output: String,
    },
    /// The command did not end in time.
    #[error("`start.sh {command}` in pod {pod} did not end within {timeout:?}")]
    Timeout {
        /// The pod.
        pod: String,
        /// The agent command.
        command: String,
        /// The bound.
        timeout: Duration,
    },
}

/// Runs `start.sh ARGS` in the database container of `pod`; its standard output.
pub async fn run(
    client: &Client,
    namespace: &str,
    pod: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<String, AgentError> {
    let command = args.join(" ");
    match tokio::time::timeout(timeout, exec(client, namespace, pod, args)).await {
        Ok(Ok((true, output))) => Ok(output),
        Ok(Ok((false, output))) => Err(AgentError::Failed { pod: pod.into(), command, output }),
        Ok(Err(source)) => Err(AgentError::Exec { pod: pod.into(), command, source }),
        Err(_) => Err(AgentError::Timeout { pod: pod.into(), command, timeout }),
    }
}

/// Whether the command succeeded, and its standard output (standard error
/// after it when it failed).
async fn exec(client: &Client, namespace: &str, pod: &str, args: &[&str]) -> Result<(bool, String), kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let command: Vec<&str> = ["/bin/sh", AGENT].into_iter().chain(args.iter().copied()).collect();
    let params = AttachParams::default().container(names::DATABASE_CONTAINER).stdin(false).stdout(true).stderr(true);
    let mut process = pods.exec(pod, command, &params).await?;
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let status = process.take_status();
    let (out, err) = (process.stdout(), process.stderr());
    let read_out = async {
        if let Some(mut out) = out {
            let _ = out.read_to_string(&mut stdout).await;
        }
    };
    let read_err = async {
        if let Some(mut err) = err {
            let _ = err.read_to_string(&mut stderr).await;
        }
    };
    futures::join!(read_out, read_err);
    let status = match status {
        Some(status) => status.await,
        None => None,
    };
    let success = status.is_some_and(|s| s.status.as_deref() == Some("Success"));
    if !success {
        return Ok((false, format!("{stdout}{stderr}").trim().to_string()));
    }
    // The agent's own account of a change (its steps' durations), kept in the operator's log.
    if !stderr.trim().is_empty() {
        tracing::info!(pod, command = %args.join(" "), said = %stderr.trim(), "database agent");
    }
    Ok((true, stdout))
}
