//! Mapping a frame's path, as the runtime printed it, to a file of the repository at one commit — or saying why it
//! is not one, or that several files fit equally well. Never a guess.

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::LazyLock;

use crate::git::tree::TreeFiles;

/// An explicit mapping of the project: paths starting with `stack_prefix` are at `repo_prefix` in the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CodeMapping {
    pub stack_prefix: String,
    pub repo_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    InRepo { path: String, how: String },
    NotInRepo { why: String },
    Ambiguous { candidates: Vec<String>, why: String },
}

impl Mapped {
    pub fn repo_path(&self) -> Option<&str> {
        match self {
            Mapped::InRepo { path, .. } => Some(path),
            _ => None,
        }
    }

    pub fn description(&self) -> &str {
        match self {
            Mapped::InRepo { how, .. } => how,
            Mapped::NotInRepo { why } | Mapped::Ambiguous { why, .. } => why,
        }
    }
}

/// Where the packages a repository defines live in it, read from its manifests at one commit.
#[derive(Debug, Default, Clone)]
pub struct Packages {
    /// Python import package (directory name) → its directories (next to a pyproject.toml/setup.py/setup.cfg).
    pub python: HashMap<String, Vec<String>>,
    /// npm package name → directory of its package.json.
    pub node: HashMap<String, String>,
    /// Go module path → directory of its go.mod.
    pub go: HashMap<String, String>,
    /// Cargo package name (`-` and `_` alike) → directory of its Cargo.toml.
    pub cargo: HashMap<String, String>,
    /// Gem name → directory of its gemspec.
    pub gems: HashMap<String, String>,
}

/// The manifest files `Packages::from_manifests` wants to read.
pub fn manifest_paths(tree: &TreeFiles) -> Vec<String> {
    let vendored = |p: &str| p.split('/').any(|c| c == "node_modules" || c == "vendor");
    let mut out: Vec<String> = ["package.json", "go.mod", "Cargo.toml"]
        .iter()
        .flat_map(|name| tree.named(name))
        .chain(tree.with_suffix(".gemspec"))
        .filter(|p| !vendored(p))
        .map(str::to_owned)
        .collect();
    out.sort();
    out.truncate(500);
    out
}

/// The directory a package's file was found in, for the explanation: `path` less `rest`.
fn dir_of_package(path: &str, rest: &str) -> String {
    path.strip_suffix(rest).map(|d| d.trim_end_matches('/').to_owned()).unwrap_or_else(|| dir_of(path))
}

fn dir_of(path: &str) -> String {
    path.rsplit_once('/').map(|(d, _)| d.to_owned()).unwrap_or_default()
}

fn join(dir: &str, rest: &str) -> String {
    if dir.is_empty() {
        rest.to_owned()
    } else if rest.is_empty() {
        dir.to_owned()
    } else {
        format!("{dir}/{rest}")
    }
}

static GO_MODULE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?m)^module\s+(\S+)").expect("valid regex literal"));
static CARGO_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?ms)^\[package\][^\[]*?^\s*name\s*=\s*"([^"]+)""#).expect("valid regex literal"));
static GEM_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"\.name\s*=\s*["']([^"']+)["']"#).expect("valid regex literal"));

impl Packages {
    /// Builds the package index from the tree and the manifests' contents (`path → text`).
    pub fn from_manifests(tree: &TreeFiles, manifests: &HashMap<String, String>) -> Packages {
        let mut p = Packages::default();
        // Python: an import package is a directory with __init__.py whose parent (or its `src/`) has a manifest.
        let python_roots: Vec<String> =
            ["pyproject.toml", "setup.py", "setup.cfg"].iter().flat_map(|m| tree.named(m)).map(dir_of).collect();
        for init in tree.named("__init__.py") {
            let pkg_dir = dir_of(init);
            let (parent, name) = match pkg_dir.rsplit_once('/') {
                Some((parent, name)) => (parent.to_owned(), name.to_owned()),
                None => (String::new(), pkg_dir.clone()),
            };
            let root = parent.strip_suffix("/src").or_else(|| (parent == "src").then_some("")).unwrap_or(&parent);
            if python_roots.iter().any(|r| r == root || *r == parent) {
                p.python.entry(name).or_default().push(pkg_dir);
            }
        }
        for (path, text) in manifests {
            let dir = dir_of(path);
            if path.ends_with("package.json") {
                if let Some(name) = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_owned))
                {
                    p.node.insert(name, dir);
                }
            } else if path.ends_with("go.mod") {
                if let Some(c) = GO_MODULE.captures(text) {
                    p.go.insert(c[1].to_owned(), dir);
                }
            } else if path.ends_with("Cargo.toml") {
                if let Some(c) = CARGO_NAME.captures(text) {
                    p.cargo.insert(c[1].replace('-', "_"), dir);
                }
            } else if path.ends_with(".gemspec") {
                if let Some(c) = GEM_NAME.captures(text) {
                    p.gems.insert(c[1].to_owned(), dir);
                }
            }
        }
        p
    }
}

/// Normalises a printed path to repository-style components: URL schemes (`file://`, `webpack:///`, `app:///`,
/// `http://host/`), query strings, Windows drives and backslashes, `.` and `..` (never above the root).
pub fn normalise(raw: &str) -> Vec<String> {
    let mut s = raw.trim();
    for scheme in ["file://", "webpack-internal:///", "webpack:///", "app:///", "app://"] {
        if let Some(rest) = s.strip_prefix(scheme) {
            s = rest;
        }
    }
    if let Some(rest) = s.strip_prefix("webpack://") {
        // `webpack://<namespace>/path`
        s = rest.split_once('/').map_or(rest, |(_, p)| p);
    } else if let Some(rest) = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://")) {
        s = rest.split_once('/').map_or("", |(_, p)| p);
    }
    s = s.split(['?', '#']).next().unwrap_or_default();
    let owned = s.replace('\\', "/");
    let mut s = owned.as_str();
    let b = s.as_bytes();
    if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
        s = &s[2..];
    }
    let mut parts: Vec<String> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." | "~" => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c.to_owned()),
        }
    }
    parts
}

