//! Sources with an MP4 edit list: shot times are presentation times as a
//! player shows them (t = 0 is the first displayed frame), whatever packets
//! the edit list hides before it; every output stream lasts what the shot
//! list says, and its frames are the ones shown at those times.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    assert_stream_durations, bframe_source, check_smart_cuts, data_dir, decode_thumbs, ffmpeg,
    opts, psnr, run, write, yuv_frames,
};
use peregrine_assemble::{AssembleError, Mode};

/// `(pts, discarded)` of the first video packet (ffprobe).
fn first_video_packet(path: &Path) -> (f64, bool) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_packets",
            "-show_entries",
            "packet=pts_time,flags",
            "-read_intervals",
            "%+#1",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (pts, flags) = text.lines().next().unwrap().split_once(',').unwrap();
    (pts.parse().unwrap(), flags.contains('D'))
}

/// A 4 s B-frame source (keyframes every 25 frames at 25 fps) cut at 0.6 s
/// by stream copy: the edit list hides the first 15 frames, so the first
/// shown frame is a B/P frame and the shown keyframes are frames 10, 35, 60
/// of 85.
fn edit_list_source(d: &Path) -> PathBuf {
    let full = d.join("full.mp4");
    bframe_source(&full, "320x240", 4, 25);
    let e = d.join("e.mp4");
    ffmpeg(&[
        "-ss",
        "0.6",
        "-i",
        full.to_str().unwrap(),
        "-c",
        "copy",
        e.to_str().unwrap(),
    ]);
    let (pts, hidden) = first_video_packet(&e);
    assert!(
        pts < -0.5 && hidden,
        "fixture has no edit list: {pts} {hidden}"
    );
    e
}

#[test]
fn probe_times_start_at_the_first_displayed_frame() {
    let dir = tempfile::tempdir().unwrap();
    let e = edit_list_source(dir.path());
    let list = write(
        &dir.path().join("l.json"),
        r#"{"shots": [{"source": "e.mp4", "in": 0, "out": 3.4},
                      {"source": "e.mp4", "in": 1, "out": 3.5}]}"#,
    );
    let err = peregrine_assemble::plan(peregrine_assemble::read_shot_list(&list).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("shot 2") && err.contains("duration 3.400 s") && !err.contains("shot 1"),
        "{err}"
    );
    let list = write(
        &dir.path().join("ok.json"),
        r#"{"shots": [{"source": "e.mp4", "in": 0, "out": 3.4}]}"#,
    );
    let shots =
        peregrine_assemble::plan(peregrine_assemble::read_shot_list(&list).unwrap()).unwrap();
    let src = shots[0].source.as_ref().unwrap();
    assert_eq!(src.video.frames, 85);
    assert_eq!(src.pts_to_s(src.video.start_pts), 0.0);
    assert!(
        (src.duration_s() - 3.4).abs() < 1e-9,
        "{}",
        src.duration_s()
    );
    assert_eq!(src.path, e);
}

/// Smart cuts and copies on the edit-list source: heads before the first
/// shown keyframe decode from the hidden one; shown GOPs are copied bit for
/// bit; every stream lasts the shots' total.
#[test]
fn smart_cuts_on_an_edit_list_source_keep_the_shown_frames() {
    let dir = tempfile::tempdir().unwrap();
    let e = edit_list_source(dir.path());
    let shots = [
        (0, 35),  // head 0..10 (from the hidden keyframe), copy 10..35
        (35, 60), // on shown keyframes: copied
        (3, 8),   // inside the hidden keyframe's GOP: re-encoded whole
        (40, 85), // head 40..60, copy 60..85 to the end
        (12, 50), // no whole GOP inside: re-encoded whole
    ];
    let copied = |k: usize, f: usize| matches!((k, f), (0, 10..) | (1, _) | (3, 60..));
    check_smart_cuts(&e, (320, 240), &shots, copied, 4);

    // Copy mode cuts on shown keyframes only: frame 0 is not one.
    let list = write(
        &dir.path().join("c.json"),
        r#"{"shots": [{"source": "e.mp4", "in_frame": 0, "out_frame": 10}]}"#,
    );
    let err = run(&list, &opts(&dir.path().join("c.mp4"), Mode::Copy)).unwrap_err();
    assert!(matches!(err, AssembleError::CopyImpossible(_)), "{err}");
    assert!(err.to_string().contains("in point 0.000 s"), "{err}");
}

