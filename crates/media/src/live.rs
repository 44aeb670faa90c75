//! Live inputs: cameras and streams (RTSP over TCP or UDP, RTMP, HLS,
//! HTTP/MPEG-TS, UDP, SRT) and files played as if they were cameras.
//!
//! A key design decision: every blocking FFmpeg call on a live input
//! (opening, probing, reading) is bounded by an interrupt callback with a
//! deadline, so a source that stops sending (a stalled camera, a network
//! that drops packets silently) returns [`LiveError::Stalled`] after the
//! stall timeout instead of blocking its thread forever. Decode errors are
//! counted, never fatal: a damaged packet costs a frame, not the stream.

use std::collections::VecDeque;
use std::ffi::{c_int, c_void, CString};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffmpeg_next as ffmpeg;
use ffmpeg_next::ffi;

use crate::packet::read_packet;
use crate::{DecodeSkip, DecodeStats};

/// How to open and read a live input.
#[derive(Clone, Debug)]
pub struct LiveInputOptions {
    /// RTSP transport: `tcp` or `udp` (`None`: FFmpeg's default, UDP
    /// first, then TCP).
    pub rtsp_transport: Option<String>,
    /// No packet for this long: the input is stalled.
    pub stall_timeout: Duration,
    /// Longest time opening and probing may take.
    pub open_timeout: Duration,
    /// Files: deliver frames at their native rate, as a camera would.
    pub realtime: bool,
    /// Files: start again at the end instead of ending.
    pub looping: bool,
    /// Largest frame accepted (width × height).
    pub max_pixels: u64,
    /// FFmpeg decoder threads (0: FFmpeg chooses).
    pub decode_threads: usize,
    /// Decode every frame, whatever the analysed rate
    /// ([`LiveInput::set_analysed_rate`] then changes nothing).
    pub decode_all: bool,
}

impl Default for LiveInputOptions {
    fn default() -> Self {
        Self {
            rtsp_transport: Some("tcp".into()),
            stall_timeout: Duration::from_secs(5),
            open_timeout: Duration::from_secs(10),
            realtime: false,
            looping: false,
            max_pixels: peregrine_core::DEFAULT_MAX_PIXELS,
            decode_threads: 1,
            decode_all: false,
        }
    }
}

/// Why a live input could not be opened or read on. Every message names
/// the source.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("{url}: cannot open: {reason}")]
    Open { url: String, reason: String },
    #[error("{url}: no packet for {:.1} s (stalled)", .timeout.as_secs_f64())]
    Stalled { url: String, timeout: Duration },
    #[error("{url}: read failed: {reason}")]
    Read { url: String, reason: String },
    #[error("{url}: {reason}")]
    Garbage { url: String, reason: String },
}

/// The interrupt callback's view of its input: a deadline and a stop flag.
struct Interrupt {
    epoch: Instant,
    /// Milliseconds after `epoch` past which blocking calls give up.
    deadline_ms: AtomicU64,
    cancel: Arc<AtomicBool>,
    /// Set when the callback stopped a call because of the deadline.
    fired: AtomicBool,
}

impl Interrupt {
    fn arm(&self, within: Duration) {
        let ms = (self.epoch.elapsed() + within).as_millis() as u64;
        self.deadline_ms.store(ms, Ordering::Relaxed);
        self.fired.store(false, Ordering::Relaxed);
    }
}

extern "C" fn interrupt_cb(opaque: *mut c_void) -> c_int {
    // SAFETY: `opaque` is the `Interrupt` boxed by the `LiveInput` (or the
    // opening function) that installed this callback; it outlives the
    // format context.
    let s = unsafe { &*(opaque as *const Interrupt) };
    if s.cancel.load(Ordering::Relaxed) {
        return 1;
    }
    if s.epoch.elapsed().as_millis() as u64 > s.deadline_ms.load(Ordering::Relaxed) {
        s.fired.store(true, Ordering::Relaxed);
        return 1;
    }
    0
}

