//! `peregrine live` against real RTSP cameras: scripts/rtsp_server.py
//! (GStreamer's RTSP server through python3-gi, installed by
//! scripts/setup.sh) serving the test clips in real time, and the real
//! model. Counts are checked with generous bounds, never timings.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{data_dir, model, s};
use serde_json::Value;

const CLIP: &str = "traffic_intersection_cctv_640x480";
const CLIP2: &str = "ped_pets09s2l1_campus_480x360";

/// A running RTSP server, killed when dropped.
struct Rtsp {
    child: Child,
    port: u16,
    garbage_port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Rtsp {
    fn start() -> Rtsp {
        Self::start_on(free_port(), free_port())
    }

    fn start_on(port: u16, garbage_port: u16) -> Rtsp {
        Self::serve(
            port,
            garbage_port,
            &data_dir().join("videos"),
            &format!("{CLIP},{CLIP2}"),
        )
    }

    /// Serves the clips `only` (comma-separated names) of `videos`.
    fn serve(port: u16, garbage_port: u16, videos: &Path, only: &str) -> Rtsp {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/rtsp_server.py");
        // Twice: a port just released by a killed server may still be busy.
        let log_path = std::env::temp_dir().join(format!("peregrine-rtsp-{port}.log"));
        for attempt in 0..20 {
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = Command::new("/usr/bin/python3")
                .arg(&script)
                .args(["--port", &port.to_string()])
                .args(["--garbage-port", &garbage_port.to_string()])
                .args(["--only", only])
                .args(["--stall-after", "1.5"])
                .arg("--videos")
                .arg(videos)
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn()
                .expect(
                    "start scripts/rtsp_server.py with /usr/bin/python3 (run scripts/setup.sh)",
                );
            let mut line = String::new();
            let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
            if line.starts_with("ready") {
                return Rtsp {
                    child,
                    port,
                    garbage_port,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            if attempt == 19 {
                panic!(
                    "rtsp_server.py did not start: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        unreachable!()
    }

    fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{path}", self.port)
    }

    fn kill(mut self) -> (u16, u16) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.port, self.garbage_port)
    }
}

impl Drop for Rtsp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn live_cmd(db: &Path, args: &[&str]) -> Command {
    let m = model("yolox_nano.onnx");
    let mut c = Command::new(env!("CARGO_BIN_EXE_peregrine"));
    c.arg("live")
        .args(args)
        .args(["--model", s(&m), "--db", s(db), "--json"])
        .env_remove("PEREGRINE_MODEL")
        .env_remove("PEREGRINE_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

struct Output {
    code: i32,
    streams: Vec<Value>,
    summary: Value,
    stderr: String,
}

fn finish(child: Child) -> Output {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let mut lines: Vec<Value> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}\n{stderr}")))
        .collect();
    let summary = lines
        .pop()
        .and_then(|v| v.get("summary").cloned())
        .unwrap_or_else(|| panic!("no summary line: {stdout}\n{stderr}"));
    Output {
        code: out.status.code().unwrap_or(-1),
        streams: lines,
        summary,
        stderr,
    }
}

fn stream<'a>(o: &'a Output, name: &str) -> &'a Value {
    o.streams
        .iter()
        .find(|v| v["stream"] == name)
        .unwrap_or_else(|| panic!("no stream {name}: {:?}", o.streams))
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

fn db_statuses(db: &Path) -> Vec<(i64, String)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT id, status FROM runs ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn sigint(child: &Child) {
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Several RTSP cameras at once: runs are `live` while the streams run, a
/// SIGINT stops them with everything flushed and each run finalised, and
/// the JSON lines follow the interface contract.
#[test]
fn several_rtsp_streams_end_to_end_and_sigint_flushes() {
    let rtsp = Rtsp::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let (a, b) = (rtsp.url(CLIP), rtsp.url(CLIP2));
    let child = live_cmd(
        &db,
        &[&a, &b, &a, "--name", "north,south,east", "--fps", "4"],
    )
    .spawn()
    .unwrap();
    // Wait until every stream has a run, then look at the runs mid-flight.
    let t0 = Instant::now();
    let mut statuses = Vec::new();
    while t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(500));
        if db.exists() {
            statuses = db_statuses(&db);
            if statuses.len() == 3 {
                break;
            }
        }
    }
    assert_eq!(statuses.len(), 3, "a run per stream: {statuses:?}");
    assert!(
        statuses.iter().all(|(_, s)| s == "live"),
        "runs are live while streaming: {statuses:?}"
    );
    std::thread::sleep(Duration::from_secs(3));
    sigint(&child);
    let o = finish(child);
    assert_eq!(o.code, 130, "{}", o.stderr);
    assert_eq!(o.streams.len(), 3);
    let keys = [
        "stream",
        "source",
        "state",
        "frames_received",
        "frames_analysed",
        "frames_shed",
        "reconnects",
        "fps_analysed",
        "latency_ms",
    ];
    let c = rusqlite::Connection::open(&db).unwrap();
    for (name, src) in [("north", &a), ("south", &b), ("east", &a)] {
        let v = stream(&o, name);
        for k in keys {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        for k in ["p50", "p95", "p99", "max"] {
            assert!(v["latency_ms"][k].is_number(), "{v}");
        }
        assert_eq!(v["source"], **src);
        assert_eq!(v["state"], "stopped", "{v}");
        let analysed = n(v, "frames_analysed");
        assert!(analysed >= 3, "{v}");
        assert!(n(v, "frames_received") > analysed, "4 of 30 fps: {v}");
        // Every analysed frame was committed before exit.
        let run = v["run_id"].as_i64().unwrap();
        let (frames, status): (i64, String) = c
            .query_row(
                "SELECT frames, status FROM runs WHERE id = ?1",
                [run],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(frames as u64, analysed, "{v}");
        assert!(status == "complete" || status == "partial", "{status}");
    }
    let detections: i64 = c
        .query_row("SELECT count(*) FROM detections", [], |r| r.get(0))
        .unwrap();
    assert!(detections > 0);
    let total: u64 = o.streams.iter().map(|v| n(v, "frames_analysed")).sum();
    assert_eq!(o.summary["frames_analysed"], total);
    assert!(o.summary["batch_size_mean"].as_f64().unwrap() >= 1.0);
    // The stored runs work with the other commands.
    let run = stream(&o, "south")["run_id"].as_i64().unwrap().to_string();
    let r = common::peregrine(&["export", &run, "--db", s(&db)], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.is_empty());
    // A camera's frames are not kept: render says so in one line (and does
    // not try to record the camera forever).
    let out = dir.path().join("south.mp4");
    let r = common::peregrine(&["render", &run, "--db", s(&db), "-o", s(&out)], &[]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains(&b) && r.stderr.contains("live") && r.stderr.trim().lines().count() == 1,
        "{}",
        r.stderr
    );
    drop(rtsp);
}

/// A camera sending a keyframe every second, analysed at 1 fps, decodes
/// keyframes only (the RTSP demuxer flags them); the rest is received,
/// counted as skipped and never decoded, and nothing is damaged.
#[test]
fn a_camera_analysed_at_its_keyframe_rate_decodes_keyframes_only() {
    let dir = tempfile::tempdir().unwrap();
    common::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=320x240:r=25:d=20",
        "-c:v",
        "libx264",
        "-bf",
        "0",
        "-g",
        "25",
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
        s(&dir.path().join("gop25.mp4")),
    ]);
    let rtsp = Rtsp::serve(free_port(), free_port(), dir.path(), "gop25");
    let db = dir.path().join("live.db");
    let url = rtsp.url("gop25");
    let child = live_cmd(&db, &[&url, "--fps", "1", "--duration", "6"])
        .spawn()
        .unwrap();
    let o = finish(child);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v = stream(&o, "0");
    assert_eq!(v["decode_skip"], "nonkey", "{v}");
    let (received, skipped) = (n(v, "frames_received"), n(v, "frames_skipped"));
    // 25 fps for about 6 s. Until two keyframe timestamps give the
    // interval everything is decoded (over RTSP the first packet has no
    // timestamp yet: two seconds), then one frame in 25: over half skipped.
    assert!(received >= 75 && skipped * 2 >= received, "{v}");
    assert!(n(v, "frames_analysed") >= 3, "{v}");
    assert_eq!(n(v, "decode_errors"), 0, "{v}");
    assert_eq!(o.summary["frames_skipped"], skipped);
}

/// SIGTERM (how a service manager stops a process) flushes like SIGINT but
/// exits 0: the run is finished and every analysed frame is stored. The
/// live run of a file played as a camera renders like a file run.
#[test]
fn sigterm_flushes_exits_0_and_a_file_camera_run_renders() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let clip = data_dir().join("videos").join(format!("{CLIP}.mp4"));
    let child = live_cmd(
        &db,
        &[
            s(&clip),
            "--name",
            "cam",
            "--fps",
            "5",
            "--realtime",
            "--loop",
        ],
    )
    .spawn()
    .unwrap();
    let t0 = Instant::now();
    let mut stored = 0i64;
    while t0.elapsed() < Duration::from_secs(30) && stored < 5 {
        std::thread::sleep(Duration::from_millis(300));
        if db.exists() {
            let c = rusqlite::Connection::open(&db).unwrap();
            stored = c
                .query_row("SELECT count(DISTINCT frame) FROM detections", [], |r| {
                    r.get(0)
                })
                .unwrap_or(0);
        }
    }
    assert!(stored >= 5, "detections stored while live");
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let o = finish(child);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v = stream(&o, "cam");
    assert_eq!(v["state"], "stopped", "{v}");
    let analysed = n(v, "frames_analysed");
    let run = v["run_id"].as_i64().unwrap();
    let c = rusqlite::Connection::open(&db).unwrap();
    let (frames, status, with_detections): (i64, String, i64) = c
        .query_row(
            "SELECT frames, status, (SELECT count(DISTINCT frame) FROM detections WHERE run_id = ?1) \
             FROM runs WHERE id = ?1",
            [run],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(frames as u64, analysed, "every analysed frame stored: {v}");
    assert_eq!(status, "complete", "{v}");
    assert!(with_detections as u64 >= stored as u64 && with_detections as u64 <= analysed);
    // The run renders over the file it played.
    let out = dir.path().join("cam.mp4");
    let r = common::peregrine(
        &["render", &run.to_string(), "--db", s(&db), "-o", s(&out)],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let p = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "stream=nb_frames",
        ])
        .args(["-of", "csv=p=0", s(&out)])
        .output()
        .unwrap();
    let frames: u64 = String::from_utf8_lossy(&p.stdout).trim().parse().unwrap();
    assert_eq!(frames, 909, "the file's frames");
}

/// The server dies and comes back: every stream reconnects and goes on; a
/// stalled camera (session open, no packets) is detected by the stall
/// timeout; a source that answers with garbage never ends the others.
#[test]
fn reconnect_after_restart_stall_and_garbage() {
    let rtsp = Rtsp::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let (a, b) = (rtsp.url(CLIP), rtsp.url(CLIP2));
    let stall = rtsp.url(&format!("stall/{CLIP2}"));
    let garbage = format!("rtsp://127.0.0.1:{}/cam", rtsp.garbage_port);
    let child = live_cmd(
        &db,
        &[
            &a,
            &b,
            &stall,
            &garbage,
            "--name",
            "a,b,stall,garbage",
            "--fps",
            "3",
            "--duration",
            "16",
            "--stall-timeout",
            "1",
            "--open-timeout",
            "3",
            "--max-backoff",
            "1",
        ],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_secs(6));
    let (port, garbage_port) = rtsp.kill();
    let killed_at = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let rtsp = Rtsp::start_on(port, garbage_port);
    let restarted = killed_at.elapsed();
    let o = finish(child);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let c = rusqlite::Connection::open(&db).unwrap();
    for name in ["a", "b"] {
        let v = stream(&o, name);
        assert!(n(v, "reconnects") >= 1, "{v}");
        assert_eq!(v["state"], "stopped", "{v}");
        // Frames analysed after the restart (stream clock: seconds since the
        // stream started, which was before the kill).
        let run = v["run_id"].as_i64().unwrap();
        let last_t: f64 = c
            .query_row(
                "SELECT max(t) FROM detections WHERE run_id = ?1",
                [run],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            last_t > 6.0 + restarted.as_secs_f64(),
            "{name}: last detection at {last_t} s, server back after ~{:.1} s: {v}",
            6.0 + restarted.as_secs_f64()
        );
        let status: String = c
            .query_row("SELECT status FROM runs WHERE id = ?1", [run], |r| r.get(0))
            .unwrap();
        assert_eq!(status, "partial", "a run with an outage is partial");
    }
    let st = stream(&o, "stall");
    // Plays 1.5 s, stalls, detected after 1 s, reconnects: several times in
    // 16 s (the restart adds one).
    assert!(n(st, "reconnects") >= 3, "{st}");
    assert!(n(st, "frames_analysed") > 0, "{st}");
    let g = stream(&o, "garbage");
    assert_eq!(g["state"], "failed", "{g}");
    assert_eq!(n(g, "frames_analysed"), 0);
    assert!(
        g["error"].as_str().unwrap().contains("garbage")
            || g["error"].as_str().unwrap().contains("cam"),
        "{g}"
    );
    drop(rtsp);
}

/// Bad arguments: one clear line, non-zero exit, nothing started.
#[test]
fn bad_live_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let m = model("yolox_nano.onnx");
    for (args, want) in [
        (
            vec!["rtsp://h/a", "--name", "a,b"],
            "--name gives 2 names for 1 sources",
        ),
        (vec!["rtsp://h/a", "--priority", "zz"], "--priority zz"),
        (vec!["/no/such/file.mp4"], "file not found"),
        (vec!["rtsp://h/a", "--fps", "0"], "--fps"),
        (
            vec!["rtsp://h/a", "--rtsp-transport", "x"],
            "--rtsp-transport",
        ),
    ] {
        let mut full = vec!["live"];
        full.extend(args.iter().copied());
        full.extend(["--model", s(&m), "--db", s(&db)]);
        let r = common::peregrine(&full, &[]);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    }
}

