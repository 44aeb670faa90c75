//! Turning user arguments into inputs, and probing them.

use std::path::{Path, PathBuf};

use ffmpeg_next as ffmpeg;

use crate::MediaError;

/// File extensions treated as videos when a directory is given.
const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mkv", "mov", "avi", "ts", "mts", "m2ts", "webm", "mpg", "mpeg", "flv", "wmv",
    "3gp", "ogv",
];

/// What kind of input a path is.
#[derive(Clone, Debug, PartialEq)]
pub enum InputKind {
    /// A container file FFmpeg demuxes.
    File,
    /// A MOTChallenge sequence: numbered images in `img1/` and `seqinfo.ini`.
    ImageSequence {
        /// printf-style pattern handed to FFmpeg's image2 demuxer.
        pattern: PathBuf,
        fps: f64,
        start_number: u32,
        length: u32,
    },
}

/// One input of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    /// The path the user named (the file, or the sequence folder).
    pub path: PathBuf,
    pub kind: InputKind,
}

impl InputSpec {
    /// The path FFmpeg opens.
    pub fn open_path(&self) -> &Path {
        match &self.kind {
            InputKind::File => &self.path,
            InputKind::ImageSequence { pattern, .. } => pattern,
        }
    }
}

/// Facts about an input's video stream.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceInfo {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// Seconds; 0 when unknown.
    pub duration: f64,
    /// Frames the container announces; 0 when unknown.
    pub frames_expected: u64,
    pub codec: String,
    pub has_audio: bool,
}

/// Expands user arguments: files stay files; a MOTChallenge folder becomes an
/// image sequence; any other folder is scanned (not recursively) for videos.
pub fn discover_inputs(paths: &[PathBuf]) -> Result<Vec<InputSpec>, MediaError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| MediaError::io(path, e))?;
        if meta.is_dir() {
            if path.join("seqinfo.ini").is_file() || path.join("img1").is_dir() {
                out.push(image_sequence(path)?);
                continue;
            }
            let mut videos: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| MediaError::io(path, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && has_video_extension(p))
                .collect();
            if videos.is_empty() {
                return Err(MediaError::NoVideosInDirectory(path.clone()));
            }
            videos.sort();
            out.extend(videos.into_iter().map(|p| InputSpec {
                path: p,
                kind: InputKind::File,
            }));
        } else {
            if meta.len() == 0 {
                return Err(MediaError::Empty(path.clone()));
            }
            out.push(InputSpec {
                path: path.clone(),
                kind: InputKind::File,
            });
        }
    }
    Ok(out)
}

fn has_video_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn ini_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim())
    })
}

fn image_sequence(dir: &Path) -> Result<InputSpec, MediaError> {
    let bad = |reason: String| MediaError::BadSequence {
        path: dir.to_path_buf(),
        reason,
    };
    let ini = std::fs::read_to_string(dir.join("seqinfo.ini")).unwrap_or_default();
    let im_dir = ini_value(&ini, "imDir").unwrap_or("img1");
    // The images are in a folder of the sequence: a path out of it would
    // read (and, through a server, show) images outside the media roots.
    if !matches!(
        Path::new(im_dir).components().collect::<Vec<_>>()[..],
        [std::path::Component::Normal(_)]
    ) {
        return Err(bad(format!(
            "imDir {im_dir:?} is not a folder name inside the sequence"
        )));
    }
    let ext = ini_value(&ini, "imExt").unwrap_or(".jpg");
    // Also part of FFmpeg's file name pattern, where `%` is special.
    let plain_ext = ext
        .strip_prefix('.')
        .is_some_and(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !plain_ext {
        return Err(bad(format!(
            "imExt {ext:?} is not a file extension like .jpg"
        )));
    }
    let fps: f64 = match ini_value(&ini, "frameRate") {
        Some(v) => v
            .parse()
            .ok()
            .filter(|f: &f64| f.is_finite() && *f > 0.0)
            .ok_or_else(|| bad(format!("frameRate {v:?} is not a positive number")))?,
        None => 30.0,
    };
    let img_dir = dir.join(im_dir);
    let mut numbers: Vec<(u32, usize)> = std::fs::read_dir(&img_dir)
        .map_err(|e| bad(format!("{}: {e}", img_dir.display())))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(ext)?;
            Some((stem.parse().ok()?, stem.len()))
        })
        .collect();
    if numbers.is_empty() {
        return Err(bad(format!(
            "no numbered {ext} images in {}",
            img_dir.display()
        )));
    }
    numbers.sort_unstable();
    let (start, width) = numbers[0];
    let pattern = img_dir.join(format!("%0{width}d{ext}"));
    Ok(InputSpec {
        path: dir.to_path_buf(),
        kind: InputKind::ImageSequence {
            pattern,
            fps,
            start_number: start,
            length: numbers.len() as u32,
        },
    })
}

