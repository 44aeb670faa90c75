//! What a run is asked to do and how it reports progress: the types every
//! path of the assembler reads, kept apart so the paths depend on them and
//! not on each other.

use std::path::PathBuf;
use std::time::Duration;

use peregrine_media::ffmpeg::Rational;

/// Which path to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Copy every shot in the target format (the one most of the duration
    /// has), encode the others to it; normalise when that is impossible.
    Auto,
    Copy,
    Normalize,
    /// Reported, not requested: `auto` copied some shots and encoded others
    /// (video or audio) to the target format.
    Mixed,
}

/// Live progress, reported after each finished shot.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub shots_done: usize,
    pub shots_total: usize,
    /// Output frames written so far, copied and encoded.
    pub frames_done: u64,
    /// Of those, frames encoded (conversions, smart-cut pieces, normalising).
    pub frames_encoded: u64,
    pub elapsed: Duration,
}

pub type ProgressFn<'a> = dyn FnMut(Progress) + 'a;

/// Options of one assembly.
#[derive(Debug, Clone)]
pub struct AssembleOptions {
    pub output: PathBuf,
    pub mode: Mode,
    pub encode: EncodeSettings,
    /// Worker threads for the normalising path and for smart cuts (0: one
    /// per core).
    pub jobs: usize,
    /// Segment cache folder; `None`: segments live in a temporary folder.
    pub cache_dir: Option<PathBuf>,
}

impl AssembleOptions {
    /// [`jobs`](Self::jobs) resolved: 0 becomes the number of cores.
    pub fn workers(&self) -> usize {
        if self.jobs == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            self.jobs
        }
    }
}

/// Encode settings of the normalising path (and, preset and CRF only, of
/// smart cuts).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeSettings {
    /// FFmpeg encoder name: `libx264` (default) or `h264_nvenc`.
    pub codec: String,
    pub crf: u32,
    pub preset: String,
    /// Target size; `None`: the first shot's size (rounded to even).
    pub size: Option<(u32, u32)>,
    /// Target frame rate; `None`: the first shot's rate.
    pub fps: Option<Rational>,
    pub audio_bitrate: usize,
}

impl Default for EncodeSettings {
    fn default() -> Self {
        Self {
            codec: "libx264".into(),
            crf: 20,
            preset: "veryfast".into(),
            size: None,
            fps: None,
            audio_bitrate: 128_000,
        }
    }
}
