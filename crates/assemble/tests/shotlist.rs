//! Shot list parsing (all four formats) and collected validation errors.

mod common;

use std::path::Path;

use peregrine_assemble::{
    parse_shot_list, plan, read_shot_list, AssembleError, Point, ShotListFormat, ShotProblem,
    ShotSource,
};

#[test]
fn json_seconds_frames_labels_and_relative_paths() {
    let text = r#"{"shots": [
        {"source": "a.mp4", "in": 1.5, "out": 3.0, "label": "x"},
        {"source": "/abs/b.mp4", "in_frame": 10, "out_frame": 20}
    ]}"#;
    let shots = parse_shot_list(text, ShotListFormat::Json, Path::new("/base")).unwrap();
    assert_eq!(shots.len(), 2);
    assert_eq!(shots[0].source, ShotSource::File("/base/a.mp4".into()));
    assert_eq!(shots[0].in_point, Point::Seconds(1.5));
    assert_eq!(shots[0].out_point, Point::Seconds(3.0));
    assert_eq!(shots[0].label.as_deref(), Some("x"));
    assert_eq!(shots[1].source, ShotSource::File("/abs/b.mp4".into()));
    assert_eq!(shots[1].in_point, Point::Frame(10));
    assert!(shots.iter().all(|s| s.problems.is_empty()));
}

#[test]
fn toml_shot_list() {
    let text = "[[shots]]\nsource = \"a.mp4\"\nin = 0.0\nout = 2.0\nlabel = \"one\"\n\n[[shots]]\nsource = \"b.mp4\"\nin_frame = 5\nout_frame = 50\n";
    let shots = parse_shot_list(text, ShotListFormat::Toml, Path::new("d")).unwrap();
    assert_eq!(shots.len(), 2);
    assert_eq!(shots[0].source, ShotSource::File("d/a.mp4".into()));
    assert_eq!(shots[0].out_point, Point::Seconds(2.0));
    assert_eq!(shots[1].out_point, Point::Frame(50));
}

#[test]
fn json_entry_problems_are_kept_per_shot() {
    let text = r#"{"shots": [
        {"in": 1, "out": 2},
        {"source": "a.mp4", "in": 1, "in_frame": 3, "out": 2},
        {"source": "a.mp4", "out": 2},
        {"source": "a.mp4", "in": "x", "out": 2}
    ]}"#;
    let shots = parse_shot_list(text, ShotListFormat::Json, Path::new(".")).unwrap();
    for s in &shots {
        assert_eq!(s.problems.len(), 1, "{s:?}");
        assert!(matches!(s.problems[0], ShotProblem::Malformed(_)));
    }
}

#[test]
fn edl_cmx3600_events_clip_names_drop_frame_and_audio_skipped() {
    let text = "TITLE: test\nFCM: NON-DROP FRAME\n\n\
001  AX       V     C        00:00:01:00 00:00:02:12 01:00:00:00 01:00:01:12\n\
* FROM CLIP NAME: a.mp4\n\
002  AX       A     C        00:00:01:00 00:00:02:12 01:00:00:00 01:00:01:12\n\
* FROM CLIP NAME: ignored.wav\n\
003  BL       V     C        00:00:00:00 00:00:01:00 01:00:01:12 01:00:02:12\n\
004  AX       V     C        00:00:00;02 00:01:00;02 01:00:02:12 01:00:03:12\n\
* FROM CLIP NAME: clip b\n\
* SOURCE FILE: b.mp4\n";
    let shots = parse_shot_list(text, ShotListFormat::Edl, Path::new("/e")).unwrap();
    assert_eq!(shots.len(), 3);
    assert_eq!(shots[0].source, ShotSource::File("/e/a.mp4".into()));
    assert_eq!(
        shots[0].in_point,
        Point::Timecode {
            h: 0,
            m: 0,
            s: 1,
            f: 0,
            drop: false
        }
    );
    assert_eq!(shots[1].source, ShotSource::Gap);
    assert_eq!(shots[2].source, ShotSource::File("/e/b.mp4".into()));
    assert_eq!(shots[2].label.as_deref(), Some("clip b"));
    assert!(matches!(
        shots[2].in_point,
        Point::Timecode {
            drop: true,
            f: 2,
            ..
        }
    ));
}

