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
}
