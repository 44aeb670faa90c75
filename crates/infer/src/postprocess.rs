//! Turning raw model outputs into candidate boxes, per family.
//!
//! All boxes here are in model-input pixels; the detector maps them back to
//! the source frame after NMS, so only survivors pay for the mapping.

use peregrine_core::{BBox, ClassId};

use crate::ModelSpec;

/// A box before NMS. `anchor` indexes the output row it came from, so pose
/// keypoints can be read for survivors only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub class_id: ClassId,
    pub score: f32,
    pub bbox: BBox,
    pub anchor: u32,
}

/// Thresholds applied while decoding.
pub(crate) struct DecodeParams<'a> {
    pub conf: f32,
    /// `allowed[c]` is true for classes the user asked for; `None` = all.
    pub allowed: Option<&'a [bool]>,
}

impl DecodeParams<'_> {
    /// Best allowed class among `scores(c)` for `c in 0..n`.
    #[inline]
    fn best_class(&self, n: usize, scores: impl Fn(usize) -> f32) -> (usize, f32) {
        let mut best = (0usize, f32::NEG_INFINITY);
        for c in 0..n {
            if let Some(a) = self.allowed {
                if !a.get(c).copied().unwrap_or(false) {
                    continue;
                }
            }
            let s = scores(c);
            if s > best.1 {
                best = (c, s);
            }
        }
        best
    }
}

/// Grid cells over strides in output order: (x, y, stride).
fn grid(spec: &ModelSpec) -> impl Iterator<Item = (f32, f32, f32)> + '_ {
    spec.strides.iter().flat_map(move |&s| {
        let gw = spec.input_width.div_ceil(s);
        let gh = spec.input_height.div_ceil(s);
        (0..gh).flat_map(move |y| (0..gw).map(move |x| (x as f32, y as f32, s as f32)))
    })
}

/// YOLOX raw grid: per anchor (x, y, w, h, obj, classes...);
/// xy = (xy + grid) * stride, wh = exp(wh) * stride, score = obj * cls.
pub(crate) fn decode_yolox(
    out: &[f32],
    spec: &ModelSpec,
    p: &DecodeParams,
    cands: &mut Vec<Candidate>,
) {
    let nc = spec.num_classes;
    let row = 5 + nc;
    for (a, (gx, gy, s)) in grid(spec).enumerate() {
        let r = &out[a * row..(a + 1) * row];
        let obj = r[4];
        // Class scores are <= 1, so obj alone bounds the final score.
        if obj < p.conf {
            continue;
        }
        let (c, cls) = p.best_class(nc, |c| r[5 + c]);
        let score = obj * cls;
        if score < p.conf {
            continue;
        }
        let cx = (r[0] + gx) * s;
        let cy = (r[1] + gy) * s;
        let w = r[2].exp() * s;
        let h = r[3].exp() * s;
        cands.push(Candidate {
            class_id: c as ClassId,
            score,
            bbox: BBox::from_cxcywh(cx, cy, w, h),
            anchor: a as u32,
        });
    }
}

/// NanoDet GFL head: class scores (sigmoid applied) and, per side, a
/// distribution over `reg_max + 1` bins whose expectation times the stride
/// is the distance from the cell centre.
pub(crate) fn decode_nanodet(
    levels: &[(&[f32], &[f32]); 3],
    reg_max: usize,
    spec: &ModelSpec,
    p: &DecodeParams,
    cands: &mut Vec<Candidate>,
) {
    let nc = spec.num_classes;
    let bins = reg_max + 1;
    let mut anchor = 0u32;
    for (lvl, &s) in spec.strides.iter().enumerate() {
        let (cls, reg) = levels[lvl];
        let gw = spec.input_width.div_ceil(s) as usize;
        let n = cls.len() / nc;
        for i in 0..n {
            let scores = &cls[i * nc..(i + 1) * nc];
            let (c, score) = p.best_class(nc, |c| scores[c]);
            if score < p.conf {
                anchor += 1;
                continue;
            }
            let cx = ((i % gw) as f32 + 0.5) * s as f32;
            let cy = ((i / gw) as f32 + 0.5) * s as f32;
            let r = &reg[i * 4 * bins..(i + 1) * 4 * bins];
            let mut d = [0f32; 4];
            for (side, dist) in d.iter_mut().enumerate() {
                let logits = &r[side * bins..(side + 1) * bins];
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                let mut expect = 0.0;
                for (j, &l) in logits.iter().enumerate() {
                    let e = (l - max).exp();
                    sum += e;
                    expect += e * j as f32;
                }
                *dist = expect / sum * s as f32;
            }
            cands.push(Candidate {
                class_id: c as ClassId,
                score,
                bbox: BBox::new(cx - d[0], cy - d[1], cx + d[2], cy + d[3]),
                anchor,
            });
            anchor += 1;
        }
    }
}

