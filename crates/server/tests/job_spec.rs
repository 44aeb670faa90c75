//! A job's `family` and `labels` honoured like the CLI's `--family` and
//! `--labels`, and the job spec: resolved and stored at submission, run as
//! stored by the worker (real analyses of a one-second clip).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use peregrine_server::{router, AppState, Config, Service};
use peregrine_store::jobs::{JobQueue, NewJob, SqliteJobs};
use serde_json::{json, Value};

use common::*;

const CLIP: &str = "ped_pets09s2l1_campus_480x360.mp4";

struct Env {
    dir: tempfile::TempDir,
    models: PathBuf,
    config: Config,
}

/// The shared videos as the media root; a model folder holding a copy of
/// YOLOX-Nano as `m.onnx` (its `m.names` names the 80 classes `s0..s79`)
/// and a names file `custom.names` (`f0..f79`).
fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::copy(model_path(), models.join("m.onnx")).unwrap();
    std::fs::write(models.join("m.names"), names("s").join("\n")).unwrap();
    std::fs::write(models.join("custom.names"), names("f").join("\n")).unwrap();
    std::fs::write(models.join("empty.names"), "\n").unwrap();
    let mut raw = raw_config(dir.path(), &data_dir().join("videos"));
    raw.model_dir = Some(models.clone());
    raw.model = Some(models.join("m.onnx"));
    raw.web_dir = Some(dir.path().join("no-dashboard"));
    let config = Config::from_raw(raw).unwrap();
    Env {
        models: std::fs::canonicalize(models).unwrap(),
        config,
        dir,
    }
}

