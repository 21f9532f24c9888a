//! Error groups: filing events into them, their counts, assignment and status.
//!
//! Shared by both backends: compiled once inside each with `Db` and `Backend` its own (see `store/mod.rs`).

use super::helpers::{enqueue_in, history_in, resolve_in, set_status};
use super::{Backend, Db};
use crate::store::*;

#[async_trait::async_trait]
impl crate::store::GroupStore for Backend {
    async fn group_batch(
        &self,
        limit: i64,
        classify: Classify<'_>,
        follow: fn(Grouped) -> Vec<NewJob>,
        now: i64,
    ) -> StoreResult<BatchGrouped> {
        let mut tx = self.write.begin().await?;
        let events: Vec<StoredEvent> = sqlx::query_as::<Db, StoredEvent>(&format!(
            "select * from events where group_id is null and grouping_error is null order by id limit $1{}",
            super::SKIP_LOCKED
        ))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut done = BatchGrouped::default();
        // Ordered by (project, fingerprint): concurrent batches lock groups in one order, so they cannot deadlock.
        let mut groups: std::collections::BTreeMap<(i64, String), BatchGroup> = std::collections::BTreeMap::new();
        for e in &events {
            match classify(e) {
                Ok(update) => {
                    let key = (e.project_id, update.fingerprint.clone());
                    groups.entry(key).or_insert_with(|| BatchGroup::new(e, &update)).add(e, update);
                }
                Err(why) => {
                    sqlx::query("update events set grouping_error = $1 where id = $2")
                        .bind(&why)
                        .bind(e.id)
                        .execute(&mut *tx)
                        .await?;
                    done.failed += 1;
                }
            }
        }
        for ((project_id, fingerprint), b) in groups {
            // The newest event wins title and "last event"; the earliest decides first seen and first release.
            let (group_id, times_seen, status): (i64, i64, String) = sqlx::query_as(
                "insert into error_groups (project_id, fingerprint, title, culprit, level, status, first_seen, \
                 last_seen, first_release, times_seen, last_event_id) \
                 values ($1, $2, $3, $4, $5, 'unresolved', $6, $7, $8, $9, $10) \
                 on conflict (project_id, fingerprint) do update set \
                 times_seen = error_groups.times_seen + excluded.times_seen, \
                 title = case when excluded.last_seen >= error_groups.last_seen \
                     then excluded.title else error_groups.title end, \
                 culprit = case when excluded.last_seen >= error_groups.last_seen \
                     then excluded.culprit else error_groups.culprit end, \
                 level = case when excluded.last_seen >= error_groups.last_seen \
                     then excluded.level else error_groups.level end, \
                 last_event_id = case when excluded.last_seen >= error_groups.last_seen \
                     then excluded.last_event_id else error_groups.last_event_id end, \
                 last_seen = case when excluded.last_seen > error_groups.last_seen \
                     then excluded.last_seen else error_groups.last_seen end, \
                 first_release = case when excluded.first_seen < error_groups.first_seen \
                     then excluded.first_release else error_groups.first_release end, \
                 first_seen = case when excluded.first_seen < error_groups.first_seen \
                     then excluded.first_seen else error_groups.first_seen end \
                 returning id, times_seen, status",
            )
            .bind(project_id)
            .bind(&fingerprint)
            .bind(&b.last.title)
            .bind(&b.last.culprit)
            .bind(&b.last.level)
            .bind(b.first_seen)
            .bind(b.last_seen)
            .bind(&b.first_release)
            .bind(b.events.len() as i64)
            .bind(b.last_event)
            .fetch_one(&mut *tx)
            .await?;
            for ((release, environment), c) in &b.counts {
                sqlx::query(
                    "insert into group_counts (group_id, release, environment, count, first_seen, last_seen) \
                     values ($1, $2, $3, $4, $5, $6) on conflict (group_id, release, environment) do update set \
                     count = group_counts.count + excluded.count, \
                     first_seen = case when excluded.first_seen < group_counts.first_seen \
                         then excluded.first_seen else group_counts.first_seen end, \
                     last_seen = case when excluded.last_seen > group_counts.last_seen \
                         then excluded.last_seen else group_counts.last_seen end",
                )
                .bind(group_id)
                .bind(release)
                .bind(environment)
                .bind(c.count)
                .bind(c.first_seen)
                .bind(c.last_seen)
                .execute(&mut *tx)
                .await?;
            }
            let mut q = sqlx::QueryBuilder::<Db>::new("update events set group_id = ");
            q.push_bind(group_id).push(" where id in (");
            let mut ids = q.separated(", ");
            for id in &b.events {
                ids.push_bind(*id);
            }
            q.push(")");
            q.build().execute(&mut *tx).await?;
            done.events += b.events.len() as u64;
            done.groups += 1;
            let new_group = times_seen == b.events.len() as i64;
            done.new_groups += u64::from(new_group);
            // What follows is the caller's rule; queued in this transaction so the work cannot be lost.
            let grouped = Grouped {
                group_id,
                first_event: b.first_event,
                was_resolved: status == "resolved",
                new_group,
                builds: b.counts.values().map(|c| c.event).collect(),
            };
            for job in follow(grouped) {
                enqueue_in(&mut tx, &job, now).await?;
            }
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn list_groups(&self, project_id: i64, f: &GroupFilter) -> StoreResult<Vec<Group>> {
        let order = match f.order {
            GroupOrder::LastSeen => "g.last_seen desc, g.id desc",
            GroupOrder::Events => "g.times_seen desc, g.id desc",
            GroupOrder::Newest => "g.first_seen desc, g.id desc",
        };
        // The title filter is a substring match: the caller's `%`, `_` and `\` are matched as themselves.
        let text = f.text.as_deref().map(|t| {
            let escaped = t.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("%{escaped}%")
        });
        let sql = format!(
            "select g.* from error_groups g where g.project_id = $1 and ($2 is null or g.status = $2) \
             and ($3 is null or exists (select 1 from group_counts c where c.group_id = g.id and c.release = $3)) \
             and ($4 is null or exists (select 1 from group_counts c where c.group_id = g.id and c.environment = $4)) \
             and ($7 is null or lower(g.title) like $7 escape '\\') and ($8 is null or g.assignee = $8) \
             order by {order} limit $5 offset $6"
        );
        Ok(sqlx::query_as::<Db, Group>(&sql)
            .bind(project_id)
            .bind(&f.status)
            .bind(&f.release)
            .bind(&f.environment)
            .bind(f.limit)
            .bind(f.offset)
            .bind(text)
            .bind(&f.assignee)
            .fetch_all(&self.read)
            .await?)
    }

    async fn set_group_assignment(
        &self,
        group_id: i64,
        deploy_id: Option<i64>,
        assignment: &str,
        assignee: Option<&str>,
        flags: Option<&ReleaseFlags<'_>>,
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query("update error_groups set assignment = $1, assignee = $2, assigned_at = $3 where id = $4")
            .bind(assignment)
            .bind(assignee)
            .bind(now)
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        if let Some(flags) = flags {
            sqlx::query("update error_groups set new_in_release = $1, introduced_by = $2 where id = $3")
                .bind(flags.new_in)
                .bind(flags.introduced_by)
                .bind(group_id)
                .execute(&mut *tx)
                .await?;
            if let Some(job) = flags.github_job {
                enqueue_in(&mut tx, job, now).await?;
            }
        }
        if let Some(deploy_id) = deploy_id {
            sqlx::query(
                "insert into group_assignments (group_id, deploy_id, assignment, assignee, assigned_at) \
                 values ($1, $2, $3, $4, $5) on conflict (group_id, deploy_id) do update set \
                 assignment = excluded.assignment, assignee = excluded.assignee, assigned_at = excluded.assigned_at",
            )
            .bind(group_id)
            .bind(deploy_id)
            .bind(assignment)
            .bind(assignee)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn assignments_at_deploy(&self, deploy_id: i64) -> StoreResult<Vec<(i64, String, Option<String>)>> {
        Ok(sqlx::query_as(
            "select group_id, assignment, assignee from group_assignments where deploy_id = $1 order by group_id",
        )
        .bind(deploy_id)
        .fetch_all(&self.read)
        .await?)
    }

    async fn resolve_group(&self, group_id: i64, fixed_in_commit: Option<&str>, now: i64) -> StoreResult<()> {
        let mut tx = self.write.begin().await?;
        let project_id: i64 = sqlx::query_scalar("select project_id from error_groups where id = $1")
            .bind(group_id)
            .fetch_one(&mut *tx)
            .await?;
        resolve_in(&mut tx, group_id, project_id, fixed_in_commit, now).await?;
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
        // Unresolved: a fixing commit recorded for the old resolution no longer says anything.
        sqlx::query(
            "update error_groups set status = 'unresolved', resolved_at = null, fixed_in_commit = null where id = $1",
        )
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
        Ok(sqlx::query_as("select environment, sha from group_resolutions where group_id = $1 order by environment")
            .bind(group_id)
            .fetch_all(&self.read)
            .await?)
    }

    async fn mark_regressed(
        &self,
        group_id: i64,
        release: &str,
        now: i64,
        github_job: Option<&NewJob>,
        history: &HistoryEntry,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(
            "update error_groups set status = 'unresolved', resolved_at = null, fixed_in_commit = null, \
             regressed_at = $1, regressed_in = $2, times_regressed = times_regressed + 1 \
             where id = $3 and status = 'resolved'",
        )
        .bind(now)
        .bind(release)
        .bind(group_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            sqlx::query("delete from group_resolutions where group_id = $1").bind(group_id).execute(&mut *tx).await?;
            if let Some(job) = github_job {
                enqueue_in(&mut tx, job, now).await?;
            }
            history_in(&mut tx, history).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_assignee(
        &self,
        group_id: i64,
        assignee: Option<&str>,
        history: &HistoryEntry,
        github_job: Option<&NewJob>,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await?;
        let done = sqlx::query("update error_groups set assignee = $1 where id = $2")
            .bind(assignee)
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        history_in(&mut tx, history).await?;
        if let Some(job) = github_job {
            enqueue_in(&mut tx, job, history.at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn add_history(&self, entry: &HistoryEntry) -> StoreResult<()> {
        let mut conn = self.write.acquire().await?;
        history_in(&mut conn, entry).await
    }

    async fn group_history(&self, group_id: i64) -> StoreResult<Vec<HistoryEntry>> {
        Ok(sqlx::query_as::<Db, HistoryEntry>(
            "select group_id, at, kind, release, environment, deploy_id, detail from group_history \
             where group_id = $1 order by at, id",
        )
        .bind(group_id)
        .fetch_all(&self.read)
        .await?)
    }

    async fn group_assignment_history(&self, group_id: i64) -> StoreResult<Vec<DeployAssignment>> {
        Ok(sqlx::query_as::<Db, DeployAssignment>(
            "select a.deploy_id, d.version, d.environment, a.assignee, a.assignment, a.assigned_at \
             from group_assignments a join deploys d on d.id = a.deploy_id where a.group_id = $1 \
             order by a.assigned_at, a.deploy_id",
        )
        .bind(group_id)
        .fetch_all(&self.read)
        .await?)
    }

    async fn group_counts_in_build(
        &self,
        project_id: i64,
        release: &str,
        environment: &str,
    ) -> StoreResult<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(
            "select c.group_id, c.count from group_counts c join error_groups g on g.id = c.group_id \
             where g.project_id = $1 and c.release = $2 and c.environment = $3",
        )
        .bind(project_id)
        .bind(release)
        .bind(environment)
        .fetch_all(&self.read)
        .await?)
    }

    async fn build_summary(&self, project_id: i64, release: &str, environment: &str) -> StoreResult<(i64, i64, i64)> {
        let (events, new): (Option<i64>, i64) = sqlx::query_as(
            "select cast(sum(c.count) as bigint), count(case when g.new_in_release = $2 then 1 end) from group_counts c \
             join error_groups g on g.id = c.group_id \
             where g.project_id = $1 and c.release = $2 and c.environment = $3",
        )
        .bind(project_id)
        .bind(release)
        .bind(environment)
        .fetch_one(&self.read)
        .await?;
        let regressed = self.regressed_in_build(project_id, release, environment).await?.len() as i64;
        Ok((events.unwrap_or(0), new, regressed))
    }

    async fn regressed_in_build(&self, project_id: i64, release: &str, environment: &str) -> StoreResult<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "select distinct h.group_id from group_history h join error_groups g on g.id = h.group_id \
             where g.project_id = $1 and h.kind = 'regressed' and h.release = $2 and h.environment = $3 \
             order by h.group_id",
        )
        .bind(project_id)
        .bind(release)
        .bind(environment)
        .fetch_all(&self.read)
        .await?)
    }

    async fn groups_of_release(&self, project_id: i64, version: &str) -> StoreResult<Vec<Group>> {
        Ok(sqlx::query_as::<Db, Group>(
            "select * from error_groups where project_id = $1 and \
             (new_in_release = $2 or introduced_by = $2 or regressed_in = $2) order by id",
        )
        .bind(project_id)
        .bind(version)
        .fetch_all(&self.read)
        .await?)
    }

    async fn groups_waiting_for_release(&self, project_id: i64, environment: &str) -> StoreResult<Vec<Group>> {
        Ok(sqlx::query_as::<Db, Group>(
            "select * from error_groups where project_id = $1 and status = 'resolved_in_next_release' \
             and (resolve_next_environment is null or resolve_next_environment = $2) order by id",
        )
        .bind(project_id)
        .bind(environment)
        .fetch_all(&self.read)
        .await?)
    }

    async fn group(&self, id: i64) -> StoreResult<Option<Group>> {
        Ok(sqlx::query_as::<Db, Group>("select * from error_groups where id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?)
    }

    async fn group_counts(&self, group_id: i64) -> StoreResult<Vec<GroupCount>> {
        Ok(sqlx::query_as::<Db, GroupCount>(
            "select release, environment, count, first_seen, last_seen from group_counts \
             where group_id = $1 order by first_seen, release, environment",
        )
        .bind(group_id)
        .fetch_all(&self.read)
        .await?)
    }
}

/// One group's share of a grouping batch.
struct BatchGroup {
    events: Vec<i64>,
    first_seen: i64,
    first_event: i64,
    first_release: Option<String>,
    last_seen: i64,
    last_event: i64,
    /// Title, culprit and level of the newest event.
    last: GroupUpdate,
    /// Per (release, environment): count, first and last seen, and one event.
    counts: std::collections::BTreeMap<(String, String), BuildCount>,
}

struct BuildCount {
    count: i64,
    first_seen: i64,
    last_seen: i64,
    event: i64,
}

impl BatchGroup {
    fn new(e: &StoredEvent, update: &GroupUpdate) -> BatchGroup {
        BatchGroup {
            events: Vec::new(),
            first_seen: e.occurred_at,
            first_event: e.id,
            first_release: e.release.clone(),
            last_seen: e.occurred_at,
            last_event: e.id,
            last: GroupUpdate {
                fingerprint: update.fingerprint.clone(),
                title: update.title.clone(),
                culprit: update.culprit.clone(),
                level: update.level.clone(),
            },
            counts: std::collections::BTreeMap::new(),
        }
    }

    fn add(&mut self, e: &StoredEvent, update: GroupUpdate) {
        self.events.push(e.id);
        if e.occurred_at < self.first_seen {
            self.first_seen = e.occurred_at;
            self.first_event = e.id;
            self.first_release = e.release.clone();
        }
        // Events come in id order: a later one with the same time is the newer.
        if e.occurred_at >= self.last_seen {
            self.last_seen = e.occurred_at;
            self.last_event = e.id;
            self.last = update;
        }
        let key = (e.release.clone().unwrap_or_default(), e.environment.clone().unwrap_or_default());
        let c = self.counts.entry(key).or_insert(BuildCount {
            count: 0,
            first_seen: e.occurred_at,
            last_seen: e.occurred_at,
            event: e.id,
        });
        c.count += 1;
        c.first_seen = c.first_seen.min(e.occurred_at);
        c.last_seen = c.last_seen.max(e.occurred_at);
    }
}
