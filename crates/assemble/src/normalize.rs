//! The normalising path: decode, scale and pad, frame-rate convert, encode.
//!
//! Each shot's video becomes one segment file, encoded by a pool of worker
//! threads that each own one single-threaded decoder and encoder (on few
//! cores, several independent encoders beat one multi-threaded encoder). Audio
//! is rendered on its own thread as one continuous AAC stream whose sample
//! count at every cut equals `round(frames_so_far / fps * 48000)`, so it
//! cannot drift however many cuts there are. Finally segments and audio are
//! joined by remuxing, interleaved by time.
//!
//! Frame-rate conversion picks, for each output frame time, the source frame
//! nearest to it (duplicating or dropping frames, like FFmpeg's `fps` filter);
//! scaling keeps the aspect ratio and centres the picture on black, assuming
//! square pixels.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use peregrine_media::ffmpeg::{
    self, encoder, format, frame, software::resampling, ChannelLayout, Packet, Rational,
};
use peregrine_media::{
    add_stream, even_size, open_aac_encoder, read_packet, rescale, wants_global_header,
    write_encoded, EncoderError, FrameFitter, Monotonic, ScannedSource, StreamDecoder,
    VideoEncoderConfig, MICROSECONDS,
};

use crate::error::{AssembleError, Result};
use crate::options::{AssembleOptions, EncodeSettings, Progress, ProgressFn};
use crate::plan::Shot;

const AUDIO_RATE: i32 = 48_000;
const AUDIO_TB: Rational = Rational(1, AUDIO_RATE);
/// Bump when the segment format changes, to invalidate old caches.
const SEGMENT_VERSION: &str = "assemble-segment-v1";

/// Resolved target of one run.
#[derive(Debug, Clone)]
struct Target {
    width: u32,
    height: u32,
    fps: Rational,
    /// 1/fps: one tick per output frame.
    tb: Rational,
}

/// Result of a normalising run.
pub struct NormalizeStats {
    pub duration_s: f64,
    pub frames: u64,
    pub encoded: usize,
    pub reused: usize,
}

fn frames_of(shot: &Shot, t: &Target) -> u64 {
    ((shot.duration_s() * f64::from(t.fps)).round() as u64).max(1)
}

/// Hashes each distinct source's content once (for segment cache keys).
fn source_hashes(shots: &[Shot]) -> Result<std::collections::HashMap<PathBuf, String>> {
    let mut out = std::collections::HashMap::new();
    for s in shots {
        let Some(src) = &s.source else { continue };
        if out.contains_key(&src.path) {
            continue;
        }
        let mut h = blake3::Hasher::new();
        let file = std::fs::File::open(&src.path).map_err(|e| s.error(e))?;
        h.update_reader(file).map_err(|e| s.error(e))?;
        out.insert(src.path.clone(), h.finalize().to_hex().to_string());
    }
    Ok(out)
}

fn segment_key(shot: &Shot, hash: Option<&String>, t: &Target, e: &EncodeSettings) -> String {
    let mut h = blake3::Hasher::new();
    let desc = format!(
        "{SEGMENT_VERSION}|{}|{:x}|{:x}|{}x{}|{}/{}|{}|{}|{}",
        hash.map_or("gap", |s| s.as_str()),
        shot.in_s.to_bits(),
        shot.out_s.to_bits(),
        t.width,
        t.height,
        t.fps.numerator(),
        t.fps.denominator(),
        e.codec,
        e.crf,
        e.preset
    );
    h.update(desc.as_bytes());
    h.finalize().to_hex()[..32].to_string()
}

