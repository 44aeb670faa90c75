//! Ground truth by construction: keypoint tracks of a walking figure with
//! exactly known heel strikes and toe-offs, fed through the analysis.
//!
//! The figure walks side-on toward +x at constant speed. Each foot is
//! planted (fixed in the world) from heel strike to toe-off, and swings
//! with a smooth velocity profile that leaves and lands faster than the
//! pelvis (1.42 × its speed), so its position relative to the pelvis
//! rises through the whole swing and falls through the whole stance:
//! heel strike is exactly the most anterior point and toe-off the most
//! posterior one, which is what the coordinate method detects. The event
//! times fall between frames. Knees come from two-segment inverse
//! kinematics, and every coordinate gets pseudo-random noise of 1 px
//! standard deviation (body height 300 px).

use peregrine_core::{BBox, Keypoint};
use peregrine_gait::{
    analyse_subjects, analyse_track, kp, EventKind, Foot, GaitConfig, GaitEvent, PoseSample,
    PoseTrack,
};

const FPS: f64 = 30.0;
const H: f64 = 300.0;

#[derive(Clone, Copy)]
struct Walk {
    stride_s: f64,
    stance: f64,
    /// Pelvis speed, px/s.
    speed: f64,
    /// First left heel strike, s.
    first_hs: f64,
    duration: f64,
    noise: f64,
}

impl Walk {
    fn normal() -> Walk {
        Walk {
            stride_s: 1.08,
            stance: 0.62,
            speed: 120.0,
            first_hs: 0.217,
            duration: 6.0,
            noise: 1.0,
        }
    }

    fn cadence(&self) -> f64 {
        120.0 / self.stride_s
    }

    /// Heel strike time of a foot's cycle `k`.
    fn hs(&self, f: Foot, k: i64) -> f64 {
        self.first_hs
            + k as f64 * self.stride_s
            + if f == Foot::Right {
                self.stride_s / 2.0
            } else {
                0.0
            }
    }

    fn truth(&self) -> Vec<(f64, Foot, EventKind)> {
        let mut v = Vec::new();
        for f in [Foot::Left, Foot::Right] {
            for k in -2..20 {
                let hs = self.hs(f, k);
                let to = hs + self.stance * self.stride_s;
                for (t, kind) in [(hs, EventKind::HeelStrike), (to, EventKind::ToeOff)] {
                    if t > 0.0 && t < self.duration {
                        v.push((t, f, kind));
                    }
                }
            }
        }
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    }

    /// Foot position in the world (x along the walk, lift above ground).
    fn foot(&self, f: Foot, t: f64) -> (f64, f64) {
        let stride_len = self.speed * self.stride_s;
        // Landing point of cycle k: 30 % of a stride ahead of the pelvis.
        let k = ((t - self.hs(f, 0)) / self.stride_s).floor() as i64;
        let hs = self.hs(f, k);
        let land = self.speed * hs + 0.3 * stride_len;
        let to = hs + self.stance * self.stride_s;
        if t < to {
            return (land, 0.0);
        }
        let ts = (1.0 - self.stance) * self.stride_s;
        let tau = (t - to) / ts;
        let c = |u: f64| (std::f64::consts::PI * (u + 0.2) / 1.4).cos();
        let frac = (c(0.0) - c(tau)) / (c(0.0) - c(1.0));
        (
            land + stride_len * frac,
            0.06 * H * (std::f64::consts::PI * tau).sin(),
        )
    }
}

/// Deterministic pseudo-random normal noise (xorshift + Box-Muller).
struct Noise(u64);
impl Noise {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (a, b) = (self.uniform().max(1e-12), self.uniform());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }
}

/// Knee position by two-link inverse kinematics, knee bending forward.
fn knee(hip: (f64, f64), ankle: (f64, f64)) -> (f64, f64) {
    let (l1, l2) = (0.245 * H, 0.246 * H);
    let (dx, dy) = (ankle.0 - hip.0, ankle.1 - hip.1);
    let d = (dx * dx + dy * dy).sqrt().min(l1 + l2 - 1e-6);
    let a = (l1 * l1 - l2 * l2 + d * d) / (2.0 * d);
    let h = (l1 * l1 - a * a).max(0.0).sqrt();
    let (ux, uy) = (dx / d, dy / d);
    let (mx, my) = (hip.0 + a * ux, hip.1 + a * uy);
    // Of the two solutions, the knee in front (toward +x).
    let p = (mx - h * uy, my + h * ux);
    let q = (mx + h * uy, my - h * ux);
    if p.0 >= q.0 {
        p
    } else {
        q
    }
}

