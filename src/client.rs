//! `shipwatch deploy`: the client the GitHub Action runs to tell a server about a deploy and fetch its report.

use anyhow::{anyhow, bail, Context as _};
use clap::Args;
use serde::Deserialize;
use serde_json::json;
use std::time::{Duration, Instant};

use crate::config::Secret;
use crate::releases::DeployStatus as Status;

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The shipwatch server, e.g. https://shipwatch.example.com.
    #[arg(long, env = "SHIPWATCH_SERVER")]
    pub server: String,
    /// The project's deploy token (printed by `shipwatch project add`).
    #[arg(long, env = "SHIPWATCH_DEPLOY_TOKEN", hide_env_values = true)]
    pub token: Secret,
    /// The project's name or numeric id.
    #[arg(long, env = "SHIPWATCH_PROJECT")]
    pub project: String,
    /// Where it was deployed, e.g. production.
    #[arg(long, env = "SHIPWATCH_ENVIRONMENT")]
    pub environment: String,
    /// The full commit id that was deployed.
    #[arg(long, env = "SHIPWATCH_SHA")]
    pub sha: String,
    /// The commit deployed before, when the server should not use the environment's previous deploy.
    #[arg(long, env = "SHIPWATCH_PREVIOUS_SHA")]
    pub previous_sha: Option<String>,
    /// The release name your SDKs report (`release`); defaults to the sha.
    #[arg(long = "version", env = "SHIPWATCH_VERSION", id = "release_version")]
    pub version: Option<String>,
    /// Who deployed (a GitHub login, a name).
    #[arg(long, env = "SHIPWATCH_DEPLOYER")]
    pub deployer: Option<String>,
    /// A link to the deploy (the CI run, say).
    #[arg(long, env = "SHIPWATCH_DEPLOY_URL")]
    pub url: Option<String>,
    /// Wait until the server has computed the commit range, then print the Markdown release report.
    #[arg(long)]
    pub wait: bool,
    /// Seconds to wait with --wait before giving up.
    #[arg(long, env = "SHIPWATCH_WAIT_TIMEOUT", default_value_t = 300)]
    pub wait_timeout: u64,
}

#[derive(Deserialize)]
struct Recorded {
    id: i64,
    created: bool,
    urls: Urls,
}

#[derive(Deserialize)]
struct Urls {
    deploy: String,
    report_markdown: String,
}

#[derive(Deserialize)]
struct DeployStatus {
    deploy: StatusView,
}

#[derive(Deserialize)]
struct StatusView {
    status: String,
    failure_reason: Option<String>,
    commit_count: Option<i64>,
    range_status: Option<String>,
}

/// What a finished `deploy` command reports back.
pub struct DeployResult {
    pub deploy_id: i64,
    pub report_url: String,
    pub commit_count: Option<i64>,
}

/// Records the deploy; with `--wait`, waits for its range and prints the report to standard output.
///
/// # Errors
/// When the server cannot be reached, refuses the deploy (with its reason), the deploy fails, or the wait times out.
pub async fn run(args: &DeployArgs) -> anyhow::Result<DeployResult> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("shipwatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    let server = args.server.trim_end_matches('/');
    check_server_url(server)?;
    let body = json!({
        "project": args.project,
        "environment": args.environment,
        "sha": args.sha,
        "previous_sha": args.previous_sha,
        "version": args.version,
        "deployer": args.deployer,
        "url": args.url,
    });
    let response = http
        .post(format!("{server}/api/v1/deploys"))
        .bearer_auth(args.token.expose())
        .json(&body)
        .send()
        .await
        .map_err(|e| unreachable(server, &e))?;
    let recorded: Recorded = decode(response, &args.project).await?;
    eprintln!(
        "shipwatch: {} deploy {} of {} to {}",
        if recorded.created { "recorded" } else { "already had" },
        recorded.id,
        args.project,
        args.environment
    );
    crate::output::say(&recorded.urls.report_markdown);
    let mut result =
        DeployResult { deploy_id: recorded.id, report_url: recorded.urls.report_markdown.clone(), commit_count: None };
    if !args.wait {
        return Ok(result);
    }
    let deadline = Instant::now() + Duration::from_secs(args.wait_timeout);
    let mut pause = Duration::from_millis(250);
    let status = loop {
        let response = http
            .get(&recorded.urls.deploy)
            .bearer_auth(args.token.expose())
            .send()
            .await
            .map_err(|e| unreachable(server, &e))?;
        let s: DeployStatus = decode(response, &args.project).await?;
        if Status::parse(&s.deploy.status) != Some(Status::Pending) {
            break s.deploy;
        }
        if Instant::now() >= deadline {
            let why = s.deploy.failure_reason.map(|r| format!(" (last problem: {r})")).unwrap_or_default();
            bail!("the server had not computed the commit range after {} s{why}", args.wait_timeout);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(3));
    };
    if Status::parse(&status.status) == Some(Status::Failed) {
        bail!("the deploy failed: {}", status.failure_reason.unwrap_or_else(|| "no reason given".into()));
    }
    eprintln!(
        "shipwatch: range {}, {} commit(s)",
        status.range_status.as_deref().unwrap_or("?"),
        status.commit_count.unwrap_or(0)
    );
    result.commit_count = status.commit_count;
    let response = http
        .get(&recorded.urls.report_markdown)
        .bearer_auth(args.token.expose())
        .send()
        .await
        .map_err(|e| unreachable(server, &e))?;
    if !response.status().is_success() {
        bail!("fetching the report failed with HTTP {}", response.status());
    }
    crate::output::say(response.text().await.context("reading the report")?);
    Ok(result)
}

/// `--server` must be an `http://` or `https://` URL; `127.0.0.1:8080` alone is a common slip that would otherwise
/// end in a bare "request failed".
fn check_server_url(server: &str) -> anyhow::Result<()> {
    match reqwest::Url::parse(server) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ if !server.contains("://") => {
            bail!("--server `{server}` has no scheme: use `http://{server}` (or `https://…`)")
        }
        _ => bail!("--server `{server}` is not an http:// or https:// URL"),
    }
}

fn unreachable(server: &str, e: &reqwest::Error) -> anyhow::Error {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    anyhow!("could not reach the shipwatch server at {server}: {what}")
}

/// Decodes a success, or turns the server's `{"detail": …}` into an error that says what to do.
async fn decode<T: serde::de::DeserializeOwned>(response: reqwest::Response, project: &str) -> anyhow::Result<T> {
    let status = response.status();
    if status.is_success() {
        return response.json::<T>().await.context("the server's answer was not what this client expects");
    }
    let detail = response
        .json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "no detail given".into());
    let hint = match status.as_u16() {
        401 => " (check the deploy token: SHIPWATCH_DEPLOY_TOKEN / --token)",
        404 => " (is the project name right? `shipwatch project list` on the server shows them)",
        422 => " (a field was refused)",
        _ => "",
    };
    bail!("the server refused the request for project `{project}`: HTTP {} {detail}{hint}", status.as_u16())
}

#[cfg(test)]
mod tests {
    use super::check_server_url;

    #[test]
    fn a_server_without_a_scheme_is_named_as_the_problem() {
        let e = check_server_url("127.0.0.1:8080").expect_err("no scheme").to_string();
        assert!(e.contains("use `http://127.0.0.1:8080`"), "{e}");
        assert!(check_server_url("ftp://x").is_err());
        assert!(check_server_url("http://127.0.0.1:8080").is_ok());
        assert!(check_server_url("https://shipwatch.example.com").is_ok());
    }
}
