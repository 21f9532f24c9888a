//! The `assign_group` job: a new group's first event, mapped and blamed at the commit of the deploy it came from,
//! with the suspect and owner stored on the group.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tracing::{info, instrument, warn};

use super::{frames_of_event, Assigner, Assignment, DeployContext, FrameResult, Owner, Settings, Suspect};
use crate::events::Event;
use crate::git::mirror::Mirrors;
use crate::jobs::{IssueReason, Work};
use crate::releases::RangeStatus;
use crate::store::{Deploy, DynStore, ReleaseFlags};

/// What is stored on a group, and shown by the group API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupAssignment {
    /// `assigned`, `no_deploy` (no deploy recorded to map the frames against) or `failed`.
    pub status: String,
    pub deploy: Option<DeployRef>,
    /// The one-line answer to "who, and why".
    pub explanation: String,
    pub suspect: Option<Suspect>,
    pub candidates: Vec<Suspect>,
    pub owner: Option<Owner>,
    pub frames: Vec<FrameResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployRef {
    pub id: i64,
    pub version: String,
    pub environment: String,
    pub sha: String,
    /// True when no deploy matched the event's release and the environment's latest was used instead.
    pub guessed: bool,
}

/// Where one assignment's time went, and the git processes it started: logged with "group assigned" at info
/// level and counted in `/metrics`, so an operator can see why assignments are slow.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AssignProfile {
    /// Reading the group, its event, the project and the deploy it ran at (ms).
    pub read_ms: f64,
    /// Making sure the mirror holds the deploy's commit, and reading the deploy's range (ms).
    pub mirror_ms: f64,
    /// Mapping the frames to files at the deploy's commit and blaming them, writers and owners included (ms).
    pub blame_ms: f64,
    /// Storing the assignment and the release flags, with the latest deploy they are decided against (ms).
    pub write_ms: f64,
    /// git processes started for this assignment (0 when the caches and the in-process object reader answered).
    pub git_processes: u64,
    /// False when no deploy was found to map the frames at: then the mirror and blame steps did not run.
    pub mapped: bool,
}

/// Milliseconds since the last lap, one decimal.
struct Laps(std::time::Instant);

impl Laps {
    fn lap(&mut self) -> f64 {
        let now = std::time::Instant::now();
        let ms = (now - self.0).as_secs_f64() * 1000.0;
        self.0 = now;
        (ms * 10.0).round() / 10.0
    }
}

pub struct AssignService {
    store: DynStore,
    mirrors: Arc<Mirrors>,
    assigner: Arc<Assigner>,
    /// Whether GitHub issues are written (a GitHub token is configured).
    github_writes: bool,
    metrics: Arc<crate::metrics::Metrics>,
}

impl AssignService {
    pub fn new(store: DynStore, mirrors: Arc<Mirrors>, assigner: Arc<Assigner>, github_writes: bool) -> AssignService {
        AssignService { store, mirrors, assigner, github_writes, metrics: Arc::new(crate::metrics::Metrics::new()) }
    }

