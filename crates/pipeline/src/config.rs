//! Analysis settings.

use std::str::FromStr;

use peregrine_infer::{DetectorConfig, Model, SessionConfig};
use peregrine_media::Sampling;
use peregrine_track::ByteTrackConfig;
use serde_json::json;

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
/// without a track needs [`AnalyzeOptions::untracked_min_score`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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

/// Everything `peregrine analyze` needs besides the inputs and the model.
#[derive(Clone, Debug)]
pub struct AnalyzeOptions {
    pub mode: Mode,
    pub sampling: Sampling,
    /// Detector thresholds. With tracking on, the detector runs at
    /// `min(conf, tracking.low_thresh)` so ByteTrack's second association
    /// sees low-score boxes; stored detections are the tracked ones plus the
    /// untracked ones scoring at least [`AnalyzeOptions::untracked_min_score`].
    pub detector: DetectorConfig,
    /// ByteTrack settings; `None` = `--no-track`. `frame_rate` is set from
    /// each input.
    pub tracking: Option<ByteTrackConfig>,
    pub session: SessionConfig,
    /// Inference workers, each with its own session.
    pub infer_workers: usize,
    /// Frames per inference call (dynamic-batch models only).
    pub batch: usize,
    /// FFmpeg decoder threads per input (0 = FFmpeg's choice).
    pub decode_threads: usize,
    pub fast_decode: bool,
    pub no_cache: bool,
    /// Inputs analysed at once.
    pub jobs: usize,
    /// Frames buffered per input between stages.
    pub queue_depth: usize,
    /// Frames written per database transaction.
    pub store_batch_frames: usize,
    /// Custom class names (`--labels`, or `NAME.names` beside the model),
    /// stored with the run so that exports, renders and the service name
    /// classes as analysed; `None`: COCO.
    pub class_names: Option<Vec<String>>,
    /// Largest frame analysed, in pixels (width × height): larger videos
    /// are refused before any frame buffer is allocated.
    pub max_pixels: u64,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Balanced,
            sampling: Sampling::default(),
            detector: DetectorConfig::default(),
            tracking: Some(ByteTrackConfig::default()),
            session: SessionConfig::default(),
            infer_workers: 1,
            batch: 1,
            decode_threads: 1,
            fast_decode: false,
            no_cache: false,
            jobs: 1,
            queue_depth: 4,
            store_batch_frames: 128,
            class_names: None,
            max_pixels: peregrine_core::DEFAULT_MAX_PIXELS,
        }
    }
}

impl AnalyzeOptions {
    /// The detector's thresholds as run: lowered to ByteTrack's low threshold
    /// when tracking, so its second association has boxes to work with.
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

    /// The parameters that change results: stored with each run and part of
    /// its cache key. Thread counts and batch size are not (they change
    /// speed only).
    pub fn result_params(&self, model: &Model) -> serde_json::Value {
        let d = &self.detector;
        let s = &self.sampling;
        let track = self.tracking.as_ref().map(|t| {
            json!({
                "track_thresh": t.track_thresh,
                "low_thresh": t.low_thresh,
                "new_track_thresh": t.new_track_thresh,
                "match_thresh": t.match_thresh,
                "track_buffer": t.track_buffer,
                "per_class": t.per_class,
                "untracked_min_score": self.untracked_min_score(),
            })
        });
        let mut v = json!({
            "track": track,
            "family": model.spec().family.name(),
            "mode": self.mode.name(),
            "conf": d.conf,
            "iou": d.iou,
            "classes": d.classes,
            "max_det": d.max_det,
            "agnostic": d.agnostic,
            "every": s.every,
            "fps": s.fps,
            "start": s.start,
            "end": s.end,
            "fast_decode": self.fast_decode,
        });
        // Only custom names join the key, so COCO runs keep theirs.
        if let (Some(names), Some(o)) = (&self.class_names, v.as_object_mut()) {
            o.insert("labels".into(), json!(names));
        }
        v
    }

    /// All effective settings, for the run record.
    pub fn all_params(&self, model: &Model) -> serde_json::Value {
        let mut v = self.result_params(model);
        let extra = json!({
            "intra_threads": self.session.intra_threads,
            "spin": self.session.spin,
            "infer_workers": self.infer_workers,
            "batch": model.max_batch(self.batch),
            "decode_threads": self.decode_threads,
            "queue_depth": self.queue_depth,
            "max_pixels": self.max_pixels,
        });
        if let (Some(a), Some(b)) = (v.as_object_mut(), extra.as_object()) {
            a.extend(b.clone());
        }
        v
    }
}

