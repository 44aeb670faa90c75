//! The remux path: packets are remuxed shot by shot, never decoded, except
//! where a shot is routed to conversion ([`crate::mixed`]): its encoded
//! packets (and converted audio) are spliced in on the same timeline.
//!
//! Copied shots share codec, size, SAR, pixel format, frame rate, timebase
//! and codec private data (SPS/PPS) with the target (in `copy` mode: with
//! the first shot), and audio likewise. A cut on a
//! keyframe (or an out point at the source's end) is copied exactly. A cut
//! that is not on a keyframe is a *smart cut* (in `auto` mode, for H.264
//! 4:2:0 sources): only the partial GOP between the cut and the nearest
//! keyframe inside the shot is decoded and re-encoded (see [`crate::smart`]);
//! a shot with no keyframe inside is re-encoded whole. `copy` mode refuses
//! off-keyframe cuts instead, with the reasons, and never re-encodes.
//! Output timestamps are `pts - in + offset`, where the offset is the sum of
//! the previous shots' exact durations; dts is forced strictly increasing.
//! Sources are assumed to use closed GOPs (IDR keyframes), as x264 and most
//! cameras write by default.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use peregrine_media::ffmpeg::{self, format, Packet, Rational};
use peregrine_media::{
    add_stream, frame_duration, is_discarded, read_packet, rescale, Monotonic, ScannedSource,
    ScannedVideo, MICROSECONDS,
};

use crate::error::{AssembleError, Result};
use crate::mixed::{
    audio_matches, video_matches, AudioRoute, ConvertJob, Formats, Route, VideoRoute,
};
use crate::options::{EncodeSettings, Progress, ProgressFn};
use crate::plan::Shot;
use crate::pool::{run_job, Job, PieceOut, PiecePool};
use crate::smart::{smart_cut_refusal, AvcConfig, Opened, PieceJob, POOLED_MAX_FRAMES};

/// Where one shot is cut, in its source's video timebase.
#[derive(Debug, Clone, Copy)]
pub struct CopyCut {
    /// The shot's first frame.
    pub in_pts: i64,
    /// End of the shot (exclusive); `None`: up to the source's end.
    pub out_pts: Option<i64>,
    /// Keyframe where reading starts (`in_pts` unless the head is re-encoded).
    pub start_key: i64,
    /// Keyframe where packet copying starts; `None`: the whole shot is
    /// re-encoded. Frames in `[in_pts, copy_from)` are re-encoded.
    pub copy_from: Option<i64>,
    /// Keyframe where copying stops and the tail `[copy_until, out_pts)` is
    /// re-encoded; `None`: copy up to `out_pts`.
    pub copy_until: Option<i64>,
}

impl CopyCut {
    fn exact(in_pts: i64, out_pts: Option<i64>) -> Self {
        Self {
            in_pts,
            out_pts,
            start_key: in_pts,
            copy_from: Some(in_pts),
            copy_until: None,
        }
    }
    /// Whether any frame of this shot is re-encoded.
    pub fn reencodes(&self) -> bool {
        self.copy_from != Some(self.in_pts) || self.copy_until.is_some()
    }
}

