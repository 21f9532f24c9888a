//! The link between groups and their GitHub issues.
//!
//! Shared by both backends: compiled once inside each with `Db` and `Backend` its own (see `store/mod.rs`).

use super::{Backend, Db};
use crate::store::*;

#[async_trait::async_trait]
impl crate::store::GithubStore for Backend {
    async fn group_by_issue(&self, project_id: i64, issue: i64) -> StoreResult<Option<Group>> {
        Ok(sqlx::query_as::<Db, Group>("select * from error_groups where project_id = $1 and github_issue = $2")
            .bind(project_id)
            .bind(issue)
            .fetch_optional(&self.read)
            .await?)
    }

    async fn set_github_issue(&self, group_id: i64, issue: i64) -> StoreResult<()> {
        sqlx::query("update error_groups set github_issue = $1 where id = $2")
            .bind(issue)
            .bind(group_id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn set_fixing_commit(&self, group_id: i64, sha: &str) -> StoreResult<()> {
        sqlx::query("update error_groups set fixed_in_commit = $1 where id = $2")
            .bind(sha)
            .bind(group_id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn take_write_slot(&self, now: i64, interval_ms: i64) -> StoreResult<Result<(), i64>> {
        // One conditional update: of processes racing for a slot, exactly one moves it.
        let taken = sqlx::query(
            "update github_pacing set next_write_at = $1 where pacing_key = 'writes' and next_write_at <= $2",
        )
        .bind(now + interval_ms)
        .bind(now)
        .execute(&self.write)
        .await?
        .rows_affected();
        if taken == 1 {
            return Ok(Ok(()));
        }
        Ok(Err(self.next_write_slot().await?))
    }

    async fn next_write_slot(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar::<Db, i64>("select next_write_at from github_pacing where pacing_key = 'writes'")
            .fetch_optional(&self.write)
            .await?
            .unwrap_or(0))
    }

    async fn hold_writes_until(&self, until: i64) -> StoreResult<()> {
        sqlx::query(
            "update github_pacing set next_write_at = case when next_write_at < $1 then $1 else next_write_at end \
             where pacing_key = 'writes'",
        )
        .bind(until)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn github_step(&self, group_id: i64, step: &str) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar("select done_at from github_steps where group_id = $1 and step = $2")
            .bind(group_id)
            .bind(step)
            .fetch_optional(&self.write)
            .await?)
    }

    async fn record_github_step(&self, group_id: i64, step: &str, at: i64) -> StoreResult<()> {
        sqlx::query(
            "insert into github_steps (group_id, step, done_at) values ($1, $2, $3) \
             on conflict (group_id, step) do nothing",
        )
        .bind(group_id)
        .bind(step)
        .bind(at)
        .execute(&self.write)
        .await?;
        Ok(())
    }
}
