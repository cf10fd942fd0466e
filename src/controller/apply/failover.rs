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
//!
//! A switchover (asked for) is the same with the old primary still serving:
//! it stops taking writes (`start.sh quiesce`) and stops (`fence planned`)
//! only once the target received everything it wrote.

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
/// How long a switchover's target may take to receive what the primary wrote.
const CATCH_UP: Duration = Duration::from_secs(30);
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
    /// How long fencing took.
    pub fencing: Duration,
    /// The new primary's resourceVersion once labelled: each promotion's
    /// Event relates to its own version of the pod.
    pub version: Option<String>,
    /// Replicas repointed at the new primary.
    pub repointed: usize,
    /// From the start of the failover to the end of the promotion.
    pub took: Duration,
}

/// Why the primary changes.
#[derive(Clone, Debug, PartialEq)]
pub enum Cause {
    /// It was not ready.
    Failover,
    /// The switchover request asked for it.
    Switchover(String),
}

/// What a former primary runs as, when asked again after a failover.
#[derive(Debug, PartialEq)]
pub enum Recheck {
    /// A replica: it rejoined.
    Replica,
    /// It ran as a primary and was fenced now.
    Fenced,
    /// Not known yet (its server does not answer, it is fenced or starting).
    Unknown(String),
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
    /// The primary did not stop taking writes for a switchover.
    #[error("the primary did not stop taking writes: {0}")]
    Quiesce(AgentError),
    /// The switchover's target did not receive everything in time.
    #[error(
        "{pod} received up to position {received}, not {written} (everything the primary wrote), within {CATCH_UP:?}"
    )]
    Behind {
        /// The target.
        pod: String,
        /// Its position.
        received: u64,
        /// The primary's.
        written: u64,
    },
}

