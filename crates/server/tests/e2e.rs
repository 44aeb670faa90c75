//! The real server on a loopback port, real analyses of the shared test
//! videos: SSE to completion, paging every detection against the stored
//! run (the rows `peregrine export` writes), cancellation, and a crash
//! (SIGKILL) with queued and running jobs.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use peregrine_server::{Config, RawConfig};
use serde_json::{json, Value};

use common::*;

fn videos() -> PathBuf {
    data_dir().join("videos")
}

fn server_config(dir: &Path, token: bool) -> Config {
    let mut raw = raw_config(dir, &videos());
    if token {
        raw.token = Some(TOKEN.into());
    }
    Config::from_raw(raw).unwrap()
}

fn submit(addr: SocketAddr, token: Option<&str>, body: Value) -> Value {
    let b = body.to_string();
    let r = http(
        addr,
        "POST",
        "/api/v1/jobs",
        token,
        Some(("application/json", b.as_bytes())),
    );
    assert!(
        r.status == 202 || r.status == 200,
        "{}: {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

fn job(addr: SocketAddr, token: Option<&str>, id: i64) -> Value {
    let r = http(addr, "GET", &format!("/api/v1/jobs/{id}"), token, None);
    assert_eq!(r.status, 200);
    r.json()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(240),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn stored_rows(db: &Path, run: i64) -> Vec<Value> {
    let store = peregrine_store::Store::open(db).unwrap();
    let labels = peregrine_core::Labels::coco();
    let mut rows = Vec::new();
    store
        .for_each_detection::<()>(run, |d| {
            let item = peregrine_server::api::DetectionItem {
                frame: d.frame,
                t: d.t,
                class: labels.name(d.class_id).into(),
                class_id: d.class_id,
                score: d.score,
                x1: d.bbox.x1,
                y1: d.bbox.y1,
                x2: d.bbox.x2,
                y2: d.bbox.y2,
                track_id: d.track_id,
                keypoints: None,
            };
            rows.push(serde_json::from_str(&serde_json::to_string(&item).unwrap()).unwrap());
            Ok(())
        })
        .unwrap()
        .unwrap();
    rows
}

#[test]
fn submit_follow_sse_to_completion_and_page_every_detection() {
    let dir = tempfile::tempdir().unwrap();
    let config = server_config(dir.path(), true);
    let db = config.db.clone();
    let server = TestServer::start(config);
    let t = Some(TOKEN);
    let req = json!({"video": "ped_pets09s2l1_campus_480x360.mp4", "params": {"end": 3}});
    let created = submit(server.addr, t, req.clone());
    assert_eq!(created["cached"], false);
    let id = created["id"].as_i64().unwrap();

    let events = follow_sse(server.addr, &format!("/api/v1/jobs/{id}/events"), t);
    let (last_name, last) = events.last().unwrap();
    assert_eq!(last_name, "end");
    assert_eq!(last["state"], "done", "{last}");
    assert_eq!(last["progress"], 1.0);
    assert!(last["timings"]["infer"]["count"].as_u64().unwrap() > 0);
    let run = last["run_id"].as_i64().unwrap();

    // Every detection through keyset pages equals the stored run.
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/runs/{run}/detections?limit=37&cursor={c}"),
            None => format!("/api/v1/runs/{run}/detections?limit=37"),
        };
        let page = http(server.addr, "GET", &path, t, None).json();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.into()),
            None => break,
        }
    }
    let expected = stored_rows(&db, run);
    assert!(
        expected.len() > 37,
        "too few detections to page: {}",
        expected.len()
    );
    assert_eq!(items, expected);

    // Identical request: the same job, already done.
    let again = submit(server.addr, t, req);
    assert_eq!(again["id"], created["id"]);
    assert_eq!(again["cached"], true);

    let frame = http(
        server.addr,
        "GET",
        &format!("/api/v1/runs/{run}/frames/5.jpg"),
        t,
        None,
    );
    assert_eq!(frame.status, 200);
    assert_eq!(&frame.body[..2], &[0xFF, 0xD8], "not a JPEG");
    // Drawn as the pipeline's renderer draws it.
    let store = peregrine_store::Results::Sqlite(peregrine_store::Store::open(&db).unwrap());
    let rendered =
        peregrine_render::render_frame_jpeg(&store, run, 5, &peregrine_core::Labels::coco())
            .unwrap();
    assert!(
        frame.body == rendered,
        "the frame image differs from the pipeline's"
    );
    let tracks = http(
        server.addr,
        "GET",
        &format!("/api/v1/runs/{run}/tracks"),
        t,
        None,
    )
    .json();
    assert!(!tracks.as_array().unwrap().is_empty());

    let metrics = String::from_utf8(http(server.addr, "GET", "/metrics", None, None).body).unwrap();
    assert!(
        metrics.contains("peregrine_jobs{state=\"done\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("peregrine_stage_latency_seconds_count{stage=\"infer\"}"));
}

