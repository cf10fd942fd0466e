//! What one size measured.

use crate::markdown::fmt_opt;
use crate::procstat::{cpu_seconds, peak_rss_kib};
use crate::settings::Res;

/// Everything measured at one N; `None` where a step failed or did not run.
#[derive(Default, Clone)]
pub struct SizeResult {
    pub n: usize,
    pub pods: usize,
    pub t_raw: Option<f64>,
    /// Until every Deployment and StatefulSet the bare client applied is ready.
    pub t_ready_raw: Option<f64>,
    pub raw_requests: Option<(u64, u64)>,
    /// The operator's convergence, idle and reaction figures.
    pub footprint: Footprint,
    pub t_ready: Option<f64>,
    pub cpu_idle: Option<f64>,
    pub idle_reconciles: Option<f64>,
    pub resync_requests: Option<(u64, u64)>,
    pub resync_seconds: Option<f64>,
    /// The peer operator at the same N; `None` when it did not run.
    pub peer: Option<PeerResult>,
    pub errors: Vec<String>,
    pub wall: f64,
}

/// The peer operator's figures at one N.
#[derive(Default, Clone)]
pub struct PeerResult {
    pub footprint: Footprint,
    pub errors: Vec<String>,
}

/// What an operator (WebCluster's or the peer) cost at one N: the same figures
/// for both, so they stand in one table.
#[derive(Default, Clone)]
pub struct Footprint {
    pub children: usize,
    pub t_children: Option<f64>,
    /// CPU seconds from the start until converged.
    pub cpu_converge: Option<f64>,
    /// Peak RSS when converged.
    pub rss_converge_kib: Option<u64>,
    /// Peak RSS over every step.
    pub rss_peak_kib: Option<u64>,
    /// The resident set at the end of the idle window.
    pub rss_idle_kib: Option<u64>,
    pub converge_requests: Option<(u64, u64)>,
    pub idle_requests: Option<(u64, u64)>,
    pub reaction: Option<Reaction>,
}

impl Footprint {
    /// Records what converging cost: `requests` and process `pid`'s CPU and peak RSS so far.
    pub fn record_converged(&mut self, requests: (u64, u64), pid: u32) -> Res<()> {
        self.converge_requests = Some(requests);
        self.cpu_converge = Some(cpu_seconds(pid)?);
        self.rss_converge_kib = Some(peak_rss_kib(pid)?);
        Ok(())
    }

    /// The convergence figures, for a progress line.
    pub fn converged_summary(&self) -> String {
        format!(
            "peak RSS {:.1} MiB, CPU {:.2}s; requests while converging {:?} (reads, writes)",
            self.rss_converge_kib.unwrap_or(0) as f64 / 1024.0,
            self.cpu_converge.unwrap_or(0.0),
            self.converge_requests.unwrap_or_default()
        )
    }
}

/// The times from deleting a child to its replacement.
#[derive(Clone)]
pub struct Reaction {
    pub samples: Vec<f64>,
    pub failures: usize,
}

impl Reaction {
    /// p50, p99 and failures, for a progress line.
    pub fn summary(&self) -> String {
        format!(
            "p50 {}s, p99 {}s, {} not repaired",
            fmt_opt(self.quantile(0.5), 3),
            fmt_opt(self.quantile(0.99), 3),
            self.failures
        )
    }

    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let mut sorted = self.samples.clone();
        sorted.sort_by(f64::total_cmp);
        // Nearest rank.
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Some(sorted[rank - 1])
    }
}
