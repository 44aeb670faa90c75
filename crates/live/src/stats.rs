//! Per-stream counters and histograms, shared between a stream's threads
//! and whoever reads a snapshot (the CLI at exit, later the service).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use peregrine_media::DecodeSkip;
use peregrine_pipeline::Histogram;
use serde::Serialize;

/// Where a stream is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamState {
    /// Opening the source for the first time.
    Connecting,
    /// Receiving frames.
    Live,
    /// Lost (disconnected, stalled, unreadable): waiting to try again.
    Reconnecting,
    /// Stopped by request, or the source (a file) ended.
    Stopped,
    /// Ended without a usable run (the store refused it, or the source
    /// was never reached before the stop).
    Failed,
}

impl StreamState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => StreamState::Connecting,
            1 => StreamState::Live,
            2 => StreamState::Reconnecting,
            3 => StreamState::Stopped,
            _ => StreamState::Failed,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            StreamState::Connecting => 0,
            StreamState::Live => 1,
            StreamState::Reconnecting => 2,
            StreamState::Stopped => 3,
            StreamState::Failed => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::Connecting => "connecting",
            StreamState::Live => "live",
            StreamState::Reconnecting => "reconnecting",
            StreamState::Stopped => "stopped",
            StreamState::Failed => "failed",
        }
    }
}

/// Live counters of one stream.
#[derive(Default)]
pub(crate) struct StreamStats {
    state: AtomicU8,
    pub frames_received: AtomicU64,
    pub frames_analysed: AtomicU64,
    pub frames_shed: AtomicU64,
    pub frames_gated: AtomicU64,
    /// Frames received but never decoded (decode-side shedding).
    pub frames_skipped: AtomicU64,
    /// What decoding skips now ([`DecodeSkip`] as a number).
    decode_skip: AtomicU8,
    pub reconnects: AtomicU64,
    pub decode_errors: AtomicU64,
    pub over_budget: AtomicU64,
    pub detections: AtomicU64,
    pub tracks: AtomicU64,
    pub queued: AtomicU64,
    /// Rate the shedder allows now, millihertz.
    pub rate_mhz: AtomicU64,
    /// Microseconds connected, up to the last disconnect.
    connected_us: AtomicU64,
    connected_since: Mutex<Option<Instant>>,
    pub latency: Mutex<Histogram>,
    pub last_error: Mutex<Option<String>>,
    pub run_id: Mutex<Option<i64>>,
    /// A picture waiting for its frame's detections ([`crate::still`]).
    pub(crate) pending_still: Mutex<Option<crate::still::Pending>>,
    /// The latest analysed picture with its detections.
    pub still: Mutex<Option<std::sync::Arc<crate::still::Still>>>,
}

impl StreamStats {
    pub fn state(&self) -> StreamState {
        StreamState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn set_state(&self, s: StreamState) {
        self.state.store(s.as_u8(), Ordering::Relaxed);
    }

    pub fn set_decode_skip(&self, s: DecodeSkip) {
        let v = match s {
            DecodeSkip::Nothing => 0,
            DecodeSkip::NonRef => 1,
            DecodeSkip::NonKey => 2,
        };
        self.decode_skip.store(v, Ordering::Relaxed);
    }

    /// What decoding skips now: `none`, `nonref` or `nonkey`.
    pub fn decode_skip(&self) -> &'static str {
        match self.decode_skip.load(Ordering::Relaxed) {
            0 => "none",
            1 => "nonref",
            _ => "nonkey",
        }
    }

    pub fn connected(&self) {
        *lock(&self.connected_since) = Some(Instant::now());
    }

