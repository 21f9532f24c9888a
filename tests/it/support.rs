//! Test support: the store backends (SQLite always, PostgreSQL when reachable), real git repositories built in
//! temporary directories, and `TestApp`, the real router served on port 0.

#![allow(dead_code)]

use serde_json::{json, Value};
use shipwatch::app::{App, ServeOptions};
use shipwatch::config::{DataArgs, GitArgs, Secret, WorkerArgs};
use shipwatch::store::{self, DynStore};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const WEBHOOK_SECRET: &str = "It's a Secret to Everybody";

/// A database for one test. PostgreSQL databases are dropped when the test finishes normally.
pub struct TestDb {
    pub name: &'static str,
    pub store: DynStore,
    pub url: String,
    _dir: Option<TempDir>,
    pg_admin_url: Option<String>,
    pg_db: Option<String>,
}

impl TestDb {
    /// PostgreSQL only: makes this test's database refuse new connections and ends the open ones (`false`), or
    /// takes connections again (`true`). The shared server itself is never touched.
    pub async fn allow_connections(&self, allowed: bool) {
        let (Some(admin), Some(db)) = (&self.pg_admin_url, &self.pg_db) else { panic!("a PostgreSQL test database") };
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin).await.expect("admin connection");
        sqlx::query(&format!("alter database {db} allow_connections {allowed}"))
            .execute(&mut conn)
            .await
            .expect("alter");
        if !allowed {
            sqlx::query(
                "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
            )
            .bind(db)
            .execute(&mut conn)
            .await
            .expect("terminate");
        }
    }

    pub async fn cleanup(self) {
        drop(self.store);
        if let (Some(admin), Some(db)) = (self.pg_admin_url, self.pg_db) {
            if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await {
                let _ = sqlx::query(&format!("drop database if exists {db} with (force)")).execute(&mut conn).await;
            }
        }
    }
}

pub async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite:{}", dir.path().join("test.db").display());
    let store = store::connect(&url).await.expect("sqlite store opens");
    TestDb { name: "sqlite", store, url, _dir: Some(dir), pg_admin_url: None, pg_db: None }
}

