//! Configuration shared by the commands: where data lives, which database, how git and the worker behave, and the
//! `Secret` wrapper that keeps credentials out of `Debug` output and logs.

use clap::Args;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A credential (token, database URL with a password). `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Where shipwatch keeps its state.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Directory for shipwatch's data: the SQLite database (when no DATABASE_URL is given) and the repository
    /// mirrors. Created if missing.
    #[arg(long, env = "SHIPWATCH_DATA_DIR", default_value = "./shipwatch-data")]
    pub data_dir: PathBuf,

    /// Database to use instead of the embedded SQLite file, e.g. postgres://user@host/shipwatch. Also
    /// `sqlite:PATH`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,

    /// Megabytes of accepted events the intake spool (`spool/` in the data directory) may hold while they wait
    /// for the database; past it intake answers 429 with Retry-After instead of acknowledging.
    #[arg(long, env = "SHIPWATCH_SPOOL_MAX_MB", default_value_t = 1024)]
    pub spool_max_mb: u64,

    /// Megabytes all intake requests together may hold while their bodies are read, decompressed and parsed; a
    /// request that would pass it is answered 429 with Retry-After at once, so no burst (a leaked DSN key sending
    /// decompression bombs) can take the process past it.
    #[arg(long, env = "SHIPWATCH_INTAKE_MEMORY_MB", default_value_t = 192)]
    pub intake_memory_mb: u64,
}

impl DataArgs {
    /// The database URL in force: the given one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => format!("sqlite:{}", self.data_dir.join("shipwatch.db").display()),
        }
    }

    /// Creates the data directory, so that the default SQLite file can be created in it.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn prepare(&self) -> anyhow::Result<()> {
        use anyhow::Context as _;
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating the data directory {}", self.data_dir.display()))
    }

    /// The backend named by the database URL, for messages that must not print the URL itself.
    pub fn backend_name(&self) -> &'static str {
        if self.database_url().starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    }
}

/// How the server reaches repositories.
#[derive(Args, Debug, Clone)]
pub struct GitArgs {
    /// Allow projects whose repository is a local path or file:// URL (tests, the demo). Off by default: a local
    /// path would let whoever creates projects read the server's disk.
    #[arg(long, env = "SHIPWATCH_ALLOW_LOCAL_REPOS")]
    pub allow_local_repos: bool,

    /// Token sent to https remotes when fetching (a GitHub token with read access to contents). Passed to git
    /// through its environment, never in a URL or on the command line.
    #[arg(long, env = "SHIPWATCH_GIT_TOKEN", hide_env_values = true)]
    pub git_token: Option<Secret>,

    /// Hosts the git token is sent to, over https only (comma-separated). Default: the GitHub host of
    /// --github-api-url (github.com, or the GitHub Enterprise server). Remotes on any other host never receive it.
    #[arg(long, env = "SHIPWATCH_GIT_TOKEN_HOSTS", value_delimiter = ',')]
    pub git_token_hosts: Vec<String>,

    /// The git executable to run (a name looked up on PATH, or a path).
    #[arg(long, env = "SHIPWATCH_GIT_PROGRAM", default_value = "git")]
    pub git_program: PathBuf,

    /// Seconds a single git command (a fetch, a log) may take before it is stopped and the job retried.
    #[arg(long, env = "SHIPWATCH_GIT_TIMEOUT", default_value_t = 600)]
    pub git_timeout: u64,

    /// GitHub token for API calls (looking up the GitHub account of a commit's author). Without it, logins come
    /// only from the project's mapping and noreply addresses.
    #[arg(long, env = "SHIPWATCH_GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<Secret>,

    /// A GitHub App to act as (recommended over a token): its App ID, from the App's settings page. Needs
    /// --github-app-key too; each repository's calls then use the App's installation there.
    #[arg(long, env = "SHIPWATCH_GITHUB_APP_ID", requires = "github_app_key", conflicts_with = "github_token")]
    pub github_app_id: Option<u64>,

    /// The GitHub App's private key: the path of the `.pem` file GitHub generated. Read at start-up; never logged.
    #[arg(long, env = "SHIPWATCH_GITHUB_APP_KEY", requires = "github_app_id")]
    pub github_app_key: Option<PathBuf>,

    /// GitHub's REST API root; set it for GitHub Enterprise Server (`https://github.example.com/api/v3`).
    #[arg(long, env = "SHIPWATCH_GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api_url: String,

    /// Accept an `http://` --github-api-url (a local fake GitHub in tests). Off by default: the token would travel
    /// unencrypted.
    #[arg(long, env = "SHIPWATCH_ALLOW_INSECURE_GITHUB_API")]
    pub allow_insecure_github_api: bool,

    /// Milliseconds a GitHub API call may take before it counts as unanswered (and is retried, after checking
    /// whether it took effect).
    #[arg(long, env = "SHIPWATCH_GITHUB_TIMEOUT_MS", default_value_t = 30_000)]
    pub github_timeout_ms: u64,

    /// Most commits of one deploy range stored with their details; the count is always exact.
    #[arg(long, env = "SHIPWATCH_MAX_RANGE_COMMITS", default_value_t = 20_000)]
    pub max_range_commits: usize,

    /// Blamed lines kept in memory (about 300 bytes each); who-wrote-it and GitHub-login answers are kept for a
    /// twentieth as many.
    #[arg(long, env = "SHIPWATCH_BLAME_CACHE_LINES", default_value_t = 200_000)]
    pub blame_cache_lines: usize,

    /// Repository file listings kept in memory (one per deployed commit; a large repository's is a few MB).
    #[arg(long, env = "SHIPWATCH_TREE_CACHE_TREES", default_value_t = 64)]
    pub tree_cache_trees: usize,
}

