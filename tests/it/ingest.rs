//! Intake as a client sees it: retried deliveries, every kind of bad input, quotas, CORS, the native endpoint with
//! structured frames and pasted traces, and filtering groups.

use reqwest::Method;
use serde_json::{json, Value};
use std::io::Write as _;

use crate::support::{on_each_backend, sqlite_db, TestApp};

fn envelope(event: &Value) -> Vec<u8> {
    let payload = event.to_string();
    format!(
        "{{\"event_id\":\"{}\"}}\n{{\"type\":\"event\",\"length\":{}}}\n{payload}\n",
        event["event_id"].as_str().unwrap_or_default(),
        payload.len()
    )
    .into_bytes()
}

fn python_event(event_id: &str, release: &str, environment: &str, function: &str) -> Value {
    json!({
        "event_id": event_id, "platform": "python", "release": release, "environment": environment,
        "exception": {"values": [{"type": "ZeroDivisionError", "value": "division by zero",
            "stacktrace": {"frames": [
                {"filename": "app.py", "abs_path": "/srv/app.py", "function": "main", "lineno": 3, "in_app": true},
                {"filename": "app.py", "abs_path": "/srv/app.py", "function": function, "lineno": 9, "in_app": true}
            ]}}]}
    })
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("write");
    e.finish().expect("finish")
}

