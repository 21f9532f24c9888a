//! Assignment on repositories built for the purpose: each scenario asserts the mapped path, the blamed commit and the
//! owner. Also: blame agrees with `git blame` line for line, and real-world traces of every kind map and blame.

use shipwatch::assign::{Assigner, Assignment, DeployContext, Settings};
use shipwatch::git::Git;
use shipwatch::github::NoGitHub;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{Author, TestRepo, ALICE, BOB, CAROL};

const DAVE: Author = Author { name: "Dave Fmt", email: "dave@example.com" };
const DEPENDABOT: Author =
    Author { name: "dependabot[bot]", email: "49699333+dependabot[bot]@users.noreply.github.com" };
const OCTO: Author = Author { name: "Octo Cat", email: "583231+octocat@users.noreply.github.com" };

fn git() -> Git {
    Git::new("git", Duration::from_secs(60), None, true)
}

async fn explain_with(
    assigner: &Assigner,
    repo: &TestRepo,
    rev: &str,
    trace: &str,
    settings: &Settings,
    deploy: Option<&DeployContext>,
) -> Assignment {
    let (_, frames, crash) = shipwatch::explain::frames_from_input(trace).expect("trace parses");
    assigner.assign(repo.path(), rev, Some("acme/web"), &frames, &crash, settings, deploy).await.expect("assigns")
}

async fn explain(repo: &TestRepo, rev: &str, trace: &str) -> Assignment {
    let assigner = Assigner::new(git(), Arc::new(NoGitHub));
    explain_with(&assigner, repo, rev, trace, &Settings::default(), None).await
}

fn py(frames: &[(&str, u32, &str)]) -> String {
    let mut t = String::from("Traceback (most recent call last):\n");
    for (path, line, func) in frames {
        t.push_str(&format!("  File \"{path}\", line {line}, in {func}\n"));
    }
    t.push_str("ZeroDivisionError: division by zero\n");
    t
}

#[tokio::test]
async fn blame_is_taken_at_the_deployed_commit_across_a_move_into_src() {
    let repo = TestRepo::new();
    let v1 = repo.commit(&ALICE, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "Add pay");
    repo.git(&["mv", "app", "src"]);
    let v2 = repo.commit(&BOB, &[], "Move app into src/");
    let later = repo.commit(&CAROL, &[("src/pay.py", "def pay(a, b):\n    return a / max(b, 1)\n")], "Guard division");

    let at_v1 = explain(&repo, &v1, &py(&[("/srv/app/pay.py", 2, "pay")])).await;
    assert_eq!(at_v1.frames[0].repo_path.as_deref(), Some("app/pay.py"));
    assert_eq!(at_v1.suspect.as_ref().map(|s| s.commit.as_str()), Some(v1.as_str()));

    let at_v2 = explain(&repo, &v2, &py(&[("/srv/src/pay.py", 2, "pay")])).await;
    assert_eq!(at_v2.frames[0].repo_path.as_deref(), Some("src/pay.py"));
    let blame = at_v2.frames[0].blame.as_ref().expect("blamed");
    assert_eq!(blame.commit, v1, "the move changed no line: blame follows it to Alice");
    assert_eq!(blame.orig_path, "app/pay.py");
    // The default branch has moved on, but the deployed commit is what ran.
    let at_head = explain(&repo, &later, &py(&[("/srv/src/pay.py", 2, "pay")])).await;
    assert_eq!(at_head.suspect.as_ref().map(|s| s.commit.as_str()), Some(later.as_str()));
    assert_eq!(at_v2.suspect.as_ref().map(|s| s.author_name.as_str()), Some("Alice Doe"));
    // Nobody has a login here and there is no CODEOWNERS: the owner is nobody, with the author's e-mail.
    assert_eq!((at_v2.owner.kind.as_str(), at_v2.owner.email.as_deref()), ("none", Some("alice@example.com")));
}

