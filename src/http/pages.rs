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
use crate::groups::GroupStatus;
use crate::releases::report::{plural, short, ErrorLine, Report};
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
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#1f2328}\
a{color:#0969da}table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}th,td{text-align:left;padding:.3rem .6rem;\
border-bottom:1px solid #d0d7de;vertical-align:top}code{background:#f6f8fa;padding:0 .2rem}.muted{color:#656d76}\
.tag{display:inline-block;padding:0 .4rem;border-radius:.6rem;background:#ddf4ff;font-size:.85em}\
.bad{background:#ffebe9}.ok{background:#dafbe1}nav{margin-bottom:1rem}h1{margin-bottom:.2rem}";

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
                                span.muted { (time(d.deployed_at)) }
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
            let groups = state.groups.of_release(p.id, &d.version).await?;
            let new = groups.iter().filter(|g| g.new_in_release.as_deref() == Some(&d.version)).count();
            let regressed = groups.iter().filter(|g| g.regressed_in.as_deref() == Some(&d.version)).count();
            rows.push((d, after, new, regressed));
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
                    th { "Release" } th { "Commit" } th { "Deployed" } th { "Range" } th { "Errors in the hour after" }
                    th { "New / regressed" }
                }
                @for (d, after, new, regressed) in rows {
                    tr {
                        td { a href={ "/deploys/" (d.id) } { (d.version) } }
                        td { code { (short(&d.sha)) } }
                        td { (time(d.deployed_at)) }
                        td {
                            @match (DeployStatus::parse(&d.status), d.range_status.as_deref()) {
                                (Some(DeployStatus::Ready), Some(r)) => { (r) " · " (d.commit_count.unwrap_or(0)) " commits" }
                                (Some(DeployStatus::Failed), _) => {
                                    span.tag.bad { "failed" } " " (d.failure_reason.as_deref().unwrap_or("no reason recorded"))
                                }
                                _ => { (d.status) }
                            }
                        }
                        td { (after) }
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
                        td { (time(g.last_seen)) }
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
    let mut seen = std::collections::HashSet::new();
    let all: Vec<&ErrorLine> =
        r.new_errors.iter().chain(&r.regressions).chain(&r.suspects_in_range).filter(|e| seen.insert(e.id)).collect();
    let has = |lines: &[ErrorLine], id: i64| lines.iter().any(|e| e.id == id);
    html! {
        @if !all.is_empty() {
            ul {
                @for e in all {
                    li {
                        a href={ "/groups/" (e.id) } { (e.title) } " — " (plural(e.count, "event")) " in this release"
                        @if let Some(a) = &e.assignee { " → @" (a) }
                        " "
                        @if has(&r.new_errors, e.id) { span.tag.bad { "New in this release" } " " }
                        @if has(&r.regressions, e.id) { span.tag.bad { "Regressed in this release" } " " }
                        @if has(&r.suspects_in_range, e.id) { span.tag { "Suspect commit in this release" } }
                        @if let Some(s) = &e.suspect { br; span.muted { "suspect: " (with_code(s)) } }
                    }
                }
            }
        }
    }
}

/// An RFC 3339 time as the pages write times.
fn iso_time(s: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(s).map(|t| time(t.timestamp_millis())).unwrap_or_else(|_| s.to_owned())
}

fn report_html(r: &Report) -> Markup {
    let d = &r.deploy;
    html! {
        h1 { (r.project) " " (d.version) " → " (d.environment) }
        p { a href={ "/projects/" (r.project) } { "all deploys of " (r.project) } }
        table {
            tr { th { "Commit" } td { code { (d.sha) } } }
            tr { th { "Deployed" } td { (iso_time(&d.deployed_at)) @if let Some(p) = &d.deployer { " by " (p) } } }
            tr {
                th { "Range" }
                td {
                    @match (DeployStatus::parse(&d.status), d.range_status.as_deref()) {
                        (Some(DeployStatus::Failed), _) => { "failed: " (d.failure_reason.as_deref().unwrap_or("")) }
                        (Some(DeployStatus::Pending), _) => { "being computed" }
                        (_, Some(range)) => {
                            (range) " · " (d.commit_count.unwrap_or(0)) " commits"
                            @if let Some(b) = &d.base_sha { " since " code { (short(b)) } }
                        }
                        _ => {}
                    }
                }
            }
            @if let Some(u) = &d.compare_url { tr { th { "Compare" } td { a href=(u) { (u) } } } }
        }
        h2 { "Errors" }
        p { (r.counts_sentence()) }
        @if !r.has_errors() { p class="tag ok" { (Report::NO_ERRORS) } }
        (error_rows(r))
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
        @for (title, links) in [("Pull requests", &r.pull_requests), ("Closed issues", &r.closed_issues)] {
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
    let sha = a.as_ref().and_then(|a| a.deploy.as_ref()).map(|d| d.sha.as_str());
    let body = html! {
        h1 { (g.title) }
        p {
            a href={ "/projects/" (project.name) } { (project.name) }
            " · " span.tag { (g.status) } " · " (plural(g.times_seen, "event")) " · first seen " (time(g.first_seen))
            @if let Some(r) = &g.first_release { " in " (r) }
            @if let (Some(n), Some(repo)) = (g.github_issue, gh) {
                " · " a href={ (repo) "/issues/" (n) } { "GitHub issue #" (n) }
            }
        }
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
                }
            }
        } @else {
            p.muted { "Not assigned yet." }
        }
        h2 { "Events per release" }
        table {
            tr { th { "Release" } th { "Environment" } th { "Events" } th { "Last seen" } }
            @for c in &counts {
                tr { td { (c.release) } td { (c.environment) } td { (c.count) } td { (time(c.last_seen)) } }
            }
        }
    };
    Ok(page(&g.title, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inserted_value_is_escaped() {
        let html = page("<script>alert('x')</script>", html! { p { ("& \"y\" <b>") } }).0;
        assert!(html.contains("<title>&lt;script&gt;alert('x')&lt;/script&gt; · shipwatch</title>"), "{html}");
        assert!(html.contains("<p>&amp; &quot;y&quot; &lt;b&gt;</p>"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
    }
}
