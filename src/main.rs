//! The `webcluster-operator` command: print the CRD, render offline, or run the controller.

#![forbid(unsafe_code)]

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use webcluster::controller::runtime::leader::{LeaseSettings, run_as_leader};
use webcluster::controller::{self, Metrics, Settings};
use webcluster::render;

#[derive(Parser)]
#[command(
    name = "webcluster-operator",
    version,
    about = "Runs PHP web applications on many nodes from one WebCluster manifest"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the WebCluster CustomResourceDefinition as YAML.
    Crd,
    /// Print every child object of the WebClusters in a file, offline.
    Render {
        /// File with WebCluster manifests, or `-` for standard input.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
    /// Run the controller against the cluster of the current kubeconfig (or the in-cluster account).
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch only this namespace (all namespaces when empty).
    #[arg(long, env = "WATCH_NAMESPACE", default_value = "")]
    namespace: String,
    /// WebClusters reconciled at the same time.
    #[arg(long, env = "CONCURRENCY", default_value_t = 8)]
    concurrency: u16,
    /// Seconds between two reconciles of an unchanged WebCluster.
    #[arg(long, env = "RESYNC_SECONDS", default_value_t = 600)]
    resync_seconds: u64,
    /// Milliseconds a WebCluster's progress triggers (child status, pods turning
    /// ready) must be quiet before it is reconciled; a deleted child or an edited
    /// WebCluster reconciles at once.
    #[arg(long, env = "COALESCE_WINDOW_MS", default_value_t = 250)]
    coalesce_window_ms: u64,
    /// Least seconds between two status writes of one WebCluster when only its
    /// figures changed (a new generation or Ready flipping is written at once).
    #[arg(long, env = "STATUS_INTERVAL_SECONDS", default_value_t = 5)]
    status_interval_seconds: u64,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "METRICS_ADDRESS", default_value = "0.0.0.0:8080")]
    metrics_address: SocketAddr,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log filter, for example `info` or `webcluster=debug,kube=info`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Reconcile only while holding the Lease (run several replicas, one writes).
    #[arg(long, env = "LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "webcluster-operator")]
    lease_name: String,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Seconds a Lease stays valid without renewal; a follower takes over after it.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => render::crd_yaml().map(|yaml| print!("{yaml}")).map_err(|e| e.to_string()),
        Command::Render { file } => read_input(&file)
            .and_then(|yaml| render::manifests(&yaml).map_err(|e| e.to_string()))
            .map(|output| print!("{output}")),
        Command::Run(args) => run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn read_input(file: &PathBuf) -> Result<String, String> {
    if file.as_os_str() == "-" {
        let mut input = String::new();
        std::io::stdin().read_to_string(&mut input).map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok(input);
    }
    std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}

fn init_logging(args: &RunArgs) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level).map_err(|e| format!("--log-level: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

fn run(args: RunArgs) -> Result<(), String> {
    init_logging(&args)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let metrics = Metrics::shared();
        let config = kube::Config::infer().await.map_err(|e| format!("no Kubernetes configuration: {e}"))?;
        let client =
            controller::counting_client(config, metrics.clone()).map_err(|e| format!("cannot create a client: {e}"))?;
        let settings = Settings {
            namespace: Some(args.namespace.clone()).filter(|ns| !ns.is_empty()),
            concurrency: args.concurrency,
            resync: Duration::from_secs(args.resync_seconds),
            coalesce_window: Duration::from_millis(args.coalesce_window_ms),
            status_interval: Duration::from_secs(args.status_interval_seconds),
        };
        let server = tokio::spawn(controller::runtime::server::serve(args.metrics_address, metrics.clone()));
        let result = if args.leader_election {
            let lease = LeaseSettings {
                name: args.lease_name.clone(),
                namespace: args.lease_namespace.clone(),
                identity: identity(),
                duration_seconds: args.lease_duration_seconds,
            };
            run_as_leader(client, settings, lease, metrics, shutdown_signal()).await.map_err(|e| e.to_string())
        } else {
            controller::run(client, settings, metrics, shutdown_signal()).await;
            Ok(())
        };
        server.abort();
        result
    })
}

/// The pod name, or host name and process id outside a pod.
fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                futures::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}
