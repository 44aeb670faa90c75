use std::path::{Path, PathBuf};

/// Everything that can go wrong reading media. Each message names the input
/// and the cause in one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    #[error("{}: file not found", .0.display())]
    NotFound(PathBuf),
    #[error("{}: file is empty (0 bytes)", .0.display())]
    Empty(PathBuf),
    #[error("{}: no video files found in directory", .0.display())]
    NoVideosInDirectory(PathBuf),
    #[error("{}: not a readable video ({reason})", .path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{}: cannot write: {reason}", .path.display())]
    Output { path: PathBuf, reason: String },
    #[error("{}: no video stream (the file has {streams})", .path.display())]
    NoVideoStream { path: PathBuf, streams: String },
    #[error("{}: cannot open {codec} decoder: {reason}", .path.display())]
    Decoder {
        path: PathBuf,
        codec: String,
        reason: String,
    },
    #[error("{}: no frame could be decoded ({reason})", .path.display())]
    NoFrames { path: PathBuf, reason: String },
    #[error("{}: invalid image sequence: {reason}", .path.display())]
    BadSequence { path: PathBuf, reason: String },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: frames of {width}x{height} ({} pixels) exceed the limit of {max_pixels} pixels (max_pixels)",
        .path.display(), u64::from(*.width) * u64::from(*.height)
    )]
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error("{}: scaler: {reason}", .path.display())]
    Scaler { path: PathBuf, reason: String },
}

impl MediaError {
    pub(crate) fn unreadable(path: &Path, err: impl std::fmt::Display) -> Self {
        MediaError::Unreadable {
            path: path.to_path_buf(),
            reason: err.to_string(),
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            MediaError::NotFound(path.to_path_buf())
        } else {
            MediaError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}
