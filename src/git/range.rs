//! Commit ranges in a mirror: ancestry questions and the commits of `base..sha` with their details.

use anyhow::{bail, Context as _};
use std::path::Path;

use super::Git;

/// A commit as `git log` gives it, identities already passed through `.mailmap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCommit {
    pub sha: String,
    pub parents: Vec<String>,
    pub author_name: String,
    pub author_email: String,
    pub author_time: i64,
    pub committer_name: String,
    pub committer_email: String,
    pub committer_time: i64,
    pub message: String,
    pub files: Vec<RawFileChange>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFileChange {
    pub path: String,
    pub old_path: Option<String>,
    pub added: Option<i64>,
    pub deleted: Option<i64>,
}

/// Whether `sha` names a commit in the repository at `repo`.
///
/// # Errors
/// When git cannot be run.
pub async fn commit_exists(git: &Git, repo: &Path, sha: &str) -> anyhow::Result<bool> {
    let out = git.output(Some(repo), ["cat-file", "-e", "--end-of-options", &format!("{sha}^{{commit}}")]).await?;
    Ok(out.code == Some(0))
}

/// Whether `ancestor` is `descendant` or one of its ancestors.
///
/// # Errors
/// When git fails for another reason than "no".
pub async fn is_ancestor(git: &Git, repo: &Path, ancestor: &str, descendant: &str) -> anyhow::Result<bool> {
    let out = git.output(Some(repo), ["merge-base", "--is-ancestor", "--end-of-options", ancestor, descendant]).await?;
    match out.code {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => bail!("checking ancestry failed: {}", out.stderr),
    }
}

/// The best common ancestor of `a` and `b`, if they have one.
///
/// # Errors
/// When git fails for another reason than "none".
pub async fn merge_base(git: &Git, repo: &Path, a: &str, b: &str) -> anyhow::Result<Option<String>> {
    let out = git.output(Some(repo), ["merge-base", "--end-of-options", a, b]).await?;
    match out.code {
        Some(0) => Ok(Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())),
        Some(1) => Ok(None),
        _ => bail!("finding the merge base failed: {}", out.stderr),
    }
}

/// `sha` and, when given, `^base`: the revisions of the range `base..sha`.
fn range_args(sha: &str, base: Option<&str>) -> Vec<String> {
    let mut revs = vec![sha.to_owned()];
    if let Some(base) = base {
        revs.push(format!("^{base}"));
    }
    revs
}

/// How many commits are reachable from `sha` and not from `base`.
///
/// # Errors
/// When git fails.
pub async fn count(git: &Git, repo: &Path, sha: &str, base: Option<&str>) -> anyhow::Result<i64> {
    let mut args = vec!["rev-list".to_owned(), "--count".to_owned(), "--end-of-options".to_owned()];
    args.extend(range_args(sha, base));
    let out = git.run(Some(repo), "counting commits", &args).await?;
    let text = String::from_utf8_lossy(&out);
    text.trim().parse().with_context(|| format!("unexpected output from git rev-list --count: {text}"))
}

const RECORD: char = '\u{1e}';
const FIELD: char = '\u{1f}';

/// The commits reachable from `sha` and not from `base`, newest first, at most `limit`, with the files each
/// changed (merges against their first parent) and identities mapped by the `.mailmap` of `mailmap_at`.
///
/// # Errors
/// When git fails or prints something this parser does not understand.
pub async fn log(
    git: &Git,
    repo: &Path,
    sha: &str,
    base: Option<&str>,
    mailmap_at: &str,
    limit: usize,
) -> anyhow::Result<Vec<RawCommit>> {
    let mut args = vec![
        "-c".to_owned(),
        format!("mailmap.blob={mailmap_at}:.mailmap"),
        "log".to_owned(),
        "-z".to_owned(),
        "--numstat".to_owned(),
        "--diff-merges=first-parent".to_owned(),
        "--no-color".to_owned(),
        format!("--max-count={limit}"),
        "--format=%x1e%H%x1f%P%x1f%aN%x1f%aE%x1f%at%x1f%cN%x1f%cE%x1f%ct%x1f%B%x1f".to_owned(),
        "--end-of-options".to_owned(),
    ];
    args.extend(range_args(sha, base));
    let out = git.run(Some(repo), "listing commits", &args).await?;
    parse_log(&String::from_utf8_lossy(&out))
}