#[tokio::test]
async fn a_renamed_python_package_maps_by_its_manifest() {
    let repo = TestRepo::new();
    let before = repo.commit(
        &ALICE,
        &[
            ("pyproject.toml", "[project]\nname = \"acme-payments\"\n"),
            ("src/payments/__init__.py", ""),
            ("src/payments/total.py", "def avg(a, n):\n    return a / n\n"),
        ],
        "Payments package",
    );
    repo.git(&["mv", "src/payments", "src/billing"]);
    let after = repo.commit(&BOB, &[], "Rename payments to billing");
    let installed = |pkg: &str| py(&[(&format!("/opt/venv/lib/python3.12/site-packages/{pkg}/total.py"), 2, "avg")]);
    let old = explain(&repo, &before, &installed("payments")).await;
    assert_eq!(old.frames[0].repo_path.as_deref(), Some("src/payments/total.py"));
    assert!(old.frames[0].mapping.contains("installed Python package `payments`"), "{}", old.frames[0].mapping);
    let new = explain(&repo, &after, &installed("billing")).await;
    assert_eq!(new.frames[0].repo_path.as_deref(), Some("src/billing/total.py"));
    assert_eq!(new.suspect.as_ref().map(|s| s.commit.as_str()), Some(before.as_str()));
    let gone = explain(&repo, &after, &installed("payments")).await;
    assert!(!gone.frames[0].in_repo, "the old name is no longer this repository's: {}", gone.frames[0].mapping);
    assert!(gone.suspect.is_none());
    assert_eq!(gone.owner.kind, "none");
    let settings =
        Settings { logins: BTreeMap::from([("alice@example.com".into(), "alice".into())]), ..Default::default() };
    let owned =
        explain_with(&Assigner::new(git(), Arc::new(NoGitHub)), &repo, &after, &installed("billing"), &settings, None)
            .await;
    assert_eq!((owned.owner.kind.as_str(), owned.owner.github_login.as_deref()), ("author", Some("alice")));
}

#[tokio::test]
async fn formatting_commits_in_ignore_revs_mailmap_bots_and_noreply() {
    let repo = TestRepo::new();
    let old_bob = Author { name: "bob", email: "bob@old.example" };
    let base =
        repo.commit(&ALICE, &[("app/calc.py", "def calc(a, b):\n    total = a+b\n    return total / b\n")], "calc");
    let bobs = repo.commit(
        &old_bob,
        &[("app/calc.py", "def calc(a, b):\n    total = a+b\n    return total / (b - 1)\n")],
        "off by one",
    );
    let fmt = repo.commit(
        &DAVE,
        &[("app/calc.py", "def calc(a, b):\n    total = a + b\n    return total / (b - 1)\n")],
        "Reformat",
    );
    let bot = repo.commit(&DEPENDABOT, &[("app/deps.py", "VERSION = '1.0'\nLIMIT = 1 / 0\n")], "Bump deps");
    repo.commit(&OCTO, &[("app/octo.py", "def run():\n    return 1 / 0\n")], "octo");
    let head = repo.commit(
        &ALICE,
        &[
            (".git-blame-ignore-revs", &format!("# formatting\n{fmt}\n0123456789abcdef0123456789abcdef01234567\n")),
            (".mailmap", "Bob Roe <bob@example.com> <bob@old.example>\n"),
        ],
        "Ignore the reformat; map Bob",
    );
    // Line 2 was last touched by the reformat, which is ignored: Alice wrote it.
    let a = explain(&repo, &head, &py(&[("/srv/app/calc.py", 2, "calc")])).await;
    assert_eq!(a.frames[0].repo_path.as_deref(), Some("app/calc.py"));
    assert_eq!(a.suspect.as_ref().map(|s| s.commit.as_str()), Some(base.as_str()), "{:?}", a.suspect);
    assert_eq!((a.owner.kind.as_str(), a.owner.email.as_deref()), ("none", Some("alice@example.com")));
    // Line 3: Bob's change under his old address, mapped by .mailmap; his login from the project's mapping.
    let assigner = Assigner::new(git(), Arc::new(NoGitHub));
    let settings =
        Settings { logins: BTreeMap::from([("bob@example.com".into(), "bobroe".into())]), ..Default::default() };
    let b = explain_with(&assigner, &repo, &head, &py(&[("/srv/app/calc.py", 3, "calc")]), &settings, None).await;
    let s = b.suspect.as_ref().expect("suspect");
    assert_eq!(
        (s.commit.as_str(), s.author_name.as_str(), s.author_email.as_str()),
        (bobs.as_str(), "Bob Roe", "bob@example.com")
    );
    assert_eq!((b.owner.kind.as_str(), b.owner.github_login.as_deref()), ("author", Some("bobroe")));
    // A bot's line never wins: the caller's author does.
    let c = explain(&repo, &head, &py(&[("/srv/app/calc.py", 3, "calc"), ("/srv/app/deps.py", 2, "<module>")])).await;
    assert_eq!(c.frames[1].blame.as_ref().map(|b| b.commit.as_str()), Some(bot.as_str()));
    let s = c.suspect.as_ref().expect("suspect");
    assert_eq!(s.commit, bobs);
    assert!(s.reason.contains("by bot dependabot[bot]"), "{}", s.reason);
    // A noreply address names the login.
    let d = explain(&repo, &head, &py(&[("/srv/app/octo.py", 2, "run")])).await;
    assert_eq!((d.owner.kind.as_str(), d.owner.github_login.as_deref()), ("author", Some("octocat")));
    assert!(d.owner.reason.contains("noreply"), "{}", d.owner.reason);
}

