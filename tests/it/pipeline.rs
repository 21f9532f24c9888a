//! The whole path over HTTP: deploys recorded, an SDK event arrives, the worker groups it and assigns the new group
//! by blame at the deployed commit — on SQLite and PostgreSQL.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{on_each_backend, Author, TestApp, TestRepo, ADMIN_TOKEN, ALICE, CAROL};

const BOBBY: Author = Author { name: "Bob Roe", email: "1234+bobby@users.noreply.github.com" };

fn sentry_event(event_id: &str, release: &str, ty: &str, frames: Value) -> Vec<u8> {
    let event = json!({
        "event_id": event_id, "platform": "python", "release": release, "environment": "production",
        "exception": {"values": [{"type": ty, "value": "boom", "stacktrace": {"frames": frames}}]}
    })
    .to_string();
    format!("{{}}\n{{\"type\":\"event\",\"length\":{}}}\n{event}\n", event.len()).into_bytes()
}

#[tokio::test]
async fn a_new_group_is_assigned_to_the_author_of_the_deployed_suspect_commit() {
    on_each_backend(|store, backend| async move {
        let repo = TestRepo::new();
        let c1 = repo.commit(
            &ALICE,
            &[("app/main.py", "from app.pay import pay\n\npay(1, 0)\n"), ("app/pay.py", "def pay(a, b):\n    return a / (b + 1)\n")],
            "Payments",
        );
        let app = TestApp::spawn(store.clone(), false).await;
        let (project, token) = app.project("web", &repo).await;
        let (status, _) = app.deploy(&token, json!({ "project": project, "environment": "production", "sha": c1, "version": "v1" })).await;
        assert_eq!(status, 202);
        app.drain().await;
        let bad = repo.commit(&BOBBY, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "Simplify pay");
        let c3 = repo.commit(&CAROL, &[("README.md", "shop\n")], "Readme");
        app.deploy(&token, json!({ "project": project, "environment": "production", "sha": c3, "version": "v2" })).await;
        app.drain().await;

        let (_, p) = app.call(Method::GET, "/api/v1/projects/web", Some(ADMIN_TOKEN), None).await;
        let dsn = p["dsn"].as_str().expect("dsn");
        let key = dsn.split("//").nth(1).and_then(|r| r.split('@').next()).expect("key");
        let url = format!("{}/api/{}/envelope/?sentry_key={key}", app.base, p["id"]);
        let frames = json!([
            {"filename": "app/main.py", "abs_path": "/srv/app/app/main.py", "function": "<module>", "lineno": 3, "in_app": true},
            {"filename": "app/pay.py", "abs_path": "/srv/app/app/pay.py", "function": "pay", "lineno": 2, "in_app": true}
        ]);
        let body = sentry_event(&format!("{:032x}", 1), "v2", "ZeroDivisionError", frames.clone());
        assert_eq!(app.http.post(&url).body(body).send().await.expect("sent").status().as_u16(), 200);
        // Grouped, then assigned here rather than by the worker, to read each assignment's profile: the first one
        // blames with git; the same group again is answered from the caches without one git process.
        app.app.spooler.forward_all().await.expect("forwarded");
        assert_eq!(app.app.worker().group_once().await.expect("grouped").events, 1);
        let (_, groups) = app.call(Method::GET, "/api/v1/projects/web/groups", Some(&token), None).await;
        let group_id = groups["groups"][0]["id"].as_i64().expect("group id");
        let event_row = store.group(group_id).await.expect("read").and_then(|g| g.last_event_id).expect("its event");
        let now = || chrono::Utc::now().timestamp_millis();
        let cold = app.app.assign.assign_group(group_id, event_row, true, now).await.expect("assigned");
        assert!(cold.git_processes > 0 && cold.blame_ms > 0.0, "{backend}: {cold:?}");
        let warm = app.app.assign.assign_group(group_id, event_row, true, now).await.expect("assigned");
        assert_eq!(warm.git_processes, 0, "{backend}: {warm:?}");
        // Both in /metrics: each step timed twice, and the cold assignment's processes.
        let (_, metrics) = app.call(Method::GET, "/metrics", None, None).await;
        let metrics = metrics.as_str().expect("text");
        for line in [
            r#"shipwatch_assign_step_duration_seconds_count{step="blame"} 2"#.to_owned(),
            format!("shipwatch_assign_git_processes_total {}", cold.git_processes),
        ] {
            assert!(metrics.lines().any(|l| l == line), "{backend}: {line} missing from {metrics}");
        }
        app.drain().await;

        let (_, groups) = app.call(Method::GET, "/api/v1/projects/web/groups", Some(&token), None).await;
        let group = &groups["groups"][0];
        assert_eq!(group["assignee"], json!("bobby"), "{backend}: {groups}");
        let (_, detail) = app.call(Method::GET, &format!("/api/v1/groups/{}", group["id"]), Some(&token), None).await;
        let a = &detail["assignment"];
        assert_eq!(a["status"], json!("assigned"), "{backend}: {detail}");
        assert_eq!((a["deploy"]["version"].clone(), a["deploy"]["guessed"].clone()), (json!("v2"), json!(false)));
        assert_eq!(a["deploy"]["sha"], json!(c3));
        assert_eq!(a["suspect"]["commit"], json!(bad));
        assert_eq!(a["suspect"]["in_range"], json!(true));
        assert_eq!(a["frames"][1]["repo_path"], json!("app/pay.py"));
        let explanation = a["explanation"].as_str().expect("explanation");
        assert!(
            explanation.starts_with("app/pay.py:2 `return a / b` last changed in")
                && explanation.contains("by Bob Roe")
                && explanation.ends_with("inside deploy v2 to production → @bobby"),
            "{explanation}"
        );
        assert_eq!((a["owner"]["kind"].clone(), a["owner"]["github_login"].clone()), (json!("author"), json!("bobby")));

        // An unknown release: the environment's latest deploy, flagged as a guess.
        let body = sentry_event(&format!("{:032x}", 2), "not-a-release", "KeyError", frames);
        assert_eq!(app.http.post(&url).body(body).send().await.expect("sent").status().as_u16(), 200);
        app.drain().await;
        let (_, groups) = app.call(Method::GET, "/api/v1/projects/web/groups", Some(&token), None).await;
        let key_error = groups["groups"].as_array().expect("groups").iter().find(|g| g["title"] == json!("KeyError: boom")).expect("group").clone();
        let (_, detail) = app.call(Method::GET, &format!("/api/v1/groups/{}", key_error["id"]), Some(&token), None).await;
        assert_eq!(detail["assignment"]["deploy"]["guessed"], json!(true), "{backend}: {detail}");
        assert_eq!(detail["assignment"]["deploy"]["version"], json!("v2"));
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn settings_drive_assignment_and_a_project_without_deploys_says_so() {
    let db = crate::support::sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let p = app.sentry_project("nodeploys").await;
    let put = |body: Value| app.call(Method::PUT, "/api/v1/projects/nodeploys/settings", Some(ADMIN_TOKEN), Some(body));
    for (bad, field) in [
        (json!({ "logins": { "not-an-email": "x" } }), "logins"),
        (json!({ "logins": { "a@b.c": "bad login!" } }), "logins"),
        (json!({ "default_assignee": "-x" }), "default_assignee"),
        (json!({ "code_mappings": [{ "stack_prefix": "", "repo_prefix": "x" }] }), "code_mappings[0].stack_prefix"),
        (json!({ "max_suspect_frames": 0 }), "max_suspect_frames"),
        (json!({ "labels": ["ok", ""] }), "labels"),
        (json!({ "colour": 1 }), "colour"),
    ] {
        let (status, body) = put(bad.clone()).await;
        assert_eq!((status, body["field"].as_str()), (422, Some(field)), "{bad} → {body}");
    }
    let (status, _) =
        app.call(Method::PUT, "/api/v1/projects/nodeploys/settings", Some(&p.token), Some(json!({}))).await;
    assert_eq!(status, 401, "settings are an admin's");
    let settings = json!({ "default_assignee": "@oncall", "logins": { "alice@example.com": "alice" },
                           "code_mappings": [{ "stack_prefix": "/srv/app/", "repo_prefix": "" }], "bot_patterns": ["deploy-bot"],
                           "labels": ["bug", "from-shipwatch"] });
    let (status, saved) = put(settings).await;
    assert_eq!(status, 200, "{saved}");
    let (_, read) = app.call(Method::GET, "/api/v1/projects/nodeploys/settings", Some(&p.token), None).await;
    assert_eq!(read, saved);

    let url = format!("{}/api/{}/envelope/?sentry_key={}", app.base, p.id, p.key);
    let body =
        sentry_event(&format!("{:032x}", 9), "v9", "ValueError", json!([{ "abs_path": "/srv/app/x.py", "lineno": 1 }]));
    assert_eq!(app.http.post(&url).body(body).send().await.expect("sent").status().as_u16(), 200);
    app.drain().await;
    let (_, groups) = app.call(Method::GET, &format!("/api/v1/projects/{}/groups", p.id), Some(&p.token), None).await;
    assert_eq!(groups["groups"][0]["assignee"], json!("oncall"), "the default assignee when nothing can be blamed");
    let (_, detail) =
        app.call(Method::GET, &format!("/api/v1/groups/{}", groups["groups"][0]["id"]), Some(&p.token), None).await;
    assert_eq!(detail["assignment"]["status"], json!("no_deploy"));
    assert!(detail["assignment"]["explanation"]
        .as_str()
        .is_some_and(|e| e.contains("no deploy recorded for release v9")));
    app.stop().await;
}

/// Jobs run side by side: an error from v2 can be assigned while v2's range is still being computed. The assignment
/// waits for that deploy (not an attempt) instead of assigning at v1 as a guess.
#[tokio::test]
async fn an_assignment_waits_for_its_releases_range_instead_of_guessing() {
    let db = crate::support::sqlite_db().await;
    let repo = TestRepo::new();
    let c1 = repo.commit(&ALICE, &[("app/pay.py", "def pay(a, b):\n    return a / (b + 1)\n")], "Payments");
    let app = TestApp::spawn(db.store.clone(), false).await;
    let (project, token) = app.project("web", &repo).await;
    app.deploy(&token, json!({ "project": project, "environment": "production", "sha": c1, "version": "v1" })).await;
    app.drain().await;
    let c2 = repo.commit(&BOBBY, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "Simplify pay");
    app.deploy(&token, json!({ "project": project, "environment": "production", "sha": c2, "version": "v2" })).await;
    // Another worker has claimed v2's range job and is still computing it.
    let now = chrono::Utc::now().timestamp_millis();
    let held = db.store.claim_job(now, 60_000).await.expect("claim").expect("the range job");
    assert_eq!(held.kind, "deploy_range");

    let (_, p) = app.call(Method::GET, "/api/v1/projects/web", Some(ADMIN_TOKEN), None).await;
    let key = p["dsn"].as_str().and_then(|d| d.split("//").nth(1)).and_then(|r| r.split('@').next()).expect("key");
    let url = format!("{}/api/{}/envelope/?sentry_key={key}", app.base, p["id"]);
    let frames = json!([{"abs_path": "/srv/app/app/pay.py", "function": "pay", "lineno": 2, "in_app": true}]);
    let body = sentry_event(&format!("{:032x}", 1), "v2", "ZeroDivisionError", frames);
    assert_eq!(app.http.post(&url).body(body).send().await.expect("sent").status().as_u16(), 200);
    app.app.spooler.forward_all().await.expect("forwarded");
    let worker = app.app.worker();
    assert!(worker.run_once().await.expect("runs"), "grouped, and the assignment tried");
    let states = db.store.job_states().await.expect("jobs");
    let assign = states.iter().find(|j| j.kind == "assign_group").expect("an assignment job");
    assert_eq!((assign.attempts, assign.last_error.as_deref()), (0, None), "waiting is not an attempt: {assign:?}");
    let (_, groups) = app.call(Method::GET, "/api/v1/projects/web/groups", Some(&token), None).await;
    assert_eq!(groups["groups"][0]["assignee"], json!(null), "not assigned yet: {groups}");

    // The range is done (the held job's lease lapses and it is redone); the assignment then uses v2 itself.
    let later = now + 120_000;
    let worker = app.app.worker_with_clock(std::sync::Arc::new(move || later));
    while worker.run_once().await.expect("runs") {}
    let (_, groups) = app.call(Method::GET, "/api/v1/projects/web/groups", Some(&token), None).await;
    let id = groups["groups"][0]["id"].clone();
    let (_, detail) = app.call(Method::GET, &format!("/api/v1/groups/{id}"), Some(&token), None).await;
    let a = &detail["assignment"];
    assert_eq!(
        (a["deploy"]["version"].clone(), a["deploy"]["guessed"].clone()),
        (json!("v2"), json!(false)),
        "{detail}"
    );
    assert_eq!(groups["groups"][0]["assignee"], json!("bobby"));
    app.stop().await;
}
