//! Job rows: queueing, claiming with a lease, settling.
//!
//! Shared by both backends: compiled once inside each with `Db` and `Backend` its own (see `store/mod.rs`).

use super::{Backend, Db};
use crate::store::*;

#[async_trait::async_trait]
impl crate::store::JobStore for Backend {
    async fn queue_depths(&self) -> StoreResult<Vec<(String, i64, i64)>> {
        let mut depths: Vec<(String, i64, i64)> = sqlx::query_as(
            "select kind, count(*), min(created_at) from jobs where status in ('queued', 'running') \
             group by kind order by kind",
        )
        .fetch_all(&self.read)
        .await?;
        // Events are a queue of their own: the ungrouped ones wait for a grouping batch.
        let (n, oldest): (i64, Option<i64>) = sqlx::query_as(
            "select count(*), min(received_at) from events where group_id is null and grouping_error is null",
        )
        .fetch_one(&self.read)
        .await?;
        if let (true, Some(oldest)) = (n > 0, oldest) {
            depths.push((GROUP_EVENTS.to_owned(), n, oldest));
        }
        Ok(depths)
    }

    async fn enqueue_job(&self, job: NewJob, now: i64) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "insert into jobs (kind, payload, status, max_attempts, run_at, created_at, updated_at) \
             values ($1, $2, 'queued', $3, $4, $4, $4) returning id",
        )
        .bind(&job.kind)
        .bind(&job.payload)
        .bind(job.max_attempts)
        .bind(now)
        .fetch_one(&self.write)
        .await?)
    }

    async fn extend_lease(&self, job: &Job, until: i64) -> StoreResult<bool> {
        let done =
            sqlx::query("update jobs set lease_until = $1 where id = $2 and lease_token = $3 and status = 'running'")
                .bind(until)
                .bind(job.id)
                .bind(&job.lease_token)
                .execute(&self.write)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete_job(&self, job: &Job, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "update jobs set status = 'done', lease_until = null, lease_token = null, last_error = null, \
             updated_at = $1 where id = $2 and lease_token = $3 and status = 'running'",
        )
        .bind(now)
        .bind(job.id)
        .bind(&job.lease_token)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn fail_job(&self, job: &Job, error: &str, retry_at: Option<i64>, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "update jobs set status = $1, run_at = coalesce($2, run_at), lease_until = null, \
             lease_token = null, last_error = $3, updated_at = $4 \
             where id = $5 and lease_token = $6 and status = 'running'",
        )
        .bind(if retry_at.is_some() { "queued" } else { "dead" })
        .bind(retry_at)
        .bind(error)
        .bind(now)
        .bind(job.id)
        .bind(&job.lease_token)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn defer_job(&self, job: &Job, run_at: i64, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "update jobs set status = 'queued', run_at = $1, attempts = attempts - 1, lease_until = null, \
             lease_token = null, updated_at = $2 where id = $3 and lease_token = $4 and status = 'running'",
        )
        .bind(run_at)
        .bind(now)
        .bind(job.id)
        .bind(&job.lease_token)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn job_states(&self) -> StoreResult<Vec<JobState>> {
        Ok(sqlx::query_as::<Db, JobState>(
            "select id, kind, payload, status, attempts, last_error from jobs order by id",
        )
        .fetch_all(&self.read)
        .await?)
    }

    async fn claim_job(&self, now: i64, lease_ms: i64) -> StoreResult<Option<Job>> {
        Ok(sqlx::query_as::<Db, Job>(super::CLAIM_JOB)
            .bind(now + lease_ms)
            .bind(random_hex(16)?)
            .bind(now)
            .fetch_optional(&self.write)
            .await?)
    }
}
