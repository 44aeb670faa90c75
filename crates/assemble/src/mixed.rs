//! Smart render of mixed sources: copy what matches the target format,
//! encode only what does not.
//!
//! The target format is the one most of the assembled duration already has
//! (among the formats of the sizes and rates `--size` / `--fps` ask for,
//! when given): codec, size, sample aspect ratio, pixel format, frame rate,
//! timebase and parameter sets (SPS/PPS) of one source, and the audio
//! parameters of the source whose audio covers most of the duration. Every
//! shot whose video has that format is stream-copied, with smart cuts as
//! in [`crate::copy`]; every other shot (and every gap) is *converted*:
//! decoded, fitted into the target size keeping its display aspect ratio,
//! frame-rate converted and encoded by libx264 with the target's size,
//! SAR, pixel format, profile, level, timebase and frame rate, without
//! B-frames, its SPS/PPS in band at its IDR frames. Copied keyframes after
//! a conversion get the target's parameter sets prepended, so the decoder
//! always holds those of the packets it decodes: one H.264 track that
//! plays across every switch.
//!
//! Audio goes the same way: copied when its parameters match the target's,
//! otherwise decoded, resampled and encoded to AAC with the target's rate
//! and channels (silence for gaps and silent sources). A converted shot's
//! audio is encoded with two AAC frames of margin on each side and an
//! extra frame of pre-roll whose packets (encoder priming) are dropped, so
//! its packets line up with the shot's time; the remux thread then takes
//! them exactly like copied packets: contiguously on the output audio
//! clock, which therefore never drifts from the video by more than half an
//! AAC frame, however many switches there are.

use std::sync::Arc;

use peregrine_media::ffmpeg::{
    self, codec, encoder, frame, picture, ChannelLayout, Packet, Rational,
};
use peregrine_media::{
    frame_duration, open_aac_encoder, rescale, ScannedAudio, ScannedSource, ScannedVideo,
};

use crate::copy::{shot_cut, CopyCut};
use crate::normalize::{shot_audio, AudioFifo, AudioShape, ShotPictures};
use crate::options::EncodeSettings;
use crate::plan::Shot;
use crate::pool::PieceOut;
use crate::smart::{drain_lengths, profile_name, smart_cut_refusal, AvcConfig};

/// The output's stream formats: the video stream of `video`, the audio
/// stream of `audio` (none when no shot has audio).
#[derive(Debug, Clone)]
pub struct Formats {
    pub video: Arc<ScannedSource>,
    pub audio: Option<Arc<ScannedSource>>,
}

impl Formats {
    pub(crate) fn audio_stream(&self) -> Option<&ScannedAudio> {
        self.audio.as_ref().and_then(|s| s.audio.as_ref())
    }
    /// Short description of the target video format, for the summary.
    pub fn describe(&self) -> String {
        let v = &self.video.video;
        format!(
            "{:?} {}x{} SAR {}:{} {:?} {}/{} fps",
            v.codec,
            v.width,
            v.height,
            v.sar.numerator(),
            v.sar.denominator(),
            v.pix_fmt,
            v.fps.numerator(),
            v.fps.denominator()
        )
    }
}

/// Whether two video streams can share one copied track.
pub(crate) fn video_matches(a: &ScannedVideo, b: &ScannedVideo) -> bool {
    (
        a.codec,
        a.width,
        a.height,
        a.pix_fmt,
        a.time_base,
        a.fps,
        a.sar,
    ) == (
        b.codec,
        b.width,
        b.height,
        b.pix_fmt,
        b.time_base,
        b.fps,
        b.sar,
    ) && a.extradata == b.extradata
}

/// Whether two audio streams can share one copied track.
pub(crate) fn audio_matches(a: &ScannedAudio, b: &ScannedAudio) -> bool {
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

/// The source among `candidates` whose stream (by `same`) covers most of
/// the timeline's duration; the earliest on ties.
fn most_duration<'a, T: 'a>(
    shots: &'a [Shot],
    stream: impl Fn(&'a ScannedSource) -> Option<&'a T>,
    same: impl Fn(&T, &T) -> bool,
) -> Option<&'a Arc<ScannedSource>> {
    let mut groups: Vec<(&Arc<ScannedSource>, f64)> = Vec::new();
    for shot in shots {
        let Some(src) = &shot.source else { continue };
        let Some(s) = stream(src) else { continue };
        match groups
            .iter_mut()
            .find(|(g, _)| stream(g).is_some_and(|t| same(t, s)))
        {
            Some((_, d)) => *d += shot.duration_s(),
            None => groups.push((src, shot.duration_s())),
        }
    }
    let mut best: Option<(&Arc<ScannedSource>, f64)> = None;
    for (g, d) in groups {
        if best.is_none_or(|(_, b)| d > b) {
            best = Some((g, d));
        }
    }
    best.map(|(g, _)| g)
}

/// How one shot's video reaches the output.
#[derive(Debug, Clone, Copy)]
pub enum VideoRoute {
    /// Stream copy (with smart cuts).
    Copy(CopyCut),
    /// Decoded and encoded in the target format: `frames` frames.
    Convert { frames: u64 },
}

/// How one shot's audio reaches the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioRoute {
    /// The output has no audio.
    None,
    Copy,
    /// Decoded (silence for gaps and silent sources), encoded as the target.
    Convert,
}

