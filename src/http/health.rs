//! Liveness and readiness probes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
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
