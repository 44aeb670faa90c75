//! Peregrine's analysis pipeline: decode → preprocess → infer (+
//! postprocess) → processors (tracking, statistics) → a run sink, each on
//! its own OS thread, joined by bounded channels.
//!
//! A key design decision in this crate is that the inference [`Engine`] is
//! shared: every input's decode and preprocess threads feed one pool of
//! inference workers, each owning its own ONNX Runtime session and batching
//! whatever is queued, and results are routed back to the input's sink by a
//! reply channel carried with each frame, together with the run's
//! thresholds. Several files (`--jobs N`), the service's jobs and later
//! live streams share the model without sharing a session. Results leave
//! through the [`peregrine_core::RunStore`] / [`peregrine_core::RunSink`]
//! traits: this crate does not know which database (if any) keeps them.

mod analyze;
pub mod bench;
mod config;
mod engine;
mod error;
mod metrics;
mod pool;
pub mod processors;
mod source;

pub use analyze::{
    analyze_all, decode_outcome, input_fingerprint, Analyzer, Progress, ProgressEvent, RunReport,
};
pub use config::{model_labels, result_params, run_params, AnalyzeOptions, AnalyzeParams};
pub use engine::{Engine, FrameResult, InferItem};
pub use error::PipelineError;
pub use metrics::{Histogram, Stage, StageSummary, StageTimings};
pub use peregrine_core::{EngineSpec, Mode, RunSpec};
pub use pool::{Pool, Pooled};
