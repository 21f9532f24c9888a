//! Assignment: map an error's frames to the repository at the deployed commit, blame them there, pick the suspect
//! commit, and name the owner — with a one-line reason for each step that a person can check.

pub mod owners;
pub mod paths;
pub mod service;
pub mod settings;

pub use settings::Settings;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use tracing::warn;

use crate::cache::Bounded;
use crate::git::blame::{BlameEngine, BlameLine, CachedBlame, GitCliBlame};
use crate::git::objects::{parse_commit, parse_tree, ObjectInfo, ObjectReader, TreeEntry};
use crate::git::tree::{TreeCache, TreeFiles};
use crate::git::Git;
use crate::github::GitHub;
use owners::{CodeOwners, CODEOWNERS_PATHS};
use paths::{manifest_paths, Mapped, Packages, PathMapper};

/// How much the assigner keeps in memory.
#[derive(Clone, Copy, Debug)]
pub struct CacheSizes {
    /// Blamed lines (by revision, path and line); the writer and login caches hold a twentieth of it each.
    pub blame_lines: usize,
    /// Tree listings (by commit); manifests and CODEOWNERS are kept for four times as many trees.
    pub trees: usize,
}

impl From<&crate::config::GitArgs> for CacheSizes {
    fn from(g: &crate::config::GitArgs) -> CacheSizes {
        CacheSizes { blame_lines: g.blame_cache_lines.max(20), trees: g.tree_cache_trees.max(1) }
    }
}

impl Default for CacheSizes {
    fn default() -> CacheSizes {
        CacheSizes { blame_lines: 200_000, trees: 64 }
    }
}

/// One frame to assign, in input order.
#[derive(Debug, Clone, Default)]
pub struct FrameInput {
    pub raw_path: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub function: Option<String>,
    pub module: Option<String>,
    /// What the SDK said. Only a hint: whether a frame is the repository's is decided by mapping it.
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
    /// When the frame could be one of several repository files and none was guessed: those files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
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
    /// Who wrote a blamed line, past moves ([`find_writer`]), per (commit, path, line).
    writer_cache: Bounded<(String, String, u32), Option<BlameLine>>,
    trees: TreeCache,
    /// What the repository's own files say at one tree, by (repository, tree id).
    tree_info: Bounded<(std::path::PathBuf, String), Arc<TreeInfo>>,
    github: Arc<dyn GitHub>,
    api_logins: Bounded<String, Option<String>>,
}

impl Assigner {
    pub fn new(git: Git, github: Arc<dyn GitHub>) -> Assigner {
        let engine: Arc<dyn BlameEngine> = Arc::new(GitCliBlame::new(git.clone()));
        Assigner::with_engine(git, github, engine)
    }

    pub fn with_engine(git: Git, github: Arc<dyn GitHub>, engine: Arc<dyn BlameEngine>) -> Assigner {
        Assigner::with_sizes(git, github, engine, CacheSizes::default())
    }

    /// With caches of the given sizes.
    pub fn with_sizes(git: Git, github: Arc<dyn GitHub>, engine: Arc<dyn BlameEngine>, sizes: CacheSizes) -> Assigner {
        Assigner {
            blame: Arc::new(CachedBlame::new(engine, sizes.blame_lines)),
            writer_cache: Bounded::new(sizes.blame_lines / 20),
            git,
            trees: TreeCache::new(sizes.trees),
            tree_info: Bounded::new(sizes.trees * 4),
            github,
            api_logins: Bounded::new(sizes.blame_lines / 20),
        }
    }

    /// Blamed lines answered from the cache so far, and lines that needed git.
    pub fn blame_line_counts(&self) -> (u64, u64) {
        self.blame.line_counts()
    }

    /// How many git blame processes ran so far (the cache spares the rest).
    pub fn blame_processes(&self) -> u64 {
        self.blame.engine_calls()
    }

