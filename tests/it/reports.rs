//! Release reports as snapshots (Markdown and JSON): a deploy with new errors and suspects in its range, one with a
//! regression, and one with no errors. Everything in them is deterministic: commits have fixed dates, deploys and
//! events fixed times.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{sqlite_db, Author, TestApp, TestRepo, ADMIN_TOKEN, ALICE, CAROL};

const BOBBY: Author = Author { name: "Bob Roe", email: "1234+bobby@users.noreply.github.com" };
const T0: i64 = 1_795_000_000; // 2026-11-18T11:06:40Z

fn iso(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).expect("time").to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn report(app: &TestApp, token: &str, id: i64, format: &str) -> String {
    let resp = app
        .http
        .get(format!("{}/api/v1/deploys/{id}/report?format={format}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    assert!(resp.status().is_success());
    resp.text().await.expect("text")
}

/// The shop both report tests deploy: project `web` on a repository whose first commit has the cart and the
/// payments. Returns that commit, the deploy token and the project's envelope URL.
async fn shop(app: &TestApp, repo: &TestRepo) -> (String, String, String) {
    let c1 = repo.commit(
        &ALICE,
        &[
            ("app/pay.py", "def pay(a, b):\n    return a / (b + 1)\n"),
            ("app/cart.py", "def item(c):\n    return c['sku']\n"),
        ],
        "Cart and payments",
    );
    let (_, token) = app.project("web", repo).await;
    let (_, p) = app.call(Method::GET, "/api/v1/projects/web", Some(ADMIN_TOKEN), None).await;
    let key =
        p["dsn"].as_str().and_then(|d| d.split("//").nth(1)).and_then(|r| r.split('@').next()).expect("key").to_owned();
    (c1, token, format!("{}/api/{}/envelope/?sentry_key={key}", app.base, p["id"]))
}

/// Records a deploy at a fixed time and lets the worker compute it; returns its id.
async fn deploy_at(app: &TestApp, token: &str, env: &str, sha: String, version: &str, at: i64) -> i64 {
    let body = json!({ "project": "web", "environment": env, "sha": sha, "version": version,
                       "deployed_at": iso(at), "deployer": "octocat" });
    let (status, d) = app.deploy(token, body).await;
    assert_eq!(status, 202, "{d}");
    app.drain().await;
    d["id"].as_i64().expect("id")
}

/// Sends event `n` (type `ty`, one frame at `path:line`) from `release` in `env` at a fixed time, and handles it.
#[allow(clippy::too_many_arguments)]
async fn send_error(
    app: &TestApp,
    url: &str,
    n: u32,
    env: &str,
    release: &str,
    at: i64,
    ty: &str,
    at_line: (&str, u32),
) {
    let (path, line) = at_line;
    let event = json!({
        "event_id": format!("{n:032x}"), "release": release, "environment": env, "platform": "python",
        "timestamp": at,
        "exception": {"values": [{"type": ty, "value": "boom", "stacktrace": {"frames": [
            {"abs_path": format!("/srv/app/{path}"), "function": "f", "lineno": line, "in_app": true}]}}]}
    })
    .to_string();
    let body = format!("{{}}\n{{\"type\":\"event\"}}\n{event}\n");
    assert_eq!(app.http.post(url).body(body).send().await.expect("sent").status().as_u16(), 200);
    app.drain().await;
}

/// Resolves the project's group with this title through the API.
async fn resolve_titled(app: &TestApp, token: &str, title: &str) {
    let (_, groups) = app.call(Method::GET, "/api/v1/projects/web/groups", Some(token), None).await;
    let found = groups["groups"].as_array().expect("groups").iter().find(|g| g["title"] == json!(title));
    let id = found.expect("the group")["id"].clone();
    let (status, _) = app.call(Method::POST, &format!("/api/v1/groups/{id}/resolve"), Some(token), None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn release_reports() {
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let repo = TestRepo::new();
    let (c1, token, url) = shop(&app, &repo).await;
    let deploy = |sha: String, version: &'static str, at: i64| deploy_at(&app, &token, "production", sha, version, at);
    let error = |n: u32, release: &'static str, at: i64, ty: &'static str, path: &'static str, line: u32| {
        send_error(&app, &url, n, "production", release, at, ty, (path, line))
    };
    deploy(c1, "v1", T0).await;
    error(1, "v1", T0 + 86_400 - 600, "KeyError", "app/cart.py", 2).await;
    repo.commit(&BOBBY, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "Simplify pay (#21)\n\nFixes #4");
    let v2sha = repo.commit(&CAROL, &[("README.md", "shop\n")], "Readme");
    let v2 = deploy(v2sha, "v2", T0 + 86_400).await;
    error(2, "v2", T0 + 86_400 + 600, "ZeroDivisionError", "app/pay.py", 2).await;
    error(3, "v2", T0 + 86_400 + 700, "ZeroDivisionError", "app/pay.py", 2).await;
    error(4, "v2", T0 + 86_400 + 800, "IndexError", "app/cart.py", 1).await;

    resolve_titled(&app, &token, "ZeroDivisionError: boom").await;
    let v3sha = repo.commit(&ALICE, &[("docs.md", "docs\n")], "Docs");
    let v3 = deploy(v3sha, "v3", T0 + 2 * 86_400).await;
    error(5, "v3", T0 + 2 * 86_400 + 300, "ZeroDivisionError", "app/pay.py", 2).await;
    let v4sha = repo.commit(&CAROL, &[("docs.md", "more docs\n")], "More docs");
    let v4 = deploy(v4sha, "v4", T0 + 3 * 86_400).await;

    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"127\.0\.0\.1:\d+", "[server]");
    settings.set_snapshot_path("snapshots");
    settings
        .bind_async(async {
            insta::assert_snapshot!("v2_new_errors_and_suspects.md", report(&app, &token, v2, "md").await);
            let json: Value = serde_json::from_str(&report(&app, &token, v2, "json").await).expect("json");
            insta::assert_json_snapshot!("v2_new_errors_and_suspects.json", json);
            insta::assert_snapshot!("v3_regression.md", report(&app, &token, v3, "md").await);
            let json: Value = serde_json::from_str(&report(&app, &token, v3, "json").await).expect("json");
            insta::assert_json_snapshot!("v3_regression.json", json);
            insta::assert_snapshot!("v4_no_errors.md", report(&app, &token, v4, "md").await);
            let json: Value = serde_json::from_str(&report(&app, &token, v4, "json").await).expect("json");
            insta::assert_json_snapshot!("v4_no_errors.json", json);
        })
        .await;
    app.stop().await;
}

#[tokio::test]
async fn a_failed_deploy_is_never_the_latest_and_shows_why_instead_of_a_green_badge() {
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let repo = TestRepo::new();
    let c1 = repo.commit(&ALICE, &[("a.txt", "1\n")], "one");
    let (_, token) = app.project("web", &repo).await;
    let deploy = |sha: String, version: &'static str| {
        let body = json!({ "project": "web", "environment": "production", "sha": sha, "version": version });
        let (app, token) = (&app, token.clone());
        async move { app.deploy(&token, body).await }
    };
    deploy(c1, "v1").await;
    app.drain().await;
    // A commit that was never pushed: the deploy fails, with the reason.
    deploy("f".repeat(40), "v2").await;
    app.drain().await;
    let page = |path: &'static str| {
        let app = &app;
        async move { app.http.get(format!("{}{path}", app.base)).send().await.expect("sent").text().await.expect("text") }
    };
    let projects = page("/projects").await;
    assert!(projects.contains("href=\"/deploys/1\">v1</a>"), "the last deploy that shipped is the latest: {projects}");
    assert!(!projects.contains("href=\"/deploys/2\""), "{projects}");
    let project = page("/projects/web").await;
    let row = project.split("<tr>").find(|r| r.contains("href=\"/deploys/2\"")).expect("v2's row");
    assert!(row.contains("<span class=\"tag bad\">failed</span>") && row.contains("is not in"), "{row}");
    assert!(!row.contains("0 new · 0 regressed"), "no green badge for a deploy that shipped nothing: {row}");
    app.stop().await;
}

