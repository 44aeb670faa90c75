//! What a run asks for ([`RunSpec`]) apart from what the process runs it on
//! ([`EngineSpec`]).
//!
//! A run's settings travel with the run: many runs (files, jobs, later
//! camera streams) with different thresholds, classes and sampling share one
//! inference engine, whose settings are fixed for its life. Both are plain
//! serialisable values: the service validates a job into them once, stores
//! them, and its worker runs them as they are.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{ClassId, SpatialSpec};

/// Speed/accuracy presets (`--mode`). Each sets defaults that explicit flags
/// override:
///
/// | mode     | conf | decoder                     | detections kept |
/// |----------|------|-----------------------------|-----------------|
/// | fast     | 0.35 | skip H.264/HEVC deblocking  | 100 per frame   |
/// | balanced | 0.25 | full                        | 300 per frame   |
/// | accurate | 0.10 | full                        | 1000 per frame  |
///
/// `accurate` keeps low-confidence boxes. With tracking on, the detector
/// runs at ByteTrack's low threshold whatever the mode, and a stored box
/// without a track needs [`RunSpec::untracked_min_score`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Fast,
    #[default]
    Balanced,
    Accurate,
}

impl Mode {
    pub fn conf(&self) -> f32 {
        match self {
            Mode::Fast => 0.35,
            Mode::Balanced => 0.25,
            Mode::Accurate => 0.10,
        }
    }

    pub fn max_det(&self) -> usize {
        match self {
            Mode::Fast => 100,
            Mode::Balanced => 300,
            Mode::Accurate => 1000,
        }
    }

    pub fn fast_decode(&self) -> bool {
        matches!(self, Mode::Fast)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Mode::Fast => "fast",
            Mode::Balanced => "balanced",
            Mode::Accurate => "accurate",
        }
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fast" => Ok(Mode::Fast),
            "balanced" => Ok(Mode::Balanced),
            "accurate" => Ok(Mode::Accurate),
            other => Err(format!(
                "mode: unknown mode {other:?} (expected fast, balanced, accurate)"
            )),
        }
    }
}

/// Frame sampling and time range requested by the user.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Keep every Nth frame (1 = all).
    pub every: u32,
    /// Keep at most this many frames per second of video time.
    pub fps: Option<f64>,
    /// Start time in seconds.
    pub start: Option<f64>,
    /// End time in seconds (exclusive).
    pub end: Option<f64>,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            every: 1,
            fps: None,
            start: None,
            end: None,
        }
    }
}

impl Sampling {
    /// The spacing, in source frames, between kept frames, for a source at
    /// `source_fps`. Used to decide whether the decoder may skip
    /// non-reference frames.
    pub fn frame_stride(&self, source_fps: f64) -> f64 {
        let by_fps = match self.fps {
            Some(f) if f > 0.0 && source_fps > 0.0 => source_fps / f,
            _ => 1.0,
        };
        by_fps.max(self.every.max(1) as f64)
    }
}

/// Which detections a run keeps from the model's output: thresholds and
/// class filter, applied per frame by whichever engine worker runs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorConfig {
    pub conf: f32,
    pub iou: f32,
    /// Only these classes; `None` = all.
    pub classes: Option<Vec<ClassId>>,
    pub max_det: usize,
    /// NMS across classes instead of per class.
    pub agnostic: bool,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            conf: 0.25,
            iou: 0.45,
            classes: None,
            max_det: 300,
            agnostic: false,
        }
    }
}

/// The ByteTrack settings a user can set (`--track-thresh`,
/// `--match-thresh`, `--track-buffer`, `--track-per-class`); the tracker
/// crate turns them into its full configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackSpec {
    /// Detections above this are "high" (first association, births).
    pub track_thresh: f32,
    /// Detections above this and at most `track_thresh` are "low" (second
    /// association only); lower ones are ignored.
    pub low_thresh: f32,
    /// Minimum score to start a new track.
    pub new_track_thresh: f32,
    /// Maximum (fused) IoU cost accepted in the first association.
    pub match_thresh: f32,
    /// Frames a lost track is kept at 30 fps.
    pub track_buffer: u32,
    /// Track each class separately.
    pub per_class: bool,
}

