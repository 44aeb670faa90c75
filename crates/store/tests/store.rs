use std::time::Duration;

use peregrine_core::{BBox, Detection, FrameMeta, Keypoint};
use peregrine_store::{
    DetectionQuery, NewRun, RunOutcome, RunStatus, Store, StoreError, TrackRow, VideoRecord,
};
use serde_json::json;

fn video() -> VideoRecord {
    VideoRecord {
        path: "/videos/a.mp4".into(),
        content_hash: "abc".into(),
        size: 10,
        duration: 2.0,
        fps: 10.0,
        width: 640,
        height: 480,
        codec: "h264".into(),
        frames_expected: 20,
    }
}

fn new_run(video_id: i64, key: &str) -> NewRun {
    NewRun {
        video_id,
        cache_key: key.into(),
        model_path: "m.onnx".into(),
        model_hash: "mh".into(),
        params: json!({"conf": 0.25}),
        versions: json!({"peregrine": "test"}),
    }
}

fn outcome(status: RunStatus, frames: u64, detections: u64) -> RunOutcome {
    RunOutcome {
        status,
        error: None,
        frames,
        detections,
        tracks: 0,
        fps: 100.0,
        timings: json!({}),
        decode: json!({}),
    }
}

fn meta(i: u64) -> FrameMeta {
    FrameMeta {
        source: 0,
        index: i,
        pts: i as f64 / 10.0,
        width: 640,
        height: 480,
    }
}

fn dets(i: u64, n: usize) -> Vec<Detection> {
    (0..n)
        .map(|k| {
            let mut d = Detection::new(
                (k % 3) as u16,
                0.5,
                BBox::new(i as f32, k as f32, i as f32 + 10.0, k as f32 + 10.0),
            );
            d.track_id = Some(k as u32 + 1);
            d
        })
        .collect()
}

#[test]
fn cache_returns_only_finished_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("p.db")).unwrap();
    let vid = s.upsert_video(&video()).unwrap();
    assert_eq!(
        vid,
        s.upsert_video(&video()).unwrap(),
        "same video, same id"
    );
    let run = s.begin_run(&new_run(vid, "k1")).unwrap();
    let frames: Vec<(FrameMeta, Vec<Detection>)> = (0..5).map(|i| (meta(i), dets(i, 2))).collect();
    s.insert_frames(run, frames.iter().map(|(m, d)| (m, d.as_slice())))
        .unwrap();
    assert!(
        s.find_cached_run("k1").unwrap().is_none(),
        "running run must not be a cache hit"
    );
    s.finish_run(run, &outcome(RunStatus::Failed, 5, 10))
        .unwrap();
    assert!(
        s.find_cached_run("k1").unwrap().is_none(),
        "failed run must not be a cache hit"
    );
    let run2 = s.begin_run(&new_run(vid, "k1")).unwrap();
    s.finish_run(run2, &outcome(RunStatus::Complete, 5, 0))
        .unwrap();
    let hit = s.find_cached_run("k1").unwrap().unwrap();
    assert_eq!(hit.id, run2);
    assert_eq!(hit.status, RunStatus::Complete);
    assert_eq!(hit.params["conf"], 0.25);
    assert_eq!(s.runs().unwrap().len(), 2);
}

