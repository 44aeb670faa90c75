//! Keypoint tracks as uniformly sampled series: confidence gating, gap
//! filling, left/right label correction and smoothing.

use peregrine_core::{BBox, Keypoint};

/// COCO-17 keypoint indices used here.
pub mod kp {
    pub const NOSE: usize = 0;
    pub const L_EAR: usize = 3;
    pub const R_EAR: usize = 4;
    pub const L_SHOULDER: usize = 5;
    pub const R_SHOULDER: usize = 6;
    pub const L_HIP: usize = 11;
    pub const R_HIP: usize = 12;
    pub const L_KNEE: usize = 13;
    pub const R_KNEE: usize = 14;
    pub const L_ANKLE: usize = 15;
    pub const R_ANKLE: usize = 16;
    /// Number of keypoints in the COCO layout.
    pub const COUNT: usize = 17;
}

/// COCO-17 skeleton: pairs of keypoint indices joined by a limb.
pub const COCO_LIMBS: [(usize, usize); 16] = [
    (5, 7),
    (7, 9),
    (6, 8),
    (8, 10),
    (5, 6),
    (5, 11),
    (6, 12),
    (11, 12),
    (11, 13),
    (13, 15),
    (12, 14),
    (14, 16),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
];

/// One detection of a tracked person: its frame, box and keypoints.
#[derive(Clone, Debug, PartialEq)]
pub struct PoseSample {
    pub frame: u64,
    pub bbox: BBox,
    /// COCO-17 keypoints in source pixels; fewer means "not a pose model".
    pub keypoints: Vec<Keypoint>,
}

/// The detections of one track, in frame order.
#[derive(Clone, Debug, PartialEq)]
pub struct PoseTrack {
    pub track_id: u32,
    pub samples: Vec<PoseSample>,
}

/// One channel of a series: `None` where the value is unknown.
pub(crate) type Channel = Vec<Option<f64>>;

/// A track on a uniform grid of frames `frame0 + i * step`.
#[derive(Clone, Debug)]
pub(crate) struct Grid {
    pub frame0: u64,
    pub step: u64,
    pub fps: f64,
    /// x and y of each keypoint: `xy[k].0` is x.
    pub xy: Vec<(Channel, Channel)>,
    /// Box height in pixels (the body-height scale).
    pub height: Channel,
    /// Grid points where the leg labels were exchanged.
    pub swapped: Vec<bool>,
}

impl Grid {
    pub fn len(&self) -> usize {
        self.height.len()
    }

    /// Seconds at (fractional) grid position `i`.
    pub fn t(&self, i: f64) -> f64 {
        (self.frame0 as f64 + i * self.step as f64) / self.fps
    }

    /// Frame at (fractional) grid position `i`.
    pub fn frame(&self, i: f64) -> f64 {
        self.frame0 as f64 + i * self.step as f64
    }

    pub fn point(&self, k: usize, i: usize) -> Option<(f64, f64)> {
        Some((self.xy[k].0[i]?, self.xy[k].1[i]?))
    }

    /// Lays `track` on the grid; keypoints under `min_conf` are unknown.
    pub fn build(track: &PoseTrack, fps: f64, min_conf: f32) -> Option<Grid> {
        let s = &track.samples;
        if s.len() < 2 || fps <= 0.0 {
            return None;
        }
        let mut steps: Vec<u64> = s
            .windows(2)
            .map(|w| w[1].frame.saturating_sub(w[0].frame))
            .filter(|&d| d > 0)
            .collect();
        if steps.is_empty() {
            return None;
        }
        steps.sort_unstable();
        let step = steps[steps.len() / 2].max(1);
        let frame0 = s[0].frame;
        let n = ((s[s.len() - 1].frame - frame0) / step + 1) as usize;
        let mut xy = vec![(vec![None; n], vec![None; n]); kp::COUNT];
        let mut height = vec![None; n];
        for p in s {
            let off = p.frame - frame0;
            // Frames off the grid (sampling jitter) go to the nearest point.
            let i = ((off as f64 / step as f64).round() as usize).min(n - 1);
            height[i] = Some(p.bbox.height() as f64);
            for (k, q) in p.keypoints.iter().take(kp::COUNT).enumerate() {
                if q.score >= min_conf && q.x.is_finite() && q.y.is_finite() {
                    xy[k].0[i] = Some(q.x as f64);
                    xy[k].1[i] = Some(q.y as f64);
                }
            }
        }
        Some(Grid {
            frame0,
            step,
            fps,
            xy,
            height,
            swapped: vec![false; n],
        })
    }

