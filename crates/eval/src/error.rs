//! The crate's one error type.
//!
//! A key design decision here is that errors carry the path (and line, for
//! text rows) of the offending input rather than a position in the metric
//! code: every check runs while reading, so the message can always say which
//! file to fix.

use std::path::PathBuf;

/// Everything that can go wrong while reading inputs or scoring them.
///
/// Each variant names the input and the cause so that the CLI can print it
/// on one line (`gt.txt:12: width is NaN`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A malformed line: `file:line: reason`.
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A file or folder that is well formed line by line but cannot be
    /// scored as a whole (empty ground truth, frames outside the sequence,
    /// a sequence without predictions, ...).
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl EvalError {
    pub(crate) fn parse(path: &std::path::Path, line: usize, reason: impl Into<String>) -> Self {
        EvalError::Parse {
            path: path.to_path_buf(),
            line,
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(path: &std::path::Path, reason: impl Into<String>) -> Self {
        EvalError::Invalid {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
