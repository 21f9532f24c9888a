//! Reading the development corpus of real traces (`../shared/corpus`, kept outside this repository): shared by the
//! corpus test and `cargo bench --bench corpus`.

use serde::Deserialize;
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
    pub blame: Option<ExpectedBlame>,
}

#[derive(Deserialize)]
pub struct ExpectedBlame {
    pub commit: String,
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

/// Compares an assignment of `case` with the corpus: each expected frame is the next assignment frame with the same
/// printed path and line. Returns (in-repository frames with the right path, … with the right path and blamed
/// commit, other frames left out, what was wrong).
pub fn compare(case: &Case, a: &shipwatch::assign::Assignment) -> (usize, usize, usize, Vec<String>) {
    let (mut paths, mut blames, mut left_out, mut wrong) = (0, 0, 0, Vec::new());
    let mut next = 0;
    for e in &case.frames_expected {
        let found = (next..a.frames.len())
            .find(|&i| a.frames[i].raw_path == e.raw_path && a.frames[i].line == Some(e.raw_line));
        if let Some(i) = found {
            next = i + 1;
        }
        let f = found.map(|i| &a.frames[i]);
        if !e.in_repo {
            if f.is_none_or(|f| !f.in_repo) {
                left_out += 1;
            } else {
                wrong.push(format!("{}:{} taken for the repository", e.raw_path, e.raw_line));
            }
            continue;
        }
        let got_path = f.and_then(|f| f.repo_path.as_deref());
        let got_commit = f.and_then(|f| f.blame.as_ref()).map(|b| b.commit.as_str());
        let want_commit = e.blame.as_ref().map(|b| b.commit.as_str());
        if got_path == e.repo_path.as_deref() {
            paths += 1;
            if got_commit == want_commit {
                blames += 1;
                continue;
            }
        }
        wrong.push(format!(
            "{}:{} → {got_path:?} {got_commit:?}, expected {:?} {want_commit:?}",
            e.raw_path, e.raw_line, e.repo_path
        ));
    }
    (paths, blames, left_out, wrong)
}
