//! Real Sentry SDKs against a running shipwatch: `sentry-sdk` (Python) and `@sentry/node`, run as the applications
//! people already have, with only the DSN pointed at shipwatch; and the requests captured from them, replayed.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{sqlite_db, SentryProject, TestApp, ADMIN_TOKEN};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sentry-sdk")
}

/// Whether a missing SDK fails the test (CI) or skips it with a message (a developer's machine).
fn sdk_missing(what: &str, why: &str) {
    if std::env::var("SHIPWATCH_REQUIRE_SDKS").is_ok_and(|v| v == "1") {
        panic!("{what} is required (SHIPWATCH_REQUIRE_SDKS=1) but unavailable: {why}");
    }
    crate::support::skipped(&format!("({what}) {why}; `bash .ci/run` installs it"));
}

/// The folder holding `@sentry/node` (`SHIPWATCH_TEST_NODE_MODULES`), or `None` after saying why it is missing.
fn node_modules() -> Option<std::ffi::OsString> {
    let Some(modules) = std::env::var_os("SHIPWATCH_TEST_NODE_MODULES") else {
        sdk_missing("@sentry/node", "SHIPWATCH_TEST_NODE_MODULES is not set");
        return None;
    };
    if !Path::new(&modules).join("@sentry/node").exists() {
        sdk_missing("@sentry/node", "not installed under SHIPWATCH_TEST_NODE_MODULES");
        return None;
    }
    Some(modules)
}

