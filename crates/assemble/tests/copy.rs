//! The stream-copy path: exact frames, durations, keyframe rules, temp files.

mod common;

use common::{
    bframe_source, check_smart_cuts, frame_md5s, make_source, opts, probe_durations, run, write,
};
use peregrine_assemble::{AssembleError, Mode};

/// Output frames equal the expected source frames (checksums), shot by shot,
/// and the duration is the sum of the shot durations.
#[test]
fn copy_keeps_every_frame_and_the_duration() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = make_source(d, "a.mp4", "testsrc2", 6, true);
    let b = make_source(d, "b.mp4", "testsrc", 4, true);
    let list = write(
        &d.join("list.json"),
        r#"{"shots": [
            {"source": "a.mp4", "in": 1, "out": 3},
            {"source": "b.mp4", "in": 0, "out": 2},
            {"source": "a.mp4", "in": 4, "out": 6},
            {"source": "b.mp4", "in_frame": 75, "out_frame": 100},
            {"source": "a.mp4", "in": 0, "out": 1}
        ]}"#,
    );
    let out = d.join("out.mp4");
    let s = run(&list, &opts(&out, Mode::Auto)).unwrap();
    assert_eq!(s.mode, Mode::Copy);
    assert_eq!(s.shots, 5);
    assert!((s.duration - 8.0).abs() < 1e-6, "{}", s.duration);
    let (fmt, streams) = probe_durations(&out);
    assert!((fmt - 8.0).abs() < 0.05, "container duration {fmt}");
    assert!(
        (streams[0] - 8.0).abs() <= 0.04 * 5.0,
        "video duration {}",
        streams[0]
    );
    let (ma, mb, mo) = (frame_md5s(&a), frame_md5s(&b), frame_md5s(&out));
    let expected: Vec<&String> = ma[25..75]
        .iter()
        .chain(&mb[0..50])
        .chain(&ma[100..150])
        .chain(&mb[75..100])
        .chain(&ma[0..25])
        .collect();
    assert_eq!(mo.len(), expected.len());
    for (i, (got, want)) in mo.iter().zip(expected).enumerate() {
        assert_eq!(got, want, "frame {i}");
    }
    assert!(common::files_containing(d, "partial").is_empty());
}

#[test]
fn copy_mode_refuses_off_keyframe_cuts_with_reasons_and_auto_smart_cuts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_source(d, "a.mp4", "testsrc2", 4, false);
    let list = write(
        &d.join("list.json"),
        r#"{"shots": [{"source": "a.mp4", "in": 0.5, "out": 2},
                      {"source": "a.mp4", "in": 2, "out": 2.6}]}"#,
    );
    let out = d.join("out.mp4");
    let err = run(&list, &opts(&out, Mode::Copy)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, AssembleError::CopyImpossible(_)));
    assert!(
        msg.contains("shot 1: in point 0.500") && msg.contains("shot 2: out point 2.600"),
        "{msg}"
    );
    assert!(!out.exists());
    let s = run(&list, &opts(&out, Mode::Auto)).unwrap();
    assert_eq!(s.mode, Mode::Copy);
    assert_eq!(s.reencoded_shots, 2);
    // Shot 1: frames 13..25 re-encoded, 25..50 copied; shot 2: 50..65 re-encoded.
    assert_eq!((s.frames, s.reencoded_frames), (52, 27));
    assert!((s.duration - 2.08).abs() < 1e-6, "{}", s.duration);
}

/// Smart cuts on a source with B-frames: whole GOPs inside a shot are copied
/// bit for bit, only the partial GOPs at off-keyframe cuts are re-encoded
/// (by the worker pool: every piece is short here).
#[test]
fn smart_cuts_copy_whole_gops_and_reencode_only_partial_ones() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("b.mp4");
    bframe_source(&src, "320x240", 8, 25);
    // (in frame, out frame) at 25 fps; keyframes every 25 frames.
    let shots = [
        (13, 65),   // head 13..25, copy 25..50, tail 50..65
        (75, 100),  // on keyframes: copied
        (130, 145), // no keyframe inside: re-encoded whole
        (159, 200), // head 159..175, copy to the source's end
        (100, 112), // in on a keyframe, out not, nothing to copy: whole
        (2, 40),    // head 2..25, tail 25..40 (no whole GOP inside)
    ];
    // Copied: the whole GOPs 25..50 of shot 1, shot 2, and 175..200 of shot 4.
    let copied = |k: usize, f: usize| matches!((k, f / 25), (0, 1) | (1, 3) | (3, 7));
    check_smart_cuts(&src, (320, 240), &shots, copied, 5);
}

/// Pieces longer than the pool holds in memory (10 s GOPs) are written out by
/// the remux thread instead, with the same result.
#[test]
fn long_partial_gops_are_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("long.mp4");
    bframe_source(&src, "160x120", 20, 250);
    let shots = [
        (3, 500),   // head 3..250 streamed, copy 250..500 to the end
        (0, 499),   // copy 0..250, tail 250..499 streamed
        (20, 240),  // whole, streamed
        (200, 300), // one keyframe inside, no whole GOP: whole, pooled
        (250, 500), // copied
    ];
    let copied = |k: usize, f: usize| matches!((k, f / 250), (0, 1) | (1, 0) | (4, 1));
    check_smart_cuts(&src, (160, 120), &shots, copied, 4);
}

#[test]
fn sources_with_different_sizes_are_not_copied() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_source(d, "a.mp4", "testsrc2", 2, false);
    common::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=25:duration=2",
        "-c:v",
        "libx264",
        "-g",
        "25",
        d.join("small.mp4").to_str().unwrap(),
    ]);
    let list = write(
        &d.join("l.json"),
        r#"{"shots": [{"source": "a.mp4", "in": 0, "out": 1}, {"source": "small.mp4", "in": 0, "out": 1}]}"#,
    );
    let err = run(&list, &opts(&d.join("o.mp4"), Mode::Copy)).unwrap_err();
    assert!(err.to_string().contains("160x120"), "{err}");
}

