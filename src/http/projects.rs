//! Project administration over HTTP (admin token).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, AppState, ErrorBody, JsonBody};
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateProject {
    name: String,
    repo: String,
    github: Option<String>,
}

/// A project as admins see it: with its DSN and deploy token.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ProjectView {
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

#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = CreateProject,
    security(("admin_token" = [])),
    responses((status = 201, body = ProjectView), (status = 401, body = ErrorBody), (status = 403, description = "The admin API is off", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn create(
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

#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", security(("admin_token" = [])),
    responses((status = 200, body = Vec<ProjectView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn list(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Vec<ProjectView>>> {
    state.require_admin(&headers)?;
    let all = state.projects.list().await?;
    Ok(Json(all.into_iter().map(|p| view(&state, p)).collect()))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}", tag = "projects", params(("project" = String, Path, description = "Name or id")),
    security(("admin_token" = [])), responses((status = 200, body = ProjectView), (status = 401, description = "No token or a wrong one", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn show(
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
#[utoipa::path(get, path = "/api/v1/projects/{project}/settings", tag = "projects", params(("project" = String, Path, description = "Name or id")),
    security(("deploy_token" = []), ("admin_token" = [])), responses((status = 200, body = Settings), (status = 401, description = "No token or a wrong one", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody)))]
pub(super) async fn get_settings(
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
pub(super) struct SettingsBody {
    #[serde(default)]
    code_mappings: Vec<CodeMapping>,
    #[serde(default)]
    logins: std::collections::BTreeMap<String, String>,
    default_assignee: Option<String>,
    #[serde(default)]
    bot_patterns: Vec<String>,
    max_suspect_frames: Option<usize>,
    labels: Option<Vec<String>>,
    new_label: Option<String>,
    regression_label: Option<String>,
    #[serde(default)]
    pull_request_comments: bool,
}

/// Replaces the project's assignment settings (admin).
#[utoipa::path(put, path = "/api/v1/projects/{project}/settings", tag = "projects", params(("project" = String, Path, description = "Name or id")),
    request_body = Settings, security(("admin_token" = [])),
    responses((status = 200, body = Settings), (status = 401, description = "No token or a wrong one", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody), (status = 422, description = "A field is wrong; `field` names it", body = ErrorBody)))]
pub(super) async fn put_settings(
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
        new_label: body.new_label,
        regression_label: body.regression_label,
        pull_request_comments: body.pull_request_comments,
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
