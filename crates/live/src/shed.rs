//! Load shedding: which frames of which stream are analysed when the
//! streams ask for more than the engine can do. Pure logic (time is an
//! argument), so it is tested deterministically.
//!
//! Frames are shed at admission, before they are preprocessed or queued:
//! a stream's *nominal* gate picks the frames its `--fps` asks for, its
//! *actual* gate lets through only as many as its current shedding level
//! allows; a frame the first wants and the second refuses is shed (and
//! counted). The level rises one step per control interval while the
//! engine is overloaded (frames expired or were displaced in the queue, or
//! missed the latency budget) and falls one step after a run of calm
//! intervals; a step down that brings overload back doubles the calm run
//! needed next time (hysteresis, so quality does not flap).

/// Rate factor per shedding step (two steps halve a stream's rate).
pub const STEP: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// Picks frames at `rate` per second out of a stream's frames.
#[derive(Clone, Debug)]
pub struct Gate {
    period: f64,
    next: Option<f64>,
    /// Where in each period the frames are taken (fraction), when the
    /// gate keeps to a grid: streams of one set are spread over the period
    /// instead of all sending their frames at the same instants.
    phase: Option<f64>,
}

impl Gate {
    /// Takes the first frame, then one per period.
    pub fn new(rate: f64) -> Self {
        Self {
            period: 1.0 / rate.max(1e-6),
            next: None,
            phase: None,
        }
    }

    /// Takes frames on a grid: times `(k + phase) × period`.
    pub fn with_phase(rate: f64, phase: f64) -> Self {
        Self {
            phase: Some(phase.rem_euclid(1.0)),
            ..Self::new(rate)
        }
    }

    pub fn set_rate(&mut self, rate: f64) {
        let period = 1.0 / rate.max(1e-6);
        if let Some(n) = &mut self.next {
            // Keep the phase: the next frame is due one new period after
            // the last one taken.
            *n += period - self.period;
        }
        self.period = period;
    }

    pub fn rate(&self) -> f64 {
        1.0 / self.period
    }

    /// Whether the frame at time `t` (seconds) is taken.
    pub fn take(&mut self, t: f64) -> bool {
        // Source frames jitter: a frame a little early still counts.
        let tolerance = self.period * 0.3;
        match self.next {
            Some(n) if t + tolerance < n => false,
            Some(n) => {
                let mut next = n + self.period;
                if next < t {
                    // After a gap (reconnect): no burst to catch up.
                    next = t + self.period;
                }
                self.next = Some(next);
                true
            }
            None => match self.phase {
                Some(ph) => {
                    let offset = ph * self.period;
                    let k = ((t + tolerance - offset) / self.period).ceil();
                    let at = k * self.period + offset;
                    let taken = t + tolerance >= at;
                    self.next = Some(if taken { at + self.period } else { at });
                    taken
                }
                None => {
                    self.next = Some(t + self.period);
                    true
                }
            },
        }
    }
}

/// What a stream asks for, as the shedder sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Demand {
    /// Analysed frames per second asked for.
    pub fps: f64,
    /// Never shed (`--priority`).
    pub priority: bool,
    /// Shedding order among the others: the lowest rank is shed first.
    pub rank: i32,
}

/// Each stream's rate at shedding `level`: steps go to the lowest rank
/// first, each step scaling that rank's rates by [`STEP`], until its
/// streams are at `min_fps`; priority streams keep their rate.
pub fn rates(demands: &[Demand], level: u32, min_fps: f64) -> Vec<f64> {
    let mut factor = vec![1.0f64; demands.len()];
    let floor = |d: &Demand| min_fps.min(d.fps);
    let mut ranks: Vec<i32> = demands
        .iter()
        .filter(|d| !d.priority)
        .map(|d| d.rank)
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
    for _ in 0..level {
        let Some(rank) = ranks.iter().copied().find(|&r| {
            demands
                .iter()
                .zip(&factor)
                .any(|(d, f)| !d.priority && d.rank == r && d.fps * f > floor(d) + 1e-9)
        }) else {
            break;
        };
        for (d, f) in demands.iter().zip(factor.iter_mut()) {
            if !d.priority && d.rank == rank {
                *f *= STEP;
            }
        }
    }
    demands
        .iter()
        .zip(&factor)
        .map(|(d, f)| {
            let r = (d.fps * f).max(floor(d));
            // A rate that rounding left a hair above the floor is the floor.
            if r - floor(d) < 1e-9 {
                floor(d)
            } else {
                r
            }
        })
        .collect()
}

