//! The PostgreSQL backend, for scale-out: several shipwatch processes share one database.

use super::{StoreError, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool, Postgres};
use std::str::FromStr;
use std::time::Duration;

pub struct PostgresStore {
    read: PgPool,
    write: PgPool,
}

impl PostgresStore {
    /// Connects to `url` and applies the migrations (sqlx takes an advisory lock, so concurrent starts are safe).
    ///
    /// # Errors
    /// When the server cannot be reached or a migration fails.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        // One direct connection first: the pool would retry until its timeout and report only "timed out",
        // hiding the cause (refused, unknown database, authentication).
        match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(&options)).await {
            Ok(Ok(conn)) => conn.close().await?,
            Ok(Err(e)) => return Err(StoreError::Other(anyhow::Error::new(e).context("connecting to PostgreSQL"))),
            Err(_) => return Err(StoreError::Other(anyhow::anyhow!("connecting to PostgreSQL timed out after 10 s"))),
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PostgresStore { read: pool.clone(), write: pool })
    }
}

/// The SQL of each aggregate, shared with the other backend (see `store/mod.rs`), compiled here for Postgres.
type Db = Postgres;
type Backend = PostgresStore;
const BACKEND: &str = "postgres";
/// SKIP LOCKED lets many workers claim different jobs at once instead of queueing on one row.
const CLAIM_JOB: &str =
    "update jobs set status = 'running', attempts = attempts + 1, lease_until = $1, lease_token = $2, \
             updated_at = $3 where id = (select id from jobs where (status = 'queued' and run_at <= $3) \
             or (status = 'running' and lease_until < $3) order by id limit 1 for update skip locked) \
             returning id, kind, payload, attempts, max_attempts, lease_token";
/// Appended to the grouping batch's select: concurrent workers take different events instead of waiting on one batch.
const SKIP_LOCKED: &str = " for update skip locked";

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
