//! SQLite when it cannot write: a full disk (a small tmpfs as the data directory, filled while events arrive, then
//! freed) and a write lock held by another process. No event that was answered `200` may be lost, every write that
//! failed is answered `503` with `Retry-After`, `/readyz` says not ready meanwhile, and intake recovers by itself once
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
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    };
    let url = format!("sqlite:{}", fs.path().join("shipwatch.db").display());
    let store = shipwatch::store::connect(&url).await.expect("store opens");
    let app = TestApp::spawn(store.clone(), false).await;
    let p = app.sentry_project("disk").await;
    // Room we can give back later.
    let filler = fs.path().join("filler");
    std::fs::write(&filler, vec![0u8; 1024 * 1024]).expect("filler");

    let send = |i: usize| send_event(&app, &p, i);
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let mut i = 0;
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
    app.stop().await;

    // Every acknowledged event is on disk, read back through a new connection.
    drop(store);
    let pool = sqlx::SqlitePool::connect(&url).await.expect("reopens");
    let stored: Vec<String> = sqlx::query_scalar("select event_id from events").fetch_all(&pool).await.expect("reads");
    for i in &acknowledged {
        assert!(stored.contains(&format!("{i:032x}")), "acknowledged event {i} was lost ({} stored)", stored.len());
    }
    pool.close().await;
}

/// Another process holds SQLite's write lock: an event waits out the busy timeout and is answered `503` with
/// `Retry-After` (not `500`), `/readyz` says not ready, and intake takes events again once the lock is released.
#[tokio::test]
async fn a_write_lock_held_elsewhere_is_answered_503_and_intake_recovers() {
    let db = crate::support::sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), false).await;
    let p = app.sentry_project("locked").await;
    let send = |i: usize| send_event(&app, &p, i);
    assert_eq!(send(0).await.0, 200);
    let other = sqlx::SqlitePool::connect(&db.url).await.expect("another connection");
    let mut lock = other.acquire().await.expect("connection");
    sqlx::query("begin immediate").execute(&mut *lock).await.expect("takes the write lock");
    assert_eq!(send(1).await, (503, true));
    let (status, ready) = app.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 503, "{ready}");
    sqlx::query("rollback").execute(&mut *lock).await.expect("releases the lock");
    drop(lock);
    assert_eq!(send(2).await.0, 200);
    let (status, ready) = app.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 200, "{ready}");
    other.close().await;
    app.stop().await;
}
