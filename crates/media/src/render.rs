//! Annotated video and stills: decode the source again, draw, encode.
//!
//! A key design decision: rendering is a single demux loop over the source,
//! so the audio stream is copied packet by packet, interleaved with the
//! re-encoded video, without decoding audio or holding more than the codec
//! buffers and one RGB frame in memory.

use std::path::{Path, PathBuf};

use ffmpeg_next as ffmpeg;
use ffmpeg_next::{codec, encoder, format, frame, software::scaling, Packet, Rational};

use crate::annotate::{draw, Annotation, RgbImage};
use crate::input::{open_input, source_info};
use crate::{
    add_stream, read_packet, wants_global_header, write_encoded, InputKind, InputSpec, MediaError,
    VideoEncoderConfig,
};

/// What to produce.
#[derive(Clone, Debug)]
pub struct RenderOptions {
    /// Annotated video (H.264, source size and frame rate, audio copied).
    pub video: Option<PathBuf>,
    /// Write annotated JPEG stills at these times (seconds) into this folder.
    pub snapshots: Option<(PathBuf, Vec<f64>)>,
    /// Quality: x264 CRF, or NVENC CQ.
    pub crf: u32,
    pub preset: String,
    /// H.264 encoder: `libx264`, or `h264_nvenc` on an NVIDIA GPU.
    pub codec: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            video: None,
            snapshots: None,
            crf: 20,
            preset: "veryfast".into(),
            codec: "libx264".into(),
        }
    }
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RenderStats {
    pub frames: u64,
    pub audio_copied: bool,
    pub snapshots: Vec<PathBuf>,
}

fn fail(path: &Path, what: &str, e: impl std::fmt::Display) -> MediaError {
    MediaError::Unreadable {
        path: path.to_path_buf(),
        reason: format!("{what}: {e}"),
    }
}

/// Converts `frame` to packed RGB24 in `rgb` (scaler created on first use
/// and kept) and draws `annotations` on it.
fn annotate_into(
    path: &Path,
    frame: &frame::Video,
    sws: &mut Option<scaling::Context>,
    rgb: &mut frame::Video,
    annotations: &[Annotation],
) -> Result<(), MediaError> {
    let (w, h) = (frame.width(), frame.height());
    let sws = match sws {
        Some(s) => s,
        None => sws.insert(
            scaling::Context::get(
                frame.format(),
                w,
                h,
                format::Pixel::RGB24,
                w,
                h,
                scaling::Flags::BILINEAR,
            )
            .map_err(|e| fail(path, "scaler", e))?,
        ),
    };
    sws.run(frame, rgb).map_err(|e| fail(path, "scaler", e))?;
    let stride = rgb.stride(0);
    draw(
        &mut RgbImage {
            data: rgb.data_mut(0),
            width: w,
            height: h,
            stride,
        },
        annotations,
    );
    Ok(())
}

/// Encodes packed RGB24 as a JPEG with FFmpeg's MJPEG encoder.
pub fn encode_jpeg(rgb: &frame::Video, quality: u32) -> Result<Vec<u8>, ffmpeg::Error> {
    crate::init();
    let codec = encoder::find(codec::Id::MJPEG).ok_or(ffmpeg::Error::EncoderNotFound)?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()?;
    enc.set_width(rgb.width());
    enc.set_height(rgb.height());
    enc.set_format(format::Pixel::YUVJ420P);
    enc.set_time_base(Rational(1, 25));
    enc.set_flags(codec::Flags::QSCALE);
    let lambda = (quality.clamp(2, 31) * 118) as i32; // FF_QP2LAMBDA
    enc.set_global_quality(lambda);
    let mut enc = enc.open()?;
    let mut yuv = frame::Video::new(format::Pixel::YUVJ420P, rgb.width(), rgb.height());
    let mut sws = scaling::Context::get(
        format::Pixel::RGB24,
        rgb.width(),
        rgb.height(),
        format::Pixel::YUVJ420P,
        rgb.width(),
        rgb.height(),
        scaling::Flags::BILINEAR,
    )?;
    sws.run(rgb, &mut yuv)?;
    yuv.set_pts(Some(0));
    // SAFETY: plain field on a frame we own; MJPEG needs a lambda per frame.
    unsafe { (*yuv.as_mut_ptr()).quality = lambda };
    enc.send_frame(&yuv)?;
    enc.send_eof()?;
    let mut pkt = Packet::empty();
    enc.receive_packet(&mut pkt)?;
    Ok(pkt.data().map(<[u8]>::to_vec).unwrap_or_default())
}

