//! Per-project bare mirrors under the data directory: created once, fetched when a deploy needs commits it lacks.

use anyhow::{bail, Context as _};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tracing::{info, instrument};

use super::Git;

/// Where a fetch gets a short-lived token for a GitHub repository (a GitHub App's installation token) when no
/// fixed git token is configured.
#[async_trait::async_trait]
pub trait FetchToken: Send + Sync {
    /// A token with read access to `repo` (`owner/name`), if there is one.
    ///
    /// # Errors
    /// When one should exist but could not be had (GitHub refused or did not answer).
    async fn fetch_token(&self, repo: &str) -> anyhow::Result<Option<crate::config::Secret>>;
}

/// The mirrors of all projects, with one lock per mirror so that two jobs never fetch into it at once.
pub struct Mirrors {
    root: PathBuf,
    git: Git,
    tokens: Option<Arc<dyn FetchToken>>,
    locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// Commits known to be in a mirror: a fetch only adds, so once there a commit needs no `git` to ask again.
    present: crate::cache::Bounded<(i64, String), ()>,
}

impl Mirrors {
    pub fn new(root: PathBuf, git: Git) -> Mirrors {
        Mirrors {
            root,
            git,
            tokens: None,
            locks: Mutex::new(HashMap::new()),
            present: crate::cache::Bounded::new(10_000),
        }
    }

    /// Fetches from GitHub remotes with tokens from `tokens` (a GitHub App's installation tokens) when the git
    /// runner has no token of its own. They go only where a configured token would: the token hosts, over https.
    pub fn with_fetch_tokens(mut self, tokens: Arc<dyn FetchToken>) -> Mirrors {
        self.tokens = Some(tokens);
        self
    }

    /// The git runner for fetching `url`: with an installation token when one applies.
    async fn git_for(&self, url: &str) -> anyhow::Result<Git> {
        let Some(tokens) = &self.tokens else { return Ok(self.git.clone()) };
        let Some(repo) = self.git.token_repo(url) else { return Ok(self.git.clone()) };
        match tokens.fetch_token(&repo).await? {
            Some(token) => Ok(self.git.with_token(token)),
            None => Ok(self.git.clone()),
        }
    }

    pub fn git(&self) -> &Git {
        &self.git
    }

    /// Where the mirror of `project_id` lives.
    pub fn path(&self, project_id: i64) -> PathBuf {
        self.root.join(format!("{project_id}.git"))
    }

    fn lock_for(&self, project_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        locks.entry(project_id).or_default().clone()
    }

    /// Lets git pack and prune the mirror of `project_id` when it thinks it is worth it (`git gc --auto`), under
    /// the mirror's lock. `false` when there is no mirror.
    ///
    /// # Errors
    /// When git fails.
    pub async fn gc_auto(&self, project_id: i64) -> anyhow::Result<bool> {
        let lock = self.lock_for(project_id);
        let _guard = lock.lock().await;
        let path = self.path(project_id);
        if !path.join("HEAD").exists() {
            return Ok(false);
        }
        self.git.run(Some(&path), "git gc --auto", ["gc", "--auto", "--quiet"]).await?;
        Ok(true)
    }

    /// Makes sure the mirror exists and has every commit in `wanted`, fetching from `url` when one is missing.
    /// Returns whether a fetch happened.
    ///
    /// # Errors
    /// When the mirror cannot be created or the fetch fails (unreachable remote, bad credentials, timeout).
    #[instrument(skip_all, fields(project_id = project_id))]
    pub async fn ensure_commits(&self, project_id: i64, url: &str, wanted: &[&str]) -> anyhow::Result<bool> {
        // Every assignment asks for its deploy's commit: known ones cost no lock and no process.
        // (Unless the mirror itself is gone: an operator may delete one to have it fetched again.)
        if wanted.iter().all(|sha| self.present.get(&(project_id, (*sha).to_owned())).is_some())
            && self.path(project_id).join("HEAD").exists()
        {
            return Ok(false);
        }
        let lock = self.lock_for(project_id);
        let _guard = lock.lock().await;
        let path = self.path(project_id);
        if !path.join("HEAD").exists() {
            self.create(&path).await?;
        }
        let mut all_present = true;
        for sha in wanted {
            if super::range::commit_exists(&self.git, &path, sha).await? {
                self.present.insert((project_id, (*sha).to_owned()), ());
            } else {
                all_present = false;
                break;
            }
        }
        if all_present {
            return Ok(false);
        }
        self.fetch_locked(&path, url).await?;
        Ok(true)
    }

    /// Fetches all branches, tags and pull-request heads from `url`.
    ///
    /// # Errors
    /// As [`Mirrors::ensure_commits`].
    pub async fn fetch(&self, project_id: i64, url: &str) -> anyhow::Result<()> {
        let lock = self.lock_for(project_id);
        let _guard = lock.lock().await;
        let path = self.path(project_id);
        if !path.join("HEAD").exists() {
            self.create(&path).await?;
        }
        self.fetch_locked(&path, url).await
    }

    async fn create(&self, path: &Path) -> anyhow::Result<()> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .with_context(|| format!("creating the mirror directory {}", self.root.display()))?;
        // Initialised aside and renamed into place, so a crash never leaves a half-made mirror at `path`.
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        if tmp.exists() {
            tokio::fs::remove_dir_all(&tmp).await.ok();
        }
        let tmp_arg = tmp.as_os_str().to_owned();
        self.git
            .run(
                None,
                "creating a mirror",
                [std::ffi::OsStr::new("init"), "--bare".as_ref(), "--quiet".as_ref(), &tmp_arg],
            )
            .await?;
        if path.exists() {
            // Left behind by a crash before this mirror was complete.
            tokio::fs::remove_dir_all(path).await.ok();
        }
        tokio::fs::rename(&tmp, path).await.with_context(|| format!("moving the new mirror to {}", path.display()))?;
        Ok(())
    }

    async fn fetch_locked(&self, path: &Path, url: &str) -> anyhow::Result<()> {
        let local = url.starts_with('/') || url.starts_with("file://");
        if local && !self.git.allow_local() {
            bail!("fetching from a local repository is refused: start the server with --allow-local-repos");
        }
        info!(mirror = %path.display(), "fetching");
        let git = self.git_for(url).await?;
        git.run(
            Some(path),
            "fetching the repository",
            [
                "fetch",
                "--quiet",
                "--prune",
                "--force",
                "--no-tags",
                "--end-of-options",
                url,
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
                "+refs/pull/*/head:refs/pull/*/head",
            ],
        )
        .await?;
        // Measured 2–4× faster history walks and blame on large repositories.
        self.git
            .run(Some(path), "writing the commit graph", ["commit-graph", "write", "--reachable", "--changed-paths"])
            .await?;
        Ok(())
    }
}
