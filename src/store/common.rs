//! The SQL both backends share, written once and expanded into each backend's `Store` implementation.
//!
//! A macro rather than generic functions: sqlx's generic bounds over `Database` become unreadable, while the SQL
//! itself is the same text for SQLite and PostgreSQL wherever the dialects agree. What differs (connecting, claiming
//! a job with `FOR UPDATE SKIP LOCKED`) is written in each backend and passed in as `$backend`.

use super::{CommitRecord, FileChange, IssueRef, Person};

/// Commit columns in storage order, shared by the insert and the select.
pub(super) const COMMIT_COLUMNS: &str = "sha, parents, author_name, author_email, author_time, committer_name, \
     committer_email, committer_time, summary, message, pr_number, co_authors, closes, files";

/// Rows per multi-row insert: 14 columns × 200 stays far below both backends' parameter limits.
pub(super) const INSERT_BATCH: usize = 200;

#[derive(sqlx::FromRow)]
pub(super) struct CommitRow {
    sha: String,
    parents: String,
    author_name: String,
    author_email: String,
    author_time: i64,
    committer_name: String,
    committer_email: String,
    committer_time: i64,
    summary: String,
    message: String,
    pr_number: Option<i64>,
    co_authors: String,
    closes: String,
    files: String,
}

impl CommitRow {
    pub(super) fn into_record(self) -> anyhow::Result<CommitRecord> {
        use anyhow::Context as _;
        let co_authors: Vec<Person> =
            serde_json::from_str(&self.co_authors).context("stored co-authors are not valid JSON")?;
        let closes: Vec<IssueRef> =
            serde_json::from_str(&self.closes).context("stored issue refs are not valid JSON")?;
        let files: Vec<FileChange> = serde_json::from_str(&self.files).context("stored file list is not valid JSON")?;
        Ok(CommitRecord {
            parents: self.parents.split_whitespace().map(str::to_owned).collect(),
            sha: self.sha,
            author: Person { name: self.author_name, email: self.author_email },
            author_time: self.author_time,
            committer: Person { name: self.committer_name, email: self.committer_email },
            committer_time: self.committer_time,
            summary: self.summary,
            message: self.message,
            pr_number: self.pr_number,
            co_authors,
            closes,
            files,
        })
    }
}

/// The JSON-encoded columns of a commit, computed before the insert so an encoding failure is an error, not a panic.
pub(super) struct EncodedCommit<'a> {
    pub commit: &'a CommitRecord,
    pub parents: String,
    pub co_authors: String,
    pub closes: String,
    pub files: String,
}

pub(super) fn encode_commits(commits: &[CommitRecord]) -> anyhow::Result<Vec<EncodedCommit<'_>>> {
    commits
        .iter()
        .map(|c| {
            Ok(EncodedCommit {
                commit: c,
                parents: c.parents.join(" "),
                co_authors: serde_json::to_string(&c.co_authors)?,
                closes: serde_json::to_string(&c.closes)?,
                files: serde_json::to_string(&c.files)?,
            })
        })
        .collect()
}