#[tokio::test]
async fn the_errors_page_lists_a_projects_groups_filtered_sorted_and_paged() {
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let p = app.sentry_project("shop").await;
    let send = |n: usize, ty: &'static str, environment: &'static str| {
        let (app, key) = (&app, p.key.clone());
        async move {
            let body = json!({ "event_id": format!("{n:032x}"), "environment": environment, "release": "v1",
                "exception": { "type": ty, "value": "boom" } });
            let resp = app
                .http
                .post(format!("{}/api/v1/projects/shop/events", app.base))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .expect("sent");
            assert_eq!(resp.status().as_u16(), 200);
        }
    };
    // KeyError three times in production, ValueError once, TypeError once in staging.
    for n in 0..3 {
        send(n, "KeyError", "production").await;
    }
    send(3, "ValueError", "production").await;
    send(4, "TypeError", "staging").await;
    app.drain().await;
    let (_, groups) = app.call(Method::GET, "/api/v1/projects/shop/groups?q=valueerror", Some(&p.token), None).await;
    let value_error = groups["groups"][0]["id"].as_i64().expect("the ValueError group");
    let (status, _) =
        app.call(Method::POST, &format!("/api/v1/groups/{value_error}/resolve"), Some(&p.token), None).await;
    assert_eq!(status, 200);

    let page = |query: &str| {
        let url = format!("{}/projects/shop/errors{query}", app.base);
        let app = &app;
        async move {
            let resp = app.http.get(url).send().await.expect("sent");
            (resp.status().as_u16(), resp.text().await.expect("text"))
        }
    };
    let titles = |html: &str| -> Vec<String> {
        html.split("<a href=\"/groups/")
            .skip(1)
            .filter_map(|s| Some(s.split_once("\">")?.1.split('<').next()?.to_owned()))
            .collect()
    };
    let (status, all) = page("?sort=events").await;
    assert_eq!(status, 200);
    assert_eq!(titles(&all).first().map(String::as_str), Some("KeyError: boom"), "most events first: {all}");
    assert_eq!(titles(&all).len(), 3);
    let (_, unresolved) = page("?status=unresolved").await;
    assert!(!titles(&unresolved).iter().any(|t| t.starts_with("ValueError")), "{unresolved}");
    assert_eq!(titles(&unresolved).len(), 2);
    let (_, staging) = page("?environment=staging&status=").await;
    assert_eq!(titles(&staging), vec!["TypeError: boom".to_owned()]);
    let (_, words) = page("?q=KEYERR").await;
    assert_eq!(titles(&words), vec!["KeyError: boom".to_owned()]);
    let (_, first) = page("?limit=2").await;
    assert_eq!(titles(&first).len(), 2);
    assert!(first.contains("offset=2&amp;limit=2") && first.contains("next →"), "a link to the next page: {first}");
    let (_, second) = page("?limit=2&offset=2").await;
    assert_eq!(titles(&second).len(), 1);
    assert!(second.contains("← previous"));
    let (status, _) = page("?sort=sideways").await;
    assert_eq!(status, 422);
    app.stop().await;
}

