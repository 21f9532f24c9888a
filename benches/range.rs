//! Measures recording a deploy whose range is 10,000 commits, against `git rev-list --count` on the same repository
//! in the same run, and prints the ratio. Run with `cargo bench --bench range` (see docs/benchmarks.md).
//!
//! Not a test: nothing is asserted; the numbers are for people.

use serde_json::json;
use shipwatch::app::{App, ServeOptions};
use shipwatch::config::{DataArgs, GitArgs, Secret, WorkerArgs};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const COMMITS: usize = 10_000;
const ADMIN: &str = "bench-admin";

/// Builds a linear history of `n` commits by five authors with `git fast-import` (seconds, not minutes).
fn make_repo(dir: &Path, n: usize) -> (String, String) {
    run(dir, &["init", "--quiet", "--initial-branch=main"]);
    let mut stream = String::new();
    let authors = [
        "Alice Doe <alice@example.com>",
        "Bob Roe <bob@example.com>",
        "Carol Poe <carol@example.com>",
        "Dan <dan@example.com>",
        "Eve <eve@example.com>",
    ];
    for i in 1..=n {
        let author = authors[i % authors.len()];
        let time = 1_700_000_000 + i * 60;
        let msg =
            if i % 10 == 0 { format!("Change {i} (#{i})\n\nFixes #{}\n", i / 10) } else { format!("Change {i}\n") };
        let content = format!("// revision {i}\npub fn f{i}() {{}}\n");
        stream.push_str(&format!(
            "commit refs/heads/main\nmark :{i}\nauthor {author} {time} +0000\ncommitter {author} {time} +0000\n"
        ));
        stream.push_str(&format!("data {}\n{msg}", msg.len()));
        if i > 1 {
            stream.push_str(&format!("from :{}\n", i - 1));
        }
        stream.push_str(&format!("M 100644 inline src/mod{}.rs\ndata {}\n{content}\n", i % 97, content.len()));
    }
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import starts");
    child.stdin.take().expect("stdin").write_all(stream.as_bytes()).expect("stream written");
    assert!(child.wait().expect("fast-import").success());
    (run(dir, &["rev-list", "--max-parents=0", "main"]), run(dir, &["rev-parse", "main"]))
}

fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(args).current_dir(dir).output().expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn bench_backend(name: &str, database_url: &str, repo: &Path, root: &str, head: &str, baseline: Duration) {
    let data = tempfile::tempdir().expect("temp dir");
    let store = shipwatch::store::connect(database_url).await.expect("store opens");
    let d =
        DataArgs { data_dir: data.path().to_owned(), database_url: None, spool_max_mb: 1024, intake_memory_mb: 192 };
    let g = GitArgs {
        allow_local_repos: true,
        git_token: None,
        git_program: "git".into(),
        git_timeout: 600,
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
    };
    let w = WorkerArgs {
        job_lease: 60,
        worker_jobs: 4,
        poll_interval_ms: 20,
        public_url: None,
        github_write_interval_ms: 1000,
        retain_events_days: 90,
        retain_jobs_days: 14,
        retain_webhooks_days: 30,
        retention_interval_minutes: 60,
    };
    let app = App::with_store(store, &d, &g, &w).expect("app builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = CancellationToken::new();
    let options = ServeOptions {
        public_url: base.clone(),
        admin_token: Some(Secret::new(ADMIN)),
        allow_local_repos: true,
        run_worker: true,
        events_per_minute: 6000,
        webhook_secret: None,
        read_token: None,
        limits: Default::default(),
    };
    let server = tokio::spawn(shipwatch::serve(app, listener, options, shutdown.clone()));
    let http = reqwest::Client::new();
    let project: serde_json::Value = http
        .post(format!("{base}/api/v1/projects"))
        .bearer_auth(ADMIN)
        .json(&json!({ "name": "bench", "repo": repo.display().to_string() }))
        .send()
        .await
        .expect("project")
        .json()
        .await
        .expect("json");
    let token = project["deploy_token"].as_str().expect("token").to_owned();

    // Each measurement: POST the deploy, then poll until the worker has stored its range.
    let record = |env: String, previous: Option<String>| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        let head = head.to_owned();
        async move {
            let start = Instant::now();
            let body = json!({ "project": "bench", "environment": env, "sha": head, "previous_sha": previous });
            let r: serde_json::Value = http
                .post(format!("{base}/api/v1/deploys"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .expect("deploy")
                .json()
                .await
                .expect("json");
            let url = r["urls"]["deploy"].as_str().expect("url").to_owned();
            loop {
                let d: serde_json::Value =
                    http.get(&url).bearer_auth(&token).send().await.expect("get").json().await.expect("json");
                match d["deploy"]["status"].as_str() {
                    Some("ready") => {
                        assert_eq!(d["commits"].as_array().map(Vec::len), Some(COMMITS - 1));
                        return start.elapsed();
                    }
                    Some("pending") => tokio::time::sleep(Duration::from_millis(5)).await,
                    other => panic!("deploy ended {other:?}: {d}"),
                }
            }
        }
    };
    // Cold: the server has no mirror yet, so this includes cloning the whole repository.
    let cold = record("cold".into(), Some(root.to_owned())).await;
    let mut warm = Vec::new();
    for i in 0..3 {
        warm.push(record(format!("warm-{i}"), Some(root.to_owned())).await);
    }
    let warm = median(warm);
    println!(
        "{name:<10} cold (clone + range + store): {:>8.1} ms = {:>6.1}× rev-list   warm (range + store): {:>8.1} ms = {:>6.1}× rev-list",
        cold.as_secs_f64() * 1e3,
        cold.as_secs_f64() / baseline.as_secs_f64(),
        warm.as_secs_f64() * 1e3,
        warm.as_secs_f64() / baseline.as_secs_f64()
    );
    shutdown.cancel();
    server.await.expect("server task").expect("server");
}

#[tokio::main]
async fn main() {
    let repo = tempfile::tempdir().expect("temp dir");
    println!("building a repository of {COMMITS} commits …");
    let (root, head) = make_repo(repo.path(), COMMITS);
    let range = format!("{root}..{head}");
    let baseline = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                let n = run(repo.path(), &["rev-list", "--count", &range]);
                assert_eq!(n, (COMMITS - 1).to_string());
                t.elapsed()
            })
            .collect(),
    );
    println!("git rev-list --count {COMMITS}-commit range: {:.1} ms (median of 5)", baseline.as_secs_f64() * 1e3);
    let sqlite_dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite:{}", sqlite_dir.path().join("bench.db").display());
    bench_backend("SQLite", &sqlite, repo.path(), &root, &head, baseline).await;
    let pg = std::env::var("SHIPWATCH_BENCH_POSTGRES_URL").ok();
    match pg {
        Some(url) => bench_backend("PostgreSQL", &url, repo.path(), &root, &head, baseline).await,
        None => println!("PostgreSQL: skipped (set SHIPWATCH_BENCH_POSTGRES_URL to an empty database to include it)"),
    }
}
