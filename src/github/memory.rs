//! An in-memory GitHub for unit tests and dry runs: issues and comments kept in a map, every call recorded.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

use super::{Comment, GitHub, GitHubError, IssueInfo, NewIssue, PullInfo};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryIssue {
    pub number: i64,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
    pub open: bool,
    pub comments: Vec<String>,
}

#[derive(Default)]
pub struct MemoryGitHub {
    pub issues: Mutex<Vec<MemoryIssue>>,
    pub logins: Mutex<HashMap<String, String>>,
    /// Logins GitHub would refuse as assignees (no access to the repository).
    pub unassignable: Mutex<Vec<String>>,
    pub calls: Mutex<Vec<String>>,
    /// Pull requests by commit sha.
    pub pulls: Mutex<HashMap<String, Vec<PullInfo>>>,
}

impl MemoryGitHub {
    /// Makes `assignees` issue `number`'s (refusing the unassignable as GitHub does), reopening it when asked.
    fn assign(&self, number: i64, assignees: &[String], reopen: bool) -> Result<(), GitHubError> {
        if assignees.iter().any(|a| self.unassignable.lock().unwrap_or_else(|p| p.into_inner()).contains(a)) {
            return Err(GitHubError::Rejected { status: 422, message: "Validation Failed: assignees".into() });
        }
        let mut issues = self.issues.lock().unwrap_or_else(|p| p.into_inner());
        let issue = issues
            .iter_mut()
            .find(|i| i.number == number)
            .ok_or_else(|| GitHubError::Rejected { status: 404, message: "Not Found".into() })?;
        issue.open |= reopen;
        issue.assignees = assignees.to_vec();
        Ok(())
    }

    fn record(&self, call: String) {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(call);
    }

    pub fn issues(&self) -> Vec<MemoryIssue> {
        self.issues.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl GitHub for MemoryGitHub {
    async fn commit_author_login(&self, _repo: &str, sha: &str) -> anyhow::Result<Option<String>> {
        Ok(self.logins.lock().unwrap_or_else(|p| p.into_inner()).get(sha).cloned())
    }

    async fn issues_with_label(
        &self,
        repo: &str,
        label: &str,
        _since: Option<i64>,
    ) -> Result<Vec<IssueInfo>, GitHubError> {
        self.record(format!("list {repo} {label}"));
        let issues = self.issues.lock().unwrap_or_else(|p| p.into_inner());
        Ok(issues
            .iter()
            .rev()
            .filter(|i| i.labels.iter().any(|l| l == label))
            .map(|i| IssueInfo { number: i.number, open: i.open, body: i.body.clone() })
            .collect())
    }

    async fn create_issue(&self, repo: &str, issue: &NewIssue) -> Result<i64, GitHubError> {
        self.record(format!("create {repo} {}", issue.title));
        let refused = self.unassignable.lock().unwrap_or_else(|p| p.into_inner());
        if issue.assignees.iter().any(|a| refused.contains(a)) {
            return Err(GitHubError::Rejected { status: 422, message: "Validation Failed: assignees".into() });
        }
        let mut issues = self.issues.lock().unwrap_or_else(|p| p.into_inner());
        let number = issues.len() as i64 + 1;
        issues.push(MemoryIssue {
            number,
            title: issue.title.clone(),
            body: issue.body.clone(),
            labels: issue.labels.clone(),
            assignees: issue.assignees.clone(),
            open: true,
            comments: Vec::new(),
        });
        Ok(number)
    }

    async fn set_issue_open(&self, repo: &str, number: i64, open: bool) -> Result<(), GitHubError> {
        self.record(format!("state {repo} #{number} open={open}"));
        let mut issues = self.issues.lock().unwrap_or_else(|p| p.into_inner());
        let issue = issues
            .iter_mut()
            .find(|i| i.number == number)
            .ok_or_else(|| GitHubError::Rejected { status: 404, message: "Not Found".into() })?;
        issue.open = open;
        Ok(())
    }

    async fn reopen_assigned(&self, repo: &str, number: i64, assignees: &[String]) -> Result<(), GitHubError> {
        self.record(format!("reopen {repo} #{number} assignees={assignees:?}"));
        self.assign(number, assignees, true)
    }

    async fn set_assignees(&self, repo: &str, number: i64, assignees: &[String]) -> Result<(), GitHubError> {
        self.record(format!("assign {repo} #{number} assignees={assignees:?}"));
        self.assign(number, assignees, false)
    }

    async fn add_labels(&self, repo: &str, number: i64, labels: &[String]) -> Result<(), GitHubError> {
        self.record(format!("label {repo} #{number} +{labels:?}"));
        let mut issues = self.issues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(issue) = issues.iter_mut().find(|i| i.number == number) {
            for l in labels {
                if !issue.labels.contains(l) {
                    issue.labels.push(l.clone());
                }
            }
        }
        Ok(())
    }

    async fn remove_label(&self, repo: &str, number: i64, label: &str) -> Result<(), GitHubError> {
        self.record(format!("label {repo} #{number} -{label}"));
        let mut issues = self.issues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(issue) = issues.iter_mut().find(|i| i.number == number) {
            issue.labels.retain(|l| l != label);
        }
        Ok(())
    }

    async fn comments(&self, _repo: &str, number: i64) -> Result<Vec<Comment>, GitHubError> {
        let issues = self.issues.lock().unwrap_or_else(|p| p.into_inner());
        let Some(issue) = issues.iter().find(|i| i.number == number) else { return Ok(Vec::new()) };
        Ok(issue
            .comments
            .iter()
            .enumerate()
            .map(|(i, body)| Comment { id: comment_id(number, i), body: body.clone() })
            .collect())
    }

    async fn comment(&self, repo: &str, number: i64, body: &str) -> Result<i64, GitHubError> {
        self.record(format!("comment {repo} #{number}"));
        let mut issues = self.issues.lock().unwrap_or_else(|p| p.into_inner());
        let issue = issues
            .iter_mut()
            .find(|i| i.number == number)
            .ok_or_else(|| GitHubError::Rejected { status: 404, message: "Not Found".into() })?;
        issue.comments.push(body.to_owned());
        Ok(comment_id(number, issue.comments.len() - 1))
    }

    async fn edit_comment(&self, repo: &str, id: i64, body: &str) -> Result<(), GitHubError> {
        self.record(format!("edit comment {repo} {id}"));
        let mut issues = self.issues.lock().unwrap_or_else(|p| p.into_inner());
        let (number, index) = (id / 1_000_000, (id % 1_000_000) as usize);
        let comment = issues
            .iter_mut()
            .find(|i| i.number == number)
            .and_then(|i| i.comments.get_mut(index))
            .ok_or_else(|| GitHubError::Rejected { status: 404, message: "Not Found".into() })?;
        body.clone_into(comment);
        Ok(())
    }

    async fn commit_pulls(&self, _repo: &str, sha: &str) -> Result<Vec<PullInfo>, GitHubError> {
        Ok(self.pulls.lock().unwrap_or_else(|p| p.into_inner()).get(sha).cloned().unwrap_or_default())
    }
}

/// Comment ids of the in-memory GitHub: the issue's number and the comment's place in it.
fn comment_id(number: i64, index: usize) -> i64 {
    number * 1_000_000 + index as i64
}
