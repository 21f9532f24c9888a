//! A running `git cat-file --batch-command` of one repository: objects read by name one after another without
//! starting a git process for each, so a question that would have been a process of its own (a file at a commit, a
//! commit's parent version of it, whether an id names a commit) costs a round trip on a pipe.

use anyhow::{bail, Context as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::store::ObjectStore;
use super::Git;

/// One object as `cat-file` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub oid: String,
    pub kind: String,
}

/// Objects of one repository by name: read in process from its object store where [`ObjectStore`] can, otherwise
/// from a `git cat-file --batch-command` process answering one request at a time, started when first needed (or at
/// once when the store cannot be read here, so that its start-up overlaps other work) and killed when dropped.
pub struct ObjectReader {
    store: Option<ObjectStore>,
    cat: Option<CatFile>,
    git: Git,
    repo: PathBuf,
    timeout: Duration,
}

/// A running `git cat-file --batch-command`.
struct CatFile {
    // Kept so the process is killed (`kill_on_drop`) when the reader goes.
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// An answer: the object's id and type, and its contents (`None`: no such object).
type Answer = Option<(ObjectInfo, Vec<u8>)>;

impl ObjectReader {
    /// A reader of `repo`'s objects.
    ///
    /// # Errors
    /// When the store cannot be read in process and git cannot be started.
    pub fn open(git: &Git, repo: &Path) -> anyhow::Result<ObjectReader> {
        let store = ObjectStore::open(repo);
        let cat = if store.is_none() { Some(CatFile::spawn(git, repo)?) } else { None };
        Ok(ObjectReader { store, cat, git: git.clone(), repo: repo.to_owned(), timeout: git.timeout() })
    }

    /// A reader that asks git for everything (to compare the object store's answers with).
    #[cfg(test)]
    fn git_only(git: &Git, repo: &Path) -> anyhow::Result<ObjectReader> {
        let cat = Some(CatFile::spawn(git, repo)?);
        Ok(ObjectReader { store: None, cat, git: git.clone(), repo: repo.to_owned(), timeout: git.timeout() })
    }

    fn cat(&mut self) -> anyhow::Result<&mut CatFile> {
        match &mut self.cat {
            Some(c) => Ok(c),
            slot => Ok(slot.insert(CatFile::spawn(&self.git, &self.repo)?)),
        }
    }

    /// The content of the object `name` (`<rev>:<path>`, `<rev>^:<path>`, an id…), or `None` when there is no such
    /// object. Anything but a blob is returned as git prints it.
    ///
    /// # Errors
    /// When the name cannot be asked for on one line, or git fails, stops or does not answer within the timeout.
    pub async fn contents(&mut self, name: &str) -> anyhow::Result<Answer> {
        if let Some(answer) = self.local(name) {
            return Ok(answer);
        }
        let timeout = self.timeout;
        let cat = self.cat()?;
        match tokio::time::timeout(timeout, cat.ask("contents", name, true)).await {
            Ok(answer) => answer,
            Err(_) => bail!("git cat-file did not answer within {} s", timeout.as_secs()),
        }
    }

    /// The id and type of the object `name`, or `None` when there is none.
    ///
    /// # Errors
    /// As for [`ObjectReader::contents`].
    pub async fn info(&mut self, name: &str) -> anyhow::Result<Option<ObjectInfo>> {
        if let Some(answer) = self.local(name) {
            return Ok(answer.map(|(info, _)| info));
        }
        let timeout = self.timeout;
        let cat = self.cat()?;
        match tokio::time::timeout(timeout, cat.ask("info", name, false)).await {
            Ok(answer) => Ok(answer?.map(|(info, _)| info)),
            Err(_) => bail!("git cat-file did not answer within {} s", timeout.as_secs()),
        }
    }