#[tokio::test]
async fn ten_concurrent_sends_of_one_event_store_it_once() {
    on_each_backend(|store, backend| async move {
        let app = TestApp::spawn(store.clone(), false).await;
        let p = app.sentry_project("web").await;
        let event_id = "0123456789abcdef0123456789abcdef";
        let body = gzip(&envelope(&python_event(event_id, "v1", "production", "divide")));
        let url = format!("{}/api/{}/envelope/?sentry_key={}", app.base, p.id, p.key);
        let sends = (0..10).map(|_| {
            let (http, url, body) = (app.http.clone(), url.clone(), body.clone());
            tokio::spawn(async move { http.post(url).header("content-encoding", "gzip").body(body).send().await })
        });
        for send in sends {
            let resp = send.await.expect("task").expect("sent");
            assert_eq!(resp.status().as_u16(), 200, "{backend}");
            assert_eq!(resp.json::<Value>().await.expect("json"), json!({ "id": event_id }));
        }
        assert_eq!(store.event_count(p.id).await.expect("count"), 1, "{backend}: stored once");
        app.drain().await;
        let (_, groups) =
            app.call(Method::GET, &format!("/api/v1/projects/{}/groups", p.id), Some(&p.token), None).await;
        assert_eq!(groups["groups"].as_array().map(Vec::len), Some(1));
        assert_eq!(groups["groups"][0]["count"], json!(1), "{backend}: counted once");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bad_intake_requests_get_the_right_status_and_a_reason() {
    let db = sqlite_db().await;
    let store = db.store.clone();
    let app = TestApp::spawn(store.clone(), false).await;
    let p = app.sentry_project("web").await;
    let good = envelope(&python_event("0123456789abcdef0123456789abcdef", "v1", "production", "divide"));
    let url = |q: &str| format!("{}/api/{}/envelope/{q}", app.base, p.id);
    let auth = format!("Sentry sentry_key={}, sentry_version=7", p.key);
    type Case = (&'static str, String, Vec<(&'static str, String)>, Vec<u8>, u16, &'static str);
    let cases: Vec<Case> = vec![
        ("no key", url(""), vec![], good.clone(), 403, "missing sentry_key"),
        ("wrong key", url("?sentry_key=nope"), vec![], good.clone(), 403, "invalid sentry_key"),
        (
            "wrong project",
            format!("{}/api/999/envelope/?sentry_key={}", app.base, p.key),
            vec![],
            good.clone(),
            403,
            "invalid sentry_key",
        ),
        (
            "non-numeric project",
            format!("{}/api/web/envelope/?sentry_key={}", app.base, p.key),
            vec![],
            good.clone(),
            403,
            "invalid sentry_key",
        ),
        (
            "header key, wrong",
            url(""),
            vec![("x-sentry-auth", "Sentry sentry_key=bad".into())],
            good.clone(),
            403,
            "invalid",
        ),
        ("empty body", url(""), vec![("x-sentry-auth", auth.clone())], vec![], 400, "empty envelope"),
        (
            "not an envelope",
            url(""),
            vec![("x-sentry-auth", auth.clone())],
            b"hello".to_vec(),
            400,
            "envelope header is not valid JSON",
        ),
        (
            "item header not JSON",
            url(""),
            vec![("x-sentry-auth", auth.clone())],
            b"{}\nnope\n".to_vec(),
            400,
            "item header",
        ),
        (
            "item without type",
            url(""),
            vec![("x-sentry-auth", auth.clone())],
            b"{}\n{\"length\":2}\n{}\n".to_vec(),
            400,
            "no `type`",
        ),
        (
            "event not JSON",
            url(""),
            vec![("x-sentry-auth", auth.clone())],
            b"{}\n{\"type\":\"event\"}\n{oops\n".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "event not an object",
            url(""),
            vec![("x-sentry-auth", auth.clone())],
            b"{}\n{\"type\":\"event\"}\n[1]\n".to_vec(),
            400,
            "not a JSON object",
        ),
        (
            "bad event id",
            url(""),
            vec![("x-sentry-auth", auth.clone())],
            b"{}\n{\"type\":\"event\"}\n{\"event_id\":\"zz\"}\n".to_vec(),
            400,
            "not a UUID",
        ),
        (
            "short item",
            url(""),
            vec![("x-sentry-auth", auth.clone())],
            b"{}\n{\"type\":\"event\",\"length\":99}\n{}\n".to_vec(),
            400,
            "shorter",
        ),
        (
            "gzip that is not",
            url(""),
            vec![("x-sentry-auth", auth.clone()), ("content-encoding", "gzip".into())],
            good.clone(),
            400,
            "could not be decoded",
        ),
        (
            "unknown encoding",
            url(""),
            vec![("x-sentry-auth", auth.clone()), ("content-encoding", "lzma".into())],
            good.clone(),
            400,
            "unsupported Content-Encoding",
        ),
        (
            "event over 1 MiB",
            url(""),
            vec![("x-sentry-auth", auth.clone())],
            format!("{{}}\n{{\"type\":\"event\",\"length\":{}}}\n", 2 << 20).into_bytes(),
            413,
            "larger than 1 MiB",
        ),
        (
            "body over 20 MiB",
            url(""),
            vec![("x-sentry-auth", auth.clone())],
            vec![b' '; 21 << 20],
            413,
            "larger than 20 MiB",
        ),
    ];
    for (what, url, headers, body, status, detail) in cases {
        let mut req = app.http.post(&url).body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.expect("sent");
        assert_eq!(resp.status().as_u16(), status, "{what}");
        let answer: Value = resp.json().await.expect("json error body");
        let got = answer["detail"].as_str().unwrap_or_default();
        assert!(got.contains(detail), "{what}: `{detail}` not in `{got}`");
    }
    assert_eq!(store.event_count(p.id).await.expect("count"), 0, "nothing was stored");
    // The store endpoint and a DSN in the envelope header authenticate too.
    let event = python_event("11111111111111111111111111111111", "v1", "production", "divide");
    let resp = app
        .http
        .post(format!("{}/api/{}/store/", app.base, p.id))
        .header("x-sentry-auth", &auth)
        .body(event.to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    let with_dsn = format!(
        "{{\"dsn\":\"{}\"}}\n{{\"type\":\"event\"}}\n{}\n",
        p.dsn,
        python_event("22222222222222222222222222222222", "v1", "p", "f")
    );
    let resp = app.http.post(url("")).body(with_dsn).send().await.expect("sent");
    assert_eq!(resp.status().as_u16(), 200, "dsn in the envelope header");
    app.drain().await;
    assert_eq!(store.event_count(p.id).await.expect("count"), 2);
    app.stop().await;
}

#[tokio::test]
async fn over_quota_answers_429_with_retry_after_and_sentry_rate_limits() {
    let db = sqlite_db().await;
    let app = TestApp::spawn_with(db.store.clone(), false, 2).await;
    let p = app.sentry_project("web").await;
    let url = format!("{}/api/{}/envelope/?sentry_key={}", app.base, p.id, p.key);
    let mut statuses = Vec::new();
    let mut limited = None;
    for i in 0..3 {
        let body = envelope(&python_event(&format!("{i:032x}"), "v1", "production", "divide"));
        let resp = app.http.post(&url).body(body).send().await.expect("sent");
        statuses.push(resp.status().as_u16());
        if resp.status().as_u16() == 429 {
            limited = Some(resp);
        }
    }
    let resp = limited.unwrap_or_else(|| panic!("no 429 in {statuses:?}"));
    let retry: u64 = resp.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(resp.headers()["x-sentry-rate-limits"], format!("{retry}:error:project").as_str());
    let body: Value = resp.json().await.expect("json");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("2 events per minute")), "{body}");
    // Sessions and client reports are not events and do not count against the quota.
    let session = b"{}\n{\"type\":\"session\"}\n{\"sid\":\"x\"}\n".to_vec();
    assert_eq!(app.http.post(&url).body(session).send().await.expect("sent").status().as_u16(), 200);
    app.stop().await;
}

#[tokio::test]
async fn browsers_may_post_from_any_origin() {
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let p = app.sentry_project("web").await;
    let resp = app
        .http
        .request(Method::OPTIONS, format!("{}/api/{}/envelope/", app.base, p.id))
        .header("origin", "https://shop.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("sent");
    assert!(resp.status().is_success());
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    app.stop().await;
}

#[tokio::test]
async fn native_events_with_frames_or_a_pasted_trace() {
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let p = app.sentry_project("web").await;
    let path = format!("/api/v1/projects/{}/events", p.id);
    let trace = "Traceback (most recent call last):\n  File \"/srv/app/pay.py\", line 12, in charge\n    total = a / b\nZeroDivisionError: division by zero\n";
    let (status, body) = app
        .call(
            Method::POST,
            &path,
            Some(&p.key),
            Some(json!({ "release": "v2", "environment": "staging", "stacktrace": trace })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"].as_str().map(str::len), Some(32));
    let structured = json!({
        "event_id": "a1a1a1a1-a1a1-a1a1-a1a1-a1a1a1a1a1a1", "release": "v2",
        "exception": {"type": "CardDeclined", "value": "insufficient funds"},
        "frames": [{"path": "src/main.go", "line": 10, "function": "main"}, {"path": "src/pay.go", "line": 42, "function": "Charge", "source": "return err"}]
    });
    let (status, body) = app.call(Method::POST, &path, Some(&p.key), Some(structured)).await;
    assert_eq!((status, body), (200, json!({ "id": "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1" })));
    for (bad, field_or_status) in [
        (json!({ "stacktrace": "just some words" }), "stacktrace"),
        (json!({ "release": "v1" }), "body"),
        (json!({ "message": "m", "event_id": "xyz" }), "event_id"),
        (json!({ "message": "m", "timestamp": "yesterday" }), "timestamp"),
        (json!({ "message": "m", "colour": 1 }), "colour"),
        (json!({ "message": "m", "frames": [{ "line": "ten" }] }), "frames[0].line"),
        // What the deploy API refuses, intake refuses too: the two must always match up.
        (json!({ "message": "m", "environment": "../../etc\nX-Evil: 1" }), "environment"),
        (json!({ "message": "m", "release": "../../etc\nX-Evil: 1" }), "release"),
        (json!({ "message": "m", "release": "latest" }), "release"),
    ] {
        let (status, body) = app.call(Method::POST, &path, Some(&p.key), Some(bad.clone())).await;
        assert_eq!((status, body["field"].as_str()), (422, Some(field_or_status)), "{bad} → {body}");
    }
    let (status, body) = app.call(Method::POST, &path, Some(&p.key), Some(json!({ "stacktrace": "nope" }))).await;
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("unrecognised stack trace")), "{status} {body}");
    let (status, _) = app.call(Method::POST, &path, Some("wrong"), Some(json!({ "message": "m" }))).await;
    assert_eq!(status, 403);
    let (status, _) =
        app.call(Method::POST, "/api/v1/projects/nope/events", Some(&p.key), Some(json!({ "message": "m" }))).await;
    assert_eq!(status, 404);

    app.drain().await;
    let (_, groups) = app.call(Method::GET, &format!("/api/v1/projects/{}/groups", p.id), Some(&p.token), None).await;
    let groups = groups["groups"].as_array().expect("groups").clone();
    assert_eq!(groups.len(), 2);
    let pasted =
        groups.iter().find(|g| g["title"] == json!("ZeroDivisionError: division by zero")).expect("pasted trace group");
    assert_eq!(pasted["culprit"], json!("charge (/srv/app/pay.py)"));
    let (_, detail) = app.call(Method::GET, &format!("/api/v1/groups/{}", pasted["id"]), Some(&p.token), None).await;
    let event = &detail["latest_event"];
    assert_eq!(event["platform"], json!("python"));
    assert_eq!(event["exceptions"][0]["frames"][0]["context_line"], json!("total = a / b"));
    let declined =
        groups.iter().find(|g| g["title"] == json!("CardDeclined: insufficient funds")).expect("structured group");
    assert_eq!(declined["culprit"], json!("Charge (src/pay.go)"), "the last frame is the crash");
    app.stop().await;
}

#[tokio::test]
async fn groups_filter_by_release_environment_and_status() {
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let p = app.sentry_project("web").await;
    let url = format!("{}/api/{}/envelope/?sentry_key={}", app.base, p.id, p.key);
    for (i, (release, env, function)) in
        [("v1", "production", "a"), ("v2", "production", "a"), ("v2", "staging", "b")].into_iter().enumerate()
    {
        let body = envelope(&python_event(&format!("{i:032x}"), release, env, function));
        assert_eq!(app.http.post(&url).body(body).send().await.expect("sent").status().as_u16(), 200);
    }
    app.drain().await;
    let list = |q: &'static str| {
        let (app, p) = (&app, &p);
        async move {
            let (status, body) =
                app.call(Method::GET, &format!("/api/v1/projects/{}/groups{q}", p.id), Some(&p.token), None).await;
            assert_eq!(status, 200, "{q}: {body}");
            body["groups"]
                .as_array()
                .expect("groups")
                .iter()
                .map(|g| g["count"].as_i64().expect("count"))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("").await.len(), 2);
    assert_eq!(list("?release=v1").await, vec![2], "the group seen in v1, with all its events");
    assert_eq!(list("?environment=staging").await, vec![1]);
    assert_eq!(list("?release=v3").await, Vec::<i64>::new());
    assert_eq!(list("?status=unresolved").await.len(), 2);
    assert_eq!(list("?status=resolved").await.len(), 0);
    let (status, body) =
        app.call(Method::GET, &format!("/api/v1/projects/{}/groups?status=gone", p.id), Some(&p.token), None).await;
    assert_eq!((status, body["field"].clone()), (422, json!("status")));
    let (status, _) = app.call(Method::GET, &format!("/api/v1/projects/{}/groups", p.id), Some(&p.key), None).await;
    assert_eq!(status, 401, "the public ingest key does not read groups");
    let (status, _) = app.call(Method::GET, "/api/v1/groups/999", Some(&p.token), None).await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// Sends `body` with `Transfer-Encoding: chunked` over a raw connection (as the Node SDK does), with the given
/// extra header lines; returns the status code.
async fn post_chunked(base: &str, path: &str, headers: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n{headers}\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(100) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    conn.write_all(&req).await.expect("write");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.expect("read");
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status line")
}

#[tokio::test]
async fn chunked_bodies_and_any_content_type_are_accepted() {
    let db = sqlite_db().await;
    let store = db.store.clone();
    let app = TestApp::spawn(db.store.clone(), false).await;
    let p = app.sentry_project("web").await;
    let path = format!("/api/{}/envelope/?sentry_key={}", p.id, p.key);
    // No item length, no trailing newline, no content type: the Node SDK's envelope.
    let node_style = format!("{{}}\n{{\"type\":\"event\"}}\n{}", python_event(&format!("{:032x}", 1), "v1", "p", "f"));
    assert_eq!(post_chunked(&app.base, &path, "", node_style.as_bytes()).await, 200);
    let gz = gzip(&envelope(&python_event(&format!("{:032x}", 2), "v1", "p", "f")));
    assert_eq!(
        post_chunked(&app.base, &path, "Content-Encoding: gzip\r\nContent-Type: text/plain\r\n", &gz).await,
        200
    );
    let ct = "Content-Type: application/x-sentry-envelope\r\n";
    assert_eq!(
        post_chunked(&app.base, &path, ct, &envelope(&python_event(&format!("{:032x}", 3), "v1", "p", "f"))).await,
        200
    );
    app.drain().await;
    assert_eq!(store.event_count(p.id).await.expect("count"), 3);
    app.stop().await;
}

/// A client clock that is wildly off (`1e30` seconds, an hour ahead): the event is dated when it arrived, the claim
/// is kept beside it, and the group's `last_seen` stays a real time.
#[tokio::test]
async fn timestamps_beyond_belief_are_clamped_to_the_arrival() {
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let p = app.sentry_project("clock").await;
    let path = format!("/api/v1/projects/{}/events", p.id);
    let before = chrono::Utc::now().timestamp_millis();
    let far = 4_102_444_800_000_i64 * 1_000; // far beyond any real clock
    for (n, ts) in [(1, json!(1e30)), (2, json!(far as f64 / 1000.0))] {
        let (status, body) = app
            .call(Method::POST, &path, Some(&p.key), Some(json!({ "message": format!("skewed {n}"), "timestamp": ts })))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    app.drain().await;
    let after = chrono::Utc::now().timestamp_millis();
    let (_, groups) = app.call(Method::GET, &format!("/api/v1/projects/{}/groups", p.id), Some(&p.token), None).await;
    for g in groups["groups"].as_array().expect("groups") {
        let last_seen = chrono::DateTime::parse_from_rfc3339(g["last_seen"].as_str().expect("last_seen"))
            .expect("a real time")
            .timestamp_millis();
        assert!((before..=after).contains(&last_seen), "{g}");
        let (_, detail) = app.call(Method::GET, &format!("/api/v1/groups/{}", g["id"]), Some(&p.token), None).await;
        assert!(detail["latest_event"]["claimed_timestamp"].as_i64().is_some_and(|t| t > after), "{detail}");
    }
    app.stop().await;
}