/// Parses the output of [`log`]'s format: records start with U+001E, header fields end with U+001F, and the
/// `--numstat -z` entries follow (`added\tdeleted\tpath\0`, or `added\tdeleted\t\0old\0new\0` for a rename).
fn parse_log(out: &str) -> anyhow::Result<Vec<RawCommit>> {
    let mut commits = Vec::new();
    for record in out.split(RECORD).filter(|r| !r.trim_matches(['\0', '\n']).is_empty()) {
        let fields: Vec<&str> = record.splitn(10, FIELD).collect();
        let [sha, parents, an, ae, at, cn, ce, ct, body, rest] = fields[..] else {
            bail!("unexpected git log record: {:?}", record.chars().take(120).collect::<String>());
        };
        let parse_time = |t: &str| t.parse::<i64>().with_context(|| format!("bad commit time `{t}`"));
        commits.push(RawCommit {
            sha: sha.to_owned(),
            parents: parents.split_whitespace().map(str::to_owned).collect(),
            author_name: an.to_owned(),
            author_email: ae.to_owned(),
            author_time: parse_time(at)?,
            committer_name: cn.to_owned(),
            committer_email: ce.to_owned(),
            committer_time: parse_time(ct)?,
            message: body.trim_end().to_owned(),
            files: parse_numstat(rest)?,
        });
    }
    Ok(commits)
}

fn parse_numstat(s: &str) -> anyhow::Result<Vec<RawFileChange>> {
    let mut files = Vec::new();
    let mut tokens = s.trim_start_matches(['\0', '\n']).split('\0');
    while let Some(token) = tokens.next() {
        let token = token.trim_start_matches('\n');
        if token.is_empty() {
            continue;
        }
        let mut parts = token.splitn(3, '\t');
        let (Some(added), Some(deleted), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            bail!("unexpected numstat entry: {token:?}");
        };
        let count = |n: &str| {
            if n == "-" {
                Ok(None)
            } else {
                n.parse::<i64>().map(Some)
            }
        };
        let (added, deleted) = (count(added)?, count(deleted)?);
        let (path, old_path) = if path.is_empty() {
            let old = tokens.next().context("numstat rename without its old path")?;
            let new = tokens.next().context("numstat rename without its new path")?;
            (new.to_owned(), Some(old.to_owned()))
        } else {
            (path.to_owned(), None)
        };
        files.push(RawFileChange { path, old_path, added, deleted });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_log_records_with_renames_binaries_and_empty_commits() {
        let out = "\u{1e}aaa\u{1f}bbb ccc\u{1f}Alice Doe\u{1f}alice@example.com\u{1f}100\u{1f}Bob\u{1f}bob@x\u{1f}200\u{1f}Merge pull request #7 from x/y\n\u{1f}\0\n0\t0\t\0f\0g\0\
                   \u{1e}bbb\u{1f}\u{1f}A\u{1f}a@x\u{1f}1\u{1f}A\u{1f}a@x\u{1f}2\u{1f}second (#12)\n\nfixes #3\n\u{1f}\0\n1\t0\t.mailmap\0-\t-\tbin\0\
                   \u{1e}ccc\u{1f}\u{1f}A\u{1f}a@x\u{1f}1\u{1f}A\u{1f}a@x\u{1f}2\u{1f}empty\n\u{1f}\0";
        let commits = parse_log(out).expect("parses");
        assert_eq!(commits.len(), 3);
        assert_eq!(commits[0].parents, vec!["bbb", "ccc"]);
        assert_eq!(commits[0].author_name, "Alice Doe");
        assert_eq!(commits[0].committer_time, 200);
        assert_eq!(
            commits[0].files,
            vec![RawFileChange { path: "g".into(), old_path: Some("f".into()), added: Some(0), deleted: Some(0) }]
        );
        assert_eq!(commits[1].message, "second (#12)\n\nfixes #3");
        assert_eq!(
            commits[1].files[1],
            RawFileChange { path: "bin".into(), old_path: None, added: None, deleted: None }
        );
        assert!(commits[2].files.is_empty());
    }

    #[test]
    fn refuses_garbage_instead_of_guessing() {
        assert!(parse_log("\u{1e}not a record").is_err());
        assert!(parse_log("").expect("empty is fine").is_empty());
    }
}
