//! Seed inputs of each target: real files from the test data
//! (`PEREGRINE_TEST_DATA`) and the test fixtures, read where they lie (never
//! copied into the repository), plus small hand-written examples of what
//! the data lacks. `fuzz/run.sh` writes them into the corpus folders; the
//! replay test runs every target over them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::jobs::{data_dir, multipart_body};

/// A seed: a name (for the corpus file and for failures) and its bytes,
/// selector byte included.
pub type Seed = (String, Vec<u8>);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn with_selector(sel: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.push(sel);
    v.extend_from_slice(bytes);
    v
}

/// Files under `dir` (recursively) whose names satisfy `keep`, sorted.
fn files(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "img1") {
                continue;
            }
            out.extend(files(&p, keep));
        } else if keep(&p) {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn named(prefix: &str, p: &Path) -> String {
    let name: String = p
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{prefix}-{}", name.trim_start_matches('_'))
}

const SHOT_JSON: &str = r#"{"shots": [
  {"source": "a.mp4", "in": 1.5, "out": 4.0, "label": "intro"},
  {"source": "/media/b.mp4", "in_frame": 10, "out_frame": 70}
]}"#;
const SHOT_TOML: &str = "[[shots]]\nsource = \"a.mp4\"\nin = 0.0\nout = 2.5\n\n[[shots]]\nsource = \"b.mp4\"\nin_frame = 5\nout_frame = 50\nlabel = \"b\"\n";
const SHOT_EDL: &str = "TITLE: fuzz\nFCM: NON-DROP FRAME\n\n001  AX       V     C        00:00:01:00 00:00:03:00 01:00:00:00 01:00:02:00\n* FROM CLIP NAME: a.mp4\n002  BL       V     C        00:00:00:00 00:00:01:00 01:00:02:00 01:00:03:00\n003  AX       AA/V  C        00:00:10;02 00:00:12;00 01:00:03:00 01:00:05:00\n* SOURCE FILE: clips/b%20c.mov\n004  AX       A     C        00:00:00:00 00:00:01:00 01:00:05:00 01:00:06:00\n";
const SHOT_OTIO: &str = r#"{"OTIO_SCHEMA": "Timeline.1", "name": "t", "tracks": {"OTIO_SCHEMA": "Stack.1", "children": [
 {"OTIO_SCHEMA": "Track.1", "kind": "Video", "children": [
  {"OTIO_SCHEMA": "Clip.1", "name": "a", "source_range": {"OTIO_SCHEMA": "TimeRange.1",
    "start_time": {"OTIO_SCHEMA": "RationalTime.1", "value": 24, "rate": 24},
    "duration": {"OTIO_SCHEMA": "RationalTime.1", "value": 48, "rate": 24}},
   "media_reference": {"OTIO_SCHEMA": "ExternalReference.1", "target_url": "file:///media/a%20b.mp4"}},
  {"OTIO_SCHEMA": "Gap.1", "source_range": {"OTIO_SCHEMA": "TimeRange.1",
    "start_time": {"OTIO_SCHEMA": "RationalTime.1", "value": 0, "rate": 25},
    "duration": {"OTIO_SCHEMA": "RationalTime.1", "value": 25, "rate": 25}}},
  {"OTIO_SCHEMA": "Clip.2", "name": "c", "active_media_reference_key": "DEFAULT_MEDIA",
   "media_references": {"DEFAULT_MEDIA": {"OTIO_SCHEMA": "ExternalReference.1", "target_url": "c.mp4",
    "available_range": {"OTIO_SCHEMA": "TimeRange.1",
     "start_time": {"OTIO_SCHEMA": "RationalTime.1", "value": 0, "rate": 30000},
     "duration": {"OTIO_SCHEMA": "RationalTime.1", "value": 60060, "rate": 30000}}}}},
  {"OTIO_SCHEMA": "Transition.1"}
 ]},
 {"OTIO_SCHEMA": "Track.1", "kind": "Audio", "children": []}
]}}"#;

