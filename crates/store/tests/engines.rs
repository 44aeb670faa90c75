//! The same results through both engines: a run written through the
//! pipeline's interface (`RunStore`/`RunSink`) to SQLite and to PostgreSQL
//! reads back identically through [`Results`]; PostgreSQL's migrations
//! and its reaping of runs whose writer died.
//!
//! PostgreSQL tests print `SKIPPED` and pass only where no server answers
//! (`PEREGRINE_TEST_PG`, default the local one).

use std::time::Duration;

use peregrine_core::{
    BBox, Detection, FrameDetections, FrameMeta, Keypoint, RunOutcome, RunStart, RunStatus,
    RunStore, TrackSummary, VideoRecord,
};
use peregrine_store::pg::{TestDb, PG_MIGRATIONS};
use peregrine_store::{
    DbTarget, DetectionQuery, PgRunStore, PgStore, Results, SqliteRunStore, StoreError,
};
use serde_json::json;

const T: Duration = Duration::from_secs(5);

fn start(key: &str) -> RunStart {
    RunStart {
        video: VideoRecord {
            path: "/videos/a.mp4".into(),
            content_hash: "abc".into(),
            size: 10,
            duration: 2.0,
            fps: 10.0,
            width: 640,
            height: 480,
            codec: "h264".into(),
            frames_expected: 20,
        },
        cache_key: key.into(),
        model_path: "m.onnx".into(),
        model_hash: "mh".into(),
        params: json!({"conf": 0.25, "labels": ["a", "b", "c"]}),
        versions: json!({"peregrine": "test"}),
    }
}

/// 20 frames; frame i has i % 4 detections (some frames none), with and
/// without track ids and keypoints, and values that only exact storage
/// keeps (f32 fractions, a class id over i16, a track id over i32).
fn frames() -> Vec<FrameDetections> {
    (0..20u64)
        .map(|i| FrameDetections {
            meta: FrameMeta {
                source: 0,
                index: i,
                pts: i as f64 / 10.0 + 1e-9,
                width: 640,
                height: 480,
            },
            detections: (0..(i % 4) as usize)
                .map(|k| {
                    let class = if k == 2 { 40_000 } else { k as u16 };
                    let mut d = Detection::new(
                        class,
                        0.1 + k as f32 / 3.0,
                        BBox::new(i as f32 / 7.0, k as f32, i as f32 + 10.3, k as f32 + 9.9),
                    );
                    d.track_id = (k != 1).then_some(if k == 2 { u32::MAX } else { k as u32 + 1 });
                    if k == 0 {
                        d.keypoints = vec![
                            Keypoint {
                                x: 1.5,
                                y: 2.25,
                                score: 0.3,
                            };
                            17
                        ];
                    }
                    d
                })
                .collect(),
        })
        .collect()
}

fn track(id: u32) -> TrackSummary {
    TrackSummary {
        source: 0,
        track_id: id,
        class_id: 1,
        first_frame: 1,
        last_frame: 19,
        first_time_s: 0.1,
        last_time_s: 1.9,
        frames_seen: 12,
        mean_score: 0.61,
        path_length_px: 123.4,
        mean_speed_px_s: Some(12.5),
        max_speed_px_s: None,
        region: BBox::new(0.5, 1.5, 30.25, 40.125),
    }
}

/// Writes the same run through `store`, in batches as the pipeline does.
fn write_run(store: &dyn RunStore) -> i64 {
    assert!(store.cached("k").unwrap().is_none());
    let mut sink = store.begin(&start("k")).unwrap();
    let all = frames();
    for batch in all.chunks(7) {
        sink.frames(batch).unwrap();
    }
    sink.tracks(&[track(1), track(u32::MAX)]).unwrap();
    // A track written again is replaced.
    let mut again = track(1);
    again.frames_seen = 13;
    sink.tracks(&[again]).unwrap();
    let n = all.iter().map(|f| f.detections.len() as u64).sum();
    sink.finish(&RunOutcome {
        status: RunStatus::Complete,
        error: None,
        frames: 20,
        detections: n,
        tracks: 2,
        fps: 50.0,
        timings: json!({"infer": 1.0}),
        decode: json!({}),
    })
    .unwrap();
    let cached = store
        .cached("k")
        .unwrap()
        .expect("a complete run is cached");
    assert_eq!(cached.id, sink.run_id());
    assert_eq!(cached.detections, n);
    sink.run_id()
}

