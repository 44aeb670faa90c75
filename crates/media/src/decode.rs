//! Demux, decode and sample one input.

use ffmpeg_next as ffmpeg;
use ffmpeg_next::ffi;
use peregrine_core::{FrameMeta, SourceId};

use crate::input::{open_input, rational, source_info};
use crate::sampling::Verdict;
use crate::{InputKind, InputSpec, MediaError, Sampler, Sampling, SourceInfo};

/// How to decode.
#[derive(Clone, Debug, Default)]
pub struct DecoderOptions {
    /// FFmpeg decoder threads; 0 lets FFmpeg choose.
    pub threads: usize,
    pub sampling: Sampling,
    /// Skip the in-loop deblocking filter (H.264/HEVC): faster, slightly
    /// blockier frames. Used by `--mode fast`.
    pub fast: bool,
    pub source: SourceId,
}

/// What happened while decoding, for the run record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecodeStats {
    /// Video packets read.
    pub packets: u64,
    /// Packets the demuxer rejected as invalid and skipped.
    pub corrupt_packets: u64,
    /// Packets or frames the decoder reported errors for (skipped).
    pub decode_errors: u64,
    /// Frames the decoder returned but flagged as corrupt (concealed).
    pub corrupt_frames: u64,
    /// Frames that came out of the decoder.
    pub frames_decoded: u64,
    /// Frames handed to the caller after sampling.
    pub frames_selected: u64,
    /// The file ends before the data its index or header announces.
    pub truncated: bool,
    /// Frames announced by the container but missing, when truncated.
    pub frames_lost: u64,
    /// The read error that ended demuxing early, if any.
    pub read_error: Option<String>,
    /// Whether non-reference frames were skipped inside the decoder.
    pub skipped_nonref: bool,
}

/// Decodes one input and yields only the frames its [`Sampling`] keeps.
pub struct Decoder {
    spec: InputSpec,
    ictx: ffmpeg::format::context::Input,
    decoder: ffmpeg::decoder::Video,
    stream_index: usize,
    info: SourceInfo,
    sampler: Sampler,
    time_base: f64,
    start_pts: i64,
    source: SourceId,
    /// Frame indices come from a counter (exact) unless frames are skipped
    /// inside the decoder or we seeked, when they come from timestamps.
    count_frames: bool,
    counter: u64,
    last_index: Option<u64>,
    last_t: f64,
    packet: ffmpeg::Packet,
    eof_sent: bool,
    done: bool,
    stats: DecodeStats,
}

/// Releases the previous packet's buffer before the packet is reused:
/// `av_read_frame` overwrites the reference without freeing it, so reusing a
/// packet without this leaks every packet of the input.
pub(crate) fn read_packet_into(packet: &mut ffmpeg::Packet) {
    // SAFETY: the packet is a valid AVPacket owned by the caller; unref
    // leaves it blank and reusable.
    unsafe { ffi::av_packet_unref(ffmpeg::packet::Mut::as_mut_ptr(packet)) };
}

/// Below this spacing between kept frames, every frame is decoded.
const SKIP_NONREF_MIN_STRIDE: f64 = 3.0;