fn track(w: &Walk, id: u32, x0: f64, seed: u64) -> PoseTrack {
    let mut rng = Noise(seed);
    let ground = 600.0;
    let frames = (w.duration * FPS) as u64;
    let samples = (0..frames)
        .map(|fr| {
            let t = fr as f64 / FPS;
            let px = x0 + w.speed * t;
            let py = ground - 0.52 * H;
            let mut pts = vec![(0.0, 0.0); 17];
            pts[kp::NOSE] = (px + 0.07 * H, ground - 0.94 * H);
            // Eyes and ears.
            for p in &mut pts[1..=4] {
                *p = (px + 0.03 * H, ground - 0.95 * H);
            }
            pts[kp::L_SHOULDER] = (px, ground - 0.81 * H);
            pts[kp::R_SHOULDER] = (px, ground - 0.81 * H);
            // Elbows and wrists.
            for (i, p) in pts[7..=10].iter_mut().enumerate() {
                *p = (px, ground - 0.62 * H + i as f64);
            }
            pts[kp::L_HIP] = (px, py);
            pts[kp::R_HIP] = (px, py);
            for (f, a, k) in [
                (Foot::Left, kp::L_ANKLE, kp::L_KNEE),
                (Foot::Right, kp::R_ANKLE, kp::R_KNEE),
            ] {
                let (fx, lift) = w.foot(f, t);
                let ank = (x0 + fx, ground - 0.04 * H - lift);
                pts[a] = ank;
                pts[k] = knee((px, py), ank);
            }
            let keypoints = pts
                .iter()
                .map(|&(x, y)| Keypoint {
                    x: (x + w.noise * rng.normal()) as f32,
                    y: (y + w.noise * rng.normal()) as f32,
                    score: 0.9,
                })
                .collect();
            PoseSample {
                frame: fr,
                bbox: BBox::new(
                    (px - 0.2 * H) as f32,
                    (ground - H) as f32,
                    (px + 0.2 * H) as f32,
                    ground as f32,
                ),
                keypoints,
            }
        })
        .collect();
    PoseTrack {
        track_id: id,
        samples,
    }
}

/// Every detected event matches a true one (same foot and kind) within
/// `tol` seconds, and every true event away from the ends of the track
/// is detected. Returns the largest error.
fn check_events(got: &[GaitEvent], w: &Walk, tol: f64, skip: &[(f64, f64)]) -> f64 {
    let truth = w.truth();
    let mut worst: f64 = 0.0;
    for e in got {
        let best = truth
            .iter()
            .filter(|t| t.1 == e.foot && t.2 == e.kind)
            .map(|t| (t.0 - e.t).abs())
            .fold(f64::INFINITY, f64::min);
        assert!(
            best <= tol,
            "{:?} {:?} at {:.3} s is {:.1} ms from the truth",
            e.foot,
            e.kind,
            e.t,
            best * 1000.0
        );
        worst = worst.max(best);
    }
    for t in truth {
        if t.0 < 0.35 || t.0 > w.duration - 0.35 || skip.iter().any(|s| t.0 > s.0 && t.0 < s.1) {
            continue;
        }
        assert!(
            got.iter()
                .any(|e| e.foot == t.1 && e.kind == t.2 && (e.t - t.0).abs() <= tol),
            "missed {:?} {:?} at {:.3} s",
            t.1,
            t.2,
            t.0
        );
    }
    worst
}