    /// Counts each assignment's profile into `metrics` (otherwise into a registry nobody reads).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> AssignService {
        self.metrics = metrics;
        self
    }

    /// The deploy an event ran at, and whether that is a guess.
    async fn deploy_of(&self, project_id: i64, event: &Event) -> anyhow::Result<Option<(Deploy, bool)>> {
        let env = event.environment.as_deref();
        if let Some(release) = event.release.as_deref() {
            if let Some(d) = self.store.deploy_for_release(project_id, env, release).await? {
                return Ok(Some((d, false)));
            }
        }
        Ok(self.store.latest_ready_deploy(project_id, env).await?.map(|d| (d, true)))
    }

    /// Assigns the group by its event `event_row`, and says where the time went.
    ///
    /// `first` is true for a new group (the release flags and the GitHub issue follow from it), false when a
    /// regression re-assigns it at the deploy it came back in.
    ///
    /// # Errors
    /// When the store or git fails (the job is retried); a group without a deploy is stored as `no_deploy`.
    #[instrument(skip_all, fields(group_id = group_id, event_row = event_row))]
    pub async fn assign_group(
        &self,
        group_id: i64,
        event_row: i64,
        first: bool,
        now: impl Fn() -> i64,
    ) -> anyhow::Result<AssignProfile> {
        let (result, git_processes) =
            crate::git::counting_processes(self.assign_counted(group_id, event_row, first, now)).await;
        let Some(p) = result? else {
            return Ok(AssignProfile::default());
        };
        let ran: &[(&str, f64)] = if p.mapped {
            &[("read", p.read_ms), ("mirror", p.mirror_ms), ("blame", p.blame_ms), ("write", p.write_ms)]
        } else {
            &[("read", p.read_ms), ("write", p.write_ms)]
        };
        self.metrics.assignment(ran, git_processes);
        Ok(AssignProfile { git_processes, ..p })
    }

    /// [`AssignService::assign_group`] inside the tally of its git processes; `None` when the group or its event is
    /// gone.
    async fn assign_counted(
        &self,
        group_id: i64,
        event_row: i64,
        first: bool,
        now: impl Fn() -> i64,
    ) -> anyhow::Result<Option<AssignProfile>> {
        let mut laps = Laps(std::time::Instant::now());
        let mut profile = AssignProfile::default();
        let (Some(group), Some(stored)) = (self.store.group(group_id).await?, self.store.event(event_row).await?)
        else {
            warn!("group or event no longer exists");
            return Ok(None);
        };
        let project =
            self.store.project_by_id(group.project_id).await?.ok_or_else(|| anyhow::anyhow!("project gone"))?;
        let settings = Settings::of_project(project.id, &project.settings);
        let mut event: Event = serde_json::from_str(&stored.payload)?;
        crate::groups::normalise(&mut event);
        // The event's own deploy is still computing its range (jobs run side by side): wait for it rather than
        // assign at the previous deploy as a guess.
        if let Some(release) = event.release.as_deref() {
            if self.store.release_pending(project.id, event.environment.as_deref(), release).await? {
                return Err(anyhow::Error::new(crate::jobs::Later {
                    until_ms: now() + 1_000,
                    why: format!("the deploy of {release} is still computing its range"),
                }));
            }
        }

        let found = self.deploy_of(project.id, &event).await?;
        profile.read_ms = laps.lap();
        let Some((deploy, guessed)) = found else {
            let result = GroupAssignment {
                status: "no_deploy".into(),
                deploy: None,
                explanation: format!(
                    "no deploy recorded for release {} in {}: the frames cannot be mapped to a commit",
                    event.release.as_deref().unwrap_or("(none)"),
                    event.environment.as_deref().unwrap_or("any environment")
                ),
                suspect: None,
                candidates: Vec::new(),
                owner: None,
                frames: Vec::new(),
            };
            let fallback = settings.default_assignee.as_deref().map(|d| d.trim_start_matches('@'));
            let json = serde_json::to_string(&result)?;
            self.store.set_group_assignment(group_id, None, &json, fallback, None, now()).await?;
            profile.write_ms = laps.lap();
            return Ok(Some(profile));
        };
        self.mirrors.ensure_commits(project.id, &project.repo_url, &[deploy.sha.as_str()]).await?;
        let range = self.store.deploy_commits(deploy.id).await?.into_iter().map(|c| c.sha).collect();
        let context = DeployContext { version: deploy.version.clone(), environment: deploy.environment.clone(), range };
        profile.mirror_ms = laps.lap();
        profile.mapped = true;
        let (frames, crash) = frames_of_event(&event);
        let repo = self.mirrors.path(project.id);
        let a: Assignment = self
            .assigner
            .assign(&repo, &deploy.sha, project.github_repo.as_deref(), &frames, &crash, &settings, Some(&context))
            .await?;
        profile.blame_ms = laps.lap();
        // "New in" only when the event's own release is the newest deploy of its environment; a guessed deploy
        // says nothing about where the error first appeared.
        // A new group's release flags are stored with its assignment, in one transaction.
        let (mut new_in, mut introduced_by, mut job) = (None, None, None);
        if first {
            let latest = self.store.latest_ready_deploy(project.id, Some(&deploy.environment)).await?;
            new_in = (!guessed && latest.map(|l| l.id) == Some(deploy.id)).then(|| deploy.version.clone());
            introduced_by =
                a.suspect.as_ref().filter(|s| s.in_range == Some(true) && !guessed).map(|_| deploy.version.clone());
            // An issue for errors new in a release with a range: the first deploy's errors were there before
            // shipwatch watched, and are not news.
            let announce = self.github_writes
                && project.github_repo.is_some()
                && new_in.is_some()
                && deploy.range_status.as_deref().and_then(RangeStatus::parse) != Some(RangeStatus::Initial);
            job = announce.then(|| {
                Work::GithubIssue { group: group_id, reason: IssueReason::New, deploy: Some(deploy.id) }.job()
            });
        }
        let flags = first.then_some(ReleaseFlags {
            new_in: new_in.as_deref(),
            introduced_by: introduced_by.as_deref(),
            github_job: job.as_ref(),
        });
        // When the suspect's author has no GitHub login, the owner came from elsewhere (CODEOWNERS, the project's
        // default): the explanation says who and why, not only that the author could not be reached.
        let explanation = match (&a.suspect, &a.owner.github_login) {
            (Some(s), Some(login)) if s.github_login.is_none() => {
                // The owner's reason starts by repeating that the suspect has no login; the rest says why them.
                let why = a.owner.reason.split_once("; ").map_or(a.owner.reason.as_str(), |(_, r)| r);
                format!("{}; owner @{login}: {why}", s.reason)
            }
            (Some(s), _) => s.reason.clone(),
            (None, _) => a.owner.reason.clone(),
        };
        let assignee = a.owner.github_login.clone();
        let suspect = a.suspect.as_ref().map(|s| s.commit.clone());
        let result = GroupAssignment {
            status: "assigned".into(),
            deploy: Some(DeployRef {
                id: deploy.id,
                version: deploy.version,
                environment: deploy.environment,
                sha: deploy.sha,
                guessed,
            }),
            explanation,
            suspect: a.suspect,
            candidates: a.candidates.into_iter().take(5).collect(),
            owner: Some(a.owner),
            frames: a.frames,
        };
        let json = serde_json::to_string(&result)?;
        self.store
            .set_group_assignment(group_id, Some(deploy.id), &json, assignee.as_deref(), flags.as_ref(), now())
            .await?;
        profile.write_ms = laps.lap();
        info!(
            suspect = suspect.as_deref(),
            assignee = assignee.as_deref(),
            read_ms = profile.read_ms,
            mirror_ms = profile.mirror_ms,
            blame_ms = profile.blame_ms,
            write_ms = profile.write_ms,
            git_processes = crate::git::processes_counted(),
            "group assigned"
        );
        Ok(Some(profile))
    }
}
