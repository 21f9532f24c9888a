//! The GitHub Action, run as a runner runs it: `action.yml`'s input defaults and its step's `env:` mapping are read
//! from the file, the step's command runs with the usual `GITHUB_*` variables and temporary `GITHUB_OUTPUT` and
//! `GITHUB_STEP_SUMMARY` files, against a real shipwatch server over HTTP.

use regex::Regex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::support::{sqlite_db, TestApp, TestRepo, ADMIN_TOKEN, ALICE, BOB};

fn action_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("action")
}

/// The step's environment as the runner would build it from `with:` values, the inputs' defaults and `github.*`.
fn step_env(with: &HashMap<&str, String>, github: &HashMap<&str, String>) -> Vec<(String, String)> {
    let yml = std::fs::read_to_string(action_dir().join("action.yml")).expect("action.yml");
    let input_block = Regex::new(r"(?m)^  ([a-z-]+):\n((?:    .*\n)+)").expect("regex");
    let default = Regex::new(r#"(?m)^    default: "?([^"\n]*)"?$"#).expect("regex");
    let inputs_section = yml.split("\noutputs:").next().expect("inputs");
    let mut defaults: HashMap<String, String> = HashMap::new();
    for c in input_block.captures_iter(inputs_section) {
        if let Some(d) = default.captures(&c[2]) {
            defaults.insert(c[1].to_owned(), d[1].to_owned());
        }
    }
    let expr = Regex::new(r"^\$\{\{ (inputs|github)\.([a-z_-]+) \}\}$").expect("regex");
    let mapping = Regex::new(r"(?m)^        ([A-Z_]+): (.+)$").expect("regex");
    let resolve = |value: &str| -> String {
        match expr.captures(value) {
            Some(c) if &c[1] == "github" => github.get(&c[2]).cloned().unwrap_or_default(),
            Some(c) => with.get(&c[2]).cloned().or_else(|| defaults.get(&c[2]).cloned()).unwrap_or_default(),
            None => value.to_owned(),
        }
    };
    mapping
        .captures_iter(&yml)
        .map(|c| {
            // A default may itself be an expression (`sha` defaults to `${{ github.sha }}`).
            let v = resolve(c[2].trim());
            (c[1].to_owned(), resolve(&v))
        })
        .collect()
}

struct Run {
    ok: bool,
    stdout: String,
    outputs: HashMap<String, String>,
    summary: String,
}

async fn run_action(with: &[(&'static str, String)]) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let (output, summary) = (dir.path().join("output"), dir.path().join("summary"));
    std::fs::write(&output, "").expect("output file");
    std::fs::write(&summary, "").expect("summary file");
    let with: HashMap<&str, String> = with.iter().cloned().collect();
    let github: HashMap<&str, String> = HashMap::from([("sha", "0".repeat(40))]);
    let yml = std::fs::read_to_string(action_dir().join("action.yml")).expect("action.yml");
    let run_line = yml.lines().find_map(|l| l.trim().strip_prefix("run: ")).expect("run line").to_owned();
    let out = tokio::process::Command::new("bash")
        .args(["-c", &run_line])
        .envs(step_env(&with, &github))
        .env("GITHUB_ACTION_PATH", action_dir())
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_ACTOR", "octocat")
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_REPOSITORY", "acme/web")
        .env("GITHUB_RUN_ID", "4242")
        .output()
        .await
        .expect("the step runs");
    let outputs = std::fs::read_to_string(&output)
        .expect("outputs")
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        outputs,
        summary: std::fs::read_to_string(&summary).expect("summary"),
    }
}

#[tokio::test]
async fn the_action_records_deploys_writes_the_summary_and_fails_only_when_asked() {
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), true).await;
    let repo = TestRepo::new();
    let c1 = repo.commit(&ALICE, &[("a.txt", "1\n")], "one");
    let (_, token) = app.project("web", &repo).await;
    let base = |extra: &[(&'static str, String)]| {
        let mut with = vec![
            ("server-url", app.base.clone()),
            ("token", token.clone()),
            ("project", "web".to_owned()),
            ("environment", "production".to_owned()),
        ];
        with.extend(extra.iter().cloned());
        with
    };
    let first = run_action(&base(&[("sha", c1.clone())])).await;
    assert!(first.ok, "{}", first.stdout);
    assert!(first.stdout.starts_with(&format!("::add-mask::{token}\n")), "the token is masked first: {}", first.stdout);
    assert_eq!(first.stdout.matches(&token).count(), 1, "and never printed again: {}", first.stdout);
    assert_eq!(first.outputs.get("deploy-id").map(String::as_str), Some("1"));
    assert_eq!(first.outputs.get("commit-count").map(String::as_str), Some("0"));
    assert!(first.summary.contains("first deploy of this environment"), "{}", first.summary);

    repo.commit(&BOB, &[("a.txt", "2\n")], "two (#5)");
    let c3 = repo.commit(&ALICE, &[("b.txt", "3\n")], "three");
    let second = run_action(&base(&[("sha", c3.clone()), ("version", "v2".to_owned())])).await;
    assert!(second.ok, "{}", second.stdout);
    assert_eq!(second.outputs.get("deploy-id").map(String::as_str), Some("2"));
    assert_eq!(second.outputs.get("commit-count").map(String::as_str), Some("2"));
    let report_url = second.outputs.get("report-url").expect("report-url");
    assert!(report_url.ends_with("/api/v1/deploys/2/report?format=md"), "{report_url}");
    assert!(second.summary.starts_with("## web v2 → production"), "{}", second.summary);
    assert!(second.summary.contains("by octocat") && second.summary.contains("two (#5)"), "{}", second.summary);
    assert!(second.summary.contains("https://github.com/acme/web/actions/runs/4242"), "the run is the deploy's link");
    assert!(
        second.summary.contains(&format!("[This release in shipwatch]({}/deploys/", app.base)),
        "links the release page, not only the token-protected API: {}",
        second.summary
    );

    // Without waiting: outputs but no summary.
    let no_wait =
        run_action(&base(&[("sha", c3.clone()), ("version", "v2-again".to_owned()), ("wait", "false".to_owned())]))
            .await;
    assert!(
        no_wait.ok && no_wait.outputs.contains_key("deploy-id") && no_wait.summary.is_empty(),
        "{}",
        no_wait.stdout
    );

    // A bad token: a warning that says what to check, or a failure when asked.
    let bad = |fail: &str| {
        base(&[("token", "wrong-token".to_owned()), ("sha", c3.clone()), ("fail-on-error", fail.to_owned())])
    };
    let warned = run_action(&bad("false")).await;
    assert!(warned.ok, "{}", warned.stdout);
    assert!(
        warned.stdout.contains("::warning title=shipwatch::the shipwatch server answered HTTP 401")
            && warned.stdout.contains("Check the token"),
        "{}",
        warned.stdout
    );
    let failed = run_action(&bad("true")).await;
    assert!(!failed.ok && failed.stdout.contains("::error title=shipwatch::"), "{}", failed.stdout);
    assert!(
        failed.summary.contains("shipwatch: no release report") && failed.summary.contains("HTTP 401"),
        "the summary says why there is no report: {}",
        failed.summary
    );

    // An unknown project.
    let unknown = run_action(&[
        ("server-url", app.base.clone()),
        ("token", token.clone()),
        ("project", "nope".into()),
        ("environment", "production".into()),
        ("fail-on-error", "true".into()),
    ])
    .await;
    assert!(
        !unknown.ok && unknown.stdout.contains("HTTP 404") && unknown.stdout.contains("project"),
        "{}",
        unknown.stdout
    );

    // The server is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let down = |fail: &str| {
        vec![
            ("server-url", format!("http://127.0.0.1:{port}")),
            ("token", token.clone()),
            ("project", "web".to_owned()),
            ("environment", "production".to_owned()),
            ("fail-on-error", fail.to_owned()),
        ]
    };
    let tolerated = run_action(&down("false")).await;
    assert!(tolerated.ok && tolerated.stdout.contains("could not reach the shipwatch server"), "{}", tolerated.stdout);
    assert!(tolerated.stdout.contains("continuing (fail-on-error is false)"));
    let strict = run_action(&down("true")).await;
    assert!(!strict.ok && strict.stdout.contains("::error title=shipwatch::could not reach"), "{}", strict.stdout);
    assert!(tolerated.outputs.is_empty(), "no outputs when nothing was recorded");
    app.stop().await;
}

