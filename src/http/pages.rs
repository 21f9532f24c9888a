//! The web pages: server-rendered HTML, readable without JavaScript — projects, a project's deploys per environment,
//! a deploy's release report, and an error group with its frames, suspect and owner. Open without credentials only
//! when the server listens on loopback; otherwise a read token (Bearer, or Basic with the token as password).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use std::fmt::Write as _;

use super::{same_secret, ApiError, ApiResult, AppState};
use crate::assign::service::GroupAssignment;
use crate::releases::report::{plural, short, ErrorLine, Report};
use crate::store::Project;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/projects") }))
        .route("/projects", get(projects))
        .route("/projects/{project}", get(project_page))
        .route("/deploys/{id}", get(deploy_page))
        .route("/groups/{id}", get(group_page))
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#1f2328}\
a{color:#0969da}table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}th,td{text-align:left;padding:.3rem .6rem;\
border-bottom:1px solid #d0d7de;vertical-align:top}code{background:#f6f8fa;padding:0 .2rem}.muted{color:#656d76}\
.tag{display:inline-block;padding:0 .4rem;border-radius:.6rem;background:#ddf4ff;font-size:.85em}\
.bad{background:#ffebe9}.ok{background:#dafbe1}nav{margin-bottom:1rem}h1{margin-bottom:.2rem}";

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{} · shipwatch</title><style>{STYLE}</style></head><body><nav><a href=\"/projects\">shipwatch</a></nav>{body}</body></html>",
        esc(title)
    ))
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

async fn find_project(state: &AppState, key: &str) -> ApiResult<Project> {
    state.projects.find(key).await?.ok_or_else(|| ApiError::NotFound(format!("no project `{key}`")))
}

async fn projects(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    reader!(state, headers);
    let all = state.projects.list().await?;
    let mut b = String::from("<h1>Projects</h1>");
    if all.is_empty() {
        b.push_str(
            "<p>No projects yet: create one with <code>shipwatch project add --name NAME --repo URL</code>.</p>",
        );
    } else {
        b.push_str("<table><tr><th>Project</th><th>Repository</th><th>Latest deploy</th></tr>");
        for p in &all {
            let latest = state.releases.list(p.id, None, None, 1).await?.into_iter().next();
            let latest = latest
                .map(|d| {
                    format!(
                        "<a href=\"/deploys/{}\">{}</a> to {} <span class=\"muted\">{}</span>",
                        d.id,
                        esc(&d.version),
                        esc(&d.environment),
                        time(d.deployed_at)
                    )
                })
                .unwrap_or_else(|| "<span class=\"muted\">none yet</span>".into());
            let _ = write!(
                b,
                "<tr><td><a href=\"/projects/{0}\">{0}</a></td><td>{1}</td><td>{latest}</td></tr>",
                esc(&p.name),
                esc(&p.repo_url)
            );
        }
        b.push_str("</table>");
    }
    Ok(page("Projects", &b).into_response())
}

async fn project_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    reader!(state, headers);
    let p = find_project(&state, &key).await?;
    let deploys = state.releases.list(p.id, None, None, 200).await?;
    let mut b = format!("<h1>{}</h1><p class=\"muted\">{}</p>", esc(&p.name), esc(&p.repo_url));
    let mut environments: Vec<&str> = deploys.iter().map(|d| d.environment.as_str()).collect();
    environments.sort_unstable();
    environments.dedup();
    if environments.is_empty() {
        b.push_str("<p>No deploys yet: run the GitHub Action or <code>shipwatch deploy</code> after a deploy.</p>");
    }
    for env in environments {
        let _ = write!(b, "<h2>{}</h2><table><tr><th>Release</th><th>Commit</th><th>Deployed</th><th>Range</th><th>Errors in the hour after</th><th>New / regressed</th></tr>", esc(env));
        for d in deploys.iter().filter(|d| d.environment == env) {
            let after =
                state.releases.events_between(p.id, &d.environment, d.deployed_at, d.deployed_at + 3_600_000).await?;
            let groups = state.groups.of_release(p.id, &d.version).await?;
            let new = groups.iter().filter(|g| g.new_in_release.as_deref() == Some(&d.version)).count();
            let regressed = groups.iter().filter(|g| g.regressed_in.as_deref() == Some(&d.version)).count();
            let range = match (d.status.as_str(), d.range_status.as_deref()) {
                ("ready", Some(r)) => format!("{} · {} commits", esc(r), d.commit_count.unwrap_or(0)),
                (s, _) => esc(s),
            };
            let flag = if new + regressed > 0 { "bad" } else { "ok" };
            let _ = write!(
                b,
                "<tr><td><a href=\"/deploys/{}\">{}</a></td><td><code>{}</code></td><td>{}</td><td>{range}</td><td>{after}</td><td><span class=\"tag {flag}\">{new} new · {regressed} regressed</span></td></tr>",
                d.id,
                esc(&d.version),
                short(&d.sha),
                time(d.deployed_at)
            );
        }
        b.push_str("</table>");
    }
    Ok(page(&p.name, &b).into_response())
}

