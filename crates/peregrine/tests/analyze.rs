//! `peregrine analyze` end to end: real video, real model, real database.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;

fn export_jsonl(db: &str, run: u64) -> Vec<serde_json::Value> {
    let r = peregrine(&["export", &run.to_string(), "--db", db], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json_lines()
}

#[test]
fn traffic_video_finds_cars_and_second_run_is_cached() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let db = s(&db);
    let v = video("traffic_intersection_cctv_640x480.mp4");
    let m = model("yolox_nano.onnx");
    let args = [
        "analyze",
        s(&v),
        "--model",
        s(&m),
        "--db",
        db,
        "--json",
        "-q",
        "--every",
        "3",
    ];
    let first = peregrine(&args, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let j = &first.json_lines()[0];
    assert_eq!(j["status"], "complete");
    assert_eq!(j["cache_hit"], false);
    assert_eq!(j["frames"], 303, "909 frames, every 3rd");
    let run = j["run_id"].as_u64().unwrap();

    let rows = export_jsonl(db, run);
    assert_eq!(rows.len() as u64, j["detections"].as_u64().unwrap());
    let mut frames_with_car = BTreeSet::new();
    for r in &rows {
        for k in ["frame", "t", "class", "score", "x1", "y1", "x2", "y2"] {
            assert!(r.get(k).is_some(), "export row has {k}: {r}");
        }
        let (x1, x2) = (r["x1"].as_f64().unwrap(), r["x2"].as_f64().unwrap());
        assert!(
            0.0 <= x1 && x1 < x2 && x2 <= 640.0,
            "box inside the frame: {r}"
        );
        if r["class"] == "car" {
            frames_with_car.insert(r["frame"].as_u64().unwrap());
        }
    }
    assert!(
        frames_with_car.len() as f64 > 0.8 * 303.0,
        "cars in most frames: {} of 303",
        frames_with_car.len()
    );

    let t = Instant::now();
    let second = peregrine(&args, &[]);
    let j2 = &second.json_lines()[0];
    assert_eq!(j2["cache_hit"], true);
    assert_eq!(j2["run_id"].as_u64().unwrap(), run);
    assert_eq!(j2["detections"], j["detections"]);
    assert!(t.elapsed() < Duration::from_secs(20));

    let mut forced = args.to_vec();
    forced.push("--no-cache");
    let third = peregrine(&forced, &[]);
    let j3 = &third.json_lines()[0];
    assert_eq!(j3["cache_hit"], false);
    assert_ne!(j3["run_id"].as_u64().unwrap(), run);
    assert_eq!(j3["detections"], j["detections"], "deterministic");

    let mut other = args.to_vec();
    other.extend(["--conf", "0.5"]);
    let fourth = peregrine(&other, &[]);
    assert_eq!(
        fourth.json_lines()[0]["cache_hit"],
        false,
        "different parameters, different run"
    );
}

/// A run analysed with `--labels` keeps its class names: `--classes`,
/// exports and track listings use them without `--labels` again, and the
/// names are part of the cache key.
#[test]
fn custom_labels_are_stored_with_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let db = s(&db);
    let names = std::fs::read_to_string(data_dir().join("models/coco.names")).unwrap();
    let renamed: String = names
        .lines()
        .map(|l| if l.trim() == "car" { "vehicle" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    let labels = dir.path().join("renamed.names");
    std::fs::write(&labels, renamed).unwrap();
    let v = video("traffic_intersection_cctv_640x480.mp4");
    let m = model("yolox_nano.onnx");
    let base = [
        "analyze",
        s(&v),
        "--model",
        s(&m),
        "--db",
        db,
        "--json",
        "-q",
        "--end",
        "2",
    ];
    let mut args = base.to_vec();
    args.extend(["--labels", s(&labels), "--classes", "vehicle"]);
    let r = peregrine(&args, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = r.json_lines()[0]["run_id"].as_u64().unwrap();
    let rows = export_jsonl(db, run);
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r["class"] == "vehicle"),
        "{:?}",
        rows[0]
    );
    let t = peregrine(&["tracks", &run.to_string(), "--db", db], &[]);
    assert_eq!(t.code, 0, "{}", t.stderr);
    assert!(t.stdout.contains("vehicle"), "{}", t.stdout);

    let mut coco = base.to_vec();
    coco.extend(["--classes", "car"]);
    let r = peregrine(&coco, &[]);
    let j = &r.json_lines()[0];
    assert_eq!(j["cache_hit"], false, "other names, other run");
    let rows = export_jsonl(db, j["run_id"].as_u64().unwrap());
    assert!(rows.iter().all(|r| r["class"] == "car"));

    // Names beside the model (NAME.names) serve without --labels: the same
    // model content and names as the first run, so its cached result.
    let side = dir.path().join("side.onnx");
    std::os::unix::fs::symlink(&m, &side).unwrap();
    std::fs::copy(&labels, dir.path().join("side.names")).unwrap();
    let mut args = base.to_vec();
    args[3] = s(&side);
    args.extend(["--classes", "vehicle"]);
    let r = peregrine(&args, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = &r.json_lines()[0];
    assert_eq!(
        (j["cache_hit"].as_bool(), j["run_id"].as_u64()),
        (Some(true), Some(run))
    );
}

#[test]
fn mot_sequence_folder_exports_mot_format() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let seq = data_dir().join("mot/PETS09-S2L1-480x360");
    let r = peregrine(
        &[
            "analyze",
            s(&seq),
            "--model",
            s(&model("yolox_nano.onnx")),
            "--db",
            s(&db),
            "--json",
            "-q",
            "--classes",
            "person",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = &r.json_lines()[0];
    assert_eq!(j["frames"], 124);
    let out = dir.path().join("pred.txt");
    let e = peregrine(
        &[
            "export",
            "1",
            "--db",
            s(&db),
            "--format",
            "mot",
            "-o",
            s(&out),
        ],
        &[],
    );
    assert_eq!(e.code, 0, "{}", e.stderr);
    let text = std::fs::read_to_string(&out).unwrap();
    let mut per_frame: BTreeMap<u64, usize> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 10, "{line}");
        let frame: u64 = f[0].parse().unwrap();
        assert!((1..=124).contains(&frame));
        let w: f64 = f[4].parse().unwrap();
        assert!(w > 0.0);
        *per_frame.entry(frame).or_default() += 1;
    }
    // PETS09 S2L1 has 3-8 walkers in view.
    let mean = per_frame.values().sum::<usize>() as f64 / 124.0;
    assert!((2.0..12.0).contains(&mean), "mean people per frame {mean}");
    let classes = peregrine(&["export", "1", "--db", s(&db)], &[]).json_lines();
    assert!(classes.iter().all(|r| r["class"] == "person"));
}

#[test]
fn sampling_by_fps_and_time_range() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let v = video("traffic_intersection_cctv_640x480.mp4");
    let r = peregrine(
        &[
            "analyze",
            s(&v),
            "--model",
            s(&model("yolox_nano.onnx")),
            "--db",
            s(&db),
            "--json",
            "-q",
            "--fps",
            "5",
            "--start",
            "10",
            "--end",
            "20",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = &r.json_lines()[0];
    assert_eq!(j["frames"], 50, "10 s at 5 fps: {j}");
    let rows = export_jsonl(s(&db), j["run_id"].as_u64().unwrap());
    let times: BTreeSet<u64> = rows
        .iter()
        .map(|r| (r["t"].as_f64().unwrap() * 1000.0) as u64)
        .collect();
    assert!(
        times.iter().all(|&t| (9_990..20_000).contains(&t)),
        "{times:?}"
    );
    let frames: BTreeSet<u64> = rows.iter().map(|r| r["frame"].as_u64().unwrap()).collect();
    let v: Vec<u64> = frames.into_iter().collect();
    for w in v.windows(2) {
        assert!(
            (5..=7).contains(&(w[1] - w[0])),
            "about every 6th frame: {w:?}"
        );
    }
}

#[test]
fn several_inputs_run_concurrently_with_one_report_each() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let a = video("traffic_highway_cctv_320x240.avi");
    let b = video("gait_sideon_whitewall_640x352.mp4");
    let r = peregrine(
        &[
            "analyze",
            s(&a),
            s(&b),
            "--model",
            s(&model("nanodet_m_416.onnx")),
            "--db",
            s(&db),
            "--json",
            "-q",
            "--jobs",
            "2",
            "--end",
            "3",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines = r.json_lines();
    assert_eq!(lines.len(), 2);
    let ids: BTreeSet<u64> = lines
        .iter()
        .map(|l| l["run_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    for l in &lines {
        assert_eq!(l["status"], "complete");
        assert!(l["frames"].as_u64().unwrap() > 60);
        for stage in ["decode", "preprocess", "infer", "postprocess", "store"] {
            assert!(
                l["timings"][stage]["p95_ms"].as_f64().is_some(),
                "{stage} timed: {l}"
            );
        }
    }
}

/// Regression: `--start` past the end of the video ended `complete` with 0
/// frames, and that empty run was then served from the cache.
#[test]
fn start_past_the_end_is_an_error_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let v = video("traffic_intersection_cctv_640x480.mp4");
    for _ in 0..2 {
        let r = analyze(&v, &db, &["--start", "100"]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        let errors: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.starts_with("peregrine:"))
            .collect();
        assert_eq!(errors.len(), 1, "{}", r.stderr);
        assert!(
            errors[0].contains("traffic_intersection_cctv_640x480.mp4")
                && errors[0].contains("start 100")
                && errors[0].contains("30.3"),
            "names the input, the start and the duration: {}",
            errors[0]
        );
        let j = &r.json_lines()[0];
        assert_eq!(
            (j["status"].as_str(), j["cache_hit"].as_bool()),
            (Some("failed"), Some(false))
        );
    }
    let runs = peregrine(&["runs", "--db", s(&db), "--json"], &[]);
    let runs: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    assert_eq!(
        runs.as_array().map(Vec::len),
        Some(0),
        "nothing stored: {runs}"
    );
}

/// Regression: `--batch` with a fixed-batch model was ignored silently.
#[test]
fn batch_on_a_fixed_batch_model_warns_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let run = |m: &str| {
        peregrine(
            &[
                "analyze",
                s(&video("traffic_highway_cctv_320x240.avi")),
                "--model",
                s(&model(m)),
                "--db",
                s(&db),
                "-q",
                "--end",
                "0.3",
                "--batch",
                "4",
            ],
            &[],
        )
    };
    let r = run("yolox_nano.onnx");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let warnings: Vec<&str> = r.stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{}", r.stderr);
    assert!(
        warnings[0].contains("yolox_nano.onnx") && warnings[0].contains("fixed batch size of 1"),
        "{}",
        warnings[0]
    );
    let r = run("yolox_nano_dynbatch.onnx");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}

fn wait_for_running_run(db: &std::path::Path) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        if let Ok(c) = rusqlite::Connection::open(db) {
            let n: i64 = c
                .query_row("SELECT count(*) FROM detections", [], |r| r.get(0))
                .unwrap_or(0);
            if n > 0 {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("run never started writing");
}

fn status_of_run_1(db: &str) -> String {
    let r = peregrine(&["runs", "--db", db, "--json"], &[]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v[0]["status"].as_str().unwrap().to_string()
}

fn spawn_long_run(db: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args([
            "analyze",
            s(&video("sport_soccer_broadcast_1280x720.mp4")),
            "--model",
            s(&model("yolox_nano.onnx")),
            "--db",
            s(db),
            "-q",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn ctrl_c_marks_the_run_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let child = spawn_long_run(&db);
    wait_for_running_run(&db);
    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status_of_run_1(s(&db)), "interrupted");
}

#[test]
fn killed_process_leaves_a_run_that_is_reaped_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let mut child = spawn_long_run(&db);
    wait_for_running_run(&db);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status_of_run_1(s(&db)), "interrupted");
}
