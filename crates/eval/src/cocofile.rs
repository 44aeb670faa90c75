//! Reading COCO JSON (ground truth and detection results) and MOTChallenge
//! boxes as a detection data set.

use std::path::Path;

use serde::Deserialize;

use crate::coco::{CocoData, CocoDet, CocoGt};
use crate::motfile::MotFile;
use crate::prepare::Benchmark;
use crate::EvalError;

#[derive(Deserialize)]
struct GtFile {
    images: Vec<ImageEntry>,
    #[serde(default)]
    annotations: Vec<AnnEntry>,
    categories: Vec<CatEntry>,
}

#[derive(Deserialize)]
struct ImageEntry {
    id: i64,
}

#[derive(Deserialize)]
struct CatEntry {
    id: i64,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct AnnEntry {
    image_id: i64,
    category_id: i64,
    bbox: Vec<f64>,
    #[serde(default)]
    area: Option<f64>,
    #[serde(default)]
    iscrowd: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct DetEntry {
    image_id: i64,
    category_id: i64,
    bbox: Vec<f64>,
    score: f64,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, EvalError> {
    let text = std::fs::read(path).map_err(|e| EvalError::io(path, e))?;
    parse_json(path, &text)
}

fn parse_json<T: for<'de> Deserialize<'de>>(path: &Path, text: &[u8]) -> Result<T, EvalError> {
    serde_json::from_slice(text).map_err(|source| EvalError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn check_box(path: &Path, what: &str, i: usize, b: &[f64]) -> Result<[f64; 4], EvalError> {
    let b: [f64; 4] = b.try_into().map_err(|_| {
        EvalError::invalid(
            path,
            format!("{what} {i}: bbox has {} numbers, expected 4", b.len()),
        )
    })?;
    if b.iter().any(|v| !v.is_finite()) {
        return Err(EvalError::invalid(
            path,
            format!("{what} {i}: bbox is not finite: {b:?}"),
        ));
    }
    if b[2] < 0.0 || b[3] < 0.0 {
        return Err(EvalError::invalid(
            path,
            format!("{what} {i}: negative box size {b:?}"),
        ));
    }
    Ok(b)
}

/// Reads a COCO ground-truth file (`images`, `annotations`, `categories`).
/// `area` defaults to `w * h` when absent; `iscrowd` to false.
pub fn read_coco_gt(path: &Path) -> Result<CocoData, EvalError> {
    coco_gt(path, read_json(path)?)
}

/// [`read_coco_gt`] of file contents; `path` is only used in error messages.
pub fn parse_coco_gt(path: &Path, text: &[u8]) -> Result<CocoData, EvalError> {
    coco_gt(path, parse_json(path, text)?)
}

fn coco_gt(path: &Path, f: GtFile) -> Result<CocoData, EvalError> {
    let mut data = CocoData {
        images: f.images.iter().map(|i| i.id).collect(),
        categories: f
            .categories
            .iter()
            .map(|c| (c.id, c.name.clone().unwrap_or_else(|| c.id.to_string())))
            .collect(),
        ..CocoData::default()
    };
    if data.images.is_empty() {
        return Err(EvalError::invalid(path, "ground truth has no images"));
    }
    for (i, a) in f.annotations.iter().enumerate() {
        let bbox = check_box(path, "annotation", i, &a.bbox)?;
        if !data.images.contains(&a.image_id) {
            return Err(EvalError::invalid(
                path,
                format!("annotation {i}: image {} is not in images", a.image_id),
            ));
        }
        let iscrowd = match &a.iscrowd {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::Number(n)) => n.as_f64().is_some_and(|v| v != 0.0),
            Some(other) => {
                return Err(EvalError::invalid(
                    path,
                    format!("annotation {i}: iscrowd {other}"),
                ));
            }
        };
        let area = a.area.unwrap_or(bbox[2] * bbox[3]);
        if !area.is_finite() {
            return Err(EvalError::invalid(
                path,
                format!("annotation {i}: area is {area}"),
            ));
        }
        data.gt.push(CocoGt {
            image_id: a.image_id,
            category_id: a.category_id,
            bbox,
            area,
            iscrowd,
        });
    }
    Ok(data)
}

/// Reads COCO detection results (a JSON array of `image_id, category_id,
/// bbox, score`) into `data`. Results on images that the ground truth does
/// not list are an error (pycocotools asserts the same); results of
/// categories it does not list are not scored.
pub fn read_coco_dets(path: &Path, data: &mut CocoData) -> Result<(), EvalError> {
    coco_dets(path, read_json(path)?, data)
}

/// [`read_coco_dets`] of file contents; `path` is only used in error
/// messages.
pub fn parse_coco_dets(path: &Path, text: &[u8], data: &mut CocoData) -> Result<(), EvalError> {
    coco_dets(path, parse_json(path, text)?, data)
}

fn coco_dets(path: &Path, dets: Vec<DetEntry>, data: &mut CocoData) -> Result<(), EvalError> {
    data.dets.reserve(dets.len());
    for (i, d) in dets.iter().enumerate() {
        let bbox = check_box(path, "result", i, &d.bbox)?;
        if !d.score.is_finite() {
            return Err(EvalError::invalid(
                path,
                format!("result {i}: score is {}", d.score),
            ));
        }
        if !data.images.contains(&d.image_id) {
            return Err(EvalError::invalid(
                path,
                format!(
                    "result {i}: image {} is not in the ground truth",
                    d.image_id
                ),
            ));
        }
        data.dets.push(CocoDet {
            image_id: d.image_id,
            category_id: d.category_id,
            bbox,
            score: d.score,
        });
    }
    Ok(())
}

impl CocoData {
    /// Adds one MOTChallenge sequence as images `image_base + frame`
    /// (category 1, "pedestrian").
    ///
    /// Ground truth: rows whose consider flag is non-zero (and, for
    /// MOT16/17/20, of class 1) are boxes to find; rows of a distractor
    /// class (2, 7, 8, 12; 6 for MOT20) become crowd regions, so that
    /// detections on them are neither credited nor penalised; other rows
    /// are dropped. Predictions: every row, scored by its conf column.
    pub fn add_mot(
        &mut self,
        gt: &MotFile,
        pred: &MotFile,
        benchmark: Option<Benchmark>,
        seq_length: Option<u32>,
        image_base: i64,
    ) -> Result<(), EvalError> {
        let benchmark = benchmark.unwrap_or_else(|| Benchmark::detect(gt));
        let frames = match seq_length {
            Some(n) => {
                for f in [gt, pred] {
                    if let Some(r) = f.rows.iter().find(|r| r.frame > n) {
                        return Err(EvalError::invalid(
                            &f.path,
                            format!(
                                "frame {} is outside the sequence (1..={n} per seqinfo.ini)",
                                r.frame
                            ),
                        ));
                    }
                }
                n
            }
            None => gt.max_frame().max(pred.max_frame()),
        };
        self.categories
            .entry(1)
            .or_insert_with(|| "pedestrian".to_string());
        self.images
            .extend((1..=frames as i64).map(|f| image_base + f));
        for r in &gt.rows {
            let keep = r.conf.trunc() != 0.0;
            let (use_row, crowd) = match benchmark {
                Benchmark::Mot15 => (keep, false),
                b => {
                    if r.class == 1 {
                        (keep, false)
                    } else {
                        let distractor = matches!(r.class, 2 | 7 | 8 | 12)
                            || (b == Benchmark::Mot20 && r.class == 6);
                        (distractor, true)
                    }
                }
            };
            if use_row {
                self.gt.push(CocoGt {
                    image_id: image_base + r.frame as i64,
                    category_id: 1,
                    bbox: [r.x, r.y, r.w, r.h],
                    area: r.w * r.h,
                    iscrowd: crowd,
                });
            }
        }
        for r in &pred.rows {
            self.dets.push(CocoDet {
                image_id: image_base + r.frame as i64,
                category_id: 1,
                bbox: [r.x, r.y, r.w, r.h],
                score: r.conf,
            });
        }
        Ok(())
    }
}
