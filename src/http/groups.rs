//! Error groups over HTTP: a project's groups (filtered by status, release, environment) and one group with its
//! counts and latest event; plus a project's intake counters.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{page_limit, require_bearer, ApiError, ApiResult, AppState, ErrorBody};
use crate::assign::service::GroupAssignment;
use crate::events::Event;
use crate::groups::{GroupStatus, StatusRequest};
use crate::store::{Group, GroupCount, GroupFilter, GroupOrder};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/projects/{project}/groups", get(list))
        .route("/api/v1/projects/{project}/stats", get(stats))
        .route("/api/v1/groups/{id}", get(show))
        .route("/api/v1/groups/{id}/resolve", post(resolve))
        .route("/api/v1/groups/{id}/unresolve", post(unresolve))
        .route("/api/v1/groups/{id}/ignore", post(ignore))
        .route("/api/v1/groups/{id}/assign", post(assign))
        .route("/api/v1/groups/{id}/history", get(history))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct GroupView {
    id: i64,
    title: String,
    culprit: Option<String>,
    level: Option<String>,
    status: String,
    count: i64,
    first_seen: String,
    last_seen: String,
    first_release: Option<String>,
    fingerprint: String,
    /// The GitHub login the group is assigned to, once assignment ran.
    assignee: Option<String>,
    /// "New in <release>": it first appeared in the newest deploy of its environment.
    new_in_release: Option<String>,
    /// "Introduced by <release>": its suspect commit is in that deploy's range.
    introduced_by: Option<String>,
    resolved_at: Option<String>,
    /// The commit that fixed it, when it was resolved by one (a `Fixes #N` of its issue, or named when resolving):
    /// only builds containing it reopen the group.
    fixed_in_commit: Option<String>,
    regressed_in: Option<String>,
    times_regressed: i64,
    github_issue: Option<i64>,
    url: String,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn view(state: &AppState, g: Group) -> GroupView {
    GroupView {
        url: state.url(&format!("/api/v1/groups/{}", g.id)),
        id: g.id,
        title: g.title,
        culprit: g.culprit,
        level: g.level,
        status: g.status,
        count: g.times_seen,
        first_seen: rfc3339(g.first_seen),
        last_seen: rfc3339(g.last_seen),
        first_release: g.first_release,
        fingerprint: g.fingerprint,
        assignee: g.assignee,
        new_in_release: g.new_in_release,
        introduced_by: g.introduced_by,
        resolved_at: g.resolved_at.map(rfc3339),
        fixed_in_commit: g.fixed_in_commit,
        regressed_in: g.regressed_in,
        times_regressed: g.times_regressed,
        github_issue: g.github_issue,
    }
}

#[derive(Deserialize, Default)]
pub(super) struct ListParams {
    pub(super) status: Option<String>,
    pub(super) release: Option<String>,
    pub(super) environment: Option<String>,
    /// Words the title contains.
    pub(super) q: Option<String>,
    pub(super) assignee: Option<String>,
    /// `last_seen` (default), `events` or `newest`.
    pub(super) sort: Option<String>,
    pub(super) limit: Option<i64>,
    pub(super) offset: Option<i64>,
}

impl ListParams {
    /// The filter these parameters ask for: `422` naming a status or sort that does not exist. Empty parameters (as
    /// a form sends them) are no filter.
    pub(super) fn filter(&self) -> ApiResult<GroupFilter> {
        let given = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let status = given(&self.status);
        if let Some(s) = status.as_deref().filter(|s| GroupStatus::parse(s).is_none()) {
            let all: Vec<&str> = GroupStatus::ALL.iter().map(|g| g.as_str()).collect();
            return Err(ApiError::Unprocessable {
                field: "status".into(),
                reason: format!("`{s}` is not a status: use one of {}", all.join(", ")),
            });
        }
        let order = match given(&self.sort).as_deref() {
            None | Some("last_seen") => GroupOrder::LastSeen,
            Some("events") => GroupOrder::Events,
            Some("newest") => GroupOrder::Newest,
            Some(other) => {
                return Err(ApiError::Unprocessable {
                    field: "sort".into(),
                    reason: format!("`{other}` is not a sort: use last_seen, events or newest"),
                })
            }
        };
        Ok(GroupFilter {
            status,
            release: given(&self.release),
            environment: given(&self.environment),
            text: given(&self.q),
            assignee: given(&self.assignee).map(|a| a.trim_start_matches('@').to_owned()),
            order,
            limit: page_limit(self.limit)?,
            offset: self.offset.unwrap_or(0).max(0),
        })
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct GroupPage {
    groups: Vec<GroupView>,
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/groups", tag = "groups",
    params(("project" = String, Path, description = "Name or id"), ("status" = Option<String>, Query), ("release" = Option<String>, Query),
        ("environment" = Option<String>, Query), ("q" = Option<String>, Query, description = "Words the title contains"),
        ("assignee" = Option<String>, Query), ("sort" = Option<String>, Query, description = "`last_seen` (default), `events` or `newest`"),
        ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    security(("deploy_token" = [])), responses((status = 200, body = GroupPage), (status = 401, description = "No token or a wrong one", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(project): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> ApiResult<Json<GroupPage>> {
    let project = state.authorised_project(&headers, &project).await?;
    let Query(p) = params.map_err(|e| ApiError::Unprocessable { field: "query".into(), reason: e.body_text() })?;
    let filter = p.filter()?;
    let groups = state.groups.list(project.id, &filter).await?;
    Ok(Json(GroupPage { groups: groups.into_iter().map(|g| view(&state, g)).collect() }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct GroupDetail {
    project: String,
    group: GroupView,
    /// Events per release and environment.
    #[schema(value_type = Vec<Object>)]
    counts: Vec<GroupCount>,
    #[schema(value_type = Option<Object>)]
    latest_event: Option<Event>,
    /// Frames mapped and blamed at the deployed commit, the suspect and the owner, with their reasons.
    #[schema(value_type = Option<Object>)]
    assignment: Option<GroupAssignment>,
    /// Per environment, the commit deployed when the group was resolved: events from builds that contain it reopen.
    resolutions: std::collections::BTreeMap<String, String>,
}

#[utoipa::path(get, path = "/api/v1/groups/{id}", tag = "groups", params(("id" = i64, Path)), security(("deploy_token" = [])), responses((status = 200, body = GroupDetail), (status = 401, description = "No token or a wrong one", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody)))]
pub(super) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<GroupDetail>> {
    require_bearer(&headers)?;
    let not_found = || ApiError::NotFound(format!("no group `{id}`"));
    let gid: i64 = id.parse().map_err(|_| not_found())?;
    let group = state.groups.find(gid).await?.ok_or_else(not_found)?;
    let project = state.projects.by_id(group.project_id).await?.ok_or_else(not_found)?;
    state.require_project_token(&headers, &project)?;
    let counts = state.groups.counts(group.id).await?;
    let assignment = match group.assignment.as_deref() {
        Some(a) => Some(serde_json::from_str::<GroupAssignment>(a).map_err(anyhow::Error::from)?),
        None => None,
    };
    let latest_event = state.groups.latest_event(&group).await?;
    let resolutions = state.groups.resolutions(group.id).await?.into_iter().collect();
    Ok(Json(GroupDetail {
        project: project.name,
        group: view(&state, group),
        counts,
        latest_event,
        assignment,
        resolutions,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Stats {
    events: i64,
    /// Envelope items accepted but not kept, by type (`transaction`, `session`, `client_report`, …).
    items: std::collections::BTreeMap<String, i64>,
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/stats", tag = "groups", params(("project" = String, Path, description = "Name or id")),
    security(("deploy_token" = [])), responses((status = 200, body = Stats), (status = 401, description = "No token or a wrong one", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody)))]
pub(super) async fn stats(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> ApiResult<Json<Stats>> {
    let project = state.authorised_project(&headers, &project).await?;
    let (events, items) = state.groups.intake_counts(project.id).await?;
    Ok(Json(Stats { events, items: items.into_iter().collect() }))
}

/// The group a status change is about, after checking the caller may change it.
async fn authorised_group(state: &AppState, headers: &HeaderMap, id: &str) -> ApiResult<Group> {
    require_bearer(headers)?;
    let not_found = || ApiError::NotFound(format!("no group `{id}`"));
    let gid: i64 = id.parse().map_err(|_| not_found())?;
    let group = state.groups.find(gid).await?.ok_or_else(not_found)?;
    let project = state.projects.by_id(group.project_id).await?.ok_or_else(not_found)?;
    state.require_project_token(headers, &project)?;
    Ok(group)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ResolveBody {
    /// Resolve when the next deploy completes instead of now.
    #[serde(default)]
    in_next_release: bool,
    /// A commit known to fix the group.
    fixed_in_commit: Option<String>,
    /// With `in_next_release`: whose next deploy resolves it (any environment's when omitted).
    environment: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/groups/{id}/resolve", tag = "groups", params(("id" = i64, Path)), security(("deploy_token" = [])), request_body(content = Option<ResolveBody>),
    responses((status = 200, body = GroupView), (status = 401, description = "No token or a wrong one", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn resolve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<GroupView>> {
    let group = authorised_group(&state, &headers, &id).await?;
    let body: ResolveBody =
        if body.iter().all(u8::is_ascii_whitespace) { ResolveBody::default() } else { super::parse_json(&body)? };
    let fixed = match body.fixed_in_commit.as_deref() {
        Some(c) => Some(
            state
                .releases
                .commit_named(group.project_id, c)
                .await
                .map_err(ApiError::Internal)?
                .map_err(|e| ApiError::Unprocessable { field: "fixed_in_commit".into(), reason: e.0 })?,
        ),
        None => None,
    };
    let environment = match body.environment.as_deref() {
        Some(e) => Some(
            crate::domain::Environment::parse(e)
                .map_err(|e| ApiError::Unprocessable { field: "environment".into(), reason: e.0 })?,
        ),
        None => None,
    };
    let request = if body.in_next_release {
        StatusRequest::ResolveInNextRelease { environment: environment.as_ref() }
    } else {
        StatusRequest::Resolve { fixed_in_commit: fixed.as_ref() }
    };
    change(&state, &group, request).await
}

#[utoipa::path(post, path = "/api/v1/groups/{id}/unresolve", tag = "groups", params(("id" = i64, Path)), security(("deploy_token" = [])), responses((status = 200, body = GroupView), (status = 401, description = "No token or a wrong one", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody)))]
pub(super) async fn unresolve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<GroupView>> {
    let group = authorised_group(&state, &headers, &id).await?;
    change(&state, &group, StatusRequest::Unresolve).await
}

#[utoipa::path(post, path = "/api/v1/groups/{id}/ignore", tag = "groups", params(("id" = i64, Path)), security(("deploy_token" = [])), responses((status = 200, body = GroupView), (status = 401, description = "No token or a wrong one", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody)))]
pub(super) async fn ignore(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<GroupView>> {
    let group = authorised_group(&state, &headers, &id).await?;
    change(&state, &group, StatusRequest::Ignore).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AssignBody {
    /// A GitHub login (a leading `@` is allowed), or `null` for nobody.
    assignee: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/groups/{id}/assign", tag = "groups", params(("id" = i64, Path)), security(("deploy_token" = [])), request_body(content = AssignBody),
    responses((status = 200, body = GroupView), (status = 401, description = "No token or a wrong one", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn assign(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<GroupView>> {
    let group = authorised_group(&state, &headers, &id).await?;
    let body: AssignBody = super::parse_json(&body)?;
    let login = match body.assignee.as_deref() {
        Some(l) => Some(
            crate::domain::GithubLogin::parse(l)
                .map_err(|e| ApiError::Unprocessable { field: "assignee".into(), reason: e.0 })?,
        ),
        None => None,
    };
    let now = chrono::Utc::now().timestamp_millis();
    state.groups.assign_to(&group, login.as_ref(), "through the API", false, now).await?;
    let g = state.groups.find(group.id).await?.ok_or_else(|| ApiError::NotFound(format!("no group `{id}`")))?;
    Ok(Json(view(&state, g)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct HistoryView {
    at: String,
    /// `first_seen`, `assigned`, `assigned_by_hand`, `resolved`, `resolved_by_commit`, `resolve_next_release`,
    /// `unresolved`, `ignored`, `regressed`, `issue_linked` or `fixed_by_commit`.
    kind: String,
    release: Option<String>,
    environment: Option<String>,
    deploy_id: Option<i64>,
    text: String,
}

#[utoipa::path(get, path = "/api/v1/groups/{id}/history", tag = "groups", params(("id" = i64, Path)), security(("deploy_token" = [])),
    responses((status = 200, body = Vec<HistoryView>), (status = 401, description = "No token or a wrong one", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody)))]
pub(super) async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<HistoryView>>> {
    let group = authorised_group(&state, &headers, &id).await?;
    let items = state.groups.timeline(&group).await?;
    Ok(Json(
        items
            .into_iter()
            .map(|i| HistoryView {
                at: rfc3339(i.at),
                kind: i.kind,
                release: i.release,
                environment: i.environment,
                deploy_id: i.deploy_id,
                text: i.text,
            })
            .collect(),
    ))
}

/// Applies a status change and answers with the group as it is now.
async fn change(state: &AppState, group: &Group, request: StatusRequest<'_>) -> ApiResult<Json<GroupView>> {
    state.groups.change_status(group, request, "through the API", chrono::Utc::now().timestamp_millis()).await?;
    let id = group.id;
    let g = state.groups.find(id).await?.ok_or_else(|| ApiError::NotFound(format!("no group `{id}`")))?;
    Ok(Json(view(state, g)))
}