macro_rules! impl_store {
    ($store:ty, $db:ty, { $($backend:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            $($backend)*

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("select 1").execute(&self.read).await?;
                Ok(())
            }

            async fn check_writable(&self, now: i64) -> StoreResult<()> {
                sqlx::query("update write_checks set checked_at = $1 where id = 1")
                    .bind(now)
                    .execute(&self.write)
                    .await?;
                Ok(())
            }

            async fn create_project(&self, p: NewProject, now: i64) -> StoreResult<Project> {
                let project = sqlx::query_as::<$db, Project>(
                    "insert into projects (name, repo_url, github_repo, ingest_key, deploy_token, created_at) \
                     values ($1, $2, $3, $4, $5, $6) returning *",
                )
                .bind(&p.name)
                .bind(&p.repo_url)
                .bind(&p.github_repo)
                .bind(&p.ingest_key)
                .bind(&p.deploy_token)
                .bind(now)
                .fetch_one(&self.write)
                .await
                .map_err(|e| match StoreError::from(e) {
                    StoreError::Conflict(_) => {
                        StoreError::Conflict(format!("a project named `{}` already exists", p.name))
                    }
                    other => other,
                })?;
                Ok(project)
            }

            async fn list_projects(&self) -> StoreResult<Vec<Project>> {
                Ok(sqlx::query_as::<$db, Project>("select * from projects order by id")
                    .fetch_all(&self.read)
                    .await?)
            }

            async fn project_by_id(&self, id: i64) -> StoreResult<Option<Project>> {
                Ok(sqlx::query_as::<$db, Project>("select * from projects where id = $1")
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?)
            }

            async fn project_by_name(&self, name: &str) -> StoreResult<Option<Project>> {
                Ok(sqlx::query_as::<$db, Project>("select * from projects where name = $1")
                    .bind(name)
                    .fetch_optional(&self.read)
                    .await?)
            }

            async fn record_deploy(&self, d: NewDeploy, range_job: fn(i64) -> NewJob, now: i64) -> StoreResult<(Deploy, bool)> {
                // Two writers may race for the next `seq` of an environment (PostgreSQL scale-out): the unique
                // (project, environment, seq) makes one of them fail, and its retry then sees the other's row.
                for _ in 0..5 {
                    let mut tx = self.write.begin().await?;
                    let latest = sqlx::query_as::<$db, Deploy>(
                        "select * from deploys where project_id = $1 and environment = $2 order by seq desc limit 1",
                    )
                    .bind(d.project_id)
                    .bind(&d.environment)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(latest) = &latest {
                        if latest.sha == d.sha && latest.version == d.version && latest.previous_sha == d.previous_sha {
                            if latest.status != "failed" {
                                tx.commit().await?;
                                return Ok((latest.clone(), false));
                            }
                            // A re-sent deploy that failed (say, pushed after the deploy was announced) is retried.
                            let retried = sqlx::query_as::<$db, Deploy>(
                                "update deploys set status = 'pending', failure_reason = null where id = $1 returning *",
                            )
                            .bind(latest.id)
                            .fetch_one(&mut *tx)
                            .await?;
                            enqueue_in(&mut *tx, &range_job(retried.id), now).await?;
                            tx.commit().await?;
                            return Ok((retried, false));
                        }
                    }
                    let previous = sqlx::query_as::<$db, Deploy>(
                        "select * from deploys where project_id = $1 and environment = $2 and status <> 'failed' \
                         order by seq desc limit 1",
                    )
                    .bind(d.project_id)
                    .bind(&d.environment)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let base_sha = d.previous_sha.clone().or_else(|| previous.as_ref().map(|p| p.sha.clone()));
                    let seq = latest.map_or(1, |l| l.seq + 1);
                    let inserted = sqlx::query_as::<$db, Deploy>(
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
                    enqueue_in(&mut *tx, &range_job(deploy.id), now).await?;
                    tx.commit().await?;
                    return Ok((deploy, true));
                }
                Err(StoreError::Conflict("too many concurrent deploys of this environment; retry".into()))
            }

            async fn deploy(&self, id: i64) -> StoreResult<Option<Deploy>> {
                Ok(sqlx::query_as::<$db, Deploy>("select * from deploys where id = $1")
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
                Ok(sqlx::query_as::<$db, Deploy>(
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

            async fn finish_deploy_range(&self, deploy_id: i64, o: &RangeOutcome, now: i64) -> StoreResult<()> {
                use $crate::store::common::{encode_commits, COMMIT_COLUMNS, INSERT_BATCH};
                let encoded = encode_commits(&o.commits)?;
                let mut tx = self.write.begin().await?;
                // An earlier attempt may have been cut off after writing; start this deploy's links afresh.
                sqlx::query("delete from deploy_commits where deploy_id = $1")
                    .bind(deploy_id)
                    .execute(&mut *tx)
                    .await?;
                let project_id: i64 = sqlx::query_scalar("select project_id from deploys where id = $1")
                    .bind(deploy_id)
                    .fetch_one(&mut *tx)
                    .await?;
                for chunk in encoded.chunks(INSERT_BATCH) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                        "insert into commits (project_id, {COMMIT_COLUMNS}) "
                    ));
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
                let ords: Vec<(usize, &CommitRecord)> = o.commits.iter().enumerate().collect();
                for chunk in ords.chunks(INSERT_BATCH) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("insert into deploy_commits (deploy_id, sha, ord) ");
                    qb.push_values(chunk, |mut b, (ord, c)| {
                        b.push_bind(deploy_id).push_bind(&c.sha).push_bind(*ord as i64);
                    });
                    qb.push(" on conflict do nothing");
                    qb.build().execute(&mut *tx).await?;
                }
                sqlx::query(
                    "update deploys set status = 'ready', base_sha = $1, range_status = $2, merge_base = $3, \
                     commit_count = $4, commits_stored = $5, failure_reason = null, processed_at = $6 where id = $7",
                )
                .bind(&o.base_sha)
                .bind(&o.range_status)
                .bind(&o.merge_base)
                .bind(o.commit_count)
                .bind(o.commits.len() as i64)
                .bind(now)
                .bind(deploy_id)
                .execute(&mut *tx)
                .await?;
                // Groups resolved "in the next release" take effect with this deploy, baselined on it.
                let environment: String = sqlx::query_scalar("select environment from deploys where id = $1")
                    .bind(deploy_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let pending: Vec<i64> = sqlx::query_scalar(
                    "select id from error_groups where project_id = $1 and status = 'resolved_in_next_release' \
                     and (resolve_next_environment is null or resolve_next_environment = $2)",
                )
                .bind(project_id)
                .bind(&environment)
                .fetch_all(&mut *tx)
                .await?;
                for group_id in pending {
                    resolve_in(&mut *tx, group_id, project_id, None, now).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn fail_deploy(&self, deploy_id: i64, reason: &str, now: i64) -> StoreResult<()> {
                sqlx::query(
                    "update deploys set status = 'failed', failure_reason = $1, processed_at = $2 where id = $3",
                )
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
                use $crate::store::common::{CommitRow, COMMIT_COLUMNS};
                let sql = format!(
                    "select {} from deploy_commits dc join deploys d on d.id = dc.deploy_id \
                     join commits c on c.project_id = d.project_id and c.sha = dc.sha \
                     where dc.deploy_id = $1 order by dc.ord",
                    COMMIT_COLUMNS.split(", ").map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ")
                );
                let rows = sqlx::query_as::<$db, CommitRow>(&sql).bind(deploy_id).fetch_all(&self.read).await?;
                Ok(rows.into_iter().map(CommitRow::into_record).collect::<anyhow::Result<Vec<_>>>()?)
            }

            async fn insert_event(&self, e: &NewEvent, follow: fn(i64) -> NewJob, now: i64) -> StoreResult<Option<i64>> {
                let mut tx = self.write.begin().await?;
                // The unique (project, event_id) makes concurrent retries of one delivery store it once.
                let id: Option<i64> = sqlx::query_scalar(
                    "insert into events (project_id, event_id, received_at, occurred_at, release, environment, \
                     platform, payload) values ($1, $2, $3, $4, $5, $6, $7, $8) \
                     on conflict (project_id, event_id) do nothing returning id",
                )
                .bind(e.project_id)
                .bind(&e.event_id)
                .bind(now)
                .bind(e.occurred_at)
                .bind(&e.release)
                .bind(&e.environment)
                .bind(&e.platform)
                .bind(&e.payload)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(id) = id {
                    enqueue_in(&mut *tx, &follow(id), now).await?;
                }
                tx.commit().await?;
                Ok(id)
            }

            async fn event(&self, id: i64) -> StoreResult<Option<StoredEvent>> {
                Ok(sqlx::query_as::<$db, StoredEvent>("select * from events where id = $1")
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?)
            }

            async fn group_event(
                &self,
                e: &StoredEvent,
                g: &GroupUpdate,
                follow: fn(Grouped) -> Vec<NewJob>,
            ) -> StoreResult<(i64, bool)> {
                let mut tx = self.write.begin().await?;
                let already: Option<Option<i64>> = sqlx::query_scalar("select group_id from events where id = $1")
                    .bind(e.id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(Some(group_id)) = already {
                    tx.commit().await?;
                    return Ok((group_id, false));
                }
                // Newest event wins title and "last event"; the earliest decides first seen and first release.
                let (group_id, times_seen, status): (i64, i64, String) = sqlx::query_as(
                    "insert into error_groups (project_id, fingerprint, title, culprit, level, status, first_seen, \
                     last_seen, first_release, times_seen, last_event_id) \
                     values ($1, $2, $3, $4, $5, 'unresolved', $6, $6, $7, 1, $8) \
                     on conflict (project_id, fingerprint) do update set \
                     times_seen = error_groups.times_seen + 1, \
                     title = case when excluded.last_seen >= error_groups.last_seen then excluded.title else error_groups.title end, \
                     culprit = case when excluded.last_seen >= error_groups.last_seen then excluded.culprit else error_groups.culprit end, \
                     level = case when excluded.last_seen >= error_groups.last_seen then excluded.level else error_groups.level end, \
                     last_event_id = case when excluded.last_seen >= error_groups.last_seen then excluded.last_event_id else error_groups.last_event_id end, \
                     last_seen = case when excluded.last_seen > error_groups.last_seen then excluded.last_seen else error_groups.last_seen end, \
                     first_release = case when excluded.first_seen < error_groups.first_seen then excluded.first_release else error_groups.first_release end, \
                     first_seen = case when excluded.first_seen < error_groups.first_seen then excluded.first_seen else error_groups.first_seen end \
                     returning id, times_seen, status",
                )
                .bind(e.project_id)
                .bind(&g.fingerprint)
                .bind(&g.title)
                .bind(&g.culprit)
                .bind(&g.level)
                .bind(e.occurred_at)
                .bind(&e.release)
                .bind(e.id)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "insert into group_counts (group_id, release, environment, count, first_seen, last_seen) \
                     values ($1, $2, $3, 1, $4, $4) on conflict (group_id, release, environment) do update set \
                     count = group_counts.count + 1, \
                     first_seen = case when excluded.first_seen < group_counts.first_seen then excluded.first_seen else group_counts.first_seen end, \
                     last_seen = case when excluded.last_seen > group_counts.last_seen then excluded.last_seen else group_counts.last_seen end",
                )
                .bind(group_id)
                .bind(e.release.as_deref().unwrap_or(""))
                .bind(e.environment.as_deref().unwrap_or(""))
                .bind(e.occurred_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query("update events set group_id = $1 where id = $2")
                    .bind(group_id)
                    .bind(e.id)
                    .execute(&mut *tx)
                    .await?;
                // What follows is the caller's rule; queued in this transaction so the work cannot be lost.
                let grouped = Grouped { group_id, event_id: e.id, was_resolved: status == "resolved", new_group: times_seen == 1 };
                for job in follow(grouped) {
                    enqueue_in(&mut *tx, &job, e.received_at).await?;
                }
                tx.commit().await?;
                Ok((group_id, times_seen == 1))
            }

            async fn list_groups(&self, project_id: i64, f: &GroupFilter) -> StoreResult<Vec<Group>> {
                Ok(sqlx::query_as::<$db, Group>(
                    "select g.* from error_groups g where g.project_id = $1 and ($2 is null or g.status = $2) \
                     and ($3 is null or exists (select 1 from group_counts c where c.group_id = g.id and c.release = $3)) \
                     and ($4 is null or exists (select 1 from group_counts c where c.group_id = g.id and c.environment = $4)) \
                     order by g.last_seen desc, g.id desc limit $5 offset $6",
                )
                .bind(project_id)
                .bind(&f.status)
                .bind(&f.release)
                .bind(&f.environment)
                .bind(f.limit)
                .bind(f.offset)
                .fetch_all(&self.read)
                .await?)
            }

            async fn set_group_assignment(
                &self,
                group_id: i64,
                assignment: &str,
                assignee: Option<&str>,
                now: i64,
            ) -> StoreResult<()> {
                sqlx::query("update error_groups set assignment = $1, assignee = $2, assigned_at = $3 where id = $4")
                    .bind(assignment)
                    .bind(assignee)
                    .bind(now)
                    .bind(group_id)
                    .execute(&self.write)
                    .await?;
                Ok(())
            }

            async fn set_project_settings(&self, project_id: i64, settings: &str) -> StoreResult<()> {
                let done = sqlx::query("update projects set settings = $1 where id = $2")
                    .bind(settings)
                    .bind(project_id)
                    .execute(&self.write)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn deploy_for_release(
                &self,
                project_id: i64,
                environment: Option<&str>,
                release: &str,
            ) -> StoreResult<Option<Deploy>> {
                let by_version = sqlx::query_as::<$db, Deploy>(
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
                Ok(sqlx::query_as::<$db, Deploy>(
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
                Ok(sqlx::query_as::<$db, Deploy>(
                    "select * from deploys where project_id = $1 and status = 'ready' \
                     and ($2 is null or environment = $2) order by id desc limit 1",
                )
                .bind(project_id)
                .bind(environment)
                .fetch_optional(&self.read)
                .await?)
            }

            async fn resolve_group(&self, group_id: i64, fixed_in_commit: Option<&str>, now: i64) -> StoreResult<()> {
                let mut tx = self.write.begin().await?;
                let project_id: i64 = sqlx::query_scalar("select project_id from error_groups where id = $1")
                    .bind(group_id)
                    .fetch_one(&mut *tx)
                    .await?;
                resolve_in(&mut *tx, group_id, project_id, fixed_in_commit, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn resolve_group_in_next_release(&self, group_id: i64, environment: Option<&str>) -> StoreResult<()> {
                let done = sqlx::query(
                    "update error_groups set status = 'resolved_in_next_release', resolve_next_environment = $1 \
                     where id = $2",
                )
                .bind(environment)
                .bind(group_id)
                .execute(&self.write)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn unresolve_group(&self, group_id: i64) -> StoreResult<()> {
                let mut tx = self.write.begin().await?;
                sqlx::query("delete from group_resolutions where group_id = $1").bind(group_id).execute(&mut *tx).await?;
                sqlx::query("update error_groups set status = 'unresolved', resolved_at = null where id = $1")
                    .bind(group_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn ignore_group(&self, group_id: i64) -> StoreResult<()> {
                set_status(&self.write, group_id, "ignored").await
            }

            async fn group_resolutions(&self, group_id: i64) -> StoreResult<Vec<(String, String)>> {
                Ok(sqlx::query_as(
                    "select environment, sha from group_resolutions where group_id = $1 order by environment",
                )
                .bind(group_id)
                .fetch_all(&self.read)
                .await?)
            }

            async fn mark_regressed(&self, group_id: i64, release: &str, now: i64, github_job: Option<&NewJob>) -> StoreResult<bool> {
                let mut tx = self.write.begin().await?;
                let done = sqlx::query(
                    "update error_groups set status = 'unresolved', resolved_at = null, regressed_at = $1, \
                     regressed_in = $2, times_regressed = times_regressed + 1 where id = $3 and status = 'resolved'",
                )
                .bind(now)
                .bind(release)
                .bind(group_id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 1 {
                    sqlx::query("delete from group_resolutions where group_id = $1").bind(group_id).execute(&mut *tx).await?;
                    if let Some(job) = github_job {
                        enqueue_in(&mut *tx, job, now).await?;
                    }
                }
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_release_flags(
                &self,
                group_id: i64,
                new_in: Option<&str>,
                introduced_by: Option<&str>,
                github_job: Option<&NewJob>,
                now: i64,
            ) -> StoreResult<()> {
                let mut tx = self.write.begin().await?;
                sqlx::query("update error_groups set new_in_release = $1, introduced_by = $2 where id = $3")
                    .bind(new_in)
                    .bind(introduced_by)
                    .bind(group_id)
                    .execute(&mut *tx)
                    .await?;
                if let Some(job) = github_job {
                    enqueue_in(&mut *tx, job, now).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn group_by_issue(&self, project_id: i64, issue: i64) -> StoreResult<Option<Group>> {
                Ok(sqlx::query_as::<$db, Group>("select * from error_groups where project_id = $1 and github_issue = $2")
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

            async fn insert_webhook(
                &self,
                delivery_id: &str,
                event: &str,
                payload: &str,
                job: &NewJob,
                now: i64,
            ) -> StoreResult<bool> {
                let mut tx = self.write.begin().await?;
                let inserted = sqlx::query(
                    "insert into webhook_deliveries (delivery_id, event, payload, received_at) values ($1, $2, $3, $4) \
                     on conflict (delivery_id) do nothing",
                )
                .bind(delivery_id)
                .bind(event)
                .bind(payload)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if inserted {
                    enqueue_in(&mut *tx, job, now).await?;
                }
                tx.commit().await?;
                Ok(inserted)
            }

            async fn webhook(&self, delivery_id: &str) -> StoreResult<Option<(String, String)>> {
                Ok(sqlx::query_as("select event, payload from webhook_deliveries where delivery_id = $1")
                    .bind(delivery_id)
                    .fetch_optional(&self.read)
                    .await?)
            }

            async fn projects_for_github_repo(&self, repo: &str) -> StoreResult<Vec<Project>> {
                Ok(sqlx::query_as::<$db, Project>("select * from projects where lower(github_repo) = lower($1) order by id")
                    .bind(repo)
                    .fetch_all(&self.read)
                    .await?)
            }

            async fn groups_of_release(&self, project_id: i64, version: &str) -> StoreResult<Vec<Group>> {
                Ok(sqlx::query_as::<$db, Group>(
                    "select * from error_groups where project_id = $1 and \
                     (new_in_release = $2 or introduced_by = $2 or regressed_in = $2) order by id",
                )
                .bind(project_id)
                .bind(version)
                .fetch_all(&self.read)
                .await?)
            }

            async fn count_events_between(&self, project_id: i64, environment: &str, from: i64, to: i64) -> StoreResult<i64> {
                Ok(sqlx::query_scalar(
                    "select count(*) from events where project_id = $1 and environment = $2 \
                     and occurred_at >= $3 and occurred_at < $4",
                )
                .bind(project_id)
                .bind(environment)
                .bind(from)
                .bind(to)
                .fetch_one(&self.read)
                .await?)
            }

            async fn group(&self, id: i64) -> StoreResult<Option<Group>> {
                Ok(sqlx::query_as::<$db, Group>("select * from error_groups where id = $1")
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?)
            }

            async fn group_counts(&self, group_id: i64) -> StoreResult<Vec<GroupCount>> {
                Ok(sqlx::query_as::<$db, GroupCount>(
                    "select release, environment, count, first_seen, last_seen from group_counts \
                     where group_id = $1 order by first_seen, release, environment",
                )
                .bind(group_id)
                .fetch_all(&self.read)
                .await?)
            }

            async fn count_items(&self, project_id: i64, counts: &[(String, i64)]) -> StoreResult<()> {
                if counts.is_empty() {
                    return Ok(());
                }
                let mut tx = self.write.begin().await?;
                for (item_type, n) in counts {
                    sqlx::query(
                        "insert into item_counts (project_id, item_type, count) values ($1, $2, $3) \
                         on conflict (project_id, item_type) do update set count = item_counts.count + excluded.count",
                    )
                    .bind(project_id)
                    .bind(item_type)
                    .bind(n)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn item_counts(&self, project_id: i64) -> StoreResult<Vec<(String, i64)>> {
                Ok(sqlx::query_as("select item_type, count from item_counts where project_id = $1 order by item_type")
                    .bind(project_id)
                    .fetch_all(&self.read)
                    .await?)
            }

            async fn queue_depths(&self) -> StoreResult<Vec<(String, i64, i64)>> {
                Ok(sqlx::query_as(
                    "select kind, count(*), min(created_at) from jobs where status in ('queued', 'running') \
                     group by kind order by kind",
                )
                .fetch_all(&self.read)
                .await?)
            }

            async fn purge(&self, what: $crate::store::Purge, before: i64, limit: i64) -> StoreResult<u64> {
                use $crate::store::Purge;
                // One bounded batch per call, so a large backlog never holds the write lock for long.
                let sql = match what {
                    Purge::Events => {
                        "delete from events where id in (select e.id from events e where e.received_at < $1 \
                         and not exists (select 1 from error_groups g where g.last_event_id = e.id) limit $2)"
                    }
                    Purge::FinishedJobs => {
                        "delete from jobs where id in (select id from jobs where status in ('done', 'dead') \
                         and updated_at < $1 limit $2)"
                    }
                    Purge::WebhookDeliveries => {
                        "delete from webhook_deliveries where delivery_id in (select delivery_id \
                         from webhook_deliveries where received_at < $1 limit $2)"
                    }
                };
                Ok(sqlx::query(sql).bind(before).bind(limit).execute(&self.write).await?.rows_affected())
            }

            async fn event_count(&self, project_id: i64) -> StoreResult<i64> {
                Ok(sqlx::query_scalar("select count(*) from events where project_id = $1")
                    .bind(project_id)
                    .fetch_one(&self.read)
                    .await?)
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
                let done = sqlx::query(
                    "update jobs set lease_until = $1 where id = $2 and lease_token = $3 and status = 'running'",
                )
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
                Ok(sqlx::query_as::<$db, JobState>(
                    "select id, kind, payload, status, attempts, last_error from jobs order by id",
                )
                .fetch_all(&self.read)
                .await?)
            }
        }

        /// Resolves a group inside the caller's transaction: baseline per environment = its latest ready deploy.
        async fn resolve_in(
            tx: &mut <$db as sqlx::Database>::Connection,
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

        async fn set_status(pool: &sqlx::Pool<$db>, group_id: i64, status: &str) -> StoreResult<()> {
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
        async fn enqueue_in(tx: &mut <$db as sqlx::Database>::Connection, job: &NewJob, now: i64) -> StoreResult<()> {
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
    };
}

pub(super) use impl_store;