/// The smart cut of one shot whose in or out point is off a keyframe.
fn smart_cut(
    src: &ScannedSource,
    shot: &Shot,
    in_key: Option<i64>,
    out: Option<Option<i64>>,
) -> CopyCut {
    let v = &src.video;
    let fd = frame_duration(v.fps, v.time_base);
    let half = fd / 2;
    let grid = |t: f64| {
        let frames = (t * f64::from(v.fps)).round() as i64;
        v.start_pts + rescale(frames, v.fps.invert(), v.time_base)
    };
    let in_pts = in_key.unwrap_or_else(|| grid(shot.in_s));
    let out_pts = out.unwrap_or_else(|| Some(grid(shot.out_s)));
    let end = out_pts.unwrap_or(v.end_pts);
    let start_key = v
        .keyframes
        .iter()
        .rev()
        .copied()
        .find(|&k| k <= in_pts + half)
        .or_else(|| v.keyframes.first().copied())
        .unwrap_or(v.start_pts);
    let copy_from = v
        .keyframes
        .iter()
        .copied()
        .find(|&k| k >= in_pts - half)
        .filter(|&k| k < end - half);
    let copy_until = match out {
        Some(_) => None,
        None => v.keyframes.iter().rev().copied().find(|&k| k < end - half),
    };
    let copy_from = match (copy_from, copy_until) {
        (Some(f), Some(u)) if u <= f => None,
        (f, _) => f,
    };
    CopyCut {
        in_pts,
        out_pts,
        start_key,
        copy_from,
        copy_until: copy_from.and(copy_until),
    }
}

/// Codec, size, SAR, pixel format, rate and timebase, for messages.
fn describe_video(v: &ScannedVideo) -> String {
    format!(
        "{:?} {}x{} SAR {} {:?} {} fps tb {}",
        v.codec, v.width, v.height, v.sar, v.pix_fmt, v.fps, v.time_base
    )
}

fn key_at(info: &ScannedSource, t: f64) -> Option<i64> {
    let half = 0.5 / info.fps();
    info.video
        .keyframes
        .iter()
        .copied()
        .find(|&k| (info.pts_to_s(k) - t).abs() < half)
}

/// Where `shot` of `src` is cut for copying; `Err` says why it cannot be.
/// With `smart`, cuts off keyframes are re-encoded locally instead of
/// refused (when the source allows it).
pub(crate) fn shot_cut(
    src: &ScannedSource,
    shot: &Shot,
    smart: bool,
) -> std::result::Result<CopyCut, String> {
    let n = shot.number;
    let in_pts = key_at(src, shot.in_s);
    let half = 0.5 / src.fps();
    // An edit list that trims the end leaves hidden packets after the
    // last displayed frame: "to the end" is then an ordinary cut.
    let out_pts = if shot.out_s >= src.duration_s() - half && !src.video.trimmed_tail {
        Some(None)
    } else {
        key_at(src, shot.out_s).map(Some)
    };
    match (in_pts, out_pts) {
        (Some(i), Some(o)) => Ok(CopyCut::exact(i, o)),
        _ if smart => match smart_cut_refusal(src) {
            None => Ok(smart_cut(src, shot, in_pts, out_pts)),
            Some(why) => Err(format!(
                "shot {n}: cut off a keyframe and cannot be re-encoded in place: {why}"
            )),
        },
        (None, _) => Err(format!(
            "shot {n}: in point {:.3} s is not on a keyframe",
            shot.in_s
        )),
        (_, None) => Err(format!(
            "shot {n}: out point {:.3} s is not on a keyframe",
            shot.out_s
        )),
    }
}

/// Decides whether the timeline can be stream-copied; `Err` lists why not.
/// With `smart`, cuts off keyframes are re-encoded locally instead of
/// refused (when the source allows it).
pub fn copy_plan(shots: &[Shot], smart: bool) -> std::result::Result<Vec<CopyCut>, String> {
    let mut reasons = Vec::new();
    let Some(first) = shots.first().and_then(|s| s.source.as_ref()) else {
        return Err("the first shot is a gap".into());
    };
    let (v0, a0) = (&first.video, &first.audio);
    let mut cuts = Vec::with_capacity(shots.len());
    for shot in shots {
        let n = shot.number;
        let Some(src) = &shot.source else {
            reasons.push(format!("shot {n} is a gap"));
            continue;
        };
        let v = &src.video;
        if !video_matches(v, v0) {
            let (d, d0) = (describe_video(v), describe_video(v0));
            reasons.push(if d == d0 {
                format!("shot {n}: codec parameters (SPS/PPS) differ from shot 1")
            } else {
                format!("shot {n}: {d} differs from shot 1 ({d0})")
            });
        }
        let audio_same = match (&src.audio, a0) {
            (None, None) => true,
            (Some(a), Some(b)) => audio_matches(a, b),
            _ => false,
        };
        if !audio_same {
            reasons.push(format!("shot {n}: audio differs from shot 1"));
        }
        match shot_cut(src, shot, smart) {
            Ok(cut) => cuts.push(cut),
            Err(why) => reasons.push(why),
        }
    }
    if reasons.is_empty() {
        Ok(cuts)
    } else {
        let more = reasons.len().saturating_sub(5);
        let mut msg = reasons.into_iter().take(5).collect::<Vec<_>>().join("; ");
        if more > 0 {
            msg.push_str(&format!("; and {more} more"));
        }
        Err(msg)
    }
}