const COCO_GT: &str = r#"{"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 7}],
"categories": [{"id": 1, "name": "person"}, {"id": 2}],
"annotations": [
 {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10.5, 20, 30, 60], "area": 1800, "iscrowd": 0},
 {"id": 2, "image_id": 7, "category_id": 2, "bbox": [0, 0, 5, 5], "iscrowd": true},
 {"id": 3, "image_id": 7, "category_id": 1, "bbox": [100, 100, 40, 80]}]}"#;
const COCO_DETS: &str = r#"[{"image_id": 1, "category_id": 1, "bbox": [11, 21, 29, 58], "score": 0.93},
{"image_id": 2, "category_id": 3, "bbox": [1, 1, 28, 19], "score": 0.4},
{"image_id": 2, "category_id": 9, "bbox": [0, 0, 1, 1], "score": 0.1}]"#;

const STREAMS_TOML: &str = "[[stream]]\nname = \"gate\"\nsource = \"rtsp://cam1.local/stream\"\nfps = 5.0\npriority = true\n\n[[stream]]\nname = \"yard\"\nsource = \"/media/yard.mp4\"\nrank = 2\nmotion_gate = true\n";
const SERVER_TOML: &str = "listen = \"127.0.0.1:8080\"\ndb = \"peregrine.db\"\nmedia_roots = [\"/media\"]\nworkers = 2\nmax_upload_mb = 512\nmax_pixels = 8294400\nallowed_hosts = [\"peregrine.example.com\"]\n";

const SEQINFO: &str = "[Sequence]\nname=FUZZ-01\nimDir=img1\nframeRate=25\nseqLength=2\nimWidth=640\nimHeight=480\nimExt=.jpg\n";

/// Job bodies exercising each group of parameters.
const JOBS: &[&str] = &[
    r#"{"video": "traffic_highway_cctv_320x240.avi"}"#,
    r#"{"video": "traffic_highway_cctv_320x240.avi", "params": {"conf": 0.4, "iou": 0.5, "classes": ["car", "person", "2"], "end": 2.0, "every": 3}, "priority": 5}"#,
    r#"{"video": "traffic_highway_cctv_320x240.avi", "params": {"mode": "fast", "fps": 5, "start": 1, "max_det": 50, "agnostic": true, "batch": 2, "threads": 1, "infer_workers": 1, "decode_threads": 1}}"#,
    r#"{"video": "traffic_highway_cctv_320x240.avi", "params": {"line": ["a=0,120,320,120"], "zone": ["z=10,10;200,10;200,200;10,200"], "anchor": "center", "interval": 10, "track_thresh": 0.5, "match_thresh": 0.8, "track_buffer": 30}}"#,
    r#"{"video": "traffic_highway_cctv_320x240.avi", "params": {"calibration": [{"image": [0, 0], "ground": [0, 0]}, {"image": [320, 0], "ground": [10, 0]}, {"image": [320, 240], "ground": [10, 20]}, {"image": [0, 240], "ground": [0, 20]}]}}"#,
    r#"{"video": "gait_sideon_whitewall_640x352.mp4", "params": {"family": "yolox", "labels": ["person", "bicycle", "car"], "no_track": true, "max_pixels": 300000}}"#,
    r#"{"video": "traffic_highway_cctv_320x240.avi", "params": {"labels": "coco.names", "gait": {"mode": "fast", "height": 1.7}, "track_per_class": true}}"#,
    r#"{"video": "../videos/traffic_highway_cctv_320x240.avi", "model": "yolox_nano.onnx", "params": null, "priority": -100}"#,
    r#"{"video": "/etc/passwd"}"#,
];