#[tokio::test]
async fn vendored_code_codeowners_default_assignee_and_the_commit_api() {
    let repo = TestRepo::new();
    let lib =
        repo.commit(&BOB, &[("vendor/requests/api.py", "def get(url):\n    raise IOError(url)\n")], "Vendor requests");
    let app =
        repo.commit(&CAROL, &[("app/main.py", "import requests\n\ndef main():\n    requests.get('x')\n")], "main");
    let head = repo.commit(&ALICE, &[(".github/CODEOWNERS", "*  @acme/everyone\n/app/  @acme/payments\n")], "owners");
    let trace = py(&[
        ("/srv/app/app/main.py", 4, "main"),
        ("/srv/app/vendor/requests/api.py", 2, "get"),
        ("/srv/venv/lib/python3.11/site-packages/requests/api.py", 2, "get"),
    ]);
    let a = explain(&repo, &head, &trace).await;
    assert_eq!(a.frames[1].repo_path.as_deref(), Some("vendor/requests/api.py"));
    assert_eq!(a.frames[1].blame.as_ref().map(|b| b.commit.as_str()), Some(lib.as_str()));
    assert!(!a.frames[2].in_repo, "the installed copy is not the vendored one: {}", a.frames[2].mapping);
    let s = a.suspect.as_ref().expect("suspect");
    assert_eq!(s.commit, app, "vendored code never wins");
    // Carol has no login anywhere: CODEOWNERS of the top repository frame decides.
    assert_eq!((a.owner.kind.as_str(), a.owner.github_login.as_deref()), ("codeowners", Some("acme/payments")));
    assert!(a.owner.reason.contains(".github/CODEOWNERS:2 `/app/`"), "{}", a.owner.reason);
    // GitHub's commit API knows her.
    let fake = shipwatch::github::MemoryGitHub::default();
    fake.logins.lock().expect("lock").insert(app.clone(), "carol-gh".into());
    let assigner = Assigner::new(git(), Arc::new(fake));
    let b = explain_with(&assigner, &repo, &head, &trace, &Settings::default(), None).await;
    assert_eq!((b.owner.kind.as_str(), b.owner.github_login.as_deref()), ("author", Some("carol-gh")));
    assert!(b.owner.reason.contains("GitHub's commit API"));
    // Without CODEOWNERS and logins, the default assignee; then nobody.
    repo.git(&["rm", "-q", ".github/CODEOWNERS"]);
    let bare = repo.commit(&ALICE, &[], "drop owners");
    let settings = Settings { default_assignee: Some("@oncall".into()), ..Default::default() };
    let c = explain_with(&Assigner::new(git(), Arc::new(NoGitHub)), &repo, &bare, &trace, &settings, None).await;
    assert_eq!((c.owner.kind.as_str(), c.owner.github_login.as_deref()), ("default", Some("oncall")));
    let d = explain(&repo, &bare, &trace).await;
    assert_eq!(d.owner.kind, "none");
}

