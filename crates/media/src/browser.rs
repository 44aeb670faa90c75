//! Videos for a web browser's `<video>` element: whether Chromium plays a
//! file as it is, where its frames fall on the browser's clock, and an
//! H.264 MP4 copy for files it does not play.
//!
//! The time contract: a run stores each frame's time `t` as its
//! presentation timestamp minus the video stream's start time. Chromium
//! does not rebase a positive start time (the HTML media timeline keeps
//! it) and shifts a negative one to zero, so a frame of the original file
//! shows at `currentTime = t + t_offset` with `t_offset = video start -
//! min(0, container start)`. The copy made here starts its first frame at
//! 0 and gives every frame its stored time, so its `t_offset` is 0.

use std::path::{Path, PathBuf};

use ffmpeg_next as ffmpeg;
use ffmpeg_next::{codec, ffi, format, frame, software::scaling, Dictionary, Packet, Rational};

use crate::encode::VideoEncoderConfig;
use crate::error::MediaError;
use crate::input::{open_input, rational, source_info, InputKind, InputSpec};
use crate::mux::{add_stream, wants_global_header, write_encoded};
use crate::packet::read_packet;

/// What a browser makes of a file.
#[derive(Clone, Debug, PartialEq)]
pub struct BrowserCheck {
    /// Chromium plays it as it is.
    pub playable: bool,
    /// Why not, when it does not (for logs and answers).
    pub reason: Option<String>,
    /// Seconds between a stored frame time and the original's
    /// `currentTime` for that frame (see the module's documentation).
    pub t_offset: f64,
    pub width: u32,
    pub height: u32,
    /// The container's MIME type when played as it is.
    pub mime: &'static str,
}

/// Containers, video codecs and pixel formats Chromium plays (with the
/// codecs its builds carry: H.264, VP8, VP9, AV1), and the audio codecs it
/// decodes (a file with another audio codec may fail to play at all).
fn verdict(
    format_name: &str,
    extension: &str,
    video: codec::Id,
    pixel: format::Pixel,
    audio: &[codec::Id],
) -> Result<&'static str, String> {
    let mp4 = format_name.split(',').any(|f| f == "mp4" || f == "mov");
    let webm = format_name.contains("webm") && extension.eq_ignore_ascii_case("webm");
    let (mime, codecs): (&str, &[codec::Id]) = if mp4 {
        (
            "video/mp4",
            &[codec::Id::H264, codec::Id::VP9, codec::Id::AV1],
        )
    } else if webm {
        (
            "video/webm",
            &[codec::Id::VP8, codec::Id::VP9, codec::Id::AV1],
        )
    } else {
        return Err(format!("container {format_name} is not MP4, MOV or WebM"));
    };
    if !codecs.contains(&video) {
        return Err(format!("video codec {} in {mime}", video.name()));
    }
    if !matches!(pixel, format::Pixel::YUV420P | format::Pixel::YUVJ420P) {
        return Err(format!("pixel format {pixel:?} is not 8-bit 4:2:0"));
    }
    let playable_audio = [
        codec::Id::AAC,
        codec::Id::MP3,
        codec::Id::OPUS,
        codec::Id::VORBIS,
        codec::Id::FLAC,
    ];
    if let Some(a) = audio.iter().find(|a| !playable_audio.contains(a)) {
        return Err(format!("audio codec {}", a.name()));
    }
    Ok(mime)
}

/// Probes `path` (headers only) for [`BrowserCheck`].
pub fn browser_check(path: &Path, max_pixels: u64) -> Result<BrowserCheck, MediaError> {
    crate::init();
    let spec = InputSpec {
        path: path.to_path_buf(),
        kind: InputKind::File,
    };
    let ictx = open_input(&spec, max_pixels)?;
    let (vidx, info) = source_info(&spec, &ictx)?;
    let st = ictx.stream(vidx).expect("stream index from best()");
    let tb = rational(st.time_base());
    let v_start = if st.start_time() == ffi::AV_NOPTS_VALUE {
        0.0
    } else {
        st.start_time() as f64 * tb
    };
    // SAFETY: `ictx` wraps a valid, opened AVFormatContext.
    let c_start_raw = unsafe { (*ictx.as_ptr()).start_time };
    let c_start = if c_start_raw == ffi::AV_NOPTS_VALUE {
        0.0
    } else {
        c_start_raw as f64 / f64::from(ffi::AV_TIME_BASE)
    };
    let params = st.parameters();
    // SAFETY: `params` wraps the stream's AVCodecParameters, valid while
    // `ictx` is; `format` holds an AVPixelFormat for a video stream.
    let pixel: format::Pixel = unsafe {
        let raw: ffi::AVPixelFormat = std::mem::transmute((*params.as_ptr()).format);
        raw.into()
    };
    let audio: Vec<codec::Id> = ictx
        .streams()
        .filter(|s| s.parameters().medium() == ffmpeg::media::Type::Audio)
        .map(|s| s.parameters().id())
        .collect();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let v = verdict(ictx.format().name(), ext, params.id(), pixel, &audio);
    Ok(BrowserCheck {
        playable: v.is_ok(),
        reason: v.as_ref().err().cloned(),
        t_offset: v_start - c_start.min(0.0),
        width: info.width,
        height: info.height,
        mime: v.unwrap_or("video/mp4"),
    })
}

