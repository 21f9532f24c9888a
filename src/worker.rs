//! The worker: claims durable jobs from the store with a lease, runs them through the domain services, and retries
//! with backoff. A worker that dies mid-job simply lets its lease lapse; another worker then claims the job.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, info_span, warn, Instrument as _};

use crate::assign::service::AssignService;
use crate::groups::Groups;
use crate::issues::{IssueSync, RetryAt};
use crate::jobs::{Later, Work};
use crate::metrics::Metrics;
use crate::regressions::Regressions;
use crate::releases::Releases;
use crate::retention::Retention;
use crate::store::{BatchGrouped, DynStore, Job};
use crate::webhooks::Webhooks;

/// Events per grouping batch: one transaction files them all, writing each group's counters once.
pub const GROUP_BATCH: i64 = 500;

/// How long the grouping loop waits after a part batch before it takes the next (as the spool's forwarder does):
/// under load, batches of many events for at most this delay before an event is grouped.
const GROUP_GATHER: Duration = Duration::from_millis(10);

/// Milliseconds since the Unix epoch; replaceable in tests to drive leases without sleeping.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp_millis())
}

/// The domain services jobs call, besides releases and groups.
#[derive(Clone)]
pub struct Services {
    pub assign: Arc<AssignService>,
    pub regressions: Arc<Regressions>,
    pub webhooks: Arc<Webhooks>,
    pub issues: Arc<IssueSync>,
}

#[derive(Clone)]
pub struct Worker {
    store: DynStore,
    releases: Arc<Releases>,
    groups: Arc<Groups>,
    services: Services,
    lease: Duration,
    poll: Duration,
    wake: Arc<Notify>,
    clock: Clock,
    /// Job loops [`Worker::run`] runs side by side.
    jobs_at_once: usize,
    /// Retention passes, and how often, run beside the job loop by [`Worker::run`].
    retention: Option<(Arc<Retention>, Duration)>,
    metrics: Arc<Metrics>,
}

