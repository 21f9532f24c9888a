//! `shipwatch explain`: "git blame for a stack trace", offline — parse a trace (any supported language) or a Sentry
//! event, map its frames into a local repository at a revision, blame them there, and say who and why.

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::assign::paths::CodeMapping;
use crate::assign::{
    range_commits, Assigner, Assignment, DeployContext, FrameInput, FrameResult, Owner, Settings, Suspect,
};
use crate::git::Git;
use crate::github::NoGitHub;
use crate::stacktrace;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The repository: a bare repository or a work tree.
    #[arg(long)]
    pub repo: PathBuf,
    /// The revision the code ran at (a sha, tag or branch).
    #[arg(long, default_value = "HEAD")]
    pub rev: String,
    /// Output for people (`text`) or programs (`json`).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// `STACK_PREFIX=REPO_PREFIX`: frames whose path starts with the first are in the repository under the second.
    /// Repeatable; tried before any other mapping.
    #[arg(long = "mapping", value_name = "STACK=REPO")]
    pub mappings: Vec<String>,
    /// `EMAIL=LOGIN`: the GitHub login of an author e-mail. Repeatable.
    #[arg(long = "login", value_name = "EMAIL=LOGIN")]
    pub logins: Vec<String>,
    /// Who owns the error when no suspect has a login and CODEOWNERS names nobody.
    #[arg(long)]
    pub default_assignee: Option<String>,
    /// More automation accounts never to blame (matched in `name <email>`). Repeatable.
    #[arg(long = "bot", value_name = "PATTERN")]
    pub bots: Vec<String>,
    /// How many repository frames, from the crash outwards, may supply the suspect.
    #[arg(long, default_value_t = 5)]
    pub max_frames: usize,
    /// `OWNER/NAME` on GitHub: a package named like the repository (an npm or Go module path ending in it) is this
    /// repository's even where no manifest says so. Default: the repository's `origin` remote, when it is on
    /// github.com.
    #[arg(long, value_name = "OWNER/NAME")]
    pub github_repo: Option<String>,
    /// `BASE..REV`: the deploy's range; a suspect commit inside it is "introduced by this deploy".
    #[arg(long, value_name = "BASE..REV")]
    pub range: Option<String>,
    /// The trace: a file with a plain-text stack trace (as pasted: log prefixes, quotes and surrounding output are
    /// fine) or a Sentry event (JSON); standard input when omitted.
    pub file: Option<PathBuf>,
}

/// Exactly what `--format json` prints.
#[derive(Serialize)]
struct Output<'a> {
    language: &'a str,
    frames: &'a [FrameResult],
    suspect: Option<SuspectOut<'a>>,
    owner: &'a Owner,
}

#[derive(Serialize)]
struct SuspectOut<'a> {
    frame_index: usize,
    commit: &'a str,
    author_name: &'a str,
    author_email: &'a str,
    github_login: Option<&'a str>,
    reason: &'a str,
}

impl<'a> From<&'a Suspect> for SuspectOut<'a> {
    fn from(s: &'a Suspect) -> Self {
        SuspectOut {
            frame_index: s.frame_index,
            commit: &s.commit,
            author_name: &s.author_name,
            author_email: &s.author_email,
            github_login: s.github_login.as_deref(),
            reason: &s.reason,
        }
    }
}

fn pairs(values: &[String], what: &str) -> anyhow::Result<Vec<(String, String)>> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((a, b)) if !a.is_empty() => Ok((a.to_owned(), b.to_owned())),
            _ => bail!("--{what} `{v}`: expected LEFT=RIGHT"),
        })
        .collect()
}

/// Frames (with a file location) in input order, the raised exception's indices from the crash outwards, and the
/// language, from a plain-text trace or a Sentry event.
pub fn frames_from_input(text: &str) -> anyhow::Result<(String, Vec<FrameInput>, Vec<usize>)> {
    if text.trim_start().starts_with('{') {
        let value: serde_json::Value =
            serde_json::from_str(text).context("the input looks like JSON but is not valid")?;
        let now = chrono::Utc::now().timestamp_millis();
        let event = crate::ingest::sentry::to_event(&value, None, now).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (frames, raised) = crate::assign::frames_of_event(&event);
        let language = event.platform.unwrap_or_else(|| "unknown".into());
        return Ok((language, frames, raised));
    }
    let trace = stacktrace::parse(text)?;
    // In the order pasted, so the frames print as the trace reads.
    let chains = trace.frame_chains();
    let chains: Vec<&[crate::events::Frame]> = chains.iter().map(Vec::as_slice).collect();
    let (frames, raised) = crate::assign::frames_of_chains(&chains, !trace.callee_first);
    Ok((trace.language.as_str().to_owned(), frames, raised))
}