#[test]
fn cancel_stops_a_running_job() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(server_config(dir.path(), false));
    let id = submit(
        server.addr,
        None,
        json!({"video": "traffic_intersection_cctv_640x480.mp4", "params": {"no_cache": true}}),
    )["id"]
        .as_i64()
        .unwrap();
    wait_until("frames analysed", || {
        job(server.addr, None, id)["frames_done"]
            .as_u64()
            .unwrap_or(0)
            > 0
    });
    let t0 = Instant::now();
    let r = http(
        server.addr,
        "POST",
        &format!("/api/v1/jobs/{id}/cancel"),
        None,
        None,
    );
    assert_eq!(r.status, 202);
    let events = follow_sse(server.addr, &format!("/api/v1/jobs/{id}/events"), None);
    // Reported, not asserted (timings are never asserted in tests).
    eprintln!("cancel request to cancelled state: {:?}", t0.elapsed());
    let end = &events.last().unwrap().1;
    assert_eq!(end["state"], "cancelled", "{end}");
    assert!(end["frames_done"].as_u64().unwrap() < 909);
}

// ---------------------------------------------------------------- crash

/// Entry point of the child server process the restart test kills.
#[test]
#[ignore = "helper: started as a child process by the restart test"]
fn child_server_process() {
    let Some(addr_file) = std::env::var_os("PEREGRINE_TEST_ADDR_FILE") else {
        return;
    };
    let dir = PathBuf::from(std::env::var_os("PEREGRINE_TEST_DIR").unwrap());
    let config = Config::from_raw(RawConfig {
        workers: Some(1),
        ..raw_config(&dir, &videos())
    })
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tmp = PathBuf::from(&addr_file).with_extension("tmp");
        std::fs::write(&tmp, l.local_addr().unwrap().to_string()).unwrap();
        std::fs::rename(&tmp, &addr_file).unwrap();
        peregrine_server::serve_on(l, config, std::future::pending())
            .await
            .unwrap();
    });
}

struct ChildServer {
    child: Child,
    addr: SocketAddr,
}

