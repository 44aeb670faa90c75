//! `peregrine assemble` through the binary: the interface scripts rely on.

mod common;

use common::{ffmpeg, peregrine, s};

fn source(dir: &std::path::Path) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=4",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000:duration=4",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-c:a",
        "aac",
        s(&dir.join("a.mp4")),
    ]);
}

#[test]
fn json_summary_reports_the_path_taken() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    source(d);
    let list = d.join("l.json");
    std::fs::write(
        &list,
        r#"{"shots": [{"source": "a.mp4", "in": 1, "out": 3, "label": "x"},
                      {"source": "a.mp4", "in": 0.5, "out": 1.5}]}"#,
    )
    .unwrap();
    let out = d.join("o.mp4");
    let r = peregrine(&["assemble", s(&list), "-o", s(&out), "--json"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = &r.json_lines()[0];
    assert_eq!(v["shots"], 2);
    assert_eq!(v["mode"], "copy");
    assert_eq!(v["reencoded_shots"], 1);
    assert!((v["duration"].as_f64().unwrap() - 3.0).abs() < 1e-6, "{v}");
    assert!(v["seconds"].as_f64().unwrap() > 0.0);

    let r = peregrine(
        &[
            "assemble",
            s(&list),
            "-o",
            s(&out),
            "--json",
            "--mode",
            "normalize",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json_lines()[0]["mode"], "normalize");
}

#[test]
fn every_bad_shot_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    source(d);
    let list = d.join("bad.json");
    std::fs::write(
        &list,
        r#"{"shots": [{"source": "missing.mp4", "in": 0, "out": 1},
                      {"source": "a.mp4", "in": 2, "out": 1},
                      {"source": "a.mp4", "in": 0, "out": 9}]}"#,
    )
    .unwrap();
    let out = d.join("o.mp4");
    let r = peregrine(&["assemble", s(&list), "-o", s(&out)], &[]);
    assert_eq!(r.code, 1);
    for needle in [
        "shot 1",
        "missing.mp4",
        "shot 2",
        "shot 3",
        "3 invalid shot(s)",
    ] {
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
    }
    assert!(!out.exists());

    let other = d.join("list.xyz");
    std::fs::write(&other, "shots").unwrap();
    let r = peregrine(&["assemble", s(&other), "-o", s(&out)], &[]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("list.xyz"), "{}", r.stderr);

    let r = peregrine(&["assemble", s(&d.join("nope.json")), "-o", s(&out)], &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("nope.json"), "{}", r.stderr);
    assert!(!out.exists());
}

/// `-o x.gif` (a container that cannot hold the H.264 the assembly writes)
/// fails with one line naming the output and the cause, not a temporary file.
#[test]
fn output_container_that_cannot_hold_h264_is_named_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    source(d);
    let list = d.join("l.json");
    std::fs::write(
        &list,
        r#"{"shots": [{"source": "a.mp4", "in": 0, "out": 1}]}"#,
    )
    .unwrap();
    for (name, cause) in [
        ("x.gif", "the gif container cannot hold h264 video"),
        (
            "x.txt",
            "no video container is known for the extension .txt",
        ),
    ] {
        let out = d.join(name);
        let r = peregrine(&["assemble", s(&list), "-o", s(&out)], &[]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(
            r.stderr.contains(&format!("{}: {cause}", out.display())),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("partial"), "{}", r.stderr);
        assert!(!out.exists());
    }
}

#[test]
fn json_summary_counts_copied_and_encoded_shots_of_mixed_sources() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    source(d);
    // The same source with 4:3 pixels: one insert in another format.
    ffmpeg(&[
        "-i",
        s(&d.join("a.mp4")),
        "-vf",
        "setsar=4/3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-c:a",
        "copy",
        s(&d.join("b.mp4")),
    ]);
    let list = d.join("l.json");
    std::fs::write(
        &list,
        r#"{"shots": [{"source": "a.mp4", "in": 0, "out": 1}, {"source": "b.mp4", "in": 1, "out": 2},
                      {"source": "a.mp4", "in": 2, "out": 3}]}"#,
    )
    .unwrap();
    let out = d.join("o.mp4");
    let r = peregrine(&["assemble", s(&list), "-o", s(&out), "--json"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = &r.json_lines()[0];
    assert_eq!(v["mode"], "mixed", "{v}");
    assert_eq!(
        (v["copied_shots"].as_u64(), v["encoded_shots"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        (v["copied_frames"].as_u64(), v["encoded_frames"].as_u64()),
        (Some(50), Some(25))
    );
    assert_eq!(v["audio_converted_shots"], 0);
    assert!(
        v["target"].as_str().unwrap().contains("320x240 SAR 1:1"),
        "{v}"
    );

    let r = peregrine(&["assemble", s(&list), "-o", s(&out)], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("2 shots copied, 1 encoded to"),
        "{}",
        r.stderr
    );
}