fn pg_admin_url() -> String {
    std::env::var("SHIPWATCH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Says that a test is skipped and why. Written to stderr directly, past the test runner's capture (which hides what
/// a passing test prints with `eprintln!`), so that a run's output shows every skip.
pub fn skipped(why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// A fresh PostgreSQL database, or `None` (with a visible message) when no server is reachable. With
/// `SHIPWATCH_REQUIRE_POSTGRES=1` an unreachable server fails the test instead.
pub async fn postgres_db() -> Option<TestDb> {
    let admin = pg_admin_url();
    let connect = <sqlx::PgConnection as sqlx::Connection>::connect(&admin);
    let mut conn = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(c)) => c,
        other => {
            let why = match other {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".into(),
            };
            if std::env::var("SHIPWATCH_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("PostgreSQL is required (SHIPWATCH_REQUIRE_POSTGRES=1) but not reachable at {admin}: {why}");
            }
            skipped(&format!(
                "(PostgreSQL) not reachable at {admin}: {why}; set SHIPWATCH_REQUIRE_POSTGRES=1 to fail instead"
            ));
            return None;
        }
    };
    let now = chrono::Utc::now().timestamp();
    // Databases left by tests that panicked more than an hour ago.
    let stale: Vec<String> =
        sqlx::query_scalar("select datname from pg_database where datname like 'shipwatch\\_test\\_%'")
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    for db in stale {
        let born = db.split('_').nth(2).and_then(|t| t.parse::<i64>().ok()).unwrap_or(now);
        if now - born > 3600 {
            let _ = sqlx::query(&format!("drop database if exists {db} with (force)")).execute(&mut conn).await;
        }
    }
    let db = format!("shipwatch_test_{now}_{}", shipwatch::store::random_hex(6).expect("random"));
    sqlx::query(&format!("create database {db}")).execute(&mut conn).await.expect("create test database");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_owned();
    let url = format!("{base}/{db}");
    let store = store::connect(&url).await.expect("postgres store opens");
    Some(TestDb { name: "postgres", store, url, _dir: None, pg_admin_url: Some(admin), pg_db: Some(db) })
}

/// Runs `test` against SQLite, then PostgreSQL when reachable.
pub async fn on_each_backend<F, Fut>(test: F)
where
    F: Fn(DynStore, &'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let db = sqlite_db().await;
    test(db.store.clone(), db.name).await;
    db.cleanup().await;
    if let Some(db) = postgres_db().await {
        test(db.store.clone(), db.name).await;
        db.cleanup().await;
    }
}

/// A git repository in a temporary directory, with commits made by named authors at increasing times.
pub struct TestRepo {
    pub dir: TempDir,
    clock: AtomicI64,
}

pub struct Author {
    pub name: &'static str,
    pub email: &'static str,
}

pub const ALICE: Author = Author { name: "Alice Doe", email: "alice@example.com" };
pub const BOB: Author = Author { name: "Bob Roe", email: "bob@example.com" };
pub const CAROL: Author = Author { name: "Carol Poe", email: "carol@example.com" };

impl TestRepo {
    pub fn new() -> TestRepo {
        let repo = TestRepo { dir: tempfile::tempdir().expect("temp dir"), clock: AtomicI64::new(1_763_000_000) };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        self.path().display().to_string()
    }

    /// Runs git in the repository as `author` (or Alice) and returns its trimmed standard output.
    pub fn git_as(&self, author: &Author, args: &[&str]) -> String {
        let t = self.clock.fetch_add(60, Ordering::SeqCst);
        let date = format!("{t} +0000");
        let out = Command::new("git")
            .arg("-C")
            .arg(self.path())
            .args(args)
            .env("GIT_AUTHOR_NAME", author.name)
            .env("GIT_AUTHOR_EMAIL", author.email)
            .env("GIT_COMMITTER_NAME", author.name)
            .env("GIT_COMMITTER_EMAIL", author.email)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn git(&self, args: &[&str]) -> String {
        self.git_as(&ALICE, args)
    }

    /// Writes `files` and commits them as `author`; returns the new commit id.
    pub fn commit(&self, author: &Author, files: &[(&str, &str)], message: &str) -> String {
        for (path, content) in files {
            let full = self.path().join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(&full, content).expect("write file");
            self.git(&["add", "--", path]);
        }
        self.git_as(author, &["commit", "--quiet", "--allow-empty", "-m", message]);
        self.head()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// `git rev-list base..sha` (or nothing for no base), in git's order.
    pub fn rev_list(&self, base: Option<&str>, sha: &str) -> Vec<String> {
        let Some(base) = base else { return Vec::new() };
        let out = self.git(&["rev-list", &format!("{base}..{sha}")]);
        out.lines().map(str::to_owned).collect()
    }
}

/// Configuration for an app whose data lives in `data_dir`.
pub fn app_args(data_dir: &Path, git_program: Option<PathBuf>) -> (DataArgs, GitArgs, WorkerArgs) {
    (
        DataArgs { data_dir: data_dir.to_owned(), database_url: None, spool_max_mb: 1024, intake_memory_mb: 192 },
        GitArgs {
            allow_local_repos: true,
            git_token: None,
            git_program: git_program.unwrap_or_else(|| "git".into()),
            git_timeout: 60,
            max_range_commits: 20_000,
            blame_cache_lines: 200_000,
            tree_cache_trees: 64,
            github_token: None,
            github_app_id: None,
            github_app_key: None,
            github_api_url: "https://api.github.com".into(),
            git_token_hosts: Vec::new(),
            allow_insecure_github_api: false,
            github_timeout_ms: 30_000,
        },
        WorkerArgs {
            job_lease: 60,
            worker_jobs: 4,
            poll_interval_ms: 50,
            public_url: None,
            github_write_interval_ms: 0,
            retain_events_days: 90,
            retain_jobs_days: 14,
            retain_webhooks_days: 30,
            retention_interval_minutes: 60,
        },
    )
}

/// The real router and worker on a real listener, for tests that speak HTTP.
pub struct TestApp {
    pub base: String,
    pub app: App,
    pub http: reqwest::Client,
    pub data: TempDir,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    /// Serves on `store`; `run_worker` starts the background worker too (otherwise call [`TestApp::drain`]).
    pub async fn spawn(store: DynStore, run_worker: bool) -> TestApp {
        TestApp::spawn_with(store, run_worker, 6000).await
    }

    pub async fn spawn_with(store: DynStore, run_worker: bool, events_per_minute: u32) -> TestApp {
        TestApp::spawn_full(store, run_worker, events_per_minute, None, None, None, None).await
    }

    /// With GitHub writes to `api_url` (token `ghp_test`), a short timeout and no pacing unless given.
    pub async fn spawn_github(store: DynStore, api_url: &str, write_interval_ms: u64) -> TestApp {
        TestApp::spawn_full(store, false, 6000, Some((api_url.to_owned(), write_interval_ms)), None, None, None).await
    }

    /// With the web pages behind `token`.
    pub async fn spawn_with_read_token(store: DynStore, token: &str) -> TestApp {
        TestApp::spawn_full(store, false, 6000, None, Some(token.to_owned()), None, None).await
    }

    /// With its data directory (the intake spool, the mirrors) inside `dir`.
    pub async fn spawn_in(store: DynStore, dir: &Path) -> TestApp {
        TestApp::spawn_full(store, false, 6000, None, None, Some(dir), None).await
    }

    /// With an intake spool that holds at most `max_mb` MiB.
    pub async fn spawn_with_spool(store: DynStore, max_mb: u64) -> TestApp {
        TestApp::spawn_full(store, false, 6000, None, None, None, Some(max_mb)).await
    }

    async fn spawn_full(
        store: DynStore,
        run_worker: bool,
        events_per_minute: u32,
        github: Option<(String, u64)>,
        read_token: Option<String>,
        data_in: Option<&Path>,
        spool_mb: Option<u64>,
    ) -> TestApp {
        let data = match data_in {
            Some(dir) => tempfile::tempdir_in(dir).expect("temp dir"),
            None => tempfile::tempdir().expect("temp dir"),
        };
        let (mut d, mut g, mut w) = app_args(data.path(), None);
        if let Some(mb) = spool_mb {
            d.spool_max_mb = mb;
        }
        if let Some((url, interval)) = github {
            g.github_token = Some(Secret::new("ghp_test"));
            g.github_api_url = url;
            // The fake GitHub is plain http on loopback.
            g.allow_insecure_github_api = true;
            g.github_timeout_ms = 300;
            w.github_write_interval_ms = interval;
            w.public_url = Some("http://shipwatch.test".into());
        }
        let app = App::with_store(store, &d, &g, &w).expect("app builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let options = ServeOptions {
            public_url: base.clone(),
            admin_token: Some(Secret::new(ADMIN_TOKEN)),
            allow_local_repos: true,
            run_worker,
            events_per_minute,
            webhook_secret: Some(Secret::new(WEBHOOK_SECRET)),
            read_token: read_token.map(Secret::new),
            limits: Default::default(),
        };
        let server = tokio::spawn(shipwatch::serve(app.clone(), listener, options, shutdown.clone()));
        TestApp { base, app, http: reqwest::Client::new(), data, shutdown, server }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.expect("server task").expect("server ran");
    }

    /// Runs queued jobs until none is due.
    pub async fn drain(&self) {
        self.app.spooler.forward_all().await.expect("the spool forwards");
        let worker = self.app.worker();
        for _ in 0..1000 {
            if !worker.run_once().await.expect("worker runs") {
                return;
            }
        }
        panic!("the job queue did not drain");
    }

    /// Sends a request; returns the status and the JSON body (or the text as a JSON string).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Creates a project for `repo` through the admin API; returns (name, deploy token).
    pub async fn project(&self, name: &str, repo: &TestRepo) -> (String, String) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/projects",
                Some(ADMIN_TOKEN),
                Some(json!({ "name": name, "repo": repo.url(), "github": "acme/web" })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (name.to_owned(), body["deploy_token"].as_str().expect("token").to_owned())
    }

    /// Creates a project for error intake; returns its id, ingest key, deploy token and DSN.
    pub async fn sentry_project(&self, name: &str) -> SentryProject {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/projects",
                Some(ADMIN_TOKEN),
                Some(json!({ "name": name, "repo": "https://github.com/acme/web.git" })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let dsn = body["dsn"].as_str().expect("dsn").to_owned();
        let key = dsn.split("//").nth(1).and_then(|r| r.split('@').next()).expect("key in dsn").to_owned();
        SentryProject {
            id: body["id"].as_i64().expect("id"),
            key,
            token: body["deploy_token"].as_str().expect("token").to_owned(),
            dsn,
        }
    }

    /// Posts a deploy; returns the status and body.
    pub async fn deploy(&self, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, "/api/v1/deploys", Some(token), Some(body)).await
    }

    /// Gets a deploy with its commits.
    pub async fn get_deploy(&self, token: &str, id: i64) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, &format!("/api/v1/deploys/{id}"), Some(token), None).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

pub struct SentryProject {
    pub id: i64,
    pub key: String,
    pub token: String,
    pub dsn: String,
}

/// The commit ids of a deploy as the API returns them, in order.
pub fn commit_ids(deploy: &Value) -> Vec<String> {
    deploy["commits"]
        .as_array()
        .expect("commits array")
        .iter()
        .map(|c| c["sha"].as_str().expect("sha").to_owned())
        .collect()
}

/// A free port on 127.0.0.1 (released again, so there is a small window in which someone else could take it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub async fn wait_healthy(base: &str) {
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server at {base} did not come up");
}
