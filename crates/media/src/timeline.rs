//! Frame indices from timestamps, and frames lost in gaps. Pure logic, so it
//! is unit-tested without video.
//!
//! A key design decision: a frame's index continues from the previous
//! frame's (so clean files, variable frame rates, B-frame reordering quirks
//! and containers whose timestamps are a frame off keep the indices a plain
//! count gives), and only a gap in the timestamps moves it on by the time
//! that passed. A gap is a step of at least 2.5 typical frame spacings, or
//! of 1.5 when the decoder or demuxer reported damage since the previous
//! frame. The typical spacing is the median of the last 15 steps, so a
//! frame rate the header gets wrong (an AVI whose index doubles the frame
//! count) or a variable one does not look like a gap. The frames of a gap
//! count as lost only when damage was reported since the previous frame: a
//! gap without any error is the video's own timing (variable frame rate,
//! MPEG-4 "not coded" frames, a screen recording that paused).

/// Steps kept for the typical spacing.
const WINDOW: usize = 15;
/// A step this many typical spacings long is a gap even without damage.
const GAP_CLEAN: f64 = 2.5;
/// A step this long is a gap when damage was reported since the last frame.
const GAP_DAMAGED: f64 = 1.5;
/// Steps needed before a gap without damage is believed.
const MIN_STEPS: usize = 4;

/// How a frame is placed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Placement {
    pub index: u64,
    /// Frames missing just before this one.
    pub lost: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct Timeline {
    /// Nominal frame rate (header), the unit of indices by time.
    fps: f64,
    /// Indices are `round(t * fps)` (seeked or sparse decoding, where not
    /// every frame comes out of the decoder) instead of continuing counts.
    by_time: bool,
    steps: [f64; WINDOW],
    n_steps: usize,
    last: Option<(u64, f64)>,
}

impl Timeline {
    pub(crate) fn new(fps: f64, by_time: bool) -> Self {
        Self {
            fps: if fps.is_finite() && fps > 0.0 {
                fps
            } else {
                30.0
            },
            by_time,
            steps: [0.0; WINDOW],
            n_steps: 0,
            last: None,
        }
    }

    /// The typical spacing between decoded frames, in seconds.
    pub(crate) fn spacing(&self) -> f64 {
        let n = self.n_steps.min(WINDOW);
        if n == 0 {
            return 1.0 / self.fps;
        }
        let mut s = self.steps;
        let s = &mut s[..n];
        s.sort_unstable_by(f64::total_cmp);
        s[n / 2]
    }

    fn by_time_index(&self, t: f64) -> u64 {
        (t * self.fps).round().max(0.0) as u64
    }

    /// Places the next decoded frame: `t` is its presentation time from the
    /// stream start (`None` without a timestamp); `damage` says whether the
    /// demuxer or decoder reported errors since the previous frame.
    pub(crate) fn place(&mut self, t: Option<f64>, damage: bool) -> Placement {
        let Some(t) = t else {
            let index = self.last.map_or(0, |(i, _)| i + 1);
            let lt = self.last.map_or(0.0, |(_, lt)| lt + self.spacing());
            self.last = Some((index, lt));
            return Placement { index, lost: 0 };
        };
        let Some((li, lt)) = self.last else {
            // The first frame: index 0 (or its time when seeked), unless
            // damage before it left a gap since the stream start.
            let by_time = self.by_time_index(t);
            let p = if self.by_time {
                Placement {
                    index: by_time,
                    lost: 0,
                }
            } else if damage && by_time as f64 >= GAP_CLEAN {
                Placement {
                    index: by_time,
                    lost: by_time,
                }
            } else {
                Placement { index: 0, lost: 0 }
            };
            self.last = Some((p.index, t));
            return p;
        };
        let step = t - lt;
        let spacing = self.spacing();
        let threshold = if damage {
            GAP_DAMAGED
        } else if self.n_steps < MIN_STEPS {
            f64::INFINITY
        } else {
            GAP_CLEAN
        };
        let gap = step > 0.0 && step >= threshold * spacing;
        if step > 0.0 {
            self.steps[self.n_steps % WINDOW] = step;
            self.n_steps += 1;
        }
        let p = if self.by_time {
            let by_time = self.by_time_index(t);
            Placement {
                index: if by_time <= li { li + 1 } else { by_time },
                lost: if gap && damage {
                    ((step - spacing) * self.fps).round().max(0.0) as u64
                } else {
                    0
                },
            }
        } else if gap {
            let steps = (step / spacing).round().max(1.0) as u64;
            Placement {
                index: li + steps,
                lost: if damage { steps - 1 } else { 0 },
            }
        } else {
            Placement {
                index: li + 1,
                lost: 0,
            }
        };
        // Keep the larger time: a timestamp that goes backwards (a frame
        // reordered by a broken muxer) must not make the next step a gap.
        self.last = Some((p.index, t.max(lt)));
        p
    }