struct VideoOut {
    octx: format::context::Output,
    enc: encoder::Video,
    sws: Option<scaling::Context>,
    yuv: frame::Video,
    time_base: Rational,
    audio: Option<(usize, usize, Rational)>,
    tmp: PathBuf,
    target: PathBuf,
}

impl VideoOut {
    fn drain(&mut self) -> Result<(), ffmpeg::Error> {
        write_encoded(&mut self.enc, self.time_base, &mut self.octx, 0)
    }
}

fn open_video_out(
    target: &Path,
    ist: &format::stream::Stream,
    audio: Option<&format::stream::Stream>,
    width: u32,
    height: u32,
    opts: &RenderOptions,
) -> Result<VideoOut, MediaError> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = target.with_file_name(format!(
        ".{name}.partial.{}",
        target.extension().and_then(|e| e.to_str()).unwrap_or("mp4")
    ));
    let make = |with_audio: bool| -> Result<VideoOut, ffmpeg::Error> {
        let mut octx = format::output(&tmp)?;
        let tb = ist.time_base();
        let mut rate = ist.avg_frame_rate();
        if rate.numerator() <= 0 {
            rate = ist.rate();
        }
        let enc = VideoEncoderConfig {
            global_header: wants_global_header(&octx),
            ..VideoEncoderConfig::new(
                &opts.codec,
                (width, height),
                tb,
                rate,
                &opts.preset,
                opts.crf,
            )
        }
        .open()?;
        let mut ost = add_stream(&mut octx, &enc)?;
        ost.set_time_base(tb);
        ost.set_avg_frame_rate(rate);
        let mut audio_map = None;
        if let (true, Some(a)) = (with_audio, audio) {
            add_stream(&mut octx, a.parameters())?;
            audio_map = Some((a.index(), 1usize, a.time_base()));
        }
        octx.write_header()?;
        Ok(VideoOut {
            octx,
            enc,
            sws: None,
            yuv: frame::Video::new(format::Pixel::YUV420P, width, height),
            time_base: tb,
            audio: audio_map,
            tmp: tmp.clone(),
            target: target.to_path_buf(),
        })
    };
    // An audio codec the container cannot hold (PCM in MP4, say) must not
    // stop the render: fall back to video only.
    make(true)
        .or_else(|_| {
            let _ = std::fs::remove_file(&tmp);
            make(false)
        })
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            let hint = if opts.codec.contains("nvenc") {
                " (NVENC needs an NVIDIA GPU and its driver; --codec libx264 encodes on the CPU)"
            } else {
                ""
            };
            MediaError::Output {
                path: target.to_path_buf(),
                reason: format!("cannot create the video with {}: {e}{hint}", opts.codec),
            }
        })
}

