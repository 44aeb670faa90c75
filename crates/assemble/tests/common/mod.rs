//! Test fixtures: small media generated with the ffmpeg CLI into temp dirs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use peregrine_assemble::{AssembleOptions, EncodeSettings, Mode, Summary};

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
