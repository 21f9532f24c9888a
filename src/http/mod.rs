//! The HTTP surface: one router per resource, the shared error type, the JSON extractor and token checks.

mod deploys;
mod groups;
mod health;
mod ingest;
pub mod openapi;
mod pages;
mod projects;
pub mod server;
mod webhooks;

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, MatchedPath, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::sync::Arc;
use subtle::ConstantTimeEq as _;
use tokio::sync::Notify;
use tower_http::trace::TraceLayer;
use tracing::{debug, error};

pub(crate) use self::openapi::ErrorBody;
use crate::assign::Assigner;
use crate::config::Secret;
use crate::groups::Groups;
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::probes::Probes;
use crate::projects::Projects;
use crate::releases::{DeployError, Releases};
use crate::store::{Project, StoreError};
use crate::webhooks::Webhooks;

/// What the HTTP layer needs to know about its deployment.
pub struct HttpSettings {
    /// The server's address as clients see it: used in DSNs and in the URLs responses carry.
    pub public_url: String,
    pub admin_token: Option<Secret>,
    pub allow_local_repos: bool,
    pub events_per_minute: u32,
    /// The secret GitHub signs webhook deliveries with; webhooks are refused without it.
    pub webhook_secret: Option<Secret>,
    /// The token the web pages ask for (as Bearer, or as the Basic password).
    pub read_token: Option<Secret>,
    /// Pages without credentials: only when the server listens on loopback and no read token is set.
    pub pages_open: bool,
}

/// The services handlers call; handlers never reach the store themselves.
#[derive(Clone)]
pub struct AppState {
    pub projects: Arc<Projects>,
    pub releases: Arc<Releases>,
    pub groups: Arc<Groups>,
    pub webhooks: Arc<Webhooks>,
    pub probes: Arc<Probes>,
    pub ingest: Arc<Ingest>,
    pub settings: Arc<HttpSettings>,
    /// Wakes this process's worker when work was queued, so a deploy is picked up at once.
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    /// For the blame cache's counts in `/metrics`.
    pub assigner: Arc<Assigner>,
}

/// The whole application's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(projects::router())
        .merge(deploys::router())
        .merge(groups::router())
        .merge(ingest::router())
        .merge(webhooks::router())
        .merge(pages::router())
        .merge(openapi::router())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_request))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The matched route, never the raw URI: query strings may carry keys.
            let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
            tracing::info_span!("request", method = %req.method(), route)
        }))
        .with_state(state)
}

/// Counts each answered request for `/metrics` (by the matched route, never the raw path), and intake refusals by
/// reason.
async fn count_request(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let method: &'static str = match req.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    state.metrics.request(method, &route, status, started.elapsed().as_secs_f64());
    let intake = route.ends_with("/envelope/")
        || route.ends_with("/envelope")
        || route.ends_with("/store/")
        || route.ends_with("/store")
        || route.ends_with("/events");
    if intake && method == "POST" && status >= 400 {
        state.metrics.intake_refused(match status {
            401 | 403 => "unauthorized",
            404 => "unknown_project",
            413 => "too_large",
            429 => "rate_limited",
            400 | 415 | 422 => "invalid",
            503 => "unavailable",
            _ => "error",
        });
    }
    response
}