/// Decodes `input`, asks `annotate(frame_index, t, &mut list)` what to draw
/// on each frame, and writes the annotated video and/or stills.
pub fn render(
    input: &InputSpec,
    opts: &RenderOptions,
    mut annotate: impl FnMut(u64, f64, &mut Vec<Annotation>),
) -> Result<RenderStats, MediaError> {
    let path = input.path.clone();
    let max_pixels = peregrine_core::DEFAULT_MAX_PIXELS;
    let mut ictx = open_input(input, max_pixels)?;
    let (vidx, info) = source_info(input, &ictx)?;
    crate::decode::check_size(&input.path, info.width, info.height, max_pixels)?;
    let ist = ictx.stream(vidx).expect("video stream");
    let ist_tb = ist.time_base();
    let start_pts = if ist.start_time() == ffmpeg::ffi::AV_NOPTS_VALUE {
        0
    } else {
        ist.start_time()
    };
    let tb = crate::input::rational(ist_tb);
    let mut dec = codec::context::Context::from_parameters(ist.parameters())
        .and_then(|mut c| {
            // SAFETY: an unopened context; FFmpeg reads the field on open.
            unsafe { (*c.as_mut_ptr()).max_pixels = max_pixels as i64 };
            c.decoder().video()
        })
        .map_err(|e| fail(&path, "cannot open decoder", e))?;
    let audio_stream = match input.kind {
        InputKind::File => ictx.streams().best(ffmpeg::media::Type::Audio),
        _ => None,
    };
    let (w, h) = (info.width, info.height);
    let mut out = match &opts.video {
        Some(target) => Some(open_video_out(
            target,
            &ist,
            audio_stream.as_ref(),
            w,
            h,
            opts,
        )?),
        None => None,
    };
    let mut snapshot_times: Vec<f64> = opts
        .snapshots
        .as_ref()
        .map(|(_, t)| t.clone())
        .unwrap_or_default();
    snapshot_times.sort_by(f64::total_cmp);
    snapshot_times.reverse(); // pop() gives the earliest
    if let Some((dir, _)) = &opts.snapshots {
        std::fs::create_dir_all(dir).map_err(|e| MediaError::io(dir, e))?;
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "frame".into());
    let mut stats = RenderStats {
        audio_copied: out.as_ref().is_some_and(|o| o.audio.is_some()),
        ..Default::default()
    };
    let mut rgb = frame::Video::new(format::Pixel::RGB24, w, h);
    let mut to_rgb: Option<scaling::Context> = None;
    let mut decoded = frame::Video::empty();
    let mut anns = Vec::new();
    // Frame indices as the analysis gave them (see `Timeline`): the
    // counter of damage reports tells it where frames were lost.
    let mut timeline = crate::timeline::Timeline::new(info.fps, false);
    let mut damage = 0u64;
    let mut damage_seen = 0u64;
    let mut index = 0u64;

    let mut handle_frame = |decoded: &frame::Video,
                            out: &mut Option<VideoOut>,
                            stats: &mut RenderStats,
                            index: &mut u64,
                            damage: u64,
                            snapshot_times: &mut Vec<f64>|
     -> Result<(), MediaError> {
        let ts = decoded.timestamp().map(|ts| (ts - start_pts) as f64 * tb);
        *index = timeline.place(ts, damage != damage_seen).index;
        damage_seen = damage;
        let t = ts.unwrap_or(*index as f64 / info.fps.max(1e-9));
        let snapshot_due = snapshot_times
            .last()
            .is_some_and(|&s| t + 0.5 / info.fps.max(1e-9) >= s);
        if out.is_none() && !snapshot_due {
            return Ok(());
        }
        anns.clear();
        annotate(*index, t, &mut anns);
        annotate_into(&path, decoded, &mut to_rgb, &mut rgb, &anns)?;
        if snapshot_due {
            let at = snapshot_times.pop().unwrap_or(t);
            if let Some((dir, _)) = &opts.snapshots {
                let jpg = encode_jpeg(&rgb, 3).map_err(|e| fail(&path, "JPEG encoder", e))?;
                let file = dir.join(format!("{stem}_{at:.2}s.jpg"));
                std::fs::write(&file, jpg).map_err(|e| MediaError::io(&file, e))?;
                stats.snapshots.push(file);
            }
        }
        if let Some(o) = out {
            let sws = match &mut o.sws {
                Some(s) => s,
                None => o.sws.insert(
                    scaling::Context::get(
                        format::Pixel::RGB24,
                        w,
                        h,
                        format::Pixel::YUV420P,
                        w,
                        h,
                        scaling::Flags::BILINEAR,
                    )
                    .map_err(|e| fail(&path, "scaler", e))?,
                ),
            };
            sws.run(&rgb, &mut o.yuv)
                .map_err(|e| fail(&path, "scaler", e))?;
            o.yuv.set_pts(decoded.timestamp());
            o.enc
                .send_frame(&o.yuv)
                .map_err(|e| fail(&o.target, "encoder", e))?;
            o.drain().map_err(|e| fail(&o.target, "write", e))?;
        }
        stats.frames += 1;
        Ok(())
    };

    let result = (|| -> Result<(), MediaError> {
        let mut pkt = Packet::empty();
        loop {
            match read_packet(&mut pkt, &mut ictx) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => break,
                Err(ffmpeg::Error::InvalidData) => {
                    damage += 1;
                    continue;
                }
                Err(_) => break,
            }
            let si = pkt.stream();
            if si == vidx {
                if dec.send_packet(&pkt).is_err() {
                    damage += 1;
                    continue;
                }
                while dec.receive_frame(&mut decoded).is_ok() {
                    handle_frame(
                        &decoded,
                        &mut out,
                        &mut stats,
                        &mut index,
                        damage,
                        &mut snapshot_times,
                    )?;
                }
                if out.is_none() && snapshot_times.is_empty() {
                    break; // stills only, all written
                }
            } else if let Some(o) = &mut out {
                if let Some((ai, ao, atb)) = o.audio {
                    if si == ai {
                        let otb = o.octx.stream(ao).map(|s| s.time_base()).unwrap_or(atb);
                        pkt.rescale_ts(atb, otb);
                        pkt.set_position(-1);
                        pkt.set_stream(ao);
                        pkt.write_interleaved(&mut o.octx)
                            .map_err(|e| fail(&o.target, "write", e))?;
                    }
                }
            }
        }
        let _ = dec.send_eof();
        while dec.receive_frame(&mut decoded).is_ok() {
            handle_frame(
                &decoded,
                &mut out,
                &mut stats,
                &mut index,
                damage,
                &mut snapshot_times,
            )?;
        }
        if let Some(o) = &mut out {
            o.enc
                .send_eof()
                .map_err(|e| fail(&o.target, "encoder", e))?;
            o.drain().map_err(|e| fail(&o.target, "write", e))?;
            o.octx
                .write_trailer()
                .map_err(|e| fail(&o.target, "write", e))?;
        }
        Ok(())
    })();
    if let Some(o) = out.take() {
        let (tmp, target) = (o.tmp.clone(), o.target.clone());
        drop(o);
        match &result {
            Ok(()) => std::fs::rename(&tmp, &target).map_err(|e| MediaError::io(&target, e))?,
            Err(_) => {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
    result.map(|()| stats)
}

/// Frame `frame_index` of a video, annotated, as a JPEG. Seeks to the
/// nearest keyframe before it, so the cost does not grow with the position.
pub fn annotated_frame_jpeg(
    input: &InputSpec,
    frame_index: u64,
    annotations: &[Annotation],
) -> Result<Vec<u8>, MediaError> {
    let path = input.path.clone();
    let rgb = annotated_frame(input, frame_index, annotations)?;
    encode_jpeg(&rgb, 3).map_err(|e| fail(&path, "JPEG encoder", e))
}

/// Frame `frame_index` of a video as packed RGB24 (`width * 3` bytes a
/// row): the background of heat maps.
pub fn frame_rgb(input: &InputSpec, frame_index: u64) -> Result<(u32, u32, Vec<u8>), MediaError> {
    let rgb = annotated_frame(input, frame_index, &[])?;
    let (w, h) = (rgb.width(), rgb.height());
    let stride = rgb.stride(0);
    let row = w as usize * 3;
    let data = rgb.data(0);
    let mut out = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        out.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    Ok((w, h, out))
}

/// Encodes packed RGB24 (`width * 3` bytes a row) as a PNG with FFmpeg's
/// PNG encoder.
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, ffmpeg::Error> {
    crate::init();
    let codec = encoder::find(codec::Id::PNG).ok_or(ffmpeg::Error::EncoderNotFound)?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()?;
    enc.set_width(width);
    enc.set_height(height);
    enc.set_format(format::Pixel::RGB24);
    enc.set_time_base(Rational(1, 25));
    let mut enc = enc.open()?;
    let mut f = frame::Video::new(format::Pixel::RGB24, width, height);
    let stride = f.stride(0);
    let row = width as usize * 3;
    let data = f.data_mut(0);
    for y in 0..height as usize {
        data[y * stride..y * stride + row].copy_from_slice(&rgb[y * row..(y + 1) * row]);
    }
    f.set_pts(Some(0));
    enc.send_frame(&f)?;
    enc.send_eof()?;
    let mut pkt = Packet::empty();
    enc.receive_packet(&mut pkt)?;
    Ok(pkt.data().map(<[u8]>::to_vec).unwrap_or_default())
}

fn annotated_frame(
    input: &InputSpec,
    frame_index: u64,
    annotations: &[Annotation],
) -> Result<frame::Video, MediaError> {
    let path = input.path.clone();
    let mut dec = crate::Decoder::open(
        input,
        &crate::DecoderOptions {
            sampling: crate::Sampling {
                every: 1,
                fps: None,
                start: None,
                end: None,
            },
            ..Default::default()
        },
    )?;
    let fps = dec.info().fps.max(1e-9);
    let target_t = frame_index as f64 / fps;
    if target_t > 1.0 {
        // Reopen with a start time so the decoder seeks; indices then come
        // from timestamps.
        dec = crate::Decoder::open(
            input,
            &crate::DecoderOptions {
                sampling: crate::Sampling {
                    every: 1,
                    fps: None,
                    start: Some((target_t - 0.5 / fps).max(0.0)),
                    end: None,
                },
                ..Default::default()
            },
        )?;
    }
    let mut f = frame::Video::empty();
    let mut found = false;
    while let Some(meta) = dec.next_frame(&mut f)? {
        if meta.index >= frame_index {
            found = true;
            break;
        }
    }
    if !found {
        return Err(MediaError::NoFrames {
            path,
            reason: format!("frame {frame_index} is past the end"),
        });
    }
    let (w, h) = (f.width(), f.height());
    let mut rgb = frame::Video::new(format::Pixel::RGB24, w, h);
    annotate_into(&path, &f, &mut None, &mut rgb, annotations)?;
    Ok(rgb)
}
