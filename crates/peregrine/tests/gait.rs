//! `peregrine gait` end to end on the two real side-on clips, the JSON
//! contract, the report, and bad input.
//!
//! How the expected values were found (by a person, not by the program):
//! the feet of every frame were cut out with FFmpeg and laid out as
//! contact sheets, 36 frames per sheet, each frame numbered, e.g.
//!
//! ```text
//! ffmpeg -i gait_sideon_whitewall_640x352.mp4 -vf "crop=200:60:230:280,\
//!   drawtext=text='%{n}':x=2:y=2:fontsize=14:fontcolor=yellow:box=1,\
//!   select='between(n\,45\,79)',scale=300:90,tile=6x6" -frames:v 1 sheet.png
//! ```
//!
//! and a heel strike was read as the first frame where the leading foot
//! touches the floor heel first.
//!
//! - `gait_sideon_whitewall_640x352.mp4` (29.76 fps): the subject stands
//!   still until frame 12, then heel strikes at frames 22, 48, 68, 89 and
//!   110 (one foot wears a pink sock, so the feet are told apart: plain,
//!   pink, plain, pink, plain), and leaves the view mid-swing at about
//!   frame 126. 5 steps; 4 steps in 88 frames = 81.2 steps/min.
//! - `gait_sideon_livingroom_960x540.mp4` (29.97 fps, barefoot): enters at
//!   frame 20, heel strikes at frames 24, 41.5, 60, 77, 95 and 112, leaves
//!   at about 124. 6 steps; 5 steps in 88 frames = 102.2 steps/min. The
//!   first of them comes while the body is still at the left edge of the
//!   frame, where `gait` uses no frame (a limb may be outside), so it
//!   finds 5 (hence steps within one of the count).
//!
//! `gait` finds the whitewall heel strikes at frames 21.6, 48.7, 68.1,
//! 89.0 and 109.4 (81.3 steps/min) and the living-room ones at 43.7, 61.0,
//! 79.3, 97.1 and 115.6 (100.9 steps/min), balanced mode: within 0-4
//! frames of the frames counted, later rather than earlier (the ankle,
//! not the heel, is what the model sees).

mod common;

use common::{data_dir, model, peregrine, s, video};
use serde_json::Value;

struct Clip {
    name: &'static str,
    fps: f64,
    heel_strikes: &'static [f64],
}

const WHITEWALL: Clip = Clip {
    name: "gait_sideon_whitewall_640x352.mp4",
    fps: 29.76,
    heel_strikes: &[22.0, 48.0, 68.0, 89.0, 110.0],
};

const LIVINGROOM: Clip = Clip {
    name: "gait_sideon_livingroom_960x540.mp4",
    fps: 29.97,
    heel_strikes: &[24.0, 41.5, 60.0, 77.0, 95.0, 112.0],
};

fn cadence(c: &Clip) -> f64 {
    let h = c.heel_strikes;
    60.0 * (h.len() - 1) as f64 / ((h[h.len() - 1] - h[0]) / c.fps)
}

fn gait_json(input: &str, db: &std::path::Path, extra: &[&str]) -> (i32, Vec<Value>, String) {
    let m = model("yolo11n_pose_int8.onnx");
    let mut args = vec![
        "gait",
        input,
        "--model",
        s(&m),
        "--db",
        s(db),
        "--json",
        "-q",
    ];
    args.extend_from_slice(extra);
    let r = peregrine(&args, &[]);
    let lines = r.json_lines();
    (r.code, lines, r.stderr)
}

/// Runs a clip and checks steps, cadence and heel strike frames against
/// the counts above. Returns the main subject.
fn check_clip(c: &Clip, db: &std::path::Path, extra: &[&str]) -> Value {
    if !data_dir().join("videos").join(c.name).exists() {
        panic!("test data missing: set PEREGRINE_TEST_DATA");
    }
    let v = video(c.name);
    let (code, lines, stderr) = gait_json(s(&v), db, extra);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), 1);
    let out = &lines[0];
    let obj = out.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["input", "run_id", "subjects"]);
    assert!(out["run_id"].as_i64().unwrap() > 0);
    let subjects = out["subjects"].as_array().unwrap();
    assert!(!subjects.is_empty(), "no subject: {out}");
    let main = subjects[0].clone();
    let steps = main["steps"].as_u64().unwrap() as usize;
    assert!(
        steps.abs_diff(c.heel_strikes.len()) <= 1,
        "{}: {steps} steps, counted {}",
        c.name,
        c.heel_strikes.len()
    );
    let cad = main["cadence_spm"].as_f64().unwrap();
    let truth = cadence(c);
    assert!(
        (cad - truth).abs() / truth < 0.05,
        "{}: cadence {cad:.1}, counted {truth:.1}",
        c.name
    );
    // Every heel strike found is within 4 frames of one seen, and the
    // feet alternate.
    let hs: Vec<&Value> = main["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "heel_strike")
        .collect();
    for e in &hs {
        let f = e["t"].as_f64().unwrap() * c.fps;
        let best = c
            .heel_strikes
            .iter()
            .map(|h| (h - f).abs())
            .fold(f64::INFINITY, f64::min);
        assert!(best <= 4.0, "{}: heel strike at frame {f:.1}", c.name);
    }
    for w in hs.windows(2) {
        assert_ne!(
            w[0]["foot"], w[1]["foot"],
            "{}: feet do not alternate",
            c.name
        );
    }
    main
}

