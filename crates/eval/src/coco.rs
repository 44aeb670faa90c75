//! COCO-style detection metrics, as `pycocotools`' `COCOeval` (bbox) computes
//! them.
//!
//! A key design decision here is to keep COCOeval's exact rules, quirks
//! included, because users compare these numbers with published ones:
//! detections sorted by score with a stable sort and cut at 100 per image
//! and class, greedy matching in score order against ground truth sorted
//! with ignored boxes last, crowd boxes matched by intersection over the
//! detection's area and reusable, 101-point interpolated precision,
//! `-1` entries (no ground truth) left out of the means. IoUs are computed
//! once per image and class and shared by the 4 area ranges and 10
//! thresholds.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::matches::{FrameMatch, MatchKind, PrCurve, PrPoint};
use crate::EvalError;

/// A ground-truth box (COCO annotation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoGt {
    pub image_id: i64,
    pub category_id: i64,
    /// `[x, y, w, h]`.
    pub bbox: [f64; 4],
    /// Area used for the small/medium/large ranges (COCO files store the
    /// segmentation area here); `w * h` when absent.
    pub area: f64,
    pub iscrowd: bool,
}

/// A detection (COCO result).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoDet {
    pub image_id: i64,
    pub category_id: i64,
    pub bbox: [f64; 4],
    pub score: f64,
}

/// A detection data set: the images and categories to score, ground truth
/// and detections.
#[derive(Clone, Debug, Default)]
pub struct CocoData {
    pub images: BTreeSet<i64>,
    /// Category id to name.
    pub categories: BTreeMap<i64, String>,
    pub gt: Vec<CocoGt>,
    pub dets: Vec<CocoDet>,
}

/// The twelve COCOeval summary numbers (`stats`), with COCOeval's `-1`
/// where a value is undefined (no ground truth in range).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CocoStats {
    pub ap: f64,
    pub ap50: f64,
    pub ap75: f64,
    pub ap_small: f64,
    pub ap_medium: f64,
    pub ap_large: f64,
    pub ar1: f64,
    pub ar10: f64,
    pub ar100: f64,
    pub ar_small: f64,
    pub ar_medium: f64,
    pub ar_large: f64,
}

/// Overall and per-category results.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CocoReport {
    #[serde(flatten)]
    pub overall: CocoStats,
    pub per_class: Vec<ClassStats>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassStats {
    pub category_id: i64,
    pub name: String,
    #[serde(flatten)]
    pub stats: CocoStats,
}

const T: usize = 10;
const R: usize = 101;
const A: usize = 4;
const M: usize = 3;
const MAX_DETS: [usize; M] = [1, 10, 100];
const AREAS: [(f64, f64); A] = [
    (0.0, 1e10),
    (0.0, 32.0 * 32.0),
    (32.0 * 32.0, 96.0 * 96.0),
    (96.0 * 96.0, 1e10),
];

/// `np.linspace(.5, .95, 10)` and `np.linspace(0, 1, 101)`, bit for bit.
fn iou_thresholds() -> [f64; T] {
    let step = (0.95f64 - 0.5) / 9.0;
    let mut t: [f64; T] = std::array::from_fn(|i| i as f64 * step + 0.5);
    t[T - 1] = 0.95;
    t
}

fn rec_thresholds() -> [f64; R] {
    let step = 1.0f64 / 100.0;
    let mut r: [f64; R] = std::array::from_fn(|i| i as f64 * step);
    r[R - 1] = 1.0;
    r
}

/// COCO `maskUtils.iou` for boxes; crowd ground truth uses the detection's
/// area as the denominator.
fn iou(d: &[f64; 4], g: &[f64; 4], crowd: bool) -> f64 {
    let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let da = d[2] * d[3];
    let u = if crowd { da } else { da + g[2] * g[3] - i };
    i / u
}

/// Per image, class and area range: what `evaluateImg` returns.
struct ImgEval {
    /// Scores of the (at most 100) detections, best first.
    scores: Vec<f64>,
    /// `[t][d]`: matched, ignored.
    matched: Vec<[bool; T]>,
    ignored: Vec<[bool; T]>,
    /// Ground truth not ignored.
    npig: usize,
}

