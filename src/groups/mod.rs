//! Error groups: normalising an accepted event (which frames are the application's), its fingerprint, title and
//! culprit, the batches that file events into their groups exactly once, reading groups, and changing their status by the
//! rules of `status.rs`.

pub mod status;

pub use status::{Change, GroupStatus, Next};

use sha2::{Digest as _, Sha256};
use tracing::{instrument, warn};

use crate::domain::{Environment, GithubLogin, Sha};
use crate::events::{truncate, Event, Frame};
use crate::jobs::{IssueReason, Work};
use crate::store::{
    BatchGrouped, DynStore, Group, GroupCount, GroupFilter, GroupUpdate, Grouped, HistoryEntry, NewJob, StoreResult,
    StoredEvent,
};

/// Path fragments of code that is not the application's: installed packages, runtimes, the standard library.
const NOT_IN_APP_PATHS: &[&str] = &[
    "site-packages/",
    "dist-packages/",
    "site-packages\\",
    "/lib/python",
    "\\lib\\python",
    "<frozen ",
    "node_modules/",
    "node_modules\\",
    "node:",
    "/rustc/",
    "/.cargo/registry/",
    "\\.cargo\\registry\\",
    "/go/pkg/mod/",
    "/usr/local/go/src/",
    "/usr/lib/go/",
    "/gems/",
    "/ruby/3.",
    "/ruby/2.",
    "/vendor/",
    "\\vendor\\",
];

/// Module prefixes of runtimes and frameworks (JVM, .NET, Go's standard library is matched by path).
const NOT_IN_APP_MODULES: &[&str] = &[
    "java.",
    "javax.",
    "jdk.",
    "sun.",
    "kotlin.",
    "kotlinx.",
    "android.",
    "androidx.",
    "com.android.",
    "dalvik.",
    "System.",
    "Microsoft.",
    "core::",
    "std::",
    "alloc::",
    "tokio::",
    "runtime",
];

/// Decides `in_app` where the SDK or parser left it open: not the application's when the path or module says
/// it is a package, a runtime or the standard library.
pub fn guess_in_app(frame: &Frame) -> bool {
    let path = frame.abs_path.as_deref().or(frame.filename.as_deref()).unwrap_or_default();
    if NOT_IN_APP_PATHS.iter().any(|p| path.contains(p)) {
        return false;
    }
    let module = frame.module.as_deref().unwrap_or_default();
    if NOT_IN_APP_MODULES.iter().any(|m| module.starts_with(m) || module == m.trim_end_matches(['.', ':'])) {
        return false;
    }
    if path.is_empty() && module.is_empty() {
        return false;
    }
    true
}

/// Fills in `in_app` for every frame that lacks it.
pub fn normalise(event: &mut Event) {
    for e in &mut event.exceptions {
        for f in &mut e.frames {
            f.in_app = Some(f.in_app.unwrap_or_else(|| guess_in_app(f)));
        }
    }
    for f in &mut event.stacktrace {
        f.in_app = Some(f.in_app.unwrap_or_else(|| guess_in_app(f)));
    }
}

/// Where a frame's code lives, without line numbers: the module when given, else the file name.
fn frame_location(f: &Frame) -> String {
    if let Some(m) = f.module.as_deref().filter(|m| !m.is_empty()) {
        return m.to_owned();
    }
    let path = f.filename.as_deref().or(f.abs_path.as_deref()).unwrap_or_default();
    // Strip query strings and cache-busting hashes that change with every build.
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.rsplit(['/', '\\']).next().unwrap_or(path).to_owned()
}

/// A function name that names nothing: anonymous functions and closures as runtimes print them (`<anonymous>`,
/// `Object.<anonymous>`, `Server.<anonymous>`, `{closure}`, `<lambda>`, `?`).
fn anonymous(function: Option<&str>) -> bool {
    match function.map(str::trim) {
        None | Some("" | "?" | "<anonymous>" | "anonymous" | "<unknown>" | "{closure}" | "<lambda>") => true,
        Some(f) => f.ends_with(".<anonymous>") || f.ends_with("{closure}") || f.ends_with("{{closure}}"),
    }
}

