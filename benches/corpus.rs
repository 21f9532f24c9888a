//! Accuracy and speed of assignment on the development corpus of real pasted traces (`../shared/corpus`): for every
//! case, `explain`'s pipeline (parse, map, blame, suspect) at the pinned commit of a local mirror, against the
//! corpus' expected repository path and `git blame` commit of each in-repository frame, and against the time of one
//! `git blame --porcelain -L n,n` per such frame, measured side by side in the same run. Nothing is asserted.
//!
//! `cargo bench --bench corpus -- MIRRORS_DIR [--repeat N]` (or `SHIPWATCH_MIRRORS=MIRRORS_DIR`), where `MIRRORS_DIR`
//! holds a bare mirror per repository at `<owner>+<name>/repo` (the corpus README names them); `--repeat N` times
//! both sides N times per case, alternately. See docs/benchmarks.md.

#[path = "../tests/it/corpus_cases.rs"]
mod corpus_cases;

use shipwatch::assign::Assigner;
use shipwatch::git::Git;
use shipwatch::github::NoGitHub;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let Some(dir) = corpus_cases::corpus_dir() else {
        println!("corpus benchmark SKIPPED: no ../shared/corpus (set SHIPWATCH_CORPUS)");
        return;
    };
    let mirrors = std::env::args()
        .skip(1)
        .scan(false, |after_flag, a| {
            let value_of_flag = std::mem::replace(after_flag, a == "--repeat");
            Some((!value_of_flag).then_some(a))
        })
        .flatten()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("SHIPWATCH_MIRRORS").map(PathBuf::from));
    let Some(mirrors) = mirrors else {
        println!("corpus benchmark SKIPPED: give the mirrors folder: cargo bench --bench corpus -- MIRRORS_DIR");
        return;
    };
    // `--repeat N`: each case's two sides are timed N times, alternately, to even out a busy machine's noise.
    let repeat: u32 =
        std::env::args().skip_while(|a| a != "--repeat").nth(1).and_then(|n| n.parse().ok()).unwrap_or(1).max(1);
    let git = Git::new("git", Duration::from_secs(300), None, true);
    let (mut frames_total, mut path_right, mut blame_right, mut out_total, mut out_left_out) = (0, 0, 0, 0, 0);
    let (mut unrecognised, mut missing) = (0, 0);
    let (mut ours, mut naive) = (Duration::ZERO, Duration::ZERO);
    for (name, case) in corpus_cases::cases(&dir) {
        let repo = mirrors.join(case.repo.replace('/', "+")).join("repo");
        if !repo.is_dir() {
            println!("{name:48} no mirror at {}", repo.display());
            missing += 1;
            continue;
        }
        // shipwatch's own mirrors carry a commit graph with changed-path filters (written after every fetch); give a
        // mirror without one the same, once. Both sides below read the same repository.
        if !repo.join("objects/info/commit-graph").exists() && !repo.join("objects/info/commit-graphs").exists() {
            let ok = Command::new("git")
                .arg("--git-dir")
                .arg(&repo)
                .args(["commit-graph", "write", "--reachable", "--changed-paths"])
                .output()
                .is_ok_and(|o| o.status.success());
            println!("{name:48} wrote a commit graph into the mirror: {ok}");
        }
        // The naive way: one `git blame -L n,n` per expected repository frame.
        let naive_blames = || {
            for e in case.frames_expected.iter().filter(|e| e.in_repo) {
                let path = e.repo_path.as_deref().unwrap_or_default();
                let out = Command::new("git")
                    .arg("--git-dir")
                    .arg(&repo)
                    .args(["blame", "--porcelain", "-L", &format!("{0},{0}", e.raw_line), &case.commit, "--", path])
                    .output()
                    .expect("git runs");
                assert!(out.status.success(), "{name}: git blame {path}");
            }
        };
        // Once untimed, so that both sides below find the same objects in the operating system's cache rather than
        // the first one measured paying for reading them from disk.
        naive_blames();
        // Our pipeline, cold: a new assigner (empty caches) each time.
        let explain_once = || async {
            let assigner = Assigner::new(git.clone(), Arc::new(NoGitHub));
            let parsed = shipwatch::explain::frames_from_input(&case.raw);
            match &parsed {
                Ok((_, frames, crash)) => Some(
                    assigner
                        .assign(&repo, &case.commit, Some(&case.repo), frames, crash, &Default::default(), None)
                        .await
                        .unwrap_or_else(|e| panic!("{name}: {e:#}")),
                ),
                Err(_) => None,
            }
        };
        let (mut took, mut naive_took, mut assignment) = (Duration::ZERO, Duration::ZERO, None);
        for _ in 0..repeat {
            let started = Instant::now();
            assignment = explain_once().await;
            took += started.elapsed();
            let started = Instant::now();
            naive_blames();
            naive_took += started.elapsed();
        }
        ours += took;
        naive += naive_took;

        let in_repo = case.frames_expected.iter().filter(|e| e.in_repo).count();
        frames_total += in_repo;
        out_total += case.frames_expected.len() - in_repo;
        let Some(a) = assignment else {
            unrecognised += 1;
            println!("{name:48} UNRECOGNISED");
            continue;
        };
        let (paths, right, left_out, wrong) = corpus_cases::compare(&case, &a);
        path_right += paths;
        blame_right += right;
        out_left_out += left_out;
        println!(
            "{name:48} {right:>2}/{in_repo:<2} ours {:>7.1} ms  naive {:>7.1} ms  suspect {}",
            took.as_secs_f64() * 1000.0,
            naive_took.as_secs_f64() * 1000.0,
            a.suspect.as_ref().map_or("none".to_owned(), |s| format!("{} {}", &s.commit[..8], s.author_name)),
        );
        for w in wrong {
            println!("    WRONG {w}");
        }
    }
    println!();
    println!("in-repository frames, right path:              {path_right}/{frames_total}");
    println!("in-repository frames, right path and commit:   {blame_right}/{frames_total}");
    println!("other frames left out:                         {out_left_out}/{out_total}");
    println!("unrecognised traces:                           {unrecognised}");
    if missing > 0 {
        println!("cases without a mirror (not counted):          {missing}");
    }
    println!(
        "time{}: ours {:.0} ms, one git blame -L per frame {:.0} ms: ratio {:.2}",
        if repeat > 1 { format!(" (each case {repeat} times)") } else { String::new() },
        ours.as_secs_f64() * 1000.0,
        naive.as_secs_f64() * 1000.0,
        ours.as_secs_f64() / naive.as_secs_f64().max(f64::EPSILON)
    );
}
