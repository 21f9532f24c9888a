//! A deploy's statuses: where its processing stands, and what kind of range it shipped. One string form each, as
//! stored and shown.

use serde::{Deserialize, Serialize};

/// Where a deploy's processing stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployStatus {
    /// Recorded; the range is being computed.
    Pending,
    Ready,
    /// The range could not be computed; the deploy carries the reason.
    Failed,
}

/// What a deploy's range is, against the previous deploy of its environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RangeStatus {
    /// The environment's first deploy: no range.
    Initial,
    /// The previous commit is an ancestor: the commits in between.
    Forward,
    /// The deployed commit is an ancestor of the previous one: nothing new.
    Rollback,
    /// Neither is an ancestor (a force-push): the commits not in the previous deploy.
    Diverged,
    /// The same commit again.
    Redeploy,
    /// The previous commit given is not in the repository.
    PreviousMissing,
}

impl DeployStatus {
    pub const ALL: [DeployStatus; 3] = [DeployStatus::Pending, DeployStatus::Ready, DeployStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            DeployStatus::Pending => "pending",
            DeployStatus::Ready => "ready",
            DeployStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeployStatus> {
        DeployStatus::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl RangeStatus {
    pub const ALL: [RangeStatus; 6] = [
        RangeStatus::Initial,
        RangeStatus::Forward,
        RangeStatus::Rollback,
        RangeStatus::Diverged,
        RangeStatus::Redeploy,
        RangeStatus::PreviousMissing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RangeStatus::Initial => "initial",
            RangeStatus::Forward => "forward",
            RangeStatus::Rollback => "rollback",
            RangeStatus::Diverged => "diverged",
            RangeStatus::Redeploy => "redeploy",
            RangeStatus::PreviousMissing => "previous_missing",
        }
    }

    pub fn parse(s: &str) -> Option<RangeStatus> {
        RangeStatus::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether the range has a base to compare against on GitHub.
    pub fn comparable(self) -> bool {
        matches!(self, RangeStatus::Forward | RangeStatus::Diverged | RangeStatus::Rollback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_one_stored_form() {
        for s in DeployStatus::ALL {
            assert_eq!(DeployStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).expect("json"), serde_json::json!(s.as_str()));
        }
        for r in RangeStatus::ALL {
            assert_eq!(RangeStatus::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).expect("json"), serde_json::json!(r.as_str()));
        }
        assert_eq!(RangeStatus::parse("sideways"), None);
    }
}
