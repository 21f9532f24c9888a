//! The machine-readable description of the HTTP API (OpenAPI 3.1), generated from the handlers' annotations and the
//! types they take and give, served at `/api/openapi.json` and printed by `shipwatch openapi`.

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::AppState;

/// Every error the API answers with.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub detail: String,
    /// With `422`: the field (a JSON path) that is wrong.
    pub field: Option<String>,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // Handlers of different resources share names (`list`, `show`): operation ids are `<tag>_<handler>`.
        for item in openapi.paths.paths.values_mut() {
            for op in
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
            {
                if let (Some(tag), Some(id)) = (op.tags.as_ref().and_then(|t| t.first()), op.operation_id.as_ref()) {
                    op.operation_id = Some(format!("{tag}_{id}"));
                }
            }
        }
        // Sentry SDKs post with and without the trailing slash: the same operations under both paths.
        for path in ["/api/{project_id}/envelope/", "/api/{project_id}/store/"] {
            if let Some(mut item) = openapi.paths.paths.get(path).cloned() {
                if let Some(op) = item.post.as_mut() {
                    op.operation_id = op.operation_id.as_ref().map(|id| format!("{id}_without_slash"));
                }
                openapi.paths.paths.insert(path.trim_end_matches('/').to_owned(), item);
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(what)).build())
        };
        components.add_security_scheme("admin_token", bearer("SHIPWATCH_ADMIN_TOKEN"));
        components.add_security_scheme("deploy_token", bearer("The project's deploy token (or the admin token)"));
        components.add_security_scheme(
            "ingest_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Sentry-Auth",
                "`Sentry sentry_key=<the DSN's key>`, or `Authorization: Bearer <key>`, or `?sentry_key=`",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "shipwatch", description = "Releases, errors and who should fix them. See docs/api.md."),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        openapi_json,
        super::projects::create,
        super::projects::list,
        super::projects::show,
        super::projects::get_settings,
        super::projects::put_settings,
        super::deploys::create,
        super::deploys::show,
        super::deploys::report,
        super::deploys::list,
        super::groups::list,
        super::groups::stats,
        super::groups::show,
        super::groups::resolve,
        super::groups::unresolve,
        super::groups::ignore,
        super::groups::assign,
        super::groups::history,
        super::ingest::envelope,
        super::ingest::store,
        super::ingest::native,
        super::webhooks::github,
        super::pages::home,
        super::pages::projects,
        super::pages::project_page,
        super::pages::errors_page,
        super::pages::deploy_page,
        super::pages::group_page,
        super::pages::group_action,
    ),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// This description, as JSON.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub(super) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(openapi_json))
}

/// The document as pretty JSON.
///
/// # Errors
/// Never in practice (serialising a document built in code).
pub fn document() -> Result<String, serde_json::Error> {
    ApiDoc::openapi().to_pretty_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every `.route("path", method(handler)…)` in the HTTP modules, as (METHOD, path).
    fn routes_in_source() -> BTreeSet<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
        let route = regex::Regex::new(r#"\.route\(\s*"([^"]+)",\s*"#).expect("regex");
        let method = regex::Regex::new(r"\b(get|post|put|delete|patch)\(").expect("regex");
        let mut found = BTreeSet::new();
        for entry in std::fs::read_dir(&dir).expect("src/http") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("source");
            // Routes in code, not in comments.
            let starts: Vec<_> = route
                .captures_iter(&text)
                .filter(|c| {
                    let at = c.get(0).map_or(0, |m| m.start());
                    !text[..at].rsplit('\n').next().unwrap_or_default().contains("//")
                })
                .collect();
            for (i, c) in starts.iter().enumerate() {
                let whole = c.get(0).expect("match");
                let end = starts.get(i + 1).map_or(text.len(), |n| n.get(0).expect("match").start());
                // The method router is what follows the path, up to the next route (or the end of the chain).
                let rest = &text[whole.end()..end];
                let rest = rest.split("\n}").next().unwrap_or(rest);
                for m in method.captures_iter(rest) {
                    found.insert((m[1].to_uppercase(), c[1].to_owned()));
                }
            }
        }
        found
    }

    #[test]
    fn the_document_describes_every_route_the_router_serves() {
        let doc = ApiDoc::openapi();
        let mut described = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            for (m, op) in [("GET", &item.get), ("PUT", &item.put), ("POST", &item.post), ("DELETE", &item.delete)] {
                if op.is_some() {
                    described.insert((m.to_owned(), path.clone()));
                }
            }
        }
        let served = routes_in_source();
        assert!(served.len() >= 25, "the source scan found the routes: {served:?}");
        let missing: Vec<_> = served.difference(&described).collect();
        assert!(missing.is_empty(), "routes without a description in /api/openapi.json: {missing:?}");
        let stale: Vec<_> = described.difference(&served).collect();
        assert!(stale.is_empty(), "described but not served: {stale:?}");
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = ApiDoc::openapi();
        let mut ids = BTreeSet::new();
        for item in doc.paths.paths.values() {
            for op in [&item.get, &item.put, &item.post, &item.delete].into_iter().flatten() {
                let id = op.operation_id.clone().expect("an operation id");
                assert!(ids.insert(id.clone()), "{id} twice");
            }
        }
    }
}
