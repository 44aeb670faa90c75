//! The crate's one error type. Validation problems are collected per shot
//! and reported together before any media work starts.

use std::fmt;
use std::path::PathBuf;

/// What is wrong with one shot of the list.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ShotProblem {
    /// The source file does not exist.
    MissingSource(PathBuf),
    /// The source exists but FFmpeg cannot open or read it.
    Unreadable { path: PathBuf, cause: String },
    /// The source has no video stream.
    NoVideo(PathBuf),
    /// The in point is not before the out point.
    InNotBeforeOut { in_s: f64, out_s: f64 },
    /// The out point lies beyond the end of the source.
    OutBeyondDuration { out_s: f64, duration_s: f64 },
    /// A point is negative or not a number.
    BadPoint(String),
    /// Frame or timecode points where the frame rate is unknown or invalid.
    UnknownTimebase(String),
    /// A field is missing or malformed in the shot list entry.
    Malformed(String),
}

impl fmt::Display for ShotProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingSource(p) => write!(f, "{}: source not found", p.display()),
            Self::Unreadable { path, cause } => {
                write!(f, "{}: unreadable: {cause}", path.display())
            }
            Self::NoVideo(p) => write!(f, "{}: no video stream", p.display()),
            Self::InNotBeforeOut { in_s, out_s } => {
                write!(
                    f,
                    "in point {in_s:.3} s is not before out point {out_s:.3} s"
                )
            }
            Self::OutBeyondDuration { out_s, duration_s } => write!(
                f,
                "out point {out_s:.3} s is beyond the source's duration {duration_s:.3} s"
            ),
            Self::BadPoint(m) => write!(f, "bad in/out point: {m}"),
            Self::UnknownTimebase(m) => write!(f, "unknown timebase: {m}"),
            Self::Malformed(m) => write!(f, "malformed entry: {m}"),
        }
    }
}

/// One problem of one shot; `shot` counts from 1 in list order.
#[derive(Debug, Clone, PartialEq)]
pub struct ShotError {
    pub shot: usize,
    pub label: Option<String>,
    pub problem: ShotProblem,
}

impl fmt::Display for ShotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shot {}", self.shot)?;
        if let Some(l) = &self.label {
            write!(f, " ({l})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// Everything that can go wrong while assembling.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssembleError {
    /// The shot list file cannot be read or parsed as a whole.
    #[error("{path}: {cause}")]
    ShotList { path: PathBuf, cause: String },
    /// One or more shots failed validation; all of them are listed.
    #[error("{} invalid shot(s): {}", .0.len(), join(.0))]
    Invalid(Vec<ShotError>),
    /// `--mode copy` was asked for but the timeline cannot be stream-copied.
    #[error("stream copy impossible: {0}")]
    CopyImpossible(String),
    /// A shot failed while it was being read, decoded or encoded.
    #[error("shot {shot} ({path}): {cause}")]
    Shot {
        shot: usize,
        path: PathBuf,
        cause: String,
    },
    /// The output (or a segment) could not be written.
    #[error("{path}: {cause}")]
    Output { path: PathBuf, cause: String },
    /// An encoder is not available in this FFmpeg build.
    #[error("encoder {0} not available")]
    EncoderNotFound(String),
    /// Bad options (size, frame rate, codec settings).
    #[error("{0}")]
    Options(String),
    /// The run was cancelled; no output was written.
    #[error("cancelled")]
    Cancelled,
}

fn join(errors: &[ShotError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

pub type Result<T, E = AssembleError> = std::result::Result<T, E>;
