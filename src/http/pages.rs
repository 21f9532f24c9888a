//! The web pages: server-rendered HTML, readable without JavaScript — projects, a project's deploys per environment,
//! a deploy's release report, and an error group with its frames, suspect and owner. Open without credentials only
//! when the server listens on loopback; otherwise a read token (Bearer, or Basic with the token as password).
//!
//! Rendered with maud: the markup is checked at compile time and every inserted value is HTML-escaped unless it is
//! explicitly `PreEscaped` (only the style sheet below).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::{same_secret, ApiError, ApiResult, AppState};
use crate::assign::service::GroupAssignment;
use crate::groups::{GroupStatus, StatusRequest};
use crate::releases::report::{plural, short, ErrorTag, Report};
use crate::releases::DeployStatus;
use crate::store::Project;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/projects", get(projects))
        .route("/projects/{project}", get(project_page))
        .route("/projects/{project}/errors", get(errors_page))
        .route("/deploys/{id}", get(deploy_page))
        .route("/groups/{id}", get(group_page))
        .route("/groups/{id}/actions", axum::routing::post(group_action))
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
}

/// A time as the pages show it: UTC in the markup (readable without JavaScript), the reader's local time once the
/// page's one small script has run, the UTC form kept as its tooltip.
fn when(ms: i64) -> Markup {
    let iso = chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    html! { time datetime=(iso) { (time(ms)) } }
}

/// Rewrites every `<time datetime>` into the reader's local time and time zone.
const LOCAL_TIMES: &str = "document.querySelectorAll('time[datetime]').forEach(function(t){var d=new Date(\
t.getAttribute('datetime'));if(!isNaN(d)){t.title=t.textContent;t.textContent=d.toLocaleString(undefined,\
{year:'numeric',month:'short',day:'numeric',hour:'2-digit',minute:'2-digit',timeZoneName:'short'});}});";

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#1f2328}\
a{color:#0969da}table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}th,td{text-align:left;padding:.3rem .6rem;\
border-bottom:1px solid #d0d7de;vertical-align:top}code{background:#f6f8fa;padding:0 .2rem}.muted{color:#656d76}\
.tag{display:inline-block;padding:0 .4rem;border-radius:.6rem;background:#ddf4ff;font-size:.85em}\
.bad{background:#ffebe9}.ok{background:#dafbe1}nav{margin-bottom:1rem}h1{margin-bottom:.2rem}\
pre.source{margin:0;padding:.3rem;background:#f6f8fa;overflow-x:auto;font-size:.85em}pre.source mark{background:#fff8c5;\
display:block}ol.timeline li{margin:.2rem 0}details.actions{margin:.5rem 0 1rem;padding:.5rem;border:1px solid #d0d7de;\
border-radius:.4rem}details.actions form{margin:.4rem 0}svg.chart{display:block;margin:.5rem 0}td a{word-break:break-all}";

fn page(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width";
                    title { (title) " · shipwatch" }
                    style { (PreEscaped(STYLE)) }
                }
                body {
                    nav { a href="/projects" { "shipwatch" } }
                    (body)
                    script { (PreEscaped(LOCAL_TIMES)) }
                }
            }
        }
        .into_string(),
    )
}

/// Pages need the read token unless the server is only reachable from this machine. `Some` is the refusal.
pub(super) fn require_reader(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let settings = &state.settings;
    let Some(token) = settings.read_token.as_ref() else {
        if settings.pages_open {
            return None;
        }
        return Some(
            (StatusCode::FORBIDDEN, "the pages need SHIPWATCH_READ_TOKEN when the server is not bound to localhost")
                .into_response(),
        );
    };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        match scheme.to_ascii_lowercase().as_str() {
            "bearer" => Some(rest.trim().to_owned()),
            "basic" => {
                let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
                let text = String::from_utf8(decoded).ok()?;
                Some(text.split_once(':').map_or(text.clone(), |(_, p)| p.to_owned()))
            }
            _ => None,
        }
    });
    match given {
        Some(g) if same_secret(&g, token.expose()) => None,
        _ => Some(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"shipwatch\"")],
                "sign in with the read token as password",
            )
                .into_response(),
        ),
    }
}

macro_rules! reader {
    ($state:expr, $headers:expr) => {
        if let Some(denied) = require_reader(&$state, &$headers) {
            return Ok(denied);
        }
    };
}

/// The pages start at the project list.
#[utoipa::path(get, path = "/", tag = "pages", responses((status = 303, description = "To `/projects`")))]
pub(super) async fn home() -> Redirect {
    Redirect::to("/projects")
}

async fn find_project(state: &AppState, key: &str) -> ApiResult<Project> {
    state.projects.find(key).await?.ok_or_else(|| ApiError::NotFound(format!("no project `{key}`")))
}