/// Analysis parameters as users write them: CLI flags, or the `params`
/// object of a job submitted to the service (same names, `_` or `-`).
/// Everything is optional; [`AnalyzeParams::resolve`] applies defaults and
/// validates into [`AnalyzeOptions`].
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeParams {
    pub mode: Option<String>,
    pub every: Option<u32>,
    pub fps: Option<f64>,
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub conf: Option<f32>,
    pub iou: Option<f32>,
    /// Class names or indices.
    pub classes: Option<Vec<String>>,
    #[serde(alias = "max-det")]
    pub max_det: Option<usize>,
    pub agnostic: Option<bool>,
    pub batch: Option<usize>,
    pub threads: Option<usize>,
    #[serde(alias = "infer-workers")]
    pub infer_workers: Option<usize>,
    #[serde(alias = "decode-threads")]
    pub decode_threads: Option<usize>,
    pub jobs: Option<usize>,
    #[serde(alias = "no-cache")]
    pub no_cache: Option<bool>,
    #[serde(alias = "no-track")]
    pub no_track: Option<bool>,
    #[serde(alias = "track-thresh")]
    pub track_thresh: Option<f32>,
    #[serde(alias = "match-thresh")]
    pub match_thresh: Option<f32>,
    #[serde(alias = "track-buffer")]
    pub track_buffer: Option<u32>,
    /// Accepted for compatibility: joint association of all classes is the
    /// default.
    #[serde(alias = "track-all-classes")]
    pub track_all_classes: Option<bool>,
    /// Associate each class separately (a class change starts a new track).
    #[serde(alias = "track-per-class")]
    pub track_per_class: Option<bool>,
    /// Largest frame, in pixels (default `peregrine_core::DEFAULT_MAX_PIXELS`).
    #[serde(alias = "max-pixels")]
    pub max_pixels: Option<u64>,
}

impl AnalyzeParams {
    /// [`AnalyzeParams::resolve`] for a model with custom class names (see
    /// [`model_labels`]) or COCO's (`None`); custom names are kept in the
    /// options, so the run stores them.
    pub fn resolve_for(
        &self,
        labels: Option<peregrine_core::Labels>,
    ) -> Result<AnalyzeOptions, String> {
        let mut opts = match &labels {
            Some(l) => self.resolve(l)?,
            None => self.resolve(&peregrine_core::Labels::coco())?,
        };
        opts.class_names = labels.map(|l| l.names().to_vec());
        Ok(opts)
    }

    /// Applies defaults (from `--mode` first) and checks every value;
    /// class filters resolve against `labels`.
    pub fn resolve(&self, labels: &peregrine_core::Labels) -> Result<AnalyzeOptions, String> {
        let mode: Mode = self.mode.as_deref().unwrap_or("balanced").parse()?;
        if let Some(f) = self.fps {
            if !(f.is_finite() && f > 0.0) {
                return Err(format!("fps must be a positive number, got {f}"));
            }
        }
        if self.every == Some(0) {
            return Err("every must be at least 1".into());
        }
        for (name, v) in [("start", self.start), ("end", self.end)] {
            if let Some(v) = v {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!(
                        "{name} must be a non-negative number of seconds, got {v}"
                    ));
                }
            }
        }
        if let (Some(s), Some(e)) = (self.start, self.end) {
            if e <= s {
                return Err(format!("end ({e}) must be after start ({s})"));
            }
        }
        let conf = self.conf.unwrap_or(mode.conf());
        if !(conf > 0.0 && conf <= 1.0) {
            return Err(format!("conf must be in (0, 1], got {conf}"));
        }
        let iou = self.iou.unwrap_or(0.45);
        if !(0.0..=1.0).contains(&iou) {
            return Err(format!("iou must be in [0, 1], got {iou}"));
        }
        let threads = self.threads.unwrap_or(2);
        // Small detectors run faster as several single-threaded sessions on
        // alternate frames than as one multi-threaded session (measured in
        // BENCHMARKS.md), so by default every thread gets its own session.
        let workers = self.infer_workers.unwrap_or(threads);
        let batch = self.batch.unwrap_or(1);
        let jobs = self.jobs.unwrap_or(1);
        if threads == 0 || workers == 0 || batch == 0 || jobs == 0 {
            return Err("threads, infer_workers, batch and jobs must be at least 1".into());
        }
        let max_pixels = self
            .max_pixels
            .unwrap_or(peregrine_core::DEFAULT_MAX_PIXELS);
        if max_pixels == 0 {
            return Err("max_pixels must be at least 1".into());
        }
        let classes = match &self.classes {
            Some(c) if !c.is_empty() => Some(
                c.iter()
                    .map(|n| labels.id_of(n).map_err(|e| format!("classes: {e}")))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            _ => None,
        };
        let tracking = if self.no_track.unwrap_or(false) {
            None
        } else {
            let mut t = ByteTrackConfig::default();
            if let Some(v) = self.track_thresh {
                t.track_thresh = v;
                t.new_track_thresh = (v + 0.1).min(1.0);
            }
            if let Some(v) = self.match_thresh {
                t.match_thresh = v;
            }
            if let Some(v) = self.track_buffer {
                t.track_buffer = v;
            }
            t.per_class = self.track_per_class.unwrap_or(false);
            if t.per_class && self.track_all_classes == Some(true) {
                return Err("track_per_class and track_all_classes contradict each other".into());
            }
            t.validate().map_err(|e| e.to_string())?;
            Some(t)
        };
        Ok(AnalyzeOptions {
            mode,
            tracking,
            sampling: Sampling {
                every: self.every.unwrap_or(1),
                fps: self.fps,
                start: self.start,
                end: self.end,
            },
            detector: DetectorConfig {
                conf,
                iou,
                classes,
                max_det: self.max_det.unwrap_or(mode.max_det()),
                agnostic: self.agnostic.unwrap_or(false),
            },
            session: SessionConfig {
                intra_threads: (threads / workers).max(1),
                spin: false,
            },
            infer_workers: workers,
            batch,
            decode_threads: self.decode_threads.unwrap_or(1),
            fast_decode: mode.fast_decode(),
            no_cache: self.no_cache.unwrap_or(false),
            jobs,
            queue_depth: (batch * workers * 2).max(4),
            store_batch_frames: 128,
            class_names: None,
            max_pixels,
        })
    }
}