/// Facts about a connected live input.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveInfo {
    pub width: u32,
    pub height: u32,
    /// Frames per second the stream announces (25 when it announces none).
    pub fps: f64,
    pub codec: String,
    /// The demuxer FFmpeg chose (`rtsp`, `mpegts`, `mov,mp4,...`).
    pub format: String,
}

/// One connection to a live input, decoding its video stream.
pub struct LiveInput {
    url: String,
    // Declared before `interrupt`: the context, whose callback points at
    // `interrupt`, is closed first.
    decoder: ffmpeg::decoder::Video,
    ictx: ffmpeg::format::context::Input,
    interrupt: Box<Interrupt>,
    stream_index: usize,
    info: LiveInfo,
    opts: LiveInputOptions,
    is_file: bool,
    time_base: f64,
    packet: ffmpeg::Packet,
    /// When the packet that completed the frame now coming out was read.
    last_packet_at: Instant,
    /// When the packets in the decoder were read, by timestamp: a frame's
    /// capture instant is its own packet's read, also when B-frame
    /// reordering lets it out after later packets.
    read_at: VecDeque<(i64, Instant)>,
    /// What decoding skips now, and what it is to skip (a change away from
    /// keyframes only waits for the next keyframe: the frames before it
    /// lack their references).
    skip: DecodeSkip,
    want_skip: DecodeSkip,
    /// Timestamp (s) of the last keyframe read and the interval before it.
    last_key: Option<f64>,
    key_interval: Option<f64>,
    /// Packets sent and frames out while the decoder skipped
    /// non-reference frames: the difference is what it skipped.
    nonref_sent: u64,
    nonref_out: u64,
    /// Realtime pacing: a wall-clock instant and the stream time shown then.
    pace: Option<(Instant, f64)>,
    consecutive_bad: u32,
    stats: DecodeStats,
}

/// Consecutive unreadable packets after which an input is garbage.
const MAX_CONSECUTIVE_BAD: u32 = 500;

/// Read instants remembered for packets in the decoder (its delay is a
/// few frames; packets it skips age out).
const READ_AT_KEPT: usize = 32;

