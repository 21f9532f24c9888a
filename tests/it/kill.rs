//! Real processes killed with SIGKILL under load, again and again: every acknowledged event is stored once and
//! grouped once (group counts equal the number of distinct events), on SQLite (an intake process and a worker
//! process on one database file) and on PostgreSQL (two intake and two worker processes). Bounded: a dozen kills and
//! about 15 s of load per backend, all on 127.0.0.1; `SHIPWATCH_KILLS=100` (a kill a second) for the long form.

use serde_json::json;
use sqlx::Row as _;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{postgres_db, TestRepo, ALICE};

/// One shipwatch process that can be killed and started again with the same arguments.
struct Proc {
    args: Vec<String>,
    child: Option<Child>,
}

impl Proc {
    fn start(args: Vec<String>) -> Proc {
        let mut p = Proc { args, child: None };
        p.restart();
        p
    }

    fn restart(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_shipwatch"))
            .args(&self.args)
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("shipwatch starts");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn event(n: u64) -> String {
    let event = json!({
        "event_id": format!("{n:032x}"), "release": "v1", "environment": "production", "platform": "python",
        "exception": {"values": [{"type": format!("Error{}", n % 7), "value": "boom", "stacktrace": {"frames": [
            {"abs_path": "/srv/app/app.py", "function": "handler", "lineno": 3, "in_app": true}]}}]}
    });
    format!("{{}}\n{{\"type\":\"event\"}}\n{event}\n")
}

/// Offers events to the intakes, round robin, until `stop`; returns the ids acknowledged with 200.
async fn load(intakes: Vec<String>, key: String, project: String, stop: Instant) -> HashSet<u64> {
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let next = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let (intakes, key, project, acked, next) =
                (intakes.clone(), key.clone(), project.clone(), acked.clone(), next.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
                let mut i = t;
                while Instant::now() < stop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let base = &intakes[i % intakes.len()];
                    i += 1;
                    let url = format!("{base}/api/{project}/envelope/?sentry_key={key}");
                    match http.post(&url).body(event(n)).send().await {
                        Ok(r) if r.status().as_u16() == 200 => {
                            acked.lock().expect("acked").insert(n);
                        }
                        // A killed or restarting process: the SDK would retry later; this id is not acknowledged.
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("load task");
    }
    let acked = acked.lock().expect("acked").clone();
    acked
}

/// Kills one process after another (round robin) every `every`, restarting each after a moment, `kills` times.
async fn killer(procs: Arc<Mutex<Vec<Proc>>>, kills: usize, every: Duration) {
    for k in 0..kills {
        tokio::time::sleep(every).await;
        let n = procs.lock().expect("procs").len();
        procs.lock().expect("procs")[k % n].kill();
        tokio::time::sleep(Duration::from_millis(150)).await;
        procs.lock().expect("procs")[k % n].restart();
    }
}

/// Requests still in an intake's spool, from its `/metrics`.
async fn spooled(base: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics")).await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix("shipwatch_spool_requests ")).and_then(|v| v.trim().parse().ok())
}

struct Counts {
    stored: HashSet<u64>,
    ungrouped: i64,
    times_seen: i64,
    counted: i64,
}

/// The counts of one backend's pool (the same SQL for both).
macro_rules! counts {
    ($pool:expr) => {{
        let pool = $pool;
        let ids: Vec<String> = sqlx::query("select event_id from events")
            .fetch_all(&pool)
            .await
            .expect("events")
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
        let number = |sql: &'static str| {
            let pool = pool.clone();
            async move {
                let n: Option<i64> = sqlx::query(sql).fetch_one(&pool).await.expect("count").get(0);
                n.unwrap_or(0)
            }
        };
        let c = Counts {
            stored: ids.iter().filter_map(|id| u64::from_str_radix(id, 16).ok()).collect(),
            ungrouped: number("select count(*) from events where group_id is null").await,
            times_seen: number("select cast(sum(times_seen) as bigint) from error_groups").await,
            counted: number("select cast(sum(count) as bigint) from group_counts").await,
        };
        pool.close().await;
        c
    }};
}

/// Creates the project with the CLI; returns its ingest key and id.
fn project(data: &Path, database: &str, repo: &TestRepo) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shipwatch"))
        .args(["project", "add", "--name", "web", "--allow-local-repos", "--repo", &repo.url()])
        .arg("--data-dir")
        .arg(data)
        .args(["--database-url", database])
        .env_remove("DATABASE_URL")
        .output()
        .expect("shipwatch runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let dsn = text.lines().find_map(|l| l.trim().strip_prefix("DSN:")).map(str::trim).expect("a DSN");
    let key = dsn.split("//").nth(1).and_then(|s| s.split('@').next()).expect("key").to_owned();
    (key, dsn.rsplit('/').next().expect("project id").to_owned())
}

/// Starts `intakes` intake and `workers` worker processes on `database`, loads them while killing them, then checks
/// what was acknowledged against what was stored and grouped.
async fn kill_under_load(database: &str, root: &Path, intakes: usize, workers: usize, kills: usize) {
    let repo = TestRepo::new();
    repo.commit(&ALICE, &[("app.py", "import x\n\ndef handler():\n    raise Error\n")], "app");
    let (key, project_id) = project(&root.join("admin"), database, &repo);
    let dir = |name: String| -> PathBuf { root.join(name) };
    let mut procs = Vec::new();
    let mut bases = Vec::new();
    for i in 0..intakes {
        let port = free_port();
        bases.push(format!("http://127.0.0.1:{port}"));
        let args = vec![
            "serve".into(),
            "--no-worker".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--events-per-minute".into(),
            "1000000".into(),
            "--data-dir".into(),
            dir(format!("intake-{i}")).display().to_string(),
            "--database-url".into(),
            database.into(),
            "--allow-local-repos".into(),
        ];
        procs.push(Proc::start(args));
    }
    for i in 0..workers {
        let args = vec![
            "worker".into(),
            "--job-lease".into(),
            "5".into(),
            "--data-dir".into(),
            dir(format!("worker-{i}")).display().to_string(),
            "--database-url".into(),
            database.into(),
            "--allow-local-repos".into(),
        ];
        procs.push(Proc::start(args));
    }
    // Wait for the intakes to listen.
    for base in &bases {
        let addr = base.trim_start_matches("http://").to_owned();
        let up = async {
            while tokio::net::TcpStream::connect(&addr).await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), up).await.expect("intake listens");
    }
    let procs = Arc::new(Mutex::new(procs));
    let every = Duration::from_millis(1_000);
    let stop = Instant::now() + every * (kills as u32 + 1);
    let (acked, ()) = tokio::join!(load(bases.clone(), key, project_id, stop), killer(procs.clone(), kills, every));
    assert!(acked.len() > 100, "load got through between the kills: {}", acked.len());

    // Everything restarted: let the spools forward and the workers group what is left.
    let settled = Instant::now() + Duration::from_secs(60);
    loop {
        let mut spool = 0.0;
        for base in &bases {
            spool += spooled(base).await.unwrap_or(1.0);
        }
        let c = if database.starts_with("sqlite:") {
            counts!(sqlx::SqlitePool::connect(database).await.expect("sqlite"))
        } else {
            counts!(sqlx::PgPool::connect(database).await.expect("postgres"))
        };
        if spool == 0.0 && c.ungrouped == 0 {
            let lost: Vec<&u64> = acked.iter().filter(|n| !c.stored.contains(n)).collect();
            eprintln!(
                "{database}: {kills} SIGKILLs, {} acknowledged, {} stored ({} stored without a 200 the client saw), \
                 {} lost; groups count {} events, per-release counts {}",
                acked.len(),
                c.stored.len(),
                c.stored.len().saturating_sub(acked.len()),
                lost.len(),
                c.times_seen,
                c.counted
            );
            assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
            let stored = c.stored.len() as i64;
            assert_eq!(c.times_seen, stored, "each stored event counted once in its group");
            assert_eq!(c.counted, stored, "and once in its release's count");
            break;
        }
        assert!(
            Instant::now() < settled,
            "not settled a minute after the kills: spool {spool}, {} ungrouped",
            c.ungrouped
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How many kills: `SHIPWATCH_KILLS`, else `default`.
fn kills(default: usize) -> usize {
    std::env::var("SHIPWATCH_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(default)
}

#[tokio::test]
async fn sigkill_under_load_on_sqlite_loses_and_doubles_nothing() {
    let root = tempfile::tempdir().expect("temp dir");
    let database = format!("sqlite:{}", root.path().join("shipwatch.db").display());
    kill_under_load(&database, root.path(), 1, 1, kills(12)).await;
}

#[tokio::test]
async fn sigkill_under_load_on_postgresql_with_two_intakes_and_two_workers_loses_and_doubles_nothing() {
    let Some(db) = postgres_db().await else { return };
    let root = tempfile::tempdir().expect("temp dir");
    kill_under_load(&db.url, root.path(), 2, 2, kills(12)).await;
    db.cleanup().await;
}

/// PostgreSQL refusing connections (and its sessions terminated) for a while under a steady offered rate: intake
/// answers every request `200` from its spool, `/readyz` says the database is unavailable meanwhile, and once the
/// database is back every acknowledged event is stored and grouped exactly once. `SHIPWATCH_OUTAGE=500,60` (events a
/// second, seconds of outage) for the long form; by default 200 a second and 5 s.
#[tokio::test]
async fn a_postgresql_outage_under_load_answers_200_and_loses_nothing() {
    let Some(db) = postgres_db().await else { return };
    let (rate, outage_s) = std::env::var("SHIPWATCH_OUTAGE")
        .ok()
        .and_then(|v| v.split_once(',').and_then(|(r, s)| Some((r.parse::<u64>().ok()?, s.parse::<u64>().ok()?))))
        .unwrap_or((200, 5));
    let root = tempfile::tempdir().expect("temp dir");
    let repo = TestRepo::new();
    repo.commit(&ALICE, &[("app.py", "def handler():\n    raise Error\n")], "app");
    let (key, project) = project(&root.path().join("admin"), &db.url, &repo);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = Proc::start(vec![
        "serve".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--events-per-minute".into(),
        "100000000".into(),
        "--data-dir".into(),
        root.path().join("server").display().to_string(),
        "--database-url".into(),
        db.url.clone(),
        "--allow-local-repos".into(),
    ]);
    let addr = format!("127.0.0.1:{port}");
    let up = async {
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), up).await.expect("listens");

    // The offered load: `rate` a second from 4 connections, for 2 s before, the outage, and 2 s after.
    let total = Duration::from_secs(outage_s + 4);
    let started = Instant::now();
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..4u64)
        .map(|t| {
            let (base, key, project, statuses) = (base.clone(), key.clone(), project.clone(), statuses.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let every = Duration::from_secs_f64(4.0 / rate as f64);
                let mut tick = tokio::time::interval(every);
                let mut n = t;
                while started.elapsed() < total {
                    tick.tick().await;
                    let url = format!("{base}/api/{project}/envelope/?sentry_key={key}");
                    let status = match http.post(&url).body(event(n)).send().await {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    };
                    statuses.lock().expect("statuses").push((n, status));
                    n += 4;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    db.allow_connections(false).await;
    // Give the server a moment to notice (its next database call fails), then ask it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ready: serde_json::Value =
        reqwest::get(format!("{base}/readyz")).await.expect("readyz").json().await.expect("json");
    tokio::time::sleep(Duration::from_secs(outage_s).saturating_sub(Duration::from_millis(1500))).await;
    db.allow_connections(true).await;
    let back = Instant::now();
    for t in tasks {
        t.await.expect("load");
    }
    assert_eq!(ready["status"], json!("ready"), "intake stays ready on its spool: {ready}");
    assert_eq!(ready["database"]["status"], json!("unavailable"), "and says the database is away: {ready}");
    let statuses = statuses.lock().expect("statuses").clone();
    let refused: Vec<&(u64, u16)> = statuses.iter().filter(|(_, s)| *s != 200).collect();
    assert!(
        refused.is_empty(),
        "every request answered 200: {} of {} not: {:?}",
        refused.len(),
        statuses.len(),
        &refused[..refused.len().min(5)]
    );
    let acked: HashSet<u64> = statuses.iter().map(|(n, _)| *n).collect();
    let deadline = back + Duration::from_secs(120);
    loop {
        let c = counts!(sqlx::PgPool::connect(&db.url).await.expect("postgres"));
        if c.stored.len() >= acked.len() && c.ungrouped == 0 && spooled(&base).await == Some(0.0) {
            eprintln!(
                "{rate} ev/s, {outage_s} s outage: {} requests, all 200; stored and grouped {} s after the database \
                 returned; groups count {}",
                acked.len(),
                back.elapsed().as_secs(),
                c.times_seen
            );
            assert!(acked.iter().all(|n| c.stored.contains(n)), "every acknowledged event stored");
            assert_eq!(c.stored.len(), acked.len(), "each once");
            assert_eq!(c.times_seen, acked.len() as i64, "grouped once each");
            break;
        }
        assert!(Instant::now() < deadline, "not drained 2 minutes after the database returned");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(_server);
    db.cleanup().await;
}