    /// The contents of several objects, in the order asked (`None` for one that does not exist). Those git must
    /// answer go out together, a bounded number at a time, so the answers come back without a round trip each.
    ///
    /// # Errors
    /// As for [`ObjectReader::contents`].
    pub async fn contents_of(&mut self, names: &[String]) -> anyhow::Result<Vec<Answer>> {
        let mut answers: Vec<Option<Answer>> = names.iter().map(|n| self.local(n)).collect();
        let left: Vec<String> =
            names.iter().zip(&answers).filter(|(_, a)| a.is_none()).map(|(n, _)| n.clone()).collect();
        if !left.is_empty() {
            let timeout = self.timeout;
            let cat = self.cat()?;
            let mut from_git = match tokio::time::timeout(timeout, cat.ask_many(&left)).await {
                Ok(answer) => answer?.into_iter(),
                Err(_) => bail!("git cat-file did not answer within {} s", timeout.as_secs()),
            };
            for a in answers.iter_mut().filter(|a| a.is_none()) {
                *a = from_git.next();
            }
        }
        Ok(answers.into_iter().map(Option::flatten).collect())
    }

    /// The tree `oid` from the object store, as it keeps it; `None` leaves the question to git (see
    /// [`ObjectReader::local`]), also for an object that is not a tree, which git then names.
    fn local_tree(&mut self, oid: &str) -> Option<Arc<Vec<u8>>> {
        match self.store.as_mut()?.read(oid) {
            Ok(Some(("tree", raw))) => Some(raw),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), oid, "object store read failed; asking git");
                None
            }
        }
    }

    /// The answer for `name` from the object store, when it can give it: `None` leaves the question to git (a name
    /// this does not parse, an object the store lacks, anything it could not read).
    fn local(&mut self, name: &str) -> Option<Answer> {
        let store = self.store.as_mut()?;
        match resolve(store, name) {
            Ok(answer) => answer,
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), name, "object store read failed; asking git");
                None
            }
        }
    }

    /// The text of several files at `rev`; files that do not exist there (or are not files) are left out.
    ///
    /// # Errors
    /// As for [`ObjectReader::contents`].
    pub async fn read_files(
        &mut self,
        rev: &str,
        paths: &[String],
    ) -> anyhow::Result<std::collections::HashMap<String, String>> {
        let names: Vec<String> = paths.iter().map(|p| format!("{rev}:{p}")).collect();
        let answers = self.contents_of(&names).await?;
        Ok(paths
            .iter()
            .zip(answers)
            .filter_map(|(p, a)| {
                let (info, content) = a?;
                (info.kind == "blob").then(|| (p.clone(), String::from_utf8_lossy(&content).into_owned()))
            })
            .collect())
    }

    /// The commit `rev` names and every file path of its tree (as `git ls-tree -r --name-only` lists them, in that
    /// order, submodules included), read level by level: one batch of requests per directory depth.
    ///
    /// `None` when `rev` names no commit.
    ///
    /// # Errors
    /// As for [`ObjectReader::contents`], or when the repository is damaged.
    pub async fn list_files(&mut self, rev: &str) -> anyhow::Result<Option<(String, Vec<String>)>> {
        let Some((info, raw)) = self.contents(&format!("{rev}^{{commit}}")).await? else {
            return Ok(None);
        };
        if info.kind != "commit" {
            return Ok(None);
        }
        let oid = info.oid;
        let tree = parse_commit(&raw).0.context("a commit without a tree")?;
        let id_len = tree.len() / 2;
        let mut files = Vec::new();
        let mut level: Vec<(String, String)> = vec![(String::new(), tree)];
        while !level.is_empty() {
            // Trees the store has are parsed where it keeps them; the others are asked of git together.
            let mut raws: Vec<Option<Arc<Vec<u8>>>> = level.iter().map(|(_, oid)| self.local_tree(oid)).collect();
            let missing: Vec<String> =
                level.iter().zip(&raws).filter(|(_, r)| r.is_none()).map(|((_, oid), _)| oid.clone()).collect();
            if !missing.is_empty() {
                let mut answers = self.contents_of(&missing).await?.into_iter();
                for slot in raws.iter_mut().filter(|r| r.is_none()) {
                    let (info, raw) = answers.next().flatten().context("a tree named by its parent is missing")?;
                    anyhow::ensure!(info.kind == "tree", "a tree entry names a {}", info.kind);
                    *slot = Some(Arc::new(raw));
                }
            }
            let mut next = Vec::new();
            for ((dir, _), raw) in level.into_iter().zip(raws) {
                let raw = raw.context("a tree named by its parent is missing")?;
                tree_entries(&raw, id_len, |mode, name, id| {
                    let path = format!("{dir}{}", String::from_utf8_lossy(name));
                    if mode == TREE_MODE.as_bytes() {
                        next.push((format!("{path}/"), hex::encode(id)));
                    } else {
                        files.push(path);
                    }
                })?;
            }
            level = next;
        }
        // Byte order of the whole path is git's own tree order (a directory sorts as its name and a slash).
        files.sort_unstable();
        Ok(Some((oid, files)))
    }
}