/// The highest level that still changes some rate.
pub fn max_level(demands: &[Demand], min_fps: f64) -> u32 {
    let mut level = 0;
    while level < 200 && rates(demands, level + 1, min_fps) != rates(demands, level, min_fps) {
        level += 1;
    }
    level
}

/// What the engine went through during one control interval.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Load {
    /// Frames dropped from the queue: expired before a worker was free,
    /// or displaced by their stream's newer frame.
    pub dropped: u64,
    /// Frames whose results came later than the latency budget.
    pub over_budget: u64,
    /// Frames analysed.
    pub analysed: u64,
}

impl Load {
    /// Any dropped frame, or more than 5 % of the analysed frames late;
    /// a single late frame is never enough, so at low rates (a few frames
    /// per interval, e.g. motion-gated cameras) one scheduling hiccup does
    /// not cut every stream's rate.
    pub fn overloaded(&self) -> bool {
        self.dropped > 0 || (self.over_budget >= 2 && self.over_budget * 20 > self.analysed)
    }
}

/// The shedding level and its hysteresis.
#[derive(Clone, Debug)]
pub struct Shedder {
    level: u32,
    max_level: u32,
    calm: u32,
    calm_needed: u32,
    base_calm: u32,
    /// Intervals since the last step down (a relapse within the calm run
    /// that follows it means that step was premature).
    since_lower: Option<u32>,
}

impl Shedder {
    /// `calm_intervals`: calm control intervals before a step down.
    pub fn new(calm_intervals: u32) -> Self {
        let base = calm_intervals.max(1);
        Self {
            level: 0,
            max_level: 0,
            calm: 0,
            calm_needed: base,
            base_calm: base,
            since_lower: None,
        }
    }

    pub fn level(&self) -> u32 {
        self.level
    }

    pub fn set_max_level(&mut self, max: u32) {
        self.max_level = max;
        self.level = self.level.min(max);
    }

