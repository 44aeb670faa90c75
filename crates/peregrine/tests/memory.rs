//! Peak memory must not grow with video length.

mod common;

use std::process::Command;

use common::*;

/// Peak RSS in MB of a `peregrine` invocation, from /usr/bin/time.
fn peak_rss_mb(args: &[&str]) -> f64 {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "PEAKRSS=%M", env!("CARGO_BIN_EXE_peregrine")])
        .args(args)
        .output()
        .expect("/usr/bin/time (Debian package `time`, installed by scripts/setup.sh)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let kb: f64 = err
        .rsplit("PEAKRSS=")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kb / 1024.0
}

fn concat(dir: &std::path::Path, src: &std::path::Path, times: usize) -> std::path::PathBuf {
    let list = dir.join(format!("list{times}.txt"));
    std::fs::write(&list, format!("file '{}'\n", src.display()).repeat(times)).unwrap();
    let out = dir.join(format!("x{times}.mp4"));
    ffmpeg(&[
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        s(&list),
        "-c",
        "copy",
        s(&out),
    ]);
    out
}

/// Regression: a reused AVPacket was not released before the next
/// `av_read_frame`, leaking every packet (about 30 MB over this input).
#[test]
fn decoding_ten_times_the_video_needs_no_more_memory() {
    let dir = tempfile::tempdir().unwrap();
    let src = video("sport_soccer_broadcast_1280x720.mp4");
    let long = concat(dir.path(), &src, 10);
    let short_mb = peak_rss_mb(&["bench", "decode", s(&src)]);
    let long_mb = peak_rss_mb(&["bench", "decode", s(&long)]);
    assert!(
        long_mb < short_mb * 1.1 + 2.0,
        "decode peak RSS {short_mb:.1} MB -> {long_mb:.1} MB"
    );
}

#[test]
fn analysing_a_longer_video_needs_no_more_memory() {
    let dir = tempfile::tempdir().unwrap();
    let src = video("traffic_highway_cctv_320x240.avi");
    let list = dir.path().join("list.txt");
    std::fs::write(&list, format!("file '{}'\n", src.display()).repeat(4)).unwrap();
    let long = dir.path().join("x4.avi");
    ffmpeg(&[
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        s(&list),
        "-c",
        "copy",
        s(&long),
    ]);
    let m = model("yolox_nano.onnx");
    let run = |input: &std::path::Path, db: &str| {
        let db = dir.path().join(db);
        peak_rss_mb(&[
            "analyze",
            s(input),
            "--model",
            s(&m),
            "--db",
            s(&db),
            "-q",
            "--every",
            "2",
        ])
    };
    let short_mb = run(&src, "a.db");
    let long_mb = run(&long, "b.db");
    assert!(
        long_mb < short_mb * 1.1,
        "analyze peak RSS {short_mb:.1} MB -> {long_mb:.1} MB"
    );
}
