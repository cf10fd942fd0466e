//! What the bench measures, from the environment:
//!   BENCH_SIZES            comma-separated N (default 10,100,1000)
//!   BENCH_CONCURRENCY      in-flight requests of the bare client = operator --concurrency (8)
//!   BENCH_IDLE_SECONDS     idle window after convergence (120); CPU is read over its
//!   BENCH_CPU_IDLE_SECONDS first part (60)
//!   BENCH_REACTIONS        deletions of a child timed per size (100)
//!   BENCH_TIMEOUT_SECONDS  limit per wait (2400: at N=1000 Ready takes over 15 min)
//!   BENCH_SKIP_RAW         1 skips the bare client (for profiling runs: set
//!                          BENCH_OPERATOR to a wrapper that starts a profiler)
//!   BENCH_PEER             the peer operator's binary (default
//!                          ~/.cache/webcluster/peer/wordpress-operator-<commit>)
//!   BENCH_PEER_CRD         its CRD (default in the snapshot's tree beside it);
//!                          BENCH_PEER=none skips the peer
//!   BENCH_KEEP_CLUSTER     non-empty: `make bench` leaves its cluster running, so
//!                          the last size's namespace is deleted to the end too
//!   BENCH_REPORT           the report (BENCHMARKS.md), relative to the repository
//!   BENCH_CHART            its chart (benchmarks/convergence.svg), e.g. a larger
//!                          size's own run: BENCH_REPORT=benchmarks/n2000.md
//!                          BENCH_CHART=benchmarks/n2000.svg

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::peer::PEER_COMMIT;

/// The bench's errors are messages for the report.
pub type Res<T> = Result<T, String>;

/// The field manager of what the bench applies.
pub const FIELD_MANAGER: &str = "webcluster-bench";
/// The annotation whose change forces the resync.
pub const RESYNC_ANNOTATION: &str = "bench/resync";
pub const SERVICE_CIDR_NAME: &str = "webcluster-bench";
pub const SERVICE_CIDR: &str = "10.112.0.0/16";

pub struct Settings {
    pub sizes: Vec<usize>,
    pub concurrency: usize,
    pub idle: Duration,
    pub cpu_idle: Duration,
    pub reactions: usize,
    pub timeout: Duration,
    pub operator: PathBuf,
    pub root: PathBuf,
    pub skip_raw: bool,
    pub peer: PathBuf,
    pub peer_crd: PathBuf,
    pub skip_peer: bool,
    pub keep_cluster: bool,
    pub report: PathBuf,
    pub chart: PathBuf,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Res<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| format!("{name}: not a number: {v}")),
        _ => Ok(default),
    }
}

fn env_path(name: &str, default: &Path) -> PathBuf {
    std::env::var(name).map_or_else(|_| default.to_path_buf(), PathBuf::from)
}

impl Settings {
    pub fn from_env() -> Res<Self> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let sizes = std::env::var("BENCH_SIZES").unwrap_or_else(|_| "10,100,1000".into());
        let mut sizes = sizes
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse::<usize>().map_err(|_| format!("BENCH_SIZES: not a number: {s}")))
            .collect::<Res<Vec<_>>>()?;
        sizes.sort_unstable();
        sizes.dedup();
        if sizes.is_empty() || sizes[0] == 0 {
            return Err("BENCH_SIZES must list positive sizes".into());
        }
        let idle = Duration::from_secs(env_num("BENCH_IDLE_SECONDS", 120)?);
        let cpu_idle = Duration::from_secs(env_num("BENCH_CPU_IDLE_SECONDS", 60)?).min(idle);
        let peer_dir = PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/webcluster/peer");
        let operator = std::env::var("BENCH_OPERATOR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target/release/webcluster-operator"));
        Ok(Self {
            sizes,
            concurrency: env_num("BENCH_CONCURRENCY", 8)?,
            idle,
            cpu_idle,
            reactions: env_num("BENCH_REACTIONS", 100)?,
            timeout: Duration::from_secs(env_num("BENCH_TIMEOUT_SECONDS", 2400)?),
            operator,
            skip_raw: std::env::var("BENCH_SKIP_RAW").is_ok_and(|v| v == "1"),
            peer: env_path("BENCH_PEER", &peer_dir.join(format!("wordpress-operator-{}", &PEER_COMMIT[..7]))),
            peer_crd: env_path(
                "BENCH_PEER_CRD",
                &peer_dir.join(format!("src-{PEER_COMMIT}/config/crd/bases/wordpress.presslabs.org_wordpresses.yaml")),
            ),
            skip_peer: std::env::var("BENCH_PEER").is_ok_and(|v| v == "none"),
            keep_cluster: std::env::var("BENCH_KEEP_CLUSTER").is_ok_and(|v| !v.is_empty()),
            report: root.join(env_path("BENCH_REPORT", Path::new("BENCHMARKS.md"))),
            chart: root.join(env_path("BENCH_CHART", Path::new("benchmarks/convergence.svg"))),
            root,
        })
    }
}