#[tokio::test]
async fn a_monorepo_whose_package_names_differ_from_their_directories() {
    let repo = TestRepo::new();
    let web = repo.commit(
        &ALICE,
        &[
            ("packages/web/package.json", r#"{"name": "@acme/storefront", "version": "1.0.0"}"#),
            ("packages/web/lib/cart.js", "exports.total = (c) => c.items.reduce((a, b) => a + b, 0);\n"),
        ],
        "storefront",
    );
    let api = repo.commit(
        &BOB,
        &[
            ("packages/api/package.json", r#"{"name": "@acme/backend"}"#),
            ("packages/api/lib/cart.js", "module.exports = null.x;\n"),
        ],
        "backend",
    );
    let trace = "TypeError: Cannot read properties of undefined (reading 'reduce')\n    at exports.total (/srv/shop/node_modules/@acme/storefront/lib/cart.js:1:37)\n    at handler (/srv/shop/node_modules/@acme/backend/lib/cart.js:1:18)\n";
    let a = explain(&repo, &api, trace).await;
    assert_eq!(a.frames[0].repo_path.as_deref(), Some("packages/web/lib/cart.js"));
    assert_eq!(a.frames[1].repo_path.as_deref(), Some("packages/api/lib/cart.js"));
    assert_eq!(a.suspect.as_ref().map(|s| s.commit.as_str()), Some(web.as_str()), "the crashing frame is web's");
    assert_eq!((a.owner.kind.as_str(), a.owner.email.as_deref()), ("none", Some("alice@example.com")));
    // By suffix alone `lib/cart.js` is ambiguous: the package names decide.
    let plain = explain(&repo, &api, "Error: x\n    at f (/build/lib/cart.js:1:1)\n").await;
    assert!(!plain.frames[0].in_repo);
    assert!(
        plain.frames[0].mapping.contains("packages/api/lib/cart.js")
            && plain.frames[0].mapping.contains("packages/web/lib/cart.js"),
        "{}",
        plain.frames[0].mapping
    );
}

#[tokio::test]
async fn commits_inside_the_deploy_range_beat_older_code_nearer_the_crash() {
    let repo = TestRepo::new();
    let old = repo.commit(
        &ALICE,
        &[("app/a.py", "def inner():\n    return 1 / 0\n"), ("app/b.py", "def outer():\n    x = 1\n    inner()\n")],
        "old code",
    );
    let new = repo.commit(&BOB, &[("app/b.py", "def outer():\n    x = 2\n    inner()\n")], "tweak outer");
    let trace = py(&[("/srv/app/b.py", 2, "outer"), ("/srv/app/a.py", 2, "inner")]);
    let assigner = Assigner::new(git(), Arc::new(NoGitHub));
    let without = explain_with(&assigner, &repo, &new, &trace, &Settings::default(), None).await;
    assert_eq!(without.suspect.as_ref().map(|s| s.commit.as_str()), Some(old.as_str()), "nearest the crash");
    let deploy =
        DeployContext { version: "v2".into(), environment: "production".into(), range: HashSet::from([new.clone()]) };
    let with = explain_with(&assigner, &repo, &new, &trace, &Settings::default(), Some(&deploy)).await;
    let s = with.suspect.as_ref().expect("suspect");
    assert_eq!(s.commit, new, "introduced by this deploy wins");
    assert!(s.reason.contains("inside deploy v2 to production"), "{}", s.reason);
    assert!(with.candidates[1].reason.contains("older code (not in deploy v2"), "{}", with.candidates[1].reason);
}

/// Every line of several files of a generated history (edits, moves, renames), blamed through shipwatch's engine
/// with its cache, equals `git blame --porcelain` of the whole file at that commit.
#[tokio::test]
async fn blame_agrees_with_git_blame_line_for_line() {
    let repo = TestRepo::new();
    let authors = [&ALICE, &BOB, &CAROL, &DAVE];
    let mut files: Vec<(String, Vec<String>)> =
        (0..3).map(|f| (format!("src/f{f}.txt"), (0..40).map(|l| format!("file {f} line {l}")).collect())).collect();
    let mut seed: u64 = 42;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for (path, lines) in &files {
        repo.commit(&ALICE, &[(path, &(lines.join("\n") + "\n"))], "initial");
    }
    let mut checkpoints = Vec::new();
    for c in 0..60 {
        let f = next(3) as usize;
        if c % 17 == 16 {
            let (old, _) = files[f].clone();
            let new = format!("moved{c}/{}", old.rsplit('/').next().unwrap_or("x"));
            std::fs::create_dir_all(repo.path().join(format!("moved{c}"))).expect("mkdir");
            repo.git(&["mv", &old, &new]);
            files[f].0 = new;
            repo.commit(authors[next(4) as usize], &[], &format!("move {c}"));
            continue;
        }
        let (path, lines) = &mut files[f];
        for _ in 0..(1 + next(4)) {
            let at = next(lines.len() as u64) as usize;
            match next(3) {
                0 => lines[at] = format!("edit {c} at {at}"),
                1 => lines.insert(at, format!("insert {c}")),
                _ if lines.len() > 10 => {
                    lines.remove(at);
                }
                _ => {}
            }
        }
        let content = lines.join("\n") + "\n";
        let sha = repo.commit(authors[next(4) as usize], &[(path.as_str(), content.as_str())], &format!("change {c}"));
        if c % 20 == 19 {
            checkpoints.push((sha, files.clone()));
        }
    }
    let engine =
        shipwatch::git::blame::CachedBlame::new(Arc::new(shipwatch::git::blame::GitCliBlame::new(git())), 100_000);
    let mut compared = 0;
    for (sha, files) in &checkpoints {
        for (path, lines) in files {
            let want: Vec<u32> = (1..=lines.len() as u32).collect();
            use shipwatch::git::blame::BlameEngine as _;
            let ours = engine.blame(repo.path(), sha, path, &want, &[]).await.expect("blame");
            let reference =
                shipwatch::git::blame::parse_porcelain(&repo.git(&["blame", "--porcelain", sha, "--", path]))
                    .expect("parse");
            assert_eq!(ours.len(), lines.len(), "{path} at {sha}");
            for l in &want {
                assert_eq!(ours[l].commit, reference[l].commit, "{path}:{l} at {sha}");
                assert_eq!(
                    (ours[l].orig_path.as_str(), ours[l].orig_line),
                    (reference[l].orig_path.as_str(), reference[l].orig_line)
                );
                compared += 1;
            }
            // Asked again: answered from the cache, no git process.
            let before = engine.engine_calls();
            let again = engine.blame(repo.path(), sha, path, &want, &[]).await.expect("blame");
            assert_eq!(again, ours);
            assert_eq!(engine.engine_calls(), before);
        }
    }
    assert!(compared > 300, "compared {compared} lines");
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

/// Runs the `shipwatch explain` binary with `input` on standard input.
async fn explain_binary(repo: &std::path::Path, rev: &str, input: &str, extra: &[&str]) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_shipwatch"))
        .args(["explain", "--repo"])
        .arg(repo)
        .args(["--rev", rev])
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("explain starts");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).await.expect("write");
    drop(stdin);
    let out = child.wait_with_output().await.expect("explain runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn explain_prints_exactly_the_documented_json_for_traces_and_sentry_events() {
    let repo = TestRepo::new();
    // The application the captured Python SDK event came from, at /srv/demo-app/app.py.
    let app_py: String = (1..=30).map(|i| format!("line {i}\n")).collect();
    let sha = repo.commit(&OCTO, &[("app.py", &app_py)], "demo app");
    let bare = tempfile::tempdir().expect("temp dir");
    let bare_path = bare.path().join("mirror.git");
    repo.git(&["clone", "--quiet", "--bare", &repo.url(), &bare_path.display().to_string()]);

    let trace = py(&[("/srv/demo-app/app.py", 11, "divide"), ("/usr/lib/python3.11/runpy.py", 88, "_run_code")]);
    let (ok, out, err) = explain_binary(&bare_path, "HEAD", &trace, &["--format", "json"]).await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(keys(&v), ["frames", "language", "owner", "suspect"]);
    assert_eq!(v["language"], serde_json::json!("python"));
    let frame_keys = ["blame", "column", "function", "in_repo", "index", "line", "mapping", "raw_path", "repo_path"];
    assert_eq!(keys(&v["frames"][0]), frame_keys);
    assert_eq!(
        keys(&v["frames"][0]["blame"]),
        ["author_email", "author_name", "author_time", "commit", "orig_line", "orig_path", "summary"]
    );
    assert_eq!(v["frames"][1]["in_repo"], serde_json::json!(false));
    assert_eq!(v["frames"][1]["repo_path"], serde_json::Value::Null);
    assert_eq!(v["frames"][1]["blame"], serde_json::Value::Null);
    assert_eq!(keys(&v["suspect"]), ["author_email", "author_name", "commit", "frame_index", "github_login", "reason"]);
    assert_eq!(v["suspect"]["commit"], serde_json::json!(sha));
    assert_eq!(keys(&v["owner"]), ["email", "github_login", "kind", "reason"]);
    assert_eq!(
        (v["owner"]["kind"].clone(), v["owner"]["github_login"].clone()),
        (serde_json::json!("author"), serde_json::json!("octocat"))
    );

    // A real captured Sentry event (sentry-sdk 2.75) as input.
    let body = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sentry-sdk/py-basic-01.body"),
    )
    .expect("fixture");
    let event = body.lines().nth(2).expect("event line");
    let (ok, out, err) = explain_binary(repo.path(), &sha, event, &["--format", "json"]).await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["language"], serde_json::json!("python"));
    let frames = v["frames"].as_array().expect("frames");
    assert_eq!(
        frames.iter().map(|f| f["line"].as_u64().unwrap_or(0)).collect::<Vec<_>>(),
        vec![23, 14, 11],
        "input order"
    );
    assert!(frames.iter().all(|f| f["repo_path"] == serde_json::json!("app.py")));
    assert_eq!(v["suspect"]["frame_index"], serde_json::json!(2), "the crashing frame: divide");

    // Text for people, and clear errors.
    let (ok, out, _) = explain_binary(repo.path(), "HEAD", &trace, &[]).await;
    assert!(
        ok && out.contains("Suspect: app.py:11 `line 11` last changed in") && out.contains("Owner: @octocat [author]"),
        "{out}"
    );
    let (ok, _, err) = explain_binary(repo.path(), "HEAD", "no trace here", &[]).await;
    assert!(!ok && err.contains("unrecognised stack trace"), "{err}");
    let (ok, _, err) = explain_binary(repo.path(), "nope", &trace, &[]).await;
    assert!(!ok && err.contains("`nope` is not a commit"), "{err}");
}

