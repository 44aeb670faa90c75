//! Output containers and muxing: which container an output name selects and
//! what it can hold, streams added to an output, encoded packets written to
//! it, and the dts fix-up that keeps concatenated streams muxable.

use std::ffi::{CStr, CString};
use std::path::Path;

use ffmpeg_next as ffmpeg;
use ffmpeg_next::{codec, encoder, ffi, format, Packet, Rational};

const SUPPORTED: &str = "use .mp4, .mov, .mkv or .ts";

/// A muxer of this FFmpeg build, chosen before any media is written, so that
/// `-o x.gif` fails with the output's name and the reason instead of a muxer
/// error about a temporary file.
#[derive(Debug, Clone, Copy)]
pub struct Container {
    /// One of FFmpeg's static muxer descriptions (never freed).
    fmt: *const ffi::AVOutputFormat,
}

impl Container {
    /// The container `target`'s extension selects (MP4 without one); `Err`
    /// is the cause, for the caller to report with the output's name.
    pub fn for_output(target: &Path) -> Result<Self, String> {
        let ext = target.extension().and_then(|e| e.to_str()).unwrap_or("mp4");
        let probe = CString::new(format!("x.{ext}"))
            .map_err(|_| "the extension holds a NUL byte".to_owned())?;
        crate::init();
        // SAFETY: `probe` is a valid C string; null short name and MIME type
        // are allowed; the result is null or a static muxer description.
        let fmt =
            unsafe { ffi::av_guess_format(std::ptr::null(), probe.as_ptr(), std::ptr::null()) };
        if fmt.is_null() {
            return Err(format!(
                "no video container is known for the extension .{ext} ({SUPPORTED})"
            ));
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
    /// cannot hold; `Err` names the container and the codec.
    pub fn check(&self, streams: &[codec::Id]) -> Result<(), String> {
        match streams.iter().find(|&&id| !self.holds(id)) {
            None => Ok(()),
            Some(id) => Err(format!(
                "the {} container cannot hold {} {} ({SUPPORTED})",
                self.name(),
                id.name(),
                match id.medium() {
                    ffmpeg::media::Type::Audio => "audio",
                    _ => "video",
                }
            )),
        }
    }
}

/// Whether encoders feeding `octx` must put their headers in the stream
/// parameters (MP4, MKV) rather than in band.
pub fn wants_global_header(octx: &format::context::Output) -> bool {
    octx.format().flags().contains(format::Flags::GLOBAL_HEADER)
}

/// Adds a stream with `params` (an input stream's, for a copy, or an opened
/// encoder's) to `octx`. Its codec tag is cleared so the muxer picks the one
/// fitting its container (an MP4 tag is wrong in Matroska, say).
pub fn add_stream<P: Into<codec::Parameters>>(
    octx: &mut format::context::Output,
    params: P,
) -> Result<format::stream::StreamMut<'_>, ffmpeg::Error> {
    let mut ost = octx.add_stream(encoder::find(codec::Id::None))?;
    ost.set_parameters(params);
    // SAFETY: the stream's codecpar is valid while the output context lives;
    // codec_tag is a plain field.
    unsafe { (*ost.parameters().as_mut_ptr()).codec_tag = 0 };
    Ok(ost)
}

/// Writes every packet `enc` has ready to output stream `stream`, moving
/// its timestamps from the encoder's timebase `enc_tb` to the stream's.
pub fn write_encoded(
    enc: &mut encoder::Encoder,
    enc_tb: Rational,
    octx: &mut format::context::Output,
    stream: usize,
) -> Result<(), ffmpeg::Error> {
    let ost_tb = octx.stream(stream).map_or(enc_tb, |s| s.time_base());
    let mut pkt = Packet::empty();
    while enc.receive_packet(&mut pkt).is_ok() {
        pkt.set_stream(stream);
        pkt.rescale_ts(enc_tb, ost_tb);
        pkt.write_interleaved(octx)?;
    }
    Ok(())
}

/// Dts/pts fixer for streams joined from pieces: keeps each output stream's
/// dts strictly increasing (and pts not below it), as muxers require.
pub struct Monotonic {
    last_dts: Vec<i64>,
}

impl Monotonic {
    pub fn new(streams: usize) -> Self {
        Self {
            last_dts: vec![i64::MIN; streams],
        }
    }

    pub fn fix(&mut self, pkt: &mut Packet, stream: usize) {
        let mut dts = pkt.dts().or(pkt.pts()).unwrap_or(0);
        let last = self.last_dts[stream];
        if last != i64::MIN && dts <= last {
            dts = last + 1;
        }
        self.last_dts[stream] = dts;
        pkt.set_dts(Some(dts));
        let pts = pkt.pts().unwrap_or(dts).max(dts);
        pkt.set_pts(Some(pts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_come_from_the_extension_and_refuse_codecs_they_cannot_hold() {
        let mp4 = Container::for_output(Path::new("out.mp4")).unwrap();
        assert!(mp4.check(&[codec::Id::H264, codec::Id::AAC]).is_ok());
        let gif = Container::for_output(Path::new("out.gif")).unwrap();
        let why = gif.check(&[codec::Id::H264]).unwrap_err();
        assert!(
            why.starts_with("the gif container cannot hold h264 video"),
            "{why}"
        );
        let why = Container::for_output(Path::new("out.nope")).unwrap_err();
        assert!(why.contains("extension .nope"), "{why}");
    }
}
