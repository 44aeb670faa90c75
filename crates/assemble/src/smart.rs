//! Smart cuts for the stream-copy path: the partial GOPs at cuts that do not
//! fall on keyframes are decoded and re-encoded; everything between the
//! first and the last keyframe of the shot is still copied packet for packet.
//!
//! The re-encoded pieces must live in the same H.264 track as the copied
//! packets, whose parameter sets (SPS/PPS) sit in the track header (`avcC`).
//! Each piece is encoded by libx264 with the source's size, pixel format,
//! profile and timebase, without B-frames, and carries its own SPS/PPS in
//! band at its IDR frame; the first copied packet after a piece gets the
//! source's SPS/PPS prepended, so a decoder always holds the parameter sets
//! of the packets it is decoding. Packets are converted from the encoder's
//! Annex B start codes to the track's length-prefixed NAL units.

//!
//! Pieces are independent, so short ones (at most [`POOLED_MAX_FRAMES`])
//! are encoded ahead by the pool of [`crate::pool`] while the remux thread
//! copies; longer ones are encoded by the remux thread itself, written out
//! as they come, so memory stays bounded. Either way [`encode_piece`] does
//! the work, on a demuxer of its own.

use std::path::PathBuf;

use peregrine_media::ffmpeg::{self, codec, decoder, encoder, format, frame, picture, Packet};
use peregrine_media::{
    frame_duration, read_packet, rescale, EncoderError, ScannedSource, VideoEncoderConfig,
    MICROSECONDS,
};

use crate::options::EncodeSettings;
use crate::plan::Shot;

/// Longest piece (in frames) encoded ahead in memory by the pool.
pub(crate) const POOLED_MAX_FRAMES: i64 = 125;

/// The source track's H.264 configuration (`avcC`): NAL length size and
/// the parameter sets, ready to prepend to a packet.
#[derive(Debug, Clone)]
pub(crate) struct AvcConfig {
    pub nal_len: usize,
    pub profile_idc: u8,
    pub level_idc: u8,
    /// SPS and PPS NAL units, each with a `nal_len`-byte length prefix.
    pub param_sets: Vec<u8>,
}

impl AvcConfig {
    /// Parses an `avcC` record; `None` when `extradata` is not one (e.g.
    /// Annex B streams in MPEG-TS, which carry parameter sets in band).
    pub fn parse(extradata: &[u8]) -> Option<Self> {
        let d = extradata;
        if d.len() < 7 || d[0] != 1 {
            return None;
        }
        let nal_len = usize::from(d[4] & 3) + 1;
        let mut param_sets = Vec::new();
        let mut at = 5;
        for mask in [0x1f_u8, 0xff] {
            let count = *d.get(at)? & mask;
            at += 1;
            for _ in 0..count {
                let len = usize::from(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]));
                let nal = d.get(at + 2..at + 2 + len)?;
                push_len(&mut param_sets, len, nal_len)?;
                param_sets.extend_from_slice(nal);
                at += 2 + len;
            }
        }
        Some(Self {
            nal_len,
            profile_idc: d[1],
            level_idc: d[3],
            param_sets,
        })
    }
}

fn push_len(out: &mut Vec<u8>, len: usize, nal_len: usize) -> Option<()> {
    if nal_len < 4 && len >= 1 << (8 * nal_len) {
        return None;
    }
    out.extend_from_slice(&(len as u32).to_be_bytes()[4 - nal_len..]);
    Some(())
}

