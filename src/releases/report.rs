//! The release report of one deploy: one model, rendered as JSON (serde) and Markdown.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::status::{DeployStatus, RangeStatus};
use crate::markdown::escape;
use crate::store::{CommitRecord, Deploy, IssueRef, Person, Project, PullRef};

#[derive(Debug, Serialize)]
pub struct Report {
    pub project: String,
    pub deploy: DeployView,
    /// Commits of the range grouped by author, the authors with most commits first.
    pub authors: Vec<AuthorCommits>,
    /// Pull requests merged in the range, with their titles as the merge or squash commit gives them.
    pub pull_requests: Vec<PullRequest>,
    pub closed_issues: Vec<Link>,
    /// Files the range changed, the most changed first (at most [`FILES_KEPT`]).
    pub files: Vec<FileLine>,
    /// How many files the range changed in all.
    pub files_count: usize,
    /// A rollback's (or diverged deploy's): the previous deploy's commits this one no longer has, newest first.
    pub removed_commits: Vec<CommitLine>,
    /// Groups that first appeared with this deploy.
    pub new_errors: Vec<ErrorLine>,
    /// Resolved groups that came back with this deploy.
    pub regressions: Vec<ErrorLine>,
    /// Groups whose suspect commit is in this deploy's range.
    pub suspects_in_range: Vec<ErrorLine>,
    pub error_counts: ErrorCounts,
}

/// One error group in a report.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorLine {
    pub id: i64,
    pub title: String,
    pub culprit: Option<String>,
    /// Events of the group in this release and environment.
    pub count: i64,
    pub assignee: Option<String>,
    /// Where the suspect commit touched the crash, and who made it.
    pub suspect: Option<String>,
    pub github_issue: Option<Link>,
}

/// Events of the deploy's environment in a window after the deploy, against the same window before it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ErrorCounts {
    /// Events whose release and environment are this deploy's.
    pub in_release: i64,
    pub window_minutes: i64,
    pub before: i64,
    pub after: i64,
}

