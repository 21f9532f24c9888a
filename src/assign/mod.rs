//! Assignment: map an error's frames to the repository at the deployed commit, blame them there, pick the suspect
//! commit, and name the owner — with a one-line reason for each step that a person can check.

pub mod owners;
pub mod paths;
pub mod service;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tracing::warn;

use crate::git::blame::{BlameEngine, BlameLine, CachedBlame, GitCliBlame};
use crate::git::tree::{read_file, TreeCache, TreeFiles};
use crate::git::Git;
use crate::github::GitHub;
use owners::{CodeOwners, CODEOWNERS_PATHS};
use paths::{manifest_paths, CodeMapping, Mapped, Packages, PathMapper};

/// A project's assignment settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Explicit stack-trace prefix → repository prefix mappings, tried first.
    pub code_mappings: Vec<CodeMapping>,
    /// E-mail address → GitHub login, tried before anything else.
    pub logins: BTreeMap<String, String>,
    /// Who owns an error nobody else can be named for.
    pub default_assignee: Option<String>,
    /// More automation accounts (matched in `name <email>`), on top of `[bot]`, dependabot, renovate, ….
    pub bot_patterns: Vec<String>,
    /// How many repository frames, from the crash outwards, may supply a suspect (default 5).
    pub max_suspect_frames: Option<usize>,
    /// Labels of the GitHub issues shipwatch creates (default `shipwatch`, `regression`; `shipwatch` is always added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

/// One frame to assign, in input order.
#[derive(Debug, Clone, Default)]
pub struct FrameInput {
    pub raw_path: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub function: Option<String>,
    pub module: Option<String>,
    /// What the SDK said; `Some(false)` keeps a frame from supplying a suspect.
    pub in_app: Option<bool>,
}

