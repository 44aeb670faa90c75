//! The normalising path: PSNR at every shot, letterbox, frame-rate
//! conversion, silence, segment cache; A/V sync across 100 cuts (both paths).

mod common;

use std::path::Path;
use std::process::Command;

use common::{
    assert_in_sync, decode_audio, decode_thumbs, ffmpeg, make_source, opts, probe_durations, psnr,
    run, write,
};
use peregrine_assemble::Mode;

/// Full-size grey frames of `path` with an optional filter before.
fn gray_frames(path: &Path, vf: &str, w: usize, h: usize) -> Vec<Vec<u8>> {
    let filter = if vf.is_empty() {
        "format=gray".to_owned()
    } else {
        format!("{vf},format=gray")
    };
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-vf", &filter, "-f", "rawvideo", "-"])
        .output()
        .unwrap();
    out.stdout.chunks_exact(w * h).map(<[u8]>::to_vec).collect()
}

#[test]
fn normalise_scales_pads_converts_rate_with_psnr_at_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = make_source(d, "a.mp4", "testsrc2", 4, true);
    let big = d.join("big.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x480:rate=30:duration=3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-qp",
        "10",
        big.to_str().unwrap(),
    ]);
    let wide = d.join("wide.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x120:rate=25:duration=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        wide.to_str().unwrap(),
    ]);
    let list = write(
        &d.join("l.json"),
        r#"{"shots": [
            {"source": "a.mp4", "in": 0.48, "out": 1.68},
            {"source": "big.mp4", "in": 0.3, "out": 1.3},
            {"source": "wide.mp4", "in": 0, "out": 1},
            {"source": "a.mp4", "in": 2, "out": 3}
        ]}"#,
    );
    let out = d.join("out.mp4");
    let mut o = opts(&out, Mode::Normalize);
    o.encode.crf = 12;
    let s = run(&list, &o).unwrap();
    assert_eq!(s.mode, Mode::Normalize);
    assert_eq!(s.frames, 30 + 25 + 25 + 25);
    let (fmt, streams) = probe_durations(&out);
    assert!((streams[0] - 4.2).abs() < 0.041, "video {}", streams[0]);
    assert!((fmt - 4.2).abs() < 0.05, "container {fmt}");
    let (w, h) = (320, 240);
    let got = gray_frames(&out, "", w, h);
    assert_eq!(got.len(), 105);
    let src_a = gray_frames(&a, "", w, h);
    let src_big = gray_frames(&big, "scale=320:240:flags=bicubic", w, h);
    let mut worst = f64::INFINITY;
    for k in 0..30 {
        worst = worst.min(psnr(&got[k], &src_a[12 + k]));
    }
    for k in 0..25 {
        // 30 -> 25 fps: the source frame nearest to 0.3 + k/25 s.
        let j = ((0.3 + k as f64 / 25.0) * 30.0 + 0.5).floor() as usize;
        worst = worst.min(psnr(&got[30 + k], &src_big[j]));
    }
    for k in 0..25 {
        worst = worst.min(psnr(&got[80 + k], &src_a[50 + k]));
    }
    assert!(worst >= 35.0, "worst PSNR {worst:.1} dB");
    // The 320x120 shot is centred with black bars above and below.
    let wide_frame = &got[55];
    let bar_mean = wide_frame[..w * 50]
        .iter()
        .map(|&v| f64::from(v))
        .sum::<f64>()
        / (w * 50) as f64;
    // Limited-range black (Y=16) reads as 0 in full-range grey.
    assert!(bar_mean < 3.0, "bar luma {bar_mean}");
    let src_wide = gray_frames(&wide, "", 320, 120);
    assert!(psnr(&wide_frame[w * 60..w * 180], &src_wide[0]) >= 35.0);
    // Audio: present and as long as the video (silence for the silent shots).
    assert!((streams[1] - 4.2).abs() < 0.05, "audio {}", streams[1]);
    let samples = decode_audio(&out);
    let rms = |r: std::ops::Range<usize>| {
        (samples[r.clone()].iter().map(|x| x * x).sum::<f32>() / r.len() as f32).sqrt()
    };
    assert!(rms(4800..48_000) > 0.05, "shot 1 has the sine");
    assert!(rms(62_400..100_000) < 0.005, "shots 2-3 are silent");
    assert!(rms(156_000..196_000) > 0.05, "shot 4 has the sine");
}

#[test]
fn cache_reuses_unchanged_segments() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_source(d, "a.mp4", "testsrc2", 4, false);
    make_source(d, "b.mp4", "testsrc", 4, false);
    let cache = d.join("cache");
    let mut o = opts(&d.join("o.mp4"), Mode::Normalize);
    o.cache_dir = Some(cache.clone());
    let l1 = write(
        &d.join("l1.json"),
        r#"{"shots": [{"source": "a.mp4", "in": 0, "out": 1}, {"source": "b.mp4", "in": 1, "out": 2}, {"source": "a.mp4", "in": 2, "out": 3}]}"#,
    );
    let s1 = run(&l1, &o).unwrap();
    assert_eq!((s1.segments_encoded, s1.segments_reused), (3, 0));
    let first = common::frame_md5s(&d.join("o.mp4"));
    let s1b = run(&l1, &o).unwrap();
    assert_eq!((s1b.segments_encoded, s1b.segments_reused), (0, 3));
    assert_eq!(common::frame_md5s(&d.join("o.mp4")), first);
    let l2 = write(
        &d.join("l2.json"),
        r#"{"shots": [{"source": "a.mp4", "in": 0, "out": 1}, {"source": "b.mp4", "in": 1, "out": 2.5}, {"source": "a.mp4", "in": 2, "out": 3}]}"#,
    );
    let s2 = run(&l2, &o).unwrap();
    assert_eq!((s2.segments_encoded, s2.segments_reused), (1, 2));
    // Different encode settings do not reuse.
    o.encode.crf = 30;
    let s3 = run(&l2, &o).unwrap();
    assert_eq!((s3.segments_encoded, s3.segments_reused), (3, 0));
}

