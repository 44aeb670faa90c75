//! Test fixtures: small media generated with the ffmpeg CLI into temp dirs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use peregrine_assemble::{AssembleOptions, EncodeSettings, Mode, Summary};

pub fn data_dir() -> PathBuf {
    std::env::var_os("PEREGRINE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// H.264 320x240 25 fps with a keyframe every second (and AAC audio).
pub fn make_source(dir: &Path, name: &str, pattern: &str, seconds: u32, audio: bool) -> PathBuf {
    let path = dir.join(name);
    let v = format!("{pattern}=size=320x240:rate=25:duration={seconds}");
    let a = format!("sine=frequency=440:sample_rate=48000:duration={seconds}");
    let p = path.to_str().unwrap();
    let mut args = vec!["-f", "lavfi", "-i", &v];
    if audio {
        args.extend(["-f", "lavfi", "-i", &a, "-c:a", "aac", "-b:a", "96k"]);
    }
    args.extend([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "25",
        "-keyint_min",
        "25",
        "-sc_threshold",
        "0",
        "-bf",
        "0",
        p,
    ]);
    ffmpeg(&args);
    path
}

/// MD5 of every decoded video frame, in order (ffmpeg -f framemd5).
pub fn frame_md5s(path: &Path) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(',').nth(5).map(|s| s.trim().to_owned()))
        .collect()
}

/// Duration of the container in seconds, and per-stream durations (ffprobe).
pub fn probe_durations(path: &Path) -> (f64, Vec<f64>) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<f64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let (fmt, streams) = nums.split_last().expect("ffprobe output");
    (*fmt, streams.to_vec())
}

pub fn opts(out: &Path, mode: Mode) -> AssembleOptions {
    AssembleOptions {
        output: out.to_path_buf(),
        mode,
        encode: EncodeSettings {
            preset: "ultrafast".into(),
            ..EncodeSettings::default()
        },
        jobs: 2,
        cache_dir: None,
    }
}

pub fn run(list: &Path, o: &AssembleOptions) -> peregrine_assemble::Result<Summary> {
    let cancel = Arc::new(AtomicBool::new(false));
    peregrine_assemble::assemble_file(list, o, &mut |_| {}, &cancel)
}

pub fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// Files in `dir` whose name contains `needle` (to find stray temp files).
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().contains(needle))
        .collect()
}

/// Gray 8x8 thumbnails of every frame and mono 48 kHz samples (ffmpeg CLI).
pub fn decode_thumbs(path: &Path) -> Vec<[u8; 64]> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:v",
            "-vf",
            "scale=8:8",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    out.stdout
        .chunks_exact(64)
        .map(|c| c.try_into().unwrap())
        .collect()
}

pub fn decode_audio(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-map", "0:a", "-ac", "1", "-ar", "48000", "-f", "f32le", "-",
        ])
        .output()
        .expect("ffmpeg runs");
    out.stdout
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Peak signal-to-noise ratio of two 8-bit images (infinite when equal).
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// Raw YUV 4:2:0 frames of `path` as stored, none duplicated or dropped
/// (ffmpeg -f rawvideo).
pub fn yuv_frames(path: &Path, w: usize, h: usize) -> Vec<Vec<u8>> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-fps_mode", "passthrough", "-f", "rawvideo"])
        .args(["-pix_fmt", "yuv420p", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
        .chunks_exact(w * h * 3 / 2)
        .map(<[u8]>::to_vec)
        .collect()
}

/// H.264 with B-frames, a keyframe every `gop` frames, 25 fps, AAC.
pub fn bframe_source(path: &Path, size: &str, seconds: u32, gop: u32) {
    let (v, a, g) = (
        format!("testsrc2=size={size}:rate=25:duration={seconds}"),
        format!("sine=frequency=440:sample_rate=48000:duration={seconds}"),
        gop.to_string(),
    );
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &v,
        "-f",
        "lavfi",
        "-i",
        &a,
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        &g,
        "-keyint_min",
        &g,
        "-sc_threshold",
        "0",
        "-bf",
        "2",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        path.to_str().unwrap(),
    ]);
}