/// `wait-minutes` and `fail-on`: the step watches the release, then writes what it actually did and fails the job
/// when told to. (A fraction of a minute here; real gates wait minutes.)
#[tokio::test]
async fn the_action_as_a_deploy_gate_watches_the_release_and_fails_on_what_it_is_told() {
    let db = sqlite_db().await;
    let app = TestApp::spawn(db.store.clone(), true).await;
    let repo = TestRepo::new();
    let c1 = repo.commit(&ALICE, &[("app/pay.py", "def pay(a, b):\n    return a / (b + 1)\n")], "pay");
    let (_, token) = app.project("web", &repo).await;
    let (_, p) = app.call(reqwest::Method::GET, "/api/v1/projects/web", Some(ADMIN_TOKEN), None).await;
    let key = p["dsn"].as_str().and_then(|d| d.split("//").nth(1)).and_then(|r| r.split('@').next()).expect("key");
    let intake = format!("{}/api/{}/envelope/?sentry_key={key}", app.base, p["id"]);
    let with = |sha: &str, version: &str, fail_on: &str| {
        vec![
            ("server-url", app.base.clone()),
            ("token", token.clone()),
            ("project", "web".to_owned()),
            ("environment", "production".to_owned()),
            ("sha", sha.to_owned()),
            ("version", version.to_owned()),
            ("wait-minutes", "0.1".to_owned()),
            ("fail-on", fail_on.to_owned()),
        ]
    };

    // A mistyped gate fails the job before anything is recorded, even without fail-on-error.
    let typo = run_action(&with(&c1, "v1", "new,errors>2")).await;
    assert!(!typo.ok && typo.stdout.contains("fail-on: `errors>2` is not a condition"), "{}", typo.stdout);
    assert!(!typo.outputs.contains_key("deploy-id"), "nothing recorded: {:?}", typo.outputs);

    // A quiet release passes.
    let quiet = run_action(&with(&c1, "v1", "new, regression, error-rate>2x")).await;
    assert!(quiet.ok, "{}", quiet.stdout);
    assert_eq!(quiet.outputs.get("verdict").map(String::as_str), Some("pass"));
    assert_eq!(quiet.outputs.get("new-errors").map(String::as_str), Some("0"));
    assert!(quiet.stdout.contains("watching the release"), "{}", quiet.stdout);
    assert!(quiet.summary.contains("### Deploy gate: pass"), "{}", quiet.summary);

    // A release whose new error arrives while the step watches: the summary says so and the job fails.
    let c2 = repo.commit(&BOB, &[("app/pay.py", "def pay(a, b):\n    return a / b\n")], "simplify");
    let event = serde_json::json!({
        "event_id": "ab".repeat(16), "release": "v2", "environment": "production", "platform": "python",
        "exception": {"values": [{"type": "ZeroDivisionError", "value": "division by zero", "stacktrace": {"frames": [
            {"abs_path": "/srv/app/app/pay.py", "function": "pay", "lineno": 2, "in_app": true}]}}]}
    });
    let send = async {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let body = format!("{{}}\n{{\"type\":\"event\"}}\n{event}\n");
        app.http.post(&intake).body(body).send().await.expect("sent").status().as_u16()
    };
    let inputs = with(&c2, "v2", "new");
    let (gated, sent) = tokio::join!(run_action(&inputs), send);
    assert_eq!(sent, 200);
    assert!(!gated.ok, "the gate fails the job: {}", gated.stdout);
    assert_eq!(gated.outputs.get("verdict").map(String::as_str), Some("fail"), "{}", gated.stdout);
    assert_eq!(gated.outputs.get("new-errors").map(String::as_str), Some("1"));
    assert!(gated.stdout.contains("::error title=shipwatch deploy gate::1 new error(s)"), "{}", gated.stdout);
    assert!(
        gated.summary.contains("ZeroDivisionError") && gated.summary.contains("### Deploy gate: fail"),
        "the summary shows what the release did after the watch: {}",
        gated.summary
    );
    app.stop().await;
}
