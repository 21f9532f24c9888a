//! What the aggregates in `sql/` share besides SQL: the commit row's columns and its JSON-encoded fields.

use super::{CommitRecord, FileChange, IssueRef, Person};

/// Commit columns in storage order, shared by the insert and the select.
pub(super) const COMMIT_COLUMNS: &str = "sha, parents, author_name, author_email, author_time, committer_name, \
     committer_email, committer_time, summary, message, pr_number, co_authors, closes, files";

/// Rows per multi-row insert: 14 columns × 200 stays far below both backends' parameter limits.
pub(super) const INSERT_BATCH: usize = 200;

#[derive(sqlx::FromRow)]
pub(super) struct CommitRow {
    sha: String,
    parents: String,
    author_name: String,
    author_email: String,
    author_time: i64,
    committer_name: String,
    committer_email: String,
    committer_time: i64,
    summary: String,
    message: String,
    pr_number: Option<i64>,
    co_authors: String,
    closes: String,
    files: String,
}

impl CommitRow {
    pub(super) fn into_record(self) -> anyhow::Result<CommitRecord> {
        use anyhow::Context as _;
        let co_authors: Vec<Person> =
            serde_json::from_str(&self.co_authors).context("stored co-authors are not valid JSON")?;
        let closes: Vec<IssueRef> =
            serde_json::from_str(&self.closes).context("stored issue refs are not valid JSON")?;
        let files: Vec<FileChange> = serde_json::from_str(&self.files).context("stored file list is not valid JSON")?;
        Ok(CommitRecord {
            parents: self.parents.split_whitespace().map(str::to_owned).collect(),
            sha: self.sha,
            author: Person { name: self.author_name, email: self.author_email },
            author_time: self.author_time,
            committer: Person { name: self.committer_name, email: self.committer_email },
            committer_time: self.committer_time,
            summary: self.summary,
            message: self.message,
            pr_number: self.pr_number,
            co_authors,
            closes,
            files,
        })
    }
}

/// The JSON-encoded columns of a commit, computed before the insert so an encoding failure is an error, not a panic.
pub(super) struct EncodedCommit<'a> {
    pub commit: &'a CommitRecord,
    pub parents: String,
    pub co_authors: String,
    pub closes: String,
    pub files: String,
}

pub(super) fn encode_commits(commits: &[CommitRecord]) -> anyhow::Result<Vec<EncodedCommit<'_>>> {
    commits
        .iter()
        .map(|c| {
            Ok(EncodedCommit {
                commit: c,
                parents: c.parents.join(" "),
                co_authors: serde_json::to_string(&c.co_authors)?,
                closes: serde_json::to_string(&c.closes)?,
                files: serde_json::to_string(&c.files)?,
            })
        })
        .collect()
}