/// A project deployed to staging and production: each deploy's report lists what happened in its own environment
/// only (a regression in production is not staging's), and a rollback lists the commits it took out.
#[tokio::test]
async fn reports_per_environment_and_a_rollback() {
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let repo = TestRepo::new();
    let (c1, token, url) = shop(&app, &repo).await;
    let deploy =
        |env: &'static str, sha: String, version: &'static str, at: i64| deploy_at(&app, &token, env, sha, version, at);
    let error = |n: u32, env: &'static str, release: &'static str, at: i64, ty: &'static str, path: &'static str| {
        send_error(&app, &url, n, env, release, at, ty, (path, 2))
    };
    let day = 86_400;
    deploy("staging", c1.clone(), "v1", T0).await;
    deploy("production", c1.clone(), "v1", T0 + 600).await;
    repo.commit(&BOBBY, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "Simplify pay (#21)");
    let v2sha = repo.commit(&CAROL, &[("app/cart.py", "def item(c):\n    return c['sku'][0]\n")], "First sku (#22)");
    deploy("staging", v2sha.clone(), "v2", T0 + day).await;
    deploy("production", v2sha.clone(), "v2", T0 + day + 600).await;
    error(1, "production", "v2", T0 + day + 900, "ZeroDivisionError", "app/pay.py").await;
    error(2, "staging", "v2", T0 + day + 950, "IndexError", "app/cart.py").await;
    resolve_titled(&app, &token, "ZeroDivisionError: boom").await;
    let v3sha = repo.commit(&ALICE, &[("docs.md", "docs\n")], "Docs (#23)");
    let staging_v3 = deploy("staging", v3sha.clone(), "v3", T0 + 2 * day).await;
    let production_v3 = deploy("production", v3sha, "v3", T0 + 2 * day + 600).await;
    // The fix never shipped: production's v3 raises again; staging's v3 only has its own old error.
    error(3, "production", "v3", T0 + 2 * day + 900, "ZeroDivisionError", "app/pay.py").await;
    error(4, "staging", "v3", T0 + 2 * day + 950, "IndexError", "app/cart.py").await;
    // Production goes back to v1: v2's and v3's commits are taken out.
    let rollback = deploy("production", c1, "v1-rollback", T0 + 3 * day).await;

    let staging_md = report(&app, &token, staging_v3, "md").await;
    let production_md = report(&app, &token, production_v3, "md").await;
    assert!(!staging_md.contains("regressed in") && !staging_md.contains("ZeroDivisionError"), "{staging_md}");
    assert!(
        production_md.contains("**regressed in this release**") && production_md.contains("ZeroDivisionError"),
        "{production_md}"
    );
    let rollback_md = report(&app, &token, rollback, "md").await;
    for summary in ["Docs (#23)", "First sku (#22)", "Simplify pay (#21)"] {
        assert!(rollback_md.contains(summary), "{summary} listed as taken out: {rollback_md}");
    }
    // The project page counts each deploy's own environment and release too.
    let page =
        app.http.get(format!("{}/projects/web", app.base)).send().await.expect("sent").text().await.expect("page");
    let staging = page.split("<h2>staging</h2>").nth(1).and_then(|s| s.split("<h2>").next()).expect("staging table");
    assert!(!staging.contains("1 regressed"), "staging shows production's regression: {staging}");

    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"127\.0\.0\.1:\d+", "[server]");
    settings.set_snapshot_path("snapshots");
    settings
        .bind_async(async {
            insta::assert_snapshot!("v3_staging.md", staging_md);
            insta::assert_snapshot!("v3_production_regression.md", production_md);
            insta::assert_snapshot!("rollback_removed_commits.md", rollback_md);
            let json: Value = serde_json::from_str(&report(&app, &token, rollback, "json").await).expect("json");
            insta::assert_json_snapshot!("rollback_removed_commits.json", json["removed_commits"]);
        })
        .await;
    app.stop().await;
}

