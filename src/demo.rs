//! `shipwatch demo`: the whole product on this machine with no setup. It builds a small repository with three
//! authors, starts shipwatch on SQLite, records two deploys, sends errors through the Sentry envelope endpoint, and
//! prints the assignments, the regression and the release report; GitHub issue writes go to an in-memory GitHub and
//! are shown as a dry run. Then it keeps serving so the pages can be opened (unless `--exit`).

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::app::{self, App, ServeOptions};
use crate::config::{DataArgs, GitArgs, WorkerArgs};
use crate::github::MemoryGitHub;
use crate::output::say;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the demo server listens (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Stop after printing instead of serving the pages until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

const AUTHORS: [(&str, &str); 3] = [
    ("Alice Doe", "alice@example.com"),
    ("Bob Roe", "1234+bobby@users.noreply.github.com"),
    ("Carol Poe", "carol@example.com"),
];

fn git(dir: &Path, author: usize, t: i64, args: &[&str]) -> anyhow::Result<String> {
    let (name, email) = AUTHORS[author];
    let date = format!("{t} +0000");
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", name)
        .env("GIT_AUTHOR_EMAIL", email)
        .env("GIT_COMMITTER_NAME", name)
        .env("GIT_COMMITTER_EMAIL", email)
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .output()
        .context("running git (is it installed?)")?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn commit(dir: &Path, author: usize, t: i64, files: &[(&str, &str)], message: &str) -> anyhow::Result<String> {
    for (path, text) in files {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&full, text)?;
        git(dir, author, t, &["add", "--", path])?;
    }
    git(dir, author, t, &["commit", "--quiet", "-m", message])?;
    git(dir, author, t, &["rev-parse", "HEAD"])
}

/// Where the demo's logs go (unless RUST_LOG is set): a file next to its data, named after this process.
pub fn log_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("shipwatch-demo-{}.log", std::process::id()))
}

