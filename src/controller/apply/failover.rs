//! A failover: the ready replica that received the most becomes the primary.
//!
//! 1. The candidates tell their positions (`start.sh position`); the highest
//!    wins, the lowest ordinal on a tie.
//! 2. The old primary loses its role label first, so the read-write Service
//!    drops it and its next start is a replica's; then it is fenced
//!    (`start.sh fence`, through the kubelet: it works for a pod cut off from
//!    the network, and fails harmlessly for one that is gone).
//! 3. The new primary is promoted, then gets the label: the read-write
//!    Service reaches it only once it takes writes as the spec says (with
//!    `synchronousReplicas`, acknowledged by a replica: a write acknowledged
//!    in between would not be).
//! 4. The other candidates follow it; a replica not ready now follows the
//!    read-write Service when it reconnects or starts.

use std::time::{Duration, Instant};

use kube::Client;

use super::agent::{self, AgentError};
use super::roles::set_role;
use crate::controller::error::ApiError;
use crate::desired::{ROLE_PRIMARY, ROLE_REPLICA, names};

/// How long a position or a repoint may take.
const QUICK: Duration = Duration::from_secs(10);
/// How long fencing may take (an immediate shutdown).
const FENCE: Duration = Duration::from_secs(20);
/// How long a promotion may take (everything received is applied first).
const PROMOTE: Duration = Duration::from_secs(90);

/// Where a failover happens: the WebCluster's database.
pub struct Database<'a> {
    /// The API client.
    pub client: &'a Client,
    /// The WebCluster's namespace.
    pub namespace: &'a str,
    /// The WebCluster's name.
    pub cluster: &'a str,
    /// The database engine's port.
    pub port: i32,
}

/// A failover done.
#[derive(Debug)]
pub struct Promotion {
    /// The new primary.
    pub to: String,
    /// Its position when chosen (WAL received, or GTID sequence number).
    pub position: u64,
    /// Why fencing the old primary did not work, when it did not.
    pub unfenced: Option<String>,
    /// Replicas repointed at the new primary.
    pub repointed: usize,
    /// From the start of the failover to the end of the promotion.
    pub took: Duration,
}

/// Why a failover did not happen or ended early.
#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    /// No candidate told its position.
    #[error("no ready replica told its position: {0}")]
    NoPosition(String),
    /// A role label was not set.
    #[error("{0}")]
    Label(#[from] ApiError),
    /// The promotion failed.
    #[error("{0}")]
    Promote(AgentError),
}

impl Database<'_> {
    /// Fails over from `from` to the most advanced of `candidates` (by ordinal).
    pub async fn fail_over(&self, from: &str, candidates: &[String]) -> Result<Promotion, FailoverError> {
        let started = Instant::now();
        let (to, position) = self.most_advanced(candidates).await?;
        set_role(self.client, self.namespace, from, ROLE_REPLICA).await?;
        let unfenced = self.agent(from, &["fence"], FENCE).await.err().map(|e| e.to_string());
        self.agent(&to, &["promote"], PROMOTE).await.map_err(FailoverError::Promote)?;
        set_role(self.client, self.namespace, &to, ROLE_PRIMARY).await?;
        let took = started.elapsed();
        let host = names::pod_host(&to, &names::database_headless(self.cluster), self.namespace);
        let port = self.port.to_string();
        let follow = ["follow", host.as_str(), port.as_str()];
        let others = candidates.iter().filter(|c| **c != to);
        let follows = others.map(|other| self.agent(other, &follow, QUICK));
        let repointed = futures::future::join_all(follows).await.iter().filter(|r| r.is_ok()).count();
        Ok(Promotion { to, position, unfenced, repointed, took })
    }

    /// The candidate that received the most, and its position.
    async fn most_advanced(&self, candidates: &[String]) -> Result<(String, u64), FailoverError> {
        let asked = candidates.iter().map(|pod| self.agent(pod, &["position"], QUICK));
        let answers = futures::future::join_all(asked).await;
        let mut best: Option<(String, u64)> = None;
        let mut silent = Vec::new();
        for (pod, answer) in candidates.iter().zip(answers) {
            match answer.map(|out| position_of(&out)) {
                Ok(Some(position)) if best.as_ref().is_none_or(|(_, top)| position > *top) => {
                    best = Some((pod.clone(), position));
                }
                Ok(Some(_)) => {}
                Ok(None) => silent.push(format!("{pod} printed no position")),
                Err(error) => silent.push(error.to_string()),
            }
        }
        best.ok_or_else(|| FailoverError::NoPosition(silent.join("; ")))
    }

    async fn agent(&self, pod: &str, args: &[&str], timeout: Duration) -> Result<String, AgentError> {
        agent::run(self.client, self.namespace, pod, args, timeout).await
    }
}

/// The `position=N` of `start.sh position`'s line.
fn position_of(output: &str) -> Option<u64> {
    let line = output.lines().find(|line| line.starts_with("role="))?;
    line.split_whitespace().find_map(|word| word.strip_prefix("position="))?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_is_read_from_the_agents_line() {
        let postgresql = "role=replica position=50331808 lsn=0/30000A0 timeline=1\n";
        assert_eq!(position_of(postgresql), Some(50_331_808));
        let mariadb = "webcluster-db: a log line\nrole=replica position=13 received=1-1-13 written=1-1-12 domain=1\n";
        assert_eq!(position_of(mariadb), Some(13));
        assert_eq!(position_of("role=replica lsn=0/0"), None);
        assert_eq!(position_of(""), None);
    }
}
