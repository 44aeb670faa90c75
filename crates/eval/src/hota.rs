//! HOTA, as TrackEval 1.3 computes it.
//!
//! A key design decision here is to follow TrackEval's two passes exactly:
//! a global alignment score per (gt id, tracker id) from similarity-weighted
//! co-occurrence, then per frame an optimal assignment on
//! `alignment * IoU`, thresholded at each of the 19 alphas
//! (`np.arange(0.05, 0.99, 0.05)`). Only pairs that ever overlap get an
//! entry, so memory follows the overlaps, not `gt ids x tracker ids`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::assign::Assigner;
use crate::prepare::{iou_trackeval, Prepared};

/// Number of localisation thresholds.
pub const ALPHAS: usize = 19;

/// The alpha grid, bit for bit as `np.arange(0.05, 0.99, 0.05)`.
pub fn alphas() -> [f64; ALPHAS] {
    let delta = (0.05f64 + 0.05) - 0.05;
    std::array::from_fn(|i| 0.05 + i as f64 * delta)
}

/// HOTA and its components, averaged over the alpha grid, with the
/// per-alpha arrays needed to combine sequences.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hota {
    pub hota: f64,
    pub deta: f64,
    pub assa: f64,
    pub loca: f64,
    pub detre: f64,
    pub detpr: f64,
    pub assre: f64,
    pub asspr: f64,
    pub owta: f64,
    /// Per-alpha values, in grid order (not serialised).
    #[serde(skip)]
    pub per_alpha: HotaPerAlpha,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HotaPerAlpha {
    pub tp: Vec<f64>,
    #[serde(rename = "fn")]
    pub fn_: Vec<f64>,
    pub fp: Vec<f64>,
    pub assa: Vec<f64>,
    pub assre: Vec<f64>,
    pub asspr: Vec<f64>,
    pub loca: Vec<f64>,
    pub hota: Vec<f64>,
    pub deta: Vec<f64>,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

impl Hota {
    /// Derived fields from TP/FN/FP, AssA/AssRe/AssPr and LocA per alpha
    /// (TrackEval `_compute_final_fields`, then the mean over alphas).
    fn finish(mut a: HotaPerAlpha) -> Hota {
        let n = ALPHAS;
        let mut detre = vec![0.0; n];
        let mut detpr = vec![0.0; n];
        let mut owta = vec![0.0; n];
        a.deta = vec![0.0; n];
        a.hota = vec![0.0; n];
        for i in 0..n {
            let (tp, fn_, fp) = (a.tp[i], a.fn_[i], a.fp[i]);
            detre[i] = tp / (tp + fn_).max(1.0);
            detpr[i] = tp / (tp + fp).max(1.0);
            a.deta[i] = tp / (tp + fn_ + fp).max(1.0);
            a.hota[i] = (a.deta[i] * a.assa[i]).sqrt();
            owta[i] = (detre[i] * a.assa[i]).sqrt();
        }
        Hota {
            hota: mean(&a.hota),
            deta: mean(&a.deta),
            assa: mean(&a.assa),
            loca: mean(&a.loca),
            detre: mean(&detre),
            detpr: mean(&detpr),
            assre: mean(&a.assre),
            asspr: mean(&a.asspr),
            owta: mean(&owta),
            per_alpha: a,
        }
    }

    /// TrackEval `combine_sequences`: counts summed, association scores
    /// weighted by TP, LocA weighted by TP.
    pub fn combine<'a>(parts: impl IntoIterator<Item = &'a Hota>) -> Hota {
        let n = ALPHAS;
        let mut a = HotaPerAlpha {
            tp: vec![0.0; n],
            fn_: vec![0.0; n],
            fp: vec![0.0; n],
            assa: vec![0.0; n],
            assre: vec![0.0; n],
            asspr: vec![0.0; n],
            loca: vec![0.0; n],
            ..HotaPerAlpha::default()
        };
        for p in parts {
            let q = &p.per_alpha;
            for i in 0..n {
                a.tp[i] += q.tp[i];
                a.fn_[i] += q.fn_[i];
                a.fp[i] += q.fp[i];
                a.assa[i] += q.assa[i] * q.tp[i];
                a.assre[i] += q.assre[i] * q.tp[i];
                a.asspr[i] += q.asspr[i] * q.tp[i];
                a.loca[i] += q.loca[i] * q.tp[i];
            }
        }
        for i in 0..n {
            let w = a.tp[i].max(1.0);
            a.assa[i] /= w;
            a.assre[i] /= w;
            a.asspr[i] /= w;
            a.loca[i] = a.loca[i].max(1e-10) / a.tp[i].max(1e-10);
        }
        Hota::finish(a)
    }
}

