//! Intake over HTTP: Sentry's envelope and legacy store endpoints (what the SDKs call), and shipwatch's native event
//! endpoint, which also takes a pasted stack trace.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, Method};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tower_http::cors::{Any, CorsLayer};

use super::{bearer, ApiError, ApiResult, AppState, JsonBody};
use crate::domain::{Environment, ReleaseName};
use crate::events::{truncate, Event, Exception, Frame};
use crate::ingest::decode::MAX_RAW_BODY;
use crate::ingest::{self, key_from_auth_header, Accepted, IngestError, SentryBody};
use crate::projects;
use crate::stacktrace;

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
            IngestError::Store(e) => e.into(),
        }
    }
}

async fn envelope(
    State(state): State<AppState>,
    Path(project_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    sentry(state, SentryBody::Envelope, project_id, query, headers, body).await
}

async fn store(
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
    let raw = axum::body::to_bytes(body, MAX_RAW_BODY).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) {
            too_large()
        } else {
            ApiError::BadRequest(format!("could not read the request body: {e}"))
        }
    })?;
    let encoding = header_str(&headers, &header::CONTENT_ENCODING).map(str::to_owned);
    let (accepted, dsn_key) = state.ingest.parse_sentry(kind, encoding, raw, now).await?;
    let project = match known {
        Some(p) => p,
        None => state.ingest.authenticate(&project_id, dsn_key.as_deref()).await?,
    };
    let id = state.ingest.accept(&project, accepted, now).await?;
    Ok(Json(match id {
        Some(id) => json!({ "id": id }),
        None => json!({}),
    }))
}

/// shipwatch's own event format: for applications without a Sentry SDK, scripts, and pasted traces.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeEvent {
    event_id: Option<String>,
    release: Option<String>,
    environment: Option<String>,
    message: Option<String>,
    timestamp: Option<Value>,
    platform: Option<String>,
    level: Option<String>,
    exception: Option<NativeException>,
    /// Caller first, the crashing frame last (as Sentry SDKs send them).
    frames: Option<Vec<NativeFrame>>,
    /// A plain-text stack trace in any supported language.
    stacktrace: Option<String>,
    fingerprint: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeException {
    #[serde(rename = "type")]
    ty: String,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeFrame {
    path: Option<String>,
    line: Option<u32>,
    column: Option<u32>,
    function: Option<String>,
    module: Option<String>,
    in_app: Option<bool>,
    source: Option<String>,
}

fn unprocessable(field: &str, reason: impl Into<String>) -> ApiError {
    ApiError::Unprocessable { field: field.into(), reason: reason.into() }
}

async fn native(
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NativeEvent>,
) -> ApiResult<Json<Value>> {
    let now = now_ms();
    let key = bearer(&headers)
        .map(str::to_owned)
        .or_else(|| header_str(&headers, &HeaderName::from_static("x-sentry-auth")).and_then(key_from_auth_header))
        .or_else(|| query.get("sentry_key").cloned());
    let found = projects::find(state.store.as_ref(), &project)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no project `{project}`")))?;
    let project = state.ingest.authenticate(&found.id.to_string(), key.as_deref()).await?;
    let event = native_event(body, now)?;
    let id = state.ingest.accept(&project, Accepted { events: vec![event], skipped: Vec::new() }, now).await?;
    Ok(Json(json!({ "id": id })))
}

fn native_event(body: NativeEvent, now: i64) -> ApiResult<Event> {
    let event_id = match body.event_id.as_deref() {
        Some(id) => ingest::sentry::normalise_event_id(id)
            .ok_or_else(|| unprocessable("event_id", "must be a UUID (32 hexadecimal digits, dashes allowed)"))?,
        None => ingest::sentry::new_event_id()?,
    };
    let claimed = match &body.timestamp {
        None => None,
        Some(t) => Some(
            ingest::sentry::timestamp_ms(Some(t))
                .ok_or_else(|| unprocessable("timestamp", "must be unix seconds or an RFC 3339 time"))?,
        ),
    };
    let (timestamp, claimed_timestamp) = crate::events::clamp_timestamp(claimed, now);
    // The same names the deploy API takes, so events and deploys always match up.
    let release = match body.release.as_deref() {
        Some(r) => {
            Some(ReleaseName::parse(r).map_err(|e| unprocessable("release", e.to_string()))?.as_str().to_owned())
        }
        None => None,
    };
    let environment = match body.environment.as_deref() {
        Some(e) => {
            Some(Environment::parse(e).map_err(|e| unprocessable("environment", e.to_string()))?.as_str().to_owned())
        }
        None => None,
    };
    let mut platform = body.platform.clone();
    let mut exceptions: Vec<Exception> = Vec::new();
    if let Some(text) = body.stacktrace.as_deref() {
        let parsed = stacktrace::parse(text).map_err(|e| unprocessable("stacktrace", e.to_string()))?;
        platform.get_or_insert_with(|| parsed.language.as_str().to_owned());
        exceptions = parsed.to_exceptions();
    }
    if let Some(frames) = body.frames {
        let frames = frames
            .into_iter()
            .map(|f| Frame {
                filename: f.path.clone(),
                abs_path: f.path,
                module: f.module,
                function: f.function,
                lineno: f.line,
                colno: f.column,
                in_app: f.in_app,
                context_line: f.source,
            })
            .collect();
        match exceptions.last_mut() {
            Some(e) => e.frames = frames,
            None => exceptions.push(Exception { ty: "Error".into(), frames, ..Default::default() }),
        }
    }
    if let Some(ex) = body.exception {
        if ex.ty.trim().is_empty() {
            return Err(unprocessable("exception.type", "must not be empty"));
        }
        match exceptions.last_mut() {
            Some(e) => {
                e.ty = ex.ty;
                e.value = ex.value.or(e.value.take());
            }
            None => exceptions.push(Exception { ty: ex.ty, value: ex.value, ..Default::default() }),
        }
    }
    if exceptions.is_empty() && body.message.as_deref().is_none_or(str::is_empty) {
        return Err(unprocessable("body", "an event needs a message, an exception, frames or a stacktrace"));
    }
    Ok(Event {
        event_id,
        timestamp,
        platform: platform.map(|p| truncate(&p, 64)),
        level: body.level.map(|l| truncate(&l, 32)),
        release,
        environment,
        message: body.message.map(|m| truncate(&m, 8192)),
        exceptions,
        stacktrace: Vec::new(),
        fingerprint: body.fingerprint.filter(|f| !f.is_empty()),
        sdk: Some("shipwatch.native".into()),
        claimed_timestamp,
    })
}
