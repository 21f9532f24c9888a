//! What the probes and `/metrics` ask of this process: whether its database takes a committed write, and how the
//! job queue stands.

use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

use crate::ingest::Ingest;
use crate::metrics::QueueDepth;
use crate::store::{DynStore, StoreError, StoreResult};

pub struct Probes {
    store: DynStore,
    ingest: Arc<Ingest>,
}

impl Probes {
    pub fn new(store: DynStore, ingest: Arc<Ingest>) -> Probes {
        Probes { store, ingest }
    }

    /// The database's name (`sqlite`, `postgres`).
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Ready when the database answers and takes a committed write within 2 s, and intake's last write was not
    /// refused (a small write may still fit where an event did not). `Err` says why not.
    pub async fn ready(&self, now: i64) -> Result<(), String> {
        if let Some(why) = self.ingest.write_trouble() {
            return Err(format!("the last event could not be stored: {why}"));
        }
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