/// More frames asked for than the engine can analyse: the priority
/// stream keeps (nearly) its full rate, the others are shed but keep the
/// minimum rate, and the shedding is reported.
#[test]
fn overload_keeps_the_priority_stream_at_full_rate() {
    let rtsp = Rtsp::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let a = rtsp.url(CLIP);
    let child = live_cmd(
        &db,
        &[
            &a,
            &a,
            &a,
            &a,
            &a,
            "--name",
            "p,o1,o2,o3,o4",
            "--priority",
            "p",
            "--fps",
            "10",
            "--threads",
            "1",
            "--batch",
            "1",
            "--duration",
            "12",
        ],
    )
    .spawn()
    .unwrap();
    let o = finish(child);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.summary["max_shed_level"].as_u64().unwrap() > 0,
        "{:?}",
        o.summary
    );
    let p = stream(&o, "p");
    let secs = p["connected_s"].as_f64().unwrap();
    assert!(
        p["fps_analysed"].as_f64().unwrap() >= 0.8 * 8.0,
        "priority stream at its rate: {p}\n{:?}",
        o.streams
    );
    for name in ["o1", "o2", "o3"] {
        let v = stream(&o, name);
        assert!(n(v, "frames_shed") > 0, "{v}");
        assert!(
            n(v, "frames_analysed") as f64 >= 0.5 * secs,
            "at least about 1 fps: {v}"
        );
    }
}

