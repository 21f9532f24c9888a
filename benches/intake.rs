//! Intake and grouping under load: starts the real `shipwatch serve` (release build, its worker in the same
//! process) on SQLite and, when reachable, PostgreSQL, offers real `sentry-sdk` envelopes (the captured request in
//! `tests/fixtures/sentry-sdk`, gzip, a unique event id each) at a fixed concurrency from its own load generator, and
//! prints accepted/s, grouped/s during the load and while draining, the backlog, p50/p99, peak RSS and CPU seconds per
//! 1,000 events. Nothing is asserted.
//!
//! `cargo bench --bench intake -- [--seconds 30] [--concurrency 8,32] [--rate N] [--new-groups] [--worker-after]
//! [--only sqlite|postgres]`
//! `--rate N` offers N events per second in all (instead of as fast as answers come) and reports the largest backlog
//! seen, in seconds of work; `--new-groups` gives every event its own exception type (every event a new group);
//! `--worker-after` runs `serve --no-worker` during the load and starts a `shipwatch worker` process afterwards, so
//! the drain rate is grouping alone, undisturbed by intake. `--burst N` instead records a deploy, sends N distinct
//! new errors whose frame maps into the repository (`--unknown-release`: from a release never deployed) and reports
//! how long until all are grouped and assigned.
//! PostgreSQL: `SHIPWATCH_BENCH_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432`), a database
//! `shipwatch_intake_bench` is created and dropped. See docs/benchmarks.md.

mod common;

use common::{postgres_database, shipwatch};
use flate2::write::GzEncoder;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FIXTURE: &str = "tests/fixtures/sentry-sdk/py-basic-01.body";
const PORT: u16 = 18_491;

struct Options {
    seconds: u64,
    concurrency: Vec<usize>,
    rate: Option<u64>,
    new_groups: bool,
    only: Option<String>,
    worker_after: bool,
    burst: Option<usize>,
    unknown_release: bool,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 30,
        concurrency: vec![8, 32],
        rate: None,
        new_groups: false,
        only: None,
        worker_after: false,
        burst: None,
        unknown_release: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => o.seconds = args.next().and_then(|v| v.parse().ok()).unwrap_or(o.seconds),
            "--concurrency" => {
                o.concurrency =
                    args.next().map(|v| v.split(',').filter_map(|c| c.parse().ok()).collect()).unwrap_or_default();
            }
            "--rate" => o.rate = args.next().and_then(|v| v.parse().ok()),
            "--new-groups" => o.new_groups = true,
            "--only" => o.only = args.next(),
            "--worker-after" => o.worker_after = true,
            "--burst" => o.burst = args.next().and_then(|v| v.parse().ok()),
            "--unknown-release" => o.unknown_release = true,
            _ => {}
        }
    }
    o
}

/// The captured envelope with its event id (and, for new groups, its exception type) made unique, gzipped.
fn bodies(template: &str, n: usize, new_groups: bool) -> Vec<Vec<u8>> {
    assert!(template.contains("\"type\":\"ZeroDivisionError\""), "the fixture raises ZeroDivisionError");
    let id = template
        .split("\"event_id\":\"")
        .nth(1)
        .and_then(|s| s.get(..32))
        .expect("the fixture carries an event id")
        .to_owned();
    (0..n)
        .map(|i| {
            let unique = format!("{:016x}{:016x}", std::process::id(), i);
            let mut text = template.replace(&id, &unique);
            if new_groups {
                // The raised exception's type (not the item's `"type":"event"` nor the mechanism's), of the same
                // length: the item header gives the item's length in bytes.
                text = text.replace("\"type\":\"ZeroDivisionError\"", &format!("\"type\":\"Bench{i:012}\""));
            }
            let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(text.as_bytes()).expect("gzip in memory");
            gz.finish().expect("gzip in memory")
        })
        .collect()
}

