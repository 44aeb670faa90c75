use peregrine_infer::InferError;
use peregrine_media::MediaError;
use peregrine_store::StoreError;

/// Why an input could not be analysed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{input}: {reason}")]
    Input { input: String, reason: String },
    /// The cancel flag was set before the work began.
    #[error("cancelled")]
    Cancelled,
}