/// A real 5,000-commit range (written with `git fast-import`, fixed dates): its Markdown report stays under 64 KB.
#[tokio::test]
async fn a_five_thousand_commit_range_makes_a_short_report() {
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let repo = TestRepo::new();
    let first = repo.commit(&ALICE, &[("README.md", "start\n")], "Start");
    let mut stream = String::new();
    stream.push_str("reset refs/heads/main\nfrom refs/heads/main^0\n");
    for i in 0..5_000u32 {
        let (who, at) = (i % 60, T0 + i64::from(i) * 60);
        let message = format!("Change number {i} to the payment flow (#{})\n", 100 + i);
        let content = format!("{i}\n");
        stream.push_str(&format!(
            "commit refs/heads/main\nauthor Author {who} <a{who}@example.com> {at} +0000\n\
             committer Author {who} <a{who}@example.com> {at} +0000\ndata {}\n{message}\
             M 644 inline file{}.txt\ndata {}\n{content}\n",
            message.len(),
            i % 7,
            content.len()
        ));
    }
    let mut child = std::process::Command::new("git")
        .arg("-C")
        .arg(repo.path())
        .args(["fast-import", "--quiet"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("git fast-import runs");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), stream.as_bytes()).expect("fed");
    assert!(child.wait().expect("waited").success());
    let last = repo.git(&["rev-parse", "refs/heads/main"]);
    let (_, token) = app.project("web", &repo).await;
    for (sha, version, at) in [(first, "v1", T0), (last, "v2", T0 + 400_000)] {
        let body = json!({ "project": "web", "environment": "production", "sha": sha, "version": version,
                           "deployed_at": iso(at) });
        assert_eq!(app.deploy(&token, body).await.0, 202);
        app.drain().await;
    }
    let md = report(&app, &token, 2, "md").await;
    assert!(md.len() < 64 * 1024, "{} bytes", md.len());
    assert!(md.contains("5000 commits since"), "{}", &md[..md.len().min(600)]);
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"127\.0\.0\.1:\d+", "[server]");
    settings.set_snapshot_path("snapshots");
    settings.bind(|| insta::assert_snapshot!("range_of_5000_commits.md", md));
    app.stop().await;
}

