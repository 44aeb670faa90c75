//! Live streams through the service: a video file inside the media root
//! played as a camera (real time, looped), the real model and SQLite.
//! Counts are checked with generous bounds, never timings.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{data_dir, http, raw_config, TestServer, TOKEN};
use peregrine_server::Config;
use serde_json::{json, Value};

const CLIP: &str = "traffic_intersection_cctv_640x480.mp4";

fn config(dir: &Path) -> Config {
    let mut raw = raw_config(dir, &data_dir().join("videos"));
    raw.token = Some(TOKEN.into());
    Config::from_raw(raw).unwrap()
}

fn post(addr: SocketAddr, body: &Value) -> (u16, Value) {
    let b = body.to_string();
    let r = http(
        addr,
        "POST",
        "/api/v1/streams",
        Some(TOKEN),
        Some(("application/json", b.as_bytes())),
    );
    (r.status, r.json())
}

fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let r = http(addr, "GET", path, Some(TOKEN), None);
    let status = r.status;
    (
        status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

fn wait_for(what: &str, mut f: impl FnMut() -> Option<Value>) -> Value {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The stream once it has analysed at least `n` frames on a run other
/// than `not_run`.
fn analysing(addr: SocketAddr, name: &str, n: u64, not_run: Option<i64>) -> Value {
    wait_for(&format!("stream {name} analysing"), || {
        let (s, v) = get(addr, &format!("/api/v1/streams/{name}"));
        assert_eq!(s, 200, "{v}");
        assert_ne!(v["state"], "failed", "{v}");
        let ok = v["frames_analysed"].as_u64().unwrap_or(0) >= n
            && v["run_id"].as_i64().is_some()
            && v["run_id"].as_i64() != not_run;
        ok.then_some(v)
    })
}

/// The first `streams` event of the SSE endpoint.
fn first_sse_event(addr: SocketAddr) -> (String, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /api/v1/streams/events HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.contains(" 200 "), "{line}");
    let mut event = String::new();
    loop {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "SSE ended early");
        let l = line.trim_end();
        if let Some(e) = l.strip_prefix("event: ") {
            event = e.to_string();
        } else if let Some(d) = l.strip_prefix("data: ") {
            return (event, serde_json::from_str(d).unwrap());
        }
    }
}

#[test]
fn bad_stream_requests_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let a = server.addr;
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"name": "", "source": CLIP}), 400, "name"),
        (json!({"name": "../x", "source": CLIP}), 400, "name"),
        (json!({"name": "events", "source": CLIP}), 400, "name"),
        (json!({"name": "a".repeat(65), "source": CLIP}), 400, "name"),
        (json!({"name": "ca m", "source": CLIP}), 400, "name"),
        (json!({"name": "cam", "source": ""}), 400, "source"),
        (
            json!({"name": "cam", "source": "file:///etc/passwd"}),
            400,
            "scheme",
        ),
        (
            json!({"name": "cam", "source": "concat:/etc/passwd"}),
            404,
            "source",
        ),
        (json!({"name": "cam", "source": "rtsp://"}), 400, "host"),
        (
            json!({"name": "cam", "source": "rtsp://x\n/y"}),
            400,
            "control",
        ),
        (
            json!({"name": "cam", "source": "/etc/passwd"}),
            403,
            "media root",
        ),
        (
            json!({"name": "cam", "source": "../../etc/passwd"}),
            403,
            "..",
        ),
        (
            json!({"name": "cam", "source": "nope.mp4"}),
            404,
            "not found",
        ),
        (json!({"name": "cam", "source": CLIP, "fps": 0}), 400, "fps"),
        (
            json!({"name": "cam", "source": CLIP, "fps": -3}),
            400,
            "fps",
        ),
        (
            json!({"name": "cam", "source": CLIP, "fps": 1e300}),
            400,
            "fps",
        ),
        (
            json!({"name": "cam", "source": CLIP, "fps": "5"}),
            400,
            "body",
        ),
        (
            json!({"name": "cam", "source": CLIP, "model": "m.onnx"}),
            404,
            "m.onnx",
        ),
        (
            json!({"name": "cam", "source": CLIP, "model": "/etc/passwd"}),
            403,
            "model folder",
        ),
        (
            json!({"name": "cam", "source": CLIP, "bogus": 1}),
            400,
            "unknown field",
        ),
        (json!({"source": CLIP}), 400, "name"),
        (
            json!({"name": "cam", "source": CLIP, "params": {"batch": 4}}),
            400,
            "does not apply",
        ),
        (
            json!({"name": "cam", "source": CLIP, "params": {"end": 4}}),
            400,
            "does not apply",
        ),
        (
            json!({"name": "cam", "source": CLIP, "params": {"bogus": 4}}),
            400,
            "params",
        ),
        (
            json!({"name": "cam", "source": CLIP, "params": {"line": ["x"]}}),
            400,
            "params",
        ),
        (
            json!({"name": "cam", "source": CLIP, "params": {"max_det": 1000000}}),
            400,
            "max_det",
        ),
        (json!([1, 2]), 400, "body"),
    ];
    for (body, status, word) in cases {
        let (s, v) = post(a, &body);
        assert_eq!(s, status, "{body}: {v}");
        let e = v["error"].as_str().unwrap_or_else(|| panic!("{body}: {v}"));
        assert!(e.contains(word), "{body}: {e:?} should mention {word:?}");
    }
    let r = http(
        a,
        "POST",
        "/api/v1/streams",
        Some(TOKEN),
        Some(("text/plain", b"{}")),
    );
    assert_eq!(r.status, 415);
    let r = http(
        a,
        "POST",
        "/api/v1/streams",
        Some(TOKEN),
        Some(("application/json", b"{\"name\": \"cam\", \"sou")),
    );
    assert_eq!(r.status, 400);
    // Same token as the jobs API.
    for (m, p) in [
        ("GET", "/api/v1/streams"),
        ("GET", "/api/v1/streams/cam"),
        ("DELETE", "/api/v1/streams/cam"),
        ("GET", "/api/v1/streams/events"),
    ] {
        assert_eq!(http(a, m, p, None, None).status, 401, "{m} {p}");
    }
    let b = json!({"name": "cam", "source": CLIP}).to_string();
    let r = http(
        a,
        "POST",
        "/api/v1/streams",
        Some("wrong"),
        Some(("application/json", b.as_bytes())),
    );
    assert_eq!(r.status, 401);
    assert_eq!(get(a, "/api/v1/streams/cam").0, 404);
    assert_eq!(
        http(a, "DELETE", "/api/v1/streams/cam", Some(TOKEN), None).status,
        404
    );
    assert_eq!(get(a, "/api/v1/streams"), (200, json!([])));
}

