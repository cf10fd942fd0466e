//! `/healthz` (the process serves), `/readyz` (it reconciles, or waits as a
//! follower) and `/metrics` on one port.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::Metrics;

async fn metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.encode())
}

/// The process runs and serves.
async fn healthy() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// The controller reconciles (its caches are synced), or waits for the lease as
/// a follower; the body names which.
async fn ready(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    let status = if metrics.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, metrics.readiness())
}

/// Serves the endpoints until the process ends.
pub async fn serve(address: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthy))
        .route("/readyz", get(ready))
        .route("/metrics", get(self::metrics))
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(%address, "serving /healthz, /readyz and /metrics");
    axum::serve(listener, app).await
}
