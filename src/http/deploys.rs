//! Deploys over HTTP: record one (deploy token), list a project's, show one with its commits, and its report.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{page_limit, parse_json, require_bearer, ApiError, ApiResult, AppState, ErrorBody};
use crate::domain::Environment;
use crate::releases::report::DeployView;
use crate::releases::DeployInput;
use crate::store::{CommitRecord, Deploy, Project};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/deploys", post(create))
        .route("/api/v1/deploys/{id}", get(show))
        .route("/api/v1/deploys/{id}/report", get(report))
        .route("/api/v1/projects/{project}/deploys", get(list))
}

/// A project named by its name or its numeric id.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(super) enum ProjectRef {
    Id(i64),
    Name(String),
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateDeploy {
    project: ProjectRef,
    environment: String,
    sha: String,
    version: Option<String>,
    previous_sha: Option<String>,
    deployed_at: Option<String>,
    deployer: Option<String>,
    url: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DeployUrls {
    deploy: String,
    report: String,
    report_markdown: String,
    /// The release page, for people (behind the read token where one is set).
    page: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Recorded {
    id: i64,
    status: String,
    /// False when this request repeated a deploy that was already recorded.
    created: bool,
    deploy: DeployView,
    urls: DeployUrls,
}

fn urls(state: &AppState, id: i64) -> DeployUrls {
    DeployUrls {
        deploy: state.url(&format!("/api/v1/deploys/{id}")),
        report: state.url(&format!("/api/v1/deploys/{id}/report?format=json")),
        report_markdown: state.url(&format!("/api/v1/deploys/{id}/report?format=md")),
        page: state.url(&format!("/deploys/{id}")),
    }
}

#[utoipa::path(post, path = "/api/v1/deploys", tag = "deploys", request_body = CreateDeploy, security(("deploy_token" = [])),
    responses((status = 201, description = "Recorded; the range is computed in the background", body = Recorded),
        (status = 200, description = "The same deploy was recorded already", body = Recorded), (status = 401, description = "No token or a wrong one", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Recorded>)> {
    require_bearer(&headers)?;
    let req: CreateDeploy = parse_json(&body)?;
    let key = match &req.project {
        ProjectRef::Id(id) => id.to_string(),
        ProjectRef::Name(name) => name.clone(),
    };
    let project = find_project(&state, &key).await?;
    state.require_project_token(&headers, &project)?;
    let input = DeployInput {
        environment: req.environment,
        sha: req.sha,
        version: req.version,
        previous_sha: req.previous_sha,
        deployed_at: req.deployed_at,
        deployer: req.deployer,
        url: req.url,
    };
    let (deploy, created) = state.releases.record(&project, input, chrono::Utc::now().timestamp_millis()).await?;
    state.wake.notify_one();
    tracing::info!(deploy_id = deploy.id, project = %project.name, environment = %deploy.environment, created, "deploy recorded");
    Ok((
        StatusCode::ACCEPTED,
        Json(Recorded {
            id: deploy.id,
            status: deploy.status.clone(),
            created,
            urls: urls(&state, deploy.id),
            deploy: DeployView::new(&deploy, state.releases.repo_web(&project).as_deref()),
        }),
    ))
}

async fn find_project(state: &AppState, key: &str) -> ApiResult<Project> {
    state.projects.find(key).await?.ok_or_else(|| ApiError::NotFound(format!("no project `{key}`")))
}

/// The deploy and its project, after checking the caller may see them.
async fn authorised_deploy(state: &AppState, headers: &HeaderMap, id: &str) -> ApiResult<(Deploy, Project)> {
    require_bearer(headers)?;
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound(format!("no deploy `{id}`")))?;
    let deploy = state.releases.deploy(id).await?.ok_or_else(|| ApiError::NotFound(format!("no deploy {id}")))?;
    let project =
        state.projects.by_id(deploy.project_id).await?.ok_or_else(|| ApiError::NotFound(format!("no deploy {id}")))?;
    state.require_project_token(headers, &project)?;
    Ok((deploy, project))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DeployWithCommits {
    project: String,
    deploy: DeployView,
    #[schema(value_type = Vec<Object>)]
    commits: Vec<CommitRecord>,
    urls: DeployUrls,
}

#[utoipa::path(get, path = "/api/v1/deploys/{id}", tag = "deploys", params(("id" = i64, Path)), security(("deploy_token" = [])),
    responses((status = 200, body = DeployWithCommits), (status = 401, description = "No token or a wrong one", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody)))]
pub(super) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<DeployWithCommits>> {
    let (deploy, project) = authorised_deploy(&state, &headers, &id).await?;
    let commits = state.releases.commits(deploy.id).await?;
    let repo_web = state.releases.repo_web(&project);
    Ok(Json(DeployWithCommits {
        project: project.name,
        urls: urls(&state, deploy.id),
        deploy: DeployView::new(&deploy, repo_web.as_deref()),
        commits,
    }))
}

#[derive(Deserialize)]
pub(super) struct ReportParams {
    format: Option<String>,
    window_minutes: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/deploys/{id}/report", tag = "deploys",
    params(("id" = i64, Path), ("format" = Option<String>, Query, description = "`json` (default) or `md`"),
        ("window_minutes" = Option<i64>, Query,
            description = "Minutes after the deploy compared with as many before it (1 to 1440, default 60)")),
    security(("deploy_token" = [])),
    responses((status = 200, description = "The release report (JSON, or Markdown with `format=md`)", body = Object),
        (status = 401, description = "No token or a wrong one", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    params: Result<Query<ReportParams>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (deploy, project) = authorised_deploy(&state, &headers, &id).await?;
    let window = params.window_minutes.unwrap_or(crate::releases::DEFAULT_WINDOW_MINUTES);
    if !(1..=crate::releases::MAX_WINDOW_MINUTES).contains(&window) {
        return Err(ApiError::Unprocessable {
            field: "window_minutes".into(),
            reason: format!("must be 1 to {} minutes", crate::releases::MAX_WINDOW_MINUTES),
        });
    }
    let report = state.releases.report(&project, &deploy, window).await?;
    match params.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(report).into_response()),
        "md" | "markdown" => {
            Ok(([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], report.to_markdown()).into_response())
        }
        other => Err(ApiError::Unprocessable {
            field: "format".into(),
            reason: format!("`{other}` is not a report format: use json or md"),
        }),
    }
}

#[derive(Deserialize)]
pub(super) struct ListParams {
    environment: Option<String>,
    limit: Option<i64>,
    before: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DeployPage {
    deploys: Vec<DeployView>,
    /// The next (older) page, when there may be one.
    next: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/deploys", tag = "deploys",
    params(("project" = String, Path, description = "Name or id"), ("environment" = Option<String>, Query),
        ("limit" = Option<i64>, Query), ("before" = Option<i64>, Query, description = "Deploys older than this id")),
    security(("deploy_token" = [])), responses((status = 200, body = DeployPage), (status = 401, description = "No token or a wrong one", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(project): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> ApiResult<Json<DeployPage>> {
    let project = state.authorised_project(&headers, &project).await?;
    let Query(params) = params.map_err(|e| ApiError::Unprocessable { field: "query".into(), reason: e.body_text() })?;
    if let Some(env) = &params.environment {
        Environment::parse(env).map_err(|e| ApiError::Unprocessable { field: "environment".into(), reason: e.0 })?;
    }
    let limit = page_limit(params.limit)?;
    let deploys = state.releases.list(project.id, params.environment.as_deref(), params.before, limit).await?;
    let next = (deploys.len() as i64 == limit).then(|| {
        let last = deploys.last().map_or(0, |d| d.id);
        let env = params.environment.as_deref().map(|e| format!("&environment={e}")).unwrap_or_default();
        state.url(&format!("/api/v1/projects/{}/deploys?limit={limit}&before={last}{env}", project.name))
    });
    let repo_web = state.releases.repo_web(&project);
    Ok(Json(DeployPage { deploys: deploys.iter().map(|d| DeployView::new(d, repo_web.as_deref())).collect(), next }))
}
