//! Error intake: Sentry envelopes and legacy store requests, shipwatch's native JSON and pasted stack traces,
//! authenticated, size-limited, decompressed with a cap, and stored durably before the client hears back.

pub mod decode;
pub mod envelope;
pub mod forward;
pub mod native;
pub mod sentry;

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq as _;

use crate::cache::Bounded;
use crate::events::Event;
use crate::metrics::Metrics;
use crate::store::spool::SpoolError;
use crate::store::{DynStore, NewEvent, Project, StoreError};
use forward::Spooler;

/// Why intake refused a request, named by the answer it gets.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// `400`
    #[error("{0}")]
    Malformed(String),
    /// `403`
    #[error("{0}")]
    Forbidden(String),
    /// `413`
    #[error("{0}")]
    TooLarge(String),
    /// `429`, with the seconds until the quota frees up.
    #[error("over the project's quota of {limit} events per minute")]
    OverQuota { retry_after: u64, limit: u32 },
    /// `429`: the local spool holds as much as it may while the database catches up.
    #[error("{0}; retry in a moment")]
    SpoolFull(String),
    /// `429`: the requests in hand hold as much memory as intake may use.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    /// An I/O error while decoding: the cap (`413`) or a corrupt body (`400`).
    pub fn from_io(e: std::io::Error) -> IngestError {
        if e.get_ref().is_some_and(|inner| inner.is::<decode::OverCap>()) {
            IngestError::TooLarge(decode::OverCap.to_string())
        } else if e.get_ref().is_some_and(|inner| inner.is::<decode::OverBudget>()) {
            IngestError::Busy(decode::OverBudget.to_string())
        } else {
            IngestError::Malformed(format!("the body could not be decoded: {e}"))
        }
    }
}

/// Bodies up to this size, compressed with deflate or not at all, are decoded on the request's own task.
const INLINE_DECODE_BYTES: usize = 4 * 1024;

/// Where the caller's key was found; any one of them will do.
#[derive(Debug, Default)]
pub struct Credentials {
    /// From `X-Sentry-Auth: Sentry sentry_key=…` (or an `Authorization: Sentry …` header).
    pub header_key: Option<String>,
    /// From the `sentry_key` query parameter (browser and Node SDKs).
    pub query_key: Option<String>,
}

/// The `sentry_key` of a `Sentry sentry_key=…, sentry_version=7, …` header.
pub fn key_from_auth_header(value: &str) -> Option<String> {
    let rest = value.trim().strip_prefix("Sentry").or_else(|| value.trim().strip_prefix("sentry"))?;
    rest.split(',').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k.trim() == "sentry_key").then(|| v.trim().to_owned())
    })
}

/// The public key of a DSN (`http://<key>@host/<id>`).
pub fn key_from_dsn(dsn: &str) -> Option<String> {
    let rest = dsn.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    let key = userinfo.split(':').next()?;
    (!key.is_empty()).then(|| key.to_owned())
}

/// Events per minute per project, counted in fixed one-minute windows in this process.
pub struct Quota {
    per_minute: u32,
    windows: Mutex<HashMap<i64, (i64, u32)>>,
}

impl Quota {
    pub fn new(per_minute: u32) -> Quota {
        Quota { per_minute, windows: Mutex::new(HashMap::new()) }
    }

    /// Takes `n` events from the project's allowance at `now_ms`, or says how long until there is room.
    ///
    /// # Errors
    /// [`IngestError::OverQuota`] with the seconds until the next window.
    pub fn take(&self, project_id: i64, n: u32, now_ms: i64) -> Result<(), IngestError> {
        if n == 0 {
            return Ok(());
        }
        let minute = now_ms.div_euclid(60_000);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let entry = windows.entry(project_id).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1.saturating_add(n) > self.per_minute {
            let retry_after = ((minute + 1) * 60_000 - now_ms).div_euclid(1000).max(1) as u64;
            return Err(IngestError::OverQuota { retry_after, limit: self.per_minute });
        }
        entry.1 += n;
        Ok(())
    }
}

/// What a request carried, once decoded and parsed: events to store and other items to count.
#[derive(Default)]
pub struct Accepted {
    pub events: Vec<Event>,
    pub skipped: Vec<(String, i64)>,
    /// The request's share of the memory budget, held until its events are spooled.
    pub charge: Option<Arc<std::sync::Mutex<decode::Charge>>>,
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted").field("events", &self.events).field("skipped", &self.skipped).finish()
    }
}