/// Everything readable about a run, engine-neutral.
fn read_back(r: &Results, id: i64) -> serde_json::Value {
    let run = r.run(id).unwrap();
    let mut dets = Vec::new();
    r.for_each_detection(id, |d| -> Result<(), ()> {
        dets.push(format!("{d:?}"));
        Ok(())
    })
    .unwrap()
    .unwrap();
    // Keyset pages of 4 rows, whole and filtered by class and track.
    let mut pages = Vec::new();
    for (class_id, track_id) in [(None, None), (Some(0), None), (None, Some(u32::MAX))] {
        let mut after = None;
        loop {
            let page = r
                .detections_page(
                    id,
                    &DetectionQuery {
                        class_id,
                        track_id,
                        limit: 4,
                        after,
                        frame_from: Some(2),
                        ..Default::default()
                    },
                )
                .unwrap();
            pages.push(format!("{:?}", page.items));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    let mut frames = Vec::new();
    r.for_each_frame(id, 640, 480, |m, d| -> Result<(), ()> {
        frames.push(format!("{m:?} {d:?}"));
        Ok(())
    })
    .unwrap()
    .unwrap();
    json!({
        "status": run.status.as_str(),
        "frames": run.frames,
        "detections": run.detections,
        "params": run.params,
        "video": format!("{:?}", r.video(run.video_id).unwrap()),
        "rows": dets,
        "pages": pages,
        "frame_rows": frames,
        "tracks": format!("{:?}", r.tracks(id).unwrap()),
        "runs": r.runs().unwrap().len(),
    })
}

#[test]
fn a_run_reads_back_the_same_from_sqlite_and_postgres() {
    let Some(pg) = TestDb::create("same") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.db");
    let lite_id = write_run(&SqliteRunStore::open(&file, T).unwrap());
    let pg_id = write_run(&PgRunStore::open(&pg.url, T).unwrap());
    let lite = read_back(&Results::open(&DbTarget::Sqlite(file), T).unwrap(), lite_id);
    let pg_read = read_back(&Results::open(&DbTarget::parse(&pg.url), T).unwrap(), pg_id);
    assert_eq!(lite, pg_read);
    assert_eq!(lite["rows"].as_array().unwrap().len(), 30);
    assert!(lite["tracks"].as_str().unwrap().contains("frames: 13"));
}

#[test]
fn postgres_migrates_from_empty_and_from_the_previous_version() {
    let Some(pg) = TestDb::create("migrate") else {
        return;
    };
    let latest = PG_MIGRATIONS.last().unwrap().version;
    // The previous version, with a run in it (written as that schema allows).
    let old = PgStore::open_with_migrations(&pg.url, T, &PG_MIGRATIONS[..PG_MIGRATIONS.len() - 1])
        .unwrap();
    assert_eq!(old.schema_version().unwrap(), latest - 1);
    drop(old);
    {
        let mut c = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
        c.batch_execute(
            "INSERT INTO videos (path, content_hash, size, duration, fps, width, height, codec, frames_expected) \
             VALUES ('v.mp4', 'h', 1, 1.0, 10.0, 64, 48, 'h264', 10); \
             INSERT INTO runs (video_id, cache_key, model_path, model_hash, params, versions, status) \
             VALUES (1, 'old', 'm', 'mh', '{}', '{}', 'complete');",
        )
        .unwrap();
    }
    // Opening brings it to the latest version and keeps its rows; opening
    // again changes nothing; the new version's tables take writes.
    let s = PgStore::open(&pg.url, T).unwrap();
    assert_eq!(s.schema_version().unwrap(), latest);
    assert_eq!(s.runs().unwrap()[0].cache_key, "old");
    drop(s);
    let s = PgStore::open(&pg.url, T).unwrap();
    assert_eq!(s.schema_version().unwrap(), latest);
    let id = write_run(&PgRunStore::open(&pg.url, T).unwrap());
    assert_eq!(s.run(id).unwrap().frames, 20);

    // A database from a newer peregrine is refused, and left as it was.
    let mut c = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
    c.execute(
        "INSERT INTO schema_version (version, name) VALUES ($1, 'future')",
        &[&(latest + 1)],
    )
    .unwrap();
    let err = PgStore::open(&pg.url, T).err().expect("refused");
    assert!(
        err.to_string().contains("newer than this peregrine"),
        "{err}"
    );
}

#[test]
fn postgres_from_empty_database_and_bad_urls() {
    let Some(pg) = TestDb::create("empty") else {
        return;
    };
    let s = PgStore::open(&pg.url, T).unwrap();
    assert_eq!(
        s.schema_version().unwrap(),
        PG_MIGRATIONS.last().unwrap().version
    );
    assert!(s.runs().unwrap().is_empty());
    assert!(matches!(
        s.run(7),
        Err(StoreError::RunNotFound { run: 7, .. })
    ));
    // One line naming the database (without its password) and the cause.
    let bad = format!(
        "postgres://postgres:secret@127.0.0.1:5432/no_such_db_{}",
        std::process::id()
    );
    let err = PgStore::open(&bad, T).err().expect("no such database");
    let msg = err.to_string();
    assert!(
        msg.contains("no_such_db_") && !msg.contains("secret"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn a_postgres_run_whose_writer_died_is_interrupted() {
    let Some(pg) = TestDb::create("reap") else {
        return;
    };
    let store = PgRunStore::open(&pg.url, T).unwrap();
    let mut sink = store.begin(&start("k")).unwrap();
    sink.frames(&frames()[..5]).unwrap();
    let id = sink.run_id();
    // While its writer's connection is open, another process leaves it.
    let reader = PgStore::open(&pg.url, T).unwrap();
    assert_eq!(reader.run(id).unwrap().status, RunStatus::Running);
    // The writer goes away without finishing (its connection closes, as
    // when its process is killed): the next open marks the run.
    drop(sink);
    let mut status = RunStatus::Running;
    for _ in 0..50 {
        status = PgStore::open(&pg.url, T).unwrap().run(id).unwrap().status;
        if status != RunStatus::Running {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status, RunStatus::Interrupted);
    assert!(store.cached("k").unwrap().is_none());
}
