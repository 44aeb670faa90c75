//! Video bytes through Peregrine's own media path: discovery, probing with
//! the pixel limit, opening the decoder, decoding with the run's sampling,
//! letterboxing into a model canvas, and the run status the pipeline gives
//! the decode (FFmpeg's internals are fuzzed upstream; this checks what
//! Peregrine does with what FFmpeg says).

use std::io::Write;
use std::path::{Path, PathBuf};

use peregrine_core::{CanvasLayout, ChannelOrder, ResizeMode};
use peregrine_media::ffmpeg::frame::Video;
use peregrine_media::{
    Canvas, Decoder, DecoderOptions, InputKind, InputSpec, LetterboxScaler, MediaError,
};
use peregrine_store::RunStatus;

/// The pixel limit of fuzzed inputs: a hostile header must be refused
/// before any frame buffer of its size exists.
pub const MAX_PIXELS: u64 = 1280 * 720;
/// Frames decoded per input at most (the rest adds time, not coverage).
const MAX_FRAMES: usize = 12;
/// Container hints, chosen by the selector byte: FFmpeg weighs the
/// extension when it probes.
const EXTENSIONS: &[&str] = &["mp4", "avi", "mkv", "ts", "mov", "bin"];

/// The selector byte that gives a file the extension `ext`.
pub fn extension_selector(ext: &str) -> u8 {
    EXTENSIONS
        .iter()
        .position(|e| e.eq_ignore_ascii_case(ext))
        .unwrap_or(EXTENSIONS.len() - 1) as u8
}

/// A scratch folder for this process (in memory where there is
/// `/dev/shm`).
fn scratch() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("scratch folder")
    })
    .path()
}

fn write(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::File::create(path).expect("scratch file");
    f.write_all(bytes).expect("scratch write");
}

/// An error names its input (every media error is one line: the path, then
/// the cause).
fn check_error(path: &Path, e: &MediaError) {
    let msg = e.to_string();
    assert!(
        msg.starts_with(&path.display().to_string()) && !msg.contains('\n'),
        "error does not name {}: {msg:?}",
        path.display()
    );
}

/// Decodes `spec` as an analysis does: no panic, frames within the pixel
/// limit and of the probed size, each letterboxed into a YOLOX canvas; the
/// run's outcome is complete, partial (what was lost said) or failed with
/// a one-line reason naming the input.
fn decode(spec: &InputSpec) {
    let path = spec.path.clone();
    let info = match peregrine_media::probe_limited(spec, MAX_PIXELS) {
        Ok(info) => info,
        Err(e) => {
            check_error(&path, &e);
            return;
        }
    };
    assert!(info.width as u64 * info.height as u64 <= MAX_PIXELS);
    let opts = DecoderOptions {
        threads: 1,
        max_pixels: Some(MAX_PIXELS),
        ..Default::default()
    };
    let layout = CanvasLayout {
        width: 128,
        height: 128,
        order: ChannelOrder::Bgr,
        resize: ResizeMode::LetterboxTopLeft { pad: 114 },
    };
    let result = match Decoder::open(spec, &opts) {
        Err(e) => Err(e),
        Ok(mut d) => {
            let mut frame = Video::empty();
            let mut scaler = LetterboxScaler::new(layout);
            let mut canvas = Canvas::new(layout.width, layout.height);
            let mut error = None;
            for _ in 0..MAX_FRAMES {
                match d.next_frame(&mut frame) {
                    Ok(Some(_meta)) => {
                        let (w, h) = (frame.width(), frame.height());
                        assert!(
                            w as u64 * h as u64 <= MAX_PIXELS,
                            "a {w}x{h} frame passed the limit"
                        );
                        if let Err(e) = scaler.run(&frame, &mut canvas) {
                            check_error(&path, &e);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            match error {
                Some(e) => Err(e),
                None => Ok(d.stats().clone()),
            }
        }
    };
    if let Err(e) = &result {
        check_error(&path, e);
    }
    let (status, why) = peregrine_pipeline::decode_outcome(&result, None);
    match status {
        RunStatus::Complete => assert!(why.is_none()),
        RunStatus::Partial | RunStatus::Failed => {
            let why = why.unwrap_or_default();
            assert!(
                !why.is_empty() && !why.contains('\n'),
                "{status:?} without a one-line reason: {why:?}"
            );
        }
        other => panic!("decoding alone gave {other:?}"),
    }
}

/// Video bytes (after a selector byte choosing the file extension).
pub fn video(data: &[u8]) {
    let Some((sel, bytes)) = crate::split_selector(data) else {
        return;
    };
    let ext = EXTENSIONS[sel as usize % EXTENSIONS.len()];
    let path = scratch().join(format!("input.{ext}"));
    write(&path, bytes);
    let spec = InputSpec {
        path: path.clone(),
        kind: InputKind::File,
    };
    decode(&spec);
    // What `assemble` reads of a source: its streams and durations.
    if let Err(e) = peregrine_media::scan(&path) {
        check_error(&path, &e);
    }
}

/// `seqinfo.ini` of a MOTChallenge folder opened as an input: the image
/// sequence's frame rate is positive and finite, its images under the
/// folder. The folder's `img1/` holds two (empty) numbered images.
pub fn image_sequence_ini(text: &str) {
    let dir: PathBuf = scratch().join("seq");
    let img = dir.join("img1");
    if !img.is_dir() {
        std::fs::create_dir_all(&img).expect("scratch sequence");
        write(&img.join("000001.jpg"), b"");
        write(&img.join("000002.jpg"), b"");
    }
    write(&dir.join("seqinfo.ini"), text.as_bytes());
    match peregrine_media::discover_inputs(std::slice::from_ref(&dir)) {
        Ok(specs) => {
            for s in specs {
                if let InputKind::ImageSequence {
                    pattern,
                    fps,
                    length,
                    ..
                } = &s.kind
                {
                    assert!(fps.is_finite() && *fps > 0.0, "frame rate {fps}");
                    assert!(*length >= 1);
                    let inside = pattern.strip_prefix(&dir).is_ok_and(|rel| {
                        rel.components()
                            .all(|c| matches!(c, std::path::Component::Normal(_)))
                    });
                    assert!(
                        inside,
                        "images at {} are outside the sequence folder",
                        pattern.display()
                    );
                }
            }
        }
        Err(e) => check_error(&dir, &e),
    }
}
