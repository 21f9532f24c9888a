//! Accepting connections under limits: how many connections and requests at once, how long a client may take to
//! send its headers and its whole request, and a shutdown that lets in-flight requests finish but never waits past
//! its grace period.
//!
//! A client that opens sockets and sends nothing, or trickles a body, costs the server one descriptor each and
//! nothing else: it is cut off after the header or request timeout. When connections near the limit, the oldest are
//! closed to make room (at once when no request of theirs is being handled, after its response otherwise), so a new
//! client is still served; only past the hard limit does a new connection get an immediate `503`.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The limits a server runs under.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open connections at most; near it the oldest are asked to close, past it new ones get `503`.
    pub max_connections: usize,
    /// Requests being handled at once; more are answered `503` with `Retry-After` at once, never queued.
    pub max_requests_in_flight: usize,
    /// Time a client has to send a request's headers, from connecting or from the previous response.
    pub header_timeout: Duration,
    /// Time a request may take from its headers to its response, the body's arrival included: `408` after it.
    pub request_timeout: Duration,
    /// After a shutdown signal, time in-flight requests have to finish before their connections are dropped.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 4096,
            max_requests_in_flight: 512,
            header_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl From<&crate::config::LimitArgs> for Limits {
    fn from(a: &crate::config::LimitArgs) -> Limits {
        Limits {
            max_connections: a.max_connections.max(1),
            max_requests_in_flight: a.max_requests_in_flight.max(1),
            header_timeout: Duration::from_secs(a.header_timeout.max(1)),
            request_timeout: Duration::from_secs(a.request_timeout.max(1)),
            shutdown_grace: Duration::from_secs(a.shutdown_grace),
        }
    }
}

/// Descriptors kept free of connections, for the database, git processes and files.
const RESERVED_DESCRIPTORS: u64 = 256;

impl Limits {
    /// These limits with `max_connections` lowered to fit the process's descriptor limit (raised first to its hard
    /// limit where the system allows), keeping [`RESERVED_DESCRIPTORS`] for everything else.
    pub fn fitted_to_descriptors(mut self) -> Limits {
        if let Some(available) = descriptor_limit() {
            let fit = usize::try_from(available.saturating_sub(RESERVED_DESCRIPTORS).max(16)).unwrap_or(usize::MAX);
            if fit < self.max_connections {
                info!(
                    descriptors = available,
                    max_connections = fit,
                    "connection limit lowered to fit the descriptor limit"
                );
                self.max_connections = fit;
            }
        }
        self
    }

    /// Connections past which the oldest are asked to close (three quarters of the limit).
    fn shed_from(&self) -> usize {
        (self.max_connections / 4 * 3).max(1)
    }
}

/// The process's descriptor limit after raising the soft limit to the hard one.
fn descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(n) => Some(n),
            Err(e) => {
                warn!(error = %e, "could not read or raise the descriptor limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE).ok().map(|(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Adds the per-request limits (requests in flight, request timeout) to `router`.
pub fn limit_requests(router: Router, limits: &Limits) -> Router {
    let in_flight = Arc::new(Semaphore::new(limits.max_requests_in_flight.max(1)));
    let timeout = limits.request_timeout;
    router.layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        let in_flight = in_flight.clone();
        async move {
            let Ok(_permit) = in_flight.try_acquire() else {
                return busy("the server is handling as many requests as it is configured for; retry in a moment");
            };
            match tokio::time::timeout(timeout, next.run(req)).await {
                Ok(response) => response,
                Err(_) => {
                    debug!(timeout_s = timeout.as_secs(), "request cut off");
                    let detail = format!(
                        "the request was not received and answered within {} s; send it again",
                        timeout.as_secs_f64()
                    );
                    let mut response = (StatusCode::REQUEST_TIMEOUT, Json(json!({ "detail": detail }))).into_response();
                    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                    response
                }
            }
        }
    }))
}

fn busy(detail: &str) -> Response {
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "detail": detail }))).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
    response
}

