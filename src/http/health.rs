//! Liveness and readiness probes, and the metrics for Prometheus.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::{ApiError, AppState};
use crate::metrics::{QueueDepth, Snapshot};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// This process's metrics in Prometheus' text format; the read token is needed where the pages need it.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = super::pages::require_reader(&state, &headers) {
        return refused;
    }
    let now = chrono::Utc::now().timestamp_millis();
    let queue = match state.store.queue_depths().await {
        Ok(rows) => rows
            .into_iter()
            .map(|(kind, jobs, oldest)| QueueDepth {
                kind,
                jobs,
                oldest_age_s: (now.saturating_sub(oldest)).max(0) as f64 / 1000.0,
            })
            .collect(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let snapshot = Snapshot { queue, blame_lines: state.assigner.blame_line_counts() };
    match state.metrics.render(&snapshot) {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(e) => ApiError::Internal(anyhow::anyhow!("rendering the metrics: {e}")).into_response(),
    }
}

/// The process is up and serving.
async fn healthz() -> &'static str {
    "ok"
}

/// The database answers and takes a committed write within 2 s; `503` otherwise, with why, so a load balancer stops
/// sending traffic (a full disk, a write lock held elsewhere, a database that is down).
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let backend = state.store.backend();
    let now = chrono::Utc::now().timestamp_millis();
    // A small write may still fit where an event did not: the last refused intake write counts too.
    if let Some(why) = state.ingest.write_trouble() {
        let detail = format!("the last event could not be stored: {why}");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "database": backend, "detail": detail })),
        );
    }
    let why = match tokio::time::timeout(std::time::Duration::from_secs(2), async {
        state.store.ping().await?;
        state.store.check_writable(now).await
    })
    .await
    {
        Ok(Ok(())) => return (StatusCode::OK, Json(json!({ "status": "ready", "database": backend }))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            match e {
                crate::store::StoreError::Unavailable(m) => format!("the database cannot take a write: {m}"),
                _ => "database unreachable".to_owned(),
            }
        }
        Err(_) => "the database did not take a write within 2 s (a lock held elsewhere?)".to_owned(),
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "database": backend, "detail": why })))
}
