//! What one size measured.

/// Everything measured at one N; `None` where a step failed or did not run.
#[derive(Default, Clone)]
pub struct SizeResult {
    pub n: usize,
    pub children: usize,
    pub pods: usize,
    pub t_raw: Option<f64>,
    /// Until every Deployment and StatefulSet the bare client applied is ready.
    pub t_ready_raw: Option<f64>,
    pub raw_requests: Option<(u64, u64)>,
    pub t_children: Option<f64>,
    pub t_ready: Option<f64>,
    pub cpu_converge: Option<f64>,
    pub rss_converge_kib: Option<u64>,
    pub rss_peak_kib: Option<u64>,
    /// The resident set at the end of the idle window.
    pub rss_idle_kib: Option<u64>,
    pub cpu_idle: Option<f64>,
    pub converge_requests: Option<(u64, u64)>,
    pub idle_requests: Option<(u64, u64)>,
    pub idle_reconciles: Option<f64>,
    pub resync_requests: Option<(u64, u64)>,
    pub resync_seconds: Option<f64>,
    pub reaction: Option<Reaction>,
    /// The peer operator at the same N; `None` when it did not run.
    pub peer: Option<PeerResult>,
    pub errors: Vec<String>,
    pub wall: f64,
}

/// The peer operator's figures at one N (the same steps as the operator's,
/// where the peer has them).
#[derive(Default, Clone)]
pub struct PeerResult {
    pub children: usize,
    pub t_children: Option<f64>,
    pub cpu_converge: Option<f64>,
    pub rss_converge_kib: Option<u64>,
    pub rss_peak_kib: Option<u64>,
    pub rss_idle_kib: Option<u64>,
    pub converge_requests: Option<(u64, u64)>,
    pub idle_requests: Option<(u64, u64)>,
    pub reaction: Option<Reaction>,
    pub errors: Vec<String>,
}

/// The times from deleting a child to its replacement.
#[derive(Clone)]
pub struct Reaction {
    pub samples: Vec<f64>,
    pub failures: usize,
}

impl Reaction {
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
