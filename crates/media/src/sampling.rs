//! Which frames a run looks at. Pure logic, so it is unit-tested without
//! video.

pub use peregrine_core::Sampling;

/// Decides frame by frame whether to keep a decoded frame.
///
/// Frames are kept at target points: multiples of `every` in frame index and
/// multiples of `1/fps` in time. A frame is kept when it is the first decoded
/// frame at or after the next target, so that a frame the decoder skipped
/// (a non-reference frame) moves the pick to the next decodable frame instead
/// of losing the sample.
#[derive(Clone, Debug)]
pub struct Sampler {
    sampling: Sampling,
    next_index: u64,
    next_time: f64,
}

/// What to do with a decoded frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Skip,
    /// Past the end of the requested range: stop decoding.
    Stop,
}

impl Sampler {
    pub fn new(sampling: Sampling) -> Self {
        Self {
            next_index: 0,
            next_time: sampling.start.unwrap_or(0.0),
            sampling,
        }
    }

    /// `index` counts frames from the start of the input; `t` is the
    /// presentation time in seconds.
    pub fn verdict(&mut self, index: u64, t: f64) -> Verdict {
        if let Some(end) = self.sampling.end {
            if t >= end {
                return Verdict::Stop;
            }
        }
        if let Some(start) = self.sampling.start {
            // Half a millisecond of tolerance for timestamps rounded by the container.
            if t < start - 5e-4 {
                return Verdict::Skip;
            }
        }
        if index < self.next_index {
            return Verdict::Skip;
        }
        if let Some(fps) = self.sampling.fps.filter(|f| *f > 0.0) {
            if t < self.next_time - 5e-4 {
                return Verdict::Skip;
            }
            let period = 1.0 / fps;
            // Next target strictly after this frame's time, on the fixed grid.
            let start = self.sampling.start.unwrap_or(0.0);
            let k = ((t - start) / period + 5e-4).floor() + 1.0;
            self.next_time = start + k * period;
        }
        let every = self.sampling.every.max(1) as u64;
        self.next_index = (index / every + 1) * every;
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(s: Sampling, n: u64, fps: f64) -> Vec<u64> {
        let mut sampler = Sampler::new(s);
        (0..n)
            .filter(|&i| sampler.verdict(i, i as f64 / fps) == Verdict::Keep)
            .collect()
    }

    #[test]
    fn every_n_keeps_multiples() {
        let s = Sampling {
            every: 3,
            ..Default::default()
        };
        assert_eq!(kept(s, 10, 30.0), vec![0, 3, 6, 9]);
    }

    #[test]
    fn fps_keeps_one_frame_per_period() {
        let s = Sampling {
            fps: Some(5.0),
            ..Default::default()
        };
        // 30 fps source, 5 fps sampling: every 6th frame.
        assert_eq!(kept(s, 31, 30.0), vec![0, 6, 12, 18, 24, 30]);
    }

    #[test]
    fn fps_falls_forward_when_target_frame_missing() {
        let s = Sampling {
            fps: Some(10.0),
            ..Default::default()
        };
        let mut sampler = Sampler::new(s);
        // 30 fps, frame 3 (t=0.1) was not decoded (skipped B-frame): 4 is picked.
        let decoded = [0u64, 1, 2, 4, 5, 6, 7];
        let picks: Vec<u64> = decoded
            .iter()
            .copied()
            .filter(|&i| sampler.verdict(i, i as f64 / 30.0) == Verdict::Keep)
            .collect();
        assert_eq!(picks, vec![0, 4, 6]);
    }

    #[test]
    fn time_range_bounds_frames() {
        let s = Sampling {
            start: Some(1.0),
            end: Some(2.0),
            ..Default::default()
        };
        let mut sampler = Sampler::new(s);
        let mut kept = vec![];
        for i in 0..100u64 {
            match sampler.verdict(i, i as f64 / 10.0) {
                Verdict::Keep => kept.push(i),
                Verdict::Stop => break,
                Verdict::Skip => {}
            }
        }
        assert_eq!(kept, (10..20).collect::<Vec<_>>());
    }

    #[test]
    fn stride_takes_the_sparser_of_every_and_fps() {
        let s = Sampling {
            every: 2,
            fps: Some(5.0),
            ..Default::default()
        };
        assert_eq!(s.frame_stride(30.0), 6.0);
        assert_eq!(Sampling::default().frame_stride(30.0), 1.0);
    }
}
