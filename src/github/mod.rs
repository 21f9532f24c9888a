//! GitHub, behind a narrow trait: what shipwatch reads (a commit's author login, issues) and writes (issues,
//! comments). `OctocrabGitHub` is the production client (base URL configurable, octocrab's own retries off: the
//! policy — pacing, rate limits, backoff — is shipwatch's, in `sync.rs`); `MemoryGitHub` is the in-memory fake.

pub mod memory;
pub mod metered;

use async_trait::async_trait;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

pub use memory::MemoryGitHub;

/// An issue to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIssue {
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
}

/// An existing issue, as far as shipwatch cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueInfo {
    pub number: i64,
    pub open: bool,
    pub body: String,
}

/// Why a GitHub call did not succeed, classified for the retry policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitHubError {
    /// 403/429 with `Retry-After` (ms from now), `x-ratelimit-remaining: 0` with `x-ratelimit-reset` (unix ms), or a
    /// secondary rate limit without either.
    #[error("rate limited by GitHub")]
    RateLimited { retry_after_ms: Option<i64>, reset_at_ms: Option<i64> },
    /// A 4xx GitHub will answer the same way again (bad token, unknown repository, invalid assignee).
    #[error("GitHub refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("GitHub server error ({status})")]
    Server { status: u16 },
    /// No answer: a timeout or a dropped connection. The request may or may not have taken effect.
    #[error("no answer from GitHub: {0}")]
    Transport(String),
}

#[async_trait]
pub trait GitHub: Send + Sync {
    /// The GitHub login GitHub links to a commit's author, if any (`GET /repos/{repo}/commits/{sha}` → `author.login`).
    ///
    /// # Errors
    /// When GitHub cannot be asked; a commit without a linked account is `Ok(None)`.
    async fn commit_author_login(&self, repo: &str, sha: &str) -> anyhow::Result<Option<String>>;

    /// Issues (open and closed, newest first) carrying `label` — only those updated at or after `since` (unix ms)
    /// when given — up to a few hundred.
    async fn issues_with_label(
        &self,
        repo: &str,
        label: &str,
        since: Option<i64>,
    ) -> Result<Vec<IssueInfo>, GitHubError>;
    /// Creates an issue; returns its number.
    async fn create_issue(&self, repo: &str, issue: &NewIssue) -> Result<i64, GitHubError>;
    async fn set_issue_open(&self, repo: &str, number: i64, open: bool) -> Result<(), GitHubError>;
    /// Reopens an issue and makes `assignees` its assignees, in one write.
    async fn reopen_assigned(&self, repo: &str, number: i64, assignees: &[String]) -> Result<(), GitHubError>;
    /// Makes `assignees` an issue's assignees (none: unassigned), leaving its state as it is.
    async fn set_assignees(&self, repo: &str, number: i64, assignees: &[String]) -> Result<(), GitHubError>;
    /// Adds labels to an issue, keeping the ones it has.
    async fn add_labels(&self, repo: &str, number: i64, labels: &[String]) -> Result<(), GitHubError>;
    /// Takes a label off an issue; a label it does not have is no error.
    async fn remove_label(&self, repo: &str, number: i64, label: &str) -> Result<(), GitHubError>;
    /// An issue's (or pull request's) comments, oldest first (up to a few hundred).
    async fn comments(&self, repo: &str, number: i64) -> Result<Vec<Comment>, GitHubError>;
    /// Comments on an issue or a pull request; returns the comment's id.
    async fn comment(&self, repo: &str, number: i64, body: &str) -> Result<i64, GitHubError>;
    /// Replaces the text of comment `id`.
    async fn edit_comment(&self, repo: &str, id: i64, body: &str) -> Result<(), GitHubError>;
    /// The pull requests a commit belongs to (`GET /repos/{repo}/commits/{sha}/pulls`), merged ones first.
    async fn commit_pulls(&self, repo: &str, sha: &str) -> Result<Vec<PullInfo>, GitHubError>;
}

/// A comment on an issue or pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: i64,
    pub body: String,
}

/// A pull request, as far as shipwatch cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullInfo {
    pub number: i64,
    pub title: String,
    pub url: String,
    pub merged: bool,
}

