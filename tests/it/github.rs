//! GitHub write-back against a local fake of GitHub's REST API, through the real octocrab client: the whole story
//! end to end, exactly one issue per group under injected faults, and rate limits honoured on a controllable clock.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use shipwatch::store::JobStatus;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{sqlite_db, Author, TestApp, TestRepo, ADMIN_TOKEN, ALICE, WEBHOOK_SECRET};

const BOBBY: Author = Author { name: "Bob Roe", email: "1234+bobby@users.noreply.github.com" };
const CAROL: Author = Author { name: "Carol Poe", email: "5678+carol@users.noreply.github.com" };

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Does the write, then answers too late (the client times out).
    EffectThenTimeout,
    /// Does the write, then answers 502.
    EffectThen502,
    /// Does the write, then drops the connection.
    EffectThenDrop,
    RateLimit429 {
        retry_after_s: i64,
    },
    RateLimitReset {
        reset_in_s: i64,
    },
    Secondary403,
}

#[derive(Default)]
struct FakeState {
    issues: Vec<Value>,
    /// (method, path, clock ms) of every request.
    requests: Vec<(String, String, i64)>,
    faults: VecDeque<Fault>,
    random: Option<(u64, u64)>,
    /// How many faults were injected.
    injected: usize,
    /// Logins GitHub refuses as assignees (422), as it does for people without access to the repository.
    unassignable: Vec<String>,
    /// Pull requests by commit sha, as `GET /repos/{o}/{r}/commits/{sha}/pulls` answers.
    pulls: HashMap<String, Vec<Value>>,
    /// Faults for comment creates only, before the general ones.
    comment_faults: VecDeque<Fault>,
}

#[derive(Clone)]
struct FakeGitHub {
    state: Arc<Mutex<FakeState>>,
    clock: Arc<AtomicI64>,
}

impl FakeGitHub {
    async fn start(clock: Arc<AtomicI64>) -> (FakeGitHub, String) {
        let fake = FakeGitHub { state: Arc::default(), clock };
        let router = Router::new()
            .route("/repos/{o}/{r}/issues", get(list).post(create))
            .route("/repos/{o}/{r}/issues/{n}", patch(edit))
            .route("/repos/{o}/{r}/issues/{n}/comments", get(comments).post(comment))
            .route("/repos/{o}/{r}/issues/{n}/labels", axum::routing::post(add_labels))
            .route("/repos/{o}/{r}/issues/{n}/labels/{name}", axum::routing::delete(remove_label))
            .route(
                "/repos/{o}/{r}/commits/{sha}",
                get(|| async { (StatusCode::NOT_FOUND, Json(json!({ "message": "Not Found" }))) }),
            )
            .route("/repos/{o}/{r}/commits/{sha}/pulls", get(commit_pulls))
            .route("/repos/{o}/{r}/issues/comments/{id}", patch(edit_comment))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        (fake, base)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().expect("fake state")
    }

    fn issues(&self) -> Vec<Value> {
        self.lock().issues.clone()
    }

    fn writes(&self) -> Vec<(String, String, i64)> {
        self.lock().requests.iter().filter(|(m, _, _)| m != "GET").cloned().collect()
    }

    fn record(&self, method: &str, path: String) {
        let now = self.clock.load(Ordering::SeqCst);
        self.lock().requests.push((method.into(), path, now));
    }

    /// The fault for this write: queued ones first, then random ones.
    fn fault(&self) -> Option<Fault> {
        let mut s = self.lock();
        if let Some(f) = s.faults.pop_front() {
            return Some(f);
        }
        let (seed, percent) = s.random.as_mut()?;
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let roll = *seed % 100;
        let fault = (roll < *percent).then(|| {
            [Fault::EffectThenTimeout, Fault::EffectThen502, Fault::EffectThenDrop][(*seed / 100 % 3) as usize]
        });
        s.injected += usize::from(fault.is_some());
        fault
    }

    /// Answers a write, applying `fault` around `effect`.
    async fn write(&self, fault: Option<Fault>, effect: impl FnOnce(&mut FakeState) -> Value) -> Response {
        let now_s = self.clock.load(Ordering::SeqCst) / 1000;
        match fault {
            Some(Fault::RateLimit429 { retry_after_s }) => {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", retry_after_s.to_string())],
                    Json(json!({ "message": "Too Many Requests" })),
                )
                    .into_response()
            }
            Some(Fault::RateLimitReset { reset_in_s }) => {
                let headers = [
                    ("x-ratelimit-remaining", "0".to_owned()),
                    ("x-ratelimit-reset", (now_s + reset_in_s).to_string()),
                ];
                return (StatusCode::FORBIDDEN, headers, Json(json!({ "message": "API rate limit exceeded" })))
                    .into_response();
            }
            Some(Fault::Secondary403) => {
                return (StatusCode::FORBIDDEN, Json(json!({ "message": "You have exceeded a secondary rate limit." })))
                    .into_response()
            }
            _ => {}
        }
        let answer = effect(&mut self.lock());
        match fault {
            Some(Fault::EffectThenTimeout) => {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                Json(answer).into_response()
            }
            Some(Fault::EffectThen502) => (StatusCode::BAD_GATEWAY, "bad gateway").into_response(),
            Some(Fault::EffectThenDrop) => std::panic::panic_any("injected: connection dropped after the write"),
            _ => (StatusCode::CREATED, Json(answer)).into_response(),
        }
    }
}

async fn list(
    State(f): State<FakeGitHub>,
    Path((o, r)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    f.record("GET", format!("/repos/{o}/{r}/issues"));
    let label = q.get("labels").cloned().unwrap_or_default();
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    // GitHub's `since`: only issues updated at or after it (ISO 8601); this fake keeps the update time in ms.
    let since = q
        .get("since")
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).expect("since is ISO 8601").timestamp_millis() / 1000 * 1000);
    let mut all: Vec<Value> = f
        .issues()
        .into_iter()
        .filter(|i| i["labels"].as_array().is_some_and(|ls| ls.iter().any(|l| l["name"] == json!(label))))
        .filter(|i| since.is_none_or(|t| i["updated_ms"].as_i64().unwrap_or(0) >= t))
        .collect();
    all.reverse();
    Json(Value::Array(all.into_iter().skip((page - 1) * 100).take(100).collect()))
}

async fn create(
    State(f): State<FakeGitHub>,
    Path((o, r)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    f.record("POST", format!("/repos/{o}/{r}/issues"));
    assert!(headers.get("authorization").is_some_and(|a| a.to_str().unwrap_or_default().contains("ghp_test")));
    let refused = body["assignees"]
        .as_array()
        .is_some_and(|a| a.iter().any(|l| f.lock().unassignable.iter().any(|u| *l == json!(u))));
    if refused {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "message": "Validation Failed", "errors": [{ "field": "assignees" }] })),
        )
            .into_response();
    }
    let fault = f.fault();
    let now = f.clock.load(Ordering::SeqCst);
    f.write(fault, move |s| {
        let number = s.issues.len() as i64 + 1;
        let labels: Vec<Value> =
            body["labels"].as_array().cloned().unwrap_or_default().iter().map(|l| json!({ "name": l })).collect();
        let issue = json!({ "number": number, "title": body["title"], "body": body["body"], "labels": labels,
                            "assignees": body["assignees"], "state": "open", "comments_list": [],
                            "updated_ms": now });
        s.issues.push(issue.clone());
        issue
    })
    .await
}