#[utoipa::path(get, path = "/projects", tag = "pages", responses((status = 200, description = "HTML", content_type = "text/html", body = String), (status = 401, description = "The read token is needed"), (status = 404, description = "Unknown")))]
pub(super) async fn projects(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    reader!(state, headers);
    let all = state.projects.list().await?;
    let mut rows = Vec::new();
    for p in all {
        // A failed deploy is never "latest": nothing shipped.
        let recent = state.releases.list(p.id, None, None, 20).await?;
        let latest = recent.into_iter().find(|d| DeployStatus::parse(&d.status) != Some(DeployStatus::Failed));
        rows.push((p, latest));
    }
    let body = html! {
        h1 { "Projects" }
        @if rows.is_empty() {
            p { "No projects yet: create one with " code { "shipwatch project add --name NAME --repo URL" } "." }
        } @else {
            table {
                tr { th { "Project" } th { "Repository" } th { "Latest deploy" } }
                @for (p, latest) in &rows {
                    tr {
                        td { a href={ "/projects/" (p.name) } { (p.name) } }
                        td { (p.repo_url) }
                        td {
                            @if let Some(d) = latest {
                                a href={ "/deploys/" (d.id) } { (d.version) } " to " (d.environment) " "
                                span.muted { (when(d.deployed_at)) }
                            } @else {
                                span.muted { "none yet" }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page("Projects", body).into_response())
}

#[utoipa::path(get, path = "/projects/{project}", tag = "pages", params(("project" = String, Path)), responses((status = 200, description = "HTML", content_type = "text/html", body = String), (status = 401, description = "The read token is needed"), (status = 404, description = "Unknown")))]
pub(super) async fn project_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    reader!(state, headers);
    let p = find_project(&state, &key).await?;
    let deploys = state.releases.list(p.id, None, None, 200).await?;
    let mut environments: Vec<&str> = deploys.iter().map(|d| d.environment.as_str()).collect();
    environments.sort_unstable();
    environments.dedup();
    // Per environment, each deploy with its errors in the hour after, and its new and regressed groups.
    let mut sections = Vec::new();
    for env in environments {
        let mut rows = Vec::new();
        for d in deploys.iter().filter(|d| d.environment == env) {
            let after =
                state.releases.events_between(p.id, &d.environment, d.deployed_at, d.deployed_at + 3_600_000).await?;
            // Counted by the events' own release and environment: a staging deploy of a release shows staging's.
            let (events, new, regressed) = state.releases.build_summary(d).await?;
            rows.push((d, (events, after), new, regressed));
        }
        sections.push((env, rows));
    }
    let body = html! {
        h1 { (p.name) }
        p.muted { (p.repo_url) }
        p {
            a href={ "/projects/" (p.name) "/errors?status=unresolved" } { "Unresolved errors" } " · "
            a href={ "/projects/" (p.name) "/errors" } { "all errors" }
        }
        @if sections.is_empty() {
            p { "No deploys yet: run the GitHub Action or " code { "shipwatch deploy" } " after a deploy." }
        }
        @for (env, rows) in &sections {
            h2 { (env) }
            table {
                tr {
                    th { "Release" } th { "Commit" } th { "Deployed" } th { "Range" } th { "Events from this release" }
                    th { "New / regressed" }
                }
                @for (d, after, new, regressed) in rows {
                    tr {
                        td { a href={ "/deploys/" (d.id) } { (d.version) } }
                        td { code { (short(&d.sha)) } }
                        td { (when(d.deployed_at)) }
                        td {
                            @match (DeployStatus::parse(&d.status), d.range_status.as_deref()) {
                                (Some(DeployStatus::Ready), Some("rollback")) => {
                                    "rollback · takes out " (plural(d.removed_count.unwrap_or(0), "commit"))
                                }
                                (Some(DeployStatus::Ready), Some(r)) => { (r) " · " (d.commit_count.unwrap_or(0)) " commits" }
                                (Some(DeployStatus::Failed), _) => {
                                    span.tag.bad { "failed" } " " (d.failure_reason.as_deref().unwrap_or("no reason recorded"))
                                }
                                _ => { (d.status) }
                            }
                        }
                        td { (after.0) br; span.muted { (after.1) " in the hour after" } }
                        td {
                            @if DeployStatus::parse(&d.status) == Some(DeployStatus::Failed) {
                                span.muted { "—" }
                            } @else {
                                span class={ "tag " (if new + regressed > 0 { "bad" } else { "ok" }) } {
                                    (new) " new · " (regressed) " regressed"
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&p.name, body).into_response())
}

/// A project's error groups, filtered (status, environment, release, words of the title, assignee), sorted and paged.
#[utoipa::path(get, path = "/projects/{project}/errors", tag = "pages",
    params(("project" = String, Path), ("status" = Option<String>, Query), ("environment" = Option<String>, Query),
        ("release" = Option<String>, Query), ("q" = Option<String>, Query), ("assignee" = Option<String>, Query),
        ("sort" = Option<String>, Query), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, description = "HTML", content_type = "text/html", body = String),
        (status = 401, description = "The read token is needed"), (status = 404, description = "Unknown"),
        (status = 422, description = "A filter that does not exist")))]
pub(super) async fn errors_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    axum::extract::Query(params): axum::extract::Query<super::groups::ListParams>,
) -> ApiResult<Response> {
    reader!(state, headers);
    let p = find_project(&state, &key).await?;
    let filter = params.filter()?;
    let groups = state.groups.list(p.id, &filter).await?;
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    // The same filters, at another offset.
    let page_link = |offset: i64| {
        let mut q = vec![format!("offset={offset}"), format!("limit={}", filter.limit)];
        for (k, v) in [
            ("status", &params.status),
            ("environment", &params.environment),
            ("release", &params.release),
            ("q", &params.q),
            ("assignee", &params.assignee),
            ("sort", &params.sort),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                q.push(format!("{k}={}", url_encode(v)));
            }
        }
        format!("/projects/{}/errors?{}", url_encode(&p.name), q.join("&"))
    };
    let status = value(&params.status);
    let sort = value(&params.sort);
    let body = html! {
        h1 { "Errors of " a href={ "/projects/" (p.name) } { (p.name) } }
        form method="get" {
            select name="status" {
                option value="" selected[status.is_empty()] { "any status" }
                @for s in GroupStatus::ALL {
                    option value=(s.as_str()) selected[status == s.as_str()] { (s.as_str()) }
                }
            }
            " " input name="environment" placeholder="environment" value=(value(&params.environment));
            " " input name="release" placeholder="release" value=(value(&params.release));
            " " input name="q" placeholder="words of the title" value=(value(&params.q));
            " " input name="assignee" placeholder="assignee" value=(value(&params.assignee));
            " " select name="sort" {
                option value="last_seen" selected[sort.is_empty() || sort == "last_seen"] { "last seen" }
                option value="events" selected[sort == "events"] { "most events" }
                option value="newest" selected[sort == "newest"] { "newest" }
            }
            " " button type="submit" { "Show" }
        }
        @if groups.is_empty() {
            p.muted { "No errors match." }
        } @else {
            table {
                tr { th { "Error" } th { "Status" } th { "Events" } th { "Last seen" } th { "First release" } th { "Assignee" } }
                @for g in &groups {
                    tr {
                        td {
                            a href={ "/groups/" (g.id) } { (g.title) }
                            @if let Some(c) = &g.culprit { br; span.muted { (c) } }
                        }
                        td { span.tag { (g.status) } }
                        td { (g.times_seen) }
                        td { (when(g.last_seen)) }
                        td { (g.first_release.as_deref().unwrap_or("")) }
                        td { @if let Some(a) = &g.assignee { "@" (a) } }
                    }
                }
            }
        }
        p {
            @if filter.offset > 0 { a href=(page_link((filter.offset - filter.limit).max(0))) { "← previous" } " " }
            @if groups.len() as i64 == filter.limit { a href=(page_link(filter.offset + filter.limit)) { "next →" } }
        }
    };
    Ok(page(&format!("Errors of {}", p.name), body).into_response())
}

/// Percent-encodes a query value.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Text whose `code spans` (as explanations and suspect lines write them) show as code.
fn with_code(s: &str) -> Markup {
    html! {
        @for (i, part) in s.split('`').enumerate() {
            @if i % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}

/// A deploy's errors, each once, tagged with what makes it this release's: new in it, regressed in it, its suspect
/// commit in its range.
fn error_rows(r: &Report) -> Markup {
    let all = r.errors_once();
    html! {
        @if !all.is_empty() {
            ul {
                @for (e, tags) in all {
                    li {
                        a href={ "/groups/" (e.id) } { (e.title) } " — " (plural(e.count, "event")) " in this release"
                        @if let Some(a) = &e.assignee { " → @" (a) }
                        @if let Some(l) = &e.github_issue {
                            " · " @if let Some(u) = &l.url { a href=(u) { "issue " (l.label) } } @else { "issue " (l.label) }
                        }
                        " "
                        @for tag in tags {
                            @let bad = tag != ErrorTag::SuspectInRange;
                            span.tag.bad[bad] { (capitalised(tag.label())) } " "
                        }
                        @if let Some(s) = &e.suspect { br; span.muted { "suspect: " (with_code(s)) } }
                    }
                }
            }
        }
    }
}

/// An RFC 3339 time (as the report model keeps times) as the pages show times.
fn iso_when(s: &str) -> Markup {
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => when(t.timestamp_millis()),
        Err(_) => html! { (s) },
    }
}

fn report_html(r: &Report) -> Markup {
    let d = &r.deploy;
    html! {
        h1 { (r.project) " " (d.version) " → " (d.environment) }
        p { a href={ "/projects/" (r.project) } { "all deploys of " (r.project) } }
        table {
            tr { th { "Commit" } td { code { (d.sha) } } }
            tr { th { "Deployed" } td { (iso_when(&d.deployed_at)) @if let Some(p) = &d.deployer { " by " (p) } } }
            tr {
                th { "Range" }
                td {
                    @match (DeployStatus::parse(&d.status), d.range_status.as_deref()) {
                        (Some(DeployStatus::Failed), _) => { "failed: " (d.failure_reason.as_deref().unwrap_or("")) }
                        (Some(DeployStatus::Pending), _) => { "being computed" }
                        (_, Some("rollback")) => {
                            "rollback"
                            @if let Some(b) = &d.base_sha { " from " code { (short(b)) } }
                            ": takes out " (plural(d.removed_count, "commit"))
                        }
                        (_, Some(range)) => {
                            (range) " · " (d.commit_count.unwrap_or(0)) " commits"
                            @if let Some(b) = &d.base_sha { " since " code { (short(b)) } }
                        }
                        _ => {}
                    }
                }
            }
            @if let Some(u) = &d.compare_url {
                tr {
                    th { "Compare" }
                    td { a href=(u) { code { (short(d.base_sha.as_deref().unwrap_or(""))) "…" (short(&d.sha)) } } }
                }
            }
            @if let Some(u) = &d.url { tr { th { "Link" } td { a href=(u) { (u) } } } }
        }
        @if DeployStatus::parse(&d.status) == Some(DeployStatus::Failed) {
            p class="tag bad" {
                "This deploy failed, so nothing is known to have shipped with it and no error is counted against it: "
                (d.failure_reason.as_deref().unwrap_or("no reason recorded"))
            }
        } @else {
            (report_body(r))
        }
    }
}

/// What a recorded deploy shipped and broke.
fn report_body(r: &Report) -> Markup {
    let d = &r.deploy;
    html! {
        h2 { "Errors" }
        p { (r.counts_sentence()) }
        @if !r.has_errors() { p class="tag ok" { (Report::NO_ERRORS) } }
        (error_rows(r))
        @if !r.removed_commits.is_empty() {
            h2 { "Commits taken out by this deploy" }
            ul {
                @for c in &r.removed_commits {
                    li.removed {
                        @if let Some(u) = &c.url { a href=(u) { code { (short(&c.sha)) } } } @else { code { (short(&c.sha)) } }
                        " " (c.summary)
                    }
                }
            }
            @if d.removed_count > r.removed_commits.len() as i64 {
                p.muted { "… and " (d.removed_count - r.removed_commits.len() as i64) " more (only the newest are kept)." }
            }
        }
        h2 { "Commits by author" }
        @if r.authors.is_empty() { p.muted { "No commits in this range." } }
        @for a in &r.authors {
            h3 { (a.name) " " span.muted { "(" (a.commits.len()) ")" } }
            ul {
                @for c in &a.commits {
                    li.commit {
                        @if let Some(u) = &c.url { a href=(u) { code { (short(&c.sha)) } } } @else { code { (short(&c.sha)) } }
                        " " (c.summary)
                    }
                }
            }
        }
        @if !r.pull_requests.is_empty() {
            h2 { "Pull requests" }
            ul {
                @for p in &r.pull_requests {
                    li {
                        @if let Some(u) = &p.url { a href=(u) { "#" (p.number) } } @else { "#" (p.number) }
                        @if let Some(t) = &p.title { " " (t) }
                    }
                }
            }
        }
        @if !r.files.is_empty() {
            h2 { "Files changed " span.muted { "(" (r.files_count) ")" } }
            table {
                tr { th { "File" } th { "Commits" } th { "Lines" } }
                @for f in r.files.iter().take(30) {
                    tr { td { code { (f.path) } } td { (f.commits) } td { "+" (f.added) " −" (f.deleted) } }
                }
            }
            @if r.files_count > 30 { p.muted { "… and " (r.files_count - 30) " more files." } }
        }
        @for (title, links) in [("Closed issues", &r.closed_issues)] {
            @if !links.is_empty() {
                h2 { (title) }
                p {
                    @for (i, l) in links.iter().enumerate() {
                        @if i > 0 { ", " }
                        @if let Some(u) = &l.url { a href=(u) { (l.label) } } @else { (l.label) }
                    }
                }
            }
        }
    }
}

#[utoipa::path(get, path = "/deploys/{id}", tag = "pages", params(("id" = i64, Path)), responses((status = 200, description = "HTML", content_type = "text/html", body = String), (status = 401, description = "The read token is needed"), (status = 404, description = "Unknown")))]
pub(super) async fn deploy_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    reader!(state, headers);
    let not_found = || ApiError::NotFound(format!("no deploy `{id}`"));
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let deploy = state.releases.deploy(id).await?.ok_or_else(not_found)?;
    let project = state.projects.by_id(deploy.project_id).await?.ok_or_else(not_found)?;
    let report = state.releases.report(&project, &deploy, crate::releases::DEFAULT_WINDOW_MINUTES).await?;
    let title = format!("{} {} → {}", project.name, deploy.version, deploy.environment);
    Ok(page(&title, report_html(&report)).into_response())
}

/// The cookie holding the pages' CSRF token: a form is accepted only when it sends the same value back.
const CSRF_COOKIE: &str = "shipwatch_csrf";

/// The CSRF token of the request's cookie, if it has one that looks like ours.
fn csrf_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, v)| *k == CSRF_COOKIE && v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|(_, v)| v.to_owned())
}

/// One bar of the release chart: the release, when it was first seen, its events per environment.
type ReleaseBar = (String, i64, Vec<(String, i64)>);

/// Events per release as a small bar chart, drawn on the server: one bar per release, oldest first, stacked by
/// environment (one colour each, named in the legend), so a staging-only release looks like one.
fn release_chart(counts: &[crate::store::GroupCount]) -> Markup {
    const COLOURS: [&str; 6] = ["#cf222e", "#0969da", "#8250df", "#bf8700", "#1a7f37", "#57606a"];
    let mut per_release: Vec<ReleaseBar> = Vec::new();
    let mut environments: Vec<(String, i64)> = Vec::new();
    for c in counts {
        let name = if c.release.is_empty() { "(none)".to_owned() } else { c.release.clone() };
        let env = if c.environment.is_empty() { "(none)".to_owned() } else { c.environment.clone() };
        let entry = match per_release.iter_mut().position(|(r, _, _)| *r == name) {
            Some(i) => &mut per_release[i],
            None => {
                per_release.push((name, c.first_seen, Vec::new()));
                let last = per_release.len() - 1;
                &mut per_release[last]
            }
        };
        entry.1 = entry.1.min(c.first_seen);
        match entry.2.iter_mut().find(|(e, _)| *e == env) {
            Some(e) => e.1 += c.count,
            None => entry.2.push((env.clone(), c.count)),
        }
        match environments.iter_mut().find(|(e, _)| *e == env) {
            Some(e) => e.1 += c.count,
            None => environments.push((env, c.count)),
        }
    }
    environments.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let colour = |env: &str| {
        let i = environments.iter().position(|(e, _)| e == env).unwrap_or(COLOURS.len() - 1);
        COLOURS[i.min(COLOURS.len() - 1)]
    };
    per_release.sort_by_key(|(_, first, _)| *first);
    for (_, _, envs) in &mut per_release {
        envs.sort_by_key(|(e, _)| environments.iter().position(|(x, _)| x == e));
    }
    let shown: Vec<&ReleaseBar> = per_release.iter().rev().take(24).rev().collect();
    let total = |envs: &[(String, i64)]| envs.iter().map(|(_, n)| *n).sum::<i64>();
    let max = shown.iter().map(|(_, _, envs)| total(envs)).max().unwrap_or(1).max(1);
    let (bar, gap, height) = (36i64, 12i64, 90i64);
    let width = (shown.len() as i64 * (bar + gap)).max(bar + gap).max(160);
    html! {
        svg.chart width=(width) height=(height + 40) viewBox={ "0 0 " (width) " " (height + 40) } role="img"
            aria-label="Events per release, by environment" {
            @for (i, (release, _, envs)) in shown.iter().enumerate() {
                @let n = total(envs);
                @let h = (n * height / max).max(2);
                @let x = i as i64 * (bar + gap);
                // Segments from the bottom up, in the legend's order.
                @let mut y = height + 14;
                @for (env, count) in envs {
                    @let seg = if n == 0 { 0 } else { (count * h / n).max(1) };
                    @let top = { y -= seg; y };
                    rect x=(x) y=(top) width=(bar) height=(seg) fill=(colour(env)) {
                        title { (release) " in " (env) ": " (count) }
                    }
                }
                text x=(x + bar / 2) y=(height - h + 10) text-anchor="middle" font-size="11" { (n) }
                text x=(x + bar / 2) y=(height + 30) text-anchor="middle" font-size="11" {
                    (release.chars().take(8).collect::<String>())
                }
            }
        }
        @if environments.len() > 1 {
            p.muted {
                @for (env, n) in &environments {
                    span style={ "color:" (colour(env)) } { "■ " } (env) " (" (n) ")  "
                }
            }
        }
    }
}

/// Lines around a frame's line, the frame's own marked.
fn source_block(lines: &[(u32, String)], at: u32) -> Markup {
    html! {
        pre.source {
            @for (n, text) in lines {
                @if *n == at { mark { (format!("{n:>5}  {text}")) } "\n" } @else { (format!("{n:>5}  {text}")) "\n" }
            }
        }
    }
}

/// The forms that change a group: each posts the CSRF token of the page's cookie and asks for the write token.
fn action_forms(g: &crate::store::Group, csrf: &str) -> Markup {
    let action = format!("/groups/{}/actions", g.id);
    let token = html! {
        input type="password" name="token" placeholder="write token" autocomplete="current-password" required;
    };
    html! {
        details.actions open[false] {
            summary { "Change this error" }
            p.muted { "Each change needs the project's deploy token (or the admin token)." }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                (token)
                " "
                button name="action" value="resolve" { "Resolve now" }
                " "
                button name="action" value="ignore" { "Ignore" }
                " "
                button name="action" value="unresolve" { "Unresolve" }
            }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                (token)
                " " input name="environment" placeholder="environment (any)";
                " " button name="action" value="resolve_next" { "Resolve in the next release" }
            }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                (token)
                " " input name="commit" placeholder="commit sha (7 or more characters)" required pattern="[0-9a-fA-F]{7,64}";
                " " button name="action" value="resolve_commit" { "Resolved by this commit" }
            }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                (token)
                " " input name="assignee" placeholder="GitHub login (empty: nobody)" value=(g.assignee.as_deref().unwrap_or(""));
                " " button name="action" value="assign" { "Assign" }
            }
        }
    }
}