/// Events reach the MQTT broker (Mosquitto on 127.0.0.1:1883): the
/// stream's state, one detections summary per analysed frame, track
/// starts.
#[test]
fn events_are_published_to_mqtt() {
    let rtsp = Rtsp::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let name = format!("cam{}", std::process::id());
    let mut sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "1883",
            "-v",
            "-t",
            &format!("peregrine/{name}/#"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub (apt mosquitto-clients)");
    std::thread::sleep(Duration::from_millis(500));
    let child = live_cmd(
        &db,
        &[
            &rtsp.url(CLIP),
            "--name",
            &name,
            "--duration",
            "5",
            "--mqtt",
            "mqtt://127.0.0.1:1883",
        ],
    )
    .spawn()
    .unwrap();
    let o = finish(child);
    assert_eq!(o.code, 0, "{}", o.stderr);
    std::thread::sleep(Duration::from_millis(500));
    let _ = sub.kill();
    let out = sub.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let analysed = n(stream(&o, &name), "frames_analysed");
    let detections = text
        .lines()
        .filter(|l| l.starts_with(&format!("peregrine/{name}/detections ")))
        .count() as u64;
    assert_eq!(
        detections, analysed,
        "one summary per analysed frame:\n{text}"
    );
    assert!(
        text.contains(&format!("peregrine/{name}/state {{\"source\"")),
        "{text}"
    );
    assert!(text.contains("\"state\":\"live\""), "{text}");
    assert!(text.contains("\"state\":\"stopped\""), "{text}");
    assert!(text.contains("\"event\":\"start\""), "{text}");
}

/// A camera watching a still scene costs decode only with --motion-gate;
/// a busy scene is still analysed.
#[test]
fn motion_gate_skips_a_still_scene() {
    let dir = tempfile::tempdir().unwrap();
    let still = dir.path().join("still.mp4");
    common::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=gray:s=320x240:r=25:d=3",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        s(&still),
    ]);
    let db = dir.path().join("live.db");
    let busy = data_dir().join("videos").join(format!("{CLIP}.mp4"));
    let child = live_cmd(
        &db,
        &[
            s(&still),
            s(&busy),
            "--name",
            "still,busy",
            "--fps",
            "25",
            "--motion-gate",
            "--realtime",
            "--duration",
            "5",
        ],
    )
    .spawn()
    .unwrap();
    let o = finish(child);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let st = stream(&o, "still");
    assert_eq!(n(st, "frames_received"), 75, "{st}");
    assert!(
        n(st, "frames_analysed") <= 2,
        "about the first frame only: {st}"
    );
    // The busy stream may overload the engine: some still frames are then
    // shed before the gate sees them.
    assert!(n(st, "frames_gated") >= 30, "{st}");
    // The rest are frames the 25 fps gate did not ask for (its grid
    // starts at the stream's phase, and paced frames jitter).
    let accounted = n(st, "frames_gated") + n(st, "frames_shed") + n(st, "frames_analysed");
    assert!(
        (70..=75).contains(&accounted),
        "nearly every frame analysed, gated or shed: {st}"
    );
    let b = stream(&o, "busy");
    assert!(n(b, "frames_analysed") > n(b, "frames_gated"), "{b}");
}

