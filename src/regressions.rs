//! Regressions, decided per environment by git ancestry: an event reopens a resolved group only when the build it
//! came from contains the resolution — the commit that fixed it when one is known (a `Fixes #N` of its issue, or one
//! named when resolving), else the commit deployed in that environment when the group was resolved. An old build still running somewhere (a canary, a slow rollout) does not reopen it.

use std::sync::Arc;
use tracing::{info, instrument};

use crate::assign::service::AssignService;
use crate::events::Event;
use crate::git::mirror::Mirrors;
use crate::git::range;
use crate::groups::status::{self, Change, GroupStatus, Next};
use crate::jobs::{IssueReason, Work};
use crate::store::{Deploy, DynStore, HistoryEntry};

/// What the check concluded, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Reopened: the event's build contains the resolution (or nothing proves it does not).
    Regressed { release: String, why: String },
    /// Left resolved: the event came from a build without the fix.
    OldBuild { release: String, why: String },
    /// Nothing to do: the group is not resolved (any more).
    NotResolved,
}

pub struct Regressions {
    store: DynStore,
    mirrors: Arc<Mirrors>,
    assign: Arc<AssignService>,
    github_writes: bool,
}

impl Regressions {
    pub fn new(store: DynStore, mirrors: Arc<Mirrors>, assign: Arc<AssignService>, github_writes: bool) -> Regressions {
        Regressions { store, mirrors, assign, github_writes }
    }

    async fn deploy_of(&self, project_id: i64, event: &Event) -> anyhow::Result<Option<Deploy>> {
        let env = event.environment.as_deref();
        if let Some(release) = event.release.as_deref() {
            if let Some(d) = self.store.deploy_for_release(project_id, env, release).await? {
                return Ok(Some(d));
            }
        }
        Ok(self.store.latest_ready_deploy(project_id, env).await?)
    }

    /// The `check_regression` job.
    ///
    /// # Errors
    /// When the store or git fails (the job is retried).
    #[instrument(skip_all, fields(group_id = group_id, event_row = event_row))]
    pub async fn check(&self, group_id: i64, event_row: i64, now: impl Fn() -> i64) -> anyhow::Result<Verdict> {
        let (Some(group), Some(stored)) = (self.store.group(group_id).await?, self.store.event(event_row).await?)
        else {
            return Ok(Verdict::NotResolved);
        };
        let status = GroupStatus::parse(&group.status).unwrap_or(GroupStatus::Unresolved);
        if status::next(status, Change::Regress) == Next::Unchanged {
            return Ok(Verdict::NotResolved);
        }
        let event: Event = serde_json::from_str(&stored.payload)?;
        let project =
            self.store.project_by_id(group.project_id).await?.ok_or_else(|| anyhow::anyhow!("project gone"))?;
        let env = event.environment.clone().unwrap_or_default();
        let release = event.release.clone().unwrap_or_else(|| "(no release)".into());
        // Resolved by a commit (a `Fixes #N`, or named when resolving): only builds with that commit reopen it, in
        // every environment. Otherwise the commit each environment ran when the group was resolved.
        let baseline = match group.fixed_in_commit.clone() {
            Some(sha) => Some((sha, "the fixing commit")),
            None => self
                .store
                .group_resolutions(group_id)
                .await?
                .into_iter()
                .find(|(e, _)| *e == env)
                .map(|(_, sha)| (sha, "the commit deployed there when the group was resolved")),
        };
        let deploy = self.deploy_of(project.id, &event).await?;
        let deploy_id = deploy.as_ref().map(|d| d.id);
        let verdict = match (deploy, baseline) {
            (Some(deploy), Some((base, what))) => {
                self.mirrors
                    .ensure_commits(project.id, &project.repo_url, &[deploy.sha.as_str(), base.as_str()])
                    .await?;
                let repo = self.mirrors.path(project.id);
                if range::is_ancestor(self.mirrors.git(), &repo, &base, &deploy.sha).await? {
                    Verdict::Regressed {
                        release: deploy.version.clone(),
                        why: format!("{} ({}) contains {what} {}", deploy.version, short(&deploy.sha), short(&base)),
                    }
                } else {
                    Verdict::OldBuild {
                        release: deploy.version.clone(),
                        why: format!(
                            "{} ({}) does not contain {what} {}",
                            deploy.version,
                            short(&deploy.sha),
                            short(&base)
                        ),
                    }
                }
            }
            (Some(deploy), None) => Verdict::Regressed {
                release: deploy.version,
                why: format!("nothing was deployed in {env} when the group was resolved"),
            },
            (None, _) => {
                Verdict::Regressed { release, why: "no deploy is recorded to prove the build is older".into() }
            }
        };
        if let Verdict::Regressed { release, why } = &verdict {
            // The suspect at the deploy it came back in: the issue's comment names it.
            self.assign.assign_group(group_id, event_row, false, &now).await?;
            let job = (self.github_writes && project.github_repo.is_some()).then(|| {
                Work::GithubIssue { group: group_id, reason: IssueReason::Regressed, deploy: deploy_id }.job()
            });
            let at = now();
            // The build it came back in, and why: the group's timeline and the release's report per environment.
            let history = HistoryEntry {
                group_id,
                at,
                kind: "regressed".into(),
                release: Some(release.clone()),
                environment: Some(env.clone()),
                deploy_id,
                detail: Some(why.clone()),
            };
            if self.store.mark_regressed(group_id, release, at, job.as_ref(), &history).await? {
                info!(%release, %why, "group regressed");
            }
        } else if let Verdict::OldBuild { release, why } = &verdict {
            info!(%release, %why, "event from an older build; group stays resolved");
        }
        Ok(verdict)
    }
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}