impl Worker {
    pub fn new(
        releases: Arc<Releases>,
        groups: Arc<Groups>,
        services: Services,
        lease: Duration,
        poll: Duration,
        wake: Arc<Notify>,
        clock: Clock,
    ) -> Worker {
        Worker {
            store: releases.store().clone(),
            releases,
            groups,
            services,
            lease,
            poll,
            wake,
            clock,
            jobs_at_once: 1,
            retention: None,
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Counts job outcomes into `metrics` (a worker of its own counts into a registry nobody reads).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Worker {
        self.metrics = metrics;
        self
    }

    /// Runs `n` jobs at once (each claims its own; a job's writes are idempotent and GitHub writes are paced through
    /// the database, so they need no other coordination).
    pub fn with_jobs_at_once(mut self, n: usize) -> Worker {
        self.jobs_at_once = n.max(1);
        self
    }

    /// Runs `retention` every `interval` beside the jobs.
    pub fn with_retention(mut self, retention: Arc<Retention>, interval: Duration) -> Worker {
        self.retention = Some((retention, interval));
        self
    }

    /// Runs until `shutdown` is cancelled, finishing the batch and the job in hand first: grouping batches and jobs
    /// in two loops side by side, so a stream of events never starves assignment and GitHub work, nor the reverse.
    pub async fn run(self, shutdown: CancellationToken) {
        info!(lease_s = self.lease.as_secs(), batch = GROUP_BATCH, jobs = self.jobs_at_once, "worker started");
        let retention = self.retention.clone().map(|(r, every)| tokio::spawn(r.run(every, shutdown.clone())));
        let jobs_wake = Arc::new(Notify::new());
        let grouping = {
            let (worker, shutdown, jobs_wake) = (self.clone(), shutdown.clone(), jobs_wake.clone());
            tokio::spawn(async move {
                worker
                    .run_loop(&shutdown, "group events", &worker.wake, || async {
                        let grouped = worker.group_once().await?;
                        if grouped.new_groups > 0 || grouped.groups > 0 {
                            jobs_wake.notify_one();
                        }
                        // A part batch: let more events arrive before the next, rather than paying a transaction for
                        // every few events.
                        if grouped.events > 0 && grouped.events < GROUP_BATCH as u64 {
                            tokio::time::sleep(GROUP_GATHER).await;
                        }
                        Ok(grouped.events + grouped.failed > 0)
                    })
                    .await;
            })
        };
        let others: Vec<_> = (1..self.jobs_at_once)
            .map(|_| {
                let (worker, shutdown, jobs_wake) = (self.clone(), shutdown.clone(), jobs_wake.clone());
                tokio::spawn(async move {
                    worker.run_loop(&shutdown, "claim a job", &jobs_wake, || worker.job_once()).await;
                })
            })
            .collect();
        self.run_loop(&shutdown, "claim a job", &jobs_wake, || self.job_once()).await;
        for other in others {
            let _ = other.await;
        }
        let _ = grouping.await;
        if let Some(retention) = retention {
            let _ = retention.await;
        }
        info!("worker stopped");
    }

    /// Repeats `step` while it finds work; otherwise waits for `wake` or the poll interval, backing off while the
    /// store fails.
    async fn run_loop<F, Fut>(&self, shutdown: &CancellationToken, what: &str, wake: &Notify, step: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<bool>>,
    {
        let mut failures: u32 = 0;
        while !shutdown.is_cancelled() {
            let pause = match step().await {
                Ok(true) => {
                    failures = 0;
                    continue;
                }
                Ok(false) => {
                    failures = 0;
                    self.poll
                }
                Err(e) => {
                    // The store is unreachable, most likely: back off instead of spinning.
                    failures = failures.saturating_add(1);
                    error!(error = %format!("{e:#}"), "worker could not {what}");
                    (self.poll * 2u32.saturating_pow(failures.min(6))).min(Duration::from_secs(30))
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One grouping batch, then one due job. Returns whether there was anything to do.
    ///
    /// # Errors
    /// When the store cannot be reached to group, claim or settle; a job's own failures are recorded on it.
    pub async fn run_once(&self) -> anyhow::Result<bool> {
        let grouped = self.group_once().await?;
        let job = self.job_once().await?;
        Ok(grouped.events + grouped.failed > 0 || job)
    }

    /// Files up to [`GROUP_BATCH`] ungrouped events into their groups.
    ///
    /// # Errors
    /// When the store fails; the events stay queued.
    pub async fn group_once(&self) -> anyhow::Result<BatchGrouped> {
        let grouped = self.groups.group_batch(GROUP_BATCH, (self.clock)()).await?;
        if grouped.events > 0 {
            self.metrics.events_grouped.inc_by(grouped.events);
            debug!(events = grouped.events, groups = grouped.groups, new = grouped.new_groups, "batch grouped");
        }
        Ok(grouped)
    }

    /// Claims one due job and runs it. Returns whether there was one.
    ///
    /// # Errors
    /// When the store cannot be reached to claim or settle the job; the job's own failures are recorded on it.
    pub async fn job_once(&self) -> anyhow::Result<bool> {
        let lease_ms = self.lease.as_millis() as i64;
        let Some(job) = self.store.claim_job((self.clock)(), lease_ms).await? else {
            return Ok(false);
        };
        let span = info_span!("job", job_id = job.id, kind = %job.kind, attempt = job.attempts);
        self.run_claimed(job).instrument(span).await?;
        Ok(true)
    }

    async fn run_claimed(&self, job: Job) -> anyhow::Result<()> {
        let last_attempt = job.attempts >= job.max_attempts;
        let result = {
            let work = self.dispatch(&job, last_attempt);
            tokio::pin!(work);
            let mut heartbeat = tokio::time::interval(self.lease / 3);
            heartbeat.tick().await;
            loop {
                tokio::select! {
                    r = &mut work => break r,
                    _ = heartbeat.tick() => {
                        let until = (self.clock)() + self.lease.as_millis() as i64;
                        match self.store.extend_lease(&job, until).await {
                            Ok(true) => {}
                            Ok(false) => warn!("lease lost: another worker may be running this job"),
                            Err(e) => warn!(error = %e, "could not extend the lease"),
                        }
                    }
                }
            }
        };
        let now = (self.clock)();
        match result {
            Ok(()) => {
                if !self.store.complete_job(&job, now).await? {
                    warn!("job finished after its lease was lost; the other worker's result stands");
                }
                self.metrics.job_finished(&job.kind, "done");
                debug!("job done");
            }
            Err(e) if e.downcast_ref::<Later>().is_some() => {
                let until = e.downcast_ref::<Later>().map_or(now, |l| l.until_ms.max(now));
                debug!(until, reason = %e, "job waits");
                if !self.store.defer_job(&job, until, now).await? {
                    warn!("job deferred after its lease was lost; the other worker's result stands");
                }
                self.metrics.job_finished(&job.kind, "deferred");
            }
            Err(e) => {
                let message = format!("{e:#}");
                // GitHub (or the write pacing) may name the time to come back; otherwise back off.
                let wait_until = e.downcast_ref::<RetryAt>().map(|r| r.until_ms.max(now));
                let pause = jittered(backoff(job.attempts, Work::max_backoff(&job.kind)));
                let retry_at = (!last_attempt).then(|| wait_until.unwrap_or(now + pause.as_millis() as i64));
                warn!(error = %message, retry = retry_at.is_some(), "job failed");
                self.metrics.job_finished(&job.kind, if retry_at.is_some() { "retried" } else { "given_up" });
                self.store.fail_job(&job, &message, retry_at, now).await?;
            }
        }
        Ok(())
    }

    async fn dispatch(&self, job: &Job, last_attempt: bool) -> anyhow::Result<()> {
        let clock = self.clock.clone();
        let now = move || clock();
        match Work::from_row(&job.kind, &job.payload)? {
            Work::DeployRange { deploy_id } => self.releases.process_range(deploy_id, last_attempt, now).await,
            // Written by an older shipwatch (one job per event): its event is in the batches' queue anyway.
            Work::ProcessEvent { .. } => self.group_once().await.map(|_| ()),
            Work::ReleaseReady { deploy_id } => self.groups.release_ready(deploy_id, now()).await,
            Work::AssignGroup { group, event } => {
                self.services.assign.assign_group(group, event, true, now).await.map(|_| ())
            }
            Work::CheckRegression { group, event } => {
                self.services.regressions.check(group, event, now).await.map(|_| ())
            }
            Work::GithubWebhook { delivery } => self.services.webhooks.handle(&delivery, now).await.map(|_| ()),
            Work::GithubIssue { group, reason, deploy } => self.services.issues.sync(group, reason, deploy, now).await,
            Work::GithubPullComment { group } => self.services.issues.comment_on_pull(group, now).await,
            Work::GithubPullTitles { deploy_id } => self.services.issues.pull_titles(deploy_id, now).await,
        }
    }
}

/// 5 s, 10 s, 20 s … at most `cap`. `attempts` counts real failures only: waiting for a write slot is not one.
fn backoff(attempts: i64, cap: Duration) -> Duration {
    let exp = attempts.clamp(1, 8) as u32 - 1;
    Duration::from_secs(5 * 2u64.pow(exp)).min(cap)
}

/// `pause` ± 20 %, so jobs that failed together do not all come back in the same instant.
fn jittered(pause: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let roll = if getrandom::getrandom(&mut byte).is_ok() { f64::from(byte[0]) / 255.0 } else { 0.5 };
    pause.mul_f64(0.8 + 0.4 * roll)
}

#[cfg(test)]
mod tests {
    use super::{backoff, jittered};
    use std::time::Duration;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(600);
        assert_eq!(backoff(1, cap), Duration::from_secs(5));
        assert_eq!(backoff(2, cap), Duration::from_secs(10));
        assert_eq!(backoff(8, cap), Duration::from_secs(600));
        assert_eq!(backoff(100, cap), Duration::from_secs(600));
        assert_eq!(backoff(6, Duration::from_secs(60)), Duration::from_secs(60), "GitHub writes: a minute at most");
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        for _ in 0..200 {
            let j = jittered(Duration::from_secs(10));
            assert!(j >= Duration::from_secs(8) && j <= Duration::from_secs(12), "{j:?}");
        }
    }
}
