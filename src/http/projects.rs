//! Project administration over HTTP (admin token).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, AppState, JsonBody};
use crate::projects::{self, ProjectError};
use crate::store::Project;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/projects", get(list).post(create)).route("/api/v1/projects/{project}", get(show))
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
