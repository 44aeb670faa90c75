//! Where decoded frames come from, as the pipeline sees it.

use peregrine_core::FrameMeta;

use crate::{ffmpeg, DecodeStats, Decoder, MediaError};

/// A source of decoded frames, read on its own thread: a file or image
/// sequence ([`Decoder`]) today, a camera stream the same way. Its frames
/// are FFmpeg frames, which is why this trait lives here and not in
/// `peregrine-core` (which has no FFmpeg).
pub trait FrameSource: Send {
    /// Decodes until the next kept frame, written into `frame` (a pooled
    /// buffer); `None` at the end.
    fn next_frame(
        &mut self,
        frame: &mut ffmpeg::frame::Video,
    ) -> Result<Option<FrameMeta>, MediaError>;

    /// What was read and decoded so far.
    fn stats(&self) -> &DecodeStats;
}

impl FrameSource for Decoder {
    fn next_frame(
        &mut self,
        frame: &mut ffmpeg::frame::Video,
    ) -> Result<Option<FrameMeta>, MediaError> {
        Decoder::next_frame(self, frame)
    }

    fn stats(&self) -> &DecodeStats {
        Decoder::stats(self)
    }
}
