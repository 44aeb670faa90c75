//! CLEAR MOT and Identity metrics, event for event as py-motmetrics 1.4
//! computes them.
//!
//! A key design decision here is to keep motmetrics' matching rules rather
//! than the paper's: a pair matched in any earlier frame is kept whenever it
//! is still within 0.5 IoU distance (no gap limit), the rest is an optimal
//! assignment that first maximises the number of pairs, MOTP is the mean
//! distance `1 - IoU`, and fragmentations count tracked-to-missed changes
//! inside an object's tracked span. Only counts are kept (no event table),
//! so the state is a few vectors indexed by dense ids.

use serde::{Deserialize, Serialize};

use crate::assign::Assigner;
use crate::matches::{FrameMatch, MatchKind};
use crate::prepare::{dist_motmetrics, Prepared};

/// motmetrics' `distth`: pairs further than `1 - IoU = 0.5` never match.
const MAX_DIST: f64 = 0.5;

/// CLEAR MOT counts and scores (py-motmetrics names in the docs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Clear {
    /// `1 - (fn + fp + idsw) / num_objects`.
    pub mota: f64,
    /// Mean `1 - IoU` over matched pairs (motmetrics' definition; lower is
    /// better).
    pub motp: f64,
    pub recall: f64,
    pub precision: f64,
    /// `num_false_positives`.
    pub fp: u64,
    /// `num_misses`.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// `num_switches`.
    pub idsw: u64,
    /// `num_fragmentations`.
    pub frag: u64,
    /// Mostly tracked (>= 80 % of its frames), partially, mostly lost (< 20 %).
    pub mt: u64,
    pub pt: u64,
    pub ml: u64,
    pub num_frames: u64,
    pub num_objects: u64,
    pub num_predictions: u64,
    /// Matches including switches (`num_detections`).
    pub num_detections: u64,
    pub num_unique_objects: u64,
    pub num_transfer: u64,
    pub num_ascend: u64,
    pub num_migrate: u64,
    /// Sum of matched distances, kept to combine sequences.
    #[serde(skip)]
    pub dist_sum: f64,
}

/// Identity metrics (IDF1) from the global optimal id assignment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub idf1: f64,
    pub idp: f64,
    pub idr: f64,
    pub idtp: u64,
    pub idfp: u64,
    pub idfn: u64,
}

fn div(a: f64, b: f64) -> f64 {
    // numpy true_divide semantics: x/0 is inf or NaN, never a panic.
    a / b
}

impl Clear {
    pub(crate) fn finish(&mut self) {
        let errors = (self.fn_ + self.fp + self.idsw) as f64;
        self.mota = 1.0 - div(errors, self.num_objects as f64);
        self.motp = div(self.dist_sum, self.num_detections as f64);
        self.recall = div(self.num_detections as f64, self.num_objects as f64);
        self.precision = div(
            self.num_detections as f64,
            (self.fp + self.num_detections) as f64,
        );
    }

    /// Sums counts over sequences and recomputes the ratios, as motmetrics'
    /// `generate_overall`.
    pub fn combine<'a>(parts: impl IntoIterator<Item = &'a Clear>) -> Clear {
        let mut c = Clear::default();
        for p in parts {
            c.fp += p.fp;
            c.fn_ += p.fn_;
            c.idsw += p.idsw;
            c.frag += p.frag;
            c.mt += p.mt;
            c.pt += p.pt;
            c.ml += p.ml;
            c.num_frames += p.num_frames;
            c.num_objects += p.num_objects;
            c.num_predictions += p.num_predictions;
            c.num_detections += p.num_detections;
            c.num_unique_objects += p.num_unique_objects;
            c.num_transfer += p.num_transfer;
            c.num_ascend += p.num_ascend;
            c.num_migrate += p.num_migrate;
            c.dist_sum += p.dist_sum;
        }
        c.finish();
        c
    }
}

impl Identity {
    fn finish(&mut self) {
        let (tp, fp, fn_) = (self.idtp as f64, self.idfp as f64, self.idfn as f64);
        self.idf1 = div(2.0 * tp, 2.0 * tp + fp + fn_);
        self.idp = div(tp, tp + fp);
        self.idr = div(tp, tp + fn_);
    }

