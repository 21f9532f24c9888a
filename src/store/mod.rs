//! The storage boundary: the `Store` trait, the records it reads and writes, and its two backends.
//!
//! One trait per aggregate (projects, deploys, events, groups, GitHub links, webhook deliveries, jobs), gathered in
//! `Store`. SQLite (the embedded default) and PostgreSQL (scale-out) share their SQL wherever the dialects agree:
//! each aggregate is one plain module in `sql/`, compiled twice — `sqlite.rs` and `postgres.rs` each include it
//! with their own `Db` (the sqlx database) and `Backend` (the store type). What differs (connecting, pragmas,
//! claiming a job with `FOR UPDATE SKIP LOCKED`) is written in each backend. Nothing in here knows about HTTP.

mod common;
pub mod postgres;
pub mod spool;
pub mod sqlite;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// What went wrong in the store, named by outcome so callers can answer precisely.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot take the work now but may soon: a full disk, an I/O error, a lock held too long, a lost
    /// or refused connection. Callers answer "try again later" (`503` with `Retry-After`), never success.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(db.message().to_owned()),
            sqlx::Error::Database(db) if transient_code(db.code().as_deref()) => {
                StoreError::Unavailable(db.message().to_owned())
            }
            sqlx::Error::Io(e) => StoreError::Unavailable(format!("I/O error: {e}")),
            sqlx::Error::PoolTimedOut => StoreError::Unavailable("no database connection became free in time".into()),
            sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
                StoreError::Unavailable("the database connection is gone".into())
            }
            other => StoreError::Other(anyhow::Error::new(other).context("database error")),
        }
    }
}

/// Database error codes that say "not now" rather than "never": SQLite's primary result codes (extended codes
/// carry them in the low byte) BUSY 5, LOCKED 6, NOMEM 7, IOERR 10, FULL 13, CANTOPEN 14, PROTOCOL 15; PostgreSQL's
/// classes 08 (connection), 53 (insufficient resources: disk full, out of memory, too many connections) and 57P
/// (operator intervention: shutdown, cannot connect now).
fn transient_code(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    // A SQLSTATE is always five characters; SQLite's codes are decimal numbers of at most four digits.
    if code.len() == 5 {
        return code.starts_with("08") || code.starts_with("53") || code.starts_with("57P");
    }
    code.parse::<i64>().is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 7 | 10 | 13 | 14 | 15))
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Other(anyhow::Error::new(e).context("applying database migrations"))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A project as stored. `deploy_token` is a credential: `Debug` hides it.
#[derive(Clone, sqlx::FromRow, Serialize)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub repo_url: String,
    pub github_repo: Option<String>,
    pub ingest_key: String,
    #[serde(skip)]
    pub deploy_token: String,
    pub created_at: i64,
    /// Assignment settings as JSON (see `assign::Settings`).
    pub settings: String,
}