/// Annex B (start codes) to length-prefixed NAL units.
pub(crate) fn annexb_to_lengths(data: &[u8], nal_len: usize) -> Option<Vec<u8>> {
    let mut starts = Vec::new(); // (start code begin, payload begin)
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let begin = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
            starts.push((begin, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    if starts.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() + 4 * starts.len());
    for (k, &(_, payload)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(data.len(), |&(b, _)| b);
        let nal = &data[payload..end];
        if nal.is_empty() {
            continue;
        }
        push_len(&mut out, nal.len(), nal_len)?;
        out.extend_from_slice(nal);
    }
    Some(out)
}

/// Why a source's off-keyframe cuts cannot be re-encoded in place, if so.
pub(crate) fn smart_cut_refusal(src: &ScannedSource) -> Option<String> {
    let v = &src.video;
    if v.codec != codec::Id::H264 {
        return Some(format!("{:?} (partial re-encoding needs H.264)", v.codec));
    }
    if !matches!(v.pix_fmt, format::Pixel::YUV420P | format::Pixel::YUVJ420P) {
        return Some(format!(
            "pixel format {:?} (partial re-encoding needs 8-bit 4:2:0)",
            v.pix_fmt
        ));
    }
    if AvcConfig::parse(&v.extradata).is_none() {
        return Some("no avcC parameter sets in the container".into());
    }
    if encoder::find_by_name("libx264").is_none() {
        return Some("libx264 is not available".into());
    }
    None
}

/// Decodes the packets of one partial GOP (or one whole shot) and
/// re-encodes the frames whose source pts lies in `[lo, hi)`.
pub(crate) struct PieceEncoder {
    dec: decoder::Video,
    enc: encoder::Video,
    lo: i64,
    hi: i64,
    /// Added to source pts to get output pts (both in the source timebase).
    delta: i64,
    frame_dur: i64,
    nal_len: usize,
    frame: frame::Video,
    out: Packet,
    /// Frames encoded so far.
    pub frames: u64,
    /// End (pts + one frame) of the last frame kept, in the source timebase.
    pub end: i64,
    /// A frame at or past `hi` came out: no more packets are needed.
    pub done: bool,
}

impl PieceEncoder {
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        src: &ScannedSource,
        params: codec::Parameters,
        avc: &AvcConfig,
        settings: &EncodeSettings,
        lo: i64,
        hi: i64,
        delta: i64,
        frame_dur: i64,
    ) -> Result<Self, String> {
        let mut ctx =
            codec::context::Context::from_parameters(params).map_err(|e| e.to_string())?;
        ctx.set_threading(codec::threading::Config::count(1));
        let dec = ctx.decoder().video().map_err(|e| e.to_string())?;
        let v = &src.video;
        let profile = profile_name(avc.profile_idc);
        // Same size, pixel format, profile and timebase as the copied
        // packets, no B-frames, parameter sets in band.
        let enc = splice_encoder(v, settings, profile, None, None)?;
        Ok(Self {
            dec,
            enc,
            lo,
            hi,
            delta,
            frame_dur: frame_dur.max(1),
            nal_len: avc.nal_len,
            frame: frame::Video::empty(),
            out: Packet::empty(),
            frames: 0,
            end: lo,
            done: false,
        })
    }

    /// Feeds one source packet (in decode order).
    pub fn send(
        &mut self,
        pkt: &Packet,
        emit: &mut dyn FnMut(Packet) -> Result<(), String>,
    ) -> Result<(), String> {
        self.dec.send_packet(pkt).map_err(|e| e.to_string())?;
        self.drain_frames(emit)
    }

    /// Flushes decoder and encoder; returns the frames encoded.
    pub fn finish(
        mut self,
        emit: &mut dyn FnMut(Packet) -> Result<(), String>,
    ) -> Result<(u64, i64), String> {
        self.dec.send_eof().map_err(|e| e.to_string())?;
        self.drain_frames(emit)?;
        self.enc.send_eof().map_err(|e| e.to_string())?;
        self.drain_packets(emit)?;
        Ok((self.frames, self.end))
    }

    fn drain_frames(
        &mut self,
        emit: &mut dyn FnMut(Packet) -> Result<(), String>,
    ) -> Result<(), String> {
        while self.dec.receive_frame(&mut self.frame).is_ok() {
            let Some(pts) = self.frame.timestamp().or(self.frame.pts()) else {
                continue;
            };
            if pts >= self.hi {
                self.done = true;
            }
            if pts < self.lo || pts >= self.hi {
                continue;
            }
            self.frame.set_pts(Some(pts + self.delta));
            // Decoded I-frames must not force keyframes in the new piece.
            self.frame.set_kind(picture::Type::None);
            self.enc
                .send_frame(&self.frame)
                .map_err(|e| e.to_string())?;
            self.frames += 1;
            self.end = self.end.max(pts + self.frame_dur);
            self.drain_packets(emit)?;
        }
        Ok(())
    }

    fn drain_packets(
        &mut self,
        emit: &mut dyn FnMut(Packet) -> Result<(), String>,
    ) -> Result<(), String> {
        drain_lengths(
            &mut self.enc,
            &mut self.out,
            (self.nal_len, self.frame_dur),
            emit,
        )
    }
}

/// Hands every packet `enc` has ready to `emit`, converted to
/// `nal_len`-byte length-prefixed NAL units, each lasting `frame_dur`.
pub(crate) fn drain_lengths(
    enc: &mut encoder::Video,
    out: &mut Packet,
    (nal_len, frame_dur): (usize, i64),
    emit: &mut dyn FnMut(Packet) -> Result<(), String>,
) -> Result<(), String> {
    while enc.receive_packet(out).is_ok() {
        let data = out.data().unwrap_or(&[]);
        let body = annexb_to_lengths(data, nal_len)
            .ok_or("the encoder produced a packet without NAL units")?;
        let mut p = Packet::copy(&body);
        p.set_pts(out.pts());
        p.set_dts(out.dts().or(out.pts()));
        p.set_duration(frame_dur);
        p.set_flags(out.flags());
        emit(p)?;
    }
    Ok(())
}

/// The H.264 profile name x264 takes for a `profile_idc`, when it has one.
pub(crate) fn profile_name(profile_idc: u8) -> Option<&'static str> {
    match profile_idc {
        66 => Some("baseline"),
        77 => Some("main"),
        100 => Some("high"),
        _ => None,
    }
}

/// One re-encoded piece of a smart cut, for the pool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PieceJob {
    /// Index into the timeline's shots.
    pub shot: usize,
    /// Keyframe where decoding starts.
    pub start_key: i64,
    /// Frames kept: source pts in `[lo, hi)`.
    pub lo: i64,
    pub hi: i64,
    /// A head piece ends at this keyframe, where copying resumes.
    pub until_key: Option<i64>,
    /// Added to source pts (puts the shot's in point at 0).
    pub delta: i64,
}

