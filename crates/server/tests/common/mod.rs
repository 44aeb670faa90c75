//! Shared test helpers: configs, seeded runs, a tiny HTTP/1.0 client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};

use peregrine_core::{BBox, Detection, FrameMeta};
use peregrine_server::{Config, RawConfig};
use peregrine_store::{NewRun, RunOutcome, RunStatus, Store, VideoRecord};

/// Sends `req` to the router in process: the status and the body as JSON
/// (or as a JSON string when it is not JSON).
pub async fn call(
    app: &axum::Router,
    req: axum::http::Request<axum::body::Body>,
) -> (axum::http::StatusCode, serde_json::Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(
        String::from_utf8_lossy(&bytes).into_owned(),
    ));
    (status, v)
}

pub const TOKEN: &str = "test-token-123";

/// `../shared/data` from the repository root, or `PEREGRINE_TEST_DATA`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("PEREGRINE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

pub fn model_path() -> PathBuf {
    data_dir().join("models/yolox_nano.onnx")
}

pub fn raw_config(dir: &Path, media: &Path) -> RawConfig {
    RawConfig {
        listen: Some("127.0.0.1:0".into()),
        db: Some(dir.join("p.db")),
        media_roots: Some(vec![media.to_path_buf()]),
        model: Some(model_path()),
        upload_dir: Some(dir.join("uploads")),
        ..Default::default()
    }
}

pub fn config(dir: &Path, media: &Path) -> Config {
    Config::from_raw(raw_config(dir, media)).unwrap()
}

/// Stores a finished run with `frames` frames of `per_frame` detections
/// (class alternating person/car, track = index) and returns its id.
pub fn seed_run(db: &Path, frames: u64, per_frame: usize) -> i64 {
    seed_run_with(db, frames, per_frame, serde_json::json!({"track": {}}))
}

/// A seeded run with the given run parameters (e.g. custom `labels`).
pub fn seed_run_with(db: &Path, frames: u64, per_frame: usize, params: serde_json::Value) -> i64 {
    let video = VideoRecord {
        path: "/nonexistent/seeded.mp4".into(),
        content_hash: format!("seed-{frames}-{per_frame}"),
        size: 1,
        duration: frames as f64 / 25.0,
        fps: 25.0,
        width: 640,
        height: 480,
        codec: "h264".into(),
        frames_expected: frames,
    };
    seed_run_of(db, &video, frames, per_frame, params)
}

/// A seeded run of a real video file (its fingerprint, the given size).
pub fn seed_run_on_file(db: &Path, video: &Path, width: u32, height: u32, frames: u64) -> i64 {
    let fp = peregrine_media::file_fingerprint(video).unwrap();
    let record = VideoRecord {
        path: video.display().to_string(),
        content_hash: fp.hash,
        size: fp.size,
        duration: frames as f64 / 25.0,
        fps: 25.0,
        width,
        height,
        codec: "h264".into(),
        frames_expected: frames,
    };
    seed_run_of(db, &record, frames, 2, serde_json::json!({"track": {}}))
}

fn seed_run_of(
    db: &Path,
    video: &VideoRecord,
    frames: u64,
    per_frame: usize,
    params: serde_json::Value,
) -> i64 {
    let mut store = Store::open(db).unwrap();
    let video_id = store.upsert_video(video).unwrap();
    let run = store
        .begin_run(&NewRun {
            video_id,
            cache_key: format!("seed-{frames}-{per_frame}-{}", rand_suffix()),
            model_path: "seed.onnx".into(),
            model_hash: "seed".into(),
            params,
            versions: serde_json::json!({}),
        })
        .unwrap();
    let mut batch: Vec<(FrameMeta, Vec<Detection>)> = Vec::new();
    for f in 0..frames {
        let dets = (0..per_frame)
            .map(|i| {
                let mut d = Detection::new(
                    if i % 2 == 0 { 0 } else { 2 },
                    0.5 + (i % 5) as f32 / 10.0,
                    BBox::new(
                        i as f32,
                        f as f32 % 400.0,
                        i as f32 + 20.0,
                        f as f32 % 400.0 + 40.0,
                    ),
                );
                d.track_id = Some(i as u32 + 1);
                d
            })
            .collect();
        batch.push((
            FrameMeta {
                source: 0,
                index: f,
                pts: f as f64 / 25.0,
                width: 640,
                height: 480,
            },
            dets,
        ));
        if batch.len() == 256 || f + 1 == frames {
            store
                .insert_frames(run, batch.iter().map(|(m, d)| (m, d.as_slice())))
                .unwrap();
            batch.clear();
        }
    }
    store
        .finish_run(
            run,
            &RunOutcome {
                status: RunStatus::Complete,
                error: None,
                frames,
                detections: frames * per_frame as u64,
                tracks: per_frame as u64,
                fps: 100.0,
                timings: serde_json::json!({}),
                decode: serde_json::json!({}),
            },
        )
        .unwrap();
    run
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

fn write_request(
    s: &mut TcpStream,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, &[u8])>,
) {
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some((ctype, b)) = body {
        req.push_str(&format!(
            "Content-Type: {ctype}\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    if let Some((_, b)) = body {
        s.write_all(b).unwrap();
    }
}

/// One request over HTTP/1.0 (the server closes the connection after it).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, &[u8])>,
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).unwrap();
    write_request(&mut s, method, path, token, body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    HttpResponse {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    }
}

/// Follows an SSE stream; returns every (event, data) until the `end` event.
pub fn follow_sse(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> Vec<(String, serde_json::Value)> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(300)))
        .unwrap();
    write_request(&mut s, "GET", path, token, None);
    let mut r = BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if line.starts_with("HTTP/") {
            assert!(line.contains(" 200 "), "SSE status: {line}");
        }
    }
    let mut events = Vec::new();
    let mut event = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let l = line.trim_end();
        if let Some(e) = l.strip_prefix("event: ") {
            event = e.to_string();
        } else if let Some(d) = l.strip_prefix("data: ") {
            events.push((event.clone(), serde_json::from_str(d).unwrap()));
            if event == "end" {
                break;
            }
        }
    }
    events
}

pub fn multipart(fields: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "XpEReGrInEbOuNdArY";
    let mut body = Vec::new();
    for (name, filename, data) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The real service on a loopback port, in its own runtime thread;
/// stopped (gracefully) when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(config: Config) -> TestServer {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(l.local_addr().unwrap()).unwrap();
                peregrine_server::serve_on(l, config, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        TestServer {
            addr: addr_rx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