/// The route of every shot.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub video: VideoRoute,
    pub audio: AudioRoute,
}

impl Route {
    pub fn converts(&self) -> bool {
        matches!(self.video, VideoRoute::Convert { .. }) || self.audio == AudioRoute::Convert
    }
}

/// Routes for a stream-copy plan (every shot matches the first).
pub(crate) fn copy_routes(shots: &[Shot], cuts: &[CopyCut]) -> (Formats, Vec<Route>) {
    let first = Arc::clone(shots[0].source.as_ref().expect("copy_plan checked"));
    let audio = if first.audio.is_some() {
        AudioRoute::Copy
    } else {
        AudioRoute::None
    };
    let formats = Formats {
        audio: first.audio.is_some().then(|| Arc::clone(&first)),
        video: first,
    };
    let routes = cuts
        .iter()
        .map(|&c| Route {
            video: VideoRoute::Copy(c),
            audio,
        })
        .collect();
    (formats, routes)
}

/// Chooses the target format and routes every shot; `Err` says why the
/// timeline cannot be rendered this way (then it is normalised).
pub fn smart_plan(
    shots: &[Shot],
    settings: &EncodeSettings,
) -> std::result::Result<(Formats, Vec<Route>), String> {
    let wanted = |v: &ScannedVideo| {
        settings.size.is_none_or(|s| s == (v.width, v.height))
            && settings.fps.is_none_or(|f| f.reduce() == v.fps.reduce())
    };
    let video = most_duration(
        shots,
        |s| Some(&s.video).filter(|v| wanted(v)),
        video_matches,
    )
    .ok_or_else(|| match shots.iter().any(|s| s.source.is_some()) {
        true => "no shot has the requested --size / --fps".to_owned(),
        false => "the timeline has only gaps".to_owned(),
    })?;
    let audio = most_duration(shots, |s| s.audio.as_ref(), audio_matches);
    let formats = Formats {
        video: Arc::clone(video),
        audio: audio.cloned(),
    };
    let tv = &formats.video.video;
    let ta = formats.audio_stream();
    let mut routes = Vec::with_capacity(shots.len());
    let mut reasons = Vec::new();
    let (mut convert_video, mut convert_audio) = (false, false);
    for shot in shots {
        let video = match &shot.source {
            Some(src) if video_matches(&src.video, tv) => match shot_cut(src, shot, true) {
                Ok(cut) => VideoRoute::Copy(cut),
                Err(why) => {
                    reasons.push(why);
                    continue;
                }
            },
            _ => {
                convert_video = true;
                VideoRoute::Convert {
                    frames: ((shot.duration_s() * f64::from(tv.fps)).round() as u64).max(1),
                }
            }
        };
        let audio = match (ta, shot.source.as_ref().and_then(|s| s.audio.as_ref())) {
            (None, _) => AudioRoute::None,
            (Some(t), Some(a)) if audio_matches(a, t) => AudioRoute::Copy,
            (Some(_), _) => {
                convert_audio = true;
                AudioRoute::Convert
            }
        };
        routes.push(Route { video, audio });
    }
    if convert_video {
        if let Some(why) = smart_cut_refusal(&formats.video) {
            reasons.push(format!("the target format cannot be encoded to: {why}"));
        }
    }
    if convert_audio {
        if let Some(why) = ta.and_then(aac_lc_refusal) {
            reasons.push(format!("the target audio cannot be encoded to: {why}"));
        }
    }
    if reasons.is_empty() {
        Ok((formats, routes))
    } else {
        let more = reasons.len().saturating_sub(5);
        let mut msg = reasons.into_iter().take(5).collect::<Vec<_>>().join("; ");
        if more > 0 {
            msg.push_str(&format!("; and {more} more"));
        }
        Err(msg)
    }
}

