//! Decompression bombs against the real `shipwatch serve` process: 1 GiB of gzip, br and zstd are refused with 413,
//! and the server's peak memory (VmHWM) grows by less than 64 MB over all of them.

use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{TestRepo, ALICE};

const GIB: u64 = 1 << 30;
const MIB: usize = 1 << 20;

/// A valid envelope header and an attachment item claiming 1 GiB, then 1 GiB of zeros: only the decoded-size cap
/// stops it.
fn bomb_prefix() -> Vec<u8> {
    format!("{{}}\n{{\"type\":\"attachment\",\"length\":{GIB}}}\n").into_bytes()
}

fn gzip_bomb() -> Vec<u8> {
    // Concatenated gzip members are one valid stream: compress 1 MiB of zeros once, repeat it 1024 times.
    let member = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).expect("write");
        e.finish().expect("finish")
    };
    let mut out = member(&bomb_prefix());
    let zeros = member(&vec![0u8; MIB]);
    for _ in 0..1024 {
        out.extend_from_slice(&zeros);
    }
    out
}

fn zstd_bomb() -> Vec<u8> {
    // Likewise, concatenated zstd frames.
    let mut out = zstd::encode_all(&bomb_prefix()[..], 3).expect("zstd");
    let zeros = zstd::encode_all(&vec![0u8; MIB][..], 19).expect("zstd");
    for _ in 0..1024 {
        out.extend_from_slice(&zeros);
    }
    out
}

fn brotli_bomb() -> Vec<u8> {
    // Brotli has no concatenation: stream the whole GiB through the encoder (fast on zeros).
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 1 << 16, 5, 24);
        w.write_all(&bomb_prefix()).expect("write");
        let zeros = vec![0u8; 4 * MIB];
        for _ in 0..256 {
            w.write_all(&zeros).expect("write");
        }
    }
    out
}

/// Peak resident memory of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("kB") * 1024
}

