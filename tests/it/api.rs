//! The HTTP API as a client sees it: probes, admin, bad input of every kind, reports, and the `shipwatch` binary
//! itself (zero configuration, graceful shutdown, the deploy client).

use reqwest::Method;
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{free_port, sqlite_db, wait_healthy, TestApp, TestRepo, ADMIN_TOKEN, ALICE, BOB};

#[tokio::test]
async fn probes_answer() {
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body), (200, json!("ok")));
    let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["database"]["backend"].clone(), body["database"]["status"].clone()),
        (json!("sqlite"), json!("ok"))
    );
    assert_eq!(body["spool"]["waiting"], json!(0), "{body}");
    let (status, body) = app.call(Method::GET, "/nope", None, None).await;
    assert_eq!(status, 404);
    assert_eq!(body["detail"], json!("no such endpoint"));
    app.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_precise_answer_and_writes_nothing() {
    let db = sqlite_db().await;
    let store = db.store.clone();
    let repo = TestRepo::new();
    let sha = repo.commit(&ALICE, &[("a", "1")], "one");
    let app = TestApp::spawn(store.clone(), false).await;
    let (_, token) = app.project("web", &repo).await;
    let good = json!({ "project": "web", "environment": "production", "sha": sha });

    let raw = |body: &'static str, token: Option<&str>| {
        let mut req = app.http.post(format!("{}/api/v1/deploys", app.base)).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let cases: Vec<(u16, Option<&str>, serde_json::Value, &str)> = vec![
        (401, None, good.clone(), "missing credentials"),
        (401, Some("wrong"), good.clone(), "invalid token for project `web`"),
        (404, Some(&token), json!({ "project": "nope", "environment": "production", "sha": sha }), "no project `nope`"),
        (404, Some(&token), json!({ "project": 999, "environment": "production", "sha": sha }), "no project `999`"),
        (
            422,
            Some(&token),
            json!({ "project": "web", "environment": "production", "sha": "abc123" }),
            "sha: `abc123` is not a full commit id",
        ),
        (
            422,
            Some(&token),
            json!({ "project": "web", "environment": "prod env", "sha": sha }),
            "environment: `prod env` is not a valid environment",
        ),
        (
            422,
            Some(&token),
            json!({ "project": "web", "environment": "production", "sha": sha, "previous_sha": "HEAD~1" }),
            "previous_sha:",
        ),
        (
            422,
            Some(&token),
            json!({ "project": "web", "environment": "production", "sha": sha, "version": "a/b" }),
            "version: release name `a/b`",
        ),
        (
            422,
            Some(&token),
            json!({ "project": "web", "environment": "production", "sha": sha, "deployed_at": "yesterday" }),
            "deployed_at: `yesterday` is not an RFC 3339 time",
        ),
        (
            422,
            Some(&token),
            json!({ "project": "web", "environment": "production", "sha": sha, "url": "javascript:x" }),
            "url: must be an http",
        ),
        (422, Some(&token), json!({ "project": "web", "sha": sha }), "missing field `environment`"),
        (422, Some(&token), json!({ "project": "web", "environment": 5, "sha": sha }), "environment: invalid type"),
        (
            422,
            Some(&token),
            json!({ "project": "web", "environment": "production", "sha": sha, "colour": "red" }),
            "unknown field `colour`",
        ),
    ];
    for (want, t, body, detail) in cases {
        let (status, answer) = app.call(Method::POST, "/api/v1/deploys", t, Some(body.clone())).await;
        assert_eq!(status, want, "{body} → {answer}");
        let got = answer["detail"].as_str().unwrap_or_default();
        assert!(got.contains(detail), "{body}: expected `{detail}` in `{got}`");
    }
    for (body, detail) in [("{\"project\":", "not valid JSON"), ("", "empty"), ("[1,2", "not valid JSON")] {
        let resp = raw(body, Some(&token)).await.expect("sent");
        assert_eq!(resp.status().as_u16(), 400, "{body}");
        let answer: serde_json::Value = resp.json().await.expect("json error");
        assert!(answer["detail"].as_str().unwrap_or_default().contains(detail), "{answer}");
    }
    let big = "x".repeat(2 * 1024 * 1024);
    let resp =
        app.http.post(format!("{}/api/v1/deploys", app.base)).bearer_auth(&token).body(big).send().await.expect("sent");
    assert_eq!(resp.status().as_u16(), 413);

    assert!(store.list_deploys(1, None, None, 10).await.expect("list").is_empty(), "nothing was written");
    assert!(store.job_states().await.expect("jobs").is_empty(), "no job was queued");

    // Reads need the project's token too, and say what is wrong with parameters.
    let (status, _) = app.call(Method::GET, "/api/v1/projects/web/deploys", None, None).await;
    assert_eq!(status, 401);
    let (status, body) = app.call(Method::GET, "/api/v1/projects/web/deploys?limit=0", Some(&token), None).await;
    assert_eq!((status, body["field"].clone()), (422, json!("limit")));
    let (status, body) = app.call(Method::GET, "/api/v1/projects/web/deploys?limit=x", Some(&token), None).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = app.call(Method::GET, "/api/v1/deploys/12345", Some(&token), None).await;
    assert_eq!(status, 404);
    let (status, _) = app.call(Method::GET, "/api/v1/deploys/abc", Some(&token), None).await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn admin_api_creates_projects_with_dsn_and_refuses_everyone_else() {
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let body = json!({ "name": "api", "repo": "https://github.com/acme/api.git" });
    let (status, _) = app.call(Method::POST, "/api/v1/projects", None, Some(body.clone())).await;
    assert_eq!(status, 401);
    let (status, _) = app.call(Method::POST, "/api/v1/projects", Some("nope"), Some(body.clone())).await;
    assert_eq!(status, 401);
    let (status, created) = app.call(Method::POST, "/api/v1/projects", Some(ADMIN_TOKEN), Some(body.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["github"], json!("acme/api"), "taken from the github.com URL");
    let dsn = created["dsn"].as_str().expect("dsn");
    let host = app.base.trim_start_matches("http://");
    assert!(dsn.starts_with("http://") && dsn.ends_with(&format!("@{host}/{}", created["id"])), "{dsn}");
    let (status, dup) = app.call(Method::POST, "/api/v1/projects", Some(ADMIN_TOKEN), Some(body)).await;
    assert_eq!(status, 409, "{dup}");
    for (bad, field) in [
        (json!({ "name": "Bad Name", "repo": "https://github.com/a/b" }), "name"),
        (json!({ "name": "x", "repo": "ssh://git@github.com/a/b" }), "repo"),
        (json!({ "name": "x", "repo": "https://user:pw@github.com/a/b" }), "repo"),
        (json!({ "name": "x", "repo": "https://github.com/a/b", "github": "nope" }), "github"),
    ] {
        let (status, answer) = app.call(Method::POST, "/api/v1/projects", Some(ADMIN_TOKEN), Some(bad)).await;
        assert_eq!((status, answer["field"].clone()), (422, json!(field)), "{answer}");
        assert!(!answer.to_string().contains("pw@"), "no credentials echoed: {answer}");
    }
    let (status, list) = app.call(Method::GET, "/api/v1/projects", Some(ADMIN_TOKEN), None).await;
    assert_eq!((status, list.as_array().map(Vec::len)), (200, Some(1)));
    app.stop().await;
}

#[tokio::test]
async fn report_in_json_and_markdown() {
    let db = sqlite_db().await;
    let repo = TestRepo::new();
    let c1 = repo.commit(&ALICE, &[("a", "1")], "one");
    repo.commit(&BOB, &[("b", "1")], "Add b (#21)\n\nCloses #8\nCo-authored-by: Alice Doe <alice@example.com>");
    let c3 = repo.commit(&BOB, &[("c", "1")], "Fix <script>alert(1)</script> | table");
    let app = TestApp::spawn(db.store.clone(), false).await;
    let (_, token) = app.project("web", &repo).await;
    app.deploy(&token, json!({ "project": "web", "environment": "production", "sha": c1 })).await;
    let (_, d) = app
        .deploy(
            &token,
            json!({ "project": "web", "environment": "production", "sha": c3, "version": "v2", "deployer": "octocat" }),
        )
        .await;
    app.drain().await;
    let id = d["id"].as_i64().expect("id");
    let (status, report) = app.call(Method::GET, &format!("/api/v1/deploys/{id}/report"), Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(report["authors"][0]["name"], json!("Bob Roe"));
    assert_eq!(report["authors"][0]["commits"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        report["pull_requests"],
        json!([{ "number": 21, "title": "Add b", "url": "https://github.com/acme/web/pull/21" }]),
        "the title from the squash commit"
    );
    assert_eq!(report["closed_issues"], json!([{ "label": "#8", "url": "https://github.com/acme/web/issues/8" }]));
    assert_eq!(report["deploy"]["compare_url"], json!(format!("https://github.com/acme/web/compare/{c1}...{c3}")));

    let md = app
        .http
        .get(format!("{}/api/v1/deploys/{id}/report?format=md", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(md.headers()["content-type"], "text/markdown; charset=utf-8");
    let md = md.text().await.expect("text");
    assert!(md.starts_with("## web v2 → production"), "{md}");
    assert!(md.contains("| Range | 2 commits since `"), "{md}");
    assert!(md.contains("by octocat"), "{md}");
    assert!(md.contains("**Bob Roe** (2)"), "{md}");
    assert!(md.contains("Add b (#21) (with Alice Doe)"), "{md}");
    assert!(md.contains("Fix \\<script\\>alert(1)\\</script\\> \\| table"), "escaped: {md}");
    assert!(md.contains("### Pull requests\n\n- [#21](https://github.com/acme/web/pull/21) Add b\n"), "{md}");
    let (status, body) =
        app.call(Method::GET, &format!("/api/v1/deploys/{id}/report?format=pdf"), Some(&token), None).await;
    assert_eq!((status, body["field"].clone()), (422, json!("format")));
    app.stop().await;
}

#[tokio::test]
async fn the_binary_serves_with_zero_configuration_records_a_deploy_and_stops_on_sigterm() {
    let bin = env!("CARGO_BIN_EXE_shipwatch");
    let cwd = tempfile::tempdir().expect("temp dir");
    let repo = TestRepo::new();
    let c1 = repo.commit(&ALICE, &[("a", "1")], "one");
    let c2 = repo.commit(&BOB, &[("a", "2")], "two (#3)");
    let cmd = |args: &[&str]| {
        let mut c = std::process::Command::new(bin);
        c.args(args).current_dir(cwd.path()).env_remove("DATABASE_URL").env_remove("SHIPWATCH_DATA_DIR");
        c
    };
    let out =
        cmd(&["project", "add", "--name", "web", "--repo", &repo.url(), "--allow-local-repos"]).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("DSN:          http://") && text.contains("@127.0.0.1:8080/1"), "{text}");
    let token = text.lines().find_map(|l| l.trim().strip_prefix("Deploy token: ")).expect("token printed").to_owned();

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = tokio::process::Command::new(bin)
        .args(["--log-format", "json", "serve", "--listen", &listen, "--allow-local-repos"])
        .current_dir(cwd.path())
        .env_remove("DATABASE_URL")
        .env_remove("SHIPWATCH_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve starts");
    let base = format!("http://{listen}");
    wait_healthy(&base).await;
    assert!(cwd.path().join("shipwatch-data/shipwatch.db").exists(), "SQLite in ./shipwatch-data by default");

    let deploy_as = |token: &str, sha: &str, extra: &[&str]| {
        let mut args =
            vec!["deploy", "--server", &base, "--token", token, "--project", "web", "--environment", "production"];
        args.extend(["--sha", sha]);
        args.extend(extra);
        let mut c = tokio::process::Command::new(bin);
        c.args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>()).current_dir(cwd.path());
        c
    };
    let deploy = |sha: &str, extra: &[&str]| deploy_as(&token, sha, extra);
    let out = deploy(&c1, &["--wait"]).output().await.expect("deploy runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = deploy(&c2, &["--wait", "--version", "v2"]).output().await.expect("deploy runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with(&format!("{base}/api/v1/deploys/2/report?format=md\n")), "{stdout}");
    assert!(stdout.contains("## web v2 → production") && stdout.contains("two (#3)"), "{stdout}");

    // The client's failures say what to do.
    let out = deploy_as("wrong", &c2, &[]).output().await.expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 401"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tokio::process::Command::new(bin)
        .args(["deploy", "--server", &format!("http://127.0.0.1:{}", free_port()), "--token", "t", "--project", "web"])
        .args(["--environment", "production", "--sha", &c2])
        .output()
        .await
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("could not reach the shipwatch server"), "{stderr}");
    assert!(!stderr.contains(" t "), "token not printed");

    // SIGTERM: a clean exit.
    let pid = server.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(killed.success());
    let status =
        tokio::time::timeout(Duration::from_secs(20), server.wait()).await.expect("exits in time").expect("waits");
    assert!(status.success(), "graceful shutdown exits 0, got {status:?}");
    let mut stderr = String::new();
    if let Some(mut e) = server.stderr.take() {
        use tokio::io::AsyncReadExt as _;
        e.read_to_string(&mut stderr).await.expect("stderr");
    }
    assert!(stderr.contains("shutting down") && stderr.contains("worker stopped"), "{stderr}");
    // JSON logs: the range job's line carries the ids of its spans.
    let range_line = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "range recorded")
        .unwrap_or_else(|| panic!("a JSON `range recorded` line in {stderr}"));
    assert_eq!(range_line["span"]["deploy_id"], json!(1), "{range_line}");
    assert!(range_line["spans"].as_array().is_some_and(|s| s.iter().any(|s| s["job_id"].is_i64())), "{range_line}");
    assert!(!stderr.contains(&token), "the deploy token never appears in the log");
}

#[tokio::test]
async fn the_demo_shows_the_whole_product_working() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_shipwatch"))
        .args(["demo", "--listen", "127.0.0.1:0", "--exit"])
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The story alone on the terminal: the logs went to a file, which it names.
    assert!(!stdout.contains(" INFO ") && !stderr.contains(" INFO "), "{stdout}\n{stderr}");
    let log = stdout.lines().find_map(|l| l.strip_prefix("logs: ")).expect("the log file named");
    let log = log.split(" (").next().expect("path");
    assert!(std::fs::read_to_string(log).expect("log file").contains("group assigned"), "{log}");
    let _ = std::fs::remove_file(log);
    for text in [
        "owner @carolpoe: .github/CODEOWNERS:2 `/app/cart.py` owns app/cart.py",
        "deploy v1: initial (0 commits)",
        "deploy v2: forward (2 commits)",
        "ZeroDivisionError: division by zero → @bobby",
        "inside deploy v2 to production → @bobby",
        "KeyError: 'items' → @carolpoe",
        "REGRESSED in v2",
        "issue #1 \"ZeroDivisionError: division by zero\" assigned to [\"bobby\"]",
        "## shop v2 → production",
        "**regressed in this release**",
        "Simplify pay (#7) (with Carol Poe)",
    ] {
        assert!(stdout.contains(text), "the demo's output lacks {text:?}:\n{stdout}");
    }
}

#[tokio::test]
async fn a_demo_that_cannot_listen_says_so_and_leaves_nothing_behind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("addr").to_string();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_shipwatch"))
        .args(["demo", "--listen", &addr, "--exit"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("demo runs");
    let pid = child.id();
    let out = child.wait_with_output().expect("demo ends");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("listening on {addr}")) && stderr.contains("--listen 127.0.0.1:0"), "{stderr}");
    assert!(!std::env::temp_dir().join(format!("shipwatch-demo-{pid}")).exists(), "no demo folder left behind");
}