/// The answer to `name` from `store`, for the names assignment asks (`<id>`, `<id>^{commit}`, `<id>:<path>`,
/// `<id>^:<path>`, with a full lower-case commit or tag id): `Ok(None)` for any other name, or when the store lacks
/// an object on the way; `Ok(Some(None))` where git would answer "missing".
fn resolve(store: &mut ObjectStore, name: &str) -> anyhow::Result<Option<Answer>> {
    let is_id = |s: &str| s.len() == 40 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let read = |store: &mut ObjectStore, id: &str| -> anyhow::Result<Option<(&'static str, Vec<u8>)>> {
        Ok(store.read(id)?.map(|(kind, content)| (kind, Arc::unwrap_or_clone(content))))
    };
    let answer = |id: &str, kind: &str, content: Vec<u8>| {
        Some((ObjectInfo { oid: id.to_owned(), kind: kind.to_owned() }, content))
    };
    if is_id(name) {
        return Ok(read(store, name)?.map(|(kind, content)| answer(name, kind, content)));
    }
    // The commit a name starts from: tags peeled, as git does for `^{commit}` and `:`. `None`: ask git (also for a
    // tree, which `<tree>:<path>` starts from, and a blob).
    let commit = |store: &mut ObjectStore, id: &str| -> anyhow::Result<Option<(String, Vec<u8>)>> {
        let mut id = id.to_owned();
        for _ in 0..16 {
            let Some((kind, content)) = read(store, &id)? else { return Ok(None) };
            match kind {
                "commit" => return Ok(Some((id, content))),
                "tag" => {
                    let target = content.strip_prefix(b"object ").and_then(|t| t.get(..40));
                    let Some(target) = target.and_then(|t| std::str::from_utf8(t).ok()).filter(|t| is_id(t)) else {
                        return Ok(None);
                    };
                    id = target.to_owned();
                }
                _ => return Ok(None),
            }
        }
        Ok(None)
    };
    if let Some(id) = name.strip_suffix("^{commit}").filter(|id| is_id(id)) {
        return Ok(commit(store, id)?.map(|(id, content)| answer(&id, "commit", content)));
    }
    let Some((rev, path)) = name.split_once(':') else { return Ok(None) };
    let (rev, parent) = match rev.strip_suffix('^') {
        Some(r) => (r, true),
        None => (rev, false),
    };
    // Only plain paths: git reads `./`, `../` and empty parts its own way.
    if !is_id(rev) || path.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
        return Ok(None);
    }
    let Some((_, mut raw)) = commit(store, rev)? else { return Ok(None) };
    if parent {
        let Some(first) = parse_commit(&raw).1.into_iter().next() else { return Ok(Some(None)) };
        let Some((_, content)) = commit(store, &first)? else { return Ok(None) };
        raw = content;
    }
    let Some(mut id) = parse_commit(&raw).0.filter(|t| is_id(t)) else { return Ok(None) };
    for part in path.split('/') {
        // Trees on the way are parsed where the store keeps them, not copied.
        let Some((kind, tree)) = store.read(&id)? else { return Ok(None) };
        if kind != "tree" {
            return Ok(Some(None));
        }
        let Some(entry) = parse_tree(&tree, 20)?.into_iter().find(|e| e.name == part) else { return Ok(Some(None)) };
        if entry.mode == "160000" {
            return Ok(None); // a submodule's commit is not in this repository: git answers for it
        }
        id = entry.oid;
    }
    Ok(read(store, &id)?.map(|(kind, content)| answer(&id, kind, content)))
}

