//! Deploy ranges on real repositories: for every kind of history, the stored commits are exactly
//! `git rev-list <previous>..<sha>` on the same repository, on SQLite and on PostgreSQL.

use serde_json::{json, Value};

use crate::support::{commit_ids, on_each_backend, TestApp, TestRepo, ALICE, BOB, CAROL};

/// One deploy and what its range must be.
struct Case<'a> {
    env: &'a str,
    sha: &'a str,
    version: &'a str,
    previous_sha: Option<&'a str>,
    expected_base: Option<&'a str>,
    expected_status: &'a str,
}

/// Deploys `case.sha` (drains the worker) and checks the stored commits against `git rev-list base..sha`.
async fn deploy_and_check(app: &TestApp, repo: &TestRepo, token: &str, case: Case<'_>) -> Value {
    let Case { env, sha, version, previous_sha, expected_base, expected_status } = case;
    let mut body = json!({ "project": "web", "environment": env, "sha": sha, "version": version });
    if let Some(p) = previous_sha {
        body["previous_sha"] = json!(p);
    }
    let (status, recorded) = app.deploy(token, body).await;
    assert_eq!(status, 202, "{recorded}");
    assert_eq!(recorded["created"], json!(true), "{recorded}");
    app.drain().await;
    let id = recorded["id"].as_i64().expect("id");
    let got = app.get_deploy(token, id).await;
    let d = &got["deploy"];
    assert_eq!(d["status"], json!("ready"), "{got}");
    assert_eq!(d["range_status"], json!(expected_status), "{version}: {got}");
    assert_eq!(d["base_sha"].as_str(), expected_base, "{version}");
    let expected = repo.rev_list(expected_base.filter(|_| expected_status != "previous_missing"), sha);
    assert_eq!(commit_ids(&got), expected, "{version}: stored commits differ from git rev-list");
    assert_eq!(d["commit_count"], json!(expected.len()), "{version}");
    got
}