/// Assembles `shots` (in frame, out frame) of `src` in auto mode and checks
/// every output frame: bit-exact where `copied(shot, frame)`, PSNR >= 35 dB
/// against the source frame elsewhere; the stream decodes without a single
/// error and its duration is the sum of the shots.
pub fn check_smart_cuts(
    src: &Path,
    (w, h): (usize, usize),
    shots: &[(usize, usize)],
    copied: impl Fn(usize, usize) -> bool,
    reencoded_shots: usize,
) {
    let d = src.parent().unwrap();
    let name = src.file_name().unwrap().to_str().unwrap();
    let json: Vec<String> = shots
        .iter()
        .map(|(a, b)| format!(r#"{{"source": "{name}", "in_frame": {a}, "out_frame": {b}}}"#))
        .collect();
    let list = write(
        &d.join("l.json"),
        &format!(r#"{{"shots": [{}]}}"#, json.join(",")),
    );
    let out = d.join("out.mp4");
    let s = run(&list, &opts(&out, Mode::Auto)).unwrap();
    assert_eq!(s.mode, Mode::Copy);
    let expected: Vec<(usize, bool)> = shots
        .iter()
        .enumerate()
        .flat_map(|(k, &(a, b))| (a..b).map(move |f| (f, k)))
        .map(|(f, k)| (f, copied(k, f)))
        .collect();
    let reencoded = expected.iter().filter(|&&(_, c)| !c).count();
    assert_eq!(s.frames as usize, expected.len());
    assert_eq!(s.reencoded_frames as usize, reencoded);
    assert_eq!(s.reencoded_shots, reencoded_shots);
    let want = expected.len() as f64 / 25.0;
    assert!((s.duration - want).abs() < 1e-6, "{} vs {want}", s.duration);
    assert_stream_durations(&out, want);

    let decode = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(&out)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(decode.status.success());
    let errors = String::from_utf8_lossy(&decode.stderr);
    assert!(errors.is_empty(), "{errors}");

    let (sf, of) = (yuv_frames(src, w, h), yuv_frames(&out, w, h));
    assert_eq!(of.len(), expected.len());
    let mut worst = f64::INFINITY;
    for (i, (&(f, copied), got)) in expected.iter().zip(&of).enumerate() {
        if copied {
            assert!(
                got == &sf[f],
                "output frame {i} (source {f}) not copied exactly"
            );
        } else {
            let p = psnr(got, &sf[f]);
            worst = worst.min(p);
            assert!(p >= 35.0, "output frame {i} (source {f}): PSNR {p:.1} dB");
        }
    }
    assert!(
        worst.is_finite(),
        "re-encoded frames are not bit-exact copies"
    );
}

/// Every stream of `path` (and the container) lasts `want` seconds: video
/// within one frame at 25 fps, audio within one AAC frame.
pub fn assert_stream_durations(path: &Path, want: f64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let streams: Vec<(String, f64)> = text
        .lines()
        .filter_map(|l| {
            let (kind, d) = l.split_once(',')?;
            Some((kind.to_owned(), d.trim().parse().ok()?))
        })
        .collect();
    assert!(!streams.is_empty(), "{}: no streams", path.display());
    for (kind, d) in &streams {
        let tolerance = if kind == "audio" { 0.03 } else { 0.041 };
        assert!(
            (d - want).abs() < tolerance,
            "{} stream lasts {d:.3} s, want {want:.3} s",
            kind
        );
    }
    let (fmt, _) = probe_durations(path);
    assert!((fmt - want).abs() < 0.05, "container {fmt} vs {want}");
}

/// Flash times (video) and beep onsets (audio, sample-accurate as a
/// timestamp-following player renders them), in seconds.
pub fn events(path: &Path) -> (Vec<f64>, Vec<f64>) {
    let flashes: Vec<f64> = decode_thumbs(path)
        .iter()
        .enumerate()
        .filter(|(_, t)| t.iter().map(|&v| u32::from(v)).sum::<u32>() / 64 > 128)
        .map(|(i, _)| i as f64 / 25.0)
        .collect();
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:a",
            "-af",
            "aresample=async=1:min_hard_comp=0.001:first_pts=0",
            "-ac",
            "1",
            "-ar",
            "48000",
            "-f",
            "f32le",
            "-",
        ])
        .output()
        .unwrap();
    let samples: Vec<f32> = out
        .stdout
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let mut onsets = Vec::new();
    let mut quiet = 0usize;
    for (i, s) in samples.iter().enumerate() {
        if s.abs() > 0.3 {
            if quiet > 4800 {
                onsets.push(i as f64 / 48_000.0);
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    (flashes, onsets)
}

pub fn assert_in_sync(path: &Path, n: usize, tolerance: f64) {
    let (flashes, onsets) = events(path);
    assert_eq!(flashes.len(), n, "flashes");
    assert_eq!(onsets.len(), n, "beeps");
    let offsets: Vec<f64> = flashes.iter().zip(&onsets).map(|(f, a)| a - f).collect();
    let worst = offsets.iter().fold(0.0f64, |m, o| m.max(o.abs()));
    let mean = offsets.iter().sum::<f64>() / n as f64;
    assert!(
        worst < tolerance,
        "worst A/V offset {worst:.4} s (mean {mean:.4})"
    );
    // No drift: the last cuts (up to ten) are as good as the first.
    let m = (n / 2).min(10);
    let early = offsets[..m].iter().sum::<f64>() / m as f64;
    let late = offsets[n - m..].iter().sum::<f64>() / m as f64;
    assert!((late - early).abs() < 0.01, "drift {early:.4} -> {late:.4}");
}
