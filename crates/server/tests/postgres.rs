//! The service on PostgreSQL: what used to answer 501 there (frame
//! images, gait of a run, live streams) works as on SQLite. Live streams
//! are leased to the process that has workers; an API process without
//! workers (`--workers 0`) stores them, shows their worker and counters
//! and their latest picture, and stops them.
//!
//! Skips (printing `SKIPPED`) only where no PostgreSQL server answers.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use peregrine_server::Config;
use peregrine_store::pg::TestDb;
use peregrine_store::{DbTarget, Results};
use serde_json::{json, Value};

use common::*;

fn pg_config(dir: &Path, url: &str, workers: usize) -> Config {
    let mut raw = raw_config(dir, &data_dir().join("videos"));
    raw.token = Some(TOKEN.into());
    raw.db = Some(url.into());
    raw.workers = Some(workers);
    Config::from_raw(raw).unwrap()
}

fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let r = http(addr, "GET", path, Some(TOKEN), None);
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn frame_images_and_gait_of_a_run_on_postgres() {
    let Some(pg) = TestDb::create("srv_gait") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(pg_config(dir.path(), &pg.url, 1));
    let t = Some(TOKEN);
    let body = json!({
        "video": "gait_sideon_whitewall_640x352.mp4",
        "model": "yolo11n_pose_int8.onnx",
        "params": {"mode": "fast", "fps": 15, "threads": 1, "gait": {"mode": "fast", "height": 1.75}},
    })
    .to_string();
    let r = http(
        server.addr,
        "POST",
        "/api/v1/jobs",
        t,
        Some(("application/json", body.as_bytes())),
    );
    assert!(r.status == 202 || r.status == 200, "{}", r.status);
    let id = r.json()["id"].as_i64().unwrap();
    let events = follow_sse(server.addr, &format!("/api/v1/jobs/{id}/events"), t);
    let (_, last) = events.last().unwrap();
    assert_eq!(last["state"], "done", "{last}");
    let run = last["run_id"].as_i64().unwrap();

    // The job's view carries the gait metrics, as on SQLite.
    let (_, job) = get(server.addr, &format!("/api/v1/jobs/{id}"));
    assert_eq!(job["gait"]["run_id"], run, "{job}");
    let steps = job["gait"]["subjects"][0]["steps"].as_u64().unwrap();
    assert!((4..=6).contains(&steps), "{job}");
    let (s, g) = get(server.addr, &format!("/api/v1/runs/{run}/gait?height=1.75"));
    assert_eq!(s, 200, "{g}");
    assert_eq!(g["subjects"], job["gait"]["subjects"]);
    let r = http(
        server.addr,
        "GET",
        &format!("/api/v1/runs/{run}/gait/report"),
        t,
        None,
    );
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("data:image/jpeg;base64,"));

    // A frame image, drawn as the renderer draws it from the database.
    let r = http(
        server.addr,
        "GET",
        &format!("/api/v1/runs/{run}/frames/30.jpg"),
        t,
        None,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let store = Results::open(&DbTarget::parse(&pg.url), Duration::from_secs(5)).unwrap();
    let labels = peregrine_core::Labels::coco();
    let drawn = peregrine_render::render_frame_jpeg(&store, run, 30, &labels).unwrap();
    assert!(
        r.body == drawn,
        "the frame image differs from the renderer's"
    );
    let r = http(
        server.addr,
        "GET",
        &format!("/api/v1/runs/{run}/frames/100000.jpg"),
        t,
        None,
    );
    assert_eq!(r.status, 404);
}

#[test]
fn streams_are_leased_to_a_worker_and_seen_from_an_api_without_workers() {
    let Some(pg) = TestDb::create("srv_streams") else {
        return;
    };
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // An API process alone, and a process with a worker.
    let api = TestServer::start(pg_config(d1.path(), &pg.url, 0));
    let worker = TestServer::start(pg_config(d2.path(), &pg.url, 1));
    let body = json!({
        "name": "cam",
        "source": "traffic_intersection_cctv_640x480.mp4",
        "fps": 5,
        "params": {"no_track": false},
    })
    .to_string();
    let r = http(
        api.addr,
        "POST",
        "/api/v1/streams",
        Some(TOKEN),
        Some(("application/json", body.as_bytes())),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let created = r.json();
    assert!(
        created["state"] == "queued" || created["state"] == "connecting",
        "{created}"
    );
    let r = http(
        api.addr,
        "POST",
        "/api/v1/streams",
        Some(TOKEN),
        Some(("application/json", body.as_bytes())),
    );
    assert_eq!(r.status, 409, "a name is unique across processes");

    // The worker claims and runs it; the API shows its counters and worker.
    let seen = wait_for("the stream running", Duration::from_secs(60), || {
        let (s, v) = get(api.addr, "/api/v1/streams/cam");
        assert_eq!(s, 200, "{v}");
        assert_ne!(v["state"], "failed", "{v}");
        (v["frames_analysed"].as_u64().unwrap_or(0) >= 5 && v["run_id"].is_i64()).then_some(v)
    });
    assert_eq!(seen["state"], "live", "{seen}");
    let owner = seen["worker"]
        .as_str()
        .expect("a worker holds it")
        .to_owned();
    let (_, workers) = get(api.addr, "/api/v1/workers");
    let ids: Vec<&str> = workers
        .as_array()
        .or_else(|| workers["workers"].as_array())
        .unwrap_or_else(|| panic!("{workers}"))
        .iter()
        .filter_map(|w| w["id"].as_str())
        .collect();
    assert_eq!(ids, vec![owner.as_str()], "the only worker runs it");
    assert_eq!(workers[0]["streams"], json!(["cam"]), "{workers}");
    let (_, on_worker) = get(worker.addr, "/api/v1/streams");
    assert_eq!(on_worker[0]["worker"], owner.as_str(), "{on_worker}");
    let (_, list) = get(api.addr, "/api/v1/streams");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let run = seen["run_id"].as_i64().unwrap();
    let (_, r) = get(api.addr, &format!("/api/v1/runs/{run}"));
    assert_eq!(r["status"], "live", "{r}");

    // Its latest picture, stored by the worker, from the API process.
    let jpeg = wait_for("the stream's picture", Duration::from_secs(20), || {
        let r = http(
            api.addr,
            "GET",
            "/api/v1/streams/cam/frame.jpg",
            Some(TOKEN),
            None,
        );
        (r.status == 200).then_some(r.body)
    });
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "not a JPEG");

    // Stopped through the API: the worker finds the row gone at its next
    // renewal and finalises the run.
    let r = http(api.addr, "DELETE", "/api/v1/streams/cam", Some(TOKEN), None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["run_id"], run);
    let done = wait_for("the run finalised", Duration::from_secs(10), || {
        let (_, r) = get(api.addr, &format!("/api/v1/runs/{run}"));
        (r["status"] != "live").then_some(r)
    });
    assert_eq!(done["status"], "complete", "{done}");
    assert!(done["frames"].as_u64().unwrap() >= 5, "{done}");
    let (s, _) = get(api.addr, "/api/v1/streams/cam");
    assert_eq!(s, 404);
    let (_, on_worker) = get(worker.addr, "/api/v1/streams");
    assert_eq!(on_worker, json!([]));
    let r = http(
        api.addr,
        "GET",
        "/api/v1/streams/cam/frame.jpg",
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 404);
}
