//! The `github_issue` job: one GitHub issue per error group, ever. Created for a group that is new in (or
//! introduced by) a release, reopened with a comment when the group regresses.
//!
//! Every write can be cut off after GitHub performed it (a timeout, a dropped connection, a crash): so the issue
//! body carries a hidden marker, each step is recorded in the store as it happens, and a job that sent a create
//! before looks for an issue with that marker among those changed since (exact on any repository size) instead of
//! creating again; comments carry their own marker and are handled the same way. Writes are at least `interval`
//! apart across every process on the database; a rate-limit answer holds them all until the time GitHub names.

use std::fmt::Write as _;
use std::sync::Arc;
use tracing::{info, instrument, warn};

use crate::assign::service::GroupAssignment;
use crate::github::{GitHub, GitHubError, NewIssue};
use crate::jobs::{IssueReason, Later, Work};
use crate::markdown;
use crate::releases::RangeStatus;
use crate::store::{Deploy, DynStore, Group, PullComment, PullRef};

/// Default labels of created issues; the first is also how shipwatch finds its own issues again.
/// The label of an issue for an error first seen in a release, unless the project names another.
pub const NEW_LABEL: &str = "new";
/// The label of an issue for an error that came back after being resolved, unless the project names another.
pub const REGRESSION_LABEL: &str = "regression";
const MARKER_LABEL: &str = "shipwatch";

/// A job failure that says when to try again (unix ms).
#[derive(Debug, thiserror::Error)]
#[error("GitHub asks to wait until {until_ms}: {cause}")]
pub struct RetryAt {
    pub until_ms: i64,
    pub cause: GitHubError,
}

pub struct IssueSync {
    store: DynStore,
    github: Arc<dyn GitHub>,
    /// Where the shipwatch server is reachable, for report links.
    public_url: String,
    /// `https://github.com`, or a GitHub Enterprise server's web root.
    web_url: String,
    interval_ms: i64,
    /// The last marker look-up of each repository (in this process), reused by jobs whose unanswered create
    /// failed before it started.
    lookups: std::sync::Mutex<std::collections::HashMap<String, Lookup>>,
    /// How each group's last create ended, when it ended in this process: `Some(t)` unanswered at `t` (a look-up
    /// that started later sees what it made), `None` answered without effect (refused, rate-limited).
    unanswered: std::sync::Mutex<std::collections::HashMap<i64, Option<i64>>>,
    /// The same for each regression comment, by (group, deploy).
    comment_outcomes: std::sync::Mutex<std::collections::HashMap<(i64, i64), Option<i64>>>,
    /// How long a sent write may still be on its way (GitHub's answer timeout and some slack): until then another
    /// job does not take over a pull-request comment whose create has no answer yet.
    in_flight_ms: i64,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether a failed write went unanswered (the connection broke, or GitHub failed): it may have taken effect.
fn unanswered(e: &GitHubError) -> bool {
    matches!(e, GitHubError::Transport(_) | GitHubError::Server { .. })
}

/// A look-up of a repository's shipwatch issues: those updated since `since`, as listed from `started_at` on.
struct Lookup {
    since: i64,
    started_at: i64,
    issues: Vec<crate::github::IssueInfo>,
}

/// The write pacing has no slot before `until_ms`: the job comes back then (not an attempt, its last error kept).
fn waiting_for_slot(until_ms: i64) -> anyhow::Error {
    anyhow::Error::new(Later { until_ms, why: "waiting for GitHub's write pacing".into() })
}

/// Recorded just before a create is sent: a later try looks for what it may have created instead of creating again.
const STEP_CREATE_SENT: &str = "create:sent";
/// Recorded when GitHub refused the owner as assignee: later tries create without assignees and mention them.
const STEP_ASSIGNEE_REFUSED: &str = "create:assignee-refused";
/// Recorded once a new group's pull-request comment job is queued (queued again only if a crash came between).
const STEP_PULL_COMMENT_QUEUED: &str = "pull-comment:queued";
/// Most commits of one deploy whose pull request GitHub is asked for (one read each; a report lists the
/// pull requests of a range's newest commits, and older ones were asked about at their own deploys).
pub const PULL_LOOKUPS_PER_DEPLOY: usize = 100;
/// How long GitHub may still act on a write after the client stopped waiting for its answer.
const IN_FLIGHT_SLACK_MS: i64 = 30_000;
/// How far before a recorded create the look-up starts: room for the difference between this clock and GitHub's.
const CLOCK_SLACK_MS: i64 = 10 * 60 * 1000;

/// The web root that goes with a REST API root.
pub fn web_url(api_url: &str) -> String {
    let api = api_url.trim_end_matches('/');
    if api == "https://api.github.com" {
        "https://github.com".into()
    } else {
        api.trim_end_matches("/api/v3").to_owned()
    }
}

/// The hidden marker of a group's issue.
pub fn marker(group: &Group) -> String {
    format!("<!-- shipwatch:group:{}:{} -->", group.project_id, group.fingerprint)
}

impl IssueSync {
    pub fn new(
        store: DynStore,
        github: Arc<dyn GitHub>,
        public_url: String,
        web_url: String,
        interval_ms: i64,
    ) -> IssueSync {
        IssueSync {
            store,
            github,
            public_url,
            web_url,
            interval_ms,
            lookups: std::sync::Mutex::default(),
            unanswered: std::sync::Mutex::default(),
            comment_outcomes: std::sync::Mutex::default(),
            in_flight_ms: 30_000 + IN_FLIGHT_SLACK_MS,
        }
    }

