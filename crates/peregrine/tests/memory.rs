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

/// Peak RSS in MB and the result of a `peregrine` invocation that may fail.
fn peak_rss_mb_of_failure(args: &[&str]) -> (f64, i32, String) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "PEAKRSS=%M", env!("CARGO_BIN_EXE_peregrine")])
        .args(args)
        .output()
        .expect("/usr/bin/time");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let (text, kb) = err.rsplit_once("PEAKRSS=").unwrap();
    let kb: f64 = kb.trim().parse().unwrap();
    (
        kb / 1024.0,
        out.status.code().unwrap_or(-1),
        text.to_string(),
    )
}

/// Regression: a 750 KB 16000×16000 video took 2.3 GB to analyse. Frames
/// over the pixel limit are refused before any frame buffer exists, from the
/// start or when the size changes mid-stream; `--max-pixels` moves the limit.
#[test]
fn frames_over_the_pixel_limit_are_refused_before_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let big = d.join("big.h264");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=black:s=16000x16000:r=5:d=0.2",
        "-c:v",
        "libx264",
        "-threads",
        "1",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-x264-params",
        "ref=1:rc-lookahead=0:sync-lookahead=0",
        "-pix_fmt",
        "yuv420p",
        s(&big),
    ]);
    let big_mp4 = d.join("big.mp4");
    ffmpeg(&["-r", "5", "-i", s(&big), "-c", "copy", s(&big_mp4)]);
    // A small stream that switches to the huge size after 2 s.
    let small = d.join("small.h264");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=320x240:r=5:d=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        s(&small),
    ]);
    let mut joined = std::fs::read(&small).unwrap();
    joined.extend(std::fs::read(&big).unwrap());
    let joined_h264 = d.join("joined.h264");
    std::fs::write(&joined_h264, joined).unwrap();
    let switch = d.join("switch.ts");
    ffmpeg(&["-r", "5", "-i", s(&joined_h264), "-c", "copy", s(&switch)]);

    let m = model("yolox_nano.onnx");
    let db = d.join("p.db");
    for input in [&big_mp4, &switch] {
        let (mb, code, stderr) =
            peak_rss_mb_of_failure(&["analyze", s(input), "--model", s(&m), "--db", s(&db), "-q"]);
        let name = input.file_name().unwrap().to_str().unwrap();
        assert_eq!(code, 1, "{stderr}");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("peregrine:"))
            .unwrap_or_default();
        assert!(
            line.contains(name) && line.contains("16000x16000") && line.contains("35389440"),
            "{stderr}"
        );
        // One 16000×16000 YUV frame alone is 384 MB.
        assert!(mb < 350.0, "{name}: peak RSS {mb:.0} MB");
    }

    // The limit is configurable: 640×480 is 307200 pixels.
    let v = video("traffic_intersection_cctv_640x480.mp4");
    let run = |limit: &str| {
        peregrine(
            &[
                "analyze",
                s(&v),
                "--model",
                s(&m),
                "--db",
                s(&db),
                "-q",
                "--end",
                "0.2",
                "--max-pixels",
                limit,
            ],
            &[],
        )
    };
    let r = run("300000");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("640x480") && r.stderr.contains("300000"),
        "{}",
        r.stderr
    );
    let r = run("307200");
    assert_eq!(r.code, 0, "{}", r.stderr);
}
