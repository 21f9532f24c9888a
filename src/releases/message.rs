//! What a commit message says beyond its text: the pull request it came from, its co-authors, the issues it closes.

use regex::Regex;
use std::sync::LazyLock;

use crate::store::{IssueRef, Person};

static MERGE_PR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^Merge pull request #(\d+) from ").expect("valid regex literal"));
static SQUASH_PR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\(#(\d+)\)\s*$").expect("valid regex literal"));
static CO_AUTHOR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?mi)^\s*co-authored-by:\s*(.*?)\s*<([^<>\s]+)>\s*$").expect("valid regex literal"));
// GitHub's closing keywords, optionally followed by a colon, then `#N`, `owner/repo#N` or an issue URL.
static CLOSES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?):?\s+(?:https://github\.com/([\w.-]+/[\w.-]+)/issues/(\d+)|([\w.-]+/[\w.-]+)?#(\d+))\b",
    )
    .expect("valid regex literal")
});

/// The pull request a commit's summary names: GitHub's merge commits (`Merge pull request #12 from …`) and squash
/// merges (`Title (#12)`).
pub fn pull_request_number(summary: &str) -> Option<i64> {
    MERGE_PR
        .captures(summary)
        .or_else(|| SQUASH_PR.captures(summary))
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().parse().ok())
}

/// `Co-authored-by: Name <email>` trailers, each person once.
pub fn co_authors(message: &str) -> Vec<Person> {
    let mut people: Vec<Person> = Vec::new();
    for c in CO_AUTHOR.captures_iter(message) {
        let person = Person { name: c[1].to_owned(), email: c[2].to_owned() };
        if !people.iter().any(|p| p.email.eq_ignore_ascii_case(&person.email)) {
            people.push(person);
        }
    }
    people
}

/// Issues the message closes with GitHub's keywords. References to `own_repo` are given as plain `#N`.
pub fn closed_issues(message: &str, own_repo: Option<&str>) -> Vec<IssueRef> {
    let mut refs: Vec<IssueRef> = Vec::new();
    for c in CLOSES.captures_iter(message) {
        let repo = c.get(1).or_else(|| c.get(3)).map(|m| m.as_str().to_owned());
        let Some(number) = c.get(2).or_else(|| c.get(4)).and_then(|m| m.as_str().parse().ok()) else {
            continue;
        };
        let repo = repo.filter(|r| own_repo.is_none_or(|own| !own.eq_ignore_ascii_case(r)));
        let issue = IssueRef { repo, number };
        if !refs.contains(&issue) {
            refs.push(issue);
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_requests_from_merges_and_squashes() {
        assert_eq!(pull_request_number("Merge pull request #12 from acme/feature"), Some(12));
        assert_eq!(pull_request_number("Add payments (#345)"), Some(345));
        assert_eq!(pull_request_number("Add payments (#345) "), Some(345));
        assert_eq!(pull_request_number("Fix #12 in parser"), None);
        assert_eq!(pull_request_number("Merge branch 'main' into x"), None);
    }

    #[test]
    fn co_author_trailers() {
        let msg = "Pair on parser\n\nCo-authored-by: Bob Roe <bob@example.com>\nco-authored-by: Carol <carol@example.com>\nCo-Authored-By: Bob Roe <BOB@example.com>\nSigned-off-by: X <x@y>";
        let people = co_authors(msg);
        assert_eq!(
            people,
            vec![
                Person { name: "Bob Roe".into(), email: "bob@example.com".into() },
                Person { name: "Carol".into(), email: "carol@example.com".into() }
            ]
        );
    }

    #[test]
    fn closing_keywords() {
        let msg = "Fix checkout\n\nfixes #12, Closes: acme/other#3\nResolves https://github.com/acme/web/issues/9\n\
                   see #44 (not closing)\nfixed #12 again\nprefix#5 closes acme/web#7";
        let refs = closed_issues(msg, Some("acme/web"));
        assert_eq!(
            refs,
            vec![
                IssueRef { repo: None, number: 12 },
                IssueRef { repo: Some("acme/other".into()), number: 3 },
                IssueRef { repo: None, number: 9 },
                IssueRef { repo: None, number: 7 },
            ]
        );
        assert!(closed_issues("prefixes #4 and unfixed #5", None).is_empty());
    }
}