/// Where installed code lives: the package it belongs to and the path inside it.
enum Installed {
    Python(String, String),
    Node(String, String),
    Go(String, String),
    Cargo(String, String),
    Gem(String, String),
    /// A `.go` file printed by import path (`-trimpath` builds, GOPATH checkouts, vendored copies): the components
    /// from the hosting domain on (`github.com/org/repo/cmd/root.go`).
    GoImport(Vec<String>),
    /// A runtime's own library: never the repository's.
    Runtime(&'static str),
}

fn strip_version(s: &str) -> Option<&str> {
    // `serde_json-1.0.100` → `serde_json`, `rack-3.0.8` → `rack`, and a gem built for a platform:
    // `puma-6.4.2-java` (JRuby), `nokogiri-1.15.4-x86_64-linux` → the name before the last `-` and a digit.
    let (at, _) = s.rmatch_indices('-').find(|(i, _)| s[i + 1..].starts_with(|c: char| c.is_ascii_digit()))?;
    Some(&s[..at]).filter(|name| !name.is_empty())
}

fn installed(parts: &[String]) -> Option<Installed> {
    let at = |name: &str| parts.iter().rposition(|c| c == name);
    let rest = |from: usize| parts.get(from..).map(|r| r.join("/")).unwrap_or_default();
    if let Some(i) = at("site-packages").or_else(|| at("dist-packages")) {
        // An egg installs into a directory of its own: `site-packages/acme_shop-2.0-py3.11.egg/shop/cart.py`.
        let i = if parts.get(i + 1).is_some_and(|c| c.ends_with(".egg")) { i + 1 } else { i };
        let pkg = parts.get(i + 1)?.trim_end_matches(".py").to_owned();
        return Some(Installed::Python(pkg, rest(i + 2)));
    }
    if let Some(i) = at("node_modules") {
        let first = parts.get(i + 1)?;
        return Some(if first.starts_with('@') {
            Installed::Node(format!("{first}/{}", parts.get(i + 2)?), rest(i + 3))
        } else {
            Installed::Node(first.clone(), rest(i + 2))
        });
    }
    if let Some(i) = parts.iter().position(|c| c == "pkg").filter(|&i| parts.get(i + 1).is_some_and(|c| c == "mod")) {
        let tail = &parts[i + 2..];
        let v = tail.iter().position(|c| c.contains('@'))?;
        let mut module: Vec<String> = tail[..=v].to_vec();
        if let Some(last) = module.last_mut() {
            *last = last.split('@').next().unwrap_or_default().to_owned();
        }
        // The module cache escapes capitals as `!x`.
        let module = unescape_go(&module.join("/"));
        return Some(Installed::Go(module, tail[v + 1..].join("/")));
    }
    if parts.last().is_some_and(|f| f.ends_with(".go")) {
        // GOPATH (`…/src/github.com/org/repo/x.go`), `-trimpath` (`github.com/org/repo@v1.2.3/x.go`) and vendored
        // (`vendor/github.com/org/repo/x.go`) paths spell the import path from its domain on.
        if let Some(i) = parts.iter().position(|c| is_go_domain(c)) {
            if parts.len() > i + 2 {
                let mut tail: Vec<String> = parts[i..].to_vec();
                for c in &mut tail {
                    if let Some((name, _version)) = c.split_once('@') {
                        *c = name.to_owned();
                    }
                }
                return Some(Installed::GoImport(tail));
            }
        }
    }
    if let Some(i) = parts.windows(2).position(|w| w[0] == ".cargo" && w[1] == "registry") {
        // .cargo/registry/src/<index>/<crate>-<version>/…
        let krate = strip_version(parts.get(i + 4)?)?;
        return Some(Installed::Cargo(krate.replace('-', "_"), rest(i + 5)));
    }
    if parts.windows(2).any(|w| w[0] == ".cargo" && w[1] == "git") {
        return Some(Installed::Runtime("a cargo git dependency"));
    }
    if let Some(i) = at("gems") {
        if let Some(gem) = parts.get(i + 1).and_then(|g| strip_version(g)) {
            return Some(Installed::Gem(gem.to_owned(), rest(i + 2)));
        }
    }
    let first = parts.first().map(String::as_str).unwrap_or_default();
    if first == "rustc" || parts.windows(2).any(|w| is_python_stdlib_dir(&w[0], &w[1])) {
        return Some(Installed::Runtime(if first == "rustc" {
            "the Rust standard library"
        } else {
            "the Python standard library"
        }));
    }
    if let Some(i) = parts.windows(2).position(|w| w[0] == "go" && w[1] == "src") {
        if parts.get(i + 2).is_some_and(|c| !c.contains('.')) && parts.len() > i + 3 {
            return Some(Installed::Runtime("the Go standard library"));
        }
    }
    if parts.windows(2).any(|w| w[0] == "lib" && w[1] == "ruby") {
        return Some(Installed::Runtime("the Ruby standard library"));
    }
    None
}

/// Two path components that hold CPython's own library: `lib/python3.11` (Unix; `lib64/python3.8` where the OS keeps
/// 64-bit libraries apart, as Fedora, RHEL and openSUSE do) and `Python311/Lib` (the Windows installer's directory).
/// `site-packages` inside them was taken for an installed package before this is asked.
fn is_python_stdlib_dir(parent: &str, dir: &str) -> bool {
    let versioned_python = |c: &str| {
        c.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("python"))
            && c.len() > 6
            && c[6..].bytes().all(|b| b.is_ascii_digit())
    };
    ((parent == "lib" || parent == "lib64") && dir.starts_with("python"))
        || (versioned_python(parent) && dir.eq_ignore_ascii_case("lib"))
}

