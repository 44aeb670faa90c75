//! Live streams: many cameras analysed at once on one shared inference
//! engine, each frame's results stored within a latency budget.
//!
//! Path of a live frame: the stream's supervisor thread reads and decodes
//! the source ([`peregrine_media::LiveInput`], with a stall timeout), asks
//! the [`Scheduler`] whether to analyse the frame (its fps, and load
//! shedding, [`shed`]), letterboxes an admitted frame and queues it with
//! its deadline; the dispatcher hands the earliest deadline to the shared
//! [`peregrine_pipeline::Engine`]; the result comes back to the stream's
//! sink thread, which runs the same processors as a file run (tracking,
//! statistics) and commits it to the stream's run (status `live`).
//!
//! [`LiveSet`] is the whole thing as an object: start it on an engine and
//! a store, add and remove streams while it runs, read per-stream
//! snapshots, stop it (every run finalised). The CLI (`peregrine live`)
//! drives it; the service can drive it the same way.

pub mod events;
pub mod motion;
pub mod schedule;
pub mod shed;
mod stats;
pub mod still;
mod stream;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use peregrine_core::{RunSpec, RunStore, SourceId};
use peregrine_media::LiveInputOptions;
use peregrine_pipeline::{Engine, Histogram};
use serde::Deserialize;

pub use events::Events;
pub use schedule::{Admit, Scheduler, SchedulerConfig};
pub use stats::{prometheus_text, LatencyMs, StreamReport, StreamState, Summary};
pub use still::Still;
pub use stream::stream_processors;

use stats::{lock, StreamStats};
use stream::{run_stream, StreamCtx};

/// Why a live set or stream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("{0}")]
    Config(String),
    #[error("store: {0}")]
    Store(String),
}

/// One stream to analyse.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    pub name: String,
    /// A URL FFmpeg opens (rtsp://, rtmp://, http(s)://, udp://, srt://)
    /// or a file.
    pub source: String,
    /// Frames analysed per second.
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// Never shed.
    #[serde(default)]
    pub priority: bool,
    /// Shedding order among streams that are not priority: the lowest
    /// rank is shed first.
    #[serde(default)]
    pub rank: i32,
    /// Run the detector only on frames where something moves
    /// ([`motion::MotionGate`]); the others cost decode only.
    #[serde(default)]
    pub motion_gate: bool,
}

fn default_fps() -> f64 {
    5.0
}

/// Settings of a live set.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// From the read of a frame's last packet to its results being stored.
    pub latency_budget: Duration,
    /// No stream is shed below this rate (or its own fps, if lower).
    pub min_fps: f64,
    pub input: LiveInputOptions,
    /// First wait before reconnecting; doubled per failure up to the cap.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub control_interval: Duration,
    pub calm_intervals: u32,
    /// Motion gating: the fraction of the picture that must change.
    pub motion_min_area: f64,
    /// Keep each stream's latest analysed picture with its detections
    /// ([`LiveSet::still`]; one picture copied per second per stream).
    pub stills: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self {
            latency_budget: Duration::from_millis(100),
            min_fps: 1.0,
            input: LiveInputOptions::default(),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            control_interval: Duration::from_millis(500),
            calm_intervals: 4,
            motion_min_area: 0.005,
            stills: false,
        }
    }
}

/// A `streams.toml`: `[[stream]]` tables of `name`, `source`, `fps`,
/// `priority`, `rank`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamsFile {
    #[serde(default)]
    pub stream: Vec<StreamSpec>,
}

impl StreamsFile {
    pub fn parse(text: &str) -> Result<Self, LiveError> {
        toml::from_str(text).map_err(|e| LiveError::Config(e.to_string().replace('\n', " ")))
    }
}

