//! `POST /webhooks/github`: verify the signature before anything else, store the delivery once, answer at once.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{ApiError, ApiResult, AppState, ErrorBody};
use crate::webhooks::verify_signature;

/// GitHub caps payloads at 25 MB.
const MAX_PAYLOAD: usize = 25 * 1024 * 1024;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/webhooks/github", post(github))
}

#[utoipa::path(post, path = "/webhooks/github", tag = "github",
    params(("X-GitHub-Event" = String, Header), ("X-GitHub-Delivery" = String, Header), ("X-Hub-Signature-256" = String, Header)),
    request_body(content = Object, description = "GitHub's webhook payload (push, deployment_status, issues, ping)"),
    responses((status = 202, description = "Stored; handled in the background", body = Object), (status = 400, body = ErrorBody),
        (status = 403, description = "No secret configured, or a bad signature", body = ErrorBody)))]
pub(super) async fn github(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Some(secret) = state.settings.webhook_secret.as_ref() else {
        return Err(ApiError::Forbidden("webhooks are disabled: set SHIPWATCH_GITHUB_WEBHOOK_SECRET".into()));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let body = axum::body::to_bytes(body, MAX_PAYLOAD)
        .await
        .map_err(|_| ApiError::PayloadTooLarge("webhook payloads are at most 25 MB".into()))?;
    // Nothing is parsed or stored before the signature holds.
    if !verify_signature(secret.expose().as_bytes(), &body, header("x-hub-signature-256")) {
        return Err(ApiError::Unauthorized("missing or invalid X-Hub-Signature-256".into()));
    }
    let (Some(event), Some(delivery)) = (header("x-github-event"), header("x-github-delivery")) else {
        return Err(ApiError::BadRequest("X-GitHub-Event and X-GitHub-Delivery are required".into()));
    };
    if delivery.is_empty() || delivery.len() > 100 {
        return Err(ApiError::BadRequest("X-GitHub-Delivery is not a delivery id".into()));
    }
    let payload =
        std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("the payload is not UTF-8 JSON".into()))?;
    serde_json::from_str::<Value>(payload)
        .map_err(|e| ApiError::BadRequest(format!("the payload is not JSON: {e}")))?;
    let now = chrono::Utc::now().timestamp_millis();
    let new = state.webhooks.receive(delivery, event, payload, now).await?;
    if new {
        state.wake.notify_one();
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "delivery": delivery, "duplicate": !new }))))
}