/// shipwatch's own grouping: the raised exception's type and the application frames by location and function —
/// no line numbers, so moving code does not split a group. A frame without a function name stands by its source
/// line (as Sentry groups it); when one has neither, the normalised message joins the fingerprint, so two different
/// errors raised through anonymous callbacks of one file stay apart. Without frames, the type and message.
pub fn default_components(event: &Event) -> Vec<String> {
    let mut parts = Vec::new();
    let frames = event.frames();
    let in_app: Vec<&Frame> = frames.iter().filter(|f| f.in_app == Some(true)).collect();
    let chosen: Vec<&Frame> = if in_app.is_empty() { frames.iter().collect() } else { in_app };
    match event.raised() {
        Some(e) => parts.push(format!("type:{}", e.ty)),
        None => parts.push("message".to_owned()),
    }
    let mut needs_text = chosen.is_empty();
    for f in &chosen {
        let function = f.function.as_deref();
        if !anonymous(function) {
            parts.push(format!("frame:{}:{}", frame_location(f), function.unwrap_or("?")));
            continue;
        }
        match f.context_line.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            Some(code) => parts.push(format!("frame:{}:code:{code}", frame_location(f))),
            None => {
                parts.push(format!("frame:{}:?", frame_location(f)));
                needs_text = true;
            }
        }
    }
    if needs_text {
        let text = event.raised().and_then(|e| e.value.as_deref()).or(event.message.as_deref()).unwrap_or_default();
        parts.push(format!("text:{}", strip_numbers(text)));
    }
    parts
}

/// Digits vary per occurrence (ids, counts, addresses); a message-only group should not split on them.
fn strip_numbers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_number = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// The fingerprint: the SDK's, with `{{ default }}` standing for shipwatch's grouping, or shipwatch's own.
pub fn fingerprint(event: &Event) -> String {
    let components: Vec<String> = match &event.fingerprint {
        Some(custom) if !custom.is_empty() => custom
            .iter()
            .flat_map(|c| {
                if c.trim() == "{{ default }}" || c.trim() == "{{default}}" {
                    default_components(event)
                } else {
                    vec![format!("custom:{c}")]
                }
            })
            .collect(),
        _ => default_components(event),
    };
    let mut hasher = Sha256::new();
    for c in &components {
        hasher.update(c.as_bytes());
        hasher.update([0u8]);
    }
    hex::encode(hasher.finalize())
}

/// `TypeError: Cannot read properties of undefined`, or the message.
pub fn title(event: &Event) -> String {
    let t = match event.raised() {
        Some(e) => match e.value.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => format!("{}: {}", e.ty, v.lines().next().unwrap_or(v)),
            None => e.ty.clone(),
        },
        None => event.message.clone().unwrap_or_else(|| "(no message)".into()),
    };
    truncate(&t, 200)
}

/// The application frame nearest the crash, as `function (file)`.
pub fn culprit(event: &Event) -> Option<String> {
    let frames = event.frames();
    let f = frames.iter().rev().find(|f| f.in_app == Some(true)).or_else(|| frames.last())?;
    let location = f.filename.as_deref().or(f.abs_path.as_deref()).or(f.module.as_deref()).unwrap_or("?");
    Some(truncate(&format!("{} ({location})", f.function.as_deref().unwrap_or("?")), 200))
}

/// The grouping service.
pub struct Groups {
    store: DynStore,
    /// Whether GitHub issues are written (a token is configured): their state then follows the group's.
    github_writes: bool,
}

/// One line of a group's timeline, as its page shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TimelineItem {
    pub at: i64,
    pub kind: String,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub deploy_id: Option<i64>,
    pub text: String,
}

