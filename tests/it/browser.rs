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
        .args(crate::cdp::HEADLESS)
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

/// Chromium, or `None` after saying why the test is skipped (a failure where the browser is required).
fn chromium_or_skip() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        if std::env::var("SHIPWATCH_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!("Chromium is required (SHIPWATCH_REQUIRE_BROWSER=1) but not installed");
        }
        crate::support::skipped("(browser) no chromium; `bash .ci/run` installs Debian's package");
    }
    found
}

/// Sends event `n` of release `release` — a ZeroDivisionError at app/pay.py:2 — to project `web`, and handles it;
/// returns the project's envelope URL and the event's JSON.
async fn send_division_by_zero(app: &TestApp, n: u32, release: &str) -> (String, String) {
    let (_, p) = app.call(Method::GET, "/api/v1/projects/web", Some(ADMIN_TOKEN), None).await;
    let key =
        p["dsn"].as_str().and_then(|d| d.split("//").nth(1)).and_then(|r| r.split('@').next()).expect("key").to_owned();
    let event = json!({ "event_id": format!("{n:032x}"), "release": release, "environment": "production",
        "platform": "python",
        "exception": {"values": [{"type": "ZeroDivisionError", "value": "division by zero", "stacktrace": {"frames": [
            {"abs_path": "/srv/app/app/pay.py", "function": "pay", "lineno": 2, "in_app": true}]}}]}})
    .to_string();
    let url = format!("{}/api/{}/envelope/?sentry_key={key}", app.base, p["id"]);
    let body = format!("{{}}\n{{\"type\":\"event\"}}\n{event}\n");
    assert_eq!(app.http.post(&url).body(body).send().await.expect("sent").status().as_u16(), 200);
    app.drain().await;
    (url, event)
}

