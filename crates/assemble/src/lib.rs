//! `peregrine-assemble`: join hundreds of shots into one video, fast.
//!
//! The flow is: [`read_shot_list`] (JSON, TOML, CMX3600 EDL, OTIO) →
//! [`plan`] (scan each distinct source once, validate every shot, report all
//! problems together) → a route per shot ([`mixed`]) → either the remux path
//! ([`copy`]: stream copy, smart cuts, conversions) or the normalising path
//! ([`normalize`]) → a temporary file renamed onto the target.
//!
//! Design decisions, briefly:
//! - `auto` mode is a smart render: the target format is the one most of the
//!   duration has (or `--size`/`--fps`); shots in it are stream-copied, cuts
//!   off keyframes being smart cuts that re-encode only the partial GOP at
//!   the cut (see [`copy`] and [`smart`]); the other shots are converted to
//!   the target's exact stream parameters and spliced into the same H.264
//!   track with their parameter sets in band (see [`mixed`]); audio is
//!   copied or converted per shot on one clock. When that is impossible
//!   (a conversion with a target x264 cannot reproduce), it normalises.
//! - The normalising path encodes each shot's video into its own segment on a
//!   pool of OS threads (one single-threaded encoder per worker, which scales
//!   better than one multi-threaded encoder on few cores), while audio is
//!   rendered as one continuous AAC stream on another thread: AAC frames do
//!   not align with cuts, and per-segment encoder priming would drift.
//! - Segments are cached by (source content hash, range, encode settings), so
//!   re-assembling a timeline where few shots changed re-encodes only those.
//! - Memory holds codec buffers and at most two decoded frames per worker;
//!   nothing is collected per shot except small bookkeeping.
//! - Output goes to a hidden temporary file beside the target and is renamed
//!   at the end; on error or cancellation it is removed. The container the
//!   target's extension selects is checked first: it must exist and hold
//!   the codecs the chosen path writes (`peregrine_media::Container`).
//! - Every FFmpeg concern (scanning sources, decoding, scaling, encoders,
//!   muxing) lives in `peregrine-media`, shared with rendering; this crate
//!   holds the shot lists, the plan and the two paths' editing logic.
//!
//! Modules: `options` and `error` depend on no sibling; `shotlist` on
//! `error`; `plan` on `error` and `shotlist`; `smart` on `options` and
//! `plan`; `normalize` on `options`, `plan` and `error`; `mixed` on
//! `smart`, `normalize`, `plan`, `options` (and `copy::shot_cut`); `pool`
//! on `smart` and `mixed`; `copy` on `pool`, `mixed`, `smart`, `options`,
//! `plan` and `error`; the crate root drives `copy` and `normalize`.

pub mod copy;
pub mod error;
pub mod mixed;
pub mod normalize;
pub mod options;
pub mod plan;
mod pool;
pub mod shotlist;
pub mod smart;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use peregrine_media::ffmpeg;
use peregrine_media::Container;

pub use error::{AssembleError, Result, ShotError, ShotProblem};
pub use ffmpeg::Rational;
pub use options::{AssembleOptions, EncodeSettings, Mode, Progress, ProgressFn};
pub use plan::{plan, Shot};
pub use shotlist::{parse_shot_list, read_shot_list, Point, ShotEntry, ShotListFormat, ShotSource};

/// What was done, for the `--json` summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub output: PathBuf,
    pub shots: usize,
    /// Output duration in seconds.
    pub duration: f64,
    /// The path actually taken: `copy`, `mixed` (copied and converted
    /// shots) or `normalize`.
    pub mode: Mode,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    pub frames: u64,
    /// `mixed`: the target format non-matching shots were encoded to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Why `auto` did not stream-copy, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_refused: Option<String>,
    /// Shots whose video was stream-copied (smart cuts included) and the
    /// frames copied packet for packet.
    pub copied_shots: usize,
    pub copied_frames: u64,
    /// Shots whose video was encoded whole (to the target format, or every
    /// shot when normalising) and their frames.
    pub encoded_shots: usize,
    pub encoded_frames: u64,
    /// Shots whose audio was converted to the target's.
    pub audio_converted_shots: usize,
    pub segments_encoded: usize,
    pub segments_reused: usize,
    /// Copy path: shots cut off a keyframe, whose partial GOPs were re-encoded.
    pub reencoded_shots: usize,
    /// Copy path: frames re-encoded at those cuts (all others were copied).
    pub reencoded_frames: u64,
}

