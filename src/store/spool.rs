//! The intake spool: a small SQLite file on the intake process's own disk where accepted events are made durable
//! before they are acknowledged, so intake never waits on the main database. A forwarder moves them into the main
//! store in batches and deletes them only once stored there.
//!
//! SQLite in WAL mode because it is already linked, a committed transaction survives SIGKILL (NORMAL sync writes
//! the WAL before the commit returns), and one file needs no compaction scheme of its own; writes go through one
//! connection so they never contend for the write lock with each other.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row as _, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use super::{NewEvent, StoreError, StoreResult};

/// Why the spool did not take a batch.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// It holds as much as it is allowed to; the client should come back later.
    #[error("the intake spool is full ({0} bytes waiting for the database)")]
    Full(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An event as spooled: id, occurred at, release, environment, platform, payload, project.
type SpooledEvent = (String, i64, Option<String>, Option<String>, Option<String>, String, i64);

/// One request's accepted events and the counts of what it skipped, as spooled.
pub struct Spooled {
    pub id: i64,
    pub project_id: i64,
    pub received_at: i64,
    pub events: Vec<NewEvent>,
    pub skipped: Vec<(String, i64)>,
}

pub struct Spool {
    write: SqlitePool,
    max_bytes: u64,
    /// Payload bytes spooled and not yet forwarded.
    waiting: std::sync::atomic::AtomicI64,
}

impl Spool {
    /// Opens (creating) the spool at `path`, holding at most `max_bytes` of payload.
    ///
    /// # Errors
    /// When the file cannot be opened or created.
    pub async fn open(path: &Path, max_bytes: u64) -> StoreResult<Spool> {
        let url = format!("sqlite:{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .after_release(super::sqlite::keep_unless_in_transaction)
            .connect_with(options)
            .await?;
        sqlx::query(
            "create table if not exists spool (id integer primary key autoincrement, project_id integer not null, \
             received_at integer not null, events text not null, skipped text not null, bytes integer not null)",
        )
        .execute(&write)
        .await?;
        let waiting: i64 = sqlx::query_scalar("select coalesce(sum(bytes), 0) from spool").fetch_one(&write).await?;
        Ok(Spool { write, max_bytes: max_bytes.max(1), waiting: waiting.into() })
    }

    /// Makes one request's events durable; once this returns `Ok` they may be acknowledged.
    ///
    /// # Errors
    /// [`SpoolError::Full`] past the size limit; store errors when the disk refuses the write.
    pub async fn push(
        &self,
        project_id: i64,
        received_at: i64,
        events: &[NewEvent],
        skipped: &[(String, i64)],
    ) -> Result<(), SpoolError> {
        let rows: Vec<[serde_json::Value; 7]> = events
            .iter()
            .map(|e| {
                [
                    e.event_id.clone().into(),
                    e.occurred_at.into(),
                    e.release.clone().into(),
                    e.environment.clone().into(),
                    e.platform.clone().into(),
                    e.payload.clone().into(),
                    e.project_id.into(),
                ]
            })
            .collect();
        let events_json = serde_json::to_string(&rows).map_err(|e| StoreError::Other(e.into()))?;
        let skipped_json = serde_json::to_string(skipped).map_err(|e| StoreError::Other(e.into()))?;
        let bytes = (events_json.len() + skipped_json.len()) as i64;
        use std::sync::atomic::Ordering::SeqCst;
        let waiting = self.waiting.load(SeqCst);
        if (waiting + bytes) as u64 > self.max_bytes {
            return Err(SpoolError::Full(waiting as u64));
        }
        sqlx::query("insert into spool (project_id, received_at, events, skipped, bytes) values ($1, $2, $3, $4, $5)")
            .bind(project_id)
            .bind(received_at)
            .bind(&events_json)
            .bind(&skipped_json)
            .bind(bytes)
            .execute(&self.write)
            .await
            .map_err(StoreError::from)?;
        self.waiting.fetch_add(bytes, SeqCst);
        Ok(())
    }

    /// The oldest `limit` spooled requests.
    ///
    /// # Errors
    /// When the spool cannot be read, or holds a row this version cannot read.
    pub async fn oldest(&self, limit: i64) -> StoreResult<Vec<Spooled>> {
        let rows = sqlx::query("select id, project_id, received_at, events, skipped from spool order by id limit $1")
            .bind(limit)
            .fetch_all(&self.write)
            .await?;
        rows.into_iter()
            .map(|r| {
                let events: Vec<SpooledEvent> =
                    serde_json::from_str(r.get::<&str, _>("events")).map_err(|e| StoreError::Other(e.into()))?;
                let skipped: Vec<(String, i64)> =
                    serde_json::from_str(r.get::<&str, _>("skipped")).map_err(|e| StoreError::Other(e.into()))?;
                Ok(Spooled {
                    id: r.get("id"),
                    project_id: r.get("project_id"),
                    received_at: r.get("received_at"),
                    events: events
                        .into_iter()
                        .map(|(event_id, occurred_at, release, environment, platform, payload, project_id)| NewEvent {
                            project_id,
                            event_id,
                            occurred_at,
                            release,
                            environment,
                            platform,
                            payload,
                        })
                        .collect(),
                    skipped,
                })
            })
            .collect()
    }

    /// Forgets spooled requests once they are in the main store.
    ///
    /// # Errors
    /// When the spool cannot be written (they are then forwarded again: storing is idempotent).
    pub async fn remove(&self, ids: &[i64]) -> StoreResult<()> {
        let mut tx = self.write.begin().await?;
        let mut freed = 0;
        for id in ids {
            let bytes: Option<i64> = sqlx::query_scalar("delete from spool where id = $1 returning bytes")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            freed += bytes.unwrap_or(0);
        }
        tx.commit().await?;
        self.waiting.fetch_sub(freed, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Payload bytes waiting to be forwarded.
    pub fn waiting_bytes(&self) -> u64 {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst).max(0) as u64
    }

    /// Requests waiting, and when the oldest was received (ms).
    ///
    /// # Errors
    /// When the spool cannot be read.
    pub async fn depth(&self) -> StoreResult<(i64, Option<i64>)> {
        Ok(sqlx::query_as("select count(*), min(received_at) from spool").fetch_one(&self.write).await?)
    }
}
