//! A gait job through the API: a job with the pose model on a real
//! side-on clip (`params.gait`), its metrics in the job's view, the run's
//! gait metrics and report; gait jobs on a model without keypoints fail.

mod common;

use std::path::Path;

use peregrine_server::Config;
use serde_json::{json, Value};

use common::*;

fn server_config(dir: &Path) -> Config {
    let mut raw = raw_config(dir, &data_dir().join("videos"));
    raw.token = Some(TOKEN.into());
    Config::from_raw(raw).unwrap()
}

#[test]
fn gait_job_metrics_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(server_config(dir.path()));
    let t = Some(TOKEN);
    let body = json!({
        "video": "gait_sideon_whitewall_640x352.mp4",
        "model": "yolo11n_pose_int8.onnx",
        "params": {"mode": "fast", "fps": 15, "gait": {"mode": "fast", "height": 1.75}},
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

    // The job's own view carries the metrics and the report's address.
    let job = http(server.addr, "GET", &format!("/api/v1/jobs/{id}"), t, None).json();
    assert_eq!(job["gait"]["run_id"], run, "{job}");
    let steps = job["gait"]["subjects"][0]["steps"].as_u64().unwrap();
    assert!((4..=6).contains(&steps), "{job}");
    assert_eq!(job["gait"]["subjects"][0]["speed_unit"], "m/s");
    let report = job["report"].as_str().unwrap().to_owned();
    assert!(report.starts_with(&format!("/api/v1/runs/{run}/gait/report?mode=fast")));
    let r = http(server.addr, "GET", &report, t, None);
    assert_eq!(r.status, 200);

    let r = http(
        server.addr,
        "GET",
        &format!("/api/v1/runs/{run}/gait?height=1.75"),
        t,
        None,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let g: Value = r.json();
    assert_eq!(g["run_id"], run);
    let main = &g["subjects"][0];
    // Heel strikes counted by eye: 5 (see crates/peregrine/tests/gait.rs).
    let steps = main["steps"].as_u64().unwrap();
    assert!((4..=6).contains(&steps), "{main}");
    let cadence = main["cadence_spm"].as_f64().unwrap();
    assert!((cadence - 81.2).abs() / 81.2 < 0.08, "{main}");
    assert_eq!(main["speed_unit"], "m/s");

    let r = http(
        server.addr,
        "GET",
        &format!("/api/v1/runs/{run}/gait/report"),
        t,
        None,
    );
    assert_eq!(r.status, 200);
    let html = String::from_utf8_lossy(&r.body);
    assert!(html.contains("<svg") && html.contains("data:image/jpeg;base64,"));

    // Bad parameters: 400 with the cause.
    let r = http(
        server.addr,
        "GET",
        &format!("/api/v1/runs/{run}/gait?mode=turbo"),
        t,
        None,
    );
    assert_eq!(r.status, 400);
    let r = http(
        server.addr,
        "GET",
        &format!("/api/v1/runs/{run}/gait?height=175"),
        t,
        None,
    );
    assert_eq!(r.status, 400);
    let r = http(server.addr, "GET", "/api/v1/runs/999/gait", t, None);
    assert_eq!(r.status, 404);
}

#[test]
fn gait_jobs_need_a_pose_model_and_valid_settings() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(server_config(dir.path()));
    let t = Some(TOKEN);
    let submit = |params: Value| {
        let body = json!({
            "video": "gait_sideon_whitewall_640x352.mp4",
            "model": "yolox_nano.onnx",
            "params": params,
        })
        .to_string();
        http(
            server.addr,
            "POST",
            "/api/v1/jobs",
            t,
            Some(("application/json", body.as_bytes())),
        )
    };
    for bad in [
        json!({"gait": {"mode": "turbo"}}),
        json!({"gait": {"height": 17.5}}),
        json!({"gait": "yes"}),
        json!({"gait": true, "no_track": true}),
    ] {
        let r = submit(bad.clone());
        assert_eq!(r.status, 400, "{bad}");
        assert!(
            r.json()["error"].as_str().unwrap().contains("gait"),
            "{bad}"
        );
    }
    let r = submit(json!({"gait": true, "end": 0.5}));
    assert!(r.status == 202 || r.status == 200, "{}", r.status);
    let id = r.json()["id"].as_i64().unwrap();
    let events = follow_sse(server.addr, &format!("/api/v1/jobs/{id}/events"), t);
    let (_, last) = events.last().unwrap();
    assert_eq!(last["state"], "failed", "{last}");
    let error = last["error"].as_str().unwrap();
    assert!(
        error.contains("yolox_nano.onnx: not a pose model"),
        "{error}"
    );
}