/// Runs `explain` and returns what it prints.
///
/// # Errors
/// When the input cannot be read or parsed, the repository or revision does not exist, or git fails.
pub async fn run(args: &ExplainArgs) -> anyhow::Result<String> {
    let text = match &args.file {
        Some(f) => std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        None => {
            let mut s = String::new();
            std::io::stdin().take(16 * 1024 * 1024).read_to_string(&mut s).context("reading standard input")?;
            s
        }
    };
    if !args.repo.exists() {
        bail!("no repository at {}", args.repo.display());
    }
    let (language, frames, crash_order) = frames_from_input(&text)?;
    let settings = Settings {
        code_mappings: pairs(&args.mappings, "mapping")?
            .into_iter()
            .map(|(stack_prefix, repo_prefix)| CodeMapping { stack_prefix, repo_prefix })
            .collect(),
        logins: pairs(&args.logins, "login")?.into_iter().collect(),
        default_assignee: args.default_assignee.clone(),
        bot_patterns: args.bots.clone(),
        max_suspect_frames: Some(args.max_frames),
        ..Settings::default()
    };
    let git = Git::new("git", Duration::from_secs(300), None, true);
    let assigner = Assigner::new(git.clone(), Arc::new(NoGitHub));
    let deploy = match &args.range {
        Some(r) => {
            let (base, head) = r.split_once("..").context("--range: expected BASE..REV")?;
            Some(DeployContext {
                version: r.clone(),
                environment: "this range".into(),
                range: range_commits(&git, &args.repo, base, head).await?,
            })
        }
        None => None,
    };
    let github_repo = match &args.github_repo {
        Some(r) => {
            let ok = r.split_once('/').is_some_and(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'));
            anyhow::ensure!(ok, "--github-repo `{r}`: expected OWNER/NAME");
            Some(r.clone())
        }
        None => {
            let origin = git.output(Some(&args.repo), ["config", "--get", "remote.origin.url"]).await?;
            (origin.code == Some(0)).then(|| github_name(&String::from_utf8_lossy(&origin.stdout))).flatten()
        }
    };
    let a = assigner
        .assign(&args.repo, &args.rev, github_repo.as_deref(), &frames, &crash_order, &settings, deploy.as_ref())
        .await?;
    Ok(match args.format {
        Format::Json => {
            let out = Output {
                language: &language,
                frames: &a.frames,
                suspect: a.suspect.as_ref().map(SuspectOut::from),
                owner: &a.owner,
            };
            serde_json::to_string_pretty(&out)?
        }
        Format::Text => text_report(&language, &a),
    })
}

fn text_report(language: &str, a: &Assignment) -> String {
    let mut out = String::new();
    let in_repo = a.frames.iter().filter(|f| f.in_repo).count();
    let _ = writeln!(
        out,
        "{language} trace: {} frames, {in_repo} in the repository at {}",
        a.frames.len(),
        &a.commit[..a.commit.len().min(12)]
    );
    for f in &a.frames {
        let loc = match (f.line, f.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", f.raw_path),
            (Some(l), None) => format!("{}:{l}", f.raw_path),
            _ => f.raw_path.clone(),
        };
        let func = f.function.as_deref().map(|s| format!(" in {s}")).unwrap_or_default();
        let _ = writeln!(out, "  #{} {loc}{func}", f.index);
        match (&f.repo_path, &f.blame) {
            (Some(p), Some(b)) => {
                let _ = writeln!(out, "      → {p} ({})", f.mapping);
                let _ = writeln!(
                    out,
                    "        {} {} <{}> \"{}\"",
                    &b.commit[..7.min(b.commit.len())],
                    b.author_name,
                    b.author_email,
                    b.summary
                );
                if b.content.trim().is_empty() {
                    let _ = writeln!(
                        out,
                        "        (a blank line at this revision: the trace may come from another version; not a suspect)"
                    );
                }
            }
            (Some(p), None) => {
                let _ = writeln!(out, "      → {p} ({}); line not blamed", f.mapping);
            }
            _ if !f.candidates.is_empty() => {
                let _ = writeln!(out, "      ambiguous, not guessed: {}", f.mapping);
            }
            _ => {
                let _ = writeln!(out, "      not in the repository: {}", f.mapping);
            }
        }
    }
    match &a.suspect {
        Some(s) => {
            let _ = writeln!(out, "\nSuspect: {}", s.reason);
        }
        None => {
            let _ = writeln!(out, "\nSuspect: none (no repository frame with a blameable line)");
        }
    }
    let who = a
        .owner
        .github_login
        .as_deref()
        .map(|l| format!("@{l}"))
        .or_else(|| a.owner.email.clone())
        .unwrap_or_else(|| "nobody".into());
    let _ = writeln!(out, "Owner: {who} [{}] — {}", a.owner.kind, a.owner.reason);
    out
}

/// `OWNER/NAME` of a github.com remote URL (`https://github.com/o/n.git`, `git@github.com:o/n.git`,
/// `ssh://git@github.com/o/n`); `None` for any other host.
fn github_name(url: &str) -> Option<String> {
    let url = url.trim();
    let rest =
        ["https://github.com/", "http://github.com/", "ssh://git@github.com/", "git@github.com:", "git://github.com/"]
            .iter()
            .find_map(|p| url.strip_prefix(p))?;
    let rest = rest.trim_end_matches('/');
    let rest = rest.strip_suffix(".git").unwrap_or(rest);
    let (owner, name) = rest.split_once('/')?;
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    (plain(owner) && plain(name)).then(|| format!("{owner}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_remote_names_the_github_repository() {
        // The remote URLs `git clone` leaves behind, over https and ssh.
        for url in [
            "https://github.com/spf13/cobra.git\n",
            "git@github.com:spf13/cobra.git",
            "ssh://git@github.com/spf13/cobra",
        ] {
            assert_eq!(github_name(url).as_deref(), Some("spf13/cobra"), "{url}");
        }
        for other in [
            "https://gitlab.com/spf13/cobra.git",
            "https://github.com/spf13",
            "https://github.com/a/b/c",
            "/srv/git/cobra",
        ] {
            assert_eq!(github_name(other), None, "{other}");
        }
    }
}