/// Opens the input with FFmpeg and reads its stream headers. The decoders
/// FFmpeg opens to probe the streams refuse frames over `max_pixels`, so a
/// hostile frame size costs no frame buffer while probing either.
pub(crate) fn open_input(
    spec: &InputSpec,
    max_pixels: u64,
) -> Result<ffmpeg::format::context::Input, MediaError> {
    crate::init();
    let path = &spec.path;
    match &spec.kind {
        InputKind::File => {
            let meta = std::fs::metadata(path).map_err(|e| MediaError::io(path, e))?;
            if meta.is_dir() {
                return Err(MediaError::unreadable(path, "is a directory"));
            }
            if meta.len() == 0 {
                return Err(MediaError::Empty(path.clone()));
            }
            open_format(path, path, ffmpeg::Dictionary::new(), max_pixels)
        }
        InputKind::ImageSequence {
            pattern,
            fps,
            start_number,
            ..
        } => {
            let mut opts = ffmpeg::Dictionary::new();
            opts.set("framerate", &fps.to_string());
            opts.set("start_number", &start_number.to_string());
            open_format(path, pattern, opts, max_pixels)
        }
    }
}

/// `avformat_open_input` + `avformat_find_stream_info` (as
/// `ffmpeg::format::input_with_dictionary`), with `max_pixels` handed to
/// the probing decoders.
fn open_format(
    path: &Path,
    open_path: &Path,
    opts: ffmpeg::Dictionary,
    max_pixels: u64,
) -> Result<ffmpeg::format::context::Input, MediaError> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(open_path.as_os_str().as_bytes())
        .map_err(|_| MediaError::unreadable(path, "path contains a NUL byte"))?;
    let limit =
        std::ffi::CString::new(max_pixels.min(i64::MAX as u64).to_string()).expect("digits only");
    // SAFETY: plain libavformat calls on pointers they return; the context
    // is owned by `Input` as soon as it exists, so it is closed on every
    // path; the option dictionaries are freed here.
    unsafe {
        let mut ps = std::ptr::null_mut();
        let mut fmt_opts = opts.disown();
        let res = ffmpeg::ffi::avformat_open_input(
            &mut ps,
            c_path.as_ptr(),
            std::ptr::null(),
            &mut fmt_opts,
        );
        ffmpeg::ffi::av_dict_free(&mut fmt_opts);
        if res < 0 {
            return Err(MediaError::unreadable(path, ffmpeg::Error::from(res)));
        }
        let ictx = ffmpeg::format::context::Input::wrap(ps);
        // Sizes the container header states are checked before anything is
        // decoded (a probing decoder that refuses a frame leaves 0x0).
        for stream in ictx.streams() {
            let p = stream.parameters();
            let raw = p.as_ptr();
            if (*raw).codec_type == ffmpeg::ffi::AVMediaType::AVMEDIA_TYPE_VIDEO {
                let (w, h) = ((*raw).width.max(0) as u32, (*raw).height.max(0) as u32);
                crate::decode::check_size(path, w, h, max_pixels)?;
            }
        }
        let n = (*ps).nb_streams as usize;
        let mut stream_opts: Vec<*mut ffmpeg::ffi::AVDictionary> = vec![std::ptr::null_mut(); n];
        for d in &mut stream_opts {
            ffmpeg::ffi::av_dict_set(d, c"max_pixels".as_ptr(), limit.as_ptr(), 0);
        }
        let res = ffmpeg::ffi::avformat_find_stream_info(
            ps,
            if n == 0 {
                std::ptr::null_mut()
            } else {
                stream_opts.as_mut_ptr()
            },
        );
        for d in &mut stream_opts {
            ffmpeg::ffi::av_dict_free(d);
        }
        if res < 0 {
            return Err(MediaError::unreadable(path, ffmpeg::Error::from(res)));
        }
        Ok(ictx)
    }
}

pub(crate) fn rational(r: ffmpeg::Rational) -> f64 {
    if r.denominator() == 0 {
        0.0
    } else {
        r.numerator() as f64 / r.denominator() as f64
    }
}

pub(crate) fn describe_streams(ictx: &ffmpeg::format::context::Input) -> String {
    let kinds: Vec<String> = ictx
        .streams()
        .map(|s| format!("{:?}", s.parameters().medium()).to_lowercase())
        .collect();
    if kinds.is_empty() {
        "no streams".into()
    } else {
        format!("streams: {}", kinds.join(", "))
    }
}

pub(crate) fn source_info(
    spec: &InputSpec,
    ictx: &ffmpeg::format::context::Input,
) -> Result<(usize, SourceInfo), MediaError> {
    let stream = ictx
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or_else(|| MediaError::NoVideoStream {
            path: spec.path.clone(),
            streams: describe_streams(ictx),
        })?;
    let params = stream.parameters();
    // SAFETY: `params` wraps the stream's live AVCodecParameters, valid while `ictx` is.
    let (width, height) = unsafe {
        let p = params.as_ptr();
        ((*p).width.max(0) as u32, (*p).height.max(0) as u32)
    };
    let mut fps = rational(stream.avg_frame_rate());
    if !(fps.is_finite() && fps > 0.0) {
        fps = rational(stream.rate());
    }
    if let InputKind::ImageSequence { fps: f, .. } = spec.kind {
        fps = f;
    }
    let tb = rational(stream.time_base());
    let mut duration = if stream.duration() > 0 {
        stream.duration() as f64 * tb
    } else if ictx.duration() > 0 {
        ictx.duration() as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE)
    } else {
        0.0
    };
    let mut frames_expected = stream.frames().max(0) as u64;
    if let InputKind::ImageSequence { length, .. } = spec.kind {
        frames_expected = length as u64;
        duration = length as f64 / fps;
    }
    if frames_expected == 0 && duration > 0.0 && fps > 0.0 {
        frames_expected = (duration * fps).round() as u64;
    }
    let has_audio = ictx
        .streams()
        .any(|s| s.parameters().medium() == ffmpeg::media::Type::Audio);
    Ok((
        stream.index(),
        SourceInfo {
            width,
            height,
            fps,
            duration,
            frames_expected,
            codec: params.id().name().to_string(),
            has_audio,
        },
    ))
}