impl Database<'_> {
    /// Fails over from `from` to the most advanced of `candidates` (by ordinal).
    pub async fn fail_over(&self, from: &str, candidates: &[String]) -> Result<Promotion, FailoverError> {
        let started = Instant::now();
        let (to, position) = self.most_advanced(candidates).await?;
        let chosen = started.elapsed();
        set_role(self.client, self.namespace, from, ROLE_REPLICA).await?;
        let (unfenced, fencing) = self.fence(from, &["fence"]).await;
        tracing::info!(from, to, position, ?chosen, ?fencing, "failing over: candidate chosen, old primary fenced");
        let others: Vec<&String> = candidates.iter().filter(|c| **c != to).collect();
        let (version, repointed) = self.promote(&to, &others).await?;
        Ok(Promotion { took: started.elapsed(), to, position, unfenced, fencing, version, repointed })
    }

    /// Switches over from the primary `from` to the replica `to`, as asked:
    /// `from` leaves the read-write Service and stops taking writes, `to`
    /// receives everything `from` wrote, `from` stops (a planned fence), and
    /// only then is `to` promoted; `others` (ready replicas) follow it. When
    /// `to` does not catch up, `from` takes writes again and stays the primary.
    pub async fn switch_over(&self, from: &str, to: &str, others: &[String]) -> Result<Promotion, FailoverError> {
        let started = Instant::now();
        set_role(self.client, self.namespace, from, ROLE_REPLICA).await?;
        let caught_up = match self.agent(from, &["quiesce"], QUICK).await {
            Ok(_) => self.catch_up(from, to).await,
            Err(error) => Err(FailoverError::Quiesce(error)),
        };
        let position = match caught_up {
            Ok(position) => position,
            Err(error) => {
                self.resume(from).await;
                return Err(error);
            }
        };
        let (unfenced, fencing) = self.fence(from, &["fence", "planned"]).await;
        let others: Vec<&String> = others.iter().filter(|o| *o != to && *o != from).collect();
        let (version, repointed) = self.promote(to, &others).await?;
        let to = to.to_string();
        Ok(Promotion { took: started.elapsed(), to, position, unfenced, fencing, version, repointed })
    }

    /// Fences `pod` with the agent command `args`: why it did not work, and how long it took.
    async fn fence(&self, pod: &str, args: &[&str]) -> (Option<String>, Duration) {
        let started = Instant::now();
        let unfenced = self.agent(pod, args, FENCE).await.err().map(|e| e.to_string());
        (unfenced, started.elapsed())
    }

    /// Waits until `to` received everything the quiesced primary `from`
    /// wrote; the position reached.
    async fn catch_up(&self, from: &str, to: &str) -> Result<u64, FailoverError> {
        let written = self.position(from).await.map_err(FailoverError::NoPosition)?;
        let deadline = Instant::now() + CATCH_UP;
        loop {
            let received = self.position(to).await.map_err(FailoverError::NoPosition)?;
            if received >= written {
                return Ok(received);
            }
            if Instant::now() >= deadline {
                return Err(FailoverError::Behind { pod: to.to_string(), received, written });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A switchover that did not go on: `from` takes writes again and gets
    /// its label back (best effort: a primary left unlabelled is failed over).
    async fn resume(&self, from: &str) {
        if let Err(error) = self.agent(from, &["promote"], PROMOTE).await {
            tracing::warn!(pod = from, %error, "the primary did not take writes again after a switchover stopped");
            return;
        }
        if let Err(error) = set_role(self.client, self.namespace, from, ROLE_PRIMARY).await {
            tracing::warn!(pod = from, %error, "the primary did not get its label back after a switchover stopped");
        }
    }

    /// Promotes `to`, labels it primary once it takes writes, and repoints
    /// `others` at it; its resourceVersion once labelled, and how many followed.
    async fn promote(&self, to: &str, others: &[&String]) -> Result<(Option<String>, usize), FailoverError> {
        let promoting = Instant::now();
        // The others stop receiving meanwhile (MariaDB's wait for a primary that is gone).
        let detaching = futures::future::join_all(others.iter().map(|other| self.agent(other, &["detach"], QUICK)));
        let (promotion, _) = futures::join!(self.agent(to, &["promote"], PROMOTE), detaching);
        promotion.map_err(FailoverError::Promote)?;
        let promoted = promoting.elapsed();
        let version = set_role(self.client, self.namespace, to, ROLE_PRIMARY).await?;
        let host = names::pod_host(to, &names::database_headless(self.cluster), self.namespace);
        let port = self.port.to_string();
        let follow = ["follow", host.as_str(), port.as_str()];
        let follows = others.iter().map(|other| self.agent(other, &follow, QUICK));
        let repointed = futures::future::join_all(follows).await.iter().filter(|r| r.is_ok()).count();
        let labelled_and_repointed = promoting.elapsed() - promoted;
        tracing::info!(pod = to, ?promoted, ?labelled_and_repointed, repointed, "promoted");
        Ok((version, repointed))
    }

    /// The position `pod` tells, or why it told none.
    async fn position(&self, pod: &str) -> Result<u64, String> {
        let answer = self.agent(pod, &["position"], QUICK).await.map_err(|e| e.to_string())?;
        position_of(&answer).ok_or_else(|| format!("{pod} printed no position"))
    }

    /// What the former primary `pod` runs as now; fenced when it runs as a primary.
    pub async fn recheck(&self, pod: &str) -> Recheck {
        let answer = match self.agent(pod, &["position"], QUICK).await {
            Ok(answer) => answer,
            Err(error) => return Recheck::Unknown(error.to_string()),
        };
        match role_of(&answer) {
            Some(ROLE_REPLICA) => Recheck::Replica,
            Some(ROLE_PRIMARY) => match self.agent(pod, &["fence"], FENCE).await {
                Ok(_) => Recheck::Fenced,
                Err(error) => Recheck::Unknown(error.to_string()),
            },
            _ => Recheck::Unknown(format!("{pod} said {}", answer.trim())),
        }
    }

    /// The candidate that received the most, and its position.
    async fn most_advanced(&self, candidates: &[String]) -> Result<(String, u64), FailoverError> {
        let answers = futures::future::join_all(candidates.iter().map(|pod| self.position(pod))).await;
        let mut best: Option<(String, u64)> = None;
        let mut silent = Vec::new();
        for (pod, answer) in candidates.iter().zip(answers) {
            match answer {
                Ok(position) if best.as_ref().is_none_or(|(_, top)| position > *top) => {
                    best = Some((pod.clone(), position));
                }
                Ok(_) => {}
                Err(why) => silent.push(why),
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
    field(output, "position=")?.parse().ok()
}

/// The `role=…` of `start.sh position`'s line.
fn role_of(output: &str) -> Option<&str> {
    field(output, "role=")
}

fn field<'a>(output: &'a str, key: &str) -> Option<&'a str> {
    let line = output.lines().find(|line| line.starts_with("role="))?;
    line.split_whitespace().find_map(|word| word.strip_prefix(key))
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

    #[test]
    fn the_role_is_read_from_the_agents_line() {
        assert_eq!(role_of("role=primary position=7 lsn=0/7 timeline=2\n"), Some(ROLE_PRIMARY));
        assert_eq!(role_of("webcluster-db: log\nrole=replica position=13\n"), Some(ROLE_REPLICA));
        assert_eq!(role_of("role=fenced position=13"), Some("fenced"));
        assert_eq!(role_of("ERROR 2002"), None);
    }
}
