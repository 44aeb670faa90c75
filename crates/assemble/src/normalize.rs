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

use ffmpeg_next::{
    codec, encoder, format, frame, software::resampling, software::scaling, ChannelLayout,
    Dictionary, Packet, Rational,
};

use crate::copy::{clear_codec_tag, rescale, shot_cause, shot_err, Monotonic};
use crate::error::{AssembleError, Result};
use crate::plan::Shot;
use crate::probe::{read_packet, SourceInfo};
use crate::{AssembleOptions, Progress, ProgressFn};

/// Encode settings of the normalising path.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeSettings {
    /// FFmpeg encoder name: `libx264` (default) or `h264_nvenc`.
    pub codec: String,
    pub crf: u32,
    pub preset: String,
    /// Target size; `None`: the first shot's size (rounded to even).
    pub size: Option<(u32, u32)>,
    /// Target frame rate; `None`: the first shot's rate.
    pub fps: Option<Rational>,
    pub audio_bitrate: usize,
}

impl Default for EncodeSettings {
    fn default() -> Self {
        Self {
            codec: "libx264".into(),
            crf: 20,
            preset: "veryfast".into(),
            size: None,
            fps: None,
            audio_bitrate: 128_000,
        }
    }
}

const AUDIO_RATE: i32 = 48_000;
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

fn even(v: u32) -> u32 {
    (v.max(2)) & !1
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
        let file = std::fs::File::open(&src.path).map_err(|e| shot_cause(s, &e.to_string()))?;
        h.update_reader(file)
            .map_err(|e| shot_cause(s, &e.to_string()))?;
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
        width: even(width),
        height: even(height),
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
    let jobs = if opts.jobs == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        opts.jobs
    };
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

/// Decoded video frames of one shot, in presentation order, from its in point.
struct FrameSource {
    ictx: format::context::Input,
    dec: ffmpeg_next::decoder::Video,
    index: usize,
    eof_sent: bool,
    pkt: Packet,
}

impl FrameSource {
    fn open(src: &SourceInfo, in_s: f64) -> std::result::Result<Self, ffmpeg_next::Error> {
        let mut ictx = format::input(&src.path)?;
        let stream = ictx
            .stream(src.video.index)
            .ok_or(ffmpeg_next::Error::StreamNotFound)?;
        let mut ctx = codec::context::Context::from_parameters(stream.parameters())?;
        ctx.set_threading(codec::threading::Config::count(1));
        let dec = ctx.decoder().video()?;
        let pts = src.video.start_pts + (in_s / f64::from(src.video.time_base)).floor() as i64;
        let us = rescale(pts, src.video.time_base, Rational(1, 1_000_000));
        if in_s > 0.0 {
            ictx.seek(us, ..us + 1)?;
        }
        Ok(Self {
            ictx,
            dec,
            index: src.video.index,
            eof_sent: false,
            pkt: Packet::empty(),
        })
    }