impl ChildServer {
    fn start(dir: &Path, n: u32) -> ChildServer {
        let addr_file = dir.join(format!("addr-{n}"));
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_server_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PEREGRINE_TEST_ADDR_FILE", &addr_file)
            .env("PEREGRINE_TEST_DIR", dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut addr = None;
        wait_until("the child server's address", || {
            addr = std::fs::read_to_string(&addr_file)
                .ok()
                .and_then(|s| s.parse().ok());
            addr.is_some()
        });
        ChildServer {
            child,
            addr: addr.unwrap(),
        }
    }

    /// SIGKILL: no shutdown code runs.
    fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_crash_requeues_running_jobs_once_and_keeps_queued_ones() {
    let dir = tempfile::tempdir().unwrap();
    let long = json!({"video": "traffic_intersection_cctv_640x480.mp4", "params": {"no_cache": true}, "priority": 10});
    let short =
        json!({"video": "gait_sideon_whitewall_640x352.mp4", "params": {"end": 1}, "priority": 0});

    let a = ChildServer::start(dir.path(), 1);
    let running = submit(a.addr, None, long)["id"].as_i64().unwrap();
    wait_until("the long job to run", || {
        job(a.addr, None, running)["frames_done"]
            .as_u64()
            .unwrap_or(0)
            > 0
    });
    let queued = submit(a.addr, None, short)["id"].as_i64().unwrap();
    assert_eq!(job(a.addr, None, queued)["state"], "queued");
    a.crash();

    // First restart: the interrupted job runs again, the queued one waits.
    let b = ChildServer::start(dir.path(), 2);
    let j = job(b.addr, None, running);
    assert!(j["state"] == "queued" || j["state"] == "running", "{j}");
    wait_until("the retried job to run", || {
        let j = job(b.addr, None, running);
        j["state"] == "running" && j["frames_done"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(job(b.addr, None, queued)["state"], "queued");
    b.crash();

    // Second restart: interrupted again, so it fails; the queued job runs.
    let c = ChildServer::start(dir.path(), 3);
    let j = job(c.addr, None, running);
    assert_eq!(j["state"], "failed", "{j}");
    assert!(j["error"].as_str().unwrap().contains("restart"), "{j}");
    let events = follow_sse(c.addr, &format!("/api/v1/jobs/{queued}/events"), None);
    assert_eq!(events.last().unwrap().1["state"], "done");
}

// ---------------------------------------------------------------- content

#[test]
fn a_replaced_video_is_a_new_job_not_the_old_one_matched_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let swap = media.join("swap.mp4");
    std::fs::copy(videos().join("gait_sideon_whitewall_640x352.mp4"), &swap).unwrap();
    let server = TestServer::start(Config::from_raw(raw_config(dir.path(), &media)).unwrap());
    let req = json!({"video": "swap.mp4", "params": {"end": 0.5}});
    let run_of = |id: &Value| {
        let events = follow_sse(server.addr, &format!("/api/v1/jobs/{id}/events"), None);
        let end = &events.last().unwrap().1;
        assert_eq!(end["state"], "done", "{end}");
        end["run_id"].as_i64().unwrap()
    };
    let first = submit(server.addr, None, req.clone());
    let run_a = run_of(&first["id"]);

    // Another real video under the same name (as `cp other.mp4 swap.mp4`).
    std::fs::copy(videos().join("gait_sideon_livingroom_960x540.mp4"), &swap).unwrap();
    let second = submit(server.addr, None, req.clone());
    assert_eq!(second["cached"], false, "{second}");
    assert_ne!(second["id"], first["id"]);
    let run_b = run_of(&second["id"]);
    assert_ne!(run_b, run_a);
    let run = http(
        server.addr,
        "GET",
        &format!("/api/v1/runs/{run_b}"),
        None,
        None,
    )
    .json();
    assert_eq!(
        (&run["width"], &run["height"]),
        (&json!(960), &json!(540)),
        "{run}"
    );

    // The old run's boxes are not drawn on the new video.
    let old = http(
        server.addr,
        "GET",
        &format!("/api/v1/runs/{run_a}/frames/3.jpg"),
        None,
        None,
    );
    assert_eq!(old.status, 409, "{}", String::from_utf8_lossy(&old.body));
    let new = http(
        server.addr,
        "GET",
        &format!("/api/v1/runs/{run_b}/frames/3.jpg"),
        None,
        None,
    );
    assert_eq!(new.status, 200);
    // The same content again is the same job.
    let third = submit(server.addr, None, req);
    assert_eq!(
        (&third["id"], &third["cached"]),
        (&second["id"], &json!(true))
    );
}

#[test]
fn cancel_reaches_a_job_while_it_builds_its_inference_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = raw_config(dir.path(), &videos());
    raw.max_threads = Some(12);
    let server = TestServer::start(Config::from_raw(raw).unwrap());
    let id = submit(
        server.addr,
        None,
        json!({"video": "traffic_intersection_cctv_640x480.mp4",
               "params": {"no_cache": true, "threads": 12, "infer_workers": 12}}),
    )["id"]
        .as_i64()
        .unwrap();
    let mut phase = Value::Null;
    wait_until("the job to start", || {
        let j = job(server.addr, None, id);
        phase = j["phase"].clone();
        j["state"] == "running" && !phase.is_null()
    });
    let r = http(
        server.addr,
        "POST",
        &format!("/api/v1/jobs/{id}/cancel"),
        None,
        None,
    );
    assert_eq!(r.status, 202);
    let events = follow_sse(server.addr, &format!("/api/v1/jobs/{id}/events"), None);
    let end = &events.last().unwrap().1;
    // Reported, not asserted: the phase the cancel reached.
    eprintln!("cancelled while {phase}; run {}", end["run_id"]);
    assert_eq!(end["state"], "cancelled", "{end}");
    assert!(end["frames_done"].as_u64().unwrap() < 909);
}

#[test]
fn a_video_over_the_pixel_limit_by_the_time_its_job_runs_fails_it_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let long = media.join("long.mp4");
    std::fs::copy(
        videos().join("traffic_intersection_cctv_640x480.mp4"),
        &long,
    )
    .unwrap();
    let swap = media.join("swap.mp4");
    std::fs::copy(videos().join("gait_sideon_whitewall_640x352.mp4"), &swap).unwrap();
    let mut raw = raw_config(dir.path(), &media);
    raw.max_pixels = Some(640 * 480);
    let server = TestServer::start(Config::from_raw(raw).unwrap());
    // One worker, busy with a long job: the next one waits in the queue.
    let busy = submit(
        server.addr,
        None,
        json!({"video": "long.mp4", "params": {"no_cache": true}}),
    )["id"]
        .as_i64()
        .unwrap();
    wait_until("the long job to run", || {
        job(server.addr, None, busy)["state"] == "running"
    });
    let id = submit(server.addr, None, json!({"video": "swap.mp4"}))["id"]
        .as_i64()
        .unwrap();
    // Replaced by a larger video while queued.
    std::fs::copy(videos().join("gait_sideon_livingroom_960x540.mp4"), &swap).unwrap();
    let r = http(
        server.addr,
        "POST",
        &format!("/api/v1/jobs/{busy}/cancel"),
        None,
        None,
    );
    assert_eq!(r.status, 202);
    let events = follow_sse(server.addr, &format!("/api/v1/jobs/{id}/events"), None);
    let end = &events.last().unwrap().1;
    assert_eq!(end["state"], "failed", "{end}");
    let error = end["error"].as_str().unwrap();
    assert!(
        error.contains("960x540") && error.contains("max_pixels"),
        "{error}"
    );
    assert!(end["run_id"].is_null(), "no run is begun: {end}");
}