impl CatFile {
    fn spawn(git: &Git, repo: &Path) -> anyhow::Result<CatFile> {
        let mut child = git.spawn_piped(repo, ["cat-file", "--batch-command"])?;
        let stdin = child.stdin.take().context("cat-file's standard input")?;
        let stdout = BufReader::new(child.stdout.take().context("cat-file's standard output")?);
        Ok(CatFile { _child: child, stdin, stdout })
    }

    async fn ask_many(&mut self, names: &[String]) -> anyhow::Result<Vec<Option<(ObjectInfo, Vec<u8>)>>> {
        let mut answers = Vec::with_capacity(names.len());
        let mut rest = names;
        while !rest.is_empty() {
            // Few enough requests at once that git's standard input never fills while git waits for its answers to
            // be read (a pipe holds 64 KiB).
            let mut request = Vec::new();
            let mut taken = 0;
            for name in rest.iter().take(REQUESTS_AT_ONCE) {
                if taken > 0 && request.len() + name.len() + 10 > REQUEST_BYTES_AT_ONCE {
                    break;
                }
                taken += 1;
                if !name.contains(['\n', '\r']) {
                    request.extend_from_slice(format!("contents {name}\n").as_bytes());
                }
            }
            self.stdin.write_all(&request).await.context("writing to git cat-file")?;
            self.stdin.flush().await.context("writing to git cat-file")?;
            for name in &rest[..taken] {
                answers.push(if name.contains(['\n', '\r']) { None } else { self.answer(true).await? });
            }
            rest = &rest[taken..];
        }
        Ok(answers)
    }

    async fn ask(
        &mut self,
        command: &str,
        name: &str,
        with_content: bool,
    ) -> anyhow::Result<Option<(ObjectInfo, Vec<u8>)>> {
        // One request per line: a name with a line break cannot be asked for, and has no object.
        if name.contains('\n') || name.contains('\r') {
            return Ok(None);
        }
        self.stdin.write_all(format!("{command} {name}\n").as_bytes()).await.context("writing to git cat-file")?;
        self.stdin.flush().await.context("writing to git cat-file")?;
        self.answer(with_content).await
    }

    /// Reads one answer: `<oid> <type> <size>` and, when asked for, the content; `<name> missing` or
    /// `<name> ambiguous` for no object (the name may hold spaces).
    async fn answer(&mut self, with_content: bool) -> anyhow::Result<Option<(ObjectInfo, Vec<u8>)>> {
        let mut header = String::new();
        if self.stdout.read_line(&mut header).await.context("reading from git cat-file")? == 0 {
            bail!("git cat-file stopped");
        }
        let header = header.trim_end_matches('\n');
        if header.ends_with(" missing") || header.ends_with(" ambiguous") {
            return Ok(None);
        }
        let mut fields = header.splitn(3, ' ');
        let (Some(oid), Some(kind), Some(size)) = (fields.next(), fields.next(), fields.next()) else {
            bail!("an unexpected answer from git cat-file: {header}");
        };
        let info = ObjectInfo { oid: oid.to_owned(), kind: kind.to_owned() };
        if !with_content {
            return Ok(Some((info, Vec::new())));
        }
        let size: usize = size.parse().with_context(|| format!("an unexpected answer from git cat-file: {header}"))?;
        // The content and the line feed after it.
        let mut content = vec![0; size + 1];
        self.stdout.read_exact(&mut content).await.context("reading from git cat-file")?;
        content.pop();
        Ok(Some((info, content)))
    }
}

/// How many requests go to `cat-file` before their answers are read.
const REQUESTS_AT_ONCE: usize = 256;
const REQUEST_BYTES_AT_ONCE: usize = 32 << 10;

/// The mode git writes for a tree inside a tree.
const TREE_MODE: &str = "40000";

/// One entry of a tree object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub mode: String,
    pub name: String,
    pub oid: String,
}

