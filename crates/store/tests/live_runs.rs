//! Live streams' runs: status `live` while the stream runs, a database
//! from before the status existed upgraded in place with its rows kept.

use std::time::Duration;

use peregrine_store::{NewRun, RunOutcome, RunStatus, Store, VideoRecord, MIGRATIONS};
use serde_json::json;

fn video() -> VideoRecord {
    VideoRecord {
        path: "rtsp://cam/1".into(),
        content_hash: "live-abc".into(),
        size: 0,
        duration: 0.0,
        fps: 25.0,
        width: 640,
        height: 480,
        codec: "h264".into(),
        frames_expected: 0,
    }
}

fn new_run(video_id: i64) -> NewRun {
    NewRun {
        video_id,
        cache_key: "live:abc".into(),
        model_path: "m.onnx".into(),
        model_hash: "mh".into(),
        params: json!({}),
        versions: json!({}),
    }
}

#[test]
fn live_run_is_live_until_finished() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("l.db")).unwrap();
    let vid = s.upsert_video(&video()).unwrap();
    let run = s.begin_run_as(&new_run(vid), RunStatus::Live).unwrap();
    let r = s.run(run).unwrap();
    assert_eq!(r.status, RunStatus::Live);
    assert!(r.status.is_incomplete());
    s.finish_run(
        run,
        &RunOutcome {
            status: RunStatus::Partial,
            error: None,
            frames: 3,
            detections: 0,
            tracks: 0,
            fps: 5.0,
            timings: json!({}),
            decode: json!({}),
        },
    )
    .unwrap();
    assert_eq!(s.run(run).unwrap().status, RunStatus::Partial);
}

#[test]
fn live_runs_of_dead_processes_are_interrupted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let s = Store::open(&path).unwrap();
    let vid = s.upsert_video(&video()).unwrap();
    let run = s.begin_run_as(&new_run(vid), RunStatus::Live).unwrap();
    drop(s);
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("UPDATE runs SET pid = 999999999 WHERE id = ?1", [run])
        .unwrap();
    drop(c);
    let s = Store::open(&path).unwrap();
    assert_eq!(s.run(run).unwrap().status, RunStatus::Interrupted);
}

#[test]
fn older_database_gains_the_live_status_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    // A database as the migrations before `live` left it, with a run.
    let before: Vec<_> = MIGRATIONS
        .iter()
        .copied()
        .take_while(|m| m.name != "live runs")
        .collect();
    let mut s = Store::open_with_migrations(&path, Duration::from_secs(1), &before).unwrap();
    let vid = s.upsert_video(&video()).unwrap();
    let old = s.begin_run(&new_run(vid)).unwrap();
    s.insert_frames(
        old,
        [(
            &peregrine_core::FrameMeta {
                source: 0,
                index: 0,
                pts: 0.0,
                width: 640,
                height: 480,
            },
            &[peregrine_core::Detection::new(
                0,
                0.9,
                peregrine_core::BBox::new(1.0, 2.0, 3.0, 4.0),
            )][..],
        )],
    )
    .unwrap();
    assert!(
        s.begin_run_as(&new_run(vid), RunStatus::Live).is_err(),
        "the old schema refuses the status"
    );
    drop(s);
    let s = Store::open(&path).unwrap();
    let live = s.begin_run_as(&new_run(vid), RunStatus::Live).unwrap();
    assert_eq!(s.run(live).unwrap().status, RunStatus::Live);
    assert_eq!(s.run(old).unwrap().detections, 1, "rows kept");
    let c = rusqlite::Connection::open(&path).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}
