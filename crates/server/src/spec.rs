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
        };
        let stored = serde_json::to_value(&spec).unwrap();
        assert_eq!(stored["family"], "nanodet");
        assert_eq!(stored["run"]["detector"]["classes"], serde_json::json!([1]));
        assert_eq!(serde_json::from_value::<JobSpec>(stored).unwrap(), spec);
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
