//! Signing in as a GitHub App through the real octocrab client, against a local fake of GitHub's App endpoints: the
//! JWT is checked with the App's public key, each repository's installation is looked up once, and the installation
//! token is reused while it is fresh, replaced before it expires and replaced after GitHub refuses it; an
//! installation that no longer exists (the App installed again) is looked up again.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use shipwatch::config::Secret;
use shipwatch::github::{AppCredentials, GitHub, GitHubError, NewIssue, OctocrabGitHub};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const APP_ID: u64 = 4242;
const INSTALLATION: u64 = 77;
const PRIVATE_KEY: &str = include_str!("../fixtures/github-app/test-app-key.pem");
const PUBLIC_KEY: &str = include_str!("../fixtures/github-app/test-app-key.pub.pem");

#[derive(Default)]
struct AppState {
    /// Lifetimes (seconds) of the next installation tokens handed out; 3600 once these run out.
    lifetimes: Vec<i64>,
    /// Tokens handed out, in order; those in `revoked` are refused.
    tokens: Vec<String>,
    revoked: Vec<String>,
    installation_lookups: Vec<String>,
    /// The token each issue was created with.
    creates: Vec<String>,
    /// Requests whose JWT or token was refused.
    refused: Vec<String>,
    /// The App's installation on every repository: `INSTALLATION` until the App is installed again.
    installation: Option<u64>,
}

impl AppState {
    fn installation(&self) -> u64 {
        self.installation.unwrap_or(INSTALLATION)
    }
}

type Shared = Arc<Mutex<AppState>>;

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned()
}

/// GitHub's rules for an App JWT: RS256, signed by the App's key, `iss` the App id, at most 10 minutes long.
fn valid_jwt(headers: &HeaderMap) -> bool {
    #[derive(serde::Deserialize)]
    struct Claims {
        iss: Value,
        iat: i64,
        exp: i64,
    }
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).expect("public key");
    let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    match jsonwebtoken::decode::<Claims>(&bearer(headers), &key, &validation) {
        Ok(data) => {
            let c = data.claims;
            c.iss.to_string().trim_matches('"') == APP_ID.to_string() && c.exp - c.iat <= 600
        }
        Err(_) => false,
    }
}

fn refused(state: &Shared, what: &str) -> Response {
    state.lock().expect("state").refused.push(what.to_owned());
    (StatusCode::UNAUTHORIZED, Json(json!({ "message": "Bad credentials" }))).into_response()
}

async fn installation(State(s): State<Shared>, Path((o, r)): Path<(String, String)>, h: HeaderMap) -> Response {
    if !valid_jwt(&h) {
        return refused(&s, "installation look-up");
    }
    s.lock().expect("state").installation_lookups.push(format!("{o}/{r}"));
    if r == "not-installed" {
        return (StatusCode::NOT_FOUND, Json(json!({ "message": "Not Found" }))).into_response();
    }
    let id = s.lock().expect("state").installation();
    Json(json!({ "id": id, "app_id": APP_ID })).into_response()
}

