//! Annotated video: same frames, size and duration as the source; pixels
//! change where boxes are drawn and nowhere else.

mod common;

use std::process::Command;

use common::*;

fn probe(path: &std::path::Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_type,codec_name,width,height,nb_read_frames,duration",
            "-of",
            "json",
            s(path),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stream<'a>(p: &'a serde_json::Value, kind: &str) -> Option<&'a serde_json::Value> {
    p["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind)
}

fn rgb_frame(path: &std::path::Path, n: u64) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-i",
            s(path),
            "-vf",
            &format!("select=eq(n\\,{n})"),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn rendered_video_matches_source_and_marks_only_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let src = video("gait_sideon_whitewall_640x352.mp4");
    let out = dir.path().join("out.mp4");
    let snaps = dir.path().join("snaps");
    let r = peregrine(
        &[
            "analyze",
            s(&src),
            "--model",
            s(&model("yolox_nano.onnx")),
            "--db",
            s(&db),
            "-q",
            "--classes",
            "person",
            "--no-track",
            "--render",
            s(&out),
            "--snapshots",
            s(&snaps),
            "--at",
            "1,2",
            "--crf",
            "0",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    let (a, b) = (probe(&src), probe(&out));
    let (va, vb) = (stream(&a, "video").unwrap(), stream(&b, "video").unwrap());
    assert_eq!(vb["codec_name"], "h264");
    assert_eq!((&va["width"], &va["height"]), (&vb["width"], &vb["height"]));
    assert_eq!(va["nb_read_frames"], vb["nb_read_frames"]);
    let dur = |v: &serde_json::Value| v["duration"].as_str().unwrap().parse::<f64>().unwrap();
    assert!(
        (dur(va) - dur(vb)).abs() < 0.05,
        "{} vs {}",
        dur(va),
        dur(vb)
    );
    assert!(stream(&b, "audio").is_some(), "audio stream copied");
    assert_eq!(std::fs::read_dir(&snaps).unwrap().count(), 2, "two stills");

    let rows = peregrine(&["export", "1", "--db", s(&db)], &[]).json_lines();
    let (w, h) = (640usize, 352usize);
    let mut checked = 0;
    for n in [20u64, 70, 120] {
        let boxes: Vec<[f64; 4]> = rows
            .iter()
            .filter(|r| r["frame"].as_u64() == Some(n))
            .map(|r| ["x1", "y1", "x2", "y2"].map(|k| r[k].as_f64().unwrap()))
            .collect();
        if boxes.is_empty() {
            continue;
        }
        checked += 1;
        let (fa, fb) = (rgb_frame(&src, n), rgb_frame(&out, n));
        assert_eq!(fa.len(), w * h * 3);
        let diff = |x: usize, y: usize| -> f64 {
            let o = (y * w + x) * 3;
            (0..3)
                .map(|c| (fa[o + c] as f64 - fb[o + c] as f64).abs())
                .sum::<f64>()
                / 3.0
        };
        // Far from every box (and its label tag above it): unchanged up to
        // colour-conversion rounding.
        let near = |x: usize, y: usize| {
            boxes.iter().any(|b| {
                let (x, y) = (x as f64, y as f64);
                x > b[0] - 8.0 && x < b[2] + 8.0 && y > b[1] - 20.0 && y < b[3] + 8.0
            })
        };
        let (mut far_sum, mut far_n) = (0.0, 0);
        for y in (0..h).step_by(2) {
            for x in (0..w).step_by(2) {
                if !near(x, y) {
                    far_sum += diff(x, y);
                    far_n += 1;
                }
            }
        }
        assert!(far_n > 10_000);
        assert!(
            far_sum / (far_n as f64) < 2.0,
            "frame {n}: background changed by {}",
            far_sum / far_n as f64
        );
        // On each box's left edge: clearly changed.
        for b in &boxes {
            let x = b[0].round() as usize;
            let ys = (b[1].round() as usize + 4)..(b[3].round() as usize).min(h).saturating_sub(4);
            let n_edge = ys.len().max(1) as f64;
            let edge: f64 = ys.map(|y| diff(x.min(w - 1), y)).sum::<f64>() / n_edge;
            assert!(
                edge > 30.0,
                "frame {n}: box edge at x={x} barely changed ({edge})"
            );
        }
    }
    assert!(checked >= 2, "the walker is detected in the checked frames");
}

#[test]
fn render_command_uses_stored_results_and_rejects_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let src = video("traffic_highway_cctv_320x240.avi");
    let r = peregrine(
        &[
            "analyze",
            s(&src),
            "--model",
            s(&model("yolox_nano.onnx")),
            "--db",
            s(&db),
            "-q",
            "--end",
            "2",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = dir.path().join("a.mp4");
    let r = peregrine(&["render", "1", "--db", s(&db), "-o", s(&out)], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = stream(&probe(&out), "video").unwrap().clone();
    assert_eq!(v["width"], 320);
    // The whole source is rendered, detections where the run analysed.
    assert!(
        v["nb_read_frames"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 700
    );

    let r = peregrine(&["render", "99", "--db", s(&db), "-o", s(&out)], &[]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("run 99 not found"), "{}", r.stderr);
    let r = peregrine(&["render", "1", "--db", s(&db)], &[]);
    assert!(r.stderr.contains("nothing to render"), "{}", r.stderr);
    let bad_out = dir.path().join("no-such-dir/x.mp4");
    let r = peregrine(&["render", "1", "--db", s(&db), "-o", s(&bad_out)], &[]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("x.mp4"), "{}", r.stderr);
    assert!(!bad_out.exists());
}

#[test]
fn single_annotated_frame_as_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let src = video("gait_sideon_whitewall_640x352.mp4");
    let r = peregrine(
        &[
            "analyze",
            s(&src),
            "--model",
            s(&model("yolox_nano.onnx")),
            "--db",
            s(&db),
            "-q",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let store = peregrine_store::Results::Sqlite(peregrine_store::Store::open(&db).unwrap());
    let labels = peregrine_core::Labels::coco();
    let jpg = peregrine_render::render_frame_jpeg(&store, 1, 100, &labels).unwrap();
    assert_eq!(&jpg[..2], &[0xFF, 0xD8], "JPEG start of image");
    let path = dir.path().join("f.jpg");
    std::fs::write(&path, &jpg).unwrap();
    let v = stream(&probe(&path), "video").unwrap().clone();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(640), Some(352))
    );
    let err = peregrine_render::render_frame_jpeg(&store, 1, 100_000, &labels).unwrap_err();
    assert!(err.to_string().contains("past the end"), "{err}");
}
