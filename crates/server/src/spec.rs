//! A job as the worker runs it: everything the analysis needs, resolved and
//! validated once when the job is submitted and stored with it (the queue's
//! `spec` column), so the worker runs what the client was told it accepted.

use std::path::PathBuf;

use peregrine_core::{EngineSpec, RunSpec};
use peregrine_infer::Family;
use peregrine_pipeline::AnalyzeParams;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The video file or MOTChallenge folder (canonical path).
    pub video: PathBuf,
    /// The model file (canonical path).
    pub model: PathBuf,
    /// The model's family when the client named it; recognised from the
    /// model otherwise.
    pub family: Option<Family>,
    /// The engine the job runs on: jobs with the same model, family and
    /// engine settings share one.
    pub engine: EngineSpec,
    /// The run's settings, resolved from the parameters against the job's
    /// class names (`run.class_names`: the client's list or names file, else
    /// the model's `NAME.names`; `None` means COCO's, as the CLI has it),
    /// with the effective pixel limit (the server's, or the job's lower one).
    pub run: RunSpec,
    /// A gait job (`params.gait`): the model must give COCO-17 keypoints,
    /// and the job's view carries the gait metrics of its run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gait: Option<GaitJob>,
}

/// What a gait job asks of the metrics (`params.gait`: `true`, or
/// `{"mode": "fast|balanced|accurate", "height": metres}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GaitJob {
    /// fast | balanced | accurate: smoothing and keypoint confidence (the
    /// frame sampling is the job's own `params`).
    pub mode: String,
    /// The subject's height in metres: step length and speed in metres.
    pub height: Option<f64>,
}

impl GaitJob {
    /// `params.gait` as a client gives it, validated.
    pub fn parse(v: &Value) -> Result<Option<GaitJob>, String> {
        let (mode, height) = match v {
            Value::Bool(false) => return Ok(None),
            Value::Bool(true) => (None, None),
            Value::Object(m) => {
                if let Some(k) = m.keys().find(|k| *k != "mode" && *k != "height") {
                    return Err(format!("unknown field {k:?} (expected mode, height)"));
                }
                let mode = match m.get("mode") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(other) => return Err(format!("mode: {other} is not a string")),
                };
                let height = match m.get("height") {
                    None | Some(Value::Null) => None,
                    Some(h) => Some(
                        h.as_f64()
                            .ok_or_else(|| format!("height: {h} is not a number"))?,
                    ),
                };
                (mode, height)
            }
            other => {
                return Err(format!(
                    "{other} is neither true nor {{\"mode\", \"height\"}}"
                ))
            }
        };
        let mode = mode.unwrap_or_else(|| "balanced".into());
        mode.parse::<peregrine_gait::GaitMode>()?;
        if let Some(h) = height {
            if !(h.is_finite() && (0.5..=2.5).contains(&h)) {
                return Err(format!("height must be in metres, 0.5 to 2.5, got {h}"));
            }
        }
        Ok(Some(GaitJob { mode, height }))
    }

    pub fn mode(&self) -> peregrine_gait::GaitMode {
        self.mode.parse().unwrap_or_default()
    }
}

/// The server's pixel limit unless the job asked for a lower one.
pub fn effective_max_pixels(requested: Option<u64>, server: u64) -> u64 {
    requested.map_or(server, |m| m.min(server))
}

impl JobSpec {
    /// A job queued by a version that stored no spec, resolved as that
    /// version's worker did: its parameters, then the model's names file.
    pub fn legacy(
        video: &str,
        model: &str,
        params: &Value,
        server_max_pixels: u64,
    ) -> Result<JobSpec, String> {
        let params: AnalyzeParams =
            serde_json::from_value(params.clone()).map_err(|e| format!("params: {e}"))?;
        let model = PathBuf::from(model);
        let labels = peregrine_pipeline::model_labels(&model).map_err(|e| e.to_string())?;
        let mut opts = params.resolve_for(labels)?;
        opts.run.max_pixels = effective_max_pixels(params.max_pixels, server_max_pixels);
        Ok(JobSpec {
            video: PathBuf::from(video),
            model,
            family: None,
            engine: opts.engine,
            run: opts.run,
            gait: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_survives_its_stored_form() {
        let params: AnalyzeParams = serde_json::from_value(
            serde_json::json!({"conf": 0.4, "end": 2.0, "classes": ["dog"]}),
        )
        .unwrap();
        let opts = params
            .resolve_for(Some(peregrine_core::Labels::from_names(vec![
                "cat".into(),
                "dog".into(),
            ])))
            .unwrap();
        let spec = JobSpec {
            video: "/media/a.mp4".into(),
            model: "/models/m.onnx".into(),
            family: Some(Family::Nanodet),
            engine: opts.engine,
            run: opts.run,
            gait: Some(GaitJob {
                mode: "fast".into(),
                height: Some(1.7),
            }),
        };
        let stored = serde_json::to_value(&spec).unwrap();
        assert_eq!(stored["family"], "nanodet");
        assert_eq!(stored["run"]["detector"]["classes"], serde_json::json!([1]));
        assert_eq!(serde_json::from_value::<JobSpec>(stored).unwrap(), spec);
    }

    #[test]
    fn gait_requests_are_validated() {
        use serde_json::json;
        assert_eq!(GaitJob::parse(&json!(false)).unwrap(), None);
        assert_eq!(
            GaitJob::parse(&json!(true)).unwrap().unwrap().mode,
            "balanced"
        );
        let g = GaitJob::parse(&json!({"mode": "accurate", "height": 1.8}))
            .unwrap()
            .unwrap();
        assert_eq!(
            (g.mode(), g.height),
            (peregrine_gait::GaitMode::Accurate, Some(1.8))
        );
        for bad in [
            json!({"mode": "slow"}),
            json!({"height": 3.0}),
            json!({"height": "tall"}),
            json!({"speed": 1}),
            json!(3),
        ] {
            assert!(GaitJob::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_legacy_job_keeps_the_lower_pixel_limit_and_coco() {
        let spec = JobSpec::legacy(
            "/v.mp4",
            "/nonexistent/m.onnx",
            &serde_json::json!({"max_pixels": 10}),
            100,
        )
        .unwrap();
        assert_eq!(
            (spec.run.max_pixels, spec.run.class_names, spec.family),
            (10, None, None)
        );
        let spec = JobSpec::legacy("/v.mp4", "/m.onnx", &serde_json::json!({}), 100).unwrap();
        assert_eq!(spec.run.max_pixels, 100);
        assert!(
            JobSpec::legacy("/v.mp4", "/m.onnx", &serde_json::json!({"bogus": 1}), 1)
                .unwrap_err()
                .starts_with("params: ")
        );
    }
}