impl std::fmt::Debug for Project {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Project")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("repo_url", &self.repo_url)
            .field("github_repo", &self.github_repo)
            .field("deploy_token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

pub struct NewProject {
    pub name: String,
    pub repo_url: String,
    pub github_repo: Option<String>,
    pub ingest_key: String,
    pub deploy_token: String,
}

/// A deploy as stored, with the outcome of its range computation once the worker has run.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Deploy {
    pub id: i64,
    pub project_id: i64,
    pub environment: String,
    /// Position of this deploy among the deploys of its environment, in the order they were received.
    pub seq: i64,
    pub version: String,
    pub sha: String,
    /// The previous commit as given by the caller, if any.
    pub previous_sha: Option<String>,
    /// The deploy of the same environment that came before this one, if any.
    pub previous_deploy_id: Option<i64>,
    /// The commit the range starts from (`base_sha..sha`): the given previous commit or the previous deploy's.
    pub base_sha: Option<String>,
    /// `pending`, `ready` or `failed`.
    pub status: String,
    /// How `sha` relates to `base_sha`: `initial`, `forward`, `redeploy`, `rollback`, `diverged` or
    /// `previous_missing`.
    pub range_status: Option<String>,
    pub merge_base: Option<String>,
    /// Commits in the range, counted by git.
    pub commit_count: Option<i64>,
    /// Commits stored with their details (fewer than `commit_count` only when the range exceeded the cap).
    pub commits_stored: Option<i64>,
    /// Why the deploy failed, or why the last attempt to process it did.
    pub failure_reason: Option<String>,
    pub deployed_at: i64,
    pub deployer: Option<String>,
    pub url: Option<String>,
    pub created_at: i64,
    pub processed_at: Option<i64>,
    /// A rollback's (or a diverged deploy's): commits of the previous deploy that this one no longer has.
    pub removed_count: Option<i64>,
}

pub struct NewDeploy {
    pub project_id: i64,
    pub environment: String,
    pub version: String,
    pub sha: String,
    pub previous_sha: Option<String>,
    pub deployed_at: i64,
    pub deployer: Option<String>,
    pub url: Option<String>,
    /// Whether the caller named the deploy's time (rather than it being the time of receipt).
    pub deployed_at_given: bool,
}

/// The result of computing a deploy's range, written in one transaction.
#[derive(Debug, Clone)]
pub struct RangeOutcome {
    pub base_sha: Option<String>,
    pub range_status: String,
    pub merge_base: Option<String>,
    pub commit_count: i64,
    pub commits: Vec<CommitRecord>,
    /// Commits the previous deploy had and this one does not (a rollback's, a diverged deploy's), counted by git.
    pub removed_count: i64,
    /// Those commits with their details, newest first, up to the range cap.
    pub removed: Vec<CommitRecord>,
}

/// A pull request a commit belongs to, as GitHub said.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct PullRef {
    pub pull_number: i64,
    pub title: String,
    pub url: String,
}

/// shipwatch's comment on a pull request: sent at `sent_at`; `comment_id` and `body` once GitHub answered.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PullComment {
    pub comment_id: Option<i64>,
    pub body: Option<String>,
    pub sent_at: i64,
}

/// One line of a group's history: something that happened to it, where, and why.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct HistoryEntry {
    pub group_id: i64,
    pub at: i64,
    /// `resolved`, `resolved_by_commit`, `resolve_next_release`, `unresolved`, `ignored`, `regressed`,
    /// `issue_linked`, `fixed_by_commit`.
    pub kind: String,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub deploy_id: Option<i64>,
    /// Who or what did it, the baseline, the issue number: free text written by the domain.
    pub detail: Option<String>,
}

/// An assignment made at a deploy, for a group's timeline.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeployAssignment {
    pub deploy_id: i64,
    pub version: String,
    pub environment: String,
    pub assignee: Option<String>,
    pub assignment: String,
    pub assigned_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    pub email: String,
}

/// An issue a commit says it closes: `#12` (this repository) or `owner/repo#3`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRef {
    pub repo: Option<String>,
    pub number: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    /// The path before a rename, when git detected one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub old_path: Option<String>,
    /// Lines added and deleted; `None` for binary files.
    pub added: Option<i64>,
    pub deleted: Option<i64>,
}

/// One commit with the details shipwatch keeps (identities after `.mailmap` at the deployed commit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitRecord {
    pub sha: String,
    pub parents: Vec<String>,
    pub author: Person,
    pub author_time: i64,
    pub committer: Person,
    pub committer_time: i64,
    pub summary: String,
    pub message: String,
    pub pr_number: Option<i64>,
    pub co_authors: Vec<Person>,
    pub closes: Vec<IssueRef>,
    pub files: Vec<FileChange>,
}

/// A unit of durable background work, as claimed by a worker.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub attempts: i64,
    pub max_attempts: i64,
    /// Proof of the current claim: completing or failing a job needs it, so a worker whose lease ran out cannot
    /// overwrite the work of the worker that took the job over.
    pub lease_token: String,
}

/// Where a job row stands in the queue. One string form each, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for its `run_at`.
    Queued,
    /// Claimed by a worker until its lease runs out.
    Running,
    Done,
    /// Given up after its last attempt; `last_error` says why.
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 4] = [JobStatus::Queued, JobStatus::Running, JobStatus::Done, JobStatus::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Dead => "dead",
        }
    }
}

impl TryFrom<String> for JobStatus {
    type Error = String;

    fn try_from(s: String) -> Result<JobStatus, String> {
        JobStatus::ALL.into_iter().find(|j| j.as_str() == s).ok_or_else(|| format!("`{s}` is not a job status"))
    }
}