/// Every error the API answers with, named by outcome; rendered as `{"detail": …}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{field}: {reason}")]
    Unprocessable { field: String, reason: String },
    #[error("{detail}")]
    RateLimited { retry_after: u64, detail: String },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("not found".into()),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Unavailable(m) => {
                tracing::warn!(detail = %m, "database unavailable");
                ApiError::Unavailable("the database cannot take this now; retry later".into())
            }
            StoreError::Other(e) => ApiError::Internal(e),
        }
    }
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> Self {
        match e {
            DeployError::Invalid { field, reason } => ApiError::Unprocessable { field: field.into(), reason },
            DeployError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = match &self {
            ApiError::Internal(e) => {
                error!(error = %format!("{e:#}"), "internal error");
                json!({ "detail": "internal server error; the server log has the details" })
            }
            ApiError::Unprocessable { field, reason } => {
                debug!(%field, %reason, "refused");
                json!({ "detail": format!("{field}: {reason}"), "field": field })
            }
            other => {
                debug!(status = status.as_u16(), detail = %other, "refused");
                json!({ "detail": other.to_string() })
            }
        };
        let retry_after = match &self {
            ApiError::RateLimited { retry_after, .. } => Some(*retry_after),
            ApiError::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER),
            _ => None,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if let (Some(secs), ApiError::RateLimited { .. }) = (retry_after, &self) {
            let headers = response.headers_mut();
            // Sentry SDKs back off per category from this header: `<seconds>:<categories>:<scope>`.
            if let Ok(v) = header::HeaderValue::from_str(&format!("{secs}:error:project")) {
                headers.insert(header::HeaderName::from_static("x-sentry-rate-limits"), v);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Seconds a client is asked to wait after a `503` for a database that cannot take a write.
const UNAVAILABLE_RETRY_AFTER: u64 = 10;

/// A JSON body that answers malformed input with the API's own error shape: `400` for text that is not JSON,
/// `422` naming what is missing or of the wrong type. The content type is not insisted on (curl users forget it).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge("request body is larger than 1 MiB".into())
            }
            other => ApiError::BadRequest(format!("could not read the request body: {other}")),
        })?;
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

/// Parses a JSON body: `400` for text that is not JSON, `422` naming what is missing or of the wrong type.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    // Two steps, so that truncated or broken text is always `400` and only a well-formed body of the wrong shape
    // is `422`.
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            ApiError::BadRequest("the request body is empty; expected a JSON object".into())
        } else {
            ApiError::BadRequest(format!("the request body is not valid JSON: {e}"))
        }
    })?;
    serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        ApiError::Unprocessable { field, reason: strip_position(&e.into_inner().to_string()) }
    })
}

/// serde's "at line 1 column 40" means nothing to someone who sent a one-line body.
fn strip_position(s: &str) -> String {
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

/// The bearer token of a request, if it carries one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

fn same_secret(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// A page size from a query: 50 by default, 1 to 200.
fn page_limit(limit: Option<i64>) -> ApiResult<i64> {
    let limit = limit.unwrap_or(50);
    if (1..=200).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::Unprocessable { field: "limit".into(), reason: "must be between 1 and 200".into() })
    }
}

/// The request's bearer token, or `401` saying how to send one.
fn require_bearer(headers: &HeaderMap) -> ApiResult<&str> {
    bearer(headers)
        .ok_or_else(|| ApiError::Unauthorized("missing credentials: send `Authorization: Bearer <token>`".into()))
}

impl AppState {
    fn is_admin(&self, token: &str) -> bool {
        self.settings.admin_token.as_ref().is_some_and(|a| same_secret(token, a.expose()))
    }

    /// Admin endpoints: the configured admin token, and nothing else.
    fn require_admin(&self, headers: &HeaderMap) -> ApiResult<()> {
        if self.settings.admin_token.is_none() {
            return Err(ApiError::Forbidden(
                "the admin API is disabled: start the server with SHIPWATCH_ADMIN_TOKEN set".into(),
            ));
        }
        let token = require_bearer(headers)?;
        if self.is_admin(token) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized("invalid admin token".into()))
        }
    }

    /// Whether `token` may change `project`'s data: its deploy token, or the admin token.
    fn may_write(&self, token: &str, project: &Project) -> bool {
        same_secret(token, &project.deploy_token) || self.is_admin(token)
    }

    /// A project's own endpoints: its deploy token, or the admin token.
    fn require_project_token(&self, headers: &HeaderMap, project: &Project) -> ApiResult<()> {
        let token = require_bearer(headers)?;
        if self.may_write(token, project) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized(format!("invalid token for project `{}`", project.name)))
        }
    }

    /// The project named in a path (name or id), after checking the caller may read it: `401` without a token,
    /// `404` for an unknown project, `401` for a token that is not its own or the admin's.
    async fn authorised_project(&self, headers: &HeaderMap, project: &str) -> ApiResult<Project> {
        require_bearer(headers)?;
        let p =
            self.projects.find(project).await?.ok_or_else(|| ApiError::NotFound(format!("no project `{project}`")))?;
        self.require_project_token(headers, &p)?;
        Ok(p)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.public_url.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().expect("header"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "bearer  abc ".parse().expect("header"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().expect("header"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().expect("header"));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("abd", "abc"));
    }
}