#[test]
fn detections_round_trip_and_page_by_keyset() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("p.db")).unwrap();
    let vid = s.upsert_video(&video()).unwrap();
    let run = s.begin_run(&new_run(vid, "k")).unwrap();
    let mut frames: Vec<(FrameMeta, Vec<Detection>)> =
        (0..50).map(|i| (meta(i), dets(i, 7))).collect();
    frames[3].1[0].keypoints = vec![
        Keypoint {
            x: 1.5,
            y: 2.5,
            score: 0.75
        };
        17
    ];
    s.insert_frames(run, frames.iter().map(|(m, d)| (m, d.as_slice())))
        .unwrap();

    let mut all = Vec::new();
    s.for_each_detection(run, |d| {
        all.push(d.clone());
        Ok::<_, ()>(())
    })
    .unwrap()
    .unwrap();
    assert_eq!(all.len(), 350);
    assert_eq!(all[21].keypoints.len(), 17);
    assert_eq!(
        all[21].keypoints[16],
        Keypoint {
            x: 1.5,
            y: 2.5,
            score: 0.75
        }
    );
    assert_eq!(all[0].track_id, Some(1));

    let mut paged = Vec::new();
    let mut q = DetectionQuery {
        limit: 64,
        ..Default::default()
    };
    loop {
        let page = s.detections_page(run, &q).unwrap();
        assert!(page.items.len() <= 64);
        paged.extend(page.items);
        match page.next {
            Some(c) => q.after = Some(c),
            None => break,
        }
    }
    assert_eq!(paged, all, "pages concatenate to the full ordered stream");

    let q = DetectionQuery {
        frame_from: Some(10),
        frame_to: Some(19),
        class_id: Some(1),
        limit: 1000,
        ..Default::default()
    };
    let page = s.detections_page(run, &q).unwrap();
    assert_eq!(page.items.len(), 10 * 2); // classes 0,1,2,0,1,2,0 -> two of class 1 per frame
    assert!(page
        .items
        .iter()
        .all(|d| d.class_id == 1 && (10..=19).contains(&d.frame)));
    assert!(page.next.is_none());
}

#[test]
fn tracks_replace_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("p.db")).unwrap();
    let vid = s.upsert_video(&video()).unwrap();
    let run = s.begin_run(&new_run(vid, "k")).unwrap();
    let t = TrackRow {
        track_id: 3,
        class_id: 0,
        first_frame: 1,
        last_frame: 9,
        first_t: 0.1,
        last_t: 0.9,
        frames: 9,
        mean_score: 0.8,
        path_px: 40.0,
        mean_speed: 50.0,
        max_speed: 70.0,
        region: BBox::new(0.0, 0.0, 50.0, 60.0),
    };
    s.upsert_tracks(run, std::slice::from_ref(&t)).unwrap();
    s.upsert_tracks(run, std::slice::from_ref(&t)).unwrap();
    assert_eq!(s.tracks(run).unwrap(), vec![t]);
}

#[test]
fn runs_of_dead_processes_are_marked_interrupted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let s = Store::open(&path).unwrap();
    let vid = s.upsert_video(&video()).unwrap();
    let run = s.begin_run(&new_run(vid, "k")).unwrap();
    drop(s);
    // Pretend the writer was a process that no longer exists.
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("UPDATE runs SET pid = 999999999 WHERE id = ?1", [run])
        .unwrap();
    drop(c);
    let s = Store::open(&path).unwrap();
    let r = s.run(run).unwrap();
    assert_eq!(r.status, RunStatus::Interrupted);
    assert!(r.error.unwrap().contains("exited before it finished"));
}

#[test]
fn locked_database_times_out_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let s = Store::open(&path).unwrap();
    let vid = s.upsert_video(&video()).unwrap();
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let s2 = Store::open_with_timeout(&path, Duration::from_millis(200));
    let err = match s2 {
        Err(e) => e,
        Ok(s2) => s2.begin_run(&new_run(vid, "k")).unwrap_err(),
    };
    assert!(
        matches!(err, StoreError::Locked { .. } | StoreError::Open { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("locked"), "{err}");
    holder.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn unwritable_path_is_an_open_error() {
    let err = Store::open(std::path::Path::new("/nonexistent-dir/sub/p.db"))
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Open { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent-dir/sub/p.db: cannot open database"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(dir.path()).err().unwrap();
    assert!(err.to_string().contains("is a directory"));
}

#[test]
fn missing_run_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("p.db")).unwrap();
    let err = s.run(42).unwrap_err();
    assert!(err.to_string().ends_with("run 42 not found"), "{err}");
}

/// Issue 10, item 13: a run that never recorded its totals (still running,
/// or killed) listed 0 frames and 0 detections while its rows were there.
#[test]
fn unfinished_run_reports_its_stored_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("p.db")).unwrap();
    let vid = s.upsert_video(&video()).unwrap();
    let run = s.begin_run(&new_run(vid, "k")).unwrap();
    let frames: Vec<(FrameMeta, Vec<Detection>)> =
        (0..4).map(|i| (meta(i * 2), dets(i * 2, 3))).collect();
    s.insert_frames(run, frames.iter().map(|(m, d)| (m, d.as_slice())))
        .unwrap();
    let r = s.run(run).unwrap();
    assert_eq!(r.status, RunStatus::Running);
    assert!(r.status.is_incomplete());
    assert_eq!((r.frames, r.detections, r.tracks), (4, 12, 3));
    assert_eq!(s.runs().unwrap()[0].detections, 12);

    // Recorded totals win once the run ends.
    s.finish_run(run, &outcome(RunStatus::Complete, 8, 12))
        .unwrap();
    let r = s.run(run).unwrap();
    assert!(!r.status.is_incomplete());
    assert_eq!((r.frames, r.detections), (8, 12));
}

