//! The SQLite backend: the embedded default, one file in WAL mode.
//!
//! Writes go through a pool of one connection so that transactions in this process never race each other for
//! SQLite's single write lock; reads use a pool of their own and see committed data thanks to WAL.

use super::StoreResult;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite:PATH`) and applies the migrations.
    ///
    /// # Errors
    /// When the file cannot be opened or created, or a migration fails.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL loses no committed transaction in WAL mode on a process crash (only on power loss).
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .after_release(keep_unless_in_transaction)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&write).await?;
        let read = SqlitePoolOptions::new().max_connections(8).connect_with(options.read_only(true)).await?;
        Ok(SqliteStore { read, write })
    }
}

/// Whether a write connection goes back to the pool: not when a write failed half-way (a full disk, an I/O error)
/// and left it inside a transaction that SQLite already rolled back, or still holding the write lock — every later
/// "commit" would then only release a savepoint and nothing would reach the disk. Such a connection is closed; the
/// pool opens a fresh one for the next write.
pub(super) fn keep_unless_in_transaction(
    conn: &mut sqlx::SqliteConnection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, sqlx::Error>> + Send + '_>> {
    Box::pin(async move {
        use sqlx::Connection as _;
        // A round trip first: a rollback queued when the failed transaction was dropped runs before it.
        if sqlx::query("select 1").execute(&mut *conn).await.is_err() || conn.is_in_transaction() {
            return Ok(false);
        }
        // SQLite's own view: `BEGIN` fails inside a transaction.
        if sqlx::query("begin").execute(&mut *conn).await.is_err() {
            return Ok(false);
        }
        Ok(sqlx::query("rollback").execute(&mut *conn).await.is_ok())
    })
}

/// The SQL of each aggregate, shared with the other backend (see `store/mod.rs`), compiled here for Sqlite.
type Db = Sqlite;
type Backend = SqliteStore;
const BACKEND: &str = "sqlite";
/// One statement, so SQLite's write lock makes the pick-and-claim atomic across processes too.
const CLAIM_JOB: &str =
    "update jobs set status = 'running', attempts = attempts + 1, lease_until = $1, lease_token = $2, \
             updated_at = $3 where id = (select id from jobs where (status = 'queued' and run_at <= $3) \
             or (status = 'running' and lease_until < $3) order by id limit 1) \
             returning id, kind, payload, attempts, max_attempts, lease_token";
/// Appended to the grouping batch's select: SQLite's single write lock already keeps batches apart.
const SKIP_LOCKED: &str = "";

// Each `sql/` file is compiled once per backend on purpose: the same SQL against `Db` = this backend.
#[allow(clippy::duplicate_mod)]
#[path = "sql/base.rs"]
mod base;
#[allow(clippy::duplicate_mod)]
#[path = "sql/deploys.rs"]
mod deploys;
#[allow(clippy::duplicate_mod)]
#[path = "sql/events.rs"]
mod events;
#[allow(clippy::duplicate_mod)]
#[path = "sql/github.rs"]
mod github;
#[allow(clippy::duplicate_mod)]
#[path = "sql/groups.rs"]
mod groups;
#[allow(clippy::duplicate_mod)]
#[path = "sql/helpers.rs"]
mod helpers;
#[allow(clippy::duplicate_mod)]
#[path = "sql/jobs.rs"]
mod jobs;
#[allow(clippy::duplicate_mod)]
#[path = "sql/projects.rs"]
mod projects;
#[allow(clippy::duplicate_mod)]
#[path = "sql/webhooks.rs"]
mod webhooks;