/// Shortens the first edit (the video track's) of the MP4 at `path` to
/// `seconds`, so the edit list also hides the frames after it.
fn trim_edit_list_end(path: &Path, seconds: f64) {
    let mut d = std::fs::read(path).unwrap();
    let find = |d: &[u8], tag: &[u8]| d.windows(4).position(|w| w == tag).unwrap();
    let be32 = |b: &[u8]| u32::from_be_bytes(b[..4].try_into().unwrap());
    let m = find(&d, b"mvhd");
    let timescale = be32(&d[m + if d[m + 4] == 0 { 16 } else { 24 }..]);
    let e = find(&d, b"elst");
    let duration = (seconds * f64::from(timescale)).round() as u64;
    if d[e + 4] == 0 {
        d[e + 12..e + 16].copy_from_slice(&(duration as u32).to_be_bytes());
    } else {
        d[e + 12..e + 20].copy_from_slice(&duration.to_be_bytes());
    }
    std::fs::write(path, d).unwrap();
}

/// An edit list that also trims the end hides the frames after 2.52 s
/// (63 shown frames, the last GOP starting at frame 60): "to the end" means
/// up to the last shown frame, and the hidden packets the shown B-frames
/// reference are decoded, not copied.
#[test]
fn edit_list_that_trims_the_end_ends_shots_at_the_last_shown_frame() {
    let dir = tempfile::tempdir().unwrap();
    let e = edit_list_source(dir.path());
    trim_edit_list_end(&e, 2.52);
    assert_eq!(yuv_frames(&e, 320, 240).len(), 63, "fixture");
    let shots = [
        (10, 63), // copy 10..60, tail 60..63 re-encoded
        (40, 63), // no whole GOP inside: re-encoded whole
        (35, 60), // copied
    ];
    let copied = |k: usize, f: usize| matches!((k, f), (0, ..60) | (2, _));
    check_smart_cuts(&e, (320, 240), &shots, copied, 2);
}

/// An edit list that delays the start (`-output_ts_offset`): the first shown
/// frame has pts 0.5 s and is time zero; audio starts 22 ms earlier.
#[test]
fn delayed_start_edit_list_source_is_cut_from_its_first_shown_frame() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let full = d.join("full.mp4");
    bframe_source(&full, "320x240", 4, 25);
    let late = d.join("late.mp4");
    let (full, late_s) = (full.to_str().unwrap(), late.to_str().unwrap());
    ffmpeg(&["-i", full, "-c", "copy", "-output_ts_offset", "0.5", late_s]);
    assert_eq!(first_video_packet(&late), (0.5, false), "fixture");
    let shots = [
        (10, 50),  // head 10..25, copy 25..50
        (75, 100), // copied to the end
    ];
    let copied = |k: usize, f: usize| matches!((k, f), (0, 25..) | (1, _));
    check_smart_cuts(&late, (320, 240), &shots, copied, 1);
}

#[test]
fn normalising_an_edit_list_source_shows_the_frames_at_the_shot_times() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let e = edit_list_source(d);
    let list = write(
        &d.join("l.json"),
        r#"{"shots": [{"source": "e.mp4", "in": 0, "out": 0.8},
                      {"source": "e.mp4", "in": 2.0, "out": 2.8}]}"#,
    );
    let out = d.join("n.mp4");
    let mut o = opts(&out, Mode::Normalize);
    o.encode.crf = 12;
    let s = run(&list, &o).unwrap();
    assert_eq!((s.mode, s.frames), (Mode::Normalize, 40));
    assert_stream_durations(&out, 1.6);
    let (src, got) = (yuv_frames(&e, 320, 240), yuv_frames(&out, 320, 240));
    assert_eq!(got.len(), 40);
    let expected = (0..20).chain(50..70);
    for (i, j) in expected.enumerate() {
        let p = psnr(&got[i], &src[j]);
        assert!(p >= 35.0, "output frame {i} (source {j}): PSNR {p:.1} dB");
    }
}

/// The sync source of `normalize.rs` (flash and beep at k + 0.52 s), cut at
/// 0.32 s by stream copy: flash and beep at k + 0.2 s of shown time.
fn sync_source_with_edit_list(d: &Path) -> PathBuf {
    let p = d.join("sync_full.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=160x120:r=25:d=6",
        "-f",
        "lavfi",
        "-i",
        "aevalsrc='if(between(mod(t,1),0.52,0.56),0.8*sin(2*PI*1000*t),0)':s=48000:d=6",
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
        p.to_str().unwrap(),
    ]);
    let e = d.join("sync.mp4");
    let (full, cut) = (p.to_str().unwrap(), e.to_str().unwrap());
    ffmpeg(&["-ss", "0.32", "-i", full, "-c", "copy", cut]);
    assert!(first_video_packet(&e).1, "fixture has no edit list");
    e
}

