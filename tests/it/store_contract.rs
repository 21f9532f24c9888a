//! The `Store` contract: the same behaviour from SQLite and PostgreSQL.

use shipwatch::git::mirror::Mirrors;
use shipwatch::git::Git;
use shipwatch::jobs::Work;
use shipwatch::retention::{Ages, Purged, Retention};
use shipwatch::store::{
    BatchGrouped, CommitRecord, DynStore, FileChange, GroupFilter, GroupOrder, GroupUpdate, Grouped, HistoryEntry,
    JobStatus, NewDeploy, NewEvent, NewJob, NewProject, Person, RangeOutcome, StoreError, StoredEvent, GROUP_EVENTS,
};
use std::collections::HashSet;
use std::sync::Arc;

use crate::support::on_each_backend;

fn new_project(name: &str) -> NewProject {
    NewProject {
        name: name.into(),
        repo_url: "https://github.com/acme/web".into(),
        github_repo: Some("acme/web".into()),
        ingest_key: format!("key-{name}"),
        deploy_token: format!("token-{name}"),
    }
}

fn new_deploy(project_id: i64, env: &str, sha: char) -> NewDeploy {
    NewDeploy {
        project_id,
        environment: env.into(),
        version: format!("v-{sha}"),
        sha: sha.to_string().repeat(40),
        previous_sha: None,
        deployed_at: 1_000,
        deployer: Some("ci".into()),
        url: None,
        deployed_at_given: false,
    }
}

fn commit(sha: char, author: &str) -> CommitRecord {
    CommitRecord {
        sha: sha.to_string().repeat(40),
        parents: vec!["f".repeat(40)],
        author: Person { name: author.into(), email: format!("{author}@example.com") },
        author_time: 10,
        committer: Person { name: author.into(), email: format!("{author}@example.com") },
        committer_time: 11,
        summary: "summary".into(),
        message: "summary\n\nbody".into(),
        pr_number: Some(3),
        co_authors: vec![],
        closes: vec![],
        files: vec![FileChange { path: "a.rs".into(), old_path: None, added: Some(1), deleted: None }],
    }
}

#[tokio::test]
async fn projects_are_unique_by_name_and_found_by_name_or_id() {
    on_each_backend(|store: DynStore, backend| async move {
        let p = store.create_project(new_project("web"), 5).await.expect("created");
        assert_eq!(p.name, "web");
        assert_eq!(store.project_by_id(p.id).await.expect("read").map(|p| p.name), Some("web".into()));
        assert_eq!(store.project_by_name("web").await.expect("read").map(|p| p.id), Some(p.id));
        assert!(store.project_by_name("nope").await.expect("read").is_none());
        let dup = store.create_project(new_project("web"), 6).await;
        assert!(matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("web")), "{backend}: {dup:?}");
        assert_eq!(store.list_projects().await.expect("list").len(), 1);
        assert!(!format!("{p:?}").contains("token-web"), "Debug must not print the deploy token");
    })
    .await;
}