/// Runs a Node application with the DSN as its argument and `@sentry/node` on its module path; it must succeed.
async fn run_node(script: &Path, dsn: &str, modules: &std::ffi::OsStr, cwd: &Path) {
    // tokio's process: a blocking wait would stall the server this test runs in.
    let out = tokio::process::Command::new("node")
        .arg(script)
        .arg(dsn)
        .env("NODE_PATH", modules)
        .current_dir(cwd)
        .output()
        .await
        .expect("node runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

async fn groups(app: &TestApp, p: &SentryProject) -> Vec<Value> {
    let (status, body) =
        app.call(reqwest::Method::GET, &format!("/api/v1/projects/{}/groups", p.id), Some(&p.token), None).await;
    assert_eq!(status, 200, "{body}");
    body["groups"].as_array().expect("groups").clone()
}

async fn group_detail(app: &TestApp, p: &SentryProject, id: &Value) -> Value {
    let (status, body) = app.call(reqwest::Method::GET, &format!("/api/v1/groups/{id}"), Some(&p.token), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn by_title<'a>(groups: &'a [Value], prefix: &str) -> &'a Value {
    groups
        .iter()
        .find(|g| g["title"].as_str().is_some_and(|t| t.starts_with(prefix)))
        .unwrap_or_else(|| panic!("no group titled {prefix}…: {groups:?}"))
}

fn frame_functions(detail: &Value) -> Vec<String> {
    let frames = detail["latest_event"]["exceptions"].as_array().and_then(|e| e.last()).map(|e| e["frames"].clone());
    frames
        .and_then(|f| f.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|f| f["in_app"] == json!(true))
        .map(|f| f["function"].as_str().unwrap_or("?").to_owned())
        .collect()
}

const PYTHON_APP: &str = r#"import sys
import sentry_sdk

sentry_sdk.init(dsn=sys.argv[1], release="abc123", environment="production")


def divide(a, b):
    return a / b


def lookup(d):
    return d["missing"]


for _ in range(2):
    try:
        divide(1, 0)
    except Exception as e:
        sentry_sdk.capture_exception(e)
try:
    lookup({})
except Exception as e:
    sentry_sdk.capture_exception(e)
sentry_sdk.flush()
"#;

const NODE_APP: &str = r#"const Sentry = require('@sentry/node');
Sentry.init({ dsn: process.argv[2], release: 'abc123', environment: 'production' });
function divide(a, b) { if (b === 0) throw new TypeError('cannot divide ' + a + ' by zero'); return a / b; }
function check(n) { if (n < 0) throw new RangeError('negative: ' + n); return n; }
// Different messages: the SDK's Dedupe integration drops an exact repeat of the previous error itself.
for (let i = 1; i <= 2; i++) { try { divide(i, 0); } catch (e) { Sentry.captureException(e); } }
try { check(-1); } catch (e) { Sentry.captureException(e); }
Sentry.flush(10000).then(() => process.exit(0));
"#;

#[tokio::test]
async fn the_python_sdk_reports_into_groups() {
    let python = std::env::var("SHIPWATCH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python).args(["-c", "import sentry_sdk"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        return sdk_missing("Python sentry-sdk", &format!("`{python} -c 'import sentry_sdk'` failed"));
    }
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let p = app.sentry_project("py").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("app.py");
    std::fs::write(&script, PYTHON_APP).expect("script");
    // tokio's process: a blocking wait would stall the server this test runs in.
    let out = tokio::process::Command::new(&python).arg(&script).arg(&p.dsn).output().await.expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    app.drain().await;

    let groups = groups(&app, &p).await;
    assert_eq!(groups.len(), 2, "{groups:?}");
    let zero = by_title(&groups, "ZeroDivisionError: division by zero");
    assert_eq!(zero["count"], json!(2), "the second identical exception joins the first group");
    assert_eq!(zero["first_release"], json!("abc123"));
    let key = by_title(&groups, "KeyError");
    assert_eq!(key["count"], json!(1), "a different exception is a different group");
    let detail = group_detail(&app, &p, &zero["id"]).await;
    assert_eq!(frame_functions(&detail), vec!["<module>", "divide"]);
    let event = &detail["latest_event"];
    assert_eq!((event["release"].clone(), event["environment"].clone()), (json!("abc123"), json!("production")));
    let crash = event["exceptions"][0]["frames"].as_array().and_then(|f| f.last()).expect("frames").clone();
    assert_eq!(crash["abs_path"], json!(script.display().to_string()));
    assert_eq!(crash["lineno"], json!(8));
    assert_eq!(crash["context_line"], json!("    return a / b"));
    assert_eq!(
        detail["counts"],
        json!([{ "release": "abc123", "environment": "production", "count": 2,
        "first_seen": detail["counts"][0]["first_seen"], "last_seen": detail["counts"][0]["last_seen"] }])
    );
    app.stop().await;
}

#[tokio::test]
async fn the_node_sdk_reports_into_groups() {
    let Some(modules) = node_modules() else { return };
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let p = app.sentry_project("node").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("app.js");
    std::fs::write(&script, NODE_APP).expect("script");
    run_node(&script, &p.dsn, &modules, script.parent().expect("a folder")).await;
    app.drain().await;

    let groups = groups(&app, &p).await;
    let type_error = by_title(&groups, "TypeError: cannot divide");
    assert_eq!(type_error["count"], json!(2), "same code path, different message: one group");
    let range = by_title(&groups, "RangeError: negative: -1");
    assert_eq!(range["count"], json!(1));
    assert_eq!(groups.len(), 2, "{groups:?}");
    let detail = group_detail(&app, &p, &type_error["id"]).await;
    let functions = frame_functions(&detail);
    assert_eq!(functions.last().map(String::as_str), Some("divide"), "{functions:?}");
    let crash =
        detail["latest_event"]["exceptions"][0]["frames"].as_array().and_then(|f| f.last()).expect("frames").clone();
    assert_eq!(crash["filename"], json!(script.display().to_string()));
    assert_eq!(crash["lineno"], json!(3));
    assert_eq!(detail["latest_event"]["release"], json!("abc123"));
    app.stop().await;
}

/// Sends one captured request as the SDK did, to `project` instead of project 42 with key `publickey`.
async fn replay(app: &TestApp, p: &SentryProject, name: &str) -> (u16, Value) {
    let meta: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join(format!("{name}.meta.json"))).expect("meta"))
            .expect("json");
    let raw = std::fs::read(fixtures().join(format!("{name}.raw"))).expect("raw");
    let path = meta["path"]
        .as_str()
        .expect("path")
        .replace("/api/42/", &format!("/api/{}/", p.id))
        .replace("sentry_key=publickey", &format!("sentry_key={}", p.key));
    let mut req = app.http.post(format!("{}{path}", app.base)).body(raw);
    for (name, value) in meta["headers"].as_object().expect("headers") {
        let lower = name.to_ascii_lowercase();
        if ["host", "content-length", "transfer-encoding", "connection"].contains(&lower.as_str()) {
            continue;
        }
        let value =
            value.as_str().expect("header value").replace("sentry_key=publickey", &format!("sentry_key={}", p.key));
        req = req.header(name.as_str(), value);
    }
    let resp = req.send().await.expect("sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn captured_sdk_requests_replay_to_the_same_results() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .expect("fixtures")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".meta.json").map(str::to_owned))
        .collect();
    names.sort();
    assert_eq!(names.len(), 13, "{names:?}");
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let p = app.sentry_project("replay").await;
    // Twice: SDKs retry, and a retried event must not count again.
    for round in 0..2 {
        for name in &names {
            let (status, body) = replay(&app, &p, name).await;
            assert_eq!(status, 200, "{name} (round {round}): {body}");
            let body_text = std::fs::read_to_string(fixtures().join(format!("{name}.body"))).expect("body");
            if body_text.contains("{\"type\":\"event\"") {
                let id = body["id"].as_str().expect("event id answered");
                assert!(body_text.contains(id), "{name}: answered id {id} is the event's");
            } else {
                assert_eq!(body, json!({}), "{name}");
            }
        }
        app.drain().await;
    }
    let (_, stats) =
        app.call(reqwest::Method::GET, &format!("/api/v1/projects/{}/stats", p.id), Some(&p.token), None).await;
    assert_eq!(stats["events"], json!(7), "seven distinct events, each stored once: {stats}");
    assert_eq!(stats["items"], json!({ "client_report": 4, "session": 4, "transaction": 4 }), "{stats}");

    let groups = groups(&app, &p).await;
    let total: i64 = groups.iter().map(|g| g["count"].as_i64().expect("count")).sum();
    assert_eq!(total, 7, "{groups:?}");
    for title in [
        "ZeroDivisionError: division by zero",
        "KeyError",
        "ValueError",
        "TypeError: division by zero",
        "hello message",
    ] {
        by_title(&groups, title);
    }
    let basic = groups
        .iter()
        .find(|g| g["culprit"] == json!("divide (app.py)"))
        .unwrap_or_else(|| panic!("py-basic-01's group: {groups:?}"));
    let detail = group_detail(&app, &p, &basic["id"]).await;
    assert_eq!(frame_functions(&detail), vec!["<module>", "handler", "divide"]);
    let crash = detail["latest_event"]["exceptions"][0]["frames"][2].clone();
    assert_eq!((crash["abs_path"].clone(), crash["lineno"].clone()), (json!("/srv/demo-app/app.py"), json!(11)));
    let js = by_title(&groups, "TypeError: division by zero");
    let detail = group_detail(&app, &p, &js["id"]).await;
    let frames = detail["latest_event"]["exceptions"][0]["frames"].as_array().expect("frames").clone();
    assert_eq!(frames.first().map(|f| f["in_app"].clone()), Some(json!(false)), "node:internal is not the app's");
    assert_eq!(frames.last().map(|f| f["function"].clone()), Some(json!("divide")));
    let uncaught = by_title(&groups, "ValueError");
    let detail = group_detail(&app, &p, &uncaught["id"]).await;
    assert_eq!(detail["latest_event"]["exceptions"][0]["handled"], json!(false));
    app.stop().await;
}

const BOBBY: crate::support::Author =
    crate::support::Author { name: "Bob Roe", email: "1234+bobby@users.noreply.github.com" };

/// A project whose repository was deployed twice: v1 by Alice, then v2 in which Bob wrote the line that raises.
/// Returns the repository, the app's project name and deploy token, Bob's commit, and the project's DSN.
async fn deployed_twice(
    app: &TestApp,
    name: &str,
    v1: &[(&str, &str)],
    v2: &[(&str, &str)],
) -> (crate::support::TestRepo, String, String, String) {
    let repo = crate::support::TestRepo::new();
    let first = repo.commit(&crate::support::ALICE, v1, "First version");
    let (project, token) = app.project(name, &repo).await;
    let (status, body) = app
        .deploy(&token, json!({ "project": project, "environment": "production", "sha": first, "version": "v1" }))
        .await;
    assert_eq!(status, 202, "{body}");
    app.drain().await;
    let bad = repo.commit(&BOBBY, v2, "Tighten the cart");
    repo.git(&["tag", "v2"]);
    let (status, body) = app
        .deploy(&token, json!({ "project": project, "environment": "production", "sha": bad, "version": "v2" }))
        .await;
    assert_eq!(status, 202, "{body}");
    app.drain().await;
    (repo, project, token, bad)
}

async fn dsn_of(app: &TestApp, project: &str) -> String {
    let (_, p) = app.call(reqwest::Method::GET, &format!("/api/v1/projects/{project}"), Some(ADMIN_TOKEN), None).await;
    p["dsn"].as_str().expect("dsn").to_owned()
}

/// The one group's assignment, after the events were processed.
async fn only_assignment(app: &TestApp, project: &str, token: &str, package_dir: &str) -> Value {
    let (_, groups) =
        app.call(reqwest::Method::GET, &format!("/api/v1/projects/{project}/groups"), Some(token), None).await;
    let groups = groups["groups"].as_array().expect("groups").clone();
    assert_eq!(groups.len(), 1, "{groups:?}");
    let (_, detail) =
        app.call(reqwest::Method::GET, &format!("/api/v1/groups/{}", groups[0]["id"]), Some(token), None).await;
    // What makes the case: the SDK itself said the package's frames are not the application's.
    let sent = detail["latest_event"]["exceptions"].as_array().and_then(|e| e.last()).expect("exception")["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .rev()
        .find(|f| f["abs_path"].as_str().or(f["filename"].as_str()).is_some_and(|p| p.contains(package_dir)))
        .cloned()
        .unwrap_or_else(|| panic!("a frame in {package_dir}: {detail}"));
    assert_eq!(sent["in_app"], json!(false), "{sent}");
    detail["assignment"].clone()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The Python SDK at its defaults marks frames of installed packages `in_app: false`. An application whose code is
/// the repository's package, installed with pip into a virtualenv's site-packages from the deployed tag, still gets
/// the suspect and owner from those frames.
#[tokio::test]
async fn an_installed_python_package_is_assigned_though_the_sdk_says_not_in_app() {
    let python = std::env::var("SHIPWATCH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python).args(["-c", "import sentry_sdk, setuptools"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        return sdk_missing(
            "Python sentry-sdk and setuptools",
            &format!("`{python} -c 'import sentry_sdk, setuptools'` failed"),
        );
    }
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let pyproject = "[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[project]\nname = \"acme-shop\"\nversion = \"2.0.0\"\n\n[tool.setuptools.packages.find]\nwhere = [\"src\"]\n";
    let (repo, project, token, bad) = deployed_twice(
        &app,
        "pyshop",
        &[
            ("pyproject.toml", pyproject),
            ("src/shop/__init__.py", ""),
            ("src/shop/cart.py", "def total(items):\n    count = len(items)\n    return sum(items) / max(count, 1)\n"),
        ],
        &[("src/shop/cart.py", "def total(items):\n    count = len(items)\n    return sum(items) / count\n")],
    )
    .await;

    // A virtualenv that sees the test interpreter's packages (sentry-sdk, setuptools) through a .pth file, and gets
    // the repository's package installed by pip from the deployed tag's work tree.
    let dir = tempfile::tempdir().expect("temp dir");
    let venv = dir.path().join("venv");
    run(Command::new(&python).args(["-m", "venv"]).arg(&venv));
    let purelib =
        |py: &Path| run(Command::new(py).args(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]));
    let venv_python = venv.join("bin/python");
    let site = PathBuf::from(purelib(&venv_python));
    assert!(site.ends_with("site-packages"), "{}", site.display());
    std::fs::write(site.join("shipwatch_test_sdk.pth"), purelib(Path::new(&python)) + "\n").expect("pth");
    run(Command::new(&venv_python)
        .args(["-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"])
        .arg(repo.path()));
    assert!(site.join("shop/cart.py").is_file(), "pip installed the package into site-packages");

    let script = dir.path().join("main.py");
    std::fs::write(
        &script,
        "import sys\nimport sentry_sdk\nfrom shop.cart import total\n\nsentry_sdk.init(dsn=sys.argv[1], release=\"v2\", environment=\"production\")\ntry:\n    total([])\nexcept Exception as e:\n    sentry_sdk.capture_exception(e)\nsentry_sdk.flush()\n",
    )
    .expect("script");
    let dsn = dsn_of(&app, &project).await;
    let out = tokio::process::Command::new(&venv_python)
        .arg(&script)
        .arg(&dsn)
        .current_dir(dir.path())
        .output()
        .await
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    app.drain().await;

    let a = only_assignment(&app, &project, &token, "site-packages/shop/").await;
    let frames = a["frames"].as_array().expect("frames");
    let crash = frames.last().expect("a frame");
    assert!(crash["raw_path"].as_str().is_some_and(|p| p.ends_with("site-packages/shop/cart.py")), "{crash}");
    assert_eq!(crash["repo_path"], json!("src/shop/cart.py"), "{a}");
    assert_eq!(a["suspect"]["commit"], json!(bad), "{a}");
    assert_eq!(a["owner"]["kind"], json!("author"), "{a}");
    assert_eq!(a["owner"]["github_login"], json!("bobby"), "{a}");
    let explanation = a["explanation"].as_str().expect("explanation");
    assert!(
        explanation.starts_with("src/shop/cart.py:3 `return sum(items) / count`") && explanation.contains("by Bob Roe"),
        "{explanation}"
    );
    assert!(!explanation.contains("no frame in the repository"), "{explanation}");
    app.stop().await;
}

/// The Node SDK marks `node_modules` frames `in_app: false`. A package of the repository (an npm workspace package
/// named in its package.json), packed into a tarball at the deployed commit and installed into an application's
/// node_modules, still gets the suspect and owner from its frames.
#[tokio::test]
async fn a_package_installed_from_a_tarball_is_assigned_though_node_says_not_in_app() {
    let Some(modules) = node_modules() else { return };
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let package = "{\"name\": \"@acme/cart\", \"version\": \"1.0.0\", \"main\": \"lib/cart.js\"}\n";
    let (repo, project, token, bad) = deployed_twice(
        &app,
        "nodeshop",
        &[
            ("package.json", "{\"name\": \"acme-shop\", \"private\": true, \"workspaces\": [\"packages/*\"]}\n"),
            ("packages/cart/package.json", package),
            ("packages/cart/lib/cart.js", "function total(items) {\n  items = items || [];\n  return items.reduce((a, b) => a + b, 0);\n}\nmodule.exports = { total };\n"),
        ],
        &[("packages/cart/lib/cart.js", "function total(items) {\n  if (!items.length) throw new RangeError('empty cart');\n  return items.reduce((a, b) => a + b, 0);\n}\nmodule.exports = { total };\n")],
    )
    .await;

    let dir = tempfile::tempdir().expect("temp dir");
    let tarball = run(Command::new("npm")
        .args(["pack", "--silent", "--pack-destination"])
        .arg(dir.path())
        .current_dir(repo.path().join("packages/cart")));
    let app_dir = dir.path().join("app");
    std::fs::create_dir_all(&app_dir).expect("app dir");
    std::fs::write(app_dir.join("package.json"), "{\"name\": \"storefront\", \"private\": true}\n")
        .expect("package.json");
    run(Command::new("npm")
        .args(["install", "--silent", "--no-audit", "--no-fund", "--offline"])
        .arg(dir.path().join(tarball.lines().last().unwrap_or_default()))
        .current_dir(&app_dir));
    assert!(app_dir.join("node_modules/@acme/cart/lib/cart.js").is_file());

    let script = app_dir.join("main.js");
    std::fs::write(
        &script,
        "const Sentry = require('@sentry/node');\nconst { total } = require('@acme/cart');\nSentry.init({ dsn: process.argv[2], release: 'v2', environment: 'production' });\ntry { total([]); } catch (e) { Sentry.captureException(e); }\nSentry.flush(10000).then(() => process.exit(0));\n",
    )
    .expect("script");
    let dsn = dsn_of(&app, &project).await;
    run_node(&script, &dsn, &modules, &app_dir).await;
    app.drain().await;

    let a = only_assignment(&app, &project, &token, "node_modules/@acme/cart/").await;
    let crash = a["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .find(|f| f["raw_path"].as_str().is_some_and(|p| p.ends_with("node_modules/@acme/cart/lib/cart.js")))
        .cloned()
        .unwrap_or_else(|| panic!("the package's frame: {a}"));
    assert_eq!(crash["repo_path"], json!("packages/cart/lib/cart.js"), "{a}");
    assert_eq!(a["suspect"]["commit"], json!(bad), "{a}");
    assert_eq!(a["owner"]["github_login"], json!("bobby"), "{a}");
    let explanation = a["explanation"].as_str().expect("explanation");
    assert!(
        explanation.starts_with("packages/cart/lib/cart.js:2 `if (!items.length) throw new RangeError('empty cart');`"),
        "{explanation}"
    );
    app.stop().await;
}

/// Two different errors whose only application frames are anonymous arrow functions of one file, sent by the real
/// Node SDK: two groups, each with its own title and frames.
#[tokio::test]
async fn errors_through_anonymous_callbacks_of_one_file_stay_apart() {
    let Some(modules) = node_modules() else { return };
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let p = app.sentry_project("anon").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("routes.js");
    std::fs::write(
        &script,
        "const Sentry = require('@sentry/node');\nSentry.init({ dsn: process.argv[2], release: 'v1' });\n// Inline arrow functions: V8 has no name to give them.\ntry { ((req) => req.user.id)({}); } catch (e) { Sentry.captureException(e); }\ntry { ((cart) => cart.total.amount)({}); } catch (e) { Sentry.captureException(e); }\nSentry.flush(10000).then(() => process.exit(0));\n",
    )
    .expect("script");
    run_node(&script, &p.dsn, &modules, script.parent().expect("a folder")).await;
    app.drain().await;
    let groups = groups(&app, &p).await;
    assert_eq!(groups.len(), 2, "{groups:?}");
    for (title, line) in [
        ("TypeError: Cannot read properties of undefined (reading 'id')", 4),
        ("TypeError: Cannot read properties of undefined (reading 'amount')", 5),
    ] {
        let g = by_title(&groups, title);
        assert_eq!(g["count"], json!(1));
        let detail = group_detail(&app, &p, &g["id"]).await;
        let crash = detail["latest_event"]["exceptions"][0]["frames"]
            .as_array()
            .and_then(|f| f.last())
            .expect("frames")
            .clone();
        assert_eq!(crash["lineno"], json!(line), "{title}: the group's frames are its own event's");
    }
    app.stop().await;
}