async fn access_token(State(s): State<Shared>, Path(id): Path<u64>, h: HeaderMap) -> Response {
    if !valid_jwt(&h) {
        return refused(&s, "access token");
    }
    if id != s.lock().expect("state").installation() {
        // What GitHub answers for an installation that was removed.
        s.lock().expect("state").refused.push(format!("access token of installation {id}"));
        return (StatusCode::NOT_FOUND, Json(json!({ "message": "Not Found" }))).into_response();
    }
    let mut st = s.lock().expect("state");
    let lifetime = if st.lifetimes.is_empty() { 3600 } else { st.lifetimes.remove(0) };
    let token = format!("ghs_test{}", st.tokens.len() + 1);
    st.tokens.push(token.clone());
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(lifetime);
    let answer = json!({
        "token": token,
        "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "permissions": { "issues": "write", "contents": "read", "metadata": "read" },
        "repository_selection": "selected",
    });
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn create(State(s): State<Shared>, h: HeaderMap) -> Response {
    let token = bearer(&h);
    {
        let st = s.lock().expect("state");
        if !st.tokens.contains(&token) || st.revoked.contains(&token) {
            drop(st);
            return refused(&s, "create");
        }
    }
    let mut st = s.lock().expect("state");
    st.creates.push(token);
    (StatusCode::CREATED, Json(json!({ "number": st.creates.len() }))).into_response()
}

async fn start() -> (Shared, String) {
    let state = Shared::default();
    let router = Router::new()
        .route("/repos/{o}/{r}/installation", get(installation))
        .route("/app/installations/{id}/access_tokens", post(access_token))
        .route("/repos/{o}/{r}/issues", post(create))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (state, base)
}

fn issue(n: u32) -> NewIssue {
    NewIssue { title: format!("Error{n}: boom"), body: "body".into(), labels: vec![], assignees: vec![] }
}

fn client(api: &str) -> OctocrabGitHub {
    let app = AppCredentials { app_id: APP_ID, private_key_pem: Secret::new(PRIVATE_KEY) };
    OctocrabGitHub::app(api, &app, Duration::from_secs(10)).expect("app client")
}

#[tokio::test]
async fn an_app_gets_installation_tokens_with_its_jwt_and_refreshes_them_before_and_after_expiry() {
    let (state, api) = start().await;
    // The first token has 20 s left when it arrives: inside the 30 s margin, so it is used once and replaced
    // before the next call; the second lives an hour and is reused.
    state.lock().expect("state").lifetimes = vec![20];
    let github = client(&api);
    for n in 1..=4 {
        github.create_issue("acme/web", &issue(n)).await.expect("create");
    }
    {
        let st = state.lock().expect("state");
        assert_eq!(st.installation_lookups, ["acme/web"], "one installation look-up per repository");
        assert_eq!(st.tokens, ["ghs_test1", "ghs_test2"]);
        assert_eq!(st.creates, ["ghs_test1", "ghs_test2", "ghs_test2", "ghs_test2"]);
        assert!(st.refused.is_empty(), "{:?}", st.refused);
    }
    // Mirrors fetch with the same installation token (no new one while it is fresh).
    let fetch = github.installation_token("acme/web").await.expect("fetch token").expect("an App has one");
    assert_eq!(fetch.expose(), "ghs_test2");
    assert_eq!(state.lock().expect("state").tokens.len(), 2);
    // GitHub revokes the token early (the App's permissions changed, the token leaked): the call is refused, and
    // the next call signs in again with a new token.
    state.lock().expect("state").revoked.push("ghs_test2".into());
    let err = github.create_issue("acme/web", &issue(5)).await.expect_err("revoked token refused");
    assert!(matches!(err, GitHubError::Rejected { status: 401, .. }), "{err:?}");
    github.create_issue("acme/web", &issue(6)).await.expect("create with a new token");
    {
        let st = state.lock().expect("state");
        assert_eq!(st.tokens, ["ghs_test1", "ghs_test2", "ghs_test3"]);
        assert_eq!(st.creates.last().map(String::as_str), Some("ghs_test3"));
        assert_eq!(st.installation_lookups.len(), 1);
    }
    // A repository the App is not installed on says so.
    let err = github.create_issue("acme/not-installed", &issue(7)).await.expect_err("not installed");
    assert!(err.to_string().contains("GitHub App is not installed on acme/not-installed"), "{err}");
}

#[tokio::test]
async fn an_app_installed_again_on_a_repository_is_looked_up_again_when_the_old_installation_refuses_a_token() {
    let (state, api) = start().await;
    let github = client(&api);
    github.create_issue("acme/web", &issue(1)).await.expect("create");
    // The App is uninstalled and installed again: a new installation id, and the old one's token stops working.
    {
        let mut st = state.lock().expect("state");
        st.installation = Some(INSTALLATION + 1);
        let old = st.tokens.clone();
        st.revoked.extend(old);
    }
    // The call that finds the token revoked fails as any refused call does; the next one asks the old installation
    // for a token, is told it does not exist, looks the repository's installation up again and goes through (with a
    // token that has 20 s left: the next use asks for another).
    let err = github.create_issue("acme/web", &issue(2)).await.expect_err("revoked token refused");
    assert!(matches!(err, GitHubError::Rejected { status: 401, .. }), "{err:?}");
    state.lock().expect("state").lifetimes = vec![20];
    github.create_issue("acme/web", &issue(3)).await.expect("create through the new installation");
    {
        let st = state.lock().expect("state");
        assert_eq!(st.installation_lookups, ["acme/web", "acme/web"], "looked up again once");
        assert!(st.refused.contains(&format!("access token of installation {INSTALLATION}")), "{:?}", st.refused);
        assert_eq!(st.creates.len(), 2);
    }
    // Installed once more before a fetch: the fetch's token comes from the newest installation too.
    state.lock().expect("state").installation = Some(INSTALLATION + 2);
    let token = github.installation_token("acme/web").await.expect("fetch token").expect("an App has one");
    let st = state.lock().expect("state");
    assert_eq!(st.installation_lookups.len(), 3);
    assert_eq!(Some(token.expose()), st.tokens.last().map(String::as_str));
    assert!(st.refused.contains(&format!("access token of installation {}", INSTALLATION + 1)), "{:?}", st.refused);
}

#[tokio::test]
async fn a_wrong_key_is_refused_by_github_and_reported_as_such_and_a_bad_pem_at_start() {
    let (state, api) = start().await;
    // A valid RSA key, but not the App's: GitHub refuses its JWT.
    let other = include_str!("../fixtures/github-app/not-the-app-key.pem");
    let app = AppCredentials { app_id: APP_ID, private_key_pem: Secret::new(other) };
    let github = OctocrabGitHub::app(&api, &app, Duration::from_secs(10)).expect("client");
    let err = github.create_issue("acme/web", &issue(1)).await.expect_err("refused");
    assert!(matches!(err, GitHubError::Rejected { status: 401, .. }), "{err:?}");
    assert_eq!(state.lock().expect("state").refused, ["installation look-up"]);
    let bad = AppCredentials { app_id: APP_ID, private_key_pem: Secret::new("not a key") };
    let err = OctocrabGitHub::app(&api, &bad, Duration::from_secs(10)).err().expect("bad PEM refused");
    assert!(err.to_string().contains("not an RSA private key in PEM form"), "{err}");
    assert!(!err.to_string().contains("not a key"), "the key's text is never echoed: {err}");
}
