//! Regressions by git ancestry, group status changes, and GitHub webhooks in (signed, stored once, handled).

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::support::{on_each_backend, TestApp, TestRepo, ADMIN_TOKEN, ALICE, BOB, CAROL, WEBHOOK_SECRET};

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn webhook(
    app: &TestApp,
    event: &str,
    delivery: &str,
    payload: &Value,
    signature: Option<String>,
) -> (u16, Value) {
    let body = payload.to_string();
    let mut req = app
        .http
        .post(format!("{}/webhooks/github", app.base))
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .body(body.clone());
    if let Some(sig) = signature.or_else(|| Some(sign(body.as_bytes()))).filter(|s| !s.is_empty()) {
        req = req.header("x-hub-signature-256", sig);
    }
    let resp = req.send().await.expect("sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

struct Shop {
    id: i64,
    key: String,
    token: String,
    url: String,
}

async fn shop(app: &TestApp, repo: &TestRepo) -> Shop {
    let (_, token) = app.project("web", repo).await;
    let (_, p) = app.call(Method::GET, "/api/v1/projects/web", Some(ADMIN_TOKEN), None).await;
    let key =
        p["dsn"].as_str().and_then(|d| d.split("//").nth(1)).and_then(|r| r.split('@').next()).expect("key").to_owned();
    let url = format!("{}/api/{}/envelope/?sentry_key={key}", app.base, p["id"]);
    Shop { id: p["id"].as_i64().expect("id"), key, token, url }
}

async fn send(app: &TestApp, shop: &Shop, n: u32, release: &str) {
    let event = json!({
        "event_id": format!("{n:032x}"), "release": release, "environment": "production", "platform": "python",
        "exception": {"values": [{"type": "ZeroDivisionError", "value": "division by zero", "stacktrace": {"frames": [
            {"abs_path": "/srv/app/app/pay.py", "function": "pay", "lineno": 2, "in_app": true}]}}]}
    })
    .to_string();
    let body = format!("{{}}\n{{\"type\":\"event\"}}\n{event}\n");
    assert_eq!(app.http.post(&shop.url).body(body).send().await.expect("sent").status().as_u16(), 200);
    assert!(!shop.key.is_empty());
    app.drain().await;
}

async fn the_group(app: &TestApp, shop: &Shop) -> Value {
    let (_, groups) = app.call(Method::GET, "/api/v1/projects/web/groups", Some(&shop.token), None).await;
    assert_eq!(groups["groups"].as_array().map(Vec::len), Some(1), "{groups}");
    groups["groups"][0].clone()
}

#[tokio::test]
async fn resolved_groups_reopen_only_for_builds_that_contain_the_resolution() {
    on_each_backend(|store, backend| async move {
        let repo = TestRepo::new();
        let v1 = repo.commit(&ALICE, &[("app/pay.py", "def pay(a, b):\n    return a / (b or 1)\n")], "v1");
        let app = TestApp::spawn(store, false).await;
        let shop = shop(&app, &repo).await;
        let deploy = |sha: String, version: &'static str| {
            let (app, token) = (&app, shop.token.clone());
            async move {
                let (status, _) = app
                    .deploy(
                        &token,
                        json!({ "project": "web", "environment": "production", "sha": sha, "version": version }),
                    )
                    .await;
                assert_eq!(status, 202);
                app.drain().await;
            }
        };
        deploy(v1.clone(), "v1").await;
        let v2 = repo.commit(&BOB, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "break pay");
        deploy(v2.clone(), "v2").await;
        send(&app, &shop, 1, "v2").await;
        let g = the_group(&app, &shop).await;
        assert_eq!(
            (g["new_in_release"].clone(), g["introduced_by"].clone()),
            (json!("v2"), json!("v2")),
            "{backend}: {g}"
        );

        // Resolved now: the baseline in production is v2's commit.
        let (status, resolved) =
            app.call(Method::POST, &format!("/api/v1/groups/{}/resolve", g["id"]), Some(&shop.token), None).await;
        assert_eq!((status, resolved["status"].clone()), (200, json!("resolved")), "{resolved}");
        let (_, detail) = app.call(Method::GET, &format!("/api/v1/groups/{}", g["id"]), Some(&shop.token), None).await;
        assert_eq!(detail["resolutions"], json!({ "production": v2 }));

        // The old build v1 still runs somewhere: its event does not reopen the group.
        send(&app, &shop, 2, "v1").await;
        assert_eq!(the_group(&app, &shop).await["status"], json!("resolved"), "{backend}: old build");

        // v3 contains the resolution: the same error from it is a regression.
        let v3 = repo.commit(&CAROL, &[("README.md", "v3\n")], "v3");
        deploy(v3, "v3").await;
        send(&app, &shop, 3, "v3").await;
        let g = the_group(&app, &shop).await;
        assert_eq!(
            (g["status"].clone(), g["regressed_in"].clone(), g["times_regressed"].clone()),
            (json!("unresolved"), json!("v3"), json!(1)),
            "{backend}: {g}"
        );
        assert_eq!(g["count"], json!(3));

        // Resolved in the next release: nothing changes until a deploy completes, then the baseline is that deploy.
        let (_, pending) = app
            .call(
                Method::POST,
                &format!("/api/v1/groups/{}/resolve", g["id"]),
                Some(&shop.token),
                Some(json!({ "in_next_release": true })),
            )
            .await;
        assert_eq!(pending["status"], json!("resolved_in_next_release"));
        send(&app, &shop, 4, "v3").await;
        assert_eq!(
            the_group(&app, &shop).await["status"],
            json!("resolved_in_next_release"),
            "events wait for the release"
        );
        let v4 = repo.commit(&ALICE, &[("app/pay.py", "def pay(a, b):\n    return a / b if b else 0\n")], "fix pay");
        deploy(v4.clone(), "v4").await;
        let g = the_group(&app, &shop).await;
        assert_eq!(g["status"], json!("resolved"), "{backend}: {g}");
        let (_, detail) = app.call(Method::GET, &format!("/api/v1/groups/{}", g["id"]), Some(&shop.token), None).await;
        assert_eq!(detail["resolutions"]["production"], json!(v4));

        // Ignored groups never reopen; unresolve and bad input.
        let (_, ignored) =
            app.call(Method::POST, &format!("/api/v1/groups/{}/ignore", g["id"]), Some(&shop.token), None).await;
        assert_eq!(ignored["status"], json!("ignored"));
        send(&app, &shop, 5, "v4").await;
        assert_eq!(the_group(&app, &shop).await["status"], json!("ignored"));
        let (_, un) =
            app.call(Method::POST, &format!("/api/v1/groups/{}/unresolve", g["id"]), Some(&shop.token), None).await;
        assert_eq!(un["status"], json!("unresolved"));
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/api/v1/groups/{}/resolve", g["id"]),
                Some(&shop.token),
                Some(json!({ "fixed_in_commit": "abc" })),
            )
            .await;
        assert_eq!((status, body["field"].clone()), (422, json!("fixed_in_commit")));
        // An abbreviation the repository knows (as `git log --oneline` prints it) names the commit in full; one it
        // does not know is refused, saying so.
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/api/v1/groups/{}/resolve", g["id"]),
                Some(&shop.token),
                Some(json!({ "fixed_in_commit": &v4[..7] })),
            )
            .await;
        assert_eq!((status, body["fixed_in_commit"].clone()), (200, json!(v4)), "{backend}: {body}");
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/api/v1/groups/{}/resolve", g["id"]),
                Some(&shop.token),
                Some(json!({ "fixed_in_commit": "0000000" })),
            )
            .await;
        assert_eq!((status, body["field"].clone()), (422, json!("fixed_in_commit")), "{backend}: {body}");
        assert!(body["detail"].as_str().is_some_and(|e| e.contains("names no single commit")), "{body}");
        let (status, _) =
            app.call(Method::POST, &format!("/api/v1/groups/{}/resolve", g["id"]), Some("wrong"), None).await;
        assert_eq!(status, 401);
        let (status, _) = app.call(Method::POST, "/api/v1/groups/999/resolve", Some(&shop.token), None).await;
        assert_eq!(status, 404);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn webhooks_are_verified_stored_once_and_handled() {
    on_each_backend(|store, backend| async move {
        let repo = TestRepo::new();
        let c1 = repo.commit(&ALICE, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "one");
        let app = TestApp::spawn(store.clone(), false).await;
        let shop = shop(&app, &repo).await;
        let jobs = || async { store.job_states().await.expect("jobs").len() };
        let before = jobs().await;

        let ping = json!({ "zen": "Keep it logically awesome.", "repository": { "full_name": "acme/web" } });
        let (status, _) = webhook(&app, "ping", "d-bad", &ping, Some("sha256=00".into())).await;
        assert_eq!(status, 401, "{backend}: wrong signature");
        let (status, body) = webhook(&app, "ping", "d-none", &ping, Some(String::new())).await;
        assert_eq!(status, 401, "missing signature: {body}");
        assert_eq!(jobs().await, before, "nothing stored for a bad signature");

        let (status, body) = webhook(&app, "ping", "d-1", &ping, None).await;
        assert_eq!((status, body["duplicate"].clone()), (202, json!(false)));
        let (status, body) = webhook(&app, "ping", "d-1", &ping, None).await;
        assert_eq!((status, body["duplicate"].clone()), (202, json!(true)), "a redelivery is acknowledged");
        assert_eq!(jobs().await, before + 1, "and not processed twice");
        let (status, _) = webhook(&app, "star", "d-2", &ping, None).await;
        assert_eq!(status, 202, "unknown events are acknowledged");
        app.drain().await;

        // deployment_status success records a deploy, as the Action would.
        let deployment = json!({
            "action": "created", "repository": { "full_name": "acme/web" },
            "deployment": { "sha": c1, "ref": "main", "environment": "staging", "payload": { "version": "s1" }, "creator": { "login": "octocat" } },
            "deployment_status": { "state": "success", "creator": { "login": "octocat" }, "target_url": "https://ci.example.com/run/1", "created_at": "2026-11-22T10:00:00Z" }
        });
        let (status, _) = webhook(&app, "deployment_status", "d-3", &deployment, None).await;
        assert_eq!(status, 202);
        let mut failed = deployment.clone();
        failed["deployment_status"]["state"] = json!("failure");
        webhook(&app, "deployment_status", "d-4", &failed, None).await;
        app.drain().await;
        let (_, deploys) = app.call(Method::GET, "/api/v1/projects/web/deploys", Some(&shop.token), None).await;
        let list = deploys["deploys"].as_array().expect("deploys");
        assert_eq!(list.len(), 1, "{backend}: only the successful status records a deploy: {deploys}");
        assert_eq!((list[0]["version"].clone(), list[0]["environment"].clone(), list[0]["deployer"].clone()), (json!("s1"), json!("staging"), json!("octocat")));
        assert_eq!(list[0]["status"], json!("ready"));

        // push fetches the mirror.
        let c2 = repo.commit(&BOB, &[("b.txt", "b\n")], "two");
        let push = json!({ "ref": "refs/heads/main", "after": c2, "repository": { "full_name": "acme/web" } });
        webhook(&app, "push", "d-5", &push, None).await;
        app.drain().await;
        let mirror = app.data.path().join("mirrors").join(format!("{}.git", shop.id));
        let has = std::process::Command::new("git").arg("-C").arg(&mirror).args(["cat-file", "-e", &c2]).status().expect("git");
        assert!(has.success(), "{backend}: the push was fetched into {}", mirror.display());

        // issues closed/reopened resolve and unresolve the linked group.
        send(&app, &shop, 1, "s1").await;
        let g = the_group(&app, &shop).await;
        sqlx_link_issue(&store, g["id"].as_i64().expect("id"), 42).await;
        let issue = |action: &str| json!({ "action": action, "issue": { "number": 42 }, "repository": { "full_name": "acme/web" } });
        webhook(&app, "issues", "d-6", &issue("closed"), None).await;
        app.drain().await;
        assert_eq!(the_group(&app, &shop).await["status"], json!("resolved"), "{backend}");
        webhook(&app, "issues", "d-7", &issue("reopened"), None).await;
        app.drain().await;
        assert_eq!(the_group(&app, &shop).await["status"], json!("unresolved"));
        let other = json!({ "action": "closed", "issue": { "number": 7 }, "repository": { "full_name": "acme/web" } });
        webhook(&app, "issues", "d-8", &other, None).await;
        app.drain().await;
        assert_eq!(the_group(&app, &shop).await["status"], json!("unresolved"), "an issue shipwatch does not know changes nothing");
        let dead: Vec<_> = store.job_states().await.expect("jobs").into_iter().filter(|j| j.status != shipwatch::store::JobStatus::Done).collect();
        assert!(dead.is_empty(), "{backend}: every job done: {dead:?}");
        app.stop().await;
    })
    .await;
}

/// Links a group to a GitHub issue number, as the write-back will when it creates one.
async fn sqlx_link_issue(store: &shipwatch::store::DynStore, group: i64, issue: i64) {
    store.set_github_issue(group, issue).await.expect("linked");
}