/// The deploy the error belongs to, when known: its range decides "introduced by this deploy".
#[derive(Debug, Clone, Default)]
pub struct DeployContext {
    pub version: String,
    pub environment: String,
    pub range: HashSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameResult {
    pub index: usize,
    pub raw_path: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub function: Option<String>,
    pub in_repo: bool,
    pub repo_path: Option<String>,
    /// How the frame was mapped, or why it was not.
    pub mapping: String,
    pub blame: Option<BlameLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspect {
    pub frame_index: usize,
    pub commit: String,
    pub author_name: String,
    pub author_email: String,
    pub github_login: Option<String>,
    pub reason: String,
    /// Not part of `explain`'s output; kept with the group.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub in_range: Option<bool>,
    /// Where `github_login` came from (mapping, noreply address, GitHub's API); for the owner's reason.
    #[serde(skip)]
    pub login_via: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// `author`, `codeowners`, `default` or `none`.
    pub kind: String,
    pub github_login: Option<String>,
    pub email: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The commit the frames were mapped and blamed at.
    pub commit: String,
    pub frames: Vec<FrameResult>,
    pub suspect: Option<Suspect>,
    /// Every candidate, best first (the suspect is the first that may win).
    pub candidates: Vec<Suspect>,
    pub owner: Owner,
}

/// Paths of vendored third-party code inside a repository: blamed, but never a suspect.
fn vendored(repo_path: &str) -> bool {
    repo_path.split('/').any(|c| matches!(c, "vendor" | "third_party" | "third-party" | "node_modules" | "external"))
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

fn date(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

/// The assignment service: caches trees, manifests, ignore lists, blame and login look-ups across calls.
pub struct Assigner {
    git: Git,
    blame: Arc<CachedBlame>,
    trees: TreeCache,
    packages: Mutex<HashMap<String, Arc<Packages>>>,
    codeowners: Mutex<HashMap<String, Option<Arc<CodeOwners>>>>,
    ignore_revs: Mutex<HashMap<String, Arc<Vec<String>>>>,
    github: Arc<dyn GitHub>,
    api_logins: Mutex<HashMap<String, Option<String>>>,
}

impl Assigner {
    pub fn new(git: Git, github: Arc<dyn GitHub>) -> Assigner {
        let engine: Arc<dyn BlameEngine> = Arc::new(GitCliBlame::new(git.clone()));
        Assigner::with_engine(git, github, engine)
    }

    pub fn with_engine(git: Git, github: Arc<dyn GitHub>, engine: Arc<dyn BlameEngine>) -> Assigner {
        Assigner {
            blame: Arc::new(CachedBlame::new(engine, 200_000)),
            git,
            trees: TreeCache::new(64),
            packages: Mutex::new(HashMap::new()),
            codeowners: Mutex::new(HashMap::new()),
            ignore_revs: Mutex::new(HashMap::new()),
            github,
            api_logins: Mutex::new(HashMap::new()),
        }
    }

    /// How many git blame processes ran so far (the cache spares the rest).
    pub fn blame_processes(&self) -> u64 {
        self.blame.engine_calls()
    }

    /// Resolves `rev` to a full commit id in `repo`.
    ///
    /// # Errors
    /// When `rev` names no commit there.
    pub async fn resolve(&self, repo: &Path, rev: &str) -> anyhow::Result<String> {
        let out = self
            .git
            .output(Some(repo), ["rev-parse", "--verify", "--quiet", "--end-of-options", &format!("{rev}^{{commit}}")])
            .await?;
        anyhow::ensure!(out.code == Some(0), "`{rev}` is not a commit of {}", repo.display());
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    async fn packages(&self, repo: &Path, sha: &str, tree: &TreeFiles) -> anyhow::Result<Arc<Packages>> {
        if let Some(p) = lock(&self.packages).get(&tree.tree_id) {
            return Ok(p.clone());
        }
        let mut manifests = HashMap::new();
        for path in manifest_paths(tree) {
            if let Some(text) = read_file(&self.git, repo, sha, &path).await? {
                manifests.insert(path, text);
            }
        }
        let p = Arc::new(Packages::from_manifests(tree, &manifests));
        lock(&self.packages).insert(tree.tree_id.clone(), p.clone());
        Ok(p)
    }

    async fn codeowners(&self, repo: &Path, sha: &str, tree: &TreeFiles) -> anyhow::Result<Option<Arc<CodeOwners>>> {
        if let Some(c) = lock(&self.codeowners).get(&tree.tree_id) {
            return Ok(c.clone());
        }
        let mut found = None;
        for path in CODEOWNERS_PATHS {
            if tree.contains(path) {
                if let Some(text) = read_file(&self.git, repo, sha, path).await? {
                    found = Some(Arc::new(CodeOwners::parse(path, &text)));
                    break;
                }
            }
        }
        lock(&self.codeowners).insert(tree.tree_id.clone(), found.clone());
        Ok(found)
    }

    /// The commits `.git-blame-ignore-revs` lists at `sha` that exist (git refuses unknown ones).
    async fn ignore_revs(&self, repo: &Path, sha: &str) -> anyhow::Result<Arc<Vec<String>>> {
        if let Some(r) = lock(&self.ignore_revs).get(sha) {
            return Ok(r.clone());
        }
        let mut revs = Vec::new();
        if let Some(text) = read_file(&self.git, repo, sha, ".git-blame-ignore-revs").await? {
            for line in text.lines() {
                let entry = line.split('#').next().unwrap_or_default().trim();
                if entry.len() >= 7 && entry.bytes().all(|b| b.is_ascii_hexdigit()) {
                    if let Ok(full) = self.resolve(repo, entry).await {
                        revs.push(full);
                    }
                }
            }
        }
        let revs = Arc::new(revs);
        lock(&self.ignore_revs).insert(sha.to_owned(), revs.clone());
        Ok(revs)
    }

    /// The GitHub login of an author: configured mapping, then noreply address, then GitHub's commit API.
    async fn login(
        &self,
        settings: &Settings,
        github_repo: Option<&str>,
        email: &str,
        sha: &str,
    ) -> Option<(String, &'static str)> {
        if let Some(l) = settings.logins.iter().find(|(e, _)| e.eq_ignore_ascii_case(email)).map(|(_, l)| l.clone()) {
            return Some((l, "the project's e-mail → login mapping"));
        }
        if let Some(l) = owners::noreply_login(email) {
            return Some((l, "a GitHub noreply address"));
        }
        let repo = github_repo?;
        if let Some(cached) = lock(&self.api_logins).get(sha) {
            return cached.clone().map(|l| (l, "GitHub's commit API"));
        }
        match self.github.commit_author_login(repo, sha).await {
            Ok(found) => {
                lock(&self.api_logins).insert(sha.to_owned(), found.clone());
                found.map(|l| (l, "GitHub's commit API"))
            }
            Err(e) => {
                warn!(error = %format!("{e:#}"), "GitHub commit look-up failed");
                None
            }
        }
    }

    /// Maps, blames and assigns `frames` (input order) at `rev` of `repo`. `crash_order` lists the indices of the
    /// raised exception's frames from the crashing frame outwards.
    ///
    /// # Errors
    /// When `rev` is not a commit of `repo` or git fails.
    #[allow(clippy::too_many_arguments)]
    pub async fn assign(
        &self,
        repo: &Path,
        rev: &str,
        github_repo: Option<&str>,
        frames: &[FrameInput],
        crash_order: &[usize],
        settings: &Settings,
        deploy: Option<&DeployContext>,
    ) -> anyhow::Result<Assignment> {
        let sha = self.resolve(repo, rev).await?;
        let tree = self.trees.files(&self.git, repo, &sha).await?;
        let packages = self.packages(repo, &sha, &tree).await?;
        let mapper =
            PathMapper { tree: &tree, packages: &packages, mappings: &settings.code_mappings, repo_name: github_repo };
        let mapped: Vec<Mapped> = paths::map_frames(&mapper, frames);

        let ignore = self.ignore_revs(repo, &sha).await?;
        let mut wanted: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (f, m) in frames.iter().zip(&mapped) {
            if let (Some(path), Some(line)) = (m.repo_path(), f.line) {
                wanted.entry(path).or_default().push(line);
            }
        }
        let mut blamed: HashMap<(String, u32), BlameLine> = HashMap::new();
        for (path, lines) in wanted {
            let got =
                self.blame.blame(repo, &sha, path, &lines, &ignore).await.with_context(|| format!("blaming {path}"))?;
            blamed.extend(got.into_iter().map(|(l, b)| ((path.to_owned(), l), b)));
        }
        let blame_of = |i: usize| -> Option<&BlameLine> {
            let path = mapped[i].repo_path()?;
            blamed.get(&(path.to_owned(), frames[i].line?))
        };

        let results: Vec<FrameResult> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| FrameResult {
                index: i,
                raw_path: f.raw_path.clone(),
                line: f.line,
                column: f.column,
                function: f.function.clone(),
                in_repo: mapped[i].repo_path().is_some(),
                repo_path: mapped[i].repo_path().map(str::to_owned),
                mapping: mapped[i].description().to_owned(),
                blame: blame_of(i).cloned(),
            })
            .collect();

        // Candidates: repository frames from the crash outwards.
        let max = settings.max_suspect_frames.unwrap_or(5).max(1);
        let mut candidates: Vec<Suspect> = Vec::new();
        let mut skipped: Vec<String> = Vec::new();
        let mut considered = 0usize;
        for &i in crash_order {
            let (Some(path), Some(b)) = (mapped.get(i).and_then(Mapped::repo_path), blame_of(i)) else { continue };
            if frames[i].in_app == Some(false) || vendored(path) {
                continue;
            }
            if considered >= max {
                break;
            }
            let distance = considered;
            considered += 1;
            if owners::is_bot(&b.author_name, &b.author_email, &settings.bot_patterns) {
                skipped.push(format!("{path}:{} by bot {}", b.orig_line, b.author_name));
                continue;
            }
            if ignore.contains(&b.commit) {
                skipped.push(format!("{path}:{} in ignored revision {}", b.orig_line, short(&b.commit)));
                continue;
            }
            let in_range = deploy.map(|d| d.range.contains(&b.commit));
            let score = (1.0 / (1.0 + distance as f64)) * if in_range == Some(true) { 10.0 } else { 1.0 };
            let login = self.login(settings, github_repo, &b.author_email, &b.commit).await;
            let placement = match (deploy, in_range) {
                (Some(d), Some(true)) => format!(", inside deploy {} to {}", d.version, d.environment),
                (Some(d), _) => format!(", older code (not in deploy {} to {})", d.version, d.environment),
                _ => String::new(),
            };
            let who = match &login {
                Some((l, _)) => format!("@{l}"),
                None => format!("no GitHub login known for {}", b.author_email),
            };
            let reason = format!(
                "{path}:{} `{}` last changed in {} by {} on {}{placement} → {who}",
                frames[i].line.unwrap_or(b.orig_line),
                b.content.trim(),
                short(&b.commit),
                b.author_name,
                date(b.author_time),
            );
            candidates.push(Suspect {
                frame_index: i,
                commit: b.commit.clone(),
                author_name: b.author_name.clone(),
                author_email: b.author_email.clone(),
                login_via: login.as_ref().map(|(_, via)| *via),
                github_login: login.map(|(l, _)| l),
                reason,
                score: Some(score),
                in_range,
            });
        }
        // Best score first; a tie goes to the frame nearer the crash (stable sort keeps that order).
        candidates.sort_by(|a, b| b.score.unwrap_or(0.0).total_cmp(&a.score.unwrap_or(0.0)));
        let mut suspect = candidates.first().cloned();
        if let (Some(s), false) = (suspect.as_mut(), skipped.is_empty()) {
            s.reason.push_str(&format!(" (skipped: {})", skipped.join("; ")));
        }

        // CODEOWNERS asks about the application frame nearest the crash (not a vendored or SDK-excluded one).
        let top = crash_order.iter().find_map(|&i| {
            let path = mapped.get(i).and_then(Mapped::repo_path)?;
            (frames[i].in_app != Some(false) && !vendored(path)).then_some(path)
        });
        let owner = self.owner(repo, &sha, &tree, settings, github_repo, suspect.as_ref(), top).await?;
        Ok(Assignment { commit: sha, frames: results, suspect, candidates, owner })
    }

    #[allow(clippy::too_many_arguments)]
    async fn owner(
        &self,
        repo: &Path,
        sha: &str,
        tree: &TreeFiles,
        settings: &Settings,
        github_repo: Option<&str>,
        suspect: Option<&Suspect>,
        top: Option<&str>,
    ) -> anyhow::Result<Owner> {
        if let Some(s) = suspect {
            if let Some(login) = &s.github_login {
                let how =
                    self.login(settings, github_repo, &s.author_email, &s.commit).await.map_or("", |(_, how)| how);
                return Ok(Owner {
                    kind: "author".into(),
                    github_login: Some(login.clone()),
                    email: Some(s.author_email.clone()),
                    reason: format!("author of the suspect commit {} (login from {how})", short(&s.commit)),
                });
            }
        }
        if let (Some(path), Some(co)) = (top, self.codeowners(repo, sha, tree).await?) {
            if let Some(o) = co.owner_of(path) {
                let why = match suspect {
                    Some(s) => format!("no GitHub login for suspect {}", s.author_email),
                    None => "no suspect commit".to_owned(),
                };
                return Ok(Owner {
                    kind: "codeowners".into(),
                    github_login: o.login().map(str::to_owned),
                    email: o.email().map(str::to_owned),
                    reason: format!("{why}; {}:{} `{}` owns {path}", o.file, o.line, o.pattern),
                });
            }
        }
        if let Some(d) = &settings.default_assignee {
            return Ok(Owner {
                kind: "default".into(),
                github_login: Some(d.trim_start_matches('@').to_owned()),
                email: None,
                reason: "no suspect with a GitHub login and no CODEOWNERS entry: the project's default assignee".into(),
            });
        }
        Ok(Owner {
            kind: "none".into(),
            github_login: None,
            email: suspect.map(|s| s.author_email.clone()),
            reason: match suspect {
                Some(s) => format!("no GitHub login for {}, no CODEOWNERS entry, no default assignee", s.author_email),
                None => "no frame in the repository to blame, no CODEOWNERS entry, no default assignee".into(),
            },
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The frames of an event that carry a file location (every exception's, in order), and the indices of the raised
/// exception's frames from the crash outwards.
pub fn frames_of_event(event: &crate::events::Event) -> (Vec<FrameInput>, Vec<usize>) {
    let chains: Vec<&[crate::events::Frame]> = if event.exceptions.is_empty() {
        vec![&event.stacktrace]
    } else {
        event.exceptions.iter().map(|e| e.frames.as_slice()).collect()
    };
    let mut frames = Vec::new();
    let mut raised = Vec::new();
    let last = chains.len().saturating_sub(1);
    for (ci, chain) in chains.iter().enumerate() {
        for f in chain.iter() {
            let Some(path) = f.abs_path.clone().or_else(|| f.filename.clone()) else { continue };
            if ci == last {
                raised.push(frames.len());
            }
            frames.push(FrameInput {
                raw_path: path,
                line: f.lineno,
                column: f.colno,
                function: f.function.clone(),
                module: f.module.clone(),
                in_app: f.in_app,
            });
        }
    }
    // Events run caller → callee: the crash is last.
    raised.reverse();
    (frames, raised)
}

/// The commits of `base..sha` in `repo`, for a deploy context built outside the store (`explain --range`).
///
/// # Errors
/// When git fails.
pub async fn range_commits(git: &Git, repo: &Path, base: &str, sha: &str) -> anyhow::Result<HashSet<String>> {
    let out =
        git.run(Some(repo), "listing the range", ["rev-list", "--end-of-options", sha, &format!("^{base}")]).await?;
    Ok(String::from_utf8_lossy(&out).lines().map(str::to_owned).collect())
}