/// No GitHub connection configured: look-ups find nothing and writes are refused (nothing queues them).
pub struct NoGitHub;

fn not_configured() -> GitHubError {
    GitHubError::Rejected { status: 0, message: "no GitHub token configured (SHIPWATCH_GITHUB_TOKEN)".into() }
}

#[async_trait]
impl GitHub for NoGitHub {
    async fn commit_author_login(&self, _repo: &str, _sha: &str) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
    async fn issues_with_label(&self, _: &str, _: &str, _: Option<i64>) -> Result<Vec<IssueInfo>, GitHubError> {
        Err(not_configured())
    }
    async fn create_issue(&self, _: &str, _: &NewIssue) -> Result<i64, GitHubError> {
        Err(not_configured())
    }
    async fn set_issue_open(&self, _: &str, _: i64, _: bool) -> Result<(), GitHubError> {
        Err(not_configured())
    }
    async fn reopen_assigned(&self, _: &str, _: i64, _: &[String]) -> Result<(), GitHubError> {
        Err(not_configured())
    }
    async fn set_assignees(&self, _: &str, _: i64, _: &[String]) -> Result<(), GitHubError> {
        Err(not_configured())
    }
    async fn add_labels(&self, _: &str, _: i64, _: &[String]) -> Result<(), GitHubError> {
        Err(not_configured())
    }
    async fn remove_label(&self, _: &str, _: i64, _: &str) -> Result<(), GitHubError> {
        Err(not_configured())
    }
    async fn comments(&self, _: &str, _: i64) -> Result<Vec<Comment>, GitHubError> {
        Err(not_configured())
    }
    async fn comment(&self, _: &str, _: i64, _: &str) -> Result<i64, GitHubError> {
        Err(not_configured())
    }
    async fn edit_comment(&self, _: &str, _: i64, _: &str) -> Result<(), GitHubError> {
        Err(not_configured())
    }
    async fn commit_pulls(&self, _: &str, _: &str) -> Result<Vec<PullInfo>, GitHubError> {
        Ok(Vec::new())
    }
}

/// Turns a non-success answer into the policy's terms, from its status and rate-limit headers.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> GitHubError {
    let header =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect());
    let code = status.as_u16();
    if code == 403 || code == 429 {
        let retry_after_ms = header("retry-after").map(|s| s * 1000);
        let reset_at_ms = (header("x-ratelimit-remaining") == Some(0))
            .then(|| header("x-ratelimit-reset"))
            .flatten()
            .map(|s| s * 1000);
        let secondary = message.to_lowercase().contains("rate limit");
        if retry_after_ms.is_some() || reset_at_ms.is_some() || secondary || code == 429 {
            return GitHubError::RateLimited { retry_after_ms, reset_at_ms };
        }
    }
    if status.is_server_error() {
        return GitHubError::Server { status: code };
    }
    GitHubError::Rejected { status: code, message }
}

/// The real client: octocrab against `api_url` (github.com's API, or a GitHub Enterprise server's), signed in with a
/// personal or fine-grained token, or as a GitHub App.
pub struct OctocrabGitHub {
    auth: Auth,
}

enum Auth {
    Token(Arc<octocrab::Octocrab>),
    /// The App's own client (signs its requests with a JWT made from the private key) and one client per
    /// repository for the App's installation there. octocrab keeps each installation's token and asks for a new
    /// one when it has less than 30 s left or GitHub refused it (401). Shared, never cloned: a cloned `Octocrab`
    /// gets its own copy of the cached token.
    App {
        app: Box<octocrab::Octocrab>,
        installations: tokio::sync::Mutex<HashMap<String, Arc<octocrab::Octocrab>>>,
    },
}

/// A GitHub App's identity: its id and its private key (PEM, as GitHub gives it).
pub struct AppCredentials {
    pub app_id: u64,
    pub private_key_pem: crate::config::Secret,
}

impl OctocrabGitHub {
    /// # Errors
    /// When `api_url` is not a URL or the client cannot be built.
    pub fn new(api_url: &str, token: &crate::config::Secret) -> anyhow::Result<OctocrabGitHub> {
        OctocrabGitHub::with_timeout(api_url, token, Duration::from_secs(30))
    }

