use std::sync::Arc;

use peregrine_core::SinkError;
use peregrine_infer::InferError;
use peregrine_media::MediaError;
use peregrine_track::ConfigError;

/// Why an input could not be analysed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    #[error(transparent)]
    Media(#[from] MediaError),
    /// Shared: a failed session run fails every frame of its batch.
    #[error(transparent)]
    Infer(Arc<InferError>),
    /// The run's results could not be stored.
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Tracking(#[from] ConfigError),
    /// Lines, zones or calibration that cannot be counted with.
    #[error("{0}")]
    Spatial(String),
    #[error("{input}: {reason}")]
    Input { input: String, reason: String },
    /// The cancel flag was set before the work began.
    #[error("cancelled")]
    Cancelled,
}

impl From<InferError> for PipelineError {
    fn from(e: InferError) -> Self {
        PipelineError::Infer(Arc::new(e))
    }
}

impl From<Arc<InferError>> for PipelineError {
    fn from(e: Arc<InferError>) -> Self {
        PipelineError::Infer(e)
    }
}

impl PipelineError {
    /// Whether trying the same input again later may succeed (the store was
    /// busy with another writer).
    pub fn is_transient(&self) -> bool {
        matches!(self, PipelineError::Sink(e) if e.is_transient())
    }
}