impl TreeEntry {
    pub fn is_tree(&self) -> bool {
        self.mode == TREE_MODE
    }
}

/// Parses a raw tree object: `<mode> <name>\0<binary id>` per entry; `id_len` is 20 (SHA-1) or 32 (SHA-256).
pub fn parse_tree(raw: &[u8], id_len: usize) -> anyhow::Result<Vec<TreeEntry>> {
    let mut entries = Vec::new();
    tree_entries(raw, id_len, |mode, name, id| {
        entries.push(TreeEntry {
            mode: String::from_utf8_lossy(mode).into_owned(),
            name: String::from_utf8_lossy(name).into_owned(),
            oid: hex::encode(id),
        });
    })?;
    Ok(entries)
}

/// Calls `each` with the mode, name and binary id of every entry of a raw tree object, without copying them.
fn tree_entries(raw: &[u8], id_len: usize, mut each: impl FnMut(&[u8], &[u8], &[u8])) -> anyhow::Result<()> {
    let mut at = 0;
    while at < raw.len() {
        let space = memchr::memchr(b' ', &raw[at..]).context("a malformed tree object")? + at;
        let nul = memchr::memchr(0, &raw[space..]).context("a malformed tree object")? + space;
        let id = raw.get(nul + 1..nul + 1 + id_len).context("a truncated tree object")?;
        each(&raw[at..space], &raw[space + 1..nul], id);
        at = nul + 1 + id_len;
    }
    Ok(())
}