/// A path component that is the domain of a Go import path: `github.com`, `gitlab.com`, `golang.org`, `gopkg.in`,
/// `go.uber.org`, `cuelang.org`, … (a dot, a known top-level domain, no file extension of a source file).
fn is_go_domain(c: &str) -> bool {
    let Some((_, tld)) = c.rsplit_once('.') else { return false };
    !c.starts_with('.')
        && matches!(tld, "com" | "org" | "net" | "io" | "in" | "dev" | "co" | "me" | "cc" | "xyz" | "tech" | "sh")
}

fn unescape_go(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut upper = false;
    for c in s.chars() {
        if c == '!' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Maps frames against one tree.
pub struct PathMapper<'a> {
    pub tree: &'a TreeFiles,
    pub packages: &'a Packages,
    pub mappings: &'a [CodeMapping],
    /// The repository's `owner/name` where known: a package named like the repository (and a Go module path ending
    /// in it) is this repository's when no manifest says otherwise.
    pub repo_name: Option<&'a str>,
}

impl PathMapper<'_> {
    /// Maps `raw` (with the frame's `module`, which JVM frames need) to a repository file.
    pub fn map(&self, raw: &str, module: Option<&str>) -> Mapped {
        if raw.starts_with("node:") || raw.starts_with('<') || raw == "native" {
            return Mapped::NotInRepo { why: format!("`{raw}` is the runtime's own code") };
        }
        let slashed = raw.replace('\\', "/");
        for m in self.mappings {
            if let Some(rest) = slashed.strip_prefix(&m.stack_prefix.replace('\\', "/")) {
                let candidate = normalise(&join(&m.repo_prefix, rest.trim_start_matches('/'))).join("/");
                if self.tree.contains(&candidate) {
                    return Mapped::InRepo {
                        how: format!("code mapping `{}` → `{}`", m.stack_prefix, m.repo_prefix),
                        path: candidate,
                    };
                }
            }
        }
        let parts = normalise(raw);
        if parts.is_empty() {
            return Mapped::NotInRepo { why: "the frame has no usable path".into() };
        }
        if let Some(inst) = installed(&parts) {
            return self.map_installed(inst);
        }
        if parts.len() == 1 {
            if let Some(m) = self.map_jvm(&parts[0], module) {
                return m;
            }
        }
        if self.tree.contains(&parts.join("/")) {
            return Mapped::InRepo { path: parts.join("/"), how: "the path as printed".into() };
        }
        self.suffix_match(&parts)
    }

    fn map_installed(&self, inst: Installed) -> Mapped {
        let found = |dirs: Vec<String>, rest: &str, what: String| -> Mapped {
            let mut hits: Vec<String> = dirs.iter().map(|d| join(d, rest)).filter(|p| self.tree.contains(p)).collect();
            hits.dedup();
            match hits.len() {
                1 => Mapped::InRepo {
                    how: match dir_of_package(&hits[0], rest) {
                        d if d.is_empty() => format!("{what}, which is this repository at its root"),
                        d => format!("{what}, which this repository holds at `{d}`"),
                    },
                    path: hits[0].clone(),
                },
                0 if dirs.is_empty() => Mapped::NotInRepo { why: format!("{what}: not a package of this repository") },
                0 => {
                    let built = dirs.iter().find_map(|d| built_from(self.tree, d, rest));
                    let why = format!("{what}: this repository's copy has no `{rest}` at this commit");
                    Mapped::NotInRepo {
                        why: match built {
                            Some((out, source)) => format!(
                                "{why} (`{out}/` is built output, not in git here; its source is `{source}`, whose \
                                 lines are not the built file's)"
                            ),
                            None => why,
                        },
                    }
                }
                _ => Mapped::Ambiguous { why: format!("{what} is defined in several places"), candidates: hits },
            }
        };
        match inst {
            Installed::Python(pkg, rest) => {
                // The repository directory of the import package stands for `site-packages/<pkg>`: the one next to
                // a manifest (pyproject.toml, setup.py, setup.cfg, or under its `src/`), else any directory of that
                // name with an `__init__.py` (a package declared through `package_dir` or found by setuptools).
                let declared = self.packages.python.get(&pkg).cloned().unwrap_or_default();
                let dirs = if declared.is_empty() { self.python_dirs(&pkg) } else { declared };
                let what = format!("installed Python package `{pkg}`");
                if dirs.is_empty() {
                    // A namespace package (no `__init__.py`, PEP 420) or a lone module: the whole import path as a
                    // unique suffix of one file outside vendored code.
                    let import_path = join(&pkg, &rest);
                    let hits: Vec<&str> = self
                        .tree
                        .named(import_path.rsplit('/').next().unwrap_or_default())
                        .filter(|p| p.ends_with(&format!("/{import_path}")) || *p == import_path)
                        .filter(|p| !p.split('/').any(|c| matches!(c, "vendor" | "third_party" | "node_modules")))
                        .collect();
                    if let [hit] = hits[..] {
                        return Mapped::InRepo {
                            how: format!("{what}, found as `{import_path}` in this repository"),
                            path: hit.to_owned(),
                        };
                    }
                }
                found(dirs, &rest, what)
            }
            Installed::Node(pkg, rest) => {
                let dirs = match self.packages.node.get(&pkg) {
                    Some(d) => vec![d.clone()],
                    None => self.manifest_dirs_named("package.json", pkg.rsplit('/').next().unwrap_or(&pkg)),
                };
                found(dirs, &rest, format!("npm package `{pkg}`"))
            }
            Installed::Go(module, rest) => {
                let dirs = match self.packages.go.get(&module) {
                    Some(d) => vec![d.clone()],
                    None => self.go_module_dirs(&module),
                };
                found(dirs, &rest, format!("Go module `{module}`"))
            }
            Installed::GoImport(parts) => self.map_go_import(&parts),
            Installed::Cargo(krate, rest) => {
                let dirs = match self.packages.cargo.get(&krate) {
                    Some(d) => vec![d.clone()],
                    None => self.manifest_dirs_named("Cargo.toml", &krate),
                };
                found(dirs, &rest, format!("crate `{krate}`"))
            }
            Installed::Gem(gem, rest) => {
                // `bundle gem` names the gemspec after the gem: `<name>.gemspec`.
                let dirs = match self.packages.gems.get(&gem) {
                    Some(d) => vec![d.clone()],
                    None => self.tree.named(&format!("{gem}.gemspec")).map(dir_of).collect(),
                };
                found(dirs, &rest, format!("gem `{gem}`"))
            }
            Installed::Runtime(what) => Mapped::NotInRepo { why: format!("{what}, not this repository") },
        }
    }

    /// The repository's name without its owner (`cobra` for `spf13/cobra`), lower-cased.
    fn short_repo_name(&self) -> Option<String> {
        self.repo_name.map(|r| r.rsplit('/').next().unwrap_or(r).to_ascii_lowercase())
    }

    /// Directories named `pkg` holding an `__init__.py`, outside tests and vendored code.
    fn python_dirs(&self, pkg: &str) -> Vec<String> {
        self.tree
            .named("__init__.py")
            .map(dir_of)
            .filter(|d| d.rsplit('/').next() == Some(pkg))
            .filter(|d| !d.split('/').any(|c| matches!(c, "tests" | "test" | "vendor" | "node_modules" | "docs")))
            .collect()
    }

    /// Directories holding `manifest` whose own name is the package's (`tokio/Cargo.toml` for crate `tokio`), or the
    /// repository's root when the repository is named after the package.
    fn manifest_dirs_named(&self, manifest: &str, name: &str) -> Vec<String> {
        let norm = |s: &str| s.to_ascii_lowercase().replace('_', "-");
        let name = norm(name);
        let mut dirs: Vec<String> = self
            .tree
            .named(manifest)
            .map(dir_of)
            .filter(|d| !d.is_empty() && norm(d.rsplit('/').next().unwrap_or(d)) == name)
            .filter(|d| !d.split('/').any(|c| c == "node_modules"))
            .collect();
        if dirs.is_empty() && self.tree.contains(manifest) && self.short_repo_name().is_some_and(|r| norm(&r) == name) {
            dirs.push(String::new());
        }
        dirs
    }

    /// Directories of `go.mod` files for a module path the manifests did not declare: the root's when the module path
    /// is the repository's (`github.com/spf13/cobra`, or with a `/vN` suffix).
    fn go_module_dirs(&self, module: &str) -> Vec<String> {
        let Some(repo) = self.repo_name else { return Vec::new() };
        let repo = repo.to_ascii_lowercase();
        let module = module.to_ascii_lowercase();
        let mut m = module.as_str();
        if let Some((head, last)) = m.rsplit_once('/') {
            if last.len() > 1 && last.starts_with('v') && last[1..].bytes().all(|b| b.is_ascii_digit()) {
                m = head;
            }
        }
        // A repository from before Go modules has no go.mod: its import path is where it is hosted.
        let root_module = self.tree.contains("go.mod") || self.tree.named("go.mod").next().is_none();
        if m.ends_with(&format!("/{repo}")) && root_module {
            vec![String::new()]
        } else {
            Vec::new()
        }
    }

    /// A `.go` file by import path: the repository's when a module it defines is a prefix of that path.
    fn map_go_import(&self, parts: &[String]) -> Mapped {
        let joined = parts.join("/");
        let mut modules: Vec<(String, String)> = self.packages.go.iter().map(|(m, d)| (m.clone(), d.clone())).collect();
        // Without a go.mod to read, a module path is the domain and the two components after it (GitHub, GitLab …).
        let guessed = parts[..3].join("/");
        if modules.is_empty() {
            for d in self.go_module_dirs(&guessed) {
                modules.push((guessed.clone(), d));
            }
        }
        modules.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
        for (module, dir) in &modules {
            let Some(rest) = joined.strip_prefix(module.as_str()).and_then(|r| r.strip_prefix('/')) else { continue };
            let path = join(dir, rest);
            return if self.tree.contains(&path) {
                Mapped::InRepo { how: format!("Go module `{module}` of this repository"), path }
            } else {
                Mapped::NotInRepo {
                    why: format!("Go module `{module}`: this repository has no `{rest}` at this commit"),
                }
            };
        }
        // Another module's code, unless the repository vendors it (`vendor/github.com/pkg/errors/errors.go`).
        let vendored: Vec<&str> = self
            .tree
            .named(parts.last().map(String::as_str).unwrap_or_default())
            .filter(|p| p.strip_suffix(joined.as_str()).is_some_and(|d| d == "vendor/" || d.ends_with("/vendor/")))
            .collect();
        if let [path] = vendored[..] {
            return Mapped::InRepo {
                how: format!("Go package `{guessed}`, vendored in this repository"),
                path: path.to_owned(),
            };
        }
        Mapped::NotInRepo { why: format!("Go package `{guessed}`: another module, not this repository") }
    }

    /// `com.example.Foo.bar(Foo.java:12)` prints only the file name: the class's package says the directory.
    fn map_jvm(&self, file: &str, module: Option<&str>) -> Option<Mapped> {
        let is_jvm = [".java", ".kt", ".scala", ".groovy"].iter().any(|e| file.ends_with(e));
        let class = module.filter(|_| is_jvm)?;
        let package = class.rsplit_once('.').map(|(p, _)| p)?;
        let mut parts: Vec<String> = package.split('.').map(str::to_owned).collect();
        parts.push(file.to_owned());
        let depth = parts.len();
        Some(match self.best_suffix(&parts) {
            (k, hits) if k == depth && hits.len() == 1 => {
                Mapped::InRepo { how: format!("package `{package}` of class `{class}`"), path: hits[0].clone() }
            }
            (k, hits) if k == depth => Mapped::Ambiguous {
                why: format!("package `{package}` matches {} files equally well", hits.len()),
                candidates: hits,
            },
            _ => Mapped::NotInRepo { why: format!("no `{}` in this repository", parts.join("/")) },
        })
    }

    /// The repository paths sharing the most trailing components with `parts`, and how many they share.
    fn best_suffix(&self, parts: &[String]) -> (usize, Vec<String>) {
        let Some(name) = parts.last() else { return (0, Vec::new()) };
        let mut best = 0;
        let mut hits: Vec<String> = Vec::new();
        for candidate in self.tree.named(name) {
            let k = candidate.rsplit('/').zip(parts.iter().rev()).take_while(|(a, b)| a == b).count();
            if k > best {
                best = k;
                hits.clear();
            }
            if k == best && k > 0 {
                hits.push(candidate.to_owned());
            }
        }
        (best, hits)
    }

    fn suffix_match(&self, parts: &[String]) -> Mapped {
        let (k, mut hits) = self.best_suffix(parts);
        let name = parts.last().map(String::as_str).unwrap_or_default();
        if hits.is_empty() {
            return Mapped::NotInRepo { why: format!("no file named `{name}` in this repository") };
        }
        if hits.len() > 1 {
            hits.truncate(5);
            return Mapped::Ambiguous {
                why: format!(
                    "{} repository files end with the same {k} path component(s): {}",
                    hits.len(),
                    hits.join(", ")
                ),
                candidates: hits,
            };
        }
        let hit = hits.remove(0);
        let whole = hit.split('/').count() == k;
        if k >= 2 || whole {
            Mapped::InRepo {
                how: format!("longest unique suffix match ({k} path component{})", if k == 1 { "" } else { "s" }),
                path: hit,
            }
        } else {
            Mapped::Ambiguous {
                why: format!("only the file name `{name}` matches `{hit}`; not guessing"),
                candidates: vec![hit],
            }
        }
    }
}