    pub fn disconnected(&self) {
        if let Some(t) = lock(&self.connected_since).take() {
            self.connected_us
                .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
    }

    pub fn connected_secs(&self) -> f64 {
        let open = lock(&self.connected_since).map_or(0.0, |t| t.elapsed().as_secs_f64());
        self.connected_us.load(Ordering::Relaxed) as f64 / 1e6 + open
    }

    pub fn error(&self, e: impl ToString) {
        *lock(&self.last_error) = Some(e.to_string());
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Latency quantiles, milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl LatencyMs {
    pub fn of(h: &Histogram) -> Self {
        let s = h.summary();
        Self {
            p50: round3(h.quantile(0.5)),
            p95: round3(h.quantile(0.95)),
            p99: round3(h.quantile(0.99)),
            max: round3(s.max_ms),
        }
    }
}

pub(crate) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// One stream, as reported (a line of `peregrine live --json`).
#[derive(Clone, Debug, Serialize)]
pub struct StreamReport {
    pub stream: String,
    pub source: String,
    pub state: StreamState,
    pub frames_received: u64,
    pub frames_analysed: u64,
    pub frames_shed: u64,
    pub reconnects: u64,
    /// Frames analysed per second connected.
    pub fps_analysed: f64,
    /// From the read of the frame's last packet to its detections being
    /// committed.
    pub latency_ms: LatencyMs,
    pub frames_over_budget: u64,
    /// Frames the motion gate kept from the detector (nothing moved).
    pub frames_gated: u64,
    /// Frames received but not decoded: the analysed rate did not need
    /// them (non-reference frames, or all but keyframes).
    pub frames_skipped: u64,
    /// What decoding skips now: `none`, `nonref` (non-reference frames)
    /// or `nonkey` (all but keyframes).
    pub decode_skip: &'static str,
    pub decode_errors: u64,
    pub detections: u64,
    pub tracks: u64,
    /// Frames waiting in the scheduler's queue.
    pub queue_depth: u64,
    /// Analysed rate the shedder allows now.
    pub rate_allowed: f64,
    pub connected_s: f64,
    pub run_id: Option<i64>,
    pub priority: bool,
    pub error: Option<String>,
    /// The latency histogram behind `latency_ms`, for services that
    /// aggregate or export it.
    #[serde(skip)]
    pub latency: Histogram,
}

impl StreamReport {
    pub(crate) fn from_stats(name: &str, source: &str, priority: bool, s: &StreamStats) -> Self {
        let analysed = s.frames_analysed.load(Ordering::Relaxed);
        let secs = s.connected_secs();
        let latency = lock(&s.latency).clone();
        Self {
            stream: name.to_string(),
            source: source.to_string(),
            state: s.state(),
            frames_received: s.frames_received.load(Ordering::Relaxed),
            frames_analysed: analysed,
            frames_shed: s.frames_shed.load(Ordering::Relaxed),
            reconnects: s.reconnects.load(Ordering::Relaxed),
            fps_analysed: if secs > 0.0 {
                round3(analysed as f64 / secs)
            } else {
                0.0
            },
            latency_ms: LatencyMs::of(&latency),
            frames_over_budget: s.over_budget.load(Ordering::Relaxed),
            frames_gated: s.frames_gated.load(Ordering::Relaxed),
            frames_skipped: s.frames_skipped.load(Ordering::Relaxed),
            decode_skip: s.decode_skip(),
            decode_errors: s.decode_errors.load(Ordering::Relaxed),
            detections: s.detections.load(Ordering::Relaxed),
            tracks: s.tracks.load(Ordering::Relaxed),
            queue_depth: s.queued.load(Ordering::Relaxed),
            rate_allowed: round3(s.rate_mhz.load(Ordering::Relaxed) as f64 / 1000.0),
            connected_s: round3(secs),
            run_id: *lock(&s.run_id),
            priority,
            error: lock(&s.last_error).clone(),
            latency,
        }
    }
}

/// Totals over every stream (the last line of `peregrine live --json`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub streams: usize,
    pub frames_received: u64,
    pub frames_analysed: u64,
    pub frames_shed: u64,
    pub frames_gated: u64,
    pub frames_skipped: u64,
    pub reconnects: u64,
    /// Frames analysed per second of wall time, all streams together.
    pub fps_analysed: f64,
    pub latency_ms: LatencyMs,
    /// Mean frames per inference session run.
    pub batch_size_mean: f64,
    /// Session runs per batch size (index 0: batches of one frame).
    pub batch_sizes: Vec<u64>,
    /// The highest shedding level reached.
    pub max_shed_level: u32,
    pub seconds: f64,
}

/// A counter of [`prometheus_text`]: name, help, value of a stream.
type Counter = (&'static str, &'static str, fn(&StreamReport) -> u64);

/// Latency histogram bucket bounds for Prometheus, milliseconds.
const LATENCY_BUCKETS_MS: [f64; 10] = [
    10.0, 25.0, 50.0, 75.0, 100.0, 150.0, 250.0, 500.0, 1000.0, 2500.0,
];

/// Every stream's counters in the Prometheus text format, for a `/metrics`
/// endpoint (the service's, or any other): frames received, analysed,
/// shed and gated, reconnects, frames over budget, queue depth, state, the
/// capture-to-stored latency histogram, and the batch sizes of `summary`.
pub fn prometheus_text(reports: &[StreamReport], summary: &Summary) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let counters: [Counter; 7] = [
        (
            "frames_received_total",
            "Frames received from the source.",
            |r| r.frames_received,
        ),
        (
            "frames_skipped_total",
            "Frames received but not decoded (the analysed rate does not need them).",
            |r| r.frames_skipped,
        ),
        (
            "frames_analysed_total",
            "Frames analysed and stored.",
            |r| r.frames_analysed,
        ),
        (
            "frames_shed_total",
            "Frames shed to keep up (admission, queue, deadline).",
            |r| r.frames_shed,
        ),
        (
            "frames_gated_total",
            "Frames the motion gate kept from the detector.",
            |r| r.frames_gated,
        ),
        (
            "reconnects_total",
            "Connections lost and tried again.",
            |r| r.reconnects,
        ),
        (
            "frames_over_budget_total",
            "Frames stored later than the latency budget.",
            |r| r.frames_over_budget,
        ),
    ];
    for (name, help, get) in counters {
        let _ = writeln!(
            o,
            "# HELP peregrine_live_{name} {help}\n# TYPE peregrine_live_{name} counter"
        );
        for r in reports {
            let _ = writeln!(
                o,
                "peregrine_live_{name}{{stream=\"{}\"}} {}",
                esc(&r.stream),
                get(r)
            );
        }
    }
    let _ = writeln!(o, "# HELP peregrine_live_queue_depth Frames waiting for the engine.\n# TYPE peregrine_live_queue_depth gauge");
    for r in reports {
        let _ = writeln!(
            o,
            "peregrine_live_queue_depth{{stream=\"{}\"}} {}",
            esc(&r.stream),
            r.queue_depth
        );
    }
    let _ = writeln!(o, "# HELP peregrine_live_state The stream's state (1 for the current one).\n# TYPE peregrine_live_state gauge");
    for r in reports {
        for s in [
            StreamState::Connecting,
            StreamState::Live,
            StreamState::Reconnecting,
            StreamState::Stopped,
            StreamState::Failed,
        ] {
            let _ = writeln!(
                o,
                "peregrine_live_state{{stream=\"{}\",state=\"{}\"}} {}",
                esc(&r.stream),
                s.as_str(),
                u8::from(r.state == s)
            );
        }
    }
    let _ = writeln!(o, "# HELP peregrine_live_latency_seconds From the frame's last packet read to its results stored.\n# TYPE peregrine_live_latency_seconds histogram");
    for r in reports {
        let name = esc(&r.stream);
        for le in LATENCY_BUCKETS_MS {
            let _ = writeln!(
                o,
                "peregrine_live_latency_seconds_bucket{{stream=\"{name}\",le=\"{}\"}} {}",
                le / 1e3,
                r.latency.count_le_ms(le)
            );
        }
        let _ = writeln!(
            o,
            "peregrine_live_latency_seconds_bucket{{stream=\"{name}\",le=\"+Inf\"}} {}",
            r.latency.count()
        );
        let _ = writeln!(
            o,
            "peregrine_live_latency_seconds_sum{{stream=\"{name}\"}} {}",
            r.latency.sum_ms() / 1e3
        );
        let _ = writeln!(
            o,
            "peregrine_live_latency_seconds_count{{stream=\"{name}\"}} {}",
            r.latency.count()
        );
    }
    let _ = writeln!(o, "# HELP peregrine_live_batch_size Frames per inference session run.\n# TYPE peregrine_live_batch_size histogram");
    let mut cum = 0u64;
    let mut sum = 0u64;
    for (i, n) in summary.batch_sizes.iter().enumerate() {
        cum += n;
        sum += n * (i as u64 + 1);
        let _ = writeln!(
            o,
            "peregrine_live_batch_size_bucket{{le=\"{}\"}} {cum}",
            i + 1
        );
    }
    let _ = writeln!(o, "peregrine_live_batch_size_bucket{{le=\"+Inf\"}} {cum}");
    let _ = writeln!(
        o,
        "peregrine_live_batch_size_sum {sum}\nperegrine_live_batch_size_count {cum}"
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_every_stream_and_consistent_histograms() {
        let s = StreamStats::default();
        s.set_state(StreamState::Live);
        s.frames_received.store(30, Ordering::Relaxed);
        s.frames_analysed.store(5, Ordering::Relaxed);
        for ms in [20.0, 40.0, 90.0, 120.0, 600.0] {
            lock(&s.latency).record_ms(ms);
        }
        let r = StreamReport::from_stats("gate \"1\"", "rtsp://x", false, &s);
        let summary = Summary {
            batch_sizes: vec![3, 0, 2],
            ..Default::default()
        };
        let t = prometheus_text(&[r], &summary);
        assert!(
            t.contains("peregrine_live_frames_received_total{stream=\"gate \\\"1\\\"\"} 30"),
            "{t}"
        );
        assert!(
            t.contains("peregrine_live_state{stream=\"gate \\\"1\\\"\",state=\"live\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("le=\"0.1\"} 3"),
            "three of five within 100 ms: {t}"
        );
        assert!(t.contains("le=\"+Inf\"} 5"), "{t}");
        assert!(
            t.contains("peregrine_live_batch_size_bucket{le=\"3\"} 5"),
            "{t}"
        );
        assert!(t.contains("peregrine_live_batch_size_sum 9"), "{t}");
    }
}