/// Result of a copy run.
pub struct CopyStats {
    pub duration_s: f64,
    pub frames: u64,
    /// Shots with at least one re-encoded frame (smart cuts).
    pub reencoded_shots: usize,
    /// Frames re-encoded at smart cuts (the rest were copied).
    pub reencoded_frames: u64,
    /// Shots whose video was converted to the target format, and their frames.
    pub converted_shots: usize,
    pub converted_frames: u64,
    /// Shots whose audio was converted to the target format.
    pub audio_converted_shots: usize,
}

/// Writes one video packet given in the source timebase, its dts moved
/// back by `reorder` (re-encoded packets have no B-frames, so this gives
/// them the same decode delay as the copied packets around them).
fn write_video(
    octx: &mut format::context::Output,
    mono: &mut Monotonic,
    mut pkt: Packet,
    (vtb, otb, vo): (Rational, Rational, usize),
    reorder: i64,
) -> std::result::Result<(), String> {
    if reorder > 0 {
        pkt.set_dts(pkt.dts().map(|d| d - reorder));
    }
    pkt.rescale_ts(vtb, otb);
    pkt.set_stream(vo);
    pkt.set_position(-1);
    mono.fix(&mut pkt, vo);
    pkt.write_interleaved(octx).map_err(|e| e.to_string())
}

/// What the video packets of a shot are doing right now.
enum Phase {
    /// Skipping packets up to `copy_from` (the head was re-encoded).
    Skip,
    Copy,
    Done,
}

/// Where a shot's encoded job comes from.
#[derive(Clone, Copy)]
enum PieceSrc {
    /// Encoded ahead by the pool: its index.
    Pool(usize),
    /// Too long to hold in memory: encoded and written out by the remux
    /// thread when the timeline reaches it.
    Inline(Job),
}

/// The encoded jobs of one shot: smart-cut pieces (head or whole, tail)
/// and the conversion of its video and/or audio.
#[derive(Clone, Copy, Default)]
struct Slots {
    pieces: [Option<PieceSrc>; 2],
    convert: Option<PieceSrc>,
}

