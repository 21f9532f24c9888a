//! Everything shipwatch asks of git: running the `git` CLI safely, per-project mirrors, and commit ranges.
//!
//! The CLI rather than libgit2 for fetch and history walks: it is git's reference behaviour, and measured faster on
//! large histories. Objects by id are read in process where the store is a plain one ([`store`]), since starting a
//! process costs more than most such reads. Every call uses an argument list (never a shell), `--end-of-options`
//! before anything that came from outside, a timeout, and credentials only through the environment.

pub mod blame;
pub mod mirror;
pub mod objects;
pub mod range;
pub mod store;
pub mod tree;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Command;

use crate::config::Secret;

/// glibc's malloc settings for git's processes (see [`Git::command`]): the free top of the heap is kept up to 256 MiB
/// rather than 128 KiB, with 1 MiB asked for at a time.
const GIT_MALLOC_TUNABLES: &str = "glibc.malloc.trim_threshold=268435456:glibc.malloc.top_pad=1048576";

tokio::task_local! {
    /// The tally of git processes started on behalf of one piece of work (see [`counting_processes`]).
    static TALLY: Arc<AtomicU64>;
}

/// Runs `work`, and returns with its output how many git processes it started, in its own task or in tasks it
/// spawned through [`with_tally`].
pub async fn counting_processes<F: std::future::Future>(work: F) -> (F::Output, u64) {
    let tally = Arc::new(AtomicU64::new(0));
    let out = TALLY.scope(tally.clone(), work).await;
    (out, tally.load(Ordering::Relaxed))
}

/// Git processes started so far by the work [`counting_processes`] is counting in this task (0 outside one).
pub fn processes_counted() -> u64 {
    TALLY.try_with(|t| t.load(Ordering::Relaxed)).unwrap_or(0)
}

/// `task` counting into the tally of the calling task, if any: for a task it spawns to do part of its work.
pub fn with_tally<F: std::future::Future>(task: F) -> impl std::future::Future<Output = F::Output> {
    let tally = TALLY.try_with(Arc::clone).ok();
    async move {
        match tally {
            Some(t) => TALLY.scope(t, task).await,
            None => task.await,
        }
    }
}

/// How shipwatch runs `git`.
#[derive(Clone, Debug)]
pub struct Git {
    program: OsString,
    timeout: Duration,
    token: Option<Secret>,
    /// The hosts the token is sent to (`https://<host>/…` only).
    token_hosts: Vec<String>,
    allow_local: bool,
    /// git processes started by this `Git` and its clones.
    started: Arc<AtomicU64>,
}

/// The host a token goes to unless the configuration names others.
pub const DEFAULT_TOKEN_HOST: &str = "github.com";

/// Whether `host` (with an optional `:port`) is a plain host name git can scope configuration to.
pub fn valid_token_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')
        && !host.starts_with(['.', '-', ':'])
}