/// A job as it stands, for inspection (tests, operations).
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct JobState {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// An accepted error event, before grouping.
#[derive(Debug, PartialEq)]
pub struct NewEvent {
    pub project_id: i64,
    pub event_id: String,
    pub occurred_at: i64,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub platform: Option<String>,
    /// The normalised event as JSON.
    pub payload: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub id: i64,
    pub project_id: i64,
    pub event_id: String,
    pub received_at: i64,
    pub occurred_at: i64,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub platform: Option<String>,
    pub payload: String,
    pub group_id: Option<i64>,
}

/// What grouping decided about one event.
pub struct GroupUpdate {
    pub fingerprint: String,
    pub title: String,
    pub culprit: Option<String>,
    pub level: Option<String>,
}

/// An error group: the events that share a fingerprint.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Group {
    pub id: i64,
    pub project_id: i64,
    pub fingerprint: String,
    pub title: String,
    pub culprit: Option<String>,
    pub level: Option<String>,
    pub status: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub first_release: Option<String>,
    pub times_seen: i64,
    pub last_event_id: Option<i64>,
    /// The assignment of the group's first event, as JSON, once the worker has made it.
    pub assignment: Option<String>,
    /// The GitHub login the group is assigned to.
    pub assignee: Option<String>,
    pub assigned_at: Option<i64>,
    pub resolved_at: Option<i64>,
    /// A commit known to fix the group: an event from a build containing it is a regression.
    pub fixed_in_commit: Option<String>,
    pub regressed_at: Option<i64>,
    /// The release whose event reopened the group last.
    pub regressed_in: Option<String>,
    pub times_regressed: i64,
    /// The release the group first appeared in, when that was the newest deploy of its environment.
    pub new_in_release: Option<String>,
    /// The release whose deploy range holds the suspect commit.
    pub introduced_by: Option<String>,
    pub github_issue: Option<i64>,
    /// With status `resolved_in_next_release`: the environment whose next deploy resolves it (any when `None`).
    pub resolve_next_environment: Option<String>,
}

/// Events of a group in one release and environment (`""` when the event named none).
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct GroupCount {
    pub release: String,
    pub environment: String,
    pub count: i64,
    pub first_seen: i64,
    pub last_seen: i64,
}

#[derive(Debug, Clone, Default)]
pub struct GroupFilter {
    pub status: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    /// Words the title contains (any case).
    pub text: Option<String>,
    /// The GitHub login (or `org/team`) the group is assigned to.
    pub assignee: Option<String>,
    pub order: GroupOrder,
    pub limit: i64,
    pub offset: i64,
}

/// How a list of groups is sorted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GroupOrder {
    /// Most recently seen first.
    #[default]
    LastSeen,
    /// Most events first.
    Events,
    /// Most recently first seen first.
    Newest,
}

/// A job row to queue: the store keeps kind and payload as given (`jobs::Work` owns what they mean).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub kind: String,
    pub payload: String,
    pub max_attempts: i64,
}

/// What retention deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    Events,
    FinishedJobs,
    WebhookDeliveries,
}

/// The queue name, in [`JobStore::queue_depths`], of events waiting to be grouped.
pub const GROUP_EVENTS: &str = "group_events";

/// What one batch did to one group, for the caller's rule on which jobs follow.
#[derive(Debug, Clone)]
pub struct Grouped {
    pub group_id: i64,
    /// The earliest of the batch's events in this group.
    pub first_event: i64,
    /// The group was resolved when the batch reached it.
    pub was_resolved: bool,
    /// The batch created the group.
    pub new_group: bool,
    /// One of the batch's events per release and environment in this group: each build that may have brought a
    /// resolved group back.
    pub builds: Vec<i64>,
}

/// What one grouping batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchGrouped {
    /// Events filed into a group.
    pub events: u64,
    /// Distinct groups they went to.
    pub groups: u64,
    pub new_groups: u64,
    /// Events that could not be grouped (kept, with why, out of the queue).
    pub failed: u64,
}

/// The caller's grouping rule for one stored event: its group, or why it has none.
pub type Classify<'a> = &'a (dyn Fn(&StoredEvent) -> Result<GroupUpdate, String> + Send + Sync);

