//! Scanning a source for editing: stream parameters, exact duration and
//! keyframe positions.
//!
//! A key design decision is to read every video packet header once (demux
//! only, no decode): it gives the keyframe list a stream copy needs and a
//! duration that reflects the data actually present, so a truncated file
//! fails validation instead of producing a short output. Unlike
//! [`probe`](crate::probe), which trusts the headers, this costs one pass
//! over the file.
//!
//! Source time is presentation time as a player shows it: t = 0 is the first
//! frame displayed. An MP4 edit list that trims the start (common after a
//! stream-copy cut such as `ffmpeg -ss 1.3 -c copy`) leaves packets that are
//! decoded but never shown; FFmpeg's demuxer marks them `AV_PKT_FLAG_DISCARD`,
//! and their pts are earlier (often negative). They count neither for time
//! zero nor for the duration, but their keyframes stay decode entry points.

use std::path::{Path, PathBuf};

use ffmpeg_next as ffmpeg;
use ffmpeg_next::{codec, format, media, Packet, Rational};

use crate::input::describe_streams;
use crate::packet::{is_discarded, read_packet};
use crate::MediaError;

/// Video stream facts.
#[derive(Debug, Clone)]
pub struct ScannedVideo {
    pub index: usize,
    pub codec: codec::Id,
    pub width: u32,
    pub height: u32,
    pub pix_fmt: format::Pixel,
    pub time_base: Rational,
    /// Average frame rate (frames per second as a rational).
    pub fps: Rational,
    /// Sample (pixel) aspect ratio; `1:1` when the stream leaves it unset.
    pub sar: Rational,
    pub extradata: Vec<u8>,
    /// Presentation timestamps of keyframes, ascending, in `time_base`;
    /// keyframes of discarded packets (before `start_pts`) included: decoding
    /// may start there.
    pub keyframes: Vec<i64>,
    /// Pts of the first displayed frame (time zero of the source).
    pub start_pts: i64,
    /// End of the last displayed frame (max pts + duration), in `time_base`.
    pub end_pts: i64,
    /// Displayed frames (packets not discarded by an edit list).
    pub frames: u64,
    /// An edit list hides packets after `start_pts` (it trims the end): the
    /// last displayed frame is not the last packet, so copying "to the end"
    /// would show hidden frames.
    pub trimmed_tail: bool,
}

/// Audio stream facts.
#[derive(Debug, Clone)]
pub struct ScannedAudio {
    pub index: usize,
    pub codec: codec::Id,
    pub sample_rate: u32,
    pub channels: u16,
    pub time_base: Rational,
    pub extradata: Vec<u8>,
}

/// What an editor needs to know about one source file.
#[derive(Debug, Clone)]
pub struct ScannedSource {
    pub path: PathBuf,
    pub video: ScannedVideo,
    pub audio: Option<ScannedAudio>,
}

impl ScannedSource {
    pub fn fps(&self) -> f64 {
        f64::from(self.video.fps)
    }
    pub fn duration_s(&self) -> f64 {
        (self.video.end_pts - self.video.start_pts) as f64 * f64::from(self.video.time_base)
    }
    /// Source time (seconds from its first displayed frame) of a video pts.
    pub fn pts_to_s(&self, pts: i64) -> f64 {
        (pts - self.video.start_pts) as f64 * f64::from(self.video.time_base)
    }
}

fn extradata(params: &codec::Parameters) -> Vec<u8> {
    // SAFETY: `params` wraps a valid AVCodecParameters; extradata points to
    // `extradata_size` readable bytes when non-null.
    unsafe {
        let p = params.as_ptr();
        if (*p).extradata.is_null() || (*p).extradata_size <= 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts((*p).extradata, (*p).extradata_size as usize).to_vec()
        }
    }
}

/// Opens `path`, reads its stream parameters and scans its video packets.
///
/// Errors: [`MediaError::NotFound`], [`MediaError::NoVideoStream`], or
/// [`MediaError::Unreadable`] with FFmpeg's reason.
pub fn scan(path: &Path) -> Result<ScannedSource, MediaError> {
    if !path.exists() {
        return Err(MediaError::NotFound(path.to_path_buf()));
    }
    crate::init();
    let unreadable = |e: ffmpeg::Error| MediaError::unreadable(path, e);
    let mut ictx = format::input(path).map_err(unreadable)?;
    let vstream =
        ictx.streams()
            .best(media::Type::Video)
            .ok_or_else(|| MediaError::NoVideoStream {
                path: path.to_path_buf(),
                streams: describe_streams(&ictx),
            })?;
    let vindex = vstream.index();
    let vparams = vstream.parameters();
    let dec = codec::context::Context::from_parameters(vparams.clone())
        .and_then(|c| c.decoder().video())
        .map_err(unreadable)?;
    let mut fps = vstream.avg_frame_rate();
    if fps.numerator() <= 0 || fps.denominator() <= 0 {
        fps = vstream.rate();
    }
    let mut video = ScannedVideo {
        index: vindex,
        codec: vparams.id(),
        width: dec.width(),
        height: dec.height(),
        pix_fmt: dec.format(),
        time_base: vstream.time_base(),
        fps,
        sar: match dec.aspect_ratio() {
            r if r.numerator() > 0 && r.denominator() > 0 => r.reduce(),
            _ => Rational(1, 1),
        },
        extradata: extradata(&vparams),
        keyframes: Vec::new(),
        start_pts: i64::MAX,
        end_pts: i64::MIN,
        frames: 0,
        trimmed_tail: false,
    };
    let audio = ictx.streams().best(media::Type::Audio).and_then(|a| {
        let params = a.parameters();
        let dec = codec::context::Context::from_parameters(params.clone())
            .and_then(|c| c.decoder().audio())
            .ok()?;
        Some(ScannedAudio {
            index: a.index(),
            codec: params.id(),
            sample_rate: dec.rate(),
            channels: dec.channels(),
            time_base: a.time_base(),
            extradata: extradata(&params),
        })
    });
    let mut pkt = Packet::empty();
    let mut last_dur = 0;
    let mut last_hidden = i64::MIN;
    loop {
        match read_packet(&mut pkt, &mut ictx) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(ffmpeg::Error::InvalidData) => continue,
            Err(e) => return Err(unreadable(e)),
        }
        if pkt.stream() != vindex {
            continue;
        }
        let Some(pts) = pkt.pts().or(pkt.dts()) else {
            continue;
        };
        if pkt.is_key() {
            video.keyframes.push(pts);
        }
        let dur = if pkt.duration() > 0 {
            pkt.duration()
        } else {
            last_dur
        };
        last_dur = dur;
        if is_discarded(&pkt) {
            last_hidden = last_hidden.max(pts);
            continue;
        }
        video.frames += 1;
        video.start_pts = video.start_pts.min(pts);
        video.end_pts = video.end_pts.max(pts + dur);
    }
    if video.frames == 0 {
        return Err(MediaError::unreadable(
            path,
            if last_hidden == i64::MIN {
                "no decodable video packets"
            } else {
                "its edit list shows no video packet"
            },
        ));
    }
    video.trimmed_tail = last_hidden > video.start_pts;
    if last_dur == 0 && fps.numerator() > 0 {
        // Containers without packet durations: one frame at the nominal rate.
        let one = Rational(fps.denominator(), fps.numerator());
        video.end_pts += one_frame(one, video.time_base);
    }
    video.keyframes.sort_unstable();
    Ok(ScannedSource {
        path: path.to_path_buf(),
        video,
        audio,
    })
}

fn one_frame(frame: Rational, tb: Rational) -> i64 {
    (f64::from(frame) / f64::from(tb)).round() as i64
}
