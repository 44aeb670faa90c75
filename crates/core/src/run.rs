//! A run's life as the layers see it: the results a run produces, where
//! they go ([`RunStore`], [`RunSink`]) and what may act on them on the way
//! ([`FrameProcessor`]).
//!
//! The pipeline produces frames of detections and hands them through the
//! processors (tracking, statistics; later counting lines, zones, gait) to a
//! sink. It knows nothing of SQLite: the store implements these traits, and
//! a second store (PostgreSQL) or an event sink (MQTT) is another
//! implementation, not a change to the pipeline.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{BBox, ClassId, Detection, FrameMeta, GroundTrack, IntervalCounts, SourceId, TrackId};

/// Lifecycle of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Being written; rows may be incomplete.
    Running,
    /// Every selected frame was analysed.
    Complete,
    /// The input was damaged (truncated); everything decodable was analysed.
    Partial,
    Failed,
    /// Stopped by Ctrl-C, a kill, or a crash.
    Interrupted,
    /// A live stream's run, still receiving frames; when the stream stops
    /// it becomes `complete`, `partial` (it had outages) or `failed`.
    Live,
}

impl RunStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Complete => "complete",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Live => "live",
        }
    }

    /// Whether the run's rows are all there will be: `running`, `failed`
    /// and `interrupted` runs stopped short of their input's end.
    pub fn is_incomplete(&self) -> bool {
        matches!(
            self,
            RunStatus::Running | RunStatus::Failed | RunStatus::Interrupted | RunStatus::Live
        )
    }

    /// `complete` or `partial`: the run analysed everything it could.
    pub fn succeeded(&self) -> bool {
        matches!(self, RunStatus::Complete | RunStatus::Partial)
    }

    /// The status stored as `s`; an unknown text reads as `interrupted`
    /// (a run that cannot be trusted).
    pub fn parse(s: &str) -> RunStatus {
        match s {
            "running" => RunStatus::Running,
            "complete" => RunStatus::Complete,
            "partial" => RunStatus::Partial,
            "failed" => RunStatus::Failed,
            "live" => RunStatus::Live,
            _ => RunStatus::Interrupted,
        }
    }
}

/// Strict reading: anything but a status's own text is an error naming
/// it (unlike [`RunStatus::parse`]), for callers that act on a status.
impl std::str::FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<RunStatus, String> {
        [
            RunStatus::Running,
            RunStatus::Complete,
            RunStatus::Partial,
            RunStatus::Failed,
            RunStatus::Interrupted,
            RunStatus::Live,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| format!("unknown run status {s:?}"))
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A video as analysed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VideoRecord {
    pub path: String,
    pub content_hash: String,
    pub size: u64,
    pub duration: f64,
    pub fps: f64,
    pub width: u32,
    pub height: u32,
    pub codec: String,
    pub frames_expected: u64,
}

/// What is known when a run starts.
#[derive(Clone, Debug)]
pub struct RunStart {
    pub video: VideoRecord,
    /// BLAKE3 of (video fingerprint, model hash, result-affecting
    /// parameters).
    pub cache_key: String,
    pub model_path: String,
    pub model_hash: String,
    pub params: Value,
    pub versions: Value,
}

/// What is known when a run ends.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub error: Option<String>,
    pub frames: u64,
    pub detections: u64,
    pub tracks: u64,
    pub fps: f64,
    pub timings: Value,
    pub decode: Value,
}

/// A finished run found by its cache key.
#[derive(Clone, Debug)]
pub struct CachedRun {
    pub id: i64,
    pub status: RunStatus,
    pub error: Option<String>,
    pub frames: u64,
    pub detections: u64,
    pub tracks: u64,
    pub fps: Option<f64>,
    pub timings: Option<Value>,
    pub decode: Option<Value>,
}

/// The detections of one analysed frame.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameDetections {
    pub meta: FrameMeta,
    pub detections: Vec<Detection>,
}

