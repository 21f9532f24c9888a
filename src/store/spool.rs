//! The intake spool: a small SQLite file on the intake process's own disk where accepted events are made durable
//! before they are acknowledged, so intake never waits on the main database. A forwarder moves them into the main
//! store in batches and deletes them only once stored there.
//!
//! SQLite in WAL mode because it is already linked, a committed transaction survives SIGKILL (NORMAL sync writes
//! the WAL before the commit returns), and one file needs no compaction scheme of its own. Writes go through one
//! task owning one connection, which commits every write waiting at that moment in one transaction (group commit):
//! under load a commit serves many requests, and writes never contend for the write lock with each other.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, Row as _, SqliteConnection, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

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
    /// Writes go to one task that owns the write connection and commits whatever is waiting together.
    writes: mpsc::Sender<Write>,
    /// Reads (the forwarder's batches, the depth) see committed rows through WAL.
    read: SqlitePool,
    max_bytes: u64,
    /// Payload bytes spooled (or being spooled) and not yet forwarded.
    waiting: Arc<AtomicI64>,
}

/// One request's rows, or a batch of forwarded ids to forget, with where to send the outcome.
enum Write {
    Push { project_id: i64, received_at: i64, events: String, skipped: String, bytes: i64, done: Reply<()> },
    Remove { ids: Vec<i64>, done: Reply<i64> },
}

type Reply<T> = oneshot::Sender<StoreResult<T>>;

/// Writes committed together at most: enough to share a commit among every request in flight.
const GROUP_COMMIT: usize = 256;

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
            .busy_timeout(Duration::from_secs(5))
            // Not on a commit that acknowledges requests: a checkpoint there (copying the log into the file) held
            // every request of that commit for its duration. A task of its own checkpoints instead.
            .pragma("wal_autocheckpoint", "0");
        let mut conn = SqliteConnection::connect_with(&options).await?;
        sqlx::query(
            "create table if not exists spool (id integer primary key autoincrement, project_id integer not null, \
             received_at integer not null, events text not null, skipped text not null, bytes integer not null)",
        )
        .execute(&mut conn)
        .await?;
        let waiting: i64 = sqlx::query_scalar("select coalesce(sum(bytes), 0) from spool").fetch_one(&mut conn).await?;
        let read = SqlitePoolOptions::new().max_connections(2).connect_with(options.clone().read_only(true)).await?;
        let (writes, queue) = mpsc::channel(4 * GROUP_COMMIT);
        tokio::spawn(checkpoint_loop(writes.downgrade(), options.clone()));
        tokio::spawn(write_loop(queue, options, Some(conn)));
        Ok(Spool { writes, read, max_bytes: max_bytes.max(1), waiting: Arc::new(waiting.into()) })
    }

    /// Makes one request's events durable; once this returns `Ok` they may be acknowledged. Requests that arrive
    /// while a commit is under way share the next one (group commit).
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
        let events = serde_json::to_string(&rows).map_err(|e| StoreError::Other(e.into()))?;
        let skipped = serde_json::to_string(skipped).map_err(|e| StoreError::Other(e.into()))?;
        let bytes = (events.len() + skipped.len()) as i64;
        // Reserve the room first, so concurrent requests cannot together pass the limit.
        let before = self.waiting.fetch_add(bytes, SeqCst);
        if (before + bytes) as u64 > self.max_bytes {
            self.waiting.fetch_sub(bytes, SeqCst);
            return Err(SpoolError::Full(before.max(0) as u64));
        }
        let (done, outcome) = oneshot::channel();
        let write = Write::Push { project_id, received_at, events, skipped, bytes, done };
        let result = match self.writes.send(write).await {
            Ok(()) => outcome.await.unwrap_or_else(|_| Err(gone())),
            Err(_) => Err(gone()),
        };
        if result.is_err() {
            self.waiting.fetch_sub(bytes, SeqCst);
        }
        Ok(result?)
    }

    /// The oldest `limit` spooled requests.
    ///
    /// # Errors
    /// When the spool cannot be read, or holds a row this version cannot read.
    pub async fn oldest(&self, limit: i64) -> StoreResult<Vec<Spooled>> {
        let rows = sqlx::query("select id, project_id, received_at, events, skipped from spool order by id limit $1")
            .bind(limit)
            .fetch_all(&self.read)
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
        let (done, outcome) = oneshot::channel();
        self.writes.send(Write::Remove { ids: ids.to_vec(), done }).await.map_err(|_| gone())?;
        let freed = outcome.await.unwrap_or_else(|_| Err(gone()))?;
        self.waiting.fetch_sub(freed, SeqCst);
        Ok(())
    }

    /// Payload bytes waiting to be forwarded.
    pub fn waiting_bytes(&self) -> u64 {
        self.waiting.load(SeqCst).max(0) as u64
    }

    /// Requests waiting, and when the oldest was received (ms).
    ///
    /// # Errors
    /// When the spool cannot be read.
    pub async fn depth(&self) -> StoreResult<(i64, Option<i64>)> {
        Ok(sqlx::query_as("select count(*), min(received_at) from spool").fetch_one(&self.read).await?)
    }
}

fn gone() -> StoreError {
    StoreError::Other(anyhow::anyhow!("the spool's writer stopped"))
}