#[tokio::test]
async fn stored_ranges_equal_git_rev_list() {
    on_each_backend(|store, backend| async move {
        let repo = TestRepo::new();
        let c1 = repo.commit(&ALICE, &[("app/main.py", "print('v1')\n")], "Initial commit");
        let app = TestApp::spawn(store, false).await;
        let (_, token) = app.project("web", &repo).await;

        // First deploy of an environment: nothing to compare against, so an empty range marked initial.
        deploy_and_check(
            &app,
            &repo,
            &token,
            Case {
                env: "production",
                sha: &c1,
                version: "v1",
                previous_sha: None,
                expected_base: None,
                expected_status: "initial",
            },
        )
        .await;

        // A feature branch by two people, merged with a merge commit, while main moved on.
        repo.git(&["checkout", "--quiet", "-b", "feature"]);
        repo.commit(&BOB, &[("app/pay.py", "def pay(): pass\n")], "Add payments");
        repo.commit(&CAROL, &[("app/pay.py", "def pay():\n    return 1\n")], "Return a value\n\nFixes #4");
        repo.git(&["checkout", "--quiet", "main"]);
        repo.commit(&ALICE, &[("README.md", "hello\n")], "Readme");
        repo.git_as(
            &ALICE,
            &["merge", "--quiet", "--no-ff", "feature", "-m", "Merge pull request #5 from acme/feature"],
        );
        let merge = repo.head();
        let v2 = deploy_and_check(
            &app,
            &repo,
            &token,
            Case {
                env: "production",
                sha: &merge,
                version: "v2",
                previous_sha: None,
                expected_base: Some(&c1),
                expected_status: "forward",
            },
        )
        .await;
        let merge_commit = &v2["commits"][0];
        assert_eq!(merge_commit["pr_number"], json!(5));
        assert_eq!(merge_commit["parents"].as_array().map(Vec::len), Some(2));
        // Files of a merge are what it brought in relative to its first parent.
        assert_eq!(merge_commit["files"][0]["path"], json!("app/pay.py"), "{merge_commit}");
        let fixes: Vec<&Value> =
            v2["commits"].as_array().expect("commits").iter().filter(|c| c["closes"] != json!([])).collect();
        assert_eq!(fixes.len(), 1);
        assert_eq!(fixes[0]["closes"], json!([{ "repo": null, "number": 4 }]));

        // A squash-merged pull request with a co-author, and a .mailmap that renames an old address.
        repo.commit(
            &ALICE,
            &[
                ("app/search.py", "def search(q):\n    return []\n"),
                (".mailmap", "Bob Roe <bob@example.com> <bob@old.example>\n"),
            ],
            "Add search (#9)\n\nCo-authored-by: Carol Poe <carol@example.com>",
        );
        let squash = repo.head();
        let old_bob = crate::support::Author { name: "bob", email: "bob@old.example" };
        repo.commit(&old_bob, &[("app/search.py", "def search(q):\n    return [q]\n")], "Search returns the query");
        let v3_sha = repo.head();
        let v3 = deploy_and_check(
            &app,
            &repo,
            &token,
            Case {
                env: "production",
                sha: &v3_sha,
                version: "v3",
                previous_sha: None,
                expected_base: Some(&merge),
                expected_status: "forward",
            },
        )
        .await;
        let commits = v3["commits"].as_array().expect("commits");
        assert_eq!(commits[0]["author"], json!({ "name": "Bob Roe", "email": "bob@example.com" }), "mailmapped");
        assert_eq!(commits[1]["sha"], json!(squash));
        assert_eq!(commits[1]["pr_number"], json!(9));
        assert_eq!(commits[1]["co_authors"], json!([{ "name": "Carol Poe", "email": "carol@example.com" }]));

        // Force-push: main is rewritten from v2, so v3 is no longer an ancestor of what is deployed next.
        repo.git(&["reset", "--quiet", "--hard", &merge]);
        repo.commit(&CAROL, &[("app/pay.py", "def pay():\n    return 2\n")], "Rewrite payments");
        let forced = repo.commit(&BOB, &[("app/util.py", "X = 1\n")], "Add util");
        let v4 = deploy_and_check(
            &app,
            &repo,
            &token,
            Case {
                env: "production",
                sha: &forced,
                version: "v4",
                previous_sha: None,
                expected_base: Some(&v3_sha),
                expected_status: "diverged",
            },
        )
        .await;
        assert_eq!(v4["deploy"]["merge_base"], json!(merge));

        // Rollback to an ancestor of what runs now: no new commits.
        let rolled_back_to = repo.git(&["rev-parse", "HEAD~1"]);
        deploy_and_check(
            &app,
            &repo,
            &token,
            Case {
                env: "production",
                sha: &rolled_back_to,
                version: "v4-rollback",
                previous_sha: None,
                expected_base: Some(&forced),
                expected_status: "rollback",
            },
        )
        .await;

        // Redeploying the same commit under another name: a redeploy, no commits.
        deploy_and_check(
            &app,
            &repo,
            &token,
            Case {
                env: "production",
                sha: &rolled_back_to,
                version: "v4-again",
                previous_sha: None,
                expected_base: Some(&rolled_back_to),
                expected_status: "redeploy",
            },
        )
        .await;

        // A first deploy of another environment with an explicit previous commit has a real range.
        deploy_and_check(
            &app,
            &repo,
            &token,
            Case {
                env: "staging",
                sha: &forced,
                version: "s1",
                previous_sha: Some(&c1),
                expected_base: Some(&c1),
                expected_status: "forward",
            },
        )
        .await;

        // A previous commit the repository does not have: recorded as such, the deploy still succeeds.
        let missing = "0123456789abcdef0123456789abcdef01234567";
        deploy_and_check(
            &app,
            &repo,
            &token,
            Case {
                env: "canary",
                sha: &forced,
                version: "c1",
                previous_sha: Some(missing),
                expected_base: Some(missing),
                expected_status: "previous_missing",
            },
        )
        .await;

        // The same commit is stored once per project however many deploys include it.
        let (status, list) = app.call(reqwest::Method::GET, "/api/v1/projects/web/deploys", Some(&token), None).await;
        assert_eq!(status, 200);
        assert_eq!(list["deploys"].as_array().map(Vec::len), Some(8), "{backend}: {list}");
        assert_eq!(list["deploys"][0]["environment"], json!("canary"), "newest first");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn resending_a_deploy_is_idempotent_and_a_missing_commit_fails_with_a_reason() {
    on_each_backend(|store, backend| async move {
        let repo = TestRepo::new();
        let c1 = repo.commit(&ALICE, &[("a.txt", "1\n")], "one");
        let app = TestApp::spawn(store.clone(), false).await;
        let (_, token) = app.project("web", &repo).await;
        let body = json!({ "project": "web", "environment": "production", "sha": c1, "version": "v1" });
        let (s1, first) = app.deploy(&token, body.clone()).await;
        let (s2, again) = app.deploy(&token, body.clone()).await;
        assert_eq!((s1, s2), (202, 202));
        assert_eq!(first["id"], again["id"], "{backend}");
        assert_eq!(again["created"], json!(false));
        assert_eq!(store.job_states().await.expect("jobs").len(), 1, "{backend}: one job for one deploy");
        app.drain().await;
        // A restart of the same build is a deploy of its own: a new run link, or a new time, says so.
        for restart in [
            json!({ "project": "web", "environment": "production", "sha": c1, "version": "v1",
                    "url": "https://ci.example.com/runs/2" }),
            json!({ "project": "web", "environment": "production", "sha": c1, "version": "v1",
                    "url": "https://ci.example.com/runs/2", "deployed_at": "2026-11-20T10:00:00Z" }),
        ] {
            let (_, restarted) = app.deploy(&token, restart.clone()).await;
            assert_eq!(restarted["created"], json!(true), "{backend}: {restart}");
            app.drain().await;
            let got = app.get_deploy(&token, restarted["id"].as_i64().expect("id")).await;
            assert_eq!(got["deploy"]["range_status"], json!("redeploy"), "{backend}");
            let (_, resent) = app.deploy(&token, restart).await;
            assert_eq!((resent["id"].clone(), resent["created"].clone()), (restarted["id"].clone(), json!(false)));
        }

        let unknown = "89abcdef0123456789abcdef0123456789abcdef";
        let (_, recorded) =
            app.deploy(&token, json!({ "project": "web", "environment": "production", "sha": unknown })).await;
        app.drain().await;
        let got = app.get_deploy(&token, recorded["id"].as_i64().expect("id")).await;
        assert_eq!(got["deploy"]["status"], json!("failed"));
        let reason = got["deploy"]["failure_reason"].as_str().expect("reason");
        assert!(reason.contains(unknown) && reason.contains("pushed"), "{reason}");
        assert_eq!(got["deploy"]["version"], json!(unknown), "version defaults to the sha");

        // Pushing the commit later and re-sending the deploy retries it.
        let c2 = repo.commit(&BOB, &[("a.txt", "2\n")], "two");
        let (_, ok) = app.deploy(&token, json!({ "project": "web", "environment": "production", "sha": c2 })).await;
        app.drain().await;
        let got = app.get_deploy(&token, ok["id"].as_i64().expect("id")).await;
        assert_eq!(got["deploy"]["status"], json!("ready"));
        // The failed deploy is skipped as a base: the range starts at the last deploy that worked.
        assert_eq!(got["deploy"]["base_sha"], json!(c1));
        assert_eq!(crate::support::commit_ids(&got), vec![c2]);
        app.stop().await;
    })
    .await;
}
