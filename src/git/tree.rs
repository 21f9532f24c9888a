//! Reading a commit's tree without checking anything out: the file list (cached per tree id) and single files.

use anyhow::Context as _;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::Git;

/// The files of one tree, with an index by file name for suffix matching.
#[derive(Debug, Default)]
pub struct TreeFiles {
    pub tree_id: String,
    pub paths: Vec<String>,
    by_name: HashMap<String, Vec<usize>>,
}

impl TreeFiles {
    pub fn new(tree_id: String, paths: Vec<String>) -> TreeFiles {
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, p) in paths.iter().enumerate() {
            let name = p.rsplit('/').next().unwrap_or(p);
            by_name.entry(name.to_owned()).or_default().push(i);
        }
        TreeFiles { tree_id, paths, by_name }
    }

    pub fn contains(&self, path: &str) -> bool {
        self.by_name
            .get(path.rsplit('/').next().unwrap_or(path))
            .is_some_and(|ids| ids.iter().any(|&i| self.paths[i] == path))
    }

    /// Paths whose file name is `name`.
    pub fn named(&self, name: &str) -> impl Iterator<Item = &str> {
        self.by_name.get(name).into_iter().flatten().map(|&i| self.paths[i].as_str())
    }

    /// Paths ending with `suffix`, for manifests (`.gemspec`, …).
    pub fn with_suffix<'a>(&'a self, suffix: &'a str) -> impl Iterator<Item = &'a str> {
        self.paths.iter().map(String::as_str).filter(move |p| p.ends_with(suffix))
    }
}

/// File lists per tree id, so repeated frames at one commit list the tree once.
#[derive(Default)]
pub struct TreeCache {
    trees: Mutex<HashMap<String, Arc<TreeFiles>>>,
    max_trees: usize,
}

impl TreeCache {
    pub fn new(max_trees: usize) -> TreeCache {
        TreeCache { trees: Mutex::new(HashMap::new()), max_trees: max_trees.max(1) }
    }

    /// The files of `rev`'s tree.
    ///
    /// # Errors
    /// When `rev` is not a commit of the repository or git fails.
    pub async fn files(&self, git: &Git, repo: &Path, rev: &str) -> anyhow::Result<Arc<TreeFiles>> {
        let tree_id = String::from_utf8_lossy(
            &git.run(
                Some(repo),
                "resolving the tree",
                ["rev-parse", "--verify", "--end-of-options", &format!("{rev}^{{tree}}")],
            )
            .await?,
        )
        .trim()
        .to_owned();
        if let Some(t) = self.lock().get(&tree_id) {
            return Ok(t.clone());
        }
        let out = git
            .run(Some(repo), "listing the tree", ["ls-tree", "-r", "-z", "--name-only", "--full-tree", &tree_id])
            .await?;
        let paths: Vec<String> =
            out.split(|&b| b == 0).filter(|p| !p.is_empty()).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
        let files = Arc::new(TreeFiles::new(tree_id.clone(), paths));
        let mut trees = self.lock();
        if trees.len() >= self.max_trees {
            trees.clear();
        }
        trees.insert(tree_id, files.clone());
        Ok(files)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TreeFiles>>> {
        self.trees.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The contents of `path` at `rev`, or `None` when it does not exist there.
///
/// # Errors
/// When git cannot be run.
pub async fn read_file(git: &Git, repo: &Path, rev: &str, path: &str) -> anyhow::Result<Option<String>> {
    let out = git.output(Some(repo), ["cat-file", "blob", &format!("{rev}:{path}")]).await.context("reading a file")?;
    Ok((out.code == Some(0)).then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_by_name() {
        let t = TreeFiles::new("t".into(), vec!["a/b.py".into(), "c/b.py".into(), "d.py".into()]);
        assert!(t.contains("c/b.py"));
        assert!(!t.contains("b.py"));
        assert_eq!(t.named("b.py").collect::<Vec<_>>(), vec!["a/b.py", "c/b.py"]);
        assert_eq!(t.with_suffix(".py").count(), 3);
    }
}