/// The production client (octocrab), pointed at a local fake of GitHub's REST API: the commit's author login is
/// asked for with the token, once per commit, and an unknown commit is simply no login.
#[tokio::test]
async fn the_octocrab_client_asks_githubs_commit_api() {
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Fake {
        known: Arc<Mutex<HashMap<String, String>>>,
        asked: Arc<Mutex<Vec<(String, String)>>>,
    }
    async fn commit(
        State(fake): State<Fake>,
        Path((owner, repo, sha)): Path<(String, String, String)>,
        headers: HeaderMap,
    ) -> (StatusCode, axum::Json<serde_json::Value>) {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        fake.asked.lock().expect("lock").push((format!("{owner}/{repo}@{sha}"), auth));
        match fake.known.lock().expect("lock").get(&sha) {
            Some(login) => {
                (StatusCode::OK, axum::Json(serde_json::json!({ "sha": sha, "author": { "login": login, "id": 1 } })))
            }
            None => (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({ "message": "No commit found for SHA" }))),
        }
    }
    let repo = TestRepo::new();
    let c = repo.commit(&CAROL, &[("app/x.py", "def f():\n    return 1 / 0\n")], "x");
    let d = repo.commit(&ALICE, &[("app/y.py", "def g():\n    return 1 / 0\n")], "y");
    let fake = Fake::default();
    fake.known.lock().expect("lock").insert(c.clone(), "carol-gh".into());
    let router = axum::Router::new()
        .route("/repos/{owner}/{repo}/commits/{sha}", axum::routing::get(commit))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });

    let token = shipwatch::config::Secret::new("ghp_test_token");
    let client = shipwatch::github::OctocrabGitHub::new(&base, &token).expect("client");
    let assigner = Assigner::new(git(), Arc::new(client));
    let trace = py(&[("/srv/app/x.py", 2, "f")]);
    for _ in 0..2 {
        let a = explain_with(&assigner, &repo, &d, &trace, &Settings::default(), None).await;
        assert_eq!((a.owner.kind.as_str(), a.owner.github_login.as_deref()), ("author", Some("carol-gh")));
    }
    let b = explain_with(&assigner, &repo, &d, &py(&[("/srv/app/y.py", 2, "g")]), &Settings::default(), None).await;
    assert_eq!(b.owner.kind, "none", "a commit GitHub does not know has no login");
    let asked = fake.asked.lock().expect("lock").clone();
    assert_eq!(asked.len(), 2, "cached: one request per commit, {asked:?}");
    assert_eq!(asked[0].0, format!("acme/web@{c}"));
    assert!(asked[0].1.ends_with("ghp_test_token"), "the token is sent: {}", asked[0].1);
}

