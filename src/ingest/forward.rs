//! Between intake and the main store: accepted events go into the local spool (durable, then acknowledged), and a
//! forwarder moves them into the main store in batches, retrying with backoff while the database is away. Storing
//! an event is idempotent (one row per project and event id), so a batch forwarded twice after a crash stores once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, OnceCell};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::store::spool::{Spool, SpoolError};
use crate::store::{DynStore, NewEvent, StoreResult};

/// Spooled requests forwarded per batch.
const BATCH: i64 = 200;

/// How long the forwarder, after a part batch, lets spooled requests gather before it forwards again (the grouping
/// loop does the same): under load, batches of many requests instead of one or two, for at most this delay.
const GATHER: Duration = Duration::from_millis(10);

pub struct Spooler {
    path: PathBuf,
    max_bytes: u64,
    spool: OnceCell<Arc<Spool>>,
    store: DynStore,
    /// Wakes this process's worker once events are in the main store.
    wake_worker: Arc<Notify>,
    /// Wakes the forwarder when something was spooled.
    wake: Notify,
    metrics: Arc<Metrics>,
    /// One batch at a time, so a batch is never forwarded twice at once (item counters are not idempotent).
    forwarding: tokio::sync::Mutex<()>,
}

impl Spooler {
    /// A spool in the directory `path` holding at most `max_bytes`; opened on first use.
    pub fn new(
        path: PathBuf,
        max_bytes: u64,
        store: DynStore,
        wake_worker: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> Spooler {
        Spooler {
            path,
            max_bytes,
            spool: OnceCell::new(),
            store,
            wake_worker,
            wake: Notify::new(),
            metrics,
            forwarding: tokio::sync::Mutex::new(()),
        }
    }

    async fn spool(&self) -> StoreResult<&Arc<Spool>> {
        self.spool
            .get_or_try_init(|| async {
                if let Some(dir) = self.path.parent() {
                    let _ = tokio::fs::create_dir_all(dir).await;
                }
                Spool::open(&self.path, self.max_bytes).await.map(Arc::new)
            })
            .await
    }

    /// Makes one request's events durable (then they may be acknowledged) and wakes the forwarder.
    ///
    /// # Errors
    /// [`SpoolError::Full`], or the disk refusing the write.
    pub async fn push(
        &self,
        project_id: i64,
        received_at: i64,
        events: &[NewEvent],
        skipped: &[(String, i64)],
    ) -> Result<(), SpoolError> {
        self.spool().await?.push(project_id, received_at, events, skipped).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Forwards one batch; returns how many spooled requests it moved.
    ///
    /// # Errors
    /// When the spool or the main store fails; what was not forwarded stays spooled.
    pub async fn forward_once(&self) -> anyhow::Result<usize> {
        let _one_at_a_time = self.forwarding.lock().await;
        let spool = self.spool().await?;
        let batch = spool.oldest(BATCH).await?;
        if batch.is_empty() {
            return Ok(0);
        }
        // One transaction for the whole batch: multi-row inserts, item counters beside them.
        let events: Vec<(i64, &NewEvent)> =
            batch.iter().flat_map(|r| r.events.iter().map(move |e| (r.received_at, e))).collect();
        let items: Vec<(i64, String, i64)> = batch
            .iter()
            .flat_map(|r| r.skipped.iter().map(move |(item, n)| (r.project_id, item.clone(), *n)))
            .collect();
        let stored = self.store.insert_events(&events, &items).await?;
        self.metrics.events_duplicate.inc_by((events.len() as u64).saturating_sub(stored));
        let stored_any = stored > 0;
        let next = batch.last().map_or(0, |r| r.next);
        spool.forwarded(next, batch.len()).await?;
        if stored_any {
            self.wake_worker.notify_one();
        }
        Ok(batch.len())
    }

    /// Forwards until the spool is empty (tests; a last flush).
    ///
    /// # Errors
    /// As [`Spooler::forward_once`].
    pub async fn forward_all(&self) -> anyhow::Result<()> {
        while self.forward_once().await? > 0 {}
        Ok(())
    }

    /// Requests waiting in the spool, and when the oldest was received (ms).
    ///
    /// # Errors
    /// When the spool cannot be read.
    pub async fn depth(&self) -> StoreResult<(i64, Option<i64>)> {
        self.spool().await?.depth().await
    }

    /// Forwards what is spooled (first what an earlier run left), then whatever arrives, until `shutdown`; while
    /// the main store refuses, retries with backoff (1 s doubling to 30 s).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            let pause = match self.forward_once().await {
                Ok(n) if n > 0 => {
                    if failures > 0 {
                        info!("the main store takes events again; forwarding the spool");
                    }
                    failures = 0;
                    // A part batch: let more arrive before the next, rather than paying a main-store transaction
                    // and a wake of the worker for every request or two.
                    if n < BATCH as usize {
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = tokio::time::sleep(GATHER) => {}
                        }
                    }
                    continue;
                }
                Ok(_) => Duration::from_secs(1),
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_multiple_of(10) {
                        warn!(error = %format!("{e:#}"), failures, "could not forward spooled events; they stay spooled");
                    }
                    Duration::from_secs(1 << failures.min(5)).min(Duration::from_secs(30))
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified(), if failures == 0 => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}
