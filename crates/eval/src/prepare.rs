//! From two parsed files to the per-frame view the metrics score.
//!
//! A key design decision here is that the preprocessing protocol is an
//! explicit choice, because the two reference tools disagree on it:
//! `motmetrics`' MOTChallenge script keeps ground-truth rows with
//! `conf >= 1` and scores every prediction, while `TrackEval` (the official
//! MOTChallenge kit) also drops non-pedestrian ground truth and removes
//! predictions that match a distractor (0.5 IoU, optimal assignment) before
//! scoring. Rows are stored frame-major in flat arrays (CSR), ids relabelled
//! to dense indices, so the metric loops index vectors instead of hashing.

use crate::assign::Assigner;
use crate::motfile::{MotFile, MotRow};
use crate::EvalError;

/// Column conventions of the ground truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Benchmark {
    /// `frame,id,x,y,w,h,conf,wx,wy,wz`: no classes; a row counts when its
    /// conf (consider) column is non-zero.
    Mot15,
    /// `frame,id,x,y,w,h,consider,class,visibility` (MOT16 and MOT17):
    /// pedestrians (class 1) are scored; classes 2, 7, 8, 12 are distractors.
    Mot17,
    /// As MOT17, and class 6 (non-MOT vehicle) is a distractor too.
    Mot20,
}

impl Benchmark {
    /// MOT17 conventions when the ground truth has exactly 9 columns (the
    /// MOT16/17 layout), MOT15 otherwise.
    pub fn detect(gt: &MotFile) -> Benchmark {
        if gt.columns == 9 {
            Benchmark::Mot17
        } else {
            Benchmark::Mot15
        }
    }

    fn is_distractor(self, class: i64) -> bool {
        matches!(class, 2 | 7 | 8 | 12) || (self == Benchmark::Mot20 && class == 6)
    }
}

/// Which reference tool's preprocessing to apply before scoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TrackEval / MOTChallenge: ground truth with a non-zero consider flag
    /// (and class 1 for MOT16/17/20); predictions matching a distractor
    /// removed.
    #[default]
    MotChallenge,
    /// py-motmetrics' `eval_motchallenge`: ground truth with `conf >= 1`,
    /// predictions with `conf >= -1`, no class handling.
    MotMetrics,
}

/// The frames of one sequence after preprocessing.
#[derive(Clone, Debug, Default)]
pub(crate) struct Prepared {
    /// Number of frames in the timeline (1..=frames).
    pub frames: usize,
    pub gt: Side,
    pub pred: Side,
}

/// One side (ground truth or prediction), frame-major.
#[derive(Clone, Debug, Default)]
pub(crate) struct Side {
    /// `offsets[t]..offsets[t + 1]` are the rows of frame `t + 1`.
    pub offsets: Vec<usize>,
    /// Dense id index per row.
    pub ids: Vec<u32>,
    /// `[x, y, w, h]` per row.
    pub boxes: Vec<[f64; 4]>,
    /// The conf column per row (a prediction's score).
    pub confs: Vec<f64>,
    /// Number of distinct ids.
    pub num_ids: usize,
    /// The file's id of each dense id.
    pub orig_ids: Vec<i64>,
}

impl Side {
    pub fn frame(&self, t: usize) -> (&[u32], &[[f64; 4]]) {
        let r = self.offsets[t]..self.offsets[t + 1];
        (&self.ids[r.clone()], &self.boxes[r])
    }
}

/// IoU as TrackEval computes it (`_calculate_box_ious`, xywh).
#[inline]
pub(crate) fn iou_trackeval(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    const EPS: f64 = f64::EPSILON;
    let (ax2, ay2, bx2, by2) = (a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]);
    let iw = (ax2.min(bx2) - a[0].max(b[0])).max(0.0);
    let ih = (ay2.min(by2) - a[1].max(b[1])).max(0.0);
    let mut inter = iw * ih;
    let area_a = (ax2 - a[0]) * (ay2 - a[1]);
    let area_b = (bx2 - b[0]) * (by2 - b[1]);
    let mut union = area_a + area_b - inter;
    if area_a <= EPS || area_b <= EPS || union <= EPS {
        inter = 0.0;
    }
    if union <= EPS {
        union = 1.0;
    }
    inter / union
}