#[utoipa::path(get, path = "/groups/{id}", tag = "pages", params(("id" = i64, Path)), responses((status = 200, description = "HTML", content_type = "text/html", body = String), (status = 401, description = "The read token is needed"), (status = 404, description = "Unknown")))]
pub(super) async fn group_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    reader!(state, headers);
    let not_found = || ApiError::NotFound(format!("no group `{id}`"));
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let g = state.groups.find(id).await?.ok_or_else(not_found)?;
    let project = state.projects.by_id(g.project_id).await?.ok_or_else(not_found)?;
    let repo_web = state.releases.repo_web(&project);
    let gh = repo_web.as_deref();
    let a: Option<GroupAssignment> = g.assignment.as_deref().and_then(|a| serde_json::from_str(a).ok());
    let counts = state.groups.counts(g.id).await?;
    let timeline = state.groups.timeline(&g).await?;
    let sha = a.as_ref().and_then(|a| a.deploy.as_ref()).map(|d| d.sha.as_str());
    // The code each frame ran, as deployed: the first frames in the repository, ± a few lines.
    let spots: Vec<(String, u32)> =
        a.iter().flat_map(|a| &a.frames).filter_map(|f| Some((f.repo_path.clone()?, f.line?))).take(20).collect();
    let sources = match sha {
        Some(sha) if !spots.is_empty() => {
            state.releases.source_lines(project.id, sha, &spots).await.unwrap_or_else(|e| {
                tracing::warn!(error = %format!("{e:#}"), "source lines could not be read");
                Default::default()
            })
        }
        _ => Default::default(),
    };
    let csrf =
        csrf_cookie(&headers).map_or_else(|| crate::store::random_hex(16).map(|t| (t, true)), |t| Ok((t, false)));
    let (csrf, new_cookie) = csrf.map_err(ApiError::Internal)?;
    let body = html! {
        h1 { (g.title) }
        p {
            a href={ "/projects/" (project.name) "/errors" } { (project.name) " errors" }
            " · " span.tag { (g.status) } " · " (plural(g.times_seen, "event")) " · first seen " (when(g.first_seen))
            @if let Some(r) = &g.first_release { " in " (r) }
            @if let Some(who) = &g.assignee { " · assigned to @" (who) }
            @if let (Some(n), Some(repo)) = (g.github_issue, gh) {
                " · " a href={ (repo) "/issues/" (n) } { "GitHub issue #" (n) }
            }
        }
        (action_forms(&g, &csrf))
        @if let Some(a) = &a {
            h2 { "Suspect" }
            p.explanation { (with_code(&a.explanation)) }
            @if let Some(o) = &a.owner {
                p {
                    strong { "Owner:" } " "
                    @if let Some(l) = &o.github_login { "@" (l) } @else if let Some(e) = &o.email { (e) } @else { "nobody" }
                    " " span.muted { "(" (o.kind) ") — " (o.reason) }
                }
            }
            @if let Some(d) = &a.deploy {
                p.muted {
                    "Mapped and blamed at " a href={ "/deploys/" (d.id) } { (d.version) " in " (d.environment) }
                    ", commit " code { (short(&d.sha)) }
                    @if d.guessed { " (the event's release matched no deploy: the environment's latest)" }
                    "."
                }
            }
            h2 { "Frames" }
            table {
                tr { th { "#" } th { "Printed" } th { "In the repository" } th { "Last changed" } }
                @for f in a.frames.iter().rev() {
                    tr {
                        td { (f.index) }
                        td {
                            code {
                                (f.raw_path) @if let Some(l) = f.line { ":" (l) }
                                @if let Some(x) = &f.function { " in " (x) }
                            }
                        }
                        td {
                            @match (&f.repo_path, gh, sha) {
                                (Some(p), Some(repo), Some(sha)) => {
                                    a.blamed-line href={ (repo) "/blob/" (sha) "/" (p) @if let Some(l) = f.line { "#L" (l) } } {
                                        (p) @if let Some(l) = f.line { ":" (l) }
                                    }
                                }
                                (Some(p), _, _) => { (p) }
                                (None, _, _) => { span.muted { (f.mapping) } }
                            }
                        }
                        td {
                            @if let Some(bl) = &f.blame {
                                @if let Some(repo) = gh {
                                    a href={ (repo) "/commit/" (bl.commit) } { code { (short(&bl.commit)) } }
                                } @else {
                                    code { (short(&bl.commit)) }
                                }
                                " " (bl.author_name) " — " (bl.summary)
                            }
                        }
                    }
                    @if let (Some(p), Some(l)) = (&f.repo_path, f.line) {
                        @if let Some(lines) = sources.get(&(p.clone(), l)) {
                            tr.src { td {} td colspan="3" { (source_block(lines, l)) } }
                        }
                    }
                }
            }
        } @else {
            p.muted { "Not assigned yet." }
        }
        h2 { "History" }
        ol.timeline {
            @for item in &timeline {
                li {
                    (when(item.at)) " — " (item.text)
                    @if let Some(r) = &item.release {
                        " " span.tag {
                            @if let Some(d) = item.deploy_id { a href={ "/deploys/" (d) } { (r) } } @else { (r) }
                            @if let Some(e) = &item.environment { " · " (e) }
                        }
                    } @else if let Some(e) = &item.environment { " " span.tag { (e) } }
                }
            }
        }
        h2 { "Events per release" }
        (release_chart(&counts))
        table {
            tr { th { "Release" } th { "Environment" } th { "Events" } th { "Last seen" } }
            @for c in &counts {
                tr { td { (c.release) } td { (c.environment) } td { (c.count) } td { (when(c.last_seen)) } }
            }
        }
    };
    let mut response = page(&g.title, body).into_response();
    if new_cookie {
        let secure = if state.settings.public_url.starts_with("https://") { "; Secure" } else { "" };
        let cookie = format!("{CSRF_COOKIE}={csrf}; Path=/; HttpOnly; SameSite=Strict{secure}");
        if let Ok(v) = header::HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

/// A change to a group sent from its page.
#[derive(serde::Deserialize, utoipa::ToSchema)]
pub(super) struct ActionForm {
    /// The page's CSRF token (the same as its cookie's).
    #[serde(default)]
    csrf: String,
    /// The project's deploy token or the admin token.
    #[serde(default)]
    token: String,
    /// `resolve`, `resolve_next`, `resolve_commit`, `ignore`, `unresolve` or `assign`.
    action: String,
    environment: Option<String>,
    commit: Option<String>,
    assignee: Option<String>,
}

/// A refusal of a page's form, as a short page that says what to do.
fn refused(status: StatusCode, why: &str, back: &str) -> Response {
    let body = html! {
        h1 { "Not changed" }
        p { (why) }
        p { a href=(back) { "Back to the error" } }
    };
    (status, page("Not changed", body)).into_response()
}

#[utoipa::path(post, path = "/groups/{id}/actions", tag = "pages", params(("id" = i64, Path)),
    request_body(content = ActionForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Changed: back to the group's page"),
        (status = 401, description = "The read token, or a right write token, is needed"),
        (status = 403, description = "The form's CSRF token is missing or does not match its cookie"),
        (status = 404, description = "Unknown"), (status = 422, description = "A value that is not valid")))]