async fn edit(
    State(f): State<FakeGitHub>,
    Path((o, r, n)): Path<(String, String, i64)>,
    Json(body): Json<Value>,
) -> Response {
    f.record("PATCH", format!("/repos/{o}/{r}/issues/{n}"));
    let refused = body["assignees"]
        .as_array()
        .is_some_and(|a| a.iter().any(|l| f.lock().unassignable.iter().any(|u| *l == json!(u))));
    if refused {
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "message": "Validation Failed" }))).into_response();
    }
    let fault = f.fault();
    let now = f.clock.load(Ordering::SeqCst);
    f.write(fault, move |s| {
        let issue = &mut s.issues[(n - 1) as usize];
        if body.get("state").is_some() {
            issue["state"] = body["state"].clone();
        }
        if body.get("assignees").is_some() {
            issue["assignees"] = body["assignees"].clone();
        }
        issue["updated_ms"] = json!(now);
        issue.clone()
    })
    .await
}

async fn add_labels(
    State(f): State<FakeGitHub>,
    Path((o, r, n)): Path<(String, String, i64)>,
    Json(body): Json<Value>,
) -> Response {
    f.record("POST", format!("/repos/{o}/{r}/issues/{n}/labels"));
    let fault = f.fault();
    f.write(fault, move |s| {
        let issue = &mut s.issues[(n - 1) as usize];
        let mut labels = issue["labels"].as_array().cloned().unwrap_or_default();
        for l in body["labels"].as_array().cloned().unwrap_or_default() {
            if !labels.iter().any(|x| x["name"] == l) {
                labels.push(json!({ "name": l }));
            }
        }
        issue["labels"] = json!(labels);
        issue["labels"].clone()
    })
    .await
}

async fn remove_label(
    State(f): State<FakeGitHub>,
    Path((o, r, n, name)): Path<(String, String, i64, String)>,
) -> Response {
    f.record("DELETE", format!("/repos/{o}/{r}/issues/{n}/labels/{name}"));
    let fault = f.fault();
    f.write(fault, move |s| {
        let issue = &mut s.issues[(n - 1) as usize];
        let labels: Vec<Value> =
            issue["labels"].as_array().cloned().unwrap_or_default().into_iter().filter(|l| l["name"] != name).collect();
        issue["labels"] = json!(labels);
        issue["labels"].clone()
    })
    .await
}

/// Comment ids: the issue's number times 1,000 plus the comment's place (from 1).
fn comment_id(n: i64, place: usize) -> i64 {
    n * 1000 + place as i64
}

async fn comments(State(f): State<FakeGitHub>, Path((_, _, n)): Path<(String, String, i64)>) -> Json<Value> {
    f.record("GET", format!("comments #{n}"));
    let issues = f.issues();
    let list = issues[(n - 1) as usize]["comments_list"].as_array().cloned().unwrap_or_default();
    Json(Value::Array(
        list.into_iter().enumerate().map(|(i, b)| json!({ "id": comment_id(n, i + 1), "body": b })).collect(),
    ))
}

async fn comment(
    State(f): State<FakeGitHub>,
    Path((o, r, n)): Path<(String, String, i64)>,
    Json(body): Json<Value>,
) -> Response {
    f.record("POST", format!("/repos/{o}/{r}/issues/{n}/comments"));
    let queued = f.lock().comment_faults.pop_front();
    let fault = queued.or_else(|| f.fault());
    f.write(fault, move |s| {
        let place = s.issues[(n - 1) as usize]["comments_list"].as_array_mut().map_or(0, |l| {
            l.push(body["body"].clone());
            l.len()
        });
        json!({ "id": comment_id(n, place) })
    })
    .await
}

async fn edit_comment(
    State(f): State<FakeGitHub>,
    Path((o, r, id)): Path<(String, String, i64)>,
    Json(body): Json<Value>,
) -> Response {
    f.record("PATCH", format!("/repos/{o}/{r}/issues/comments/{id}"));
    let fault = f.fault();
    f.write(fault, move |s| {
        let (n, place) = (id / 1000, (id % 1000) as usize);
        s.issues[(n - 1) as usize]["comments_list"][place - 1] = body["body"].clone();
        json!({ "id": id })
    })
    .await
}

async fn commit_pulls(State(f): State<FakeGitHub>, Path((o, r, sha)): Path<(String, String, String)>) -> Json<Value> {
    f.record("GET", format!("/repos/{o}/{r}/commits/{sha}/pulls"));
    Json(Value::Array(f.lock().pulls.get(&sha).cloned().unwrap_or_default()))
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

struct Project {
    token: String,
    url: String,
}

async fn project(app: &TestApp, repo: &TestRepo) -> Project {
    let (_, token) = app.project("web", repo).await;
    let (_, p) = app.call(Method::GET, "/api/v1/projects/web", Some(ADMIN_TOKEN), None).await;
    let key =
        p["dsn"].as_str().and_then(|d| d.split("//").nth(1)).and_then(|r| r.split('@').next()).expect("key").to_owned();
    Project { token, url: format!("{}/api/{}/envelope/?sentry_key={key}", app.base, p["id"]) }
}

/// A project with v1 deployed, then v2 (Bobby's `a / b`) on top: an error at v2 is new there, and Bobby's.
async fn deployed_to_v2(app: &TestApp) -> (TestRepo, Project) {
    let repo = TestRepo::new();
    let v1 = repo.commit(&ALICE, &[("app/pay.py", "def pay(a, b):\n    return a / (b + 1)\n")], "pay");
    let p = project(app, &repo).await;
    deploy(app, &p, &v1, "v1").await;
    app.drain().await;
    let v2 = repo.commit(&BOBBY, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "simplify");
    deploy(app, &p, &v2, "v2").await;
    app.drain().await;
    (repo, p)
}

async fn deploy(app: &TestApp, p: &Project, sha: &str, version: &str) {
    let (status, _) = app
        .deploy(&p.token, json!({ "project": "web", "environment": "production", "sha": sha, "version": version }))
        .await;
    assert_eq!(status, 202);
}

async fn error(app: &TestApp, p: &Project, n: u32, release: &str, ty: &str) {
    error_at(app, p, n, release, ty, ("app/pay.py", "pay", 2)).await;
}

/// An error whose one frame is `function` at `path:line` of the repository.
async fn error_at(
    app: &TestApp,
    p: &Project,
    n: u32,
    release: &str,
    ty: &str,
    (path, function, line): (&str, &str, u32),
) {
    let event = json!({
        "event_id": format!("{n:032x}"), "release": release, "environment": "production", "platform": "python",
        "exception": {"values": [{"type": ty, "value": "boom", "stacktrace": {"frames": [
            {"abs_path": format!("/srv/app/{path}"), "function": function, "lineno": line, "in_app": true}]}}]}
    })
    .to_string();
    let body = format!("{{}}\n{{\"type\":\"event\"}}\n{event}\n");
    assert_eq!(app.http.post(&p.url).body(body).send().await.expect("sent").status().as_u16(), 200);
    // Into the store now, for the tests that run the worker themselves.
    app.app.spooler.forward_all().await.expect("the spool forwards");
}

async fn group(app: &TestApp, p: &Project) -> Value {
    let (_, groups) = app.call(Method::GET, "/api/v1/projects/web/groups", Some(&p.token), None).await;
    groups["groups"][0].clone()
}

/// Delivery ids: each webhook a distinct delivery, as GitHub sends them.
static DELIVERIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// GitHub's signed `issues` webhook saying issue `number` was closed.
async fn close_on_github(app: &TestApp, number: i64) {
    send_issue_event(app, "closed", number, json!({})).await;
}

/// GitHub's signed `issues` webhook: `action` on issue `number`, with `extra` fields (assignee, label).
async fn send_issue_event(app: &TestApp, action: &str, number: i64, extra: Value) {
    let mut body =
        json!({ "action": action, "issue": { "number": number }, "repository": { "full_name": "acme/web" } });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let body = body.to_string();
    let resp = app
        .http
        .post(format!("{}/webhooks/github", app.base))
        .header("x-github-event", "issues")
        .header("x-github-delivery", format!("{action}-{number}-{}", DELIVERIES.fetch_add(1, Ordering::SeqCst)))
        .header("x-hub-signature-256", sign(body.as_bytes()))
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 202);
}