/// Deletes the temporary output unless committed.
struct TempOutput {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl TempOutput {
    fn new(target: &Path) -> Result<Self> {
        let name =
            target
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| AssembleError::Output {
                    path: target.to_path_buf(),
                    cause: "not a file name".into(),
                })?;
        let ext = target.extension().and_then(|e| e.to_str()).unwrap_or("mp4");
        let dir = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(AssembleError::Output {
                path: target.to_path_buf(),
                cause: format!("folder {} does not exist", dir.display()),
            });
        }
        let tmp = dir.join(format!(".{name}.partial-{}.{ext}", std::process::id()));
        Ok(Self {
            tmp,
            target: target.to_path_buf(),
            committed: false,
        })
    }
    /// Errors about the temporary file name the target the user asked for
    /// and the container being written.
    fn name_target(&self, container: &Container, e: AssembleError) -> AssembleError {
        match e {
            AssembleError::Output { path, cause } if path == self.tmp => AssembleError::Output {
                path: self.target.clone(),
                cause: format!("writing {}: {cause}", container.name()),
            },
            e => e,
        }
    }
    fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.tmp, &self.target).map_err(|e| AssembleError::Output {
            path: self.target.clone(),
            cause: format!("rename from {}: {e}", self.tmp.display()),
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Assembles validated `shots` into `opts.output`.
pub fn assemble(
    shots: &[Shot],
    opts: &AssembleOptions,
    progress: &mut ProgressFn<'_>,
    cancel: &Arc<AtomicBool>,
) -> Result<Summary> {
    peregrine_media::init();
    let start = Instant::now();
    if shots.is_empty() {
        return Err(AssembleError::Options("no shots".into()));
    }
    let container = container_for(&opts.output)?;
    let tmp = TempOutput::new(&opts.output)?;
    let smart = match opts.mode {
        Mode::Normalize => Err("normalize mode requested".to_owned()),
        Mode::Copy => copy::copy_plan(shots, false).map(|cuts| mixed::copy_routes(shots, &cuts)),
        Mode::Auto | Mode::Mixed => mixed::smart_plan(shots, &opts.encode),
    };
    let summary = match (opts.mode, smart) {
        (Mode::Copy, Err(why)) => return Err(AssembleError::CopyImpossible(why)),
        (_, Ok((formats, routes))) => {
            let streams: Vec<_> = std::iter::once(formats.video.video.codec)
                .chain(formats.audio_stream().map(|a| a.codec))
                .collect();
            check_streams(&container, &opts.output, &streams)?;
            let stats = copy::copy_timeline(
                shots,
                &formats,
                &routes,
                &tmp.tmp,
                &opts.encode,
                opts.workers(),
                progress,
                cancel,
            )
            .map_err(|e| tmp.name_target(&container, e))?;
            let mixed = routes.iter().any(mixed::Route::converts);
            Summary {
                output: opts.output.clone(),
                shots: shots.len(),
                duration: stats.duration_s,
                mode: if mixed { Mode::Mixed } else { Mode::Copy },
                seconds: 0.0,
                frames: stats.frames,
                target: mixed.then(|| formats.describe()),
                copy_refused: None,
                copied_shots: shots.len() - stats.converted_shots,
                copied_frames: stats.frames - stats.converted_frames - stats.reencoded_frames,
                encoded_shots: stats.converted_shots,
                encoded_frames: stats.converted_frames,
                audio_converted_shots: stats.audio_converted_shots,
                segments_encoded: 0,
                segments_reused: 0,
                reencoded_shots: stats.reencoded_shots,
                reencoded_frames: stats.reencoded_frames,
            }
        }
        (mode, Err(why)) => {
            let video = ffmpeg::encoder::find_by_name(&opts.encode.codec)
                .map_or(ffmpeg::codec::Id::H264, |c| c.id());
            let audio = shots
                .iter()
                .any(|s| s.source.as_ref().is_some_and(|src| src.audio.is_some()))
                .then_some(ffmpeg::codec::Id::AAC);
            let streams: Vec<_> = std::iter::once(video).chain(audio).collect();
            check_streams(&container, &opts.output, &streams)?;
            let stats = normalize::normalize_timeline(shots, opts, &tmp.tmp, progress, cancel)
                .map_err(|e| tmp.name_target(&container, e))?;
            Summary {
                output: opts.output.clone(),
                shots: shots.len(),
                duration: stats.duration_s,
                mode: Mode::Normalize,
                seconds: 0.0,
                frames: stats.frames,
                target: None,
                copy_refused: matches!(mode, Mode::Auto | Mode::Mixed).then_some(why),
                copied_shots: 0,
                copied_frames: 0,
                encoded_shots: shots.len(),
                encoded_frames: stats.frames,
                audio_converted_shots: 0,
                segments_encoded: stats.encoded,
                segments_reused: stats.reused,
                reencoded_shots: 0,
                reencoded_frames: 0,
            }
        }
    };
    tmp.commit()?;
    Ok(Summary {
        seconds: start.elapsed().as_secs_f64(),
        ..summary
    })
}

/// Convenience: read, validate and assemble a shot list file.
pub fn assemble_file(
    shot_list: &Path,
    opts: &AssembleOptions,
    progress: &mut ProgressFn<'_>,
    cancel: &Arc<AtomicBool>,
) -> Result<Summary> {
    let start = Instant::now();
    peregrine_media::init();
    // An output no container fits is refused before any source is read.
    container_for(&opts.output)?;
    let shots = plan(read_shot_list(shot_list)?)?;
    let s = assemble(&shots, opts, progress, cancel)?;
    Ok(Summary {
        seconds: start.elapsed().as_secs_f64(),
        ..s
    })
}

/// The container `target`'s extension selects, or why there is none.
fn container_for(target: &Path) -> Result<Container> {
    Container::for_output(target).map_err(|cause| AssembleError::Output {
        path: target.to_path_buf(),
        cause,
    })
}

/// Refuses `streams` that `container` cannot hold, naming `target`.
fn check_streams(
    container: &Container,
    target: &Path,
    streams: &[ffmpeg::codec::Id],
) -> Result<()> {
    container
        .check(streams)
        .map_err(|cause| AssembleError::Output {
            path: target.to_path_buf(),
            cause,
        })
}