/// COCOeval's IoU thresholds (0.5, 0.55, ..., 0.95): the ones
/// [`CocoData::evaluate_matched`] can record matches at.
pub fn coco_iou_thresholds() -> [f64; 10] {
    iou_thresholds()
}

/// What [`CocoData::evaluate_matched`] returns besides the report.
#[derive(Clone, Debug, Default)]
pub struct CocoMatching {
    /// The threshold the events and curves are at.
    pub iou: f64,
    /// Per image (`frame` = image id) and category: TP (detection matched
    /// to a ground-truth box), FP (detection matched to none), FN (ground
    /// truth no detection matched), at area range "all" with at most 100
    /// detections per image and category, as COCOeval counts them.
    /// Detections matched to a crowd box, and those past the 100 kept, are
    /// neither (COCOeval ignores them).
    pub events: Vec<FrameMatch>,
    /// Per category with ground truth: the interpolated PR curve.
    pub curves: Vec<PrCurve>,
}

impl CocoData {
    /// Scores detections against ground truth.
    pub fn evaluate(&self) -> CocoReport {
        self.evaluate_inner(None).0
    }

    /// [`CocoData::evaluate`], also recording every image's matching and
    /// each category's PR curve at IoU threshold `iou` (one of
    /// [`coco_iou_thresholds`]: 0.5 gives the matching behind AP50).
    pub fn evaluate_matched(&self, iou: f64) -> Result<(CocoReport, CocoMatching), EvalError> {
        let ti = iou_thresholds()
            .iter()
            .position(|t| (t - iou).abs() < 1e-9)
            .ok_or_else(|| {
                EvalError::invalid(
                    std::path::Path::new("iou"),
                    format!("{iou} is not a COCO IoU threshold (0.5, 0.55, ..., 0.95)"),
                )
            })?;
        let (report, mut m) = self.evaluate_inner(Some(ti));
        m.iou = iou_thresholds()[ti];
        Ok((report, m))
    }

