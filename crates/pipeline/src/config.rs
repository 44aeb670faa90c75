//! Analysis settings.

use peregrine_core::{
    Anchor, DetectorConfig, EngineSpec, LineSpec, Mode, RunSpec, Sampling, SpatialSpec, TrackSpec,
    ZoneSpec, DEFAULT_INTERVAL_S,
};
use peregrine_infer::Model;
use peregrine_track::ByteTrackConfig;
use serde_json::json;

use crate::Engine;

/// Everything an analysis needs besides the inputs and the model: the
/// engine it runs on, the run settings every input gets, and how many
/// inputs run at once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnalyzeOptions {
    pub engine: EngineSpec,
    pub run: RunSpec,
    /// Inputs analysed at once.
    pub jobs: usize,
}

/// The parameters that change results: stored with each run and part of
/// its cache key. Thread counts and batch size are not (they change speed
/// only).
pub fn result_params(run: &RunSpec, model: &Model) -> serde_json::Value {
    let d = &run.detector;
    let s = &run.sampling;
    let track = run.tracking.as_ref().map(|t| {
        json!({
            "track_thresh": t.track_thresh,
            "low_thresh": t.low_thresh,
            "new_track_thresh": t.new_track_thresh,
            "match_thresh": t.match_thresh,
            "track_buffer": t.track_buffer,
            "per_class": t.per_class,
            "untracked_min_score": run.untracked_min_score(),
        })
    });
    let mut v = json!({
        "track": track,
        "family": model.spec().family.name(),
        "mode": run.mode.name(),
        "conf": d.conf,
        "iou": d.iou,
        "classes": d.classes,
        "max_det": d.max_det,
        "agnostic": d.agnostic,
        "every": s.every,
        "fps": s.fps,
        "start": s.start,
        "end": s.end,
        "fast_decode": run.fast_decode,
    });
    // Only custom names join the key, so COCO runs keep theirs.
    if let (Some(names), Some(o)) = (&run.class_names, v.as_object_mut()) {
        o.insert("labels".into(), json!(names));
    }
    // Likewise lines and zones: runs without them keep their key.
    if let (Some(spatial), Some(o)) = (&run.spatial, v.as_object_mut()) {
        o.insert("spatial".into(), json!(spatial));
    }
    v
}

/// All effective settings of a run on `engine`, for the run record.
pub fn run_params(run: &RunSpec, engine: &Engine) -> serde_json::Value {
    let mut v = result_params(run, engine.model());
    let e = engine.spec();
    let extra = json!({
        "intra_threads": e.intra_threads,
        "spin": e.spin,
        "infer_workers": e.infer_workers,
        "batch": engine.batch(),
        "decode_threads": run.decode_threads,
        "queue_depth": e.queue_depth(),
        "max_pixels": run.max_pixels,
    });
    if let (Some(a), Some(b)) = (v.as_object_mut(), extra.as_object()) {
        a.extend(b.clone());
    }
    v
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
    /// Counting lines, `NAME=X1,Y1,X2,Y2` each.
    pub line: Option<Vec<String>>,
    /// Zones, `NAME=X,Y;X,Y;X,Y[;...]` each.
    pub zone: Option<Vec<String>>,
    /// Box point that stands for the object (default bottom-center).
    pub anchor: Option<String>,
    /// Counting interval, seconds of video time (default 60).
    pub interval: Option<f64>,
    /// Image ↔ ground point pairs (metres), four or more.
    pub calibration: Option<Vec<peregrine_core::PointPair>>,
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
        opts.run.class_names = labels.map(|l| l.names().to_vec());
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
            let mut t = TrackSpec::default();
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
            ByteTrackConfig::from_spec(&t, 0.0)
                .validate()
                .map_err(|e| e.to_string())?;
            Some(t)
        };
        let spatial = self.spatial(tracking.is_some())?;
        Ok(AnalyzeOptions {
            engine: EngineSpec {
                intra_threads: (threads / workers).max(1),
                spin: false,
                infer_workers: workers,
                batch,
            },
            run: RunSpec {
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
                decode_threads: self.decode_threads.unwrap_or(1),
                fast_decode: mode.fast_decode(),
                no_cache: self.no_cache.unwrap_or(false),
                class_names: None,
                max_pixels,
                spatial,
            },
            jobs,
        })
    }
}

