//! Blame at a given commit: who last changed each wanted line, honouring that commit's `.git-blame-ignore-revs`
//! and `.mailmap`. The `git` CLI does the work (all wanted lines of a file in one call); results are cached with a
//! bound, and concurrent requests for one file share one git call.

use anyhow::{bail, Context as _};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::Git;

/// The commit that last changed one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlameLine {
    pub commit: String,
    pub author_name: String,
    pub author_email: String,
    pub author_time: i64,
    pub summary: String,
    /// The path and line in `commit` (renames and moves followed as git does).
    pub orig_path: String,
    pub orig_line: u32,
    /// The line's text at the blamed revision (used in explanations; not part of the serialised blame).
    #[serde(skip)]
    pub content: String,
}

/// Something that can blame lines; the `git` CLI is the one implementation, and the reference any other must agree
/// with.
#[async_trait]
pub trait BlameEngine: Send + Sync {
    /// Blames `lines` (1-based) of `path` at `rev`, skipping the commits in `ignore_revs`. Lines past the end of the
    /// file are left out of the answer.
    ///
    /// # Errors
    /// When the file does not exist at `rev` or git fails.
    async fn blame(
        &self,
        repo: &Path,
        rev: &str,
        path: &str,
        lines: &[u32],
        ignore_revs: &[String],
    ) -> anyhow::Result<HashMap<u32, BlameLine>>;
}

/// Alphanumeric characters a single line needs for git to recognise it as moved or copied.
const MOVED_CHARS: u32 = 10;

/// Blame by `git blame --porcelain`, with the `.mailmap` of the blamed revision.
pub struct GitCliBlame {
    git: Git,
}

impl GitCliBlame {
    /// Plain `git blame`: the commit that last changed each line (the record a frame keeps).
    pub fn new(git: Git) -> GitCliBlame {
        GitCliBlame { git }
    }

    /// Who *wrote* a line that plain blame gave to `commit` (at `path`:`line` there), looking past a commit that only
    /// moved it (within a file, or from another file changed in the same commit) or changed its white space: `git
    /// blame -w -M -C` started at `commit` itself (nothing after it touched the line, so nothing after it needs
    /// walking), with the `.mailmap` of `mailmap_rev` so identities read as in the plain blame.
    ///
    /// # Errors
    /// When git fails.
    pub async fn writer(
        &self,
        repo: &Path,
        commit: &str,
        mailmap_rev: &str,
        path: &str,
        line: u32,
        ignore_revs: &[String],
    ) -> anyhow::Result<Option<BlameLine>> {
        let mut args = vec![
            "-c".to_owned(),
            format!("mailmap.blob={mailmap_rev}:.mailmap"),
            "blame".into(),
            "--porcelain".into(),
            "-w".into(),
            // Move and copy detection wants 20 (-M) and 40 (-C) alphanumeric characters to recognise a block by
            // default; one line of code has fewer, so a short moved line would be taken for a new one.
            format!("-M{MOVED_CHARS}"),
            format!("-C{MOVED_CHARS}"),
        ];
        for r in ignore_revs {
            args.push("--ignore-rev".into());
            args.push(r.clone());
        }
        anyhow::ensure!(commit.bytes().all(|b| b.is_ascii_hexdigit()), "blame needs a commit id, not `{commit}`");
        args.extend(["-L".into(), format!("{line},{line}"), commit.to_owned(), "--".into(), path.to_owned()]);
        let out = self.git.run(Some(repo), "git blame -w -M -C", &args).await?;
        Ok(parse_porcelain(&String::from_utf8_lossy(&out))?.remove(&line))
    }

    async fn run(
        &self,
        repo: &Path,
        rev: &str,
        path: &str,
        lines: &[u32],
        ignore_revs: &[String],
    ) -> anyhow::Result<Result<Vec<u8>, String>> {
        let mut args =
            vec!["-c".to_owned(), format!("mailmap.blob={rev}:.mailmap"), "blame".into(), "--porcelain".into()];
        for r in ignore_revs {
            args.push("--ignore-rev".into());
            args.push(r.clone());
        }
        for l in lines {
            args.push("-L".into());
            args.push(format!("{l},{l}"));
        }
        // No `--end-of-options` here: git blame then takes the path after `--` for a revision (git 2.47). `rev`
        // is always a resolved commit id, and the path follows `--`, so neither can be read as an option.
        anyhow::ensure!(rev.bytes().all(|b| b.is_ascii_hexdigit()), "blame needs a resolved commit id, not `{rev}`");
        args.extend([rev.to_owned(), "--".to_owned(), path.to_owned()]);
        let out = self.git.output(Some(repo), &args).await?;
        Ok(if out.code == Some(0) { Ok(out.stdout) } else { Err(out.stderr) })
    }
}

