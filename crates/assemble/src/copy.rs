//! The stream-copy path: packets are remuxed shot by shot, never decoded.
//!
//! Every shot must share codec, size, pixel format, timebase and codec
//! private data (SPS/PPS) with the first, and audio likewise. A cut on a
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
    MICROSECONDS,
};

use crate::error::{AssembleError, Result};
use crate::options::{EncodeSettings, Progress, ProgressFn};
use crate::plan::Shot;
use crate::smart::{
    encode_piece, smart_cut_refusal, AvcConfig, Opened, PieceJob, PiecePool, POOLED_MAX_FRAMES,
};

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

fn key_at(info: &ScannedSource, t: f64) -> Option<i64> {
    let half = 0.5 / info.fps();
    info.video
        .keyframes
        .iter()
        .copied()
        .find(|&k| (info.pts_to_s(k) - t).abs() < half)
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
        if (v.codec, v.width, v.height, v.pix_fmt, v.time_base)
            != (v0.codec, v0.width, v0.height, v0.pix_fmt, v0.time_base)
        {
            reasons.push(format!(
                "shot {n}: {:?} {}x{} {:?} tb {} differs from shot 1 ({:?} {}x{} {:?} tb {})",
                v.codec,
                v.width,
                v.height,
                v.pix_fmt,
                v.time_base,
                v0.codec,
                v0.width,
                v0.height,
                v0.pix_fmt,
                v0.time_base
            ));
        } else if v.extradata != v0.extradata {
            reasons.push(format!(
                "shot {n}: codec parameters (SPS/PPS) differ from shot 1"
            ));
        }
        let audio_same = match (&src.audio, a0) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                (
                    a.codec,
                    a.sample_rate,
                    a.channels,
                    a.time_base,
                    &a.extradata,
                ) == (
                    b.codec,
                    b.sample_rate,
                    b.channels,
                    b.time_base,
                    &b.extradata,
                )
            }
            _ => false,
        };
        if !audio_same {
            reasons.push(format!("shot {n}: audio differs from shot 1"));
        }
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
            (Some(i), Some(o)) => cuts.push(CopyCut::exact(i, o)),
            _ if smart => match smart_cut_refusal(src) {
                None => cuts.push(smart_cut(src, shot, in_pts, out_pts)),
                Some(why) => reasons.push(format!(
                    "shot {n}: cut off a keyframe and cannot be re-encoded in place: {why}"
                )),
            },
            (None, _) => reasons.push(format!(
                "shot {n}: in point {:.3} s is not on a keyframe",
                shot.in_s
            )),
            (_, None) => reasons.push(format!(
                "shot {n}: out point {:.3} s is not on a keyframe",
                shot.out_s
            )),
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

/// Where a shot's re-encoded piece comes from.
#[derive(Clone, Copy)]
enum PieceSrc {
    /// Encoded ahead by the pool: its index.
    Pool(usize),
    /// Too long to hold in memory: encoded and written out by the remux
    /// thread when the timeline reaches it.
    Inline(PieceJob),
}

/// The pieces each shot re-encodes (head or whole, tail), and the pool's
/// jobs in timeline order.
fn pieces(shots: &[Shot], cuts: &[CopyCut]) -> (Vec<[Option<PieceSrc>; 2]>, Vec<PieceJob>) {
    let mut jobs = Vec::new();
    let mut per_shot = Vec::with_capacity(cuts.len());
    for (k, (shot, cut)) in shots.iter().zip(cuts).enumerate() {
        let mut slots = [None, None];
        if !cut.reencodes() {
            per_shot.push(slots);
            continue;
        }
        let v = &shot.source.as_ref().expect("copy_plan checked").video;
        let fd = frame_duration(v.fps, v.time_base);
        let out_hi = cut.out_pts.map_or(i64::MAX, |o| o - fd / 2);
        let mut add = |start_key: i64, lo: i64, hi: i64, until_key: Option<i64>| {
            let job = PieceJob {
                shot: k,
                start_key,
                lo,
                hi,
                until_key,
                delta: -cut.in_pts,
            };
            if (hi.min(v.end_pts) - lo) / fd > POOLED_MAX_FRAMES {
                return PieceSrc::Inline(job);
            }
            jobs.push(job);
            PieceSrc::Pool(jobs.len() - 1)
        };
        let lo = cut.in_pts - fd / 2;
        slots[0] = match cut.copy_from {
            Some(f) if f == cut.in_pts => None,
            Some(f) => Some(add(cut.start_key, lo, f, Some(f))),
            None => Some(add(cut.start_key, lo, out_hi, None)),
        };
        if let (Some(u), Some(_)) = (cut.copy_until, cut.copy_from) {
            slots[1] = Some(add(u, u, out_hi, None));
        }
        per_shot.push(slots);
    }
    (per_shot, jobs)
}