#[test]
fn whitewall_steps_cadence_contract_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.html");
    let db = dir.path().join("g.db");
    let main = check_clip(
        &WHITEWALL,
        &db,
        &["--report", s(&report), "--height", "1.75"],
    );
    for k in [
        "track_id",
        "frames",
        "steps",
        "cadence_spm",
        "step_time_s",
        "stride_time_s",
        "stance_pct",
        "swing_pct",
        "double_support_pct",
        "speed",
        "speed_unit",
        "symmetry",
        "events",
    ] {
        assert!(main.get(k).is_some(), "missing {k}: {main}");
    }
    assert_eq!(main["speed_unit"], "m/s");
    let speed = main["speed"].as_f64().unwrap();
    // A slow, careful walk: between 0.3 and 1.5 m/s.
    assert!((0.3..1.5).contains(&speed), "speed {speed}");
    for e in main["events"].as_array().unwrap() {
        for k in ["t", "foot", "kind"] {
            assert!(e.get(k).is_some(), "event without {k}: {e}");
        }
    }
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("<svg"));
    assert!(html.contains("data:image/jpeg;base64,"));
    assert!(html.contains("Knee flexion"));
    // Self-contained: nothing fetched from the network.
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src=\"//"));

    // The pose run's keypoints in the exports.
    let run = "1";
    let csv = peregrine(&["export", run, "--db", s(&db), "--format", "csv"], &[]);
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    let mut rows = csv.stdout.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(header.len(), 10 + 17 * 3);
    assert_eq!(&header[10..13], ["nose_x", "nose_y", "nose_conf"]);
    assert_eq!(header[header.len() - 1], "right_ankle_conf");
    let first: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(first.len(), header.len());
    assert!(first[10].parse::<f32>().is_ok());
    let coco = peregrine(&["export", run, "--db", s(&db), "--format", "coco"], &[]);
    assert_eq!(coco.code, 0, "{}", coco.stderr);
    let v: Value = serde_json::from_str(&coco.stdout).unwrap();
    let cat = &v["categories"][0];
    assert_eq!(cat["name"], "person");
    assert_eq!(cat["keypoints"].as_array().unwrap().len(), 17);
    assert_eq!(cat["skeleton"].as_array().unwrap().len(), 19);
    let anns = v["annotations"].as_array().unwrap();
    assert!(anns.len() > 100);
    assert_eq!(anns[0]["keypoints"].as_array().unwrap().len(), 51);
    let image_ids: std::collections::HashSet<u64> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert!(anns
        .iter()
        .all(|a| image_ids.contains(&a["image_id"].as_u64().unwrap())));
}

#[test]
fn livingroom_steps_and_cadence() {
    let dir = tempfile::tempdir().unwrap();
    check_clip(&LIVINGROOM, &dir.path().join("g.db"), &[]);
}

#[test]
fn bad_input_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    // Missing video.
    let (code, lines, err) = gait_json("/nonexistent/walk.mp4", &db, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/walk.mp4"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(lines.len(), 1);
    assert!(lines[0]["error"].is_string());
    // A detector without keypoints.
    let v = video(WHITEWALL.name);
    let m = model("yolox_nano.onnx");
    let r = peregrine(
        &["gait", s(&v), "--model", s(&m), "--db", s(&db), "-q"],
        &[],
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not a pose model"), "{}", r.stderr);
    assert!(r.stderr.contains("yolox_nano.onnx"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    // Bad mode and height.
    let (code, _, err) = gait_json(s(&v), &db, &["--mode", "turbo"]);
    assert_ne!(code, 0);
    assert!(err.contains("--mode"), "{err}");
    let (code, _, err) = gait_json(s(&v), &db, &["--height", "175"]);
    assert_ne!(code, 0);
    assert!(err.contains("--height"), "{err}");
}
