//! Every bad input gets a one-line error naming the input and the cause, a
//! non-zero exit, no panic, and leaves stored results untouched.

mod common;

use std::path::Path;

use common::*;

/// Encodes a minimal valid ONNX model: one Identity node from `x` to `y`,
/// both float tensors of `shape`. Hand-written protobuf, so the test needs
/// no Python.
fn identity_onnx(shape: &[i64]) -> Vec<u8> {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
    }
    fn field_varint(field: u32, v: u64, out: &mut Vec<u8>) {
        varint((field << 3) as u64, out);
        varint(v, out);
    }
    fn field_bytes(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
        varint(((field << 3) | 2) as u64, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }
    let value_info = |name: &str| {
        let mut shape_msg = Vec::new();
        for &d in shape {
            let mut dim = Vec::new();
            field_varint(1, d as u64, &mut dim);
            field_bytes(1, &dim, &mut shape_msg);
        }
        let mut tensor = Vec::new();
        field_varint(1, 1, &mut tensor); // FLOAT
        field_bytes(2, &shape_msg, &mut tensor);
        let mut ty = Vec::new();
        field_bytes(1, &tensor, &mut ty);
        let mut vi = Vec::new();
        field_bytes(1, name.as_bytes(), &mut vi);
        field_bytes(2, &ty, &mut vi);
        vi
    };
    let mut node = Vec::new();
    field_bytes(1, b"x", &mut node);
    field_bytes(2, b"y", &mut node);
    field_bytes(4, b"Identity", &mut node);
    let mut graph = Vec::new();
    field_bytes(1, &node, &mut graph);
    field_bytes(2, b"g", &mut graph);
    field_bytes(11, &value_info("x"), &mut graph);
    field_bytes(12, &value_info("y"), &mut graph);
    let mut opset = Vec::new();
    field_bytes(1, b"", &mut opset);
    field_varint(2, 13, &mut opset);
    let mut model = Vec::new();
    field_varint(1, 8, &mut model); // ir_version
    field_bytes(7, &graph, &mut model);
    field_bytes(8, &opset, &mut model);
    model
}