#[test]
fn events_within_one_frame_and_cadence_within_two_percent() {
    let w = Walk::normal();
    let g = analyse_track(&track(&w, 1, 100.0, 7), &GaitConfig::new(FPS, 1)).unwrap();
    let worst = check_events(&g.events, &w, 1.0 / FPS, &[]);
    eprintln!("worst event error {:.1} ms", worst * 1000.0);
    let c = g.cadence_spm.unwrap();
    assert!(
        (c - w.cadence()).abs() / w.cadence() < 0.02,
        "cadence {c:.2}, truth {:.2}",
        w.cadence()
    );
    assert!((g.stride_time_s.unwrap() - w.stride_s).abs() < 1.0 / FPS);
    assert!((g.step_time_s.unwrap() - w.stride_s / 2.0).abs() < 1.0 / FPS);
    // Stance 62 %, swing 38 %, double support 24 %: within a frame's
    // share of the cycle (3.1 %).
    let frame_pct = 100.0 / FPS / w.stride_s;
    assert!((g.stance_pct.unwrap() - 62.0).abs() < frame_pct);
    assert!((g.swing_pct.unwrap() - 38.0).abs() < frame_pct);
    assert!((g.double_support_pct.unwrap() - 24.0).abs() < 2.0 * frame_pct);
    // Step length: half a stride (speed * stride / 2 = 64.8 px) over the
    // body height (the box, 300 px).
    let sl = g.step_length.unwrap();
    assert!((sl - 64.8 / H).abs() < 0.02, "step length {sl}");
    assert_eq!(g.speed_unit, "height/s");
    let v = g.speed.unwrap();
    assert!((v - w.speed / H).abs() / (w.speed / H) < 0.05, "speed {v}");
    // Symmetric walk: symmetry indices near 0.
    assert!(g.symmetry.step_time.unwrap() < 5.0);
    // Steps: every heel strike inside the track.
    let hs_truth = w
        .truth()
        .iter()
        .filter(|t| t.2 == EventKind::HeelStrike && t.0 > 0.1 && t.0 < w.duration - 0.1)
        .count();
    assert!(
        g.steps + 1 >= hs_truth && g.steps <= hs_truth,
        "steps {}",
        g.steps
    );
    // Angle curves: a knee flexion peak in swing, far above the stance
    // minimum.
    assert!(!g.knee.is_empty() && !g.hip.is_empty());
    for c in &g.knee {
        let peak = (50..=100).map(|p| c.degrees[p]).fold(f64::MIN, f64::max);
        let stance = (10..=40).map(|p| c.degrees[p]).fold(f64::MAX, f64::min);
        assert!(peak > stance + 10.0, "knee curve {:?}", c.degrees);
    }
}

#[test]
fn metres_with_a_subject_height() {
    let w = Walk::normal();
    let mut cfg = GaitConfig::new(FPS, 1);
    cfg.height_m = Some(1.75);
    let g = analyse_track(&track(&w, 1, 100.0, 8), &cfg).unwrap();
    assert_eq!(g.speed_unit, "m/s");
    let v = g.speed.unwrap();
    let truth = w.speed / H * 1.75;
    assert!(
        (v - truth).abs() / truth < 0.05,
        "speed {v} m/s, truth {truth}"
    );
}

#[test]
fn other_cadences_and_sampled_frames() {
    // (stride s, stance fraction, analyse every Nth frame, noise px)
    for (stride, stance, every, noise) in [
        (0.9, 0.6, 1u64, 1.0),
        (1.3, 0.65, 1, 1.0),
        (1.08, 0.62, 2, 1.0),
        (1.5, 0.66, 1, 2.0),
    ] {
        let w = Walk {
            stride_s: stride,
            stance,
            noise,
            ..Walk::normal()
        };
        let mut t = track(&w, 1, 100.0, 11);
        t.samples.retain(|s| s.frame % every == 0);
        let g = analyse_track(&t, &GaitConfig::new(FPS, every as u32)).unwrap();
        // Sampled every other frame, events are within one analysed frame.
        check_events(&g.events, &w, every as f64 / FPS, &[]);
        let c = g.cadence_spm.unwrap();
        assert!(
            (c - w.cadence()).abs() / w.cadence() < 0.02,
            "stride {stride}: cadence {c:.2}, truth {:.2}",
            w.cadence()
        );
    }
}

fn swap_legs(s: &mut PoseSample) {
    for (l, r) in [
        (kp::L_HIP, kp::R_HIP),
        (kp::L_KNEE, kp::R_KNEE),
        (kp::L_ANKLE, kp::R_ANKLE),
    ] {
        s.keypoints.swap(l, r);
    }
}

#[test]
fn left_right_label_swaps_are_corrected() {
    let w = Walk::normal();
    let clean = analyse_track(&track(&w, 1, 100.0, 7), &GaitConfig::new(FPS, 1)).unwrap();
    let mut t = track(&w, 1, 100.0, 7);
    // The model exchanges the legs for stretches of 3 to 25 frames, some
    // of them starting as the legs cross.
    let mut rng = Noise(99);
    let mut i = 10;
    let mut swapped = 0;
    while i < t.samples.len() {
        let len = 3 + (rng.uniform() * 22.0) as usize;
        for s in t.samples.iter_mut().skip(i).take(len) {
            swap_legs(s);
            swapped += 1;
        }
        i += len + 10 + (rng.uniform() * 30.0) as usize;
    }
    assert!(swapped > 30);
    let g = analyse_track(&t, &GaitConfig::new(FPS, 1)).unwrap();
    check_events(&g.events, &w, 1.0 / FPS, &[]);
    assert_eq!(g.events.len(), clean.events.len());
    assert!(
        g.swapped_frames >= swapped - 2,
        "{} corrected",
        g.swapped_frames
    );
    let c = g.cadence_spm.unwrap();
    assert!((c - w.cadence()).abs() / w.cadence() < 0.02);
}