/// A status change asked for by a person or by GitHub.
#[derive(Clone, Copy, Debug)]
pub enum StatusRequest<'a> {
    /// Resolve now, optionally naming the commit that fixes it.
    Resolve {
        fixed_in_commit: Option<&'a Sha>,
    },
    /// Resolve when the next deploy (of `environment`, or of any) is ready.
    ResolveInNextRelease {
        environment: Option<&'a Environment>,
    },
    Unresolve,
    Ignore,
    IssueClosed,
    IssueReopened,
}

impl StatusRequest<'_> {
    fn change(self) -> Change {
        match self {
            StatusRequest::Resolve { .. } => Change::Resolve,
            StatusRequest::ResolveInNextRelease { .. } => Change::ResolveInNextRelease,
            StatusRequest::Unresolve => Change::Unresolve,
            StatusRequest::Ignore => Change::Ignore,
            StatusRequest::IssueClosed => Change::IssueClosed,
            StatusRequest::IssueReopened => Change::IssueReopened,
        }
    }
}

impl Groups {
    pub fn new(store: DynStore, github_writes: bool) -> Groups {
        Groups { store, github_writes }
    }

    /// Queues the job that brings the group's GitHub issue in line after a change shipwatch made.
    async fn issue_follows(&self, group: &Group, change: Change, to: GroupStatus, now: i64) -> StoreResult<()> {
        let Some(open) = status::issue_follows(change, to) else { return Ok(()) };
        if !self.github_writes || group.github_issue.is_none() {
            return Ok(());
        }
        let reason = if open { IssueReason::Reopened } else { IssueReason::Closed };
        self.store.enqueue_job(Work::GithubIssue { group: group.id, reason, deploy: None }.job(), now).await?;
        Ok(())
    }

    pub async fn list(&self, project_id: i64, filter: &GroupFilter) -> StoreResult<Vec<Group>> {
        self.store.list_groups(project_id, filter).await
    }

    pub async fn find(&self, id: i64) -> StoreResult<Option<Group>> {
        self.store.group(id).await
    }

    /// Groups new in, introduced by or regressed in `version`.
    pub async fn of_release(&self, project_id: i64, version: &str) -> StoreResult<Vec<Group>> {
        self.store.groups_of_release(project_id, version).await
    }

    /// Events per release and environment.
    pub async fn counts(&self, group_id: i64) -> StoreResult<Vec<GroupCount>> {
        self.store.group_counts(group_id).await
    }

    /// Per environment, the commit deployed when the group was resolved.
    pub async fn resolutions(&self, group_id: i64) -> StoreResult<Vec<(String, String)>> {
        self.store.group_resolutions(group_id).await
    }

    /// The group's newest event, normalised as grouping saw it.
    ///
    /// # Errors
    /// Store errors, or a stored event that is not valid JSON.
    pub async fn latest_event(&self, group: &Group) -> anyhow::Result<Option<Event>> {
        let Some(id) = group.last_event_id else { return Ok(None) };
        let Some(stored) = self.store.event(id).await? else { return Ok(None) };
        let mut event: Event = serde_json::from_str(&stored.payload)?;
        normalise(&mut event);
        Ok(Some(event))
    }

    /// A project's stored events, and the envelope items accepted but not kept, by type.
    pub async fn intake_counts(&self, project_id: i64) -> StoreResult<(i64, Vec<(String, i64)>)> {
        Ok((self.store.event_count(project_id).await?, self.store.item_counts(project_id).await?))
    }

