//! Who owns an error when blame names a person: their GitHub login (configured mapping, noreply address, GitHub's
//! commit API), and the fallbacks — CODEOWNERS at the deployed commit, the project's default assignee.

use globset::{GlobBuilder, GlobMatcher};
use regex::Regex;
use std::sync::{LazyLock, OnceLock};

static NOREPLY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:\d+\+)?([a-z0-9](?:[a-z0-9-]{0,38}))@users\.noreply\.github\.com$")
        .expect("valid regex literal")
});

/// The login in a GitHub noreply address (`12345+octocat@users.noreply.github.com`, `octocat@users.noreply…`).
pub fn noreply_login(email: &str) -> Option<String> {
    NOREPLY.captures(email.trim()).map(|c| c[1].to_owned())
}

/// Default patterns for automated authors; matched case-insensitively against `name <email>`.
pub const DEFAULT_BOT_PATTERNS: &[&str] =
    &["[bot]", "dependabot", "renovate", "github-actions", "greenkeeper", "snyk-bot"];

/// Whether an author is an automation account.
pub fn is_bot(name: &str, email: &str, patterns: &[String]) -> bool {
    let who = format!("{name} <{email}>").to_lowercase();
    DEFAULT_BOT_PATTERNS.iter().any(|p| who.contains(p))
        || patterns.iter().any(|p| !p.is_empty() && who.contains(&p.to_lowercase()))
}

/// Where GitHub looks for CODEOWNERS, in its order.
pub const CODEOWNERS_PATHS: [&str; 3] = [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"];

struct Rule {
    line: usize,
    pattern: String,
    /// Compiled on first use (a glob becomes a regular expression, which is most of a parse's cost).
    matcher: OnceLock<Vec<GlobMatcher>>,
    owners: Vec<String>,
}

impl Rule {
    fn matcher(&self) -> &[GlobMatcher] {
        self.matcher.get_or_init(|| globs(&self.pattern))
    }
}

/// A parsed CODEOWNERS file.
pub struct CodeOwners {
    pub file: String,
    rules: Vec<Rule>,
}

/// The owner CODEOWNERS names for a path, with the rule that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeOwner {
    /// `login`, `org/team` (without `@`), or an e-mail address.
    pub owner: String,
    pub file: String,
    pub line: usize,
    pub pattern: String,
}

impl CodeOwner {
    pub fn login(&self) -> Option<&str> {
        (!self.owner.contains('@')).then_some(self.owner.as_str())
    }

    pub fn email(&self) -> Option<&str> {
        self.owner.contains('@').then_some(self.owner.as_str())
    }
}

fn globs(pattern: &str) -> Vec<GlobMatcher> {
    // gitignore-style, as GitHub applies it: a leading or inner `/` anchors at the root; otherwise the pattern
    // matches at any depth; a pattern naming a directory owns everything below it.
    let trimmed = pattern.trim_end_matches('/');
    let anchored = pattern.starts_with('/') || trimmed.trim_start_matches('/').contains('/');
    let base = trimmed.trim_start_matches('/');
    let base = if anchored { base.to_owned() } else { format!("**/{base}") };
    let mut sources = vec![format!("{base}/**")];
    if !pattern.ends_with('/') {
        sources.push(base);
    }
    sources
        .iter()
        .filter_map(|s| GlobBuilder::new(s).literal_separator(true).build().ok().map(|g| g.compile_matcher()))
        .collect()
}

impl CodeOwners {
    pub fn parse(file: &str, text: &str) -> CodeOwners {
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split_once(" #").map_or(raw, |(l, _)| l).trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let Some(pattern) = parts.next() else { continue };
            let owners: Vec<String> = parts.map(|o| o.trim_start_matches('@').to_owned()).collect();
            rules.push(Rule { line: i + 1, pattern: pattern.to_owned(), matcher: OnceLock::new(), owners });
        }
        CodeOwners { file: file.to_owned(), rules }
    }

    /// Compiles every rule's patterns now (parsing leaves that to first use), so that a later look-up is quick.
    pub fn compile(&self) {
        for r in &self.rules {
            r.matcher();
        }
    }

    /// The first owner of the last rule matching `path` (a rule with no owners un-owns the path).
    pub fn owner_of(&self, path: &str) -> Option<CodeOwner> {
        let rule = self.rules.iter().rev().find(|r| r.matcher().iter().any(|m| m.is_match(path)))?;
        let owner = rule.owners.first()?;
        Some(CodeOwner {
            owner: owner.clone(),
            file: self.file.clone(),
            line: rule.line,
            pattern: rule.pattern.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noreply_addresses() {
        assert_eq!(noreply_login("12345+octocat@users.noreply.github.com").as_deref(), Some("octocat"));
        assert_eq!(noreply_login("Mona-Lisa@users.noreply.github.com").as_deref(), Some("Mona-Lisa"));
        assert_eq!(noreply_login("alice@example.com"), None);
        assert_eq!(noreply_login("49699333+dependabot[bot]@users.noreply.github.com"), None);
    }

    #[test]
    fn bots() {
        assert!(is_bot("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com", &[]));
        assert!(is_bot("Renovate Bot", "bot@renovateapp.com", &[]));
        assert!(is_bot("Deploy", "deploy@acme.io", &["deploy@acme.io".into()]));
        assert!(!is_bot("Alice", "alice@example.com", &[]));
    }

    #[test]
    fn codeowners_last_match_wins() {
        let co = CodeOwners::parse(
            ".github/CODEOWNERS",
            "# owners\n*       @acme/everyone\n*.js    @js-owner\n/docs/  docs@acme.io\napps/   @apps-team # any apps dir\n/build/logs/ @ops\nvendor/\n",
        );
        let owner = |p: &str| co.owner_of(p).map(|o| o.owner);
        assert_eq!(owner("README.md").as_deref(), Some("acme/everyone"));
        assert_eq!(owner("src/deep/x.js").as_deref(), Some("js-owner"));
        assert_eq!(owner("docs/guide.md").as_deref(), Some("docs@acme.io"));
        assert_eq!(owner("x/docs/guide.md").as_deref(), Some("acme/everyone"), "anchored");
        assert_eq!(owner("services/apps/main.py").as_deref(), Some("apps-team"), "unanchored directory");
        assert_eq!(owner("build/logs/a.txt").as_deref(), Some("ops"));
        assert_eq!(owner("vendor/lib/a.py"), None, "a rule without owners un-owns");
        let o = co.owner_of("docs/guide.md").expect("owner");
        assert_eq!((o.line, o.pattern.as_str(), o.email()), (4, "/docs/", Some("docs@acme.io")));
    }
}