    /// A write unanswered after `timeout_ms` has failed (the client gave up on it).
    pub fn with_answer_timeout(mut self, timeout_ms: i64) -> IssueSync {
        self.in_flight_ms = timeout_ms.max(0) + IN_FLIGHT_SLACK_MS;
        self
    }

    /// Claims the next write slot — shared by every process on this database — or says when it opens.
    async fn pace(&self, now: i64) -> anyhow::Result<()> {
        match self.store.take_write_slot(now, self.interval_ms).await? {
            Ok(()) => Ok(()),
            Err(until_ms) => Err(waiting_for_slot(until_ms)),
        }
    }

    /// Whether a write slot is open now, without claiming it: a job that cannot write yet need not read first.
    async fn slot_open(&self, now: i64) -> anyhow::Result<()> {
        let until_ms = self.store.next_write_slot().await?;
        if now < until_ms {
            return Err(waiting_for_slot(until_ms));
        }
        Ok(())
    }

    async fn wait(&self, e: GitHubError, now: i64) -> anyhow::Error {
        match &e {
            GitHubError::RateLimited { retry_after_ms, reset_at_ms } => {
                // Without either header (a secondary rate limit) GitHub asks for at least a minute.
                let until = retry_after_ms.map(|ms| now + ms).or(*reset_at_ms).unwrap_or(now + 60_000).max(now + 1_000);
                // No write goes out before then, from any job of any process.
                if let Err(held) = self.store.hold_writes_until(until).await {
                    return anyhow::Error::new(held).context(format!("holding GitHub writes after: {e}"));
                }
                anyhow::Error::new(RetryAt { until_ms: until, cause: e })
            }
            _ => anyhow::Error::new(e),
        }
    }

    /// From when a write recorded as sent at `sent_at` can no longer be in GitHub's hands: `outcome` is how its last
    /// try ended in this process, if it did here — `Some(t)` given up on at `t`, `None` answered without effect.
    fn settled_at(&self, outcome: Option<Option<i64>>, sent_at: i64) -> i64 {
        match outcome {
            // Given up on here: GitHub may still act on it for a while.
            Some(Some(gave_up)) => gave_up + IN_FLIGHT_SLACK_MS,
            // Answered here, without effect: nothing can be on its way.
            Some(None) => 0,
            // Sent by another process, or before a restart: until the answer timeout has passed.
            None => sent_at + self.in_flight_ms,
        }
    }

    /// `Ok` once the write `what` (see [`IssueSync::settled_at`]) can no longer be in GitHub's hands; otherwise the
    /// job comes back then.
    fn settled(&self, outcome: Option<Option<i64>>, sent_at: i64, now: i64, what: &str) -> anyhow::Result<()> {
        let settled_at = self.settled_at(outcome, sent_at);
        if now < settled_at {
            return Err(anyhow::Error::new(Later {
                until_ms: settled_at,
                why: format!("{what} may still be on its way to GitHub"),
            }));
        }
        Ok(())
    }

    /// The answer of an earlier look-up, when it can be trusted for this group: it covered the issues updated
    /// since `since` and started after the group's last create went unanswered (so an issue that create made was
    /// there to be listed). `Some(None)`: listed, and not there. `None`: a look-up is needed.
    fn reused_lookup(&self, repo: &str, group_id: i64, since: i64, marker: &str) -> Option<Option<i64>> {
        let unanswered_at = (*lock(&self.unanswered).get(&group_id)?)?;
        let lookups = lock(&self.lookups);
        let l = lookups.get(repo).filter(|l| l.since <= since && l.started_at > unanswered_at)?;
        info!("reusing the marker look-up of another job");
        Some(l.issues.iter().find(|i| i.body.contains(marker)).map(|i| i.number))
    }

    fn keep_lookup(&self, repo: &str, lookup: Lookup) {
        let mut lookups = lock(&self.lookups);
        // The newest look-up serves the most jobs (every create that went unanswered before it started).
        let newer = lookups.get(repo).is_none_or(|old| lookup.started_at >= old.started_at);
        if newer {
            lookups.insert(repo.to_owned(), lookup);
        }
    }