impl Default for TrackSpec {
    /// ByteTrack's reference defaults.
    fn default() -> Self {
        Self {
            track_thresh: 0.5,
            low_thresh: 0.1,
            new_track_thresh: 0.6,
            match_thresh: 0.8,
            track_buffer: 30,
            per_class: false,
        }
    }
}

/// Everything about one run that is not the engine's: what to read, which
/// frames, which detections to keep, tracking, names, limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub mode: Mode,
    pub sampling: Sampling,
    /// Detector thresholds as asked. With tracking on, the engine runs
    /// them at `min(conf, tracking.low_thresh)` ([`RunSpec::detector_config`])
    /// so ByteTrack's second association sees low-score boxes.
    pub detector: DetectorConfig,
    /// `None` = `--no-track`.
    pub tracking: Option<TrackSpec>,
    /// FFmpeg decoder threads for this input (0 = FFmpeg's choice).
    pub decode_threads: usize,
    /// Skip H.264/HEVC deblocking (mode `fast`).
    pub fast_decode: bool,
    /// Analyse again even when a finished run has the same cache key.
    pub no_cache: bool,
    /// Custom class names (`--labels`, or `NAME.names` beside the model),
    /// stored with the run so that exports, renders and the service name
    /// classes as analysed; `None`: COCO.
    pub class_names: Option<Vec<String>>,
    /// Largest frame analysed, in pixels (width × height): larger videos
    /// are refused before any frame buffer is allocated.
    pub max_pixels: u64,
    /// Counting lines, zones and calibration (`--line`, `--zone`); absent
    /// from the serialised spec (and so from the cache key) when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spatial: Option<SpatialSpec>,
}

impl Default for RunSpec {
    fn default() -> Self {
        Self {
            mode: Mode::Balanced,
            sampling: Sampling::default(),
            detector: DetectorConfig::default(),
            tracking: Some(TrackSpec::default()),
            decode_threads: 1,
            fast_decode: false,
            no_cache: false,
            class_names: None,
            max_pixels: crate::DEFAULT_MAX_PIXELS,
            spatial: None,
        }
    }
}

impl RunSpec {
    /// The detector's thresholds as run: lowered to ByteTrack's low
    /// threshold when tracking, so its second association has boxes to
    /// work with.
    pub fn detector_config(&self) -> DetectorConfig {
        let mut d = self.detector.clone();
        if let Some(t) = &self.tracking {
            d.conf = d.conf.min(t.low_thresh);
        }
        d
    }

    /// With tracking on, the lowest score of a box stored without a track:
    /// `max(conf, new_track_thresh)`. ByteTrack trusts a box below its birth
    /// threshold only as the continuation of a track, so such a box that no
    /// track claims is not kept; what is stored (and drawn) is then tracked,
    /// except confident boxes that never became a track (an object seen in
    /// one frame only). `None` without tracking: every box from `conf` up.
    pub fn untracked_min_score(&self) -> Option<f32> {
        let t = self.tracking.as_ref()?;
        Some(self.detector.conf.max(t.new_track_thresh))
    }
}

/// The settings of an inference engine, fixed for its life and shared by
/// every run it serves: how many workers (each its own ONNX Runtime
/// session), their threads, and the batch size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EngineSpec {
    /// Intra-op threads of each session.
    pub intra_threads: usize,
    /// Let idle ONNX Runtime threads spin: lower latency, burns CPU.
    pub spin: bool,
    /// Inference workers, each with its own session.
    pub infer_workers: usize,
    /// Frames per inference call (dynamic-batch models only).
    pub batch: usize,
}

impl Default for EngineSpec {
    fn default() -> Self {
        Self {
            intra_threads: 2,
            spin: false,
            infer_workers: 1,
            batch: 1,
        }
    }
}

impl EngineSpec {
    /// Frames buffered per input between stages: enough to keep every
    /// worker's batch full twice over.
    pub fn queue_depth(&self) -> usize {
        (self.batch * self.infer_workers * 2).max(4)
    }
}