/// Runs the demo.
///
/// # Errors
/// When git is missing, the address is taken, or a step of the pipeline fails.
pub async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    // The address first: when it is taken, nothing is left behind.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {} (another server there? try --listen 127.0.0.1:0)", args.listen))?;
    let root = std::env::temp_dir().join(format!("shipwatch-demo-{}", std::process::id()));
    let repo = root.join("shop");
    std::fs::create_dir_all(&repo)?;
    git(&repo, 0, 0, &["init", "--quiet", "--initial-branch=main"])?;
    let t = chrono::Utc::now().timestamp() - 7 * 86_400;
    commit(
        &repo,
        0,
        t,
        &[
            ("app/main.py", "from app.pay import pay\nfrom app.cart import total\n\nprint(pay(total({}), 0))\n"),
            ("app/pay.py", "def pay(amount, parts):\n    return amount / (parts or 1)\n"),
            (".github/CODEOWNERS", "*             @acme/shop-team\n/app/cart.py  @carolpoe\n"),
        ],
        "Payments",
    )?;
    let v1 = commit(
        &repo,
        2,
        t + 3600,
        &[("app/cart.py", "def total(cart):\n    return sum(cart['items'])\n")],
        "Cart totals (#3)",
    )?;
    let bug = commit(
        &repo,
        1,
        t + 86_400,
        &[("app/pay.py", "def pay(amount, parts):\n    return amount / parts\n")],
        "Simplify pay (#7)\n\nCo-authored-by: Carol Poe <carol@example.com>",
    )?;
    let v2 = commit(&repo, 2, t + 90_000, &[("README.md", "The demo shop.\n")], "Readme, fixes #12")?;

    // The server: SQLite in the demo folder, local repositories allowed, GitHub in memory.
    let data = DataArgs { data_dir: root.join("data"), database_url: None, spool_max_mb: 1024, intake_memory_mb: 192 };
    data.prepare()?;
    let git_args = GitArgs {
        allow_local_repos: true,
        git_token: None,
        git_program: "git".into(),
        git_timeout: 120,
        github_token: None,
        github_app_id: None,
        github_app_key: None,
        github_api_url: "https://api.github.com".into(),
        git_token_hosts: Vec::new(),
        allow_insecure_github_api: false,
        github_timeout_ms: 30_000,
        max_range_commits: 20_000,
        blame_cache_lines: 200_000,
        tree_cache_trees: 64,
    };
    let base = format!("http://{}", listener.local_addr()?);
    let worker = WorkerArgs {
        job_lease: 60,
        // One job at a time: the story reads the same on every run (issues numbered in the order errors came).
        worker_jobs: 1,
        poll_interval_ms: 50,
        public_url: Some(base.clone()),
        github_write_interval_ms: 0,
        retain_events_days: 90,
        retain_jobs_days: 14,
        retain_webhooks_days: 30,
        retention_interval_minutes: 60,
    };
    let store = crate::store::connect(&data.database_url()).await?;
    let github = Arc::new(MemoryGitHub::default());
    let app = App::with_github(store.clone(), &data, &git_args, &worker, github.clone(), true, None);
    let shutdown = CancellationToken::new();
    let options = ServeOptions {
        public_url: base.clone(),
        admin_token: None,
        allow_local_repos: true,
        run_worker: true,
        events_per_minute: 6000,
        webhook_secret: None,
        read_token: None,
        limits: Default::default(),
    };
    let server = tokio::spawn(app::serve(app.clone(), listener, options, shutdown.clone()));
    say(format!("shipwatch demo: a repository with three authors in {}", repo.display()));
    say(format!("shipwatch demo: server on {base} (SQLite in {})\n", data.data_dir.display()));

    let now = chrono::Utc::now().timestamp_millis();
    let project =
        crate::projects::create(store.as_ref(), "shop", &repo.display().to_string(), Some("acme/shop"), true, now)
            .await?;
    let http = reqwest::Client::new();
    let token = project.deploy_token.clone();
    let deploy = |sha: String, version: &'static str| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move {
            let body = json!({ "project": "shop", "environment": "production", "sha": sha, "version": version, "deployer": "demo" });
            let r: Value = http
                .post(format!("{base}/api/v1/deploys"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await?
                .json()
                .await?;
            let url = r["urls"]["deploy"].as_str().context("deploy URL")?.to_owned();
            for _ in 0..200 {
                let d: Value = http.get(&url).bearer_auth(&token).send().await?.json().await?;
                if d["deploy"]["status"] != json!("pending") {
                    say(format!(
                        "deploy {version}: {} ({} commits)",
                        d["deploy"]["range_status"].as_str().unwrap_or("?"),
                        d["deploy"]["commit_count"]
                    ));
                    return Ok::<i64, anyhow::Error>(r["id"].as_i64().unwrap_or_default());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            bail!("deploy {version} was not processed in time")
        }
    };
    let envelope_url = format!("{base}/api/{}/envelope/?sentry_key={}", project.id, project.ingest_key);
    let send = |n: u32, release: &'static str, ty: &'static str, frames: Value| {
        let (http, url) = (http.clone(), envelope_url.clone());
        async move {
            let event = json!({ "event_id": format!("{n:032x}"), "platform": "python", "release": release, "environment": "production",
                "exception": {"values": [{"type": ty, "value": if ty == "KeyError" { "'items'" } else { "division by zero" },
                "stacktrace": {"frames": frames}}]}})
            .to_string();
            let body = format!("{{}}\n{{\"type\":\"event\"}}\n{event}\n");
            let status = http.post(&url).body(body).send().await?.status();
            anyhow::ensure!(status.is_success(), "the envelope endpoint answered {status}");
            Ok::<(), anyhow::Error>(())
        }
    };
    let cart_frames = json!([{"abs_path": "/srv/shop/app/main.py", "function": "<module>", "lineno": 4, "in_app": true},
                             {"abs_path": "/srv/shop/app/cart.py", "function": "total", "lineno": 2, "in_app": true}]);
    let pay_frames = json!([{"abs_path": "/srv/shop/app/main.py", "function": "<module>", "lineno": 4, "in_app": true},
                            {"abs_path": "/srv/shop/app/pay.py", "function": "pay", "lineno": 2, "in_app": true}]);
    // Until the spool is forwarded and no event or job is waiting (at most a minute, on a busy machine).
    let settle = || async {
        for _ in 0..600 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let spooled = app.spooler.depth().await.map(|(n, _)| n).unwrap_or(1);
            let queued = store.queue_depths().await.map(|q| q.iter().map(|(_, n, _)| n).sum::<i64>()).unwrap_or(1);
            if spooled == 0 && queued == 0 {
                return;
            }
        }
    };

    deploy(v1, "v1").await?;
    send(1, "v1", "KeyError", cart_frames.clone()).await?;
    settle().await;
    let groups = store.list_groups(project.id, &crate::store::GroupFilter { limit: 50, ..Default::default() }).await?;
    if let Some(g) = groups.first() {
        store.resolve_group(g.id, None, chrono::Utc::now().timestamp_millis()).await?;
        say(format!("resolved \"{}\" in v1", g.title));
    }
    let v2_id = deploy(v2, "v2").await?;
    // One at a time, so the issues are numbered in the order the errors came on every run.
    send(2, "v2", "ZeroDivisionError", pay_frames).await?;
    settle().await;
    send(3, "v2", "KeyError", cart_frames).await?;
    settle().await;

    say("\n== Assignments ==");
    for g in store.list_groups(project.id, &crate::store::GroupFilter { limit: 50, ..Default::default() }).await? {
        let explanation = g
            .assignment
            .as_deref()
            .and_then(|a| serde_json::from_str::<Value>(a).ok())
            .and_then(|a| a["explanation"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "(not assigned yet)".into());
        say(format!(
            "{} → {}",
            g.title,
            g.assignee.as_deref().map(|a| format!("@{a}")).unwrap_or_else(|| "nobody".into())
        ));
        say(format!("    {explanation}"));
        if let Some(r) = &g.regressed_in {
            say(format!("    REGRESSED in {r}: it was resolved after v1, and v2 contains that resolution"));
        }
    }
    say("\n== GitHub (dry run: an in-memory GitHub) ==");
    for i in github.issues() {
        say(format!(
            "issue #{} \"{}\" assigned to {:?}, labels {:?}, {} comment(s)",
            i.number,
            i.title,
            i.assignees,
            i.labels,
            i.comments.len()
        ));
    }
    say(format!("\n== Release report of v2 (also at {base}/deploys/{v2_id}) ==\n"));
    let md = http
        .get(format!("{base}/api/v1/deploys/{v2_id}/report?format=md"))
        .bearer_auth(&token)
        .send()
        .await?
        .text()
        .await?;
    say(md);
    say(format!("bug introduced by {}; pages: {base}/projects/shop", &bug[..7]));
    if std::env::var_os("RUST_LOG").is_none() {
        say(format!("logs: {} (RUST_LOG=info shows them here instead)", log_path().display()));
    }
    if args.exit {
        shutdown.cancel();
    } else {
        say("Serving the pages until Ctrl-C.");
        app::cancel_on_signals(shutdown.clone());
    }
    server.await.context("server task")??;
    Ok(())
}