/// The tree and parents a raw commit object names.
pub fn parse_commit(raw: &[u8]) -> (Option<String>, Vec<String>) {
    let text = String::from_utf8_lossy(raw);
    let mut tree = None;
    let mut parents = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break; // the headers end here
        }
        if let Some(t) = line.strip_prefix("tree ") {
            tree = Some(t.to_owned());
        } else if let Some(p) = line.strip_prefix("parent ") {
            parents.push(p.to_owned());
        }
    }
    (tree, parents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_trees_and_commits_are_read() {
        let mut raw = b"100644 a file.txt\0".to_vec();
        raw.extend([0xab; 20]);
        raw.extend(b"40000 src\0");
        raw.extend([0x01; 20]);
        let entries = parse_tree(&raw, 20).expect("test set-up");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "a file.txt");
        assert_eq!(entries[0].oid, "ab".repeat(20));
        assert!(!entries[0].is_tree() && entries[1].is_tree());
        assert!(parse_tree(b"100644 x\0abc", 20).is_err());
        let commit = b"tree 1111\nparent 2222\nparent 3333\nauthor A <a@x> 1 +0000\n\nparent 4444 in the message\n";
        assert_eq!(parse_commit(commit), (Some("1111".into()), vec!["2222".into(), "3333".into()]));
    }

    #[tokio::test]
    async fn a_running_cat_file_answers_one_request_after_another() {
        let repo = crate::git::ScratchRepo::new();
        repo.commit(&[("a-b/x", Some("x\n")), ("a.txt", Some("a\n")), ("a/b/c", Some("c\n"))]);
        let head = repo.commit(&[("a b.txt", Some("one\ntwo\n"))]);
        let git = Git::new("git", Duration::from_secs(10), None, true);
        let mut reader = ObjectReader::open(&git, repo.dir.path()).expect("test set-up");
        let (info, content) =
            reader.contents(&format!("{head}:a b.txt")).await.expect("test set-up").expect("test set-up");
        assert_eq!((info.kind.as_str(), content.as_slice()), ("blob", b"one\ntwo\n".as_slice()));
        assert_eq!(
            reader.contents(&format!("{head}^:a b.txt")).await.expect("test set-up"),
            None,
            "the file is new in this commit"
        );
        assert_eq!(
            reader.info(&format!("{head}^{{commit}}")).await.expect("test set-up").expect("test set-up").oid,
            head
        );
        assert_eq!(reader.info("no\nsuch").await.expect("test set-up"), None);
        let (_, raw) = reader.contents(&head).await.expect("test set-up").expect("test set-up");
        let (tree, parents) = parse_commit(&raw);
        assert_eq!(parents.len(), 1);
        let (_, raw) = reader.contents(&tree.expect("test set-up")).await.expect("test set-up").expect("test set-up");
        assert_eq!(parse_tree(&raw, 20).expect("test set-up")[0].name, "a b.txt");
        // The whole tree, in `git ls-tree -r` order.
        let (commit, files) = reader.list_files("HEAD").await.expect("test set-up").expect("a commit");
        assert_eq!(commit, head);
        let listed = repo.run(&["ls-tree", "-r", "--name-only", "HEAD"]);
        assert_eq!(files, listed.lines().collect::<Vec<_>>());
        assert_eq!(reader.list_files("no-such-rev").await.expect("test set-up"), None);
        let names = [format!("{head}:a.txt"), "nothing".to_owned(), format!("{head}:a/b/c")];
        let many = reader.contents_of(&names).await.expect("test set-up");
        assert_eq!(
            many.iter().map(|a| a.as_ref().map(|(_, c)| c.clone())).collect::<Vec<_>>(),
            vec![Some(b"a\n".to_vec()), None, Some(b"c\n".to_vec())]
        );
    }

    #[tokio::test]
    async fn names_read_in_process_are_answered_as_git_answers_them() {
        let repo = crate::git::ScratchRepo::new();
        let root = repo.commit(&[("README", Some("r\n")), ("a/file", Some("f\n"))]);
        repo.commit(&[("a/b/c.py", Some("c\n")), ("x y/z", Some("z\n"))]);
        repo.run(&["update-index", "--add", "--cacheinfo", &format!("160000,{root},vendor/sub")]);
        repo.run(&["-c", "user.name=A", "-c", "user.email=a@x", "commit", "-qm", "a submodule"]);
        let head = repo.run(&["rev-parse", "HEAD"]);
        repo.run(&["-c", "user.name=A", "-c", "user.email=a@x", "tag", "-a", "v1", "-m", "one"]);
        let tag = repo.run(&["rev-parse", "v1"]);
        let git = Git::new("git", Duration::from_secs(10), None, true);
        for packed in [false, true] {
            if packed {
                repo.run(&["repack", "-adq"]);
            }
            let mut ours = ObjectReader::open(&git, repo.dir.path()).expect("test set-up");
            assert!(ours.store.is_some() && ours.cat.is_none(), "read in process, no git started");
            let mut git_only = ObjectReader::git_only(&git, repo.dir.path()).expect("test set-up");
            let mut names: Vec<String> = [&root, &head, &tag]
                .iter()
                .flat_map(|id| {
                    ["", "^{commit}", ":README", "^:README", ":a/b/c.py", "^:a/b/c.py", ":a", ":a/file/x", ":nope"]
                        .map(|s| format!("{id}{s}"))
                })
                .collect();
            names.push(format!("{head}:x y/z"));
            let tree = repo.run(&["rev-parse", "HEAD^{tree}"]);
            let blob = repo.run(&["rev-parse", "HEAD:README"]);
            // Left to git: a submodule, an id the store lacks, paths git normalises, and names that are not ids.
            names.extend([
                format!("{head}:vendor/sub"),
                "0".repeat(40),
                format!("{head}:a//file"),
                format!("{head}:./README"),
            ]);
            names.extend(["HEAD:README".into(), "v1^{commit}".into()]);
            names.extend([format!("{tree}:a/file"), format!("{tree}^{{commit}}"), format!("{blob}:x")]);
            for name in &names {
                if name.ends_with(":vendor/sub") {
                    assert!(ours.cat.is_none(), "every name so far was read in process");
                }
                let answer = ours.contents(name).await.expect("test set-up");
                assert_eq!(answer, git_only.contents(name).await.expect("test set-up"), "{name} (packed: {packed})");
            }
            // Names only git can answer started it; the others did not.
            assert!(ours.cat.is_some());
            let listed = ours.list_files(&head).await.expect("test set-up");
            assert_eq!(listed, git_only.list_files(&head).await.expect("test set-up"));
            assert_eq!(listed.map(|(_, f)| f.len()), Some(5));
        }
    }
}