    /// The `release_ready` job: groups resolved "in the next release" of the deploy's environment (or of any) are
    /// resolved now, baselined on what is deployed. Safe to run again.
    ///
    /// # Errors
    /// Store errors (the job is retried).
    #[instrument(skip_all, fields(deploy_id = deploy_id))]
    pub async fn release_ready(&self, deploy_id: i64, now: i64) -> anyhow::Result<()> {
        let Some(deploy) = self.store.deploy(deploy_id).await? else { return Ok(()) };
        for group in self.store.groups_waiting_for_release(deploy.project_id, &deploy.environment).await? {
            let from = GroupStatus::parse(&group.status).unwrap_or(GroupStatus::Unresolved);
            if let Next::To(GroupStatus::Resolved) = status::next(from, Change::ReleaseReady) {
                self.store.resolve_group(group.id, None, now).await?;
                let by = format!("by the next release, {} to {}", deploy.version, deploy.environment);
                let mut entry = self.history_entry(group.id, "resolved", &by, now).await?;
                entry.release = Some(deploy.version.clone());
                entry.environment = Some(deploy.environment.clone());
                entry.deploy_id = Some(deploy.id);
                self.store.add_history(&entry).await?;
                self.issue_follows(&group, Change::ReleaseReady, GroupStatus::Resolved, now).await?;
            }
        }
        Ok(())
    }

    /// Applies `request` to `group` by the rules of [`status::next`]; returns the new status, or `None` when the
    /// request changes nothing.
    ///
    /// # Errors
    /// Store errors.
    pub async fn change_status(
        &self,
        group: &Group,
        request: StatusRequest<'_>,
        by: &str,
        now: i64,
    ) -> StoreResult<Option<GroupStatus>> {
        let from = GroupStatus::parse(&group.status).unwrap_or(GroupStatus::Unresolved);
        let Next::To(to) = status::next(from, request.change()) else { return Ok(None) };
        match (to, request) {
            (GroupStatus::Resolved, StatusRequest::Resolve { fixed_in_commit }) => {
                self.store.resolve_group(group.id, fixed_in_commit.map(Sha::as_str), now).await?;
            }
            (GroupStatus::Resolved, _) => self.store.resolve_group(group.id, None, now).await?,
            (GroupStatus::ResolvedInNextRelease, StatusRequest::ResolveInNextRelease { environment }) => {
                self.store.resolve_group_in_next_release(group.id, environment.map(Environment::as_str)).await?;
            }
            (GroupStatus::ResolvedInNextRelease, _) => self.store.resolve_group_in_next_release(group.id, None).await?,
            (GroupStatus::Unresolved, _) => self.store.unresolve_group(group.id).await?,
            (GroupStatus::Ignored, _) => self.store.ignore_group(group.id).await?,
        }
        let (kind, by) = match (to, request) {
            (GroupStatus::Resolved, StatusRequest::Resolve { fixed_in_commit: Some(sha) }) => {
                ("resolved_by_commit", format!("{by}, fixed in {}", short(sha.as_str())))
            }
            (GroupStatus::Resolved, StatusRequest::IssueClosed) => ("resolved", "its GitHub issue was closed".into()),
            (GroupStatus::Resolved, _) => ("resolved", by.to_owned()),
            (GroupStatus::ResolvedInNextRelease, _) => ("resolve_next_release", by.to_owned()),
            (GroupStatus::Unresolved, StatusRequest::IssueReopened) => {
                ("unresolved", "its GitHub issue was reopened".into())
            }
            (GroupStatus::Unresolved, _) => ("unresolved", by.to_owned()),
            (GroupStatus::Ignored, _) => ("ignored", by.to_owned()),
        };
        let mut entry = self.history_entry(group.id, kind, &by, now).await?;
        if let StatusRequest::ResolveInNextRelease { environment: Some(env) } = request {
            entry.environment = Some(env.as_str().to_owned());
        }
        self.store.add_history(&entry).await?;
        self.issue_follows(group, request.change(), to, now).await?;
        Ok(Some(to))
    }

    /// Assigns a group by hand to `login` (or to nobody), saying who did it. The suspect and its explanation stay
    /// as blame found them; the change is in the group's timeline.
    ///
    /// # Errors
    /// Store errors; `NotFound` for a group that does not exist.
    pub async fn assign_to(
        &self,
        group: &Group,
        login: Option<&GithubLogin>,
        by: &str,
        from_github: bool,
        now: i64,
    ) -> StoreResult<()> {
        let who = login.map_or_else(|| "nobody".to_owned(), |l| format!("@{}", l.as_str()));
        let entry = HistoryEntry {
            group_id: group.id,
            at: now,
            kind: "assigned_by_hand".into(),
            release: None,
            environment: None,
            deploy_id: None,
            detail: Some(format!("to {who} {by}")),
        };
        // A change made in shipwatch moves the issue's assignee too; one that came from GitHub is already there.
        let job = (self.github_writes && !from_github && group.github_issue.is_some())
            .then(|| Work::GithubIssue { group: group.id, reason: IssueReason::Reassigned, deploy: None }.job());
        self.store.set_assignee(group.id, login.map(GithubLogin::as_str), &entry, job.as_ref()).await
    }

