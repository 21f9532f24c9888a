//! Counts every call to GitHub by call and outcome for `/metrics`, around whichever client is in use.

use async_trait::async_trait;
use std::sync::Arc;

use super::{Comment, GitHub, GitHubError, IssueInfo, NewIssue, PullInfo};
use crate::metrics::Metrics;

pub struct MeteredGitHub {
    inner: Arc<dyn GitHub>,
    metrics: Arc<Metrics>,
}

impl MeteredGitHub {
    pub fn new(inner: Arc<dyn GitHub>, metrics: Arc<Metrics>) -> MeteredGitHub {
        MeteredGitHub { inner, metrics }
    }

    fn count<T>(&self, call: &str, r: &Result<T, GitHubError>) {
        let outcome = match r {
            Ok(_) => "ok",
            Err(GitHubError::RateLimited { .. }) => "rate_limited",
            Err(GitHubError::Rejected { .. }) => "rejected",
            Err(GitHubError::Server { .. }) => "server_error",
            Err(GitHubError::Transport(_)) => "no_answer",
        };
        self.metrics.github_call(call, outcome);
    }
}

#[async_trait]
impl GitHub for MeteredGitHub {
    async fn commit_author_login(&self, repo: &str, sha: &str) -> anyhow::Result<Option<String>> {
        let r = self.inner.commit_author_login(repo, sha).await;
        self.metrics.github_call("commit_author_login", if r.is_ok() { "ok" } else { "error" });
        r
    }

    async fn issues_with_label(
        &self,
        repo: &str,
        label: &str,
        since: Option<i64>,
    ) -> Result<Vec<IssueInfo>, GitHubError> {
        let r = self.inner.issues_with_label(repo, label, since).await;
        self.count("issues_with_label", &r);
        r
    }

    async fn create_issue(&self, repo: &str, issue: &NewIssue) -> Result<i64, GitHubError> {
        let r = self.inner.create_issue(repo, issue).await;
        self.count("create_issue", &r);
        r
    }

    async fn set_issue_open(&self, repo: &str, number: i64, open: bool) -> Result<(), GitHubError> {
        let r = self.inner.set_issue_open(repo, number, open).await;
        self.count("set_issue_open", &r);
        r
    }

    async fn reopen_assigned(&self, repo: &str, number: i64, assignees: &[String]) -> Result<(), GitHubError> {
        let r = self.inner.reopen_assigned(repo, number, assignees).await;
        self.count("reopen_assigned", &r);
        r
    }

    async fn set_assignees(&self, repo: &str, number: i64, assignees: &[String]) -> Result<(), GitHubError> {
        let r = self.inner.set_assignees(repo, number, assignees).await;
        self.count("set_assignees", &r);
        r
    }

    async fn add_labels(&self, repo: &str, number: i64, labels: &[String]) -> Result<(), GitHubError> {
        let r = self.inner.add_labels(repo, number, labels).await;
        self.count("add_labels", &r);
        r
    }

    async fn remove_label(&self, repo: &str, number: i64, label: &str) -> Result<(), GitHubError> {
        let r = self.inner.remove_label(repo, number, label).await;
        self.count("remove_label", &r);
        r
    }

    async fn comments(&self, repo: &str, number: i64) -> Result<Vec<Comment>, GitHubError> {
        let r = self.inner.comments(repo, number).await;
        self.count("comments", &r);
        r
    }

    async fn comment(&self, repo: &str, number: i64, body: &str) -> Result<i64, GitHubError> {
        let r = self.inner.comment(repo, number, body).await;
        self.count("comment", &r);
        r
    }

    async fn edit_comment(&self, repo: &str, id: i64, body: &str) -> Result<(), GitHubError> {
        let r = self.inner.edit_comment(repo, id, body).await;
        self.count("edit_comment", &r);
        r
    }

    async fn commit_pulls(&self, repo: &str, sha: &str) -> Result<Vec<PullInfo>, GitHubError> {
        let r = self.inner.commit_pulls(repo, sha).await;
        self.count("commit_pulls", &r);
        r
    }
}