    /// # Errors
    /// As [`OctocrabGitHub::new`].
    pub fn with_timeout(
        api_url: &str,
        token: &crate::config::Secret,
        timeout: Duration,
    ) -> anyhow::Result<OctocrabGitHub> {
        let client = builder(api_url, timeout)?
            .personal_token(token.expose().to_owned())
            .build()
            .map_err(|e| anyhow::anyhow!("building the GitHub client: {e}"))?;
        Ok(OctocrabGitHub { auth: Auth::Token(Arc::new(client)) })
    }

    /// Signs in as a GitHub App: each repository's calls use an installation token of the App's installation there.
    ///
    /// # Errors
    /// When `api_url` is not a URL or the private key is not an RSA key in PEM.
    pub fn app(api_url: &str, app: &AppCredentials, timeout: Duration) -> anyhow::Result<OctocrabGitHub> {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(app.private_key_pem.expose().as_bytes()).map_err(|e| {
            anyhow::anyhow!("the GitHub App private key is not an RSA private key in PEM form ({e}); use the .pem file GitHub gave when the key was generated")
        })?;
        let client = builder(api_url, timeout)?
            .app(octocrab::models::AppId(app.app_id), key)
            .build()
            .map_err(|e| anyhow::anyhow!("building the GitHub client: {e}"))?;
        Ok(OctocrabGitHub {
            auth: Auth::App { app: Box::new(client), installations: tokio::sync::Mutex::new(HashMap::new()) },
        })
    }

    /// The client for calls about `repo`: the token's, or the App's installation on the repository (looked up
    /// once per repository with the App's JWT, `GET /repos/{owner}/{name}/installation`).
    async fn client(&self, repo: &str) -> Result<Arc<octocrab::Octocrab>, GitHubError> {
        let (app, installations) = match &self.auth {
            Auth::Token(client) => return Ok(client.clone()),
            Auth::App { app, installations } => (app, installations),
        };
        let key = repo.to_ascii_lowercase();
        let mut installations = installations.lock().await;
        if let Some(client) = installations.get(&key) {
            return Ok(client.clone());
        }
        let (owner, name) = split(repo)?;
        let answer = send(app, http::Method::GET, &format!("/repos/{owner}/{name}/installation"), None)
            .await
            .map_err(|f| match f.error {
                GitHubError::Rejected { status: 404, .. } => GitHubError::Rejected {
                    status: 404,
                    message: format!("the GitHub App is not installed on {repo} (or cannot see it): install it on the repository in the App's settings"),
                },
                other => other,
            })?;
        let id = answer.get("id").and_then(Value::as_u64).ok_or_else(|| GitHubError::Rejected {
            status: 0,
            message: format!("GitHub's answer for the App's installation on {repo} has no id"),
        })?;
        let client =
            Arc::new(app.installation(octocrab::models::InstallationId(id)).map_err(|e| GitHubError::Rejected {
                status: 0,
                message: format!("GitHub App installation {id}: {}", without_backtrace(&e.to_string())),
            })?);
        installations.insert(key, client.clone());
        Ok(client)
    }

    /// The GitHub App's installation token for `repo` (fresh for at least 30 s), for fetching it with git; `None`
    /// when signed in with a personal token (then `--git-token` is what fetches).
    ///
    /// # Errors
    /// When the App is not installed on `repo` or GitHub refused or did not answer.
    pub async fn installation_token(&self, repo: &str) -> Result<Option<crate::config::Secret>, GitHubError> {
        if matches!(self.auth, Auth::Token(_)) {
            return Ok(None);
        }
        let client = self.client(repo).await?;
        let refused = |e: octocrab::Error| GitHubError::Rejected {
            status: 0,
            message: format!("getting the GitHub App's token for {repo}: {}", without_backtrace(&e.to_string())),
        };
        let token = match client.installation_token().await {
            Ok(token) => token,
            // As in `call`: the installation may have been replaced; look it up again, once.
            Err(_) if self.forget_installation(repo).await => {
                self.client(repo).await?.installation_token().await.map_err(refused)?
            }
            Err(e) => return Err(refused(e)),
        };
        Ok(Some(crate::config::Secret::new(secrecy::ExposeSecret::expose_secret(&token))))
    }