    /// Runs the job for `group_id`, written because of `reason`; `deploy_id` the deploy it concerns.
    ///
    /// # Errors
    /// [`Later`] when the write pacing has no slot yet, [`RetryAt`] when GitHub asks to wait; other errors are
    /// retried with backoff.
    #[instrument(skip_all, fields(group_id = group_id, reason = reason.as_str(), deploy_id = deploy_id))]
    pub async fn sync(
        &self,
        group_id: i64,
        reason: IssueReason,
        deploy_id: Option<i64>,
        now: impl Fn() -> i64,
    ) -> anyhow::Result<()> {
        let Some(group) = self.store.group(group_id).await? else { return Ok(()) };
        let issue_existed = group.github_issue.is_some();
        let project =
            self.store.project_by_id(group.project_id).await?.ok_or_else(|| anyhow::anyhow!("project gone"))?;
        let Some(repo) = project.github_repo.clone() else {
            info!("project has no GitHub repository; nothing to write");
            return Ok(());
        };
        let deploy = match deploy_id {
            Some(id) => self.store.deploy(id).await?,
            None => None,
        };
        let assignment: Option<GroupAssignment> =
            group.assignment.as_deref().and_then(|a| serde_json::from_str(a).ok());
        // A change made in shipwatch: mirror it on the issue, when there is one. (Its webhook echo changes nothing:
        // the group is already where GitHub's change would take it.)
        if reason == IssueReason::Reassigned {
            let Some(number) = group.github_issue else { return Ok(()) };
            // The assignee as it is when the job runs (a team is not an assignee GitHub accepts).
            let assignees: Vec<String> = group.assignee.iter().filter(|l| !l.contains('/')).cloned().collect();
            self.pace(now()).await?;
            match self.github.set_assignees(&repo, number, &assignees).await {
                Ok(()) => {
                    info!(issue = number, assignee = group.assignee.as_deref(), "issue assignee follows the group")
                }
                // GitHub refuses someone without access: the group keeps them, the issue keeps its assignee.
                Err(GitHubError::Rejected { status: 422, message }) => {
                    warn!(issue = number, %message, "GitHub refused the assignee; the issue keeps its own")
                }
                Err(e) => return Err(self.wait(e, now()).await),
            }
            return Ok(());
        }
        if let IssueReason::Closed | IssueReason::Reopened = reason {
            let Some(number) = group.github_issue else { return Ok(()) };
            let open = reason == IssueReason::Reopened;
            self.pace(now()).await?;
            if let Err(e) = self.github.set_issue_open(&repo, number, open).await {
                return Err(self.wait(e, now()).await);
            }
            info!(issue = number, open, "issue state follows the group");
            return Ok(());
        }
        let settings = crate::assign::Settings::of_project(project.id, &project.settings);
        // shipwatch's own label, the project's, and what the issue is about: a new error or a regression.
        let mut labels: Vec<String> = vec![MARKER_LABEL.to_owned()];
        labels.extend(settings.labels.clone().unwrap_or_default().into_iter().filter(|l| l != MARKER_LABEL));
        let new_label = settings.new_label.clone().unwrap_or_else(|| NEW_LABEL.to_owned());
        let regression_label = settings.regression_label.clone().unwrap_or_else(|| REGRESSION_LABEL.to_owned());
        let why = match reason {
            IssueReason::Regressed => regression_label.clone(),
            _ => new_label.clone(),
        };
        if !labels.contains(&why) {
            labels.push(why);
        }

        let number = match group.github_issue {
            Some(n) => n,
            None => {
                let marker = marker(&group);
                // No slot to create in yet: come back without reading anything first.
                self.slot_open(now()).await?;
                // A create sent by an earlier try may have taken effect and lost its answer: look for the marker
                // among the issues changed since then (exact on any repository size). Never sent: nothing to find.
                let found = match self.store.github_step(group.id, STEP_CREATE_SENT).await? {
                    Some(sent_at) => {
                        // GitHub may still be working on a create the client gave up on: look only once it cannot
                        // be (the answer timeout and some slack after the send, or slack after the give-up).
                        let outcome = lock(&self.unanswered).get(&group.id).copied();
                        self.settled(outcome, sent_at, now(), "an earlier create")?;
                        let since = sent_at - CLOCK_SLACK_MS;
                        match self.reused_lookup(&repo, group.id, since, &marker) {
                            Some(found) => found,
                            None => {
                                let started_at = now();
                                match self.github.issues_with_label(&repo, MARKER_LABEL, Some(since)).await {
                                    Ok(issues) => {
                                        let found = issues.iter().find(|i| i.body.contains(&marker)).map(|i| i.number);
                                        self.keep_lookup(&repo, Lookup { since, started_at, issues });
                                        found
                                    }
                                    Err(e) => return Err(self.wait(e, now()).await),
                                }
                            }
                        }
                    }
                    None => None,
                };
                match found {
                    Some(number) => {
                        info!(issue = number, "found the group's issue from an earlier attempt");
                        number
                    }
                    None => {
                        self.create(&repo, &group, assignment.as_ref(), deploy.as_ref(), labels, &marker, &now).await?
                    }
                }
            }
        };
        if group.github_issue != Some(number) {
            self.store.set_github_issue(group.id, number).await?;
            lock(&self.unanswered).remove(&group.id);
            self.store
                .add_history(&crate::store::HistoryEntry {
                    group_id: group.id,
                    at: now(),
                    kind: "issue_linked".into(),
                    release: None,
                    environment: None,
                    deploy_id: None,
                    detail: Some(format!("#{number} in {repo}")),
                })
                .await?;
        }
        if reason == IssueReason::New {
            // The pull request the suspect came from hears about it too, when the project asks for that.
            if settings.pull_request_comments
                && self.store.github_step(group.id, STEP_PULL_COMMENT_QUEUED).await?.is_none()
            {
                self.store.enqueue_job(Work::GithubPullComment { group: group.id }.job(), now()).await?;
                self.store.record_github_step(group.id, STEP_PULL_COMMENT_QUEUED, now()).await?;
            }
            return Ok(());
        }
        if reason != IssueReason::Regressed {
            return Ok(());
        }
        // Regressed: comment once per regression deploy, then reopen. Each write waits for its own slot, and each
        // step is recorded as it happens, so a job that comes back for the reopen's slot goes straight to it.
        let deploy_key = deploy_id.unwrap_or(0);
        let (sent, done) =
            (format!("regression-comment:sent:{deploy_key}"), format!("regression-comment:{deploy_key}"));
        if self.store.github_step(group.id, &done).await?.is_none() {
            self.slot_open(now()).await?;
            let comment_marker = format!("<!-- shipwatch:regression:{}:{deploy_key} -->", group.id);
            // Only a comment sent before (its answer lost) can be there already: then look for its marker.
            let already = match self.store.github_step(group.id, &sent).await? {
                Some(sent_at) => {
                    // Not while GitHub may still be acting on the lost send.
                    let outcome = lock(&self.comment_outcomes).get(&(group.id, deploy_key)).copied();
                    self.settled(outcome, sent_at, now(), "an earlier comment")?;
                    match self.github.comments(&repo, number).await {
                        Ok(comments) => comments.iter().any(|c| c.body.contains(&comment_marker)),
                        Err(e) => return Err(self.wait(e, now()).await),
                    }
                }
                None => false,
            };
            if !already {
                self.pace(now()).await?;
                self.store.record_github_step(group.id, &sent, now()).await?;
                let body = self.regression_comment(&group, assignment.as_ref(), deploy.as_ref(), &comment_marker);
                if let Err(e) = self.github.comment(&repo, number, &body).await {
                    let unanswered = unanswered(&e);
                    lock(&self.comment_outcomes).insert((group.id, deploy_key), unanswered.then_some(now()));
                    return Err(self.wait(e, now()).await);
                }
                lock(&self.comment_outcomes).remove(&(group.id, deploy_key));
                info!(issue = number, "regression commented");
            }
            self.store.record_github_step(group.id, &done, now()).await?;
        }
        // Reopened and reassigned to the owner at the regressing deploy in one write; if GitHub refuses that
        // assignee (no access), recorded, and reopened as it is (the comment mentions them).
        let owner = assignment
            .as_ref()
            .and_then(|a| a.owner.as_ref())
            .and_then(|o| o.github_login.clone())
            .filter(|l| !l.contains('/'));
        // Recorded once done, so a job that comes back (for a write slot) does not reopen again.
        let reopened = format!("regression-reopened:{deploy_key}");
        if self.store.github_step(group.id, &reopened).await?.is_none() {
            let refused = format!("regression-assignee-refused:{deploy_key}");
            self.pace(now()).await?;
            let reassigned = match owner {
                Some(login) if self.store.github_step(group.id, &refused).await?.is_none() => {
                    match self.github.reopen_assigned(&repo, number, std::slice::from_ref(&login)).await {
                        Ok(()) => Some(login),
                        Err(GitHubError::Rejected { status: 422, .. }) => {
                            self.store.record_github_step(group.id, &refused, now()).await?;
                            // The plain reopen is a write of its own.
                            self.pace(now()).await?;
                            None
                        }
                        Err(e) => return Err(self.wait(e, now()).await),
                    }
                }
                _ => None,
            };
            if reassigned.is_none() {
                if let Err(e) = self.github.set_issue_open(&repo, number, true).await {
                    return Err(self.wait(e, now()).await);
                }
            }
            info!(issue = number, assignee = reassigned.as_deref(), "issue reopened");
            self.store.record_github_step(group.id, &reopened, now()).await?;
        }
        // An issue opened for a new error now says it is a regression: the regression label on, the new one off
        // (each a write of its own; the labels people added stay). An issue this job created has it already.
        let relabelled = format!("regression-labels:{deploy_key}");
        if issue_existed
            && new_label != regression_label
            && self.store.github_step(group.id, &relabelled).await?.is_none()
        {
            let added = format!("regression-label-added:{deploy_key}");
            if self.store.github_step(group.id, &added).await?.is_none() {
                self.pace(now()).await?;
                if let Err(e) = self.github.add_labels(&repo, number, std::slice::from_ref(&regression_label)).await {
                    return Err(self.wait(e, now()).await);
                }
                self.store.record_github_step(group.id, &added, now()).await?;
            }
            self.pace(now()).await?;
            if let Err(e) = self.github.remove_label(&repo, number, &new_label).await {
                return Err(self.wait(e, now()).await);
            }
            self.store.record_github_step(group.id, &relabelled, now()).await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        repo: &str,
        group: &Group,
        assignment: Option<&GroupAssignment>,
        deploy: Option<&Deploy>,
        labels: Vec<String>,
        marker: &str,
        now: &impl Fn() -> i64,
    ) -> anyhow::Result<i64> {
        let owner =
            assignment.and_then(|a| a.owner.as_ref()).and_then(|o| o.github_login.clone()).filter(|l| !l.contains('/'));
        // GitHub refused this owner as assignee on an earlier try: mention them instead from the start.
        let refused = self.store.github_step(group.id, STEP_ASSIGNEE_REFUSED).await?.is_some();
        let (assignees, mention) = match (&owner, refused) {
            (Some(login), false) => (vec![login.clone()], None),
            (Some(login), true) => (Vec::new(), Some(login.as_str())),
            (None, _) => (Vec::new(), None),
        };
        let mut issue = NewIssue {
            title: group.title.clone(),
            body: self.issue_body(repo, group, assignment, deploy, mention, marker),
            labels,
            assignees,
        };
        self.pace(now()).await?;
        self.store.record_github_step(group.id, STEP_CREATE_SENT, now()).await?;
        let created = match self.github.create_issue(repo, &issue).await {
            // GitHub refuses assignees without access: mention them instead. Nothing was created.
            Err(GitHubError::Rejected { status: 422, .. }) if !issue.assignees.is_empty() => {
                self.store.record_github_step(group.id, STEP_ASSIGNEE_REFUSED, now()).await?;
                lock(&self.unanswered).insert(group.id, None);
                issue.assignees.clear();
                issue.body = self.issue_body(repo, group, assignment, deploy, owner.as_deref(), marker);
                // A second write: it waits for its own slot too (nothing was created by the refused one); if it
                // must wait, the next try starts from the recorded refusal.
                self.pace(now()).await?;
                self.github.create_issue(repo, &issue).await
            }
            other => other,
        };
        let number = match created {
            Ok(n) => n,
            Err(e) => {
                // Unanswered, it may have taken effect: only a look-up started after now can tell. Any other
                // answer (refused, rate-limited) says it did not.
                let unanswered = unanswered(&e);
                lock(&self.unanswered).insert(group.id, unanswered.then(now));
                return Err(self.wait(e, now()).await);
            }
        };
        info!(issue = number, "issue created");
        Ok(number)
    }

    fn blob(&self, repo: &str, sha: &str, path: &str, line: Option<u32>) -> String {
        let anchor = line.map(|l| format!("#L{l}")).unwrap_or_default();
        format!("{}/{repo}/blob/{sha}/{path}{anchor}", self.web_url)
    }

    fn issue_body(
        &self,
        repo: &str,
        group: &Group,
        assignment: Option<&GroupAssignment>,
        deploy: Option<&Deploy>,
        mention: Option<&str>,
        marker: &str,
    ) -> String {
        let mut b = String::new();
        let when = match (&group.introduced_by, &group.new_in_release, deploy) {
            (Some(v), _, Some(d)) => format!("introduced by **{v}** ({})", d.environment),
            (_, Some(v), Some(d)) => format!("new in **{v}** ({})", d.environment),
            (_, _, Some(d)) => format!("seen in **{}** ({})", d.version, d.environment),
            _ => "seen".into(),
        };
        // The title and culprit come from the event: escaped so they cannot format, link or mention.
        let _ = writeln!(b, "**{}** — {when}\n", markdown::untrusted(&group.title));
        if let Some(culprit) = &group.culprit {
            let _ = writeln!(b, "Culprit: {}\n", markdown::code(culprit));
        }
        if let Some(a) = assignment {
            let _ = writeln!(b, "**Suspect:** {}\n", a.explanation);
            let sha = a.deploy.as_ref().map(|d| d.sha.as_str());
            let frames: Vec<String> = a
                .frames
                .iter()
                .rev()
                .filter_map(|f| {
                    let path = f.repo_path.as_deref()?;
                    let sha = sha?;
                    let mut line = format!(
                        "- [{}]({})",
                        markdown::code(&format!("{path}:{}", f.line.unwrap_or(0))),
                        self.blob(repo, sha, path, f.line)
                    );
                    if let Some(func) = &f.function {
                        let _ = write!(line, " in {}", markdown::code(func));
                    }
                    if let Some(bl) = &f.blame {
                        let _ = write!(
                            line,
                            " — last changed in [{}]({}/{repo}/commit/{}) by {}",
                            bl.commit.get(..7).unwrap_or(&bl.commit),
                            self.web_url,
                            bl.commit,
                            markdown::escape(&bl.author_name)
                        );
                    }
                    Some(line)
                })
                .collect();
            if !frames.is_empty() {
                let _ = writeln!(
                    b,
                    "Frames in this repository, crash first, at the deployed commit:\n\n{}\n",
                    frames.join("\n")
                );
            }
            if let Some(owner) = &a.owner {
                let _ = writeln!(
                    b,
                    "Owner: {} — {}\n",
                    owner.github_login.as_deref().map(|l| format!("@{l}")).unwrap_or_else(|| "nobody".into()),
                    owner.reason
                );
            }
        }
        if let Some(login) = mention {
            let _ = writeln!(b, "@{login}: GitHub would not assign this issue to you, so you are mentioned instead.\n");
        }
        if let Some(d) = deploy {
            // A compare link where the range added commits (a rollback's range is empty).
            let range = d.range_status.as_deref().and_then(RangeStatus::parse);
            let compare = match (d.base_sha.as_deref(), range) {
                (Some(base), Some(RangeStatus::Forward | RangeStatus::Diverged)) => {
                    format!(" · [compare]({}/{repo}/compare/{base}...{})", self.web_url, d.sha)
                }
                _ => String::new(),
            };
            let _ = writeln!(
                b,
                "Deploy: {} to {} at `{}`{compare}\n",
                markdown::escape(&d.version),
                markdown::escape(&d.environment),
                d.sha.get(..12).unwrap_or(&d.sha),
            );
        }
        // The pages (behind the read token where one is set), not the token-protected JSON API.
        let base = self.public_url.trim_end_matches('/');
        let _ = write!(b, "[This error in shipwatch]({base}/groups/{})", group.id);
        if let Some(d) = deploy {
            let _ = write!(b, " · [release report of {}]({base}/deploys/{})", markdown::escape(&d.version), d.id);
        }
        let _ = writeln!(b, "\n");
        let _ = writeln!(b, "{marker}");
        b
    }

    fn regression_comment(
        &self,
        group: &Group,
        assignment: Option<&GroupAssignment>,
        deploy: Option<&Deploy>,
        marker: &str,
    ) -> String {
        let mut b = String::new();
        let release = group.regressed_in.as_deref().or(deploy.map(|d| d.version.as_str())).unwrap_or("a new release");
        let _ = writeln!(
            b,
            "**Regressed in {}**: this error came back after it was resolved ({} events in all).\n",
            markdown::escape(release),
            group.times_seen
        );
        if let Some(d) = deploy {
            let _ = writeln!(
                b,
                "Deploy: {} to {} at `{}`.\n",
                markdown::escape(&d.version),
                markdown::escape(&d.environment),
                d.sha.get(..12).unwrap_or(&d.sha)
            );
        }
        if let Some(a) = assignment {
            let _ = writeln!(b, "Suspect at this deploy: {}\n", a.explanation);
            // The owner at this deploy is told, whether or not GitHub lets the issue be assigned to them.
            if let Some(login) = a.owner.as_ref().and_then(|o| o.github_login.as_deref()) {
                let _ = writeln!(b, "@{login}: this is yours at this deploy.\n");
            }
        }
        let _ = writeln!(b, "{marker}");
        b
    }
}
/// The hidden marker of a project's comment on pull request `number`.
pub fn pull_marker(project_id: i64, number: i64) -> String {
    format!("<!-- shipwatch:pull:{project_id}:{number} -->")
}

/// Pull-request comments: one per pull request, listing the errors whose suspect commit it brought in.
impl IssueSync {
    /// Runs the `github_pull_comment` job of group `group_id`: finds the pull request of its suspect commit
    /// (GitHub's answer kept per commit), attributes the group to it, and creates or edits shipwatch's one
    /// comment there so it lists every error attributed to the pull request.
    ///
    /// # Errors
    /// [`Later`] when the write pacing has no slot yet or another job's create may still be on its way;
    /// [`RetryAt`] when GitHub asks to wait; other errors are retried with backoff.
    #[instrument(skip_all, fields(group_id = group_id))]
    pub async fn comment_on_pull(&self, group_id: i64, now: impl Fn() -> i64) -> anyhow::Result<()> {
        let Some(group) = self.store.group(group_id).await? else { return Ok(()) };
        let project =
            self.store.project_by_id(group.project_id).await?.ok_or_else(|| anyhow::anyhow!("project gone"))?;
        let Some(repo) = project.github_repo.clone() else { return Ok(()) };
        if !crate::assign::Settings::of_project(project.id, &project.settings).pull_request_comments {
            info!("pull-request comments are off for the project");
            return Ok(());
        }
        let assignment: Option<GroupAssignment> =
            group.assignment.as_deref().and_then(|a| serde_json::from_str(a).ok());
        let Some(sha) = assignment.as_ref().and_then(|a| a.suspect.as_ref()).map(|s| s.commit.clone()) else {
            return Ok(());
        };
        let pull = match self.store.commit_pull(project.id, &sha).await? {
            Some(known) => known,
            None => {
                let pulls = match self.github.commit_pulls(&repo, &sha).await {
                    Ok(p) => p,
                    Err(e) => return Err(self.wait(e, now()).await),
                };
                let first =
                    pulls.into_iter().next().map(|p| PullRef { pull_number: p.number, title: p.title, url: p.url });
                self.store.set_commit_pull(project.id, &sha, first.as_ref(), now()).await?;
                first
            }
        };
        let Some(pull) = pull else {
            info!(commit = %sha, "the suspect commit belongs to no pull request");
            return Ok(());
        };
        let number = pull.pull_number;
        self.store.add_pull_group(project.id, number, group.id).await?;
        let marker = pull_marker(project.id, number);
        let body = self.pull_comment_body(&repo, project.id, number, &marker).await?;
        let written = match self.store.pull_comment(project.id, number).await? {
            Some(PullComment { comment_id: Some(id), body: old, .. }) => {
                if old.as_deref() == Some(body.as_str()) {
                    return Ok(());
                }
                self.edit_pull_comment(&repo, project.id, number, id, &body, &now).await?;
                body
            }
            unanswered => {
                let previous = unanswered.map(|c| c.sent_at);
                self.slot_open(now()).await?;
                if let Some(sent_at) = previous {
                    // Another job's create may still be on its way: its answer (or its timeout) comes first.
                    if now() < sent_at + self.in_flight_ms {
                        return Err(anyhow::Error::new(Later {
                            until_ms: sent_at + self.in_flight_ms,
                            why: "the pull request's comment is being created by another job".into(),
                        }));
                    }
                    // Sent before without an answer: it may be there. Its marker says.
                    let found = match self.github.comments(&repo, number).await {
                        Ok(comments) => comments.into_iter().find(|c| c.body.contains(&marker)),
                        Err(e) => return Err(self.wait(e, now()).await),
                    };
                    if let Some(c) = found {
                        info!(
                            pull = number,
                            comment = c.id,
                            "found the pull request's comment from an earlier attempt"
                        );
                        self.store.set_pull_comment(project.id, number, c.id, &c.body).await?;
                        if c.body != body {
                            self.edit_pull_comment(&repo, project.id, number, c.id, &body, &now).await?;
                        }
                        return self.again_if_grown(project.id, number, &marker, &body, &repo, &now).await;
                    }
                }
                self.pace(now()).await?;
                if !self.store.claim_pull_comment(project.id, number, previous, now()).await? {
                    return Err(anyhow::Error::new(Later {
                        until_ms: now() + 1_000,
                        why: "another job took the pull request's comment".into(),
                    }));
                }
                let id = match self.github.comment(&repo, number, &body).await {
                    Ok(id) => id,
                    Err(e) => return Err(self.wait(e, now()).await),
                };
                self.store.set_pull_comment(project.id, number, id, &body).await?;
                info!(pull = number, comment = id, "pull request commented");
                body
            }
        };
        self.again_if_grown(project.id, number, &marker, &written, &repo, &now).await
    }