    /// Next decoded frame, or `None` at the end.
    fn next(&mut self, out: &mut frame::Video) -> std::result::Result<bool, ffmpeg_next::Error> {
        loop {
            match self.dec.receive_frame(out) {
                Ok(()) => return Ok(true),
                Err(ffmpeg_next::Error::Eof) => return Ok(false),
                Err(ffmpeg_next::Error::Other { errno }) if errno == libc_eagain() => {}
                Err(e) => return Err(e),
            }
            if self.eof_sent {
                return Ok(false);
            }
            loop {
                match read_packet(&mut self.pkt, &mut self.ictx) {
                    Ok(()) if self.pkt.stream() == self.index => {
                        self.dec.send_packet(&self.pkt)?;
                        break;
                    }
                    Ok(()) => {}
                    Err(ffmpeg_next::Error::Eof) => {
                        self.dec.send_eof()?;
                        self.eof_sent = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

fn libc_eagain() -> i32 {
    ffmpeg_next::util::error::EAGAIN
}

/// Scales any decoded picture into the target frame, letterboxed.
struct Fitter {
    sws: Option<(scaling::Context, format::Pixel, u32, u32)>,
    scaled: Option<frame::Video>,
    out: frame::Video,
}

impl Fitter {
    fn new(t: &Target) -> Self {
        let mut out = frame::Video::new(format::Pixel::YUV420P, t.width, t.height);
        fill_black(&mut out);
        Self {
            sws: None,
            scaled: None,
            out,
        }
    }

    fn fit(&mut self, src: &frame::Video) -> std::result::Result<(), ffmpeg_next::Error> {
        let (tw, th) = (self.out.width(), self.out.height());
        let (w, h, f) = (src.width(), src.height(), src.format());
        let s = (tw as f64 / w as f64).min(th as f64 / h as f64);
        let (fw, fh) = (
            even((w as f64 * s).round() as u32).min(tw),
            even((h as f64 * s).round() as u32).min(th),
        );
        if self
            .sws
            .as_ref()
            .is_none_or(|(_, pf, pw, ph)| (*pf, *pw, *ph) != (f, w, h))
        {
            let ctx = scaling::Context::get(
                f,
                w,
                h,
                format::Pixel::YUV420P,
                fw,
                fh,
                scaling::Flags::BICUBIC,
            )?;
            self.sws = Some((ctx, f, w, h));
            fill_black(&mut self.out);
            self.scaled =
                ((fw, fh) != (tw, th)).then(|| frame::Video::new(format::Pixel::YUV420P, fw, fh));
        }
        let sws = &mut self.sws.as_mut().expect("set").0;
        match &mut self.scaled {
            None => sws.run(src, &mut self.out)?,
            Some(scaled) => {
                sws.run(src, scaled)?;
                let (x, y) = (((tw - fw) / 2) & !1, ((th - fh) / 2) & !1);
                for p in 0..3 {
                    let (px, py, pw, ph) = if p == 0 {
                        (x, y, fw, fh)
                    } else {
                        (x / 2, y / 2, fw / 2, fh / 2)
                    };
                    let (ss, ds) = (scaled.stride(p), self.out.stride(p));
                    let sdata = scaled.data(p);
                    let ddata = self.out.data_mut(p);
                    for row in 0..ph as usize {
                        let so = row * ss;
                        let d0 = (py as usize + row) * ds + px as usize;
                        ddata[d0..d0 + pw as usize].copy_from_slice(&sdata[so..so + pw as usize]);
                    }
                }
            }
        }
        Ok(())
    }
}

fn fill_black(f: &mut frame::Video) {
    for (p, v) in [(0, 16u8), (1, 128), (2, 128)] {
        f.data_mut(p).fill(v);
    }
}

fn open_video_encoder(
    octx: &format::context::Output,
    t: &Target,
    e: &EncodeSettings,
) -> std::result::Result<encoder::Video, AssembleError> {
    let codec = encoder::find_by_name(&e.codec)
        .ok_or_else(|| AssembleError::EncoderNotFound(e.codec.clone()))?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|err| AssembleError::Options(format!("{}: {err}", e.codec)))?;
    enc.set_width(t.width);
    enc.set_height(t.height);
    enc.set_format(format::Pixel::YUV420P);
    enc.set_time_base(t.tb);
    enc.set_frame_rate(Some(t.fps));
    if octx.format().flags().contains(format::Flags::GLOBAL_HEADER) {
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let mut d = Dictionary::new();
    if e.codec.contains("nvenc") {
        d.set("preset", nvenc_preset(&e.preset));
        d.set("rc", "vbr");
        d.set("cq", &e.crf.to_string());
    } else {
        d.set("preset", &e.preset);
        d.set("crf", &e.crf.to_string());
        d.set("threads", "1");
    }
    enc.open_with(d).map_err(|err| {
        AssembleError::Options(format!(
            "{} (preset {}, crf {}): {err}",
            e.codec, e.preset, e.crf
        ))
    })
}

/// Maps x264 preset names onto NVENC's p1 (fastest) .. p7 (best).
fn nvenc_preset(x264: &str) -> &str {
    match x264 {
        "ultrafast" | "superfast" => "p1",
        "veryfast" => "p2",
        "faster" => "p3",
        "fast" => "p4",
        "medium" => "p5",
        "slow" => "p6",
        "slower" | "veryslow" | "placebo" => "p7",
        other => other,
    }
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
    let out_err = |err: ffmpeg_next::Error| AssembleError::Output {
        path: tmp.clone(),
        cause: err.to_string(),
    };
    let mut octx = format::output_as(&tmp, "mp4").map_err(out_err)?;
    let mut enc = open_video_encoder(&octx, t, e)?;
    {
        let mut ost = octx
            .add_stream(encoder::find(codec::Id::None))
            .map_err(out_err)?;
        ost.set_parameters(&enc);
        ost.set_time_base(t.tb);
        ost.set_avg_frame_rate(t.fps);
        clear_codec_tag(&mut ost);
    }
    octx.write_header().map_err(out_err)?;
    let otb = octx.stream(0).expect("added").time_base();
    let mut fitter = Fitter::new(t);
    let mut pkt = Packet::empty();
    let mut drain = |enc: &mut encoder::Video, octx: &mut format::context::Output| -> Result<()> {
        while enc.receive_packet(&mut pkt).is_ok() {
            pkt.set_stream(0);
            pkt.rescale_ts(t.tb, otb);
            pkt.write(octx).map_err(out_err)?;
        }
        Ok(())
    };
    let src_fps = shot.source.as_ref().map_or(1.0, |s| s.fps());
    let mut frames = match &shot.source {
        Some(src) => Some(FrameSource::open(src, shot.in_s).map_err(|err| shot_err(shot, err))?),
        None => None,
    };
    let mut cur = frame::Video::empty();
    let mut have_cur = false;
    let mut ahead = frame::Video::empty();
    let mut have_ahead = false;
    let mut src_done = false;
    let half = 0.5 / src_fps;
    for k in 0..n {
        if k % 16 == 0 && cancel.load(Ordering::Relaxed) {
            return Err(AssembleError::Cancelled);
        }
        if let (Some(fs), Some(src)) = (frames.as_mut(), shot.source.as_ref()) {
            let tk = shot.in_s + k as f64 / f64::from(t.fps);
            let mut changed = false;
            loop {
                if !have_ahead && !src_done {
                    have_ahead = fs.next(&mut ahead).map_err(|err| shot_err(shot, err))?;
                    src_done = !have_ahead;
                }
                if !have_ahead {
                    break;
                }
                let ts = src.pts_to_s(ahead.timestamp().or(ahead.pts()).unwrap_or(0));
                if ts <= tk + half || !have_cur {
                    std::mem::swap(&mut cur, &mut ahead);
                    have_cur = true;
                    have_ahead = false;
                    changed = true;
                    if ts > tk + half {
                        break;
                    }
                } else {
                    break;
                }
            }
            if !have_cur {
                return Err(shot_cause(shot, "no decodable video frame at the in point"));
            }
            let cur_ts = src.pts_to_s(cur.timestamp().or(cur.pts()).unwrap_or(0));
            if src_done && tk > cur_ts + 1.5 / src_fps {
                return Err(shot_cause(
                    shot,
                    &format!(
                        "source data ends at {cur_ts:.3} s, before the out point {:.3} s (truncated or corrupt)",
                        shot.out_s
                    ),
                ));
            }
            if changed {
                fitter.fit(&cur).map_err(|err| shot_err(shot, err))?;
            }
        }
        fitter.out.set_pts(Some(k as i64));
        enc.send_frame(&fitter.out)
            .map_err(|err| shot_err(shot, err))?;
        drain(&mut enc, &mut octx)?;
    }
    enc.send_eof().map_err(|err| shot_err(shot, err))?;
    drain(&mut enc, &mut octx)?;
    octx.write_trailer().map_err(out_err)?;
    drop(octx);
    std::fs::rename(&tmp, seg).map_err(|err| AssembleError::Output {
        path: seg.to_path_buf(),
        cause: err.to_string(),
    })
}

/// Float planar stereo samples waiting for the AAC encoder.
struct AudioFifo {
    l: Vec<f32>,
    r: Vec<f32>,
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
    let out_err = |err: ffmpeg_next::Error| AssembleError::Output {
        path: path.to_path_buf(),
        cause: err.to_string(),
    };
    let mut octx = format::output_as(path, "mp4").map_err(out_err)?;
    let codec =
        encoder::find(codec::Id::AAC).ok_or(AssembleError::EncoderNotFound("aac".into()))?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .audio()
        .map_err(out_err)?;
    enc.set_rate(AUDIO_RATE);
    enc.set_channel_layout(ChannelLayout::STEREO);
    enc.set_format(format::Sample::F32(format::sample::Type::Planar));
    enc.set_bit_rate(e.audio_bitrate);
    enc.set_time_base(Rational(1, AUDIO_RATE));
    enc.set_flags(codec::Flags::GLOBAL_HEADER);
    let mut enc = enc.open_as(codec).map_err(out_err)?;
    let frame_size = enc.frame_size().max(1) as usize;
    {
        let mut ost = octx.add_stream(codec).map_err(out_err)?;
        ost.set_parameters(&enc);
        ost.set_time_base(Rational(1, AUDIO_RATE));
    }
    octx.write_header().map_err(out_err)?;
    let otb = octx.stream(0).expect("added").time_base();
    let mut fifo = AudioFifo {
        l: Vec::with_capacity(16 * 1024),
        r: Vec::with_capacity(16 * 1024),
    };
    let mut aframe = frame::Audio::new(
        format::Sample::F32(format::sample::Type::Planar),
        frame_size,
        ChannelLayout::STEREO,
    );
    aframe.set_rate(AUDIO_RATE as u32);
    let mut written: i64 = 0;
    let mut pkt = Packet::empty();
    let mut flush = |fifo: &mut AudioFifo,
                     enc: &mut encoder::Audio,
                     octx: &mut format::context::Output,
                     all: bool|
     -> Result<()> {
        while fifo.l.len() >= frame_size || (all && !fifo.l.is_empty()) {
            let n = fifo.l.len().min(frame_size);
            aframe.set_samples(n);
            aframe.plane_mut::<f32>(0)[..n].copy_from_slice(&fifo.l[..n]);
            aframe.plane_mut::<f32>(1)[..n].copy_from_slice(&fifo.r[..n]);
            fifo.l.drain(..n);
            fifo.r.drain(..n);
            aframe.set_pts(Some(written));
            written += n as i64;
            enc.send_frame(&aframe).map_err(out_err)?;
            while enc.receive_packet(&mut pkt).is_ok() {
                pkt.set_stream(0);
                pkt.rescale_ts(Rational(1, AUDIO_RATE), otb);
                pkt.write(octx).map_err(out_err)?;
            }
        }
        if all {
            enc.send_eof().map_err(out_err)?;
            while enc.receive_packet(&mut pkt).is_ok() {
                pkt.set_stream(0);
                pkt.rescale_ts(Rational(1, AUDIO_RATE), otb);
                pkt.write(octx).map_err(out_err)?;
            }
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
                got = shot_audio(shot, src, want, &mut fifo, &mut |f| {
                    flush(f, &mut enc, &mut octx, false)
                })?;
            }
        }
        // Silence fills shots without audio (and any shortfall); `shot_audio`
        // never yields more than `want` samples.
        let len = fifo.l.len() + want - got;
        fifo.l.resize(len, 0.0);
        fifo.r.resize(len, 0.0);
        flush(&mut fifo, &mut enc, &mut octx, false)?;
    }
    flush(&mut fifo, &mut enc, &mut octx, true)?;
    octx.write_trailer().map_err(out_err)?;
    Ok(())
}

/// Decodes `want` samples (48 kHz stereo) of a shot's audio into `fifo`.
fn shot_audio(
    shot: &Shot,
    src: &SourceInfo,
    want: usize,
    fifo: &mut AudioFifo,
    flush: &mut dyn FnMut(&mut AudioFifo) -> Result<()>,
) -> Result<usize> {
    let a = src.audio.as_ref().expect("checked");
    let err = |e: ffmpeg_next::Error| shot_err(shot, e);
    let mut ictx = format::input(&src.path).map_err(err)?;
    let stream = ictx
        .stream(a.index)
        .ok_or_else(|| shot_cause(shot, "audio stream vanished"))?;
    let mut ctx = codec::context::Context::from_parameters(stream.parameters()).map_err(err)?;
    ctx.set_threading(codec::threading::Config::count(1));
    let mut dec = ctx.decoder().audio().map_err(err)?;
    // Time zero of the shot's source is its first displayed video frame,
    // whose timestamp may be negative or late (edit lists).
    let t0 = src.video.start_pts as f64 * f64::from(src.video.time_base);
    let start_t = t0 + shot.in_s;
    if shot.in_s > 0.0 {
        let us = ((start_t - 0.5) * 1e6).floor() as i64;
        ictx.seek(us, ..us + 1).map_err(err)?;
    }
    let mut swr: Option<resampling::Context> = None;
    let mut decoded = frame::Audio::empty();
    let cap = 16_384;
    let mut out = frame::Audio::new(
        format::Sample::F32(format::sample::Type::Planar),
        cap,
        ChannelLayout::STEREO,
    );
    let mut got = 0usize;
    let mut pkt = Packet::empty();
    let mut eof = false;
    while got < want {
        match dec.receive_frame(&mut decoded) {
            Ok(()) => {
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
                            ChannelLayout::STEREO,
                            AUDIO_RATE as u32,
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
                    (((start_t - ts) * AUDIO_RATE as f64).round() as usize).min(n)
                } else {
                    0
                };
                if got == 0 && skip == 0 && ts > start_t + 1e-3 {
                    // Audio starts late: pad the gap with silence.
                    let pad = (((ts - start_t) * AUDIO_RATE as f64).round() as usize).min(want);
                    fifo.l.resize(fifo.l.len() + pad, 0.0);
                    fifo.r.resize(fifo.r.len() + pad, 0.0);
                    got += pad;
                }
                let take = (n - skip).min(want - got);
                fifo.l
                    .extend_from_slice(&out.plane::<f32>(0)[skip..skip + take]);
                fifo.r
                    .extend_from_slice(&out.plane::<f32>(1)[skip..skip + take]);
                got += take;
                flush(fifo)?;
            }
            Err(ffmpeg_next::Error::Eof) => break,
            Err(ffmpeg_next::Error::Other { errno }) if errno == libc_eagain() => {
                if eof {
                    break;
                }
                loop {
                    match read_packet(&mut pkt, &mut ictx) {
                        Ok(()) if pkt.stream() == a.index => {
                            // A corrupt audio packet is skipped, not fatal.
                            let _ = dec.send_packet(&pkt);
                            break;
                        }
                        Ok(()) => {}
                        Err(ffmpeg_next::Error::Eof) => {
                            let _ = dec.send_eof();
                            eof = true;
                            break;
                        }
                        Err(e) => return Err(err(e)),
                    }
                }
            }
            Err(e) => return Err(err(e)),
        }
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
    let out_err = |e: ffmpeg_next::Error| AssembleError::Output {
        path: target.to_path_buf(),
        cause: e.to_string(),
    };
    let seg_err = |p: &Path, e: ffmpeg_next::Error| AssembleError::Output {
        path: p.to_path_buf(),
        cause: e.to_string(),
    };
    let mut octx = format::output(target).map_err(out_err)?;
    let first = format::input(&segs[0]).map_err(|e| seg_err(&segs[0], e))?;
    {
        let ist = first.stream(0).expect("segment has video");
        let mut ost = octx
            .add_stream(encoder::find(codec::Id::None))
            .map_err(out_err)?;
        ost.set_parameters(ist.parameters());
        ost.set_time_base(t.tb);
        ost.set_avg_frame_rate(t.fps);
        clear_codec_tag(&mut ost);
    }
    let mut actx = match audio {
        Some(p) => {
            let a = format::input(p).map_err(|e| seg_err(p, e))?;
            {
                let ist = a.stream(0).expect("audio file has audio");
                let mut ost = octx
                    .add_stream(encoder::find(codec::Id::None))
                    .map_err(out_err)?;
                ost.set_parameters(ist.parameters());
                ost.set_time_base(Rational(1, AUDIO_RATE));
                clear_codec_tag(&mut ost);
            }
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
                    Err(ffmpeg_next::Error::Eof) => {
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
                Err(ffmpeg_next::Error::Eof) => break,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvenc_presets_map_from_x264_names() {
        assert_eq!(nvenc_preset("veryfast"), "p2");
        assert_eq!(nvenc_preset("medium"), "p5");
        assert_eq!(nvenc_preset("p6"), "p6");
    }
}