    /// One control interval has passed with `load`: the new level.
    pub fn tick(&mut self, load: Load) -> u32 {
        if let Some(n) = &mut self.since_lower {
            *n += 1;
        }
        if load.overloaded() {
            if self.since_lower.is_some_and(|n| n <= self.calm_needed) {
                self.calm_needed = (self.calm_needed * 2).min(self.base_calm * 16);
            }
            self.since_lower = None;
            self.calm = 0;
            self.level = (self.level + 1).min(self.max_level);
        } else {
            self.calm += 1;
            if self.calm >= self.calm_needed {
                self.calm = 0;
                if self.level > 0 {
                    self.level -= 1;
                    self.since_lower = Some(0);
                } else {
                    // Long calm at full rate: hysteresis relaxes again.
                    self.calm_needed = (self.calm_needed / 2).max(self.base_calm);
                }
            }
        }
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(fps: f64, priority: bool, rank: i32) -> Demand {
        Demand {
            fps,
            priority,
            rank,
        }
    }

    #[test]
    fn gate_takes_its_rate_from_a_faster_source() {
        let mut g = Gate::new(5.0);
        let taken = (0..300).filter(|i| g.take(*i as f64 / 30.0)).count();
        assert!((49..=51).contains(&taken), "{taken} of 10 s at 5 fps");
        // A source slower than the gate: every frame.
        let mut g = Gate::new(5.0);
        assert_eq!((0..20).filter(|i| g.take(*i as f64 / 2.0)).count(), 20);
    }

    #[test]
    fn phased_gates_spread_streams_over_the_period() {
        // Four streams of one 30 fps source at 5 fps: with phases a quarter
        // apart, their frames are taken at different instants.
        let mut taken: Vec<Vec<u64>> = Vec::new();
        for i in 0..4 {
            let mut g = Gate::with_phase(5.0, i as f64 / 4.0);
            taken.push((0..300u64).filter(|k| g.take(*k as f64 / 30.0)).collect());
        }
        for t in &taken {
            assert!((49..=51).contains(&t.len()), "{}", t.len());
        }
        for i in 0..4 {
            for j in i + 1..4 {
                let same = taken[i].iter().filter(|k| taken[j].contains(k)).count();
                assert!(same < 5, "streams {i} and {j} share {same} frames");
            }
        }
    }

    #[test]
    fn gate_does_not_burst_after_a_gap() {
        let mut g = Gate::new(5.0);
        for i in 0..30 {
            g.take(i as f64 / 30.0);
        }
        // 10 s without frames, then 1 s of frames.
        let taken = (0..30).filter(|i| g.take(11.0 + *i as f64 / 30.0)).count();
        assert!((4..=6).contains(&taken), "{taken}");
    }

    #[test]
    fn lowest_rank_is_shed_first_and_priority_never() {
        let ds = [d(8.0, true, 0), d(8.0, false, 0), d(8.0, false, 1)];
        assert_eq!(rates(&ds, 0, 1.0), vec![8.0, 8.0, 8.0]);
        let r = rates(&ds, 2, 1.0);
        assert_eq!(r[0], 8.0);
        assert!((r[1] - 4.0).abs() < 1e-9, "{r:?}");
        assert_eq!(
            r[2], 8.0,
            "the higher rank waits until rank 0 is at its minimum"
        );
        let r = rates(&ds, 7, 1.0);
        assert!((r[1] - 1.0).abs() < 1e-9, "{r:?}");
        assert!(r[2] < 8.0, "{r:?}");
        let top = max_level(&ds, 1.0);
        let r = rates(&ds, top, 1.0);
        assert_eq!(r, vec![8.0, 1.0, 1.0], "every shed stream at the minimum");
        assert_eq!(rates(&ds, top + 5, 1.0), r);
    }

    #[test]
    fn min_rate_never_exceeds_what_a_stream_asks() {
        let ds = [d(0.5, false, 0)];
        assert_eq!(rates(&ds, 10, 1.0), vec![0.5]);
        assert_eq!(max_level(&ds, 1.0), 0);
    }

    fn over() -> Load {
        Load {
            dropped: 3,
            over_budget: 0,
            analysed: 10,
        }
    }

    fn calm() -> Load {
        Load {
            dropped: 0,
            over_budget: 0,
            analysed: 10,
        }
    }

    #[test]
    fn level_rises_under_load_and_returns_gradually() {
        let mut s = Shedder::new(3);
        s.set_max_level(10);
        for want in 1..=4 {
            assert_eq!(s.tick(over()), want);
        }
        // Two calm intervals are not enough.
        assert_eq!(s.tick(calm()), 4);
        assert_eq!(s.tick(calm()), 4);
        assert_eq!(
            s.tick(calm()),
            3,
            "one step down after three calm intervals"
        );
        assert_eq!(s.tick(calm()), 3);
        assert_eq!(s.tick(calm()), 3);
        assert_eq!(s.tick(calm()), 2);
        assert_eq!(s.tick(over()), 3, "relapse right after a step down");
        // The step was premature: now six calm intervals are needed.
        for _ in 0..5 {
            assert_eq!(s.tick(calm()), 3);
        }
        assert_eq!(s.tick(calm()), 2);
    }

    #[test]
    fn level_is_capped() {
        let mut s = Shedder::new(2);
        s.set_max_level(2);
        for _ in 0..10 {
            s.tick(over());
        }
        assert_eq!(s.level(), 2);
    }

    #[test]
    fn late_results_count_as_overload_only_beyond_a_few() {
        let few = Load {
            dropped: 0,
            over_budget: 1,
            analysed: 100,
        };
        assert!(!few.overloaded());
        let many = Load {
            dropped: 0,
            over_budget: 10,
            analysed: 100,
        };
        assert!(many.overloaded());
        // At low rates one late frame is noise, two are not.
        let one_of_few = Load {
            dropped: 0,
            over_budget: 1,
            analysed: 4,
        };
        assert!(!one_of_few.overloaded());
        let two_of_few = Load {
            over_budget: 2,
            ..one_of_few
        };
        assert!(two_of_few.overloaded());
        let dropped = Load {
            dropped: 1,
            over_budget: 0,
            analysed: 4,
        };
        assert!(dropped.overloaded());
    }
}
