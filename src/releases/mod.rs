//! Deploys and their commit ranges: recording a deploy, computing what it shipped, and the release report.

pub mod message;
pub mod report;
pub mod status;

pub use status::{DeployStatus, RangeStatus};

use anyhow::Context as _;
use std::sync::Arc;
use tracing::{info, instrument, warn};

use crate::domain::{Environment, Invalid, ReleaseName, Sha};
use crate::git::mirror::Mirrors;
use crate::git::range::{self, RawCommit};
use crate::jobs::Work;
use crate::store::{CommitRecord, Deploy, DynStore, FileChange, NewDeploy, Project, RangeOutcome, StoreError};

/// A deploy as a caller describes it, before validation.
#[derive(Debug, Default, Clone)]
pub struct DeployInput {
    pub environment: String,
    pub sha: String,
    pub version: Option<String>,
    pub previous_sha: Option<String>,
    /// RFC 3339; the time of receipt when absent.
    pub deployed_at: Option<String>,
    pub deployer: Option<String>,
    pub url: Option<String>,
}

/// Why a deploy was refused: which field, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn field(field: &'static str) -> impl Fn(Invalid) -> DeployError {
    move |e| DeployError::Invalid { field, reason: e.0 }
}

/// The window of the report's "events after the deploy, against the same window before" line, unless asked.
pub const DEFAULT_WINDOW_MINUTES: i64 = 60;
/// The longest such window: a day.
pub const MAX_WINDOW_MINUTES: i64 = 24 * 60;

/// Lines shown around a frame's line on the group page.
pub const SOURCE_CONTEXT: u32 = 3;
/// Files larger than this are not shown around frames.
const MAX_SOURCE_BYTES: usize = 2 << 20;

/// The release domain service.
pub struct Releases {
    store: DynStore,
    mirrors: Arc<Mirrors>,
    max_range_commits: usize,
    /// GitHub's web root, for links in reports: `https://github.com` or an Enterprise server's.
    github_web: String,
    /// Whether GitHub can be asked which pull request each commit of a range belongs to (a token or App is set).
    pull_lookups: bool,
    /// Files read from the mirror at a commit, by (project, commit, path); `None` when the file is not there.
    sources: crate::cache::Bounded<SourceKey, Option<Arc<Vec<String>>>>,
}

/// A file of a project at a commit: (project, commit, path).
type SourceKey = (i64, String, String);

/// Lines of a file around one line: (line number, text), the asked line among them.
pub type SourceLines = Vec<(u32, String)>;

impl Releases {
    pub fn new(store: DynStore, mirrors: Arc<Mirrors>, max_range_commits: usize, github_web: String) -> Releases {
        Releases {
            store,
            mirrors,
            max_range_commits,
            github_web,
            pull_lookups: false,
            sources: crate::cache::Bounded::new(512),
        }
    }

    /// Asks GitHub, after each range, which pull requests its commits came from (titles for the reports).
    pub fn with_pull_lookups(mut self, on: bool) -> Releases {
        self.pull_lookups = on;
        self
    }

    /// The commit `given` names: a full id, or an abbreviation (7 or more hexadecimal characters) that names
    /// exactly one commit of the project's mirror.
    ///
    /// # Errors
    /// When git cannot be run; a name that fits no single commit is `Ok(Err(..))`, saying why.
    pub async fn commit_named(
        &self,
        project_id: i64,
        given: &str,
    ) -> anyhow::Result<Result<crate::domain::Sha, crate::domain::Invalid>> {
        use crate::domain::{Invalid, Sha};
        let given = given.trim();
        let abbreviated = (7..40).contains(&given.len()) && given.bytes().all(|b| b.is_ascii_hexdigit());
        if !abbreviated {
            return Ok(Sha::parse(given));
        }
        let path = self.mirrors.path(project_id);
        if !path.join("HEAD").exists() {
            return Ok(Err(Invalid(format!(
                "`{given}` is abbreviated and the repository has not been fetched yet: give all 40 characters"
            ))));
        }
        let out = self
            .mirrors
            .git()
            .output(Some(&path), ["rev-parse", "--verify", "--quiet", &format!("{given}^{{commit}}")])
            .await?;
        let full = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.code == Some(0) {
            return Ok(Sha::parse(&full));
        }
        Ok(Err(Invalid(format!(
            "`{given}` names no single commit of the repository (unknown, or shared by several): give more of it, or all 40 characters"
        ))))
    }

