//! SQLite when it cannot write: a full disk (a small tmpfs as the data directory, filled while events arrive, then
//! freed: the intake spool's disk) and a write lock held by another process on the main database. No event that was
//! answered `200` may be lost, every write that failed is answered `503` with `Retry-After`, `/readyz` says not ready
//! while intake cannot write, and intake recovers by itself once
//! the cause is gone. The full-disk test needs root (to mount the tmpfs) and skips, saying so, without it.

use serde_json::json;
use std::path::Path;
use std::process::Command;

use crate::support::TestApp;

struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(bytes: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).output();
    }
}

fn event(i: usize) -> Vec<u8> {
    // Large enough that a few hundred fill a couple of MiB.
    let event = json!({
        "event_id": format!("{i:032x}"), "platform": "python", "release": "v1", "environment": "production",
        "message": "x".repeat(16 * 1024),
        "exception": {"values": [{"type": "DiskTest", "value": format!("event {i}")}]}
    })
    .to_string();
    format!("{{}}\n{{\"type\":\"event\",\"length\":{}}}\n{event}\n", event.len()).into_bytes()
}

/// Sends event `i`; returns the status and whether a `Retry-After` came with it.
async fn send_event(app: &TestApp, p: &crate::support::SentryProject, i: usize) -> (u16, bool) {
    let url = format!("{}/api/{}/envelope/?sentry_key={}", app.base, p.id, p.key);
    let resp = app.http.post(url).body(event(i)).send().await.expect("sent");
    (resp.status().as_u16(), resp.headers().get("retry-after").is_some())
}

#[tokio::test]
async fn a_full_disk_refuses_writes_honestly_loses_nothing_acknowledged_and_recovers() {
    let Some(fs) = Tmpfs::mount(3 * 1024 * 1024) else {
        crate::support::skipped("mounting a tmpfs needs root");
        return;
    };
    // The main database elsewhere: intake writes to its spool, on the small disk.
    let db = crate::support::sqlite_db().await;
    let (url, store) = (db.url.clone(), db.store.clone());
    let app = TestApp::spawn_in(store.clone(), fs.path()).await;
    let p = app.sentry_project("disk").await;
    // Room we can give back later.
    let filler = fs.path().join("filler");
    std::fs::write(&filler, vec![0u8; 1024 * 1024]).expect("filler");

    let send = |i: usize| send_event(&app, &p, i);
    let mut acknowledged = Vec::new();
    assert_eq!(send(0).await.0, 200);
    acknowledged.push(0);
    // The main database locked by another process meanwhile: the forwarder cannot empty the spool, so it grows
    // until the disk is full. Without that, the forwarder empties the spool as fast as it fills, and whether the
    // disk ever fills depends on timing.
    app.drain().await;
    let other = sqlx::SqlitePool::connect(&url).await.expect("another connection");
    let mut lock = other.acquire().await.expect("connection");
    sqlx::query("begin immediate").execute(&mut *lock).await.expect("takes the write lock");
    let mut refused = 0;
    let mut i = 1;
    while i < 2000 && refused < 5 {
        let (status, retry_after) = send(i).await;
        match status {
            200 => acknowledged.push(i),
            503 => {
                assert!(retry_after, "503 without Retry-After");
                refused += 1;
            }
            other => panic!("event {i}: {other}"),
        }
        i += 1;
    }
    assert_eq!(refused, 5, "the disk never filled after {i} events");
    let (status, ready) = app.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 503, "not ready on a full disk: {ready}");

    // Room again: intake takes events without a restart.
    sqlx::query("rollback").execute(&mut *lock).await.expect("releases the lock");
    drop(lock);
    other.close().await;
    std::fs::remove_file(&filler).expect("free the filler");
    let mut recovered = false;
    for _ in 0..50 {
        let (status, _) = send(i).await;
        if status == 200 {
            acknowledged.push(i);
            recovered = true;
            i += 1;
            break;
        }
        assert_eq!(status, 503);
        i += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "intake did not recover once there was room");
    for _ in 0..5 {
        let (status, _) = send(i).await;
        assert_eq!(status, 200);
        acknowledged.push(i);
        i += 1;
    }
    let (status, ready) = app.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 200, "ready again: {ready}");
    app.drain().await;
    app.stop().await;

    // Every acknowledged event reached the database, read back through a new connection.
    drop(store);
    let pool = sqlx::SqlitePool::connect(&url).await.expect("reopens");
    let stored: Vec<String> = sqlx::query_scalar("select event_id from events").fetch_all(&pool).await.expect("reads");
    for i in &acknowledged {
        assert!(stored.contains(&format!("{i:032x}")), "acknowledged event {i} was lost ({} stored)", stored.len());
    }
    pool.close().await;
}

