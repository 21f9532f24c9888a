//! How long shipwatch keeps what it stores: events, finished jobs and webhook deliveries past their age are deleted
//! in small batches, and the mirrors are left to `git gc --auto`. A group's counts, its last event, and every
//! deploy, commit and group row are kept.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::git::mirror::Mirrors;
use crate::store::{DynStore, Purge};

/// Ages after which rows are deleted; `None` keeps them.
#[derive(Clone, Debug)]
pub struct Ages {
    pub events: Option<Duration>,
    pub finished_jobs: Option<Duration>,
    pub webhook_deliveries: Option<Duration>,
}

impl From<&crate::config::WorkerArgs> for Ages {
    fn from(w: &crate::config::WorkerArgs) -> Ages {
        let days = |d: u64| (d > 0).then(|| Duration::from_secs(d.saturating_mul(86_400)));
        Ages {
            events: days(w.retain_events_days),
            finished_jobs: days(w.retain_jobs_days),
            webhook_deliveries: days(w.retain_webhooks_days),
        }
    }
}

/// Rows deleted per statement: small enough that intake never waits long for the write lock.
const BATCH: i64 = 500;

/// What one pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub events: u64,
    pub finished_jobs: u64,
    pub webhook_deliveries: u64,
    /// Mirrors `git gc --auto` looked at.
    pub mirrors: usize,
}

pub struct Retention {
    store: DynStore,
    mirrors: Arc<Mirrors>,
    ages: Ages,
}

impl Retention {
    pub fn new(store: DynStore, mirrors: Arc<Mirrors>, ages: Ages) -> Retention {
        Retention { store, mirrors, ages }
    }

    /// One pass at time `now` (ms): every kind down to its age, batch by batch, then the mirrors.
    ///
    /// # Errors
    /// When the store fails; a mirror git cannot clean up is logged and skipped.
    pub async fn run_once(&self, now: i64) -> anyhow::Result<Purged> {
        let mut purged = Purged::default();
        for (what, age, count) in [
            (Purge::Events, self.ages.events, &mut purged.events),
            (Purge::FinishedJobs, self.ages.finished_jobs, &mut purged.finished_jobs),
            (Purge::WebhookDeliveries, self.ages.webhook_deliveries, &mut purged.webhook_deliveries),
        ] {
            let Some(age) = age else { continue };
            let before = now.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
            loop {
                let n = self.store.purge(what, before, BATCH).await?;
                *count += n;
                if n < BATCH as u64 {
                    break;
                }
                // Let intake and jobs have the database between batches.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        for project in self.store.list_projects().await? {
            match self.mirrors.gc_auto(project.id).await {
                Ok(true) => purged.mirrors += 1,
                Ok(false) => {}
                Err(e) => warn!(project_id = project.id, error = %format!("{e:#}"), "git gc --auto failed"),
            }
        }
        Ok(purged)
    }

    /// A pass now and then every `interval` until `shutdown`.
    pub async fn run(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        loop {
            let now = chrono::Utc::now().timestamp_millis();
            match self.run_once(now).await {
                Ok(p) if p.events + p.finished_jobs + p.webhook_deliveries > 0 => info!(
                    events = p.events,
                    finished_jobs = p.finished_jobs,
                    webhook_deliveries = p.webhook_deliveries,
                    "retention deleted old rows"
                ),
                Ok(_) => {}
                Err(e) => warn!(error = %format!("{e:#}"), "retention pass failed; trying again next time"),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}