fn assert_one_line_error(r: &Run, input: &str, cause: &str) {
    assert_ne!(r.code, 0, "exit code for {input}: {}", r.stderr);
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("peregrine:"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line expected, got: {}", r.stderr);
    assert!(
        lines[0].contains(input),
        "error names {input:?}: {}",
        lines[0]
    );
    assert!(
        lines[0].contains(cause),
        "error says {cause:?}: {}",
        lines[0]
    );
}

struct Seeded {
    dir: tempfile::TempDir,
    db: String,
    export: String,
}

/// A database with one good run, to check bad inputs never touch it.
fn seeded() -> Seeded {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db").to_str().unwrap().to_string();
    let m = model("yolox_nano.onnx");
    let v = video("traffic_intersection_cctv_640x480.mp4");
    let r = peregrine(
        &[
            "analyze",
            s(&v),
            "--model",
            s(&m),
            "--db",
            &db,
            "--end",
            "0.5",
            "-q",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let export = peregrine(&["export", "1", "--db", &db], &[]).stdout;
    assert!(export.lines().count() > 10);
    Seeded { dir, db, export }
}

impl Seeded {
    fn analyze(
        &self,
        input: &Path,
        model_path: &Path,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Run {
        let mut args = vec![
            "analyze",
            s(input),
            "--model",
            s(model_path),
            "--db",
            &self.db,
            "-q",
        ];
        args.extend_from_slice(extra);
        peregrine(&args, envs)
    }

    fn assert_untouched(&self) {
        let runs = peregrine(&["runs", "--db", &self.db, "--json"], &[]);
        let runs: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
        assert_eq!(runs[0]["status"], "complete");
        assert_eq!(
            peregrine(&["export", "1", "--db", &self.db], &[]).stdout,
            self.export
        );
    }
}

#[test]
fn bad_inputs_fail_cleanly_and_leave_results_untouched() {
    let seed = seeded();
    let dir = seed.dir.path();
    let m = model("yolox_nano.onnx");

    let missing = dir.join("missing.mp4");
    let r = seed.analyze(&missing, &m, &[], &[]);
    assert_one_line_error(&r, "missing.mp4", "file not found");

    let empty_dir = dir.join("empty_dir");
    std::fs::create_dir(&empty_dir).unwrap();
    std::fs::write(empty_dir.join("readme.txt"), "no videos here").unwrap();
    let r = seed.analyze(&empty_dir, &m, &[], &[]);
    assert_one_line_error(&r, "empty_dir", "no video files found");

    let zero = dir.join("zero.mp4");
    std::fs::write(&zero, b"").unwrap();
    let r = seed.analyze(&zero, &m, &[], &[]);
    assert_one_line_error(&r, "zero.mp4", "file is empty");

    let text = dir.join("notes.mp4");
    std::fs::write(&text, "this is a text file, not a video\n".repeat(100)).unwrap();
    let r = seed.analyze(&text, &m, &[], &[]);
    assert_one_line_error(&r, "notes.mp4", "not a readable video");

    let audio = dir.join("audio.m4a");
    ffmpeg(&["-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", s(&audio)]);
    let r = seed.analyze(&audio, &m, &[], &[]);
    assert_one_line_error(&r, "audio.m4a", "no video stream");

    let v = video("traffic_intersection_cctv_640x480.mp4");
    let junk_model = dir.join("junk.onnx");
    std::fs::write(&junk_model, b"\x08\x07garbage that is not a protobuf model").unwrap();
    let r = seed.analyze(&v, &junk_model, &[], &[]);
    assert_one_line_error(&r, "junk.onnx", "not a valid ONNX model");

    let odd_model = dir.join("identity.onnx");
    std::fs::write(&odd_model, identity_onnx(&[1, 3, 32, 32])).unwrap();
    let r = seed.analyze(&v, &odd_model, &[], &[]);
    assert_one_line_error(&r, "identity.onnx", "fit no known model family");

    let r = seed.analyze(
        &v,
        &m,
        &[],
        &[("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so.1.31.1")],
    );
    assert_one_line_error(&r, "libonnxruntime", "ONNX Runtime library not found");
    assert!(
        r.stderr.contains("scripts/setup.sh"),
        "says how to install: {}",
        r.stderr
    );

    let r = peregrine(
        &[
            "analyze",
            s(&v),
            "--model",
            s(&m),
            "--db",
            "/nonexistent-dir/p.db",
            "-q",
        ],
        &[],
    );
    assert_one_line_error(&r, "/nonexistent-dir/p.db", "cannot open database");

    seed.assert_untouched();
}

#[test]
fn locked_database_waits_then_fails_clearly() {
    let seed = seeded();
    let holder = rusqlite::Connection::open(&seed.db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let v = video("traffic_highway_cctv_320x240.avi");
    let started = std::time::Instant::now();
    let r = seed.analyze(
        &v,
        &model("yolox_nano.onnx"),
        &["--db-timeout", "0.5", "--end", "0.2"],
        &[],
    );
    assert_one_line_error(&r, "p.db", "locked by another writer");
    assert!(started.elapsed().as_secs_f64() < 30.0);
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    seed.assert_untouched();
}

#[test]
fn truncated_file_keeps_what_decodes_and_reports_loss() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("faststart.mp4");
    ffmpeg(&[
        "-i",
        s(&video("traffic_intersection_cctv_640x480.mp4")),
        "-t",
        "4",
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        s(&full),
    ]);
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let db = dir.path().join("p.db");
    let r = peregrine(
        &[
            "analyze",
            s(&cut),
            "--model",
            s(&model("yolox_nano.onnx")),
            "--db",
            s(&db),
            "--json",
            "-q",
        ],
        &[],
    );
    assert_eq!(r.code, 3, "damaged input exits 3: {}", r.stderr);
    let j = &r.json_lines()[0];
    assert_eq!(j["status"], "partial");
    let frames = j["frames"].as_u64().unwrap();
    let lost = j["frames_lost"].as_u64().unwrap();
    assert!(frames > 30 && lost > 20, "{j}");
    // 4 s at 30 fps: decoded + lost is the whole clip, within a GOP.
    assert!((frames + lost).abs_diff(120) <= 2, "{frames} + {lost}");
    assert!(
        r.stderr.contains("cut.mp4") && r.stderr.contains("truncated"),
        "{}",
        r.stderr
    );
    let export = peregrine(&["export", "1", "--db", s(&db)], &[]);
    assert!(
        export.stdout.lines().count() > 0,
        "kept detections are exported"
    );
}

/// Chunks of garbage in an AVI: the damaged frames are skipped, counted,
/// and the run is partial (exit 3), with the rest analysed.
#[test]
fn corrupt_packets_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read(video("traffic_highway_cctv_320x240.avi")).unwrap();
    let mut bytes = src.clone();
    let n = bytes.len();
    for k in 0..5 {
        let at = n * (3 + k) / 10;
        for (i, b) in bytes[at..at + 4000].iter_mut().enumerate() {
            *b = ((i * 37 + k) % 256) as u8;
        }
    }
    let bad = dir.path().join("corrupt.avi");
    std::fs::write(&bad, &bytes).unwrap();
    let db = dir.path().join("p.db");
    let r = peregrine(
        &[
            "analyze",
            s(&bad),
            "--model",
            s(&model("yolox_nano.onnx")),
            "--db",
            s(&db),
            "--json",
            "-q",
            "--every",
            "2",
        ],
        &[],
    );
    assert_eq!(r.code, 3, "damaged input exits 3: {}", r.stderr);
    let j = &r.json_lines()[0];
    assert_eq!(j["status"], "partial");
    let damage = j["corrupt_packets"].as_u64().unwrap()
        + j["decode_errors"].as_u64().unwrap()
        + j["corrupt_frames"].as_u64().unwrap();
    assert!(damage > 0, "damage is counted: {j}");
    assert!(j["frames_lost"].as_u64().unwrap() > 0, "{j}");
    assert!(
        r.stderr.contains("corrupt.avi") && r.stderr.contains("damaged"),
        "{}",
        r.stderr
    );
    assert!(
        j["frames"].as_u64().unwrap() > 300,
        "decoding continued past the damage: {j}"
    );
}

/// Regression: 200 KB of garbage in the middle of an MP4 was reported as a
/// clean run (`complete`, 0 frames lost) while 127 frames were missing and
/// every later frame index was off by as many.
#[test]
fn garbage_in_the_middle_is_partial_and_keeps_true_frame_indices() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(video("traffic_intersection_cctv_640x480.mp4")).unwrap();
    let at = bytes.len() / 2;
    let mut x: u32 = 0x9e37_79b9;
    for b in &mut bytes[at..at + 200_000] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let bad = dir.path().join("damaged.mp4");
    std::fs::write(&bad, &bytes).unwrap();
    // The frames FFmpeg itself decodes from the damaged file.
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "quiet", "-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&bad)
        .output()
        .unwrap();
    let decodable: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let missing = 909 - decodable;
    assert!(missing > 30, "the garbage destroyed frames: {missing}");
    let db = dir.path().join("p.db");
    let r = analyze(&bad, &db, &["--every", "3", "--no-track"]);
    assert_eq!(r.code, 3, "damaged input exits 3: {}", r.stderr);
    let j = &r.json_lines()[0];
    assert_eq!(j["status"], "partial", "{j}");
    let lost = j["frames_lost"].as_u64().unwrap();
    assert!(
        lost.abs_diff(missing) <= 2,
        "{lost} lost, {missing} missing"
    );
    assert!(r.stderr.contains("damaged.mp4") && r.stderr.contains("lost"));
    let run = j["run_id"].as_u64().unwrap().to_string();
    let rows = peregrine(&["export", &run, "--db", s(&db)], &[]).json_lines();
    let mut last = 0;
    for row in &rows {
        let (frame, t) = (row["frame"].as_u64().unwrap(), row["t"].as_f64().unwrap());
        assert_eq!(frame, (t * 30.0).round() as u64, "{row}");
        last = last.max(frame);
    }
    assert!(last >= 890, "frames after the gap keep their index: {last}");
}

/// Regression: a single empty input with `--json` printed no JSON object
/// (the error ended the command before any input was reported).
#[test]
fn single_empty_input_with_json_prints_its_failure() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let db = dir.path().join("p.db");
    let r = peregrine(
        &[
            "analyze",
            s(&empty),
            "--model",
            s(&model("yolox_nano.onnx")),
            "--db",
            s(&db),
            "--json",
            "-q",
        ],
        &[],
    );
    assert_one_line_error(&r, "empty.mp4", "file is empty");
    let lines = r.json_lines();
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    assert_eq!(lines[0]["status"], "failed");
    assert_eq!(lines[0]["input"], s(&empty));
    assert!(
        lines[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("file is empty")),
        "{}",
        lines[0]
    );

    // Among good inputs, it is one report of several.
    let v = video("traffic_highway_cctv_320x240.avi");
    let r = peregrine(
        &[
            "analyze",
            s(&empty),
            s(&v),
            "--model",
            s(&model("yolox_nano.onnx")),
            "--db",
            s(&db),
            "--json",
            "-q",
            "--end",
            "0.2",
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let statuses: Vec<String> = r
        .json_lines()
        .iter()
        .map(|l| l["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["failed", "complete"]);
}