pub(super) async fn group_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<axum::extract::Form<ActionForm>, axum::extract::rejection::FormRejection>,
) -> ApiResult<Response> {
    reader!(state, headers);
    let not_found = || ApiError::NotFound(format!("no group `{id}`"));
    let gid: i64 = id.parse().map_err(|_| not_found())?;
    let back = format!("/groups/{gid}");
    let axum::extract::Form(form) = match form {
        Ok(f) => f,
        Err(e) => {
            return Ok(refused(StatusCode::UNPROCESSABLE_ENTITY, &format!("The form could not be read: {e}"), &back))
        }
    };
    // The cookie and the form must carry the same token: another site can make a browser post a form, but it can
    // neither read nor set this site's cookie.
    match csrf_cookie(&headers) {
        Some(c) if !form.csrf.is_empty() && same_secret(&form.csrf, &c) => {}
        _ => {
            return Ok(refused(
                StatusCode::FORBIDDEN,
                "This form's security token is missing or out of date (or it came from another site). Reload the error's page and try again.",
                &back,
            ))
        }
    }
    let g = state.groups.find(gid).await?.ok_or_else(not_found)?;
    let project = state.projects.by_id(g.project_id).await?.ok_or_else(not_found)?;
    if !state.may_write(form.token.trim(), &project) {
        return Ok(refused(
            StatusCode::UNAUTHORIZED,
            &format!("That is not the deploy token of project {} (nor the admin token).", project.name),
            &back,
        ));
    }
    let now = chrono::Utc::now().timestamp_millis();
    let by = "on its page";
    let invalid = |e: crate::domain::Invalid| refused(StatusCode::UNPROCESSABLE_ENTITY, &e.0, &back);
    let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    match form.action.as_str() {
        "resolve" => {
            state.groups.change_status(&g, StatusRequest::Resolve { fixed_in_commit: None }, by, now).await?;
        }
        "resolve_commit" => {
            let given = text(&form.commit).unwrap_or_default();
            let sha = match state.releases.commit_named(g.project_id, &given).await.map_err(ApiError::Internal)? {
                Ok(s) => s,
                Err(e) => return Ok(invalid(e)),
            };
            state.groups.change_status(&g, StatusRequest::Resolve { fixed_in_commit: Some(&sha) }, by, now).await?;
        }
        "resolve_next" => {
            let env = match text(&form.environment).map(|e| crate::domain::Environment::parse(&e)).transpose() {
                Ok(e) => e,
                Err(e) => return Ok(invalid(e)),
            };
            let request = StatusRequest::ResolveInNextRelease { environment: env.as_ref() };
            state.groups.change_status(&g, request, by, now).await?;
        }
        "ignore" => {
            state.groups.change_status(&g, StatusRequest::Ignore, by, now).await?;
        }
        "unresolve" => {
            state.groups.change_status(&g, StatusRequest::Unresolve, by, now).await?;
        }
        "assign" => {
            let login = match text(&form.assignee).map(|l| crate::domain::GithubLogin::parse(&l)).transpose() {
                Ok(l) => l,
                Err(e) => return Ok(invalid(e)),
            };
            state.groups.assign_to(&g, login.as_ref(), by, false, now).await?;
        }
        other => {
            return Ok(refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("`{other}` is not something this page can do to an error."),
                &back,
            ))
        }
    }
    Ok(Redirect::to(&back).into_response())
}