/// A large commit inside the deploy's range moved a module's code into a new file; the line that raised was written
/// long before by someone else. The frame keeps its plain blame (the move), but the suspect is the commit that wrote
/// the line, and the explanation names the move it skipped.
#[tokio::test]
async fn a_move_commit_in_the_deploy_range_does_not_take_the_blame() {
    let repo = TestRepo::new();
    // 150 lines of helpers around the function that raises: the move is a big one.
    let helpers: String = (0..50).map(|i| format!("def helper_{i}(x):\n    y = x + {i}\n    return y * 2\n")).collect();
    let orders = format!("{helpers}\ndef total(items):\n    return sum(i.price for i in items) / len(items)\n");
    let crash_line = orders.lines().position(|l| l.contains("/ len(items)")).expect("line") as u32 + 1;
    let wrote = repo.commit(&ALICE, &[("app/orders.py", &orders), ("app/__init__.py", "")], "Order totals");
    let base = repo.commit(&BOB, &[("README.md", "shop\n")], "Readme");
    repo.git(&["rm", "-q", "app/orders.py"]);
    let moved = repo.commit(
        &CAROL,
        &[("app/billing.py", &orders), ("app/orders.py", "from app.billing import *  # noqa\n")],
        "Split orders into billing",
    );
    let trace = py(&[("/srv/app/app/views.py", 3, "checkout"), ("/srv/app/app/billing.py", crash_line, "total")]);
    let deploy = DeployContext {
        version: "v2".into(),
        environment: "production".into(),
        range: shipwatch::assign::range_commits(&git(), repo.path(), &base, &moved).await.expect("range"),
    };
    assert!(deploy.range.contains(&moved), "the move is inside the deploy");
    let git = git();
    let assigner = Assigner::new(git.clone(), Arc::new(NoGitHub));
    let a = explain_with(&assigner, &repo, &moved, &trace, &Settings::default(), Some(&deploy)).await;
    let frame = a.frames.iter().find(|f| f.repo_path.as_deref() == Some("app/billing.py")).expect("mapped frame");
    assert_eq!(frame.blame.as_ref().map(|b| b.commit.as_str()), Some(moved.as_str()), "plain blame is the record");
    let s = a.suspect.as_ref().expect("suspect");
    assert_eq!(s.commit, wrote, "{}", s.reason);
    assert_eq!(s.author_name, "Alice Doe");
    assert_eq!(s.in_range, Some(false));
    assert!(
        s.reason.contains(&format!("written in {} by Alice Doe", &wrote[..7]))
            && s.reason.contains(&format!("skipped {} by Carol Poe", &moved[..7]))
            && s.reason.contains("only moved or reformatted this line"),
        "{}",
        s.reason
    );
    // Another group with the same crash line (a burst of new errors) is answered from the caches, writer included:
    // not one git process.
    let before = git.processes_started();
    let again = explain_with(&assigner, &repo, &moved, &trace, &Settings::default(), Some(&deploy)).await;
    assert_eq!(git.processes_started(), before, "a warm assignment starts no git process");
    assert_eq!(again.suspect.map(|s| s.commit), Some(wrote));
}

