//! Fixtures shared by the eval crate's integration tests.

use std::path::PathBuf;

use peregrine_eval::{CocoData, CocoDet, CocoGt, FileRole, MotFile};

/// A py-motmetrics sample file (`tests/fixtures/motmetrics-data`).
pub fn tud_path(seq: &str, file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/motmetrics-data")
        .join(seq)
        .join(file)
}

/// `bench/eval/common.py::coco_multiclass`, rebuilt from the TUD files:
/// TUD-Stadtmitte as three categories, some crowd boxes, and an image
/// with over 100 detections.
pub fn coco_multiclass() -> CocoData {
    let read = |file, role| MotFile::read(&tud_path("TUD-Stadtmitte", file), role).unwrap();
    let gt = read("gt.txt", FileRole::GroundTruth);
    let dt = read("test.txt", FileRole::Prediction);
    let n = gt.max_frame().max(dt.max_frame()) as i64;
    let mut d = CocoData {
        images: (1..=n).collect(),
        categories: (1..=3).map(|c| (c, format!("class{c}"))).collect(),
        ..CocoData::default()
    };
    for r in &gt.rows {
        d.gt.push(CocoGt {
            image_id: r.frame as i64,
            category_id: r.id % 3 + 1,
            bbox: [r.x, r.y, r.w, r.h],
            area: r.w * r.h,
            iscrowd: r.id % 11 == 0,
        });
    }
    for r in &dt.rows {
        d.dets.push(CocoDet {
            image_id: r.frame as i64,
            category_id: r.id % 3 + 1,
            bbox: [r.x, r.y, r.w, r.h],
            score: ((7 * r.frame as i64 + 13 * r.id) % 100) as f64 / 100.0,
        });
    }
    for k in 0..120 {
        d.dets.push(CocoDet {
            image_id: 1,
            category_id: 1,
            bbox: [5.0 * k as f64, 0.0, 20.0, 40.0],
            score: 0.001 * k as f64,
        });
    }
    d
}
