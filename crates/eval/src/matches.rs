//! Per-frame matching: what the metrics counted, one event per box, so a
//! viewer can show where a model is right and wrong.
//!
//! A key design decision here is that events are recorded by the metric
//! code itself while it counts, never recomputed afterwards: the sum of the
//! events is the metric by construction (CLEAR: Σfp = FP, Σfn = FN,
//! Σidsw = IDSW, Σtp + Σidsw = matches; COCO: the TP/FP/FN of the IoU
//! threshold asked for, area range "all", 100 detections per image).

use serde::{Deserialize, Serialize};

/// What one event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchKind {
    /// A prediction matched to a ground-truth box (for tracking: keeping
    /// the object's previous track, or its first match).
    Tp,
    /// A prediction matched to no ground-truth box.
    Fp,
    /// A ground-truth box no prediction matched.
    Fn,
    /// A tracking match whose track differs from the one the object was
    /// last matched to (CLEAR MOT's identity switch; also a match).
    Idsw,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Tp => "tp",
            MatchKind::Fp => "fp",
            MatchKind::Fn => "fn",
            MatchKind::Idsw => "idsw",
        }
    }

    pub fn parse(s: &str) -> Option<MatchKind> {
        Some(match s {
            "tp" => MatchKind::Tp,
            "fp" => MatchKind::Fp,
            "fn" => MatchKind::Fn,
            "idsw" => MatchKind::Idsw,
            _ => return None,
        })
    }
}

/// One event. Boxes are `[x, y, w, h]` as in the input files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameMatch {
    /// MOTChallenge frame (1-based), or COCO image id.
    pub frame: i64,
    pub kind: MatchKind,
    /// Ground-truth object id (MOT) or annotation index (COCO); `None` for
    /// a false positive.
    pub gt_id: Option<i64>,
    /// Track id (MOT) or detection index (COCO); `None` for a miss.
    pub pred_id: Option<i64>,
    /// COCO category id; `None` for MOT.
    pub category: Option<i64>,
    /// The prediction's score (its conf column for MOT).
    pub score: Option<f64>,
    /// IoU of a matched pair.
    pub iou: Option<f64>,
    pub pred_box: Option<[f64; 4]>,
    pub gt_box: Option<[f64; 4]>,
}

/// A precision-recall curve: COCOeval's 101-point interpolated precision
/// (`eval['precision']`) with the score at each recall point
/// (`eval['scores']`), up to the highest recall reached.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PrPoint {
    pub recall: f64,
    pub precision: f64,
    pub score: f64,
}

/// Per-class PR curves at one IoU threshold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PrCurve {
    pub category_id: i64,
    pub name: String,
    pub points: Vec<PrPoint>,
}

/// The events of a frame summed: what the errors view sorts by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameCounts {
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub idsw: u64,
}

impl FrameCounts {
    pub fn add(&mut self, k: MatchKind) {
        match k {
            MatchKind::Tp => self.tp += 1,
            MatchKind::Fp => self.fp += 1,
            MatchKind::Fn => self.fn_ += 1,
            MatchKind::Idsw => self.idsw += 1,
        }
    }

    /// `fp + fn + idsw`.
    pub fn errors(&self) -> u64 {
        self.fp + self.fn_ + self.idsw
    }
}