/// Maps every frame of one trace: each on its own first, then ties between equally good candidates are broken by the
/// directories the trace's other mapped frames share (a trace's frames come from one checkout).
pub fn map_frames(mapper: &PathMapper<'_>, frames: &[crate::assign::FrameInput]) -> Vec<Mapped> {
    let mut mapped: Vec<Mapped> = frames.iter().map(|f| mapper.map(&f.raw_path, f.module.as_deref())).collect();
    // Where the trace's unambiguous frames say its checkout sits: printed directory → repository directory.
    let mut roots: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    for (f, m) in frames.iter().zip(&mapped) {
        let Mapped::InRepo { path, .. } = m else { continue };
        let printed = normalise(&f.raw_path);
        let repo: Vec<String> = path.split('/').map(str::to_owned).collect();
        let shared = printed.iter().rev().zip(repo.iter().rev()).take_while(|(a, b)| a == b).count();
        let root = (printed[..printed.len() - shared].to_vec(), repo[..repo.len() - shared].to_vec());
        if !root.0.is_empty() && !roots.contains(&root) {
            roots.push(root);
        }
    }
    for (f, m) in frames.iter().zip(mapped.iter_mut()) {
        let Mapped::Ambiguous { candidates, why } = m else { continue };
        let printed = normalise(&f.raw_path);
        let chosen: Vec<(String, &Vec<String>)> = roots
            .iter()
            .filter_map(|(from, to)| {
                let rest = printed.strip_prefix(from.as_slice())?;
                let path = to.iter().chain(rest).cloned().collect::<Vec<_>>().join("/");
                candidates.contains(&path).then_some((path, from))
            })
            .collect();
        if let [(path, from)] = &chosen[..] {
            *m = Mapped::InRepo {
                how: format!(
                    "{why}; the trace's other frames under `/{}` are this repository's, which picks this one",
                    from.join("/")
                ),
                path: path.clone(),
            };
        }
    }
    mapped
}

