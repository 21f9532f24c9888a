//! Liveness and readiness probes, and the metrics for Prometheus.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::{ApiError, AppState};
use crate::metrics::Snapshot;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// This process's metrics in Prometheus' text format; the read token is needed where the pages need it.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
        (status = 401, description = "The read token is needed")))]
pub(super) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = super::pages::require_reader(&state, &headers) {
        return refused;
    }
    let queue = match state.probes.queue(chrono::Utc::now().timestamp_millis()).await {
        Ok(queue) => queue,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let spool = state.probes.spool(chrono::Utc::now().timestamp_millis()).await.ok();
    let snapshot = Snapshot { queue, blame_lines: state.assigner.blame_line_counts(), spool };
    match state.metrics.render(&snapshot) {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(e) => ApiError::Internal(anyhow::anyhow!("rendering the metrics: {e}")).into_response(),
    }
}

/// The process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)))]
pub(super) async fn healthz() -> &'static str {
    "ok"
}

/// The database answers and takes a committed write within 2 s; `503` otherwise, with why, so a load balancer stops
/// sending traffic (a full disk, a write lock held elsewhere, a database that is down).
/// Ready when intake takes events (into the spool while the database is away); the body says how the database and
/// the spool stand either way.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready", body = Object), (status = 503, description = "Not ready, and why", body = Object)))]
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let backend = state.probes.backend();
    let now = chrono::Utc::now().timestamp_millis();
    let database = state.probes.database(now).await;
    let spool = match state.probes.spool(now).await {
        Ok((waiting, oldest_age_s)) => json!({ "waiting": waiting, "oldest_age_s": oldest_age_s }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let database_json = match &database {
        Ok(()) => json!({ "backend": backend, "status": "ok" }),
        Err(why) => json!({ "backend": backend, "status": "unavailable", "detail": why }),
    };
    // Ready means intake takes events: into the database, or into the spool while the database is away.
    match state.probes.intake_ready() {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": database_json, "spool": spool, "detail": database.err() })),
        ),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "database": database_json, "spool": spool, "detail": why })),
        ),
    }
}
