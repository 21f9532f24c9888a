//! The development corpus of real pasted traces (`../shared/corpus`, outside this repository): every expected
//! in-repository frame is extracted and maps to its expected path using only the file list of the repository at the
//! pinned commit (`trees/`), and every frame of other code is left out. Skips, saying so, where the corpus is absent.

use shipwatch::assign::paths::{map_frames, Packages, PathMapper};
use shipwatch::git::tree::TreeFiles;
use std::collections::HashMap;
use std::path::Path;

use crate::corpus_cases::{cases, corpus_dir, Case};

fn tree_of(dir: &Path, case: &Case) -> TreeFiles {
    let file = dir.join("trees").join(format!("{}__{}.txt", case.repo.replace('/', "__"), &case.commit[..12]));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    TreeFiles::new(case.commit.clone(), text.lines().map(str::to_owned).collect())
}

#[test]
fn every_corpus_frame_is_found_and_mapped_from_the_tree_alone() {
    let Some(dir) = corpus_dir() else {
        crate::support::skipped("no trace corpus at ../shared/corpus (set SHIPWATCH_CORPUS to run this test)");
        return;
    };
    let mut failures = Vec::new();
    let (mut in_repo, mut in_repo_right, mut out_of_repo) = (0, 0, 0);
    for (name, case) in cases(&dir) {
        let tree = tree_of(&dir, &case);
        let packages = Packages::from_manifests(&tree, &HashMap::new());
        let mapper = PathMapper { tree: &tree, packages: &packages, mappings: &[], repo_name: Some(&case.repo) };
        let (frames, _) = match shipwatch::explain::frames_from_input(&case.raw) {
            Ok((_, frames, crash)) => (frames, crash),
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let mapped = map_frames(&mapper, &frames);
        // Expected frames in order; each is the next parsed frame with the same path and line.
        let mut next = 0;
        let mut matched = vec![false; frames.len()];
        for e in &case.frames_expected {
            let found =
                (next..frames.len()).find(|&i| frames[i].raw_path == e.raw_path && frames[i].line == Some(e.raw_line));
            if e.in_repo {
                in_repo += 1;
            } else {
                out_of_repo += 1;
            }
            let Some(i) = found else {
                if e.in_repo {
                    failures.push(format!("{name}: frame {}:{} not extracted", e.raw_path, e.raw_line));
                }
                continue;
            };
            next = i + 1;
            matched[i] = true;
            let got = mapped[i].repo_path();
            if got == e.repo_path.as_deref() {
                if e.in_repo {
                    in_repo_right += 1;
                }
            } else {
                failures.push(format!(
                    "{name}: {}:{} mapped to {got:?} ({}), expected {:?}",
                    e.raw_path,
                    e.raw_line,
                    mapped[i].description(),
                    e.repo_path
                ));
            }
        }
        // A frame the corpus does not list may not be claimed for the repository either.
        for (i, f) in frames.iter().enumerate() {
            if !matched[i] {
                if let Some(p) = mapped[i].repo_path() {
                    failures.push(format!("{name}: unlisted frame {}:{:?} mapped to {p}", f.raw_path, f.line));
                }
            }
        }
    }
    eprintln!("corpus: {in_repo_right}/{in_repo} in-repository frames mapped right; {out_of_repo} other frames");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// With mirrors of the corpus repositories (`SHIPWATCH_MIRRORS`, laid out as `<owner>+<name>/repo`), the whole
/// assignment at each pinned commit: every in-repository frame gets its expected path and blamed commit, every other
/// frame is left out. Skips, saying so, without them (they are public repositories this one does not carry).
#[tokio::test]
async fn every_corpus_frame_is_blamed_right_where_the_mirrors_are() {
    let (Some(dir), Some(mirrors)) =
        (corpus_dir(), std::env::var_os("SHIPWATCH_MIRRORS").map(std::path::PathBuf::from))
    else {
        crate::support::skipped(
            "set SHIPWATCH_CORPUS (or keep ../shared/corpus) and SHIPWATCH_MIRRORS to blame the corpus",
        );
        return;
    };
    let git = shipwatch::git::Git::new("git", std::time::Duration::from_secs(120), None, true);
    let assigner = shipwatch::assign::Assigner::new(git, std::sync::Arc::new(shipwatch::github::NoGitHub));
    let mut failures = Vec::new();
    for (name, case) in cases(&dir) {
        let repo = mirrors.join(case.repo.replace('/', "+")).join("repo");
        if !repo.is_dir() {
            failures.push(format!("{name}: no mirror at {}", repo.display()));
            continue;
        }
        let (_, frames, crash) = shipwatch::explain::frames_from_input(&case.raw).expect("parses");
        let a = assigner
            .assign(&repo, &case.commit, Some(&case.repo), &frames, &crash, &Default::default(), None)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let (_, _, _, wrong) = crate::corpus_cases::compare(&case, &a);
        failures.extend(wrong.into_iter().map(|w| format!("{name}: {w}")));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