    /// For each (path, line) asked, the lines around it in the file at commit `sha` of the project's mirror: what the
    /// frame ran, as deployed. Spots whose file the mirror does not have (yet) are left out; git is not fetched for a
    /// page. Files are read in one `git cat-file --batch` and cached.
    ///
    /// # Errors
    /// When git cannot be run.
    pub async fn source_lines(
        &self,
        project_id: i64,
        sha: &str,
        spots: &[(String, u32)],
    ) -> anyhow::Result<std::collections::HashMap<(String, u32), SourceLines>> {
        let key = |path: &str| (project_id, sha.to_owned(), path.to_owned());
        let mut missing: Vec<String> =
            spots.iter().map(|(p, _)| p.clone()).filter(|p| self.sources.get(&key(p)).is_none()).collect();
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            let repo = self.mirrors.path(project_id);
            if !repo.exists() {
                return Ok(std::collections::HashMap::new());
            }
            let mut read = crate::git::tree::read_files(self.mirrors.git(), &repo, sha, &missing).await?;
            for path in missing {
                let lines = read
                    .remove(&path)
                    .filter(|text| text.len() <= MAX_SOURCE_BYTES)
                    .map(|text| Arc::new(text.lines().map(str::to_owned).collect::<Vec<_>>()));
                self.sources.insert(key(&path), lines);
            }
        }
        let mut out = std::collections::HashMap::new();
        for (path, line) in spots {
            let Some(Some(file)) = self.sources.get(&key(path)) else { continue };
            let at = *line as usize;
            if at == 0 || at > file.len() {
                continue;
            }
            let from = at.saturating_sub(SOURCE_CONTEXT as usize).max(1);
            let to = (at + SOURCE_CONTEXT as usize).min(file.len());
            let lines = (from..=to).map(|n| (n as u32, file[n - 1].clone())).collect();
            out.insert((path.clone(), *line), lines);
        }
        Ok(out)
    }

    /// A project's repository on GitHub's web (`https://github.com/acme/web`), when it has one.
    pub fn repo_web(&self, project: &Project) -> Option<String> {
        project.github_repo.as_deref().map(|r| format!("{}/{r}", self.github_web.trim_end_matches('/')))
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// Validates and records a deploy; its range is computed later by the worker. Returns the deploy and whether it
    /// is new (a re-sent deploy returns the one already recorded).
    ///
    /// # Errors
    /// [`DeployError::Invalid`] naming the field that is wrong; store errors otherwise.
    pub async fn record(
        &self,
        project: &Project,
        input: DeployInput,
        now_ms: i64,
    ) -> Result<(Deploy, bool), DeployError> {
        let environment = Environment::parse(&input.environment).map_err(field("environment"))?;
        let sha = Sha::parse(&input.sha).map_err(field("sha"))?;
        let previous_sha = match input.previous_sha.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(p) => Some(Sha::parse(p).map_err(field("previous_sha"))?),
            None => None,
        };
        let version = match input.version.as_deref().filter(|s| !s.is_empty()) {
            Some(v) => ReleaseName::parse(v).map_err(field("version"))?,
            None => ReleaseName::parse(sha.as_str()).map_err(field("sha"))?,
        };
        let deployed_at = match input.deployed_at.as_deref().filter(|s| !s.is_empty()) {
            Some(t) => chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| DeployError::Invalid {
                    field: "deployed_at",
                    reason: format!("`{t}` is not an RFC 3339 time such as 2026-11-20T14:03:00Z ({e})"),
                })?
                .timestamp_millis(),
            None => now_ms,
        };
        let deployer = optional_text(input.deployer, "deployer", 200)?;
        let url = optional_text(input.url, "url", 2000)?;
        if let Some(u) = &url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(DeployError::Invalid { field: "url", reason: "must be an http:// or https:// URL".into() });
            }
        }
        let new = NewDeploy {
            project_id: project.id,
            environment: environment.as_str().to_owned(),
            version: version.as_str().to_owned(),
            sha: sha.as_str().to_owned(),
            previous_sha: previous_sha.map(|s| s.as_str().to_owned()),
            deployed_at,
            deployer,
            url,
            deployed_at_given: input.deployed_at.as_deref().is_some_and(|s| !s.is_empty()),
        };
        Ok(self.store.record_deploy(new, Work::deploy_range, now_ms).await?)
    }

    /// The release report of `deploy`: its commits, and the errors it brought or brought back.
    ///
    /// # Errors
    /// Store errors.
    pub async fn deploy(&self, id: i64) -> Result<Option<Deploy>, StoreError> {
        self.store.deploy(id).await
    }

    /// The commits a deploy shipped, in range order.
    pub async fn commits(&self, deploy_id: i64) -> Result<Vec<CommitRecord>, StoreError> {
        self.store.deploy_commits(deploy_id).await
    }

    /// A project's events in `environment` that happened in `[from, to)` (ms).
    pub async fn events_between(
        &self,
        project_id: i64,
        environment: &str,
        from: i64,
        to: i64,
    ) -> Result<i64, StoreError> {
        self.store.count_events_between(project_id, environment, from, to).await
    }

    /// A project's deploys, newest first, optionally of one environment, before a deploy id (for paging).
    /// Of a deploy's build (its release in its environment): events, groups new in it, groups that came back in it.
    pub async fn build_summary(&self, deploy: &Deploy) -> Result<(i64, i64, i64), StoreError> {
        self.store.build_summary(deploy.project_id, &deploy.version, &deploy.environment).await
    }

    pub async fn list(
        &self,
        project_id: i64,
        environment: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Deploy>, StoreError> {
        self.store.list_deploys(project_id, environment, before_id, limit).await
    }

    pub async fn report(
        &self,
        project: &Project,
        deploy: &Deploy,
        window_minutes: i64,
    ) -> Result<report::Report, StoreError> {
        use report::{ErrorCounts, ErrorFacts, ErrorLine, Link};
        let commits = self.store.deploy_commits(deploy.id).await?;
        let mut groups = self.store.groups_of_release(project.id, &deploy.version).await?;
        // Groups that came back in this build (release and environment), though they may have regressed again since.
        let regressed_here = self.store.regressed_in_build(project.id, &deploy.version, &deploy.environment).await?;
        for id in &regressed_here {
            if !groups.iter().any(|g| g.id == *id) {
                groups.extend(self.store.group(*id).await?);
            }
        }
        let repo_web = self.repo_web(project);
        let gh = repo_web.as_deref();
        // Each group's events in this release and environment, not its lifetime total.
        let in_release: std::collections::HashMap<i64, i64> = self
            .store
            .group_counts_in_build(project.id, &deploy.version, &deploy.environment)
            .await?
            .into_iter()
            .collect();
        // Each group as it was assigned at this deploy; a later regression's re-assignment does not rewrite it.
        let at_deploy: std::collections::HashMap<i64, (String, Option<String>)> = self
            .store
            .assignments_at_deploy(deploy.id)
            .await?
            .into_iter()
            .map(|(group, assignment, assignee)| (group, (assignment, assignee)))
            .collect();
        let line = |g: &crate::store::Group| ErrorLine {
            id: g.id,
            title: g.title.clone(),
            culprit: g.culprit.clone(),
            count: in_release.get(&g.id).copied().unwrap_or_default(),
            assignee: match at_deploy.get(&g.id) {
                Some((_, assignee)) => assignee.clone(),
                None => g.assignee.clone(),
            },
            suspect: match at_deploy.get(&g.id) {
                Some((assignment, _)) => suspect_line(assignment),
                None => g.assignment.as_deref().and_then(suspect_line),
            },
            github_issue: g
                .github_issue
                .map(|n| Link { label: format!("#{n}"), url: gh.map(|r| format!("{r}/issues/{n}")) }),
        };
        let here = |g: &crate::store::Group| in_release.get(&g.id).is_some_and(|n| *n > 0);
        let pick =
            |f: &dyn Fn(&crate::store::Group) -> bool| groups.iter().filter(|g| f(g)).map(line).collect::<Vec<_>>();
        let v = deploy.version.as_str();
        let window = window_minutes.clamp(1, MAX_WINDOW_MINUTES);
        let w = window * 60_000;
        let at = deploy.deployed_at;
        let facts = ErrorFacts {
            // New and regressed in this deploy's own environment: a release deployed to staging and production
            // lists under each only what happened there.
            new_errors: pick(&|g| g.new_in_release.as_deref() == Some(v) && here(g)),
            regressions: pick(&|g| regressed_here.contains(&g.id) || (g.regressed_in.as_deref() == Some(v) && here(g))),
            suspects_in_range: pick(&|g| g.introduced_by.as_deref() == Some(v)),
            counts: ErrorCounts {
                in_release: in_release.values().sum(),
                window_minutes: window,
                before: self.store.count_events_between(project.id, &deploy.environment, at - w, at).await?,
                after: self.store.count_events_between(project.id, &deploy.environment, at, at + w).await?,
            },
        };
        let removed = self.store.deploy_removed_commits(deploy.id).await?;
        let shas: Vec<String> = commits.iter().map(|c| c.sha.clone()).collect();
        let pulls = self.store.commit_pulls(project.id, &shas).await?.into_iter().collect();
        Ok(report::Report::build(project, deploy, &commits, &removed, facts, &self.github_web, &pulls))
    }

    /// The range job: fetches what the mirror lacks, works out how the deploy relates to the previous one and
    /// stores its commits. A permanent problem (the commit does not exist) fails the deploy; a passing one (the
    /// remote is unreachable) is returned as an error so the job is retried, and fails the deploy on the last try.
    ///
    /// # Errors
    /// When this attempt failed and should be retried.
    #[instrument(skip_all, fields(deploy_id = deploy_id))]
    pub async fn process_range(&self, deploy_id: i64, last_attempt: bool, now: impl Fn() -> i64) -> anyhow::Result<()> {
        let Some(deploy) = self.store.deploy(deploy_id).await? else {
            warn!("deploy no longer exists; nothing to do");
            return Ok(());
        };
        if DeployStatus::parse(&deploy.status) != Some(DeployStatus::Pending) {
            return Ok(());
        }
        let project = self
            .store
            .project_by_id(deploy.project_id)
            .await?
            .with_context(|| format!("project {} of deploy {deploy_id} is missing", deploy.project_id))?;
        match self.compute_range(&project, &deploy).await {
            Ok(Ok(outcome)) => {
                info!(range_status = %outcome.range_status, commits = outcome.commit_count, "range recorded");
                // Groups waiting for the next release of this environment follow, in the same transaction.
                let mut then = vec![Work::ReleaseReady { deploy_id }.job()];
                // And the pull requests of its commits, from GitHub, when it can be asked.
                if self.pull_lookups && project.github_repo.is_some() && outcome.commit_count > 0 {
                    then.push(Work::GithubPullTitles { deploy_id }.job());
                }
                self.store.finish_deploy_range(deploy_id, &outcome, &then, now()).await?;
                Ok(())
            }
            Ok(Err(permanent)) => {
                warn!(reason = %permanent, "deploy failed");
                self.store.fail_deploy(deploy_id, &permanent, now()).await?;
                Ok(())
            }
            Err(passing) if last_attempt => {
                let reason = format!("gave up after repeated failures: {passing:#}");
                warn!(%reason, "deploy failed");
                self.store.fail_deploy(deploy_id, &reason, now()).await?;
                Ok(())
            }
            Err(passing) => {
                self.store.note_deploy_problem(deploy_id, &format!("retrying: {passing:#}")).await?;
                Err(passing)
            }
        }
    }

    /// `Ok(Err(reason))` for a deploy that can never succeed as sent; `Err` for a failure worth retrying.
    async fn compute_range(&self, project: &Project, deploy: &Deploy) -> anyhow::Result<Result<RangeOutcome, String>> {
        let git = self.mirrors.git();
        let mut wanted = vec![deploy.sha.as_str()];
        wanted.extend(deploy.base_sha.as_deref());
        self.mirrors.ensure_commits(project.id, &project.repo_url, &wanted).await?;
        let repo = self.mirrors.path(project.id);
        let sha = deploy.sha.as_str();
        if !range::commit_exists(git, &repo, sha).await? {
            return Ok(Err(format!(
                "commit {sha} is not in {} (all branches, tags and pull requests were fetched): was it pushed?",
                project.repo_url
            )));
        }
        let empty = |status: RangeStatus| RangeOutcome {
            base_sha: deploy.base_sha.clone(),
            range_status: status.as_str().to_owned(),
            merge_base: None,
            commit_count: 0,
            commits: Vec::new(),
            removed_count: 0,
            removed: Vec::new(),
        };
        let Some(base) = deploy.base_sha.as_deref() else {
            return Ok(Ok(empty(RangeStatus::Initial)));
        };
        if !range::commit_exists(git, &repo, base).await? {
            return Ok(Ok(empty(RangeStatus::PreviousMissing)));
        }
        if base == sha {
            return Ok(Ok(empty(RangeStatus::Redeploy)));
        }
        let (range_status, merge_base) = if range::is_ancestor(git, &repo, base, sha).await? {
            (RangeStatus::Forward, None)
        } else if range::is_ancestor(git, &repo, sha, base).await? {
            (RangeStatus::Rollback, None)
        } else {
            (RangeStatus::Diverged, range::merge_base(git, &repo, base, sha).await?)
        };
        let commit_count = range::count(git, &repo, sha, Some(base)).await?;
        let raw = range::log(git, &repo, sha, Some(base), sha, self.max_range_commits).await?;
        // A rollback (or a diverged deploy) takes out what the previous deploy had: `sha..base`.
        let (removed_count, removed) = if range_status == RangeStatus::Forward {
            (0, Vec::new())
        } else {
            let n = range::count(git, &repo, base, Some(sha)).await?;
            (n, range::log(git, &repo, base, Some(sha), base, self.max_range_commits).await?)
        };
        let own_repo = project.github_repo.as_deref();
        Ok(Ok(RangeOutcome {
            base_sha: Some(base.to_owned()),
            range_status: range_status.as_str().to_owned(),
            merge_base,
            commit_count,
            commits: raw.into_iter().map(|c| commit_record(c, own_repo)).collect(),
            removed_count,
            removed: removed.into_iter().map(|c| commit_record(c, own_repo)).collect(),
        }))
    }
}