#[tokio::test]
async fn deploys_chain_per_environment_and_repeat_idempotently() {
    on_each_backend(|store: DynStore, backend| async move {
        let p = store.create_project(new_project("web"), 0).await.expect("project");
        let (d1, new1) = store.record_deploy(new_deploy(p.id, "prod", 'a'), Work::deploy_range, 1).await.expect("d1");
        let (d2, new2) = store.record_deploy(new_deploy(p.id, "prod", 'b'), Work::deploy_range, 2).await.expect("d2");
        let (s1, _) = store.record_deploy(new_deploy(p.id, "staging", 'b'), Work::deploy_range, 3).await.expect("s1");
        let (again, new3) =
            store.record_deploy(new_deploy(p.id, "prod", 'b'), Work::deploy_range, 4).await.expect("again");
        assert!(new1 && new2 && !new3, "{backend}");
        assert_eq!((d1.seq, d2.seq, s1.seq), (1, 2, 1));
        assert_eq!(d1.base_sha, None);
        assert_eq!(d2.base_sha.as_deref(), Some("a".repeat(40).as_str()));
        assert_eq!(d2.previous_deploy_id, Some(d1.id));
        assert_eq!(s1.base_sha, None, "environments do not chain into each other");
        assert_eq!(again.id, d2.id);
        // Rolling back to a's commit after b is a new deploy, not a repeat of d1.
        let (rollback, new4) =
            store.record_deploy(new_deploy(p.id, "prod", 'a'), Work::deploy_range, 5).await.expect("rollback");
        assert!(new4 && rollback.id != d1.id);
        assert_eq!(rollback.base_sha.as_deref(), Some("b".repeat(40).as_str()));
        let jobs = store.job_states().await.expect("jobs");
        assert_eq!(jobs.len(), 4, "one range job per new deploy");
        let page = store.list_deploys(p.id, Some("prod"), None, 2).await.expect("list");
        assert_eq!(page.iter().map(|d| d.id).collect::<Vec<_>>(), vec![rollback.id, d2.id]);
        let older = store.list_deploys(p.id, Some("prod"), Some(d2.id), 2).await.expect("list");
        assert_eq!(older.iter().map(|d| d.id).collect::<Vec<_>>(), vec![d1.id]);
        assert_eq!(store.list_deploys(p.id, None, None, 10).await.expect("all").len(), 4);
    })
    .await;
}

#[tokio::test]
async fn a_rollback_keeps_the_commits_it_took_out_apart_from_its_range() {
    on_each_backend(|store: DynStore, backend| async move {
        let p = store.create_project(new_project("web"), 0).await.expect("project");
        let (d, _) = store.record_deploy(new_deploy(p.id, "prod", 'a'), Work::deploy_range, 1).await.expect("deploy");
        let outcome = RangeOutcome {
            base_sha: Some("0".repeat(40)),
            range_status: "rollback".into(),
            merge_base: None,
            commit_count: 0,
            commits: vec![],
            removed_count: 3,
            removed: vec![commit('3', "carol"), commit('2', "bob")],
        };
        store.finish_deploy_range(d.id, &outcome, &[], 10).await.expect("written");
        assert!(store.deploy_commits(d.id).await.expect("commits").is_empty(), "{backend}: nothing shipped");
        assert_eq!(store.deploy_removed_commits(d.id).await.expect("removed"), outcome.removed, "{backend}");
        let d = store.deploy(d.id).await.expect("read").expect("exists");
        assert_eq!((d.commit_count, d.removed_count), (Some(0), Some(3)), "{backend}");
    })
    .await;
}

#[tokio::test]
async fn finishing_a_range_twice_stores_each_commit_once() {
    on_each_backend(|store: DynStore, backend| async move {
        let p = store.create_project(new_project("web"), 0).await.expect("project");
        let (d, _) = store.record_deploy(new_deploy(p.id, "prod", 'a'), Work::deploy_range, 1).await.expect("deploy");
        let outcome = RangeOutcome {
            base_sha: Some("0".repeat(40)),
            range_status: "forward".into(),
            merge_base: None,
            commit_count: 2,
            commits: vec![commit('1', "alice"), commit('2', "bob")],
            removed_count: 0,
            removed: vec![],
        };
        store.finish_deploy_range(d.id, &outcome, &[], 10).await.expect("first write");
        // A worker that wrote and then died before completing its job: the next one writes again.
        let mut renamed = outcome.clone();
        renamed.commits[1].author.name = "Bob Roe".into();
        store.finish_deploy_range(d.id, &renamed, &[], 11).await.expect("second write");
        let stored = store.deploy_commits(d.id).await.expect("commits");
        assert_eq!(stored.len(), 2, "{backend}");
        assert_eq!(stored, renamed.commits, "round-trips every field, in order");
        let d = store.deploy(d.id).await.expect("read").expect("exists");
        assert_eq!((d.status.as_str(), d.commit_count, d.commits_stored), ("ready", Some(2), Some(2)));

        // A large range crosses the insert batches.
        let (big, _) = store.record_deploy(new_deploy(p.id, "prod", 'b'), Work::deploy_range, 2).await.expect("deploy");
        let many: Vec<CommitRecord> = (0..1234)
            .map(|i| {
                let mut c = commit('c', "carol");
                c.sha = format!("{i:040x}");
                c
            })
            .collect();
        let outcome = RangeOutcome { commit_count: 1234, commits: many, ..outcome };
        store.finish_deploy_range(big.id, &outcome, &[], 12).await.expect("big write");
        assert_eq!(store.deploy_commits(big.id).await.expect("commits").len(), 1234);
    })
    .await;
}

