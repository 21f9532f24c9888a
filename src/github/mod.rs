//! GitHub, behind a narrow trait: what shipwatch asks of it. Tests use fakes; the octocrab client and the write-back
//! outbox arrive with the regressions work.

use async_trait::async_trait;

#[async_trait]
pub trait GitHub: Send + Sync {
    /// The GitHub login GitHub links to a commit's author, if any (`GET /repos/{repo}/commits/{sha}` → `author.login`).
    ///
    /// # Errors
    /// When GitHub cannot be asked; a commit without a linked account is `Ok(None)`.
    async fn commit_author_login(&self, repo: &str, sha: &str) -> anyhow::Result<Option<String>>;
}

/// No GitHub connection configured: nothing can be looked up.
pub struct NoGitHub;

#[async_trait]
impl GitHub for NoGitHub {
    async fn commit_author_login(&self, _repo: &str, _sha: &str) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
}
