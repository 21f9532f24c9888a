//! Reading a commit's tree without checking anything out: the file list (cached per commit) and single files.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::objects::ObjectReader;
use super::Git;
use crate::cache::Bounded;

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

/// The key a commit's listing is kept under (its [`TreeFiles::tree_id`]).
pub fn commit_key(sha: &str) -> String {
    format!("commit:{sha}")
}

/// File lists per commit, so repeated frames at one commit list the tree once.
pub struct TreeCache {
    trees: Bounded<String, Arc<TreeFiles>>,
}

impl TreeCache {
    pub fn new(max_trees: usize) -> TreeCache {
        TreeCache { trees: Bounded::new(max_trees) }
    }

    /// The files of the commit `sha` (a full commit id), when listed before.
    pub fn get(&self, sha: &str) -> Option<Arc<TreeFiles>> {
        self.trees.get(&commit_key(sha))
    }

    /// Keeps the listing of the commit `sha`.
    pub fn insert(&self, sha: &str, paths: Vec<String>) -> Arc<TreeFiles> {
        let files = Arc::new(TreeFiles::new(commit_key(sha), paths));
        self.trees.insert(commit_key(sha), files.clone());
        files
    }
}

/// The contents of several files at `rev`, read by one [`ObjectReader`] (see [`ObjectReader::read_files`]); files
/// that do not exist there are left out of the answer.
///
/// # Errors
/// When git cannot be run or its answer cannot be read.
pub async fn read_files(
    git: &Git,
    repo: &Path,
    rev: &str,
    paths: &[String],
) -> anyhow::Result<HashMap<String, String>> {
    if paths.is_empty() {
        return Ok(HashMap::new());
    }
    ObjectReader::open(git, repo)?.read_files(rev, paths).await
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