#[tokio::test]
async fn deploy_and_group_pages_in_headless_chromium() {
    let Some(browser) = chromium_or_skip() else { return };
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
    let (url, event) = send_division_by_zero(&app, 1, "v2").await;

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
    // Times as on every page: a <time> element, turned into the reader's local time by the page's script.
    let deployed = deploy.split("<th>Deployed</th>").nth(1).and_then(|r| r.split("</td>").next()).unwrap_or_default();
    assert!(deployed.contains("<time datetime=\"20") && deployed.contains("title=\"20"), "{deployed}");
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
    assert!(group.contains("<mark>    2      return a / b</mark>"), "the frame's line among its source lines: {group}");
    assert!(group.contains("    1  def pay(a, b):"), "lines around it");
    shoot(&group_path, "group.png").await;

    // The resolve form, sent as the browser sends it: the page's hidden CSRF token with its cookie, and the token.
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let page_resp = no_redirects.get(format!("{}{group_path}", app.base)).send().await.expect("sent");
    let cookie = page_resp.headers()["set-cookie"].to_str().expect("cookie").to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let cookie = cookie.split(';').next().expect("pair").to_owned();
    let html = page_resp.text().await.expect("page");
    let csrf = Regex::new(r#"name="csrf" value="([0-9a-f]{32})""#).expect("regex").captures(&html).expect("csrf field")
        [1]
    .to_owned();
    let actions = format!("{}{group_path}/actions", app.base);
    let post = |fields: Vec<(&'static str, String)>, cookie: Option<String>| {
        let mut req = no_redirects.post(&actions).form(&fields);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send()
    };
    let status_of = || async {
        let (_, g) = app.call(Method::GET, &format!("/api/v1{group_path}"), Some(&token), None).await;
        g["group"]["status"].as_str().unwrap_or_else(|| panic!("{g}")).to_owned()
    };
    let form = |csrf: &str, token: &str| {
        vec![("csrf", csrf.to_owned()), ("token", token.to_owned()), ("action", "resolve".to_owned())]
    };
    // Another site can make a browser post the form, but cannot read or set the CSRF cookie.
    let forged = post(form("", &token), Some(cookie.clone())).await.expect("sent");
    assert_eq!(forged.status().as_u16(), 403);
    let no_cookie = post(form(&csrf, &token), None).await.expect("sent");
    assert_eq!(no_cookie.status().as_u16(), 403);
    let wrong_token = post(form(&csrf, "not-the-token"), Some(cookie.clone())).await.expect("sent");
    assert_eq!(wrong_token.status().as_u16(), 401);
    assert_eq!(status_of().await, "unresolved", "refused forms change nothing");
    let done = post(form(&csrf, &token), Some(cookie.clone())).await.expect("sent");
    assert_eq!(done.status().as_u16(), 303);
    assert_eq!(done.headers()["location"], group_path.as_str());
    assert_eq!(status_of().await, "resolved");

    // v3 still divides by zero: the group comes back, and its page's history says when, where and why.
    let v3 = repo.commit(&ALICE, &[("docs.md", "docs\n")], "Docs (#22)");
    app.deploy(&token, json!({ "project": "web", "environment": "production", "sha": v3, "version": "v3" })).await;
    app.drain().await;
    let event3 = event.replace("\"v2\"", "\"v3\"").replace(&format!("{:032x}", 1), &format!("{:032x}", 3));
    let body = format!("{{}}\n{{\"type\":\"event\"}}\n{event3}\n");
    assert_eq!(app.http.post(&url).body(body).send().await.expect("sent").status().as_u16(), 200);
    app.drain().await;
    let group = dump(&group_path).await;
    for text in ["first seen", "assigned to @bobby", "resolved: on its page", "came back: v3 (", "<svg class=\"chart\""]
    {
        assert!(group.contains(text), "group page lacks {text:?}: {group}");
    }
    shoot(&group_path, "group-regression.png").await;

    // A rollback to v1 and a deploy of a commit that was never pushed.
    app.deploy(&token, json!({ "project": "web", "environment": "production", "sha": c1, "version": "v1.1" })).await;
    app.drain().await;
    let (_, failed) = app
        .deploy(
            &token,
            json!({ "project": "web", "environment": "production", "sha": "f".repeat(40), "version": "v4" }),
        )
        .await;
    app.drain().await;
    let rollback = dump("/deploys/4").await;
    assert!(rollback.contains("takes out 3 commits") && rollback.contains("Commits taken out by this deploy"));
    assert!(rollback.contains("Simplify pay (#21)") && rollback.contains("Docs (#22)"), "{rollback}");
    shoot("/deploys/4", "deploy-rollback.png").await;
    let failed_path = format!("/deploys/{}", failed["id"]);
    let failed_page = dump(&failed_path).await;
    assert!(failed_page.contains("failed: commit ffffffffff"), "{failed_page}");
    shoot(&failed_path, "deploy-failed.png").await;

    // The project's errors, filtered.
    let errors_path = "/projects/web/errors?status=unresolved&q=division";
    let errors = dump(errors_path).await;
    assert!(errors.contains("ZeroDivisionError: division by zero</a>"), "{errors}");
    assert!(errors.contains("<option value=\"unresolved\" selected=\"\">"), "the filter shows as applied: {errors}");
    shoot(errors_path, "errors-filtered.png").await;

    // Every local link on these pages works; the project page and the list too.
    let href = Regex::new(r#"href="(/[^"]*)""#).expect("regex");
    let all = [deploy.clone(), group.clone(), rollback, failed_page, errors].concat();
    let mut local: Vec<String> = href.captures_iter(&all).map(|c| c[1].to_owned()).collect();
    local.sort();
    local.dedup();
    assert!(local.len() >= 4, "{local:?}");
    for l in &local {
        let status = app.http.get(format!("{}{l}", app.base)).send().await.expect("sent").status();
        assert!(status.is_success(), "{l} answered {status}");
    }
    let project = dump("/projects/web").await;
    assert!(project.contains("1 new · 0 regressed") && project.contains("href=\"/deploys/2\""), "v2: {project}");
    assert!(project.contains("0 new · 1 regressed") && project.contains("takes out 3 commits"), "v3, v1.1: {project}");
    shoot("/projects/web", "project.png").await;
    app.stop().await;
}

/// The group page's forms used as a person uses them: in Chromium, the write token typed into the resolve form and
/// its button clicked — the browser sends the page's hidden CSRF field with its `SameSite=Strict` cookie, follows
/// the redirect, and the page shows the group resolved. The same click with the CSRF field emptied (what a forged
/// form from another site amounts to) is refused and changes nothing.
#[tokio::test]
async fn a_resolve_form_clicked_in_chromium_resolves_the_group_and_is_refused_without_its_csrf_token() {
    let Some(chromium) = chromium_or_skip() else { return };
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let repo = TestRepo::new();
    let c1 = repo.commit(&ALICE, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "Payments");
    let (_, token) = app.project("web", &repo).await;
    app.deploy(&token, json!({ "project": "web", "environment": "production", "sha": c1, "version": "v1" })).await;
    app.drain().await;
    send_division_by_zero(&app, 7, "v1").await;
    let status_of = || async {
        let (_, g) = app.call(Method::GET, "/api/v1/groups/1", Some(&token), None).await;
        g["group"]["status"].as_str().unwrap_or_else(|| panic!("{g}")).to_owned()
    };
    assert_eq!(status_of().await, "unresolved");

    let browser = crate::cdp::Browser::launch(&chromium).await;
    let mut page = browser.page().await;
    let group_url = format!("{}/groups/1", app.base);
    page.goto(&group_url).await;
    let fill = format!(
        "document.querySelectorAll('details.actions form')[0].querySelector('input[name=token]').value = {}",
        json!(token)
    );
    let click_resolve = "document.querySelector('details.actions button[value=resolve]').click()";

    // Forged: the CSRF field emptied before the click. The browser still sends the cookie; the server refuses.
    page.eval("document.querySelector('details.actions').open = true").await;
    page.eval(&fill).await;
    page.eval("document.querySelectorAll('details.actions input[name=csrf]').forEach(i => i.value = '')").await;
    page.submit(click_resolve).await;
    let refused = page.eval("document.body.innerText").await;
    assert!(refused.as_str().is_some_and(|t| t.contains("security token is missing")), "says why: {refused}");
    let status = page.eval("performance.getEntriesByType('navigation')[0].responseStatus").await;
    assert_eq!(status, json!(403), "{refused}");
    assert_eq!(status_of().await, "unresolved", "the forged form changed nothing");

    // As a person does it: open the group page, type the token, click "Resolve now".
    page.goto(&group_url).await;
    page.eval("document.querySelector('details.actions').open = true").await;
    page.eval(&fill).await;
    page.submit(click_resolve).await;
    assert_eq!(page.eval("location.href").await, json!(group_url), "redirected back to the group");
    assert_eq!(status_of().await, "resolved", "the click resolved the group");
    let text = page.eval("document.body.innerText").await.as_str().unwrap_or_default().to_owned();
    assert!(text.contains("resolved: on its page"), "the page shows it in the history: {text}");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    page.screenshot(&shots.join("group-resolved-by-click.png")).await;
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