/// A commit that only re-indented the line (a formatter run) does not take the blame either.
#[tokio::test]
async fn a_reformatting_commit_does_not_take_the_blame() {
    let repo = TestRepo::new();
    let body: String = (0..120).map(|i| format!("def f{i}(x):\n  return x + {i}\n")).collect();
    let wrote =
        repo.commit(&ALICE, &[("app/calc.py", &format!("{body}def avg(xs):\n  return sum(xs) / len(xs)\n"))], "Calc");
    let reformatted: String = (0..120).map(|i| format!("def f{i}(x):\n    return x + {i}\n")).collect();
    let fmt = repo.commit(
        &BOB,
        &[("app/calc.py", &format!("{reformatted}def avg(xs):\n    return sum(xs) / len(xs)\n"))],
        "Reformat with four spaces",
    );
    let a = explain(&repo, &fmt, &py(&[("/srv/app/app/calc.py", 242, "avg")])).await;
    assert_eq!(a.frames[0].blame.as_ref().map(|b| b.commit.as_str()), Some(fmt.as_str()));
    let s = a.suspect.as_ref().expect("suspect");
    assert_eq!(s.commit, wrote, "{}", s.reason);
    assert!(s.reason.contains(&format!("skipped {} by Bob Roe", &fmt[..7])), "{}", s.reason);
}

/// A formatter that only changed the line's quotes and added a trailing comma (black) is git's change, but not the
/// commit that wrote the code: the suspect is who wrote it, and the explanation names the restyle it skipped.
#[tokio::test]
async fn a_commit_that_only_restyled_the_line_does_not_take_the_blame() {
    let repo = TestRepo::new();
    let wrote = repo.commit(
        &ALICE,
        &[("app/cfg.py", "def load(d):\n    return d['retries'] / d['window']\n\ndef other():\n    return 1\n")],
        "Load retry settings",
    );
    let fmt = repo.commit(
        &BOB,
        &[("app/cfg.py", "def load(d):\n    return d[\"retries\"] / d[\"window\"]\n\n\ndef other():\n    return 1\n")],
        "Run black",
    );
    let a = explain(&repo, &fmt, &py(&[("/srv/app/app/cfg.py", 2, "load")])).await;
    assert_eq!(a.frames[0].blame.as_ref().map(|b| b.commit.as_str()), Some(fmt.as_str()), "plain blame is the record");
    let s = a.suspect.as_ref().expect("suspect");
    assert_eq!(s.commit, wrote, "{}", s.reason);
    assert!(s.reason.contains(&format!("skipped {} by Bob Roe", &fmt[..7])), "{}", s.reason);
    // A commit that changed what the line does keeps the blame.
    let changed = repo.commit(
        &BOB,
        &[("app/cfg.py", "def load(d):\n    return d[\"retries\"] / d[\"period\"]\n\n\ndef other():\n    return 1\n")],
        "Divide by the period",
    );
    let a = explain(&repo, &changed, &py(&[("/srv/app/app/cfg.py", 2, "load")])).await;
    assert_eq!(a.suspect.expect("suspect").commit, changed);
}

/// A Go module without a `go.mod` (cobra before modules, as in k1LoW/sheer-heart-attack#19's panic) is known by its
/// GitHub name: `explain` reads it from the work tree's `origin` remote when `--github-repo` is not given.
#[tokio::test]
async fn explain_knows_the_repository_by_its_origin_remote() {
    let repo = TestRepo::new();
    let rev = repo.commit(&ALICE, &[("command.go", "package cobra\n\nfunc run() {\n\tpanic(\"boom\")\n}\n")], "cmd");
    let trace = "panic: boom\n\ngoroutine 1 [running]:\ngithub.com/acme/cobra.run(...)\n\t/home/u/go/pkg/mod/github.com/acme/cobra@v0.0.3/command.go:4 +0x2ae\nmain.main()\n\t/home/u/src/app/main.go:9 +0x20\n";
    let (ok, out, err) = explain_binary(repo.path(), &rev, trace, &[]).await;
    assert!(ok, "{err}");
    assert!(out.contains("0 in the repository"), "without a name the module is another's: {out}");
    repo.git_as(&ALICE, &["remote", "add", "origin", "https://github.com/acme/cobra.git"]);
    let (ok, out, err) = explain_binary(repo.path(), &rev, trace, &[]).await;
    assert!(ok, "{err}");
    assert!(out.contains("→ command.go"), "{out}");
    assert!(out.contains("Suspect: command.go:4"), "{out}");
}