fn error_rows(b: &mut String, title: &str, lines: &[ErrorLine]) {
    if lines.is_empty() {
        return;
    }
    let _ = write!(b, "<h3>{}</h3><ul>", esc(title));
    for e in lines {
        let who = e.assignee.as_deref().map(|a| format!(" → @{}", esc(a))).unwrap_or_default();
        let suspect = e
            .suspect
            .as_deref()
            .map(|s| format!("<br><span class=\"muted\">suspect: {}</span>", esc(s)))
            .unwrap_or_default();
        let _ = write!(
            b,
            "<li><a href=\"/groups/{}\">{}</a> — {} in this release{who}{suspect}</li>",
            e.id,
            esc(&e.title),
            plural(e.count, "event")
        );
    }
    b.push_str("</ul>");
}

fn report_html(r: &Report) -> String {
    let d = &r.deploy;
    let mut b = format!(
        "<h1>{} {} → {}</h1><p><a href=\"/projects/{}\">all deploys of {}</a></p><table>",
        esc(&r.project),
        esc(&d.version),
        esc(&d.environment),
        esc(&r.project),
        esc(&r.project)
    );
    let _ = write!(b, "<tr><th>Commit</th><td><code>{}</code></td></tr>", esc(&d.sha));
    let _ = write!(
        b,
        "<tr><th>Deployed</th><td>{}{}</td></tr>",
        esc(&d.deployed_at),
        d.deployer.as_deref().map(|p| format!(" by {}", esc(p))).unwrap_or_default()
    );
    let range = match (d.status.as_str(), d.range_status.as_deref()) {
        ("failed", _) => format!("failed: {}", esc(d.failure_reason.as_deref().unwrap_or(""))),
        ("pending", _) => "being computed".into(),
        (_, Some(r)) => format!(
            "{} · {} commits{}",
            esc(r),
            d.commit_count.unwrap_or(0),
            d.base_sha.as_deref().map(|b| format!(" since <code>{}</code>", short(b))).unwrap_or_default()
        ),
        _ => String::new(),
    };
    let _ = write!(b, "<tr><th>Range</th><td>{range}</td></tr>");
    if let Some(u) = &d.compare_url {
        let _ = write!(b, "<tr><th>Compare</th><td><a href=\"{0}\">{0}</a></td></tr>", esc(u));
    }
    b.push_str("</table><h2>Errors</h2>");
    let _ = write!(b, "<p>{}</p>", esc(&r.counts_sentence()));
    if !r.has_errors() {
        let _ = write!(b, "<p class=\"tag ok\">{}</p>", Report::NO_ERRORS);
    }
    error_rows(&mut b, "New in this release", &r.new_errors);
    error_rows(&mut b, "Regressions", &r.regressions);
    error_rows(&mut b, "Suspect commit in this release", &r.suspects_in_range);
    b.push_str("<h2>Commits by author</h2>");
    if r.authors.is_empty() {
        b.push_str("<p class=\"muted\">No commits in this range.</p>");
    }
    for a in &r.authors {
        let _ = write!(b, "<h3>{} <span class=\"muted\">({})</span></h3><ul>", esc(&a.name), a.commits.len());
        for c in &a.commits {
            let sha = match &c.url {
                Some(u) => format!("<a href=\"{}\"><code>{}</code></a>", esc(u), short(&c.sha)),
                None => format!("<code>{}</code>", short(&c.sha)),
            };
            let _ = write!(b, "<li class=\"commit\">{sha} {}</li>", esc(&c.summary));
        }
        b.push_str("</ul>");
    }
    for (title, links) in [("Pull requests", &r.pull_requests), ("Closed issues", &r.closed_issues)] {
        if links.is_empty() {
            continue;
        }
        let items: Vec<String> = links
            .iter()
            .map(|l| match &l.url {
                Some(u) => format!("<a href=\"{}\">{}</a>", esc(u), esc(&l.label)),
                None => esc(&l.label),
            })
            .collect();
        let _ = write!(b, "<h2>{title}</h2><p>{}</p>", items.join(", "));
    }
    b
}

async fn deploy_page(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    reader!(state, headers);
    let not_found = || ApiError::NotFound(format!("no deploy `{id}`"));
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let deploy = state.releases.deploy(id).await?.ok_or_else(not_found)?;
    let project = state.projects.by_id(deploy.project_id).await?.ok_or_else(not_found)?;
    let report = state.releases.report(&project, &deploy).await?;
    let title = format!("{} {} → {}", project.name, deploy.version, deploy.environment);
    Ok(page(&title, &report_html(&report)).into_response())
}

