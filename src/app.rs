//! Assembling the application: the store, git mirrors, domain services, router and worker, and serving them on a
//! listener until a shutdown signal, so tests can run the real thing on port 0.

use anyhow::Context as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::assign::service::AssignService;
use crate::assign::Assigner;
use crate::assign::CacheSizes;
use crate::config::{DataArgs, GitArgs, Secret, WorkerArgs};
use crate::git::blame::GitCliBlame;
use crate::git::mirror::{FetchToken, Mirrors};
use crate::git::Git;
use crate::github::metered::MeteredGitHub;
use crate::github::{AppCredentials, GitHub, NoGitHub, OctocrabGitHub};
use crate::groups::Groups;
use crate::http::{self, AppState, HttpSettings};
use crate::ingest::forward::Spooler;
use crate::ingest::Ingest;
use crate::issues::{web_url, IssueSync};
use crate::metrics::Metrics;
use crate::probes::Probes;
use crate::projects::Projects;
use crate::regressions::Regressions;
use crate::releases::Releases;
use crate::retention::Retention;
use crate::store::{self, DynStore};
use crate::webhooks::Webhooks;
use crate::worker::{system_clock, Clock, Services, Worker};

/// Everything a shipwatch process runs on.
#[derive(Clone)]
pub struct App {
    pub store: DynStore,
    pub releases: Arc<Releases>,
    pub groups: Arc<Groups>,
    pub assign: Arc<AssignService>,
    pub regressions: Arc<Regressions>,
    pub webhooks: Arc<Webhooks>,
    pub issues: Arc<IssueSync>,
    pub wake: Arc<Notify>,
    pub worker_args: WorkerArgs,
    pub retention: Arc<Retention>,
    pub metrics: Arc<Metrics>,
    pub assigner: Arc<Assigner>,
    /// Intake's spool and its forwarder into the store.
    pub spooler: Arc<Spooler>,
    /// Bytes intake requests may hold at once while they are read and decoded.
    pub intake_memory: u64,
}

impl App {
    /// Opens the store (applying migrations) and sets up git mirrors under the data directory.
    ///
    /// # Errors
    /// When the data directory or the database cannot be opened.
    pub async fn build(data: &DataArgs, git: &GitArgs, worker_args: &WorkerArgs) -> anyhow::Result<App> {
        data.prepare()?;
        let store = store::connect(&data.database_url())
            .await
            .with_context(|| format!("opening the {} database", data.backend_name()))?;
        App::with_store(store, data, git, worker_args)
    }

    /// Builds on an already opened store (tests share one between several apps).
    ///
    /// # Errors
    /// When the GitHub client cannot be built from the configuration.
    pub fn with_store(
        store: DynStore,
        data: &DataArgs,
        git: &GitArgs,
        worker_args: &WorkerArgs,
    ) -> anyhow::Result<App> {
        check_github_api_url(&git.github_api_url, git.allow_insecure_github_api)?;
        let timeout = Duration::from_millis(git.github_timeout_ms.max(1));
        let (github, fetch_tokens): (Arc<dyn GitHub>, Option<Arc<dyn FetchToken>>) =
            match (&git.github_token, git.github_app_id, &git.github_app_key) {
                (_, Some(app_id), Some(key_file)) => {
                    let pem = std::fs::read_to_string(key_file).with_context(|| {
                        format!("reading the GitHub App private key {} (--github-app-key)", key_file.display())
                    })?;
                    let app = AppCredentials { app_id, private_key_pem: Secret::new(pem) };
                    let client = Arc::new(OctocrabGitHub::app(&git.github_api_url, &app, timeout)?);
                    (client.clone(), Some(Arc::new(AppFetchTokens(client))))
                }
                (Some(token), _, _) => {
                    (Arc::new(OctocrabGitHub::with_timeout(&git.github_api_url, token, timeout)?), None)
                }
                _ => (Arc::new(NoGitHub), None),
            };
        let writes = git.github_token.is_some() || git.github_app_id.is_some();
        Ok(App::with_github(store, data, git, worker_args, github, writes, fetch_tokens))
    }

