//! Prometheus text exposition, written by hand: a handful of counters and
//! one histogram family do not need a metrics framework.
//!
//! Per-stage latency: each finished run's per-frame stage histograms (the
//! pipeline's log-bucketed ones, about 4 % resolution) are merged into the
//! process's, and exposed at the Prometheus bucket bounds below.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use peregrine_pipeline::{Stage, StageTimings};

use peregrine_store::jobs::JobState;

const BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
pub struct Metrics {
    frames: AtomicU64,
    cache_hits: AtomicU64,
    jobs_started: AtomicU64,
    retries: AtomicU64,
    stages: Mutex<StageTimings>,
}

/// Everything the exposition needs from the database.
pub struct Snapshot {
    pub jobs_by_state: Vec<(JobState, u64)>,
}

impl Metrics {
    pub fn job_started(&self) {
        self.jobs_started.fetch_add(1, Ordering::Relaxed);
    }

    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a finished attempt: frames, cache hit, per-frame stage
    /// latencies.
    pub fn run_finished(&self, frames: u64, cache_hit: bool, timings: &StageTimings) {
        if cache_hit {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.frames.fetch_add(frames, Ordering::Relaxed);
        if let Ok(mut all) = self.stages.lock() {
            all.merge(timings);
        }
    }

    pub fn render(&self, snap: &Snapshot) -> String {
        let mut o = String::with_capacity(4096);
        let _ = writeln!(o, "# HELP peregrine_jobs Jobs by state.");
        let _ = writeln!(o, "# TYPE peregrine_jobs gauge");
        for state in JobState::ALL {
            let n = snap
                .jobs_by_state
                .iter()
                .find(|(s, _)| *s == state)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            let _ = writeln!(o, "peregrine_jobs{{state=\"{}\"}} {n}", state.as_str());
        }
        let queued = snap
            .jobs_by_state
            .iter()
            .find(|(s, _)| *s == JobState::Queued)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        let _ = writeln!(o, "# HELP peregrine_queue_depth Jobs waiting to run.");
        let _ = writeln!(o, "# TYPE peregrine_queue_depth gauge");
        let _ = writeln!(o, "peregrine_queue_depth {queued}");
        let counters = [
            (
                "peregrine_frames_processed_total",
                "Frames analysed by this process.",
                self.frames.load(Ordering::Relaxed),
            ),
            (
                "peregrine_cache_hits_total",
                "Jobs answered from the result cache.",
                self.cache_hits.load(Ordering::Relaxed),
            ),
            (
                "peregrine_job_attempts_total",
                "Job attempts started by this process.",
                self.jobs_started.load(Ordering::Relaxed),
            ),
            (
                "peregrine_job_retries_total",
                "Attempts queued again after a transient error.",
                self.retries.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} counter");
            let _ = writeln!(o, "{name} {v}");
        }
        let _ = writeln!(
            o,
            "# HELP peregrine_stage_latency_seconds Per-frame latency of each pipeline stage."
        );
        let _ = writeln!(o, "# TYPE peregrine_stage_latency_seconds histogram");
        if let Ok(all) = self.stages.lock() {
            for stage in Stage::ALL {
                let h = all.get(stage);
                if h.count() == 0 {
                    continue;
                }
                let name = stage.name();
                for le in BUCKETS_S {
                    let _ = writeln!(
                        o,
                        "peregrine_stage_latency_seconds_bucket{{stage=\"{name}\",le=\"{le}\"}} {}",
                        h.count_le_ms(le * 1e3)
                    );
                }
                let count = h.count();
                let _ = writeln!(
                    o,
                    "peregrine_stage_latency_seconds_bucket{{stage=\"{name}\",le=\"+Inf\"}} {count}"
                );
                let _ = writeln!(
                    o,
                    "peregrine_stage_latency_seconds_sum{{stage=\"{name}\"}} {}",
                    h.sum_ms() / 1e3
                );
                let _ = writeln!(
                    o,
                    "peregrine_stage_latency_seconds_count{{stage=\"{name}\"}} {count}"
                );
            }
        }
        let (rss, cpu) = process_usage();
        let _ = writeln!(o, "# HELP process_resident_memory_bytes Resident memory.");
        let _ = writeln!(o, "# TYPE process_resident_memory_bytes gauge");
        let _ = writeln!(o, "process_resident_memory_bytes {rss}");
        let _ = writeln!(
            o,
            "# HELP process_cpu_seconds_total User and system CPU time."
        );
        let _ = writeln!(o, "# TYPE process_cpu_seconds_total counter");
        let _ = writeln!(o, "process_cpu_seconds_total {cpu}");
        o
    }
}

/// (resident bytes, CPU seconds) from /proc; zeros elsewhere.
fn process_usage() -> (u64, f64) {
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0);
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields, in clock ticks (100 per second on Linux).
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0);
    (rss, cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_states_stages_and_process_usage() {
        let m = Metrics::default();
        let mut t = StageTimings::default();
        for ms in [3.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 20.0] {
            t.record_ms(Stage::Infer, ms);
        }
        m.run_finished(10, false, &t);
        m.run_finished(0, true, &StageTimings::default());
        let text = m.render(&Snapshot {
            jobs_by_state: vec![(JobState::Queued, 2), (JobState::Done, 1)],
        });
        assert!(text.contains("peregrine_jobs{state=\"queued\"} 2"));
        assert!(text.contains("peregrine_jobs{state=\"failed\"} 0"));
        assert!(text.contains("peregrine_queue_depth 2"));
        assert!(text.contains("peregrine_frames_processed_total 10"));
        assert!(text.contains("peregrine_cache_hits_total 1"));
        // Per-frame samples, not a mean: the 20 ms frame is in its own bucket.
        for (le, n) in [("0.0025", 0), ("0.005", 9), ("0.01", 9), ("0.025", 10)] {
            let line = format!(
                "peregrine_stage_latency_seconds_bucket{{stage=\"infer\",le=\"{le}\"}} {n}\n"
            );
            assert!(text.contains(&line), "{line}{text}");
        }
        assert!(text.contains("peregrine_stage_latency_seconds_count{stage=\"infer\"} 10"));
        assert!(
            !text.contains("stage=\"decode\""),
            "stages without frames are left out"
        );
        let rss_line = text
            .lines()
            .find(|l| l.starts_with("process_resident_memory_bytes "))
            .unwrap();
        assert_ne!(rss_line, "process_resident_memory_bytes 0");
    }
}
