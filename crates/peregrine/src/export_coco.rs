//! `peregrine export --format coco`: a run's detections as a COCO
//! keypoint annotation file.
//!
//! Written in two streaming passes over the stored rows (images, then
//! annotations), so memory does not grow with the run. `images` are the
//! frames with at least one exported detection (`id` = frame + 1, with
//! `frame` and `t` added); each annotation carries the box, the score,
//! the track id and, for pose runs, `keypoints` as COCO triples
//! (x, y, v) with v = 2 (labelled and visible) for a confidence of at
//! least 0.5, v = 0 with x = y = 0 below, `num_keypoints`, and the raw
//! confidences in `keypoint_scores`.

use std::io::Write;

use anyhow::Result;
use peregrine_core::{COCO_KEYPOINTS, COCO_SKELETON};
use peregrine_store::{Results, RunRecord};
use serde_json::json;

/// Keypoints under this confidence are written as not labelled (v = 0).
const VISIBLE: f32 = 0.5;

pub fn write_coco(
    store: &Results,
    run: &RunRecord,
    names: &[String],
    classes: Option<&[u16]>,
    out: &mut dyn Write,
) -> Result<()> {
    let keep = |c: u16| classes.is_none_or(|k| k.contains(&c));
    writeln!(
        out,
        "{{\"info\":{},",
        json!({
            "description": format!("peregrine run {}", run.id),
            "video": run.video_path,
            "model": run.model_path,
            "fps": run.video_fps,
        })
    )?;
    let mut used = vec![false; names.len().max(1)];
    write!(out, "\"images\":[")?;
    let mut last: Option<u64> = None;
    let mut first = true;
    store.for_each_detection(run.id, |d| -> Result<()> {
        if !keep(d.class_id) {
            return Ok(());
        }
        if let Some(u) = used.get_mut(d.class_id as usize) {
            *u = true;
        }
        if last == Some(d.frame) {
            return Ok(());
        }
        last = Some(d.frame);
        let img = json!({
            "id": d.frame + 1,
            "file_name": format!("frame_{:06}.jpg", d.frame),
            "width": run.width,
            "height": run.height,
            "frame": d.frame,
            "t": d.t,
        });
        write!(out, "{}{img}", if first { "\n" } else { ",\n" })?;
        first = false;
        Ok(())
    })??;
    write!(out, "],\n\"annotations\":[")?;
    let mut id = 0u64;
    store.for_each_detection(run.id, |d| -> Result<()> {
        if !keep(d.class_id) {
            return Ok(());
        }
        id += 1;
        let b = &d.bbox;
        let (w, h) = ((b.x2 - b.x1).max(0.0), (b.y2 - b.y1).max(0.0));
        let mut a = json!({
            "id": id,
            "image_id": d.frame + 1,
            "category_id": d.class_id as u32 + 1,
            "bbox": [b.x1, b.y1, w, h],
            "area": w * h,
            "iscrowd": 0,
            "score": d.score,
            "track_id": d.track_id,
        });
        if !d.keypoints.is_empty() {
            let mut kp = Vec::with_capacity(d.keypoints.len() * 3);
            let mut n = 0;
            for k in &d.keypoints {
                if k.score >= VISIBLE {
                    kp.extend([k.x, k.y, 2.0]);
                    n += 1;
                } else {
                    kp.extend([0.0, 0.0, 0.0]);
                }
            }
            let scores: Vec<f32> = d.keypoints.iter().map(|k| k.score).collect();
            if let Some(o) = a.as_object_mut() {
                o.insert("keypoints".into(), json!(kp));
                o.insert("num_keypoints".into(), json!(n));
                o.insert("keypoint_scores".into(), json!(scores));
            }
        }
        write!(out, "{}{a}", if id == 1 { "\n" } else { ",\n" })?;
        Ok(())
    })??;
    write!(out, "],\n\"categories\":[")?;
    let mut first = true;
    for (i, name) in names.iter().enumerate() {
        if !used.get(i).copied().unwrap_or(false) {
            continue;
        }
        let mut c = json!({"id": i + 1, "name": name, "supercategory": name});
        if name == "person" {
            if let Some(o) = c.as_object_mut() {
                o.insert("keypoints".into(), json!(COCO_KEYPOINTS));
                let sk: Vec<[usize; 2]> =
                    COCO_SKELETON.iter().map(|&(a, b)| [a + 1, b + 1]).collect();
                o.insert("skeleton".into(), json!(sk));
            }
        }
        write!(out, "{}{c}", if first { "\n" } else { ",\n" })?;
        first = false;
    }
    writeln!(out, "]}}")?;
    Ok(())
}
