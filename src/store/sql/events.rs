//! Events as received, and what intake counted.
//!
//! Shared by both backends: compiled once inside each with `Db` and `Backend` its own (see `store/mod.rs`).

use super::{Backend, Db};
use crate::store::*;

/// Events per multi-row insert: 8 values each.
const INSERT_CHUNK: usize = 500;

#[async_trait::async_trait]
impl crate::store::EventStore for Backend {
    async fn insert_event(&self, e: &NewEvent, now: i64) -> StoreResult<Option<i64>> {
        // The unique (project, event_id) makes concurrent retries of one delivery store it once.
        Ok(sqlx::query_scalar(
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
        .fetch_optional(&self.write)
        .await?)
    }

    async fn insert_events(&self, events: &[(i64, &NewEvent)], items: &[(i64, String, i64)]) -> StoreResult<u64> {
        let mut tx = self.write.begin().await?;
        let mut stored = 0;
        // Multi-row inserts, in chunks that keep the bound values well under SQLite's limit (32,766).
        for chunk in events.chunks(INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::<Db>::new(
                "insert into events (project_id, event_id, received_at, occurred_at, release, environment, \
                 platform, payload) ",
            );
            q.push_values(chunk, |mut row, (received_at, e)| {
                row.push_bind(e.project_id)
                    .push_bind(&e.event_id)
                    .push_bind(*received_at)
                    .push_bind(e.occurred_at)
                    .push_bind(&e.release)
                    .push_bind(&e.environment)
                    .push_bind(&e.platform)
                    .push_bind(&e.payload);
            });
            // A retried delivery (or a spooled request forwarded twice after a crash) stores once.
            q.push(" on conflict (project_id, event_id) do nothing");
            stored += q.build().execute(&mut *tx).await?.rows_affected();
        }
        for (project_id, item_type, n) in items {
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
        Ok(stored)
    }

    async fn event(&self, id: i64) -> StoreResult<Option<StoredEvent>> {
        Ok(sqlx::query_as::<Db, StoredEvent>("select * from events where id = $1")
            .bind(id)
            .fetch_optional(&self.read)
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

    async fn item_counts(&self, project_id: i64) -> StoreResult<Vec<(String, i64)>> {
        Ok(sqlx::query_as("select item_type, count from item_counts where project_id = $1 order by item_type")
            .bind(project_id)
            .fetch_all(&self.read)
            .await?)
    }

    async fn event_count(&self, project_id: i64) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("select count(*) from events where project_id = $1")
            .bind(project_id)
            .fetch_one(&self.read)
            .await?)
    }
}
