//! GitHub webhook deliveries, stored before they are handled.
//!
//! Shared by both backends: compiled once inside each with `Db` and `Backend` its own (see `store/mod.rs`).

use super::helpers::enqueue_in;
use super::Backend;
use crate::store::*;

#[async_trait::async_trait]
impl crate::store::WebhookStore for Backend {
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
            enqueue_in(&mut tx, job, now).await?;
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
}
