//! From one person's keypoint track to gait events, metrics and angles.

use serde::Serialize;

use crate::events::{extrema, EventKind, Foot, GaitEvent};
use crate::series::{kp, Grid, PoseTrack, SavGol};

/// How a track is analysed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaitConfig {
    /// Frames per second of the source video.
    pub fps: f64,
    /// Keypoints below this confidence are not used.
    pub min_keypoint_conf: f32,
    /// Savitzky-Golay smoothing of keypoint coordinates.
    pub smoothing: SavGol,
    /// Longest gap, in seconds, bridged by linear interpolation.
    pub max_gap_s: f64,
    /// Subject height in metres, for metric step length and speed.
    pub height_m: Option<f64>,
    /// Source frame width and height: frames where the person's box
    /// touches the edge (entering or leaving, legs cut) are not used.
    pub frame_size: Option<(f32, f32)>,
}

impl GaitConfig {
    /// Defaults for a source at `fps` analysed every `step` frames: a
    /// smoothing window of about 0.2 s (at least 5 points), gaps up to
    /// 0.2 s bridged, keypoints under 0.5 confidence unused.
    pub fn new(fps: f64, step: u32) -> GaitConfig {
        let rate = fps / step.max(1) as f64;
        let half = ((0.1 * rate).round() as usize).max(2);
        GaitConfig {
            fps,
            min_keypoint_conf: 0.5,
            smoothing: SavGol {
                window: 2 * half + 1,
                order: 2,
            },
            max_gap_s: 0.2,
            height_m: None,
            frame_size: None,
        }
    }
}

/// Per-foot values (left, right) and their symmetry index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Sides {
    pub left: Option<f64>,
    pub right: Option<f64>,
}

impl Sides {
    /// Robinson et al. (1987) symmetry index, percent:
    /// `100 * |L - R| / ((L + R) / 2)`; 0 is perfect symmetry.
    pub fn symmetry_index(&self) -> Option<f64> {
        let (l, r) = (self.left?, self.right?);
        let m = 0.5 * (l + r);
        (m.abs() > 1e-12).then(|| 100.0 * (l - r).abs() / m.abs())
    }
}

/// Symmetry indices (percent, 0 = symmetric) of the per-foot metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Symmetry {
    pub step_time: Option<f64>,
    pub stance: Option<f64>,
    pub swing: Option<f64>,
    pub step_length: Option<f64>,
}

/// One joint angle over one gait cycle, resampled at 0, 1, ..., 100 % of
/// the cycle (heel strike to the next heel strike of the same foot).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AngleCycle {
    pub foot: Foot,
    pub start_t: f64,
    /// Degrees; flexion positive.
    pub degrees: Vec<f64>,
}

/// Everything computed for one subject. The serialised form is the
/// `gait --json` subject object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubjectGait {
    pub track_id: u32,
    /// Frames in which the subject was detected.
    pub frames: u64,
    /// Heel strikes seen (each is one step).
    pub steps: usize,
    pub cadence_spm: Option<f64>,
    pub step_time_s: Option<f64>,
    pub stride_time_s: Option<f64>,
    pub stance_pct: Option<f64>,
    pub swing_pct: Option<f64>,
    pub double_support_pct: Option<f64>,
    pub step_length: Option<f64>,
    pub speed: Option<f64>,
    /// "m/s" with a subject height, else "height/s" (body heights).
    pub speed_unit: &'static str,
    /// "m" with a subject height, else "height".
    pub length_unit: &'static str,
    pub symmetry: Symmetry,
    pub events: Vec<GaitEvent>,
    /// Per-foot values behind the symmetry indices.
    #[serde(skip)]
    pub per_foot: PerFoot,
    #[serde(skip)]
    pub knee: Vec<AngleCycle>,
    #[serde(skip)]
    pub hip: Vec<AngleCycle>,
    /// Seconds covered by the track.
    #[serde(skip)]
    pub span_t: (f64, f64),
    /// Frames where the leg labels of the model were exchanged.
    #[serde(skip)]
    pub swapped_frames: usize,
}

/// Per-foot metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PerFoot {
    pub step_time_s: Sides,
    pub stride_time_s: Sides,
    pub stance_pct: Sides,
    pub swing_pct: Sides,
    pub step_length: Sides,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * q).round() as usize]
}

/// Linear interpolation of a channel at fractional position `at`.
fn sample(c: &[Option<f64>], at: f64) -> Option<f64> {
    if at < 0.0 {
        return None;
    }
    let i = at.floor() as usize;
    let f = at - i as f64;
    let a = *c.get(i)?;
    if f < 1e-9 {
        return a;
    }
    let b = *c.get(i + 1)?;
    Some(a? + (b? - a?) * f)
}