struct StreamHandle {
    spec: StreamSpec,
    slot: usize,
    stats: Arc<StreamStats>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StreamHandle {
    fn report(&self) -> StreamReport {
        StreamReport::from_stats(
            &self.spec.name,
            &self.spec.source,
            self.spec.priority,
            &self.stats,
        )
    }
}

/// A running set of live streams on one engine and one store.
pub struct LiveSet {
    engine: Engine,
    store: Arc<dyn RunStore>,
    run: RunSpec,
    opts: LiveOptions,
    scheduler: Arc<Scheduler>,
    dispatcher: Option<JoinHandle<()>>,
    streams: Mutex<Vec<StreamHandle>>,
    next_source: Mutex<SourceId>,
    started: Instant,
    events: Option<Arc<Events>>,
}

impl LiveSet {
    /// Starts the dispatcher; streams are added with [`LiveSet::add`].
    /// `run` holds the detector and tracking settings every stream uses.
    pub fn start(
        engine: Engine,
        store: Arc<dyn RunStore>,
        run: RunSpec,
        opts: LiveOptions,
    ) -> LiveSet {
        let capacity = engine.spec().infer_workers.max(1) * engine.batch();
        let scheduler = Scheduler::new(SchedulerConfig {
            capacity,
            min_fps: opts.min_fps,
            control_interval: opts.control_interval,
            calm_intervals: opts.calm_intervals,
        });
        let tx = engine.sender();
        let s = scheduler.clone();
        let dispatcher = std::thread::Builder::new()
            .name("live-dispatch".into())
            .spawn(move || s.dispatch(tx))
            .expect("spawn dispatcher thread");
        LiveSet {
            engine,
            store,
            run,
            opts,
            scheduler,
            dispatcher: Some(dispatcher),
            streams: Mutex::new(Vec::new()),
            next_source: Mutex::new(0),
            started: Instant::now(),
            events: None,
        }
    }

    /// Publishes every stream's events (state, detections, tracks) to
    /// `events`; streams added from now on.
    pub fn with_events(mut self, events: Arc<Events>) -> Self {
        self.events = Some(events);
        self
    }

    /// Starts analysing a stream. Names are unique within the set.
    pub fn add(&self, spec: StreamSpec) -> Result<(), LiveError> {
        self.add_with_run(spec, None)
    }

    /// [`LiveSet::add`] with the stream's own run settings (detector
    /// filter, tracking, lines and zones) instead of the set's; the engine
    /// is the set's whatever they say.
    pub fn add_with_run(&self, spec: StreamSpec, run: Option<RunSpec>) -> Result<(), LiveError> {
        if spec.name.is_empty() {
            return Err(LiveError::Config("a stream needs a name".into()));
        }
        if !(spec.fps.is_finite() && spec.fps > 0.0) {
            return Err(LiveError::Config(format!(
                "stream {}: fps must be a positive number (got {})",
                spec.name, spec.fps
            )));
        }
        let mut streams = lock(&self.streams);
        if streams.iter().any(|s| s.spec.name == spec.name) {
            return Err(LiveError::Config(format!(
                "stream name {:?} is used twice",
                spec.name
            )));
        }
        let source = {
            let mut n = lock(&self.next_source);
            *n += 1;
            *n - 1
        };
        let stats = Arc::new(StreamStats::default());
        let slot = self.scheduler.add(
            shed::Demand {
                fps: spec.fps,
                priority: spec.priority,
                rank: spec.rank,
            },
            stats.clone(),
        );
        let cancel = Arc::new(AtomicBool::new(false));
        let ctx = StreamCtx {
            spec: spec.clone(),
            source,
            slot,
            stats: stats.clone(),
            cancel: cancel.clone(),
            scheduler: self.scheduler.clone(),
            engine: self.engine.clone(),
            store: self.store.clone(),
            run: run.unwrap_or_else(|| self.run.clone()),
            opts: self.opts.clone(),
            events: self.events.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("live-{}", spec.name))
            .spawn(move || run_stream(ctx))
            .map_err(|e| LiveError::Config(format!("cannot start a thread: {e}")))?;
        streams.push(StreamHandle {
            spec,
            slot,
            stats,
            cancel,
            thread: Some(thread),
        });
        Ok(())
    }