/// Everything shipwatch keeps, behind one interface with a SQLite and a PostgreSQL implementation: one trait per
/// aggregate, each implemented by a module in `sql/` that both backends compile (`store/sqlite.rs`,
/// `store/postgres.rs`), so the SQL is written once and rustfmt and the compiler see all of it.
///
/// Times (`now`) are passed in, in unix milliseconds, so the job-lease logic can be tested with a controlled clock.
#[async_trait]
pub trait Store:
    ProjectStore + DeployStore + EventStore + GroupStore + GithubStore + WebhookStore + JobStore + Send + Sync + 'static
{
    /// The backend's name, for logs and `/readyz`.
    fn backend(&self) -> &'static str;
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// Checks that the database takes a committed write now (rewrites one row of `write_checks`).
    async fn check_writable(&self, now: i64) -> StoreResult<()>;
    /// Deletes at most `limit` rows of `what` older than `before` (ms); returns how many went. A group's last event
    /// is never deleted; of jobs, only finished ones (done or dead) are.
    async fn purge(&self, what: Purge, before: i64, limit: i64) -> StoreResult<u64>;
}

/// Projects: creating, finding, and their settings.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    async fn create_project(&self, project: NewProject, now: i64) -> StoreResult<Project>;
    async fn list_projects(&self) -> StoreResult<Vec<Project>>;
    async fn project_by_id(&self, id: i64) -> StoreResult<Option<Project>>;
    async fn project_by_name(&self, name: &str) -> StoreResult<Option<Project>>;
    async fn set_project_settings(&self, project_id: i64, settings: &str) -> StoreResult<()>;
    async fn projects_for_github_repo(&self, repo: &str) -> StoreResult<Vec<Project>>;
}

/// Deploys and the commits of their ranges.
#[async_trait]
pub trait DeployStore: Send + Sync {
    /// Records a deploy and queues `range_job(deploy id)`, atomically. When the latest deploy of the environment is
    /// the same one (same sha, version and given previous sha) it is returned instead, with `false`; a re-sent
    /// deploy that had failed is queued again.
    async fn record_deploy(
        &self,
        deploy: NewDeploy,
        range_job: fn(i64) -> NewJob,
        now: i64,
    ) -> StoreResult<(Deploy, bool)>;
    async fn deploy(&self, id: i64) -> StoreResult<Option<Deploy>>;
    /// Deploys of a project, newest first, optionally of one environment, before a deploy id (for paging).
    async fn list_deploys(
        &self,
        project_id: i64,
        environment: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<Deploy>>;
    /// Stores a computed range: the commits, the deploy's link to them (replacing any earlier partial write) and
    /// the deploy's range fields, and queues `then`, in one transaction.
    async fn finish_deploy_range(
        &self,
        deploy_id: i64,
        outcome: &RangeOutcome,
        then: &[NewJob],
        now: i64,
    ) -> StoreResult<()>;
    /// Marks a deploy failed with a reason a person can act on.
    async fn fail_deploy(&self, deploy_id: i64, reason: &str, now: i64) -> StoreResult<()>;
    /// Notes why the last attempt to process a still-pending deploy failed.
    async fn note_deploy_problem(&self, deploy_id: i64, reason: &str) -> StoreResult<()>;
    /// The commits of a deploy's range, in `git log` order.
    async fn deploy_commits(&self, deploy_id: i64) -> StoreResult<Vec<CommitRecord>>;
    /// The commits a rollback (or diverged deploy) took out, newest first.
    async fn deploy_removed_commits(&self, deploy_id: i64) -> StoreResult<Vec<CommitRecord>>;
    /// Whether a deploy of `release` (in `environment` when given) is still pending: its range is being computed.
    async fn release_pending(&self, project_id: i64, environment: Option<&str>, release: &str) -> StoreResult<bool>;
    /// The deploy an event ran at: the newest ready deploy whose version is `release` (in `environment` when given),
    /// else one whose commit starts with `release`; `None` when neither exists.
    async fn deploy_for_release(
        &self,
        project_id: i64,
        environment: Option<&str>,
        release: &str,
    ) -> StoreResult<Option<Deploy>>;
    /// The newest ready deploy of an environment (or of the project when `None`).
    async fn latest_ready_deploy(&self, project_id: i64, environment: Option<&str>) -> StoreResult<Option<Deploy>>;
}

/// Events as received, and what intake counted.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Stores an event received at `now`; it waits, ungrouped, for a grouping batch. `None` when the project
    /// already has an event with this id (a retried delivery): nothing is written then.
    async fn insert_event(&self, event: &NewEvent, now: i64) -> StoreResult<Option<i64>>;
    /// Stores a batch of events (each with when it was received) and adds `items` (project, item type, count) to
    /// the item counters, in one transaction. Events whose id the project already has are skipped; returns how many
    /// were stored.
    async fn insert_events(&self, events: &[(i64, &NewEvent)], items: &[(i64, String, i64)]) -> StoreResult<u64>;
    async fn event(&self, id: i64) -> StoreResult<Option<StoredEvent>>;
    /// Events of a project's environment that happened in `[from, to)` (unix ms).
    async fn count_events_between(&self, project_id: i64, environment: &str, from: i64, to: i64) -> StoreResult<i64>;
    async fn item_counts(&self, project_id: i64) -> StoreResult<Vec<(String, i64)>>;
    async fn event_count(&self, project_id: i64) -> StoreResult<i64>;
}