/// Reads an input's headers without decoding.
///
/// A video whose frames are over [`peregrine_core::DEFAULT_MAX_PIXELS`] is
/// [`MediaError::TooLarge`]; [`probe_limited`] takes another limit.
pub fn probe(spec: &InputSpec) -> Result<SourceInfo, MediaError> {
    probe_limited(spec, peregrine_core::DEFAULT_MAX_PIXELS)
}

/// [`probe`] with the caller's pixel limit: a video whose frames are larger
/// is [`MediaError::TooLarge`], found from the headers before any frame is
/// decoded.
pub fn probe_limited(spec: &InputSpec, max_pixels: u64) -> Result<SourceInfo, MediaError> {
    let ictx = open_input(spec, max_pixels)?;
    source_info(spec, &ictx).map(|(_, info)| info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_values_are_found_case_insensitively() {
        let ini = "[Sequence]\nname=X\nframeRate=7\nimExt=.jpg\n";
        assert_eq!(ini_value(ini, "framerate"), Some("7"));
        assert_eq!(ini_value(ini, "imExt"), Some(".jpg"));
        assert_eq!(ini_value(ini, "imDir"), None);
    }

    /// A MOTChallenge folder with two numbered images and `ini` as its
    /// `seqinfo.ini`, opened as an input.
    fn sequence_with(ini: &str) -> Result<InputSpec, MediaError> {
        let dir = tempfile::tempdir().unwrap();
        let seq = dir.path().join("seq");
        std::fs::create_dir_all(seq.join("img1")).unwrap();
        for n in ["000001.jpg", "000002.jpg"] {
            std::fs::write(seq.join("img1").join(n), b"").unwrap();
        }
        std::fs::write(seq.join("seqinfo.ini"), ini).unwrap();
        let r = discover_inputs(std::slice::from_ref(&seq)).map(|mut v| v.remove(0));
        drop(dir);
        r
    }

    /// Found by the `seqinfo` fuzz target (fuzz/regressions/seqinfo/
    /// image-dir-outside-the-sequence): `imDir` led out of the sequence
    /// folder, so a sequence inside a media root could read images from
    /// anywhere.
    #[test]
    fn seqinfo_image_dir_cannot_leave_the_sequence_folder() {
        for bad in ["../seq/img1", "/etc", "img1/../..", "a/b", ""] {
            let err = sequence_with(&format!("[Sequence]\nimDir={bad}\n")).unwrap_err();
            assert!(err.to_string().contains("imDir"), "{bad}: {err}");
        }
        for bad in [".jp%dg", "jpg", ".", ".j/pg"] {
            let err = sequence_with(&format!("[Sequence]\nimExt={bad}\n")).unwrap_err();
            assert!(err.to_string().contains("imExt"), "{bad}: {err}");
        }
        let ok = sequence_with("[Sequence]\nimDir=img1\nimExt=.jpg\nframeRate=25\n").unwrap();
        assert!(matches!(
            ok.kind,
            InputKind::ImageSequence { length: 2, .. }
        ));
    }

    /// Found by the `seqinfo` fuzz target (fuzz/regressions/seqinfo/
    /// infinite-frame-rate): `frameRate=inf` passed as a positive rate.
    #[test]
    fn seqinfo_infinite_frame_rate_is_refused() {
        for bad in ["inf", "1e400", "NaN", "-3", "0"] {
            let err = sequence_with(&format!("[Sequence]\nframeRate={bad}\n")).unwrap_err();
            assert!(err.to_string().contains("frameRate"), "{bad}: {err}");
        }
    }

    #[test]
    fn directory_without_videos_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
        let err = discover_inputs(&[dir.path().to_path_buf()]).unwrap_err();
        assert!(matches!(err, MediaError::NoVideosInDirectory(_)), "{err}");
        assert!(err.to_string().contains("no video files"));
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.mp4");
        let err = discover_inputs(std::slice::from_ref(&missing)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: file not found", missing.display())
        );
        let empty = dir.path().join("empty.mp4");
        std::fs::write(&empty, b"").unwrap();
        let err = discover_inputs(&[empty]).unwrap_err();
        assert!(
            err.to_string().ends_with("file is empty (0 bytes)"),
            "{err}"
        );
    }
}