/// Flashes land where the shot list puts them, and the beeps with them,
/// copied (smart cuts) and normalised.
#[test]
fn edit_list_source_keeps_audio_and_video_at_the_shot_times() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sync_source_with_edit_list(d);
    // 0.6 s shots from k + 0.08 (frame 2): the event is frame 3 of each.
    let shots: Vec<String> = (0..12)
        .map(|i| {
            let k = i % 5;
            format!(r#"{{"source": "sync.mp4", "in": {k}.08, "out": {k}.68}}"#)
        })
        .collect();
    let list = write(
        &d.join("l.json"),
        &format!(r#"{{"shots": [{}]}}"#, shots.join(",")),
    );
    let out = d.join("o.mp4");
    for mode in [Mode::Auto, Mode::Normalize] {
        let s = run(&list, &opts(&out, mode)).unwrap();
        assert_eq!(s.frames, 12 * 15, "{mode:?}");
        assert_stream_durations(&out, 7.2);
        let flashes: Vec<usize> = decode_thumbs(&out)
            .iter()
            .enumerate()
            .filter(|(_, t)| t.iter().map(|&v| u32::from(v)).sum::<u32>() / 64 > 128)
            .map(|(i, _)| i)
            .collect();
        let want: Vec<usize> = (0..12).map(|i| i * 15 + 3).collect();
        assert_eq!(flashes, want, "{mode:?}: flash frames");
        let audio = common::decode_audio(&out);
        for (i, &f) in want.iter().enumerate() {
            // The beep (40 ms) starts with the flash: loud just after it,
            // silent before it (copied AAC may shift by up to one frame).
            let at = |t: f64| (t * 48_000.0) as usize;
            let t = f as f64 / 25.0;
            let loud = audio[at(t + 0.005)..at(t + 0.035)]
                .iter()
                .any(|x| x.abs() > 0.3);
            let quiet = audio[at(t - 0.09)..at(t - 0.06)]
                .iter()
                .all(|x| x.abs() < 0.05);
            assert!(loud && quiet, "{mode:?}: shot {i}: beep not at {t:.2} s");
        }
    }
}

/// Gray frames of `path`, scaled to 256x144.
fn small_gray(path: &Path) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:v",
            "-fps_mode",
            "passthrough",
            "-vf",
            "scale=256:144,format=gray",
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
        .chunks_exact(256 * 144)
        .map(<[u8]>::to_vec)
        .collect()
}

/// The soccer sample's first video packet has pts -4.738 s (an edit list
/// hides it). Shots at the times the issue reported: every stream lasts the
/// shots' total and every frame is the one shown at its shot time.
#[test]
fn soccer_sample_with_edit_list_assembles_whole_streams() {
    let soccer = data_dir().join("videos/sport_soccer_broadcast_1280x720.mp4");
    let (pts, hidden) = first_video_packet(&soccer);
    assert!(pts < -4.0 && hidden, "{}: {pts}", soccer.display());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fps = 30000.0 / 1001.0;
    let src = small_gray(&soccer);
    assert_eq!(src.len(), 630);
    let cases: [(Mode, &[(f64, f64)]); 2] = [
        (
            Mode::Auto,
            &[(2.0, 5.0), (14.0, 15.0), (1.3, 3.7), (0.0, 3.0)],
        ),
        (Mode::Normalize, &[(2.0, 5.0), (14.0, 15.0)]),
    ];
    for (mode, shots) in cases {
        let json: Vec<String> = shots
            .iter()
            .map(|(a, b)| {
                format!(
                    r#"{{"source": "{}", "in": {a}, "out": {b}}}"#,
                    soccer.display()
                )
            })
            .collect();
        let list = write(
            &d.join("l.json"),
            &format!(r#"{{"shots": [{}]}}"#, json.join(",")),
        );
        let out = d.join("o.mp4");
        let s = run(&list, &opts(&out, mode)).unwrap();
        let expected: Vec<usize> = shots
            .iter()
            .flat_map(|&(a, b)| {
                let (a, b) = ((a * fps).round() as usize, (b * fps).round() as usize);
                a..b
            })
            .collect();
        assert_eq!(s.frames as usize, expected.len(), "{mode:?}");
        let want = expected.len() as f64 / fps;
        assert!((s.duration - want).abs() < 1e-3, "{mode:?}: {}", s.duration);
        assert_stream_durations(&out, want);
        let got = small_gray(&out);
        assert_eq!(got.len(), expected.len(), "{mode:?}: decoded frames");
        for (i, (&j, frame)) in expected.iter().zip(&got).enumerate() {
            let p = psnr(frame, &src[j]);
            // The best match nearby is the expected frame (or identical to it).
            let best = (j.saturating_sub(3)..(j + 4).min(src.len()))
                .max_by(|&x, &y| psnr(frame, &src[x]).total_cmp(&psnr(frame, &src[y])))
                .unwrap();
            assert!(
                p >= 30.0 && (best == j || psnr(&src[best], &src[j]) >= 45.0),
                "{mode:?}: output frame {i} (source frame {j}): PSNR {p:.1} dB, best match {best}"
            );
        }
    }
}