    pub fn combine<'a>(parts: impl IntoIterator<Item = &'a Identity>) -> Identity {
        let mut c = Identity::default();
        for p in parts {
            c.idtp += p.idtp;
            c.idfp += p.idfp;
            c.idfn += p.idfn;
        }
        c.finish();
        c
    }
}

const NONE: u32 = u32::MAX;

/// Scores one prepared sequence; with `events`, records every match, miss,
/// false positive and switch as it is counted (see [`FrameMatch`]).
pub(crate) fn clear_and_identity(
    p: &Prepared,
    mut events: Option<&mut Vec<FrameMatch>>,
) -> (Clear, Identity) {
    let (ng, nh) = (p.gt.num_ids, p.pred.num_ids);
    // motmetrics' accumulator state, indexed by dense ids.
    let mut m = vec![NONE; ng]; // last hypothesis matched to each object
    let mut res_m = vec![NONE; nh]; // last object matched to each hypothesis
    let mut ever_matched = vec![false; ng]; // `last_match` has the object
    let mut hyp_seen = vec![false; nh]; // `hypHistory` has the hypothesis
                                        // Per object: frames present, frames tracked, fragmentation state.
    let mut present = vec![0u32; ng];
    let mut tracked = vec![0u32; ng];
    let mut was_tracked = vec![false; ng];
    let mut gap_open = vec![false; ng];
    let mut frag = 0u64;
    // Identity: frames per hypothesis and co-occurrences within 0.5.
    let mut hyp_frames = vec![0u32; nh];
    let mut pair_counts: std::collections::HashMap<(u32, u32), u32> = Default::default();

    let mut c = Clear::default();
    let mut assigner = Assigner::default();
    let mut dists: Vec<Option<f64>> = Vec::new();
    let mut o_done: Vec<bool> = Vec::new();
    let mut h_done: Vec<bool> = Vec::new();
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for t in 0..p.frames {
        let (oids, oboxes) = p.gt.frame(t);
        let (hids, hboxes) = p.pred.frame(t);
        let hconf = &p.pred.confs[p.pred.offsets[t]..p.pred.offsets[t + 1]];
        let mut record = |kind: MatchKind, i: Option<usize>, j: Option<usize>, d: Option<f64>| {
            if let Some(ev) = events.as_deref_mut() {
                ev.push(FrameMatch {
                    frame: t as i64 + 1,
                    kind,
                    gt_id: i.map(|i| p.gt.orig_ids[oids[i] as usize]),
                    pred_id: j.map(|j| p.pred.orig_ids[hids[j] as usize]),
                    category: None,
                    score: j.map(|j| hconf[j]),
                    iou: d.map(|d| 1.0 - d),
                    pred_box: j.map(|j| hboxes[j]),
                    gt_box: i.map(|i| oboxes[i]),
                });
            }
        };
        if oids.is_empty() && hids.is_empty() {
            continue;
        }
        c.num_frames += 1;
        let (no, nhf) = (oids.len(), hids.len());
        dists.clear();
        for ob in oboxes {
            for hb in hboxes {
                dists.push(dist_motmetrics(ob, hb, MAX_DIST));
            }
        }
        for (i, &o) in oids.iter().enumerate() {
            for (j, &h) in hids.iter().enumerate() {
                if dists[i * nhf + j].is_some() {
                    *pair_counts.entry((o, h)).or_insert(0) += 1;
                }
            }
        }
        for &h in hids {
            hyp_frames[h as usize] += 1;
        }
        o_done.clear();
        o_done.resize(no, false);
        h_done.clear();
        h_done.resize(nhf, false);
        if no > 0 && nhf > 0 {
            // 1. Carry forward established pairs.
            for (i, &o) in oids.iter().enumerate() {
                let hprev = m[o as usize];
                if hprev == NONE {
                    continue;
                }
                let Some(j) = (0..nhf).find(|&j| !h_done[j] && hids[j] == hprev) else {
                    continue;
                };
                if let Some(d) = dists[i * nhf + j] {
                    o_done[i] = true;
                    h_done[j] = true;
                    ever_matched[o as usize] = true;
                    hyp_seen[hprev as usize] = true;
                    c.num_detections += 1;
                    c.dist_sum += d;
                    mark_tracked(o, &mut tracked, &mut was_tracked, &mut gap_open, &mut frag);
                    record(MatchKind::Tp, Some(i), Some(j), Some(d));
                }
            }
            // 2. Optimal assignment of the rest.
            pairs.clear();
            assigner.min_cost(
                no,
                nhf,
                |i, j| {
                    if o_done[i] || h_done[j] {
                        None
                    } else {
                        dists[i * nhf + j]
                    }
                },
                |i, j| pairs.push((i, j)),
            );
            for &(i, j) in &pairs {
                let (o, h) = (oids[i], hids[j]);
                let d = dists[i * nhf + j].unwrap_or_default();
                let (ou, hu) = (o as usize, h as usize);
                let is_switch = m[ou] != NONE && m[ou] != h;
                if is_switch {
                    c.idsw += 1;
                    if !hyp_seen[hu] {
                        c.num_ascend += 1;
                    }
                }
                if res_m[hu] != NONE && res_m[hu] != o {
                    c.num_transfer += 1;
                    if !ever_matched[ou] {
                        c.num_migrate += 1;
                    }
                }
                hyp_seen[hu] = true;
                ever_matched[ou] = true;
                m[ou] = h;
                res_m[hu] = o;
                o_done[i] = true;
                h_done[j] = true;
                c.num_detections += 1;
                c.dist_sum += d;
                mark_tracked(o, &mut tracked, &mut was_tracked, &mut gap_open, &mut frag);
                let kind = if is_switch {
                    MatchKind::Idsw
                } else {
                    MatchKind::Tp
                };
                record(kind, Some(i), Some(j), Some(d));
            }
        }
        // 3./4. Misses and false positives.
        for (i, &o) in oids.iter().enumerate() {
            present[o as usize] += 1;
            if !o_done[i] {
                c.fn_ += 1;
                record(MatchKind::Fn, Some(i), None, None);
                let ou = o as usize;
                if was_tracked[ou] {
                    gap_open[ou] = true;
                }
                was_tracked[ou] = false;
            }
        }
        for (j, done) in h_done.iter().enumerate() {
            if !done {
                c.fp += 1;
                record(MatchKind::Fp, None, Some(j), None);
            }
        }
    }
    c.num_objects = c.num_detections + c.fn_;
    c.num_predictions = c.num_detections + c.fp;
    for (&n, &k) in present.iter().zip(&tracked) {
        if n == 0 {
            continue;
        }
        c.num_unique_objects += 1;
        let ratio = k as f64 / n as f64;
        if ratio >= 0.8 {
            c.mt += 1;
        } else if ratio >= 0.2 {
            c.pt += 1;
        } else {
            c.ml += 1;
        }
    }
    c.frag = frag;
    c.finish();

    // Identity: IDTP is the maximum-weight one-to-one id assignment on the
    // co-occurrence counts (equivalent to motmetrics' min-cost formulation).
    let mut idtp = 0u64;
    if !pair_counts.is_empty() {
        let mut gl: Vec<u32> = pair_counts.keys().map(|k| k.0).collect();
        let mut hl: Vec<u32> = pair_counts.keys().map(|k| k.1).collect();
        gl.sort_unstable();
        gl.dedup();
        hl.sort_unstable();
        hl.dedup();
        let mut w = vec![0i64; gl.len() * hl.len()];
        for (&(o, h), &n) in &pair_counts {
            let r = gl.binary_search(&o).unwrap_or_default();
            let col = hl.binary_search(&h).unwrap_or_default();
            w[r * hl.len() + col] = n as i64;
        }
        let nc = hl.len();
        assigner.max_weight(
            gl.len(),
            nc,
            |r, col| w[r * nc + col],
            |r, col| {
                idtp += w[r * nc + col] as u64;
            },
        );
    }
    let mut id = Identity {
        idtp,
        idfn: c.num_objects - idtp,
        idfp: c.num_predictions - idtp,
        ..Identity::default()
    };
    id.finish();
    (c, id)
}

fn mark_tracked(o: u32, tracked: &mut [u32], was: &mut [bool], gap: &mut [bool], frag: &mut u64) {
    let o = o as usize;
    tracked[o] += 1;
    if gap[o] {
        *frag += 1;
        gap[o] = false;
    }
    was[o] = true;
}