    fn evaluate_inner(&self, capture: Option<usize>) -> (CocoReport, CocoMatching) {
        let mut out = CocoMatching::default();
        let thr = iou_thresholds();
        let cats: Vec<i64> = self.categories.keys().copied().collect();
        let cat_idx: HashMap<i64, usize> = cats.iter().enumerate().map(|(i, c)| (*c, i)).collect();
        let img_idx: HashMap<i64, usize> = self
            .images
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, i))
            .collect();
        // Group by (category, image), keeping file order.
        let mut gts: HashMap<(usize, usize), Vec<&CocoGt>> = HashMap::new();
        for g in &self.gt {
            if let (Some(&k), Some(&i)) = (cat_idx.get(&g.category_id), img_idx.get(&g.image_id)) {
                gts.entry((k, i)).or_default().push(g);
            }
        }
        let mut dts: HashMap<(usize, usize), Vec<&CocoDet>> = HashMap::new();
        for d in &self.dets {
            if let (Some(&k), Some(&i)) = (cat_idx.get(&d.category_id), img_idx.get(&d.image_id)) {
                dts.entry((k, i)).or_default().push(d);
            }
        }
        let mut keys: Vec<(usize, usize)> = gts.keys().chain(dts.keys()).copied().collect();
        keys.sort_unstable();
        keys.dedup();

        // evals[k][a] = per-image results in image order.
        let mut evals: Vec<[Vec<ImgEval>; A]> =
            (0..cats.len()).map(|_| Default::default()).collect();
        let empty_g: Vec<&CocoGt> = Vec::new();
        let empty_d: Vec<&CocoDet> = Vec::new();
        let mut ious: Vec<f64> = Vec::new();
        let image_ids: Vec<i64> = self.images.iter().copied().collect();
        for &(k, i) in &keys {
            let g = gts.get(&(k, i)).unwrap_or(&empty_g);
            let mut d: Vec<&CocoDet> = dts.get(&(k, i)).unwrap_or(&empty_d).clone();
            d.sort_by(|a, b| b.score.total_cmp(&a.score));
            d.truncate(MAX_DETS[M - 1]);
            let (nd, ng) = (d.len(), g.len());
            ious.clear();
            for dd in &d {
                for gg in g.iter() {
                    ious.push(iou(&dd.bbox, &gg.bbox, gg.iscrowd));
                }
            }
            for (a, &(lo, hi)) in AREAS.iter().enumerate() {
                let gt_ignore: Vec<bool> = g
                    .iter()
                    .map(|gg| gg.iscrowd || gg.area < lo || gg.area > hi)
                    .collect();
                // Ground truth with ignored boxes last (stable).
                let mut order: Vec<usize> = (0..ng).collect();
                order.sort_by_key(|&j| gt_ignore[j]);
                let mut gt_matched = vec![[false; T]; ng];
                let mut matched = vec![[false; T]; nd];
                let mut ignored = vec![[false; T]; nd];
                // The ground truth each detection matched, at the captured
                // threshold.
                let mut det_gt: Vec<Option<usize>> = vec![None; nd];
                if ng > 0 {
                    for (ti, &t) in thr.iter().enumerate() {
                        for di in 0..nd {
                            let mut best_iou = t.min(1.0 - 1e-10);
                            let mut m: Option<usize> = None;
                            for &gj in &order {
                                if gt_matched[gj][ti] && !g[gj].iscrowd {
                                    continue;
                                }
                                if let Some(mj) = m {
                                    if !gt_ignore[mj] && gt_ignore[gj] {
                                        break;
                                    }
                                }
                                let v = ious[di * ng + gj];
                                if v < best_iou {
                                    continue;
                                }
                                best_iou = v;
                                m = Some(gj);
                            }
                            if let Some(mj) = m {
                                ignored[di][ti] = gt_ignore[mj];
                                matched[di][ti] = true;
                                gt_matched[mj][ti] = true;
                                if capture == Some(ti) {
                                    det_gt[di] = Some(mj);
                                }
                            }
                        }
                    }
                }
                for di in 0..nd {
                    let b = &d[di].bbox;
                    let area = b[2] * b[3];
                    let out = area < lo || area > hi;
                    for ti in 0..T {
                        if !matched[di][ti] && out {
                            ignored[di][ti] = true;
                        }
                    }
                }
                if let (Some(ti), 0) = (capture, a) {
                    let image = image_ids[i];
                    let cat = cats[k];
                    for (di, dd) in d.iter().enumerate() {
                        if ignored[di][ti] {
                            continue;
                        }
                        let gj = det_gt[di].filter(|_| matched[di][ti]);
                        out.events.push(FrameMatch {
                            frame: image,
                            kind: if gj.is_some() {
                                MatchKind::Tp
                            } else {
                                MatchKind::Fp
                            },
                            gt_id: None,
                            pred_id: None,
                            category: Some(cat),
                            score: Some(dd.score),
                            iou: gj.map(|gj| ious[di * ng + gj]),
                            pred_box: Some(dd.bbox),
                            gt_box: gj.map(|gj| g[gj].bbox),
                        });
                    }
                    for (gj, gg) in g.iter().enumerate() {
                        if !gt_ignore[gj] && !gt_matched[gj][ti] {
                            out.events.push(FrameMatch {
                                frame: image,
                                kind: MatchKind::Fn,
                                gt_id: None,
                                pred_id: None,
                                category: Some(cat),
                                score: None,
                                iou: None,
                                pred_box: None,
                                gt_box: Some(gg.bbox),
                            });
                        }
                    }
                }
                evals[k][a].push(ImgEval {
                    scores: d.iter().map(|x| x.score).collect(),
                    matched,
                    ignored,
                    npig: gt_ignore.iter().filter(|x| !**x).count(),
                });
            }
        }

        // accumulate: precision[t][r][k][a][m], recall[t][k][a][m].
        let rec = rec_thresholds();
        let nk = cats.len();
        let pidx = |t: usize, r: usize, k: usize, a: usize, m: usize| {
            (((t * R + r) * nk + k) * A + a) * M + m
        };
        let ridx = |t: usize, k: usize, a: usize, m: usize| ((t * nk + k) * A + a) * M + m;
        let mut precision = vec![-1.0f64; T * R * nk * A * M];
        let mut recall = vec![-1.0f64; T * nk * A * M];
        let mut entries: Vec<(f64, usize, usize)> = Vec::new();
        let mut pr: Vec<f64> = Vec::new();
        let mut rc: Vec<f64> = Vec::new();
        for (k, per_area) in evals.iter().enumerate() {
            for (a, imgs) in per_area.iter().enumerate() {
                if imgs.is_empty() {
                    continue;
                }
                let npig: usize = imgs.iter().map(|e| e.npig).sum();
                if npig == 0 {
                    continue;
                }
                for (mi, &max_det) in MAX_DETS.iter().enumerate() {
                    entries.clear();
                    for (ii, e) in imgs.iter().enumerate() {
                        for (di, &s) in e.scores.iter().take(max_det).enumerate() {
                            entries.push((s, ii, di));
                        }
                    }
                    entries.sort_by(|x, y| y.0.total_cmp(&x.0));
                    let nd = entries.len();
                    for ti in 0..T {
                        pr.clear();
                        rc.clear();
                        let (mut tp, mut fp) = (0f64, 0f64);
                        for &(_, ii, di) in &entries {
                            let e = &imgs[ii];
                            if !e.ignored[di][ti] {
                                if e.matched[di][ti] {
                                    tp += 1.0;
                                } else {
                                    fp += 1.0;
                                }
                            }
                            rc.push(tp / npig as f64);
                            pr.push(tp / (fp + tp + f64::EPSILON));
                        }
                        recall[ridx(ti, k, a, mi)] = if nd > 0 { rc[nd - 1] } else { 0.0 };
                        for i in (1..nd).rev() {
                            if pr[i] > pr[i - 1] {
                                pr[i - 1] = pr[i];
                            }
                        }
                        let curve = capture == Some(ti) && a == 0 && mi == M - 1;
                        let mut points = Vec::new();
                        let mut pos = 0usize;
                        for (ri, &rt) in rec.iter().enumerate() {
                            while pos < nd && rc[pos] < rt {
                                pos += 1;
                            }
                            precision[pidx(ti, ri, k, a, mi)] =
                                if pos < nd { pr[pos] } else { 0.0 };
                            if curve && pos < nd {
                                points.push(PrPoint {
                                    recall: rt,
                                    precision: pr[pos],
                                    score: entries[pos].0,
                                });
                            }
                        }
                        if curve {
                            out.curves.push(PrCurve {
                                category_id: cats[k],
                                name: self.categories[&cats[k]].clone(),
                                points,
                            });
                        }
                    }
                }
            }
        }

        let t50 = thr.iter().position(|&t| t == 0.5);
        let t75 = thr.iter().position(|&t| t == 0.75);
        let summarize = |ks: &[usize]| -> CocoStats {
            let ap = |t: Option<Option<usize>>, a: usize| -> f64 {
                let ts: Vec<usize> = match t {
                    None => (0..T).collect(),
                    Some(Some(t)) => vec![t],
                    Some(None) => vec![],
                };
                let mut s = 0.0;
                let mut n = 0usize;
                for &ti in &ts {
                    for ri in 0..R {
                        for &k in ks {
                            let v = precision[pidx(ti, ri, k, a, M - 1)];
                            if v > -1.0 {
                                s += v;
                                n += 1;
                            }
                        }
                    }
                }
                if n == 0 {
                    -1.0
                } else {
                    s / n as f64
                }
            };
            let ar = |a: usize, mi: usize| -> f64 {
                let mut s = 0.0;
                let mut n = 0usize;
                for ti in 0..T {
                    for &k in ks {
                        let v = recall[ridx(ti, k, a, mi)];
                        if v > -1.0 {
                            s += v;
                            n += 1;
                        }
                    }
                }
                if n == 0 {
                    -1.0
                } else {
                    s / n as f64
                }
            };
            CocoStats {
                ap: ap(None, 0),
                ap50: ap(Some(t50), 0),
                ap75: ap(Some(t75), 0),
                ap_small: ap(None, 1),
                ap_medium: ap(None, 2),
                ap_large: ap(None, 3),
                ar1: ar(0, 0),
                ar10: ar(0, 1),
                ar100: ar(0, 2),
                ar_small: ar(1, 2),
                ar_medium: ar(2, 2),
                ar_large: ar(3, 2),
            }
        };
        let all: Vec<usize> = (0..nk).collect();
        let report = CocoReport {
            overall: summarize(&all),
            per_class: cats
                .iter()
                .enumerate()
                .map(|(k, &id)| ClassStats {
                    category_id: id,
                    name: self.categories[&id].clone(),
                    stats: summarize(&[k]),
                })
                .collect(),
        };
        (report, out)
    }
}