    /// Fills gaps of at most `max_gap` grid points by linear interpolation.
    pub fn fill_gaps(&mut self, max_gap: usize) {
        for (x, y) in &mut self.xy {
            fill_gaps(x, max_gap);
            fill_gaps(y, max_gap);
        }
        fill_gaps(&mut self.height, max_gap);
    }

    /// Smooths every channel with a Savitzky-Golay filter.
    pub fn smooth(&mut self, sg: SavGol) {
        for (x, y) in &mut self.xy {
            *x = sg.apply(x);
            *y = sg.apply(y);
        }
        // Body height varies slowly; a one-second window.
        let w = ((self.fps / self.step as f64).round() as usize) | 1;
        self.height = SavGol {
            window: w.max(sg.window),
            order: 1,
        }
        .apply(&self.height);
    }

    /// Corrects left/right label swaps of the legs (hip, knee, ankle).
    ///
    /// Side-on, the two legs overlap and pose models often exchange their
    /// labels for a few frames, or for a whole pass. Each leg is followed
    /// physically instead: at each frame the labelling (kept or exchanged)
    /// whose knees and ankles are nearer to where each leg was heading
    /// (constant-velocity prediction from the previous two frames) wins.
    /// Finally the whole series is flipped if it disagrees with the model
    /// on most frames, so labels follow the model where it is consistent.
    pub fn correct_swaps(&mut self) {
        let n = self.len();
        let pairs = [
            (kp::L_HIP, kp::R_HIP),
            (kp::L_KNEE, kp::R_KNEE),
            (kp::L_ANKLE, kp::R_ANKLE),
        ];
        let cues = [(kp::L_KNEE, kp::R_KNEE), (kp::L_ANKLE, kp::R_ANKLE)];
        // Last two known corrected positions per cue joint and side:
        // (grid index, x, y).
        let mut hist: [[Vec<(usize, f64, f64)>; 2]; 2] = Default::default();
        let mut decided = 0usize;
        let mut flipped = 0usize;
        for i in 0..n {
            let mut keep = 0.0;
            let mut swap = 0.0;
            let mut compared = 0;
            for (c, &(l, r)) in cues.iter().enumerate() {
                let (Some(pl), Some(pr)) = (self.point(l, i), self.point(r, i)) else {
                    continue;
                };
                let (Some(ql), Some(qr)) = (predict(&hist[c][0], i), predict(&hist[c][1], i))
                else {
                    continue;
                };
                keep += dist(pl, ql) + dist(pr, qr);
                swap += dist(pl, qr) + dist(pr, ql);
                compared += 1;
            }
            let exchange = compared > 0 && swap < keep;
            if compared > 0 {
                decided += 1;
                flipped += usize::from(exchange);
            }
            if exchange {
                self.swapped[i] = true;
                for &(l, r) in &pairs {
                    self.exchange(l, r, i);
                }
            }
            for (c, &(l, r)) in cues.iter().enumerate() {
                for (side, k) in [(0, l), (1, r)] {
                    if let Some((x, y)) = self.point(k, i) {
                        let h = &mut hist[c][side];
                        h.push((i, x, y));
                        if h.len() > 2 {
                            h.remove(0);
                        }
                    }
                }
            }
        }
        if flipped * 2 > decided {
            for i in 0..n {
                self.swapped[i] = !self.swapped[i];
                for &(l, r) in &pairs {
                    self.exchange(l, r, i);
                }
            }
        }
    }

    fn exchange(&mut self, l: usize, r: usize, i: usize) {
        let (a, b) = (self.xy[l].clone(), self.xy[r].clone());
        self.xy[l].0[i] = b.0[i];
        self.xy[l].1[i] = b.1[i];
        self.xy[r].0[i] = a.0[i];
        self.xy[r].1[i] = a.1[i];
    }
}

fn dist(a: (f64, f64), b: (f64, f64)) -> f64 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}

/// Where a joint is expected at grid point `i` from its last two known
/// positions (constant velocity), or its last position when only one is
/// known. Nothing after a long gap (a second of grid points is not
/// assumed; ten points at most).
fn predict(h: &[(usize, f64, f64)], i: usize) -> Option<(f64, f64)> {
    let &(j, x, y) = h.last()?;
    let gap = i - j;
    if gap > 10 {
        return None;
    }
    match h.len() {
        2 => {
            let (j0, x0, y0) = h[0];
            let d = (j - j0) as f64;
            let g = gap as f64;
            Some((x + (x - x0) / d * g, y + (y - y0) / d * g))
        }
        _ => Some((x, y)),
    }
}