/// Streams from `--config streams.toml` join those of the command line; a
/// file played as a camera ends its stream when it ends.
#[test]
fn config_file_streams() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let clip = data_dir().join("videos").join(format!("{CLIP2}.mp4"));
    let cfg = dir.path().join("streams.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[stream]]\nname = \"yard\"\nsource = {:?}\nfps = 2\npriority = true\n",
            s(&clip)
        ),
    )
    .unwrap();
    let child = live_cmd(&db, &["--config", s(&cfg), "--duration", "3", "--realtime"])
        .spawn()
        .unwrap();
    let o = finish(child);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v = stream(&o, "yard");
    assert_eq!(v["priority"], true);
    assert!(n(v, "frames_analysed") >= 2, "{v}");
    assert!(
        v["fps_analysed"].as_f64().unwrap() <= 3.0,
        "2 fps asked: {v}"
    );

    std::fs::write(&cfg, "[[stream]]\nname = \"x\"\nsorce = \"rtsp://h/a\"\n").unwrap();
    let m = model("yolox_nano.onnx");
    let r = common::peregrine(
        &[
            "live",
            "--config",
            s(&cfg),
            "--model",
            s(&m),
            "--db",
            s(&db),
        ],
        &[],
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("streams.toml") && r.stderr.contains("sorce"),
        "{}",
        r.stderr
    );
}