#[test]
fn low_confidence_keypoints_are_not_used() {
    let w = Walk::normal();
    let mut t = track(&w, 1, 100.0, 7);
    let mut rng = Noise(5);
    // 10 % of frames: an ankle at a wild place with low confidence.
    for s in &mut t.samples {
        if rng.uniform() < 0.1 {
            let k = if rng.uniform() < 0.5 {
                kp::L_ANKLE
            } else {
                kp::R_ANKLE
            };
            s.keypoints[k] = Keypoint {
                x: 0.0,
                y: 0.0,
                score: 0.1,
            };
        }
    }
    // And a 0.6 s stretch where both ankles are unsure (occluded).
    let gap = (2.5, 3.1);
    for s in &mut t.samples {
        let ts = s.frame as f64 / FPS;
        if ts >= gap.0 && ts < gap.1 {
            for k in [kp::L_ANKLE, kp::R_ANKLE] {
                s.keypoints[k].score = 0.2;
                s.keypoints[k].x += 80.0;
            }
        }
    }
    let g = analyse_track(&t, &GaitConfig::new(FPS, 1)).unwrap();
    // Events near the long gap may be lost, none is invented, all others
    // are within a frame.
    check_events(&g.events, &w, 1.0 / FPS, &[(gap.0 - 0.4, gap.1 + 0.4)]);
    let c = g.cadence_spm.unwrap();
    assert!((c - w.cadence()).abs() / w.cadence() < 0.02, "cadence {c}");

    // All keypoints unsure: no events, no panic.
    let mut t = track(&w, 1, 100.0, 7);
    for s in &mut t.samples {
        for k in &mut s.keypoints {
            k.score = 0.2;
        }
    }
    let g = analyse_track(&t, &GaitConfig::new(FPS, 1)).unwrap();
    assert!(g.events.is_empty());
    assert_eq!(g.steps, 0);
    assert_eq!(g.cadence_spm, None);
}

#[test]
fn walking_subjects_main_first_standing_people_ignored() {
    let w = Walk::normal();
    let near = track(&w, 3, 100.0, 1);
    // A farther walker: the same walk at half the size covers less.
    let mut far = track(&w, 9, 50.0, 2);
    for s in &mut far.samples {
        for k in &mut s.keypoints {
            k.x *= 0.5;
            k.y *= 0.5;
        }
        s.bbox = BBox::new(
            s.bbox.x1 * 0.5,
            s.bbox.y1 * 0.5,
            s.bbox.x2 * 0.5,
            s.bbox.y2 * 0.5,
        );
    }
    // Someone standing: the same pose, not moving.
    let standing = PoseTrack {
        track_id: 4,
        samples: (0..180)
            .map(|f| PoseSample {
                frame: f,
                ..near.samples[0].clone()
            })
            .collect(),
    };
    let cfg = GaitConfig::new(FPS, 1);
    let subjects = analyse_subjects(&[far, standing, near], &cfg);
    let ids: Vec<u32> = subjects.iter().map(|s| s.track_id).collect();
    assert_eq!(ids, vec![3, 9]);
    let c = subjects[1].cadence_spm.unwrap();
    assert!((c - w.cadence()).abs() / w.cadence() < 0.02);
}

#[test]
fn walking_left_is_analysed_the_same() {
    let w = Walk::normal();
    let mut t = track(&w, 1, 100.0, 7);
    // Mirror the scene: the figure walks toward -x.
    for s in &mut t.samples {
        for k in &mut s.keypoints {
            k.x = 2000.0 - k.x;
        }
        s.bbox = BBox::new(2000.0 - s.bbox.x2, s.bbox.y1, 2000.0 - s.bbox.x1, s.bbox.y2);
    }
    let g = analyse_track(&t, &GaitConfig::new(FPS, 1)).unwrap();
    check_events(&g.events, &w, 1.0 / FPS, &[]);
}

#[test]
fn json_shape_is_the_interface_contract() {
    let w = Walk::normal();
    let g = analyse_track(&track(&w, 1, 100.0, 7), &GaitConfig::new(FPS, 1)).unwrap();
    let v = serde_json::to_value(&g).unwrap();
    for k in [
        "track_id",
        "frames",
        "steps",
        "cadence_spm",
        "step_time_s",
        "stride_time_s",
        "stance_pct",
        "swing_pct",
        "double_support_pct",
        "speed",
        "speed_unit",
        "symmetry",
        "events",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    let e = &v["events"][0];
    assert!(e["t"].is_f64());
    assert!(["left", "right"].contains(&e["foot"].as_str().unwrap()));
    assert!(["heel_strike", "toe_off"].contains(&e["kind"].as_str().unwrap()));
    assert!(v["symmetry"]["step_time"].is_f64());
}