/// How the background worker claims and runs jobs.
#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// Seconds a claimed job stays reserved for its worker; renewed while it runs, so only a dead worker lets it
    /// lapse, and the job is then claimed again.
    #[arg(long, env = "SHIPWATCH_JOB_LEASE", default_value_t = 60)]
    pub job_lease: u64,

    /// Jobs one worker process runs at once (assignment, regressions, ranges, GitHub writes). Grouping runs beside
    /// them in batches of its own.
    #[arg(long, env = "SHIPWATCH_WORKER_JOBS", default_value_t = 4)]
    pub worker_jobs: usize,

    /// Milliseconds between looks for new jobs when the queue is empty.
    #[arg(long, env = "SHIPWATCH_POLL_INTERVAL_MS", default_value_t = 500)]
    pub poll_interval_ms: u64,

    /// The server's URL as clients reach it (used in DSNs, in links in responses and GitHub issues); defaults to
    /// http://<listen>.
    #[arg(long, env = "SHIPWATCH_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Least milliseconds between two writes to GitHub, across every process sharing the database.
    #[arg(long, env = "SHIPWATCH_GITHUB_WRITE_INTERVAL_MS", default_value_t = 1000)]
    pub github_write_interval_ms: u64,

    /// Days events are kept (a group's counts and its last event are kept regardless); 0 keeps them forever.
    #[arg(long, env = "SHIPWATCH_RETAIN_EVENTS_DAYS", default_value_t = 90)]
    pub retain_events_days: u64,

    /// Days finished jobs (done, or given up) are kept; 0 keeps them forever.
    #[arg(long, env = "SHIPWATCH_RETAIN_JOBS_DAYS", default_value_t = 14)]
    pub retain_jobs_days: u64,

    /// Days GitHub webhook deliveries are kept; 0 keeps them forever.
    #[arg(long, env = "SHIPWATCH_RETAIN_WEBHOOKS_DAYS", default_value_t = 30)]
    pub retain_webhooks_days: u64,

    /// Minutes between retention passes (deleting what is past its age, `git gc --auto` on mirrors).
    #[arg(long, env = "SHIPWATCH_RETENTION_INTERVAL_MINUTES", default_value_t = 60)]
    pub retention_interval_minutes: u64,
}

impl WorkerArgs {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.job_lease.max(3))
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(10))
    }

    pub fn retention_interval(&self) -> Duration {
        Duration::from_secs(self.retention_interval_minutes.max(1).saturating_mul(60))
    }
}

/// How many connections and requests the server takes, and how long it waits for them.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Open connections at most. From three quarters of it the oldest connections are asked to close (idle ones
    /// close at once); past it a new connection gets 503. Lowered to fit the process's descriptor limit.
    #[arg(long, env = "SHIPWATCH_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Requests handled at once; more are answered 503 with Retry-After: 1 at once instead of waiting.
    #[arg(long, env = "SHIPWATCH_MAX_REQUESTS_IN_FLIGHT", default_value_t = 512)]
    pub max_requests_in_flight: usize,
    /// Seconds a client has to send a request's headers (after connecting, or after the previous response on a
    /// kept-alive connection); the connection is closed after it.
    #[arg(long, env = "SHIPWATCH_HEADER_TIMEOUT", default_value_t = 30)]
    pub header_timeout: u64,
    /// Seconds a request may take from its headers to its response, its body's arrival included; 408 after it.
    #[arg(long, env = "SHIPWATCH_REQUEST_TIMEOUT", default_value_t = 60)]
    pub request_timeout: u64,
    /// Seconds in-flight requests get to finish after SIGTERM or Ctrl-C before their connections are dropped.
    #[arg(long, env = "SHIPWATCH_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret([redacted]) [redacted]");
        assert_eq!(s.expose(), "hunter2");
    }
}