/// The connections being served, oldest first, each with the signal that asks it to close.
#[derive(Default)]
struct Open {
    connections: VecDeque<(Instant, Weak<Notify>)>,
}

/// A connection younger than this is never closed to make room: its first request may not have been read yet.
const SHED_MIN_AGE: Duration = Duration::from_secs(1);

impl Open {
    fn add(&mut self, close: &Arc<Notify>, live: usize) {
        // Connections that ended leave dead entries; drop them when they outnumber the live ones.
        if self.connections.len() > 2 * live + 16 {
            self.connections.retain(|(_, w)| w.strong_count() > 0);
        }
        self.connections.push_back((Instant::now(), Arc::downgrade(close)));
    }

    /// Asks the oldest connection still open to close, if it is old enough.
    fn close_oldest(&mut self) {
        while let Some((opened, w)) = self.connections.front() {
            let Some(close) = w.upgrade() else {
                self.connections.pop_front();
                continue;
            };
            if opened.elapsed() >= SHED_MIN_AGE {
                close.notify_one();
                self.connections.pop_front();
            }
            return;
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets in-flight requests finish for at most
/// the grace period.
///
/// # Errors
/// Never today: accept errors (out of descriptors, a client gone before it was accepted) are logged and waited out.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let service = TowerToHyperService::new(router);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let mut connections: JoinSet<()> = JoinSet::new();
    let mut open = Open::default();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE) or a client that left before it was accepted: the listener is fine.
                warn!(error = %e, "could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let live = connections.len();
        if live >= limits.max_connections {
            connections.spawn(refuse(stream));
            open.close_oldest();
            continue;
        }
        if live >= limits.shed_from() {
            open.close_oldest();
        }
        let _ = stream.set_nodelay(true);
        let close = Arc::new(Notify::new());
        open.add(&close, live);
        let active = Arc::new(AtomicUsize::new(0));
        let counted = Counted { inner: service.clone(), active: active.clone() };
        let conn = builder.serve_connection(TokioIo::new(stream), counted);
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            tokio::pin!(conn);
            let mut closing = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            debug!(error = %e, "connection ended");
                        }
                        break;
                    }
                    () = shutdown.cancelled(), if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    () = close.notified(), if !closing => {
                        // Room is needed: a connection with no request being handled (idle, or still sending
                        // headers) goes now; one with a request closes after answering it.
                        if active.load(Ordering::Acquire) == 0 {
                            break;
                        }
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    if !connections.is_empty() {
        info!(connections = connections.len(), grace_s = limits.shutdown_grace.as_secs(), "waiting for open requests");
        let all_done = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(limits.shutdown_grace, all_done).await.is_err() {
            warn!(connections = connections.len(), "dropping connections still open after the grace period");
            connections.abort_all();
        }
    }
    Ok(())
}

/// The router as one connection's service, counting the requests it is handling.
#[derive(Clone)]
struct Counted {
    inner: TowerToHyperService<Router>,
    active: Arc<AtomicUsize>,
}

/// One request being handled on a connection.
struct Handling(Arc<AtomicUsize>);

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Counted {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Self::Error>> + Send>>;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        self.active.fetch_add(1, Ordering::AcqRel);
        let handling = Handling(self.active.clone());
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await;
            drop(handling);
            response
        })
    }
}

/// Answers a connection past the limit with `503` and closes it: after reading the request's head (for a second at
/// most), since a client that gets its answer before it has sent its request takes it for a broken connection.
async fn refuse(mut stream: TcpStream) {
    let mut head = Vec::new();
    let read_head = async {
        let mut buf = [0u8; 2048];
        while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), read_head).await;
    let body = r#"{"detail":"the server has as many connections open as it is configured for; retry in a moment"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(response.as_bytes())).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_default_to_the_servers_own_defaults() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            limits: crate::config::LimitArgs,
        }
        let parsed = Limits::from(&<Cli as clap::Parser>::parse_from(["x"]).limits);
        assert_eq!(format!("{parsed:?}"), format!("{:?}", Limits::default()));
    }
}