/// Sends a signed `push` webhook for `commits` (id, message) on `git_ref` of a repository whose default branch is
/// `main`.
async fn push_to_github(app: &TestApp, git_ref: &str, commits: &[(&str, &str)]) {
    let commits: Vec<Value> = commits.iter().map(|(id, message)| json!({ "id": id, "message": message })).collect();
    let push = json!({ "ref": git_ref, "commits": commits,
                       "repository": { "full_name": "acme/web", "default_branch": "main" } })
    .to_string();
    let resp = app
        .http
        .post(format!("{}/webhooks/github", app.base))
        .header("x-github-event", "push")
        .header("x-github-delivery", format!("push-{}", DELIVERIES.fetch_add(1, Ordering::SeqCst)))
        .header("x-hub-signature-256", sign(push.as_bytes()))
        .body(push)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 202);
}

/// An issue closed by merging `Fixes #1` before the fix is deployed: the group is resolved *by that commit*, so
/// events from builds without it — the one still running, one with only the fix's parent — leave it resolved, and
/// only a build that contains the fix and still fails reopens it.
#[tokio::test]
async fn an_issue_closed_by_a_fixing_commit_reopens_only_from_builds_that_contain_it() {
    let (fake, api) = FakeGitHub::start(Arc::new(AtomicI64::new(0))).await;
    let db = sqlite_db().await;
    let app = TestApp::spawn_github(db.store.clone(), &api, 0).await;
    let (repo, p) = deployed_to_v2(&app).await;
    error(&app, &p, 1, "v2", "ZeroDivisionError").await;
    app.drain().await;
    assert_eq!(fake.issues().len(), 1);
    // Work goes on: a commit that fixes nothing, then the fix, merged into main (GitHub closes #1 on the merge).
    let parent = repo.commit(&ALICE, &[("README.md", "pay\n")], "Document pay");
    let fix =
        repo.commit(&ALICE, &[("app/pay.py", "def pay(a, b):\n    return a / b if b else 0\n")], "Guard pay, fixes #1");
    // The same words on a feature branch do not count: GitHub closes issues only from the default branch.
    push_to_github(&app, "refs/heads/feature", &[(&fix, "Guard pay, fixes #1")]).await;
    push_to_github(&app, "refs/heads/main", &[(&parent, "Document pay"), (&fix, "Guard pay, fixes #1")]).await;
    fake.lock().issues[0]["state"] = json!("closed");
    close_on_github(&app, 1).await;
    app.drain().await;
    let g = group(&app, &p).await;
    assert_eq!((g["status"].clone(), g["fixed_in_commit"].clone()), (json!("resolved"), json!(fix)), "{g}");

    // The build still running in production (v2, without the fix): stays resolved.
    error(&app, &p, 2, "v2", "ZeroDivisionError").await;
    app.drain().await;
    assert_eq!(group(&app, &p).await["status"], json!("resolved"), "the pre-fix build does not reopen it");
    // A build of the fix's parent only: still without the fix.
    deploy(&app, &p, &parent, "v3").await;
    app.drain().await;
    error(&app, &p, 3, "v3", "ZeroDivisionError").await;
    app.drain().await;
    assert_eq!(group(&app, &p).await["status"], json!("resolved"), "a build without the fix does not reopen it");
    assert_eq!(fake.issues()[0]["state"], json!("closed"));
    // A later build that contains the fix and still fails: a regression.
    let later = repo.commit(&ALICE, &[("CHANGES", "v4\n")], "Changelog");
    deploy(&app, &p, &later, "v4").await;
    app.drain().await;
    error(&app, &p, 4, "v4", "ZeroDivisionError").await;
    app.drain().await;
    let g = group(&app, &p).await;
    assert_eq!((g["status"].clone(), g["regressed_in"].clone()), (json!("unresolved"), json!("v4")), "{g}");
    assert_eq!(fake.issues()[0]["state"], json!("open"), "the issue is reopened");
    app.stop().await;
}