/// A truncated source fails validation (its real duration is short); a source
/// that turns corrupt after validation fails the run with the shot named.
/// Either way the target keeps its old content and no temp file is left.
#[test]
fn corrupt_shot_fails_cleanly_without_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_source(d, "a.mp4", "testsrc2", 4, false);
    let full = d.join("full.mp4");
    common::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=4",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-bf",
        "0",
        "-movflags",
        "+faststart",
        full.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&full).unwrap();
    let cut = d.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = d.join("out.mp4");
    std::fs::write(&out, b"previous").unwrap();
    let list = write(
        &d.join("l.json"),
        r#"{"shots": [{"source": "a.mp4", "in": 0, "out": 1}, {"source": "cut.mp4", "in": 0, "out": 1}, {"source": "cut.mp4", "in": 1, "out": 3}]}"#,
    );
    let err = run(&list, &opts(&out, Mode::Auto)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("shot 3") && msg.contains("beyond"), "{msg}");

    let good = write(
        &d.join("good.json"),
        r#"{"shots": [{"source": "a.mp4", "in": 0, "out": 1}, {"source": "full.mp4", "in": 1, "out": 3}]}"#,
    );
    // The same with smart cuts (off-keyframe in and out points).
    let smart = write(
        &d.join("smart.json"),
        r#"{"shots": [{"source": "a.mp4", "in": 0, "out": 1}, {"source": "full.mp4", "in": 1.5, "out": 3.5}]}"#,
    );
    for (list, mode) in [
        (&good, Mode::Copy),
        (&good, Mode::Normalize),
        (&smart, Mode::Auto),
    ] {
        std::fs::write(&full, &bytes).unwrap();
        let shots =
            peregrine_assemble::plan(peregrine_assemble::read_shot_list(list).unwrap()).unwrap();
        std::fs::write(&full, &bytes[..bytes.len() / 2]).unwrap();
        let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let err = peregrine_assemble::assemble(&shots, &opts(&out, mode), &mut |_| {}, &cancel)
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("shot 2") && msg.contains("full.mp4"),
            "{mode:?}: {msg}"
        );
        assert_eq!(
            std::fs::read(&out).unwrap(),
            b"previous",
            "target untouched"
        );
        assert!(common::files_containing(d, "partial").is_empty());
        assert!(common::files_containing(d, "segments").is_empty());
    }
}

/// Cancelling mid-run (here from the progress callback after the first
/// shot) leaves neither the target nor temporary files.
#[test]
fn cancelled_assembly_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_source(d, "a.mp4", "testsrc2", 4, true);
    let list = write(
        &d.join("l.json"),
        r#"{"shots": [{"source": "a.mp4", "in": 0, "out": 1}, {"source": "a.mp4", "in": 1, "out": 2},
                      {"source": "a.mp4", "in": 2, "out": 3}, {"source": "a.mp4", "in": 3, "out": 4}]}"#,
    );
    let shots =
        peregrine_assemble::plan(peregrine_assemble::read_shot_list(&list).unwrap()).unwrap();
    for mode in [Mode::Copy, Mode::Normalize] {
        let out = d.join("out.mp4");
        let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = cancel.clone();
        let mut o = opts(&out, mode);
        o.jobs = 1;
        let err = peregrine_assemble::assemble(
            &shots,
            &o,
            &mut |_| flag.store(true, std::sync::atomic::Ordering::Relaxed),
            &cancel,
        )
        .unwrap_err();
        assert!(matches!(err, AssembleError::Cancelled), "{mode:?}: {err}");
        assert!(!out.exists());
        assert!(common::files_containing(d, "partial").is_empty());
        assert!(common::files_containing(d, "segments").is_empty());
    }
}

/// An output whose container cannot hold the streams (`x.gif`, `x.webm`
/// for H.264) or whose extension names no container is refused before
/// anything is written, naming the output (not a temporary file) and why.
#[test]
fn unsuitable_output_container_is_refused_naming_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_source(d, "a.mp4", "testsrc2", 2, true);
    let list = write(
        &d.join("l.json"),
        r#"{"shots": [{"source": "a.mp4", "in": 0, "out": 1}]}"#,
    );
    let missing = write(
        &d.join("m.json"),
        r#"{"shots": [{"source": "missing.mp4", "in": 0, "out": 1}]}"#,
    );
    for (list, name, mode, cause) in [
        (
            &list,
            "x.gif",
            Mode::Auto,
            "the gif container cannot hold h264 video",
        ),
        (
            &list,
            "x.gif",
            Mode::Normalize,
            "the gif container cannot hold h264 video",
        ),
        (
            &list,
            "x.webm",
            Mode::Copy,
            "the webm container cannot hold h264 video",
        ),
        // Refused before any source is read: the missing source is not reached.
        (
            &missing,
            "x.txt",
            Mode::Auto,
            "no video container is known for the extension .txt",
        ),
    ] {
        let out = d.join(name);
        let err = run(list, &opts(&out, mode)).unwrap_err();
        assert!(
            matches!(&err, AssembleError::Output { path, .. } if path == &out),
            "{name} {mode:?}: {err:?}"
        );
        let msg = err.to_string();
        assert_eq!(
            msg,
            format!("{}: {cause} (use .mp4, .mov, .mkv or .ts)", out.display())
        );
        assert!(!out.exists());
        assert!(common::files_containing(d, "partial").is_empty());
        assert!(common::files_containing(d, "segments").is_empty());
    }
}