/// Midpoint of two keypoints, or the one that is known.
fn mid(g: &Grid, a: usize, b: usize, i: usize) -> Option<(f64, f64)> {
    match (g.point(a, i), g.point(b, i)) {
        (Some(p), Some(q)) => Some((0.5 * (p.0 + q.0), 0.5 * (p.1 + q.1))),
        (p, q) => p.or(q),
    }
}

fn ankle(f: Foot) -> usize {
    match f {
        Foot::Left => kp::L_ANKLE,
        Foot::Right => kp::R_ANKLE,
    }
}
fn knee(f: Foot) -> usize {
    match f {
        Foot::Left => kp::L_KNEE,
        Foot::Right => kp::R_KNEE,
    }
}
fn hip(f: Foot) -> usize {
    match f {
        Foot::Left => kp::L_HIP,
        Foot::Right => kp::R_HIP,
    }
}

/// +1 when the subject walks toward +x in the image, -1 toward -x: from
/// the pelvis' travel when it moved at least half a body height, else
/// from which way the face points (nose ahead of the ears).
fn direction(g: &Grid) -> f64 {
    let pelvis: Vec<(usize, f64)> = (0..g.len())
        .filter_map(|i| mid(g, kp::L_HIP, kp::R_HIP, i).map(|p| (i, p.0)))
        .collect();
    let h = median(g.height.iter().flatten().copied().collect()).unwrap_or(1.0);
    if let (Some(a), Some(b)) = (pelvis.first(), pelvis.last()) {
        if (b.1 - a.1).abs() > 0.5 * h {
            return (b.1 - a.1).signum();
        }
    }
    let face: Vec<f64> = (0..g.len())
        .filter_map(|i| {
            let n = g.point(kp::NOSE, i)?;
            let e = mid(g, kp::L_EAR, kp::R_EAR, i)?;
            Some(n.0 - e.0)
        })
        .collect();
    if median(face).unwrap_or(1.0) < 0.0 {
        -1.0
    } else {
        1.0
    }
}

/// Signed angle (radians) of vector `v` from straight down, positive
/// toward the direction of walking `s`.
fn from_down(v: (f64, f64), s: f64) -> f64 {
    (s * v.0).atan2(v.1)
}

/// Knee flexion, degrees (0 = straight leg).
fn knee_flexion(g: &Grid, f: Foot, i: usize, s: f64) -> Option<f64> {
    let h = g.point(hip(f), i)?;
    let k = g.point(knee(f), i)?;
    let a = g.point(ankle(f), i)?;
    let thigh = from_down((k.0 - h.0, k.1 - h.1), s);
    let shank = from_down((a.0 - k.0, a.1 - k.1), s);
    // Flexion: the shank swings back relative to the thigh.
    Some((thigh - shank).to_degrees())
}

/// Hip flexion, degrees: the thigh's angle ahead of the trunk line
/// (shoulders to hips), positive when the knee is in front.
fn hip_flexion(g: &Grid, f: Foot, i: usize, s: f64) -> Option<f64> {
    let h = g.point(hip(f), i)?;
    let k = g.point(knee(f), i)?;
    let sh = mid(g, kp::L_SHOULDER, kp::R_SHOULDER, i)?;
    let pel = mid(g, kp::L_HIP, kp::R_HIP, i)?;
    let trunk = from_down((pel.0 - sh.0, pel.1 - sh.1), s);
    let thigh = from_down((k.0 - h.0, k.1 - h.1), s);
    Some((thigh - trunk).to_degrees())
}

