//! Live streams in the store: the same stored streams on both engines, and
//! on PostgreSQL their leases to worker processes (one owner at a time,
//! taken over when the owner stops renewing, shared out between workers).
//!
//! PostgreSQL tests print `SKIPPED` and pass only where no server answers
//! (`PEREGRINE_TEST_PG`, default the local one).

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use peregrine_core::{RunStart, RunStatus, RunStore, VideoRecord};
use peregrine_store::pg::{Membership, PgJobs, TestDb};
use peregrine_store::{DbTarget, PgRunStore, PgStore, Results, StoredStream};
use serde_json::json;

const T: Duration = Duration::from_secs(5);
const LONG: Duration = Duration::from_secs(60);
/// Every worker counts as alive for the share.
const ALIVE: Duration = Duration::from_secs(60);

fn stream(name: &str, model: &str, at: f64) -> StoredStream {
    StoredStream {
        name: name.into(),
        spec: json!({"source": format!("rtsp://cam/{name}"), "fps": 5.0, "model": model}),
        created_at: at,
        ..Default::default()
    }
}

/// Stores, lists, reads and deletes streams through [`Results`]; returns
/// what it saw, engine-neutral.
fn exercise(r: &Results) -> serde_json::Value {
    let (a, b) = (
        stream("gate", "/m/a.onnx", 2.0),
        stream("dock", "/m/a.onnx", 1.0),
    );
    assert!(r.insert_stream(&a).unwrap());
    assert!(r.insert_stream(&b).unwrap());
    assert!(!r.insert_stream(&a).unwrap(), "a name is unique");
    let listed: Vec<String> = r.streams().unwrap().into_iter().map(|s| s.name).collect();
    let one = r.stream("gate").unwrap().expect("stored");
    assert_eq!(one, a, "read back as stored, with no owner");
    assert!(r.stream("nope").unwrap().is_none());
    assert!(r.delete_stream("gate").unwrap());
    assert!(!r.delete_stream("gate").unwrap());
    let left: Vec<String> = r.streams().unwrap().into_iter().map(|s| s.name).collect();
    json!({"listed": listed, "left": left, "spec": one.spec, "created_at": one.created_at})
}

#[test]
fn streams_are_stored_the_same_on_sqlite_and_postgres() {
    let Some(pg) = TestDb::create("streams_same") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lite = exercise(&Results::open(&DbTarget::Sqlite(dir.path().join("s.db")), T).unwrap());
    let on_pg = exercise(&Results::open(&DbTarget::parse(&pg.url), T).unwrap());
    assert_eq!(lite, on_pg);
    assert_eq!(lite["listed"], json!(["dock", "gate"]), "oldest first");
    assert_eq!(lite["left"], json!(["dock"]));
}

fn register(url: &str, worker: &str) -> PgJobs {
    let q = PgJobs::open(
        url,
        T,
        Membership {
            worker: worker.into(),
            lease: LONG,
            max_attempts: 3,
        },
    )
    .unwrap();
    q.heartbeat(1).unwrap();
    q
}