#[tokio::test]
async fn end_to_end_one_issue_resolved_by_webhook_reopened_by_a_regression_not_by_an_old_build() {
    let clock = Arc::new(AtomicI64::new(0));
    let (fake, api) = FakeGitHub::start(clock).await;
    let db = sqlite_db().await;
    let app = TestApp::spawn_github(db.store.clone(), &api, 0).await;
    let repo = TestRepo::new();
    let v1 = repo.commit(&ALICE, &[("app/pay.py", "def pay(a, b):\n    return a / (b + 1)\n")], "pay");
    let p = project(&app, &repo).await;
    let labels = json!({ "labels": ["bug", "prod"] });
    let (status, _) = app.call(Method::PUT, "/api/v1/projects/web/settings", Some(ADMIN_TOKEN), Some(labels)).await;
    assert_eq!(status, 200);
    deploy(&app, &p, &v1, "v1").await;
    app.drain().await;
    let bad = repo.commit(&BOBBY, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "simplify");
    deploy(&app, &p, &bad, "v2").await;
    app.drain().await;
    error(&app, &p, 1, "v2", "ZeroDivisionError").await;
    error(&app, &p, 2, "v2", "ZeroDivisionError").await;
    app.drain().await;

    let issues = fake.issues();
    assert_eq!(issues.len(), 1, "exactly one issue: {issues:?}");
    let issue = &issues[0];
    assert_eq!(issue["assignees"], json!(["bobby"]));
    assert_eq!(issue["title"], json!("ZeroDivisionError: boom"));
    assert_eq!(
        issue["labels"],
        json!([{ "name": "shipwatch" }, { "name": "bug" }, { "name": "prod" }, { "name": "new" }]),
        "shipwatch's label, the configured ones, and `new` for an error first seen in this release"
    );
    let body = issue["body"].as_str().expect("body");
    assert!(
        body.contains(&format!("{api}/acme/web/blob/{bad}/app/pay.py#L2")),
        "links the blamed line at v2's sha:\n{body}"
    );
    assert!(body.contains("introduced by **v2**") && body.contains("<!-- shipwatch:group:"), "{body}");
    // Links to the pages people can open, not to the token-protected JSON API.
    assert!(
        body.contains("(http://shipwatch.test/deploys/2)") && body.contains("(http://shipwatch.test/groups/"),
        "{body}"
    );
    assert!(!body.contains("/api/v1/"), "{body}");
    let g = group(&app, &p).await;
    assert_eq!(g["github_issue"], json!(1));
    let v2_report = || async {
        let (status, r) = app.call(Method::GET, "/api/v1/deploys/2/report", Some(&p.token), None).await;
        assert_eq!(status, 200);
        (r["new_errors"].clone(), r["suspects_in_range"].clone())
    };
    let v2_before = v2_report().await;
    assert!(v2_before.1[0]["suspect"].as_str().is_some_and(|s| s.contains("by Bob Roe")), "{v2_before:?}");

    // Closed on GitHub: the signed `issues` webhook resolves the group (baseline: v2 in production).
    fake.lock().issues[0]["state"] = json!("closed");
    close_on_github(&app, 1).await;
    app.drain().await;
    assert_eq!(group(&app, &p).await["status"], json!("resolved"));

    // Carol rewrites the line in v3 (a noreply address: the owner at v3 has a login to assign and mention).
    let v3 = repo.commit(&CAROL, &[("app/pay.py", "def pay(a, b):\n    return a / b if b else 0\n")], "fix");
    deploy(&app, &p, &v3, "v3").await;
    app.drain().await;
    // The old build v1 still runs somewhere: nothing is reopened.
    error(&app, &p, 3, "v1", "ZeroDivisionError").await;
    app.drain().await;
    assert_eq!(fake.issues()[0]["state"], json!("closed"), "an old build does not reopen");
    assert_eq!(group(&app, &p).await["status"], json!("resolved"));
    // v3 contains the resolution: the error from it reopens the issue, with a comment.
    error(&app, &p, 4, "v3", "ZeroDivisionError").await;
    app.drain().await;
    let issues = fake.issues();
    assert_eq!(issues.len(), 1, "still one issue");
    assert_eq!(issues[0]["state"], json!("open"));
    assert_eq!(issues[0]["assignees"], json!(["carol"]), "reassigned to the owner at the regressing deploy");
    let comments = issues[0]["comments_list"].as_array().expect("comments").clone();
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(comments[0].as_str().is_some_and(|c| c.contains("Regressed in v3")), "{comments:?}");
    let g = group(&app, &p).await;
    let owner = g["assignee"].as_str().expect("an owner at v3");
    assert_eq!(owner, "carol");
    // The regression re-assigned the group at v3; v2's report still shows what v2 shipped and who owned it then.
    assert_eq!(v2_report().await, v2_before, "v2's report is not rewritten by the v3 regression");
    assert_ne!(g["assignment"]["deploy"]["version"], json!("v2"), "{g}");
    assert!(
        comments[0].as_str().is_some_and(|c| c.contains(&format!("@{owner}: this is yours at this deploy"))),
        "the owner at the regressing deploy is mentioned: {comments:?}"
    );
    assert_eq!((g["status"].clone(), g["regressed_in"].clone()), (json!("unresolved"), json!("v3")));

    // What an operator sees at /metrics after this run. A new group blamed at the line the regression was blamed
    // at (a blame cache hit), one event left queued, and one envelope with a wrong key.
    error(&app, &p, 5, "v3", "ValueError").await;
    app.drain().await;
    error(&app, &p, 6, "v3", "KeyError").await;
    let wrong_key = p.url.split("sentry_key=").next().expect("url").to_owned() + "sentry_key=0123456789abcdef";
    let refused = app.http.post(&wrong_key).body("{}\n{\"type\":\"event\"}\n{}\n").send().await.expect("sent");
    assert_eq!(refused.status().as_u16(), 403);
    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.expect("metrics");
    assert_eq!(metrics.status().as_u16(), 200);
    let text = metrics.text().await.expect("text");
    let total = |prefix: &str| -> f64 {
        text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    };
    for (prefix, at_least) in [
        (r#"shipwatch_http_requests_total{method="POST",route="/api/{project_id}/envelope/",status="200"}"#, 6.0),
        (r#"shipwatch_http_requests_total{method="POST",route="/api/v1/deploys",status="202"}"#, 3.0),
        (r#"shipwatch_http_request_duration_seconds_count{method="POST",route="/api/{project_id}/envelope/"}"#, 7.0),
        ("shipwatch_events_accepted_total", 6.0),
        (r#"shipwatch_intake_refused_total{reason="unauthorized"}"#, 1.0),
        (r#"shipwatch_queue_jobs{kind="group_events"}"#, 1.0),
        (r#"shipwatch_queue_oldest_job_age_seconds{kind="group_events"}"#, 0.0),
        ("shipwatch_events_grouped_total", 5.0),
        (r#"shipwatch_jobs_finished_total{kind="deploy_range",outcome="done"}"#, 3.0),
        (r#"shipwatch_jobs_finished_total{kind="github_issue",outcome="done"}"#, 2.0),
        (r#"shipwatch_github_calls_total{call="create_issue",outcome="ok"}"#, 1.0),
        (r#"shipwatch_github_calls_total{call="comment",outcome="ok"}"#, 1.0),
        ("shipwatch_blame_cache_hits_total", 1.0),
        ("shipwatch_blame_cache_misses_total", 1.0),
    ] {
        assert!(text.lines().any(|l| l.starts_with(prefix)), "{prefix} missing:\n{text}");
        assert!(total(prefix) >= at_least, "{prefix} below {at_least}:\n{text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn faults_after_the_write_never_make_a_second_issue_or_comment() {
    // Ahead of the real time at which the HTTP handlers queue jobs, so they are due for this clock.
    let t0: i64 = 1_800_000_000_000;
    let clock = Arc::new(AtomicI64::new(t0));
    let (fake, api) = FakeGitHub::start(clock.clone()).await;
    // A busy repository: 1,200 issues with shipwatch's label already (other projects', long ago), so a look-up
    // that reads the newest few hundred would not be exact.
    {
        let mut s = fake.lock();
        for number in 1..=1_200 {
            s.issues.push(json!({ "number": number, "title": format!("old {number}"),
                "body": format!("<!-- shipwatch:group:999:{number} -->"), "labels": [{ "name": "shipwatch" }],
                "assignees": [], "state": "closed", "comments_list": [], "updated_ms": t0 - 86_400_000 }));
        }
        s.random = Some((0x2545_F491_4F6C_DD1D, 80));
    }
    let db = sqlite_db().await;
    // The default write pacing: one write a second.
    let app = TestApp::spawn_github(db.store.clone(), &api, 1_000).await;
    let repo = TestRepo::new();
    let v1 = repo.commit(&ALICE, &[("app/pay.py", "def pay(a, b):\n    return a / (b + 1)\n")], "pay");
    let p = project(&app, &repo).await;
    let worker = app.app.worker_with_clock({
        let clock = clock.clone();
        Arc::new(move || clock.load(Ordering::SeqCst))
    });
    let run_all = || async { while worker.run_once().await.expect("worker") {} };
    deploy(&app, &p, &v1, "v1").await;
    run_all().await;
    let v2 = repo.commit(&BOBBY, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "simplify");
    deploy(&app, &p, &v2, "v2").await;
    run_all().await;
    let types: Vec<String> = (1..=30).map(|i| format!("Error{i}")).collect();
    for (i, ty) in types.iter().enumerate() {
        error(&app, &p, i as u32 + 1, "v2", ty).await;
    }
    // Half a minute of clock time with 80 % of writes failing after taking effect, a second at a time (too short
    // for 30 issues at one write a second: the rest is done after the faults end).
    for _ in 0..30 {
        run_all().await;
        clock.fetch_add(1_000, Ordering::SeqCst);
    }
    let injected = fake.lock().injected;
    fake.lock().random = None;
    let faults_ended = clock.load(Ordering::SeqCst);
    // Then every group is linked within two minutes.
    let linked = || async {
        let (_, groups) = app.call(Method::GET, "/api/v1/projects/web/groups", Some(&p.token), None).await;
        groups["groups"].as_array().expect("groups").iter().filter(|g| g["github_issue"].is_i64()).count()
    };
    while linked().await < types.len() {
        assert!(clock.load(Ordering::SeqCst) - faults_ended <= 120_000, "not all linked 2 minutes after the faults");
        run_all().await;
        clock.fetch_add(1_000, Ordering::SeqCst);
    }
    let took_s = (clock.load(Ordering::SeqCst) - faults_ended) / 1000;
    let issues = fake.issues();
    let requests = fake.lock().requests.clone();
    let creates = requests.iter().filter(|(m, path, _)| m == "POST" && path.ends_with("/issues")).count();
    let lists = requests.iter().filter(|(m, path, _)| m == "GET" && path.ends_with("/issues")).count();
    for ty in &types {
        let with_title: Vec<&Value> = issues.iter().filter(|i| i["title"] == json!(format!("{ty}: boom"))).collect();
        assert_eq!(with_title.len(), 1, "{ty}: exactly one issue after {creates} create calls");
    }
    eprintln!(
        "{injected} faults injected after writes; {creates} creates and {lists} look-ups for {} groups; all linked \
         {took_s} s after the faults ended",
        types.len()
    );
    assert!(injected >= 10, "faults happened: {injected}");
    // A create whose answer was lost is found by its marker on the next try (among the issues changed since it
    // was sent, however many the repository has), not sent again; a look-up happens only after such a loss.
    assert_eq!(creates, types.len(), "{injected} faults, {creates} creates");
    assert!(lists <= injected, "{lists} look-ups for {injected} faults");
    // And a look-up serves every job whose create went unanswered before it started: one per fault without that
    // (26 for 26 with this seed), 1 with it (each waits out the answer timeout, then one listing serves all).
    assert!(lists * 2 <= injected, "look-ups are reused between jobs: {lists} for {injected} faults");
    let writes = fake.writes();
    let times: Vec<i64> = writes.iter().map(|(_, _, t)| *t).collect();
    assert!(times.windows(2).all(|w| w[1] - w[0] >= 1_000), "writes at least a second apart: {times:?}");
    let pending: Vec<_> = db
        .store
        .job_states()
        .await
        .expect("jobs")
        .into_iter()
        .filter(|j| j.kind == "github_issue" && j.status != shipwatch::store::JobStatus::Done)
        .collect();
    assert!(pending.is_empty(), "{pending:?}");

    // Then every issue is closed on GitHub and every error comes back in v3, under faults again: half the writes
    // (comments, reopens, label changes) take effect and lose their answer, and GitHub rate-limits three times
    // (429 with Retry-After, a secondary 403, an exhausted quota with its reset time).
    let numbers: Vec<i64> = fake.issues().iter().filter_map(|i| i["number"].as_i64()).filter(|n| *n > 1_200).collect();
    assert_eq!(numbers.len(), types.len());
    for n in &numbers {
        fake.lock().issues[(*n - 1) as usize]["state"] = json!("closed");
        close_on_github(&app, *n).await;
    }
    run_all().await;
    let v3 = repo.commit(&CAROL, &[("app/pay.py", "def pay(a, b):\n    return (a / b)\n")], "parenthesise");
    deploy(&app, &p, &v3, "v3").await;
    run_all().await;
    let injected_before = fake.lock().injected;
    {
        let mut s = fake.lock();
        s.faults.extend([
            Fault::RateLimit429 { retry_after_s: 30 },
            Fault::Secondary403,
            Fault::RateLimitReset { reset_in_s: 20 },
        ]);
        s.random = Some((0x9E37_79B9_7F4A_7C15, 50));
    }
    for (i, ty) in types.iter().enumerate() {
        error(&app, &p, 100 + i as u32, "v3", ty).await;
    }
    // Three minutes of that: the rate limits hold every write for about two, the rest go out under the faults.
    for _ in 0..180 {
        run_all().await;
        clock.fetch_add(1_000, Ordering::SeqCst);
    }
    fake.lock().random = None;
    let faults_ended = clock.load(Ordering::SeqCst);
    let regressed = |issue: &Value| {
        let labels: Vec<&str> =
            issue["labels"].as_array().into_iter().flatten().filter_map(|l| l["name"].as_str()).collect();
        issue["state"] == json!("open") && labels.contains(&"regression") && !labels.contains(&"new")
    };
    let done = || fake.issues().iter().filter(|i| i["number"].as_i64().is_some_and(|n| n > 1_200)).all(&regressed);
    while !done() {
        assert!(clock.load(Ordering::SeqCst) - faults_ended <= 300_000, "not all reopened 5 minutes after the faults");
        run_all().await;
        clock.fetch_add(1_000, Ordering::SeqCst);
    }
    let took_s = (clock.load(Ordering::SeqCst) - faults_ended) / 1000;
    for issue in fake.issues().iter().filter(|i| i["number"].as_i64().is_some_and(|n| n > 1_200)) {
        let comments = issue["comments_list"].as_array().expect("comments");
        assert_eq!(comments.len(), 1, "exactly one regression comment on #{}: {comments:?}", issue["number"]);
        assert!(comments[0].as_str().is_some_and(|c| c.contains("Regressed in v3")), "{comments:?}");
    }
    let injected = fake.lock().injected - injected_before;
    let requests = fake.lock().requests.clone();
    let comment_posts = requests.iter().filter(|(m, path, _)| m == "POST" && path.ends_with("/comments")).count();
    eprintln!(
        "regressions: {injected} faults after writes and 3 rate limits; {comment_posts} comment posts for {} issues; \
         all reopened and relabelled {took_s} s after the faults ended",
        numbers.len()
    );
    assert!(injected >= 10, "faults happened: {injected}");
    assert_eq!(fake.issues().len(), 1_200 + types.len(), "still one issue per group");
    app.stop().await;
}

#[tokio::test]
async fn rate_limits_and_pacing_are_honoured_on_a_controllable_clock() {
    let t0: i64 = 1_800_000_000_000;
    let clock = Arc::new(AtomicI64::new(t0));
    let (fake, api) = FakeGitHub::start(clock.clone()).await;
    let db = sqlite_db().await;
    let app = TestApp::spawn_github(db.store.clone(), &api, 1_000).await;
    let repo = TestRepo::new();
    let v1 = repo.commit(&ALICE, &[("app/pay.py", "def pay(a, b):\n    return a / (b + 1)\n")], "pay");
    let p = project(&app, &repo).await;
    let worker = app.app.worker_with_clock({
        let clock = clock.clone();
        Arc::new(move || clock.load(Ordering::SeqCst))
    });
    let at = |ms: i64| {
        clock.store(t0 + ms, Ordering::SeqCst);
    };
    let run_all = || async { while worker.run_once().await.expect("worker") {} };
    deploy(&app, &p, &v1, "v1").await;
    run_all().await;
    let v2 = repo.commit(&BOBBY, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "simplify");
    deploy(&app, &p, &v2, "v2").await;
    run_all().await;
    {
        let mut s = fake.lock();
        s.faults.extend([
            Fault::RateLimit429 { retry_after_s: 120 },
            Fault::RateLimitReset { reset_in_s: 300 },
            Fault::Secondary403,
        ]);
    }
    error(&app, &p, 1, "v2", "ZeroDivisionError").await;
    run_all().await;
    let creates = || fake.writes().len();
    assert_eq!(creates(), 1, "429 with Retry-After: 120");
    at(60_000);
    run_all().await;
    assert_eq!(creates(), 1, "nothing before Retry-After");
    at(121_000);
    run_all().await;
    assert_eq!(creates(), 2, "retried after it; now x-ratelimit-remaining 0, reset in 300 s");
    at(300_000);
    run_all().await;
    assert_eq!(creates(), 2, "nothing before x-ratelimit-reset");
    at(421_000);
    run_all().await;
    assert_eq!(creates(), 3, "retried at the reset; now a secondary rate limit without headers");
    at(421_000 + 59_000);
    run_all().await;
    assert_eq!(creates(), 3, "a secondary rate limit waits at least a minute");
    at(421_000 + 61_000);
    run_all().await;
    assert_eq!(creates(), 4);
    assert_eq!(fake.issues().len(), 1, "the rate-limited attempts created nothing");

    // Pacing: two groups at the same instant; the second write waits a second.
    error(&app, &p, 2, "v2", "KeyError").await;
    error(&app, &p, 3, "v2", "ValueError").await;
    let now = 421_000 + 61_000 + 10_000;
    at(now);
    run_all().await;
    assert_eq!(creates(), 5, "one write in this second");
    at(now + 999);
    run_all().await;
    assert_eq!(creates(), 5);
    at(now + 1_000);
    run_all().await;
    assert_eq!(creates(), 6);
    let times: Vec<i64> = fake.writes().iter().map(|(_, _, t)| *t).collect();
    assert!(times.windows(2).all(|w| w[1] - w[0] >= 1_000), "writes at least a second apart: {times:?}");
    app.stop().await;
}

#[tokio::test]
async fn an_assignee_github_refuses_is_mentioned_instead() {
    let t0: i64 = 1_800_000_000_000;
    let clock = Arc::new(AtomicI64::new(t0));
    let (fake, api) = FakeGitHub::start(clock.clone()).await;
    fake.lock().unassignable.push("bobby".into());
    let db = sqlite_db().await;
    // The default pacing: the create without the assignee waits for a slot of its own.
    let app = TestApp::spawn_github(db.store.clone(), &api, 1_000).await;
    let worker = app.app.worker_with_clock({
        let clock = clock.clone();
        Arc::new(move || clock.load(Ordering::SeqCst))
    });
    let (_repo, p) = deployed_to_v2(&app).await;
    error(&app, &p, 1, "v2", "ZeroDivisionError").await;
    for _ in 0..10 {
        while worker.run_once().await.expect("worker") {}
        clock.fetch_add(1_000, Ordering::SeqCst);
    }
    let issues = fake.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0]["assignees"], json!([]));
    let body = issues[0]["body"].as_str().expect("body");
    assert!(body.contains("@bobby: GitHub would not assign this issue to you"), "{body}");
    // The refused create and the one that worked, a second apart; nothing repeated.
    let writes = fake.writes();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert!(writes[1].2 - writes[0].2 >= 1_000, "{writes:?}");
    app.stop().await;
}

/// Runs every due job; while jobs wait (for a write slot), moves the clock a second at a time, for at most
/// `seconds` of clock time.
async fn settle_within(
    worker: &shipwatch::worker::Worker,
    store: &shipwatch::store::DynStore,
    clock: &AtomicI64,
    seconds: usize,
) {
    for _ in 0..seconds {
        while worker.run_once().await.expect("worker") {}
        let waiting = store.job_states().await.expect("jobs").iter().any(|j| j.status == JobStatus::Queued);
        if !waiting {
            return;
        }
        clock.fetch_add(1_000, Ordering::SeqCst);
    }
    let jobs = store.job_states().await.expect("jobs");
    panic!("jobs still waiting after {seconds} s of clock time: {jobs:?}");
}

/// The default write pacing (one write a second) on a controllable clock: two groups get their issues, both are
/// closed on GitHub, both regress in v3 at the same instant — each issue gets exactly one comment and is reopened,
/// the second job queued behind the first completes too, waiting for a slot never counts as an attempt, and the calls
/// to GitHub stay proportional to the work.
#[tokio::test]
async fn with_the_default_pacing_regressions_are_commented_reopened_and_the_queue_keeps_moving() {
    let t0: i64 = 1_800_000_000_000;
    let clock = Arc::new(AtomicI64::new(t0));
    let (fake, api) = FakeGitHub::start(clock.clone()).await;
    let db = sqlite_db().await;
    let app = TestApp::spawn_github(db.store.clone(), &api, 1_000).await;
    let worker = app.app.worker_with_clock({
        let clock = clock.clone();
        Arc::new(move || clock.load(Ordering::SeqCst))
    });
    let settle = || settle_within(&worker, &db.store, &clock, 60);
    let repo = TestRepo::new();
    let v1 = repo.commit(&ALICE, &[("app/pay.py", "def pay(a, b):\n    return a / (b + 1)\n")], "pay");
    let p = project(&app, &repo).await;
    deploy(&app, &p, &v1, "v1").await;
    settle().await;
    let v2 = repo.commit(&BOBBY, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "simplify");
    deploy(&app, &p, &v2, "v2").await;
    settle().await;
    error(&app, &p, 1, "v2", "ZeroDivisionError").await;
    error(&app, &p, 2, "v2", "KeyError").await;
    settle().await;
    assert_eq!(fake.issues().len(), 2);
    for n in [1, 2] {
        fake.lock().issues[n - 1]["state"] = json!("closed");
        close_on_github(&app, n as i64).await;
    }
    settle().await;
    // Carol rewrites the crashing line in v3, and GitHub will not let her be assigned (no access): the reopen
    // that reassigns is refused, recorded, and followed by a plain reopen in a slot of its own.
    fake.lock().unassignable.push("carol".into());
    let v3 = repo.commit(&CAROL, &[("app/pay.py", "def pay(a, b):\n    return a / b if b else 0\n")], "fix");
    deploy(&app, &p, &v3, "v3").await;
    settle().await;
    error(&app, &p, 3, "v3", "ZeroDivisionError").await;
    error(&app, &p, 4, "v3", "KeyError").await;
    settle().await;

    for issue in fake.issues() {
        assert_eq!(issue["state"], json!("open"), "{issue}");
        let comments = issue["comments_list"].as_array().expect("comments").clone();
        assert_eq!(comments.len(), 1, "exactly one regression comment: {comments:?}");
        assert!(comments[0].as_str().is_some_and(|c| c.contains("Regressed in v3")), "{comments:?}");
    }
    let mentioned =
        fake.issues().iter().filter(|i| i["comments_list"][0].as_str().is_some_and(|c| c.contains("@carol"))).count();
    assert!(mentioned >= 1, "the owner GitHub would not assign is mentioned");
    let jobs = db.store.job_states().await.expect("jobs");
    assert!(jobs.iter().all(|j| j.status == JobStatus::Done), "{jobs:?}");
    for j in jobs.iter().filter(|j| j.kind == "github_issue") {
        assert_eq!((j.attempts, j.last_error.as_deref()), (1, None), "waiting is not an attempt: {j:?}");
    }
    let requests = fake.lock().requests.clone();
    let writes: Vec<&(String, String, i64)> = requests.iter().filter(|(m, _, _)| m != "GET").collect();
    // 2 creates, 2 comments, 2 refused reassigning reopens, 2 plain reopens and 2 × 2 label writes (regression on,
    // new off), and no issue or comment look-ups: nothing was ever sent without its answer, so there is nothing to look for, and a job
    // that waited for a slot knows from its recorded steps what it did already.
    assert_eq!(writes.len(), 12, "{writes:?}");
    for issue in fake.issues() {
        let labels: Vec<&str> =
            issue["labels"].as_array().expect("labels").iter().filter_map(|l| l["name"].as_str()).collect();
        assert!(labels.contains(&"regression") && !labels.contains(&"new"), "relabelled: {labels:?}");
    }
    // The only reads: which pull request each deployed commit (v2's, v3's) came from, asked once each for the
    // release reports.
    let reads: Vec<&(String, String, i64)> = requests.iter().filter(|(m, _, _)| m == "GET").collect();
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(reads.iter().all(|(_, path, _)| path.ends_with("/pulls")), "{reads:?}");
    let times: Vec<i64> = writes.iter().map(|(_, _, t)| *t).collect();
    assert!(times.windows(2).all(|w| w[1] - w[0] >= 1_000), "writes at least a second apart: {times:?}");
    app.stop().await;
}

#[tokio::test]
async fn an_issue_shows_the_errors_text_as_written_without_mentions_links_or_html() {
    let (fake, api) = FakeGitHub::start(Arc::new(AtomicI64::new(0))).await;
    let db = sqlite_db().await;
    let app = TestApp::spawn_github(db.store.clone(), &api, 0).await;
    let (_repo, p) = deployed_to_v2(&app).await;
    // The exception type is whatever the application (or someone sending to its DSN) says it is.
    error(&app, &p, 1, "v2", "Err@octocat<img src=x onerror=alert(1)>#1[x](https://evil.example)").await;
    app.drain().await;
    let issues = fake.issues();
    assert_eq!(issues.len(), 1);
    let body = issues[0]["body"].as_str().expect("body");
    let first = body.lines().next().expect("a first line");
    assert!(
        first.starts_with(r"**Err\@octocat\<img src=x onerror=alert(1)\>\#1\[x\](https://evil.example): boom**"),
        "{body}"
    );
    let unescaped = |c: char| first.match_indices(c).any(|(i, _)| !first[..i].ends_with('\\'));
    assert!(!unescaped('<') && !unescaped('@') && !unescaped('#') && !unescaped('['), "{first}");
    app.stop().await;
}

#[tokio::test]
async fn resolving_ignoring_and_unresolving_in_shipwatch_close_and_reopen_the_issue_without_echo() {
    let (fake, api) = FakeGitHub::start(Arc::new(AtomicI64::new(0))).await;
    let db = sqlite_db().await;
    let app = TestApp::spawn_github(db.store.clone(), &api, 0).await;
    let (_repo, p) = deployed_to_v2(&app).await;
    error(&app, &p, 1, "v2", "ZeroDivisionError").await;
    app.drain().await;
    assert_eq!(fake.issues()[0]["state"], json!("open"));
    let gid = group(&app, &p).await["id"].as_i64().expect("group id");
    let change = |what: &'static str| {
        let (app, token) = (&app, p.token.clone());
        async move {
            let (status, g) = app.call(Method::POST, &format!("/api/v1/groups/{gid}/{what}"), Some(&token), None).await;
            assert_eq!(status, 200, "{what}: {g}");
            app.drain().await;
        }
    };

    change("resolve").await;
    assert_eq!(fake.issues()[0]["state"], json!("closed"), "resolved in shipwatch: the issue is closed");
    close_on_github(&app, 1).await; // GitHub's webhook for shipwatch's own close
    app.drain().await;
    assert_eq!(group(&app, &p).await["status"], json!("resolved"));

    change("unresolve").await;
    assert_eq!(fake.issues()[0]["state"], json!("open"), "unresolved in shipwatch: reopened");

    change("ignore").await;
    assert_eq!(fake.issues()[0]["state"], json!("closed"), "ignored in shipwatch: closed");
    let writes_before_echo = fake.writes().len();
    fake.lock().issues[0]["state"] = json!("closed");
    close_on_github(&app, 1).await;
    app.drain().await;
    assert_eq!(group(&app, &p).await["status"], json!("ignored"), "the echo does not turn ignored into resolved");
    assert_eq!(fake.writes().len(), writes_before_echo, "and writes nothing back to GitHub");
    app.stop().await;
}

/// An `issues` webhook, handled.
async fn issue_event(app: &TestApp, action: &str, number: i64, extra: Value) {
    send_issue_event(app, action, number, extra).await;
    app.drain().await;
}

#[tokio::test]
async fn assignees_and_the_ignore_label_changed_on_github_come_back_without_echo() {
    let (fake, api) = FakeGitHub::start(Arc::new(AtomicI64::new(0))).await;
    let db = sqlite_db().await;
    let app = TestApp::spawn_github(db.store.clone(), &api, 0).await;
    let (_repo, p) = deployed_to_v2(&app).await;
    error(&app, &p, 1, "v2", "ZeroDivisionError").await;
    app.drain().await;
    let g = group(&app, &p).await;
    let owner = g["assignee"].as_str().expect("assigned by blame").to_owned();
    let writes = fake.writes().len();

    // GitHub tells shipwatch about its own assignment: nothing changes.
    issue_event(&app, "assigned", 1, json!({ "assignee": { "login": owner } })).await;
    assert_eq!(group(&app, &p).await["assignee"], json!(owner));
    // Someone reassigns on GitHub (GitHub sends `assigned` for the new one, `unassigned` for the old one).
    issue_event(&app, "assigned", 1, json!({ "assignee": { "login": "octocat" } })).await;
    issue_event(&app, "unassigned", 1, json!({ "assignee": { "login": owner } })).await;
    assert_eq!(group(&app, &p).await["assignee"], json!("octocat"), "the new assignee stays");
    assert_eq!(fake.writes().len(), writes, "nothing written back for GitHub's own changes");
    // Assigned by hand in shipwatch: the issue follows (one write); GitHub's webhooks for it change nothing.
    let gid = group(&app, &p).await["id"].as_i64().expect("id");
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/groups/{gid}/assign"),
            Some(&p.token),
            Some(json!({ "assignee": "@mona" })),
        )
        .await;
    assert_eq!(status, 200);
    app.drain().await;
    assert_eq!(fake.issues()[0]["assignees"], json!(["mona"]), "the issue's assignee follows");
    assert_eq!(fake.issues()[0]["state"], json!("open"), "and its state is left alone");
    issue_event(&app, "assigned", 1, json!({ "assignee": { "login": "mona" } })).await;
    issue_event(&app, "unassigned", 1, json!({ "assignee": { "login": "octocat" } })).await;
    assert_eq!(group(&app, &p).await["assignee"], json!("mona"));
    // The `shipwatch:ignore` label ignores the group; shipwatch closes the issue; GitHub's close comes back.
    issue_event(&app, "labeled", 1, json!({ "label": { "name": "shipwatch:ignore" } })).await;
    assert_eq!(group(&app, &p).await["status"], json!("ignored"));
    assert_eq!(fake.issues()[0]["state"], json!("closed"));
    close_on_github(&app, 1).await;
    app.drain().await;
    assert_eq!(group(&app, &p).await["status"], json!("ignored"), "the echo changes nothing");
    // Taking the label off unresolves it; shipwatch reopens the issue; GitHub's reopen comes back.
    issue_event(&app, "unlabeled", 1, json!({ "label": { "name": "shipwatch:ignore" } })).await;
    assert_eq!(group(&app, &p).await["status"], json!("unresolved"));
    assert_eq!(fake.issues()[0]["state"], json!("open"));
    issue_event(&app, "reopened", 1, json!({})).await;
    // Other labels are not shipwatch's business.
    issue_event(&app, "labeled", 1, json!({ "label": { "name": "bug" } })).await;
    assert_eq!(group(&app, &p).await["status"], json!("unresolved"));
    assert_eq!(fake.writes().len() - writes, 3, "an assignment, a close, a reopen, no echo: {:?}", fake.writes());
    let (_, history) = app.call(Method::GET, &format!("/api/v1/groups/{gid}/history"), Some(&p.token), None).await;
    let texts: Vec<&str> = history.as_array().expect("history").iter().filter_map(|h| h["text"].as_str()).collect();
    assert!(texts.contains(&"assigned: to @octocat on GitHub"), "{texts:?}");
    assert!(texts.contains(&"assigned: to @mona through the API"), "{texts:?}");
    assert!(texts.contains(&"ignored: on GitHub") && texts.contains(&"unresolved: on GitHub"), "{texts:?}");
    app.stop().await;
}

/// With pull-request comments on, the pull request that brought in a new error's suspect commit gets one comment
/// listing it — created once even when GitHub's answer to the create is lost — and the same comment is edited
/// when a second error is attributed to the same pull request. Default pacing, controllable clock. The release
/// report takes the pull request's number and title from GitHub too.
#[tokio::test]
async fn a_pull_request_comment_is_created_once_and_edited_in_place_as_errors_are_attributed_to_it() {
    let t0: i64 = 1_800_000_000_000;
    let clock = Arc::new(AtomicI64::new(t0));
    let (fake, api) = FakeGitHub::start(clock.clone()).await;
    let db = sqlite_db().await;
    let app = TestApp::spawn_github(db.store.clone(), &api, 1_000).await;
    let worker = app.app.worker_with_clock({
        let clock = clock.clone();
        Arc::new(move || clock.load(Ordering::SeqCst))
    });
    let settle = || settle_within(&worker, &db.store, &clock, 120);
    // Pull request #1 (GitHub numbers pull requests and issues together).
    fake.lock().issues.push(json!({ "number": 1, "title": "Simplify payments and the cart", "body": "",
        "labels": [], "assignees": [], "state": "closed", "comments_list": [], "updated_ms": t0, "pull_request": {} }));
    let repo = TestRepo::new();
    let v1 = repo.commit(
        &ALICE,
        &[
            ("app/pay.py", "def pay(a, b):\n    return a / (b + 1)\n"),
            ("app/cart.py", "def total(items):\n    return sum(items)\n"),
        ],
        "pay and cart",
    );
    let p = project(&app, &repo).await;
    let (status, settings) = app
        .call(
            Method::PUT,
            "/api/v1/projects/web/settings",
            Some(ADMIN_TOKEN),
            Some(json!({ "pull_request_comments": true })),
        )
        .await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["pull_request_comments"], json!(true));
    deploy(&app, &p, &v1, "v1").await;
    settle().await;
    // Two commits of Bobby's pull request, squashed or not: GitHub links both to #1.
    let c1 = repo.commit(&BOBBY, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "simplify pay");
    let c2 = repo.commit(&BOBBY, &[("app/cart.py", "def total(items):\n    return sum(items) / len(items)\n")], "mean");
    let pr = vec![json!({ "number": 1, "title": "Simplify payments and the cart",
                          "html_url": "https://github.com/acme/web/pull/1", "merged_at": "2027-01-15T10:00:00Z" })];
    fake.lock().pulls.insert(c1.clone(), pr.clone());
    fake.lock().pulls.insert(c2.clone(), pr);
    deploy(&app, &p, &c2, "v2").await;
    settle().await;
    // The commits name no pull request (a rebase merge): the release report has it from GitHub, asked once per
    // commit after the range was recorded.
    let (status, report) = app.call(Method::GET, "/api/v1/deploys/2/report", Some(&p.token), None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["pull_requests"][0]["number"], json!(1), "{report}");
    assert_eq!(report["pull_requests"][0]["title"], json!("Simplify payments and the cart"), "{report}");
    assert!(report["authors"][0]["commits"].as_array().expect("commits").iter().all(|c| c["pr_number"] == json!(1)));
    // The first error: its pull-request comment is created, but GitHub's answer never arrives.
    fake.lock().comment_faults.push_back(Fault::EffectThenTimeout);
    error(&app, &p, 1, "v2", "ZeroDivisionError").await;
    settle().await;
    let comments_on_pr = || fake.issues()[0]["comments_list"].as_array().cloned().unwrap_or_default();
    let first = comments_on_pr();
    assert_eq!(first.len(), 1, "{first:?}");
    let text = first[0].as_str().expect("text").to_owned();
    assert!(text.contains("1 new error") && text.contains("ZeroDivisionError: boom"), "{text}");
    assert!(text.contains(&format!("/commit/{c1}")), "the suspect commit is linked: {text}");
    assert!(!text.contains('@'), "nobody is paged from the pull request: {text}");
    // A second error, from the other commit of the same pull request: the same comment now lists both.
    error_at(&app, &p, 2, "v2", "ZeroDivisionError in total", ("app/cart.py", "total", 2)).await;
    settle().await;
    let second = comments_on_pr();
    assert_eq!(second.len(), 1, "still one comment: {second:?}");
    let text = second[0].as_str().expect("text").to_owned();
    assert!(text.contains("2 new errors"), "{text}");
    assert!(text.contains("ZeroDivisionError: boom") && text.contains("ZeroDivisionError in total: boom"), "{text}");
    assert!(text.contains(&format!("/commit/{c2}")), "{text}");
    eprintln!("the pull request's comment:\n{text}");

    let requests = fake.lock().requests.clone();
    let count = |method: &str, path: &str| requests.iter().filter(|(m, p, _)| m == method && p == path).count();
    assert_eq!(count("POST", "/repos/acme/web/issues/1/comments"), 1, "created once: {requests:?}");
    assert_eq!(count("GET", "comments #1"), 1, "looked for once, after the lost answer: {requests:?}");
    assert_eq!(count("PATCH", "/repos/acme/web/issues/comments/1001"), 1, "edited in place: {requests:?}");
    // Each commit's pull request asked for once, by the range's look-up; the comments reused the answers.
    assert_eq!(count("GET", &format!("/repos/acme/web/commits/{c1}/pulls")), 1);
    assert_eq!(count("GET", &format!("/repos/acme/web/commits/{c2}/pulls")), 1);
    assert_eq!(fake.issues().len(), 3, "the pull request and one issue per error");
    let jobs = db.store.job_states().await.expect("jobs");
    assert!(jobs.iter().all(|j| j.status == JobStatus::Done), "{jobs:?}");
    assert_eq!(jobs.iter().filter(|j| j.kind == "github_pull_comment").count(), 2);
    let writes: Vec<i64> = requests.iter().filter(|(m, _, _)| m != "GET").map(|(_, _, t)| *t).collect();
    assert!(writes.windows(2).all(|w| w[1] - w[0] >= 1_000), "writes at least a second apart: {writes:?}");
    app.stop().await;
}
