//! The command line: one `clap` struct per command, and what each command does.

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

use crate::app::{self, App, ServeOptions};
use crate::client::{self, DeployArgs};
use crate::config::{DataArgs, GitArgs, LimitArgs, Secret, WorkerArgs};
use crate::output::say;
use crate::projects;

/// shipwatch: what each deploy shipped, who should fix each new error, and which release broke what.
#[derive(Parser, Debug)]
#[command(name = "shipwatch", version)]
pub struct Cli {
    /// Log output: `text` for people, `json` for log collectors. Levels come from RUST_LOG (default info).
    #[arg(long, env = "SHIPWATCH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP API and the background worker (SQLite in ./shipwatch-data unless DATABASE_URL is set).
    Serve(ServeArgs),
    /// Run only the background worker (scale-out: several workers and `serve --no-worker` on one PostgreSQL).
    Worker(WorkerCommand),
    /// Apply database migrations and exit.
    Migrate(MigrateArgs),
    /// Create and list projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Tell a shipwatch server about a deploy (what the GitHub Action runs).
    Deploy(DeployArgs),
    /// The whole product on this machine, no setup: a demo repository, two deploys, errors, assignments, a
    /// regression, a release report, and the pages.
    Demo(crate::demo::DemoArgs),
    /// "git blame for a stack trace": map a trace's frames into a local repository at a revision, blame them, and
    /// name the suspect commit and the owner, with the reasons.
    Explain(crate::explain::ExplainArgs),
    /// Print the HTTP API's OpenAPI description (JSON; also served at /api/openapi.json).
    Openapi,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SHIPWATCH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Do not run the background worker in this process.
    #[arg(long, env = "SHIPWATCH_NO_WORKER")]
    pub no_worker: bool,
    /// Token for the admin API (creating and listing projects over HTTP). The admin API is off without it.
    #[arg(long, env = "SHIPWATCH_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Error events one project may send per minute to this process; more are answered 429 with Retry-After.
    #[arg(long, env = "SHIPWATCH_EVENTS_PER_MINUTE", default_value_t = 6000)]
    pub events_per_minute: u32,
    /// The secret of the repository's GitHub webhook (push, deployment_status, issues); webhooks are refused
    /// without it.
    #[arg(long, env = "SHIPWATCH_GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub github_webhook_secret: Option<Secret>,
    /// Token for the web pages (browsers: any user name, the token as password). Without it the pages are open
    /// only when listening on loopback.
    #[arg(long, env = "SHIPWATCH_READ_TOKEN", hide_env_values = true)]
    pub read_token: Option<Secret>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub git: GitArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

#[derive(Args, Debug)]
pub struct WorkerCommand {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub git: GitArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Subcommand, Debug)]
pub enum ProjectCommand {
    /// Create a project and print its id, its DSN for Sentry SDKs and its deploy token.
    Add(ProjectAddArgs),
    /// List projects with their DSNs and deploy tokens.
    List(ProjectListArgs),
}

#[derive(Args, Debug)]
pub struct ProjectAddArgs {
    /// Short name used in URLs and commands (lowercase letters, digits, - and _).
    #[arg(long)]
    pub name: String,
    /// The repository's clone URL (https://…; local paths only with --allow-local-repos).
    #[arg(long)]
    pub repo: String,
    /// The GitHub repository as owner/name; taken from a github.com clone URL when omitted.
    #[arg(long)]
    pub github: Option<String>,
    /// Accept a local path or file:// URL as the repository.
    #[arg(long, env = "SHIPWATCH_ALLOW_LOCAL_REPOS")]
    pub allow_local_repos: bool,
    /// The server's URL as SDKs reach it, for the DSN [default: http://127.0.0.1:8080, the server's default
    /// address; say so when the server listens elsewhere].
    #[arg(long, env = "SHIPWATCH_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Args, Debug)]
pub struct ProjectListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The server's URL as SDKs reach it, for the DSNs [default: http://127.0.0.1:8080].
    #[arg(long, env = "SHIPWATCH_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Runs the parsed command.
///
/// # Errors
/// Whatever the command failed with, phrased for the person at the terminal.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Worker(args) => {
            let app = App::build(&args.data, &args.git, &args.worker).await?;
            let shutdown = CancellationToken::new();
            app::cancel_on_signals(shutdown.clone());
            app.worker().run(shutdown).await;
            Ok(())
        }
        Command::Migrate(args) => {
            args.data.prepare()?;
            let store = crate::store::connect(&args.data.database_url())
                .await
                .with_context(|| format!("migrating the {} database", args.data.backend_name()))?;
            say(format!("{} database is up to date", store.backend()));
            Ok(())
        }
        Command::Project(ProjectCommand::Add(args)) => project_add(args).await,
        Command::Project(ProjectCommand::List(args)) => project_list(args).await,
        Command::Deploy(args) => client::run(&args).await.map(|_| ()),
        Command::Demo(args) => crate::demo::run(&args).await,
        Command::Explain(args) => {
            say(crate::explain::run(&args).await?);
            Ok(())
        }
        Command::Openapi => {
            say(crate::http::openapi::document().context("writing the OpenAPI document")?);
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut worker = args.worker.clone();
    worker.public_url.get_or_insert_with(|| format!("http://{}", args.listen));
    let app = App::build(&args.data, &args.git, &worker).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {} (is another server running there?)", args.listen))?;
    let public_url = args.worker.public_url.clone().unwrap_or_else(|| format!("http://{}", args.listen));
    if args.data.database_url.is_none() {
        eprintln!("shipwatch: data in {} (SQLite)", args.data.data_dir.display());
    }
    eprintln!("shipwatch: listening on {public_url} — create a project with `shipwatch project add`");
    let shutdown = CancellationToken::new();
    app::cancel_on_signals(shutdown.clone());
    app::serve(
        app,
        listener,
        ServeOptions {
            public_url,
            admin_token: args.admin_token,
            allow_local_repos: args.git.allow_local_repos,
            run_worker: !args.no_worker,
            events_per_minute: args.events_per_minute,
            webhook_secret: args.github_webhook_secret,
            read_token: args.read_token,
            limits: crate::http::server::Limits::from(&args.limits),
        },
        shutdown,
    )
    .await
}