#[tokio::test]
async fn jobs_are_leased_retried_and_claimed_once() {
    on_each_backend(|store: DynStore, backend| async move {
        let job = |k: &str| NewJob { kind: k.into(), payload: "{}".into(), max_attempts: 3 };
        let id = store.enqueue_job(job("a"), 1_000).await.expect("enqueue");
        assert!(store.claim_job(999, 100).await.expect("claim").is_none(), "not due before its time");
        let first = store.claim_job(1_000, 100).await.expect("claim").expect("due");
        assert_eq!((first.id, first.attempts), (id, 1));
        assert!(store.claim_job(1_050, 100).await.expect("claim").is_none(), "{backend}: leased");
        assert!(store.extend_lease(&first, 1_200).await.expect("extend"));
        assert!(store.claim_job(1_150, 100).await.expect("claim").is_none(), "extended lease holds");
        // The worker died: after the lease the job is claimed again, and the old claim is worthless.
        let second = store.claim_job(1_201, 100).await.expect("claim").expect("lease ran out");
        assert_eq!((second.id, second.attempts), (id, 2));
        assert_ne!(first.lease_token, second.lease_token);
        assert!(!store.complete_job(&first, 1_210).await.expect("complete"), "stale claim cannot complete");
        assert!(!store.extend_lease(&first, 9_999).await.expect("extend"));
        // Fails, is retried later, then succeeds.
        assert!(store.fail_job(&second, "boom", Some(2_000), 1_220).await.expect("fail"));
        assert!(store.claim_job(1_999, 100).await.expect("claim").is_none());
        let third = store.claim_job(2_000, 100).await.expect("claim").expect("retry due");
        assert!(store.complete_job(&third, 2_010).await.expect("complete"));
        assert!(store.claim_job(99_999, 100).await.expect("claim").is_none(), "done jobs stay done");
        // Giving up is final.
        store.enqueue_job(job("b"), 3_000).await.expect("enqueue");
        let b = store.claim_job(3_000, 100).await.expect("claim").expect("b");
        assert!(store.fail_job(&b, "permanent", None, 3_010).await.expect("fail"));
        assert!(store.claim_job(99_999, 100).await.expect("claim").is_none());
        let states = store.job_states().await.expect("states");
        let statuses: Vec<(&str, i64)> = states.iter().map(|s| (s.status.as_str(), s.attempts)).collect();
        assert_eq!(statuses, vec![("done", 3), ("dead", 1)], "{backend}");
        assert_eq!(states[1].last_error.as_deref(), Some("permanent"));
    })
    .await;
}

#[tokio::test]
async fn concurrent_workers_never_claim_the_same_job() {
    on_each_backend(|store: DynStore, backend| async move {
        for _ in 0..40 {
            store
                .enqueue_job(NewJob { kind: "k".into(), payload: "{}".into(), max_attempts: 1 }, 0)
                .await
                .expect("enqueue");
        }
        let mut workers = Vec::new();
        for _ in 0..4 {
            let store = store.clone();
            workers.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(job) = store.claim_job(10, 60_000).await.expect("claim") {
                    mine.push(job.id);
                    assert!(store.complete_job(&job, 11).await.expect("complete"));
                }
                mine
            }));
        }
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.expect("worker"));
        }
        let unique: HashSet<i64> = all.iter().copied().collect();
        assert_eq!(all.len(), 40, "{backend}: every job claimed");
        assert_eq!(unique.len(), 40, "{backend}: no job claimed twice");
    })
    .await;
}