/// Removes a folder on drop (the per-run segment folder when not caching).
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn normalize_timeline(
    shots: &[Shot],
    opts: &AssembleOptions,
    target_path: &Path,
    progress: &mut ProgressFn<'_>,
    cancel: &Arc<AtomicBool>,
) -> Result<NormalizeStats> {
    let settings = &opts.encode;
    if encoder::find_by_name(&settings.codec).is_none() {
        return Err(AssembleError::EncoderNotFound(settings.codec.clone()));
    }
    let first = shots
        .iter()
        .find_map(|s| s.source.as_ref())
        .ok_or_else(|| AssembleError::Options("the timeline has only gaps".into()))?;
    let (width, height) = settings
        .size
        .unwrap_or((first.video.width, first.video.height));
    let fps = settings.fps.unwrap_or(first.video.fps);
    if fps.numerator() <= 0 || fps.denominator() <= 0 {
        return Err(AssembleError::Options(format!("bad frame rate {fps}")));
    }
    let target = Target {
        width: even_size(width),
        height: even_size(height),
        fps,
        tb: Rational(fps.denominator(), fps.numerator()),
    };
    let dir = target_path.parent().unwrap_or(Path::new("."));
    let (seg_dir, _guard) = match &opts.cache_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| AssembleError::Output {
                path: d.clone(),
                cause: e.to_string(),
            })?;
            (d.clone(), None)
        }
        None => {
            let d = dir.join(format!(".assemble-segments-{}", std::process::id()));
            std::fs::create_dir_all(&d).map_err(|e| AssembleError::Output {
                path: d.clone(),
                cause: e.to_string(),
            })?;
            (d.clone(), Some(TempDir(d)))
        }
    };
    let hashes = if opts.cache_dir.is_some() {
        source_hashes(shots)?
    } else {
        Default::default()
    };
    let segs: Vec<PathBuf> = shots
        .iter()
        .map(|s| {
            let hash = s.source.as_ref().and_then(|src| hashes.get(&src.path));
            let key = if opts.cache_dir.is_some() {
                segment_key(s, hash, &target, settings)
            } else {
                format!("shot{:06}", s.number)
            };
            seg_dir.join(format!("{key}.mp4"))
        })
        .collect();
    let frames: Vec<u64> = shots.iter().map(|s| frames_of(s, &target)).collect();
    let with_audio = shots
        .iter()
        .any(|s| s.source.as_ref().is_some_and(|src| src.audio.is_some()));
    let jobs = opts.workers();
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<AssembleError>> = Mutex::new(None);
    let reused = AtomicUsize::new(0);
    let audio_path = seg_dir.join(format!(".audio-{}.m4a", std::process::id()));
    let _audio_guard = TempFile(audio_path.clone());
    let (tx, rx) = mpsc::channel::<u64>();
    let fail = |e: AssembleError| {
        let mut slot = first_error.lock().expect("poisoned");
        if slot.is_none() {
            *slot = Some(e);
        }
        cancel.store(true, Ordering::Relaxed);
    };
    std::thread::scope(|scope| {
        if with_audio {
            let (audio_path, frames, target) = (&audio_path, &frames, &target);
            let fail = &fail;
            scope.spawn(move || {
                if let Err(e) = render_audio(shots, frames, target, settings, audio_path, cancel) {
                    fail(e);
                }
            });
        }
        for _ in 0..jobs {
            let tx = tx.clone();
            let (segs, frames, target, next, reused, fail) =
                (&segs, &frames, &target, &next, &reused, &fail);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= shots.len() || cancel.load(Ordering::Relaxed) {
                    break;
                }
                let seg = &segs[i];
                if seg.is_file() {
                    reused.fetch_add(1, Ordering::Relaxed);
                } else if let Err(e) =
                    encode_segment(&shots[i], frames[i], target, settings, seg, cancel)
                {
                    fail(e);
                    break;
                }
                let _ = tx.send(frames[i]);
            });
        }
        drop(tx);
        let mut frames_done = 0;
        for (done, f) in rx.into_iter().enumerate() {
            frames_done += f;
            progress(Progress {
                shots_done: done + 1,
                shots_total: shots.len(),
                frames_done,
                frames_encoded: frames_done,
                elapsed: start.elapsed(),
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("poisoned") {
        if cancel.load(Ordering::Relaxed) && matches!(e, AssembleError::Cancelled) {
            return Err(AssembleError::Cancelled);
        }
        return Err(e);
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(AssembleError::Cancelled);
    }
    let total_frames: u64 = frames.iter().sum();
    join(
        &segs,
        &frames,
        &target,
        with_audio.then_some(&audio_path),
        target_path,
    )?;
    let reused = reused.into_inner();
    Ok(NormalizeStats {
        duration_s: total_frames as f64 / f64::from(target.fps),
        frames: total_frames,
        encoded: shots.len() - reused,
        reused,
    })
}

struct TempFile(PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Decoded video frames of one shot, in presentation order, from the
/// keyframe at or before its in point.
fn open_frames(
    src: &ScannedSource,
    in_s: f64,
) -> std::result::Result<StreamDecoder, ffmpeg::Error> {
    let pts = src.video.start_pts + (in_s / f64::from(src.video.time_base)).floor() as i64;
    let us = rescale(pts, src.video.time_base, MICROSECONDS);
    StreamDecoder::open(
        &src.path,
        src.video.index,
        (in_s > 0.0).then_some(us),
        false,
    )
}

fn open_video_encoder(
    octx: &format::context::Output,
    t: &Target,
    e: &EncodeSettings,
) -> std::result::Result<encoder::Video, AssembleError> {
    VideoEncoderConfig {
        threads: Some(1),
        global_header: wants_global_header(octx),
        ..VideoEncoderConfig::new(&e.codec, (t.width, t.height), t.tb, t.fps, &e.preset, e.crf)
    }
    .open()
    .map_err(|err| match err {
        EncoderError::NotFound(codec) => AssembleError::EncoderNotFound(codec),
        err => AssembleError::Options(err.to_string()),
    })
}

/// Encodes one shot's video (exactly `n` frames at the target rate) to `seg`.
fn encode_segment(
    shot: &Shot,
    n: u64,
    t: &Target,
    e: &EncodeSettings,
    seg: &Path,
    cancel: &AtomicBool,
) -> Result<()> {
    let tmp = seg.with_extension(format!("part-{}.mp4", shot.number));
    let _guard = TempFile(tmp.clone());
    let out_err = |err: ffmpeg::Error| AssembleError::Output {
        path: tmp.clone(),
        cause: err.to_string(),
    };
    let mut octx = format::output_as(&tmp, "mp4").map_err(out_err)?;
    let mut enc = open_video_encoder(&octx, t, e)?;
    {
        let mut ost = add_stream(&mut octx, &enc).map_err(out_err)?;
        ost.set_time_base(t.tb);
        ost.set_avg_frame_rate(t.fps);
    }
    octx.write_header().map_err(out_err)?;
    let mut pictures = ShotPictures::open(shot, (t.width, t.height), t.fps, Rational(1, 1))?;
    for k in 0..n {
        if k % 16 == 0 && cancel.load(Ordering::Relaxed) {
            return Err(AssembleError::Cancelled);
        }
        let picture = pictures.frame(k)?;
        picture.set_pts(Some(k as i64));
        enc.send_frame(picture).map_err(|err| shot.error(err))?;
        write_encoded(&mut enc, t.tb, &mut octx, 0).map_err(out_err)?;
    }
    enc.send_eof().map_err(|err| shot.error(err))?;
    write_encoded(&mut enc, t.tb, &mut octx, 0).map_err(out_err)?;
    octx.write_trailer().map_err(out_err)?;
    drop(octx);
    std::fs::rename(&tmp, seg).map_err(|err| AssembleError::Output {
        path: seg.to_path_buf(),
        cause: err.to_string(),
    })
}

/// The frames of one shot at an output rate, fitted into an output size:
/// for each output frame time, the source frame nearest to it (duplicating
/// or dropping frames, like FFmpeg's `fps` filter), scaled to keep its
/// display aspect ratio and centred on black. A gap is black throughout.
pub(crate) struct ShotPictures<'a> {
    shot: &'a Shot,
    fps: Rational,
    /// Source SAR / output SAR.
    pixel_ratio: f64,
    frames: Option<StreamDecoder>,
    fitter: FrameFitter,
    cur: frame::Video,
    have_cur: bool,
    ahead: frame::Video,
    have_ahead: bool,
    src_done: bool,
}

impl<'a> ShotPictures<'a> {
    /// Opens `shot` for `size` at `fps`, in pixels of aspect ratio `sar`.
    pub fn open(
        shot: &'a Shot,
        (width, height): (u32, u32),
        fps: Rational,
        sar: Rational,
    ) -> Result<Self> {
        let frames = match &shot.source {
            Some(src) => Some(open_frames(src, shot.in_s).map_err(|err| shot.error(err))?),
            None => None,
        };
        let pixel_ratio = shot
            .source
            .as_ref()
            .map_or(1.0, |s| f64::from(s.video.sar) / f64::from(sar));
        Ok(Self {
            shot,
            fps,
            pixel_ratio,
            frames,
            fitter: FrameFitter::new(width, height),
            cur: frame::Video::empty(),
            have_cur: false,
            ahead: frame::Video::empty(),
            have_ahead: false,
            src_done: false,
        })
    }

    /// Output frame `k` (frames are asked for in order).
    pub fn frame(&mut self, k: u64) -> Result<&mut frame::Video> {
        let shot = self.shot;
        if let (Some(fs), Some(src)) = (self.frames.as_mut(), shot.source.as_ref()) {
            let src_fps = src.fps();
            let half = 0.5 / src_fps;
            let tk = shot.in_s + k as f64 / f64::from(self.fps);
            let mut changed = false;
            loop {
                if !self.have_ahead && !self.src_done {
                    self.have_ahead = fs.next(&mut self.ahead).map_err(|err| shot.error(err))?;
                    self.src_done = !self.have_ahead;
                }
                if !self.have_ahead {
                    break;
                }
                let ts = src.pts_to_s(self.ahead.timestamp().or(self.ahead.pts()).unwrap_or(0));
                if ts <= tk + half || !self.have_cur {
                    std::mem::swap(&mut self.cur, &mut self.ahead);
                    self.have_cur = true;
                    self.have_ahead = false;
                    changed = true;
                    if ts > tk + half {
                        break;
                    }
                } else {
                    break;
                }
            }
            if !self.have_cur {
                return Err(shot.error("no decodable video frame at the in point"));
            }
            let cur_ts = src.pts_to_s(self.cur.timestamp().or(self.cur.pts()).unwrap_or(0));
            if self.src_done && tk > cur_ts + 1.5 / src_fps {
                return Err(shot.error(format!(
                    "source data ends at {cur_ts:.3} s, before the out point {:.3} s (truncated or corrupt)",
                    shot.out_s
                )));
            }
            if changed {
                self.fitter
                    .fit_aspect(&self.cur, self.pixel_ratio)
                    .map_err(|err| shot.error(err))?;
            }
        }
        Ok(self.fitter.frame_mut())
    }
}

/// Float planar samples (one buffer per channel) waiting for an encoder.
pub(crate) struct AudioFifo {
    pub planes: Vec<Vec<f32>>,
}

impl AudioFifo {
    pub fn new(channels: usize) -> Self {
        Self {
            planes: (0..channels)
                .map(|_| Vec::with_capacity(16 * 1024))
                .collect(),
        }
    }
    pub fn len(&self) -> usize {
        self.planes[0].len()
    }
    /// Appends `n` samples of silence.
    pub fn pad(&mut self, n: usize) {
        for p in &mut self.planes {
            p.resize(p.len() + n, 0.0);
        }
    }
    /// Moves the first `n` samples into `frame` (float planar, `n` samples).
    pub fn pop_into(&mut self, n: usize, frame: &mut frame::Audio) {
        frame.set_samples(n);
        for (c, p) in self.planes.iter_mut().enumerate() {
            frame.plane_mut::<f32>(c)[..n].copy_from_slice(&p[..n]);
            p.drain(..n);
        }
    }
}

/// Renders the whole timeline's audio as one AAC stream into `path`.
fn render_audio(
    shots: &[Shot],
    frames: &[u64],
    t: &Target,
    e: &EncodeSettings,
    path: &Path,
    cancel: &AtomicBool,
) -> Result<()> {
    let out_err = |err: ffmpeg::Error| AssembleError::Output {
        path: path.to_path_buf(),
        cause: err.to_string(),
    };
    let mut octx = format::output_as(path, "mp4").map_err(out_err)?;
    let mut enc = open_aac_encoder(AUDIO_RATE, ChannelLayout::STEREO, e.audio_bitrate, true)
        .map_err(|err| match err {
            EncoderError::NotFound(codec) => AssembleError::EncoderNotFound(codec),
            err => out_err(err.into()),
        })?;
    let frame_size = enc.frame_size().max(1) as usize;
    add_stream(&mut octx, &enc)
        .map_err(out_err)?
        .set_time_base(AUDIO_TB);
    octx.write_header().map_err(out_err)?;
    let mut fifo = AudioFifo::new(2);
    let mut aframe = frame::Audio::new(
        format::Sample::F32(format::sample::Type::Planar),
        frame_size,
        ChannelLayout::STEREO,
    );
    aframe.set_rate(AUDIO_RATE as u32);
    let mut written: i64 = 0;
    let mut flush = |fifo: &mut AudioFifo,
                     enc: &mut encoder::Audio,
                     octx: &mut format::context::Output,
                     all: bool|
     -> Result<()> {
        while fifo.len() >= frame_size || (all && fifo.len() > 0) {
            let n = fifo.len().min(frame_size);
            fifo.pop_into(n, &mut aframe);
            aframe.set_pts(Some(written));
            written += n as i64;
            enc.send_frame(&aframe).map_err(out_err)?;
            write_encoded(enc, AUDIO_TB, octx, 0).map_err(out_err)?;
        }
        if all {
            enc.send_eof().map_err(out_err)?;
            write_encoded(enc, AUDIO_TB, octx, 0).map_err(out_err)?;
        }
        Ok(())
    };
    let mut cum_frames: u64 = 0;
    let mut cum_samples: u64 = 0;
    for (shot, &n) in shots.iter().zip(frames) {
        if cancel.load(Ordering::Relaxed) {
            return Err(AssembleError::Cancelled);
        }
        cum_frames += n;
        let end = (cum_frames as u128 * AUDIO_RATE as u128 * t.fps.denominator() as u128
            + t.fps.numerator() as u128 / 2)
            / t.fps.numerator() as u128;
        let want = (end as u64 - cum_samples) as usize;
        cum_samples = end as u64;
        let mut got = 0;
        if let Some(src) = &shot.source {
            if src.audio.is_some() {
                let to = AudioShape {
                    rate: AUDIO_RATE,
                    layout: ChannelLayout::STEREO,
                };
                got = shot_audio(shot, src, shot.in_s, want, to, &mut fifo, &mut |f| {
                    flush(f, &mut enc, &mut octx, false)
                })?;
            }
        }
        // Silence fills shots without audio (and any shortfall); `shot_audio`
        // never yields more than `want` samples.
        fifo.pad(want - got);
        flush(&mut fifo, &mut enc, &mut octx, false)?;
    }
    flush(&mut fifo, &mut enc, &mut octx, true)?;
    octx.write_trailer().map_err(out_err)?;
    Ok(())
}

/// Sample rate and channel layout audio is converted to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AudioShape {
    pub rate: i32,
    pub layout: ChannelLayout,
}

/// Decodes `want` samples (converted to `to`) of a shot's source audio from
/// source time `from_s` (seconds from its first video frame) into `fifo`.
pub(crate) fn shot_audio(
    shot: &Shot,
    src: &ScannedSource,
    from_s: f64,
    want: usize,
    to: AudioShape,
    fifo: &mut AudioFifo,
    flush: &mut dyn FnMut(&mut AudioFifo) -> Result<()>,
) -> Result<usize> {
    let a = src.audio.as_ref().expect("checked");
    let err = |e: ffmpeg::Error| shot.error(e);
    // Time zero of the shot's source is its first displayed video frame,
    // whose timestamp may be negative or late (edit lists).
    let t0 = src.video.start_pts as f64 * f64::from(src.video.time_base);
    let start_t = t0 + from_s;
    let seek_us = (from_s > 0.0).then(|| ((start_t - 0.5) * 1e6).floor() as i64);
    // A corrupt audio packet is skipped, not fatal.
    let mut dec = StreamDecoder::open(&src.path, a.index, seek_us, true).map_err(err)?;
    let mut swr: Option<resampling::Context> = None;
    let mut decoded = frame::Audio::empty();
    let cap = 16_384;
    let mut out = frame::Audio::new(
        format::Sample::F32(format::sample::Type::Planar),
        cap,
        to.layout,
    );
    let rate = f64::from(to.rate);
    let mut got = 0usize;
    while got < want && dec.next(&mut decoded).map_err(err)? {
        let layout = if decoded.channel_layout().is_empty() {
            ChannelLayout::default(decoded.channels() as i32)
        } else {
            decoded.channel_layout()
        };
        decoded.set_channel_layout(layout);
        if swr.is_none() {
            swr = Some(
                resampling::Context::get(
                    decoded.format(),
                    layout,
                    decoded.rate(),
                    format::Sample::F32(format::sample::Type::Planar),
                    to.layout,
                    to.rate as u32,
                )
                .map_err(err)?,
            );
        }
        let ts = decoded
            .timestamp()
            .or(decoded.pts())
            .map_or(start_t, |p| p as f64 * f64::from(a.time_base));
        out.set_samples(cap);
        swr.as_mut()
            .expect("set")
            .run(&decoded, &mut out)
            .map_err(err)?;
        let n = out.samples();
        // Drop what lies before the in point.
        let skip = if got == 0 && ts < start_t {
            (((start_t - ts) * rate).round() as usize).min(n)
        } else {
            0
        };
        if got == 0 && skip == 0 && ts > start_t + 1e-3 {
            // Audio starts late: pad the gap with silence.
            let pad = (((ts - start_t) * rate).round() as usize).min(want);
            fifo.pad(pad);
            got += pad;
        }
        let take = (n - skip).min(want - got);
        for (c, p) in fifo.planes.iter_mut().enumerate() {
            p.extend_from_slice(&out.plane::<f32>(c)[skip..skip + take]);
        }
        got += take;
        flush(fifo)?;
    }
    Ok(got)
}

/// Remuxes the video segments (and the audio file) into `target`.
fn join(
    segs: &[PathBuf],
    frames: &[u64],
    t: &Target,
    audio: Option<&PathBuf>,
    target: &Path,
) -> Result<()> {
    let out_err = |e: ffmpeg::Error| AssembleError::Output {
        path: target.to_path_buf(),
        cause: e.to_string(),
    };
    let seg_err = |p: &Path, e: ffmpeg::Error| AssembleError::Output {
        path: p.to_path_buf(),
        cause: e.to_string(),
    };
    let mut octx = format::output(target).map_err(out_err)?;
    let first = format::input(&segs[0]).map_err(|e| seg_err(&segs[0], e))?;
    {
        let ist = first.stream(0).expect("segment has video");
        let mut ost = add_stream(&mut octx, ist.parameters()).map_err(out_err)?;
        ost.set_time_base(t.tb);
        ost.set_avg_frame_rate(t.fps);
    }
    let mut actx = match audio {
        Some(p) => {
            let a = format::input(p).map_err(|e| seg_err(p, e))?;
            let ist = a.stream(0).expect("audio file has audio");
            add_stream(&mut octx, ist.parameters())
                .map_err(out_err)?
                .set_time_base(AUDIO_TB);
            let atb = a.stream(0).expect("audio").time_base();
            Some((a, atb))
        }
        None => None,
    };
    drop(first);
    octx.write_header().map_err(out_err)?;
    let otb_v = octx.stream(0).expect("added").time_base();
    let otb_a = actx
        .as_ref()
        .map(|_| octx.stream(1).expect("added").time_base());
    let mut mono = Monotonic::new(octx.nb_streams() as usize);
    let mut apkt = Packet::empty();
    let mut apending = false;
    let mut aeof = actx.is_none();
    let mut pkt = Packet::empty();
    let mut cum: u64 = 0;
    // Writes audio packets up to time `until` (seconds).
    let mut pump_audio = |until: f64,
                          octx: &mut format::context::Output,
                          mono: &mut Monotonic,
                          actx: &mut Option<(format::context::Input, Rational)>,
                          aeof: &mut bool,
                          apending: &mut bool|
     -> Result<()> {
        let Some((a, atb)) = actx.as_mut() else {
            return Ok(());
        };
        while !*aeof {
            if !*apending {
                match read_packet(&mut apkt, a) {
                    Ok(()) => *apending = true,
                    Err(ffmpeg::Error::Eof) => {
                        *aeof = true;
                        break;
                    }
                    Err(e) => return Err(out_err(e)),
                }
            }
            let ts = apkt.dts().or(apkt.pts()).unwrap_or(0) as f64 * f64::from(*atb);
            if ts > until {
                break;
            }
            apkt.rescale_ts(*atb, otb_a.expect("audio"));
            apkt.set_stream(1);
            apkt.set_position(-1);
            mono.fix(&mut apkt, 1);
            apkt.write_interleaved(octx).map_err(out_err)?;
            *apending = false;
        }
        Ok(())
    };
    for (seg, &n) in segs.iter().zip(frames) {
        let mut ictx = format::input(seg).map_err(|e| seg_err(seg, e))?;
        let itb = ictx.stream(0).expect("video").time_base();
        let offset = rescale(cum as i64, t.tb, itb);
        loop {
            match read_packet(&mut pkt, &mut ictx) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => break,
                Err(e) => return Err(seg_err(seg, e)),
            }
            pkt.set_pts(pkt.pts().map(|p| p + offset));
            pkt.set_dts(pkt.dts().map(|d| d + offset));
            let ts = pkt.dts().or(pkt.pts()).unwrap_or(0) as f64 * f64::from(itb);
            pump_audio(
                ts,
                &mut octx,
                &mut mono,
                &mut actx,
                &mut aeof,
                &mut apending,
            )?;
            pkt.rescale_ts(itb, otb_v);
            pkt.set_stream(0);
            pkt.set_position(-1);
            mono.fix(&mut pkt, 0);
            pkt.write_interleaved(&mut octx).map_err(out_err)?;
        }
        cum += n;
    }
    pump_audio(
        f64::INFINITY,
        &mut octx,
        &mut mono,
        &mut actx,
        &mut aeof,
        &mut apending,
    )?;
    octx.write_trailer().map_err(out_err)?;
    Ok(())
}