    /// Stops one stream, finalises its run and reports it; `None` for an
    /// unknown name.
    pub fn remove(&self, name: &str) -> Option<StreamReport> {
        let mut h = {
            let mut streams = lock(&self.streams);
            let i = streams.iter().position(|s| s.spec.name == name)?;
            streams.remove(i)
        };
        Some(self.finish(&mut h))
    }

    fn finish(&self, h: &mut StreamHandle) -> StreamReport {
        h.cancel.store(true, Ordering::Relaxed);
        if let Some(t) = h.thread.take() {
            let _ = t.join();
        }
        self.scheduler.remove(h.slot);
        h.report()
    }

    /// A stream's latest analysed picture with its detections (with
    /// [`LiveOptions::stills`]); `None` for an unknown name or before the
    /// first one.
    pub fn still(&self, name: &str) -> Option<Arc<Still>> {
        let streams = lock(&self.streams);
        let s = streams.iter().find(|s| s.spec.name == name)?;
        let still = lock(&s.stats.still).clone();
        still
    }

    /// Every stream's counters now.
    pub fn snapshot(&self) -> Vec<StreamReport> {
        lock(&self.streams)
            .iter()
            .map(StreamHandle::report)
            .collect()
    }

    /// Totals over the streams now (for `/metrics` with
    /// [`prometheus_text`] while the set runs).
    pub fn summary_now(&self) -> Summary {
        let reports = self.snapshot();
        self.summary(&reports)
    }

    /// Whether every stream's thread has ended (files played to their end).
    pub fn all_ended(&self) -> bool {
        lock(&self.streams)
            .iter()
            .all(|s| s.thread.as_ref().is_none_or(|t| t.is_finished()))
    }

    /// The shedding level now.
    pub fn shed_level(&self) -> u32 {
        self.scheduler.level()
    }

    /// Stops every stream (each run finalised with everything analysed so
    /// far written), then the dispatcher: the final reports and totals.
    pub fn stop(mut self) -> (Vec<StreamReport>, Summary) {
        let mut handles = std::mem::take(&mut *lock(&self.streams));
        for h in &handles {
            h.cancel.store(true, Ordering::Relaxed);
        }
        let reports: Vec<StreamReport> = handles.iter_mut().map(|h| self.finish(h)).collect();
        self.scheduler.stop();
        if let Some(d) = self.dispatcher.take() {
            let _ = d.join();
        }
        let summary = self.summary(&reports);
        (reports, summary)
    }

    fn summary(&self, reports: &[StreamReport]) -> Summary {
        let seconds = self.started.elapsed().as_secs_f64();
        let mut latency = Histogram::default();
        for r in reports {
            latency.merge(&r.latency);
        }
        let analysed: u64 = reports.iter().map(|r| r.frames_analysed).sum();
        let (batch_sizes, batch_size_mean) = self.scheduler.batches();
        Summary {
            streams: reports.len(),
            frames_received: reports.iter().map(|r| r.frames_received).sum(),
            frames_skipped: reports.iter().map(|r| r.frames_skipped).sum(),
            frames_analysed: analysed,
            frames_shed: reports.iter().map(|r| r.frames_shed).sum(),
            frames_gated: reports.iter().map(|r| r.frames_gated).sum(),
            reconnects: reports.iter().map(|r| r.reconnects).sum(),
            fps_analysed: stats::round3(if seconds > 0.0 {
                analysed as f64 / seconds
            } else {
                0.0
            }),
            latency_ms: LatencyMs::of(&latency),
            batch_size_mean: stats::round3(batch_size_mean),
            batch_sizes,
            max_shed_level: self.scheduler.max_level_seen(),
            seconds: stats::round3(seconds),
        }
    }
}

impl Drop for LiveSet {
    fn drop(&mut self) {
        let mut handles = std::mem::take(&mut *lock(&self.streams));
        for h in &handles {
            h.cancel.store(true, Ordering::Relaxed);
        }
        for h in &mut handles {
            self.finish(h);
        }
        self.scheduler.stop();
        if let Some(d) = self.dispatcher.take() {
            let _ = d.join();
        }
    }
}
