//! The web pages in a real browser: headless Chromium (Debian's `chromium`) renders the deploy page and the error
//! group page of a seeded server; the test checks what a person looks for there, follows every local link, and
//! saves screenshots under `target/screenshots/`.

use regex::Regex;
use reqwest::Method;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{sqlite_db, Author, TestApp, TestRepo, ADMIN_TOKEN, ALICE, CAROL};

const BOBBY: Author = Author { name: "Bob Roe", email: "1234+bobby@users.noreply.github.com" };

fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var("SHIPWATCH_TEST_CHROMIUM").unwrap_or_default(),
        "/usr/bin/chromium".into(),
        "/usr/bin/chromium-browser".into(),
    ];
    candidates.into_iter().filter(|c| !c.is_empty()).map(PathBuf::from).find(|p| p.exists())
}

async fn headless(browser: &Path, profile: &Path, args: &[String]) -> String {
    let run = tokio::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("chromium finished in time")
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn deploy_and_group_pages_in_headless_chromium() {
    let Some(browser) = chromium() else {
        if std::env::var("SHIPWATCH_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!("Chromium is required (SHIPWATCH_REQUIRE_BROWSER=1) but not installed");
        }
        eprintln!("SKIPPED (browser): no chromium; `bash .ci/run` installs Debian's package");
        return;
    };
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let repo = TestRepo::new();
    let c1 = repo.commit(&ALICE, &[("app/pay.py", "def pay(a, b):\n    return a / (b + 1)\n")], "Payments");
    let (_, token) = app.project("web", &repo).await;
    app.deploy(&token, json!({ "project": "web", "environment": "production", "sha": c1, "version": "v1" })).await;
    app.drain().await;
    repo.commit(&BOBBY, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "Simplify pay (#21)");
    let v2 = repo.commit(&CAROL, &[("README.md", "shop <b>bold</b>\n")], "Readme <script>alert(1)</script>");
    app.deploy(&token, json!({ "project": "web", "environment": "production", "sha": v2, "version": "v2" })).await;
    app.drain().await;
    let (_, p) = app.call(Method::GET, "/api/v1/projects/web", Some(ADMIN_TOKEN), None).await;
    let key =
        p["dsn"].as_str().and_then(|d| d.split("//").nth(1)).and_then(|r| r.split('@').next()).expect("key").to_owned();
    let event =
        json!({ "event_id": format!("{:032x}", 1), "release": "v2", "environment": "production", "platform": "python",
        "exception": {"values": [{"type": "ZeroDivisionError", "value": "division by zero", "stacktrace": {"frames": [
            {"abs_path": "/srv/app/app/pay.py", "function": "pay", "lineno": 2, "in_app": true}]}}]}})
        .to_string();
    let body = format!("{{}}\n{{\"type\":\"event\"}}\n{event}\n");
    let url = format!("{}/api/{}/envelope/?sentry_key={key}", app.base, p["id"]);
    assert_eq!(app.http.post(&url).body(body).send().await.expect("sent").status().as_u16(), 200);
    app.drain().await;

    let profile = tempfile::tempdir().expect("profile dir");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let dump = |path: &str| {
        let (browser, profile) = (browser.clone(), profile.path().to_owned());
        let url = format!("{}{path}", app.base);
        async move { headless(&browser, &profile, &["--dump-dom".into(), url]).await }
    };
    let shoot = |path: &str, name: &str| {
        let (browser, profile) = (browser.clone(), profile.path().to_owned());
        let url = format!("{}{path}", app.base);
        let file = shots.join(name);
        async move {
            headless(
                &browser,
                &profile,
                &["--window-size=1280,1100".into(), format!("--screenshot={}", file.display()), url],
            )
            .await;
            let png = std::fs::read(&file).expect("screenshot written");
            assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} is a real screenshot", file.display());
        }
    };

    // The deploy page: what shipped, by whom, and what it broke.
    let deploy = dump("/deploys/2").await;
    for text in [
        "web v2 → production",
        "2 commits since",
        "Commits by author",
        "Bob Roe",
        "Simplify pay (#21)",
        "New in this release",
        "ZeroDivisionError: division by zero",
    ] {
        assert!(deploy.contains(text), "deploy page lacks {text:?}");
    }
    assert!(deploy.contains("Readme &lt;script&gt;alert(1)&lt;/script&gt;"), "commit text is escaped, not run");
    // Each error once, with what makes it this release's as tags; code spans as code, not backticks.
    assert_eq!(deploy.matches("ZeroDivisionError: division by zero</a>").count(), 1, "listed once: {deploy}");
    assert!(
        deploy.contains("Suspect commit in this release") && deploy.contains("<code>app/pay.py:2</code>"),
        "{deploy}"
    );
    assert!(!deploy.contains('`'), "no Markdown backticks on the page");
    let deployed = deploy.split("<th>Deployed</th>").nth(1).and_then(|r| r.split("</td>").next()).unwrap_or_default();
    assert!(deployed.ends_with(" UTC") || deployed.contains(" UTC by "), "times as on the other pages: {deployed}");
    shoot("/deploys/2", "deploy-v2.png").await;

    // The group page: the suspect's explanation, the owner, the frames linked at the deployed commit.
    let links = Regex::new(r#"href="(/groups/\d+)""#).expect("regex");
    let group_path = links.captures(&deploy).map(|c| c[1].to_owned()).expect("the deploy page links its new error");
    let group = dump(&group_path).await;
    assert!(
        group.contains("<p class=\"explanation\">app/pay.py:2 <code>return a / b</code> last changed in"),
        "suspect explanation"
    );
    assert!(group.contains("inside deploy v2 to production → @bobby"));
    assert!(group.contains("<strong>Owner:</strong> @bobby"));
    assert!(
        group.contains(&format!("href=\"https://github.com/acme/web/blob/{v2}/app/pay.py#L2\"")),
        "blamed line at the deployed sha"
    );
    shoot(&group_path, "group.png").await;

    // Every local link on both pages works; the project page and the list too.
    let href = Regex::new(r#"href="(/[^"]*)""#).expect("regex");
    let mut local: Vec<String> = href.captures_iter(&(deploy.clone() + &group)).map(|c| c[1].to_owned()).collect();
    local.sort();
    local.dedup();
    assert!(local.len() >= 4, "{local:?}");
    for l in &local {
        let status = app.http.get(format!("{}{l}", app.base)).send().await.expect("sent").status();
        assert!(status.is_success(), "{l} answered {status}");
    }
    let project = dump("/projects/web").await;
    assert!(project.contains("1 new · 0 regressed") && project.contains("href=\"/deploys/2\""), "timeline");
    shoot("/projects/web", "project.png").await;
    app.stop().await;
}

#[tokio::test]
async fn pages_ask_for_the_read_token_when_one_is_set() {
    let db = sqlite_db().await;
    let app = TestApp::spawn_with_read_token(db.store.clone(), "reader-secret").await;
    let get = |auth: Option<(&'static str, String)>| {
        let mut req = app.http.get(format!("{}/projects", app.base));
        if let Some((k, v)) = auth {
            req = req.header(k, v);
        }
        req.send()
    };
    let denied = get(None).await.expect("sent");
    assert_eq!(denied.status().as_u16(), 401);
    assert_eq!(denied.headers()["www-authenticate"], "Basic realm=\"shipwatch\"");
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("anyone:reader-secret");
    assert_eq!(get(Some(("authorization", format!("Basic {basic}")))).await.expect("sent").status().as_u16(), 200);
    assert_eq!(get(Some(("authorization", "Bearer reader-secret".into()))).await.expect("sent").status().as_u16(), 200);
    assert_eq!(get(Some(("authorization", "Bearer nope".into()))).await.expect("sent").status().as_u16(), 401);
    app.stop().await;
}