    /// Runs the `github_pull_titles` job of deploy `deploy_id`: asks GitHub which pull request each of the
    /// range's first [`PULL_LOOKUPS_PER_DEPLOY`] commits came from, once per commit ever (the answers are kept).
    /// Reads only: no write slot is taken.
    ///
    /// # Errors
    /// [`RetryAt`] when GitHub asks to wait; other errors are retried with backoff.
    #[instrument(skip_all, fields(deploy_id = deploy_id))]
    pub async fn pull_titles(&self, deploy_id: i64, now: impl Fn() -> i64) -> anyhow::Result<()> {
        let Some(deploy) = self.store.deploy(deploy_id).await? else { return Ok(()) };
        let Some(project) = self.store.project_by_id(deploy.project_id).await? else { return Ok(()) };
        let Some(repo) = project.github_repo.clone() else { return Ok(()) };
        let commits = self.store.deploy_commits(deploy_id).await?;
        let mut asked = 0;
        for c in commits.iter().take(PULL_LOOKUPS_PER_DEPLOY) {
            if self.store.commit_pull(project.id, &c.sha).await?.is_some() {
                continue;
            }
            let pulls = match self.github.commit_pulls(&repo, &c.sha).await {
                Ok(p) => p,
                Err(e) => return Err(self.wait(e, now()).await),
            };
            let first = pulls.into_iter().next().map(|p| PullRef { pull_number: p.number, title: p.title, url: p.url });
            self.store.set_commit_pull(project.id, &c.sha, first.as_ref(), now()).await?;
            asked += 1;
        }
        info!(asked, commits = commits.len(), "pull requests of the range looked up");
        Ok(())
    }

