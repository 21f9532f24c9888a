//! Everything shipwatch asks of git: running the `git` CLI safely, per-project mirrors, and commit ranges.
//!
//! The CLI rather than libgit2 for fetch and history walks: it is git's reference behaviour, and measured faster on
//! large histories. Every call uses an argument list (never a shell), `--end-of-options` before anything that came
//! from outside, a timeout, and credentials only through the environment.

pub mod blame;
pub mod mirror;
pub mod range;
pub mod tree;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

use crate::config::Secret;

/// How shipwatch runs `git`.
#[derive(Clone, Debug)]
pub struct Git {
    program: OsString,
    timeout: Duration,
    token: Option<Secret>,
    allow_local: bool,
}

/// What a finished `git` process gave back.
pub struct GitOutput {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Git {
    /// `token`, when set, is sent to https remotes as a basic-auth header (GitHub's `x-access-token` form).
    /// `allow_local` permits fetching from local paths and `file://` URLs.
    pub fn new(program: impl Into<OsString>, timeout: Duration, token: Option<Secret>, allow_local: bool) -> Git {
        Git { program: program.into(), timeout, token, allow_local }
    }

    pub fn allow_local(&self) -> bool {
        self.allow_local
    }

    fn command(&self, repo: Option<&Path>) -> Command {
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
        if let Some(token) = &self.token {
            // Through the environment, not the command line (visible in `ps`) and never in a URL.
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{}", token.expose()));
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env("GIT_CONFIG_VALUE_0", format!("Authorization: Basic {basic}"));
        }
        cmd
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

    /// Runs git with `args` in `repo`, writing `input` to its standard input, and insists on success.
    ///
    /// # Errors
    /// When git cannot be started, fails, or does not finish within the timeout.
    pub async fn run_with_input<I, S>(
        &self,
        repo: Option<&Path>,
        what: &str,
        args: I,
        input: Vec<u8>,
    ) -> anyhow::Result<Vec<u8>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        use tokio::io::AsyncWriteExt as _;
        let mut cmd = self.command(repo);
        cmd.args(args).stdin(Stdio::piped());
        let mut child = cmd.spawn().context("could not start `git`: is it installed and on PATH?")?;
        let mut stdin = child.stdin.take().context("git's standard input")?;
        // Write while git reads and answers, so neither side blocks on a full pipe.
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(out) => out.context("waiting for git")?,
            Err(_) => bail!("git did not finish within {} s and was stopped", self.timeout.as_secs()),
        };
        let _ = writer.await;
        if !out.status.success() {
            bail!("{what} failed: {}", last_lines(&String::from_utf8_lossy(&out.stderr), 5));
        }
        Ok(out.stdout)
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

/// The last `n` lines of git's complaint: the part that says what went wrong.
fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return "git gave no reason".into();
    }
    lines[lines.len().saturating_sub(n)..].join(" / ")
}