/// A regression re-runs assignment at the regressing deploy; that must not rewrite the earlier release's report.
/// Bobby's v2 breaks `pay`, the error is resolved, Carol rewrites the same line in v3 and it fails again: v3's
/// report names Carol's commit, and v2's report — Markdown and JSON — is byte for byte what it was before.
#[tokio::test]
async fn a_regression_leaves_the_earlier_release_report_as_it_was() {
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let repo = TestRepo::new();
    let (c1, token, url) = shop(&app, &repo).await;
    let deploy = |sha: String, version: &'static str, at: i64| deploy_at(&app, &token, "production", sha, version, at);
    let day = 86_400;
    deploy(c1, "v1", T0).await;
    let v2sha = repo.commit(&BOBBY, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "Simplify pay (#21)");
    let v2 = deploy(v2sha.clone(), "v2", T0 + day).await;
    send_error(&app, &url, 1, "production", "v2", T0 + day + 600, "ZeroDivisionError", ("app/pay.py", 2)).await;
    let before_md = report(&app, &token, v2, "md").await;
    let before_json = report(&app, &token, v2, "json").await;
    assert!(before_md.contains(&v2sha[..7]), "v2 names Bobby's commit: {before_md}");

    resolve_titled(&app, &token, "ZeroDivisionError: boom").await;
    let v3sha = repo.commit(&CAROL, &[("app/pay.py", "def pay(a, b):\n    return (a / b)\n")], "Parenthesise (#22)");
    let v3 = deploy(v3sha.clone(), "v3", T0 + 2 * day).await;
    send_error(&app, &url, 2, "production", "v3", T0 + 2 * day + 600, "ZeroDivisionError", ("app/pay.py", 2)).await;
    let (_, groups) = app.call(Method::GET, "/api/v1/projects/web/groups", Some(&token), None).await;
    assert_eq!(groups["groups"][0]["regressed_in"], json!("v3"), "{groups}");
    let v3_md = report(&app, &token, v3, "md").await;
    assert!(v3_md.contains(&v3sha[..7]) && v3_md.contains("regressed in this release"), "v3 names Carol's: {v3_md}");

    assert_eq!(report(&app, &token, v2, "md").await, before_md, "v2's Markdown report is unchanged");
    assert_eq!(report(&app, &token, v2, "json").await, before_json, "v2's JSON report is unchanged");
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"127\.0\.0\.1:\d+", "[server]");
    settings.set_snapshot_path("snapshots");
    settings.bind(|| insta::assert_snapshot!("v2_before_and_after_a_v3_regression.md", before_md));
    app.stop().await;
}