/// What a finished `git` process gave back.
pub struct GitOutput {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Git {
    /// `token`, when set, is sent as a basic-auth header (GitHub's `x-access-token` form) to `https://github.com/`
    /// remotes only (see [`Git::with_token_hosts`]). `allow_local` permits fetching from local paths and `file://`
    /// URLs.
    pub fn new(program: impl Into<OsString>, timeout: Duration, token: Option<Secret>, allow_local: bool) -> Git {
        Git {
            program: program.into(),
            timeout,
            token,
            token_hosts: vec![DEFAULT_TOKEN_HOST.into()],
            allow_local,
            started: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Sends the token to `https://<host>/` remotes of these hosts only (a GitHub Enterprise server, a host a
    /// project names); never to any other remote. Names that are not plain host names are left out.
    pub fn with_token_hosts(mut self, hosts: impl IntoIterator<Item = String>) -> Git {
        self.token_hosts = hosts.into_iter().filter(|h| valid_token_host(h)).collect();
        self
    }

    /// The same runner with `token` for the token hosts, unless it has a token already (a configured git token
    /// wins over a GitHub App's).
    pub fn with_token(&self, token: Secret) -> Git {
        let mut git = self.clone();
        if git.token.is_none() {
            git.token = Some(token);
        }
        git
    }

    /// `owner/name` when `url` is an https remote on one of the token hosts (`https://host/owner/name(.git)`)
    /// and this runner has no token of its own: the repository a per-repository token would be asked for.
    pub fn token_repo(&self, url: &str) -> Option<String> {
        if self.token.is_some() {
            return None;
        }
        let rest = url.strip_prefix("https://")?;
        let (host, path) = rest.split_once('/')?;
        if !self.token_hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return None;
        }
        let path = path.trim_end_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        let (owner, name) = path.split_once('/')?;
        let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        (plain(owner) && plain(name)).then(|| format!("{owner}/{name}"))
    }

    pub fn allow_local(&self) -> bool {
        self.allow_local
    }

    /// How many git processes this `Git` and its clones have started.
    pub fn processes_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    fn command(&self, repo: Option<&Path>) -> Command {
        // Every command built here is started right away.
        self.started.fetch_add(1, Ordering::Relaxed);
        let _ = TALLY.try_with(|t| t.fetch_add(1, Ordering::Relaxed));
        let mut cmd = Command::new(&self.program);
        if let Some(repo) = repo {
            cmd.arg("-C").arg(repo);
        }
        // Only the transports we mean to use: never `ext::` (runs commands) and no local reads unless allowed.
        cmd.args(["-c", "protocol.allow=never", "-c", "protocol.https.allow=always"]);
        if self.allow_local {
            cmd.args(["-c", "protocol.file.allow=always"]);
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if std::env::var_os("GLIBC_TUNABLES").is_none() {
            // glibc's malloc gives memory back to the system whenever 128 KiB at the top of the heap are free, and
            // takes it again at the next allocation: `git blame` does that hundreds of times as it inflates each
            // version of a file, and a third of its time was the kernel's, mostly page faults. Keeping what it freed
            // (for the life of the process) halves the faults and makes a long blame 5–20 % faster. An operator's
            // own setting is left alone.
            cmd.env("GLIBC_TUNABLES", GIT_MALLOC_TUNABLES);
        }
        if let Some(token) = &self.token {
            // Through the environment, not the command line (visible in `ps`) and never in a URL; and scoped by
            // git's URL matching (`http.<url>.extraHeader`) to the token's own hosts over https, so a project
            // whose repository lives elsewhere never receives it.
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{}", token.expose()));
            cmd.env("GIT_CONFIG_COUNT", self.token_hosts.len().to_string());
            for (i, host) in self.token_hosts.iter().enumerate() {
                cmd.env(format!("GIT_CONFIG_KEY_{i}"), format!("http.https://{host}/.extraHeader"))
                    .env(format!("GIT_CONFIG_VALUE_{i}"), format!("Authorization: Basic {basic}"));
            }
        }
        cmd
    }

    /// How long one git call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Starts git with `args` in `repo` with its standard input and output as pipes, for a process that answers
    /// requests as they come (it is killed when dropped).
    ///
    /// # Errors
    /// When git cannot be started.
    pub fn spawn_piped<I, S>(&self, repo: &Path, args: I) -> anyhow::Result<tokio::process::Child>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = self.command(Some(repo));
        cmd.args(args).stdin(Stdio::piped()).stderr(Stdio::null());
        cmd.spawn().context("could not start `git`: is it installed and on PATH?")
    }

    /// Runs git with `args` in `repo` and returns its output whatever the exit code.
    ///
    /// # Errors
    /// When git cannot be started or does not finish within the timeout (it is then killed).
    pub async fn output<I, S>(&self, repo: Option<&Path>, args: I) -> anyhow::Result<GitOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = self.command(repo);
        cmd.args(args);
        let child = cmd.spawn().context("could not start `git`: is it installed and on PATH?")?;
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(out) => out.context("waiting for git")?,
            Err(_) => bail!("git did not finish within {} s and was stopped", self.timeout.as_secs()),
        };
        Ok(GitOutput {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }

    /// Runs git and insists on success, returning standard output.
    ///
    /// # Errors
    /// When git fails, with the end of what it printed on standard error.
    pub async fn run<I, S>(&self, repo: Option<&Path>, what: &str, args: I) -> anyhow::Result<Vec<u8>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let out = self.output(repo, args).await?;
        if out.code != Some(0) {
            bail!("{what} failed: {}", last_lines(&out.stderr, 5));
        }
        Ok(out.stdout)
    }
}

/// A throw-away repository for tests: runs git in it and commits files.
#[cfg(test)]
pub(crate) struct ScratchRepo {
    pub dir: tempfile::TempDir,
}

#[cfg(test)]
impl ScratchRepo {
    pub fn new() -> ScratchRepo {
        let repo = ScratchRepo { dir: tempfile::tempdir().expect("a temporary directory") };
        repo.run(&["init", "-q"]);
        repo
    }

