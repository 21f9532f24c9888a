//! Project administration over HTTP (admin token).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, AppState, JsonBody};
use crate::assign::paths::CodeMapping;
use crate::assign::Settings;
use crate::projects::{self, ProjectError};
use crate::store::Project;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/projects", get(list).post(create))
        .route("/api/v1/projects/{project}", get(show))
        .route("/api/v1/projects/{project}/settings", get(get_settings).put(put_settings))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProject {
    name: String,
    repo: String,
    github: Option<String>,
}

/// A project as admins see it: with its DSN and deploy token.
#[derive(Serialize)]
struct ProjectView {
    id: i64,
    name: String,
    repo: String,
    github: Option<String>,
    dsn: String,
    deploy_token: String,
}

fn view(state: &AppState, p: Project) -> ProjectView {
    ProjectView {
        id: p.id,
        dsn: projects::dsn(&state.settings.public_url, &p),
        name: p.name,
        repo: p.repo_url,
        github: p.github_repo,
        deploy_token: p.deploy_token,
    }
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateProject>,
) -> ApiResult<(StatusCode, Json<ProjectView>)> {
    state.require_admin(&headers)?;
    let now = chrono::Utc::now().timestamp_millis();
    let project = projects::create(
        state.store.as_ref(),
        &body.name,
        &body.repo,
        body.github.as_deref(),
        state.settings.allow_local_repos,
        now,
    )
    .await
    .map_err(|e| match e {
        ProjectError::Invalid { field, reason } => ApiError::Unprocessable { field: field.into(), reason },
        ProjectError::Store(e) => e.into(),
    })?;
    Ok((StatusCode::CREATED, Json(view(&state, project))))
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Vec<ProjectView>>> {
    state.require_admin(&headers)?;
    let all = state.store.list_projects().await?;
    Ok(Json(all.into_iter().map(|p| view(&state, p)).collect()))
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> ApiResult<Json<ProjectView>> {
    state.require_admin(&headers)?;
    let p = projects::find(state.store.as_ref(), &project)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no project `{project}`")))?;
    Ok(Json(view(&state, p)))
}

/// The project's assignment settings (project token or admin).
async fn get_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> ApiResult<Json<Settings>> {
    let p = state.authorised_project(&headers, &project).await?;
    Ok(Json(serde_json::from_str(&p.settings).unwrap_or_default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    #[serde(default)]
    code_mappings: Vec<CodeMapping>,
    #[serde(default)]
    logins: std::collections::BTreeMap<String, String>,
    default_assignee: Option<String>,
    #[serde(default)]
    bot_patterns: Vec<String>,
    max_suspect_frames: Option<usize>,
    labels: Option<Vec<String>>,
}

/// Replaces the project's assignment settings (admin).
async fn put_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<SettingsBody>,
) -> ApiResult<Json<Settings>> {
    state.require_admin(&headers)?;
    let p = projects::find(state.store.as_ref(), &project)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no project `{project}`")))?;
    let bad = |field: &str, reason: &str| ApiError::Unprocessable { field: field.into(), reason: reason.into() };
    for (i, m) in body.code_mappings.iter().enumerate() {
        if m.stack_prefix.is_empty() {
            return Err(bad(&format!("code_mappings[{i}].stack_prefix"), "must not be empty"));
        }
    }
    for (email, login) in &body.logins {
        if !email.contains('@') {
            return Err(bad("logins", &format!("`{email}` is not an e-mail address")));
        }
        if !valid_login(login) {
            return Err(bad("logins", &format!("`{login}` is not a GitHub login")));
        }
    }
    if let Some(d) = body.default_assignee.as_deref() {
        if !valid_login(d.trim_start_matches('@')) {
            return Err(bad("default_assignee", &format!("`{d}` is not a GitHub login")));
        }
    }
    if let Some(labels) = &body.labels {
        if labels.iter().any(|l| l.trim().is_empty() || l.chars().count() > 50 || l.contains(',')) {
            return Err(bad("labels", "each label must be 1 to 50 characters without commas"));
        }
    }
    if body.max_suspect_frames.is_some_and(|n| !(1..=50).contains(&n)) {
        return Err(bad("max_suspect_frames", "must be between 1 and 50"));
    }
    let settings = Settings {
        code_mappings: body.code_mappings,
        logins: body.logins,
        default_assignee: body.default_assignee,
        bot_patterns: body.bot_patterns,
        max_suspect_frames: body.max_suspect_frames,
        labels: body.labels,
    };
    let json = serde_json::to_string(&settings).map_err(anyhow::Error::from)?;
    state.store.set_project_settings(p.id, &json).await?;
    Ok(Json(settings))
}

/// A GitHub login or `org/team`: letters, digits and single hyphens, at most 39 characters per part.
fn valid_login(s: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 39
            && !p.starts_with('-')
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    match s.split_once('/') {
        Some((org, team)) => {
            part(org) && !team.is_empty() && team.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
        None => part(s),
    }
}