/// Error groups: filing events into them, their counts, assignment and status.
#[async_trait]
pub trait GroupStore: Send + Sync {
    /// Takes up to `limit` ungrouped events (oldest first; on PostgreSQL, rows another worker holds are skipped),
    /// files each into the group `classify` names (creating it) and queues the jobs `follow` names for each group,
    /// in one transaction: group counters, counts per release and environment and follow-up work are written once
    /// per group per batch, and an event is counted exactly once however the batch ends.
    async fn group_batch(
        &self,
        limit: i64,
        classify: Classify<'_>,
        follow: fn(Grouped) -> Vec<NewJob>,
        now: i64,
    ) -> StoreResult<BatchGrouped>;
    async fn list_groups(&self, project_id: i64, filter: &GroupFilter) -> StoreResult<Vec<Group>>;
    /// Stores the assignment of a group (JSON) and its assignee as the group's current one, and, made at a deploy,
    /// as that deploy's (kept when a later deploy re-assigns the group); with `flags`, a new group's "new in" /
    /// "introduced by" and its GitHub job, in the same transaction (the job never sees a group without its
    /// assignment).
    async fn set_group_assignment(
        &self,
        group_id: i64,
        deploy_id: Option<i64>,
        assignment: &str,
        assignee: Option<&str>,
        flags: Option<&ReleaseFlags<'_>>,
        now: i64,
    ) -> StoreResult<()>;
    /// The assignments made at a deploy: group id → (assignment JSON, assignee).
    async fn assignments_at_deploy(&self, deploy_id: i64) -> StoreResult<Vec<(i64, String, Option<String>)>>;
    /// Resolves a group now: its baseline in every environment is the commit deployed there now.
    async fn resolve_group(&self, group_id: i64, fixed_in_commit: Option<&str>, now: i64) -> StoreResult<()>;
    /// Marks a group to be resolved by the next deploy of `environment` (of any environment when `None`) that
    /// completes.
    async fn resolve_group_in_next_release(&self, group_id: i64, environment: Option<&str>) -> StoreResult<()>;
    async fn unresolve_group(&self, group_id: i64) -> StoreResult<()>;
    async fn ignore_group(&self, group_id: i64) -> StoreResult<()>;
    /// Per environment, the commit that was deployed when the group was resolved.
    async fn group_resolutions(&self, group_id: i64) -> StoreResult<Vec<(String, String)>>;
    /// Reopens a resolved group because of an event from `release`, queueing `github_job` in the same transaction;
    /// `false` when it was no longer resolved.
    async fn mark_regressed(
        &self,
        group_id: i64,
        release: &str,
        now: i64,
        github_job: Option<&NewJob>,
        history: &HistoryEntry,
    ) -> StoreResult<bool>;
    /// Adds a line to a group's history.
    async fn add_history(&self, entry: &HistoryEntry) -> StoreResult<()>;
    /// Assigns a group to a GitHub login by hand (or to nobody), with its history line, in one transaction.
    async fn set_assignee(
        &self,
        group_id: i64,
        assignee: Option<&str>,
        history: &HistoryEntry,
        github_job: Option<&NewJob>,
    ) -> StoreResult<()>;
    /// A group's history, oldest first.
    async fn group_history(&self, group_id: i64) -> StoreResult<Vec<HistoryEntry>>;
    /// A group's assignments, one per deploy it was assigned at, oldest first.
    async fn group_assignment_history(&self, group_id: i64) -> StoreResult<Vec<DeployAssignment>>;
    /// Per group, its events in a build (a release in an environment).
    async fn group_counts_in_build(
        &self,
        project_id: i64,
        release: &str,
        environment: &str,
    ) -> StoreResult<Vec<(i64, i64)>>;
    /// Of a build (a release in an environment): its events, the groups new in it that it had events of, and the
    /// groups that came back in it.
    async fn build_summary(&self, project_id: i64, release: &str, environment: &str) -> StoreResult<(i64, i64, i64)>;
    /// The groups of a project that regressed with an event from `release` in `environment`.
    async fn regressed_in_build(&self, project_id: i64, release: &str, environment: &str) -> StoreResult<Vec<i64>>;
    async fn group(&self, id: i64) -> StoreResult<Option<Group>>;
    /// A project's groups resolved "in the next release" of `environment` or of any environment.
    async fn groups_waiting_for_release(&self, project_id: i64, environment: &str) -> StoreResult<Vec<Group>>;
    /// Groups new in, introduced by or regressed in `version` (a release of the project).
    async fn groups_of_release(&self, project_id: i64, version: &str) -> StoreResult<Vec<Group>>;
    async fn group_counts(&self, group_id: i64) -> StoreResult<Vec<GroupCount>>;
}

