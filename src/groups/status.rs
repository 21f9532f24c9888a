//! The life of an error group: its statuses (one string form each, as stored), the changes that can happen to it,
//! and which status each change leads to from each status.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupStatus {
    Unresolved,
    Resolved,
    /// Resolved when the next deploy (of one environment, or any) is ready.
    ResolvedInNextRelease,
    /// Kept, counted, never reopened or announced.
    Ignored,
}

impl GroupStatus {
    pub const ALL: [GroupStatus; 4] =
        [GroupStatus::Unresolved, GroupStatus::Resolved, GroupStatus::ResolvedInNextRelease, GroupStatus::Ignored];

    /// The form stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Unresolved => "unresolved",
            GroupStatus::Resolved => "resolved",
            GroupStatus::ResolvedInNextRelease => "resolved_in_next_release",
            GroupStatus::Ignored => "ignored",
        }
    }

    pub fn parse(s: &str) -> Option<GroupStatus> {
        GroupStatus::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

impl std::fmt::Display for GroupStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can happen to a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Someone resolved it (now, or with the commit that fixes it).
    Resolve,
    ResolveInNextRelease,
    Unresolve,
    Ignore,
    /// An event from a build that contains the resolution arrived.
    Regress,
    /// Its GitHub issue was closed.
    IssueClosed,
    /// Its GitHub issue was reopened (shipwatch's own reopening of a regression arrives here too).
    IssueReopened,
    /// A deploy of the environment it waits for (or of any) is ready.
    ReleaseReady,
}

/// What a status change means for the group's GitHub issue, when shipwatch made it: the issue follows people's
/// changes and a release's resolution, never GitHub's own (that would echo).
pub fn issue_follows(change: Change, to: GroupStatus) -> Option<bool> {
    match (change, to) {
        (Change::Resolve | Change::Ignore | Change::ReleaseReady, GroupStatus::Resolved | GroupStatus::Ignored) => {
            Some(false)
        }
        (Change::Unresolve, GroupStatus::Unresolved) => Some(true),
        _ => None,
    }
}

/// Where a change leads from a status: a new status to write, or nothing to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    To(GroupStatus),
    Unchanged,
}

/// The status `change` leads to from `from`. People's own actions always apply (resolving a resolved group again
/// moves its baseline to what is deployed now); what comes from outside (an event, GitHub) changes only what it is
/// about: a regression reopens only a resolved group, a closed issue resolves only a group not resolved already,
/// a reopened issue unresolves only a group not unresolved already.
pub fn next(from: GroupStatus, change: Change) -> Next {
    use GroupStatus::{Ignored, Resolved, ResolvedInNextRelease, Unresolved};
    match (change, from) {
        (Change::Resolve, _) => Next::To(Resolved),
        (Change::ResolveInNextRelease, _) => Next::To(ResolvedInNextRelease),
        (Change::Unresolve, _) => Next::To(Unresolved),
        (Change::Ignore, _) => Next::To(Ignored),
        (Change::Regress, Resolved) => Next::To(Unresolved),
        (Change::Regress, Unresolved | ResolvedInNextRelease | Ignored) => Next::Unchanged,
        // Closing the issue of an ignored group (shipwatch closes it itself when the group is ignored) keeps it ignored.
        (Change::IssueClosed, Resolved | Ignored) => Next::Unchanged,
        (Change::IssueClosed, Unresolved | ResolvedInNextRelease) => Next::To(Resolved),
        (Change::IssueReopened, Unresolved) => Next::Unchanged,
        (Change::IssueReopened, Resolved | ResolvedInNextRelease | Ignored) => Next::To(Unresolved),
        (Change::ReleaseReady, ResolvedInNextRelease) => Next::To(Resolved),
        (Change::ReleaseReady, Unresolved | Resolved | Ignored) => Next::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::GroupStatus::{Ignored, Resolved, ResolvedInNextRelease, Unresolved};
    use super::*;

    #[test]
    fn every_status_has_one_stored_form() {
        for s in GroupStatus::ALL {
            assert_eq!(GroupStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).expect("json"), serde_json::json!(s.as_str()));
        }
        assert_eq!(GroupStatus::parse("Resolved"), None);
    }

    #[test]
    fn peoples_actions_always_apply() {
        for from in GroupStatus::ALL {
            assert_eq!(next(from, Change::Resolve), Next::To(Resolved), "{from}");
            assert_eq!(next(from, Change::ResolveInNextRelease), Next::To(ResolvedInNextRelease), "{from}");
            assert_eq!(next(from, Change::Unresolve), Next::To(Unresolved), "{from}");
            assert_eq!(next(from, Change::Ignore), Next::To(Ignored), "{from}");
        }
    }

    #[test]
    fn the_issue_follows_peoples_changes_and_never_githubs() {
        assert_eq!(issue_follows(Change::Resolve, Resolved), Some(false), "closed");
        assert_eq!(issue_follows(Change::Ignore, Ignored), Some(false), "closed");
        assert_eq!(issue_follows(Change::ReleaseReady, Resolved), Some(false), "closed when the release resolves it");
        assert_eq!(issue_follows(Change::Unresolve, Unresolved), Some(true), "reopened");
        assert_eq!(issue_follows(Change::ResolveInNextRelease, ResolvedInNextRelease), None, "not yet");
        assert_eq!(issue_follows(Change::IssueClosed, Resolved), None);
        assert_eq!(issue_follows(Change::IssueReopened, Unresolved), None);
        assert_eq!(issue_follows(Change::Regress, Unresolved), None, "the regression job reopens with a comment");
    }

    #[test]
    fn only_a_resolved_group_regresses() {
        assert_eq!(next(Resolved, Change::Regress), Next::To(Unresolved));
        for from in [Unresolved, ResolvedInNextRelease, Ignored] {
            assert_eq!(next(from, Change::Regress), Next::Unchanged, "{from}: an ignored group stays ignored");
        }
    }

    #[test]
    fn only_a_group_waiting_for_the_next_release_is_resolved_by_it() {
        assert_eq!(next(ResolvedInNextRelease, Change::ReleaseReady), Next::To(Resolved));
        for from in [Unresolved, Resolved, Ignored] {
            assert_eq!(next(from, Change::ReleaseReady), Next::Unchanged, "{from}");
        }
    }

    #[test]
    fn github_changes_what_differs_and_nothing_else() {
        assert_eq!(next(Resolved, Change::IssueClosed), Next::Unchanged, "keeps the baseline of the first resolve");
        assert_eq!(next(Unresolved, Change::IssueClosed), Next::To(Resolved));
        assert_eq!(next(Ignored, Change::IssueClosed), Next::Unchanged, "the echo of ignoring in shipwatch");
        assert_eq!(next(ResolvedInNextRelease, Change::IssueClosed), Next::To(Resolved));
        assert_eq!(next(Unresolved, Change::IssueReopened), Next::Unchanged, "shipwatch's own reopening");
        assert_eq!(next(Resolved, Change::IssueReopened), Next::To(Unresolved));
        assert_eq!(next(ResolvedInNextRelease, Change::IssueReopened), Next::To(Unresolved));
    }
}