    /// The manifests, CODEOWNERS and `.git-blame-ignore-revs` of a tree (and the ignored revisions resolved), read
    /// through the assignment's object reader.
    async fn tree_info(
        &self,
        objects: &SharedObjects,
        repo: &Path,
        sha: &str,
        tree: &TreeFiles,
    ) -> anyhow::Result<Arc<TreeInfo>> {
        let key = (repo.to_owned(), tree.tree_id.clone());
        if let Some(info) = self.tree_info.get(&key) {
            return Ok(info);
        }
        let mut wanted = manifest_paths(tree);
        let codeowners_path = CODEOWNERS_PATHS.iter().find(|p| tree.contains(p));
        wanted.extend(codeowners_path.map(|p| (*p).to_owned()));
        if tree.contains(IGNORE_REVS) {
            wanted.push(IGNORE_REVS.to_owned());
        }
        let mut files = if wanted.is_empty() {
            HashMap::new()
        } else {
            objects.lock().await.get()?.read_files(sha, &wanted).await?
        };
        let codeowners = codeowners_path.and_then(|p| files.get(*p).map(|text| Arc::new(CodeOwners::parse(p, text))));
        if let Some(co) = &codeowners {
            // Its patterns are compiled on the side while the lines are blamed, rather than before or after.
            let co = co.clone();
            tokio::task::spawn_blocking(move || co.compile());
        }
        let ignore_revs = match files.remove(IGNORE_REVS) {
            Some(text) => resolve_ignored(objects, &text).await,
            None => Vec::new(),
        };
        let info = Arc::new(TreeInfo {
            packages: Packages::from_manifests(tree, &files),
            codeowners,
            ignore_revs: Arc::new(ignore_revs),
        });
        self.tree_info.insert(key, info.clone());
        Ok(info)
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
        if let Some(cached) = self.api_logins.get(&sha.to_owned()) {
            return cached.map(|l| (l, "GitHub's commit API"));
        }
        match self.github.commit_author_login(repo, sha).await {
            Ok(found) => {
                self.api_logins.insert(sha.to_owned(), found.clone());
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
        // A deploy's commit is a full id already: its tree may be known. Otherwise it is listed through the
        // assignment's object reader (see [`ObjectReader`]), opened now.
        let full_id = matches!(rev.len(), 40 | 64) && rev.bytes().all(|b| b.is_ascii_hexdigit());
        let listed = full_id.then(|| self.trees.get(&rev.to_ascii_lowercase())).flatten();
        // Files are read through that reader too. When this tree's manifests are not known yet it is needed at once;
        // otherwise only if a blamed line needs its move check.
        let known =
            listed.as_ref().is_some_and(|t| self.tree_info.get(&(repo.to_owned(), t.tree_id.clone())).is_some());
        let objects = LazyObjects::shared(&self.git, repo, !known);
        let (sha, tree) = match listed {
            Some(tree) => (rev.to_ascii_lowercase(), tree),
            None => {
                let mut o = objects.lock().await;
                let listed = o.get()?.list_files(rev).await.with_context(|| format!("listing `{rev}`"))?;
                let Some((sha, files)) = listed else {
                    anyhow::bail!("`{rev}` is not a commit of {}", repo.display());
                };
                (sha.clone(), self.trees.insert(&sha, files))
            }
        };
        let info = self.tree_info(&objects, repo, &sha, &tree).await?;
        let mapper = PathMapper {
            tree: &tree,
            packages: &info.packages,
            mappings: &settings.code_mappings,
            repo_name: github_repo,
        };
        let mapped: Vec<Mapped> = paths::map_frames(&mapper, frames);

        let ignore = info.ignore_revs.clone();
        let mut wanted: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (f, m) in frames.iter().zip(&mapped) {
            if let (Some(path), Some(line)) = (m.repo_path(), f.line) {
                wanted.entry(path).or_default().push(line);
            }
        }
        // The crash's own repository frame usually supplies the suspect: its writer is asked as soon as its plain
        // blame is in, while the other files are still being blamed.
        let crash_frame = crash_order
            .iter()
            .find_map(|&i| Some((mapped.get(i)?.repo_path().filter(|p| !vendored(p))?, frames[i].line?)));
        let (blamed, early_writer) =
            blame_files(&self.blame, &self.writer_cache, &self.git, &objects, repo, &sha, wanted, &ignore, crash_frame)
                .await?;
        if let Some((key, writer)) = early_writer {
            self.writer_cache.insert(key, writer);
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
                candidates: match &mapped[i] {
                    Mapped::Ambiguous { candidates, .. } => candidates.clone(),
                    _ => Vec::new(),
                },
                blame: blame_of(i).cloned(),
            })
            .collect();

        // Candidates: repository frames from the crash outwards. Whether a frame is the repository's is decided by
        // mapping; the SDK's `in_app` does not keep a mapped frame out (a package installed from this repository is
        // `in_app: false` to the SDK).
        let max = settings.max_suspect_frames.unwrap_or(5).max(1);
        let considered: Vec<usize> = crash_order
            .iter()
            .copied()
            .filter(|&i| {
                // A blank line cannot have run: there the trace is of another version than this commit, and its
                // blame says nothing about the error.
                mapped.get(i).and_then(Mapped::repo_path).is_some_and(|p| !vendored(p))
                    && blame_of(i).is_some_and(|b| !b.content.trim().is_empty())
            })
            .take(max)
            .collect();
        // Who wrote a line, looking past a commit that only moved or reformatted it (`git blame -w -M -C` from that
        // commit, which costs little when the commit did write the line). Asked only of the frame that would win; if
        // the writer changes the ranking, the next winner is asked in turn.
        let mut writers: HashMap<usize, Option<BlameLine>> = HashMap::new();
        let eligible = |b: &BlameLine| {
            !ignore.contains(&b.commit) && !owners::is_bot(&b.author_name, &b.author_email, &settings.bot_patterns)
        };
        let effective = |writers: &HashMap<usize, Option<BlameLine>>, i: usize| -> Option<BlameLine> {
            writers.get(&i).cloned().flatten().or_else(|| blame_of(i).cloned())
        };
        let score_of = |distance: usize, b: &BlameLine| {
            // The crashing frame weighs most: 1, 1/4, 1/9 … by distance. A commit of this deploy counts five times,
            // so the crash's direct caller changed in this deploy can outweigh older code at the crash, but no frame
            // further out can.
            let in_range = deploy.is_some_and(|d| d.range.contains(&b.commit));
            1.0 / ((1 + distance) as f64).powi(2) * if in_range { 5.0 } else { 1.0 }
        };
        for _ in 0..considered.len() {
            let best = considered
                .iter()
                .enumerate()
                .filter_map(|(d, &i)| effective(&writers, i).filter(|b| eligible(b)).map(|b| (d, i, score_of(d, &b))))
                .fold(None::<(usize, usize, f64)>, |acc, x| match acc {
                    Some(a) if a.2 >= x.2 => Some(a),
                    _ => Some(x),
                });
            let Some((_, i, _)) = best else { break };
            let Some(plain) = blame_of(i) else { break };
            if writers.contains_key(&i) {
                break;
            }
            let writer = self.writer(&objects, repo, &sha, plain, &ignore).await;
            writers.insert(i, writer.filter(|w| w.commit != plain.commit && eligible(w)));
        }
        let mut candidates: Vec<Suspect> = Vec::new();
        let mut skipped: Vec<String> = Vec::new();
        for (distance, &i) in considered.iter().enumerate() {
            let (Some(path), Some(plain)) = (mapped[i].repo_path(), blame_of(i)) else { continue };
            let line = frames[i].line.unwrap_or(plain.orig_line);
            // The writer, when it differs from the last commit to touch the line and is neither ignored nor a bot.
            let writer = writers.get(&i).and_then(Option::as_ref);
            let b = writer.unwrap_or(plain);
            if owners::is_bot(&b.author_name, &b.author_email, &settings.bot_patterns) {
                skipped.push(format!("{path}:{} by bot {}", b.orig_line, b.author_name));
                continue;
            }
            if ignore.contains(&b.commit) {
                skipped.push(format!("{path}:{} in ignored revision {}", b.orig_line, short(&b.commit)));
                continue;
            }
            let moved = writer.map(|_| {
                format!(
                    " (skipped {} by {}, \"{}\": it only moved or reformatted this line)",
                    short(&plain.commit),
                    plain.author_name,
                    plain.summary
                )
            });
            let in_range = deploy.map(|d| d.range.contains(&b.commit));
            let score = score_of(distance, b);
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
                "{path}:{line} `{}` {} in {} by {} on {}{}{placement} → {who}",
                plain.content.trim(),
                if moved.is_some() { "written" } else { "last changed" },
                short(&b.commit),
                b.author_name,
                date(b.author_time),
                moved.unwrap_or_default(),
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
        let top = crash_order.iter().find_map(|&i| mapped.get(i).and_then(Mapped::repo_path).filter(|p| !vendored(p)));
        let owner = Self::owner(info.codeowners.clone(), settings, suspect.as_ref(), top);
        Ok(Assignment { commit: sha, frames: results, suspect, candidates, owner })
    }

    /// Who wrote the line `plain` blamed (see [`GitCliBlame::writer`]), cached; a failure keeps plain blame.
    async fn writer(
        &self,
        objects: &SharedObjects,
        repo: &Path,
        sha: &str,
        plain: &BlameLine,
        ignore: &[String],
    ) -> Option<BlameLine> {
        let key = (plain.commit.clone(), plain.orig_path.clone(), plain.orig_line);
        if let Some(w) = self.writer_cache.get(&key) {
            return w;
        }
        let w = match find_writer(&self.git, objects, repo, sha, plain, ignore).await {
            Ok(w) => w,
            Err(e) => {
                warn!(error = %format!("{e:#}"), path = plain.orig_path, "blame -w -M -C failed; keeping plain blame");
                return None;
            }
        };
        self.writer_cache.insert(key, w.clone());
        w
    }

    fn owner(
        codeowners: Option<Arc<CodeOwners>>,
        settings: &Settings,
        suspect: Option<&Suspect>,
        top: Option<&str>,
    ) -> Owner {
        if let Some(s) = suspect {
            if let Some(login) = &s.github_login {
                // Where the login came from was kept when the suspect was named; it is not looked up again.
                let how = s.login_via.map(|via| format!(" (login from {via})")).unwrap_or_default();
                return Owner {
                    kind: "author".into(),
                    github_login: Some(login.clone()),
                    email: Some(s.author_email.clone()),
                    reason: format!("author of the suspect commit {}{how}", short(&s.commit)),
                };
            }
        }
        if let (Some(path), Some(co)) = (top, codeowners) {
            if let Some(o) = co.owner_of(path) {
                let why = match suspect {
                    Some(s) => format!("no GitHub login for suspect {}", s.author_email),
                    None => "no suspect commit".to_owned(),
                };
                return Owner {
                    kind: "codeowners".into(),
                    github_login: o.login().map(str::to_owned),
                    email: o.email().map(str::to_owned),
                    reason: format!("{why}; {}:{} `{}` owns {path}", o.file, o.line, o.pattern),
                };
            }
        }
        if let Some(d) = &settings.default_assignee {
            return Owner {
                kind: "default".into(),
                github_login: Some(d.trim_start_matches('@').to_owned()),
                email: None,
                reason: "no suspect with a GitHub login and no CODEOWNERS entry: the project's default assignee".into(),
            };
        }
        Owner {
            kind: "none".into(),
            github_login: None,
            email: suspect.map(|s| s.author_email.clone()),
            reason: match suspect {
                Some(s) => format!("no GitHub login for {}, no CODEOWNERS entry, no default assignee", s.author_email),
                None => "no frame in the repository to blame, no CODEOWNERS entry, no default assignee".into(),
            },
        }
    }
}

/// What one tree of the repository says about assignment: its packages, its CODEOWNERS, the revisions blame skips.
struct TreeInfo {
    packages: Packages,
    codeowners: Option<Arc<CodeOwners>>,
    ignore_revs: Arc<Vec<String>>,
}

const IGNORE_REVS: &str = ".git-blame-ignore-revs";

/// The commits a `.git-blame-ignore-revs` lists that exist in the repository (git refuses unknown ones), asked of the
/// assignment's object reader. A failure ignores nothing.
async fn resolve_ignored(objects: &SharedObjects, text: &str) -> Vec<String> {
    let entries: Vec<&str> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|e| e.len() >= 7 && e.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    if entries.is_empty() {
        return Vec::new();
    }
    let mut objects = objects.lock().await;
    let mut found = Vec::new();
    for e in entries {
        let info = match objects.get() {
            Ok(reader) => reader.info(&format!("{e}^{{commit}}")).await,
            Err(e) => Err(e),
        };
        match info {
            Ok(Some(info)) if info.kind == "commit" => found.push(info.oid),
            Ok(_) => {}
            Err(e) => {
                warn!(error = %format!("{e:#}"), "could not resolve .git-blame-ignore-revs");
                return Vec::new();
            }
        }
    }
    found
}

/// The assignment's object reader ([`ObjectReader`]), opened on first use (or early, when it will surely be needed)
/// and shared by the tasks of one assignment.
type SharedObjects = Arc<tokio::sync::Mutex<LazyObjects>>;

/// A [`ObjectReader`] of one repository, started when first asked for.
struct LazyObjects {
    git: Git,
    repo: std::path::PathBuf,
    reader: Option<ObjectReader>,
}

impl LazyObjects {
    fn shared(git: &Git, repo: &Path, start_now: bool) -> SharedObjects {
        let mut lazy = LazyObjects { git: git.clone(), repo: repo.to_owned(), reader: None };
        if start_now {
            // A failure to start is reported by the first use.
            lazy.reader = ObjectReader::open(git, repo).ok();
        }
        Arc::new(tokio::sync::Mutex::new(lazy))
    }

    fn get(&mut self) -> anyhow::Result<&mut ObjectReader> {
        match &mut self.reader {
            Some(r) => Ok(r),
            slot => Ok(slot.insert(ObjectReader::open(&self.git, &self.repo)?)),
        }
    }
}

/// How many `git blame` processes one assignment runs at once: one per core. More only share the cores and delay
/// the crash's own file, whose writer is asked as soon as it is blamed.
fn blame_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get).clamp(2, 8)
}