/// The jobs each shot needs, and the pool's jobs in timeline order.
fn pieces(shots: &[Shot], routes: &[Route]) -> (Vec<Slots>, Vec<Job>) {
    let mut jobs = Vec::new();
    let mut per_shot = Vec::with_capacity(routes.len());
    for (k, (shot, route)) in shots.iter().zip(routes).enumerate() {
        let mut slots = Slots::default();
        let mut add = |job: Job, frames: i64| {
            if frames > POOLED_MAX_FRAMES {
                return PieceSrc::Inline(job);
            }
            jobs.push(job);
            PieceSrc::Pool(jobs.len() - 1)
        };
        let cut = match route.video {
            VideoRoute::Copy(cut) => cut,
            VideoRoute::Convert { frames } => {
                let job = ConvertJob {
                    shot: k,
                    frames,
                    audio: route.audio == AudioRoute::Convert,
                };
                slots.convert = Some(add(Job::Convert(job), frames as i64));
                per_shot.push(slots);
                continue;
            }
        };
        if cut.reencodes() {
            let v = &shot.source.as_ref().expect("copy_plan checked").video;
            let fd = frame_duration(v.fps, v.time_base);
            let out_hi = cut.out_pts.map_or(i64::MAX, |o| o - fd / 2);
            let mut piece = |start_key: i64, lo: i64, hi: i64, until_key: Option<i64>| {
                let job = PieceJob {
                    shot: k,
                    start_key,
                    lo,
                    hi,
                    until_key,
                    delta: -cut.in_pts,
                };
                add(Job::Piece(job), (hi.min(v.end_pts) - lo) / fd)
            };
            let lo = cut.in_pts - fd / 2;
            slots.pieces[0] = match cut.copy_from {
                Some(f) if f == cut.in_pts => None,
                Some(f) => Some(piece(cut.start_key, lo, f, Some(f))),
                None => Some(piece(cut.start_key, lo, out_hi, None)),
            };
            if let (Some(u), Some(_)) = (cut.copy_until, cut.copy_from) {
                slots.pieces[1] = Some(piece(u, u, out_hi, None));
            }
        }
        if route.audio == AudioRoute::Convert {
            let job = ConvertJob {
                shot: k,
                frames: 0,
                audio: true,
            };
            slots.convert = Some(add(Job::Convert(job), 0));
        }
        per_shot.push(slots);
    }
    (per_shot, jobs)
}

/// Remuxes `shots` into `target` along `routes`, in the output `formats`;
/// smart cuts and conversions encode with `settings` (preset, CRF) on up
/// to `workers` threads.
#[allow(clippy::too_many_arguments)]
pub fn copy_timeline(
    shots: &[Shot],
    formats: &Formats,
    routes: &[Route],
    target: &Path,
    settings: &EncodeSettings,
    workers: usize,
    progress: &mut ProgressFn<'_>,
    cancel: &Arc<AtomicBool>,
) -> Result<CopyStats> {
    let (slots, jobs) = pieces(shots, routes);
    let pool = PiecePool::new(&jobs, shots, settings, formats, 2 * workers);
    std::thread::scope(|scope| {
        for _ in 0..workers.min(jobs.len()) {
            scope.spawn(|| pool.work());
        }
        let r = remux(
            shots, formats, routes, &slots, &pool, target, settings, progress, cancel,
        );
        pool.stop();
        r
    })
}

/// Where the output audio stands and where the current shot's audio must
/// start and stop: packets are taken contiguously, from the one nearest to
/// where the clock stands until the next would overshoot the shot's video
/// end by more than half a packet.
struct AudioCursor {
    /// Output audio end, in the audio timebase.
    clock: i64,
    /// Source (or shot-relative) time the clock stands at.
    want: i64,
    /// Output time the shot's audio must not pass.
    end: i64,
    started: bool,
    done: bool,
}

impl AudioCursor {
    /// The output pts for a packet at `pts` lasting `dur`, or `None` to
    /// skip it (before the shot, or past its end: then `done` is set).
    fn place(&mut self, pts: i64, dur: i64) -> Option<i64> {
        if self.done {
            return None;
        }
        if !self.started {
            if pts + dur / 2 < self.want {
                return None;
            }
            self.started = true;
        }
        if self.clock + dur / 2 > self.end {
            self.done = true;
            return None;
        }
        let at = self.clock;
        self.clock += dur;
        Some(at)
    }
}

/// The decode delay (pts - dts) of `path`'s first video packet.
fn decode_delay(input: &mut format::context::Input, vi: usize) -> i64 {
    let mut pkt = Packet::empty();
    while read_packet(&mut pkt, input).is_ok() {
        if pkt.stream() == vi {
            return match (pkt.pts(), pkt.dts()) {
                (Some(p), Some(d)) => (p - d).max(0),
                _ => 0,
            };
        }
    }
    0
}

