//! Demux, decode and sample one input.

use ffmpeg_next as ffmpeg;
use ffmpeg_next::ffi;
use peregrine_core::{FrameMeta, SourceId};

use crate::input::{open_input, rational, source_info};
use crate::packet::read_packet;
use crate::sampling::Verdict;
use crate::timeline::Timeline;
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
    /// Largest frame accepted, in pixels (width × height); `None`:
    /// [`peregrine_core::DEFAULT_MAX_PIXELS`]. Larger videos are refused
    /// before any frame buffer is allocated.
    pub max_pixels: Option<u64>,
    pub hw: HwDecode,
}

/// Hardware decoding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HwDecode {
    #[default]
    Off,
    /// NVIDIA NVDEC through FFmpeg's `<codec>_cuvid` decoders (frames come
    /// back in host memory, as NV12); software decoding where the codec has
    /// no such decoder or it does not open (no GPU, no driver).
    Nvdec,
}

impl DecoderOptions {
    pub fn max_pixels(&self) -> u64 {
        self.max_pixels
            .unwrap_or(peregrine_core::DEFAULT_MAX_PIXELS)
            .max(1)
    }
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
    /// Frames missing: in gaps of the timestamps (damage in the middle) and,
    /// when truncated, announced by the container after the last one.
    pub frames_lost: u64,
    /// Gaps in the timestamps where frames were lost.
    pub gaps: u64,
    /// Presentation time (s) of the first frame after the first gap.
    pub first_gap_at: Option<f64>,
    /// The read error that ended demuxing early, if any.
    pub read_error: Option<String>,
    /// Whether non-reference frames were skipped inside the decoder.
    pub skipped_nonref: bool,
    /// The decoder used, when it is not FFmpeg's default for the codec
    /// (`h264_cuvid` for NVDEC).
    pub hw_decoder: Option<String>,
    /// Frames left undecoded by decode-side skipping ([`DecodeSkip`];
    /// counted by live inputs: packets dropped before the decoder
    /// exactly, frames the decoder skipped as packets sent less frames
    /// out, so within the decoder's delay of a frame or two).
    pub frames_skipped: u64,
    /// Kept frames dropped before analysis because the analysis fell
    /// behind a live source (never for files).
    pub frames_dropped: u64,
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
    max_pixels: u64,
    /// Frame indices and lost frames, from timestamps.
    timeline: Timeline,
    counter: u64,
    last_t: f64,
    /// Damage counters at the previous frame, to tell whether damage was
    /// reported since.
    damage_seen: u64,
    /// Decoding stopped at the end of the requested range.
    stopped: bool,
    packet: ffmpeg::Packet,
    eof_sent: bool,
    done: bool,
    stats: DecodeStats,
}

/// Below this spacing between kept frames, every frame is decoded.
const SKIP_NONREF_MIN_STRIDE: f64 = 3.0;

/// Keyframes only while the keyframe interval is at most this many
/// analysis periods (timestamps of a steady GOP vary a little).
const KEY_ONLY_SLACK: f64 = 1.05;

/// How much of a video a decoder may leave undecoded, given how far apart
/// the frames wanted are. Decoding cost then follows the rate frames are
/// used at instead of the source's rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum DecodeSkip {
    /// Every frame is decoded.
    #[default]
    Nothing,
    /// Frames no other frame refers to are skipped inside the decoder
    /// (`AVDISCARD_NONREF`): most B-frames, and the upper temporal layers
    /// of cameras that encode them. Frames at least
    /// [`SKIP_NONREF_MIN_STRIDE`] apart lose nothing they need.
    NonRef,
    /// Only keyframes are decoded (`AVDISCARD_NONKEY`; live inputs drop
    /// the other packets before the decoder): for rates at or below the
    /// keyframe rate.
    NonKey,
}

impl DecodeSkip {
    /// For frames wanted every `stride` source frames (a file's sampling).
    pub fn for_stride(stride: f64) -> Self {
        if stride >= SKIP_NONREF_MIN_STRIDE {
            DecodeSkip::NonRef
        } else {
            DecodeSkip::Nothing
        }
    }

    /// For a live stream of `source_fps` analysed at `rate` frames per
    /// second, with keyframes `key_interval` seconds apart (when known)
    /// and `reorder_delay` frames of B-frame reordering: keyframes only
    /// when every analysed frame can be a keyframe and no reordering holds
    /// a keyframe back until later ones arrive (a GOP each); otherwise
    /// [`DecodeSkip::for_stride`].
    pub fn for_rate(
        source_fps: f64,
        rate: f64,
        key_interval: Option<f64>,
        reorder_delay: u32,
    ) -> Self {
        if !(rate.is_finite() && rate > 0.0 && source_fps.is_finite() && source_fps > 0.0) {
            return DecodeSkip::Nothing;
        }
        let period = 1.0 / rate;
        if reorder_delay == 0
            && key_interval.is_some_and(|k| k > 0.0 && k <= period * KEY_ONLY_SLACK)
        {
            return DecodeSkip::NonKey;
        }
        Self::for_stride(source_fps / rate)
    }

