//! The work the worker does, as one typed enum: each kind's payload, how often it is tried, and its one stored form
//! (a `kind` string and a JSON payload), so that no other module builds or reads job JSON.

use serde::{Deserialize, Serialize};

use crate::store::NewJob;

/// A job that cannot do its work yet and should come back at `until_ms` (unix ms): waiting is not a failure — it
/// costs no attempt and leaves the job's last error as it was.
#[derive(Debug, thiserror::Error)]
#[error("waiting until {until_ms}: {why}")]
pub struct Later {
    pub until_ms: i64,
    pub why: String,
}

/// One unit of queued work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum Work {
    /// Compute a deploy's commit range.
    DeployRange { deploy_id: i64 },
    /// A deploy is ready: groups waiting for the next release of its environment are resolved.
    ReleaseReady { deploy_id: i64 },
    /// Group an accepted event: written by shipwatch before events became their own queue (grouped in batches);
    /// still read so such rows run.
    ProcessEvent { event: i64 },
    /// Map, blame and assign a new group, from the event that created it.
    AssignGroup { group: i64, event: i64 },
    /// Decide whether an event reopens its resolved group.
    CheckRegression { group: i64, event: i64 },
    /// Create, reopen or comment on a group's GitHub issue.
    GithubIssue { group: i64, reason: IssueReason, deploy: Option<i64> },
    /// Handle a stored GitHub webhook delivery.
    GithubWebhook { delivery: String },
    /// Create or edit the comment on the pull request a new group's suspect commit came from.
    GithubPullComment { group: i64 },
    /// Ask GitHub which pull requests the commits of a deploy's range came from (numbers and titles for reports).
    GithubPullTitles { deploy_id: i64 },
}

/// Why a group's GitHub issue is being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueReason {
    /// The group first appeared after a deploy.
    New,
    /// The group came back after being resolved.
    Regressed,
    /// Someone resolved or ignored the group in shipwatch: its issue is closed.
    Closed,
    /// Someone unresolved the group in shipwatch: its issue is reopened.
    Reopened,
    /// Someone assigned the group by hand in shipwatch: its issue's assignee follows.
    Reassigned,
}

impl IssueReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueReason::New => "new",
            IssueReason::Regressed => "regressed",
            IssueReason::Closed => "closed",
            IssueReason::Reopened => "reopened",
            IssueReason::Reassigned => "reassigned",
        }
    }
}

impl Work {
    /// The kind as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            Work::DeployRange { .. } => "deploy_range",
            Work::ReleaseReady { .. } => "release_ready",
            Work::ProcessEvent { .. } => "process_event",
            Work::AssignGroup { .. } => "assign_group",
            Work::CheckRegression { .. } => "check_regression",
            Work::GithubIssue { .. } => "github_issue",
            Work::GithubWebhook { .. } => "github_webhook",
            Work::GithubPullComment { .. } => "github_pull_comment",
            Work::GithubPullTitles { .. } => "github_pull_titles",
        }
    }

    /// How often this kind is tried before it is given up.
    pub fn max_attempts(&self) -> i64 {
        match self {
            // After that the deploy is marked failed.
            Work::DeployRange { .. } => 8,
            // The event stays stored either way.
            Work::ProcessEvent { .. }
            | Work::CheckRegression { .. }
            | Work::GithubWebhook { .. }
            | Work::ReleaseReady { .. }
            | Work::GithubPullTitles { .. } => 10,
            Work::AssignGroup { .. } => 6,
            // GitHub writes are kept queued through outages, retried with backoff, rather than given up.
            Work::GithubIssue { .. } | Work::GithubPullComment { .. } => 1000,
        }
    }

    /// The longest pause between two tries of a job of `kind` after failures. A GitHub write comes back within a
    /// minute once GitHub answers again (GitHub's own rate limits name their time and are honoured apart from
    /// this); other work backs off to ten minutes.
    pub fn max_backoff(kind: &str) -> std::time::Duration {
        match kind {
            "github_issue" | "github_pull_comment" => std::time::Duration::from_secs(60),
            _ => std::time::Duration::from_secs(600),
        }
    }

    /// The row the store keeps for this work.
    pub fn job(&self) -> NewJob {
        let payload = match serde_json::to_value(self) {
            Ok(mut v) => v.get_mut("payload").map_or_else(|| "{}".to_owned(), |p| p.take().to_string()),
            // Plain integers, strings and unit variants always serialise.
            Err(_) => "{}".to_owned(),
        };
        NewJob { kind: self.kind().to_owned(), payload, max_attempts: self.max_attempts() }
    }

    /// The work a stored row describes.
    ///
    /// # Errors
    /// When the kind is unknown (written by a newer shipwatch?) or the payload does not fit it.
    pub fn from_row(kind: &str, payload: &str) -> anyhow::Result<Work> {
        let payload: serde_json::Value = serde_json::from_str(payload)
            .map_err(|e| anyhow::anyhow!("the payload of a `{kind}` job is not JSON: {e}"))?;
        serde_json::from_value(serde_json::json!({ "kind": kind, "payload": payload })).map_err(|e| {
            anyhow::anyhow!("a `{kind}` job that this shipwatch cannot read (written by a newer one?): {e}")
        })
    }

    /// The job that computes deploy `deploy_id`'s range.
    pub fn deploy_range(deploy_id: i64) -> NewJob {
        Work::DeployRange { deploy_id }.job()
    }

    /// The job that handles webhook delivery `delivery`.
    pub fn github_webhook(delivery: &str) -> NewJob {
        Work::GithubWebhook { delivery: delivery.to_owned() }.job()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_keeps_the_stored_form_rows_already_have() {
        // Rows written before the enum existed: the kinds and payloads as the store built them by hand.
        let rows = [
            ("deploy_range", r#"{"deploy_id":7}"#, Work::DeployRange { deploy_id: 7 }),
            ("process_event", r#"{"event":3}"#, Work::ProcessEvent { event: 3 }),
            ("release_ready", r#"{"deploy_id":7}"#, Work::ReleaseReady { deploy_id: 7 }),
            ("assign_group", r#"{"event":3,"group":2}"#, Work::AssignGroup { group: 2, event: 3 }),
            ("check_regression", r#"{"event":3,"group":2}"#, Work::CheckRegression { group: 2, event: 3 }),
            (
                "github_issue",
                r#"{"deploy":null,"group":2,"reason":"regressed"}"#,
                Work::GithubIssue { group: 2, reason: IssueReason::Regressed, deploy: None },
            ),
            ("github_webhook", r#"{"delivery":"d-1"}"#, Work::GithubWebhook { delivery: "d-1".into() }),
            ("github_pull_comment", r#"{"group":2}"#, Work::GithubPullComment { group: 2 }),
            ("github_pull_titles", r#"{"deploy_id":7}"#, Work::GithubPullTitles { deploy_id: 7 }),
        ];
        for (kind, payload, work) in rows {
            assert_eq!(Work::from_row(kind, payload).expect(kind), work);
            let job = work.job();
            assert_eq!(job.kind, kind);
            assert_eq!(Work::from_row(&job.kind, &job.payload).expect(kind), work, "round trip of {kind}");
        }
    }

    #[test]
    fn an_unknown_kind_or_a_wrong_payload_is_an_error_that_says_which() {
        let e = Work::from_row("compact_universe", "{}").expect_err("unknown");
        assert!(e.to_string().contains("compact_universe"), "{e}");
        let e = Work::from_row("process_event", r#"{"event":"x"}"#).expect_err("wrong type");
        assert!(e.to_string().contains("process_event"), "{e}");
    }
}