#[tokio::test]
async fn retention_deletes_what_is_past_its_age_in_batches_and_keeps_the_rest() {
    on_each_backend(|store: DynStore, backend| async move {
        const DAY: i64 = 86_400_000;
        let now = 400 * DAY;
        let p = store.create_project(new_project("web"), 0).await.expect("project");
        let event = |n: usize| NewEvent {
            project_id: p.id,
            event_id: format!("{n:032x}"),
            occurred_at: 0,
            release: None,
            environment: Some("production".into()),
            platform: None,
            payload: "{}".into(),
        };
        // More old events than two deletion batches, and a few recent ones.
        let mut old_ids = Vec::new();
        for n in 0..1_100 {
            old_ids.push(store.insert_event(&event(n), now - 100 * DAY).await.expect("old"));
        }
        for n in 1_100..1_103 {
            store.insert_event(&event(n), now - DAY).await.expect("new");
        }
        // An old event that is a group's last event stays: the group page shows it.
        let last = old_ids[1_099].expect("stored");
        let only_last = move |e: &StoredEvent| {
            if e.id == last {
                Ok(GroupUpdate { fingerprint: "f".into(), title: "t".into(), culprit: None, level: None })
            } else {
                Err("not grouped in this test".to_owned())
            }
        };
        let grouped = store.group_batch(5_000, &only_last, |_| Vec::new(), now).await.expect("grouped");
        assert_eq!((grouped.events, grouped.failed), (1, 1_102), "{backend}");
        // Finished jobs: done and dead long ago, done recently.
        let job = || NewJob { kind: "k".into(), payload: "{}".into(), max_attempts: 1 };
        for (at, done) in [(now - 150 * DAY, true), (now - 150 * DAY, false), (now - 2 * DAY, true)] {
            store.enqueue_job(job(), at - 1_000_000_000).await.expect("enqueue");
            let j = store.claim_job(at - 1_000_000_000, 1_000).await.expect("claim").expect("due");
            if done {
                assert!(store.complete_job(&j, at).await.expect("complete"));
            } else {
                assert!(store.fail_job(&j, "gave up", None, at).await.expect("fail"));
            }
        }
        for (id, at) in [("old-delivery", now - 40 * DAY), ("new-delivery", now - DAY)] {
            store.insert_webhook(id, "ping", "{}", &Work::github_webhook(id), at).await.expect("delivery");
        }
        let dir = tempfile::tempdir().expect("dir");
        let git = Git::new("git", std::time::Duration::from_secs(60), None, true);
        let mirrors = Arc::new(Mirrors::new(dir.path().to_owned(), git));
        let bare = std::process::Command::new("git")
            .args(["init", "--quiet", "--bare"])
            .arg(mirrors.path(p.id))
            .status()
            .expect("git init");
        assert!(bare.success());

        let day = |d: u64| Some(std::time::Duration::from_secs(d * 86_400));
        let ages = Ages { events: day(90), finished_jobs: day(14), webhook_deliveries: day(30) };
        let retention = Retention::new(store.clone(), mirrors, ages);
        let purged = retention.run_once(now).await.expect("retention runs");
        let expected = Purged { events: 1_099, finished_jobs: 2, webhook_deliveries: 1, mirrors: 1 };
        assert_eq!(purged, expected, "{backend}");
        assert_eq!(store.event_count(p.id).await.expect("count"), 4, "{backend}: 3 recent + the group's last");
        assert!(store.event(last).await.expect("read").is_some());
        assert!(store.webhook("old-delivery").await.expect("read").is_none());
        assert!(store.webhook("new-delivery").await.expect("read").is_some());
        let states = store.job_states().await.expect("jobs");
        let finished = states.iter().filter(|s| matches!(s.status, JobStatus::Done | JobStatus::Dead)).count();
        let queued = states.iter().filter(|s| s.status == JobStatus::Queued).count();
        assert_eq!((finished, queued), (1, 2), "{backend}: the webhook deliveries' jobs stay");
        // A second pass finds nothing more.
        let again = retention.run_once(now).await.expect("retention runs");
        assert_eq!(again, Purged { mirrors: 1, ..Purged::default() }, "{backend}");
    })
    .await;
}