#[async_trait]
impl BlameEngine for GitCliBlame {
    async fn blame(
        &self,
        repo: &Path,
        rev: &str,
        path: &str,
        lines: &[u32],
        ignore_revs: &[String],
    ) -> anyhow::Result<HashMap<u32, BlameLine>> {
        let mut wanted: Vec<u32> = lines.iter().copied().filter(|&l| l > 0).collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        let out = match self.run(repo, rev, path, &wanted, ignore_revs).await? {
            Ok(out) => out,
            Err(stderr) => {
                // "file x has only N lines": drop the lines past the end and ask again.
                let Some(n) = stderr
                    .split("has only ")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    bail!("git blame of {path} at {rev} failed: {stderr}");
                };
                wanted.retain(|&l| l <= n);
                if wanted.is_empty() {
                    return Ok(HashMap::new());
                }
                match self.run(repo, rev, path, &wanted, ignore_revs).await? {
                    Ok(out) => out,
                    Err(stderr) => bail!("git blame of {path} at {rev} failed: {stderr}"),
                }
            }
        };
        parse_porcelain(&String::from_utf8_lossy(&out))
    }
}

#[derive(Default, Clone)]
struct CommitInfo {
    author_name: String,
    author_email: String,
    author_time: i64,
    summary: String,
    filename: String,
}

/// Parses `git blame --porcelain`: a header `<sha> <orig> <final> [<n>]` per line, the commit's details only the
/// first time it appears, then the line's content behind a tab.
pub fn parse_porcelain(out: &str) -> anyhow::Result<HashMap<u32, BlameLine>> {
    let mut commits: HashMap<String, CommitInfo> = HashMap::new();
    let mut result = HashMap::new();
    let mut current: Option<(String, u32, u32)> = None;
    for line in out.lines() {
        if let Some(content) = line.strip_prefix('\t') {
            let (sha, orig, fin) = current.take().context("blame content without a header")?;
            let info = commits.get(&sha).cloned().unwrap_or_default();
            result.insert(
                fin,
                BlameLine {
                    commit: sha,
                    author_name: info.author_name,
                    author_email: info.author_email,
                    author_time: info.author_time,
                    summary: info.summary,
                    orig_path: info.filename,
                    orig_line: orig,
                    content: content.to_owned(),
                },
            );
            continue;
        }
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        if (key.len() == 40 || key.len() == 64) && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut nums = value.split(' ');
            let orig: u32 = nums.next().and_then(|n| n.parse().ok()).context("blame header without original line")?;
            let fin: u32 = nums.next().and_then(|n| n.parse().ok()).context("blame header without final line")?;
            commits.entry(key.to_owned()).or_default();
            current = Some((key.to_owned(), orig, fin));
            continue;
        }
        let Some((sha, _, _)) = &current else { continue };
        let Some(info) = commits.get_mut(sha) else { continue };
        match key {
            "author" => info.author_name = value.to_owned(),
            "author-mail" => info.author_email = value.trim_start_matches('<').trim_end_matches('>').to_owned(),
            "author-time" => info.author_time = value.parse().unwrap_or_default(),
            "summary" => info.summary = value.to_owned(),
            "filename" => info.filename = value.to_owned(),
            _ => {}
        }
    }
    Ok(result)
}

type LineKey = (String, String, u32);
/// Cached answers (`None`: past the end of the file) and their insertion order, for eviction.
type LineCache = (HashMap<LineKey, Option<BlameLine>>, VecDeque<LineKey>);
/// One lock per (revision, path), so concurrent requests for a file share one git call. Held weakly: a lock no
/// request holds any more is dropped.
type FileLocks = HashMap<(String, String), std::sync::Weak<tokio::sync::Mutex<()>>>;

