//! Projects: one application and its repository, with the keys that let its SDKs and its deploy pipeline in.

use crate::assign::settings::SettingsError;
use crate::assign::Settings;
use crate::domain::{GithubRepo, Invalid, ProjectName, RepoUrl};
use crate::store::{random_hex, DynStore, NewProject, Project, Store, StoreError, StoreResult};

/// Why a project could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn field(field: &'static str) -> impl Fn(Invalid) -> ProjectError {
    move |e| ProjectError::Invalid { field: field.to_owned(), reason: e.0 }
}

impl From<SettingsError> for ProjectError {
    fn from(e: SettingsError) -> Self {
        ProjectError::Invalid { field: e.field, reason: e.reason }
    }
}

/// The projects service: what the HTTP layer may read and change about projects.
pub struct Projects {
    store: DynStore,
}

impl Projects {
    pub fn new(store: DynStore) -> Projects {
        Projects { store }
    }

    /// See [`create`].
    ///
    /// # Errors
    /// As [`create`].
    pub async fn create(
        &self,
        name: &str,
        repo: &str,
        github: Option<&str>,
        allow_local: bool,
        now_ms: i64,
    ) -> Result<Project, ProjectError> {
        create(self.store.as_ref(), name, repo, github, allow_local, now_ms).await
    }

    /// By name or numeric id.
    pub async fn find(&self, name_or_id: &str) -> StoreResult<Option<Project>> {
        find(self.store.as_ref(), name_or_id).await
    }

    pub async fn by_id(&self, id: i64) -> StoreResult<Option<Project>> {
        self.store.project_by_id(id).await
    }

    pub async fn list(&self) -> StoreResult<Vec<Project>> {
        self.store.list_projects().await
    }

    /// The project's stored settings.
    ///
    /// # Errors
    /// [`SettingsError`] naming the field when what is stored cannot be read.
    pub fn settings(&self, project: &Project) -> Result<Settings, SettingsError> {
        Settings::parse(&project.settings)
    }

    /// Checks and stores new settings.
    ///
    /// # Errors
    /// [`ProjectError::Invalid`] naming the field; store errors.
    pub async fn set_settings(&self, project: &Project, settings: &Settings) -> Result<(), ProjectError> {
        settings.validate()?;
        let json = serde_json::to_string(settings).map_err(|e| StoreError::Other(e.into()))?;
        Ok(self.store.set_project_settings(project.id, &json).await?)
    }
}

/// Validates and creates a project with fresh keys. `github` defaults to the repository's `owner/name` when the
/// clone URL is on github.com.
///
/// # Errors
/// [`ProjectError::Invalid`] naming the bad field; `Conflict` when the name is taken.
pub async fn create(
    store: &dyn Store,
    name: &str,
    repo: &str,
    github: Option<&str>,
    allow_local: bool,
    now_ms: i64,
) -> Result<Project, ProjectError> {
    let name = ProjectName::parse(name).map_err(field("name"))?;
    let repo = RepoUrl::parse(repo, allow_local).map_err(field("repo"))?;
    let github = match github.filter(|g| !g.is_empty()) {
        Some(g) => Some(GithubRepo::parse(g).map_err(field("github"))?),
        None => repo.github_repo(),
    };
    let fresh = |n| random_hex(n).map_err(|e| ProjectError::Store(StoreError::Other(e)));
    let project = NewProject {
        name: name.as_str().to_owned(),
        repo_url: repo.as_str().to_owned(),
        github_repo: github.map(|g| g.as_str().to_owned()),
        ingest_key: fresh(16)?,
        deploy_token: format!("swd_{}", fresh(24)?),
    };
    Ok(store.create_project(project, now_ms).await?)
}

/// The Sentry-style DSN SDKs are configured with: `http://<ingest-key>@<host>/<project-id>`.
pub fn dsn(public_url: &str, project: &Project) -> String {
    let (scheme, rest) = public_url.split_once("://").unwrap_or(("http", public_url));
    format!("{scheme}://{}@{}/{}", project.ingest_key, rest.trim_end_matches('/'), project.id)
}

/// Finds a project by name or numeric id.
///
/// # Errors
/// Store errors only; an unknown project is `Ok(None)`.
pub async fn find(store: &dyn Store, name_or_id: &str) -> Result<Option<Project>, StoreError> {
    match name_or_id.parse::<i64>() {
        Ok(id) => store.project_by_id(id).await,
        Err(_) => store.project_by_name(name_or_id).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_has_key_host_and_id() {
        let p = Project {
            id: 42,
            name: "web".into(),
            repo_url: "https://github.com/acme/web".into(),
            github_repo: None,
            ingest_key: "abc".into(),
            deploy_token: "t".into(),
            created_at: 0,
            settings: "{}".into(),
        };
        assert_eq!(dsn("http://127.0.0.1:8080", &p), "http://abc@127.0.0.1:8080/42");
        assert_eq!(dsn("https://sw.example.com/", &p), "https://abc@sw.example.com/42");
    }
}