/// What a new group's first assignment says about releases: the release it is new in, the release whose range holds
/// its suspect, and the GitHub job that announces it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReleaseFlags<'a> {
    pub new_in: Option<&'a str>,
    pub introduced_by: Option<&'a str>,
    pub github_job: Option<&'a NewJob>,
}

/// The link between groups and their GitHub issues.
#[async_trait]
pub trait GithubStore: Send + Sync {
    async fn group_by_issue(&self, project_id: i64, issue: i64) -> StoreResult<Option<Group>>;
    /// Links a group to its GitHub issue.
    async fn set_github_issue(&self, group_id: i64, issue: i64) -> StoreResult<()>;
    /// Records the commit that fixes a group (a `Fixes #N` of its issue on the default branch): while the group is
    /// resolved, only a build containing that commit can reopen it. Cleared when the group is unresolved.
    async fn set_fixing_commit(&self, group_id: i64, sha: &str) -> StoreResult<()>;
    /// Takes the next GitHub write slot when it is open at `now` (the next one then opens `interval_ms` later, for
    /// every process on this database); otherwise says when it opens.
    async fn take_write_slot(&self, now: i64, interval_ms: i64) -> StoreResult<Result<(), i64>>;
    /// When the next write slot opens (unix ms).
    async fn next_write_slot(&self) -> StoreResult<i64>;
    /// No write slot opens before `until` (GitHub asked to wait).
    async fn hold_writes_until(&self, until: i64) -> StoreResult<()>;
    /// When a group's GitHub job did `step`, if it did.
    async fn github_step(&self, group_id: i64, step: &str) -> StoreResult<Option<i64>>;
    /// Records that a group's GitHub job did (or is about to do) `step`; the first record stands.
    async fn record_github_step(&self, group_id: i64, step: &str, at: i64) -> StoreResult<()>;
    /// The pull request GitHub links commit `sha` to: `None` when GitHub was never asked, `Some(None)` when the
    /// commit belongs to none.
    async fn commit_pull(&self, project_id: i64, sha: &str) -> StoreResult<Option<Option<PullRef>>>;
    /// Records GitHub's answer for commit `sha` (the first answer stands).
    async fn set_commit_pull(&self, project_id: i64, sha: &str, pull: Option<&PullRef>, now: i64) -> StoreResult<()>;
    /// The pull requests of commits GitHub was asked about, by sha, among `shas`.
    async fn commit_pulls(&self, project_id: i64, shas: &[String]) -> StoreResult<Vec<(String, PullRef)>>;
    /// Attributes a group to a pull request (once).
    async fn add_pull_group(&self, project_id: i64, pull_number: i64, group_id: i64) -> StoreResult<()>;
    /// The groups attributed to a pull request, oldest first.
    async fn pull_groups(&self, project_id: i64, pull_number: i64) -> StoreResult<Vec<Group>>;
    async fn pull_comment(&self, project_id: i64, pull_number: i64) -> StoreResult<Option<PullComment>>;
    /// Claims the sending of a pull request's comment at `now`: when there is no record (`previous` None), or
    /// taking over a send made at `previous` that was never answered. `false` when another job got there first.
    async fn claim_pull_comment(
        &self,
        project_id: i64,
        pull_number: i64,
        previous: Option<i64>,
        now: i64,
    ) -> StoreResult<bool>;
    /// Records the comment GitHub created (or that was found by its marker) and the text it now has.
    async fn set_pull_comment(&self, project_id: i64, pull_number: i64, comment_id: i64, body: &str)
        -> StoreResult<()>;
}