/// Who wrote the line that plain blame gave to `plain.commit`, when that commit only moved or reformatted it. First
/// the cheap question, from that commit's version of this one file and its first parent's (read through the
/// assignment's object reader, no process of its own): did the commit remove a line with the same text (white space
/// aside: a reformat or a move within the file), or add a block of at least [`MOVED_BLOCK_LINES`] lines (which may
/// have come from another file)? Only then `git blame -w -M -C` from that commit ([`GitCliBlame::writer`]). A line
/// a formatter only restyled (its quotes, a trailing `;` or `,`: see [`same_but_style`]) is git's change all the
/// same, so its writer is asked from the commit's parent, at the line it replaced.
/// `None`: the commit wrote the line.
async fn find_writer(
    git: &Git,
    objects: &SharedObjects,
    repo: &Path,
    sha: &str,
    plain: &BlameLine,
    ignore: &[String],
) -> anyhow::Result<Option<BlameLine>> {
    let (from, line) = match writer_needed(objects, plain).await? {
        Needed::No => return Ok(None),
        Needed::FromCommit => (plain.commit.clone(), plain.orig_line),
        Needed::FromParent { parent, line } => (parent, line),
    };
    GitCliBlame::new(git.clone()).writer(repo, &from, sha, &plain.orig_path, line, ignore).await
}

