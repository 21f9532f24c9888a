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
use crate::git::tree::{read_files, TreeCache, TreeFiles};
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

    /// Resolves `rev` to its commit and that commit's tree in one git process.
    async fn resolve_with_tree(&self, repo: &Path, rev: &str) -> anyhow::Result<(String, String)> {
        let out = self
            .git
            .output(
                Some(repo),
                ["rev-parse", "--end-of-options", &format!("{rev}^{{commit}}"), &format!("{rev}^{{tree}}")],
            )
            .await?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut ids = text.lines().map(str::trim).filter(|l| l.len() >= 40 && l.bytes().all(|b| b.is_ascii_hexdigit()));
        match (out.code, ids.next(), ids.next()) {
            (Some(0), Some(commit), Some(tree)) => Ok((commit.to_owned(), tree.to_owned())),
            _ => anyhow::bail!("`{rev}` is not a commit of {}", repo.display()),
        }
    }

    /// The manifests, CODEOWNERS and `.git-blame-ignore-revs` of a tree, read in one git process (and the ignored
    /// revisions resolved in one more, when there are any).
    async fn tree_info(&self, repo: &Path, sha: &str, tree: &TreeFiles) -> anyhow::Result<Arc<TreeInfo>> {
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
        let mut files = read_files(&self.git, repo, sha, &wanted).await?;
        let codeowners = codeowners_path.and_then(|p| files.get(*p).map(|text| Arc::new(CodeOwners::parse(p, text))));
        let ignore_revs = match files.remove(IGNORE_REVS) {
            Some(text) => self.resolve_ignored(repo, &text).await,
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

    /// The commits a `.git-blame-ignore-revs` lists that exist in `repo` (git refuses unknown ones), in one
    /// `git cat-file --batch-check`. A failure ignores nothing.
    async fn resolve_ignored(&self, repo: &Path, text: &str) -> Vec<String> {
        let entries: Vec<&str> = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim())
            .filter(|e| e.len() >= 7 && e.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect();
        if entries.is_empty() {
            return Vec::new();
        }
        let input: String = entries.iter().map(|e| format!("{e}^{{commit}}\n")).collect();
        match self
            .git
            .run_with_input(
                Some(repo),
                "resolving ignored revisions",
                ["cat-file", "--batch-check"],
                input.into_bytes(),
            )
            .await
        {
            Ok(out) => String::from_utf8_lossy(&out)
                .lines()
                .filter_map(|l| {
                    let mut f = l.split(' ');
                    let (sha, kind) = (f.next()?, f.next()?);
                    (kind == "commit").then(|| sha.to_owned())
                })
                .collect(),
            Err(e) => {
                warn!(error = %format!("{e:#}"), "could not resolve .git-blame-ignore-revs");
                Vec::new()
            }
        }
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
        // A deploy's commit is a full id already: list its tree straight away (git refuses it if it is no commit).
        let full_id = matches!(rev.len(), 40 | 64) && rev.bytes().all(|b| b.is_ascii_hexdigit());
        let (sha, tree) = if full_id {
            let tree = self
                .trees
                .files_of_commit(&self.git, repo, rev)
                .await
                .map_err(|e| anyhow::anyhow!("`{rev}` is not a commit of {}: {e:#}", repo.display()))?;
            (rev.to_ascii_lowercase(), tree)
        } else {
            let (sha, tree_id) = self.resolve_with_tree(repo, rev).await?;
            (sha.clone(), self.trees.files_of_tree(&self.git, repo, &tree_id).await?)
        };
        let info = self.tree_info(repo, &sha, &tree).await?;
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
            blame_files(&self.blame, &self.git, repo, &sha, wanted, &ignore, crash_frame).await?;
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
                mapped.get(i).and_then(Mapped::repo_path).is_some_and(|p| !vendored(p)) && blame_of(i).is_some()
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
            let writer = self.writer(repo, &sha, plain, &ignore).await;
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
    async fn writer(&self, repo: &Path, sha: &str, plain: &BlameLine, ignore: &[String]) -> Option<BlameLine> {
        let key = (plain.commit.clone(), plain.orig_path.clone(), plain.orig_line);
        if let Some(w) = self.writer_cache.get(&key) {
            return w;
        }
        let w = match find_writer(&self.git, repo, sha, plain, ignore).await {
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

/// How many `git blame` processes one assignment runs at once.
const BLAME_CONCURRENCY: usize = 8;

/// Who wrote the line that plain blame gave to `plain.commit`, when that commit only moved or reformatted it. First
/// the cheap question, from that commit's diff of this one file: did it remove a line with the same text (white space
/// aside: a reformat or a move within the file), or add a block of at least [`MOVED_BLOCK_LINES`] lines (which may
/// have come from another file)? Only then `git blame -w -M -C` from that commit ([`GitCliBlame::writer`]).
/// `None`: the commit wrote the line.
async fn find_writer(
    git: &Git,
    repo: &Path,
    sha: &str,
    plain: &BlameLine,
    ignore: &[String],
) -> anyhow::Result<Option<BlameLine>> {
    let diff = git
        .run(
            Some(repo),
            "reading the blamed commit",
            [
                "show",
                "--format=",
                "--no-color",
                "--no-ext-diff",
                "--no-renames",
                "--diff-merges=first-parent",
                "-U0",
                "--end-of-options",
                &plain.commit,
                "--",
                &format!(":(literal){}", plain.orig_path),
            ],
        )
        .await?;
    if !may_have_moved(&String::from_utf8_lossy(&diff), &plain.content) {
        return Ok(None);
    }
    GitCliBlame::new(git.clone()).writer(repo, &plain.commit, sha, &plain.orig_path, plain.orig_line, ignore).await
}

/// A block this long, added in one commit, may have been moved there from another file.
const MOVED_BLOCK_LINES: usize = 20;

/// Whether a one-file `-U0` diff shows `line` moved or reformatted rather than written: a removed line with the same
/// text (white space aside), or a block of [`MOVED_BLOCK_LINES`] added lines.
fn may_have_moved(diff: &str, line: &str) -> bool {
    let wanted: String = line.split_whitespace().collect();
    let mut added = 0;
    for l in diff.lines() {
        if l.starts_with("+++") || l.starts_with("---") {
            continue;
        }
        if let Some(old) = l.strip_prefix('-') {
            if old.split_whitespace().collect::<String>() == wanted {
                return true;
            }
        } else if l.starts_with('+') {
            added += 1;
        }
    }
    added >= MOVED_BLOCK_LINES
}

/// A writer blame's cache key (the plain commit, path and line there) and its answer.
type EarlyWriter = ((String, String, u32), Option<BlameLine>);

enum BlameDone {
    Plain(String, anyhow::Result<HashMap<u32, BlameLine>>),
    Writer(EarlyWriter),
}

/// Blames the wanted lines of every file, several files at once — `first`'s file first, and as soon as its line is
/// blamed, that line's writer (see [`GitCliBlame::writer`]) alongside the rest.
async fn blame_files(
    engine: &Arc<CachedBlame>,
    git: &Git,
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
    loop {
        while tasks.len() < BLAME_CONCURRENCY {
            let Some((path, lines)) = pending.next() else { break };
            let (engine, repo, sha, path, ignore) =
                (engine.clone(), repo.to_owned(), sha.to_owned(), path.to_owned(), ignore.clone());
            tasks.spawn(async move {
                let got = engine.blame(&repo, &sha, &path, &lines, &ignore).await;
                BlameDone::Plain(path, got)
            });
        }
        let Some(done) = tasks.join_next().await else { break };
        match done.context("a blame task failed")? {
            BlameDone::Plain(path, got) => {
                let got = got.with_context(|| format!("blaming {path}"))?;
                if let Some(plain) = first.filter(|(p, _)| *p == path).and_then(|(_, l)| got.get(&l)) {
                    let key = (plain.commit.clone(), plain.orig_path.clone(), plain.orig_line);
                    let (git, repo, sha, ignore, plain) =
                        (git.clone(), repo.to_owned(), sha.to_owned(), ignore.clone(), plain.clone());
                    tasks.spawn(async move {
                        let w = find_writer(&git, &repo, &sha, &plain, &ignore).await;
                        if let Err(e) = &w {
                            warn!(error = %format!("{e:#}"), path = key.1, "blame -w -M -C failed; keeping plain blame");
                        }
                        BlameDone::Writer((key, w.ok().flatten()))
                    });
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
        // Written: the old line differs.
        let edit = "diff --git a/p.py b/p.py\n--- a/p.py\n+++ b/p.py\n@@ -2 +2 @@\n-    return a / (b + 1)\n+    return a / b\n";
        assert!(!may_have_moved(edit, "    return a / b"));
        // A formatter re-indented it (black, gofmt, prettier runs).
        let indent = "--- a/p.py\n+++ b/p.py\n@@ -2 +2 @@\n-  return a / b\n+    return a / b\n";
        assert!(may_have_moved(indent, "    return a / b"));
        // A big block arrived at once: maybe from another file of the same commit.
        let block: String = (0..25).map(|i| format!("+line {i}\n")).collect();
        assert!(may_have_moved(&format!("--- /dev/null\n+++ b/new.py\n@@ -0,0 +1,25 @@\n{block}"), "line 3"));
        // The `---` header is not a removed line.
        assert!(!may_have_moved("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+x\n", "-- a/x"));
    }
}