#[tokio::test]
async fn the_api_describes_itself_at_api_openapi_json() {
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let resp = app.http.get(format!("{}/api/openapi.json", app.base)).send().await.expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    let doc: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(doc["openapi"], json!("3.1.0"));
    let paths = doc["paths"].as_object().expect("paths");
    for p in ["/api/v1/deploys", "/api/{project_id}/envelope/", "/api/{project_id}/envelope", "/metrics"] {
        assert!(paths.contains_key(p), "{p} described");
    }
    let op = &doc["paths"]["/api/v1/groups/{id}/resolve"]["post"];
    assert_eq!(op["operationId"], json!("groups_resolve"));
    assert!(
        doc["components"]["schemas"]["GroupView"]["properties"]["status"].is_object(),
        "schemas come from the types"
    );
    app.stop().await;
}

#[tokio::test]
async fn logs_to_a_pipe_are_plain_text() {
    // Standard error is a pipe here, as under systemd or with a redirect.
    let (mut server, _listen, _dir) = crate::limits::server(None, &[]).await;
    let pid = server.id().expect("pid").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs").success());
    tokio::time::timeout(Duration::from_secs(20), server.wait()).await.expect("exits in time").expect("waits");
    let mut stderr = String::new();
    if let Some(mut e) = server.stderr.take() {
        use tokio::io::AsyncReadExt as _;
        e.read_to_string(&mut stderr).await.expect("stderr");
    }
    assert!(stderr.contains("INFO") && stderr.contains("worker started"), "info lines (RUST_LOG unset): {stderr}");
    assert!(!stderr.contains('\x1b'), "no terminal colour codes in a pipe: {stderr:?}");
}