struct Server {
    child: Child,
    base: String,
    data: PathBuf,
    database: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates the project, starts the server; returns it with the project's key and id.
fn start(data: &Path, repo: &Path, database: Option<&str>, no_worker: bool) -> (Server, String, String, String) {
    let repo = repo.to_string_lossy();
    let out = shipwatch(data, database, &["project", "add", "--name", "bench", "--allow-local-repos", "--repo", &repo])
        .output()
        .expect("shipwatch runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let Some(dsn) = text.lines().find_map(|l| l.trim().strip_prefix("DSN:")).map(str::trim) else {
        panic!("project add printed no DSN: {text}{}", String::from_utf8_lossy(&out.stderr));
    };
    let key = dsn.split("//").nth(1).and_then(|s| s.split('@').next()).expect("DSN key").to_owned();
    let project = dsn.rsplit('/').next().expect("DSN project").to_owned();
    let token =
        text.lines().find_map(|l| l.trim().strip_prefix("Deploy token:")).map(str::trim).unwrap_or("").to_owned();
    let base = format!("http://127.0.0.1:{PORT}");
    let listen = format!("127.0.0.1:{PORT}");
    let mut serve = shipwatch(
        data,
        database,
        &["serve", "--listen", &listen, "--events-per-minute", "1000000000", "--allow-local-repos"],
    );
    if no_worker {
        serve.arg("--no-worker");
    }
    let child = serve.stdout(Stdio::null()).spawn().expect("shipwatch serve starts");
    let server = Server { child, base, data: data.to_owned(), database: database.map(str::to_owned) };
    for _ in 0..200 {
        if std::net::TcpStream::connect(&listen).is_ok() {
            return (server, key, project, token);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("shipwatch serve did not listen on {listen}");
}

/// `shipwatch_events_accepted_total` and `shipwatch_events_grouped_total` from `/metrics`.
async fn counts(http: &reqwest::Client, base: &str) -> (u64, u64) {
    let (accepted, grouped, _, _) = metrics(http, base).await;
    (accepted, grouped)
}

/// Events accepted and grouped by this process, events waiting to be grouped (by any process), and requests in
/// this process's spool, from `/metrics`.
async fn metrics(http: &reqwest::Client, base: &str) -> (u64, u64, u64, u64) {
    let Ok(r) = http.get(format!("{base}/metrics")).send().await else { return (0, 0, 0, 0) };
    let text = r.text().await.unwrap_or_default();
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    (
        value("shipwatch_events_accepted_total"),
        value("shipwatch_events_grouped_total"),
        value("shipwatch_queue_jobs{kind=\"group_events\"}"),
        value("shipwatch_spool_requests "),
    )
}

/// Resident set size now and CPU seconds so far of a process.
fn usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    (rss_kb * 1024, ticks / 100.0)
}

struct Run {
    accepted: u64,
    refused: u64,
    seconds: f64,
    latencies_us: Vec<u64>,
    grouped_during: u64,
    backlog_end: u64,
    max_backlog_s: f64,
    drain_s: f64,
    drained: u64,
    peak_rss: u64,
    cpu_s: f64,
}

async fn load(server: &Server, key: &str, project: &str, bodies: Arc<Vec<Vec<u8>>>, c: usize, o: &Options) -> Run {
    let url = format!("{}/api/{project}/envelope/", server.base);
    let auth = format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=sentry.python/2.75.0");
    let next = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let pid = server.child.id();
    let (_, cpu_before) = usage(pid);
    let http = reqwest::Client::new();
    let (accepted_before, grouped_before) = counts(&http, &server.base).await;
    let started = Instant::now();
    // With a rate, each connection sends on its own schedule: rate / c per second.
    let interval = o.rate.map(|r| Duration::from_secs_f64(c as f64 / r as f64));
    let tasks: Vec<_> = (0..c)
        .map(|_| {
            let (url, auth, bodies, next, refused) =
                (url.clone(), auth.clone(), bodies.clone(), next.clone(), refused.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut latencies = Vec::new();
                let mut due = Instant::now();
                while Instant::now() < deadline {
                    if let Some(every) = interval {
                        tokio::time::sleep_until(due.into()).await;
                        due += every;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(body) = bodies.get(i) else { break };
                    let sent = Instant::now();
                    let answer = http
                        .post(&url)
                        .header("Content-Type", "application/x-sentry-envelope")
                        .header("Content-Encoding", "gzip")
                        .header("X-Sentry-Auth", &auth)
                        .body(body.clone())
                        .send()
                        .await;
                    match answer {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            latencies.push(sent.elapsed().as_micros() as u64);
                        }
                        _ => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    // Sample the server while the load runs.
    let (mut peak_rss, mut max_backlog_s) = (0, 0.0f64);
    let mut last = (accepted_before, grouped_before, Instant::now());
    let mut grouped_rate = 0.0f64;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak_rss = peak_rss.max(usage(pid).0);
        let (a, g) = counts(&http, &server.base).await;
        let now = Instant::now();
        let dt = now.duration_since(last.2).as_secs_f64();
        if dt > 0.0 && g >= last.1 {
            grouped_rate = 0.7 * grouped_rate + 0.3 * ((g - last.1) as f64 / dt);
        }
        // The backlog in seconds of work at the rate grouping has been going.
        let backlog = a.saturating_sub(g) as f64;
        if grouped_rate > 0.0 {
            max_backlog_s = max_backlog_s.max(backlog / grouped_rate);
        }
        last = (a, g, now);
    }
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.expect("load task"));
    }
    let seconds = started.elapsed().as_secs_f64();
    let (accepted_now, grouped_now) = counts(&http, &server.base).await;
    let accepted = accepted_now - accepted_before;
    let grouped_during = grouped_now - grouped_before;
    let backlog_end = accepted_now.saturating_sub(grouped_now);
    // Drain: by this process's worker, or by a worker process started now.
    let drain_started = Instant::now();
    let mut grouped_end = grouped_now;
    let mut drained_by_worker = 0;
    if o.worker_after {
        // Wait for the forwarder to move the spool into the store, then start the worker.
        let (_, _, mut waiting, mut spooled) = metrics(&http, &server.base).await;
        while spooled > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            (_, _, waiting, spooled) = metrics(&http, &server.base).await;
        }
        let mut worker =
            shipwatch(&server.data, server.database.as_deref(), &["worker"]).spawn().expect("shipwatch worker starts");
        let worker_pid = worker.id();
        let started = Instant::now();
        let mut left = waiting;
        while left > 0 && started.elapsed() < Duration::from_secs(600) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            peak_rss = peak_rss.max(usage(worker_pid).0);
            left = metrics(&http, &server.base).await.2;
        }
        drained_by_worker = waiting;
        let drain_s = started.elapsed().as_secs_f64();
        println!("  worker process: {waiting} events grouped in {drain_s:.2} s = {:.0} ev/s", waiting as f64 / drain_s);
        let _ = worker.kill();
        let _ = worker.wait();
    } else {
        while grouped_end < accepted_now && drain_started.elapsed() < Duration::from_secs(600) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            peak_rss = peak_rss.max(usage(pid).0);
            grouped_end = counts(&http, &server.base).await.1;
        }
    }
    let drain_s = drain_started.elapsed().as_secs_f64();
    let (_, cpu_after) = usage(pid);
    Run {
        accepted,
        refused: refused.load(Ordering::Relaxed),
        seconds,
        latencies_us,
        grouped_during,
        backlog_end,
        max_backlog_s,
        drain_s,
        drained: grouped_end - grouped_now + drained_by_worker,
        peak_rss,
        cpu_s: cpu_after - cpu_before,
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Records a deploy of the repository's head as `v1`, sends `n` distinct new errors (one group each) whose frame
/// maps to `app/handler.py` from release `v1` (or one never deployed), and reports when all are grouped and assigned.
#[allow(clippy::too_many_arguments)]
async fn burst(server: &Server, key: &str, project: &str, token: &str, repo: &Path, n: usize, unknown: bool) {
    let http = reqwest::Client::new();
    let head = String::from_utf8_lossy(
        &Command::new("git").arg("-C").arg(repo).args(["rev-parse", "HEAD"]).output().expect("git").stdout,
    )
    .trim()
    .to_owned();
    let deploy = serde_json::json!({ "project": "bench", "environment": "production", "sha": head, "version": "v1" });
    let answer: serde_json::Value = http
        .post(format!("{}/api/v1/deploys", server.base))
        .bearer_auth(token)
        .json(&deploy)
        .send()
        .await
        .expect("deploy")
        .json()
        .await
        .expect("json");
    let url = answer["urls"]["deploy"].as_str().expect("deploy url").to_owned();
    loop {
        let d: serde_json::Value =
            http.get(&url).bearer_auth(token).send().await.expect("get").json().await.expect("json");
        if d["deploy"]["status"] != "pending" {
            assert_eq!(d["deploy"]["status"], "ready", "the deploy: {d}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let release = if unknown { "v9-never-deployed" } else { "v1" };
    let bodies: Vec<String> = (0..n)
        .map(|i| {
            let event = serde_json::json!({
                "event_id": format!("{:032x}", i + 1), "release": release, "environment": "production",
                "platform": "python", "exception": {"values": [{"type": format!("Burst{i:06}Error"), "value": "boom",
                "stacktrace": {"frames": [{"abs_path": "/srv/app/app/handler.py", "function": "handle", "lineno": 4,
                "in_app": true}]}}]}});
            format!("{{}}\n{{\"type\":\"event\"}}\n{event}\n")
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicU64::new(0));
    let intake = format!("{}/api/{project}/envelope/?sentry_key={key}", server.base);
    let started = Instant::now();
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (bodies, next, intake) = (bodies.clone(), next.clone(), intake.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(body) = bodies.get(i) else { break };
                    let r = http.post(&intake).body(body.clone()).send().await.expect("sent");
                    assert_eq!(r.status().as_u16(), 200);
                }
            })
        })
        .collect();
    for s in senders {
        s.await.expect("sender");
    }
    let sent = started.elapsed();
    let queue = |text: &str, kind: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(&format!("shipwatch_queue_jobs{{kind=\"{kind}\"}}")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    let mut grouped_at = None;
    loop {
        let text =
            http.get(format!("{}/metrics", server.base)).send().await.expect("metrics").text().await.expect("text");
        let grouped = text
            .lines()
            .find(|l| l.starts_with("shipwatch_events_grouped_total"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        if grouped_at.is_none() && grouped as usize >= n {
            grouped_at = Some(started.elapsed());
        }
        if grouped_at.is_some() && queue(&text, "assign_group") == 0.0 && queue(&text, "group_events") == 0.0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            println!("  burst: not done after 10 minutes");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = started.elapsed();
    let groups: serde_json::Value = http
        .get(format!("{}/api/v1/projects/bench/groups?limit=1", server.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("groups")
        .json()
        .await
        .expect("json");
    let sample = &groups["groups"][0];
    println!(
        "  burst of {n} new errors from release {release}: sent in {:.2} s, all grouped at {:.2} s, all assigned at \
         {:.2} s; a group: assignee {}, introduced_by {}",
        sent.as_secs_f64(),
        grouped_at.unwrap_or_default().as_secs_f64(),
        done.as_secs_f64(),
        sample["assignee"],
        sample["introduced_by"]
    );
}

#[tokio::main]
async fn main() {
    let o = options();
    let template = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)).expect("fixture");
    // Enough unique envelopes for the fastest run seen, with room.
    let n = o.rate.map_or(12_000 * o.seconds as usize, |r| (r * o.seconds + 1_000) as usize);
    println!("preparing {n} gzip envelopes ({} groups) …", if o.new_groups { "all new" } else { "one" });
    let bodies = Arc::new(bodies(&template, n, o.new_groups));
    let scratch = tempfile::tempdir().expect("scratch dir");
    let repo: PathBuf = scratch.path().join("repo");
    let git = |args: &[&str]| Command::new("git").args(args).status().is_ok_and(|s| s.success());
    assert!(git(&["init", "--quiet", &repo.to_string_lossy()]));
    let commit = |extra: &[&str], message: &str| {
        let dir = repo.to_string_lossy();
        let mut args = vec!["-C", &dir, "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-q"];
        args.extend_from_slice(extra);
        args.extend(["-m", message]);
        assert!(git(&args));
    };
    commit(&["--allow-empty"], "i");
    // The file the burst's frames point at.
    std::fs::create_dir_all(repo.join("app")).expect("mkdir");
    std::fs::write(repo.join("app/handler.py"), "import os\n\ndef handle(request):\n    return 1 / 0\n")
        .expect("write");
    assert!(git(&["-C", &repo.to_string_lossy(), "add", "-A"]));
    commit(&[], "h");
    println!(
        "{:10} {:>4} {:>10} {:>10} {:>10} {:>9} {:>10} {:>8} {:>8} {:>9} {:>9} {:>8}",
        "backend",
        "conc",
        "accepted/s",
        "grouped/s",
        "drain ev/s",
        "backlog",
        "max lag s",
        "p50 ms",
        "p99 ms",
        "peak RSS",
        "CPU s/1k",
        "refused"
    );
    for backend in ["sqlite", "postgres"] {
        if o.only.as_deref().is_some_and(|b| b != backend) {
            continue;
        }
        for &c in &o.concurrency {
            let data = scratch.path().join(format!("{backend}-{c}"));
            let database = if backend == "postgres" {
                match postgres_database("shipwatch_intake_bench").await {
                    Some(url) => Some(url),
                    None => {
                        println!("postgres   SKIPPED: no PostgreSQL at SHIPWATCH_BENCH_POSTGRES_URL");
                        break;
                    }
                }
            } else {
                None
            };
            let (server, key, project, token) = start(&data, &repo, database.as_deref(), o.worker_after);
            if let Some(n) = o.burst {
                burst(&server, &key, &project, &token, &repo, n, o.unknown_release).await;
                continue;
            }
            // A fresh data directory (and database) per run: every run starts from an empty store.
            let run = load(&server, &key, &project, bodies.clone(), c, &o).await;
            drop(server);
            let mut l = run.latencies_us.clone();
            l.sort_unstable();
            let drain_rate = if run.drain_s > 0.05 { run.drained as f64 / run.drain_s } else { f64::NAN };
            println!(
                "{:10} {:>4} {:>10.0} {:>10.0} {:>10.0} {:>9} {:>10.1} {:>8.2} {:>8.2} {:>7} MB {:>9.2} {:>8}",
                backend,
                c,
                run.accepted as f64 / run.seconds,
                run.grouped_during as f64 / run.seconds,
                drain_rate,
                run.backlog_end,
                run.max_backlog_s,
                percentile(&l, 0.5),
                percentile(&l, 0.99),
                run.peak_rss / 1_000_000,
                run.cpu_s / (run.accepted.max(1) as f64 / 1000.0),
                run.refused
            );
        }
    }
}
