//! The job queue on PostgreSQL: claiming by priority then age with
//! `SKIP LOCKED` (concurrent claimers never share a job), leases that run
//! out and hand the job to another worker up to `max_attempts`, a worker
//! that lost its lease recording nothing, cancellation, and the workers
//! list. Skips (printing `SKIPPED`) only where no server answers.

use std::collections::HashSet;
use std::time::Duration;

use peregrine_store::jobs::{JobQueue, JobState, NewJob, Outcome, Progress};
use peregrine_store::pg::{Listener, Membership, PgJobs, TestDb};
use peregrine_store::RunStatus;
use serde_json::json;

const T: Duration = Duration::from_secs(5);

fn worker(db: &TestDb, lease: Duration, max_attempts: u32) -> PgJobs {
    PgJobs::open(&db.url, T, Membership::new(lease, max_attempts)).unwrap()
}

fn insert(q: &PgJobs, video: &str, priority: i64) -> i64 {
    q.insert(&NewJob {
        video,
        model: "m",
        params: &json!({}),
        spec: Some(&json!({"video": video})),
        priority,
        video_hash: "h",
        model_hash: "m",
    })
    .unwrap()
}

fn done<'a>(timings: &'a serde_json::Value) -> Outcome<'a> {
    Outcome::Done {
        run_id: Some(1),
        run_status: RunStatus::Complete,
        cache_hit: false,
        fps: 10.0,
        frames: 5,
        timings,
    }
}

#[test]
fn claims_by_priority_then_age_and_never_twice_at_once() {
    let Some(db) = TestDb::create("claim") else {
        return;
    };
    let q = worker(&db, Duration::from_secs(60), 3);
    let ids: Vec<i64> = [("a", 0), ("b", 5), ("c", 5)]
        .into_iter()
        .map(|(v, p)| insert(&q, v, p))
        .collect();
    let order: Vec<i64> = (0..3).map(|_| q.claim().unwrap().unwrap().id).collect();
    assert_eq!(order, vec![ids[1], ids[2], ids[0]]);
    assert!(q.claim().unwrap().is_none());
    assert_eq!(
        q.get(ids[0]).unwrap().unwrap().spec,
        Some(json!({"video": "a"}))
    );

    // Eight workers on their own connections claim 40 jobs at once: each
    // job is claimed by exactly one.
    let jobs: HashSet<i64> = (0..40).map(|i| insert(&q, &format!("v{i}"), 0)).collect();
    let claimed: Vec<i64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let w = worker(&db, Duration::from_secs(60), 3);
                    let mut mine = Vec::new();
                    while let Some(c) = w.claim().unwrap() {
                        mine.push(c.id);
                    }
                    mine
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(claimed.len(), 40, "a job was claimed twice or lost");
    assert_eq!(claimed.into_iter().collect::<HashSet<_>>(), jobs);
}

#[test]
fn an_expired_lease_goes_to_another_worker_and_the_first_records_nothing() {
    let Some(db) = TestDb::create("lease") else {
        return;
    };
    let a = worker(&db, Duration::from_millis(300), 2);
    let b = worker(&db, Duration::from_secs(60), 2);
    let id = insert(&a, "v", 0);
    assert_eq!(a.claim().unwrap().unwrap().attempts, 1);
    // Renewing keeps it, and records progress for every reader.
    let r = a
        .renew(
            id,
            &Progress {
                frames_done: 3,
                frames_total: 10,
                fps: 7.5,
            },
        )
        .unwrap();
    assert!(r.held && !r.cancel);
    let seen = b.get(id).unwrap().unwrap();
    assert_eq!((seen.frames_done, seen.frames_total), (3, 10));
    assert!((seen.progress - 0.3).abs() < 1e-9);
    assert!(b.claim().unwrap().is_none(), "held under a live lease");

    // A stops renewing (killed): after the lease B takes it, attempt 2.
    std::thread::sleep(Duration::from_millis(500));
    let again = b.claim().unwrap().expect("retried after the lease ran out");
    assert_eq!((again.id, again.attempts), (id, 2));
    assert!(b.workers().unwrap().is_empty(), "no worker registered yet");

    // A comes back: it no longer holds the job, and nothing it writes lands.
    assert!(!a.renew(id, &Progress::default()).unwrap().held);
    let t = json!({});
    a.finish(
        id,
        &Outcome::Failed {
            run_id: None,
            error: "late",
        },
    )
    .unwrap();
    assert_eq!(a.get(id).unwrap().unwrap().state, JobState::Running);
    b.finish(id, &done(&t)).unwrap();
    let j = a.get(id).unwrap().unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Done, 2));
    // Completing again changes nothing.
    b.finish(
        id,
        &Outcome::Failed {
            run_id: None,
            error: "twice",
        },
    )
    .unwrap();
    assert_eq!(a.get(id).unwrap().unwrap().state, JobState::Done);
}

#[test]
fn a_job_fails_when_its_attempts_run_out() {
    let Some(db) = TestDb::create("attempts") else {
        return;
    };
    let q = worker(&db, Duration::from_millis(100), 2);
    let id = insert(&q, "v", 0);
    for attempt in 1..=2 {
        assert_eq!(q.claim().unwrap().unwrap().attempts, attempt);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(q.recover_orphans().unwrap(), (0, 1));
    let j = q.get(id).unwrap().unwrap();
    assert_eq!(j.state, JobState::Failed);
    assert!(j.error.unwrap().contains("no attempts left"));
    assert!(q.claim().unwrap().is_none());
}

#[test]
fn cancellation_reaches_the_holder_and_changes_are_announced() {
    let Some(db) = TestDb::create("cancel") else {
        return;
    };
    let mut listener = Listener::open(&db.url, "peregrine_jobs", T).unwrap();
    let api = worker(&db, Duration::from_secs(60), 3);
    let w = worker(&db, Duration::from_secs(60), 3);
    w.heartbeat(2).unwrap();
    let queued = insert(&api, "q", 0);
    let running = insert(&api, "r", 1);
    assert_eq!(w.claim().unwrap().unwrap().id, running);
    // The workers list shows the worker with the job it holds.
    let list = api.workers().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].slots, list[0].jobs.clone()), (2, vec![running]));
    assert_eq!(list[0].id, w.membership().worker);

    assert_eq!(
        api.request_cancel(queued).unwrap(),
        Some((JobState::Queued, JobState::Cancelled))
    );
    assert_eq!(
        api.request_cancel(running).unwrap(),
        Some((JobState::Running, JobState::Running))
    );
    let r = w.renew(running, &Progress::default()).unwrap();
    assert!(
        r.held && r.cancel,
        "the holder learns of it at its next renewal"
    );
    w.finish(running, &Outcome::Cancelled { run_id: None })
        .unwrap();
    assert_eq!(
        api.get(running).unwrap().unwrap().state,
        JobState::Cancelled
    );
    assert_eq!(api.request_cancel(9999).unwrap(), None);

    // Every change was announced with the job's id.
    let mut ids = HashSet::new();
    for _ in 0..20 {
        ids.extend(listener.wait(Duration::from_millis(200)).unwrap());
        if ids.contains(&queued.to_string()) && ids.contains(&running.to_string()) {
            break;
        }
    }
    assert!(
        ids.contains(&queued.to_string()) && ids.contains(&running.to_string()),
        "{ids:?}"
    );
    w.deregister().unwrap();
    assert!(api.workers().unwrap().is_empty());
}