pub(crate) fn hota(p: &Prepared) -> Hota {
    let n = ALPHAS;
    let eps = f64::EPSILON;
    let mut a = HotaPerAlpha {
        tp: vec![0.0; n],
        fn_: vec![0.0; n],
        fp: vec![0.0; n],
        assa: vec![0.0; n],
        assre: vec![0.0; n],
        asspr: vec![0.0; n],
        loca: vec![0.0; n],
        ..HotaPerAlpha::default()
    };
    let num_gt = p.gt.ids.len();
    let num_tr = p.pred.ids.len();
    if num_tr == 0 || num_gt == 0 {
        if num_tr == 0 {
            a.fn_ = vec![num_gt as f64; n];
        } else {
            a.fp = vec![num_tr as f64; n];
        }
        a.loca = vec![1.0; n];
        return Hota::finish(a);
    }

    // Pass 1: similarities, per-pair potential matches, id counts.
    let mut gt_count = vec![0f64; p.gt.num_ids];
    let mut tr_count = vec![0f64; p.pred.num_ids];
    let mut pair_of: HashMap<(u32, u32), u32> = HashMap::new();
    let mut potential: Vec<f64> = Vec::new();
    let mut sim_off = Vec::with_capacity(p.frames + 1);
    let mut sims: Vec<f64> = Vec::new();
    let mut pair_idx: Vec<u32> = Vec::new();
    let (mut rowsum, mut colsum) = (Vec::new(), Vec::new());
    for t in 0..p.frames {
        sim_off.push(sims.len());
        let (gids, gb) = p.gt.frame(t);
        let (tids, tb) = p.pred.frame(t);
        for &g in gids {
            gt_count[g as usize] += 1.0;
        }
        for &h in tids {
            tr_count[h as usize] += 1.0;
        }
        if gids.is_empty() || tids.is_empty() {
            continue;
        }
        let base = sims.len();
        for g in gb {
            for h in tb {
                sims.push(iou_trackeval(g, h));
            }
        }
        let s = &sims[base..];
        let nt = tids.len();
        rowsum.clear();
        rowsum.extend(s.chunks_exact(nt).map(|r| r.iter().sum::<f64>()));
        colsum.clear();
        colsum.resize(nt, 0.0);
        for r in s.chunks_exact(nt) {
            for (c, v) in colsum.iter_mut().zip(r) {
                *c += v;
            }
        }
        for (i, &g) in gids.iter().enumerate() {
            for (j, &h) in tids.iter().enumerate() {
                let v = s[i * nt + j];
                if v <= 0.0 {
                    pair_idx.push(u32::MAX);
                    continue;
                }
                let denom = colsum[j] + rowsum[i] - v;
                let k = *pair_of.entry((g, h)).or_insert_with(|| {
                    potential.push(0.0);
                    (potential.len() - 1) as u32
                });
                if denom > eps {
                    potential[k as usize] += v / denom;
                }
                pair_idx.push(k);
            }
        }
    }
    sim_off.push(sims.len());
    let mut pair_ids = vec![(0u32, 0u32); potential.len()];
    for (&(g, h), &k) in &pair_of {
        pair_ids[k as usize] = (g, h);
    }
    let align: Vec<f64> = potential
        .iter()
        .zip(&pair_ids)
        .map(|(&pm, &(g, h))| pm / (gt_count[g as usize] + tr_count[h as usize] - pm))
        .collect();

    // Pass 2: per-frame optimal assignment and per-alpha statistics.
    let alpha = alphas();
    let mut matches = vec![[0f64; ALPHAS]; potential.len()];
    let mut assigner = Assigner::default();
    let mut picked: Vec<(usize, usize)> = Vec::new();
    for t in 0..p.frames {
        let ng = p.gt.offsets[t + 1] - p.gt.offsets[t];
        let nt = p.pred.offsets[t + 1] - p.pred.offsets[t];
        if ng == 0 || nt == 0 {
            for i in 0..n {
                a.fp[i] += nt as f64;
                a.fn_[i] += ng as f64;
            }
            continue;
        }
        let s = &sims[sim_off[t]..sim_off[t + 1]];
        let k = &pair_idx[sim_off[t]..sim_off[t + 1]];
        picked.clear();
        assigner.max_score(
            ng,
            nt,
            |i, j| {
                let kk = k[i * nt + j];
                if kk == u32::MAX {
                    0.0
                } else {
                    align[kk as usize] * s[i * nt + j]
                }
            },
            |i, j| picked.push((i, j)),
        );
        for (ai, &al) in alpha.iter().enumerate() {
            let mut num = 0usize;
            for &(i, j) in &picked {
                let v = s[i * nt + j];
                if v >= al - eps {
                    num += 1;
                    a.loca[ai] += v;
                    matches[k[i * nt + j] as usize][ai] += 1.0;
                }
            }
            a.tp[ai] += num as f64;
            a.fn_[ai] += (ng - num) as f64;
            a.fp[ai] += (nt - num) as f64;
        }
    }
    for (m, &(g, h)) in matches.iter().zip(&pair_ids) {
        let (gc, tc) = (gt_count[g as usize], tr_count[h as usize]);
        for (ai, &mc) in m.iter().enumerate() {
            if mc == 0.0 {
                continue;
            }
            a.assa[ai] += mc * (mc / (gc + tc - mc).max(1.0));
            a.assre[ai] += mc * (mc / gc.max(1.0));
            a.asspr[ai] += mc * (mc / tc.max(1.0));
        }
    }
    for ai in 0..n {
        let w = a.tp[ai].max(1.0);
        a.assa[ai] /= w;
        a.assre[ai] /= w;
        a.asspr[ai] /= w;
        a.loca[ai] = a.loca[ai].max(1e-10) / a.tp[ai].max(1e-10);
    }
    Hota::finish(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_grid_matches_numpy_arange() {
        let a = alphas();
        assert_eq!(a[0], 0.05);
        assert_eq!(a[1], 0.1);
        // np.arange(0.05, 0.99, 0.05)[-1] == 0.9500000000000001
        assert_eq!(a[18], 0.9500000000000001);
    }
}