/// A project made with the CLI in a fresh directory, and `shipwatch serve --no-worker` with `extra` arguments on a
/// free port, up and answering: the server, its pid, its base URL, the project's ingest key, and what must outlive it.
async fn serve(extra: &[&str]) -> (tokio::process::Child, u32, String, String, (tempfile::TempDir, TestRepo)) {
    let bin = env!("CARGO_BIN_EXE_shipwatch");
    let cwd = tempfile::tempdir().expect("temp dir");
    let repo = TestRepo::new();
    repo.commit(&ALICE, &[("a", "1")], "one");
    let out = std::process::Command::new(bin)
        .args(["project", "add", "--name", "web", "--repo", &repo.url(), "--allow-local-repos"])
        .current_dir(cwd.path())
        .output()
        .expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let dsn = text.lines().find_map(|l| l.trim().strip_prefix("DSN:")).expect("dsn").trim().to_owned();
    let key = dsn.split("//").nth(1).and_then(|r| r.split('@').next()).expect("key").to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let server = tokio::process::Command::new(bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--no-worker"])
        .args(extra)
        .current_dir(cwd.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("serve starts");
    let pid = server.id().expect("pid");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "server came up");
    (server, pid, base, key, (cwd, repo))
}

#[tokio::test]
async fn bombs_are_refused_quickly_without_the_process_growing() {
    // Made first: brotli streams a whole GiB through its encoder, which can take a while on a loaded machine.
    let bombs = [("gzip", gzip_bomb()), ("br", brotli_bomb()), ("zstd", zstd_bomb())];
    let (mut server, pid, base, key, _dirs) = serve(&[]).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/api/1/envelope/?sentry_key={key}");

    // Warm up with ordinary traffic so the baseline includes the server's usual buffers.
    for i in 0..20 {
        let event = format!("{{\"event_id\":\"{i:032x}\",\"message\":\"warm-up\"}}");
        let body = format!("{{}}\n{{\"type\":\"event\"}}\n{event}\n");
        let resp = http.post(&url).header("content-encoding", "identity").body(body).send().await.expect("sent");
        assert_eq!(resp.status().as_u16(), 200);
    }
    let baseline = peak_rss(pid);

    for (encoding, body) in bombs.clone() {
        let sent = body.len();
        let start = Instant::now();
        let resp = http.post(&url).header("content-encoding", encoding).body(body).send().await.expect("sent");
        let took = start.elapsed();
        assert_eq!(resp.status().as_u16(), 413, "{encoding}");
        let detail =
            resp.json::<serde_json::Value>().await.expect("json")["detail"].as_str().unwrap_or_default().to_owned();
        assert!(detail.contains("larger than 100 MiB"), "{encoding}: {detail}");
        eprintln!("{encoding} bomb: {sent} bytes sent, 1 GiB inflated; refused with 413 in {took:?}");
    }
    // Without a key in the request only the envelope header is decoded before the key is checked: the same bombs
    // from someone without the key are refused 403 (not 413: nothing past the first line was inflated).
    let keyless = format!("{base}/api/1/envelope/");
    for (encoding, body) in bombs {
        let resp = http.post(&keyless).header("content-encoding", encoding).body(body).send().await.expect("sent");
        assert_eq!(resp.status().as_u16(), 403, "{encoding}: refused on the header's (missing) key");
    }
    // A bomb of bare zeros is stopped at the first line.
    let zeros = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![0u8; 64 * MIB]).expect("write");
        e.finish().expect("finish")
    };
    let resp = http.post(&url).header("content-encoding", "gzip").body(zeros).send().await.expect("sent");
    assert_eq!(resp.status().as_u16(), 413);

    let growth = peak_rss(pid).saturating_sub(baseline);
    eprintln!(
        "server peak memory growth over all bombs: {:.1} MB (baseline {:.1} MB)",
        growth as f64 / 1e6,
        baseline as f64 / 1e6
    );
    assert!(growth < 64_000_000, "peak memory grew by {growth} bytes");
    // And the server still serves.
    assert!(http.get(format!("{base}/readyz")).send().await.expect("sent").status().is_success());
    server.kill().await.expect("stopped");
}

/// A gzip envelope of 95 valid 1 MiB events (100 KiB on the wire): what a leaked DSN key (DSNs are public in browser
/// code) can send at once.
fn event_flood() -> Vec<u8> {
    event_flood_after("{}")
}

/// The same flood after the envelope header `header`.
fn event_flood_after(header: &str) -> Vec<u8> {
    let event = format!("{{\"message\":\"{}\"}}", "y".repeat(MIB - 20));
    let mut text = format!("{header}\n");
    for _ in 0..95 {
        text.push_str(&format!("{{\"type\":\"event\",\"length\":{}}}\n{event}\n", event.len()));
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(text.as_bytes()).expect("write");
    e.finish().expect("finish")
}

/// Three rounds of 64 floods at once, the `i`th sent to `base` + `flood_path(i)`, with five ordinary events sent
/// (with `key`) while each round is in flight: the server's peak RSS before, the floods' answers by status (a 429 must
/// say when to come back), and how many ordinary events were accepted.
async fn flood_rounds(
    pid: u32,
    base: &str,
    key: &str,
    body: &[u8],
    flood_path: impl Fn(usize) -> String,
) -> (u64, std::collections::BTreeMap<u16, usize>, usize) {
    let http = reqwest::Client::new();
    let url = format!("{base}/api/1/envelope/?sentry_key={key}");
    let ordinary = |i: usize| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let body = format!("{{}}\n{{\"type\":\"event\"}}\n{{\"event_id\":\"{i:032x}\",\"message\":\"hi\"}}\n");
            http.post(&url).body(body).send().await.expect("sent").status().as_u16()
        }
    };
    assert_eq!(ordinary(0).await, 200);
    let baseline = peak_rss(pid);
    let mut statuses = std::collections::BTreeMap::new();
    let mut ordinary_ok = 0;
    for round in 0..3 {
        let floods: Vec<_> = (0..64)
            .map(|i| {
                let (http, url, body) = (http.clone(), format!("{base}{}", flood_path(i)), body.to_vec());
                tokio::spawn(async move {
                    let resp =
                        http.post(&url).header("content-encoding", "gzip").body(body).send().await.expect("sent");
                    (resp.status().as_u16(), resp.headers().contains_key("retry-after"))
                })
            })
            .collect();
        for i in 0..5 {
            ordinary_ok += usize::from(ordinary(1 + round * 10 + i).await == 200);
        }
        for f in floods {
            let (status, retry_after) = f.await.expect("flood");
            assert!(status != 429 || retry_after, "a 429 says when to come back");
            *statuses.entry(status).or_insert(0) += 1;
        }
    }
    (baseline, statuses, ordinary_ok)
}

