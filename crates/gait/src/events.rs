//! Gait events from the coordinate-based method of Zeni et al. (2008):
//! each foot's horizontal position relative to the pelvis, along the
//! direction of walking, peaks at heel strike (the foot furthest in
//! front) and bottoms out at toe-off (furthest behind).

use serde::Serialize;

/// Which foot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Foot {
    Left,
    Right,
}

impl Foot {
    pub fn other(self) -> Foot {
        match self {
            Foot::Left => Foot::Right,
            Foot::Right => Foot::Left,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Foot::Left => "left",
            Foot::Right => "right",
        }
    }
}

/// Heel strike (initial contact) or toe-off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum EventKind {
    #[serde(rename = "heel_strike")]
    HeelStrike,
    #[serde(rename = "toe_off")]
    ToeOff,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::HeelStrike => "heel_strike",
            EventKind::ToeOff => "toe_off",
        }
    }
}

/// One gait event.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GaitEvent {
    /// Seconds from the start of the video.
    pub t: f64,
    pub foot: Foot,
    pub kind: EventKind,
    /// Source frame (fractional: refined between analysed frames).
    pub frame: f64,
    /// Grid position (fractional), for looking signals up.
    #[serde(skip)]
    pub(crate) at: f64,
    /// Index of the stretch of known data the event lies in; events of
    /// different stretches are never paired.
    #[serde(skip)]
    pub(crate) segment: usize,
}

/// Extremum of a signal: position (refined) and whether it is a maximum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Extremum {
    pub at: f64,
    pub max: bool,
    pub segment: usize,
}

/// Alternating maxima and minima of `r` that stand out by at least
/// `delta` from their neighbours (a zigzag with hysteresis), found in each
/// stretch of known values separately. An extremum at the edge of a
/// stretch is kept only when the signal has clearly turned after it, so a
/// stretch cut mid-swing gives no false event.
pub(crate) fn extrema(r: &[Option<f64>], delta: f64) -> Vec<Extremum> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut segment = 0;
    while i < r.len() {
        if r[i].is_none() {
            i += 1;
            continue;
        }
        let start = i;
        while i < r.len() && r[i].is_some() {
            i += 1;
        }
        let seg: Vec<f64> = r[start..i].iter().map(|v| v.unwrap_or(0.0)).collect();
        for (j, max) in zigzag(&seg, delta) {
            out.push(Extremum {
                at: start as f64 + refine(&seg, j),
                max,
                segment,
            });
        }
        segment += 1;
    }
    out
}

fn zigzag(s: &[f64], delta: f64) -> Vec<(usize, bool)> {
    let mut out = Vec::new();
    if s.len() < 3 {
        return out;
    }
    // 0: undecided, 1: looking for a maximum, -1: for a minimum.
    let mut dir = 0i8;
    let (mut hi, mut lo) = (0usize, 0usize);
    let mut cand = 0usize;
    for i in 1..s.len() {
        let v = s[i];
        match dir {
            0 => {
                if v > s[hi] {
                    hi = i;
                }
                if v < s[lo] {
                    lo = i;
                }
                if v - s[lo] >= delta {
                    // Rising: the low point is a minimum if the signal
                    // fell to it (not the first sample, nor a level
                    // stretch such as standing before walking off).
                    if lo > 0 && s[0] - s[lo] >= delta / 2.0 {
                        out.push((lo, false));
                    }
                    dir = 1;
                    cand = i;
                } else if s[hi] - v >= delta {
                    if hi > 0 && s[hi] - s[0] >= delta / 2.0 {
                        out.push((hi, true));
                    }
                    dir = -1;
                    cand = i;
                }
            }
            1 => {
                if v >= s[cand] {
                    cand = i;
                } else if s[cand] - v >= delta {
                    out.push((cand, true));
                    dir = -1;
                    cand = i;
                }
            }
            _ => {
                if v <= s[cand] {
                    cand = i;
                } else if v - s[cand] >= delta {
                    out.push((cand, false));
                    dir = 1;
                    cand = i;
                }
            }
        }
    }
    // A pending extremum counts when it is inside the stretch and the
    // signal has turned by half the threshold since.
    let last = s[s.len() - 1];
    if dir != 0 && cand + 1 < s.len() {
        let turned = if dir == 1 {
            s[cand] - last
        } else {
            last - s[cand]
        };
        if turned >= delta / 2.0 {
            out.push((cand, dir == 1));
        }
    }
    out
}

/// Sub-sample position of the extremum at `j` (parabola through three
/// points).
fn refine(s: &[f64], j: usize) -> f64 {
    if j == 0 || j + 1 >= s.len() {
        return j as f64;
    }
    let (a, b, c) = (s[j - 1], s[j], s[j + 1]);
    let den = a - 2.0 * b + c;
    if den.abs() < 1e-12 {
        return j as f64;
    }
    j as f64 + (0.5 * (a - c) / den).clamp(-0.5, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_finds_alternating_extrema_and_ignores_wiggles() {
        let r: Vec<Option<f64>> = (0..100)
            .map(|i| {
                let t = i as f64 / 10.0;
                Some(t.sin() + 0.02 * (7.0 * t).sin())
            })
            .collect();
        let e = extrema(&r, 0.5);
        let maxima: Vec<f64> = e.iter().filter(|e| e.max).map(|e| e.at).collect();
        let minima: Vec<f64> = e.iter().filter(|e| !e.max).map(|e| e.at).collect();
        // sin peaks at pi/2 + 2k pi: 15.7, 78.5; troughs 47.1.
        assert_eq!(maxima.len(), 2, "{e:?}");
        assert!((maxima[0] - 15.7).abs() < 1.0);
        assert!((maxima[1] - 78.5).abs() < 1.0);
        assert_eq!(minima.len(), 1, "{e:?}");
        assert!((minima[0] - 47.1).abs() < 1.0);
        for w in e.windows(2) {
            assert_ne!(w[0].max, w[1].max);
        }
    }
}