/// Where a JavaScript package's built file (`lib/index.js`, `dist/…`) comes from, when the repository keeps only its
/// source (knex/knex#1791: knex 0.12's npm package ran `lib/index.js`, Babel's output of `src/index.js`, which git
/// never held): the output directory and the source file in the tree, to say why the frame is left out. Only said,
/// never mapped: the built file's lines are not the source's.
fn built_from(tree: &TreeFiles, dir: &str, rest: &str) -> Option<(String, String)> {
    const OUTPUT_DIRS: [&str; 6] = ["lib", "dist", "build", "out", "cjs", "esm"];
    const SOURCE_EXTENSIONS: [&str; 5] = ["js", "mjs", "cjs", "ts", "tsx"];
    let (out, inside) = rest.split_once('/')?;
    let (stem, ext) = inside.rsplit_once('.')?;
    if !OUTPUT_DIRS.contains(&out) || !SOURCE_EXTENSIONS[..3].contains(&ext) {
        return None;
    }
    SOURCE_EXTENSIONS
        .iter()
        .map(|e| join(dir, &format!("src/{stem}.{e}")))
        .find(|p| tree.contains(p))
        .map(|source| (out.to_owned(), source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(paths: &[&str]) -> TreeFiles {
        TreeFiles::new("t".into(), paths.iter().map(|p| (*p).to_owned()).collect())
    }

    #[test]
    fn normalisation() {
        assert_eq!(
            normalise(r"C:\Users\Ann Lee\My Project (2)\app\client.py").join("/"),
            "Users/Ann Lee/My Project (2)/app/client.py"
        );
        assert_eq!(normalise("webpack:///./src/checkout.ts?abc#x").join("/"), "src/checkout.ts");
        assert_eq!(normalise("webpack://shop/./src/a.ts").join("/"), "src/a.ts");
        assert_eq!(normalise("app:///dist/main.js").join("/"), "dist/main.js");
        assert_eq!(normalise("https://cdn.example.com/static/js/app.js?v=3").join("/"), "static/js/app.js");
        assert_eq!(normalise("file:///srv/app/../app/x.py").join("/"), "srv/app/x.py");
        assert_eq!(normalise("../../../etc/passwd").join("/"), "etc/passwd", "never above the root");
        assert_eq!(normalise("./src/./a.rs").join("/"), "src/a.rs");
    }

    #[test]
    fn suffix_matching_is_unique_or_reported() {
        let t = tree(&["app/payments.py", "app/util.py", "lib/util.py", "main.py", "pkg/helpers.py"]);
        let p = Packages::default();
        let m = PathMapper { tree: &t, packages: &p, mappings: &[], repo_name: None };
        assert_eq!(m.map("/srv/deploy/app/payments.py", None).repo_path(), Some("app/payments.py"));
        assert_eq!(m.map("/srv/deploy/main.py", None).repo_path(), Some("main.py"), "a root file matched whole");
        assert!(matches!(m.map("/srv/x/util.py", None), Mapped::Ambiguous { candidates, .. } if candidates.len() == 2));
        assert!(matches!(m.map("/srv/other/helpers.py", None), Mapped::Ambiguous { .. }), "file name alone");
        assert!(matches!(m.map("/srv/x/nothing.py", None), Mapped::NotInRepo { .. }));
        assert!(matches!(m.map("node:internal/process/task_queues", None), Mapped::NotInRepo { .. }));
    }

    #[test]
    fn code_mappings_come_first() {
        let t = tree(&["services/web/app.py", "app.py"]);
        let p = Packages::default();
        let mappings = [CodeMapping { stack_prefix: "/srv/app/".into(), repo_prefix: "services/web/".into() }];
        let m = PathMapper { tree: &t, packages: &p, mappings: &mappings, repo_name: None };
        let got = m.map("/srv/app/app.py", None);
        assert_eq!(got.repo_path(), Some("services/web/app.py"));
        assert!(got.description().contains("code mapping"));
    }

    /// knex/knex#1791: knex 0.12's npm package ran `lib/index.js`, Babel's output of `src/index.js`; git held only
    /// the source. The frame is left out (the lines differ), and the reason names the source.
    #[test]
    fn a_built_file_of_a_package_is_left_out_naming_its_source() {
        let t = tree(&["package.json", "src/index.js", "src/dialects/postgres/index.js", "bin/cli.js", "lib/x.txt"]);
        let manifests: HashMap<String, String> =
            [("package.json".to_owned(), r#"{"name": "knex", "main": "knex.js"}"#.to_owned())].into_iter().collect();
        let p = Packages::from_manifests(&t, &manifests);
        let m = PathMapper { tree: &t, packages: &p, mappings: &[], repo_name: None };
        let why = |raw: &str| match m.map(raw, None) {
            Mapped::NotInRepo { why } => why,
            other => panic!("{raw}: {other:?}"),
        };
        let lib = why("~/Projects/homebot/api/v2/node_modules/knex/lib/index.js");
        assert!(lib.contains("`lib/` is built output") && lib.contains("its source is `src/index.js`"), "{lib}");
        let deep = why("/home/vcap/app/node_modules/knex/lib/dialects/postgres/index.js");
        assert!(deep.contains("`src/dialects/postgres/index.js`"), "{deep}");
        // No source of that name, or not a built directory: only that the file is missing.
        assert!(!why("/app/node_modules/knex/lib/other.js").contains("built output"));
        assert!(!why("/app/node_modules/knex/docs/index.js").contains("built output"));
        assert_eq!(m.map("/app/node_modules/knex/bin/cli.js", None).repo_path(), Some("bin/cli.js"));
    }

    #[test]
    fn installed_packages_map_only_to_this_repositorys_packages() {
        let t = tree(&[
            "pyproject.toml",
            "src/payments/__init__.py",
            "src/payments/total.py",
            "vendor/requests/api.py",
            "web/package.json",
            "web/lib/index.js",
            "go.mod",
            "internal/pay/service.go",
            "crates/core/Cargo.toml",
            "crates/core/src/lib.rs",
            "ruby/shop.gemspec",
            "ruby/lib/shop.rb",
        ]);
        let manifests: HashMap<String, String> = [
            ("web/package.json", r#"{"name": "@acme/web-lib"}"#),
            ("go.mod", "module github.com/Acme/web\n\ngo 1.22\n"),
            ("crates/core/Cargo.toml", "[package]\nname = \"acme-core\"\nversion = \"0.1.0\"\n"),
            ("ruby/shop.gemspec", "Gem::Specification.new do |s|\n  s.name = 'acme-shop'\nend\n"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        let p = Packages::from_manifests(&t, &manifests);
        let m = PathMapper { tree: &t, packages: &p, mappings: &[], repo_name: None };
        let cases = [
            (r"C:\app\venv\Lib\site-packages\payments\total.py", Some("src/payments/total.py")),
            ("/usr/lib/python3/dist-packages/payments/total.py", Some("src/payments/total.py")),
            ("/srv/app/node_modules/@acme/web-lib/lib/index.js", Some("web/lib/index.js")),
            (
                "/home/ci/go/pkg/mod/github.com/!acme/web@v1.4.2/internal/pay/service.go",
                Some("internal/pay/service.go"),
            ),
            (
                "/home/ci/.cargo/registry/src/index.crates.io-6f17d22bba15001f/acme-core-0.1.0/src/lib.rs",
                Some("crates/core/src/lib.rs"),
            ),
            ("/usr/local/bundle/gems/acme-shop-2.0.1/lib/shop.rb", Some("ruby/lib/shop.rb")),
            ("/srv/venv/lib/python3.11/site-packages/requests/api.py", None),
            ("/usr/lib/python3.11/json/__init__.py", None),
            ("/rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/core/src/panicking.rs", None),
            ("/usr/local/go/src/runtime/panic.go", None),
        ];
        for (raw, expected) in cases {
            let got = m.map(raw, None);
            assert_eq!(got.repo_path(), expected, "{raw}: {got:?}");
        }
        // A vendored copy used from the application's own tree maps by suffix.
        assert_eq!(m.map("/srv/app/vendor/requests/api.py", None).repo_path(), Some("vendor/requests/api.py"));
    }

    /// CPython's own library is left out as such wherever the OS or the installer keeps it, even when the
    /// repository has a file of the same name.
    #[test]
    fn the_python_standard_library_in_each_layout_is_left_out_as_such() {
        let t = tree(&["http/client.py", "threading.py", "unittest/mock.py", "src/shop/cart.py"]);
        let p = Packages::from_manifests(&t, &HashMap::new());
        let m = PathMapper { tree: &t, packages: &p, mappings: &[], repo_name: None };
        for raw in [
            // Fedora/RHEL/openSUSE x86_64: a python3.8 traceback pasted in urllib3/urllib3#2534.
            "/usr/lib64/python3.8/http/client.py",
            // Debian and Ubuntu.
            "/usr/lib/python3.11/json/__init__.py",
            // The Windows installer's per-user install, from a thread's traceback pasted on GitHub.
            r"C:\Users\Thuis\AppData\Local\Programs\Python\Python311\Lib\threading.py",
            // pytest on Windows prints paths relative to the working directory.
            r"..\..\Programs\Python\Python311\Lib\unittest\mock.py",
        ] {
            let got = m.map(raw, None);
            assert_eq!(got.repo_path(), None, "{raw}: {got:?}");
            assert!(got.description().contains("the Python standard library"), "{raw}: {got:?}");
        }
        // Packages installed beside it are still packages, and one's own code is still mapped.
        let own = m.map(r"C:\Python311\Lib\site-packages\shop\cart.py", None);
        assert_eq!(own.repo_path(), Some("src/shop/cart.py"), "{own:?}");
    }

    fn mapper_test(paths: &[&str], repo: &str, cases: &[(&str, Option<&str>)]) {
        let t = tree(paths);
        let p = Packages::from_manifests(&t, &HashMap::new());
        let m = PathMapper { tree: &t, packages: &p, mappings: &[], repo_name: Some(repo) };
        for (raw, expected) in cases {
            let got = m.map(raw, None);
            assert_eq!(got.repo_path(), *expected, "{raw}: {got:?}");
        }
    }

    /// Installed directories named `<name>-<version>[-<platform>]`.
    #[test]
    fn a_package_directory_gives_its_name_whatever_its_platform() {
        // JRuby's bundle (puma/puma#3331: `gems/puma-6.4.2-java/lib/rack/handler/puma.rb`), a native gem built for
        // Linux, the cargo registry, and a crate whose name ends in a number.
        for (dir, name) in [
            ("puma-6.4.2-java", Some("puma")),
            ("nokogiri-1.15.4-x86_64-linux", Some("nokogiri")),
            ("rack-2.2.8", Some("rack")),
            ("serde_json-1.0.100", Some("serde_json")),
            ("sha-1-0.10.0", Some("sha-1")),
            ("ruby-2.6.0@app", Some("ruby")),
            ("lib", None),
            ("-1.0", None),
        ] {
            assert_eq!(strip_version(dir), name, "{dir}");
        }
    }

    /// Installed packages map through the tree when no manifest was read: the gemspec's file name, a crate's or npm
    /// package's directory, an import package's directory, the repository's own name for its root package.
    #[test]
    fn installed_packages_map_through_the_tree_alone() {
        // A Capistrano deploy's shared bundle (sidekiq/sidekiq#4874) and an RVM gemset: `<name>.gemspec` is the gem.
        mapper_test(
            &["sidekiq.gemspec", "lib/sidekiq/util.rb", "lib/sidekiq/processor.rb"],
            "sidekiq/sidekiq",
            &[
                (
                    "/var/www/app/shared/bundle/ruby/3.0.0/gems/sidekiq-6.2.1/lib/sidekiq/util.rb",
                    Some("lib/sidekiq/util.rb"),
                ),
                (
                    "/home/u/.rvm/gems/ruby-2.6.0@app/gems/sidekiq-6.0.6/lib/sidekiq/processor.rb",
                    Some("lib/sidekiq/processor.rb"),
                ),
                ("/usr/local/bundle/gems/activesupport-6.1.3/lib/active_support/callbacks.rb", None),
            ],
        );
        // The cargo registry, the crate in a workspace directory of its own name (tokio-rs/tokio's layout).
        mapper_test(
            &[
                "Cargo.toml",
                "tokio/Cargo.toml",
                "tokio/src/runtime/coop.rs",
                "tokio-util/Cargo.toml",
                "tokio-util/src/lib.rs",
            ],
            "tokio-rs/tokio",
            &[
                (
                    "/home/u/.cargo/registry/src/index.crates.io-6f17d22bba15001f/tokio-1.36.0/src/runtime/coop.rs",
                    Some("tokio/src/runtime/coop.rs"),
                ),
                (
                    "/root/.cargo/registry/src/mirrors.ustc.edu.cn-61ef6e0cd06fb9b8/tokio-util-0.7.1/src/lib.rs",
                    Some("tokio-util/src/lib.rs"),
                ),
                ("/home/u/.cargo/registry/src/index.crates.io-6f17d22bba15001f/mio-0.8.0/src/lib.rs", None),
            ],
        );
        // node_modules on Windows (koajs/koa#1171 shape): the root package is the repository's; koa-compose, a
        // package whose name starts the same, and a dependency nested inside the package are not.
        mapper_test(
            &["package.json", "lib/application.js", "index.js"],
            "koajs/koa",
            &[
                (r"E:\vue\ssr\node_modules\koa\lib\application.js", Some("lib/application.js")),
                (r"E:\vue\ssr\node_modules\koa-compose\index.js", None),
                ("/srv/api/node_modules/koa/node_modules/debug/index.js", None),
            ],
        );
        // A distribution's site-packages (urllib3/urllib3#2908) into a src/ layout, and a Windows venv.
        mapper_test(
            &["pyproject.toml", "src/urllib3/__init__.py", "src/urllib3/connection.py", "test/__init__.py"],
            "urllib3/urllib3",
            &[
                ("/usr/lib/python3.11/site-packages/urllib3/connection.py", Some("src/urllib3/connection.py")),
                (r"C:\Users\a\venv\Lib\site-packages\urllib3\connection.py", Some("src/urllib3/connection.py")),
                ("/usr/local/lib64/python3.11/site-packages/gevent/_socketcommon.py", None),
            ],
        );
    }

    /// Python layouts beyond a venv: an egg's own directory, a namespace package without `__init__.py` (PEP 420,
    /// as Google's and Azure's SDKs ship), a zipapp (`app.pyz/...`), conda environments and user installs.
    #[test]
    fn python_install_layouts() {
        mapper_test(
            &[
                "setup.py",
                "src/shop/__init__.py",
                "src/shop/cart.py",
                "src/acme/billing/invoice.py",
                "vendor/requests/api.py",
            ],
            "acme/shop",
            &[
                ("/usr/lib/python3.6/site-packages/acme_shop-2.0-py3.6.egg/shop/cart.py", Some("src/shop/cart.py")),
                ("/srv/venv/lib/python3.12/site-packages/acme/billing/invoice.py", Some("src/acme/billing/invoice.py")),
                ("/opt/app/shop.pyz/shop/cart.py", Some("src/shop/cart.py")),
                ("/home/u/miniconda3/envs/prod/lib/python3.11/site-packages/shop/cart.py", Some("src/shop/cart.py")),
                ("/home/u/.local/lib/python3.11/site-packages/shop/cart.py", Some("src/shop/cart.py")),
                ("/srv/venv/lib/python3.12/site-packages/requests/api.py", None),
            ],
        );
    }

    /// Go: the module cache, `-trimpath` builds and GOPATH checkouts spell import paths; the repository's module is
    /// its own (spf13/cobra, no go.mod before v1.0), another module is not, and a vendored copy maps into vendor/.
    #[test]
    fn go_import_paths() {
        mapper_test(
            &["command.go", "cobra/cmd/root.go", "vendor/github.com/pkg/errors/errors.go"],
            "spf13/cobra",
            &[
                ("/Users/u/go/pkg/mod/github.com/spf13/cobra@v0.0.3/command.go", Some("command.go")),
                ("github.com/spf13/cobra@v1.8.0/command.go", Some("command.go")),
                ("/home/ci/go/src/github.com/spf13/cobra/command.go", Some("command.go")),
                // The application next to it (a GOPATH checkout, spf13/cobra#1054): not cobra's, though a
                // `cobra/cmd/root.go` exists.
                ("/Users/u/src/github.com/k1LoW/sheer-heart-attack/cmd/root.go", None),
                ("github.com/j178/leetgo/cmd/root.go", None),
                ("/build/app/vendor/github.com/pkg/errors/errors.go", Some("vendor/github.com/pkg/errors/errors.go")),
            ],
        );
    }

    /// Two services with the same file names in a monorepo, deployed as `/app` in their containers: `/app/util.py`
    /// alone is ambiguous, but the trace's `/app/orders/views.py` maps only into `services/web/`, which settles it.
    #[test]
    fn a_shared_prefix_with_other_frames_breaks_a_tie() {
        let t = tree(&["services/web/util.py", "services/api/util.py", "services/web/orders/views.py"]);
        let p = Packages::default();
        let m = PathMapper { tree: &t, packages: &p, mappings: &[], repo_name: None };
        let frame = |raw: &str| crate::assign::FrameInput { raw_path: raw.into(), ..Default::default() };
        assert!(matches!(m.map("/app/util.py", None), Mapped::Ambiguous { .. }));
        let got = map_frames(&m, &[frame("/app/orders/views.py"), frame("/app/util.py")]);
        assert_eq!(got[1].repo_path(), Some("services/web/util.py"), "{:?}", got[1]);
        assert!(got[1].description().contains("other frames under `/app`"), "{:?}", got[1]);
        // Alone, it stays ambiguous: never a guess.
        assert!(matches!(map_frames(&m, &[frame("/app/util.py")])[0], Mapped::Ambiguous { .. }));
    }

    #[test]
    fn jvm_frames_use_the_class_package() {
        let t =
            tree(&["app/src/main/java/com/acme/pay/PaymentService.java", "lib/src/com/acme/util/PaymentService.java"]);
        let p = Packages::default();
        let m = PathMapper { tree: &t, packages: &p, mappings: &[], repo_name: None };
        let got = m.map("PaymentService.java", Some("com.acme.pay.PaymentService"));
        assert_eq!(got.repo_path(), Some("app/src/main/java/com/acme/pay/PaymentService.java"));
        assert!(matches!(m.map("Thread.java", Some("java.lang.Thread")), Mapped::NotInRepo { .. }));
        assert_eq!(
            m.map("PaymentService.java", Some("com.acme.pay.PaymentService$Inner")).repo_path(),
            Some("app/src/main/java/com/acme/pay/PaymentService.java")
        );
    }
}