/// 64 such envelopes at once, with the right key, three times over: the memory budget (`--intake-memory-mb`, 64 here)
/// refuses what would pass it with 429 and `Retry-After`, the process stays near its budget, and ordinary events sent
/// meanwhile are all accepted.
#[tokio::test]
async fn concurrent_floods_with_the_key_stay_within_the_memory_budget() {
    let flood = event_flood();
    let (mut server, pid, base, key, _dirs) =
        serve(&["--intake-memory-mb", "64", "--events-per-minute", "1000000"]).await;
    let (baseline, statuses, ordinary_ok) =
        flood_rounds(pid, &base, &key, &flood, |_| format!("/api/1/envelope/?sentry_key={key}")).await;
    let growth = peak_rss(pid).saturating_sub(baseline);
    eprintln!(
        "192 floods of 95 MiB: {statuses:?}; {ordinary_ok}/15 ordinary events accepted meanwhile; peak memory grew \
         {:.1} MB over a {:.1} MB baseline (budget 64 MiB)",
        growth as f64 / 1e6,
        baseline as f64 / 1e6
    );
    assert!(statuses.get(&429).is_some_and(|n| *n > 0), "the budget refused floods: {statuses:?}");
    assert!(statuses.keys().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    assert_eq!(ordinary_ok, 15, "ordinary events are accepted during the floods");
    assert!(growth < 128_000_000, "peak memory grew by {growth} bytes with a 64 MiB budget");
    server.kill().await.expect("stopped");
}

/// 64 floods at once whose only key is in the envelope header, and wrong (half of them to a project that does not
/// exist), three times over, at the default settings: each is refused 403 once its first line is decoded, the
/// process stays far under the default 192 MiB budget (and the 256 MB ceiling), and ordinary events are accepted
/// meanwhile.
#[tokio::test]
async fn concurrent_keyless_floods_cost_no_more_than_their_first_line() {
    let wrong_key = event_flood_after(r#"{"dsn":"http://0123456789abcdef0123456789abcdef@127.0.0.1/1"}"#);
    let (mut server, pid, base, key, _dirs) = serve(&[]).await;
    let (baseline, statuses, ordinary_ok) =
        flood_rounds(pid, &base, &key, &wrong_key, |i| format!("/api/{}/envelope/", if i % 2 == 0 { 1 } else { 999 }))
            .await;
    let peak = peak_rss(pid);
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "192 keyless floods of 95 MiB: {statuses:?}; {ordinary_ok}/15 ordinary events accepted meanwhile; peak {:.1} MB, \
         {:.1} MB over the baseline",
        peak as f64 / 1e6,
        growth as f64 / 1e6
    );
    assert_eq!(statuses.get(&403), Some(&192), "every flood refused on its header's key: {statuses:?}");
    assert_eq!(ordinary_ok, 15, "ordinary events are accepted during the floods");
    assert!(growth < 64_000_000, "peak memory grew by {growth} bytes for floods that were never inflated");
    assert!(peak < 256_000_000, "peak memory {peak} bytes");
    server.kill().await.expect("stopped");
}