    /// Builds with a given GitHub client (`shipwatch demo` uses an in-memory one as a dry run). `github_writes`
    /// says whether issues are written; `fetch_tokens`, when given, lends mirrors a GitHub App's tokens.
    pub fn with_github(
        store: DynStore,
        data: &DataArgs,
        git: &GitArgs,
        worker_args: &WorkerArgs,
        github: Arc<dyn GitHub>,
        github_writes: bool,
        fetch_tokens: Option<Arc<dyn FetchToken>>,
    ) -> App {
        let metrics = Arc::new(Metrics::new());
        let wake = Arc::new(Notify::new());
        let spooler = Arc::new(Spooler::new(
            data.data_dir.join("spool"),
            data.spool_max_mb.max(1).saturating_mul(1024 * 1024),
            store.clone(),
            wake.clone(),
            metrics.clone(),
        ));
        let github: Arc<dyn GitHub> = Arc::new(MeteredGitHub::new(github, metrics.clone()));
        let git_runner = Git::new(
            git.git_program.as_os_str(),
            Duration::from_secs(git.git_timeout.max(1)),
            git.git_token.clone(),
            git.allow_local_repos,
        )
        .with_token_hosts(token_hosts(git));
        let engine = Arc::new(GitCliBlame::new(git_runner.clone()));
        let assigner =
            Arc::new(Assigner::with_sizes(git_runner.clone(), github.clone(), engine, CacheSizes::from(git)));
        let mirrors = Mirrors::new(data.data_dir.join("mirrors"), git_runner);
        let mirrors = Arc::new(match fetch_tokens {
            Some(tokens) => mirrors.with_fetch_tokens(tokens),
            None => mirrors,
        });
        let assign = Arc::new(
            AssignService::new(store.clone(), mirrors.clone(), assigner.clone(), github_writes)
                .with_metrics(metrics.clone()),
        );
        let regressions = Arc::new(Regressions::new(store.clone(), mirrors.clone(), assign.clone(), github_writes));
        let public_url = worker_args.public_url.clone().unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let issues = Arc::new(
            IssueSync::new(
                store.clone(),
                github,
                public_url,
                web_url(&git.github_api_url),
                worker_args.github_write_interval_ms as i64,
            )
            .with_answer_timeout(git.github_timeout_ms as i64),
        );
        let releases = Arc::new(
            Releases::new(store.clone(), mirrors.clone(), git.max_range_commits.max(1), web_url(&git.github_api_url))
                .with_pull_lookups(github_writes),
        );
        let retention =
            Arc::new(Retention::new(store.clone(), mirrors.clone(), crate::retention::Ages::from(worker_args)));
        let groups = Arc::new(Groups::new(store.clone(), github_writes));
        let webhooks = Arc::new(Webhooks::new(store.clone(), releases.clone(), groups.clone(), mirrors));
        App {
            store,
            releases,
            groups,
            assign,
            regressions,
            webhooks,
            issues,
            wake,
            worker_args: worker_args.clone(),
            retention,
            metrics,
            assigner,
            spooler,
            intake_memory: data.intake_memory_mb.max(1).saturating_mul(1024 * 1024),
        }
    }

    pub fn router(&self, settings: HttpSettings) -> axum::Router {
        let ingest = Arc::new(
            Ingest::new(self.store.clone(), self.spooler.clone(), settings.events_per_minute, self.metrics.clone())
                .with_memory_budget(self.intake_memory),
        );
        http::router(AppState {
            projects: Arc::new(Projects::new(self.store.clone())),
            releases: self.releases.clone(),
            groups: self.groups.clone(),
            webhooks: self.webhooks.clone(),
            probes: Arc::new(Probes::new(self.store.clone(), ingest.clone(), self.spooler.clone())),
            ingest,
            metrics: self.metrics.clone(),
            assigner: self.assigner.clone(),
            settings: Arc::new(settings),
            wake: self.wake.clone(),
        })
    }

    /// The worker with the system clock and its periodic retention pass.
    pub fn worker(&self) -> Worker {
        self.worker_with_clock(system_clock())
            .with_retention(self.retention.clone(), self.worker_args.retention_interval())
            .with_jobs_at_once(self.worker_args.worker_jobs)
    }

    pub fn worker_with_clock(&self, clock: Clock) -> Worker {
        Worker::new(
            self.releases.clone(),
            self.groups.clone(),
            Services {
                assign: self.assign.clone(),
                regressions: self.regressions.clone(),
                webhooks: self.webhooks.clone(),
                issues: self.issues.clone(),
            },
            self.worker_args.lease(),
            self.worker_args.poll_interval(),
            self.wake.clone(),
            clock,
        )
        .with_metrics(self.metrics.clone())
    }
}

/// What `serve` needs beyond the app itself.
pub struct ServeOptions {
    pub public_url: String,
    pub admin_token: Option<Secret>,
    pub allow_local_repos: bool,
    pub run_worker: bool,
    /// Error events a project may send per minute (per process).
    pub events_per_minute: u32,
    pub webhook_secret: Option<Secret>,
    pub read_token: Option<Secret>,
    /// Connection and request limits and the shutdown grace period.
    pub limits: http::server::Limits,
}

