//! A worker killed in the middle of a range job: the job is claimed again once its lease lapses, and the deploy ends
//! with exactly the commits of its range, none twice.

use shipwatch::app::App;
use shipwatch::releases::DeployInput;
use shipwatch::store::JobStatus;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{app_args, on_each_backend, TestRepo, ALICE, BOB};

#[tokio::test]
async fn a_worker_killed_mid_job_leaves_the_job_to_another() {
    on_each_backend(|store, backend| async move {
        let repo = TestRepo::new();
        let c1 = repo.commit(&ALICE, &[("a.txt", "1\n")], "one");
        for i in 2..=6 {
            repo.commit(
                if i % 2 == 0 { &BOB } else { &ALICE },
                &[("a.txt", &format!("{i}\n"))],
                &format!("change {i}"),
            );
        }
        let head = repo.head();

        // Both "processes" share the database and the data directory, like a server restarted after a crash.
        let data = tempfile::tempdir().expect("temp dir");
        let slow_git = data.path().join("slow-git");
        // Written by a child process, so no fork of this one can hold it open for writing ("Text file busy").
        let script = "#!/bin/sh\ncase \" $* \" in *\" log \"*) sleep 3;; esac\nexec git \"$@\"\n";
        let wrote = std::process::Command::new("sh")
            .args(["-c", "printf '%s' \"$1\" > \"$2\" && chmod 755 \"$2\"", "sh", script])
            .arg(&slow_git)
            .status()
            .expect("sh runs");
        assert!(wrote.success());
        let (d, g, w) = app_args(data.path(), Some(slow_git));
        let doomed = App::with_store(store.clone(), &d, &g, &w).expect("app builds");
        let (d, g, w) = app_args(data.path(), None);
        let survivor = App::with_store(store.clone(), &d, &g, &w).expect("app builds");

        let now = chrono::Utc::now().timestamp_millis();
        let project =
            shipwatch::projects::create(store.as_ref(), "web", &repo.url(), None, true, now).await.expect("project");
        let deploy =
            |sha: &str| DeployInput { environment: "production".into(), sha: sha.into(), ..Default::default() };
        survivor.releases.record(&project, deploy(&c1), now).await.expect("first deploy");
        assert!(survivor.worker().run_once().await.expect("runs"), "initial deploy processed");
        // And what follows a ready deploy (groups waiting for the next release), so the range job is next.
        while survivor.worker().run_once().await.expect("runs") {}
        let (d2, _) = survivor.releases.record(&project, deploy(&head), now).await.expect("second deploy");

        // The doomed worker claims the job and is stopped dead while git lists the range.
        let t0 = chrono::Utc::now().timestamp_millis();
        let doomed_worker = doomed.worker_with_clock(Arc::new(move || t0));
        let task = tokio::spawn(async move { doomed_worker.run_once().await });
        let mut running = false;
        for _ in 0..200 {
            let jobs = store.job_states().await.expect("jobs");
            if jobs.last().is_some_and(|j| j.status == JobStatus::Running) {
                running = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(running, "{backend}: the doomed worker claimed the job");
        tokio::time::sleep(Duration::from_millis(300)).await;
        task.abort();
        let outcome = task.await;
        assert!(outcome.expect_err("aborted").is_cancelled());
        let pending = store.deploy(d2.id).await.expect("read").expect("exists");
        assert_eq!(pending.status, "pending", "{backend}: nothing written by the dead worker");

        // Before the lease runs out nobody takes the job; after it, the survivor does and finishes it.
        let lease = w.lease().as_millis() as i64;
        let early = survivor.worker_with_clock(Arc::new(move || t0 + lease / 2));
        assert!(!early.run_once().await.expect("runs"), "{backend}: the lease still holds");
        let later = survivor.worker_with_clock(Arc::new(move || t0 + lease + 1));
        assert!(later.run_once().await.expect("runs"), "{backend}: the job is claimed again");

        let done = store.deploy(d2.id).await.expect("read").expect("exists");
        assert_eq!(done.status, "ready", "{backend}: {done:?}");
        let stored: Vec<String> =
            store.deploy_commits(d2.id).await.expect("commits").into_iter().map(|c| c.sha).collect();
        let expected = repo.rev_list(Some(&c1), &head);
        assert_eq!(stored, expected, "{backend}");
        assert_eq!(stored.iter().collect::<HashSet<_>>().len(), stored.len(), "no duplicates");
        let jobs = store.job_states().await.expect("jobs");
        let job = jobs.iter().rfind(|j| j.kind == "deploy_range").expect("the range job");
        assert_eq!((job.status, job.attempts), (JobStatus::Done, 2), "{backend}");
    })
    .await;
}