    async fn edit_pull_comment(
        &self,
        repo: &str,
        project_id: i64,
        number: i64,
        id: i64,
        body: &str,
        now: &impl Fn() -> i64,
    ) -> anyhow::Result<()> {
        self.pace(now()).await?;
        match self.github.edit_comment(repo, id, body).await {
            Ok(()) => info!(pull = number, comment = id, "pull request comment edited"),
            // Someone deleted it: it stays deleted (recorded as written so it is not tried again).
            Err(GitHubError::Rejected { status: 404, .. }) => {
                warn!(pull = number, comment = id, "the pull request's comment was deleted on GitHub; not recreated");
            }
            Err(e) => return Err(self.wait(e, now()).await),
        }
        self.store.set_pull_comment(project_id, number, id, body).await?;
        Ok(())
    }

    /// Another group may have been attributed to the pull request while this job wrote (another worker, another
    /// process): then the job runs again to write the longer list, so the comment never ends shorter than the
    /// attributions.
    async fn again_if_grown(
        &self,
        project_id: i64,
        number: i64,
        marker: &str,
        written: &str,
        repo: &str,
        now: &impl Fn() -> i64,
    ) -> anyhow::Result<()> {
        let latest = self.pull_comment_body(repo, project_id, number, marker).await?;
        if latest == written {
            return Ok(());
        }
        Err(anyhow::Error::new(Later {
            until_ms: now(),
            why: "more errors were attributed to the pull request".into(),
        }))
    }