/// Why FFmpeg's AAC encoder cannot produce packets that fit `a`'s track.
fn aac_lc_refusal(a: &ScannedAudio) -> Option<String> {
    if a.codec != codec::Id::AAC {
        return Some(format!("{:?} (audio conversion writes AAC)", a.codec));
    }
    // AudioSpecificConfig: object type in the first 5 bits; 2 = AAC LC.
    match a.extradata.first().map(|b| b >> 3) {
        Some(2) | None => None,
        Some(t) => Some(format!("AAC object type {t} (conversion writes AAC LC)")),
    }
}

/// One shot converted to the target format: its video (`frames` > 0) and,
/// with `audio`, its audio.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvertJob {
    /// Index into the timeline's shots.
    pub shot: usize,
    /// Video frames to encode; 0: the video is copied.
    pub frames: u64,
    pub audio: bool,
}

/// Runs a [`ConvertJob`]: video packets go to `emit` (pts from 0 at the
/// shot's in point, in the target timebase); audio packets are returned.
pub(crate) fn convert_shot(
    job: &ConvertJob,
    shot: &Shot,
    settings: &EncodeSettings,
    formats: &Formats,
    emit: &mut dyn FnMut(Packet) -> Result<(), String>,
) -> Result<PieceOut, String> {
    let audio = match (job.audio, formats.audio_stream()) {
        (true, Some(a)) => convert_audio(shot, a, settings.audio_bitrate)?,
        _ => Vec::new(),
    };
    let v = &formats.video.video;
    let fd = frame_duration(v.fps, v.time_base);
    if job.frames > 0 {
        convert_video(shot, job.frames, v, settings, emit)?;
    }
    Ok(PieceOut {
        packets: Vec::new(),
        frames: job.frames,
        end: job.frames as i64 * fd,
        audio,
    })
}

/// Encodes `n` frames of `shot` in the format of `v`.
fn convert_video(
    shot: &Shot,
    n: u64,
    v: &ScannedVideo,
    settings: &EncodeSettings,
    emit: &mut dyn FnMut(Packet) -> Result<(), String>,
) -> Result<(), String> {
    let avc = AvcConfig::parse(&v.extradata).ok_or("the target has no avcC parameter sets")?;
    let fd = frame_duration(v.fps, v.time_base).max(1);
    // Always states the SAR (a target that leaves it unset has square
    // pixels).
    let mut enc = crate::smart::splice_encoder(
        v,
        settings,
        profile_name(avc.profile_idc),
        Some(avc.level_idc),
        Some(v.sar),
    )?;
    let mut pictures =
        ShotPictures::open(shot, (v.width, v.height), v.fps, v.sar).map_err(|e| shot_cause(&e))?;
    let mut out = Packet::empty();
    for k in 0..n {
        let picture = pictures.frame(k).map_err(|e| shot_cause(&e))?;
        picture.set_pts(Some(k as i64 * fd));
        picture.set_kind(picture::Type::None);
        enc.send_frame(picture).map_err(|e| e.to_string())?;
        drain_lengths(&mut enc, &mut out, (avc.nal_len, fd), emit)?;
    }
    enc.send_eof().map_err(|e| e.to_string())?;
    drain_lengths(&mut enc, &mut out, (avc.nal_len, fd), emit)
}

/// The cause of a shot error (the remux thread names the shot again).
fn shot_cause(e: &crate::AssembleError) -> String {
    match e {
        crate::AssembleError::Shot { cause, .. } => cause.clone(),
        e => e.to_string(),
    }
}

/// AAC frames of margin encoded on each side of a converted shot's audio.
const MARGIN_FRAMES: i64 = 2;