/// A demuxer kept open across pieces of the same source.
pub(crate) type Opened = Option<(PathBuf, format::context::Input)>;

/// Decodes and re-encodes one piece on its own demuxer, handing each
/// packet to `emit`; returns the frames encoded and the end of the last one
/// (source timebase).
pub(crate) fn encode_piece(
    job: &PieceJob,
    shot: &Shot,
    settings: &EncodeSettings,
    opened: &mut Opened,
    emit: &mut dyn FnMut(Packet) -> Result<(), String>,
) -> Result<(u64, i64), String> {
    let src = shot.source.as_ref().ok_or("a gap has no pieces")?;
    if opened.as_ref().is_none_or(|(p, _)| p != &src.path) {
        let input = format::input(&src.path).map_err(|e| e.to_string())?;
        *opened = Some((src.path.clone(), input));
    }
    let input = &mut opened.as_mut().expect("opened").1;
    let vi = src.video.index;
    let params = input.stream(vi).ok_or("no video stream")?.parameters();
    let avc = AvcConfig::parse(&src.video.extradata).ok_or("no avcC parameter sets")?;
    let fd = frame_duration(src.video.fps, src.video.time_base);
    let mut enc = PieceEncoder::open(src, params, &avc, settings, job.lo, job.hi, job.delta, fd)?;
    let us = rescale(job.start_key, src.video.time_base, MICROSECONDS) + 1;
    input.seek(us, ..us + 1).map_err(|e| e.to_string())?;
    let mut pkt = Packet::empty();
    let mut started = false;
    loop {
        match read_packet(&mut pkt, input) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(e) => return Err(e.to_string()),
        }
        if pkt.stream() != vi {
            continue;
        }
        let pts = pkt.pts().or(pkt.dts()).unwrap_or(i64::MIN);
        if !started {
            if !(pkt.is_key() && pts == job.start_key) {
                continue;
            }
            started = true;
        } else if pkt.is_key() && (Some(pts) == job.until_key || pts >= job.hi) {
            break;
        }
        enc.send(&pkt, emit)?;
        // Output is in presentation order: once a frame past the piece came
        // out, no later packet can add one to it.
        if enc.done {
            break;
        }
    }
    if !started {
        return Err("keyframe at the cut not found".into());
    }
    enc.finish(emit)
}

/// libx264 set up to produce packets that splice into a stream of `v`'s
/// parameters: its size, pixel format and timebase, `profile` (and
/// `level`/`sar` where given), one thread, no B-frames, parameter sets in
/// band.
pub(crate) fn splice_encoder(
    v: &peregrine_media::ScannedVideo,
    settings: &EncodeSettings,
    profile: Option<&str>,
    level: Option<u8>,
    sar: Option<ffmpeg::Rational>,
) -> Result<ffmpeg::encoder::Video, String> {
    VideoEncoderConfig {
        format: v.pix_fmt,
        threads: Some(1),
        max_b_frames: Some(0),
        profile,
        level,
        sar,
        ..VideoEncoderConfig::new(
            "libx264",
            (v.width, v.height),
            v.time_base,
            v.fps,
            &settings.preset,
            settings.crf,
        )
    }
    .open()
    .map_err(|e| match e {
        EncoderError::NotFound(_) => "libx264 is not available".to_owned(),
        e => e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avcc_parameter_sets_get_length_prefixes() {
        // version, profile 100, compat, level, 0xff (4-byte lengths),
        // 0xe1 (one SPS), len 3, SPS, one PPS, len 2, PPS.
        let avcc = [
            1, 100, 0, 30, 0xff, 0xe1, 0, 3, 0x67, 1, 2, 1, 0, 2, 0x68, 9,
        ];
        let c = AvcConfig::parse(&avcc).unwrap();
        assert_eq!(c.nal_len, 4);
        assert_eq!(c.profile_idc, 100);
        assert_eq!(c.param_sets, [0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 2, 0x68, 9]);
        assert!(AvcConfig::parse(&[0, 0, 0, 1, 0x67]).is_none());
        assert!(AvcConfig::parse(&[1, 100, 0, 30, 0xff, 0xe1, 0, 9, 0x67]).is_none());
    }

    #[test]
    fn annexb_start_codes_become_lengths() {
        let annexb = [
            0, 0, 0, 1, 0x67, 5, 0, 0, 1, 0x68, 6, 7, 0, 0, 1, 0x65, 0, 0, 3, 1,
        ];
        let out = annexb_to_lengths(&annexb, 4).unwrap();
        assert_eq!(
            out,
            [0, 0, 0, 2, 0x67, 5, 0, 0, 0, 3, 0x68, 6, 7, 0, 0, 0, 5, 0x65, 0, 0, 3, 1]
        );
        assert_eq!(
            annexb_to_lengths(&[0, 0, 1, 0x65, 1], 2).unwrap(),
            [0, 2, 0x65, 1]
        );
        assert!(annexb_to_lengths(&[1, 2, 3], 4).is_none());
    }
}