/// Whether, and from where, to ask `git blame -w -M -C` who wrote a line (see [`find_writer`]).
#[derive(Debug, PartialEq, Eq)]
enum Needed {
    /// The commit wrote the line.
    No,
    /// From the commit itself: it may have moved the line, or changed only its white space.
    FromCommit,
    /// From the commit's parent, at `line` there: the commit only restyled that line.
    FromParent { parent: String, line: u32 },
}

/// Whether `git blame -w -M -C` could give the line `plain` blamed to another commit than `plain.commit` (see
/// [`find_writer`]).
async fn writer_needed(objects: &SharedObjects, plain: &BlameLine) -> anyhow::Result<Needed> {
    anyhow::ensure!(plain.commit.bytes().all(|b| b.is_ascii_hexdigit()), "not a commit id: {}", plain.commit);
    let wanted = squeezed(&plain.content);
    let mut objects = objects.lock().await;
    let reader = objects.get()?;
    // As `git show --no-renames --diff-merges=first-parent` would compare: a file renamed, new, or in a root commit
    // has no earlier version.
    let before = blob_text(reader.contents(&format!("{}^:{}", plain.commit, plain.orig_path)).await?);
    let after = blob_text(reader.contents(&format!("{}:{}", plain.commit, plain.orig_path)).await?);
    Ok(match may_have_moved(&before, &after, &plain.content, &plain.orig_path) {
        Change::Written => Needed::No,
        Change::MovedOrReformatted => Needed::FromCommit,
        Change::Restyled(line) => {
            let parent = match reader.contents(&plain.commit).await? {
                Some((_, raw)) => parse_commit(&raw).1.into_iter().next(),
                None => None,
            };
            match parent {
                Some(parent) => Needed::FromParent { parent, line },
                None => Needed::No,
            }
        }
        // A block that may have come from elsewhere: `blame -M -C` can only give the line to a line of the same text
        // (white space aside) in the parent's version of this file or of another file the commit changed (`-C`
        // given once looks no further). Where there is none, it would keep the commit.
        Change::Block => {
            if has_line(&before, &wanted)
                || copy_source(reader, &plain.commit, &plain.orig_path, &wanted).await?.unwrap_or(true)
            {
                Needed::FromCommit
            } else {
                Needed::No
            }
        }
    })
}

/// The text of a blob the object reader gave (empty for none, or for anything but a file).
fn blob_text(object: Option<(ObjectInfo, Vec<u8>)>) -> String {
    object.filter(|(i, _)| i.kind == "blob").map(|(_, c)| String::from_utf8_lossy(&c).into_owned()).unwrap_or_default()
}