/// Linear interpolation over runs of `None` no longer than `max_gap`
/// with known values on both sides.
pub(crate) fn fill_gaps(c: &mut Channel, max_gap: usize) {
    let mut last: Option<usize> = None;
    for i in 0..c.len() {
        if c[i].is_none() {
            continue;
        }
        if let Some(j) = last {
            let gap = i - j - 1;
            if gap > 0 && gap <= max_gap {
                let (a, b) = (c[j].unwrap_or(0.0), c[i].unwrap_or(0.0));
                for k in j + 1..i {
                    let f = (k - j) as f64 / (i - j) as f64;
                    c[k] = Some(a + (b - a) * f);
                }
            }
        }
        last = Some(i);
    }
}

/// A Savitzky-Golay smoother: at each point, the value at that point of
/// the least-squares polynomial of degree `order` over the `window`
/// points centred on it. Near the ends of a known stretch the window is
/// cut to what is known (the fit is then one-sided), so no data is
/// invented and nothing is smoothed across a gap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SavGol {
    /// Odd number of points.
    pub window: usize,
    pub order: usize,
}

impl SavGol {
    pub fn apply(&self, c: &[Option<f64>]) -> Channel {
        let half = self.window / 2;
        let mut out = vec![None; c.len()];
        if half == 0 {
            return c.to_vec();
        }
        let mut i = 0;
        while i < c.len() {
            if c[i].is_none() {
                i += 1;
                continue;
            }
            let start = i;
            while i < c.len() && c[i].is_some() {
                i += 1;
            }
            let seg: Vec<f64> = c[start..i].iter().map(|v| v.unwrap_or(0.0)).collect();
            for (j, v) in smooth_segment(&seg, half, self.order)
                .into_iter()
                .enumerate()
            {
                out[start + j] = Some(v);
            }
        }
        out
    }
}

fn smooth_segment(seg: &[f64], half: usize, order: usize) -> Vec<f64> {
    let n = seg.len();
    (0..n)
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + half).min(n - 1);
            // Enough points for the degree, else a lower degree.
            let deg = order.min(hi - lo);
            polyfit_at(&seg[lo..=hi], i - lo, deg)
        })
        .collect()
}

/// Least-squares polynomial of degree `deg` through `ys` (at x = 0..len),
/// evaluated at `at`. Centred and solved by Gaussian elimination; degrees
/// here are at most 3.
fn polyfit_at(ys: &[f64], at: usize, deg: usize) -> f64 {
    if deg == 0 {
        return ys.iter().sum::<f64>() / ys.len() as f64;
    }
    let m = deg + 1;
    let c = at as f64;
    let mut a = vec![vec![0.0; m + 1]; m];
    for (x, &y) in ys.iter().enumerate() {
        let x = x as f64 - c;
        let mut p = vec![1.0; 2 * m];
        for k in 1..2 * m {
            p[k] = p[k - 1] * x;
        }
        for r in 0..m {
            for (col, v) in a[r].iter_mut().take(m).enumerate() {
                *v += p[r + col];
            }
            a[r][m] += p[r] * y;
        }
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..m {
        let piv = (col..m)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, piv);
        let d = a[col][col];
        if d.abs() < 1e-12 {
            return ys[at];
        }
        for r in 0..m {
            if r != col {
                let f = a[r][col] / d;
                for k in col..=m {
                    a[r][k] -= f * a[col][k];
                }
            }
        }
    }
    // The value at x = 0 (the centre) is the constant coefficient.
    a[0][m] / a[0][0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn savgol_keeps_polynomials_and_smooths_noise() {
        let c: Channel = (0..30)
            .map(|i| Some(0.5 * (i as f64).powi(2) - i as f64))
            .collect();
        let s = SavGol {
            window: 7,
            order: 2,
        }
        .apply(&c);
        for (a, b) in c.iter().zip(&s) {
            assert!((a.unwrap() - b.unwrap()).abs() < 1e-6);
        }
        let noisy: Channel = (0..30)
            .map(|i| Some(if i % 2 == 0 { 1.0 } else { -1.0 }))
            .collect();
        let s = SavGol {
            window: 7,
            order: 2,
        }
        .apply(&noisy);
        assert!(s[10..20].iter().all(|v| v.unwrap().abs() < 0.5));
    }

    #[test]
    fn gaps_are_filled_only_when_short() {
        let mut c = vec![
            Some(0.0),
            None,
            None,
            Some(3.0),
            None,
            None,
            None,
            Some(0.0),
        ];
        fill_gaps(&mut c, 2);
        assert_eq!(&c[..4], &[Some(0.0), Some(1.0), Some(2.0), Some(3.0)]);
        assert_eq!(&c[4..7], &[None, None, None]);
        // Smoothing does not reach across the gap.
        let s = SavGol {
            window: 5,
            order: 2,
        }
        .apply(&c);
        assert!(s[4..7].iter().all(Option::is_none));
        assert!((s[7].unwrap() - 0.0).abs() < 1e-9);
    }
}
