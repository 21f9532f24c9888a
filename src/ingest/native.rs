//! shipwatch's own event format (for applications without a Sentry SDK, scripts, and pasted stack traces) and its
//! conversion into an [`Event`], with the same names and limits as the rest of intake.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::{Environment, ReleaseName};
use crate::events::{truncate, Event, Exception, Frame};
use crate::stacktrace;

/// Why a native event was not turned into an [`Event`].
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The field that is wrong, and why.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn unprocessable(field: &'static str, reason: impl Into<String>) -> NativeError {
    NativeError::Invalid { field, reason: reason.into() }
}

/// shipwatch's own event format: for applications without a Sentry SDK, scripts, and pasted traces.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NativeEvent {
    pub event_id: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub message: Option<String>,
    /// Unix seconds or an RFC 3339 time.
    #[schema(value_type = Option<Object>)]
    pub timestamp: Option<Value>,
    pub platform: Option<String>,
    pub level: Option<String>,
    pub exception: Option<NativeException>,
    /// Caller first, the crashing frame last (as Sentry SDKs send them).
    pub frames: Option<Vec<NativeFrame>>,
    /// A plain-text stack trace in any supported language.
    pub stacktrace: Option<String>,
    pub fingerprint: Option<Vec<String>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NativeException {
    #[serde(rename = "type")]
    pub ty: String,
    pub value: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NativeFrame {
    pub path: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub function: Option<String>,
    pub module: Option<String>,
    pub in_app: Option<bool>,
    pub source: Option<String>,
}

/// The event a native body describes, received at `now`.
///
/// # Errors
/// [`NativeError::Invalid`] naming the first field that is wrong; `Other` when no event id could be made.
pub fn to_event(body: NativeEvent, now: i64) -> Result<Event, NativeError> {
    let event_id = match body.event_id.as_deref() {
        Some(id) => super::sentry::normalise_event_id(id)
            .ok_or_else(|| unprocessable("event_id", "must be a UUID (32 hexadecimal digits, dashes allowed)"))?,
        None => super::sentry::new_event_id()?,
    };
    let claimed = match &body.timestamp {
        None => None,
        Some(t) => Some(
            super::sentry::timestamp_ms(Some(t))
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
