//! Validated domain values (commit ids, environments, release names, repository URLs): parse, don't validate twice.

use std::fmt;

/// Why a value was refused, phrased for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// A full commit id: 40 (SHA-1) or 64 (SHA-256) hexadecimal digits, stored lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sha(String);

impl Sha {
    /// # Errors
    /// When `s` is not 40 or 64 hexadecimal digits.
    pub fn parse(s: &str) -> Result<Sha, Invalid> {
        let s = s.trim();
        if (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Sha(s.to_ascii_lowercase()))
        } else {
            Err(Invalid(format!(
                "`{}` is not a full commit id: expected 40 hexadecimal characters (e.g. the output of `git rev-parse HEAD`)",
                clip(s)
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn short(&self) -> &str {
        &self.0[..7]
    }
}

impl fmt::Display for Sha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A deploy environment name such as `production` or `eu/staging-2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment(String);

impl Environment {
    /// # Errors
    /// When `s` is empty, longer than 64 characters, or has characters other than letters, digits, `.`, `_`, `-`
    /// and `/` (it must start with a letter or digit).
    pub fn parse(s: &str) -> Result<Environment, Invalid> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
        if ok {
            Ok(Environment(s.to_owned()))
        } else {
            Err(Invalid(format!(
                "`{}` is not a valid environment: use 1 to 64 letters, digits, `.`, `_`, `-` or `/`, starting with a letter or digit",
                clip(s)
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A release name (the `release` Sentry SDKs send), following Sentry's rules so the two always agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseName(String);

impl ReleaseName {
    /// # Errors
    /// When `s` is empty, longer than 200 characters, `.`, `..`, `latest`, has surrounding white space, or contains
    /// a slash, a backslash or a control character.
    pub fn parse(s: &str) -> Result<ReleaseName, Invalid> {
        let why = if s.is_empty() {
            Some("must not be empty")
        } else if s.chars().count() > 200 {
            Some("must be at most 200 characters")
        } else if s.trim() != s {
            Some("must not start or end with white space")
        } else if matches!(s, "." | ".." | "latest") {
            Some("must not be `.`, `..` or `latest`")
        } else if s.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
            Some("must not contain `/`, `\\` or control characters")
        } else {
            None
        };
        match why {
            None => Ok(ReleaseName(s.to_owned())),
            Some(why) => Err(Invalid(format!("release name `{}` {why}", clip(s)))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A project name: what people type in URLs and commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectName(String);

impl ProjectName {
    /// # Errors
    /// When `s` is not 1 to 64 lowercase letters, digits, `-` or `_`, starting with a letter, or is all digits
    /// (which would read as a project id).
    pub fn parse(s: &str) -> Result<ProjectName, Invalid> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(ProjectName(s.to_owned()))
        } else {
            Err(Invalid(format!(
                "`{}` is not a valid project name: use 1 to 64 lowercase letters, digits, `-` or `_`, starting with a letter",
                clip(s)
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A GitHub user login, as people are assigned by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubLogin(String);

impl GithubLogin {
    /// # Errors
    /// When `s` (a leading `@` is allowed) is not 1 to 39 letters, digits or single hyphens, starting and ending
    /// with a letter or digit (GitHub's rule; `[bot]` accounts too).
    pub fn parse(s: &str) -> Result<GithubLogin, Invalid> {
        let login = s.trim().trim_start_matches('@');
        let name = login.strip_suffix("[bot]").unwrap_or(login);
        let ok = !name.is_empty()
            && name.len() <= 39
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-')
            && !name.contains("--");
        if ok {
            Ok(GithubLogin(login.to_owned()))
        } else {
            Err(Invalid(format!("`{}` is not a GitHub login", clip(s))))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A GitHub repository as `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubRepo(String);

impl GithubRepo {
    /// # Errors
    /// When `s` is not `owner/name` with GitHub's allowed characters.
    pub fn parse(s: &str) -> Result<GithubRepo, Invalid> {
        let valid_part = |p: &str| {
            !p.is_empty()
                && p.len() <= 100
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        match s.split_once('/') {
            Some((owner, name)) if valid_part(owner) && valid_part(name) && name != "." && name != ".." => {
                Ok(GithubRepo(s.to_owned()))
            }
            _ => Err(Invalid(format!("`{}` is not a GitHub repository: expected `owner/name`", clip(s)))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a project's repository is cloned from. `https://` always; local paths and `file://` only when the server
/// allows them (tests and the demo), because a local path lets whoever can create projects read the server's disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoUrl(String);

impl RepoUrl {
    /// # Errors
    /// When the URL is not `https://host/…`, carries credentials, or is local while local repositories are not
    /// allowed.
    pub fn parse(s: &str, allow_local: bool) -> Result<RepoUrl, Invalid> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("https://") {
            let authority = rest.split('/').next().unwrap_or_default();
            if authority.contains('@') {
                return Err(Invalid(
                    "the repository URL must not contain credentials; give the server a token with \
                     SHIPWATCH_GIT_TOKEN instead"
                        .into(),
                ));
            }
            if authority.is_empty() || rest.len() == authority.len() || s.chars().any(char::is_whitespace) {
                return Err(Invalid(format!(
                    "`{}` is not a repository URL: expected https://host/owner/repo",
                    clip(s)
                )));
            }
            return Ok(RepoUrl(s.to_owned()));
        }
        let local = s.starts_with("file://") || s.starts_with('/');
        if local && allow_local {
            return Ok(RepoUrl(s.to_owned()));
        }
        if local {
            return Err(Invalid(
                "local repositories are refused unless the server runs with --allow-local-repos \
                 (SHIPWATCH_ALLOW_LOCAL_REPOS=1)"
                    .into(),
            ));
        }
        Err(Invalid(format!(
            "`{}` is not supported: use an https:// clone URL (e.g. https://github.com/owner/repo.git)",
            clip(s)
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `owner/name` when the URL is a github.com repository.
    pub fn github_repo(&self) -> Option<GithubRepo> {
        let rest = self.0.strip_prefix("https://github.com/")?;
        GithubRepo::parse(rest.trim_end_matches('/').trim_end_matches(".git")).ok()
    }
}

/// Cuts a refused value short so an error message stays readable.
fn clip(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_accepts_full_ids_only_and_lowercases() {
        let s = Sha::parse("ABCDEF0123456789abcdef0123456789ABCDEF01").expect("valid sha");
        assert_eq!(s.as_str(), "abcdef0123456789abcdef0123456789abcdef01");
        assert_eq!(s.short(), "abcdef0");
        assert!(Sha::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "abc123", &"g".repeat(40), &"a".repeat(41), "main", "HEAD~1"] {
            assert!(Sha::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn environment_rules() {
        for good in ["production", "eu/staging-2", "pr_12", "Prod.1"] {
            assert!(Environment::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "-prod", "prod env", "prod\n", "/x", &"a".repeat(65)] {
            assert!(Environment::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn release_names_follow_sentry() {
        for good in ["v1.4.2", "abc123", "web@1.0.0+build 7"] {
            assert!(ReleaseName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "latest", " v1", "v1 ", "a/b", "a\\b", "a\tb", &"x".repeat(201)] {
            let e = ReleaseName::parse(bad).expect_err(bad);
            assert!(e.0.starts_with("release name"), "{e}");
        }
    }

    #[test]
    fn project_names() {
        assert!(ProjectName::parse("web-app_2").is_ok());
        for bad in ["", "Web", "2web", "web app", "web/app"] {
            assert!(ProjectName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repo_urls() {
        let u = RepoUrl::parse("https://github.com/acme/web.git", false).expect("https");
        assert_eq!(u.github_repo().map(|r| r.as_str().to_owned()), Some("acme/web".into()));
        assert!(RepoUrl::parse("https://token@github.com/acme/web", false)
            .expect_err("credentials")
            .0
            .contains("credentials"));
        assert!(RepoUrl::parse("/srv/repo", false).expect_err("local").0.contains("--allow-local-repos"));
        assert!(RepoUrl::parse("file:///srv/repo", true).is_ok());
        assert!(RepoUrl::parse("git@github.com:acme/web.git", true).is_err());
        assert!(RepoUrl::parse("ext::sh -c evil", true).is_err());
        assert!(RepoUrl::parse("https://", false).is_err());
        assert!(RepoUrl::parse("https://github.com", false).is_err());
    }

    #[test]
    fn github_repo() {
        assert!(GithubRepo::parse("acme/web.site").is_ok());
        for bad in ["acme", "acme/", "/web", "a/b/c", "acme/.."] {
            assert!(GithubRepo::parse(bad).is_err(), "{bad}");
        }
    }
}