/// Distance `1 - IoU` as py-motmetrics computes it (`iou_matrix` after its
/// loader moved left/top by -1), or `None` above `max_dist`.
#[inline]
pub(crate) fn dist_motmetrics(a: &[f64; 4], b: &[f64; 4], max_dist: f64) -> Option<f64> {
    let (ax, ay, bx, by) = (a[0] - 1.0, a[1] - 1.0, b[0] - 1.0, b[1] - 1.0);
    let (ax2, ay2, bx2, by2) = (ax + a[2], ay + a[3], bx + b[2], by + b[3]);
    let iw = (ax2.min(bx2) - ax.max(bx)).max(0.0);
    let ih = (ay2.min(by2) - ay.max(by)).max(0.0);
    let inter = iw * ih;
    let iou = if inter == 0.0 {
        0.0
    } else {
        let va = (ax2 - ax).max(0.0) * (ay2 - ay).max(0.0);
        let vb = (bx2 - bx).max(0.0) * (by2 - by).max(0.0);
        inter / (va + vb - inter)
    };
    let d = 1.0 - iou;
    (d <= max_dist).then_some(d)
}

/// Builds the per-frame view. `seq_length` (from `seqinfo.ini`) fixes the
/// timeline; rows outside it are an error, as in TrackEval. Without it the
/// timeline runs to the last frame of either file.
pub(crate) fn prepare(
    gt: &MotFile,
    pred: &MotFile,
    benchmark: Benchmark,
    protocol: Protocol,
    seq_length: Option<u32>,
) -> Result<Prepared, EvalError> {
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
            n as usize
        }
        None => gt.max_frame().max(pred.max_frame()) as usize,
    };
    let gt_rows = frame_major(gt, frames)?;
    let pred_rows = frame_major(pred, frames)?;

    let mut gt_keep = vec![true; gt_rows.rows.len()];
    let mut pred_keep = vec![true; pred_rows.rows.len()];
    match protocol {
        Protocol::MotMetrics => {
            for (k, r) in gt_keep.iter_mut().zip(&gt_rows.rows) {
                *k = r.conf >= 1.0;
            }
            for (k, r) in pred_keep.iter_mut().zip(&pred_rows.rows) {
                *k = r.conf >= -1.0;
            }
        }
        Protocol::MotChallenge => {
            if benchmark != Benchmark::Mot15 {
                if let Some(r) = gt.rows.iter().find(|r| !(1..=13).contains(&r.class)) {
                    return Err(EvalError::invalid(
                        &gt.path,
                        format!(
                            "class {} in frame {} is not a MOTChallenge class (1-13); \
                             use the MOT15 conventions for files without classes",
                            r.class, r.frame
                        ),
                    ));
                }
                remove_distractor_matches(&gt_rows, &pred_rows, benchmark, &mut pred_keep);
            }
            for (k, r) in gt_keep.iter_mut().zip(&gt_rows.rows) {
                *k = r.conf.trunc() != 0.0 && (benchmark == Benchmark::Mot15 || r.class == 1);
            }
        }
    }
    Ok(Prepared {
        frames,
        gt: gt_rows.side(&gt_keep),
        pred: pred_rows.side(&pred_keep),
    })
}