#[tokio::test]
async fn groups_are_filtered_by_title_words_and_assignee_and_sorted() {
    on_each_backend(|store: DynStore, backend| async move {
        let p = store.create_project(new_project("web"), 0).await.expect("project");
        for (n, (title, times)) in [("KeyError: 100%_done", 3), ("ValueError: x", 1)].into_iter().enumerate() {
            for i in 0..times {
                let e = NewEvent {
                    project_id: p.id,
                    event_id: format!("{n}{i:031x}"),
                    occurred_at: (n * 10 + i) as i64,
                    release: None,
                    environment: None,
                    platform: None,
                    // The test's grouping rule reads the title from the payload.
                    payload: title.into(),
                };
                store.insert_event(&e, 0).await.expect("insert").expect("new");
            }
        }
        let by_title = |e: &StoredEvent| {
            Ok(GroupUpdate { fingerprint: e.payload.clone(), title: e.payload.clone(), culprit: None, level: None })
        };
        let grouped = store.group_batch(100, &by_title, |_| Vec::new(), 0).await.expect("grouped");
        assert_eq!((grouped.events, grouped.groups, grouped.new_groups), (4, 2, 2), "{backend}");
        let list = |f: GroupFilter| {
            let store = store.clone();
            async move {
                store
                    .list_groups(p.id, &GroupFilter { limit: 50, ..f })
                    .await
                    .expect("list")
                    .into_iter()
                    .map(|g| g.title)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            list(GroupFilter { text: Some("keyerror".into()), ..Default::default() }).await,
            ["KeyError: 100%_done"],
            "{backend}"
        );
        // `%` and `_` are matched as themselves, not as wildcards.
        assert_eq!(list(GroupFilter { text: Some("0%_d".into()), ..Default::default() }).await.len(), 1, "{backend}");
        assert!(list(GroupFilter { text: Some("x%".into()), ..Default::default() }).await.is_empty(), "{backend}");
        assert_eq!(
            list(GroupFilter { order: GroupOrder::Events, ..Default::default() }).await[0],
            "KeyError: 100%_done"
        );
        assert_eq!(list(GroupFilter { order: GroupOrder::Newest, ..Default::default() }).await[0], "ValueError: x");
        assert!(list(GroupFilter { assignee: Some("nobody".into()), ..Default::default() }).await.is_empty());
    })
    .await;
}

/// Events for the grouping-batch tests: `payload` names the group (the tests' grouping rule reads it).
fn batch_event(project_id: i64, n: usize, group: &str, release: &str, at: i64) -> NewEvent {
    NewEvent {
        project_id,
        event_id: format!("{n:032x}"),
        occurred_at: at,
        release: Some(release.into()),
        environment: Some("production".into()),
        platform: None,
        payload: group.into(),
    }
}

fn by_payload(e: &StoredEvent) -> Result<GroupUpdate, String> {
    if e.payload == "unreadable" {
        return Err("cannot read it".into());
    }
    Ok(GroupUpdate {
        fingerprint: e.payload.clone(),
        title: format!("{} #{}", e.payload, e.id),
        culprit: None,
        level: None,
    })
}

/// One job per group the batch touched, naming what the store reported.
fn one_job_per_group(g: Grouped) -> Vec<NewJob> {
    vec![NewJob {
        kind: "follow".into(),
        payload: format!(
            "{{\"group\":{},\"first\":{},\"new\":{},\"resolved\":{},\"builds\":{}}}",
            g.group_id,
            g.first_event,
            g.new_group,
            g.was_resolved,
            g.builds.len()
        ),
        max_attempts: 1,
    }]
}

#[tokio::test]
async fn a_grouping_batch_writes_each_group_once_and_counts_each_event_once() {
    on_each_backend(|store: DynStore, backend| async move {
        let p = store.create_project(new_project("web"), 0).await.expect("project");
        // Two groups over two releases, and one event nobody can read; b's newest event is its second.
        let events = [
            batch_event(p.id, 1, "a", "v1", 100),
            batch_event(p.id, 2, "b", "v1", 300),
            batch_event(p.id, 3, "a", "v2", 50),
            batch_event(p.id, 4, "unreadable", "v1", 100),
            batch_event(p.id, 5, "b", "v1", 400),
            batch_event(p.id, 6, "a", "v2", 200),
        ];
        let rows: Vec<(i64, &NewEvent)> = events.iter().map(|e| (1_000, e)).collect();
        let items = [(p.id, "transaction".to_owned(), 3)];
        assert_eq!(store.insert_events(&rows, &items).await.expect("insert"), 6, "{backend}");
        // A spooled batch forwarded again after a crash stores nothing twice.
        assert_eq!(store.insert_events(&rows[..2], &[]).await.expect("insert again"), 0, "{backend}");
        assert_eq!(store.item_counts(p.id).await.expect("items"), [("transaction".to_owned(), 3)], "{backend}");

        let done = store.group_batch(100, &by_payload, one_job_per_group, 2_000).await.expect("batch");
        assert_eq!(done, BatchGrouped { events: 5, groups: 2, new_groups: 2, failed: 1 }, "{backend}");
        let groups = store.list_groups(p.id, &GroupFilter { limit: 10, ..Default::default() }).await.expect("list");
        let a = groups.iter().find(|g| g.fingerprint == "a").expect("a");
        let b = groups.iter().find(|g| g.fingerprint == "b").expect("b");
        assert_eq!((a.times_seen, a.first_seen, a.last_seen), (3, 50, 200), "{backend}");
        assert_eq!(a.first_release.as_deref(), Some("v2"), "{backend}: the earliest event's release");
        assert!(a.title.starts_with("a #"), "{backend}");
        let b_last = store.event(b.last_event_id.expect("last")).await.expect("read").expect("there");
        assert_eq!((b.times_seen, b_last.event_id.as_str()), (2, format!("{:032x}", 5).as_str()), "{backend}");
        let mut counts: Vec<(String, i64)> =
            store.group_counts(a.id).await.expect("counts").into_iter().map(|c| (c.release, c.count)).collect();
        counts.sort();
        assert_eq!(counts, [("v1".to_owned(), 1), ("v2".to_owned(), 2)], "{backend}");
        // A build's summary: its events, the groups new in it (none marked yet), the groups that came back in it.
        assert_eq!(store.build_summary(p.id, "v1", "production").await.expect("summary"), (3, 0, 0), "{backend}");
        assert_eq!(store.build_summary(p.id, "v1", "staging").await.expect("summary"), (0, 0, 0), "{backend}");
        // Follow-up work once per group, with the earliest event and one event per build.
        let follows: Vec<String> = store
            .job_states()
            .await
            .expect("jobs")
            .into_iter()
            .filter(|j| j.kind == "follow")
            .map(|j| j.payload)
            .collect();
        assert_eq!(follows.len(), 2, "{backend}: {follows:?}");
        assert!(follows.iter().any(|f| f.contains(&format!("\"group\":{}", a.id)) && f.contains("\"builds\":2")));
        assert!(follows.iter().all(|f| f.contains("\"new\":true")), "{backend}: {follows:?}");

        // Nothing is left to group; a later event of a resolved group is reported as such, and not new.
        assert_eq!(store.group_batch(100, &by_payload, one_job_per_group, 2_000).await.expect("again").events, 0);
        store.resolve_group(a.id, None, 2_500).await.expect("resolve");
        store.insert_event(&batch_event(p.id, 7, "a", "v3", 3_000), 3_000).await.expect("insert");
        let done = store.group_batch(100, &by_payload, one_job_per_group, 3_000).await.expect("batch");
        assert_eq!(done, BatchGrouped { events: 1, groups: 1, new_groups: 0, failed: 0 }, "{backend}");
        let last = store.job_states().await.expect("jobs").into_iter().rev().find(|j| j.kind == "follow");
        let last = last.expect("a follow-up").payload;
        assert!(last.contains("\"new\":false") && last.contains("\"resolved\":true"), "{backend}: {last}");
        let depths = store.queue_depths().await.expect("depths");
        assert!(depths.iter().all(|(kind, ..)| kind != GROUP_EVENTS), "{backend}: nothing left to group");
        // The regression is a line of the group's history, found again by its build.
        let line = HistoryEntry {
            group_id: a.id,
            at: 3_100,
            kind: "regressed".into(),
            release: Some("v3".into()),
            environment: Some("production".into()),
            deploy_id: None,
            detail: Some("v3 contains the fix".into()),
        };
        assert!(store.mark_regressed(a.id, "v3", 3_100, None, &line).await.expect("regressed"), "{backend}");
        assert!(!store.mark_regressed(a.id, "v3", 3_200, None, &line).await.expect("again"), "{backend}: once");
        assert_eq!(store.group_history(a.id).await.expect("history"), [line], "{backend}");
        assert_eq!(store.regressed_in_build(p.id, "v3", "production").await.expect("build"), [a.id], "{backend}");
        assert!(store.regressed_in_build(p.id, "v3", "staging").await.expect("build").is_empty(), "{backend}");
        assert_eq!(store.build_summary(p.id, "v3", "production").await.expect("summary"), (1, 0, 1), "{backend}");
    })
    .await;
}

#[tokio::test]
async fn a_batch_that_dies_half_way_counts_nothing() {
    on_each_backend(|store: DynStore, backend| async move {
        let p = store.create_project(new_project("web"), 0).await.expect("project");
        for n in 0..10 {
            let group = if n % 2 == 0 { "a" } else { "b" };
            store.insert_event(&batch_event(p.id, n, group, "v1", n as i64), 0).await.expect("insert");
        }
        let depths = store.queue_depths().await.expect("depths");
        assert!(depths.contains(&(GROUP_EVENTS.to_owned(), 10, 0)), "{backend}: {depths:?}");
        // The follow-up rule fails on the second group, after the first one's rows were written in the batch.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        CALLS.store(0, std::sync::atomic::Ordering::SeqCst);
        fn dies_on_the_second(_: Grouped) -> Vec<NewJob> {
            if CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                panic!("the worker dies half-way through the batch");
            }
            Vec::new()
        }
        let dying = {
            let store = store.clone();
            tokio::spawn(async move { store.group_batch(100, &by_payload, dies_on_the_second, 1).await })
        };
        assert!(dying.await.is_err(), "{backend}: the batch died");
        assert!(store
            .list_groups(p.id, &GroupFilter { limit: 10, ..Default::default() })
            .await
            .expect("list")
            .is_empty());
        let depths = store.queue_depths().await.expect("depths");
        assert!(depths.contains(&(GROUP_EVENTS.to_owned(), 10, 0)), "{backend}: all still queued: {depths:?}");
        // The next batch counts every event exactly once.
        let done = store.group_batch(100, &by_payload, |_| Vec::new(), 2).await.expect("batch");
        assert_eq!((done.events, done.groups), (10, 2), "{backend}");
        let groups = store.list_groups(p.id, &GroupFilter { limit: 10, ..Default::default() }).await.expect("list");
        assert_eq!(groups.iter().map(|g| g.times_seen).sum::<i64>(), 10, "{backend}");
    })
    .await;
}