impl Decoder {
    pub fn open(spec: &InputSpec, opts: &DecoderOptions) -> Result<Self, MediaError> {
        let mut ictx = open_input(spec)?;
        let (stream_index, info) = source_info(spec, &ictx)?;
        let stream = ictx.stream(stream_index).expect("stream index from best()");
        let time_base = rational(stream.time_base());
        let start_pts = if stream.start_time() == ffi::AV_NOPTS_VALUE {
            0
        } else {
            stream.start_time()
        };
        let codec_err = |reason: String| MediaError::Decoder {
            path: spec.path.clone(),
            codec: info.codec.clone(),
            reason,
        };
        let mut ctx = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| codec_err(e.to_string()))?;
        ctx.set_threading(ffmpeg::codec::threading::Config {
            kind: ffmpeg::codec::threading::Type::Frame,
            count: opts.threads,
            ..Default::default()
        });
        let skip_nonref = opts.sampling.frame_stride(info.fps) >= SKIP_NONREF_MIN_STRIDE
            && matches!(spec.kind, InputKind::File);
        // SAFETY: the context is freshly allocated and not yet opened; these
        // are plain option fields FFmpeg reads when the decoder opens.
        unsafe {
            let raw = ctx.as_mut_ptr();
            if skip_nonref {
                (*raw).skip_frame = ffi::AVDiscard::AVDISCARD_NONREF;
            }
            if opts.fast {
                (*raw).skip_loop_filter = ffi::AVDiscard::AVDISCARD_ALL;
                (*raw).flags2 |= ffi::AV_CODEC_FLAG2_FAST;
            }
        }
        let decoder = ctx
            .decoder()
            .video()
            .map_err(|e| codec_err(format!("{e} (no decoder for this codec in FFmpeg?)")))?;
        let mut count_frames = !skip_nonref;
        if let Some(start) = opts.sampling.start.filter(|s| *s > 0.0) {
            let ts = (start * f64::from(ffi::AV_TIME_BASE)) as i64;
            // Seek to the keyframe at or before `start`; frames before it are
            // decoded (needed as references) but not selected.
            if ictx.seek(ts, ..ts).is_ok() {
                count_frames = false;
            }
        }
        Ok(Self {
            spec: spec.clone(),
            ictx,
            decoder,
            stream_index,
            info,
            sampler: Sampler::new(opts.sampling),
            time_base,
            start_pts,
            source: opts.source,
            count_frames,
            counter: 0,
            last_index: None,
            last_t: 0.0,
            packet: ffmpeg::Packet::empty(),
            eof_sent: false,
            done: false,
            stats: DecodeStats {
                skipped_nonref: skip_nonref,
                ..Default::default()
            },
        })
    }

    pub fn info(&self) -> &SourceInfo {
        &self.info
    }

    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    pub fn spec(&self) -> &InputSpec {
        &self.spec
    }

    /// Decodes until the next selected frame, which is written to `frame`.
    /// Returns `None` at the end of the input or of the requested range.
    pub fn next_frame(
        &mut self,
        frame: &mut ffmpeg::frame::Video,
    ) -> Result<Option<FrameMeta>, MediaError> {
        if self.done {
            return Ok(None);
        }
        loop {
            match self.decoder.receive_frame(frame) {
                Ok(()) => {
                    if let Some(meta) = self.on_frame(frame) {
                        return Ok(Some(meta));
                    }
                    if self.done {
                        return Ok(None);
                    }
                    continue;
                }
                Err(ffmpeg::Error::Eof) => {
                    self.finish();
                    return Ok(None);
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(_) => {
                    self.stats.decode_errors += 1;
                    if self.eof_sent {
                        continue;
                    }
                }
            }
            if self.eof_sent {
                // Draining after EOF must end with Eof; anything else is a
                // decoder that cannot make progress.
                self.finish();
                return Ok(None);
            }
            self.feed();
        }
    }

    fn feed(&mut self) {
        loop {
            read_packet_into(&mut self.packet);
            match self.packet.read(&mut self.ictx) {
                Ok(()) => {
                    if self.packet.stream() != self.stream_index {
                        continue;
                    }
                    self.stats.packets += 1;
                    if self.decoder.send_packet(&self.packet).is_err() {
                        self.stats.decode_errors += 1;
                    }
                    return;
                }
                Err(ffmpeg::Error::Eof) => {
                    self.send_eof();
                    return;
                }
                Err(ffmpeg::Error::InvalidData) => {
                    self.stats.corrupt_packets += 1;
                    if self.stats.corrupt_packets > 10_000 {
                        self.stats.read_error = Some("too many invalid packets".into());
                        self.send_eof();
                        return;
                    }
                }
                Err(e) => {
                    self.stats.read_error = Some(e.to_string());
                    self.send_eof();
                    return;
                }
            }
        }
    }

    fn send_eof(&mut self) {
        let _ = self.decoder.send_eof();
        self.eof_sent = true;
    }

    fn on_frame(&mut self, frame: &ffmpeg::frame::Video) -> Option<FrameMeta> {
        self.stats.frames_decoded += 1;
        // SAFETY: `frame` holds a valid AVFrame just returned by the decoder.
        let (flags, error_flags) = unsafe {
            let raw = frame.as_ptr();
            ((*raw).flags, (*raw).decode_error_flags)
        };
        if flags & ffi::AV_FRAME_FLAG_CORRUPT != 0 || error_flags != 0 {
            self.stats.corrupt_frames += 1;
        }
        let t = match frame.timestamp() {
            Some(ts) => (ts - self.start_pts) as f64 * self.time_base,
            None => self.counter as f64 / self.info.fps.max(1e-9),
        };
        let index = if self.count_frames || frame.timestamp().is_none() {
            self.counter
        } else {
            let by_time = (t * self.info.fps).round().max(0.0) as u64;
            match self.last_index {
                Some(last) if by_time <= last => last + 1,
                _ => by_time,
            }
        };
        self.counter += 1;
        self.last_index = Some(index);
        self.last_t = t;
        match self.sampler.verdict(index, t) {
            Verdict::Keep => {
                self.stats.frames_selected += 1;
                Some(FrameMeta {
                    source: self.source,
                    index,
                    pts: t,
                    width: frame.width(),
                    height: frame.height(),
                })
            }
            Verdict::Skip => None,
            Verdict::Stop => {
                self.done = true;
                None
            }
        }
    }

    /// End of input: decide whether the file was cut short.
    fn finish(&mut self) {
        self.done = true;
        let index_past_eof = self.index_points_past_eof();
        if index_past_eof || self.stats.read_error.is_some() {
            self.stats.truncated = true;
            let remaining =
                (self.info.duration - self.last_t - 1.0 / self.info.fps.max(1e-9)).max(0.0);
            self.stats.frames_lost = (remaining * self.info.fps).round() as u64;
        }
    }

    /// True when the container's index references bytes beyond the end of
    /// the file: the signature of a file truncated after it was written.
    fn index_points_past_eof(&mut self) -> bool {
        if !matches!(self.spec.kind, InputKind::File) {
            return false;
        }
        let Ok(meta) = std::fs::metadata(&self.spec.path) else {
            return false;
        };
        let size = meta.len() as i64;
        // SAFETY: the stream pointer is valid while `ictx` lives; entries are
        // read-only views owned by libavformat.
        unsafe {
            let stream = self.ictx.stream(self.stream_index).expect("stream exists");
            let st = stream.as_ptr() as *mut ffi::AVStream;
            let n = ffi::avformat_index_get_entries_count(st);
            if n <= 0 {
                return false;
            }
            let last = ffi::avformat_index_get_entry(st, n - 1);
            !last.is_null() && (*last).pos + i64::from((*last).size()) > size
        }
    }
}
