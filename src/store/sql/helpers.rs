//! Statements the aggregates share inside their transactions. Compiled once inside each backend.

use super::Db;
use crate::store::*;

/// Resolves a group inside the caller's transaction: baseline per environment = its latest ready deploy.
pub(super) async fn resolve_in(
    tx: &mut <Db as sqlx::Database>::Connection,
    group_id: i64,
    project_id: i64,
    fixed_in_commit: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("delete from group_resolutions where group_id = $1").bind(group_id).execute(&mut *tx).await?;
    sqlx::query(
        "insert into group_resolutions (group_id, environment, sha) select $1, d.environment, d.sha \
         from deploys d where d.project_id = $2 and d.status = 'ready' and d.id = (select max(d2.id) \
         from deploys d2 where d2.project_id = d.project_id and d2.environment = d.environment \
         and d2.status = 'ready')",
    )
    .bind(group_id)
    .bind(project_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update error_groups set status = 'resolved', resolved_at = $1, \
         fixed_in_commit = coalesce($2, fixed_in_commit) where id = $3",
    )
    .bind(now)
    .bind(fixed_in_commit)
    .bind(group_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub(super) async fn set_status(pool: &sqlx::Pool<Db>, group_id: i64, status: &str) -> StoreResult<()> {
    let done = sqlx::query("update error_groups set status = $1 where id = $2")
        .bind(status)
        .bind(group_id)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Queues a job inside the caller's transaction, so the job exists exactly when the row it is about does.
pub(super) async fn enqueue_in(tx: &mut <Db as sqlx::Database>::Connection, job: &NewJob, now: i64) -> StoreResult<()> {
    sqlx::query(
        "insert into jobs (kind, payload, status, max_attempts, run_at, created_at, updated_at) \
         values ($1, $2, 'queued', $3, $4, $4, $4)",
    )
    .bind(&job.kind)
    .bind(&job.payload)
    .bind(job.max_attempts)
    .bind(now)
    .execute(tx)
    .await?;
    Ok(())
}

/// Adds a line to a group's history inside the caller's transaction (or on a connection of its own).
pub(super) async fn history_in(tx: &mut <Db as sqlx::Database>::Connection, e: &HistoryEntry) -> StoreResult<()> {
    sqlx::query(
        "insert into group_history (group_id, at, kind, release, environment, deploy_id, detail) \
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(e.group_id)
    .bind(e.at)
    .bind(&e.kind)
    .bind(&e.release)
    .bind(&e.environment)
    .bind(e.deploy_id)
    .bind(&e.detail)
    .execute(tx)
    .await?;
    Ok(())
}