#[tokio::test]
async fn concurrent_batches_group_every_event_exactly_once() {
    on_each_backend(|store: DynStore, backend| async move {
        let p = store.create_project(new_project("web"), 0).await.expect("project");
        let events: Vec<NewEvent> =
            (0..2_000).map(|n| batch_event(p.id, n, &format!("g{}", n % 37), "v1", n as i64)).collect();
        let rows: Vec<(i64, &NewEvent)> = events.iter().map(|e| (0, e)).collect();
        assert_eq!(store.insert_events(&rows, &[]).await.expect("insert"), 2_000);
        // Four workers taking small batches at once (on PostgreSQL each skips the rows another holds).
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut mine = 0;
                    loop {
                        let done = store.group_batch(64, &by_payload, |_| Vec::new(), 1).await.expect("batch");
                        if done.events == 0 {
                            return mine;
                        }
                        mine += done.events;
                    }
                })
            })
            .collect();
        let mut total = 0;
        for w in workers {
            total += w.await.expect("worker");
        }
        assert_eq!(total, 2_000, "{backend}");
        let groups = store.list_groups(p.id, &GroupFilter { limit: 100, ..Default::default() }).await.expect("list");
        assert_eq!(groups.len(), 37, "{backend}");
        assert_eq!(groups.iter().map(|g| g.times_seen).sum::<i64>(), 2_000, "{backend}");
    })
    .await;
}