/// Statistics of one track.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrackSummary {
    pub source: SourceId,
    pub track_id: TrackId,
    /// The class with the highest summed score over the track's
    /// observations (ties: the class seen first), as the tracker decides it.
    pub class_id: ClassId,
    pub first_frame: u64,
    pub last_frame: u64,
    /// Presentation time of the first observation, seconds.
    pub first_time_s: f64,
    pub last_time_s: f64,
    /// Number of frames the track was observed in.
    pub frames_seen: u64,
    pub mean_score: f64,
    /// Sum of box-centre displacements between consecutive observations, px.
    pub path_length_px: f64,
    /// Mean over consecutive observations of displacement / Δt; `None` with
    /// fewer than two observations at distinct times.
    pub mean_speed_px_s: Option<f64>,
    pub max_speed_px_s: Option<f64>,
    /// Union of all observed boxes.
    pub region: BBox,
}

/// Why a store or sink could not take a run's results. The message is the
/// implementation's own one-line error (it names the database); the kind
/// says what a caller may do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub kind: SinkErrorKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkErrorKind {
    /// Another writer holds the store: trying again later may succeed.
    Busy,
    /// No space left: nothing of the failed write was kept.
    Full,
    Other,
}

impl SinkError {
    /// Whether the same work may succeed if tried again later.
    pub fn is_transient(&self) -> bool {
        self.kind == SinkErrorKind::Busy
    }
}

/// Where runs are recorded: the result cache and each run's beginning.
pub trait RunStore: Send + Sync {
    /// A finished (`complete` or `partial`) run with this cache key.
    fn cached(&self, cache_key: &str) -> Result<Option<CachedRun>, SinkError>;
    /// Records the video and a `running` run; its results go to the sink
    /// returned, which must be finished with the run's outcome.
    fn begin(&self, start: &RunStart) -> Result<Box<dyn RunSink>, SinkError>;
    /// Like [`RunStore::begin`], for a live stream: the run is recorded as
    /// `live` until it is finished. A store without that status records
    /// it as `running`.
    fn begin_live(&self, start: &RunStart) -> Result<Box<dyn RunSink>, SinkError> {
        self.begin(start)
    }
}

/// Where one run's results go, in order. Every call is one unit: a failed
/// call has kept nothing of its own and nothing earlier is lost.
pub trait RunSink: Send {
    fn run_id(&self) -> i64;
    /// Frames in presentation order (the pipeline writes them in batches).
    fn frames(&mut self, frames: &[FrameDetections]) -> Result<(), SinkError>;
    /// Tracks that have ended (each is written once).
    fn tracks(&mut self, tracks: &[TrackSummary]) -> Result<(), SinkError>;
    /// Finished counting intervals and tracks' ground motion (runs with
    /// lines, zones or a calibration). A sink that keeps no counts (an
    /// event stream) takes them and keeps nothing.
    fn spatial(
        &mut self,
        _counts: &[IntervalCounts],
        _ground: &[GroundTrack],
    ) -> Result<(), SinkError> {
        Ok(())
    }
    /// The run's final status and totals.
    fn finish(&mut self, outcome: &RunOutcome) -> Result<(), SinkError>;
}

/// What a processor hands on: frames for the next processor (in order) and
/// tracks that have ended, for the sink.
#[derive(Debug, Default)]
pub struct Processed {
    pub frames: Vec<FrameDetections>,
    pub tracks: Vec<TrackSummary>,
    /// Counting intervals that are complete.
    pub counts: Vec<IntervalCounts>,
    /// Ground motion of tracks that have ended.
    pub ground: Vec<GroundTrack>,
}

/// A step between inference and the sink that sees every frame of one run
/// in presentation order: tracking, per-track statistics, and later
/// counting lines, zones and gait. A processor may change a frame's
/// detections (tracking sets ids, filters boxes), hold frames back (it must
/// hand them on in order, and all of them by [`FrameProcessor::finish`]),
/// and report tracks that ended.
pub trait FrameProcessor: Send {
    /// Short name, for timings and errors.
    fn name(&self) -> &'static str;
    fn frame(&mut self, frame: FrameDetections, out: &mut Processed);
    /// End of the input: hand on what is held, report what is open.
    fn finish(&mut self, out: &mut Processed);
}
