//! Media I/O for Peregrine: every FFmpeg concern in one layer. Opening and
//! probing inputs, decoding with frame sampling, letterboxing decoded frames
//! into a model's input canvas, and, for rendering and assembly, scanning
//! sources for editing, single-stream decoding from a seek point, fitting
//! pictures into encoder frames, H.264/AAC encoders and output muxing.
//!
//! A key design decision in this crate is that decoding and sampling live
//! together: the decoder knows which frames the run will use, so it can tell
//! FFmpeg to skip non-reference frames it would drop anyway, and frames that
//! are not selected are never converted or copied.

#![allow(unsafe_code)] // FFmpeg FFI: sws_scale into caller-owned buffers, decoder flags.

mod annotate;
mod browser;
mod canvas;
mod decode;
mod encode;
mod error;
mod fingerprint;
mod fit;
mod frames;
mod input;
mod live;
mod mux;
mod packet;
mod render;
mod sampling;
mod scan;
mod source;
mod timeline;

pub use annotate::{
    annotation_scale, detection_annotation, draw, palette_color, Annotation, RgbImage,
};
pub use browser::{browser_check, transcode_for_browser, BrowserCheck, TranscodeStats};
pub use canvas::{Canvas, LetterboxScaler};
pub use decode::{DecodeSkip, DecodeStats, Decoder, DecoderOptions, HwDecode};
pub use encode::{open_aac_encoder, EncoderError, VideoEncoderConfig};
pub use error::MediaError;
pub use ffmpeg_next as ffmpeg;
pub use fingerprint::{file_fingerprint, Fingerprint};
pub use fit::{even_size, FrameFitter};
pub use frames::StreamDecoder;
pub use input::{discover_inputs, probe, probe_limited, InputKind, InputSpec, SourceInfo};
pub use live::{LiveError, LiveInfo, LiveInput, LiveInputOptions};
pub use mux::{add_stream, wants_global_header, write_encoded, Container, Monotonic};
pub use packet::{frame_duration, is_discarded, read_packet, rescale, MICROSECONDS};
pub use peregrine_core::{CanvasLayout, ChannelOrder, Letterbox, ResizeMode};
pub use render::{
    annotated_frame_jpeg, encode_jpeg, encode_png, frame_rgb, render, RenderOptions, RenderStats,
};
pub use sampling::{Sampler, Sampling};
pub use scan::{scan, ScannedAudio, ScannedSource, ScannedVideo};
pub use source::FrameSource;

use std::sync::Once;

/// Initialises FFmpeg once per process and quiets its logging: errors are
/// counted and reported by Peregrine itself, one line per input. The
/// crate's entry points call it.
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
