//! Page latency on a busy project: starts the real `shipwatch serve` (release build) on SQLite and, when reachable,
//! PostgreSQL, records a deploy, sends 100,000 events in 1,000 groups (five releases, two environments) through the
//! store endpoint, waits until all are grouped and assigned, then times the pages people keep open: the groups list
//! (default, filtered, sorted by events, a later page) and group pages (frames with source lines, history, chart).
//! Prints p50/p95/max per page. Nothing is asserted.
//!
//! `cargo bench --bench pages -- [--events 100000] [--groups 1000] [--requests 200] [--only sqlite|postgres]`
//! PostgreSQL: `SHIPWATCH_BENCH_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432`), a database
//! `shipwatch_pages_bench` is created and dropped. See docs/benchmarks.md.

mod common;

use common::{postgres_database, shipwatch};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PORT: u16 = 18_492;

/// The path of the i-th request to a page.
type PathOf<'a> = Box<dyn Fn(usize) -> String + 'a>;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A value of `/metrics`.
async fn metric(http: &reqwest::Client, base: &str, name: &str) -> u64 {
    let Ok(r) = http.get(format!("{base}/metrics")).send().await else { return 0 };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Times `requests` GETs of the paths `path(i)` gives, one at a time; (p50, p95, max) in ms.
async fn time_pages(http: &reqwest::Client, base: &str, requests: usize, path: impl Fn(usize) -> String) -> [f64; 3] {
    let mut ms = Vec::with_capacity(requests);
    for i in 0..requests {
        let url = format!("{base}{}", path(i));
        let start = Instant::now();
        let r = http.get(&url).send().await.expect("request sent");
        assert!(r.status().is_success(), "{url}: {}", r.status());
        let _ = r.bytes().await.expect("body");
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    [percentile(&ms, 0.5), percentile(&ms, 0.95), ms[ms.len() - 1]]
}

#[tokio::main]
async fn main() {
    let (events, groups, requests) = (arg("--events", 100_000), arg("--groups", 1_000), arg("--requests", 200));
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    let scratch = tempfile::tempdir().expect("scratch dir");
    let repo = scratch.path().join("repo");
    let git = |args: &[&str]| Command::new("git").args(args).status().is_ok_and(|s| s.success());
    assert!(git(&["init", "--quiet", &repo.to_string_lossy()]));
    std::fs::create_dir_all(repo.join("app")).expect("mkdir");
    let handler: String =
        (1..=40).map(|i| format!("def handler_{i}(request):\n    return request.items[{i}]\n\n")).collect();
    std::fs::write(repo.join("app/handler.py"), handler).expect("write");
    let dir = repo.to_string_lossy().into_owned();
    assert!(git(&["-C", &dir, "add", "-A"]));
    assert!(git(&["-C", &dir, "-c", "user.name=Ann", "-c", "user.email=ann@example.com", "commit", "-qm", "Handlers"]));
    let sha =
        String::from_utf8(Command::new("git").args(["-C", &dir, "rev-parse", "HEAD"]).output().expect("git").stdout)
            .expect("utf-8")
            .trim()
            .to_owned();
    println!("{events} events in {groups} groups; {requests} requests per page, one at a time");
    println!("{:10} {:28} {:>8} {:>8} {:>8}", "backend", "page", "p50 ms", "p95 ms", "max ms");
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{PORT}");
    for backend in ["sqlite", "postgres"] {
        if only.as_deref().is_some_and(|b| b != backend) {
            continue;
        }
        let database = if backend == "postgres" {
            match postgres_database("shipwatch_pages_bench").await {
                Some(url) => Some(url),
                None => {
                    println!("postgres   SKIPPED: no PostgreSQL at SHIPWATCH_BENCH_POSTGRES_URL");
                    continue;
                }
            }
        } else {
            None
        };
        let data = scratch.path().join(backend);
        let out = shipwatch(
            &data,
            database.as_deref(),
            &["project", "add", "--name", "bench", "--allow-local-repos", "--repo", &dir],
        )
        .output()
        .expect("shipwatch runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let dsn = text.lines().find_map(|l| l.trim().strip_prefix("DSN:")).map(str::trim).expect("a DSN").to_owned();
        let key = dsn.split("//").nth(1).and_then(|s| s.split('@').next()).expect("DSN key").to_owned();
        let project = dsn.rsplit('/').next().expect("DSN project").to_owned();
        let token =
            text.lines().find_map(|l| l.trim().strip_prefix("Deploy token:")).map(str::trim).expect("token").to_owned();
        let listen = format!("127.0.0.1:{PORT}");
        let child = shipwatch(
            &data,
            database.as_deref(),
            &["serve", "--listen", &listen, "--events-per-minute", "1000000000", "--allow-local-repos"],
        )
        .stdout(Stdio::null())
        .spawn()
        .expect("shipwatch serve starts");
        let server = Server(child);
        while std::net::TcpStream::connect(&listen).is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for (i, env) in ["staging", "production"].iter().enumerate() {
            for v in 1..=5 {
                let body = serde_json::json!({ "project": "bench", "environment": env, "sha": sha,
                    "version": format!("v{v}"), "deployed_at": format!("2026-11-{:02}T10:00:00Z", 10 + v * 2 + i) });
                let r = http
                    .post(format!("{base}/api/v1/deploys"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .expect("deploy");
                assert!(r.status().is_success(), "deploy: {}", r.status());
            }
        }
        // The events, eight requests at a time.
        let start = Instant::now();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (http, next, url) =
                (http.clone(), next.clone(), format!("{base}/api/{project}/store/?sentry_key={key}"));
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= events {
                        break;
                    }
                    let g = i % groups;
                    let body = serde_json::json!({
                        "event_id": format!("{i:032x}"), "release": format!("v{}", 1 + i % 5),
                        "environment": if i % 3 == 0 { "staging" } else { "production" }, "platform": "python",
                        "exception": {"values": [{"type": format!("Error{g}"), "value": "boom", "stacktrace": {"frames": [
                            {"abs_path": "/srv/app/app/handler.py", "function": format!("handler_{}", 1 + g % 40),
                             "lineno": 2 + 3 * (g % 40), "in_app": true}]}}]}
                    });
                    let r = http.post(&url).json(&body).send().await.expect("event sent");
                    assert!(r.status().is_success(), "event: {}", r.status());
                }
            }));
        }
        for t in tasks {
            t.await.expect("sender");
        }
        // Grouped and assigned: every event grouped, then the job queue empty.
        loop {
            let grouped = metric(&http, &base, "shipwatch_events_grouped_total").await;
            let queued = metric(&http, &base, "shipwatch_queue_jobs{kind=\"assign_group\"}").await;
            if grouped as usize >= events && queued == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        println!("{backend:10} {:28} {:>8.1} s", "(seeded, grouped, assigned)", start.elapsed().as_secs_f64());
        let list: serde_json::Value = http
            .get(format!("{base}/api/v1/projects/bench/groups?limit=200"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("groups")
            .json()
            .await
            .expect("json");
        let ids: Vec<i64> =
            list["groups"].as_array().expect("groups").iter().filter_map(|g| g["id"].as_i64()).collect();
        assert!(!ids.is_empty());
        let pages: [(&str, PathOf); 5] = [
            ("errors list", Box::new(|_| "/projects/bench/errors".into())),
            (
                "errors, filtered",
                Box::new(|i| {
                    format!(
                        "/projects/bench/errors?status=unresolved&environment=staging&release=v3&q=error{}",
                        i % 100
                    )
                }),
            ),
            ("errors, by events, page 5", Box::new(|_| "/projects/bench/errors?sort=events&offset=200".into())),
            ("group page", Box::new(|i| format!("/groups/{}", ids[i % ids.len()]))),
            ("deploy page", Box::new(|i| format!("/deploys/{}", 1 + i % 10))),
        ];
        for (name, path) in pages {
            let [p50, p95, max] = time_pages(&http, &base, requests, path).await;
            println!("{backend:10} {name:28} {p50:>8.1} {p95:>8.1} {max:>8.1}");
        }
        drop(server);
    }
}
