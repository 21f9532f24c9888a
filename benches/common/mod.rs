//! What the benchmarks that start the real server share: running the `shipwatch` binary on a data directory (and a
//! database), and a fresh PostgreSQL database.

use sqlx::Connection as _;
use std::path::Path;
use std::process::Command;

/// The release `shipwatch` with `args`, on `data` (and `database` when given), logging warnings only unless
/// `SHIPWATCH_BENCH_LOG` gives its `RUST_LOG` (say `warn,shipwatch::assign=info` for each assignment's profile).
pub fn shipwatch(data: &Path, database: Option<&str>, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shipwatch"));
    let log = std::env::var("SHIPWATCH_BENCH_LOG").unwrap_or_else(|_| "warn".into());
    c.args(args).arg("--data-dir").arg(data).env_remove("DATABASE_URL").env("RUST_LOG", log);
    if let Some(url) = database {
        c.arg("--database-url").arg(url);
    }
    c
}

/// A fresh database `name` on `SHIPWATCH_BENCH_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432`), dropped
/// first if it exists; `None` when PostgreSQL does not answer.
pub async fn postgres_database(name: &str) -> Option<String> {
    let admin =
        std::env::var("SHIPWATCH_BENCH_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let mut conn = sqlx::PgConnection::connect(&format!("{admin}/postgres")).await.ok()?;
    let _ = sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&mut conn).await;
    sqlx::query(&format!("create database {name}")).execute(&mut conn).await.ok()?;
    Some(format!("{admin}/{name}"))
}