impl LiveInput {
    /// Connects to `url` (a URL FFmpeg can open, or a file path) and opens
    /// the decoder of its best video stream. `cancel` interrupts any
    /// blocking call at once.
    pub fn open(
        url: &str,
        opts: &LiveInputOptions,
        cancel: Arc<AtomicBool>,
    ) -> Result<LiveInput, LiveError> {
        crate::init();
        let open_err = |reason: String| LiveError::Open {
            url: url.to_string(),
            reason,
        };
        let is_file = !url.contains("://") && Path::new(url).exists();
        let interrupt = Box::new(Interrupt {
            epoch: Instant::now(),
            deadline_ms: AtomicU64::new(0),
            cancel,
            fired: AtomicBool::new(false),
        });
        interrupt.arm(opts.open_timeout);
        let c_url = CString::new(url).map_err(|_| open_err("URL contains a NUL byte".into()))?;
        let mut dict = ffmpeg::Dictionary::new();
        if url.starts_with("rtsp://") || url.starts_with("rtsps://") {
            if let Some(t) = &opts.rtsp_transport {
                dict.set("rtsp_transport", t);
            }
            // Reordering buffer for UDP: small, it is latency.
            dict.set("reorder_queue_size", "64");
        }
        if !is_file {
            dict.set("analyzeduration", "1000000");
            dict.set("probesize", "1000000");
        }
        // SAFETY: plain libavformat calls. The context is allocated here so
        // the interrupt callback is in place before anything blocks; on a
        // failed open libavformat frees it; once open it is owned by
        // `Input`, which closes it on every path. The boxed `Interrupt` the
        // callback points at is moved into the returned `LiveInput` (the
        // box keeps its address) or dropped after the context is closed.
        let ictx = unsafe {
            let mut ps = ffi::avformat_alloc_context();
            if ps.is_null() {
                return Err(open_err("out of memory".into()));
            }
            (*ps).interrupt_callback = ffi::AVIOInterruptCB {
                callback: Some(interrupt_cb),
                opaque: &*interrupt as *const Interrupt as *mut c_void,
            };
            let mut raw_opts = dict.disown();
            let res =
                ffi::avformat_open_input(&mut ps, c_url.as_ptr(), std::ptr::null(), &mut raw_opts);
            ffi::av_dict_free(&mut raw_opts);
            if res < 0 {
                return Err(if interrupt.fired.load(Ordering::Relaxed) {
                    open_err(format!(
                        "no answer within {:.1} s",
                        opts.open_timeout.as_secs_f64()
                    ))
                } else {
                    open_err(ffmpeg::Error::from(res).to_string())
                });
            }
            let ictx = ffmpeg::format::context::Input::wrap(ps);
            let res = ffi::avformat_find_stream_info(ps, std::ptr::null_mut());
            if res < 0 {
                return Err(open_err(format!(
                    "cannot read stream information: {}",
                    ffmpeg::Error::from(res)
                )));
            }
            ictx
        };
        let stream = ictx
            .streams()
            .best(ffmpeg::media::Type::Video)
            .ok_or_else(|| open_err("no video stream".into()))?;
        let stream_index = stream.index();
        let params = stream.parameters();
        let codec = params.id().name().to_string();
        let mut ctx = ffmpeg::codec::context::Context::from_parameters(params)
            .map_err(|e| open_err(format!("{codec} decoder: {e}")))?;
        ctx.set_threading(ffmpeg::codec::threading::Config {
            kind: ffmpeg::codec::threading::Type::Slice,
            count: opts.decode_threads,
            ..Default::default()
        });
        // SAFETY: the context is freshly allocated and not yet opened;
        // plain option fields FFmpeg reads when the decoder opens.
        unsafe {
            let raw = ctx.as_mut_ptr();
            (*raw).max_pixels = i64::try_from(opts.max_pixels).unwrap_or(i64::MAX);
        }
        let decoder = ctx
            .decoder()
            .video()
            .map_err(|e| open_err(format!("no {codec} decoder: {e}")))?;
        let mut fps = crate::input::rational(stream.avg_frame_rate());
        if !(fps.is_finite() && fps > 0.0 && fps < 1000.0) {
            fps = crate::input::rational(stream.rate());
        }
        if !(fps.is_finite() && fps > 0.0 && fps < 1000.0) {
            fps = 25.0;
        }
        let info = LiveInfo {
            width: decoder.width(),
            height: decoder.height(),
            fps,
            codec,
            format: ictx.format().name().to_string(),
        };
        let time_base = crate::input::rational(stream.time_base());
        Ok(LiveInput {
            url: url.to_string(),
            decoder,
            ictx,
            interrupt,
            stream_index,
            info,
            opts: opts.clone(),
            is_file,
            time_base,
            packet: ffmpeg::Packet::empty(),
            last_packet_at: Instant::now(),
            read_at: VecDeque::with_capacity(READ_AT_KEPT),
            skip: DecodeSkip::Nothing,
            want_skip: DecodeSkip::Nothing,
            last_key: None,
            key_interval: None,
            nonref_sent: 0,
            nonref_out: 0,
            pace: None,
            consecutive_bad: 0,
            stats: DecodeStats::default(),
        })
    }