/// Lines count on live streams with the file path's processors: a file
/// played as a camera with a counting line stores its intervals with the
/// run, and replaying the stored run through `counts` gives the same
/// document.
#[test]
fn live_streams_count_lines_like_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let clip = data_dir()
        .join("videos")
        .join("traffic_highway_1280x720.mp4");
    let line = "road=250,300,1000,300";
    let child = live_cmd(
        &db,
        &[
            s(&clip),
            "--name",
            "highway",
            "--fps",
            "10",
            "--realtime",
            "--duration",
            "8",
            "--line",
            line,
            "--interval",
            "2",
        ],
    )
    .spawn()
    .unwrap();
    let o = finish(child);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let run = db_statuses(&db)[0].0.to_string();
    let counts = |extra: &[&str]| -> Value {
        let mut args = vec!["counts", &run, "--json", "--db", s(&db)];
        args.extend_from_slice(extra);
        let r = common::peregrine(&args, &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap()
    };
    let stored = counts(&[]);
    let road = &stored["lines"][0];
    assert_eq!(road["name"], "road", "{stored}");
    let crossed = n(road, "in") + n(road, "out");
    assert!(crossed >= 1, "cars cross the road line: {stored}");
    assert!(
        stored["intervals"].as_array().unwrap().len() >= 2,
        "{stored}"
    );
    let replayed = counts(&["--line", line, "--interval", "2"]);
    assert_eq!(replayed["lines"], stored["lines"]);
}