    /// Runs git and returns its trimmed output, insisting on success.
    pub fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("git").arg("-C").arg(self.dir.path()).args(args).output().expect("git");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Writes (`Some`) or deletes (`None`) files, commits everything and returns the commit.
    pub fn commit(&self, files: &[(&str, Option<&str>)]) -> String {
        for (path, text) in files {
            let at = self.dir.path().join(path);
            match text {
                Some(t) => {
                    std::fs::create_dir_all(at.parent().expect("a file in a directory")).expect("a directory");
                    std::fs::write(&at, t).expect("a file");
                }
                None => std::fs::remove_file(&at).expect("a file to delete"),
            }
        }
        self.run(&["add", "-A"]);
        self.run(&["-c", "user.name=A", "-c", "user.email=a@x", "commit", "-qm", "c"]);
        self.run(&["rev-parse", "HEAD"])
    }
}

/// The last `n` lines of git's complaint: the part that says what went wrong.
fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return "git gave no reason".into();
    }
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What git itself would send to `url` as an extra header, asked of git with the environment shipwatch gives it.
    async fn header_for(git: &Git, url: &str) -> Option<String> {
        let out = git.output(None, ["config", "--get-urlmatch", "http.extraHeader", url]).await.expect("git runs");
        (out.code == Some(0)).then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    #[tokio::test]
    async fn a_tally_counts_the_processes_of_its_work_and_of_the_tasks_it_hands_on_to() {
        let git = Git::new("git", Duration::from_secs(30), None, false);
        let version = || async { git.output(None, ["--version"]).await.expect("git runs") };
        let ((), started) = counting_processes(async {
            version().await;
            assert_eq!(processes_counted(), 1, "counted as it goes");
            let g = git.clone();
            tokio::spawn(with_tally(async move {
                g.output(None, ["--version"]).await.expect("git runs");
            }))
            .await
            .expect("joined");
            // A task spawned without the tally counts for nobody's work.
            let g = git.clone();
            tokio::spawn(async move { g.output(None, ["--version"]).await.expect("git runs") }).await.expect("joined");
        })
        .await;
        assert_eq!(started, 2);
        // Outside any tally: nothing is counted, and the Git's own total still sees every process.
        version().await;
        assert_eq!(processes_counted(), 0);
        assert_eq!(git.processes_started(), 4);
        let (_, none) = counting_processes(async {}).await;
        assert_eq!(none, 0);
    }

    #[tokio::test]
    async fn the_token_goes_to_its_own_hosts_over_https_only() {
        let token = Some(Secret::new("ghp_secret"));
        let git = Git::new("git", Duration::from_secs(30), token.clone(), false);
        let header = header_for(&git, "https://github.com/acme/web.git").await.expect("github.com gets the token");
        assert!(header.starts_with("Authorization: Basic "), "{header}");
        // Another host, plain http to the right host, a look-alike host: nothing.
        for url in [
            "https://gitlab.com/acme/web.git",
            "http://github.com/acme/web.git",
            "https://github.com.evil.example/acme/web.git",
            "https://evil.example/github.com/acme/web.git",
        ] {
            assert_eq!(header_for(&git, url).await, None, "{url}");
        }
        // A GitHub Enterprise server named by the configuration, and nothing else then.
        let ghes = git.clone().with_token_hosts(["github.example.com".to_owned(), "bad host/".to_owned()]);
        assert!(header_for(&ghes, "https://github.example.com/acme/web.git").await.is_some());
        assert_eq!(header_for(&ghes, "https://github.com/acme/web.git").await, None);
        // Without a token nothing is configured.
        let none = Git::new("git", Duration::from_secs(30), None, false);
        assert_eq!(header_for(&none, "https://github.com/acme/web.git").await, None);
    }

    #[test]
    fn a_per_repository_token_is_asked_for_github_https_remotes_only_and_never_over_a_configured_one() {
        let git = Git::new("git", Duration::from_secs(30), None, false);
        assert_eq!(git.token_repo("https://github.com/acme/web.git").as_deref(), Some("acme/web"));
        assert_eq!(git.token_repo("https://GitHub.com/acme/web").as_deref(), Some("acme/web"));
        for other in [
            "http://github.com/acme/web.git",
            "https://evil.example/acme/web.git",
            "https://github.com.evil.example/acme/web",
            "git@github.com:acme/web.git",
            "https://github.com/acme",
            "https://github.com/acme/web/extra",
        ] {
            assert_eq!(git.token_repo(other), None, "{other}");
        }
        let configured = Git::new("git", Duration::from_secs(30), Some(Secret::new("ghp_fixed")), false);
        assert_eq!(configured.token_repo("https://github.com/acme/web.git"), None);
        let with = configured.with_token(Secret::new("ghs_app"));
        assert_eq!(with.token.as_ref().map(Secret::expose), Some("ghp_fixed"));
        assert_eq!(git.with_token(Secret::new("ghs_app")).token.as_ref().map(Secret::expose), Some("ghs_app"));
    }

    #[tokio::test]
    async fn git_runs_with_malloc_settings_that_keep_freed_memory_unless_the_operator_has_some() {
        if std::env::var_os("GLIBC_TUNABLES").is_some() {
            // Past the test runner's capture, so the run's output shows the skip.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"SKIPPED: GLIBC_TUNABLES is set for this test run, and git gets that instead\n",
            );
            return;
        }
        // A stand-in for git that prints the environment it was given. Written by a child process: a file this
        // process had open for writing could be held open by a fork of another test's git spawn, and running it then
        // fails with "Text file busy".
        let dir = tempfile::tempdir().expect("temp dir");
        let program = dir.path().join("git");
        let wrote = std::process::Command::new("sh")
            .args(["-c", "printf '#!/bin/sh\\nenv\\n' > \"$1\" && chmod 755 \"$1\"", "sh"])
            .arg(&program)
            .status()
            .expect("sh runs");
        assert!(wrote.success());
        let git = Git::new(program.as_os_str(), Duration::from_secs(30), None, false);
        let out = git.output(None, ["version"]).await.expect("runs");
        let env = String::from_utf8_lossy(&out.stdout);
        assert!(env.lines().any(|l| l == format!("GLIBC_TUNABLES={GIT_MALLOC_TUNABLES}")), "{env}");
        assert!(GIT_MALLOC_TUNABLES.contains("glibc.malloc.trim_threshold="));
    }

    #[test]
    fn token_hosts_are_plain_host_names() {
        for good in ["github.com", "github.example.com", "ghe.internal:8443"] {
            assert!(valid_token_host(good), "{good}");
        }
        for bad in ["", "a b", "x/y", "*.github.com", ".github.com", "https://github.com"] {
            assert!(!valid_token_host(bad), "{bad}");
        }
    }
}
