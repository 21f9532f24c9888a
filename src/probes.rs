//! What the probes and `/metrics` ask of this process: whether intake can take events, whether the main database
//! takes a committed write, how much intake has spooled for it, and how the job queue stands.

use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

use crate::ingest::forward::Spooler;
use crate::ingest::Ingest;
use crate::metrics::QueueDepth;
use crate::store::{DynStore, StoreError, StoreResult};

pub struct Probes {
    store: DynStore,
    ingest: Arc<Ingest>,
    spooler: Arc<Spooler>,
}

impl Probes {
    pub fn new(store: DynStore, ingest: Arc<Ingest>, spooler: Arc<Spooler>) -> Probes {
        Probes { store, ingest, spooler }
    }

    /// The database's name (`sqlite`, `postgres`).
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Whether intake can take events: its last spool write was not refused (a full disk, an I/O error). `Err`
    /// says why not.
    pub fn intake_ready(&self) -> Result<(), String> {
        match self.ingest.write_trouble() {
            Some(why) => Err(format!("the last event could not be spooled: {why}")),
            None => Ok(()),
        }
    }

    /// Whether the main database answers and takes a committed write within 2 s. `Err` says why not: intake
    /// keeps spooling meanwhile.
    pub async fn database(&self, now: i64) -> Result<(), String> {
        let check = async {
            self.store.ping().await?;
            self.store.check_writable(now).await
        };
        match tokio::time::timeout(Duration::from_secs(2), check).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                warn!(error = %e, "readiness check failed");
                Err(match e {
                    StoreError::Unavailable(m) => format!("the database cannot take a write: {m}"),
                    _ => "database unreachable".to_owned(),
                })
            }
            Err(_) => Err("the database did not take a write within 2 s (a lock held elsewhere?)".to_owned()),
        }
    }

    /// Requests waiting in intake's spool for the database, and the age of the oldest (s) at `now`.
    ///
    /// # Errors
    /// When the spool cannot be read.
    pub async fn spool(&self, now: i64) -> StoreResult<(i64, f64)> {
        let (waiting, oldest) = self.spooler.depth().await?;
        Ok((waiting, oldest.map_or(0.0, |o| now.saturating_sub(o).max(0) as f64 / 1000.0)))
    }

    /// Per kind, the jobs queued or running and the age of the oldest at `now`.
    pub async fn queue(&self, now: i64) -> StoreResult<Vec<QueueDepth>> {
        Ok(self
            .store
            .queue_depths()
            .await?
            .into_iter()
            .map(|(kind, jobs, oldest)| QueueDepth {
                kind,
                jobs,
                oldest_age_s: now.saturating_sub(oldest).max(0) as f64 / 1000.0,
            })
            .collect())
    }
}