    /// Frames missing after the last frame up to `end` seconds (the
    /// stream's duration), when damage was reported since the last frame.
    pub(crate) fn lost_before(&self, end: f64) -> u64 {
        let Some((_, lt)) = self.last else {
            return 0;
        };
        let spacing = self.spacing();
        let rest = end - lt - spacing;
        if rest >= (GAP_DAMAGED - 1.0) * spacing {
            (rest / spacing).round() as u64
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Places frames at `times`, with damage reported before those in
    /// `damaged`.
    fn indices_damaged(tl: &mut Timeline, times: &[f64], damaged: &[f64]) -> (Vec<u64>, u64) {
        let mut lost = 0;
        let idx = times
            .iter()
            .map(|&t| {
                let p = tl.place(Some(t), damaged.contains(&t));
                lost += p.lost;
                p.index
            })
            .collect();
        (idx, lost)
    }

    fn indices(tl: &mut Timeline, times: &[f64]) -> (Vec<u64>, u64) {
        indices_damaged(tl, times, &[])
    }

    #[test]
    fn constant_rate_counts_from_zero() {
        let times: Vec<f64> = (0..100).map(|i| i as f64 / 30.0).collect();
        let (idx, lost) = indices(&mut Timeline::new(30.0, false), &times);
        assert_eq!(idx, (0..100).collect::<Vec<_>>());
        assert_eq!(lost, 0);
    }

    #[test]
    fn a_gap_moves_indices_to_the_time_and_counts_the_missing_frames() {
        let times: Vec<f64> = (0..300)
            .filter(|i| !(100..227).contains(i))
            .map(|i| i as f64 / 30.0)
            .collect();
        let after = [227.0 / 30.0];
        let (idx, lost) = indices_damaged(&mut Timeline::new(30.0, false), &times, &after);
        assert_eq!(lost, 127);
        for (i, t) in idx.iter().zip(&times) {
            assert_eq!(*i, (t * 30.0).round() as u64);
        }
        // The same gap without damage: true indices, nothing counted lost.
        let (idx2, lost) = indices(&mut Timeline::new(30.0, false), &times);
        assert_eq!((idx2, lost), (idx, 0));
    }

    #[test]
    fn a_wrong_header_rate_and_jitter_are_not_gaps() {
        // An AVI whose header says 50 fps for 25 fps frames, starting a
        // frame late; then a variable-rate clip with a short and a long step.
        let times: Vec<f64> = (1..200).map(|i| i as f64 * 0.04).collect();
        let (idx, lost) = indices(&mut Timeline::new(50.0, false), &times);
        assert_eq!((idx, lost), ((0..199).collect(), 0));
        let mut t = 0.0;
        let mut times = vec![];
        for i in 0..150 {
            times.push(t);
            t += match i {
                40 => 0.0145,
                80 => 0.045,
                _ => 0.0336,
            };
        }
        let (idx, lost) = indices(&mut Timeline::new(29.76, false), &times);
        assert_eq!((idx, lost), ((0..150).collect(), 0));
    }

    #[test]
    fn two_frame_step_at_the_start_and_a_late_frame_are_not_gaps() {
        let mut times: Vec<f64> = vec![0.0];
        times.extend((2..340).map(|i| i as f64 * 0.04));
        times.push(1.0);
        let (idx, lost) = indices(&mut Timeline::new(25.0, false), &times);
        assert_eq!((idx, lost), ((0..340).collect(), 0));
    }

    #[test]
    fn damage_makes_a_short_gap_count() {
        let mut tl = Timeline::new(30.0, false);
        for i in 0..10 {
            tl.place(Some(i as f64 / 30.0), false);
        }
        let p = tl.place(Some(12.0 / 30.0), true);
        assert_eq!(p, Placement { index: 12, lost: 2 });
        // Without damage a two-frame step is jitter, not loss.
        let p = tl.place(Some(14.0 / 30.0), false);
        assert_eq!(p, Placement { index: 13, lost: 0 });
    }

    #[test]
    fn by_time_indices_are_monotonic_and_loss_needs_damage() {
        let mut tl = Timeline::new(30.0, true);
        let times: Vec<f64> = (0..50).map(|i| (i * 3) as f64 / 30.0).collect();
        let (idx, lost) = indices(&mut tl, &times);
        assert_eq!(idx, (0..50).map(|i| i * 3).collect::<Vec<_>>());
        assert_eq!(lost, 0);
        let p = tl.place(Some(200.0 / 30.0), false);
        assert_eq!(p.lost, 0, "no damage, no loss");
        let p = tl.place(Some(230.0 / 30.0), true);
        assert_eq!(
            p,
            Placement {
                index: 230,
                lost: 27
            }
        );
    }
}