/// "`app/pay.py:2` last changed in 2ac26b4 by Bob Roe": the stored suspect, without the deploy context its full
/// explanation was written in (a regression re-assigns the group at a later deploy).
fn suspect_line(assignment: &str) -> Option<String> {
    let a: serde_json::Value = serde_json::from_str(assignment).ok()?;
    let s = a.get("suspect")?;
    let commit = s.get("commit")?.as_str()?;
    let author = s.get("author_name")?.as_str()?;
    let frame = a.get("frames")?.get(s.get("frame_index")?.as_u64()? as usize)?;
    let path = frame.get("repo_path")?.as_str()?;
    let line = frame.get("line").and_then(serde_json::Value::as_u64).map(|l| format!(":{l}")).unwrap_or_default();
    Some(format!("`{path}{line}` last changed in {} by {author}", commit.get(..7).unwrap_or(commit)))
}

fn optional_text(value: Option<String>, name: &'static str, max: usize) -> Result<Option<String>, DeployError> {
    let Some(v) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(DeployError::Invalid {
            field: name,
            reason: format!("must be at most {max} characters with no control characters"),
        });
    }
    Ok(Some(v))
}

fn commit_record(c: RawCommit, own_repo: Option<&str>) -> CommitRecord {
    let summary = c.message.lines().next().unwrap_or_default().to_owned();
    CommitRecord {
        pr_number: message::pull_request_number(&summary),
        co_authors: message::co_authors(&c.message),
        closes: message::closed_issues(&c.message, own_repo),
        sha: c.sha,
        parents: c.parents,
        author: crate::store::Person { name: c.author_name, email: c.author_email },
        author_time: c.author_time,
        committer: crate::store::Person { name: c.committer_name, email: c.committer_email },
        committer_time: c.committer_time,
        summary,
        message: c.message,
        files: c
            .files
            .into_iter()
            .map(|f| FileChange { path: f.path, old_path: f.old_path, added: f.added, deleted: f.deleted })
            .collect(),
    }
}