/// The memory budget unless configured: 192 MiB.
pub const DEFAULT_MEMORY_BUDGET: u64 = 192 * 1024 * 1024;

/// The intake service.
pub struct Ingest {
    /// What request bodies and their decoding may hold at once.
    budget: decode::MemoryBudget,
    store: DynStore,
    spooler: Arc<Spooler>,
    quota: Quota,
    metrics: Arc<Metrics>,
    /// Projects by id as last read, so keys are checked while the main database is away.
    projects: Bounded<i64, (std::time::Instant, Project)>,
    /// The last intake write the database refused (when, why), until a later one succeeds.
    failed_write: Mutex<Option<(std::time::Instant, String)>>,
}

/// How long a refused intake write keeps the process "not ready" unless a later write succeeds first: long enough
/// for a load balancer to notice, short enough that an idle process is tried again.
const FAILED_WRITE_MEMORY: std::time::Duration = std::time::Duration::from_secs(30);

/// The kind of body a Sentry endpoint received.
#[derive(Debug, Clone, Copy)]
pub enum SentryBody {
    Envelope,
    Store,
}

impl Ingest {
    pub fn new(store: DynStore, spooler: Arc<Spooler>, events_per_minute: u32, metrics: Arc<Metrics>) -> Ingest {
        Ingest {
            store,
            spooler,
            quota: Quota::new(events_per_minute),
            metrics,
            projects: Bounded::new(10_000),
            budget: decode::MemoryBudget::new(DEFAULT_MEMORY_BUDGET),
            failed_write: Mutex::new(None),
        }
    }

    /// Request bodies and their decoding may hold at most `bytes` at once, all requests together.
    pub fn with_memory_budget(mut self, bytes: u64) -> Ingest {
        self.budget = decode::MemoryBudget::new(bytes);
        self
    }

    /// The project with id `id`: read again at most once a minute, and from memory while the database is away.
    async fn project(&self, id: i64) -> Result<Option<Project>, IngestError> {
        const FRESH: std::time::Duration = std::time::Duration::from_secs(60);
        let cached = self.projects.get(&id);
        if let Some((at, p)) = &cached {
            if at.elapsed() < FRESH {
                return Ok(Some(p.clone()));
            }
        }
        match self.store.project_by_id(id).await {
            Ok(found) => {
                match &found {
                    Some(p) => self.projects.insert(id, (std::time::Instant::now(), p.clone())),
                    None => self.projects.remove(&id),
                }
                Ok(found)
            }
            Err(e) => match cached {
                Some((_, p)) => Ok(Some(p)),
                None => Err(e.into()),
            },
        }
    }

    /// Why intake cannot write now, when its last write was refused as unavailable (a full disk, an I/O error, a
    /// lock) less than 30 s ago and none has succeeded since.
    pub fn write_trouble(&self) -> Option<String> {
        let guard = self.failed_write.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().filter(|(at, _)| at.elapsed() < FAILED_WRITE_MEMORY).map(|(_, why)| why.clone())
    }

