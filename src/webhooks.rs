//! GitHub webhooks in: signature verification (HMAC-SHA256 of the raw body, compared in constant time) and the
//! handling of stored deliveries — `ping`, `push` (fetch the mirror), `deployment_status` (record a deploy) and
//! `issues` closed/reopened on an issue linked to a group (resolve/unresolve).

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::sync::Arc;
use tracing::{info, instrument};

use crate::git::mirror::Mirrors;
use crate::groups::{Groups, StatusRequest};
use crate::jobs::Work;
use crate::releases::message::closed_issues;
use crate::releases::{DeployInput, Releases};
use crate::store::{DynStore, StoreError};

/// Checks `X-Hub-Signature-256` (`sha256=<hex>`) against the body. Constant time in the signature's content.
pub fn verify_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else { return false };
    let Ok(sig) = hex::decode(hex_sig) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return false };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// What handling a delivery did, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Ping,
    Fetched(usize),
    DeployRecorded(i64),
    Resolved(i64),
    Unresolved(i64),
    /// A group ignored because its issue got the `shipwatch:ignore` label.
    IgnoredGroup(i64),
    /// A group's assignee changed on GitHub.
    Assigned(i64),
    Ignored(String),
}

/// The label that, added on GitHub, ignores the issue's group (and removed, unresolves it).
pub const IGNORE_LABEL: &str = "shipwatch:ignore";

pub struct Webhooks {
    store: DynStore,
    releases: Arc<Releases>,
    groups: Arc<Groups>,
    mirrors: Arc<Mirrors>,
}

impl Webhooks {
    pub fn new(store: DynStore, releases: Arc<Releases>, groups: Arc<Groups>, mirrors: Arc<Mirrors>) -> Webhooks {
        Webhooks { store, releases, groups, mirrors }
    }

    /// The `github_webhook` job.
    ///
    /// # Errors
    /// When the store or git fails (the job is retried); payloads that do not concern shipwatch are ignored.
    /// Stores a delivery and queues its handling, once per delivery id: `false` for a redelivery.
    ///
    /// # Errors
    /// Store errors (then GitHub redelivers).
    pub async fn receive(&self, delivery: &str, event: &str, payload: &str, now: i64) -> Result<bool, StoreError> {
        self.store.insert_webhook(delivery, event, payload, &Work::github_webhook(delivery), now).await
    }

    #[instrument(skip_all, fields(delivery = delivery))]
    pub async fn handle(&self, delivery: &str, now: impl Fn() -> i64) -> anyhow::Result<Handled> {
        let Some((event, payload)) = self.store.webhook(delivery).await? else {
            return Ok(Handled::Ignored("delivery not stored".into()));
        };
        let v: Value = serde_json::from_str(&payload)?;
        let repo = v.pointer("/repository/full_name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let handled = match event.as_str() {
            "ping" => Handled::Ping,
            "push" => {
                let projects = self.store.projects_for_github_repo(&repo).await?;
                for p in &projects {
                    self.mirrors.fetch(p.id, &p.repo_url).await?;
                    self.fixing_commits(p.id, &v, &repo, now()).await?;
                }
                Handled::Fetched(projects.len())
            }
            "deployment_status" => self.deployment_status(&v, &repo, now()).await?,
            "issues" => self.issues(&v, &repo, now()).await?,
            other => Handled::Ignored(format!("event `{other}` is not used")),
        };
        info!(%event, ?handled, "webhook handled");
        Ok(handled)
    }

    /// A push to the default branch whose commits say `Fixes #N` (GitHub's closing keywords) for an issue of one of
    /// this project's groups: that commit is the group's fix, so only builds containing it reopen the group. The
    /// push's commits are oldest first: the last that names an issue wins.
    async fn fixing_commits(&self, project_id: i64, v: &Value, repo: &str, now: i64) -> anyhow::Result<()> {
        let default_branch = v.pointer("/repository/default_branch").and_then(Value::as_str).unwrap_or("main");
        if v.get("ref").and_then(Value::as_str) != Some(&format!("refs/heads/{default_branch}")) {
            return Ok(());
        }
        for commit in v.get("commits").and_then(Value::as_array).into_iter().flatten() {
            let (Some(sha), Some(message)) =
                (commit.get("id").and_then(Value::as_str), commit.get("message").and_then(Value::as_str))
            else {
                continue;
            };
            let Ok(sha) = crate::domain::Sha::parse(sha) else { continue };
            for issue in closed_issues(message, Some(repo)).into_iter().filter(|i| i.repo.is_none()) {
                if let Some(group) = self.store.group_by_issue(project_id, issue.number).await? {
                    self.store.set_fixing_commit(group.id, sha.as_str()).await?;
                    self.store
                        .add_history(&crate::store::HistoryEntry {
                            group_id: group.id,
                            at: now,
                            kind: "fixed_by_commit".into(),
                            release: None,
                            environment: None,
                            deploy_id: None,
                            detail: Some(format!(
                                "{} says it fixes #{}; only a build containing it reopens the group",
                                sha.as_str().get(..7).unwrap_or(sha.as_str()),
                                issue.number
                            )),
                        })
                        .await?;
                    info!(group_id = group.id, issue = issue.number, commit = sha.as_str(), "fixing commit recorded");
                }
            }
        }
        Ok(())
    }

