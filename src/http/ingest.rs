//! Intake over HTTP: Sentry's envelope and legacy store endpoints (what the SDKs call), and shipwatch's native event
//! endpoint, which also takes a pasted stack trace.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, Method};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tower_http::cors::{Any, CorsLayer};

use super::{bearer, ApiError, ApiResult, AppState, ErrorBody, JsonBody};
use crate::ingest::decode::MAX_RAW_BODY;
use crate::ingest::native::NativeEvent;
use crate::ingest::{self, key_from_auth_header, Accepted, Ingest, IngestError, SentryBody};

pub(super) fn router() -> Router<AppState> {
    // Browser SDKs post from any origin.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-sentry-rate-limits")])
        .max_age(Duration::from_secs(3600));
    Router::new()
        .route("/api/{project_id}/envelope/", post(envelope))
        .route("/api/{project_id}/envelope", post(envelope))
        .route("/api/{project_id}/store/", post(store))
        .route("/api/{project_id}/store", post(store))
        .route("/api/v1/projects/{project}/events", post(native))
        .layer(cors)
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Malformed(m) => ApiError::BadRequest(m),
            IngestError::Forbidden(m) => ApiError::Forbidden(m),
            IngestError::TooLarge(m) => ApiError::PayloadTooLarge(m),
            e @ IngestError::OverQuota { retry_after, .. } => {
                ApiError::RateLimited { retry_after, detail: e.to_string() }
            }
            e @ IngestError::SpoolFull(_) => ApiError::RateLimited { retry_after: 5, detail: e.to_string() },
            IngestError::Busy(detail) => ApiError::RateLimited { retry_after: 1, detail },
            IngestError::Store(e) => e.into(),
        }
    }
}

#[utoipa::path(post, path = "/api/{project_id}/envelope/", tag = "intake",
    params(("project_id" = String, Path), ("sentry_key" = Option<String>, Query, description = "The DSN's key, when not in `X-Sentry-Auth` or the envelope header")),
    request_body(content = String, content_type = "application/x-sentry-envelope", description = "A Sentry envelope, possibly gzip, deflate, br or zstd"),
    responses((status = 200, description = "Stored (`{\"id\": …}`)", body = Object), (status = 400, body = ErrorBody), (status = 403, description = "Wrong key", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 429, description = "Over the project's quota; `Retry-After`", body = ErrorBody),
        (status = 503, description = "The database cannot take it now; `Retry-After`", body = ErrorBody)))]
pub(super) async fn envelope(
    State(state): State<AppState>,
    Path(project_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    sentry(state, SentryBody::Envelope, project_id, query, headers, body).await
}

#[utoipa::path(post, path = "/api/{project_id}/store/", tag = "intake",
    params(("project_id" = String, Path), ("sentry_key" = Option<String>, Query)),
    request_body(content = Object, description = "A Sentry event (legacy store endpoint)"),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn store(
    State(state): State<AppState>,
    Path(project_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    sentry(state, SentryBody::Store, project_id, query, headers, body).await
}

fn header_str<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn sentry(
    state: AppState,
    kind: SentryBody,
    project_id: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let now = now_ms();
    let key = header_str(&headers, &HeaderName::from_static("x-sentry-auth"))
        .or_else(|| header_str(&headers, &header::AUTHORIZATION))
        .and_then(key_from_auth_header)
        .or_else(|| query.get("sentry_key").cloned());
    // A key in the request is checked before the body is read; one only in the envelope header after.
    let known = match &key {
        Some(k) => Some(state.ingest.authenticate(&project_id, Some(k)).await?),
        None => None,
    };
    let too_large = || ApiError::PayloadTooLarge(format!("the body is larger than {} MiB", MAX_RAW_BODY / 1024 / 1024));
    if header_str(&headers, &header::CONTENT_LENGTH)
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > MAX_RAW_BODY)
    {
        return Err(too_large());
    }
    // Room for the body before it is read (all of the cap when its length is not given); decoding grows it.
    let declared = header_str(&headers, &header::CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok());
    let charge = state.ingest.reserve(declared.unwrap_or(MAX_RAW_BODY as u64))?;
    let raw = axum::body::to_bytes(body, MAX_RAW_BODY).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) {
            too_large()
        } else {
            ApiError::BadRequest(format!("could not read the request body: {e}"))
        }
    })?;
    let encoding = header_str(&headers, &header::CONTENT_ENCODING).map(str::to_owned);
    // Without a key in the request, only the envelope header is decoded until its key has been checked: a body
    // that expands to the decoding cap costs a stranger nothing but 64 KiB.
    let project = match known {
        Some(p) => p,
        None => {
            let header_key = match kind {
                SentryBody::Envelope => Ingest::envelope_header_key(encoding.as_deref(), &raw)?,
                SentryBody::Store => None,
            };
            state.ingest.authenticate(&project_id, header_key.as_deref()).await?
        }
    };
    let accepted = state.ingest.parse_sentry(kind, encoding, raw, now, Some(charge)).await?;
    let id = state.ingest.accept(&project, accepted, now).await?;
    Ok(Json(match id {
        Some(id) => json!({ "id": id }),
        None => json!({}),
    }))
}

fn unprocessable(field: &str, reason: impl Into<String>) -> ApiError {
    ApiError::Unprocessable { field: field.into(), reason: reason.into() }
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/events", tag = "intake",
    params(("project" = String, Path, description = "Name or id")), request_body = NativeEvent,
    security(("ingest_key" = [])),
    responses((status = 200, body = Object), (status = 401, description = "No token or a wrong one", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn native(
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ingest::native::NativeEvent>,
) -> ApiResult<Json<Value>> {
    let now = now_ms();
    let key = bearer(&headers)
        .map(str::to_owned)
        .or_else(|| header_str(&headers, &HeaderName::from_static("x-sentry-auth")).and_then(key_from_auth_header))
        .or_else(|| query.get("sentry_key").cloned());
    let found =
        state.projects.find(&project).await?.ok_or_else(|| ApiError::NotFound(format!("no project `{project}`")))?;
    let project = state.ingest.authenticate(&found.id.to_string(), key.as_deref()).await?;
    let event = ingest::native::to_event(body, now).map_err(|e| match e {
        ingest::native::NativeError::Invalid { field, reason } => unprocessable(field, reason),
        ingest::native::NativeError::Other(e) => ApiError::Internal(e),
    })?;
    let id = state.ingest.accept(&project, Accepted { events: vec![event], ..Default::default() }, now).await?;
    Ok(Json(json!({ "id": id })))
}