    fn note_write(&self, result: &Result<(), SpoolError>) {
        let mut guard = self.failed_write.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => *guard = None,
            Err(SpoolError::Store(StoreError::Unavailable(why))) => {
                *guard = Some((std::time::Instant::now(), why.clone()));
            }
            Err(_) => {}
        }
    }

    /// The project for `project_id` if `key` is its ingest key.
    ///
    /// # Errors
    /// [`IngestError::Forbidden`] for an unknown project or a wrong key (the same answer, so keys cannot be probed).
    pub async fn authenticate(&self, project_id: &str, key: Option<&str>) -> Result<Project, IngestError> {
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Err(IngestError::Forbidden(
                "missing sentry_key: send X-Sentry-Auth, the sentry_key query parameter, or a dsn in the envelope header"
                    .into(),
            ));
        };
        let denied = || IngestError::Forbidden("invalid sentry_key for this project".into());
        let id: i64 = project_id.parse().map_err(|_| denied())?;
        let project = self.project(id).await?.ok_or_else(denied)?;
        if bool::from(key.as_bytes().ct_eq(project.ingest_key.as_bytes())) {
            Ok(project)
        } else {
            Err(denied())
        }
    }

    /// The key in an envelope's header (`dsn`), decoding no more of the body than that first line: a request whose
    /// key is nowhere else is authenticated before the rest of it is decompressed or parsed.
    ///
    /// # Errors
    /// `400` for a body whose first line is not an envelope header.
    pub fn envelope_header_key(encoding: Option<&str>, raw: &[u8]) -> Result<Option<String>, IngestError> {
        let reader = decode::decoder(encoding, raw)?;
        let header = envelope::read_header(std::io::BufReader::with_capacity(8 * 1024, reader))?;
        Ok(header.get("dsn").and_then(|v| v.as_str()).and_then(key_from_dsn))
    }

    /// Decodes and parses a Sentry request body off the async runtime (after the caller is authenticated: a key only
    /// in the envelope header is read first by [`Ingest::envelope_header_key`]).
    ///
    /// # Errors
    /// `400`, `413` as [`IngestError`] says.
    pub async fn parse_sentry(
        &self,
        kind: SentryBody,
        encoding: Option<String>,
        raw: bytes::Bytes,
        received_ms: i64,
        charge: Option<Arc<std::sync::Mutex<decode::Charge>>>,
    ) -> Result<Accepted, IngestError> {
        // A small body in an encoding with a bounded ratio (deflate expands at most ~1,000-fold: 4 KiB to 4 MiB)
        // is decoded right here: a hop to the blocking pool and back costs more than the work (two task switches,
        // most of intake's CPU in a profile). Larger or brotli/zstd bodies, whose expansion is unbounded, go there.
        let bounded = matches!(encoding.as_deref().map(str::trim), None | Some("" | "identity" | "gzip" | "deflate"));
        if bounded && raw.len() <= INLINE_DECODE_BYTES {
            return parse_sentry_blocking(kind, encoding.as_deref(), &raw, received_ms, charge.clone())
                .map(|a| Accepted { charge, ..a });
        }
        tokio::task::spawn_blocking(move || {
            parse_sentry_blocking(kind, encoding.as_deref(), &raw, received_ms, charge.clone())
                .map(|a| Accepted { charge, ..a })
        })
        .await
        .map_err(|e| IngestError::Store(StoreError::Other(anyhow::anyhow!("decoding task failed: {e}"))))?
    }

    /// Takes room on the intake memory budget for a body of `bytes` before it is read; decoding grows it.
    ///
    /// # Errors
    /// [`IngestError::Busy`] (`429`) when intake holds as much as it may.
    pub fn reserve(&self, bytes: u64) -> Result<Arc<std::sync::Mutex<decode::Charge>>, IngestError> {
        match self.budget.charge(bytes) {
            Ok(c) => Ok(Arc::new(std::sync::Mutex::new(c))),
            Err(e) => {
                self.metrics.intake_refused("memory_budget");
                Err(IngestError::Busy(e.to_string()))
            }
        }
    }

    /// Makes accepted events durable in the spool (they reach the main store, once per event id, through the
    /// forwarder) and counts the rest; returns the first event's id.
    ///
    /// # Errors
    /// `429` over the quota or with the spool full; store errors (then nothing was acknowledged, and the SDK
    /// retries).
    pub async fn accept(
        &self,
        project: &Project,
        accepted: Accepted,
        now_ms: i64,
    ) -> Result<Option<String>, IngestError> {
        self.quota.take(project.id, u32::try_from(accepted.events.len()).unwrap_or(u32::MAX), now_ms)?;
        let mut events = Vec::with_capacity(accepted.events.len());
        for event in &accepted.events {
            let payload = serde_json::to_string(event).map_err(|e| {
                IngestError::Store(StoreError::Other(anyhow::Error::new(e).context("encoding an event")))
            })?;
            events.push(NewEvent {
                project_id: project.id,
                event_id: event.event_id.clone(),
                occurred_at: event.timestamp,
                release: event.release.clone(),
                environment: event.environment.clone(),
                platform: event.platform.clone(),
                payload,
            });
        }
        let first = accepted.events.first().map(|e| e.event_id.clone());
        if events.is_empty() && accepted.skipped.is_empty() {
            return Ok(first);
        }
        let pushed = self.spooler.push(project.id, now_ms, &events, &accepted.skipped).await;
        self.note_write(&pushed);
        match pushed {
            Ok(()) => self.metrics.events_accepted.inc_by(events.len() as u64),
            Err(full @ SpoolError::Full(_)) => return Err(IngestError::SpoolFull(full.to_string())),
            Err(SpoolError::Store(e)) => return Err(e.into()),
        };
        Ok(first)
    }
}