/// GitHub webhook deliveries, stored before they are handled.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a GitHub webhook delivery and queues `job` for it, once per delivery id: `false` for a redelivery.
    async fn insert_webhook(
        &self,
        delivery_id: &str,
        event: &str,
        payload: &str,
        job: &NewJob,
        now: i64,
    ) -> StoreResult<bool>;
    /// A stored delivery: its event name and payload.
    async fn webhook(&self, delivery_id: &str) -> StoreResult<Option<(String, String)>>;
}

/// Job rows: queueing, claiming with a lease, settling.
#[async_trait]
pub trait JobStore: Send + Sync {
    async fn enqueue_job(&self, job: NewJob, now: i64) -> StoreResult<i64>;
    /// Claims the oldest job that is due, or whose lease has run out, for `lease_ms`.
    async fn claim_job(&self, now: i64, lease_ms: i64) -> StoreResult<Option<Job>>;
    /// Extends a claim; `false` when the claim was lost.
    async fn extend_lease(&self, job: &Job, until: i64) -> StoreResult<bool>;
    /// Marks a claimed job done; `false` when the claim was lost.
    async fn complete_job(&self, job: &Job, now: i64) -> StoreResult<bool>;
    /// Records a failed attempt: retried at `retry_at`, or given up for good when `None`.
    async fn fail_job(&self, job: &Job, error: &str, retry_at: Option<i64>, now: i64) -> StoreResult<bool>;
    /// Puts a running job back in the queue until `run_at` without counting the attempt it was claimed for (it
    /// waited for something, it did not fail); its last error stays as it was.
    async fn defer_job(&self, job: &Job, run_at: i64, now: i64) -> StoreResult<bool>;
    async fn job_states(&self) -> StoreResult<Vec<JobState>>;
    /// Per kind, the jobs queued or running and when the oldest of them was queued (ms); ungrouped events as the
    /// kind [`GROUP_EVENTS`].
    async fn queue_depths(&self) -> StoreResult<Vec<(String, i64, i64)>>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store named by `database_url` (`sqlite:…` or `postgres://…`) and applies its migrations.
///
/// # Errors
/// When the URL names no supported backend, the database cannot be reached, or a migration fails.
pub async fn connect(database_url: &str) -> StoreResult<DynStore> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(database_url).await?))
    } else if database_url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(database_url).await?))
    } else {
        Err(StoreError::Other(anyhow::anyhow!("unsupported database URL: expected `sqlite:PATH` or `postgres://…`")))
    }
}

/// A random secret of `bytes` bytes as lowercase hex, from the operating system's generator.
///
/// # Errors
/// When the operating system's random source fails.
pub fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).map_err(|e| anyhow::anyhow!("no randomness available: {e}"))?;
    Ok(hex::encode(buf))
}

#[cfg(test)]
mod tests {
    use super::transient_code;

    #[test]
    fn database_errors_that_mean_not_now() {
        // SQLite: SQLITE_FULL, SQLITE_IOERR_WRITE (10 | 3 << 8), SQLITE_BUSY; not SQLITE_CONSTRAINT or SQLITE_ERROR.
        for code in ["13", "778", "5", "6", "14"] {
            assert!(transient_code(Some(code)), "{code}");
        }
        for code in ["19", "2067", "1"] {
            assert!(!transient_code(Some(code)), "{code}");
        }
        // PostgreSQL: disk full, too many connections, cannot connect now, connection failure; not a syntax error.
        for code in ["53100", "53300", "57P03", "08006"] {
            assert!(transient_code(Some(code)), "{code}");
        }
        assert!(!transient_code(Some("42601")));
        assert!(!transient_code(None));
    }
}
