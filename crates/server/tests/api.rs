//! The router called in-process (no socket, no job workers): auth, path
//! confinement, uploads, validation, paging, OpenAPI.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use peregrine_server::{router, AppState, Config};
use serde_json::{json, Value};

use common::*;

struct Env {
    _dir: tempfile::TempDir,
    media: std::path::PathBuf,
    outside: std::path::PathBuf,
    config: Config,
}

fn env(token: bool, max_upload_mb: Option<u64>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(media.join("clip.mp4"), b"not really a video").unwrap();
    std::fs::write(outside.join("secret.mp4"), b"secret").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.mp4"), media.join("escape.mp4")).unwrap();
    std::os::unix::fs::symlink(&outside, media.join("escape_dir")).unwrap();
    let mut raw = raw_config(dir.path(), &media);
    raw.max_upload_mb = max_upload_mb;
    // Not built: the API must work without the dashboard.
    raw.web_dir = Some(dir.path().join("no-dashboard"));
    if token {
        raw.token = Some(TOKEN.into());
    }
    let config = Config::from_raw(raw).unwrap();
    Env {
        media: std::fs::canonicalize(media).unwrap(),
        outside,
        config,
        _dir: dir,
    }
}

fn app(e: &Env) -> Router {
    // No workers: jobs stay queued, which is what these tests need.
    router(AppState::new(e.config.clone()))
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

fn post_json(path: &str, token: Option<&str>, body: Value) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body.to_string())).unwrap()
}