fn parse_sentry_blocking(
    kind: SentryBody,
    encoding: Option<&str>,
    raw: &[u8],
    received_ms: i64,
    charge: Option<Arc<std::sync::Mutex<decode::Charge>>>,
) -> Result<Accepted, IngestError> {
    let reader = decode::charged_decoder(encoding, raw, charge.clone())?;
    // A kept event costs a few times its bytes until it is spooled: its buffer (taken before it is filled), then its
    // JSON tree and the event built from it.
    let charge_more = |bytes: u64| -> Result<(), IngestError> {
        match &charge {
            Some(c) => {
                c.lock().unwrap_or_else(|p| p.into_inner()).add(bytes).map_err(|e| IngestError::Busy(e.to_string()))
            }
            None => Ok(()),
        }
    };
    match kind {
        SentryBody::Envelope => {
            let reader = std::io::BufReader::with_capacity(64 * 1024, reader);
            let env = envelope::read_charged(reader, &mut |n| charge_more(n))?;
            charge_more(env.events.iter().map(|e| e.len() as u64).sum::<u64>() * decode::PARSE_COST_PER_BYTE)?;
            let fallback_id = env.header.get("event_id").and_then(|v| v.as_str());
            let mut accepted = Accepted { skipped: env.skipped.into_iter().collect(), ..Default::default() };
            for payload in &env.events {
                let value: serde_json::Value = serde_json::from_slice(payload)
                    .map_err(|e| IngestError::Malformed(format!("an event item is not valid JSON: {e}")))?;
                accepted
                    .events
                    .push(sentry::to_event(&value, fallback_id, received_ms).map_err(IngestError::Malformed)?);
            }
            Ok(accepted)
        }
        SentryBody::Store => {
            let mut body = Vec::new();
            reader.take(decode::MAX_EVENT as u64 + 1).read_to_end(&mut body).map_err(IngestError::from_io)?;
            if body.len() > decode::MAX_EVENT {
                return Err(IngestError::TooLarge("the event is larger than 1 MiB".into()));
            }
            let body = legacy_base64(&body).unwrap_or(body);
            charge_more(body.len() as u64 * decode::PARSE_COST_PER_BYTE)?;
            let value: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| IngestError::Malformed(format!("the event is not valid JSON: {e}")))?;
            let event = sentry::to_event(&value, None, received_ms).map_err(IngestError::Malformed)?;
            Ok(Accepted { events: vec![event], ..Default::default() })
        }
    }
}

/// Very old SDKs (raven) send `base64(zlib(json))` without a content encoding.
fn legacy_base64(body: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first == b'{' {
        return None;
    }
    let compressed = base64::engine::general_purpose::STANDARD.decode(body.trim_ascii()).ok()?;
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(&compressed[..]).take(decode::MAX_EVENT as u64 + 1).read_to_end(&mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_headers_and_dsns() {
        assert_eq!(
            key_from_auth_header("Sentry sentry_key=publickey, sentry_version=7, sentry_client=sentry.python/2.75.0"),
            Some("publickey".into())
        );
        assert_eq!(key_from_auth_header("Sentry sentry_version=7,sentry_key=k"), Some("k".into()));
        assert_eq!(key_from_auth_header("Bearer x"), None);
        assert_eq!(key_from_dsn("http://publickey@127.0.0.1:18042/42"), Some("publickey".into()));
        assert_eq!(key_from_dsn("https://pub:secret@o1.ingest.sentry.io/5"), Some("pub".into()));
        assert_eq!(key_from_dsn("http://127.0.0.1/42"), None);
    }

    #[test]
    fn quota_windows() {
        let q = Quota::new(3);
        assert!(q.take(1, 2, 60_000).is_ok());
        assert!(q.take(2, 3, 60_000).is_ok(), "per project");
        let err = q.take(1, 2, 90_000).expect_err("over");
        assert!(matches!(err, IngestError::OverQuota { retry_after: 30, limit: 3 }), "{err:?}");
        assert!(q.take(1, 1, 119_999).is_ok());
        assert!(q.take(1, 3, 120_000).is_ok(), "a new minute");
    }

    #[test]
    fn legacy_store_bodies() {
        use base64::Engine as _;
        use std::io::Write as _;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(br#"{"message":"old"}"#).expect("write");
        let body = base64::engine::general_purpose::STANDARD.encode(z.finish().expect("finish"));
        assert_eq!(legacy_base64(body.as_bytes()).as_deref(), Some(&br#"{"message":"old"}"#[..]));
        assert_eq!(legacy_base64(b" {\"a\":1}"), None);
    }
}
