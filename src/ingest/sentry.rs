//! Sentry's event payload (as every Sentry SDK sends it) turned into shipwatch's [`Event`]: lenient about what SDKs
//! vary on, strict about what grouping needs, and bounded in size.

use serde_json::Value;

use crate::events::{truncate, Event, Exception, Frame};

const MAX_EXCEPTIONS: usize = 25;
const MAX_FRAMES: usize = 250;
const MAX_TEXT: usize = 8 * 1024;
const MAX_NAME: usize = 256;

/// A 32-hex-digit event id from a UUID in any of its spellings.
pub fn normalise_event_id(s: &str) -> Option<String> {
    let hex: String = s.chars().filter(|c| *c != '-').collect::<String>().to_ascii_lowercase();
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// A fresh random event id.
///
/// # Errors
/// When the operating system's random source fails.
pub fn new_event_id() -> anyhow::Result<String> {
    crate::store::random_hex(16)
}

fn text(v: Option<&Value>, max: usize) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(truncate(s, max)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn uint(v: Option<&Value>) -> Option<u32> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Unix milliseconds from a number of seconds or an RFC 3339 string (Sentry allows both).
pub fn timestamp_ms(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_f64().filter(|f| f.is_finite() && *f > 0.0).map(|f| (f * 1000.0) as i64),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc().timestamp_millis())
            })
            .ok(),
        _ => None,
    }
}