/// TrackEval's step 2: predictions matched (IoU >= 0.5, optimal assignment
/// over all gt rows of the frame) to a distractor-class gt row are dropped.
fn remove_distractor_matches(gt: &FrameMajor, pred: &FrameMajor, b: Benchmark, keep: &mut [bool]) {
    let mut assigner = Assigner::default();
    let threshold = 0.5 - f64::EPSILON;
    let mut sims = Vec::new();
    for t in 0..gt.offsets.len() - 1 {
        let (g0, g1) = (gt.offsets[t], gt.offsets[t + 1]);
        let (p0, p1) = (pred.offsets[t], pred.offsets[t + 1]);
        let g = &gt.rows[g0..g1];
        let p = &pred.rows[p0..p1];
        if g.is_empty() || p.is_empty() || !g.iter().any(|r| b.is_distractor(r.class)) {
            // Without a distractor in the frame nothing can be removed.
            continue;
        }
        sims.clear();
        for gr in g {
            for pr in p {
                let s = iou_trackeval(&xywh(gr), &xywh(pr));
                sims.push(if s < threshold { 0.0 } else { s });
            }
        }
        let np = p.len();
        assigner.max_score(
            g.len(),
            np,
            |r, c| sims[r * np + c],
            |r, c| {
                if sims[r * np + c] > f64::EPSILON && b.is_distractor(g[r].class) {
                    keep[p0 + c] = false;
                }
            },
        );
    }
}

pub(crate) fn xywh(r: &MotRow) -> [f64; 4] {
    [r.x, r.y, r.w, r.h]
}

/// Rows grouped by frame (stable: file order within a frame), with ids
/// checked for uniqueness per frame.
struct FrameMajor {
    offsets: Vec<usize>,
    rows: Vec<MotRow>,
}

fn frame_major(f: &MotFile, frames: usize) -> Result<FrameMajor, EvalError> {
    let mut counts = vec![0usize; frames + 1];
    for r in &f.rows {
        counts[r.frame as usize - 1] += 1;
    }
    let mut offsets = Vec::with_capacity(frames + 1);
    let mut acc = 0;
    for c in &counts[..frames] {
        offsets.push(acc);
        acc += c;
    }
    offsets.push(acc);
    let mut next = offsets.clone();
    let mut rows = vec![f.rows.first().copied().unwrap_or(EMPTY_ROW); f.rows.len()];
    for r in &f.rows {
        let slot = &mut next[r.frame as usize - 1];
        rows[*slot] = *r;
        *slot += 1;
    }
    let mut ids: Vec<i64> = Vec::new();
    for t in 0..frames {
        ids.clear();
        ids.extend(rows[offsets[t]..offsets[t + 1]].iter().map(|r| r.id));
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(EvalError::invalid(
                &f.path,
                format!("id {} appears twice in frame {}", w[0], t + 1),
            ));
        }
    }
    Ok(FrameMajor { offsets, rows })
}

const EMPTY_ROW: MotRow = MotRow {
    frame: 1,
    id: 0,
    x: 0.0,
    y: 0.0,
    w: 0.0,
    h: 0.0,
    conf: 0.0,
    class: -1,
    visibility: -1.0,
};

impl FrameMajor {
    fn side(&self, keep: &[bool]) -> Side {
        let mut uniq: Vec<i64> = self
            .rows
            .iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(|(r, _)| r.id)
            .collect();
        uniq.sort_unstable();
        uniq.dedup();
        let n = keep.iter().filter(|k| **k).count();
        let mut side = Side {
            offsets: Vec::with_capacity(self.offsets.len()),
            ids: Vec::with_capacity(n),
            boxes: Vec::with_capacity(n),
            confs: Vec::with_capacity(n),
            num_ids: uniq.len(),
            orig_ids: Vec::new(),
        };
        for t in 0..self.offsets.len() - 1 {
            side.offsets.push(side.ids.len());
            let range = self.offsets[t]..self.offsets[t + 1];
            for (r, _) in self.rows[range.clone()]
                .iter()
                .zip(&keep[range])
                .filter(|(_, k)| **k)
            {
                let idx = uniq.binary_search(&r.id).unwrap_or_default();
                side.ids.push(idx as u32);
                side.boxes.push(xywh(r));
                side.confs.push(r.conf);
            }
        }
        side.offsets.push(side.ids.len());
        side.orig_ids = uniq;
        side
    }
}