#[test]
fn a_stream_has_one_owner_and_is_taken_over_when_its_lease_runs_out() {
    let Some(pg) = TestDb::create("streams_lease") else {
        return;
    };
    let s = PgStore::open(&pg.url, T).unwrap();
    assert!(s.insert_stream(&stream("gate", "/m/a.onnx", 1.0)).unwrap());
    let lease = Duration::from_millis(1500);
    let a = s
        .claim_stream("a", lease, None, 16, ALIVE)
        .unwrap()
        .expect("claimed");
    assert_eq!(
        (
            a.stream.name.as_str(),
            a.previous_owner.as_deref(),
            a.claims
        ),
        ("gate", None, 1)
    );
    assert_eq!(a.stream.owner.as_deref(), Some("a"));
    // Held: nobody else gets it, and only its owner reports.
    assert!(s
        .claim_stream("b", lease, None, 16, ALIVE)
        .unwrap()
        .is_none());
    assert_eq!(
        s.renew_streams("a", lease).unwrap(),
        vec!["gate".to_string()]
    );
    assert!(s.renew_streams("b", lease).unwrap().is_empty());
    let report = json!({"state": "live", "detections": 42});
    assert!(s
        .report_stream("gate", "a", &report, Some(b"jpeg"))
        .unwrap());
    assert!(!s.report_stream("gate", "b", &report, None).unwrap());
    let seen = s.stream("gate").unwrap().unwrap();
    assert_eq!(
        (seen.owner.as_deref(), seen.report),
        (Some("a"), Some(report))
    );
    assert_eq!(
        s.stream_still("gate").unwrap().as_deref(),
        Some(&b"jpeg"[..])
    );

    // Renewed, it stays a's past the first lease.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(s.renew_streams("a", lease).unwrap().len(), 1);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(s
        .claim_stream("b", lease, None, 16, ALIVE)
        .unwrap()
        .is_none());

    // a stops renewing (killed): once its lease ran out the stream shows no
    // owner and b takes it over.
    std::thread::sleep(lease + Duration::from_millis(200));
    let orphan = s.stream("gate").unwrap().unwrap();
    assert_eq!((orphan.owner, orphan.report), (None, None));
    assert!(s.stream_still("gate").unwrap().is_none());
    let b = s
        .claim_stream("b", lease, None, 16, ALIVE)
        .unwrap()
        .expect("taken over");
    assert_eq!((b.previous_owner.as_deref(), b.claims), (Some("a"), 2));
    // a, back, holds nothing and can write nothing.
    assert!(s.renew_streams("a", lease).unwrap().is_empty());
    assert!(!s.report_stream("gate", "a", &json!({}), None).unwrap());
    assert_eq!(
        s.stream("gate").unwrap().unwrap().owner.as_deref(),
        Some("b")
    );

    // Deleted: its owner's next renewal no longer holds it.
    assert!(s.delete_stream("gate").unwrap());
    assert!(s.renew_streams("b", lease).unwrap().is_empty());
}

#[test]
fn concurrent_claims_give_every_stream_exactly_one_owner() {
    let Some(pg) = TestDb::create("streams_race") else {
        return;
    };
    let s = PgStore::open(&pg.url, T).unwrap();
    for i in 0..12 {
        assert!(s
            .insert_stream(&stream(&format!("cam{i:02}"), "/m/a.onnx", i as f64))
            .unwrap());
    }
    let n = 6;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|w| {
            let (url, barrier) = (pg.url.clone(), barrier.clone());
            std::thread::spawn(move || {
                let s = PgStore::open(&url, T).unwrap();
                barrier.wait();
                let mut got = Vec::new();
                while let Some(c) = s
                    .claim_stream(&format!("w{w}"), LONG, None, 16, ALIVE)
                    .unwrap()
                {
                    got.push(c.stream.name);
                }
                got
            })
        })
        .collect();
    let claimed: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let unique: HashSet<&String> = claimed.iter().collect();
    assert_eq!(claimed.len(), 12, "{claimed:?}");
    assert_eq!(unique.len(), 12, "a stream claimed twice: {claimed:?}");
    for st in s.streams().unwrap() {
        assert!(st.owner.is_some(), "{} unowned", st.name);
    }
}

#[test]
fn streams_are_shared_out_between_live_workers_by_model() {
    let Some(pg) = TestDb::create("streams_share") else {
        return;
    };
    let s = PgStore::open(&pg.url, T).unwrap();
    let _a = register(&pg.url, "a");
    let _b = register(&pg.url, "b");
    for i in 0..4 {
        assert!(s
            .insert_stream(&stream(&format!("cam{i}"), "/m/a.onnx", i as f64))
            .unwrap());
    }
    assert!(s
        .insert_stream(&stream("pose", "/m/pose.onnx", 9.0))
        .unwrap());
    let claim_all = |w: &str, model: Option<&str>, max: u32| {
        let mut got = Vec::new();
        while let Some(c) = s.claim_stream(w, LONG, model, max, ALIVE).unwrap() {
            got.push(c.stream.name);
        }
        got
    };
    // Two live workers, five streams: each takes at most three (5/2
    // rounded up), and only streams of its engine's model.
    let a = claim_all("a", Some("/m/a.onnx"), 16);
    assert_eq!(a, vec!["cam0", "cam1", "cam2"]);
    // A cap below the share holds too.
    assert_eq!(
        claim_all("b", Some("/m/pose.onnx"), 0),
        Vec::<String>::new()
    );
    let b = claim_all("b", None, 16);
    assert_eq!(b, vec!["cam3", "pose"]);
    // Workers whose heartbeat is older than `alive` are not counted (they
    // died): the share grows to what is left.
    s.release_stream("cam3", "b", None, Duration::ZERO).unwrap();
    assert!(
        s.claim_stream("a", LONG, None, 16, ALIVE)
            .unwrap()
            .is_none(),
        "a holds its share"
    );
    std::thread::sleep(Duration::from_millis(300));
    let more = s
        .claim_stream("a", LONG, None, 16, Duration::from_millis(100))
        .unwrap();
    assert_eq!(more.map(|c| c.stream.name).as_deref(), Some("cam3"));
}

