use serde::{Deserialize, Serialize};

/// Identifies one input (file, image sequence or stream) within a process.
/// Lets many sources share one inference stage.
pub type SourceId = u32;

/// Where a frame comes from and when it is shown.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameMeta {
    pub source: SourceId,
    /// Index of the frame in the whole input (0-based), counting frames
    /// that sampling skipped; after a gap in the timestamps (frames lost to
    /// damage) it moves on by the time that passed, so it stays the frame's
    /// true position in the video.
    pub index: u64,
    /// Presentation time in seconds from the start of the input.
    pub pts: f64,
    pub width: u32,
    pub height: u32,
}

/// Largest frame, in pixels (width × height), that Peregrine decodes unless
/// told otherwise: 8192 × 4320 (8K DCI). A hostile 16000 × 16000 stream costs
/// gigabytes of frame buffers; this bound refuses it up front.
pub const DEFAULT_MAX_PIXELS: u64 = 8192 * 4320;
