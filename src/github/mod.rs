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

/// The real client: octocrab against `api_url` (github.com's API, or a GitHub Enterprise server's).
pub struct OctocrabGitHub {
    client: octocrab::Octocrab,
}

impl OctocrabGitHub {
    /// # Errors
    /// When `api_url` is not a URL or the client cannot be built.
    pub fn new(api_url: &str, token: &crate::config::Secret) -> anyhow::Result<OctocrabGitHub> {
        let client = octocrab::Octocrab::builder()
            .base_uri(api_url)
            .map_err(|e| anyhow::anyhow!("invalid GitHub API URL `{api_url}`: {e}"))?
            .personal_token(token.expose().to_owned())
            .build()
            .map_err(|e| anyhow::anyhow!("building the GitHub client: {e}"))?;
        Ok(OctocrabGitHub { client })
    }
}

#[async_trait]
impl GitHub for OctocrabGitHub {
    async fn commit_author_login(&self, repo: &str, sha: &str) -> anyhow::Result<Option<String>> {
        let (owner, name) = repo.split_once('/').ok_or_else(|| anyhow::anyhow!("`{repo}` is not owner/name"))?;
        // The raw JSON rather than octocrab's model: only `author.login` is needed, and the model's required fields
        // differ between github.com and older Enterprise servers.
        let route = format!("/repos/{owner}/{name}/commits/{sha}");
        match self.client.get::<serde_json::Value, _, ()>(route, None).await {
            Ok(v) => Ok(v.get("author").and_then(|a| a.get("login")).and_then(|l| l.as_str()).map(str::to_owned)),
            Err(octocrab::Error::GitHub { source, .. }) if matches!(source.status_code.as_u16(), 404 | 422) => Ok(None),
            Err(e) => Err(anyhow::anyhow!("GitHub commit look-up for {repo}@{sha} failed: {e}")),
        }
    }
}