    /// Sends a request about `repo` and returns the JSON answer, or the classified failure.
    async fn call(
        &self,
        repo: &str,
        method: http::Method,
        route: &str,
        body: Option<&Value>,
    ) -> Result<Value, GitHubError> {
        let client = self.client(repo).await?;
        match send(&client, method.clone(), route, body).await {
            // The installation refused to give a token (the request itself never went out): the App may have been
            // uninstalled and installed again, which gives the repository a new installation. Look it up again,
            // once.
            Err(Failure { signing_in: true, .. }) if self.forget_installation(repo).await => {
                let client = self.client(repo).await?;
                send(&client, method, route, body).await.map_err(|f| f.error)
            }
            other => other.map_err(|f| f.error),
        }
    }

    /// Drops the installation kept for `repo` (an App's; nothing for a personal token); whether there was one.
    async fn forget_installation(&self, repo: &str) -> bool {
        let Auth::App { installations, .. } = &self.auth else { return false };
        let forgotten = installations.lock().await.remove(&repo.to_ascii_lowercase()).is_some();
        if forgotten {
            warn!(repo, "the GitHub App installation refused a token; looking the installation up again");
        }
        forgotten
    }
}

fn builder(
    api_url: &str,
    timeout: Duration,
) -> anyhow::Result<
    octocrab::OctocrabBuilder<
        octocrab::NoSvc,
        octocrab::DefaultOctocrabBuilderConfig,
        octocrab::NoAuth,
        octocrab::NotLayerReady,
    >,
> {
    octocrab::Octocrab::builder()
        // octocrab would re-send a POST at once on 5xx/429 and ignore Retry-After: the policy is ours.
        .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
        .set_connect_timeout(Some(timeout))
        .set_read_timeout(Some(timeout))
        .set_write_timeout(Some(timeout))
        .base_uri(api_url)
        .map_err(|e| anyhow::anyhow!("invalid GitHub API URL `{api_url}`: {e}"))
}

/// Why a request failed, and whether it failed while signing in, before it was sent.
struct Failure {
    signing_in: bool,
    error: GitHubError,
}

impl From<GitHubError> for Failure {
    fn from(error: GitHubError) -> Failure {
        Failure { signing_in: false, error }
    }
}