#[test]
fn gaps_from_otio_are_black_and_silent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_source(d, "a.mp4", "testsrc2", 3, true);
    let rt = |v: u32| format!(r#"{{"OTIO_SCHEMA": "RationalTime.1", "rate": 25, "value": {v}}}"#);
    let range = |s: u32, n: u32| {
        format!(
            r#"{{"OTIO_SCHEMA": "TimeRange.1", "start_time": {}, "duration": {}}}"#,
            rt(s),
            rt(n)
        )
    };
    let otio = format!(
        r#"{{"OTIO_SCHEMA": "Track.1", "kind": "Video", "children": [
            {{"OTIO_SCHEMA": "Clip.1", "name": "c", "source_range": {},
              "media_reference": {{"OTIO_SCHEMA": "ExternalReference.1", "target_url": "a.mp4"}}}},
            {{"OTIO_SCHEMA": "Gap.1", "source_range": {}}}
        ]}}"#,
        range(25, 25),
        range(0, 25)
    );
    let list = write(&d.join("t.otio"), &otio);
    let out = d.join("o.mp4");
    // Auto copies the clip and encodes the gap in its format.
    for (mode, taken) in [
        (Mode::Auto, Mode::Mixed),
        (Mode::Normalize, Mode::Normalize),
    ] {
        let s = run(&list, &opts(&out, mode)).unwrap();
        assert_eq!(s.mode, taken);
        assert_eq!(s.frames, 50);
        let thumbs = decode_thumbs(&out);
        assert_eq!(thumbs.len(), 50);
        assert!(thumbs[30..].iter().all(|t| t.iter().all(|&v| v <= 20)));
        assert!(thumbs[..25].iter().all(|t| t.iter().any(|&v| v > 60)));
        let audio = decode_audio(&out);
        assert!(audio[52_000..96_000].iter().all(|x| x.abs() < 0.01));
    }
}

/// Source with a white flash at frame 13 of every second and a 1 kHz beep
/// starting at the same instant (t = k + 0.52 s), keyframe every second.
fn sync_source(d: &Path) -> std::path::PathBuf {
    let p = d.join("sync.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=160x120:r=25:d=10",
        "-f",
        "lavfi",
        "-i",
        "aevalsrc='if(between(mod(t,1),0.52,0.56),0.8*sin(2*PI*1000*t),0)':s=48000:d=10",
        "-vf",
        "drawbox=c=white:t=fill:enable='eq(mod(n,25),13)'",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-keyint_min",
        "25",
        "-sc_threshold",
        "0",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        p.to_str().unwrap(),
    ]);
    p
}

#[test]
fn audio_and_video_stay_in_sync_across_100_cuts_normalised() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sync_source(d);
    // Off-keyframe cuts of 0.72 s (18 frames), each holding one event.
    let shots: Vec<String> = (0..100)
        .map(|i| {
            let k = i % 9;
            format!(
                r#"{{"source": "sync.mp4", "in": {}.2, "out": {}.92}}"#,
                k, k
            )
        })
        .collect();
    let list = write(
        &d.join("l.json"),
        &format!(r#"{{"shots": [{}]}}"#, shots.join(",")),
    );
    let out = d.join("o.mp4");
    let s = run(&list, &opts(&out, Mode::Normalize)).unwrap();
    assert_eq!(s.mode, Mode::Normalize);
    assert_eq!(s.frames, 1800);
    // One continuous audio stream: only the AAC codec's own smearing remains.
    assert_in_sync(&out, 100, 0.012);
    // The same timeline in auto mode: smart cuts (each shot re-encodes its
    // head and copies nothing, the GOP is 25 frames) with copied audio.
    let s = run(&list, &opts(&out, Mode::Auto)).unwrap();
    assert_eq!(s.mode, Mode::Copy);
    assert_eq!((s.frames, s.reencoded_shots), (1800, 100));
    assert_in_sync(&out, 100, 0.032);
}

#[test]
fn audio_and_video_stay_in_sync_across_100_cuts_copied() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sync_source(d);
    let shots: Vec<String> = (0..100)
        .map(|i| {
            let k = (i * 7) % 9;
            format!(r#"{{"source": "sync.mp4", "in": {}, "out": {}}}"#, k, k + 1)
        })
        .collect();
    let list = write(
        &d.join("l.json"),
        &format!(r#"{{"shots": [{}]}}"#, shots.join(",")),
    );
    let out = d.join("o.mp4");
    let s = run(&list, &opts(&out, Mode::Auto)).unwrap();
    assert_eq!(s.mode, Mode::Copy);
    assert!((s.duration - 100.0).abs() < 1e-6);
    let (_, streams) = probe_durations(&out);
    assert!((streams[1] - 100.0).abs() < 0.03, "audio {}", streams[1]);
    // Copied AAC frames (21.3 ms) cannot be cut: each cut may shift audio by
    // up to about one frame, but the error never accumulates.
    assert_in_sync(&out, 100, 0.032);
}
