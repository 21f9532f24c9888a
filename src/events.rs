//! The error event as shipwatch keeps it, whatever it arrived as (Sentry envelope, legacy store, native JSON, a
//! pasted stack trace): frames ordered caller → callee, the raised exception last in its chain.

use serde::{Deserialize, Serialize};

/// One error occurrence, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Event {
    /// 32 lowercase hexadecimal digits (a UUID without dashes), unique per project.
    pub event_id: String,
    /// When it happened, unix milliseconds.
    pub timestamp: i64,
    pub platform: Option<String>,
    pub level: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub message: Option<String>,
    /// The exception chain: causes first, the exception that was raised last.
    pub exceptions: Vec<Exception>,
    /// A stack trace not tied to an exception (a message captured with its stack).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stacktrace: Vec<Frame>,
    /// The SDK's own grouping instruction, if it sent one (`{{ default }}` stands for shipwatch's grouping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Vec<String>>,
    /// `name/version` of the SDK that sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk: Option<String>,
    /// The time the client gave when it was too far in the future or the past to believe (then `timestamp` is when
    /// the event was received), unix milliseconds; kept as Sentry's Relay keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_timestamp: Option<i64>,
}

/// How far ahead of its arrival an event may say it happened (clock skew), as Sentry's Relay allows.
const MAX_FUTURE_MS: i64 = 60 * 1000;
/// How far back an event may say it happened.
const MAX_PAST_MS: i64 = 30 * 24 * 3600 * 1000;

/// The event's time given the client's claim and the arrival: the claim, unless it is more than a minute in the
/// future or more than 30 days in the past — then the arrival, with the claim kept beside it.
pub fn clamp_timestamp(claimed: Option<i64>, received_ms: i64) -> (i64, Option<i64>) {
    match claimed {
        None => (received_ms, None),
        Some(t) if t > received_ms.saturating_add(MAX_FUTURE_MS) || t < received_ms.saturating_sub(MAX_PAST_MS) => {
            (received_ms, Some(t))
        }
        Some(t) => (t, None),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Exception {
    #[serde(rename = "type")]
    pub ty: String,
    pub value: Option<String>,
    pub module: Option<String>,
    /// False when the SDK says nothing caught it.
    pub handled: Option<bool>,
    /// Caller → callee: the crashing frame is the last.
    pub frames: Vec<Frame>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Frame {
    /// The path as the runtime printed it (relative, absolute, URL, Windows…).
    pub filename: Option<String>,
    pub abs_path: Option<String>,
    /// Module, package or class, as the language names it.
    pub module: Option<String>,
    pub function: Option<String>,
    pub lineno: Option<u32>,
    pub colno: Option<u32>,
    /// Whether the frame is the application's own code; `None` until decided.
    pub in_app: Option<bool>,
    /// The source line, when the trace or SDK gave it.
    pub context_line: Option<String>,
}

impl Event {
    /// The exception that was raised: the last of the chain.
    pub fn raised(&self) -> Option<&Exception> {
        self.exceptions.last()
    }

    /// The frames grouping and assignment look at: the raised exception's, or the bare stack trace.
    pub fn frames(&self) -> &[Frame] {
        match self.raised() {
            Some(e) if !e.frames.is_empty() => &e.frames,
            _ => &self.stacktrace,
        }
    }
}

/// Cuts `s` to at most `max` characters, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `timestamp` of `1e30` (saturated to `i64::MAX`), a skewed clock an hour ahead, a replay from last year.
    #[test]
    fn timestamps_beyond_belief_become_the_arrival_time() {
        let now = 1_800_000_000_000;
        assert_eq!(clamp_timestamp(Some(i64::MAX), now), (now, Some(i64::MAX)));
        assert_eq!(clamp_timestamp(Some(now + 3_600_000), now), (now, Some(now + 3_600_000)));
        assert_eq!(clamp_timestamp(Some(now - 365 * 86_400_000), now), (now, Some(now - 365 * 86_400_000)));
        assert_eq!(clamp_timestamp(Some(now - 5_000), now), (now - 5_000, None));
        assert_eq!(clamp_timestamp(Some(now + 30_000), now), (now + 30_000, None), "a little skew is believed");
        assert_eq!(clamp_timestamp(None, now), (now, None));
    }

    #[test]
    fn truncates_by_characters() {
        assert_eq!(truncate("héllo", 10), "héllo");
        assert_eq!(truncate("héllo wörld", 5), "héll…");
    }

    #[test]
    fn frames_prefer_the_raised_exception() {
        let frame = |f: &str| Frame { function: Some(f.into()), ..Default::default() };
        let mut e = Event { stacktrace: vec![frame("s")], ..Default::default() };
        assert_eq!(e.frames()[0].function.as_deref(), Some("s"));
        e.exceptions = vec![
            Exception { ty: "Cause".into(), frames: vec![frame("c")], ..Default::default() },
            Exception { ty: "Raised".into(), frames: vec![frame("r")], ..Default::default() },
        ];
        assert_eq!(e.raised().map(|x| x.ty.as_str()), Some("Raised"));
        assert_eq!(e.frames()[0].function.as_deref(), Some("r"));
    }
}