#[test]
fn a_stream_analyses_shows_in_metrics_and_sse_resumes_after_a_restart_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let a = server.addr;
    let (s, v) = post(
        a,
        &json!({"name": "gate-1", "source": CLIP, "fps": 5, "priority": true}),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["name"], "gate-1");
    assert_eq!(v["fps"], 5.0);
    assert_eq!(v["priority"], true);
    assert!(v["source"].as_str().unwrap().ends_with(CLIP), "{v}");
    // A name is unique.
    let (s, e) = post(a, &json!({"name": "gate-1", "source": CLIP}));
    assert_eq!(s, 409, "{e}");
    // Every stream runs on the one engine, so on its model.
    let (s, e) = post(
        a,
        &json!({"name": "other", "source": CLIP, "model": "nanodet_m_416.onnx"}),
    );
    assert_eq!(s, 409, "{e}");
    assert!(e["error"].as_str().unwrap().contains("one engine"), "{e}");
    assert_eq!(get(a, "/api/v1/streams/other").0, 404, "not kept");

    let v = analysing(a, "gate-1", 3, None);
    assert_eq!(v["state"], "live", "{v}");
    assert!(v["frames_received"].as_u64().unwrap() >= 3, "{v}");
    // Frames left undecoded are reported (none on this clip: every
    // P-frame is a reference and keyframes are 4.3 s apart).
    assert!(
        v["frames_skipped"].as_u64().unwrap() <= v["frames_received"].as_u64().unwrap(),
        "{v}"
    );
    assert!(v["latency_ms"]["p95"].as_f64().unwrap() > 0.0, "{v}");
    let run1 = v["run_id"].as_i64().unwrap();
    let (s, run) = get(a, &format!("/api/v1/runs/{run1}"));
    assert_eq!((s, run["status"].as_str()), (200, Some("live")), "{run}");

    let (s, list) = get(a, "/api/v1/streams");
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["name"], "gate-1");

    let r = http(a, "GET", "/metrics", None, None);
    let text = String::from_utf8_lossy(&r.body);
    let line = text
        .lines()
        .find(|l| l.starts_with("peregrine_live_frames_analysed_total{stream=\"gate-1\"}"))
        .unwrap_or_else(|| panic!("{text}"));
    let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 3, "{line}");
    assert!(
        text.contains("peregrine_live_state{stream=\"gate-1\",state=\"live\"} 1"),
        "{text}"
    );
    assert!(text.contains("peregrine_live_latency_seconds_count{stream=\"gate-1\"}"));

    let r = wait_for("a frame image", || {
        let r = http(
            a,
            "GET",
            "/api/v1/streams/gate-1/frame.jpg",
            Some(TOKEN),
            None,
        );
        (r.status == 200).then(|| {
            assert!(
                r.head.to_ascii_lowercase().contains("image/jpeg"),
                "{}",
                r.head
            );
            assert_eq!(&r.body[..3], &[0xFF, 0xD8, 0xFF], "JPEG magic");
            assert_eq!(&r.body[r.body.len() - 2..], &[0xFF, 0xD9], "JPEG end");
            json!(r.body.len())
        })
    });
    assert!(r.as_u64().unwrap() > 1000, "{r}");
    assert_eq!(
        http(
            a,
            "GET",
            "/api/v1/streams/nope/frame.jpg",
            Some(TOKEN),
            None
        )
        .status,
        404
    );
    assert_eq!(
        http(a, "GET", "/api/v1/streams/gate-1/frame.jpg", None, None).status,
        401
    );

    let (event, list) = first_sse_event(a);
    assert_eq!(event, "streams");
    assert_eq!(list[0]["name"], "gate-1", "{list}");
    assert!(list[0]["frames_analysed"].as_u64().unwrap() >= 3, "{list}");

    // A camera that cannot be reached: retried (its error shown) without
    // disturbing the other stream, and stopped at once.
    let (s, v) = post(
        a,
        &json!({"name": "nocam", "source": "rtsp://127.0.0.1:9/none"}),
    );
    assert_eq!(s, 201, "{v}");
    let v = wait_for("nocam's error", || {
        let (_, v) = get(a, "/api/v1/streams/nocam");
        v["error"].is_string().then_some(v)
    });
    assert!(
        matches!(v["state"].as_str(), Some("connecting" | "reconnecting")),
        "{v}"
    );
    assert_eq!(v["frames_received"], 0, "{v}");
    let r = http(a, "DELETE", "/api/v1/streams/nocam", Some(TOKEN), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["state"], "failed", "never connected");
    let (_, v) = get(a, "/api/v1/streams/gate-1");
    assert_eq!(v["state"], "live", "{v}");

    // A restart: the run is finalised, the stream comes back on a new run.
    drop(server);
    let store = peregrine_store::Store::open(&dir.path().join("p.db")).unwrap();
    let run = store.run(run1).unwrap();
    assert!(
        matches!(run.status.as_str(), "complete" | "partial"),
        "run {run1} left {:?}",
        run.status
    );
    assert!(run.frames >= 3, "run {run1}: {} frames", run.frames);
    drop(store);
    let server = TestServer::start(config(dir.path()));
    let a = server.addr;
    let v = analysing(a, "gate-1", 2, Some(run1));
    let run2 = v["run_id"].as_i64().unwrap();
    assert_eq!(v["priority"], true);

    let r = http(a, "DELETE", "/api/v1/streams/gate-1", Some(TOKEN), None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["state"], "stopped", "{v}");
    assert!(v["frames_analysed"].as_u64().unwrap() >= 2, "{v}");
    let (s, run) = get(a, &format!("/api/v1/runs/{run2}"));
    assert_eq!(s, 200);
    assert!(
        run["status"] == "complete" || run["status"] == "partial",
        "{run}"
    );
    assert!(run["frames"].as_u64().unwrap() >= 2, "{run}");
    assert_eq!(get(a, "/api/v1/streams/gate-1").0, 404);
    assert_eq!(get(a, "/api/v1/streams"), (200, json!([])));
    // A stream with its own counting line and interval: its run's counts.
    let (s, v) = post(
        a,
        &json!({"name": "counted", "source": CLIP, "fps": 5,
                "params": {"line": ["mid=0,300,640,300"], "interval": 1, "conf": 0.3}}),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["params"]["line"], json!(["mid=0,300,640,300"]), "{v}");
    let v = analysing(a, "counted", 3, None);
    let run3 = v["run_id"].as_i64().unwrap();
    assert_eq!(
        http(a, "DELETE", "/api/v1/streams/counted", Some(TOKEN), None).status,
        200
    );
    let (s, counts) = get(a, &format!("/api/v1/runs/{run3}/counts"));
    assert_eq!(s, 200, "{counts}");
    assert_eq!(counts["lines"][0]["name"], "mid", "{counts}");
    let (_, run) = get(a, &format!("/api/v1/runs/{run3}"));
    assert_eq!(
        run["params"]["conf"].as_f64().map(|c| (c * 10.0).round()),
        Some(3.0),
        "{run}"
    );

    // Deleted streams are not resumed.
    drop(server);
    let server = TestServer::start(config(dir.path()));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(server.addr, "/api/v1/streams"), (200, json!([])));
}