#[allow(clippy::too_many_arguments)]
fn remux(
    shots: &[Shot],
    formats: &Formats,
    routes: &[Route],
    slots: &[Slots],
    pool: &PiecePool<'_>,
    target: &Path,
    settings: &EncodeSettings,
    progress: &mut ProgressFn<'_>,
    cancel: &Arc<AtomicBool>,
) -> Result<CopyStats> {
    let out_err = |e: ffmpeg::Error| AssembleError::Output {
        path: target.to_path_buf(),
        cause: e.to_string(),
    };
    let tv = &formats.video;
    let vtb = tv.video.time_base;
    let ta = formats.audio_stream();
    let source_err = |src: &ScannedSource, e: ffmpeg::Error| AssembleError::Output {
        path: src.path.clone(),
        cause: e.to_string(),
    };
    let mut octx = format::output(target).map_err(out_err)?;
    let (vo, ao, target_delay) = {
        let mut ictx = format::input(&tv.path).map_err(|e| source_err(tv, e))?;
        let ist = ictx.stream(tv.video.index).expect("probed stream");
        let mut ost = add_stream(&mut octx, ist.parameters()).map_err(out_err)?;
        ost.set_time_base(vtb);
        ost.set_avg_frame_rate(tv.video.fps);
        let vo = ost.index();
        let delay = decode_delay(&mut ictx, tv.video.index);
        let ao = match (&formats.audio, ta) {
            (Some(src), Some(a)) => {
                let actx = format::input(&src.path).map_err(|e| source_err(src, e))?;
                let ist = actx.stream(a.index).expect("probed stream");
                let mut ost = add_stream(&mut octx, ist.parameters()).map_err(out_err)?;
                ost.set_time_base(a.time_base);
                Some(ost.index())
            }
            _ => None,
        };
        (vo, ao, delay)
    };
    octx.write_header().map_err(out_err)?;
    let otb_v = octx.stream(vo).expect("added").time_base();
    let otb_a = ao.map(|i| octx.stream(i).expect("added").time_base());
    let atb = ta.map(|a| a.time_base);
    let vout = (vtb, otb_v, vo);
    let mut mono = Monotonic::new(octx.nb_streams() as usize);
    let start = Instant::now();
    let mut offset: i64 = 0; // in vtb
    let mut a_clock: i64 = 0; // output audio end, in the audio timebase
    let mut frames = 0u64;
    let (mut reencoded_shots, mut reencoded_frames) = (0usize, 0u64);
    let (mut converted_shots, mut converted_frames, mut audio_converted) = (0usize, 0u64, 0usize);
    // The decoder holds an encoded piece's parameter sets: the next copied
    // keyframe must bring the target's back.
    let mut need_params = false;
    let target_params = AvcConfig::parse(&tv.video.extradata)
        .map(|c| c.param_sets)
        .unwrap_or_default();
    let mut ictx: Opened = None;
    // Long pieces read their source on a demuxer of their own.
    let mut inline_input: Opened = None;
    let mut pkt = Packet::empty();
    // Writes one audio packet (its timebase is the output audio's) at `at`.
    macro_rules! write_audio {
        ($p:expr, $at:expr) => {{
            let mut p = $p;
            let (ao, atb, otb_a) = (
                ao.expect("audio"),
                atb.expect("audio"),
                otb_a.expect("audio"),
            );
            p.set_pts(Some($at));
            p.set_dts(Some($at));
            p.rescale_ts(atb, otb_a);
            p.set_stream(ao);
            p.set_position(-1);
            mono.fix(&mut p, ao);
            p.write_interleaved(&mut octx).map_err(out_err)?;
        }};
    }
    // Writes converted audio packets (timed from the shot's start) for a
    // shot that starts at `offset` and lasts `len` (both in vtb).
    macro_rules! converted_audio {
        ($packets:expr, $len:expr) => {{
            let atb = atb.expect("audio");
            let mut cur = AudioCursor {
                want: a_clock - rescale(offset, vtb, atb),
                end: rescale(offset + $len, vtb, atb),
                clock: a_clock,
                started: false,
                done: false,
            };
            for p in $packets {
                let (pts, dur) = (p.pts().unwrap_or(0), p.duration().max(1));
                if let Some(at) = cur.place(pts, dur) {
                    write_audio!(p, at);
                }
                if cur.done {
                    break;
                }
            }
            a_clock = cur.clock;
        }};
    }
    for (k, (shot, route)) in shots.iter().zip(routes).enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(AssembleError::Cancelled);
        }
        let cut = match route.video {
            VideoRoute::Copy(cut) => cut,
            VideoRoute::Convert { .. } => {
                let emit = &mut |mut e: Packet| {
                    e.set_pts(e.pts().map(|p| p + offset));
                    e.set_dts(e.dts().map(|d| d + offset));
                    write_video(&mut octx, &mut mono, e, vout, target_delay)
                };
                let out = match slots[k].convert.expect("a conversion job") {
                    PieceSrc::Pool(i) => {
                        let out = pool.take(i).map_err(|e| shot.error(e))?;
                        for p in out.packets {
                            emit(p).map_err(|e| shot.error(e))?;
                        }
                        PieceOut {
                            packets: Vec::new(),
                            ..out
                        }
                    }
                    PieceSrc::Inline(job) => {
                        run_job(&job, shots, settings, formats, &mut inline_input, emit)
                            .map_err(|e| shot.error(e))?
                    }
                };
                converted_shots += 1;
                converted_frames += out.frames;
                frames += out.frames;
                need_params = true;
                match route.audio {
                    AudioRoute::Convert => {
                        audio_converted += 1;
                        converted_audio!(out.audio, out.end);
                    }
                    AudioRoute::Copy => {
                        // Matching audio is copied even where the video was
                        // converted, from the source packet at the in point.
                        let src = shot.source.as_ref().expect("copied audio has a source");
                        let (a, atb) = (src.audio.as_ref().expect("checked"), atb.expect("audio"));
                        if ictx.as_ref().is_none_or(|(p, _)| p != &src.path) {
                            let c = format::input(&src.path).map_err(|e| shot.error(e))?;
                            ictx = Some((src.path.clone(), c));
                        }
                        let input = &mut ictx.as_mut().expect("opened").1;
                        let v = &src.video;
                        let in_pts =
                            v.start_pts + (shot.in_s / f64::from(v.time_base)).round() as i64;
                        let mut cur = AudioCursor {
                            want: rescale(in_pts, v.time_base, atb) + a_clock
                                - rescale(offset, vtb, atb),
                            end: rescale(offset + out.end, vtb, atb),
                            clock: a_clock,
                            started: false,
                            done: false,
                        };
                        let seek_us = (rescale(in_pts, v.time_base, MICROSECONDS) - 500_000).max(0);
                        input
                            .seek(seek_us, ..seek_us + 1)
                            .map_err(|e| shot.error(e))?;
                        while !cur.done {
                            match read_packet(&mut pkt, input) {
                                Ok(()) => {}
                                Err(ffmpeg::Error::Eof) => break,
                                Err(e) => return Err(shot.error(e)),
                            }
                            if pkt.stream() != a.index || is_discarded(&pkt) {
                                continue;
                            }
                            let pts = pkt.pts().or(pkt.dts()).unwrap_or(i64::MIN);
                            if let Some(at) = cur.place(pts, pkt.duration().max(1)) {
                                write_audio!(pkt.clone(), at);
                            }
                        }
                        a_clock = cur.clock;
                    }
                    AudioRoute::None => {}
                }
                offset += out.end;
                progress(Progress {
                    shots_done: k + 1,
                    shots_total: shots.len(),
                    frames_done: frames,
                    frames_encoded: converted_frames + reencoded_frames,
                    elapsed: start.elapsed(),
                });
                continue;
            }
        };
        let src = shot.source.as_ref().expect("copied shots have sources");
        if ictx.as_ref().is_none_or(|(p, _)| p != &src.path) {
            let c = format::input(&src.path).map_err(|e| shot.error(e))?;
            ictx = Some((src.path.clone(), c));
        }
        let input = &mut ictx.as_mut().expect("opened").1;
        let vi = src.video.index;
        let ai = match route.audio {
            AudioRoute::Copy => src.audio.as_ref().map(|a| a.index),
            _ => None,
        };
        if cut.reencodes() {
            reencoded_shots += 1;
        }
        let seek_us = rescale(cut.start_key, vtb, MICROSECONDS) + 1;
        input
            .seek(seek_us, ..seek_us + 1)
            .map_err(|e| shot.error(e))?;
        let out_pts = cut.out_pts.unwrap_or(i64::MAX);
        let fd = frame_duration(src.video.fps, vtb);
        let out_hi = cut.out_pts.map_or(i64::MAX, |o| o - fd / 2);
        let delta = offset - cut.in_pts;
        let shot_len = cut.out_pts.unwrap_or(src.video.end_pts) - cut.in_pts;
        let Slots {
            pieces: [first_piece, tail_piece],
            convert,
        } = slots[k];
        let mut phase = Phase::Copy;
        // Copied audio is re-timed contiguously from the source packet
        // nearest to where the output audio clock stands.
        let mut acur = match atb {
            Some(atb) => AudioCursor {
                want: rescale(cut.in_pts, vtb, atb) + a_clock - rescale(offset, vtb, atb),
                end: rescale(offset + shot_len, vtb, atb),
                clock: a_clock,
                started: false,
                done: ai.is_none(),
            },
            None => AudioCursor {
                want: 0,
                end: 0,
                clock: 0,
                started: false,
                done: true,
            },
        };
        let mut started = false;
        // The source's decode delay (pts - dts at the keyframe).
        let mut reorder = 0i64;
        let mut shot_end = cut.in_pts;
        // Writes a re-encoded piece's packets (timed from the shot's in point).
        macro_rules! emit {
            () => {
                &mut |mut e: Packet| {
                    e.set_pts(e.pts().map(|p| p + offset));
                    e.set_dts(e.dts().map(|d| d + offset));
                    write_video(&mut octx, &mut mono, e, vout, reorder)
                }
            };
        }
        // Writes one re-encoded piece; returns where its last frame ends.
        macro_rules! piece {
            ($src:expr) => {{
                let (n, end) = match $src {
                    PieceSrc::Pool(i) => {
                        let out = pool.take(i).map_err(|e| shot.error(e))?;
                        for p in out.packets {
                            (emit!())(p).map_err(|e| shot.error(e))?;
                        }
                        (out.frames, out.end)
                    }
                    PieceSrc::Inline(job) => {
                        let out =
                            run_job(&job, shots, settings, formats, &mut inline_input, emit!())
                                .map_err(|e| shot.error(e))?;
                        (out.frames, out.end)
                    }
                };
                frames += n;
                reencoded_frames += n;
                shot_end = shot_end.max(end);
                need_params = true;
                end
            }};
        }
        loop {
            match read_packet(&mut pkt, input) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => break,
                Err(e) => return Err(shot.error(e)),
            }
            let s = pkt.stream();
            // Packets an edit list hides are never shown: copied audio skips
            // them; copied video never reaches them (time zero is the first
            // shown frame and a trimmed end is a cut), except as decode input
            // of a re-encoded piece, which reads its own demuxer.
            if s == vi && is_discarded(&pkt) && matches!(phase, Phase::Copy) && started {
                continue;
            }
            if s == vi {
                let pts = pkt.pts().or(pkt.dts()).unwrap_or(i64::MIN);
                let key = pkt.is_key();
                if !started {
                    if !(key && pts == cut.start_key) {
                        continue;
                    }
                    started = true;
                    reorder = (pts - pkt.dts().unwrap_or(pts)).max(0);
                    if let Some(p) = first_piece {
                        // A head ends where copying starts; otherwise the
                        // piece is the whole shot.
                        let head = cut.copy_from.is_some();
                        let end = piece!(p);
                        if !head && cut.out_pts.is_some() && end < out_hi {
                            return Err(truncated(shot, src, end, out_pts));
                        }
                        phase = if head { Phase::Skip } else { Phase::Done };
                    }
                }
                if let Phase::Skip = phase {
                    if !(key && Some(pts) == cut.copy_from) {
                        continue;
                    }
                    phase = Phase::Copy;
                }
                if let Phase::Copy = phase {
                    if key && Some(pts) == cut.copy_until {
                        let tail = tail_piece.expect("a tail piece where copying stops");
                        let end = piece!(tail);
                        if cut.out_pts.is_some() && end < out_hi {
                            return Err(truncated(shot, src, end, out_pts));
                        }
                        phase = Phase::Done;
                    } else if key && pts >= out_pts {
                        phase = Phase::Done;
                    }
                }
                if let Phase::Done = phase {
                    if acur.done {
                        break;
                    }
                    continue;
                }
                shot_end = shot_end.max(pts + pkt.duration().max(0));
                let mut out = if need_params && key {
                    need_params = false;
                    let mut p =
                        Packet::copy(&[&target_params[..], pkt.data().unwrap_or(&[])].concat());
                    p.set_flags(pkt.flags());
                    p.set_duration(pkt.duration());
                    p
                } else {
                    pkt.clone()
                };
                out.set_pts(pkt.pts().map(|p| p + delta));
                out.set_dts(pkt.dts().map(|d| d + delta));
                write_video(&mut octx, &mut mono, out, vout, 0).map_err(|e| shot.error(e))?;
                frames += 1;
            } else if Some(s) == ai {
                let pts = pkt.pts().or(pkt.dts()).unwrap_or(i64::MIN);
                if acur.done || !started || is_discarded(&pkt) {
                    continue;
                }
                match acur.place(pts, pkt.duration().max(1)) {
                    Some(at) => write_audio!(pkt.clone(), at),
                    None if acur.done && matches!(phase, Phase::Done) => break,
                    None => {}
                }
            }
        }
        if ai.is_some() {
            a_clock = acur.clock;
        }
        if !started {
            return Err(shot.error("keyframe at the in point not found"));
        }
        let len = match cut.out_pts {
            Some(o) if !matches!(phase, Phase::Done) => {
                return Err(truncated(shot, src, shot_end, o))
            }
            Some(o) => o - cut.in_pts,
            None => shot_end - cut.in_pts,
        };
        if let Some(c) = convert {
            let out = match c {
                PieceSrc::Pool(i) => pool.take(i).map_err(|e| shot.error(e))?,
                PieceSrc::Inline(job) => run_job(
                    &job,
                    shots,
                    settings,
                    formats,
                    &mut inline_input,
                    &mut |_| Ok(()),
                )
                .map_err(|e| shot.error(e))?,
            };
            audio_converted += 1;
            converted_audio!(out.audio, len);
        }
        offset += len;
        progress(Progress {
            shots_done: k + 1,
            shots_total: shots.len(),
            frames_done: frames,
            frames_encoded: converted_frames + reencoded_frames,
            elapsed: start.elapsed(),
        });
    }
    octx.write_trailer().map_err(out_err)?;
    Ok(CopyStats {
        duration_s: offset as f64 * f64::from(vtb),
        frames,
        reencoded_shots,
        reencoded_frames,
        converted_shots,
        converted_frames,
        audio_converted_shots: audio_converted,
    })
}

fn truncated(shot: &Shot, src: &ScannedSource, end: i64, out: i64) -> AssembleError {
    shot.error(format!(
        "source data ends at {:.3} s, before the out point {:.3} s (truncated or corrupt)",
        src.pts_to_s(end),
        src.pts_to_s(out)
    ))
}
