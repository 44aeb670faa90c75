//! Smart render of mixed sources (`auto` mode): shots in the target format
//! are copied bit for bit, the others (another SAR, size or frame rate, or
//! only other audio) are encoded to it; one stream that decodes cleanly
//! across every switch, with the shot list's duration and A/V in sync.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    assert_in_sync, assert_stream_durations, decode_audio, ffmpeg, opts, psnr, run, write,
    yuv_frames,
};
use peregrine_assemble::Mode;

/// A sync source: a dimmed test pattern with a white flash at 0.50-0.54 s
/// of every second and a beep at 0.52-0.56 s; H.264 (1 s GOP, no
/// B-frames) and AAC at `rate` Hz with `channels`. The target (`a.mp4`)
/// beeps at 1 kHz, the others at 2 kHz, so each shot's audio is told apart.
fn source(
    d: &Path,
    name: &str,
    pattern: &str,
    (size, fps, sar): (&str, u32, &str),
    (rate, channels): (u32, u32),
) -> PathBuf {
    let tone = if name == "a.mp4" { 1000 } else { 2000 };
    let p = d.join(name);
    let v = format!("{pattern}=size={size}:rate={fps}:duration=6");
    let a = format!(
        "aevalsrc='if(between(mod(t,1),0.52,0.56),0.8*sin(2*PI*{tone}*t),0)':s={rate}:d=6:c={}",
        if channels == 2 { "stereo" } else { "mono" }
    );
    let vf = format!(
        "lutyuv=y=val*0.6,drawbox=c=white:t=fill:enable='between(mod(t,1),0.5,0.54)',setsar={sar}"
    );
    let g = fps.to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &v,
        "-f",
        "lavfi",
        "-i",
        &a,
        "-vf",
        &vf,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        &g,
        "-keyint_min",
        &g,
        "-sc_threshold",
        "0",
        "-bf",
        "0",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        p.to_str().unwrap(),
    ]);
    p
}

/// The target: 320x240, square pixels, 25 fps, 48 kHz mono.
fn target_source(d: &Path) -> PathBuf {
    source(d, "a.mp4", "testsrc2", ("320x240", 25, "1"), (48_000, 1))
}

/// Decoded 4:2:0 frames of `path` through `vf`, at `w`x`h`, none dropped.
fn filtered_frames(path: &Path, vf: &str, (w, h): (usize, usize)) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-vf", vf, "-fps_mode", "passthrough"])
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
        .chunks_exact(w * h * 3 / 2)
        .map(<[u8]>::to_vec)
        .collect()
}

