//! The output container, chosen by the output's extension, and whether it
//! can hold the streams a run writes. Checked before any media is written,
//! so that `-o x.gif` fails with the output's name and the reason instead
//! of a muxer error about a temporary file.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::path::Path;

use ffmpeg_next::{codec, ffi};

use crate::error::{AssembleError, Result};

const SUPPORTED: &str = "use .mp4, .mov, .mkv or .ts";

/// A muxer of this FFmpeg build.
#[derive(Debug, Clone, Copy)]
pub struct Container {
    /// One of FFmpeg's static muxer descriptions (never freed).
    fmt: *const ffi::AVOutputFormat,
}

impl Container {
    /// The container `target`'s extension selects (MP4 without one).
    pub fn for_output(target: &Path) -> Result<Self> {
        let ext = target.extension().and_then(|e| e.to_str()).unwrap_or("mp4");
        let refuse = |cause: String| AssembleError::Output {
            path: target.to_path_buf(),
            cause,
        };
        let probe = CString::new(format!("x.{ext}"))
            .map_err(|_| refuse("the extension holds a NUL byte".into()))?;
        // SAFETY: `probe` is a valid C string; null short name and MIME type
        // are allowed; the result is null or a static muxer description.
        let fmt =
            unsafe { ffi::av_guess_format(std::ptr::null(), probe.as_ptr(), std::ptr::null()) };
        if fmt.is_null() {
            return Err(refuse(format!(
                "no video container is known for the extension .{ext} ({SUPPORTED})"
            )));
        }
        Ok(Self { fmt })
    }

    /// The muxer's short name (`mp4`, `matroska`, `gif`, ...).
    pub fn name(&self) -> &'static str {
        // SAFETY: `fmt` is a static muxer description whose `name` is a
        // static C string.
        unsafe { CStr::from_ptr((*self.fmt).name) }
            .to_str()
            .unwrap_or("?")
    }

    /// Whether the container can hold a stream of `id`. FFmpeg answers
    /// yes, no or "unknown"; unknown counts as yes (MPEG-TS holds H.264 but
    /// says unknown) except for animated-image containers, which hold only
    /// their own codec.
    pub fn holds(&self, id: codec::Id) -> bool {
        // SAFETY: `fmt` is a static muxer description.
        let (answer, native) = unsafe {
            (
                ffi::avformat_query_codec(self.fmt, id.into(), 0),
                [(*self.fmt).video_codec, (*self.fmt).audio_codec],
            )
        };
        match answer {
            1.. => true,
            0 => false,
            _ => native.contains(&id.into()) || !matches!(self.name(), "gif" | "apng" | "webp"),
        }
    }

    /// Refuses `streams` (the codecs a run will write) that the container
    /// of `target` cannot hold, naming the output and the codec.
    pub fn check(&self, target: &Path, streams: &[codec::Id]) -> Result<()> {
        match streams.iter().find(|&&id| !self.holds(id)) {
            None => Ok(()),
            Some(id) => Err(AssembleError::Output {
                path: target.to_path_buf(),
                cause: format!(
                    "the {} container cannot hold {} {} ({SUPPORTED})",
                    self.name(),
                    id.name(),
                    match id.medium() {
                        ffmpeg_next::media::Type::Audio => "audio",
                        _ => "video",
                    }
                ),
            }),
        }
    }
}