/// Remuxes `shots` (cut at `cuts`) into `target`; smart cuts re-encode with
/// `settings` (preset, CRF) on up to `workers` threads.
pub fn copy_timeline(
    shots: &[Shot],
    cuts: &[CopyCut],
    target: &Path,
    settings: &EncodeSettings,
    workers: usize,
    progress: &mut ProgressFn<'_>,
    cancel: &Arc<AtomicBool>,
) -> Result<CopyStats> {
    let (slots, piece_jobs) = pieces(shots, cuts);
    let pool = PiecePool::new(&piece_jobs, shots, settings, 2 * workers);
    std::thread::scope(|scope| {
        for _ in 0..workers.min(piece_jobs.len()) {
            scope.spawn(|| pool.work());
        }
        let r = remux(
            shots, cuts, &slots, &pool, target, settings, progress, cancel,
        );
        pool.stop();
        r
    })
}

#[allow(clippy::too_many_arguments)]
fn remux(
    shots: &[Shot],
    cuts: &[CopyCut],
    slots: &[[Option<PieceSrc>; 2]],
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
    let first = shots[0].source.as_ref().expect("copy_plan checked");
    let vtb = first.video.time_base;
    let mut octx = format::output(target).map_err(out_err)?;
    let (vo, ao) = {
        let ictx = format::input(&first.path).map_err(|e| shots[0].error(e))?;
        let ist = ictx.stream(first.video.index).expect("probed stream");
        let mut ost = add_stream(&mut octx, ist.parameters()).map_err(out_err)?;
        ost.set_time_base(vtb);
        ost.set_avg_frame_rate(first.video.fps);
        let vo = ost.index();
        let ao = match &first.audio {
            Some(a) => {
                let ist = ictx.stream(a.index).expect("probed stream");
                let mut ost = add_stream(&mut octx, ist.parameters()).map_err(out_err)?;
                ost.set_time_base(a.time_base);
                Some(ost.index())
            }
            None => None,
        };
        (vo, ao)
    };
    octx.write_header().map_err(out_err)?;
    let otb_v = octx.stream(vo).expect("added").time_base();
    let otb_a = ao.map(|i| octx.stream(i).expect("added").time_base());
    let vout = (vtb, otb_v, vo);
    let mut mono = Monotonic::new(octx.nb_streams() as usize);
    let start = Instant::now();
    let mut offset: i64 = 0; // in vtb
    let mut a_clock: i64 = 0; // output audio end, in the audio timebase
    let mut frames = 0u64;
    let (mut reencoded_shots, mut reencoded_frames) = (0usize, 0u64);
    // The decoder holds a re-encoded piece's parameter sets: the next copied
    // keyframe must bring the source's back.
    let mut need_params = false;
    let mut ictx: Opened = None;
    // Long pieces read their source on a demuxer of their own.
    let mut inline_input: Opened = None;
    let mut pkt = Packet::empty();
    for (k, (shot, cut)) in shots.iter().zip(cuts).enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(AssembleError::Cancelled);
        }
        let src = shot.source.as_ref().expect("copy_plan checked");
        if ictx.as_ref().is_none_or(|(p, _)| p != &src.path) {
            let c = format::input(&src.path).map_err(|e| shot.error(e))?;
            ictx = Some((src.path.clone(), c));
        }
        let input = &mut ictx.as_mut().expect("opened").1;
        let (vi, ai) = (src.video.index, src.audio.as_ref().map(|a| a.index));
        if cut.reencodes() {
            reencoded_shots += 1;
        }
        let seek_us = rescale(cut.start_key, vtb, MICROSECONDS) + 1;
        input
            .seek(seek_us, ..seek_us + 1)
            .map_err(|e| shot.error(e))?;
        let atb = src.audio.as_ref().map(|a| a.time_base);
        let out_pts = cut.out_pts.unwrap_or(i64::MAX);
        let fd = frame_duration(src.video.fps, vtb);
        let out_hi = cut.out_pts.map_or(i64::MAX, |o| o - fd / 2);
        let delta = offset - cut.in_pts;
        let shot_len = cut.out_pts.unwrap_or(src.video.end_pts) - cut.in_pts;
        let [first_piece, tail_piece] = slots[k];
        let mut phase = Phase::Copy;
        // Audio is re-timed contiguously: it starts at the source packet
        // nearest to where the output audio clock stands and stops when the
        // next packet would overshoot the shot's video end by more than half.
        let (a_want, a_end) = match atb {
            Some(atb) => (
                rescale(cut.in_pts, vtb, atb) + a_clock - rescale(offset, vtb, atb),
                rescale(offset + shot_len, vtb, atb),
            ),
            None => (0, 0),
        };
        let mut a_started = false;
        let (mut started, mut audio_done) = (false, ai.is_none());
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
                        encode_piece(&job, shot, settings, &mut inline_input, emit!())
                            .map_err(|e| shot.error(e))?
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
                    if audio_done {
                        break;
                    }
                    continue;
                }
                shot_end = shot_end.max(pts + pkt.duration().max(0));
                let mut out = if need_params && key {
                    need_params = false;
                    let params = AvcConfig::parse(&src.video.extradata)
                        .map(|c| c.param_sets)
                        .unwrap_or_default();
                    let mut p = Packet::copy(&[&params[..], pkt.data().unwrap_or(&[])].concat());
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
                let dur = pkt.duration().max(1);
                if audio_done || !started || is_discarded(&pkt) {
                    continue;
                }
                if !a_started {
                    if pts + dur / 2 < a_want {
                        continue;
                    }
                    a_started = true;
                }
                if a_clock + dur / 2 > a_end {
                    audio_done = true;
                    if let Phase::Done = phase {
                        break;
                    }
                    continue;
                }
                let (ao, atb, otb_a) = (
                    ao.expect("audio"),
                    atb.expect("audio"),
                    otb_a.expect("audio"),
                );
                pkt.set_pts(Some(a_clock));
                pkt.set_dts(Some(a_clock));
                a_clock += dur;
                pkt.rescale_ts(atb, otb_a);
                pkt.set_stream(ao);
                pkt.set_position(-1);
                mono.fix(&mut pkt, ao);
                pkt.write_interleaved(&mut octx).map_err(out_err)?;
            }
        }
        if !started {
            return Err(shot.error("keyframe at the in point not found"));
        }
        match cut.out_pts {
            Some(o) if !matches!(phase, Phase::Done) => {
                return Err(truncated(shot, src, shot_end, o))
            }
            Some(o) => offset += o - cut.in_pts,
            None => offset += shot_end - cut.in_pts,
        }
        progress(Progress {
            shots_done: k + 1,
            shots_total: shots.len(),
            frames_done: frames,
            elapsed: start.elapsed(),
        });
    }
    octx.write_trailer().map_err(out_err)?;
    Ok(CopyStats {
        duration_s: offset as f64 * f64::from(vtb),
        frames,
        reencoded_shots,
        reencoded_frames,
    })
}

fn truncated(shot: &Shot, src: &ScannedSource, end: i64, out: i64) -> AssembleError {
    shot.error(format!(
        "source data ends at {:.3} s, before the out point {:.3} s (truncated or corrupt)",
        src.pts_to_s(end),
        src.pts_to_s(out)
    ))
}
