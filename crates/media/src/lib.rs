//! Media I/O for Peregrine: opening inputs, decoding with frame sampling,
//! and letterboxing decoded frames into a model's input canvas.
//!
//! A key design decision in this crate is that decoding and sampling live
//! together: the decoder knows which frames the run will use, so it can tell
//! FFmpeg to skip non-reference frames it would drop anyway, and frames that
//! are not selected are never converted or copied.

#![allow(unsafe_code)] // FFmpeg FFI: sws_scale into caller-owned buffers, decoder flags.

mod annotate;
mod canvas;
mod decode;
mod error;
mod fingerprint;
mod input;
mod render;
mod sampling;
mod timeline;

pub use annotate::{annotation_scale, draw, palette_color, Annotation, RgbImage};
pub use canvas::{Canvas, LetterboxScaler};
pub use decode::{DecodeStats, Decoder, DecoderOptions};
pub use error::MediaError;
pub use ffmpeg_next as ffmpeg;
pub use fingerprint::{file_fingerprint, Fingerprint};
pub use input::{discover_inputs, probe, probe_limited, InputKind, InputSpec, SourceInfo};
pub use peregrine_core::{CanvasLayout, ChannelOrder, Letterbox, ResizeMode};
pub use render::{annotated_frame_jpeg, encode_jpeg, render, RenderOptions, RenderStats};
pub use sampling::{Sampler, Sampling};

use std::sync::Once;

/// Initialises FFmpeg once per process and quiets its logging: errors are
/// counted and reported by Peregrine itself, one line per input.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ffmpeg_next::init();
        let level = if std::env::var_os("PEREGRINE_FFMPEG_LOG").is_some() {
            ffmpeg_next::util::log::Level::Info
        } else {
            ffmpeg_next::util::log::Level::Fatal
        };
        ffmpeg_next::util::log::set_level(level);
    });
}

/// The FFmpeg libraries' version string (for run records).
pub fn ffmpeg_version() -> String {
    // SAFETY: av_version_info returns a static NUL-terminated string.
    unsafe {
        std::ffi::CStr::from_ptr(ffmpeg_next::ffi::av_version_info())
            .to_string_lossy()
            .into_owned()
    }
}
