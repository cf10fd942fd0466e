//! Spacing of status writes. While a WebCluster starts, its pods turn ready one
//! by one and each step changes a figure in its status; writing every step cost
//! about four status writes per WebCluster, competing with the children for the
//! API server. Changes that matter (a new generation, Ready flipping) are written
//! at once; figures are written at most once per interval, the latest of them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A WebCluster: namespace and name.
pub type ClusterKey = (String, String);

/// When each WebCluster's status was last written.
pub struct StatusPacer {
    interval: Duration,
    written: Mutex<HashMap<ClusterKey, Instant>>,
}

impl StatusPacer {
    /// Figures of one WebCluster are written at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self { interval, written: Mutex::new(HashMap::new()) }
    }

    /// How long a non-urgent write must wait; `None` when it may go now.
    pub fn wait(&self, key: &ClusterKey, now: Instant) -> Option<Duration> {
        let written = self.written.lock().ok()?;
        let since = now.saturating_duration_since(*written.get(key)?);
        (since < self.interval).then(|| self.interval - since)
    }

    /// Records a write. Entries older than the interval no longer limit anything
    /// and are dropped, so deleted WebClusters leave nothing behind.
    pub fn wrote(&self, key: ClusterKey, now: Instant) {
        if let Ok(mut written) = self.written.lock() {
            written.retain(|_, at| now.saturating_duration_since(*at) < self.interval);
            written.insert(key, now);
        }
    }

    /// WebClusters whose last write is younger than the interval.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.written.lock().map(|w| w.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ClusterKey {
        ("ns".into(), name.into())
    }

    #[test]
    fn a_first_write_goes_at_once() {
        let pacer = StatusPacer::new(Duration::from_secs(5));
        assert_eq!(pacer.wait(&key("a"), Instant::now()), None);
    }

    #[test]
    fn a_second_write_waits_for_the_rest_of_the_interval() {
        let pacer = StatusPacer::new(Duration::from_secs(5));
        let start = Instant::now();
        pacer.wrote(key("a"), start);
        assert_eq!(pacer.wait(&key("a"), start + Duration::from_secs(2)), Some(Duration::from_secs(3)));
        assert_eq!(pacer.wait(&key("a"), start + Duration::from_secs(5)), None);
        assert_eq!(pacer.wait(&key("b"), start + Duration::from_secs(1)), None, "other WebClusters are not limited");
    }

    #[test]
    fn old_entries_are_dropped() {
        let pacer = StatusPacer::new(Duration::from_secs(5));
        let start = Instant::now();
        pacer.wrote(key("a"), start);
        pacer.wrote(key("b"), start + Duration::from_secs(1));
        assert_eq!(pacer.remembered(), 2);
        pacer.wrote(key("c"), start + Duration::from_millis(5500));
        assert_eq!(pacer.remembered(), 2, "a is older than the interval");
    }
}