fn probe(path: &Path, entries: &str) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            entries,
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Assembles shots `(source, in s, out s)` from `a.mp4` (the target)
/// and `other` in auto mode and checks every frame: copied shots bit-exact
/// against `a.mp4`; the others' frames at PSNR >= 35 dB against `reference`
/// (the other source brought to 320x240, at its own rate `other_fps`,
/// whose frame nearest to each output time is expected); a clean decode
/// across every switch, the target's stream parameters, durations equal to
/// the shot list, one flash and one beep per shot in sync.
fn check_mixed(
    d: &Path,
    shots: &[(&str, u32, u32)],
    other: &Path,
    reference: &str,
    other_fps: f64,
    audio_converted: usize,
) {
    let a = d.join("a.mp4");
    let json: Vec<String> = shots
        .iter()
        .map(|(s, i, o)| format!(r#"{{"source": "{s}", "in": {i}, "out": {o}}}"#))
        .collect();
    let list = write(
        &d.join("l.json"),
        &format!(r#"{{"shots": [{}]}}"#, json.join(",")),
    );
    let out = d.join("out.mp4");
    let s = run(&list, &opts(&out, Mode::Auto)).unwrap();
    let is_other = |name: &str| d.join(name) != a && !name.starts_with("a_");
    let converted = shots.iter().filter(|(n, _, _)| is_other(n)).count();
    // Every second of the output: its source and the second taken from it.
    let units: Vec<(&str, u32)> = shots
        .iter()
        .flat_map(|&(n, i, o)| (i..o).map(move |t| (n, t)))
        .collect();
    let other_units = units.iter().filter(|(n, _)| is_other(n)).count() as u64;
    assert_eq!(s.mode, Mode::Mixed);
    assert_eq!(s.frames, 25 * units.len() as u64);
    assert_eq!(
        (s.encoded_shots, s.encoded_frames),
        (converted, 25 * other_units)
    );
    assert_eq!(s.copied_shots, shots.len() - converted);
    assert_eq!(s.copied_frames, 25 * (units.len() as u64 - other_units));
    assert_eq!(s.audio_converted_shots, audio_converted);
    assert_eq!(s.reencoded_frames, 0);
    let want = units.len() as f64;
    assert!((s.duration - want).abs() < 1e-6, "{} vs {want}", s.duration);
    assert_stream_durations(&out, want);
    // The target's stream parameters.
    assert_eq!(
        probe(
            &out,
            "stream=width,height,sample_aspect_ratio,pix_fmt,r_frame_rate"
        ),
        probe(
            &a,
            "stream=width,height,sample_aspect_ratio,pix_fmt,r_frame_rate"
        )
    );
    // One valid stream: not a single decode error across the switches.
    let decode = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(&out)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(decode.status.success());
    let errors = String::from_utf8_lossy(&decode.stderr);
    assert!(errors.is_empty(), "{errors}");

    let got = yuv_frames(&out, 320, 240);
    assert_eq!(got.len(), 25 * units.len());
    let src_a = yuv_frames(&a, 320, 240);
    let src_b = filtered_frames(other, reference, (320, 240));
    let mut worst = f64::INFINITY;
    for (k, (name, t)) in units.iter().enumerate() {
        for f in 0..25 {
            let o = &got[25 * k + f];
            if !is_other(name) {
                let i = 25 * *t as usize + f;
                assert!(o == &src_a[i], "shot {k} frame {f}: not copied exactly");
            } else {
                let tk = f64::from(*t) + f as f64 / 25.0;
                let j = (tk * other_fps + 0.5).floor() as usize;
                let p = psnr(o, &src_b[j]);
                worst = worst.min(p);
                assert!(p >= 35.0, "shot {k} frame {f} (source {j}): PSNR {p:.1} dB");
            }
        }
    }
    assert!(worst.is_finite(), "encoded frames are copies");
    assert_in_sync(&out, units.len(), 0.0215);
    // Each shot's audio is its own source's (1 kHz from a.mp4 only).
    let audio = decode_audio(&out);
    for (k, (name, _)) in units.iter().enumerate() {
        let second = &audio[48_000 * k..(48_000 * (k + 1)).min(audio.len())];
        let onset = second.iter().position(|x| x.abs() > 0.3).expect("a beep");
        let beep = &second[onset + 48..onset + 48 + 960];
        let crossings = beep
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        let hz = crossings as f64 / 2.0 / 0.02;
        let want = if *name == "a.mp4" { 1000.0 } else { 2000.0 };
        assert!(
            (hz / want - 1.0).abs() < 0.2,
            "shot {k} ({name}): beep at {hz} Hz, want {want}"
        );
    }
}

#[test]
fn inserts_differing_only_in_sar_are_encoded_the_rest_copied() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    target_source(d);
    // Same size, codec, rate and audio; pixels 4:3 wide: shown 427x240,
    // so in square pixels 320x180, letterboxed.
    let b = source(d, "b.mp4", "testsrc", ("320x240", 25, "4/3"), (48_000, 1));
    let shots = [
        ("a.mp4", 0, 1),
        ("b.mp4", 1, 2),
        ("a.mp4", 2, 3),
        ("b.mp4", 3, 4),
        ("a.mp4", 4, 5),
    ];
    check_mixed(
        d,
        &shots,
        &b,
        "scale=320:180:flags=bicubic,pad=320:240:0:30,setsar=1",
        25.0,
        0,
    );
}

#[test]
fn inserts_of_another_size_and_audio_format_are_converted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = target_source(d);
    let b = source(d, "b.mp4", "testsrc", ("640x360", 25, "1"), (44_100, 2));
    // The target's video with other audio: video copied, audio converted.
    let a2 = d.join("a_44k.mp4");
    ffmpeg(&[
        "-i",
        a.to_str().unwrap(),
        "-i",
        b.to_str().unwrap(),
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c",
        "copy",
        a2.to_str().unwrap(),
    ]);
    let shots = [
        ("a.mp4", 0, 1),
        ("b.mp4", 1, 2),
        ("a_44k.mp4", 2, 3),
        ("a.mp4", 3, 4),
        ("b.mp4", 4, 5),
        ("a.mp4", 5, 6),
    ];
    check_mixed(
        d,
        &shots,
        &b,
        "scale=320:180:flags=bicubic,pad=320:240:0:30",
        25.0,
        3,
    );
}

#[test]
fn inserts_of_another_frame_rate_are_converted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    target_source(d);
    let b = source(d, "b.mp4", "testsrc", ("320x240", 30, "1"), (48_000, 1));
    let shots = [
        ("b.mp4", 0, 1),
        ("a.mp4", 1, 2),
        ("b.mp4", 2, 3),
        ("a.mp4", 3, 4),
        ("a.mp4", 4, 5),
    ];
    check_mixed(d, &shots, &b, "null", 30.0, 0);
}

/// `--size` picks the target even where fewer shots have it; a size no
/// shot has cannot be rendered this way and is normalised, with the reason.
#[test]
fn requested_size_picks_the_target_or_normalises() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    target_source(d);
    source(d, "b.mp4", "testsrc", ("640x360", 25, "1"), (48_000, 1));
    let list = write(
        &d.join("l.json"),
        r#"{"shots": [{"source": "a.mp4", "in": 0, "out": 1}, {"source": "a.mp4", "in": 2, "out": 3},
            {"source": "b.mp4", "in": 1, "out": 2}]}"#,
    );
    let out = d.join("out.mp4");
    let mut o = opts(&out, Mode::Auto);
    o.encode.size = Some((640, 360));
    let s = run(&list, &o).unwrap();
    assert_eq!(
        (s.mode, s.copied_shots, s.encoded_shots),
        (Mode::Mixed, 1, 2)
    );
    assert_eq!(probe(&out, "stream=width,height"), "640,360");
    o.encode.size = Some((400, 300));
    let s = run(&list, &o).unwrap();
    assert_eq!(s.mode, Mode::Normalize);
    let why = s.copy_refused.unwrap();
    assert!(why.contains("--size"), "{why}");
}

/// An insert longer than the pool takes (125 frames) is converted by the
/// remux thread itself, video and audio, written out as it comes.
#[test]
fn long_inserts_are_converted_inline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    target_source(d);
    let b = source(d, "b.mp4", "testsrc", ("640x360", 25, "1"), (44_100, 2));
    let shots = [("a.mp4", 0, 4), ("b.mp4", 0, 6), ("a.mp4", 2, 6)];
    check_mixed(
        d,
        &shots,
        &b,
        "scale=320:180:flags=bicubic,pad=320:240:0:30",
        25.0,
        1,
    );
}