/// What a report says about errors, gathered from the store by the caller.
#[derive(Debug, Clone, Default)]
pub struct ErrorFacts {
    pub new_errors: Vec<ErrorLine>,
    pub regressions: Vec<ErrorLine>,
    pub suspects_in_range: Vec<ErrorLine>,
    pub counts: ErrorCounts,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeployView {
    pub id: i64,
    pub environment: String,
    pub version: String,
    pub sha: String,
    pub base_sha: Option<String>,
    pub status: String,
    pub range_status: Option<String>,
    pub merge_base: Option<String>,
    pub commit_count: Option<i64>,
    /// True when the range had more commits than the server stores details for.
    pub truncated: bool,
    /// Commits of the previous deploy that this one took out (a rollback's), counted by git.
    pub removed_count: i64,
    pub deployed_at: String,
    pub deployer: Option<String>,
    pub url: Option<String>,
    pub compare_url: Option<String>,
    pub failure_reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AuthorCommits {
    pub name: String,
    pub email: String,
    pub commits: Vec<CommitLine>,
}

#[derive(Debug, Serialize)]
pub struct CommitLine {
    pub sha: String,
    pub summary: String,
    pub pr_number: Option<i64>,
    pub co_authors: Vec<Person>,
    pub url: Option<String>,
}

/// Why an error is in a release's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorTag {
    New,
    Regressed,
    SuspectInRange,
}

impl ErrorTag {
    pub fn label(self) -> &'static str {
        match self {
            ErrorTag::New => "new in this release",
            ErrorTag::Regressed => "regressed in this release",
            ErrorTag::SuspectInRange => "suspect commit in this release",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PullRequest {
    pub number: i64,
    pub title: Option<String>,
    pub url: Option<String>,
}

/// One file of a range: lines added and deleted over its commits (binary changes count no lines).
#[derive(Debug, Clone, Serialize)]
pub struct FileLine {
    pub path: String,
    pub commits: usize,
    pub added: i64,
    pub deleted: i64,
}

/// Files a report keeps, the most changed first.
pub const FILES_KEPT: usize = 200;

/// A pull request's title from the commit that merged it: a squash commit's summary without its `(#N)`, or the
/// first line of a merge commit's body.
fn pr_title(c: &CommitRecord, n: i64) -> Option<String> {
    let suffix = format!("(#{n})");
    if let Some(title) = c.summary.trim_end().strip_suffix(&suffix) {
        return Some(title.trim_end().to_owned()).filter(|t| !t.is_empty());
    }
    if c.summary.starts_with(&format!("Merge pull request #{n} ")) {
        return c.message.lines().skip(1).map(str::trim).find(|l| !l.is_empty()).map(str::to_owned);
    }
    None
}

#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub label: String,
    pub url: Option<String>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl DeployView {
    /// `repo_web` is the repository's web address (`https://github.com/acme/web`), when it has one.
    pub fn new(d: &Deploy, repo_web: Option<&str>) -> DeployView {
        let comparable = d.range_status.as_deref().and_then(RangeStatus::parse).is_some_and(RangeStatus::comparable);
        let compare_url = match (repo_web, d.base_sha.as_deref()) {
            (Some(repo), Some(base)) if comparable => Some(format!("{repo}/compare/{base}...{}", d.sha)),
            _ => None,
        };
        DeployView {
            id: d.id,
            environment: d.environment.clone(),
            version: d.version.clone(),
            sha: d.sha.clone(),
            base_sha: d.base_sha.clone(),
            status: d.status.clone(),
            range_status: d.range_status.clone(),
            merge_base: d.merge_base.clone(),
            commit_count: d.commit_count,
            truncated: matches!((d.commit_count, d.commits_stored), (Some(c), Some(s)) if s < c),
            removed_count: d.removed_count.unwrap_or(0),
            deployed_at: rfc3339(d.deployed_at),
            deployer: d.deployer.clone(),
            url: d.url.clone(),
            compare_url,
            failure_reason: d.failure_reason.clone(),
        }
    }
}

impl Report {
    /// `web` is GitHub's web root (`https://github.com`, or an Enterprise server's).
    pub fn build(
        project: &Project,
        deploy: &Deploy,
        commits: &[CommitRecord],
        removed: &[CommitRecord],
        errors: ErrorFacts,
        web: &str,
        pulls: &HashMap<String, PullRef>,
    ) -> Report {
        let repo_web = project.github_repo.as_deref().map(|r| format!("{}/{r}", web.trim_end_matches('/')));
        let gh = repo_web.as_deref();
        let mut by_author: BTreeMap<String, AuthorCommits> = BTreeMap::new();
        let mut prs: Vec<(i64, Option<String>)> = Vec::new();
        let mut issues: Vec<IssueRef> = Vec::new();
        let mut files: BTreeMap<&str, FileLine> = BTreeMap::new();
        for c in commits {
            for f in &c.files {
                let line = files.entry(f.path.as_str()).or_insert_with(|| FileLine {
                    path: f.path.clone(),
                    commits: 0,
                    added: 0,
                    deleted: 0,
                });
                line.commits += 1;
                line.added += f.added.unwrap_or(0);
                line.deleted += f.deleted.unwrap_or(0);
            }
            let entry = by_author.entry(c.author.email.to_lowercase()).or_insert_with(|| AuthorCommits {
                name: c.author.name.clone(),
                email: c.author.email.clone(),
                commits: Vec::new(),
            });
            // GitHub's word on the commit's pull request (asked when a token or App is configured) covers what the
            // message cannot: a rebase merge names no pull request, a bare merge commit no title.
            let known = pulls.get(&c.sha);
            let pr_number = c.pr_number.or(known.map(|p| p.pull_number));
            entry.commits.push(CommitLine {
                sha: c.sha.clone(),
                summary: c.summary.clone(),
                pr_number,
                co_authors: c.co_authors.clone(),
                url: gh.map(|r| format!("{r}/commit/{}", c.sha)),
            });
            if let Some(n) = pr_number {
                let title = || {
                    known
                        .filter(|p| p.pull_number == n && !p.title.is_empty())
                        .map(|p| p.title.clone())
                        .or_else(|| pr_title(c, n))
                };
                match prs.iter_mut().find(|(p, _)| *p == n) {
                    Some((_, t)) => {
                        if t.is_none() {
                            *t = title();
                        }
                    }
                    None => prs.push((n, title())),
                }
            }
            for i in &c.closes {
                if !issues.contains(i) {
                    issues.push(i.clone());
                }
            }
        }
        let mut authors: Vec<AuthorCommits> = by_author.into_values().collect();
        authors.sort_by(|a, b| b.commits.len().cmp(&a.commits.len()).then_with(|| a.name.cmp(&b.name)));
        prs.sort_unstable_by_key(|(n, _)| *n);
        let files_count = files.len();
        let mut files: Vec<FileLine> = files.into_values().collect();
        files.sort_by(|a, b| (b.added + b.deleted).cmp(&(a.added + a.deleted)).then_with(|| a.path.cmp(&b.path)));
        files.truncate(FILES_KEPT);
        Report {
            project: project.name.clone(),
            deploy: DeployView::new(deploy, gh),
            authors,
            pull_requests: prs
                .into_iter()
                .map(|(number, title)| PullRequest { number, title, url: gh.map(|r| format!("{r}/pull/{number}")) })
                .collect(),
            files,
            files_count,
            closed_issues: issues
                .into_iter()
                .map(|i| match i.repo {
                    Some(repo) => Link {
                        label: format!("{repo}#{}", i.number),
                        url: Some(format!("{}/{repo}/issues/{}", web.trim_end_matches('/'), i.number)),
                    },
                    None => {
                        Link { label: format!("#{}", i.number), url: gh.map(|r| format!("{r}/issues/{}", i.number)) }
                    }
                })
                .collect(),
            removed_commits: removed
                .iter()
                .map(|c| CommitLine {
                    sha: c.sha.clone(),
                    summary: c.summary.clone(),
                    pr_number: c.pr_number,
                    co_authors: c.co_authors.clone(),
                    url: gh.map(|r| format!("{r}/commit/{}", c.sha)),
                })
                .collect(),
            new_errors: errors.new_errors,
            regressions: errors.regressions,
            suspects_in_range: errors.suspects_in_range,
            error_counts: errors.counts,
        }
    }

    /// What a deploy with no new errors, regressions or suspects says about them.
    pub const NO_ERRORS: &'static str = "No new errors, no regressions, and no error blames a commit of this release.";

    /// "4 events from this release in production. By time: 3 events in the 60 minutes after this deploy, 1 in
    /// the 60 minutes before."
    pub fn counts_sentence(&self) -> String {
        let c = &self.error_counts;
        format!(
            "{} from this release in {}. By time: {} in the {} minutes after this deploy, {} in the {} minutes before.",
            plural(c.in_release, "event"),
            self.deploy.environment,
            plural(c.after, "event"),
            c.window_minutes,
            c.before,
            c.window_minutes
        )
    }

    /// Whether the deploy brought new errors, regressions or suspects.
    pub fn has_errors(&self) -> bool {
        !(self.new_errors.is_empty() && self.regressions.is_empty() && self.suspects_in_range.is_empty())
    }

    fn errors_markdown(&self, md: &mut String) {
        let _ = writeln!(md, "### Errors\n");
        let _ = writeln!(md, "{}\n", self.counts_sentence());
        if !self.has_errors() {
            let _ = writeln!(md, "{}\n", Self::NO_ERRORS);
            return;
        }
        for (e, tags) in self.errors_once() {
            let who = e.assignee.as_deref().map(|a| format!(" → @{a}")).unwrap_or_default();
            let issue = e.github_issue.as_ref().map(|l| match &l.url {
                Some(u) => format!(" ([{}]({u}))", l.label),
                None => format!(" ({})", l.label),
            });
            let culprit = e.culprit.as_deref().map(|c| format!(" in `{}`", c.replace('`', "'"))).unwrap_or_default();
            let tags: Vec<String> = tags.iter().map(|t| format!("**{}**", t.label())).collect();
            let _ = writeln!(
                md,
                "- {}{culprit}: {} in this release{who}{} — {}",
                escape(&e.title),
                plural(e.count, "event"),
                issue.unwrap_or_default(),
                tags.join(", ")
            );
            if let Some(x) = &e.suspect {
                let _ = writeln!(md, "  - suspect: {x}");
            }
        }
        let _ = writeln!(md);
    }

    /// Each error of the report once, with what makes it this release's: new here, regressed here, its suspect
    /// commit in this deploy's range.
    pub fn errors_once(&self) -> Vec<(&ErrorLine, Vec<ErrorTag>)> {
        let mut out: Vec<(&ErrorLine, Vec<ErrorTag>)> = Vec::new();
        for (tag, lines) in [
            (ErrorTag::New, &self.new_errors),
            (ErrorTag::Regressed, &self.regressions),
            (ErrorTag::SuspectInRange, &self.suspects_in_range),
        ] {
            for e in lines {
                match out.iter_mut().find(|(seen, _)| seen.id == e.id) {
                    Some((_, tags)) => tags.push(tag),
                    None => out.push((e, vec![tag])),
                }
            }
        }
        out
    }

    /// The report as GitHub-flavoured Markdown (the Action's job summary, `?format=md`).
    pub fn to_markdown(&self) -> String {
        let d = &self.deploy;
        let mut md = String::new();
        let short_sha = short(&d.sha);
        let _ = writeln!(md, "## {} {} → {}", self.project, escape(&d.version), escape(&d.environment));
        let _ = writeln!(md);
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(md, "| Commit | `{short_sha}` |");
        let _ = writeln!(
            md,
            "| Deployed | {}{} |",
            d.deployed_at,
            d.deployer.as_deref().map(|p| format!(" by {}", escape(p))).unwrap_or_default()
        );
        let _ = writeln!(md, "| Range | {} |", self.range_sentence());
        if let Some(url) = &d.compare_url {
            let _ =
                writeln!(md, "| Compare | [{}…{short_sha}]({url}) |", short(d.base_sha.as_deref().unwrap_or_default()));
        }
        if let Some(url) = &d.url {
            let _ = writeln!(md, "| Link | {url} |");
        }
        let _ = writeln!(md);
        match DeployStatus::parse(&d.status) {
            Some(DeployStatus::Pending) => {
                let _ = writeln!(md, "The commit range is still being computed.");
                return md;
            }
            Some(DeployStatus::Failed) => {
                let _ = writeln!(
                    md,
                    "This deploy failed: nothing is known to have shipped, and no error is counted against it."
                );
                return md;
            }
            _ => {}
        }
        self.errors_markdown(&mut md);
        if !self.removed_commits.is_empty() {
            let _ = writeln!(md, "### Commits taken out by this deploy\n");
            for c in self.removed_commits.iter().take(MD_REMOVED) {
                let sha = match &c.url {
                    Some(u) => format!("[`{}`]({u})", short(&c.sha)),
                    None => format!("`{}`", short(&c.sha)),
                };
                let _ = writeln!(md, "- {sha} {}", escape(&c.summary));
            }
            let more = (d.removed_count.max(self.removed_commits.len() as i64)) - MD_REMOVED as i64;
            if more > 0 {
                let _ = writeln!(md, "- … and {more} more");
            }
            let _ = writeln!(md);
        }
        if self.authors.is_empty() {
            return md;
        }
        let _ = writeln!(md, "### Commits by author\n");
        // A long range is summarised: a job summary is read by people (and GitHub caps all of a job's at 1 MiB).
        for a in self.authors.iter().take(MD_AUTHORS) {
            let _ = writeln!(md, "**{}** ({})\n", escape(&a.name), a.commits.len());
            for c in a.commits.iter().take(MD_COMMITS_PER_AUTHOR) {
                let sha = match &c.url {
                    Some(u) => format!("[`{}`]({u})", short(&c.sha)),
                    None => format!("`{}`", short(&c.sha)),
                };
                let co = if c.co_authors.is_empty() {
                    String::new()
                } else {
                    format!(" (with {})", c.co_authors.iter().map(|p| escape(&p.name)).collect::<Vec<_>>().join(", "))
                };
                let _ = writeln!(md, "- {sha} {}{co}", escape(&c.summary));
            }
            if a.commits.len() > MD_COMMITS_PER_AUTHOR {
                let _ = writeln!(md, "- … and {} more", a.commits.len() - MD_COMMITS_PER_AUTHOR);
            }
            let _ = writeln!(md);
        }
        if self.authors.len() > MD_AUTHORS {
            let rest = &self.authors[MD_AUTHORS..];
            let commits: usize = rest.iter().map(|a| a.commits.len()).sum();
            let _ = writeln!(md, "… and {} more authors with {}.\n", rest.len(), plural(commits as i64, "commit"));
        }
        if d.truncated {
            let _ = writeln!(md, "_Only the newest commits of this range are listed._\n");
        }
        if !self.pull_requests.is_empty() {
            let _ = writeln!(md, "### Pull requests\n");
            for p in self.pull_requests.iter().take(MD_LINKS) {
                let number = match &p.url {
                    Some(u) => format!("[#{}]({u})", p.number),
                    None => format!("#{}", p.number),
                };
                let title = p.title.as_deref().map(|t| format!(" {}", escape(t))).unwrap_or_default();
                let _ = writeln!(md, "- {number}{title}");
            }
            if self.pull_requests.len() > MD_LINKS {
                let _ = writeln!(md, "- … and {} more", self.pull_requests.len() - MD_LINKS);
            }
            let _ = writeln!(md);
        }
        if !self.files.is_empty() {
            let most: Vec<String> = self
                .files
                .iter()
                .take(MD_FILES)
                .map(|f| format!("`{}` +{} −{}", f.path.replace('`', "'"), f.added, f.deleted))
                .collect();
            let more = if self.files_count > MD_FILES { ", …" } else { "" };
            let _ = writeln!(md, "**Files changed:** {} — {}{more}\n", self.files_count, most.join(", "));
        }
        for (title, links) in [("Closed issues", &self.closed_issues)] {
            if links.is_empty() {
                continue;
            }
            let mut items: Vec<String> = links
                .iter()
                .take(MD_LINKS)
                .map(|l| match &l.url {
                    Some(u) => format!("[{}]({u})", l.label),
                    None => l.label.clone(),
                })
                .collect();
            if links.len() > MD_LINKS {
                items.push(format!("… and {} more", links.len() - MD_LINKS));
            }
            let _ = writeln!(md, "### {title}\n\n{}\n", items.join(", "));
        }
        md
    }

    fn range_sentence(&self) -> String {
        let d = &self.deploy;
        let n = d.commit_count.unwrap_or(0);
        let commits = if n == 1 { "1 commit".to_owned() } else { format!("{n} commits") };
        let base = d.base_sha.as_deref().map(short).unwrap_or("?");
        let range = d.range_status.as_deref().and_then(RangeStatus::parse);
        match (DeployStatus::parse(&d.status), range) {
            (Some(DeployStatus::Failed), _) => {
                format!("failed: {}", escape(d.failure_reason.as_deref().unwrap_or("unknown reason")))
            }
            (Some(DeployStatus::Pending), _) => "pending".into(),
            (_, Some(RangeStatus::Initial)) => "first deploy of this environment (no range)".into(),
            (_, Some(RangeStatus::Forward)) => format!("{commits} since `{base}`"),
            (_, Some(RangeStatus::Redeploy)) => format!("redeploy of `{base}` (no new commits)"),
            (_, Some(RangeStatus::Rollback)) => {
                format!("rollback from `{base}`: takes out {}", plural(d.removed_count, "commit"))
            }
            (_, Some(RangeStatus::Diverged)) => format!(
                "{commits} not in the previous deploy `{base}`, which is not an ancestor (force-push?); merge base `{}`",
                d.merge_base.as_deref().map(short).unwrap_or("none")
            ),
            (_, Some(RangeStatus::PreviousMissing)) => {
                format!("previous commit `{base}` is not in the repository; no range")
            }
            (_, None) => d.range_status.clone().unwrap_or_else(|| "unknown".into()),
        }
    }
}

/// "1 event", "3 events".
pub fn plural(n: i64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// In the Markdown report: authors listed, commits listed per author, and pull requests or issues listed, before
/// "… and N more". With them a report of any range stays well under 64 KB.
const MD_AUTHORS: usize = 25;
const MD_COMMITS_PER_AUTHOR: usize = 10;
const MD_LINKS: usize = 60;
const MD_REMOVED: usize = 50;
const MD_FILES: usize = 5;

/// The abbreviated form of a commit id.
pub fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{IssueRef, Person};

    /// Project `web` of `acme/web`, its clone URL on `host`.
    fn project(host: &str) -> Project {
        Project {
            id: 1,
            name: "web".into(),
            repo_url: format!("https://{host}/acme/web.git"),
            github_repo: Some("acme/web".into()),
            ingest_key: "k".into(),
            deploy_token: "t".into(),
            created_at: 0,
            settings: "{}".into(),
        }
    }

    /// A ready forward deploy `v2` of `commits` commits.
    fn deploy(commits: i64) -> Deploy {
        Deploy {
            id: 2,
            project_id: 1,
            environment: "production".into(),
            seq: 2,
            version: "v2".into(),
            sha: "b".repeat(40),
            previous_sha: None,
            previous_deploy_id: Some(1),
            base_sha: Some("a".repeat(40)),
            status: "ready".into(),
            range_status: Some("forward".into()),
            merge_base: None,
            commit_count: Some(commits),
            commits_stored: Some(commits),
            failure_reason: None,
            deployed_at: 0,
            deployer: None,
            url: None,
            created_at: 0,
            processed_at: None,
            removed_count: None,
        }
    }

    #[test]
    fn links_follow_the_github_web_root() {
        let (project, deploy) = (project("ghe.example.com"), deploy(1));
        let who = Person { name: "A".into(), email: "a@x".into() };
        let commit = CommitRecord {
            sha: "c".repeat(40),
            parents: vec![],
            author: who.clone(),
            author_time: 0,
            committer: who,
            committer_time: 0,
            summary: "Fix (#3)".into(),
            message: "Fix (#3)".into(),
            pr_number: Some(3),
            co_authors: vec![],
            closes: vec![IssueRef { repo: Some("acme/other".into()), number: 9 }],
            files: vec![],
        };
        let r = Report::build(
            &project,
            &deploy,
            &[commit],
            &[],
            ErrorFacts::default(),
            "https://ghe.example.com/",
            &HashMap::new(),
        );
        let md = r.to_markdown();
        for link in [
            format!("https://ghe.example.com/acme/web/compare/{}...{}", "a".repeat(40), "b".repeat(40)),
            format!("https://ghe.example.com/acme/web/commit/{}", "c".repeat(40)),
            "https://ghe.example.com/acme/web/pull/3".to_owned(),
            "https://ghe.example.com/acme/other/issues/9".to_owned(),
        ] {
            assert!(md.contains(&link), "{link} in\n{md}");
        }
        assert!(!md.contains("https://github.com"));
    }

    #[test]
    fn a_range_of_thousands_of_commits_makes_a_short_markdown_report() {
        let (project, deploy) = (project("github.com"), deploy(5_109));
        // 5,109 commits by 60 authors, each commit its own pull request (the 310 KB report that was measured).
        let commits: Vec<CommitRecord> = (0..5_109)
            .map(|i| {
                let who = Person { name: format!("Author {}", i % 60), email: format!("a{}@x", i % 60) };
                CommitRecord {
                    sha: format!("{i:040x}"),
                    parents: vec![],
                    author: who.clone(),
                    author_time: 0,
                    committer: who,
                    committer_time: 0,
                    summary: format!("Change number {i} to the payment flow (#{i})"),
                    message: String::new(),
                    pr_number: Some(i),
                    co_authors: vec![],
                    closes: vec![],
                    files: vec![],
                }
            })
            .collect();
        let md = Report::build(
            &project,
            &deploy,
            &commits,
            &[],
            ErrorFacts::default(),
            "https://github.com/",
            &HashMap::new(),
        )
        .to_markdown();
        assert!(md.len() < 64 * 1024, "{} bytes", md.len());
        assert!(md.contains("- … and 75 more"), "per author");
        assert!(md.contains("… and 35 more authors with"), "{md}");
        assert!(md.contains("… and 5049 more"), "pull requests");
    }
}