#[test]
fn edl_unknown_frame_code_mode_and_dissolve_are_problems() {
    let text = "FCM: 23.976 MAGIC\n001  AX V C 00:00:01:00 00:00:02:00 00:00:00:00 00:00:01:00\n\
002  AX V D 030 00:00:01:00 00:00:02:00 00:00:01:00 00:00:02:00\n";
    let shots = parse_shot_list(text, ShotListFormat::Edl, Path::new(".")).unwrap();
    assert!(matches!(
        shots[0].problems[0],
        ShotProblem::UnknownTimebase(_)
    ));
    assert_eq!(shots[1].problems.len(), 2);
}

const OTIO: &str = r#"{
  "OTIO_SCHEMA": "Timeline.1", "name": "t",
  "tracks": {"OTIO_SCHEMA": "Stack.1", "children": [
    {"OTIO_SCHEMA": "Track.1", "kind": "Video", "children": [
      {"OTIO_SCHEMA": "Clip.2", "name": "first",
       "source_range": {"OTIO_SCHEMA": "TimeRange.1",
          "start_time": {"OTIO_SCHEMA": "RationalTime.1", "rate": 25, "value": 25},
          "duration": {"OTIO_SCHEMA": "RationalTime.1", "rate": 25, "value": 50}},
       "active_media_reference_key": "DEFAULT_MEDIA",
       "media_references": {"DEFAULT_MEDIA": {"OTIO_SCHEMA": "ExternalReference.1",
          "target_url": "file:///media/my%20clip.mp4"}}},
      {"OTIO_SCHEMA": "Gap.1", "source_range": {"OTIO_SCHEMA": "TimeRange.1",
          "start_time": {"OTIO_SCHEMA": "RationalTime.1", "rate": 25, "value": 0},
          "duration": {"OTIO_SCHEMA": "RationalTime.1", "rate": 25, "value": 25}}},
      {"OTIO_SCHEMA": "Clip.1", "name": "second",
       "media_reference": {"OTIO_SCHEMA": "ExternalReference.1", "target_url": "b.mp4"},
       "source_range": {"OTIO_SCHEMA": "TimeRange.1",
          "start_time": {"OTIO_SCHEMA": "RationalTime.1", "rate": 0, "value": 0},
          "duration": {"OTIO_SCHEMA": "RationalTime.1", "rate": 24, "value": 24}}}
    ]},
    {"OTIO_SCHEMA": "Track.1", "kind": "Audio", "children": []}
  ]}
}"#;

#[test]
fn otio_clips_gaps_urls_and_bad_rate() {
    let shots = parse_shot_list(OTIO, ShotListFormat::Otio, Path::new("/o")).unwrap();
    assert_eq!(shots.len(), 3);
    assert_eq!(
        shots[0].source,
        ShotSource::File("/media/my clip.mp4".into())
    );
    assert_eq!(shots[0].in_point, Point::Seconds(1.0));
    assert_eq!(shots[0].out_point, Point::Seconds(3.0));
    assert_eq!(shots[0].label.as_deref(), Some("first"));
    assert_eq!(shots[1].source, ShotSource::Gap);
    assert_eq!(shots[1].out_point, Point::Seconds(1.0));
    assert_eq!(shots[2].source, ShotSource::File("/o/b.mp4".into()));
    assert!(matches!(
        shots[2].problems[0],
        ShotProblem::UnknownTimebase(_)
    ));
}

#[test]
fn otio_two_video_tracks_is_refused() {
    let two = OTIO.replace("\"kind\": \"Audio\"", "\"kind\": \"Video\"");
    let err = parse_shot_list(&two, ShotListFormat::Otio, Path::new(".")).unwrap_err();
    assert!(err.contains("2 video tracks"), "{err}");
}

#[test]
fn unknown_extension_and_unreadable_list() {
    let dir = tempfile::tempdir().unwrap();
    let p = common::write(&dir.path().join("list.txt"), "x");
    assert!(matches!(
        read_shot_list(&p),
        Err(AssembleError::ShotList { .. })
    ));
    let missing = dir.path().join("nope.json");
    let e = read_shot_list(&missing).unwrap_err().to_string();
    assert!(e.contains("nope.json") && e.contains("unreadable"), "{e}");
    let bad = common::write(&dir.path().join("bad.json"), "{not json");
    assert!(read_shot_list(&bad)
        .unwrap_err()
        .to_string()
        .contains("invalid JSON"));
}