/// Encodes `shot`'s audio (silence where it has none) in the format of
/// `a`: packets timed from the shot's in point in `a`'s timebase, starting
/// [`MARGIN_FRAMES`] AAC frames early and ending as many frames late.
pub(crate) fn convert_audio(
    shot: &Shot,
    a: &ScannedAudio,
    bit_rate: usize,
) -> Result<Vec<Packet>, String> {
    let rate = a.sample_rate as i32;
    let layout = ChannelLayout::default(i32::from(a.channels));
    let mut enc = open_aac_encoder(rate, layout, bit_rate, true).map_err(|e| e.to_string())?;
    let fs = enc.frame_size().max(1) as usize;
    // One more frame of pre-roll: the encoder's first packet is priming.
    let pre = (MARGIN_FRAMES as usize + 1) * fs;
    let total =
        pre + (shot.duration_s() * f64::from(rate)).round() as usize + MARGIN_FRAMES as usize * fs;
    let total = total.div_ceil(fs) * fs;
    let sample_tb = Rational(1, rate);
    let mut fifo = AudioFifo::new(usize::from(a.channels.max(1)));
    let mut aframe = frame::Audio::new(
        ffmpeg::format::Sample::F32(ffmpeg::format::sample::Type::Planar),
        fs,
        layout,
    );
    aframe.set_rate(rate as u32);
    let mut packets = Vec::new();
    let mut written = 0i64;
    let mut pkt = Packet::empty();
    let keep_from = fs as i64; // pts of the first packet past the priming
    let mut receive = |enc: &mut encoder::Audio, packets: &mut Vec<Packet>| {
        while enc.receive_packet(&mut pkt).is_ok() {
            let p = pkt.pts().unwrap_or(0);
            if p < keep_from {
                continue;
            }
            let mut out = pkt.clone();
            let rel = rescale(p - pre as i64, sample_tb, a.time_base);
            out.set_pts(Some(rel));
            out.set_dts(Some(rel));
            out.set_duration(rescale(fs as i64, sample_tb, a.time_base));
            packets.push(out);
        }
    };
    let mut flush = |fifo: &mut AudioFifo| -> Result<(), crate::AssembleError> {
        while fifo.len() >= fs {
            fifo.pop_into(fs, &mut aframe);
            aframe.set_pts(Some(written));
            written += fs as i64;
            enc.send_frame(&aframe).map_err(|e| shot.error(e))?;
            receive(&mut enc, &mut packets);
        }
        Ok(())
    };
    let mut got = 0;
    if let Some(src) = shot.source.as_ref().filter(|s| s.audio.is_some()) {
        let from_s = shot.in_s - pre as f64 / f64::from(rate);
        let to = AudioShape { rate, layout };
        got = shot_audio(shot, src, from_s, total, to, &mut fifo, &mut flush)
            .map_err(|e| shot_cause(&e))?;
    }
    fifo.pad(total - got);
    flush(&mut fifo).map_err(|e| shot_cause(&e))?;
    enc.send_eof().map_err(|e| e.to_string())?;
    receive(&mut enc, &mut packets);
    Ok(packets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_media::ffmpeg::format::Pixel;

    fn source(name: &str, width: u32, sar: Rational) -> Arc<ScannedSource> {
        Arc::new(ScannedSource {
            path: name.into(),
            video: ScannedVideo {
                index: 0,
                codec: codec::Id::H264,
                width,
                height: 240,
                pix_fmt: Pixel::YUV420P,
                time_base: Rational(1, 12800),
                fps: Rational(25, 1),
                sar,
                extradata: Vec::new(),
                keyframes: vec![0],
                start_pts: 0,
                end_pts: 12800 * 10,
                frames: 250,
                trimmed_tail: false,
            },
            audio: None,
        })
    }

    fn shot(number: usize, src: &Arc<ScannedSource>, in_s: f64, out_s: f64) -> Shot {
        Shot {
            number,
            label: None,
            source: Some(Arc::clone(src)),
            in_s,
            out_s,
        }
    }

    #[test]
    fn the_target_is_the_format_of_most_duration_not_most_shots() {
        let a = source("a.mp4", 320, Rational(1, 1));
        let b = source("b.mp4", 320, Rational(4, 3));
        // Three 1 s shots of a, one 5 s shot of b (same size, other SAR).
        let shots = [
            shot(1, &a, 0.0, 1.0),
            shot(2, &b, 0.0, 5.0),
            shot(3, &a, 1.0, 2.0),
            shot(4, &a, 2.0, 3.0),
        ];
        let target = most_duration(&shots, |s| Some(&s.video), video_matches).unwrap();
        assert_eq!(target.path, b.path);
        // A tie goes to the format seen first.
        let tie = [shot(1, &a, 0.0, 2.0), shot(2, &b, 0.0, 2.0)];
        let target = most_duration(&tie, |s| Some(&s.video), video_matches).unwrap();
        assert_eq!(target.path, a.path);
        assert!(!video_matches(&a.video, &b.video));
        assert!(most_duration(&shots, |s| s.audio.as_ref(), audio_matches).is_none());
    }

    #[test]
    fn only_aac_lc_targets_take_converted_audio() {
        let mut a = ScannedAudio {
            index: 1,
            codec: codec::Id::AAC,
            sample_rate: 48_000,
            channels: 2,
            time_base: Rational(1, 48_000),
            extradata: vec![0x11, 0x90],
        };
        assert!(aac_lc_refusal(&a).is_none());
        a.extradata = vec![0x2b, 0x92]; // object type 5: HE-AAC
        assert!(aac_lc_refusal(&a).unwrap().contains("type 5"));
        a.codec = codec::Id::MP3;
        assert!(aac_lc_refusal(&a).is_some());
    }
}