    /// The decoder's `skip_frame` setting for this level.
    pub(crate) fn discard(self) -> ffi::AVDiscard {
        match self {
            DecodeSkip::Nothing => ffi::AVDiscard::AVDISCARD_DEFAULT,
            DecodeSkip::NonRef => ffi::AVDiscard::AVDISCARD_NONREF,
            DecodeSkip::NonKey => ffi::AVDiscard::AVDISCARD_NONKEY,
        }
    }
}

impl Decoder {
    pub fn open(spec: &InputSpec, opts: &DecoderOptions) -> Result<Self, MediaError> {
        let max_pixels = opts.max_pixels();
        let mut ictx = open_input(spec, max_pixels)?;
        let (stream_index, info) = source_info(spec, &ictx)?;
        check_size(&spec.path, info.width, info.height, max_pixels)?;
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
        let skip = if matches!(spec.kind, InputKind::File) {
            DecodeSkip::for_stride(opts.sampling.frame_stride(info.fps))
        } else {
            DecodeSkip::Nothing
        };
        let skip_nonref = skip == DecodeSkip::NonRef;
        let context = || -> Result<ffmpeg::codec::context::Context, MediaError> {
            let mut ctx = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
                .map_err(|e| codec_err(e.to_string()))?;
            ctx.set_threading(ffmpeg::codec::threading::Config {
                kind: ffmpeg::codec::threading::Type::Frame,
                count: opts.threads,
                ..Default::default()
            });
            // SAFETY: the context is freshly allocated and not yet opened;
            // these are plain option fields FFmpeg reads when the decoder
            // opens.
            unsafe {
                let raw = ctx.as_mut_ptr();
                (*raw).skip_frame = skip.discard();
                // Frames over the limit are refused inside the decoder,
                // before their buffers are allocated (a mid-stream size
                // change).
                (*raw).max_pixels = i64::try_from(max_pixels).unwrap_or(i64::MAX);
                if opts.fast {
                    (*raw).skip_loop_filter = ffi::AVDiscard::AVDISCARD_ALL;
                    (*raw).flags2 |= ffi::AV_CODEC_FLAG2_FAST;
                }
            }
            Ok(ctx)
        };
        let mut hw_decoder = None;
        let mut decoder = None;
        if opts.hw == HwDecode::Nvdec {
            let name = format!("{}_cuvid", stream.parameters().id().name());
            if let Some(codec) = ffmpeg::decoder::find_by_name(&name) {
                if let Ok(v) = context()?.decoder().open_as(codec).and_then(|o| o.video()) {
                    decoder = Some(v);
                    hw_decoder = Some(name);
                }
            }
        }
        let decoder = match decoder {
            Some(d) => d,
            None => context()?
                .decoder()
                .video()
                .map_err(|e| codec_err(format!("{e} (no decoder for this codec in FFmpeg?)")))?,
        };
        let mut count_frames = !skip_nonref;
        if let Some(start) = opts.sampling.start.filter(|s| *s > 0.0) {
            let ts = (start * f64::from(ffi::AV_TIME_BASE)) as i64;
            // Seek to the keyframe at or before `start`; frames before it are
            // decoded (needed as references) but not selected.
            if ictx.seek(ts, ..ts).is_ok() {
                count_frames = false;
            }
        }
        let timeline = Timeline::new(info.fps, !count_frames);
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
            max_pixels,
            timeline,
            counter: 0,
            last_t: 0.0,
            damage_seen: 0,
            stopped: false,
            packet: ffmpeg::Packet::empty(),
            eof_sent: false,
            done: false,
            stats: DecodeStats {
                skipped_nonref: skip_nonref,
                hw_decoder,
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
                    if let Some(meta) = self.on_frame(frame)? {
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
                    self.check_size_change()?;
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
            let errors = self.stats.decode_errors;
            self.feed();
            if self.stats.decode_errors != errors {
                self.check_size_change()?;
            }
        }
    }

    /// A decoder refusing a frame over `max_pixels` (a size change in the
    /// middle of the stream) is left with that size: that is an error of its
    /// own, not damage.
    fn check_size_change(&self) -> Result<(), MediaError> {
        // SAFETY: the decoder context is valid while `self.decoder` lives;
        // plain field reads.
        let (w, h) = unsafe {
            let raw = self.decoder.as_ptr();
            ((*raw).width.max(0) as u32, (*raw).height.max(0) as u32)
        };
        check_size(&self.spec.path, w, h, self.max_pixels)
    }

    fn feed(&mut self) {
        loop {
            match read_packet(&mut self.packet, &mut self.ictx) {
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

    fn on_frame(&mut self, frame: &ffmpeg::frame::Video) -> Result<Option<FrameMeta>, MediaError> {
        self.stats.frames_decoded += 1;
        check_size(
            &self.spec.path,
            frame.width(),
            frame.height(),
            self.max_pixels,
        )?;
        // SAFETY: `frame` holds a valid AVFrame just returned by the decoder.
        let (flags, error_flags) = unsafe {
            let raw = frame.as_ptr();
            ((*raw).flags, (*raw).decode_error_flags)
        };
        if flags & ffi::AV_FRAME_FLAG_CORRUPT != 0 || error_flags != 0 {
            self.stats.corrupt_frames += 1;
        }
        let damage = self.damage_count();
        let damaged = damage != self.damage_seen;
        self.damage_seen = damage;
        let t = frame
            .timestamp()
            .map(|ts| (ts - self.start_pts) as f64 * self.time_base);
        let placed = self.timeline.place(t, damaged);
        if placed.lost > 0 {
            self.stats.frames_lost += placed.lost;
            self.stats.gaps += 1;
            if self.stats.first_gap_at.is_none() {
                self.stats.first_gap_at = t;
            }
        }
        let index = placed.index;
        // A frame without a timestamp (an AVI's last frame, say) follows
        // the one before by a frame's duration: its time never runs back.
        let t = t.unwrap_or_else(|| {
            if self.counter == 0 {
                0.0
            } else {
                self.last_t + 1.0 / self.info.fps.max(1e-9)
            }
        });
        self.counter += 1;
        self.last_t = t;
        Ok(match self.sampler.verdict(index, t) {
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
                self.stopped = true;
                None
            }
        })
    }

    fn damage_count(&self) -> u64 {
        self.stats.corrupt_packets + self.stats.decode_errors + self.stats.corrupt_frames
    }

    /// End of input: decide whether the file was cut short.
    fn finish(&mut self) {
        self.done = true;
        let index_past_eof = self.index_points_past_eof();
        if index_past_eof || self.stats.read_error.is_some() {
            self.stats.truncated = true;
            let remaining =
                (self.info.duration - self.last_t - 1.0 / self.info.fps.max(1e-9)).max(0.0);
            self.stats.frames_lost += (remaining * self.info.fps).round() as u64;
        } else if !self.stopped
            && self.stats.frames_decoded > 0
            && self.damage_count() != self.damage_seen
            && self.info.duration > 0.0
        {
            // Damage after the last frame that came out: the frames up to
            // the announced duration are lost.
            let lost = self.timeline.lost_before(self.info.duration);
            if lost > 0 {
                self.stats.frames_lost += lost;
                self.stats.gaps += 1;
                self.stats.first_gap_at.get_or_insert(self.info.duration);
            }
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

/// Refuses frames larger than `max_pixels`.
pub(crate) fn check_size(
    path: &std::path::Path,
    width: u32,
    height: u32,
    max_pixels: u64,
) -> Result<(), MediaError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(MediaError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
            max_pixels,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::DecodeSkip;

    #[test]
    fn decode_skip_follows_the_analysed_rate() {
        use DecodeSkip::*;
        // 30 fps analysed at 15 (every other frame): everything decoded;
        // at 10 or 5 (3 or more apart): non-reference frames skipped.
        assert_eq!(DecodeSkip::for_rate(30.0, 15.0, None, 0), Nothing);
        assert_eq!(DecodeSkip::for_rate(30.0, 10.0, None, 0), NonRef);
        assert_eq!(DecodeSkip::for_rate(30.0, 5.0, Some(1.0), 0), NonRef);
        // Keyframes every second: keyframes only at 1 fps and below...
        assert_eq!(DecodeSkip::for_rate(30.0, 1.0, Some(1.0), 0), NonKey);
        assert_eq!(DecodeSkip::for_rate(30.0, 0.5, Some(1.0), 0), NonKey);
        assert_eq!(DecodeSkip::for_rate(30.0, 1.4, Some(1.0), 0), NonRef);
        // ...unless the interval is unknown or B-frame reordering would
        // hold each keyframe back for the next ones.
        assert_eq!(DecodeSkip::for_rate(30.0, 1.0, None, 0), NonRef);
        assert_eq!(DecodeSkip::for_rate(30.0, 1.0, Some(1.0), 2), NonRef);
        // A 4.3 s GOP (the intersection clip) never allows it at 1 fps.
        assert_eq!(
            DecodeSkip::for_rate(30.0, 1.0, Some(128.0 / 30.0), 0),
            NonRef
        );
        assert_eq!(DecodeSkip::for_rate(30.0, 0.0, Some(1.0), 0), Nothing);
        assert_eq!(DecodeSkip::for_stride(2.0), Nothing);
        assert_eq!(DecodeSkip::for_stride(3.0), NonRef);
    }
}
