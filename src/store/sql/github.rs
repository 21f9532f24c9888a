//! The link between groups and their GitHub issues and pull requests.
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

    async fn commit_pull(&self, project_id: i64, sha: &str) -> StoreResult<Option<Option<PullRef>>> {
        let row: Option<(Option<i64>, Option<String>, Option<String>)> =
            sqlx::query_as("select pull_number, title, url from commit_pulls where project_id = $1 and sha = $2")
                .bind(project_id)
                .bind(sha)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.map(|(number, title, url)| {
            number.map(|pull_number| PullRef {
                pull_number,
                title: title.unwrap_or_default(),
                url: url.unwrap_or_default(),
            })
        }))
    }

    async fn set_commit_pull(&self, project_id: i64, sha: &str, pull: Option<&PullRef>, now: i64) -> StoreResult<()> {
        sqlx::query(
            "insert into commit_pulls (project_id, sha, pull_number, title, url, fetched_at) \
             values ($1, $2, $3, $4, $5, $6) on conflict (project_id, sha) do nothing",
        )
        .bind(project_id)
        .bind(sha)
        .bind(pull.map(|p| p.pull_number))
        .bind(pull.map(|p| p.title.as_str()))
        .bind(pull.map(|p| p.url.as_str()))
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn commit_pulls(&self, project_id: i64, shas: &[String]) -> StoreResult<Vec<(String, PullRef)>> {
        let mut out = Vec::new();
        // Bounded batches: SQLite allows a limited number of bound values per statement.
        for chunk in shas.chunks(500) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "select sha, pull_number, title, url from commit_pulls \
                 where project_id = $1 and pull_number is not null and sha in ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query_as::<Db, (String, i64, Option<String>, Option<String>)>(&sql).bind(project_id);
            for sha in chunk {
                q = q.bind(sha);
            }
            for (sha, pull_number, title, url) in q.fetch_all(&self.read).await? {
                out.push((
                    sha,
                    PullRef { pull_number, title: title.unwrap_or_default(), url: url.unwrap_or_default() },
                ));
            }
        }
        Ok(out)
    }

    async fn add_pull_group(&self, project_id: i64, pull_number: i64, group_id: i64) -> StoreResult<()> {
        sqlx::query(
            "insert into pull_groups (project_id, pull_number, group_id) values ($1, $2, $3) \
             on conflict (project_id, pull_number, group_id) do nothing",
        )
        .bind(project_id)
        .bind(pull_number)
        .bind(group_id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn pull_groups(&self, project_id: i64, pull_number: i64) -> StoreResult<Vec<Group>> {
        Ok(sqlx::query_as::<Db, Group>(
            "select g.* from error_groups g join pull_groups p on p.group_id = g.id \
             where p.project_id = $1 and p.pull_number = $2 order by g.first_seen, g.id",
        )
        .bind(project_id)
        .bind(pull_number)
        .fetch_all(&self.read)
        .await?)
    }

    async fn pull_comment(&self, project_id: i64, pull_number: i64) -> StoreResult<Option<PullComment>> {
        Ok(sqlx::query_as::<Db, PullComment>(
            "select comment_id, body, sent_at from pull_comments where project_id = $1 and pull_number = $2",
        )
        .bind(project_id)
        .bind(pull_number)
        .fetch_optional(&self.write)
        .await?)
    }

    async fn claim_pull_comment(
        &self,
        project_id: i64,
        pull_number: i64,
        previous: Option<i64>,
        now: i64,
    ) -> StoreResult<bool> {
        let claimed = match previous {
            None => sqlx::query(
                "insert into pull_comments (project_id, pull_number, sent_at) values ($1, $2, $3) \
                 on conflict (project_id, pull_number) do nothing",
            )
            .bind(project_id)
            .bind(pull_number)
            .bind(now)
            .execute(&self.write)
            .await?
            .rows_affected(),
            Some(previous) => sqlx::query(
                "update pull_comments set sent_at = $1 \
                 where project_id = $2 and pull_number = $3 and sent_at = $4 and comment_id is null",
            )
            .bind(now)
            .bind(project_id)
            .bind(pull_number)
            .bind(previous)
            .execute(&self.write)
            .await?
            .rows_affected(),
        };
        Ok(claimed == 1)
    }

    async fn set_pull_comment(
        &self,
        project_id: i64,
        pull_number: i64,
        comment_id: i64,
        body: &str,
    ) -> StoreResult<()> {
        sqlx::query("update pull_comments set comment_id = $1, body = $2 where project_id = $3 and pull_number = $4")
            .bind(comment_id)
            .bind(body)
            .bind(project_id)
            .bind(pull_number)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}