/// `text` with its first letter upper-case (tags read as labels on a page).
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_chart_stacks_environments_and_names_them() {
        let count = |release: &str, environment: &str, count: i64, first_seen: i64| crate::store::GroupCount {
            release: release.into(),
            environment: environment.into(),
            count,
            first_seen,
            last_seen: first_seen,
        };
        let svg = release_chart(&[
            count("v2", "production", 30, 20),
            count("v1", "staging", 5, 10),
            count("v2", "staging", 10, 21),
        ])
        .0;
        // v1 first (seen first); v2's bar is 40 events: 30 in production (the larger, first colour), 10 in staging.
        let v1 = svg.find("<title>v1 in staging: 5</title>").expect("v1's segment");
        let v2 = svg.find("<title>v2 in production: 30</title>").expect("v2's production segment");
        assert!(v1 < v2, "{svg}");
        assert!(svg.contains("<title>v2 in staging: 10</title>"), "{svg}");
        assert!(svg.contains(">40</text>"), "v2's total over its bar: {svg}");
        assert!(svg.contains("fill=\"#cf222e\"><title>v2 in production"), "{svg}");
        assert!(svg.contains("production (30)") && svg.contains("staging (15)"), "the legend: {svg}");
        // One environment: no legend.
        let one = release_chart(&[count("v1", "production", 3, 1)]).0;
        assert!(!one.contains("(3)"), "{one}");
    }

    #[test]
    fn every_inserted_value_is_escaped() {
        let html = page("<script>alert('x')</script>", html! { p { ("& \"y\" <b>") } }).0;
        assert!(html.contains("<title>&lt;script&gt;alert('x')&lt;/script&gt; · shipwatch</title>"), "{html}");
        assert!(html.contains("<p>&amp; &quot;y&quot; &lt;b&gt;</p>"), "{html}");
        // The one script is the page's own (local times); nothing inserted became one.
        assert_eq!(html.matches("<script>").count(), 1, "{html}");
        assert!(html.contains(&format!("<script>{LOCAL_TIMES}</script>")), "{html}");
    }
}