/// What [`transcode_for_browser`] wrote.
#[derive(Clone, Debug, Default)]
pub struct TranscodeStats {
    pub frames: u64,
    /// Frames left out because their timestamp did not advance.
    pub skipped: u64,
    pub width: u32,
    pub height: u32,
}

fn fail(path: &Path, what: &str, e: impl std::fmt::Display) -> MediaError {
    MediaError::Output {
        path: path.to_path_buf(),
        reason: format!("{what}: {e}"),
    }
}

/// Writes the video of `spec` (a file or an image sequence) as an H.264 (yuv420p, no B-frames) MP4 with its
/// index first (`faststart`) at `target`: every decoded frame at its
/// stored time (presentation timestamp minus the stream's start, so the
/// first frame is at 0), sizes rounded down to even, no audio. Written to a
/// temporary name beside `target` and renamed when complete.
pub fn transcode_for_browser(
    spec: &InputSpec,
    target: &Path,
    max_pixels: u64,
    threads: usize,
) -> Result<TranscodeStats, MediaError> {
    crate::init();
    let input = spec.path.as_path();
    let spec = spec.clone();
    let mut ictx = open_input(&spec, max_pixels)?;
    let (vidx, info) = source_info(&spec, &ictx)?;
    crate::decode::check_size(input, info.width, info.height, max_pixels)?;
    let ist = ictx.stream(vidx).expect("video stream");
    let tb = ist.time_base();
    let start = if ist.start_time() == ffi::AV_NOPTS_VALUE {
        0
    } else {
        ist.start_time()
    };
    let mut rate = ist.avg_frame_rate();
    if rate.numerator() <= 0 {
        rate = ist.rate();
    }
    if rate.numerator() <= 0 || rate.denominator() <= 0 {
        rate = Rational(25, 1);
    }
    let mut dec = codec::context::Context::from_parameters(ist.parameters())
        .and_then(|mut c| {
            // SAFETY: an unopened context; FFmpeg reads the field on open.
            unsafe { (*c.as_mut_ptr()).max_pixels = max_pixels as i64 };
            c.set_threading(ffmpeg::codec::threading::Config {
                kind: ffmpeg::codec::threading::Type::Frame,
                count: threads,
                ..Default::default()
            });
            c.decoder().video()
        })
        .map_err(|e| MediaError::Decoder {
            path: input.to_path_buf(),
            codec: info.codec.clone(),
            reason: e.to_string(),
        })?;
    let (w, h) = (crate::even_size(info.width), crate::even_size(info.height));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = target.with_file_name(format!(".{name}.partial.mp4"));
    let result = (|| -> Result<TranscodeStats, MediaError> {
        let mut octx = format::output_as(&tmp, "mp4").map_err(|e| fail(target, "create", e))?;
        let threads_s = threads.max(1);
        let mut enc = VideoEncoderConfig {
            global_header: wants_global_header(&octx),
            max_b_frames: Some(0),
            threads: Some(threads_s),
            profile: Some("high"),
            ..VideoEncoderConfig::new("libx264", (w, h), tb, rate, "veryfast", 23)
        }
        .open()
        .map_err(|e| fail(target, "H.264 encoder", e))?;
        {
            let mut ost = add_stream(&mut octx, &enc).map_err(|e| fail(target, "stream", e))?;
            ost.set_time_base(tb);
            ost.set_avg_frame_rate(rate);
        }
        let mut opts = Dictionary::new();
        opts.set("movflags", "+faststart");
        octx.write_header_with(opts)
            .map_err(|e| fail(target, "write", e))?;
        let mut sws: Option<scaling::Context> = None;
        let mut yuv = frame::Video::new(format::Pixel::YUV420P, w, h);
        let mut decoded = frame::Video::empty();
        let mut stats = TranscodeStats {
            width: w,
            height: h,
            ..Default::default()
        };
        let mut last: Option<i64> = None;
        // One frame's duration in `tb`, for frames without a timestamp.
        let step = (tb.denominator() as f64 * rate.denominator() as f64
            / (tb.numerator().max(1) as f64 * rate.numerator() as f64))
            .max(1.0) as i64;
        let mut handle = |decoded: &frame::Video,
                          enc: &mut ffmpeg::encoder::Video,
                          octx: &mut format::context::Output,
                          stats: &mut TranscodeStats|
         -> Result<(), MediaError> {
            // As the analysis times it: without a timestamp, a frame's
            // duration after the one before.
            let pts = decoded
                .timestamp()
                .map(|ts| ts - start)
                .unwrap_or_else(|| last.map_or(0, |l| l + step));
            if last.is_some_and(|l| pts <= l) {
                stats.skipped += 1;
                return Ok(());
            }
            last = Some(pts);
            let s = match &mut sws {
                Some(s) => s,
                None => sws.insert(
                    scaling::Context::get(
                        decoded.format(),
                        decoded.width(),
                        decoded.height(),
                        format::Pixel::YUV420P,
                        w,
                        h,
                        scaling::Flags::BILINEAR,
                    )
                    .map_err(|e| fail(input, "scaler", e))?,
                ),
            };
            if decoded.width() != s.input().width
                || decoded.height() != s.input().height
                || decoded.format() != s.input().format
            {
                *s = scaling::Context::get(
                    decoded.format(),
                    decoded.width(),
                    decoded.height(),
                    format::Pixel::YUV420P,
                    w,
                    h,
                    scaling::Flags::BILINEAR,
                )
                .map_err(|e| fail(input, "scaler", e))?;
            }
            s.run(decoded, &mut yuv)
                .map_err(|e| fail(input, "scaler", e))?;
            yuv.set_pts(Some(pts));
            enc.send_frame(&yuv)
                .map_err(|e| fail(target, "encoder", e))?;
            write_encoded(enc, tb, octx, 0).map_err(|e| fail(target, "write", e))?;
            stats.frames += 1;
            Ok(())
        };
        let mut pkt = Packet::empty();
        loop {
            match read_packet(&mut pkt, &mut ictx) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => break,
                Err(ffmpeg::Error::InvalidData) => continue,
                Err(_) => break,
            }
            if pkt.stream() != vidx {
                continue;
            }
            if dec.send_packet(&pkt).is_err() {
                continue;
            }
            while dec.receive_frame(&mut decoded).is_ok() {
                handle(&decoded, &mut enc, &mut octx, &mut stats)?;
            }
        }
        let _ = dec.send_eof();
        while dec.receive_frame(&mut decoded).is_ok() {
            handle(&decoded, &mut enc, &mut octx, &mut stats)?;
        }
        enc.send_eof().map_err(|e| fail(target, "encoder", e))?;
        write_encoded(&mut enc, tb, &mut octx, 0).map_err(|e| fail(target, "write", e))?;
        octx.write_trailer().map_err(|e| fail(target, "write", e))?;
        if stats.frames == 0 {
            return Err(MediaError::NoFrames {
                path: input.to_path_buf(),
                reason: "no frame decoded".into(),
            });
        }
        Ok(stats)
    })();
    match result {
        Ok(stats) => {
            std::fs::rename(&tmp, target).map_err(|e| MediaError::io(target, e))?;
            Ok(stats)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chromium_plays_h264_mp4_and_vp9_webm_only() {
        let mp4 = "mov,mp4,m4a,3gp,3g2,mj2";
        let yuv = format::Pixel::YUV420P;
        assert_eq!(
            verdict(mp4, "mp4", codec::Id::H264, yuv, &[codec::Id::AAC]),
            Ok("video/mp4")
        );
        assert_eq!(
            verdict(
                "matroska,webm",
                "webm",
                codec::Id::VP9,
                yuv,
                &[codec::Id::OPUS]
            ),
            Ok("video/webm")
        );
        for (f, ext, c, p, a) in [
            ("avi", "avi", codec::Id::MPEG4, yuv, vec![]),
            (mp4, "mp4", codec::Id::MPEG4, yuv, vec![]),
            (mp4, "mp4", codec::Id::H264, format::Pixel::YUV422P, vec![]),
            (
                mp4,
                "mp4",
                codec::Id::H264,
                format::Pixel::YUV420P10LE,
                vec![],
            ),
            (mp4, "mp4", codec::Id::H264, yuv, vec![codec::Id::AC3]),
            ("matroska,webm", "mkv", codec::Id::H264, yuv, vec![]),
            ("matroska,webm", "webm", codec::Id::H264, yuv, vec![]),
        ] {
            assert!(verdict(f, ext, c, p, &a).is_err(), "{f} {c:?} {p:?} {a:?}");
        }
    }
}