    pub fn info(&self) -> &LiveInfo {
        &self.info
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Packets, damage, decoded and skipped frames of this connection.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Frames left undecoded so far (packets dropped before the decoder,
    /// and frames the decoder skipped).
    pub fn frames_skipped(&self) -> u64 {
        self.stats.frames_skipped + self.nonref_sent.saturating_sub(self.nonref_out)
    }

    /// What decoding skips now.
    pub fn skip(&self) -> DecodeSkip {
        self.skip
    }

    /// Seconds between the last two keyframes, once two have been read.
    pub fn key_interval(&self) -> Option<f64> {
        self.key_interval
    }

    /// Frames will be analysed at `rate` per second from now on: decoding
    /// skips the frames that rate cannot need ([`DecodeSkip::for_rate`],
    /// from the stream's rate, its keyframe interval as read so far and
    /// its reordering delay), unless the options say to decode all.
    pub fn set_analysed_rate(&mut self, rate: f64) {
        if self.opts.decode_all {
            return;
        }
        // SAFETY: the decoder context is valid while `self.decoder` lives;
        // a plain field read.
        let delay = unsafe { (*self.decoder.as_ptr()).has_b_frames.max(0) as u32 };
        self.want_skip = DecodeSkip::for_rate(self.info.fps, rate, self.key_interval, delay);
    }

    /// Applies the skip level wanted, where it is safe: at once, except
    /// when leaving keyframes only, which waits for a keyframe (`key`: the
    /// packet about to be sent is one).
    fn apply_skip(&mut self, key: bool) {
        if self.want_skip == self.skip || (self.skip == DecodeSkip::NonKey && !key) {
            return;
        }
        self.skip = self.want_skip;
        // SAFETY: the decoder context is valid while `self.decoder` lives;
        // `skip_frame` is read per frame by the decoder (and copied to its
        // threads before each frame), so it may change between packets.
        unsafe {
            (*self.decoder.as_mut_ptr()).skip_frame = self.skip.discard();
        }
    }

    /// Notes a keyframe's timestamp: the keyframe interval.
    fn saw_key(&mut self, ts: Option<i64>) {
        let Some(ts) = ts else { return };
        let t = ts as f64 * self.time_base;
        if let Some(last) = self.last_key {
            let gap = t - last;
            // A jump back (a loop, a restarted clock) is no interval.
            self.key_interval = (gap > 0.0).then_some(gap).or(self.key_interval);
        }
        self.last_key = Some(t);
    }

    /// When the packet of the frame with timestamp `ts` was read.
    fn read_instant(&mut self, ts: Option<i64>) -> Instant {
        let found = ts.and_then(|ts| self.read_at.iter().position(|(p, _)| *p == ts));
        match found.and_then(|i| self.read_at.remove(i)) {
            Some((_, at)) => at,
            None => self.last_packet_at,
        }
    }

    /// Decodes the next frame into `frame`: the instant the packet that
    /// completed it was read, or `None` at the end of the input (a file
    /// without looping, a server that closed the stream, a stop request).
    pub fn next_frame(
        &mut self,
        frame: &mut ffmpeg::frame::Video,
    ) -> Result<Option<Instant>, LiveError> {
        loop {
            match self.decoder.receive_frame(frame) {
                Ok(()) => {
                    self.stats.frames_decoded += 1;
                    if self.skip == DecodeSkip::NonRef {
                        self.nonref_out += 1;
                    }
                    let mut captured = self.read_instant(frame.timestamp());
                    let (w, h) = (frame.width(), frame.height());
                    if w == 0 || h == 0 || u64::from(w) * u64::from(h) > self.opts.max_pixels {
                        self.stats.decode_errors += 1;
                        continue;
                    }
                    if self.opts.realtime && self.is_file {
                        self.pace_frame(frame);
                        captured = self.last_packet_at;
                    }
                    return Ok(Some(captured));
                }
                Err(ffmpeg::Error::Eof) => return Ok(None),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(_) => self.stats.decode_errors += 1,
            }
            if !self.feed()? {
                return Ok(None);
            }
        }
    }

    /// Waits until `frame` is due at the file's native rate.
    fn pace_frame(&mut self, frame: &ffmpeg::frame::Video) {
        let Some(ts) = frame.timestamp() else { return };
        let t = ts as f64 * self.time_base;
        let now = Instant::now();
        let (origin, t0) = *self.pace.get_or_insert((now, t));
        let due = t - t0;
        if due < 0.0 || due > 10.0 + now.duration_since(origin).as_secs_f64() {
            // A jump (loop, discontinuity): start pacing afresh.
            self.pace = Some((now, t));
            return;
        }
        let target = origin + Duration::from_secs_f64(due);
        while Instant::now() < target {
            if self.interrupt.cancel.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep((target - Instant::now()).min(Duration::from_millis(50)));
        }
        self.last_packet_at = Instant::now();
    }

    /// Reads packets until one of the video stream went to the decoder:
    /// `false` at the end of the input.
    fn feed(&mut self) -> Result<bool, LiveError> {
        loop {
            self.interrupt.arm(self.opts.stall_timeout);
            match read_packet(&mut self.packet, &mut self.ictx) {
                Ok(()) => {
                    if self.packet.stream() != self.stream_index {
                        continue;
                    }
                    self.last_packet_at = Instant::now();
                    self.stats.packets += 1;
                    let key = self.packet.is_key();
                    if key {
                        self.saw_key(self.packet.pts().or(self.packet.dts()));
                    }
                    self.apply_skip(key);
                    if self.skip == DecodeSkip::NonKey && !key {
                        // Keyframes only: the others never reach the decoder.
                        self.stats.frames_skipped += 1;
                        continue;
                    }
                    if self.skip == DecodeSkip::NonRef {
                        self.nonref_sent += 1;
                    }
                    if let Some(ts) = self.packet.pts() {
                        if self.read_at.len() == READ_AT_KEPT {
                            self.read_at.pop_front();
                        }
                        self.read_at.push_back((ts, self.last_packet_at));
                    }
                    if self.decoder.send_packet(&self.packet).is_err() {
                        self.stats.decode_errors += 1;
                        self.bad()?;
                    } else {
                        self.consecutive_bad = 0;
                    }
                    return Ok(true);
                }
                Err(ffmpeg::Error::Eof) => {
                    if self.is_file && self.opts.looping {
                        self.rewind()?;
                        continue;
                    }
                    let _ = self.decoder.send_eof();
                    return Ok(true);
                }
                Err(ffmpeg::Error::InvalidData) => {
                    self.stats.corrupt_packets += 1;
                    self.bad()?;
                }
                Err(_) if self.interrupt.cancel.load(Ordering::Relaxed) => return Ok(false),
                Err(_) if self.interrupt.fired.load(Ordering::Relaxed) => {
                    return Err(LiveError::Stalled {
                        url: self.url.clone(),
                        timeout: self.opts.stall_timeout,
                    })
                }
                Err(e) => {
                    return Err(LiveError::Read {
                        url: self.url.clone(),
                        reason: e.to_string(),
                    })
                }
            }
        }
    }

    fn bad(&mut self) -> Result<(), LiveError> {
        self.consecutive_bad += 1;
        if self.consecutive_bad >= MAX_CONSECUTIVE_BAD {
            return Err(LiveError::Garbage {
                url: self.url.clone(),
                reason: format!("{MAX_CONSECUTIVE_BAD} unreadable packets in a row"),
            });
        }
        Ok(())
    }

    /// Back to the start of a looping file.
    fn rewind(&mut self) -> Result<(), LiveError> {
        self.ictx.seek(0, ..1).map_err(|e| LiveError::Read {
            url: self.url.clone(),
            reason: format!("cannot loop: {e}"),
        })?;
        self.decoder.flush();
        self.pace = None;
        self.read_at.clear();
        self.last_key = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_source_fails_with_its_name() {
        let opts = LiveInputOptions {
            open_timeout: Duration::from_millis(500),
            ..Default::default()
        };
        // Nothing listens on port 9 of localhost.
        let url = "rtsp://127.0.0.1:9/none";
        let err = LiveInput::open(url, &opts, Arc::new(AtomicBool::new(false)))
            .err()
            .expect("no server");
        assert!(err.to_string().starts_with(url), "{err}");
    }

    fn data_dir() -> std::path::PathBuf {
        std::env::var_os("PEREGRINE_TEST_DATA")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
            })
    }

    /// Decodes `input` to its end, calling `rate(frame number)` before
    /// each frame: (frames out, keyframes out, frames out while skipping
    /// all but keyframes that were not keyframes).
    fn drain(input: &mut LiveInput, rate: impl Fn(u64) -> f64) -> (u64, u64, u64) {
        let mut frame = ffmpeg::frame::Video::empty();
        let (mut n, mut keys, mut wrong) = (0, 0, 0);
        loop {
            input.set_analysed_rate(rate(n));
            let before = input.skip();
            let Some(at) = input.next_frame(&mut frame).unwrap() else {
                break;
            };
            assert!(at <= Instant::now());
            n += 1;
            keys += u64::from(frame.is_key());
            if before == DecodeSkip::NonKey && input.skip() == DecodeSkip::NonKey {
                wrong += u64::from(!frame.is_key());
            }
        }
        (n, keys, wrong)
    }

    #[test]
    fn non_reference_frames_are_skipped_when_frames_are_far_apart() {
        // High profile, 2 B-frames, 335 frames of which 142 are
        // non-reference B-frames (ffmpeg -skip_frame noref decodes 193).
        let url = data_dir()
            .join("videos/traffic_highway_1280x720.mp4")
            .display()
            .to_string();
        let mut input =
            LiveInput::open(&url, &LiveInputOptions::default(), Arc::default()).unwrap();
        let (n, _, _) = drain(&mut input, |_| 5.0);
        assert_eq!(input.skip(), DecodeSkip::NonRef);
        assert_eq!(n, 193);
        let skipped = input.frames_skipped();
        assert!((140..=144).contains(&skipped), "{skipped}");
        // Analysed at 15 of 30 fps, or told to decode all: every frame.
        let mut input =
            LiveInput::open(&url, &LiveInputOptions::default(), Arc::default()).unwrap();
        assert_eq!(drain(&mut input, |_| 15.0).0, 335);
        assert_eq!(input.frames_skipped(), 0);
        let all = LiveInputOptions {
            decode_all: true,
            ..Default::default()
        };
        let mut input = LiveInput::open(&url, &all, Arc::default()).unwrap();
        assert_eq!(drain(&mut input, |_| 1.0).0, 335);
        assert_eq!(input.skip(), DecodeSkip::Nothing);
    }

    #[test]
    fn keyframes_only_at_the_keyframe_rate_and_back_at_a_keyframe() {
        // A camera-like stream: no B-frames, a keyframe every second.
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("gop25.mp4");
        let ok = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc=s=320x240:r=25:d=6",
            ])
            .args([
                "-c:v",
                "libx264",
                "-bf",
                "0",
                "-g",
                "25",
                "-sc_threshold",
                "0",
            ])
            .args(["-pix_fmt", "yuv420p"])
            .arg(&clip)
            .status()
            .unwrap();
        assert!(ok.success());
        let url = clip.display().to_string();
        let open = || LiveInput::open(&url, &LiveInputOptions::default(), Arc::default()).unwrap();
        let mut input = open();
        let (n, keys, wrong) = drain(&mut input, |_| 1.0);
        assert_eq!(keys, 6);
        assert_eq!(wrong, 0, "only keyframes while skipping to them");
        assert!((input.key_interval().unwrap() - 1.0).abs() < 1e-6);
        // Until the second keyframe the interval is unknown: the first
        // second is decoded whole (its P-frames are all references).
        assert_eq!(n, 26 + 4);
        assert_eq!(input.frames_skipped(), 150 - n);
        // Back to 25 fps after the third keyframe: full decoding resumes
        // at the next keyframe (frame 100), never on a P-frame whose
        // references were skipped.
        let mut input = open();
        let (n, keys, wrong) = drain(&mut input, |n| if n < 28 { 1.0 } else { 25.0 });
        assert_eq!((keys, wrong), (6, 0));
        assert_eq!(n, 28 + 50);
        assert_eq!(input.frames_skipped(), 150 - n);
        assert_eq!(input.stats().decode_errors, 0);
        assert_eq!(input.skip(), DecodeSkip::Nothing);
    }

    #[test]
    fn garbage_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("noise.ts");
        let bytes: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&p, bytes).unwrap();
        let url = p.display().to_string();
        let res = LiveInput::open(&url, &LiveInputOptions::default(), Arc::default());
        let err = res.err().expect("noise has no video stream");
        assert!(err.to_string().contains(&url), "{err}");
    }
}