async fn group_page(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    reader!(state, headers);
    let not_found = || ApiError::NotFound(format!("no group `{id}`"));
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let g = state.groups.find(id).await?.ok_or_else(not_found)?;
    let project = state.projects.by_id(g.project_id).await?.ok_or_else(not_found)?;
    let repo_web = state.releases.repo_web(&project);
    let gh = repo_web.as_deref();
    let a: Option<GroupAssignment> = g.assignment.as_deref().and_then(|a| serde_json::from_str(a).ok());
    let mut b =
        format!("<h1>{}</h1><p><a href=\"/projects/{}\">{}</a>", esc(&g.title), esc(&project.name), esc(&project.name));
    let _ = write!(
        b,
        " · <span class=\"tag\">{}</span> · {} · first seen {}",
        esc(&g.status),
        plural(g.times_seen, "event"),
        time(g.first_seen)
    );
    if let Some(r) = &g.first_release {
        let _ = write!(b, " in {}", esc(r));
    }
    if let (Some(n), Some(repo)) = (g.github_issue, gh) {
        let _ = write!(b, " · <a href=\"{}/issues/{n}\">GitHub issue #{n}</a>", esc(repo));
    }
    b.push_str("</p>");
    match &a {
        Some(a) => {
            let _ = write!(b, "<h2>Suspect</h2><p class=\"explanation\">{}</p>", esc(&a.explanation));
            if let Some(o) = &a.owner {
                let who = o
                    .github_login
                    .as_deref()
                    .map(|l| format!("@{}", esc(l)))
                    .or_else(|| o.email.as_deref().map(esc))
                    .unwrap_or_else(|| "nobody".into());
                let _ = write!(
                    b,
                    "<p><strong>Owner:</strong> {who} <span class=\"muted\">({}) — {}</span></p>",
                    esc(&o.kind),
                    esc(&o.reason)
                );
            }
            if let Some(d) = &a.deploy {
                let guess =
                    if d.guessed { " (the event's release matched no deploy: the environment's latest)" } else { "" };
                let _ = write!(b, "<p class=\"muted\">Mapped and blamed at <a href=\"/deploys/{}\">{} in {}</a>, commit <code>{}</code>{guess}.</p>", d.id, esc(&d.version), esc(&d.environment), short(&d.sha));
            }
            b.push_str("<h2>Frames</h2><table><tr><th>#</th><th>Printed</th><th>In the repository</th><th>Last changed</th></tr>");
            let sha = a.deploy.as_ref().map(|d| d.sha.as_str());
            for f in a.frames.iter().rev() {
                let printed = format!(
                    "{}{}{}",
                    esc(&f.raw_path),
                    f.line.map(|l| format!(":{l}")).unwrap_or_default(),
                    f.function.as_deref().map(|x| format!(" in {}", esc(x))).unwrap_or_default()
                );
                let repo_cell = match (&f.repo_path, gh, sha) {
                    (Some(p), Some(repo), Some(sha)) => format!(
                        "<a class=\"blamed-line\" href=\"{}/blob/{sha}/{}{}\">{}{}</a>",
                        esc(repo),
                        esc(p),
                        f.line.map(|l| format!("#L{l}")).unwrap_or_default(),
                        esc(p),
                        f.line.map(|l| format!(":{l}")).unwrap_or_default()
                    ),
                    (Some(p), _, _) => esc(p),
                    (None, _, _) => format!("<span class=\"muted\">{}</span>", esc(&f.mapping)),
                };
                let blame = f
                    .blame
                    .as_ref()
                    .map(|bl| {
                        let commit = match gh {
                            Some(repo) => format!(
                                "<a href=\"{}/commit/{}\"><code>{}</code></a>",
                                esc(repo),
                                esc(&bl.commit),
                                short(&bl.commit)
                            ),
                            None => format!("<code>{}</code>", short(&bl.commit)),
                        };
                        format!("{commit} {} — {}", esc(&bl.author_name), esc(&bl.summary))
                    })
                    .unwrap_or_default();
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td><code>{printed}</code></td><td>{repo_cell}</td><td>{blame}</td></tr>",
                    f.index
                );
            }
            b.push_str("</table>");
        }
        None => b.push_str("<p class=\"muted\">Not assigned yet.</p>"),
    }
    b.push_str("<h2>Events per release</h2><table><tr><th>Release</th><th>Environment</th><th>Events</th><th>Last seen</th></tr>");
    for c in state.groups.counts(g.id).await? {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.release),
            esc(&c.environment),
            c.count,
            time(c.last_seen)
        );
    }
    b.push_str("</table>");
    Ok(page(&g.title, &b).into_response())
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_html() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