/// Short stream copies of the test videos (real bitstreams in their real
/// containers, a few frames each), made with the `ffmpeg` command when it
/// is there, and the first 64 KiB of each video as it lies.
fn video_seeds() -> Vec<Seed> {
    let videos = files(&data_dir().join("videos"), &|_| true);
    let tmp = tempfile::tempdir().expect("temporary folder");
    let mut out = Vec::new();
    for (i, v) in videos.iter().enumerate() {
        let ext = v.extension().and_then(|e| e.to_str()).unwrap_or("bin");
        let sel = crate::video::extension_selector(ext);
        let clip = tmp.path().join(format!("clip{i}.{ext}"));
        let made = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(v)
            .args(["-map", "0:v:0", "-frames:v", "5", "-c", "copy"])
            .arg(&clip)
            .status()
            .is_ok_and(|s| s.success());
        if let Some(bytes) = made.then(|| std::fs::read(&clip).ok()).flatten() {
            out.push((named("clip", v), with_selector(sel, &bytes)));
        }
        if let Ok(bytes) = std::fs::read(v) {
            let head = &bytes[..bytes.len().min(64 * 1024)];
            out.push((named("head", v), with_selector(sel, head)));
        }
    }
    out
}

/// The seeds of target `name`.
pub fn seeds(name: &str) -> Vec<Seed> {
    let data = data_dir();
    let read_all = |prefix: &str, sel: Option<u8>, paths: Vec<PathBuf>| -> Vec<Seed> {
        paths
            .iter()
            .filter_map(|p| {
                let b = std::fs::read(p).ok()?;
                Some((
                    named(prefix, p),
                    sel.map_or_else(|| b.clone(), |s| with_selector(s, &b)),
                ))
            })
            .collect()
    };
    let inline = |items: &[(&str, u8, &str)]| -> Vec<Seed> {
        items
            .iter()
            .map(|(n, s, t)| (n.to_string(), with_selector(*s, t.as_bytes())))
            .collect()
    };
    match name {
        "shotlist" => inline(&[
            ("json", 0, SHOT_JSON),
            ("toml", 1, SHOT_TOML),
            ("edl", 2, SHOT_EDL),
            ("otio", 3, SHOT_OTIO),
        ]),
        "motfile" => {
            let txt = |p: &Path| p.extension().is_some_and(|e| e == "txt");
            let mut paths = files(&data.join("mot"), &txt);
            paths.extend(files(&repo().join("crates/eval/tests/fixtures"), &txt));
            paths.extend(files(&repo().join("crates/track/tests/fixtures"), &txt));
            let mut out = read_all("gt", Some(0), paths.clone());
            out.extend(read_all("pred", Some(1), paths));
            out
        }
        "seqinfo" => {
            let mut out = read_all(
                "data",
                None,
                files(&data.join("mot"), &|p| {
                    p.file_name().is_some_and(|n| n == "seqinfo.ini")
                }),
            );
            out.push(("inline".into(), SEQINFO.as_bytes().to_vec()));
            out
        }
        "coco" => inline(&[("gt", 0, COCO_GT), ("dets", 1, COCO_DETS)]),
        "labels" => {
            let mut out = read_all(
                "data",
                None,
                files(&data.join("models"), &|p| {
                    p.extension().is_some_and(|e| e == "names")
                }),
            );
            out.push(("inline".into(), b"person\r\n\n  car \nCar\n7\n".to_vec()));
            out
        }
        "config_toml" => inline(&[("streams", 0, STREAMS_TOML), ("server", 1, SERVER_TOML)]),
        "job_request" => {
            let mut out: Vec<Seed> = JOBS
                .iter()
                .enumerate()
                .map(|(i, j)| (format!("json{i}"), with_selector(0, j.as_bytes())))
                .collect();
            let video = std::fs::read(data.join("videos/traffic_highway_cctv_320x240.avi"))
                .unwrap_or_default();
            let head = &video[..video.len().min(48 * 1024)];
            out.push((
                "multipart".into(),
                with_selector(
                    1,
                    &multipart_body(&[
                        ("file", Some("v.avi"), head),
                        ("params", None, br#"{"conf": 0.5, "end": 1}"#),
                        ("priority", None, b"3"),
                        ("model", None, b"yolox_nano.onnx"),
                    ]),
                ),
            ));
            out.push((
                "multipart-not-video".into(),
                with_selector(1, &multipart_body(&[("file", Some("x.txt"), b"hello")])),
            ));
            out
        }
        "video" => video_seeds(),
        other => panic!("no seeds for {other:?}"),
    }
}