    async fn pull_comment_body(
        &self,
        repo: &str,
        project_id: i64,
        number: i64,
        marker: &str,
    ) -> anyhow::Result<String> {
        let groups = self.store.pull_groups(project_id, number).await?;
        let base = self.public_url.trim_end_matches('/');
        let mut b = String::new();
        let count = groups.len();
        let errors = if count == 1 { "1 new error".to_owned() } else { format!("{count} new errors") };
        let _ = writeln!(b, "**shipwatch** traced {errors} after deploys to commits of this pull request.\n");
        let _ = writeln!(b, "| Error | First seen | Suspect commit | Owner |\n|---|---|---|---|");
        for g in &groups {
            let assignment: Option<GroupAssignment> =
                g.assignment.as_deref().and_then(|a| serde_json::from_str(a).ok());
            let suspect = assignment.as_ref().and_then(|a| a.suspect.as_ref());
            let commit = suspect.map_or_else(String::new, |s| {
                format!("[`{}`]({}/{repo}/commit/{})", s.commit.get(..7).unwrap_or(&s.commit), self.web_url, s.commit)
            });
            let seen = match (&g.new_in_release, assignment.as_ref().and_then(|a| a.deploy.as_ref())) {
                (Some(v), Some(d)) => format!("{} ({})", markdown::escape(v), markdown::escape(&d.environment)),
                (Some(v), None) => markdown::escape(v),
                (None, Some(d)) => format!("{} ({})", markdown::escape(&d.version), markdown::escape(&d.environment)),
                (None, None) => String::new(),
            };
            // Named without an @: the issue assigns them; the pull request is not the place to page them again.
            let owner = g.assignee.as_deref().map(markdown::code).unwrap_or_default();
            let title = markdown::untrusted(&g.title).replace('|', "\\|");
            let _ = writeln!(b, "| [{title}]({base}/groups/{}) | {seen} | {commit} | {owner} |", g.id);
        }
        let _ = writeln!(b, "\nThis comment is kept up to date as more errors are attributed to this pull request.\n");
        let _ = writeln!(b, "{marker}");
        Ok(b)
    }
}
