//! The dependency rules of docs/architecture.md, checked against the source: which top-level module may import
//! which, that only `http` (and `app`, which mounts it) knows axum and only `store` knows sqlx, and that handlers
//! never reach the store.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module and the modules it may import (`crate::<name>`), lowest layers first. Keep in step with
/// docs/architecture.md.
const ALLOWED: &[(&str, &[&str])] = &[
    // Foundations: values and helpers with no knowledge of the rest.
    ("config", &[]),
    ("domain", &[]),
    ("events", &[]),
    ("cache", &[]),
    ("markdown", &[]),
    ("metrics", &[]),
    ("output", &[]),
    ("stacktrace", &["events"]),
    // Infrastructure: persistence, git, the GitHub client.
    ("store", &[]),
    ("git", &["config", "cache"]),
    ("github", &["config", "metrics"]),
    ("jobs", &["store"]),
    // Domain services: the rules. Each may use the foundations, the infrastructure, `jobs`, and the services
    // listed before it.
    ("groups", &["domain", "events", "jobs", "store"]),
    ("releases", &["cache", "domain", "git", "jobs", "markdown", "store"]),
    ("projects", &["assign", "domain", "store"]),
    ("assign", &["cache", "config", "events", "git", "github", "groups", "jobs", "metrics", "releases", "store"]),
    ("regressions", &["assign", "events", "git", "groups", "jobs", "store"]),
    ("issues", &["assign", "github", "jobs", "markdown", "releases", "store"]),
    ("webhooks", &["domain", "git", "groups", "jobs", "releases", "store"]),
    ("ingest", &["cache", "domain", "events", "jobs", "metrics", "stacktrace", "store"]),
    ("retention", &["config", "git", "store"]),
    ("probes", &["ingest", "metrics", "store"]),
    ("explain", &["assign", "events", "git", "github", "ingest", "stacktrace"]),
    // Running the services: the worker, and the HTTP layer (which may name store records and errors, never call
    // the store).
    (
        "worker",
        &["assign", "groups", "issues", "jobs", "metrics", "regressions", "releases", "retention", "store", "webhooks"],
    ),
    (
        "http",
        &[
            "assign", "config", "domain", "events", "groups", "ingest", "metrics", "probes", "projects", "releases",
            "store", "webhooks",
        ],
    ),
    // Assembly and the command line.
    (
        "app",
        &[
            "assign",
            "config",
            "git",
            "github",
            "groups",
            "http",
            "ingest",
            "issues",
            "metrics",
            "probes",
            "projects",
            "regressions",
            "releases",
            "retention",
            "store",
            "webhooks",
            "worker",
        ],
    ),
    ("demo", &["app", "config", "github", "output", "projects", "store"]),
    ("client", &["config", "output", "releases"]),
    ("cli", &["app", "client", "config", "demo", "explain", "http", "output", "projects", "store"]),
];

/// Each top-level module's source files (tests excluded), keyed by module name.
fn sources() -> BTreeMap<String, Vec<(String, String)>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&src).expect("under src").to_string_lossy().replace('\\', "/");
            let module = rel.split('/').next().unwrap_or_default().trim_end_matches(".rs").to_owned();
            if module == "lib" || module == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_owned();
            out.entry(module).or_default().push((rel, code));
        }
    }
    out
}

#[test]
fn modules_import_only_what_the_layering_allows() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> =
        ALLOWED.iter().map(|(m, deps)| (*m, deps.iter().copied().collect())).collect();
    let import = regex::Regex::new(r"crate::(\w+)").expect("regex");
    let mut wrong = Vec::new();
    for (module, files) in sources() {
        let Some(may) = allowed.get(module.as_str()) else {
            wrong.push(format!("{module}: not in the layering (add it to ALLOWED and docs/architecture.md)"));
            continue;
        };
        for (file, code) in files {
            for c in import.captures_iter(&code) {
                let target = &c[1];
                if target != module && !may.contains(target) {
                    wrong.push(format!("{file} imports crate::{target}"));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "imports against the layering:\n{}", wrong.join("\n"));
}

#[test]
fn only_http_knows_axum_only_store_knows_sqlx_and_handlers_never_reach_the_store() {
    let mut wrong = Vec::new();
    for (module, files) in sources() {
        for (file, code) in files {
            if code.contains("axum::") && module != "http" && module != "app" {
                wrong.push(format!("{file} uses axum"));
            }
            if code.contains("sqlx::") && module != "store" {
                wrong.push(format!("{file} uses sqlx"));
            }
            if module == "http" && code.contains(".store.") {
                wrong.push(format!("{file} reaches the store"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
