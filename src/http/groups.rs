//! Error groups over HTTP: a project's groups (filtered by status, release, environment) and one group with its
//! counts and latest event; plus a project's intake counters.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{page_limit, require_bearer, ApiError, ApiResult, AppState};
use crate::assign::service::GroupAssignment;
use crate::events::Event;
use crate::store::{Group, GroupCount, GroupFilter};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/projects/{project}/groups", get(list))
        .route("/api/v1/projects/{project}/stats", get(stats))
        .route("/api/v1/groups/{id}", get(show))
}

#[derive(Serialize)]
struct GroupView {
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
    }
}

#[derive(Deserialize)]
struct ListParams {
    status: Option<String>,
    release: Option<String>,
    environment: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Serialize)]
struct GroupPage {
    groups: Vec<GroupView>,
}

const STATUSES: [&str; 4] = ["unresolved", "resolved", "resolved_in_next_release", "ignored"];

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(project): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> ApiResult<Json<GroupPage>> {
    let project = state.authorised_project(&headers, &project).await?;
    let Query(p) = params.map_err(|e| ApiError::Unprocessable { field: "query".into(), reason: e.body_text() })?;
    if let Some(s) = p.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(ApiError::Unprocessable {
            field: "status".into(),
            reason: format!("`{s}` is not a status: use one of {}", STATUSES.join(", ")),
        });
    }
    let limit = page_limit(p.limit)?;
    let filter = GroupFilter {
        status: p.status,
        release: p.release,
        environment: p.environment,
        limit,
        offset: p.offset.unwrap_or(0).max(0),
    };
    let groups = state.store.list_groups(project.id, &filter).await?;
    Ok(Json(GroupPage { groups: groups.into_iter().map(|g| view(&state, g)).collect() }))
}

#[derive(Serialize)]
struct GroupDetail {
    project: String,
    group: GroupView,
    /// Events per release and environment.
    counts: Vec<GroupCount>,
    latest_event: Option<Event>,
    /// Frames mapped and blamed at the deployed commit, the suspect and the owner, with their reasons.
    assignment: Option<GroupAssignment>,
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<GroupDetail>> {
    require_bearer(&headers)?;
    let not_found = || ApiError::NotFound(format!("no group `{id}`"));
    let gid: i64 = id.parse().map_err(|_| not_found())?;
    let group = state.store.group(gid).await?.ok_or_else(not_found)?;
    let project = state.store.project_by_id(group.project_id).await?.ok_or_else(not_found)?;
    state.require_project_token(&headers, &project)?;
    let counts = state.store.group_counts(group.id).await?;
    let assignment = match group.assignment.as_deref() {
        Some(a) => Some(serde_json::from_str::<GroupAssignment>(a).map_err(anyhow::Error::from)?),
        None => None,
    };
    let latest_event = match group.last_event_id {
        Some(eid) => match state.store.event(eid).await? {
            Some(e) => {
                let mut event: Event = serde_json::from_str(&e.payload).map_err(anyhow::Error::from)?;
                crate::groups::normalise(&mut event);
                Some(event)
            }
            None => None,
        },
        None => None,
    };
    Ok(Json(GroupDetail { project: project.name, group: view(&state, group), counts, latest_event, assignment }))
}

#[derive(Serialize)]
struct Stats {
    events: i64,
    /// Envelope items accepted but not kept, by type (`transaction`, `session`, `client_report`, …).
    items: std::collections::BTreeMap<String, i64>,
}

async fn stats(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> ApiResult<Json<Stats>> {
    let project = state.authorised_project(&headers, &project).await?;
    Ok(Json(Stats {
        events: state.store.event_count(project.id).await?,
        items: state.store.item_counts(project.id).await?.into_iter().collect(),
    }))
}