/// Analyses one track. `None` when the track is too short or lacks legs.
pub fn analyse_track(track: &PoseTrack, cfg: &GaitConfig) -> Option<SubjectGait> {
    let mut g = Grid::build(track, cfg.fps, cfg.min_keypoint_conf, cfg.frame_size)?;
    let dt = g.step as f64 / cfg.fps;
    g.correct_swaps();
    g.fill_gaps((cfg.max_gap_s / dt).round() as usize);
    g.smooth(cfg.smoothing);
    let s = direction(&g);
    let n = g.len();

    // Each foot's position ahead of the pelvis, in body heights.
    let rel = |f: Foot| -> Vec<Option<f64>> {
        (0..n)
            .map(|i| {
                let a = g.point(ankle(f), i)?;
                let p = mid(&g, kp::L_HIP, kp::R_HIP, i)?;
                let h = g.height[i]?;
                (h > 1.0).then(|| s * (a.0 - p.0) / h)
            })
            .collect()
    };
    let rels = [rel(Foot::Left), rel(Foot::Right)];
    let mut events = Vec::new();
    for (f, r) in [Foot::Left, Foot::Right].into_iter().zip(&rels) {
        let known: Vec<f64> = r.iter().flatten().copied().collect();
        if known.len() < 5 {
            continue;
        }
        let range = quantile(&known, 0.9) - quantile(&known, 0.1);
        // A foot that stays within 5 % of body height of the pelvis is
        // not walking.
        if range < 0.05 {
            continue;
        }
        for e in extrema(r, 0.35 * range) {
            events.push(GaitEvent {
                t: g.t(e.at),
                frame: g.frame(e.at),
                foot: f,
                kind: if e.max {
                    EventKind::HeelStrike
                } else {
                    EventKind::ToeOff
                },
                at: e.at,
                segment: e.segment,
            });
        }
    }
    // Segments are counted per foot; make them comparable by grid
    // position: two events share a stretch when no unknown pelvis or
    // ankle value lies between them.
    let known_at = |i: usize| rels[0][i].is_some() && rels[1][i].is_some();
    let mut k = 0;
    let stretch: Vec<usize> = (0..n)
        .map(|i| {
            if i > 0 && (!known_at(i) || !known_at(i - 1)) {
                k += 1;
            }
            k
        })
        .collect();
    for e in &mut events {
        e.segment = stretch[(e.at.round() as usize).min(n - 1)];
    }
    events.sort_by(|a, b| a.t.total_cmp(&b.t));

    let same = |a: &GaitEvent, b: &GaitEvent| a.segment == b.segment;
    let hs: Vec<&GaitEvent> = events
        .iter()
        .filter(|e| e.kind == EventKind::HeelStrike)
        .collect();
    let mut per = PerFoot::default();
    let mut step_times: [Vec<f64>; 2] = Default::default();
    for w in hs.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.foot != b.foot && same(a, b) && b.t - a.t < 2.0 {
            step_times[b.foot as usize].push(b.t - a.t);
        }
    }
    // Strides, stance, swing and double support per cycle of each foot.
    let mut stride: [Vec<f64>; 2] = Default::default();
    let mut stance: [Vec<f64>; 2] = Default::default();
    let mut ds: Vec<f64> = Vec::new();
    let mut cycles: Vec<(Foot, f64, f64, f64, f64)> = Vec::new();
    for f in [Foot::Left, Foot::Right] {
        let mine: Vec<&GaitEvent> = hs.iter().copied().filter(|e| e.foot == f).collect();
        for w in mine.windows(2) {
            let (a, b) = (w[0], w[1]);
            let d = b.t - a.t;
            if !same(a, b) || d > 3.0 {
                continue;
            }
            let inside = |foot: Foot, kind: EventKind| -> Vec<&GaitEvent> {
                events
                    .iter()
                    .filter(|e| e.foot == foot && e.kind == kind && e.t > a.t && e.t < b.t)
                    .collect()
            };
            let other_hs = inside(f.other(), EventKind::HeelStrike);
            if other_hs.len() != 1 {
                continue;
            }
            stride[f as usize].push(d);
            cycles.push((f, a.t, b.t, a.at, b.at));
            let to = inside(f, EventKind::ToeOff);
            if to.len() != 1 {
                continue;
            }
            let to = to[0].t;
            stance[f as usize].push(100.0 * (to - a.t) / d);
            let other_to = inside(f.other(), EventKind::ToeOff);
            let ohs = other_hs[0].t;
            if other_to.len() == 1 && other_to[0].t < ohs && ohs < to {
                ds.push(100.0 * ((other_to[0].t - a.t) + (to - ohs)) / d);
            }
        }
    }
    // Step length: the leading ankle ahead of the trailing one at heel
    // strike, in body heights.
    let mut step_len: [Vec<f64>; 2] = Default::default();
    for e in &hs {
        let (Some(a), Some(b), Some(h)) = (
            sample(&g.xy[ankle(e.foot)].0, e.at),
            sample(&g.xy[ankle(e.foot.other())].0, e.at),
            sample(&g.height, e.at),
        ) else {
            continue;
        };
        if h > 1.0 {
            step_len[e.foot as usize].push(s * (a - b) / h);
        }
    }
    let side = |v: &[Vec<f64>; 2]| Sides {
        left: mean(&v[0]),
        right: mean(&v[1]),
    };
    per.step_time_s = side(&step_times);
    per.stride_time_s = side(&stride);
    per.stance_pct = side(&stance);
    per.swing_pct = Sides {
        left: per.stance_pct.left.map(|v| 100.0 - v),
        right: per.stance_pct.right.map(|v| 100.0 - v),
    };
    per.step_length = side(&step_len);
    let all = |v: &[Vec<f64>; 2]| mean(&[v[0].clone(), v[1].clone()].concat());
    let step_time = all(&step_times);
    let stride_time = all(&stride);
    let cadence = step_time
        .map(|t| 60.0 / t)
        .or(stride_time.map(|t| 120.0 / t));
    let stance_pct = all(&stance);
    let scale = cfg.height_m.unwrap_or(1.0);
    let step_length = all(&step_len).map(|l| l * scale);
    if let Some(h) = cfg.height_m {
        per.step_length.left = per.step_length.left.map(|v| v * h);
        per.step_length.right = per.step_length.right.map(|v| v * h);
    }
    // Speed from step length and cadence: unaffected by a panning camera,
    // which moves the pelvis in the image but not one ankle relative to
    // the other.
    let speed = match (step_length, cadence) {
        (Some(l), Some(c)) => Some(l * c / 60.0),
        _ => None,
    };

    // Angle curves per cycle.
    let mut knee_cycles = Vec::new();
    let mut hip_cycles = Vec::new();
    for &(f, t0, _t1, a0, a1) in &cycles {
        let curve = |angle: &dyn Fn(usize) -> Option<f64>| -> Option<Vec<f64>> {
            let vals: Vec<Option<f64>> = (0..n).map(angle).collect();
            (0..=100)
                .map(|p| sample(&vals, a0 + (a1 - a0) * p as f64 / 100.0))
                .collect()
        };
        if let Some(d) = curve(&|i| knee_flexion(&g, f, i, s)) {
            knee_cycles.push(AngleCycle {
                foot: f,
                start_t: t0,
                degrees: d,
            });
        }
        if let Some(d) = curve(&|i| hip_flexion(&g, f, i, s)) {
            hip_cycles.push(AngleCycle {
                foot: f,
                start_t: t0,
                degrees: d,
            });
        }
    }
    let symmetry = Symmetry {
        step_time: per.step_time_s.symmetry_index(),
        stance: per.stance_pct.symmetry_index(),
        swing: per.swing_pct.symmetry_index(),
        step_length: per.step_length.symmetry_index(),
    };
    Some(SubjectGait {
        track_id: track.track_id,
        frames: track.samples.len() as u64,
        steps: hs.len(),
        cadence_spm: cadence,
        step_time_s: step_time,
        stride_time_s: stride_time,
        stance_pct,
        swing_pct: stance_pct.map(|v| 100.0 - v),
        double_support_pct: mean(&ds),
        step_length,
        speed,
        speed_unit: if cfg.height_m.is_some() {
            "m/s"
        } else {
            "height/s"
        },
        length_unit: if cfg.height_m.is_some() {
            "m"
        } else {
            "height"
        },
        symmetry,
        events,
        per_foot: per,
        knee: knee_cycles,
        hip: hip_cycles,
        span_t: (g.t(0.0), g.t((n - 1) as f64)),
        swapped_frames: g.swapped.iter().filter(|&&b| b).count(),
    })
}