#[tokio::test]
async fn the_github_write_pacing_is_one_slot_at_a_time_for_every_process() {
    on_each_backend(|store: DynStore, backend| async move {
        assert_eq!(store.take_write_slot(1_000, 1_000).await.expect("slot"), Ok(()), "{backend}");
        assert_eq!(store.take_write_slot(1_500, 1_000).await.expect("slot"), Err(2_000), "{backend}");
        assert_eq!(store.take_write_slot(2_000, 1_000).await.expect("slot"), Ok(()), "{backend}");
        // GitHub asked to wait: nothing before then, and a shorter hold does not shorten it.
        store.hold_writes_until(10_000).await.expect("hold");
        store.hold_writes_until(5_000).await.expect("hold");
        assert_eq!(store.next_write_slot().await.expect("next"), 10_000, "{backend}");
        assert_eq!(store.take_write_slot(9_999, 1_000).await.expect("slot"), Err(10_000), "{backend}");
        // Many takers at one instant (processes sharing the database): exactly one gets the slot.
        let takers: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.take_write_slot(20_000, 1_000).await.expect("slot").is_ok() })
            })
            .collect();
        let mut granted = 0;
        for t in takers {
            granted += usize::from(t.await.expect("taker"));
        }
        assert_eq!(granted, 1, "{backend}");
        // Steps: the first record stands.
        let p = store.create_project(new_project("web"), 0).await.expect("project");
        store.insert_event(&batch_event(p.id, 1, "a", "v1", 0), 0).await.expect("event");
        store.group_batch(10, &by_payload, |_| Vec::new(), 0).await.expect("grouped");
        let group = store.list_groups(p.id, &GroupFilter { limit: 1, ..Default::default() }).await.expect("list")[0].id;
        assert_eq!(store.github_step(group, "create:sent").await.expect("step"), None);
        store.record_github_step(group, "create:sent", 5).await.expect("record");
        store.record_github_step(group, "create:sent", 9).await.expect("record again");
        assert_eq!(store.github_step(group, "create:sent").await.expect("step"), Some(5), "{backend}");
    })
    .await;
}
