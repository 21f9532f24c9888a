//! Events as received, and what intake counted.
//!
//! Shared by both backends: compiled once inside each with `Db` and `Backend` its own (see `store/mod.rs`).

use super::helpers::enqueue_in;
use super::{Backend, Db};
use crate::store::*;

#[async_trait::async_trait]
impl crate::store::EventStore for Backend {
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
            enqueue_in(&mut tx, &follow(id), now).await?;
        }
        tx.commit().await?;
        Ok(id)
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

    async fn event_count(&self, project_id: i64) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("select count(*) from events where project_id = $1")
            .bind(project_id)
            .fetch_one(&self.read)
            .await?)
    }
}