/// Whether a track walks steadily across the frame, and how prominent it
/// is: `Some(score)` for walking tracks (larger = main subject).
///
/// Walking means: at least a second long, the box centre travels at least
/// one body height (box height) overall, and in at least 70 % of its
/// half-second windows it moves the same way. The score is the distance
/// travelled in pixels, so the nearest, longest walk comes first.
pub fn walking_score(track: &PoseTrack, fps: f64) -> Option<f64> {
    let s = &track.samples;
    if s.len() < 8 || fps <= 0.0 {
        return None;
    }
    let dur = (s[s.len() - 1].frame - s[0].frame) as f64 / fps;
    if dur < 1.0 {
        return None;
    }
    let h = median(s.iter().map(|p| p.bbox.height() as f64).collect())?;
    let xs: Vec<(f64, f64)> = s
        .iter()
        .map(|p| (p.frame as f64 / fps, p.bbox.center().0 as f64))
        .collect();
    let net = xs[xs.len() - 1].1 - xs[0].1;
    if net.abs() < h {
        return None;
    }
    let mut windows = 0;
    let mut along = 0;
    let mut j = 0;
    for i in 0..xs.len() {
        while j < xs.len() && xs[j].0 - xs[i].0 < 0.5 {
            j += 1;
        }
        if j >= xs.len() {
            break;
        }
        windows += 1;
        if (xs[j].1 - xs[i].1) * net.signum() > 0.0 {
            along += 1;
        }
    }
    (windows > 0 && along as f64 >= 0.7 * windows as f64).then_some(net.abs())
}

/// The walking subjects among `tracks`, main subject first, analysed;
/// a walking track with fewer than two heel strikes found is left out
/// (nothing about its gait can be measured).
pub fn analyse_subjects(tracks: &[PoseTrack], cfg: &GaitConfig) -> Vec<SubjectGait> {
    let mut walking: Vec<(f64, &PoseTrack)> = tracks
        .iter()
        .filter_map(|t| walking_score(t, cfg.fps).map(|s| (s, t)))
        .collect();
    walking.sort_by(|a, b| b.0.total_cmp(&a.0));
    walking
        .into_iter()
        .filter_map(|(_, t)| analyse_track(t, cfg))
        .filter(|g| g.steps >= 2)
        .collect()
}