    /// A history line for a status change: who or what made it and, for a resolution, the commit each environment
    /// ran then (what an event must come from to reopen it).
    async fn history_entry(&self, group_id: i64, kind: &str, by: &str, now: i64) -> StoreResult<HistoryEntry> {
        let mut detail = by.to_owned();
        if kind.starts_with("resolved") {
            let baselines = self.store.group_resolutions(group_id).await?;
            if !baselines.is_empty() {
                let list: Vec<String> = baselines.iter().map(|(env, sha)| format!("{env} at {}", short(sha))).collect();
                detail.push_str(&format!("; baseline {}", list.join(", ")));
            }
        }
        Ok(HistoryEntry {
            group_id,
            at: now,
            kind: kind.to_owned(),
            release: None,
            environment: None,
            deploy_id: None,
            detail: Some(detail),
        })
    }

    /// What happened to a group, oldest first: its first event, each assignment at a deploy, resolutions,
    /// regressions and GitHub links.
    ///
    /// # Errors
    /// Store errors.
    pub async fn timeline(&self, group: &Group) -> StoreResult<Vec<TimelineItem>> {
        let mut items = vec![TimelineItem {
            at: group.first_seen,
            kind: "first_seen".into(),
            release: group.first_release.clone(),
            environment: None,
            deploy_id: None,
            text: "first seen".into(),
        }];
        for a in self.store.group_assignment_history(group.id).await? {
            let who =
                a.assignee.as_deref().map_or_else(|| "nobody with a GitHub login".to_owned(), |l| format!("@{l}"));
            items.push(TimelineItem {
                at: a.assigned_at,
                kind: "assigned".into(),
                release: Some(a.version),
                environment: Some(a.environment),
                deploy_id: Some(a.deploy_id),
                text: format!("assigned to {who}"),
            });
        }
        for h in self.store.group_history(group.id).await? {
            let what = match h.kind.as_str() {
                "resolved" | "resolved_by_commit" => "resolved",
                "resolve_next_release" => "to be resolved by the next release",
                "unresolved" => "unresolved",
                "ignored" => "ignored",
                "regressed" => "came back",
                "issue_linked" => "GitHub issue linked",
                "fixed_by_commit" => "fixing commit recorded",
                "assigned_by_hand" => "assigned",
                other => other,
            };
            let text = match &h.detail {
                Some(d) if !d.is_empty() => format!("{what}: {d}"),
                _ => what.to_owned(),
            };
            items.push(TimelineItem {
                at: h.at,
                kind: h.kind,
                release: h.release,
                environment: h.environment,
                deploy_id: h.deploy_id,
                text,
            });
        }
        items.sort_by_key(|i| i.at);
        Ok(items)
    }

    /// One grouping batch: up to `limit` ungrouped events normalised, fingerprinted and filed into their groups,
    /// with the work that follows, in one store transaction. Safe to run concurrently and again: an event is counted
    /// once.
    ///
    /// # Errors
    /// Store errors (the events stay in the queue for the next batch).
    #[instrument(skip_all, fields(limit = limit))]
    pub async fn group_batch(&self, limit: i64, now: i64) -> anyhow::Result<BatchGrouped> {
        let done = self.store.group_batch(limit, &classify, after_grouping, now).await?;
        if done.failed > 0 {
            warn!(failed = done.failed, "events that could not be grouped were set aside");
        }
        Ok(done)
    }
}

