//! The development corpus of real pasted traces (`../shared/corpus`, outside this repository): every expected
//! in-repository frame is extracted and maps to its expected path using only the file list of the repository at the
//! pinned commit (`trees/`), and every frame of other code is left out. Skips, saying so, where the corpus is absent.

use serde::Deserialize;
use shipwatch::assign::paths::{map_frames, Packages, PathMapper};
use shipwatch::git::tree::TreeFiles;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
pub struct Case {
    pub repo: String,
    pub commit: String,
    pub raw: String,
    pub frames_expected: Vec<Expected>,
}

#[derive(Deserialize)]
pub struct Expected {
    pub raw_path: String,
    pub raw_line: u32,
    pub in_repo: bool,
    pub repo_path: Option<String>,
}

/// The corpus folder: `SHIPWATCH_CORPUS`, else `../shared/corpus` beside the repository.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SHIPWATCH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    dir.join("traces").is_dir().then_some(dir)
}

pub fn cases(dir: &Path) -> Vec<(String, Case)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("traces"))
        .expect("traces folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).expect("readable case");
            (name.clone(), serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}")))
        })
        .collect()
}

fn tree_of(dir: &Path, case: &Case) -> TreeFiles {
    let file = dir.join("trees").join(format!("{}__{}.txt", case.repo.replace('/', "__"), &case.commit[..12]));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    TreeFiles::new(case.commit.clone(), text.lines().map(str::to_owned).collect())
}

#[test]
fn every_corpus_frame_is_found_and_mapped_from_the_tree_alone() {
    let Some(dir) = corpus_dir() else {
        eprintln!("SKIPPED: no trace corpus at ../shared/corpus (set SHIPWATCH_CORPUS to run this test)");
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
