//! Peregrine's analysis pipeline: decode → preprocess → infer (+
//! postprocess) → track → store, each on its own OS thread, joined by
//! bounded channels.
//!
//! A key design decision in this crate is that the inference stage is
//! shared: every input's decode and preprocess threads feed one pool of
//! inference workers, each owning its own ONNX Runtime session and batching
//! whatever is queued, and results are routed back to the input's sink by a
//! reply channel carried with each frame. Several files (`--jobs N`) today
//! and many live streams later share the model without sharing a session.

mod analyze;
pub mod bench;
mod config;
mod error;
mod infer_stage;
mod metrics;
mod pool;
mod render;
mod source;

pub use analyze::{analyze_all, Analyzer, Progress, ProgressEvent, RunReport};
pub use config::{model_labels, run_labels, AnalyzeOptions, AnalyzeParams, Mode};
pub use error::PipelineError;
pub use infer_stage::{FrameResult, InferItem, InferStage};
pub use metrics::{Histogram, Stage, StageSummary, StageTimings};
pub use pool::{Pool, Pooled};
pub use render::{render_frame_jpeg, render_run};