/// Ultralytics head, transposed: row r of anchor a is `out[r * anchors + a]`;
/// rows 0-3 are cx, cy, w, h in input pixels, then class scores, then
/// keypoints (x, y, conf).
pub(crate) fn decode_ultralytics(
    out: &[f32],
    spec: &ModelSpec,
    p: &DecodeParams,
    cands: &mut Vec<Candidate>,
) {
    let na = out.len() / (4 + spec.num_classes + keypoint_rows(spec));
    let nc = spec.num_classes;
    for a in 0..na {
        let (c, score) = p.best_class(nc, |c| out[(4 + c) * na + a]);
        if score < p.conf {
            continue;
        }
        let v = |r: usize| out[r * na + a];
        cands.push(Candidate {
            class_id: c as ClassId,
            score,
            bbox: BBox::from_cxcywh(v(0), v(1), v(2), v(3)),
            anchor: a as u32,
        });
    }
}

pub(crate) fn keypoint_rows(spec: &ModelSpec) -> usize {
    match spec.layout {
        crate::OutputLayout::Ultralytics { keypoints, .. } => keypoints * 3,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BatchDim, Family, OutputLayout};

    fn spec(family: Family, w: u32, nc: usize, layout: OutputLayout) -> ModelSpec {
        ModelSpec {
            family,
            input_name: "x".into(),
            input_width: w,
            input_height: w,
            batch: BatchDim::Fixed(1),
            num_classes: nc,
            layout,
            strides: [8, 16, 32],
        }
    }

    #[test]
    fn yolox_decodes_grid_offsets_and_stride() {
        // 64x64 input: grids 8x8, 4x4, 2x2 = 84 anchors, 2 classes.
        let s = spec(Family::Yolox, 64, 2, OutputLayout::Yolox { output: 0 });
        let mut out = vec![0f32; 84 * 7];
        // Anchor 9 = stride 8, cell (1, 1): x=0.5 -> (0.5+1)*8 = 12.
        let a = 9;
        out[a * 7..a * 7 + 7].copy_from_slice(&[0.5, 0.25, 0.0, (2f32).ln(), 0.9, 0.2, 0.8]);
        let mut c = vec![];
        decode_yolox(
            &out,
            &s,
            &DecodeParams {
                conf: 0.3,
                allowed: None,
            },
            &mut c,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].class_id, 1);
        assert!((c[0].score - 0.72).abs() < 1e-6);
        // cx=12, cy=10, w=8, h=16
        assert_eq!(c[0].bbox, BBox::new(8.0, 2.0, 16.0, 18.0));
        // Excluding class 1 leaves 0.9 * 0.2 = 0.18 < 0.3.
        let allowed = [true, false];
        c.clear();
        decode_yolox(
            &out,
            &s,
            &DecodeParams {
                conf: 0.3,
                allowed: Some(&allowed),
            },
            &mut c,
        );
        assert!(c.is_empty());
    }

    #[test]
    fn nanodet_distribution_expectation() {
        let s = spec(
            Family::Nanodet,
            32,
            1,
            OutputLayout::Nanodet {
                levels: [(0, 1), (2, 3), (4, 5)],
                reg_max: 1,
            },
        );
        // 32x32: grids 4x4 (16), 2x2 (4), 1x1 (1); reg_max 1 -> 2 bins.
        let cls8 = {
            let mut v = vec![0f32; 16];
            v[5] = 0.9; // cell (1, 1)
            v
        };
        let mut reg8 = vec![0f32; 16 * 8];
        // Side logits equal -> expectation 0.5 bins -> 4 px at stride 8.
        reg8[5 * 8..5 * 8 + 8].copy_from_slice(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let (cls16, reg16, cls32, reg32) =
            (vec![0f32; 4], vec![0f32; 32], vec![0f32; 1], vec![0f32; 8]);
        let levels = [
            (&cls8[..], &reg8[..]),
            (&cls16[..], &reg16[..]),
            (&cls32[..], &reg32[..]),
        ];
        let mut c = vec![];
        decode_nanodet(
            &levels,
            1,
            &s,
            &DecodeParams {
                conf: 0.5,
                allowed: None,
            },
            &mut c,
        );
        assert_eq!(c.len(), 1);
        // centre (1.5*8, 1.5*8) = (12, 12), 4 px each side.
        assert_eq!(c[0].bbox, BBox::new(8.0, 8.0, 16.0, 16.0));
    }

    #[test]
    fn ultralytics_reads_transposed_rows() {
        let s = spec(
            Family::Ultralytics,
            32,
            2,
            OutputLayout::Ultralytics {
                output: 0,
                keypoints: 0,
            },
        );
        let na = 21;
        let mut out = vec![0f32; 6 * na];
        let a = 3;
        for (r, v) in [10.0, 20.0, 4.0, 6.0, 0.1, 0.7].iter().enumerate() {
            out[r * na + a] = *v;
        }
        let mut c = vec![];
        decode_ultralytics(
            &out,
            &s,
            &DecodeParams {
                conf: 0.25,
                allowed: None,
            },
            &mut c,
        );
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].class_id, c[0].anchor), (1, 3));
        assert_eq!(c[0].bbox, BBox::new(8.0, 17.0, 12.0, 23.0));
    }
}
