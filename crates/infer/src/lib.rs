//! Object detection with ONNX Runtime: model families, pre- and
//! post-processing, non-maximum suppression.
//!
//! A key design decision in this crate is the split between [`Model`] and
//! [`Detector`]: a model is loaded, recognised and validated once into an
//! immutable value that is cheap to share; each inference thread then builds
//! its own [`Detector`] (its own ONNX Runtime session), because
//! `Session::run` needs `&mut self` and a session behind a mutex would
//! serialise the workers.

mod detector;
mod device;
mod error;
mod family;
mod nms;
mod postprocess;
mod runtime;
mod tensor;

pub use detector::{DetectFilter, Detector, Model, RunTiming, SessionConfig};
pub use device::{gpu_ort_dir, Accelerator, Device, GpuInfo, Selection};
pub use error::InferError;
pub use family::{BatchDim, Family, ModelSpec, Normalization, OutputLayout};
pub use nms::nms;
pub use peregrine_core::DetectorConfig;
pub use postprocess::Candidate;
pub use runtime::{ort_library_path, Runtime, ORT_VERSION};
pub use tensor::fill_tensor;