/// Another process holds the main database's write lock: intake keeps answering `200` (the events wait in its
/// spool), `/readyz` stays ready and says the database cannot take a write, and once the lock is released the
/// spooled events are stored.
#[tokio::test]
async fn a_write_lock_held_elsewhere_does_not_stop_intake_and_the_spool_catches_up() {
    let db = crate::support::sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let p = app.sentry_project("locked").await;
    let send = |i: usize| send_event(&app, &p, i);
    assert_eq!(send(0).await.0, 200);
    app.drain().await;
    let other = sqlx::SqlitePool::connect(&db.url).await.expect("another connection");
    let mut lock = other.acquire().await.expect("connection");
    sqlx::query("begin immediate").execute(&mut *lock).await.expect("takes the write lock");
    for i in 1..=3 {
        assert_eq!(send(i).await.0, 200, "event {i} accepted while the database is locked");
    }
    let (status, ready) = app.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!((status, ready["database"]["status"].clone()), (200, serde_json::json!("unavailable")), "{ready}");
    assert!(ready["spool"]["waiting"].as_i64().is_some_and(|n| n >= 1), "{ready}");
    sqlx::query("rollback").execute(&mut *lock).await.expect("releases the lock");
    drop(lock);
    app.drain().await;
    let (status, ready) = app.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (status, ready["database"]["status"].clone(), ready["spool"]["waiting"].clone()),
        (200, serde_json::json!("ok"), serde_json::json!(0)),
        "{ready}"
    );
    assert_eq!(db.store.event_count(p.id).await.expect("count"), 4, "every acknowledged event stored once");
    other.close().await;
    app.stop().await;
}

/// PostgreSQL refuses connections for a while (the test's own database, never the shared server): every event sent
/// meanwhile is answered `200` from the spool, `/readyz` stays ready and says the database is unavailable, and once
/// it takes connections again every acknowledged event is stored exactly once.
#[tokio::test]
async fn intake_keeps_accepting_while_postgresql_is_away_and_stores_everything_once_it_returns() {
    let Some(db) = crate::support::postgres_db().await else { return };
    let app = TestApp::spawn(db.store.clone(), false).await;
    let p = app.sentry_project("outage").await;
    let send = |i: usize| send_event(&app, &p, i);
    assert_eq!(send(0).await.0, 200);
    app.drain().await;

    db.allow_connections(false).await;
    for i in 1..=20 {
        assert_eq!(send(i).await.0, 200, "event {i} accepted while PostgreSQL is away");
    }
    // A retried delivery of one of them: acknowledged again, stored once.
    assert_eq!(send(7).await.0, 200);
    let (status, ready) = app.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!((status, ready["database"]["status"].clone()), (200, serde_json::json!("unavailable")), "{ready}");
    assert_eq!(ready["spool"]["waiting"], serde_json::json!(21), "{ready}");
    assert!(app.app.spooler.forward_once().await.is_err(), "nothing can be forwarded yet");

    db.allow_connections(true).await;
    app.drain().await;
    assert_eq!(db.store.event_count(p.id).await.expect("count"), 21, "every acknowledged event, once");
    let (_, groups) =
        app.call(reqwest::Method::GET, &format!("/api/v1/projects/{}/groups", p.id), Some(&p.token), None).await;
    assert_eq!(groups["groups"][0]["count"], serde_json::json!(21), "grouped once each: {groups}");
    app.stop().await;
    db.cleanup().await;
}

/// The spool full while the database is away: `429` with `Retry-After` and Sentry's rate-limit header (SDKs back
/// off and keep the event), never a silent loss; intake resumes once the spool drains.
#[tokio::test]
async fn a_full_spool_answers_429_loses_nothing_and_resumes_when_it_drains() {
    let Some(db) = crate::support::postgres_db().await else { return };
    let app = TestApp::spawn_with_spool(db.store.clone(), 1).await;
    let p = app.sentry_project("spool").await;
    assert_eq!(send_event(&app, &p, 0).await.0, 200);
    app.drain().await;
    db.allow_connections(false).await;
    let mut acknowledged = vec![0];
    let mut refused = None;
    for i in 1..200 {
        let url = format!("{}/api/{}/envelope/?sentry_key={}", app.base, p.id, p.key);
        let resp = app.http.post(url).body(event(i)).send().await.expect("sent");
        match resp.status().as_u16() {
            200 => acknowledged.push(i),
            429 => {
                let header = |h: &str| resp.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_owned);
                refused = Some((header("retry-after"), header("x-sentry-rate-limits")));
                break;
            }
            other => panic!("event {i}: {other}"),
        }
    }
    let (retry_after, limits) = refused.expect("the 1 MiB spool filled");
    assert!(retry_after.is_some() && limits.is_some_and(|l| l.contains(":error:")), "{retry_after:?}");
    db.allow_connections(true).await;
    app.drain().await;
    let next = acknowledged.len() + 1000;
    assert_eq!(send_event(&app, &p, next).await.0, 200, "intake resumes once the spool drained");
    acknowledged.push(next);
    app.drain().await;
    assert_eq!(
        db.store.event_count(p.id).await.expect("count"),
        acknowledged.len() as i64,
        "nothing acknowledged lost"
    );
    app.stop().await;
    db.cleanup().await;
}
