//! A project's assignment settings: what they hold, how they are checked when set, and how stored ones are read
//! (an error names the field; nothing defaults silently).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tracing::warn;

use super::paths::CodeMapping;

/// A project's assignment settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Settings {
    /// Explicit stack-trace prefix → repository prefix mappings, tried first.
    pub code_mappings: Vec<CodeMapping>,
    /// E-mail address → GitHub login, tried before anything else.
    pub logins: BTreeMap<String, String>,
    /// Who owns an error nobody else can be named for.
    pub default_assignee: Option<String>,
    /// More automation accounts (matched in `name <email>`), on top of `[bot]`, dependabot, renovate, ….
    pub bot_patterns: Vec<String>,
    /// How many repository frames, from the crash outwards, may supply a suspect (default 5).
    pub max_suspect_frames: Option<usize>,
    /// More labels for the GitHub issues shipwatch creates (`shipwatch` is always one, and `new` or `regression`
    /// says what the issue is about).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// The label for an error first seen in a release (default `new`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_label: Option<String>,
    /// The label for an error that came back after being resolved (default `regression`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regression_label: Option<String>,
    /// Comment on the pull request a new error's suspect commit came from, listing the errors attributed to it
    /// (one comment per pull request, edited as more arrive). Off by default.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pull_request_comments: bool,
}

/// What is wrong with settings: the field (a JSON path such as `code_mappings[0].stack_prefix`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SettingsError {
    pub field: String,
    pub reason: String,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> SettingsError {
    SettingsError { field: field.into(), reason: reason.into() }
}

impl Settings {
    /// Stored settings (JSON); the error names the field that does not fit.
    ///
    /// # Errors
    /// [`SettingsError`] for text that is not JSON or a field of the wrong type.
    pub fn parse(json: &str) -> Result<Settings, SettingsError> {
        if json.trim().is_empty() {
            return Ok(Settings::default());
        }
        let mut de = serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            bad(if path == "." { "settings".to_owned() } else { path }, e.inner().to_string())
        })
    }

    /// A project's stored settings for running its jobs: the defaults, with a warning naming the field, when
    /// they cannot be read (they are checked when set, so only a hand-edited database gets here).
    pub fn of_project(project_id: i64, json: &str) -> Settings {
        Settings::parse(json).unwrap_or_else(|e| {
            warn!(project_id, field = %e.field, reason = %e.reason, "stored project settings unreadable; using defaults");
            Settings::default()
        })
    }

    /// Checks settings before they are stored.
    ///
    /// # Errors
    /// [`SettingsError`] naming the first field that is wrong.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (i, m) in self.code_mappings.iter().enumerate() {
            if m.stack_prefix.is_empty() {
                return Err(bad(format!("code_mappings[{i}].stack_prefix"), "must not be empty"));
            }
        }
        for (email, login) in &self.logins {
            if !email.contains('@') {
                return Err(bad("logins", format!("`{email}` is not an e-mail address")));
            }
            if !valid_login(login) {
                return Err(bad("logins", format!("`{login}` is not a GitHub login")));
            }
        }
        if let Some(d) = self.default_assignee.as_deref() {
            if !valid_login(d.trim_start_matches('@')) {
                return Err(bad("default_assignee", format!("`{d}` is not a GitHub login")));
            }
        }
        let bad_label = |l: &String| l.trim().is_empty() || l.chars().count() > 50 || l.contains(',');
        if self.labels.as_ref().is_some_and(|labels| labels.iter().any(bad_label)) {
            return Err(bad("labels", "each label must be 1 to 50 characters without commas"));
        }
        for (field, label) in [("new_label", &self.new_label), ("regression_label", &self.regression_label)] {
            if label.as_ref().is_some_and(bad_label) {
                return Err(bad(field, "a label is 1 to 50 characters without commas"));
            }
        }
        if self.max_suspect_frames.is_some_and(|n| !(1..=50).contains(&n)) {
            return Err(bad("max_suspect_frames", "must be between 1 and 50"));
        }
        Ok(())
    }
}

/// A GitHub login or `org/team`: letters, digits and single hyphens, at most 39 characters per part.
fn valid_login(s: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 39
            && !p.starts_with('-')
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    match s.split_once('/') {
        Some((org, team)) => {
            part(org) && !team.is_empty() && team.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
        None => part(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_settings_that_do_not_fit_name_the_field() {
        assert_eq!(Settings::parse("").expect("empty"), Settings::default());
        assert_eq!(Settings::parse("{}").expect("empty object"), Settings::default());
        let e = Settings::parse(r#"{"max_suspect_frames": "five"}"#).expect_err("wrong type");
        assert_eq!(e.field, "max_suspect_frames");
        let e = Settings::parse(r#"{"code_mappings": [{"stack_prefix": 3, "repo_prefix": ""}]}"#).expect_err("type");
        assert_eq!(e.field, "code_mappings[0].stack_prefix");
        let e = Settings::parse("not json").expect_err("not json");
        assert_eq!(e.field, "settings");
        let ok = Settings::parse(r#"{"labels": ["bug"], "logins": {"a@b.c": "octocat"}}"#).expect("fits");
        assert_eq!(ok.labels, Some(vec!["bug".to_owned()]));
    }

    #[test]
    fn validation_names_the_first_wrong_field() {
        let mut s = Settings::default();
        assert_eq!(s.validate(), Ok(()));
        s.max_suspect_frames = Some(0);
        assert_eq!(s.validate().expect_err("0 frames").field, "max_suspect_frames");
        s.max_suspect_frames = None;
        s.logins.insert("alice@example.com".into(), "not a login!".into());
        assert_eq!(s.validate().expect_err("login").field, "logins");
        s.logins.clear();
        s.default_assignee = Some("@acme/payments".into());
        assert_eq!(s.validate(), Ok(()), "a team with an @");
        s.labels = Some(vec!["a,b".into()]);
        assert_eq!(s.validate().expect_err("comma").field, "labels");
    }
}
