//! Projects: creating, finding, and their settings.
//!
//! Shared by both backends: compiled once inside each with `Db` and `Backend` its own (see `store/mod.rs`).

use super::{Backend, Db};
use crate::store::*;

#[async_trait::async_trait]
impl crate::store::ProjectStore for Backend {
    async fn create_project(&self, p: NewProject, now: i64) -> StoreResult<Project> {
        let project = sqlx::query_as::<Db, Project>(
            "insert into projects (name, repo_url, github_repo, ingest_key, deploy_token, created_at) \
             values ($1, $2, $3, $4, $5, $6) returning *",
        )
        .bind(&p.name)
        .bind(&p.repo_url)
        .bind(&p.github_repo)
        .bind(&p.ingest_key)
        .bind(&p.deploy_token)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("a project named `{}` already exists", p.name)),
            other => other,
        })?;
        Ok(project)
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        Ok(sqlx::query_as::<Db, Project>("select * from projects order by id").fetch_all(&self.read).await?)
    }

    async fn project_by_id(&self, id: i64) -> StoreResult<Option<Project>> {
        Ok(sqlx::query_as::<Db, Project>("select * from projects where id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?)
    }

    async fn project_by_name(&self, name: &str) -> StoreResult<Option<Project>> {
        Ok(sqlx::query_as::<Db, Project>("select * from projects where name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await?)
    }

    async fn set_project_settings(&self, project_id: i64, settings: &str) -> StoreResult<()> {
        let done = sqlx::query("update projects set settings = $1 where id = $2")
            .bind(settings)
            .bind(project_id)
            .execute(&self.write)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn projects_for_github_repo(&self, repo: &str) -> StoreResult<Vec<Project>> {
        Ok(sqlx::query_as::<Db, Project>("select * from projects where lower(github_repo) = lower($1) order by id")
            .bind(repo)
            .fetch_all(&self.read)
            .await?)
    }
}