/// The video a run analysed, for checks against ground truth.
#[test]
fn video_of_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("p.db")).unwrap();
    let vid = s.upsert_video(&video()).unwrap();
    assert_eq!(s.video(vid).unwrap(), Some(video()));
    assert_eq!(s.video(vid + 1).unwrap(), None);
}

/// A tmpfs of `kib` KiB on a temporary folder, unmounted on drop; `None`
/// (with the reason) where this process may not mount one.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(kib: u64) -> Result<SmallDisk, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// Issue 10, item 14: on a full disk a run failed with "FOREIGN KEY
/// constraint failed" (an INSERT ... RETURNING whose commit failed handed
/// out the id of a row rolled back), and a new database was left behind as
/// an empty file.
#[test]
fn full_disk_is_reported_as_such_and_keeps_earlier_rows() {
    let disk = match SmallDisk::mount(1024) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skipping full_disk_is_reported_as_such_and_keeps_earlier_rows: cannot mount a tmpfs here (needs root): {e}");
            return;
        }
    };
    let path = disk.0.path().join("p.db");
    let mut s = Store::open(&path).unwrap();
    let vid = s.upsert_video(&video()).unwrap();
    let first = s.begin_run(&new_run(vid, "first")).unwrap();
    let frames: Vec<(FrameMeta, Vec<Detection>)> = (0..5).map(|i| (meta(i), dets(i, 4))).collect();
    s.insert_frames(first, frames.iter().map(|(m, d)| (m, d.as_slice())))
        .unwrap();
    s.finish_run(first, &outcome(RunStatus::Complete, 5, 20))
        .unwrap();

    // New videos, runs and rows until the disk is full: every failure is
    // the full disk, whichever statement meets it.
    let mut failure = None;
    for i in 0..100_000u64 {
        let mut v = video();
        v.path = format!("/videos/{i}.mp4");
        v.codec = "x".repeat(200);
        let step = s.upsert_video(&v).and_then(|vid| {
            let run = s.begin_run(&new_run(vid, &format!("k{i}")))?;
            if i % 8 == 0 {
                let frames: Vec<(FrameMeta, Vec<Detection>)> =
                    (0..2).map(|f| (meta(f), dets(f, 20))).collect();
                s.insert_frames(run, frames.iter().map(|(m, d)| (m, d.as_slice())))?;
            }
            Ok(())
        });
        if let Err(e) = step {
            failure = Some(e);
            break;
        }
    }
    let e = failure.expect("the disk fills up");
    assert!(matches!(e, StoreError::DiskFull { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!("disk full writing {}", path.display())
    );

    // The first run is intact.
    let r = s.run(first).unwrap();
    assert_eq!(
        (r.status, r.frames, r.detections),
        (RunStatus::Complete, 5, 20)
    );
    let mut n = 0;
    s.for_each_detection(first, |_| -> Result<(), ()> {
        n += 1;
        Ok(())
    })
    .unwrap()
    .unwrap();
    assert_eq!(n, 20);

    // A new database on the full disk: the error, and no file.
    let fresh = disk.0.path().join("new.db");
    let e = Store::open(&fresh)
        .err()
        .expect("no room for a new database");
    assert!(matches!(e, StoreError::DiskFull { .. }), "{e}");
    let left: Vec<_> = std::fs::read_dir(disk.0.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("new.db"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