fn names(prefix: &str) -> Vec<String> {
    (0..80).map(|i| format!("{prefix}{i}")).collect()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

async fn submit(app: &Router, params: Value) -> (StatusCode, Value) {
    let body = json!({"video": CLIP, "params": params});
    let req = Request::post("/api/v1/jobs")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    call(app, req).await
}

async fn queued(app: &Router, params: Value) -> i64 {
    let (s, b) = submit(app, params).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    b["id"].as_i64().unwrap()
}

/// The job once it has ended.
async fn ended(app: &Router, id: i64) -> Value {
    let t0 = Instant::now();
    loop {
        let (s, job) = call(app, get(&format!("/api/v1/jobs/{id}"))).await;
        assert_eq!(s, StatusCode::OK, "{job}");
        if ["done", "failed", "cancelled"].contains(&job["state"].as_str().unwrap()) {
            return job;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(240),
            "job {id} never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The stored run's parameters and the `class` of every detection.
async fn run_of(app: &Router, job: &Value) -> (Value, Vec<String>) {
    assert_eq!(job["state"], "done", "{job}");
    let run = job["run_id"].as_i64().unwrap();
    let (_, record) = call(app, get(&format!("/api/v1/runs/{run}"))).await;
    let (_, page) = call(
        app,
        get(&format!("/api/v1/runs/{run}/detections?limit=10000")),
    )
    .await;
    let classes: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["class"].as_str().unwrap().to_owned())
        .collect();
    assert!(!classes.is_empty(), "no detections in {CLIP}");
    (record["params"].clone(), classes)
}

fn stored_spec(db: &Path, id: i64) -> Value {
    SqliteJobs::open(db, Duration::from_secs(5))
        .unwrap()
        .get(id)
        .unwrap()
        .unwrap()
        .spec
        .expect("a spec written at submission")
}

#[tokio::test]
async fn bad_family_and_labels_are_refused_naming_the_parameter() {
    let e = env();
    // No workers: only validation is under test.
    let app = router(AppState::new(e.config.clone()));
    let outside = e.dir.path().join("outside.names");
    std::fs::write(&outside, "a\n").unwrap();
    let cases = [
        (
            json!({"family": "yolov5"}),
            StatusCode::BAD_REQUEST,
            "yolov5",
        ),
        (json!({"family": 3}), StatusCode::BAD_REQUEST, "family"),
        (json!({"labels": 7}), StatusCode::BAD_REQUEST, "labels"),
        (json!({"labels": []}), StatusCode::BAD_REQUEST, "labels"),
        (
            json!({"labels": ["a", ""]}),
            StatusCode::BAD_REQUEST,
            "labels",
        ),
        (
            json!({"labels": ["a", 1]}),
            StatusCode::BAD_REQUEST,
            "labels",
        ),
        (
            json!({"labels": "missing.names"}),
            StatusCode::NOT_FOUND,
            "labels",
        ),
        (
            json!({"labels": "empty.names"}),
            StatusCode::BAD_REQUEST,
            "labels",
        ),
        (
            json!({"labels": "../outside.names"}),
            StatusCode::FORBIDDEN,
            "labels",
        ),
        (
            json!({"labels": outside.to_str().unwrap()}),
            StatusCode::FORBIDDEN,
            "labels",
        ),
        // Class filters resolve against the job's names.
        (
            json!({"labels": ["cat", "dog"], "classes": ["person"]}),
            StatusCode::BAD_REQUEST,
            "person",
        ),
    ];
    for (params, status, named) in cases {
        let (s, b) = submit(&app, params.clone()).await;
        assert_eq!(s, status, "{params}: {b}");
        let msg = b["error"].as_str().unwrap();
        assert!(msg.contains(named), "{params}: {msg}");
        assert!(!msg.contains(e.dir.path().to_str().unwrap()), "{msg}");
    }
}

#[tokio::test]
async fn family_and_labels_join_the_job_key_and_are_shown_as_given() {
    let e = env();
    let app = router(AppState::new(e.config.clone()));
    let plain = queued(&app, json!({"end": 1})).await;
    let yolox = queued(&app, json!({"end": 1, "family": "YOLOX"})).await;
    let listed = queued(&app, json!({"end": 1, "labels": ["a", "b"]})).await;
    let file = queued(&app, json!({"end": 1, "labels": "custom.names"})).await;
    assert_eq!(
        [plain, yolox, listed, file]
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        4
    );
    let (s, again) = submit(&app, json!({"end": 1, "family": "yolox"})).await;
    assert_eq!((s, again["id"].as_i64()), (StatusCode::OK, Some(yolox)));
    let (_, job) = call(&app, get(&format!("/api/v1/jobs/{yolox}"))).await;
    assert_eq!(job["params"], json!({"end": 1.0, "family": "yolox"}));
    let (_, job) = call(&app, get(&format!("/api/v1/jobs/{file}"))).await;
    assert_eq!(job["params"]["labels"], "custom.names");
    // An edited names file is a new job.
    std::fs::write(e.models.join("custom.names"), names("g").join("\n")).unwrap();
    let (s, b) = submit(&app, json!({"end": 1, "labels": "custom.names"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
}

#[tokio::test]
async fn a_job_runs_with_its_family_and_labels_like_the_cli() {
    let e = env();
    let service = Service::start(e.config.clone()).unwrap();
    let app = service.router();

    let listed = queued(
        &app,
        json!({"end": 1, "labels": names("a"), "classes": ["a0"]}),
    )
    .await;
    let job = ended(&app, listed).await;
    let (params, classes) = run_of(&app, &job).await;
    assert_eq!(params["labels"], json!(names("a")));
    assert!(classes.iter().all(|c| c == "a0"), "{classes:?}");

    let file = queued(
        &app,
        json!({"end": 1, "labels": "custom.names", "family": "yolox"}),
    )
    .await;
    let job = ended(&app, file).await;
    let (params, classes) = run_of(&app, &job).await;
    assert_eq!(params["labels"], json!(names("f")));
    assert_eq!(params["family"], "yolox");
    assert!(classes.iter().all(|c| c.starts_with('f')), "{classes:?}");
    assert!(classes.contains(&"f0".to_string()), "{classes:?}");

    // The wrong family fails the job with the CLI's error.
    let wrong = queued(&app, json!({"end": 1, "family": "nanodet"})).await;
    let job = ended(&app, wrong).await;
    assert_eq!(job["state"], "failed", "{job}");
    let cli = match peregrine_infer::Model::load(
        &e.models.join("m.onnx"),
        Some(peregrine_infer::Family::Nanodet),
    ) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("YOLOX-Nano loaded as NanoDet"),
    };
    assert_eq!(job["error"], cli);
    service.shutdown().await;
}

#[tokio::test]
async fn the_worker_runs_the_names_resolved_at_submission() {
    let e = env();
    // Queued with no workers running; the spec is stored at once.
    let app = router(AppState::new(e.config.clone()));
    let id = queued(&app, json!({"end": 1})).await;
    let spec = stored_spec(&e.config.db, id);
    assert_eq!(spec["run"]["class_names"], json!(names("s")));
    assert_eq!(spec["model"], e.models.join("m.onnx").to_str().unwrap());
    assert_eq!(spec["run"]["sampling"]["end"], 1.0);
    // The model's names file changes before the job runs.
    std::fs::write(e.models.join("m.names"), names("t").join("\n")).unwrap();
    let service = Service::start(e.config.clone()).unwrap();
    let app = service.router();
    let job = ended(&app, id).await;
    let (params, classes) = run_of(&app, &job).await;
    assert_eq!(params["labels"], json!(names("s")));
    assert!(classes.iter().all(|c| c.starts_with('s')), "{classes:?}");
    service.shutdown().await;
}

#[tokio::test]
async fn a_job_queued_without_a_spec_is_resolved_when_it_runs() {
    let e = env();
    let id = SqliteJobs::open(&e.config.db, Duration::from_secs(5))
        .unwrap()
        .insert(&NewJob {
            video: data_dir().join("videos").join(CLIP).to_str().unwrap(),
            model: e.models.join("m.onnx").to_str().unwrap(),
            params: &json!({"end": 1}),
            spec: None,
            priority: 0,
            video_hash: "h",
            model_hash: "m",
        })
        .unwrap();
    // Resolved at run time: the model's names file as it is then.
    std::fs::write(e.models.join("m.names"), names("t").join("\n")).unwrap();
    let service = Service::start(e.config.clone()).unwrap();
    let app = service.router();
    let job = ended(&app, id).await;
    let (params, classes) = run_of(&app, &job).await;
    assert_eq!(params["labels"], json!(names("t")));
    assert!(classes.iter().all(|c| c.starts_with('t')), "{classes:?}");
    service.shutdown().await;
}

/// Engines are shared across jobs by model file and content: a model
/// replaced under the same name is loaded afresh, and its run records the
/// new model, not the engine built for the old file.
#[tokio::test]
async fn a_model_replaced_under_the_same_name_gets_a_new_engine() {
    let e = env();
    let service = Service::start(e.config.clone()).unwrap();
    let app = service.router();
    let model_hash = |path: &Path| {
        blake3::hash(&std::fs::read(path).unwrap())
            .to_hex()
            .to_string()
    };
    let first = ended(&app, queued(&app, json!({"end": 1})).await).await;
    let run = |job: &Value| job["run_id"].as_i64().unwrap();
    let (_, record) = call(&app, get(&format!("/api/v1/runs/{}", run(&first)))).await;
    assert_eq!(record["model_hash"], model_hash(&e.models.join("m.onnx")));

    // Same name, other bytes (the dynamic-batch export of the same model).
    let replacement = data_dir().join("models/yolox_nano_dynbatch.onnx");
    std::fs::copy(&replacement, e.models.join("m.onnx")).unwrap();
    let second = ended(&app, queued(&app, json!({"end": 1})).await).await;
    assert_eq!(second["state"], "done", "{second}");
    assert_ne!(run(&first), run(&second));
    let (_, record) = call(&app, get(&format!("/api/v1/runs/{}", run(&second)))).await;
    assert_eq!(record["model_hash"], model_hash(&replacement));
    service.shutdown().await;
}
