use std::path::PathBuf;

/// Everything that can go wrong loading or running a model. Each message
/// names the model or library and the cause in one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InferError {
    #[error("ONNX Runtime library not found (looked for {searched}); run scripts/setup.sh to install it, or set ORT_DYLIB_PATH to {}", crate::runtime::LIB_NAME)]
    RuntimeNotFound { searched: String },
    #[error("{}: cannot load ONNX Runtime: {reason}", .path.display())]
    RuntimeLoad { path: PathBuf, reason: String },
    #[error("device {device}: {reason}")]
    DeviceUnavailable {
        device: crate::Device,
        reason: String,
    },
    #[error("{}: model file not found", .0.display())]
    ModelNotFound(PathBuf),
    #[error("{}: not a valid ONNX model ({reason})", .path.display())]
    InvalidModel { path: PathBuf, reason: String },
    #[error("{}: {reason}", .path.display())]
    UnknownFamily { path: PathBuf, reason: String },
    #[error("{}: inference failed: {reason}", .path.display())]
    Run { path: PathBuf, reason: String },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// First line of an ONNX Runtime message, without its error-code prefix.
pub(crate) fn short(err: impl std::fmt::Display) -> String {
    let s = err.to_string();
    let line = s.lines().next().unwrap_or("").trim();
    line.chars().take(300).collect()
}
