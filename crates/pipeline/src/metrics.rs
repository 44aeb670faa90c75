//! Per-stage latency in constant memory.
//!
//! A key design decision: latencies go into a log-bucketed histogram (16
//! buckets per doubling, about 4% resolution) instead of a list of samples,
//! so a ten-hour video costs the same memory as a ten-second one.

use std::time::Duration;

use serde::Serialize;

const PER_OCTAVE: f64 = 16.0;
/// Smallest bucket edge: 1 microsecond, in milliseconds.
const MIN_MS: f64 = 1e-3;
const BUCKETS: usize = 16 * 28; // 1 us .. ~74 h

/// Latency histogram in milliseconds.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: f64,
    max: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            count: 0,
            sum: 0.0,
            max: 0.0,
        }
    }
}

/// Summary of one stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StageSummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

impl Histogram {
    fn bucket(ms: f64) -> usize {
        if ms <= MIN_MS {
            return 0;
        }
        (((ms / MIN_MS).log2() * PER_OCTAVE) as usize).min(BUCKETS - 1)
    }

    fn bucket_mid(i: usize) -> f64 {
        MIN_MS * 2f64.powf((i as f64 + 0.5) / PER_OCTAVE)
    }

    pub fn record_ms(&mut self, ms: f64) {
        let ms = ms.max(0.0);
        self.counts[Self::bucket(ms)] += 1;
        self.count += 1;
        self.sum += ms;
        self.max = self.max.max(ms);
    }

    pub fn record(&mut self, d: Duration) {
        self.record_ms(d.as_secs_f64() * 1e3);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of all samples, milliseconds.
    pub fn sum_ms(&self) -> f64 {
        self.sum
    }

    /// Samples of at most `ms`, accurate to the bucket width (a bucket
    /// counts when its midpoint is at most `ms`): the cumulative bucket of
    /// a Prometheus histogram.
    pub fn count_le_ms(&self, ms: f64) -> u64 {
        if ms >= self.max {
            return self.count;
        }
        self.counts
            .iter()
            .enumerate()
            .take_while(|&(i, _)| Self::bucket_mid(i) <= ms)
            .map(|(_, c)| c)
            .sum()
    }

    /// The q-quantile (0..=1), accurate to the bucket width.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::bucket_mid(i).min(self.max);
            }
        }
        self.max
    }

    pub fn summary(&self) -> StageSummary {
        StageSummary {
            count: self.count,
            mean_ms: if self.count == 0 {
                0.0
            } else {
                self.sum / self.count as f64
            },
            p50_ms: self.quantile(0.5),
            p95_ms: self.quantile(0.95),
            max_ms: self.max,
        }
    }
}

/// The stages of the analysis path, in frame order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Decode,
    Preprocess,
    Infer,
    Postprocess,
    Track,
    Store,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Decode,
        Stage::Preprocess,
        Stage::Infer,
        Stage::Postprocess,
        Stage::Track,
        Stage::Store,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Preprocess => "preprocess",
            Stage::Infer => "infer",
            Stage::Postprocess => "postprocess",
            Stage::Track => "track",
            Stage::Store => "store",
        }
    }
}

/// One histogram per stage, milliseconds per frame.
#[derive(Clone, Debug, Default)]
pub struct StageTimings {
    stages: [Histogram; 6],
}

impl StageTimings {
    pub fn record_ms(&mut self, stage: Stage, ms: f64) {
        self.stages[stage as usize].record_ms(ms);
    }

    pub fn merge(&mut self, other: &StageTimings) {
        for (a, b) in self.stages.iter_mut().zip(&other.stages) {
            a.merge(b);
        }
    }

    pub fn get(&self, stage: Stage) -> &Histogram {
        &self.stages[stage as usize]
    }

    /// `{stage: summary}` for stages that saw frames, in pipeline order.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for s in Stage::ALL {
            let h = self.get(s);
            if h.count() > 0 {
                m.insert(
                    s.name().into(),
                    serde_json::to_value(h.summary()).unwrap_or_default(),
                );
            }
        }
        serde_json::Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_counts_follow_the_samples() {
        let mut h = Histogram::default();
        for i in 1..=1000 {
            h.record_ms(i as f64 / 100.0); // 0.01 .. 10 ms
        }
        assert_eq!(h.count_le_ms(0.001), 0);
        let half = h.count_le_ms(5.0);
        assert!((480..=520).contains(&half), "{half}");
        assert_eq!(h.count_le_ms(10.0), 1000);
        assert_eq!(h.count_le_ms(1e6), 1000);
        assert!((h.sum_ms() - 5005.0).abs() < 1e-6);
    }

    #[test]
    fn quantiles_within_bucket_resolution() {
        let mut h = Histogram::default();
        for i in 1..=1000 {
            h.record_ms(i as f64 / 100.0); // 0.01 .. 10 ms
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 5.0).abs() / 5.0 < 0.05, "{s:?}");
        assert!((s.p95_ms - 9.5).abs() / 9.5 < 0.05, "{s:?}");
        assert_eq!(s.max_ms, 10.0);
        assert!((s.mean_ms - 5.005).abs() < 1e-9);
    }

    #[test]
    fn empty_and_merge() {
        let mut a = Histogram::default();
        assert_eq!(a.quantile(0.5), 0.0);
        let mut b = Histogram::default();
        b.record_ms(2.0);
        a.merge(&b);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert!((a.quantile(0.5) - 2.0).abs() < 0.1);
    }
}