/// A frame whose line is blank at the revision (the trace came from another version, as knex/knex#6302's did) is
/// no suspect: the next frame out is, and `explain` says why.
#[tokio::test]
async fn a_blank_line_is_no_suspect() {
    let repo = TestRepo::new();
    repo.commit(&ALICE, &[("app/jobs.py", "def run(job):\n    return job.go()\n")], "jobs");
    let rev = repo.commit(&BOB, &[("app/jobs.py", "def run(job):\n\n    return job.go()\n")], "spacing");
    let trace = py(&[("/srv/app/app/jobs.py", 3, "run"), ("/srv/app/app/jobs.py", 2, "go")]);
    let a = explain(&repo, &rev, &trace).await;
    let s = a.suspect.as_ref().expect("suspect");
    assert_eq!(s.frame_index, 0, "the crash frame (line 2 is blank here) is skipped: {}", s.reason);
    let (ok, out, err) = explain_binary(repo.path(), &rev, &trace, &[]).await;
    assert!(ok, "{err}");
    assert!(out.contains("a blank line at this revision"), "{out}");
}

#[tokio::test]
async fn explain_says_a_frame_is_ambiguous_and_names_the_candidates_instead_of_calling_it_foreign() {
    let repo = TestRepo::new();
    let rev =
        repo.commit(&ALICE, &[("a/util.py", "def f():\n    pass\n"), ("b/util.py", "def f():\n    pass\n")], "two");
    // Only the file name matches, and it matches two files: not guessed, and said so.
    let trace =
        "Traceback (most recent call last):\n  File \"/srv/x/util.py\", line 2, in f\n    pass\nValueError: x\n";
    let (ok, out, err) = explain_binary(repo.path(), &rev, trace, &[]).await;
    assert!(ok, "{err}");
    assert!(out.contains("ambiguous, not guessed"), "{out}");
    assert!(out.contains("a/util.py") && out.contains("b/util.py"), "{out}");
    assert!(!out.contains("not in the repository"), "{out}");
    let (ok, json, err) = explain_binary(repo.path(), &rev, trace, &["--format", "json"]).await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["frames"][0]["candidates"], serde_json::json!(["a/util.py", "b/util.py"]), "{v}");
}

/// Objects are read in process from a plain store, loose or packed, and by `git cat-file` from one git would read
/// differently (here a `git clone --shared`, whose objects live in the original's store): the same frames, blame
/// and suspect — past a commit that only moved the line — either way.
#[tokio::test]
async fn explain_gives_the_same_answer_from_loose_packed_and_borrowed_objects() {
    let repo = TestRepo::new();
    let body: String = (0..30).map(|i| format!("    step_{i}()\n")).collect();
    repo.commit(
        &ALICE,
        &[("app/jobs.py", &format!("def run(job):\n    return job.go()\n\n\ndef helpers():\n{body}"))],
        "jobs",
    );
    let rev = repo.commit(
        &BOB,
        &[("app/jobs.py", &format!("def helpers():\n{body}\n\ndef run(job):\n    return job.go()\n"))],
        "move run below the helpers",
    );
    let trace = py(&[("/srv/app/app/jobs.py", 35, "run")]);
    let (ok, loose, err) = explain_binary(repo.path(), &rev, &trace, &[]).await;
    assert!(ok, "{err}");
    assert!(loose.contains("Suspect: app/jobs.py:35 `return job.go()` written in"), "{loose}");
    assert!(loose.contains("it only moved or reformatted this line"), "{loose}");
    repo.git(&["repack", "-adq"]);
    let (ok, packed, err) = explain_binary(repo.path(), &rev, &trace, &[]).await;
    assert!(ok, "{err}");
    let shared = tempfile::tempdir().expect("test set-up");
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--shared", "--bare"])
        .arg(repo.path())
        .arg(shared.path().join("r"))
        .output()
        .expect("git");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(shared.path().join("r/objects/info/alternates").exists(), "the clone borrows the original's objects");
    let (ok, borrowed, err) = explain_binary(&shared.path().join("r"), &rev, &trace, &[]).await;
    assert!(ok, "{err}");
    assert_eq!(packed, loose);
    assert_eq!(borrowed, loose);
}