/// Every validation error kind, reported together with shot numbers.
#[test]
fn all_validation_errors_are_collected_with_shot_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::make_source(d, "a.mp4", "testsrc2", 4, false);
    common::write(&d.join("garbage.mp4"), "this is not a video");
    common::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=duration=1",
        d.join("audio.m4a").to_str().unwrap(),
    ]);
    let list = common::write(
        &d.join("list.json"),
        r#"{"shots": [
            {"source": "a.mp4", "in": 0, "out": 1},
            {"source": "missing.mp4", "in": 0, "out": 1},
            {"source": "a.mp4", "in": 2, "out": 2},
            {"source": "a.mp4", "in": 1, "out": 9.5},
            {"source": "garbage.mp4", "in": 0, "out": 1},
            {"source": "audio.m4a", "in": 0, "out": 1},
            {"source": "a.mp4", "in": -1, "out": 1},
            {"source": "a.mp4", "in_frame": 0, "out_frame": 25, "label": "ok"}
        ]}"#,
    );
    let err = plan(read_shot_list(&list).unwrap()).unwrap_err();
    let AssembleError::Invalid(errors) = &err else {
        panic!("{err}")
    };
    let got: Vec<(usize, &ShotProblem)> = errors.iter().map(|e| (e.shot, &e.problem)).collect();
    assert_eq!(got.len(), 6, "{err}");
    assert!(matches!(got[0], (2, ShotProblem::MissingSource(_))));
    assert!(matches!(got[1], (3, ShotProblem::InNotBeforeOut { .. })));
    assert!(matches!(got[2], (4, ShotProblem::OutBeyondDuration { .. })));
    assert!(matches!(got[3], (5, ShotProblem::Unreadable { .. })));
    assert!(matches!(got[4], (6, ShotProblem::NoVideo(_))));
    assert!(matches!(got[5], (7, ShotProblem::BadPoint(_))));
    let line = err.to_string();
    assert!(
        line.contains("shot 2: ") && line.contains("missing.mp4"),
        "{line}"
    );
}

#[test]
fn frames_and_timecodes_resolve_with_the_source_rate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::make_source(d, "a.mp4", "testsrc2", 4, false);
    let edl = common::write(
        &d.join("l.edl"),
        "FCM: NON-DROP FRAME\n001 a.mp4 V C 00:00:01:05 00:00:02:00 00:00:00:00 00:00:00:20\n\
002 a.mp4 V C 00:00:01:25 00:00:02:00 00:00:00:20 00:00:01:00\n",
    );
    let err = plan(read_shot_list(&edl).unwrap()).unwrap_err();
    let AssembleError::Invalid(errors) = err else {
        panic!()
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].shot, 2);
    assert!(matches!(errors[0].problem, ShotProblem::UnknownTimebase(_)));
    let edl = common::write(
        &d.join("ok.edl"),
        "FCM: NON-DROP FRAME\n001 a.mp4 V C 00:00:01:05 00:00:02:00 00:00:00:00 00:00:00:20\n",
    );
    let shots = plan(read_shot_list(&edl).unwrap()).unwrap();
    assert!((shots[0].in_s - 1.2).abs() < 1e-9);
    assert!((shots[0].out_s - 2.0).abs() < 1e-9);
}

/// Found by the `shotlist` fuzz target (fuzz/regressions/shotlist/
/// otio-percent-before-multibyte-char): a `%` followed by a multi-byte
/// character in a file URL panicked slicing the text inside the character.
#[test]
fn otio_percent_before_a_multibyte_character_is_kept_as_written() {
    let otio = r#"{"OTIO_SCHEMA": "Track.1", "children": [{"OTIO_SCHEMA": "Clip.1",
        "media_reference": {"target_url": "file:///m/a%a\u00e9%20b%4.mp4"},
        "source_range": {"start_time": {"value": 0, "rate": 25}, "duration": {"value": 25, "rate": 25}}}]}"#;
    let shots = parse_shot_list(otio, ShotListFormat::Otio, std::path::Path::new("/")).unwrap();
    assert_eq!(
        shots[0].source,
        ShotSource::File("/m/a%a\u{e9} b%4.mp4".into())
    );
}