/// Whether `text` has a line that reads `wanted` with all white space taken out.
fn has_line(text: &str, wanted: &str) -> bool {
    text.lines().any(|l| squeezed(l) == wanted)
}

/// A line with all its white space taken out, as lines are compared to tell a move or reformat.
fn squeezed(line: &str) -> String {
    line.split_whitespace().collect()
}

/// How much of a commit's change [`copy_source`] reads before it gives up and lets git decide.
const COPY_SOURCE_TREES: usize = 100;
const COPY_SOURCE_FILES: usize = 24;
const COPY_SOURCE_BYTES: usize = 256 << 10;

/// Whether a file other than `path` that `commit` changed or deleted had, in the commit's parent, a line reading
/// `wanted` (white space taken out): where `git blame -C` could have found the line. Compares the commit's tree with
/// its parent's through the assignment's object reader, descending only into subtrees that differ. `None` when it cannot
/// tell cheaply (a merge, a change too large).
async fn copy_source(
    reader: &mut ObjectReader,
    commit: &str,
    path: &str,
    wanted: &str,
) -> anyhow::Result<Option<bool>> {
    let Some((_, raw)) = reader.contents(commit).await? else { return Ok(None) };
    let (Some(tree), parents) = parse_commit(&raw) else { return Ok(None) };
    let parent_tree = match parents.as_slice() {
        [] => return Ok(Some(false)), // a root commit copies from nowhere
        [p] => match reader.contents(p).await? {
            Some((_, raw)) => match parse_commit(&raw).0 {
                Some(t) => t,
                None => return Ok(None),
            },
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    let id_len = tree.len() / 2;
    let mut sources: Vec<String> = Vec::new();
    // (directory, the tree there in the commit if any, the tree there in the parent)
    let mut todo: Vec<(String, Option<String>, String)> = vec![(String::new(), Some(tree), parent_tree)];
    let mut reads = 0;
    while let Some((dir, new, old)) = todo.pop() {
        reads += 2;
        if reads > COPY_SOURCE_TREES {
            return Ok(None);
        }
        let entries = |o: Option<(ObjectInfo, Vec<u8>)>| -> anyhow::Result<_> {
            match o {
                Some((i, raw)) if i.kind == "tree" => parse_tree(&raw, id_len),
                _ => Ok(Vec::new()),
            }
        };
        let old_entries = entries(reader.contents(&old).await?)?;
        let new_entries: HashMap<String, TreeEntry> = match &new {
            Some(n) => entries(reader.contents(n).await?)?.into_iter().map(|e| (e.name.clone(), e)).collect(),
            None => HashMap::new(),
        };
        for e in old_entries {
            let now = new_entries.get(&e.name);
            if now.is_some_and(|n| n.oid == e.oid) {
                continue;
            }
            let full = format!("{dir}{}", e.name);
            if e.is_tree() {
                let inside = now.filter(|n| n.is_tree()).map(|n| n.oid.clone());
                todo.push((format!("{full}/"), inside, e.oid));
            } else if e.mode != "160000" && full != path {
                sources.push(e.oid);
            }
        }
    }
    if sources.len() > COPY_SOURCE_FILES {
        return Ok(None);
    }
    let mut bytes = 0;
    for oid in sources {
        let text = blob_text(reader.contents(&oid).await?);
        bytes += text.len();
        if bytes > COPY_SOURCE_BYTES {
            return Ok(None);
        }
        if has_line(&text, wanted) {
            return Ok(Some(true));
        }
    }
    Ok(Some(false))
}

/// What a commit did to a line, as far as its diff of the line's file tells.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    /// It wrote the line.
    Written,
    /// It removed a line with the same text (white space aside): a move within the file or a reformat.
    MovedOrReformatted,
    /// It added a block of at least [`MOVED_BLOCK_LINES`] lines, which may have come from elsewhere.
    Block,
    /// It replaced this line (1-based in the earlier version) by the same code in another style.
    Restyled(u32),
}

/// A block this long, added in one commit, may have been moved there from another file.
const MOVED_BLOCK_LINES: usize = 20;

/// How long the line diff of one file may take before the check gives up and lets `git blame -w -M -C` decide.
const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_millis(200);

/// What the change from `before` to `after` (one file's text, at `path`) shows of `line`: a removed line with the
/// same text (white space aside) is a move or reformat; a removed line with the same code in another style (see
/// [`same_but_style`]) was restyled; a block of [`MOVED_BLOCK_LINES`] added lines may be a move from elsewhere;
/// otherwise the line was written.
fn may_have_moved(before: &str, after: &str, line: &str, path: &str) -> Change {
    let wanted = squeezed(line);
    let old: Vec<&str> = before.lines().collect();
    let new: Vec<&str> = after.lines().collect();
    // Neither a move nor a restyle can have brought the line when the earlier version has no line of that text in
    // any style; then only a block may have come from elsewhere, and enough lines of new text prove one without the
    // diff, which took 4 ms where a commit rewrote most of a file (tokio's scheduler rewrite, #2273).
    if !has_line(before, &wanted)
        && !old.iter().any(|o| same_but_style(o, line, path))
        && new_lines(&old, &new) >= MOVED_BLOCK_LINES
    {
        return Change::Block;
    }
    // The diff answers "moved or reformatted" as soon as it removes a line of that text, before anything else. A
    // line the later version has fewer exact copies of is removed by every diff: so a reformat needs no diff, which
    // took 1.5–2 ms where a commit restyled a whole file (junit's "Applied new coding style").
    if removed_by_any_diff(&old, &new, &wanted) {
        return Change::MovedOrReformatted;
    }
    diffed_change(&old, &new, &wanted, line, path)
}

/// Whether `old` has a line reading `wanted` (white space taken out) of which `new` has fewer exact copies: every
/// diff from `old` to `new` removes one, since each line of `old` is kept only as an equal line of `new`.
fn removed_by_any_diff(old: &[&str], new: &[&str], wanted: &str) -> bool {
    let mut left: HashMap<&str, usize> = HashMap::new();
    for o in old.iter().filter(|o| squeezed(o) == wanted) {
        *left.entry(o).or_default() += 1;
    }
    if left.is_empty() {
        return false;
    }
    for n in new {
        if let Some(count) = left.get_mut(n) {
            *count = count.saturating_sub(1);
        }
    }
    left.values().any(|&count| count > 0)
}

/// How many lines of `new` have no line of the same text left in `old` to match (each line of `old` matches once):
/// the fewest lines any diff from `old` to `new` inserts.
fn new_lines(old: &[&str], new: &[&str]) -> usize {
    let mut left: HashMap<&str, usize> = HashMap::with_capacity(old.len());
    for o in old {
        *left.entry(o).or_default() += 1;
    }
    new.iter()
        .filter(|n| match left.get_mut(*n) {
            Some(count) if *count > 0 => {
                *count -= 1;
                false
            }
            _ => true,
        })
        .count()
}

/// [`may_have_moved`] by the line diff of the two versions (`wanted`: `line` with its white space taken out).
fn diffed_change(old: &[&str], new: &[&str], wanted: &str, line: &str, path: &str) -> Change {
    use similar::{Algorithm, DiffOp};
    let deadline = std::time::Instant::now() + DIFF_DEADLINE;
    let ops = similar::capture_diff_slices_deadline(Algorithm::Myers, old, new, Some(deadline));
    let mut added = 0;
    let mut restyled = None;
    for op in ops {
        let (removed, inserted) = match op {
            DiffOp::Equal { .. } => continue,
            DiffOp::Delete { old_index, old_len, .. } => (old_index..old_index + old_len, 0),
            DiffOp::Insert { new_len, .. } => (0..0, new_len),
            DiffOp::Replace { old_index, old_len, new_len, .. } => (old_index..old_index + old_len, new_len),
        };
        if old[removed.clone()].iter().any(|o| squeezed(o) == wanted) {
            return Change::MovedOrReformatted;
        }
        if restyled.is_none() {
            restyled = removed.clone().find(|&i| same_but_style(old[i], line, path)).map(|i| i as u32 + 1);
        }
        added += inserted;
    }
    match restyled {
        Some(at) => Change::Restyled(at),
        None if added >= MOVED_BLOCK_LINES => Change::Block,
        None => Change::Written,
    }
}

/// Whether two versions of a line of the file `path` are the same code in another style, as formatters rewrite it
/// (black, prettier, standardrb, php-cs-fixer): white space aside, single quotes for double ones, and a trailing `;`
/// or `,`. Only in languages where the two quotes mean the same, and only for lines without interpolation or escapes
/// (`#{`, `$`, `\`, `` ` ``), where in Ruby and PHP they do not.
fn same_but_style(a: &str, b: &str, path: &str) -> bool {
    const QUOTES_ALIKE: [&str; 11] = ["py", "pyi", "js", "jsx", "mjs", "cjs", "ts", "tsx", "rb", "php", "rake"];
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    if !QUOTES_ALIKE.contains(&ext.as_str()) {
        return false;
    }
    let plain = |l: &str| !l.contains("#{") && !l.contains(['$', '\\', '`']);
    if !plain(a) || !plain(b) {
        return false;
    }
    let norm = |l: &str| {
        let s = squeezed(l).replace('\'', "\"");
        s.trim_end_matches([';', ',']).to_owned()
    };
    let (a, b) = (norm(a), norm(b));
    !a.is_empty() && a == b
}

/// A writer blame's cache key (the plain commit, path and line there) and its answer.
type EarlyWriter = ((String, String, u32), Option<BlameLine>);

enum BlameDone {
    Plain(String, anyhow::Result<HashMap<u32, BlameLine>>),
    Writer(EarlyWriter),
}

/// Blames the wanted lines of every file, several files at once — `first`'s file first, and as soon as its line is
/// blamed, that line's writer (see [`GitCliBlame::writer`]) alongside the rest.
#[allow(clippy::too_many_arguments)]
async fn blame_files(
    engine: &Arc<CachedBlame>,
    writers: &Bounded<(String, String, u32), Option<BlameLine>>,
    git: &Git,
    objects: &SharedObjects,
    repo: &Path,
    sha: &str,
    wanted: BTreeMap<&str, Vec<u32>>,
    ignore: &Arc<Vec<String>>,
    first: Option<(&str, u32)>,
) -> anyhow::Result<(HashMap<(String, u32), BlameLine>, Option<EarlyWriter>)> {
    let mut blamed = HashMap::new();
    let mut early = None;
    let mut tasks = tokio::task::JoinSet::new();
    let mut order: Vec<(&str, Vec<u32>)> = wanted.into_iter().collect();
    if let Some((path, _)) = first {
        order.sort_by_key(|(p, _)| *p != path);
    }
    let mut pending = order.into_iter();
    let concurrency = blame_concurrency();
    loop {
        while tasks.len() < concurrency {
            let Some((path, lines)) = pending.next() else { break };
            let (engine, repo, sha, path, ignore) =
                (engine.clone(), repo.to_owned(), sha.to_owned(), path.to_owned(), ignore.clone());
            tasks.spawn(crate::git::with_tally(async move {
                let got = engine.blame(&repo, &sha, &path, &lines, &ignore).await;
                BlameDone::Plain(path, got)
            }));
        }
        let Some(done) = tasks.join_next().await else { break };
        match done.context("a blame task failed")? {
            BlameDone::Plain(path, got) => {
                let got = got.with_context(|| format!("blaming {path}"))?;
                let plain = first.filter(|(p, _)| *p == path).and_then(|(_, l)| got.get(&l));
                let key = plain.map(|plain| (plain.commit.clone(), plain.orig_path.clone(), plain.orig_line));
                // Asked before (another group with the same crash line): the cache answers later, without git.
                if let (Some(plain), Some(key)) = (plain, key.filter(|k| writers.get(k).is_none())) {
                    let (git, objects, repo, sha, ignore, plain) =
                        (git.clone(), objects.clone(), repo.to_owned(), sha.to_owned(), ignore.clone(), plain.clone());
                    tasks.spawn(crate::git::with_tally(async move {
                        let w = find_writer(&git, &objects, &repo, &sha, &plain, &ignore).await;
                        if let Err(e) = &w {
                            warn!(error = %format!("{e:#}"), path = key.1, "blame -w -M -C failed; keeping plain blame");
                        }
                        BlameDone::Writer((key, w.ok().flatten()))
                    }));
                }
                blamed.extend(got.into_iter().map(|(l, b)| ((path.clone(), l), b)));
            }
            BlameDone::Writer(w) => early = Some(w),
        }
    }
    Ok((blamed, early))
}

/// The frames of an event that carry a file location (every exception's, in order), and the indices of the raised
/// exception's frames from the crash outwards.
pub fn frames_of_event(event: &crate::events::Event) -> (Vec<FrameInput>, Vec<usize>) {
    let chains: Vec<&[crate::events::Frame]> = if event.exceptions.is_empty() {
        vec![&event.stacktrace]
    } else {
        event.exceptions.iter().map(|e| e.frames.as_slice()).collect()
    };
    // Events run caller → callee: the crash is last.
    frames_of_chains(&chains, true)
}

/// The frames of exception chains (the raised one last) that carry a file location, in the order given, and the
/// indices of the raised chain's frames from the crash outwards; `crash_last` when each chain runs caller → callee.
pub fn frames_of_chains(chains: &[&[crate::events::Frame]], crash_last: bool) -> (Vec<FrameInput>, Vec<usize>) {
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
    if crash_last {
        raised.reverse();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_tells_a_written_line_from_a_moved_or_reformatted_one() {
        let file = |body: &str| format!("def f(a, b):\n{body}\n    pass\n");
        // Written: the old line differs.
        let edit = may_have_moved(
            &file("    return a / (b + 1)"),
            &file("    return a / b"),
            "    return a / b",
            "app/calc.py",
        );
        assert_eq!(edit, Change::Written);
        // A formatter re-indented it (black, gofmt, prettier runs).
        let indent =
            may_have_moved(&file("  return a / b"), &file("    return a / b"), "    return a / b", "app/calc.py");
        assert_eq!(indent, Change::MovedOrReformatted);
        // Moved within the file: removed above, added below.
        let before = "import os\nx = compute()\n\ndef g():\n    pass\n";
        let after = "import os\n\ndef g():\n    pass\nx = compute()\n";
        assert_eq!(may_have_moved(before, after, "x = compute()", "app/calc.py"), Change::MovedOrReformatted);
        // A copy of a line that stays where it was is no move.
        let copied = format!("{before}y = 1\nx = compute()\n");
        assert_eq!(may_have_moved(before, &copied, "x = compute()", "app/calc.py"), Change::Written);
        // A big block arrived at once (here a new file): maybe from another file of the same commit.
        let block: String = (0..25).map(|i| format!("line {i}\n")).collect();
        assert_eq!(may_have_moved("", &block, "line 3", "app/calc.py"), Change::Block);
        assert_eq!(may_have_moved("", "one\ntwo\n", "two", "app/calc.py"), Change::Written);
        assert!(has_line("a\n  x  =  1\n", "x=1") && !has_line("a\nx = 2\n", "x=1"));
    }

    /// The shortcut for a line with no earlier text (a file rewritten, as tokio's scheduler was in #2273: 563 lines
    /// added, 470 removed) gives what the diff gives, on rewrites, moves and small edits alike.
    #[test]
    fn a_line_without_earlier_text_in_a_rewritten_file_is_a_block_as_the_diff_says() {
        let old_body: Vec<String> = (0..60).map(|i| format!("    step_{i}(core);")).collect();
        let mut rewritten: Vec<String> = (0..30).map(|i| format!("    core = self.step_{i}(core)?;")).collect();
        rewritten.insert(12, "    core = self.run_task(task, core)?;".into());
        let mut moved = old_body.clone();
        moved.rotate_left(25); // 25 lines moved to the end, the new line above them
        moved.insert(3, "    core = self.run_task(task, core)?;".into());
        let mut small = old_body.clone();
        small.insert(7, "    core = self.run_task(task, core)?;".into());
        let mut kept_copy = old_body.clone();
        kept_copy.push("    step_3(core);".into());
        let (before, line) = (old_body.join("\n"), "    core = self.run_task(task, core)?;");
        for (after, change) in [
            (rewritten.join("\n"), Change::Block),
            (moved.join("\n"), Change::Block),
            (small.join("\n"), Change::Written),
        ] {
            let (old, new): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
            let wanted: String = line.split_whitespace().collect();
            assert_eq!(may_have_moved(&before, &after, line, "src/worker.rs"), change);
            assert_eq!(diffed_change(&old, &new, &wanted, line, "src/worker.rs"), change);
        }
        assert_eq!(
            new_lines(&before.lines().collect::<Vec<_>>(), &kept_copy.iter().map(String::as_str).collect::<Vec<_>>()),
            1,
            "a second copy of a line is new text"
        );
    }

    /// The shortcut for a line whose earlier copy any diff must remove (junit's 30f2b16 "Applied new coding style"
    /// re-indented ParentRunner.java whole) gives what the diff gives, and stays out of the way where a copy is kept.
    #[test]
    fn a_line_whose_earlier_copy_every_diff_removes_is_moved_or_reformatted_as_the_diff_says() {
        let body: Vec<String> = (0..40).map(|i| format!("\t\tstatement_{i}.evaluate();")).collect();
        let line = "            statement_7.evaluate();";
        let wanted: String = line.split_whitespace().collect();
        let reindented: Vec<String> = body.iter().map(|l| l.replace('\t', "    ")).collect();
        let mut moved = body.clone();
        let taken = moved.remove(7);
        moved.push(taken);
        let mut copied = body.clone();
        copied.push("\t\tstatement_7.evaluate();".into());
        let mut edited = body.clone();
        edited.insert(3, line.into());
        let before = body.join("\n");
        for (after, line, removed, change) in [
            (reindented.join("\n"), line, true, Change::MovedOrReformatted),
            (moved.join("\n"), "\t\tstatement_7.evaluate();", false, Change::MovedOrReformatted),
            (copied.join("\n"), "\t\tstatement_7.evaluate();", false, Change::Written),
            (edited.join("\n"), line, false, Change::Written),
        ] {
            let (old, new): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
            assert_eq!(removed_by_any_diff(&old, &new, &wanted), removed, "{line}");
            assert_eq!(may_have_moved(&before, &after, line, "src/ParentRunner.java"), change);
            assert_eq!(diffed_change(&old, &new, &wanted, line, "src/ParentRunner.java"), change);
        }
    }

    #[test]
    fn a_line_a_formatter_only_restyled_is_found_at_its_place_before() {
        // sidekiq's 32c55e3 "Use standardrb for source styling" (lib/sidekiq/processor.rb): single quotes became
        // double ones. git sees a change; the code is the same.
        let before = "def dispatch\n  worker.jid = job_hash['jid']\n  yield\nend\n";
        let after = "def dispatch\n  worker.jid = job_hash[\"jid\"]\n  yield\nend\n";
        let line = "  worker.jid = job_hash[\"jid\"]";
        assert_eq!(may_have_moved(before, after, line, "lib/sidekiq/processor.rb"), Change::Restyled(2));
        // prettier adding semicolons and double quotes (koa's lib/context.js shape).
        let js = "this.res.end('ok')";
        assert!(same_but_style(js, "    this.res.end(\"ok\");", "lib/context.js"));
        // black's quotes and trailing comma (a Python call's argument line).
        assert!(same_but_style("    'retries': 3", "    \"retries\": 3,", "src/urllib3/util/retry.py"));
        // Where quotes differ in meaning, or the line interpolates, escapes or templates: a real change.
        assert!(!same_but_style("r := 'a'", "r := \"a\"", "command.go"));
        assert!(!same_but_style("puts '#{x}'", "puts \"#{x}\"", "lib/rack/lint.rb"));
        assert!(!same_but_style("echo '$a';", "echo \"$a\";", "src/Client.php"));
        assert!(!same_but_style("s = 'a\\n'", "s = \"a\\n\"", "app/calc.py"));
        // A different value is no restyle.
        assert!(!same_but_style("x = d['a']", "x = d[\"b\"]", "app/calc.py"));
        assert_eq!(may_have_moved("x = d['a']\n", "x = d[\"b\"]\n", "x = d[\"b\"]", "app/calc.py"), Change::Written);
    }

    #[tokio::test]
    async fn a_block_counts_as_a_possible_move_only_where_the_commit_changed_a_file_with_that_line() {
        let repo = crate::git::ScratchRepo::new();
        let commit = |files: &[(&str, Option<&str>)]| repo.commit(files);
        let root =
            commit(&[("lib/util.py", Some("def helper():\n    return total / count\n")), ("README", Some("r\n"))]);
        // A commit that moves the helper's body into a new file (deleting it from lib/util.py).
        let moved = commit(&[("lib/util.py", None), ("app/new.py", Some("def helper():\n    return total / count\n"))]);
        // A commit that changes another file without that line, and writes the line anew.
        let written = commit(&[("README", Some("s\n")), ("app/other.py", Some("return total / count\n"))]);
        let git = Git::new("git", std::time::Duration::from_secs(10), None, true);
        let mut reader = ObjectReader::open(&git, repo.dir.path()).expect("test set-up");
        assert_eq!(
            copy_source(&mut reader, &root, "README", "x").await.expect("test set-up"),
            Some(false),
            "a root commit"
        );
        assert_eq!(
            copy_source(&mut reader, &moved, "app/new.py", "returntotal/count").await.expect("test set-up"),
            Some(true)
        );
        assert_eq!(
            copy_source(&mut reader, &written, "app/other.py", "returntotal/count").await.expect("test set-up"),
            Some(false)
        );
    }
}