impl AnalyzeParams {
    /// Lines, zones and calibration as a [`SpatialSpec`]; `None` when
    /// there are none (the run then keeps its cache key as before).
    fn spatial(&self, tracking: bool) -> Result<Option<SpatialSpec>, String> {
        let strip = |e: String| e.trim_start_matches("--").to_string();
        let lines = self
            .line
            .iter()
            .flatten()
            .map(|l| LineSpec::parse(l).map_err(strip))
            .collect::<Result<Vec<_>, _>>()?;
        let zones = self
            .zone
            .iter()
            .flatten()
            .map(|z| ZoneSpec::parse(z).map_err(strip))
            .collect::<Result<Vec<_>, _>>()?;
        let calibration = self.calibration.clone().unwrap_or_default();
        if lines.is_empty() && zones.is_empty() && calibration.is_empty() {
            return Ok(None);
        }
        if !tracking {
            return Err("line, zone and calibration need tracking (drop --no-track)".into());
        }
        let anchor = match &self.anchor {
            Some(a) => a.parse().map_err(|e| format!("anchor: {e}"))?,
            None => Anchor::default(),
        };
        let spec = SpatialSpec {
            lines,
            zones,
            anchor,
            interval_s: self.interval.unwrap_or(DEFAULT_INTERVAL_S),
            calibration,
        };
        spec.validate().map_err(strip)?;
        if !spec.calibration.is_empty() {
            peregrine_analytics::Homography::from_pairs(&spec.calibration)
                .map_err(|e| format!("calibration: {e}"))?;
        }
        Ok(Some(spec))
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
        assert_eq!(o.run.sampling.fps, Some(5.0));
        assert_eq!(o.run.detector.classes, Some(vec![0, 2]));
        assert_eq!(o.run.detector.max_det, 50);
        assert_eq!(o.run.detector.conf, 0.25);
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
        assert!(o.run.fast_decode && o.run.detector.conf == 0.35);
    }

    #[test]
    fn lines_and_zones_resolve_into_the_spec_and_absent_ones_serialise_as_before() {
        let labels = Labels::coco();
        let o = serde_json::from_str::<AnalyzeParams>(
            r#"{"line": ["a=0,10,100,10"], "zone": ["z=0,0;5,0;5,5"], "anchor": "center", "interval": 5}"#,
        )
        .unwrap()
        .resolve(&labels)
        .unwrap();
        let sp = o.run.spatial.as_ref().unwrap();
        assert_eq!(
            (sp.lines[0].end, sp.zones[0].points.len()),
            ((100.0, 10.0), 3)
        );
        assert_eq!((sp.anchor, sp.interval_s), (Anchor::Center, 5.0));
        let plain = AnalyzeParams::default().resolve(&labels).unwrap();
        assert_eq!(plain.run.spatial, None);
        let json = serde_json::to_value(&plain.run).unwrap();
        assert!(json.get("spatial").is_none(), "{json}");
        // Old stored specs (no field) still read.
        let back: RunSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back, plain.run);
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
        assert!(!o.run.tracking.as_ref().unwrap().per_class);
        // Untracked boxes are kept from the birth threshold up.
        assert_eq!(o.run.untracked_min_score(), Some(0.6));
        let o = resolve(r#"{"track-all-classes": true}"#).unwrap();
        assert!(!o.run.tracking.unwrap().per_class);
        let o = resolve(r#"{"track_per_class": true, "conf": 0.7}"#).unwrap();
        assert!(o.run.tracking.as_ref().unwrap().per_class);
        assert_eq!(o.run.untracked_min_score(), Some(0.7));
        let e = resolve(r#"{"track_per_class": true, "track_all_classes": true}"#).unwrap_err();
        assert!(e.contains("contradict"), "{e}");
        let o = resolve(r#"{"no_track": true}"#).unwrap();
        assert_eq!(o.run.untracked_min_score(), None);
    }
}