/// Class names kept beside a model: `NAME.names` next to `NAME.onnx`, one
/// per line. `None` when there is no such file.
pub fn model_labels(
    model: &std::path::Path,
) -> Result<Option<peregrine_core::Labels>, peregrine_core::LabelsError> {
    let sidecar = model.with_extension("names");
    if !sidecar.is_file() {
        return Ok(None);
    }
    peregrine_core::Labels::from_file(&sidecar).map(Some)
}

/// The class names a stored run was analysed with: the `labels` of its
/// parameters, or COCO.
pub fn run_labels(run: &peregrine_store::RunRecord) -> peregrine_core::Labels {
    run.params
        .get("labels")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .map(|n| n.as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|names| !names.is_empty())
        .map_or_else(
            peregrine_core::Labels::coco,
            peregrine_core::Labels::from_names,
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_core::Labels;

    #[test]
    fn params_from_json_with_either_spelling() {
        let p: AnalyzeParams =
            serde_json::from_str(r#"{"fps": 5, "classes": ["person", "car"], "max-det": 50}"#)
                .unwrap();
        let o = p.resolve(&Labels::coco()).unwrap();
        assert_eq!(o.sampling.fps, Some(5.0));
        assert_eq!(o.detector.classes, Some(vec![0, 2]));
        assert_eq!(o.detector.max_det, 50);
        assert_eq!(o.detector.conf, 0.25);
    }

    #[test]
    fn bad_params_are_rejected_with_the_name() {
        let labels = Labels::coco();
        let bad = |json: &str| {
            serde_json::from_str::<AnalyzeParams>(json)
                .map_err(|e| e.to_string())
                .and_then(|p| p.resolve(&labels))
                .unwrap_err()
        };
        assert!(bad(r#"{"fps": -1}"#).contains("fps"));
        assert!(bad(r#"{"start": 5, "end": 2}"#).contains("after start"));
        assert!(bad(r#"{"conf": 2}"#).contains("conf"));
        assert!(bad(r#"{"classes": ["unicorn"]}"#).contains("unicorn"));
        assert!(bad(r#"{"bogus": 1}"#).contains("unknown field"));
        assert!(bad(r#"{"mode": "turbo"}"#).contains("unknown mode"));
        let fast = serde_json::from_str::<AnalyzeParams>(r#"{"mode": "fast"}"#).unwrap();
        let o = fast.resolve(&labels).unwrap();
        assert!(o.fast_decode && o.detector.conf == 0.35);
    }

    #[test]
    fn classes_are_tracked_jointly_unless_per_class() {
        let labels = Labels::coco();
        let resolve = |json: &str| {
            serde_json::from_str::<AnalyzeParams>(json)
                .unwrap()
                .resolve(&labels)
        };
        let o = resolve("{}").unwrap();
        assert!(!o.tracking.as_ref().unwrap().per_class);
        // Untracked boxes are kept from the birth threshold up.
        assert_eq!(o.untracked_min_score(), Some(0.6));
        let o = resolve(r#"{"track-all-classes": true}"#).unwrap();
        assert!(!o.tracking.unwrap().per_class);
        let o = resolve(r#"{"track_per_class": true, "conf": 0.7}"#).unwrap();
        assert!(o.tracking.as_ref().unwrap().per_class);
        assert_eq!(o.untracked_min_score(), Some(0.7));
        let e = resolve(r#"{"track_per_class": true, "track_all_classes": true}"#).unwrap_err();
        assert!(e.contains("contradict"), "{e}");
        let o = resolve(r#"{"no_track": true}"#).unwrap();
        assert_eq!(o.untracked_min_score(), None);
    }
}
