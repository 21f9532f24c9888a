//! Latency per frame of assigning a 12-frame trace on a 20,000-commit history: a first (cold) assignment with empty
//! caches and a repeated (warm) one, against `git blame --porcelain -L n,n` run once per frame in the same run.
//! Run with `cargo bench --bench blame` (see docs/benchmarks.md). Nothing is asserted.

use shipwatch::assign::{Assigner, Settings};
use shipwatch::git::Git;
use shipwatch::github::NoGitHub;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const COMMITS: usize = 20_000;
const FILES: usize = 40;
const LINES: usize = 200;

fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(args).current_dir(dir).output().expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Every commit rewrites one line of one of 40 files of 200 lines, so blame must walk far back for old lines.
fn make_repo(dir: &Path) -> String {
    run(dir, &["init", "--quiet", "--initial-branch=main"]);
    let authors = [
        "Alice Doe <alice@example.com>",
        "Bob Roe <bob@example.com>",
        "Carol Poe <carol@example.com>",
        "Dan <dan@example.com>",
    ];
    let mut files: Vec<Vec<String>> =
        (0..FILES).map(|f| (0..LINES).map(|l| format!("v0 f{f} l{l}")).collect()).collect();
    let mut seed: u64 = 7;
    let mut next = |n: usize| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n
    };
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .spawn()
        .expect("fast-import");
    let mut stdin = child.stdin.take().expect("stdin");
    for i in 1..=COMMITS {
        let author = authors[i % authors.len()];
        let t = 1_700_000_000 + i * 60;
        let msg = format!("change {i}\n");
        let mut s = format!("commit refs/heads/main\nmark :{i}\nauthor {author} {t} +0000\ncommitter {author} {t} +0000\ndata {}\n{msg}", msg.len());
        if i > 1 {
            s.push_str(&format!("from :{}\n", i - 1));
        }
        // The first commit creates every file; later ones touch one line of one file.
        let touched: Vec<usize> = if i == 1 { (0..FILES).collect() } else { vec![next(FILES)] };
        for f in touched {
            if i > 1 {
                // Recent history concentrates on the first lines, so the last lines stay old.
                let l = next(LINES / 2);
                files[f][l] = format!("v{i} f{f} l{l}");
            }
            let content = files[f].join("\n") + "\n";
            s.push_str(&format!("M 100644 inline src/mod{f}.py\ndata {}\n{content}\n", content.len()));
        }
        stdin.write_all(s.as_bytes()).expect("stream");
    }
    drop(stdin);
    assert!(child.wait().expect("fast-import").success());
    run(dir, &["commit-graph", "write", "--reachable", "--changed-paths"]);
    run(dir, &["rev-parse", "main"])
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    println!("building a history of {COMMITS} commits …");
    let head = make_repo(dir.path());
    // 12 frames over 6 files, old lines and recent ones.
    let frames: Vec<(usize, u32)> = vec![
        (3, 150),
        (3, 20),
        (7, 199),
        (7, 5),
        (11, 120),
        (11, 60),
        (19, 180),
        (19, 2),
        (23, 101),
        (23, 40),
        (31, 170),
        (31, 10),
    ];
    let trace = {
        let mut t = String::from("Traceback (most recent call last):\n");
        for (f, l) in &frames {
            t.push_str(&format!("  File \"/srv/app/src/mod{f}.py\", line {l}, in f{f}\n"));
        }
        t + "ValueError: bench\n"
    };
    let (_, inputs, crash) = shipwatch::explain::frames_from_input(&trace).expect("trace");
    let n = frames.len() as f64;

    // Reference: one git blame process per frame, as a naive implementation would.
    let start = Instant::now();
    for (f, l) in &frames {
        run(dir.path(), &["blame", "--porcelain", "-L", &format!("{l},{l}"), &head, "--", &format!("src/mod{f}.py")]);
    }
    let reference = start.elapsed().as_secs_f64() / n;

    let git = Git::new("git", Duration::from_secs(600), None, true);
    let assigner = Assigner::new(git, Arc::new(NoGitHub));
    let settings = Settings::default();
    let start = Instant::now();
    let a = assigner.assign(dir.path(), &head, None, &inputs, &crash, &settings, None).await.expect("assigns");
    let cold = start.elapsed().as_secs_f64() / n;
    assert_eq!(a.frames.iter().filter(|f| f.blame.is_some()).count(), frames.len());
    let processes = assigner.blame_processes();
    let mut warm_runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        assigner.assign(dir.path(), &head, None, &inputs, &crash, &settings, None).await.expect("assigns");
        warm_runs.push(t.elapsed().as_secs_f64() / n);
    }
    warm_runs.sort_by(f64::total_cmp);
    let warm = warm_runs[warm_runs.len() / 2];
    println!("git blame --porcelain -L n,n, one process per frame: {:>8.2} ms/frame", reference * 1e3);
    println!(
        "shipwatch cold (empty caches; {processes} blame processes for {} frames): {:>8.2} ms/frame = {:.2}× the reference",
        frames.len(),
        cold * 1e3,
        cold / reference
    );
    println!(
        "shipwatch warm (median of 5; {} more blame processes):          {:>8.3} ms/frame = {:.3}× the reference",
        assigner.blame_processes() - processes,
        warm * 1e3,
        warm / reference
    );
}
