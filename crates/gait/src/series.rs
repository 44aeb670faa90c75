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

    /// Lays `track` on the grid; keypoints under `min_conf` are unknown,
    /// and so is a whole frame where the box reaches the edge of a frame
    /// of `frame_size` (the body is cut: entering or leaving the view).
    pub fn build(
        track: &PoseTrack,
        fps: f64,
        min_conf: f32,
        frame_size: Option<(f32, f32)>,
    ) -> Option<Grid> {
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
            if let Some((w, h)) = frame_size {
                // Within 1.5 % of the width (4 px at least) of the left
                // or right edge: a foot may already be outside, and the
                // model then puts its keypoints at the edge. Top and
                // bottom: touching (feet are often filmed close to the
                // bottom edge).
                let (mx, my) = ((0.015 * w).max(4.0), 2.0);
                let b = &p.bbox;
                if b.x1 <= mx || b.y1 <= my || b.x2 >= w - mx || b.y2 >= h - my {
                    continue;
                }
            }
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
    /// Side-on, the two legs overlap and pose models sometimes exchange
    /// their labels for a stretch of frames. Each leg is followed
    /// physically instead: a Viterbi search over "labels kept" or
    /// "labels exchanged" per frame minimises the knees' and ankles'
    /// accelerations (second differences of position: an exchanged label
    /// makes both legs jump by the distance between them) plus a small
    /// cost, 2 % of body height, per exchanged frame, so where movement
    /// does not tell (the legs crossing, missing keypoints) the model's
    /// labels stand.
    pub fn correct_swaps(&mut self) {
        let n = self.len();
        if n < 3 {
            return;
        }
        let h = {
            let mut v: Vec<f64> = self.height.iter().flatten().copied().collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(100.0)
        };
        let prior = 0.02 * h;
        let cues = [(kp::L_KNEE, kp::R_KNEE), (kp::L_ANKLE, kp::R_ANKLE)];
        // Position of `side` (0 left, 1 right) of cue `c` at `i` when the
        // labels there are exchanged (`x` = 1) or not.
        let pos = |g: &Grid, c: usize, side: usize, i: usize, x: usize| {
            let k = if side ^ x == 0 { cues[c].0 } else { cues[c].1 };
            g.point(k, i)
        };
        let acc = |g: &Grid, i: usize, a: usize, b: usize, x: usize| -> f64 {
            let mut sum = 0.0;
            for c in 0..cues.len() {
                for side in 0..2 {
                    if let (Some(p0), Some(p1), Some(p2)) = (
                        pos(g, c, side, i - 2, a),
                        pos(g, c, side, i - 1, b),
                        pos(g, c, side, i, x),
                    ) {
                        sum += ((p2.0 - 2.0 * p1.0 + p0.0).powi(2)
                            + (p2.1 - 2.0 * p1.1 + p0.1).powi(2))
                        .sqrt();
                    }
                }
            }
            sum
        };
        // cost[a * 2 + b]: best cost with state a at i - 1 and b at i.
        let mut cost = [0.0f64; 4];
        for (k, c) in cost.iter_mut().enumerate() {
            *c = prior * ((k >> 1) + (k & 1)) as f64;
        }
        let mut back: Vec<[usize; 4]> = vec![[0; 4]; n];
        for (i, bk) in back.iter_mut().enumerate().skip(2) {
            let mut next = [f64::INFINITY; 4];
            for b in 0..2 {
                for x in 0..2 {
                    for a in 0..2 {
                        let v = cost[a * 2 + b] + acc(self, i, a, b, x) + prior * x as f64;
                        if v < next[b * 2 + x] {
                            next[b * 2 + x] = v;
                            bk[b * 2 + x] = a;
                        }
                    }
                }
            }
            cost = next;
        }
        let mut k = (0..4)
            .min_by(|&p, &q| cost[p].total_cmp(&cost[q]))
            .unwrap_or(0);
        let mut states = vec![0usize; n];
        states[n - 1] = k & 1;
        states[n - 2] = k >> 1;
        for i in (2..n).rev() {
            let a = back[i][k];
            states[i - 2] = a;
            k = a * 2 + (k >> 1);
        }
        for (i, &x) in states.iter().enumerate() {
            if x == 1 {
                self.swapped[i] = true;
                for (l, r) in [
                    (kp::L_HIP, kp::R_HIP),
                    (kp::L_KNEE, kp::R_KNEE),
                    (kp::L_ANKLE, kp::R_ANKLE),
                ] {
                    self.exchange(l, r, i);
                }
            }
        }
    }

    fn exchange(&mut self, l: usize, r: usize, i: usize) {
        let (lo, hi) = (l.min(r), l.max(r));
        let (a, b) = self.xy.split_at_mut(hi);
        std::mem::swap(&mut a[lo].0[i], &mut b[0].0[i]);
        std::mem::swap(&mut a[lo].1[i], &mut b[0].1[i]);
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
                for (k, v) in c.iter_mut().enumerate().take(i).skip(j + 1) {
                    let f = (k - j) as f64 / (i - j) as f64;
                    *v = Some(a + (b - a) * f);
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
        let pivot = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / d;
                for (x, p) in row.iter_mut().zip(&pivot).skip(col) {
                    *x -= f * p;
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