/// The abbreviated form of a commit id.
fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// The grouping rule for one stored event: normalise it, then its fingerprint, title and culprit.
fn classify(stored: &StoredEvent) -> Result<GroupUpdate, String> {
    let mut event: Event =
        serde_json::from_str(&stored.payload).map_err(|e| format!("the stored event is not readable: {e}"))?;
    normalise(&mut event);
    Ok(GroupUpdate {
        fingerprint: fingerprint(&event),
        title: title(&event),
        culprit: culprit(&event),
        level: event.level.clone(),
    })
}

/// The work that follows grouping a batch, per group: a new group is assigned from its first event; a resolved group
/// is checked for a regression once per build (release and environment) it came back from — whether it reopens
/// depends on the build.
fn after_grouping(g: Grouped) -> Vec<NewJob> {
    let mut jobs = Vec::new();
    if g.was_resolved {
        jobs.extend(g.builds.iter().map(|&event| Work::CheckRegression { group: g.group_id, event }.job()));
    }
    if g.new_group {
        jobs.push(Work::AssignGroup { group: g.group_id, event: g.first_event }.job());
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Exception;

    fn frame(path: &str, module: Option<&str>, function: &str, line: u32) -> Frame {
        Frame {
            filename: Some(path.into()),
            abs_path: Some(path.into()),
            module: module.map(str::to_owned),
            function: Some(function.into()),
            lineno: Some(line),
            ..Default::default()
        }
    }

    fn event(ty: &str, value: &str, frames: Vec<Frame>) -> Event {
        let mut e = Event {
            event_id: "a".repeat(32),
            exceptions: vec![Exception { ty: ty.into(), value: Some(value.into()), frames, ..Default::default() }],
            ..Default::default()
        };
        normalise(&mut e);
        e
    }

    #[test]
    fn in_app_guesses() {
        for (path, module, expected) in [
            ("/srv/app/payments.py", None, true),
            ("/srv/app/.venv/lib/python3.11/site-packages/flask/app.py", None, false),
            (r"C:\app\venv\Lib\site-packages\requests\api.py", None, false),
            ("/app/node_modules/express/lib/router.js", None, false),
            ("node:internal/process/task_queues", None, false),
            ("/home/ci/go/pkg/mod/github.com/x/y@v1/z.go", None, false),
            ("Thread.java", Some("java.lang.Thread"), false),
            ("Foo.java", Some("com.acme.Foo"), true),
            ("/rustc/abc/library/core/src/panicking.rs", None, false),
            ("/usr/local/bundle/gems/rack-3.0.8/lib/rack.rb", None, false),
        ] {
            assert_eq!(guess_in_app(&frame(path, module, "f", 1)), expected, "{path}");
        }
    }

    #[test]
    fn fingerprints_ignore_line_numbers_but_not_functions_or_types() {
        let a = event(
            "TypeError",
            "x is undefined",
            vec![frame("/srv/a.js", None, "main", 3), frame("/srv/b.js", None, "f", 10)],
        );
        let moved = event(
            "TypeError",
            "y is undefined",
            vec![frame("/srv/a.js", None, "main", 5), frame("/srv/b.js", None, "f", 12)],
        );
        let other_fn =
            event("TypeError", "x", vec![frame("/srv/a.js", None, "main", 3), frame("/srv/b.js", None, "g", 10)]);
        let other_ty =
            event("RangeError", "x", vec![frame("/srv/a.js", None, "main", 3), frame("/srv/b.js", None, "f", 10)]);
        let lib_changed = event(
            "TypeError",
            "x",
            vec![
                frame("/srv/a.js", None, "main", 3),
                frame("/srv/node_modules/lib/i.js", None, "h", 1),
                frame("/srv/b.js", None, "f", 10),
            ],
        );
        assert_eq!(fingerprint(&a), fingerprint(&moved));
        assert_ne!(fingerprint(&a), fingerprint(&other_fn));
        assert_ne!(fingerprint(&a), fingerprint(&other_ty));
        assert_eq!(fingerprint(&a), fingerprint(&lib_changed), "library frames do not count when app frames exist");
    }

    /// Two different Node errors thrown from anonymous arrow functions of one file (`at /app/src/routes.js:12:5`,
    /// function `<anonymous>` or none, as @sentry/node reports them) are two groups: the source line tells them apart,
    /// or, without one, the message. The same error at a moved line stays one group.
    #[test]
    fn anonymous_frames_group_by_source_line_then_message() {
        let anon = |line: u32, code: Option<&str>, function: Option<&str>| Frame {
            function: function.map(str::to_owned),
            context_line: code.map(str::to_owned),
            ..frame("/app/src/routes.js", None, "x", line)
        };
        let a = event(
            "TypeError",
            "Cannot read properties of undefined (reading 'id')",
            vec![anon(12, Some("  return req.user.id;"), Some("<anonymous>"))],
        );
        let b = event(
            "TypeError",
            "Cannot read properties of undefined (reading 'total')",
            vec![anon(30, Some("  return cart.total;"), Some("<anonymous>"))],
        );
        assert_ne!(fingerprint(&a), fingerprint(&b), "different source lines");
        let a_moved = event(
            "TypeError",
            "Cannot read properties of undefined (reading 'id')",
            vec![anon(14, Some("  return req.user.id;"), Some("<anonymous>"))],
        );
        assert_eq!(fingerprint(&a), fingerprint(&a_moved), "a moved line is the same error");
        let c = event("TypeError", "Cannot read properties of undefined (reading 'id')", vec![anon(12, None, None)]);
        let d = event("TypeError", "Cannot read properties of null (reading 'total')", vec![anon(30, None, None)]);
        assert_ne!(fingerprint(&c), fingerprint(&d), "no source line: the message decides");
        let c_again = event(
            "TypeError",
            "Cannot read properties of undefined (reading 'id')",
            vec![anon(12, None, Some("Object.<anonymous>"))],
        );
        assert_eq!(fingerprint(&c), fingerprint(&c_again));
        assert!(
            anonymous(Some("Server.<anonymous>")) && anonymous(Some("main::{{closure}}")) && !anonymous(Some("divide"))
        );
    }

    #[test]
    fn sdk_fingerprints_and_default_placeholder() {
        let base = event("E", "m", vec![frame("/srv/a.py", None, "f", 1)]);
        let mut custom = base.clone();
        custom.fingerprint = Some(vec!["checkout".into()]);
        let mut custom2 = event("Other", "z", vec![frame("/srv/q.py", None, "g", 9)]);
        custom2.fingerprint = Some(vec!["checkout".into()]);
        assert_eq!(fingerprint(&custom), fingerprint(&custom2), "custom fingerprint alone decides");
        let mut with_default = base.clone();
        with_default.fingerprint = Some(vec!["{{ default }}".into(), "tenant-1".into()]);
        let mut with_default2 = base.clone();
        with_default2.fingerprint = Some(vec!["{{ default }}".into(), "tenant-2".into()]);
        assert_ne!(fingerprint(&with_default), fingerprint(&with_default2));
        assert_ne!(fingerprint(&with_default), fingerprint(&base));
    }

    #[test]
    fn messages_without_frames_group_by_text_without_numbers() {
        let msg = |m: &str| {
            let e = Event { message: Some(m.into()), ..Default::default() };
            fingerprint(&e)
        };
        assert_eq!(msg("user 42 not found"), msg("user 7 not found"));
        assert_ne!(msg("user 42 not found"), msg("order 42 not found"));
    }

    #[test]
    fn title_and_culprit() {
        let e = event(
            "ZeroDivisionError",
            "division by zero\nmore",
            vec![frame("app.py", None, "handler", 1), frame("/usr/lib/python3.11/x.py", None, "lib", 2)],
        );
        assert_eq!(title(&e), "ZeroDivisionError: division by zero");
        assert_eq!(culprit(&e).as_deref(), Some("handler (app.py)"));
    }
}