async fn send(
    client: &octocrab::Octocrab,
    method: http::Method,
    route: &str,
    body: Option<&Value>,
) -> Result<Value, Failure> {
    let response = match method {
        http::Method::POST => client._post(route, body).await,
        http::Method::PATCH => client._patch(route, body).await,
        http::Method::DELETE => client._delete(route, body).await,
        _ => client._get(route).await,
    }
    .map_err(|e| match e {
        // Signing in failed before the request went out: the App's JWT or its installation token was refused.
        octocrab::Error::GitHub { source, .. } => Failure {
            signing_in: true,
            error: GitHubError::Rejected {
                status: source.status_code.as_u16(),
                message: format!("signing in as the GitHub App: {}", source.message),
            },
        },
        other => GitHubError::Transport(without_backtrace(&other.to_string())).into(),
    })?;
    let status = response.status();
    let headers = response.headers().clone();
    let text =
        client.body_to_string(response).await.map_err(|e| GitHubError::Transport(without_backtrace(&e.to_string())))?;
    if !status.is_success() {
        return Err(classify(status, &headers, &text).into());
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// octocrab's error text, without the backtrace it appends (`last_error` and logs want one line).
fn without_backtrace(text: &str) -> String {
    text.split("\nFound at").next().unwrap_or(text).trim().to_owned()
}

fn split(repo: &str) -> Result<(&str, &str), GitHubError> {
    repo.split_once('/')
        .ok_or_else(|| GitHubError::Rejected { status: 0, message: format!("`{repo}` is not owner/name") })
}

/// Labels in a query string need no more than this: GitHub label names may hold spaces and commas.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[async_trait]
impl GitHub for OctocrabGitHub {
    async fn commit_author_login(&self, repo: &str, sha: &str) -> anyhow::Result<Option<String>> {
        let (owner, name) = split(repo)?;
        // Only `author.login` is needed, and the model's required fields differ between github.com and older
        // Enterprise servers: read the raw JSON.
        match self.call(repo, http::Method::GET, &format!("/repos/{owner}/{name}/commits/{sha}"), None).await {
            Ok(v) => Ok(v.get("author").and_then(|a| a.get("login")).and_then(Value::as_str).map(str::to_owned)),
            Err(GitHubError::Rejected { status: 404 | 422, .. }) => Ok(None),
            Err(e) => Err(anyhow::anyhow!("GitHub commit look-up for {repo}@{sha} failed: {e}")),
        }
    }

    async fn issues_with_label(
        &self,
        repo: &str,
        label: &str,
        since: Option<i64>,
    ) -> Result<Vec<IssueInfo>, GitHubError> {
        let (owner, name) = split(repo)?;
        // GitHub's `since`: issues updated at or after an ISO 8601 time.
        let since = since
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| format!("&since={}", encode(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))))
            .unwrap_or_default();
        let mut out = Vec::new();
        for page in 1..=5 {
            let route = format!(
                "/repos/{owner}/{name}/issues?labels={}&state=all{since}&per_page=100&page={page}",
                encode(label)
            );
            let v = self.call(repo, http::Method::GET, &route, None).await?;
            let items = v.as_array().cloned().unwrap_or_default();
            out.extend(items.iter().filter_map(|i| {
                Some(IssueInfo {
                    number: i.get("number")?.as_i64()?,
                    open: i.get("state").and_then(Value::as_str) == Some("open"),
                    body: i.get("body").and_then(Value::as_str).unwrap_or_default().to_owned(),
                })
            }));
            if items.len() < 100 {
                break;
            }
        }
        Ok(out)
    }

    async fn create_issue(&self, repo: &str, issue: &NewIssue) -> Result<i64, GitHubError> {
        let (owner, name) = split(repo)?;
        let body =
            json!({ "title": issue.title, "body": issue.body, "labels": issue.labels, "assignees": issue.assignees });
        let v = self.call(repo, http::Method::POST, &format!("/repos/{owner}/{name}/issues"), Some(&body)).await?;
        v.get("number")
            .and_then(Value::as_i64)
            .ok_or_else(|| GitHubError::Transport("created issue without a number".into()))
    }

    async fn set_issue_open(&self, repo: &str, number: i64, open: bool) -> Result<(), GitHubError> {
        let (owner, name) = split(repo)?;
        let body = json!({ "state": if open { "open" } else { "closed" } });
        self.call(repo, http::Method::PATCH, &format!("/repos/{owner}/{name}/issues/{number}"), Some(&body))
            .await
            .map(|_| ())
    }

    async fn reopen_assigned(&self, repo: &str, number: i64, assignees: &[String]) -> Result<(), GitHubError> {
        let (owner, name) = split(repo)?;
        let body = json!({ "state": "open", "assignees": assignees });
        self.call(repo, http::Method::PATCH, &format!("/repos/{owner}/{name}/issues/{number}"), Some(&body))
            .await
            .map(|_| ())
    }

    async fn set_assignees(&self, repo: &str, number: i64, assignees: &[String]) -> Result<(), GitHubError> {
        let (owner, name) = split(repo)?;
        let body = json!({ "assignees": assignees });
        self.call(repo, http::Method::PATCH, &format!("/repos/{owner}/{name}/issues/{number}"), Some(&body))
            .await
            .map(|_| ())
    }

    async fn add_labels(&self, repo: &str, number: i64, labels: &[String]) -> Result<(), GitHubError> {
        let (owner, name) = split(repo)?;
        let body = json!({ "labels": labels });
        let route = format!("/repos/{owner}/{name}/issues/{number}/labels");
        self.call(repo, http::Method::POST, &route, Some(&body)).await.map(|_| ())
    }

    async fn remove_label(&self, repo: &str, number: i64, label: &str) -> Result<(), GitHubError> {
        let (owner, name) = split(repo)?;
        let route = format!("/repos/{owner}/{name}/issues/{number}/labels/{}", encode(label));
        match self.call(repo, http::Method::DELETE, &route, None).await {
            Ok(_) | Err(GitHubError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn comments(&self, repo: &str, number: i64) -> Result<Vec<Comment>, GitHubError> {
        let (owner, name) = split(repo)?;
        let mut out = Vec::new();
        for page in 1..=5 {
            let route = format!("/repos/{owner}/{name}/issues/{number}/comments?per_page=100&page={page}");
            let items = self.call(repo, http::Method::GET, &route, None).await?.as_array().cloned().unwrap_or_default();
            out.extend(items.iter().filter_map(|c| {
                Some(Comment {
                    id: c.get("id")?.as_i64()?,
                    body: c.get("body").and_then(Value::as_str).unwrap_or_default().to_owned(),
                })
            }));
            if items.len() < 100 {
                break;
            }
        }
        Ok(out)
    }

    async fn comment(&self, repo: &str, number: i64, body: &str) -> Result<i64, GitHubError> {
        let (owner, name) = split(repo)?;
        let body = json!({ "body": body });
        let route = format!("/repos/{owner}/{name}/issues/{number}/comments");
        let v = self.call(repo, http::Method::POST, &route, Some(&body)).await?;
        v.get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| GitHubError::Transport("created comment without an id".into()))
    }

    async fn edit_comment(&self, repo: &str, id: i64, body: &str) -> Result<(), GitHubError> {
        let (owner, name) = split(repo)?;
        let body = json!({ "body": body });
        let route = format!("/repos/{owner}/{name}/issues/comments/{id}");
        self.call(repo, http::Method::PATCH, &route, Some(&body)).await.map(|_| ())
    }

    async fn commit_pulls(&self, repo: &str, sha: &str) -> Result<Vec<PullInfo>, GitHubError> {
        let (owner, name) = split(repo)?;
        let route = format!("/repos/{owner}/{name}/commits/{sha}/pulls?per_page=100");
        let items = match self.call(repo, http::Method::GET, &route, None).await {
            Ok(v) => v.as_array().cloned().unwrap_or_default(),
            // A commit GitHub does not have (not pushed, or force-pushed away) belongs to no pull request.
            Err(GitHubError::Rejected { status: 404 | 422, .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut pulls: Vec<PullInfo> = items
            .iter()
            .filter_map(|p| {
                Some(PullInfo {
                    number: p.get("number")?.as_i64()?,
                    title: p.get("title").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    url: p.get("html_url").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    merged: p.get("merged_at").is_some_and(|m| !m.is_null()),
                })
            })
            .collect();
        pulls.sort_by_key(|p| !p.merged);
        Ok(pulls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(http::HeaderName::from_bytes(k.as_bytes()).expect("name"), v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn classification_of_failures() {
        let limited = |status: u16, h: &[(&str, &str)], body: &str| {
            classify(StatusCode::from_u16(status).expect("status"), &headers(h), body)
        };
        assert_eq!(
            limited(429, &[("retry-after", "30")], ""),
            GitHubError::RateLimited { retry_after_ms: Some(30_000), reset_at_ms: None }
        );
        assert_eq!(
            limited(
                403,
                &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1800000000")],
                "{\"message\":\"API rate limit exceeded\"}"
            ),
            GitHubError::RateLimited { retry_after_ms: None, reset_at_ms: Some(1_800_000_000_000) }
        );
        assert_eq!(
            limited(403, &[], "{\"message\":\"You have exceeded a secondary rate limit.\"}"),
            GitHubError::RateLimited { retry_after_ms: None, reset_at_ms: None }
        );
        assert!(matches!(
            limited(403, &[("x-ratelimit-remaining", "12")], "{\"message\":\"Resource not accessible\"}"),
            GitHubError::Rejected { status: 403, .. }
        ));
        assert_eq!(limited(502, &[], "bad gateway"), GitHubError::Server { status: 502 });
        assert!(
            matches!(limited(422, &[], "{\"message\":\"Validation Failed\"}"), GitHubError::Rejected { status: 422, message } if message == "Validation Failed")
        );
    }
}