async fn open_store(data: &DataArgs) -> anyhow::Result<crate::store::DynStore> {
    data.prepare()?;
    crate::store::connect(&data.database_url())
        .await
        .with_context(|| format!("opening the {} database", data.backend_name()))
}

async fn project_add(args: ProjectAddArgs) -> anyhow::Result<()> {
    let store = open_store(&args.data).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let p =
        projects::create(store.as_ref(), &args.name, &args.repo, args.github.as_deref(), args.allow_local_repos, now)
            .await?;
    say(format!("Created project `{}` (id {})", p.name, p.id));
    let public_url = args.public_url.as_deref().unwrap_or(DEFAULT_PUBLIC_URL);
    say(format!("  DSN:          {}", projects::dsn(public_url, &p)));
    say(format!("  Deploy token: {}", p.deploy_token));
    say(format!("  Repository:   {}", p.repo_url));
    if let Some(gh) = &p.github_repo {
        say(format!("  GitHub:       {gh}"));
    }
    if args.public_url.is_none() {
        eprintln!(
            "note: the DSN assumes the server is reachable at {DEFAULT_PUBLIC_URL} (its default address). If it \
             listens elsewhere, or SDKs reach it through another name, run `shipwatch project list --public-url URL` \
             (or set SHIPWATCH_PUBLIC_URL) for the right DSN: events sent to a wrong address are lost."
        );
    }
    Ok(())
}

/// Where `shipwatch serve` listens unless told otherwise, as SDKs on this machine reach it.
const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

async fn project_list(args: ProjectListArgs) -> anyhow::Result<()> {
    let store = open_store(&args.data).await?;
    let all = store.list_projects().await?;
    if args.json {
        let rows: Vec<serde_json::Value> = all
            .iter()
            .map(|p| {
                serde_json::json!({
                    "id": p.id, "name": p.name, "repo": p.repo_url, "github": p.github_repo,
                    "dsn": projects::dsn(args.public_url.as_deref().unwrap_or(DEFAULT_PUBLIC_URL), p), "deploy_token": p.deploy_token,
                })
            })
            .collect();
        say(serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if all.is_empty() {
        say("No projects yet: create one with `shipwatch project add --name NAME --repo URL`.");
        return Ok(());
    }
    for p in &all {
        say(format!("{:>4}  {}", p.id, p.name));
        say(format!("      repo:         {}", p.repo_url));
        say(format!(
            "      dsn:          {}",
            projects::dsn(args.public_url.as_deref().unwrap_or(DEFAULT_PUBLIC_URL), p)
        ));
        say(format!("      deploy token: {}", p.deploy_token));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn deploy_takes_a_release_version() {
        let cli = Cli::try_parse_from([
            "shipwatch",
            "deploy",
            "--server",
            "http://x",
            "--token",
            "t",
            "--project",
            "web",
            "--environment",
            "production",
            "--sha",
            "abc",
            "--version",
            "v1.2.3",
        ])
        .expect("parses");
        let Command::Deploy(args) = cli.command else { panic!("deploy expected") };
        assert_eq!(args.version.as_deref(), Some("v1.2.3"));
        assert_eq!(format!("{:?}", args.token), "Secret([redacted])");
    }
}