    async fn deployment_status(&self, v: &Value, repo: &str, now: i64) -> anyhow::Result<Handled> {
        let state = v.pointer("/deployment_status/state").and_then(Value::as_str).unwrap_or_default();
        if state != "success" {
            return Ok(Handled::Ignored(format!("deployment state `{state}`")));
        }
        let Some(project) = self.store.projects_for_github_repo(repo).await?.into_iter().next() else {
            return Ok(Handled::Ignored(format!("no project for {repo}")));
        };
        let text = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
        let sha = text("/deployment/sha").unwrap_or_default();
        // The version: what the deploy tool put in the payload, else the ref when it is a tag-like name.
        let version =
            text("/deployment/payload/version").or_else(|| text("/deployment/ref").filter(|r| r.len() != sha.len()));
        let input = DeployInput {
            environment: text("/deployment/environment").unwrap_or_else(|| "production".into()),
            sha,
            version,
            previous_sha: None,
            deployed_at: text("/deployment_status/created_at"),
            deployer: text("/deployment_status/creator/login").or_else(|| text("/deployment/creator/login")),
            url: text("/deployment_status/target_url")
                .or_else(|| text("/deployment_status/environment_url"))
                .filter(|u| !u.is_empty()),
        };
        match self.releases.record(&project, input, now).await {
            Ok((deploy, _)) => Ok(Handled::DeployRecorded(deploy.id)),
            Err(crate::releases::DeployError::Invalid { field, reason }) => {
                Ok(Handled::Ignored(format!("deployment not recorded: {field}: {reason}")))
            }
            Err(crate::releases::DeployError::Store(e)) => Err(e.into()),
        }
    }

    async fn issues(&self, v: &Value, repo: &str, now: i64) -> anyhow::Result<Handled> {
        let action = v.get("action").and_then(Value::as_str).unwrap_or_default();
        let Some(number) = v.pointer("/issue/number").and_then(Value::as_i64) else {
            return Ok(Handled::Ignored("issue without a number".into()));
        };
        for project in self.store.projects_for_github_repo(repo).await? {
            let Some(group) = self.store.group_by_issue(project.id, number).await? else { continue };
            let nothing = || Ok(Handled::Ignored(format!("issue #{number} {action}: nothing to change")));
            let request = match action {
                "closed" => StatusRequest::IssueClosed,
                // shipwatch's own reopening of a regressed issue arrives here too: the group is unresolved already.
                "reopened" => StatusRequest::IssueReopened,
                "assigned" | "unassigned" => {
                    let login = v.pointer("/assignee/login").and_then(Value::as_str).unwrap_or_default();
                    let login = match crate::domain::GithubLogin::parse(login) {
                        Ok(l) => l,
                        Err(_) => return nothing(),
                    };
                    // shipwatch's own assignments come back here: a change only when GitHub differs from the group.
                    let current = group.assignee.as_deref();
                    let to = match action {
                        "assigned" if current != Some(login.as_str()) => Some(login),
                        "unassigned" if current == Some(login.as_str()) => None,
                        _ => return nothing(),
                    };
                    self.groups.assign_to(&group, to.as_ref(), "on GitHub", true, now).await?;
                    return Ok(Handled::Assigned(group.id));
                }
                "labeled" | "unlabeled" if v.pointer("/label/name").and_then(Value::as_str) == Some(IGNORE_LABEL) => {
                    let ignored = group.status == crate::groups::GroupStatus::Ignored.as_str();
                    match (action, ignored) {
                        ("labeled", false) => StatusRequest::Ignore,
                        ("unlabeled", true) => StatusRequest::Unresolve,
                        _ => return nothing(),
                    }
                }
                _ => return nothing(),
            };
            return Ok(match self.groups.change_status(&group, request, "on GitHub", now).await? {
                Some(crate::groups::GroupStatus::Resolved) => Handled::Resolved(group.id),
                Some(crate::groups::GroupStatus::Ignored) => Handled::IgnoredGroup(group.id),
                Some(_) => Handled::Unresolved(group.id),
                None => Handled::Ignored(format!("issue #{number} {action}: nothing to change")),
            });
        }
        Ok(Handled::Ignored(format!("issue #{number} is not one of shipwatch's")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's documented example ("Validating webhook deliveries").
    #[test]
    fn githubs_test_vector() {
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify_signature(secret, body, Some(sig)));
        assert!(!verify_signature(secret, b"Hello, World?", Some(sig)));
        assert!(!verify_signature(b"other", body, Some(sig)));
        assert!(!verify_signature(secret, body, None));
        assert!(!verify_signature(secret, body, Some("sha1=757107ea")));
        assert!(!verify_signature(secret, body, Some("sha256=zz")));
        assert!(!verify_signature(secret, body, Some(&sig[..20])));
    }
}