/// `{"values": [...]}` or a bare list.
fn values(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(Value::Object(o)) => {
            o.get("values").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

fn frames(stacktrace: Option<&Value>) -> Vec<Frame> {
    let Some(frames) = stacktrace.and_then(|s| s.get("frames")).and_then(Value::as_array) else {
        return Vec::new();
    };
    // Keep the end nearest the crash when a recursion floods the trace.
    let skip = frames.len().saturating_sub(MAX_FRAMES);
    frames[skip..]
        .iter()
        .filter(|f| f.is_object())
        .map(|f| Frame {
            filename: text(f.get("filename"), MAX_TEXT),
            abs_path: text(f.get("abs_path"), MAX_TEXT),
            module: text(f.get("module"), MAX_NAME),
            function: text(f.get("function"), MAX_NAME),
            lineno: uint(f.get("lineno")),
            colno: uint(f.get("colno")),
            in_app: f.get("in_app").and_then(Value::as_bool),
            context_line: text(f.get("context_line"), 1024),
        })
        .collect()
}

fn message(v: &Value) -> Option<String> {
    let formatted = |m: &Value| match m {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("formatted").or_else(|| o.get("message")).and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    v.get("logentry")
        .and_then(formatted)
        .or_else(|| v.get("message").and_then(formatted))
        .filter(|m| !m.is_empty())
        .map(|m| truncate(&m, MAX_TEXT))
}

/// Converts one Sentry event payload. `fallback_id` is the envelope's `event_id`, used when the item lacks one.
///
/// # Errors
/// A sentence saying what is wrong: not an object, or an event id that is not a UUID.
pub fn to_event(v: &Value, fallback_id: Option<&str>, received_ms: i64) -> Result<Event, String> {
    let Value::Object(obj) = v else {
        return Err("the event is not a JSON object".into());
    };
    let event_id = match obj.get("event_id").and_then(Value::as_str).or(fallback_id) {
        Some(id) => normalise_event_id(id).ok_or_else(|| format!("event_id `{}` is not a UUID", truncate(id, 40)))?,
        None => new_event_id().map_err(|e| e.to_string())?,
    };
    let mut exceptions: Vec<Exception> = values(obj.get("exception"))
        .into_iter()
        .filter(|e| e.is_object())
        .map(|e| Exception {
            ty: text(e.get("type"), MAX_NAME).unwrap_or_else(|| "Error".into()),
            value: text(e.get("value"), MAX_TEXT),
            module: text(e.get("module"), MAX_NAME),
            handled: e.get("mechanism").and_then(|m| m.get("handled")).and_then(Value::as_bool),
            frames: frames(e.get("stacktrace")),
        })
        .collect();
    if exceptions.len() > MAX_EXCEPTIONS {
        exceptions.drain(..exceptions.len() - MAX_EXCEPTIONS);
    }
    // A stack without an exception: the event's own, or the crashed (else current) thread's.
    let mut stacktrace = frames(obj.get("stacktrace"));
    if stacktrace.is_empty() && exceptions.is_empty() {
        let threads = values(obj.get("threads"));
        let pick = threads
            .iter()
            .find(|t| t.get("crashed").and_then(Value::as_bool) == Some(true))
            .or_else(|| threads.iter().find(|t| t.get("current").and_then(Value::as_bool) == Some(true)))
            .or_else(|| threads.first());
        stacktrace = frames(pick.and_then(|t| t.get("stacktrace")));
    }
    let fingerprint = obj
        .get("fingerprint")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| text(Some(x), MAX_NAME)).take(32).collect::<Vec<_>>());
    let sdk = obj.get("sdk").and_then(|s| {
        let name = s.get("name")?.as_str()?;
        Some(match s.get("version").and_then(Value::as_str) {
            Some(v) => format!("{name}/{v}"),
            None => name.to_owned(),
        })
    });
    let (timestamp, claimed_timestamp) =
        crate::events::clamp_timestamp(timestamp_ms(obj.get("timestamp")), received_ms);
    Ok(Event {
        event_id,
        timestamp,
        claimed_timestamp,
        platform: text(obj.get("platform"), 64),
        level: text(obj.get("level"), 32),
        release: text(obj.get("release"), 200),
        environment: text(obj.get("environment"), 64),
        message: message(v),
        exceptions,
        stacktrace,
        fingerprint: fingerprint.filter(|f| !f.is_empty()),
        sdk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_ids_in_any_uuid_spelling() {
        assert_eq!(
            normalise_event_id("3BD020E3-4D0E-4C78-837F-818C00DC6692").as_deref(),
            Some("3bd020e34d0e4c78837f818c00dc6692")
        );
        assert_eq!(normalise_event_id("xyz"), None);
        assert_eq!(normalise_event_id(&"a".repeat(33)), None);
    }

    #[test]
    fn exceptions_frames_and_fields() {
        let v = json!({
            "event_id": "3bd020e34d0e4c78837f818c00dc6692",
            "timestamp": "2026-11-22T11:00:19.113156Z",
            "platform": "python", "level": "error", "release": "abc123", "environment": "production",
            "exception": {"values": [
                {"type": "KeyError", "value": "x"},
                {"type": "ValueError", "value": "bad", "mechanism": {"handled": false},
                 "stacktrace": {"frames": [
                     {"filename": "app.py", "abs_path": "/srv/app.py", "function": "main", "lineno": 3, "in_app": true},
                     {"filename": "lib.py", "function": "f", "lineno": "7", "context_line": "x = y"}
                 ]}}
            ]},
            "fingerprint": ["{{ default }}", "tenant-7"],
            "sdk": {"name": "sentry.python", "version": "2.75.0"}
        });
        // Received two seconds after it happened.
        let e = to_event(&v, None, 1_795_345_221_000).expect("converts");
        assert_eq!((e.timestamp, e.claimed_timestamp), (1_795_345_219_113, None));
        assert_eq!(e.raised().map(|x| x.ty.as_str()), Some("ValueError"));
        assert_eq!(e.raised().and_then(|x| x.handled), Some(false));
        assert_eq!(e.frames().len(), 2);
        assert_eq!(e.frames()[1].lineno, Some(7));
        assert_eq!(e.frames()[1].in_app, None);
        assert_eq!(e.fingerprint, Some(vec!["{{ default }}".into(), "tenant-7".into()]));
        assert_eq!(e.sdk.as_deref(), Some("sentry.python/2.75.0"));
    }

    #[test]
    fn messages_threads_and_fallbacks() {
        let v = json!({"logentry": {"message": "hello %s", "formatted": "hello world"}, "timestamp": 1700000000.5,
                       "threads": {"values": [{"current": true, "stacktrace": {"frames": [{"function": "t"}]}}]}});
        let e = to_event(&v, Some("3bd020e3-4d0e-4c78-837f-818c00dc6692"), 1_700_000_001_000).expect("converts");
        assert_eq!(e.event_id, "3bd020e34d0e4c78837f818c00dc6692");
        assert_eq!(e.message.as_deref(), Some("hello world"));
        assert_eq!(e.timestamp, 1_700_000_000_500);
        // The same event arriving a year later: dated at its arrival, its claim kept.
        let late = to_event(&v, None, 1_731_536_000_000).expect("converts");
        assert_eq!((late.timestamp, late.claimed_timestamp), (1_731_536_000_000, Some(1_700_000_000_500)));
        assert_eq!(e.frames()[0].function.as_deref(), Some("t"));
        assert!(to_event(&json!([1]), None, 0).is_err());
        assert!(to_event(&json!({"event_id": "nope"}), None, 0).expect_err("bad id").contains("not a UUID"));
        let generated = to_event(&json!({"message": "m"}), None, 5).expect("converts");
        assert_eq!((generated.event_id.len(), generated.timestamp), (32, 5));
    }
}