#[test]
fn a_stream_that_could_not_start_waits_then_goes_to_another_claim() {
    let Some(pg) = TestDb::create("streams_retry") else {
        return;
    };
    let s = PgStore::open(&pg.url, T).unwrap();
    assert!(s.insert_stream(&stream("gate", "/m/a.onnx", 1.0)).unwrap());
    assert!(s
        .claim_stream("a", LONG, None, 16, ALIVE)
        .unwrap()
        .is_some());
    s.release_stream(
        "gate",
        "a",
        Some("model: not a file"),
        Duration::from_millis(800),
    )
    .unwrap();
    let seen = s.stream("gate").unwrap().unwrap();
    assert_eq!(
        (seen.owner, seen.error.as_deref()),
        (None, Some("model: not a file"))
    );
    assert!(
        s.claim_stream("b", LONG, None, 16, ALIVE)
            .unwrap()
            .is_none(),
        "waits"
    );
    std::thread::sleep(Duration::from_millis(900));
    let again = s
        .claim_stream("b", LONG, None, 16, ALIVE)
        .unwrap()
        .expect("retried");
    assert_eq!((again.previous_owner, again.claims), (None, 2));
    assert_eq!(
        s.stream("gate").unwrap().unwrap().error,
        None,
        "cleared by the claim"
    );
    // Let go cleanly (a stop): claimable at once.
    s.release_stream("gate", "b", None, Duration::from_secs(60))
        .unwrap();
    assert!(s
        .claim_stream("a", LONG, None, 16, ALIVE)
        .unwrap()
        .is_some());
}

#[test]
fn taking_over_a_stream_interrupts_the_live_run_its_dead_owner_left() {
    let Some(pg) = TestDb::create("streams_reap") else {
        return;
    };
    let s = PgStore::open(&pg.url, T).unwrap();
    assert!(s.insert_stream(&stream("gate", "/m/a.onnx", 1.0)).unwrap());
    let lease = Duration::from_millis(500);
    assert!(s
        .claim_stream("a", lease, None, 16, ALIVE)
        .unwrap()
        .is_some());
    // a's live run of the stream, on its own connection.
    let runs = PgRunStore::open(&pg.url, T).unwrap();
    let sink = runs
        .begin_live(&RunStart {
            video: VideoRecord {
                path: "rtsp://cam/gate".into(),
                content_hash: "live".into(),
                size: 0,
                duration: 0.0,
                fps: 5.0,
                width: 64,
                height: 48,
                codec: "h264".into(),
                frames_expected: 0,
            },
            cache_key: "live:gate".into(),
            model_path: "/m/a.onnx".into(),
            model_hash: "mh".into(),
            params: json!({"live": true}),
            versions: json!({}),
        })
        .unwrap();
    let run = sink.run_id();
    assert_eq!(s.run(run).unwrap().status, RunStatus::Live);
    // a is killed: its connections close, its lease runs out.
    drop(sink);
    drop(runs);
    std::thread::sleep(lease + Duration::from_millis(300));
    let b = s
        .claim_stream("b", lease, None, 16, ALIVE)
        .unwrap()
        .unwrap();
    assert_eq!(b.previous_owner.as_deref(), Some("a"));
    assert_eq!(s.run(run).unwrap().status, RunStatus::Interrupted);
}