/// Serves the API on `listener` (and runs the worker unless told not to) until `shutdown` is cancelled; then
/// in-flight requests finish (within the grace period of `options.limits`) and the worker stops after its current
/// job.
///
/// # Errors
/// When the server fails (the listener breaks).
pub async fn serve(
    app: App,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let router = app.router(HttpSettings {
        public_url: options.public_url,
        admin_token: options.admin_token,
        allow_local_repos: options.allow_local_repos,
        events_per_minute: options.events_per_minute,
        webhook_secret: options.webhook_secret,
        read_token: options.read_token,
        pages_open: listener.local_addr().is_ok_and(|a| a.ip().is_loopback()),
    });
    let worker = options.run_worker.then(|| tokio::spawn(app.worker().run(shutdown.clone())));
    // Intake's spool drains into the store whether or not this process also runs the worker.
    let forwarder = tokio::spawn(app.spooler.clone().run(shutdown.clone()));
    info!(addr = %listener.local_addr()?, backend = app.store.backend(), worker = worker.is_some(), "shipwatch listening");
    let limits = options.limits.fitted_to_descriptors();
    let router = http::server::limit_requests(router, &limits);
    http::server::serve(listener, router, limits, shutdown.clone()).await.context("HTTP server failed")?;
    // The server may also stop on its own error; make sure the worker does too.
    shutdown.cancel();
    forwarder.await.context("spool forwarder panicked")?;
    if let Some(worker) = worker {
        worker.await.context("worker task panicked")?;
    }
    Ok(())
}

/// Cancels `token` on Ctrl-C or SIGTERM.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {},
            () = term => {},
        }
        info!("shutting down: finishing in-flight requests and the current job");
        token.cancel();
    });
}

/// Mirrors fetch GitHub repositories with the GitHub App's installation tokens.
struct AppFetchTokens(Arc<OctocrabGitHub>);

#[async_trait::async_trait]
impl FetchToken for AppFetchTokens {
    async fn fetch_token(&self, repo: &str) -> anyhow::Result<Option<Secret>> {
        Ok(self.0.installation_token(repo).await?)
    }
}

/// The hosts the git token may go to: those configured, else the GitHub host of the API URL.
fn token_hosts(git: &GitArgs) -> Vec<String> {
    if !git.git_token_hosts.is_empty() {
        return git.git_token_hosts.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
    }
    let web = web_url(&git.github_api_url);
    let host = web.split("://").nth(1).unwrap_or_default().split('/').next().unwrap_or_default();
    vec![host.to_ascii_lowercase()]
}

/// The GitHub API URL must be https (the token travels with every call) unless explicitly allowed.
fn check_github_api_url(url: &str, allow_insecure: bool) -> anyhow::Result<()> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") || (allow_insecure && lower.starts_with("http://")) {
        return Ok(());
    }
    if lower.starts_with("http://") {
        anyhow::bail!(
            "--github-api-url {url} is plain http: the GitHub token would travel unencrypted. Use https, or pass \
             --allow-insecure-github-api for a local fake GitHub"
        );
    }
    anyhow::bail!("--github-api-url must be an https:// URL, not {url}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_github_api_is_https_unless_allowed() {
        assert!(check_github_api_url("https://api.github.com", false).is_ok());
        assert!(check_github_api_url("https://ghe.example.com/api/v3", false).is_ok());
        let e = check_github_api_url("http://127.0.0.1:9000", false).expect_err("http refused");
        assert!(e.to_string().contains("--allow-insecure-github-api"), "{e}");
        assert!(check_github_api_url("http://127.0.0.1:9000", true).is_ok());
        assert!(check_github_api_url("ftp://x", true).is_err());
    }

    #[test]
    fn the_git_token_goes_to_the_github_host_of_the_api_unless_hosts_are_named() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            git: GitArgs,
        }
        let mut git = <Cli as clap::Parser>::parse_from(["shipwatch"]).git;
        assert_eq!(token_hosts(&git), ["github.com"]);
        git.github_api_url = "https://GHE.example.com/api/v3".into();
        assert_eq!(token_hosts(&git), ["ghe.example.com"]);
        git.git_token_hosts = vec!["github.com".into(), " git.example.org ".into()];
        assert_eq!(token_hosts(&git), ["github.com", "git.example.org"]);
    }
}