/// The spool's one writer: takes whatever writes are waiting (up to [`GROUP_COMMIT`]), commits them in one
/// transaction and answers each. After a failed write (a full disk, an I/O error, a lock held too long) the
/// connection is dropped — SQLite rolls back what it held — and the next write opens a fresh one, so the spool
/// recovers by itself when the cause goes away.
/// How often the spool's write-ahead log is copied into its file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Checkpoints the spool's log beside the writes (`PASSIVE`: as far as it can without waiting for the writer or
/// readers) until the spool is gone. A failure (a full disk) is retried on the next round; the log then grows until
/// the writes themselves fail and are answered as such.
async fn checkpoint_loop(alive: mpsc::WeakSender<Write>, options: SqliteConnectOptions) {
    let mut conn: Option<SqliteConnection> = None;
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        if alive.upgrade().is_none() {
            break;
        }
        if conn.is_none() {
            conn = SqliteConnection::connect_with(&options).await.ok();
        }
        if let Some(c) = conn.as_mut() {
            if let Err(e) = sqlx::query("pragma wal_checkpoint(passive)").execute(&mut *c).await {
                tracing::debug!(error = %e, "spool checkpoint failed; trying again");
                conn = None;
            }
        }
    }
}

async fn write_loop(
    mut queue: mpsc::Receiver<Write>,
    options: SqliteConnectOptions,
    mut conn: Option<SqliteConnection>,
) {
    let mut batch = Vec::with_capacity(GROUP_COMMIT);
    while queue.recv_many(&mut batch, GROUP_COMMIT).await > 0 {
        if conn.is_none() {
            conn = SqliteConnection::connect_with(&options).await.ok();
        }
        let outcome = match conn.as_mut() {
            Some(c) => commit(c, &batch).await,
            None => Err(StoreError::Unavailable("the spool file cannot be opened".into())),
        };
        match outcome {
            Ok(freed) => {
                for (write, freed) in batch.drain(..).zip(freed) {
                    match write {
                        Write::Push { done, .. } => {
                            let _ = done.send(Ok(()));
                        }
                        Write::Remove { done, .. } => {
                            let _ = done.send(Ok(freed));
                        }
                    }
                }
            }
            Err(e) => {
                conn = None;
                let message = e.to_string();
                let transient = matches!(e, StoreError::Unavailable(_));
                for write in batch.drain(..) {
                    let error = if transient {
                        StoreError::Unavailable(message.clone())
                    } else {
                        StoreError::Other(anyhow::anyhow!("{message}"))
                    };
                    match write {
                        Write::Push { done, .. } => {
                            let _ = done.send(Err(error));
                        }
                        Write::Remove { done, .. } => {
                            let _ = done.send(Err(error));
                        }
                    }
                }
            }
        }
    }
}

/// Writes `batch` in one transaction; returns, per write, the bytes it freed.
async fn commit(conn: &mut SqliteConnection, batch: &[Write]) -> StoreResult<Vec<i64>> {
    let pushes: Vec<&Write> = batch.iter().filter(|w| matches!(w, Write::Push { .. })).collect();
    let only_pushes = pushes.len() == batch.len();
    // Every request's rows in one statement (5 values each, far under SQLite's limit).
    let insert = (!pushes.is_empty()).then(|| {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "insert into spool (project_id, received_at, events, skipped, bytes) ",
        );
        q.push_values(pushes, |mut row, w| {
            if let Write::Push { project_id, received_at, events, skipped, bytes, .. } = w {
                row.push_bind(*project_id)
                    .push_bind(*received_at)
                    .push_bind(events.as_str())
                    .push_bind(skipped.as_str())
                    .push_bind(*bytes);
            }
        });
        q
    });
    // Only requests' rows: one statement is its own transaction, so the commit is one call to the connection's
    // thread instead of three (begin, insert, commit), each a hand-off between threads.
    if only_pushes {
        if let Some(mut q) = insert {
            q.build().execute(&mut *conn).await?;
        }
        return Ok(vec![0; batch.len()]);
    }
    let mut tx = conn.begin().await?;
    if let Some(mut q) = insert {
        q.build().execute(&mut *tx).await?;
    }
    let mut freed = Vec::with_capacity(batch.len());
    for write in batch {
        let mut n = 0;
        if let Write::Remove { ids, .. } = write {
            for chunk in ids.chunks(500) {
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("delete from spool where id in (");
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                q.push(") returning bytes");
                let bytes: Vec<i64> = q.build_query_scalar().fetch_all(&mut *tx).await?;
                n += bytes.iter().sum::<i64>();
            }
        }
        freed.push(n);
    }
    tx.commit().await?;
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize, payload: &str) -> NewEvent {
        NewEvent {
            project_id: 1,
            event_id: format!("{i:032x}"),
            occurred_at: 0,
            release: None,
            environment: None,
            platform: None,
            payload: payload.to_owned(),
        }
    }

    /// Requests' commits never copy the log into the file (that held them all); the spool's own task does, so the
    /// log is reused instead of growing with everything ever spooled.
    #[tokio::test]
    async fn the_log_is_checkpointed_beside_the_writes_and_does_not_grow_without_bound() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("spool.db");
        let spool = Spool::open(&path, 1 << 40).await.expect("spool");
        let payload = "x".repeat(64 * 1024);
        let mut n = 0;
        // 2 × 10 MiB through the spool, forwarded (removed) as it goes, with a pause between for the checkpoint.
        for round in 0..2 {
            for _ in 0..160 {
                spool.push(1, 0, &[event(n, &payload)], &[]).await.expect("push");
                n += 1;
                let ids: Vec<i64> = spool.oldest(100).await.expect("oldest").iter().map(|s| s.id).collect();
                spool.remove(&ids).await.expect("remove");
            }
            if round == 0 {
                tokio::time::sleep(CHECKPOINT_EVERY * 5).await;
            }
        }
        let wal = std::fs::metadata(dir.path().join("spool.db-wal")).map(|m| m.len()).unwrap_or(0);
        assert!(wal < 15 << 20, "the log holds {wal} bytes after 20 MiB went through");
        assert_eq!(spool.depth().await.expect("depth").0, 0);
    }
}