/// A bounded cache in front of any engine. A repeated line costs no git process; two requests for one file at one
/// revision wait for each other instead of running git twice.
pub struct CachedBlame {
    inner: Arc<dyn BlameEngine>,
    max_lines: usize,
    lines: Mutex<LineCache>,
    files: Mutex<FileLocks>,
    /// How many times the inner engine ran (for tests and metrics).
    calls: std::sync::atomic::AtomicU64,
    /// Lines answered from the cache, and lines that needed the engine.
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

impl CachedBlame {
    pub fn new(inner: Arc<dyn BlameEngine>, max_lines: usize) -> CachedBlame {
        CachedBlame {
            inner,
            max_lines: max_lines.max(1),
            lines: Mutex::new((HashMap::new(), VecDeque::new())),
            files: Mutex::new(HashMap::new()),
            calls: std::sync::atomic::AtomicU64::new(0),
            hits: std::sync::atomic::AtomicU64::new(0),
            misses: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Lines answered from the cache so far, and lines that needed git.
    pub fn line_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.hits.load(Relaxed), self.misses.load(Relaxed))
    }

    pub fn engine_calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn cached(&self, rev: &str, path: &str, lines: &[u32]) -> (HashMap<u32, BlameLine>, Vec<u32>) {
        let guard = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        for &l in lines {
            match guard.0.get(&(rev.to_owned(), path.to_owned(), l)) {
                Some(Some(b)) => {
                    found.insert(l, b.clone());
                }
                Some(None) => {}
                None => missing.push(l),
            }
        }
        (found, missing)
    }

    fn remember(&self, rev: &str, path: &str, asked: &[u32], got: &HashMap<u32, BlameLine>) {
        let mut guard = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *guard;
        for &l in asked {
            let key = (rev.to_owned(), path.to_owned(), l);
            if map.insert(key.clone(), got.get(&l).cloned()).is_none() {
                order.push_back(key);
            }
        }
        while order.len() > self.max_lines {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }
}

#[async_trait]
impl BlameEngine for CachedBlame {
    async fn blame(
        &self,
        repo: &Path,
        rev: &str,
        path: &str,
        lines: &[u32],
        ignore_revs: &[String],
    ) -> anyhow::Result<HashMap<u32, BlameLine>> {
        let unique: Vec<u32> = lines.iter().copied().collect::<HashSet<_>>().into_iter().collect();
        use std::sync::atomic::Ordering::Relaxed;
        let (mut found, missing) = self.cached(rev, path, &unique);
        if missing.is_empty() {
            self.hits.fetch_add(unique.len() as u64, Relaxed);
            return Ok(found);
        }
        let file_lock = {
            let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
            if files.len() > 1024 {
                files.retain(|_, w| w.strong_count() > 0);
            }
            let key = (rev.to_owned(), path.to_owned());
            match files.get(&key).and_then(std::sync::Weak::upgrade) {
                Some(held) => held,
                None => {
                    let fresh = Arc::new(tokio::sync::Mutex::new(()));
                    files.insert(key, Arc::downgrade(&fresh));
                    fresh
                }
            }
        };
        let _guard = file_lock.lock().await;
        // Another request may have blamed these lines while this one waited.
        let (more, missing) = self.cached(rev, path, &missing);
        found.extend(more);
        self.hits.fetch_add((unique.len() - missing.len()) as u64, Relaxed);
        self.misses.fetch_add(missing.len() as u64, Relaxed);
        if !missing.is_empty() {
            self.calls.fetch_add(1, Relaxed);
            let got = self.inner.blame(repo, rev, path, &missing, ignore_revs).await?;
            self.remember(rev, path, &missing, &got);
            found.extend(got);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn porcelain_with_repeated_commits() {
        let out = "48d23a3b629bb060b1ad5a37832648668458d6d4 1 1 2\nauthor F\nauthor-mail <f@x>\nauthor-time 1795353204\nauthor-tz +0000\nsummary format\nprevious 8041081cbef5228dcb273e0f65ceb7d11377ba82 f.py\nfilename f.py\n\ta \n48d23a3b629bb060b1ad5a37832648668458d6d4 2 2\n\tB \n1c489410f6b607532ae75043fb6fab362074bf2b 7 3 1\nauthor A\nauthor-mail <a@x>\nauthor-time 17\nsummary one\nboundary\nfilename old/f.py\n\tc\n";
        let b = parse_porcelain(out).expect("parses");
        assert_eq!(b.len(), 3);
        assert_eq!(b[&2].commit, "48d23a3b629bb060b1ad5a37832648668458d6d4");
        assert_eq!(b[&2].author_email, "f@x");
        assert_eq!(b[&2].content, "B ");
        assert_eq!((b[&3].orig_path.as_str(), b[&3].orig_line, b[&3].author_time), ("old/f.py", 7, 17));
        assert!(parse_porcelain("\torphan\n").is_err());
    }
}