fn post_multipart(path: &str, fields: &[(&str, Option<&str>, &[u8])]) -> Request<Body> {
    let (ctype, body) = multipart(fields);
    Request::post(path)
        .header("content-type", ctype)
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn every_api_route_requires_the_token_when_configured() {
    let e = env(true, None);
    let app = app(&e);
    for path in [
        "/api/v1/jobs",
        "/api/v1/jobs/1",
        "/api/v1/videos",
        "/api/v1/openapi.json",
        "/api/v1/runs/1/detections",
        "/api/v1/nonexistent",
    ] {
        let (s, body) = call(&app, get(path, None)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path} without token");
        assert_eq!(body["error"], "missing or invalid token");
        let (s, _) = call(&app, get(path, Some("wrong-token-xyz"))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path} with a wrong token");
    }
    let (s, _) = call(&app, get("/api/v1/jobs", Some(TOKEN))).await;
    assert_eq!(s, StatusCode::OK);
    // A token that is a prefix of the real one is wrong too.
    let (s, _) = call(&app, get("/api/v1/jobs", Some(&TOKEN[..8]))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(
        &app,
        post_json("/api/v1/jobs", None, json!({"video": "clip.mp4"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Liveness and metrics stay open for probes.
    let (s, _) = call(&app, get("/metrics", None)).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn paths_must_stay_inside_a_media_root() {
    let e = env(false, None);
    let app = app(&e);
    let secret = e.outside.join("secret.mp4");
    // Outside by their text: 403. Through a symlink inside a root: the same
    // 404 as a missing file, so existing outside files are not revealed.
    for (video, want) in [
        ("../outside/secret.mp4".to_string(), StatusCode::FORBIDDEN),
        (
            format!("{}/../outside/secret.mp4", e.media.display()),
            StatusCode::FORBIDDEN,
        ),
        (secret.display().to_string(), StatusCode::FORBIDDEN),
        ("escape.mp4".into(), StatusCode::NOT_FOUND),
        ("escape_dir/secret.mp4".into(), StatusCode::NOT_FOUND),
        ("/etc/passwd".into(), StatusCode::FORBIDDEN),
    ] {
        let (s, body) = call(
            &app,
            post_json("/api/v1/jobs", None, json!({"video": video})),
        )
        .await;
        assert_eq!(s, want, "{video}: {body}");
        let msg = body["error"].as_str().unwrap();
        if !video.contains("outside") {
            assert!(
                !msg.contains("outside"),
                "error leaks the link target: {msg}"
            );
        }
    }
    let (s, _) = call(
        &app,
        post_json("/api/v1/jobs", None, json!({"video": "missing.mp4"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The listing does not show the escaping symlink either.
    let (s, body) = call(&app, get("/api/v1/videos", None)).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["clip.mp4"]);
}

#[tokio::test]
async fn jobs_are_queued_deduplicated_listed_and_cancelled() {
    let e = env(false, None);
    let app = app(&e);
    let req = json!({"video": "clip.mp4", "params": {"end": 2, "conf": 0.3}, "priority": 5});
    let (s, a) = call(&app, post_json("/api/v1/jobs", None, req.clone())).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{a}");
    assert_eq!(a["state"], "queued");
    assert_eq!(a["cached"], false);
    // Same video, model and parameters (written differently) → same job.
    let same = json!({"video": e.media.join("clip.mp4"), "params": {"conf": 0.3, "end": 2.0}, "priority": 5});
    let (s, b) = call(&app, post_json("/api/v1/jobs", None, same)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["id"], a["id"]);
    assert_eq!(b["cached"], true);
    let (s, c) = call(
        &app,
        post_json(
            "/api/v1/jobs",
            None,
            json!({"video": "clip.mp4", "params": {"end": 3}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_ne!(c["id"], a["id"]);

    let id = a["id"].as_i64().unwrap();
    let (s, j) = call(&app, get(&format!("/api/v1/jobs/{id}"), None)).await;
    assert_eq!(s, StatusCode::OK);
    for k in [
        "id", "state", "progress", "run_id", "error", "timings", "eta_s", "fps",
    ] {
        assert!(j.get(k).is_some(), "job view lacks {k}: {j}");
    }
    assert_eq!(j["progress"], 0.0);
    assert_eq!(j["params"]["end"], 2.0);
    assert!((j["params"]["conf"].as_f64().unwrap() - 0.3).abs() < 1e-6);
    assert_eq!(j["params"].as_object().unwrap().len(), 2, "nulls dropped");

    let (s, page) = call(&app, get("/api/v1/jobs?limit=1", None)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_i64().unwrap();
    let (_, page2) = call(
        &app,
        get(&format!("/api/v1/jobs?limit=1&cursor={cursor}"), None),
    )
    .await;
    assert_eq!(page2["items"][0]["id"], a["id"]);
    assert!(page2["next_cursor"].is_null());

    let (s, v) = call(
        &app,
        post_json(&format!("/api/v1/jobs/{id}/cancel"), None, json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(v["state"], "cancelled");
    let (s, _) = call(
        &app,
        post_json(&format!("/api/v1/jobs/{id}/cancel"), None, json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, q) = call(&app, get("/api/v1/jobs?state=cancelled", None)).await;
    assert_eq!(q["items"].as_array().unwrap().len(), 1);
    let (_, q) = call(&app, get("/api/v1/jobs?state=queued", None)).await;
    assert_eq!(q["items"][0]["id"], c["id"]);
    // A cancelled job does not block an identical new one.
    let (s, _) = call(&app, post_json("/api/v1/jobs", None, req)).await;
    assert_eq!(s, StatusCode::ACCEPTED);

    let (s, _) = call(&app, get("/api/v1/jobs/99999", None)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(&app, get("/api/v1/jobs?state=bogus", None)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn invalid_requests_get_a_400_naming_the_problem() {
    let e = env(false, None);
    let app = app(&e);
    let cases = [
        (json!({"video": "clip.mp4", "params": {"conf": 7}}), "conf"),
        (
            json!({"video": "clip.mp4", "params": {"bogus": 1}}),
            "bogus",
        ),
        (json!({"video": "clip.mp4", "priority": 1000}), "priority"),
        (json!({"video": "clip.mp4", "extra": 1}), "extra"),
        (
            json!({"video": "clip.mp4", "model": "../../etc/passwd"}),
            "model",
        ),
    ];
    for (body, word) in cases {
        let (s, b) = call(&app, post_json("/api/v1/jobs", None, body.clone())).await;
        assert!(
            s == StatusCode::BAD_REQUEST || s == StatusCode::FORBIDDEN,
            "{body}: {s}"
        );
        assert!(b["error"].as_str().unwrap().contains(word), "{body}: {b}");
    }
    let huge = json!({"video": "clip.mp4", "model": "x".repeat(100_000)});
    let (s, b) = call(&app, post_json("/api/v1/jobs", None, huge)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    let req = Request::post("/api/v1/jobs")
        .header("content-type", "text/plain")
        .body(Body::from("hello"))
        .unwrap();
    let (s, _) = call(&app, req).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn uploads_are_size_limited_and_probed_by_content() {
    let e = env(false, Some(1));
    let app = app(&e);
    let big = vec![0u8; 2 * 1024 * 1024];
    let (s, b) = call(
        &app,
        post_multipart("/api/v1/jobs", &[("file", Some("big.mp4"), &big)]),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    let text = b"this is a text file pretending to be a video".repeat(100);
    let (s, b) = call(
        &app,
        post_multipart("/api/v1/jobs", &[("file", Some("fake.mp4"), &text)]),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{b}");
    // Rejected uploads leave nothing behind.
    assert_eq!(std::fs::read_dir(&e.config.upload_dir).unwrap().count(), 0);
    let (s, _) = call(
        &app,
        post_multipart("/api/v1/jobs", &[("params", None, b"{}")]),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_real_video_upload_is_accepted_whatever_its_name() {
    let video = data_dir().join("videos/gait_sideon_whitewall_640x352.mp4");
    let e = env(false, Some(64));
    let app = app(&e);
    let bytes = std::fs::read(&video).unwrap();
    let (s, b) = call(
        &app,
        post_multipart(
            "/api/v1/jobs",
            &[
                ("params", None, br#"{"end": 1}"#),
                ("file", Some("no_extension"), &bytes),
                ("priority", None, b"3"),
            ],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (_, j) = call(&app, get(&format!("/api/v1/jobs/{}", b["id"]), None)).await;
    assert_eq!(j["priority"], 3);
    // Not an administrator: the stored file's name, relative to the upload
    // folder, and the name it was uploaded under.
    let stored = j["video"].as_str().unwrap();
    assert!(
        stored.starts_with("upload-") && !stored.contains('/'),
        "{j}"
    );
    assert!(e.config.upload_dir.join(stored).is_file());
    assert_eq!(j["video_name"], "no_extension");
    assert_eq!(std::fs::read_dir(&e.config.upload_dir).unwrap().count(), 1);
    // The same video again, under another name: the same stored file and so
    // the same job; a different request keeps using that one file.
    let again = |params: &'static [u8]| {
        post_multipart(
            "/api/v1/jobs",
            &[
                ("params", None, params),
                ("file", Some("walk.MP4"), &bytes),
                ("priority", None, b"3"),
            ],
        )
    };
    let (s, b2) = call(&app, again(br#"{"end": 1}"#)).await;
    assert_eq!(s, StatusCode::OK, "{b2}");
    assert_eq!((&b2["id"], &b2["cached"]), (&b["id"], &json!(true)));
    let (s, b3) = call(&app, again(br#"{"end": 2}"#)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b3}");
    let (_, j3) = call(&app, get(&format!("/api/v1/jobs/{}", b3["id"]), None)).await;
    assert_eq!(j3["video"], j["video"]);
    // The first name a content was uploaded under stays.
    assert_eq!(j3["video_name"], "no_extension");
    assert_eq!(std::fs::read_dir(&e.config.upload_dir).unwrap().count(), 1);
    // A bad request with a new video leaves nothing behind.
    let mut other = bytes.clone();
    other.extend_from_slice(b"trailing bytes");
    let (s, _) = call(
        &app,
        post_multipart(
            "/api/v1/jobs",
            &[
                ("params", None, br#"{"end": -1}"#),
                ("file", Some("x.mp4"), &other),
            ],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(std::fs::read_dir(&e.config.upload_dir).unwrap().count(), 1);
}

fn export_rows(db: &std::path::Path, run: i64) -> Vec<Value> {
    let store = peregrine_store::Store::open(db).unwrap();
    let labels = peregrine_core::Labels::coco();
    let mut rows = Vec::new();
    store
        .for_each_detection::<()>(run, |d| {
            // The export's jsonl row: f32 fields serialised as f32.
            rows.push(
                serde_json::from_str(
                    &serde_json::to_string(&peregrine_server::api::DetectionItem {
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
                    })
                    .unwrap(),
                )
                .unwrap(),
            );
            Ok(())
        })
        .unwrap()
        .unwrap();
    rows
}

#[tokio::test]
async fn detection_pages_walk_every_row_once_with_filters() {
    let e = env(false, None);
    let run = seed_run(&e.config.db, 250, 10);
    let app = app(&e);
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/runs/{run}/detections?limit=700&cursor={c}"),
            None => format!("/api/v1/runs/{run}/detections?limit=700"),
        };
        let (s, page) = call(&app, get(&path, None)).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    let expected = export_rows(&e.config.db, run);
    assert_eq!(all.len(), expected.len());
    for (i, (a, b)) in all.iter().zip(&expected).enumerate() {
        assert_eq!(a, b, "row {i} differs from the export");
    }

    let (_, p) = call(
        &app,
        get(
            &format!(
                "/api/v1/runs/{run}/detections?class=car&frame_from=10&frame_to=19&limit=10000"
            ),
            None,
        ),
    )
    .await;
    let items = p["items"].as_array().unwrap();
    assert_eq!(items.len(), 10 * 5);
    assert!(items
        .iter()
        .all(|d| d["class"] == "car" && (10..=19).contains(&d["frame"].as_u64().unwrap())));
    let (_, p) = call(
        &app,
        get(
            &format!("/api/v1/runs/{run}/detections?track=3&limit=10000"),
            None,
        ),
    )
    .await;
    assert_eq!(p["items"].as_array().unwrap().len(), 250);

    for bad in ["limit=0", "limit=10001", "cursor=zzz"] {
        let (s, _) = call(
            &app,
            get(&format!("/api/v1/runs/{run}/detections?{bad}"), None),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
    // A class the run does not have is not there (as the document says).
    let (s, b) = call(
        &app,
        get(
            &format!("/api/v1/runs/{run}/detections?class=unicorn"),
            None,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, b) = call(&app, get("/api/v1/runs/424242/detections", None)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        !b["error"].as_str().unwrap().contains(".db"),
        "leaks the db path: {b}"
    );
    let (s, _) = call(&app, get(&format!("/api/v1/runs/{run}/tracks"), None)).await;
    assert_eq!(s, StatusCode::OK);
}

/// A model with class names beside it (`NAME.names`): job class filters
/// resolve against them, other models keep COCO's.
#[tokio::test]
async fn class_filters_use_the_models_own_names() {
    let dir = tempfile::tempdir().unwrap();
    let (media, models) = (dir.path().join("media"), dir.path().join("models"));
    std::fs::create_dir_all(&media).unwrap();
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(media.join("clip.mp4"), b"queued only").unwrap();
    std::fs::copy(common::model_path(), models.join("custom.onnx")).unwrap();
    std::fs::write(models.join("custom.names"), "walker\nbike\nvehicle\n").unwrap();
    std::fs::copy(common::model_path(), models.join("empty.onnx")).unwrap();
    std::fs::write(models.join("empty.names"), "\n").unwrap();
    let mut raw = common::raw_config(dir.path(), &media);
    raw.model_dir = Some(models.clone());
    raw.web_dir = Some(dir.path().join("no-dashboard"));
    let config = Config::from_raw(raw).unwrap();
    let app = router(AppState::new(config));
    let job = |model: Option<&str>, class: &str| {
        let mut j = json!({"video": "clip.mp4", "params": {"classes": [class]}});
        if let Some(m) = model {
            j["model"] = json!(m);
        }
        post_json("/api/v1/jobs", None, j)
    };
    let (s, b) = call(&app, job(Some("custom.onnx"), "vehicle")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (s, b) = call(&app, job(Some("custom.onnx"), "car")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["error"].as_str().unwrap().contains("car"), "{b}");
    let (s, b) = call(&app, job(None, "vehicle")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "the default model is COCO: {b}");
    let (s, b) = call(&app, job(Some("empty.onnx"), "car")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let msg = b["error"].as_str().unwrap();
    assert!(
        msg.contains("empty.names") && !msg.contains(dir.path().to_str().unwrap()),
        "{msg}"
    );
}

/// A run analysed with a labels file is shown with its own class names.
#[tokio::test]
async fn runs_analysed_with_custom_labels_show_their_class_names() {
    let e = env(false, None);
    let params = serde_json::json!({"track": {}, "labels": ["walker", "x", "bike"]});
    let run = common::seed_run_with(&e.config.db, 20, 4, params);
    let coco = seed_run(&e.config.db, 20, 4);
    let app = app(&e);
    let (s, p) = call(
        &app,
        get(&format!("/api/v1/runs/{run}/detections?limit=1000"), None),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let items = p["items"].as_array().unwrap();
    assert_eq!(items.len(), 80);
    for d in items {
        let want = if d["class_id"] == 0 { "walker" } else { "bike" };
        assert_eq!(d["class"], want, "{d}");
    }
    let (s, p) = call(
        &app,
        get(&format!("/api/v1/runs/{run}/detections?class=bike"), None),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["items"].as_array().unwrap().len(), 40);
    let (s, _) = call(
        &app,
        get(&format!("/api/v1/runs/{run}/detections?class=car"), None),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "car is not a class of this run");
    let track = |track_id: u32, class_id: u16| peregrine_store::TrackRow {
        track_id,
        class_id,
        first_frame: 0,
        last_frame: 19,
        first_t: 0.0,
        last_t: 0.76,
        frames: 20,
        mean_score: 0.5,
        path_px: 0.0,
        mean_speed: 0.0,
        max_speed: 0.0,
        region: peregrine_core::BBox::new(0.0, 0.0, 20.0, 40.0),
    };
    peregrine_store::Store::open(&e.config.db)
        .unwrap()
        .upsert_tracks(run, &[track(1, 0), track(2, 2)])
        .unwrap();
    let (_, t) = call(&app, get(&format!("/api/v1/runs/{run}/tracks"), None)).await;
    assert_eq!(
        (&t[0]["class"], &t[1]["class"]),
        (&"walker".into(), &"bike".into()),
        "{t}"
    );
    let (_, p) = call(
        &app,
        get(&format!("/api/v1/runs/{coco}/detections?class=car"), None),
    )
    .await;
    assert_eq!(p["items"].as_array().unwrap().len(), 40, "COCO run");
}

/// `GET /runs/{id}/counts` serves the stored counts as `peregrine counts
/// --json` prints them (the store's one document).
#[tokio::test]
async fn counts_are_served_per_run() {
    let e = env(false, None);
    let spec = peregrine_core::SpatialSpec {
        lines: vec![peregrine_core::LineSpec::parse("y200=0,200,640,200").unwrap()],
        zones: vec![peregrine_core::ZoneSpec::parse("top=0,0;640,0;640,100;0,100").unwrap()],
        anchor: peregrine_core::Anchor::BottomCenter,
        interval_s: 4.0,
        calibration: Vec::new(),
    };
    let run = common::seed_run_with(
        &e.config.db,
        250,
        10,
        serde_json::json!({"track": {}, "spatial": spec}),
    );
    let plain = seed_run(&e.config.db, 5, 1);
    {
        // The counts the analysis would have stored: the seeded frames
        // through the counter.
        let mut store = peregrine_store::Store::open(&e.config.db).unwrap();
        let mut counter = peregrine_analytics::SpatialCounter::new(&spec, 30).unwrap();
        let (mut counts, mut ground) = (Vec::new(), Vec::new());
        store
            .for_each_frame::<()>(run, 640, 480, |meta, rows| {
                let dets: Vec<peregrine_core::Detection> = rows
                    .iter()
                    .map(|r| {
                        let mut d = peregrine_core::Detection::new(r.class_id, r.score, r.bbox);
                        d.track_id = r.track_id;
                        d
                    })
                    .collect();
                counter.observe(meta, &dets, &mut counts, &mut ground);
                Ok(())
            })
            .unwrap()
            .unwrap();
        counter.finish(0, &mut counts, &mut ground);
        store.insert_spatial(run, &spec, &counts, &ground).unwrap();
    }
    let app = app(&e);
    let (s, doc) = call(&app, get(&format!("/api/v1/runs/{run}/counts"), None)).await;
    assert_eq!(s, StatusCode::OK, "{doc}");
    // Ten boxes move down 1 px a frame: each bottom crosses y = 200 once.
    assert_eq!(doc["lines"][0]["name"], "y200");
    assert_eq!(
        (
            doc["lines"][0]["in"].as_u64(),
            doc["lines"][0]["out"].as_u64()
        ),
        (Some(0), Some(10))
    );
    assert_eq!(doc["lines"][0]["by_class"]["person"]["out"], 5);
    assert_eq!(doc["zones"][0]["max"], 10);
    assert_eq!(doc["intervals"].as_array().unwrap().len(), 3);
    let store = peregrine_store::Store::open(&e.config.db).unwrap();
    let expected = store
        .counts_json(&store.run(run).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(doc, expected);
    let (s, b) = call(&app, get(&format!("/api/v1/runs/{plain}/counts"), None)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        b["error"].as_str().unwrap().contains("without lines"),
        "{b}"
    );
    let (s, _) = call(&app, get("/api/v1/runs/424242/counts", None)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn openapi_document_covers_every_route() {
    let e = env(false, None);
    let app = app(&e);
    let (s, doc) = call(&app, get("/api/v1/openapi.json", None)).await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/jobs/{id}/cancel",
        "/api/v1/jobs/{id}/events",
        "/api/v1/runs/{id}",
        "/api/v1/runs/{id}/detections",
        "/api/v1/runs/{id}/tracks",
        "/api/v1/runs/{id}/counts",
        "/api/v1/runs/{id}/frames/{file}",
        "/api/v1/videos",
        "/health",
        "/metrics",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["JobView"].is_object());
}

#[tokio::test]
async fn health_reports_database_and_runtime() {
    let e = env(false, None);
    let app = app(&e);
    let (s, h) = call(&app, get("/health", None)).await;
    assert_eq!(h["database"], "ok");
    // ONNX Runtime is installed by scripts/setup.sh on every machine that
    // runs the tests.
    assert_eq!(h["onnxruntime"], "ok", "{h}");
    assert_eq!(s, StatusCode::OK);
    let (s, body) = call(&app, get("/", None)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(body.as_str().unwrap().contains("dashboard is not built"));
}

#[tokio::test]
async fn the_built_dashboard_is_served_with_client_side_routes() {
    let e = env(false, None);
    let web = e.media.parent().unwrap().join("dist");
    std::fs::create_dir_all(web.join("assets")).unwrap();
    std::fs::write(web.join("index.html"), "<html>dashboard</html>").unwrap();
    std::fs::write(web.join("assets/app.js"), "console.log(1)").unwrap();
    let mut config = e.config.clone();
    config.web_dir = Some(web);
    let app = router(AppState::new(config));
    for (path, want) in [
        ("/", "dashboard"),
        ("/assets/app.js", "console.log"),
        ("/runs/7", "dashboard"),
    ] {
        let (s, body) = call(&app, get(path, None)).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert!(body.as_str().unwrap().contains(want), "{path}: {body}");
    }
    // Unknown API paths stay JSON 404s, never the dashboard.
    let (s, body) = call(&app, get("/api/v1/nope", None)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no such endpoint");
}

#[test]
fn keyset_pages_concatenate_to_the_filtered_rows() {
    let e = env(false, None);
    let run = seed_run(&e.config.db, 120, 7);
    let store = peregrine_store::Store::open(&e.config.db).unwrap();
    let mut all = Vec::new();
    store
        .for_each_detection(run, |d| {
            all.push((d.frame, d.class_id, d.track_id, d.score));
            Ok::<_, ()>(())
        })
        .unwrap()
        .unwrap();
    for (from, to, class, track, limit) in [
        (None, None, None, None, 50),
        (Some(30), None, None, None, 13),
        (Some(30), Some(60), Some(2), None, 9),
        (None, Some(100), None, Some(3), 7),
        (Some(5), Some(5), None, None, 3),
        (Some(200), None, None, None, 10),
    ] {
        let want: Vec<_> = all
            .iter()
            .filter(|(f, c, t, _)| {
                from.is_none_or(|x| *f >= x)
                    && to.is_none_or(|x| *f <= x)
                    && class.is_none_or(|x| *c == x)
                    && track.is_none_or(|x| *t == Some(x))
            })
            .copied()
            .collect();
        let mut q = peregrine_store::DetectionQuery {
            frame_from: from,
            frame_to: to,
            class_id: class,
            track_id: track,
            limit,
            after: None,
        };
        let mut got = Vec::new();
        loop {
            let p = store.detections_page(run, &q).unwrap();
            assert!(p.items.len() <= limit);
            got.extend(
                p.items
                    .iter()
                    .map(|d| (d.frame, d.class_id, d.track_id, d.score)),
            );
            match p.next {
                Some(c) => q.after = Some(c),
                None => break,
            }
        }
        assert_eq!(got, want, "{from:?} {to:?} {class:?} {track:?} {limit}");
    }
    assert!(store.detections_page(9999, &Default::default()).is_err());
}
