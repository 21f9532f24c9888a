//! Deploys and the commits of their ranges.
//!
//! Shared by both backends: compiled once inside each with `Db` and `Backend` its own (see `store/mod.rs`).

use super::helpers::enqueue_in;
use super::{Backend, Db};
use crate::store::*;

#[async_trait::async_trait]
impl crate::store::DeployStore for Backend {
    async fn record_deploy(&self, d: NewDeploy, range_job: fn(i64) -> NewJob, now: i64) -> StoreResult<(Deploy, bool)> {
        // Two writers may race for the next `seq` of an environment (PostgreSQL scale-out): the unique
        // (project, environment, seq) makes one of them fail, and its retry then sees the other's row.
        for _ in 0..5 {
            let mut tx = self.write.begin().await?;
            let latest = sqlx::query_as::<Db, Deploy>(
                "select * from deploys where project_id = $1 and environment = $2 order by seq desc limit 1",
            )
            .bind(d.project_id)
            .bind(&d.environment)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(latest) = &latest {
                // The same request sent again (a retried step): same commit, release, link and, when the caller named
                // it, time. A restart of the same build is a new deploy: a new run link, or a new time.
                let resent = latest.sha == d.sha
                    && latest.version == d.version
                    && latest.previous_sha == d.previous_sha
                    && latest.url == d.url
                    && (!d.deployed_at_given || latest.deployed_at == d.deployed_at);
                if resent {
                    if latest.status != "failed" {
                        tx.commit().await?;
                        return Ok((latest.clone(), false));
                    }
                    // A re-sent deploy that failed (say, pushed after the deploy was announced) is retried.
                    let retried = sqlx::query_as::<Db, Deploy>(
                        "update deploys set status = 'pending', failure_reason = null where id = $1 returning *",
                    )
                    .bind(latest.id)
                    .fetch_one(&mut *tx)
                    .await?;
                    enqueue_in(&mut tx, &range_job(retried.id), now).await?;
                    tx.commit().await?;
                    return Ok((retried, false));
                }
            }
            let previous = sqlx::query_as::<Db, Deploy>(
                "select * from deploys where project_id = $1 and environment = $2 and status <> 'failed' \
                 order by seq desc limit 1",
            )
            .bind(d.project_id)
            .bind(&d.environment)
            .fetch_optional(&mut *tx)
            .await?;
            let base_sha = d.previous_sha.clone().or_else(|| previous.as_ref().map(|p| p.sha.clone()));
            let seq = latest.map_or(1, |l| l.seq + 1);
            let inserted = sqlx::query_as::<Db, Deploy>(
                "insert into deploys (project_id, environment, seq, version, sha, previous_sha, \
                 previous_deploy_id, base_sha, status, deployed_at, deployer, url, created_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10, $11, $12) returning *",
            )
            .bind(d.project_id)
            .bind(&d.environment)
            .bind(seq)
            .bind(&d.version)
            .bind(&d.sha)
            .bind(&d.previous_sha)
            .bind(previous.map(|p| p.id))
            .bind(&base_sha)
            .bind(d.deployed_at)
            .bind(&d.deployer)
            .bind(&d.url)
            .bind(now)
            .fetch_one(&mut *tx)
            .await;
            let deploy = match inserted.map_err(StoreError::from) {
                Ok(deploy) => deploy,
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            };
            enqueue_in(&mut tx, &range_job(deploy.id), now).await?;
            tx.commit().await?;
            return Ok((deploy, true));
        }
        Err(StoreError::Conflict("too many concurrent deploys of this environment; retry".into()))
    }

