//! The database as a whole: its name, whether it answers and takes a write, and deleting what retention says is old.
//!
//! Shared by both backends: compiled once inside each with `Db` and `Backend` its own (see `store/mod.rs`).

use super::Backend;
use crate::store::*;

#[async_trait::async_trait]
impl crate::store::Store for Backend {
    fn backend(&self) -> &'static str {
        super::BACKEND
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("select 1").execute(&self.read).await?;
        Ok(())
    }

    async fn check_writable(&self, now: i64) -> StoreResult<()> {
        sqlx::query("update write_checks set checked_at = $1 where id = 1").bind(now).execute(&self.write).await?;
        Ok(())
    }

    async fn purge(&self, what: crate::store::Purge, before: i64, limit: i64) -> StoreResult<u64> {
        use crate::store::Purge;
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
}
