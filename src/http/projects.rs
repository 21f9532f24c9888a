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
    let project = state
        .projects
        .create(&body.name, &body.repo, body.github.as_deref(), state.settings.allow_local_repos, now)
        .await
        .map_err(project_error)?;
    Ok((StatusCode::CREATED, Json(view(&state, project))))
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Vec<ProjectView>>> {
    state.require_admin(&headers)?;
    let all = state.projects.list().await?;
    Ok(Json(all.into_iter().map(|p| view(&state, p)).collect()))
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> ApiResult<Json<ProjectView>> {
    state.require_admin(&headers)?;
    let p =
        state.projects.find(&project).await?.ok_or_else(|| ApiError::NotFound(format!("no project `{project}`")))?;
    Ok(Json(view(&state, p)))
}

/// The project's assignment settings (project token or admin).
async fn get_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> ApiResult<Json<Settings>> {
    let p = state.authorised_project(&headers, &project).await?;
    let settings = state.projects.settings(&p).map_err(|e| {
        ApiError::Internal(anyhow::anyhow!("the stored settings of project {} are unreadable: {e}", p.id))
    })?;
    Ok(Json(settings))
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
    let p =
        state.projects.find(&project).await?.ok_or_else(|| ApiError::NotFound(format!("no project `{project}`")))?;
    let settings = Settings {
        code_mappings: body.code_mappings,
        logins: body.logins,
        default_assignee: body.default_assignee,
        bot_patterns: body.bot_patterns,
        max_suspect_frames: body.max_suspect_frames,
        labels: body.labels,
    };
    state.projects.set_settings(&p, &settings).await.map_err(project_error)?;
    Ok(Json(settings))
}

fn project_error(e: ProjectError) -> ApiError {
    match e {
        ProjectError::Invalid { field, reason } => ApiError::Unprocessable { field, reason },
        ProjectError::Store(e) => e.into(),
    }
}