    async fn deploy(&self, id: i64) -> StoreResult<Option<Deploy>> {
        Ok(sqlx::query_as::<Db, Deploy>("select * from deploys where id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?)
    }

    async fn list_deploys(
        &self,
        project_id: i64,
        environment: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<Deploy>> {
        Ok(sqlx::query_as::<Db, Deploy>(
            "select * from deploys where project_id = $1 and ($2 is null or environment = $2) \
             and ($3 is null or id < $3) order by id desc limit $4",
        )
        .bind(project_id)
        .bind(environment)
        .bind(before_id)
        .bind(limit)
        .fetch_all(&self.read)
        .await?)
    }

    async fn finish_deploy_range(
        &self,
        deploy_id: i64,
        o: &RangeOutcome,
        then: &[NewJob],
        now: i64,
    ) -> StoreResult<()> {
        use crate::store::common::{encode_commits, COMMIT_COLUMNS, INSERT_BATCH};
        let all: Vec<CommitRecord> = o.commits.iter().chain(&o.removed).cloned().collect();
        let encoded = encode_commits(&all)?;
        let mut tx = self.write.begin().await?;
        // An earlier attempt may have been cut off after writing; start this deploy's links afresh.
        sqlx::query("delete from deploy_commits where deploy_id = $1").bind(deploy_id).execute(&mut *tx).await?;
        let project_id: i64 = sqlx::query_scalar("select project_id from deploys where id = $1")
            .bind(deploy_id)
            .fetch_one(&mut *tx)
            .await?;
        for chunk in encoded.chunks(INSERT_BATCH) {
            let mut qb = sqlx::QueryBuilder::<Db>::new(format!("insert into commits (project_id, {COMMIT_COLUMNS}) "));
            qb.push_values(chunk, |mut b, e| {
                let c = e.commit;
                b.push_bind(project_id)
                    .push_bind(&c.sha)
                    .push_bind(&e.parents)
                    .push_bind(&c.author.name)
                    .push_bind(&c.author.email)
                    .push_bind(c.author_time)
                    .push_bind(&c.committer.name)
                    .push_bind(&c.committer.email)
                    .push_bind(c.committer_time)
                    .push_bind(&c.summary)
                    .push_bind(&c.message)
                    .push_bind(c.pr_number)
                    .push_bind(&e.co_authors)
                    .push_bind(&e.closes)
                    .push_bind(&e.files);
            });
            // Identities follow the newest deploy's `.mailmap`.
            qb.push(
                " on conflict (project_id, sha) do update set author_name = excluded.author_name, \
                 author_email = excluded.author_email, committer_name = excluded.committer_name, \
                 committer_email = excluded.committer_email, co_authors = excluded.co_authors",
            );
            qb.build().execute(&mut *tx).await?;
        }
        // The range's commits, then the commits it took out (a rollback's), each list in `git log` order.
        let ords: Vec<(usize, &CommitRecord, i64)> = o
            .commits
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c, 0))
            .chain(o.removed.iter().enumerate().map(|(i, c)| (i, c, 1)))
            .collect();
        for chunk in ords.chunks(INSERT_BATCH) {
            let mut qb = sqlx::QueryBuilder::<Db>::new("insert into deploy_commits (deploy_id, sha, ord, removed) ");
            qb.push_values(chunk, |mut b, (ord, c, removed)| {
                b.push_bind(deploy_id).push_bind(&c.sha).push_bind(*ord as i64).push_bind(*removed);
            });
            qb.push(" on conflict do nothing");
            qb.build().execute(&mut *tx).await?;
        }
        sqlx::query(
            "update deploys set status = 'ready', base_sha = $1, range_status = $2, merge_base = $3, \
             commit_count = $4, commits_stored = $5, failure_reason = null, processed_at = $6, \
             removed_count = $8 where id = $7",
        )
        .bind(&o.base_sha)
        .bind(&o.range_status)
        .bind(&o.merge_base)
        .bind(o.commit_count)
        .bind(o.commits.len() as i64)
        .bind(now)
        .bind(deploy_id)
        .bind(o.removed_count)
        .execute(&mut *tx)
        .await?;
        for job in then {
            enqueue_in(&mut tx, job, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn fail_deploy(&self, deploy_id: i64, reason: &str, now: i64) -> StoreResult<()> {
        sqlx::query("update deploys set status = 'failed', failure_reason = $1, processed_at = $2 where id = $3")
            .bind(reason)
            .bind(now)
            .bind(deploy_id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn note_deploy_problem(&self, deploy_id: i64, reason: &str) -> StoreResult<()> {
        sqlx::query("update deploys set failure_reason = $1 where id = $2 and status = 'pending'")
            .bind(reason)
            .bind(deploy_id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn deploy_commits(&self, deploy_id: i64) -> StoreResult<Vec<CommitRecord>> {
        self.linked_commits(deploy_id, false).await
    }

    async fn deploy_removed_commits(&self, deploy_id: i64) -> StoreResult<Vec<CommitRecord>> {
        self.linked_commits(deploy_id, true).await
    }

    async fn release_pending(&self, project_id: i64, environment: Option<&str>, release: &str) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "select count(*) from deploys where project_id = $1 and status = 'pending' and version = $2 \
             and ($3 is null or environment = $3)",
        )
        .bind(project_id)
        .bind(release)
        .bind(environment)
        .fetch_one(&self.read)
        .await?;
        Ok(n > 0)
    }

    async fn deploy_for_release(
        &self,
        project_id: i64,
        environment: Option<&str>,
        release: &str,
    ) -> StoreResult<Option<Deploy>> {
        let by_version = sqlx::query_as::<Db, Deploy>(
            "select * from deploys where project_id = $1 and status = 'ready' and version = $2 \
             and ($3 is null or environment = $3) order by id desc limit 1",
        )
        .bind(project_id)
        .bind(release)
        .bind(environment)
        .fetch_optional(&self.read)
        .await?;
        if by_version.is_some() || release.len() < 7 || !release.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(by_version);
        }
        Ok(sqlx::query_as::<Db, Deploy>(
            "select * from deploys where project_id = $1 and status = 'ready' and sha like $2 \
             and ($3 is null or environment = $3) order by id desc limit 1",
        )
        .bind(project_id)
        .bind(format!("{}%", release.to_ascii_lowercase()))
        .bind(environment)
        .fetch_optional(&self.read)
        .await?)
    }

    async fn latest_ready_deploy(&self, project_id: i64, environment: Option<&str>) -> StoreResult<Option<Deploy>> {
        Ok(sqlx::query_as::<Db, Deploy>(
            "select * from deploys where project_id = $1 and status = 'ready' \
             and ($2 is null or environment = $2) order by id desc limit 1",
        )
        .bind(project_id)
        .bind(environment)
        .fetch_optional(&self.read)
        .await?)
    }
}

impl Backend {
    /// A deploy's commits in `git log` order: those of its range, or (`removed`) those it took out.
    async fn linked_commits(&self, deploy_id: i64, removed: bool) -> StoreResult<Vec<CommitRecord>> {
        use crate::store::common::{CommitRow, COMMIT_COLUMNS};
        let sql = format!(
            "select {} from deploy_commits dc join deploys d on d.id = dc.deploy_id \
             join commits c on c.project_id = d.project_id and c.sha = dc.sha \
             where dc.deploy_id = $1 and dc.removed = $2 order by dc.ord",
            COMMIT_COLUMNS.split(", ").map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ")
        );
        let rows = sqlx::query_as::<Db, CommitRow>(&sql)
            .bind(deploy_id)
            .bind(i64::from(removed))
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(CommitRow::into_record).collect::<anyhow::Result<Vec<_>>>()?)
    }
}
