//! Peregrine's detectors against Python onnxruntime references
//! (`tests/fixtures/make_reference.py`): same decoded frame, same model
//! input pixels, detections within 1 px and 1e-3 in score.

use std::path::PathBuf;

use peregrine_core::{BBox, CanvasLayout, ChannelOrder, Detection, Letterbox, ResizeMode};
use peregrine_infer::{fill_tensor, DetectorConfig, Model, SessionConfig};
use peregrine_media::{Canvas, Decoder, DecoderOptions, InputKind, InputSpec, LetterboxScaler};
use serde_json::Value;

fn data_dir() -> PathBuf {
    std::env::var_os("PEREGRINE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

fn fixture(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn fnv1a(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in data {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// Decodes frame `n` of a video to packed RGB at its own size.
fn decode_rgb(video: &str, n: u64) -> Canvas {
    let spec = InputSpec {
        path: data_dir().join("videos").join(video),
        kind: InputKind::File,
    };
    let mut dec = Decoder::open(&spec, &DecoderOptions::default()).unwrap();
    let mut frame = peregrine_media::ffmpeg::frame::Video::empty();
    loop {
        let meta = dec.next_frame(&mut frame).unwrap().expect("frame exists");
        if meta.index == n {
            break;
        }
    }
    let (w, h) = (frame.width(), frame.height());
    let mut scaler = LetterboxScaler::new(CanvasLayout {
        width: w,
        height: h,
        order: ChannelOrder::Rgb,
        resize: ResizeMode::Stretch,
    });
    let mut canvas = Canvas::new(w, h);
    scaler.run(&frame, &mut canvas).unwrap();
    canvas
}

fn u(v: &Value) -> usize {
    v.as_u64().unwrap() as usize
}

/// Builds the model input exactly as the reference did: the crop placed on a
/// pad-114 canvas, channels swapped for BGR models.
fn model_canvas(fx: &Value, size: usize) -> Vec<u8> {
    let frame = decode_rgb(fx["video"].as_str().unwrap(), fx["frame"].as_u64().unwrap());
    assert_eq!(
        fnv1a(&frame.data),
        fx["frame_fnv1a"].as_str().unwrap(),
        "decoded frame differs from the one the reference used"
    );
    let c = fx["crop"].as_array().unwrap();
    let (cx, cy, cw, ch) = (u(&c[0]), u(&c[1]), u(&c[2]), u(&c[3]));
    let p = fx["place"].as_array().unwrap();
    let (ox, oy) = (u(&p[0]), u(&p[1]));
    let bgr = fx["bgr"].as_bool().unwrap();
    let fw = frame.width as usize;
    let mut out = vec![114u8; size * size * 3];
    for y in 0..ch {
        for x in 0..cw {
            let s = ((cy + y) * fw + cx + x) * 3;
            let d = ((oy + y) * size + ox + x) * 3;
            let px = &frame.data[s..s + 3];
            let px = if bgr {
                [px[2], px[1], px[0]]
            } else {
                [px[0], px[1], px[2]]
            };
            out[d..d + 3].copy_from_slice(&px);
        }
    }
    out
}

fn identity(size: u32) -> Letterbox {
    Letterbox {
        scale_x: 1.0,
        scale_y: 1.0,
        offset_x: 0,
        offset_y: 0,
        content_width: size,
        content_height: size,
        source_width: size,
        source_height: size,
    }
}

fn assert_matches(name: &str, fx: &Value, got: &[Detection]) {
    let want = fx["detections"].as_array().unwrap();
    assert!(!want.is_empty(), "{name}: reference has no detections");
    assert_eq!(got.len(), want.len(), "{name}: detection count");
    let mut used = vec![false; got.len()];
    for w in want {
        let wb = w["box"].as_array().unwrap();
        let wb = BBox::new(
            wb[0].as_f64().unwrap() as f32,
            wb[1].as_f64().unwrap() as f32,
            wb[2].as_f64().unwrap() as f32,
            wb[3].as_f64().unwrap() as f32,
        );
        let ws = w["score"].as_f64().unwrap() as f32;
        let wc = w["cls"].as_u64().unwrap() as u16;
        let found = got.iter().enumerate().position(|(i, g)| {
            !used[i]
                && g.class_id == wc
                && (g.score - ws).abs() < 1e-3
                && (g.bbox.x1 - wb.x1).abs() < 1.0
                && (g.bbox.y1 - wb.y1).abs() < 1.0
                && (g.bbox.x2 - wb.x2).abs() < 1.0
                && (g.bbox.y2 - wb.y2).abs() < 1.0
        });
        let i = found.unwrap_or_else(|| panic!("{name}: no match for reference {w}"));
        used[i] = true;
        if let Some(kps) = w.get("keypoints").and_then(|k| k.as_array()) {
            assert_eq!(got[i].keypoints.len(), kps.len());
            for (g, k) in got[i].keypoints.iter().zip(kps) {
                let k: Vec<f32> = k
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect();
                assert!(
                    (g.x - k[0]).abs() < 1.0 && (g.y - k[1]).abs() < 1.0,
                    "{name}: keypoint"
                );
                assert!((g.score - k[2]).abs() < 1e-3, "{name}: keypoint score");
            }
        }
    }
}

fn check(name: &str, model_file: &str, batch: usize) {
    let fx = fixture(name);
    let model = Model::load(&data_dir().join("models").join(model_file), None).unwrap();
    let size = model.spec().input_width;
    let canvas = model_canvas(&fx, size as usize);
    let cfg = DetectorConfig {
        conf: fx["conf"].as_f64().unwrap() as f32,
        iou: fx["iou"].as_f64().unwrap() as f32,
        ..Default::default()
    };
    let mut det = model
        .detector(
            &SessionConfig {
                intra_threads: 1,
                spin: false,
            },
            batch,
        )
        .unwrap();
    let filter = model.filter(cfg);
    let norm = model.spec().normalization();
    let n = det.max_batch().min(batch);
    for i in 0..n {
        fill_tensor(&canvas, &norm, det.input_slot(i));
    }
    let lbs = vec![identity(size); n];
    let mut out = vec![Vec::new(); n];
    det.run(&lbs, &vec![&filter; n], &mut out).unwrap();
    for (i, got) in out.iter().enumerate() {
        assert_matches(&format!("{name}[{i}]"), &fx, got);
    }
}

#[test]
fn yolox_matches_python_reference() {
    check("yolox", "yolox_nano.onnx", 1);
}

#[test]
fn yolox_dynamic_batch_matches_single_image_reference() {
    check("yolox", "yolox_nano_dynbatch.onnx", 3);
}

#[test]
fn nanodet_matches_python_reference() {
    check("nanodet", "nanodet_m_416.onnx", 1);
}

#[test]
fn ultralytics_pose_matches_python_reference() {
    check("ultralytics_pose", "yolo11n_pose_int8.onnx", 1);
}
