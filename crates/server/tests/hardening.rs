//! Hostile requests against the router in-process (no job workers):
//! resource bounds, the pixel limit, cross-site and DNS-rebinding requests,
//! out-of-range paging, body limits, JSON rejections, symlinked folders and
//! the uploads' working files.

mod common;

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use peregrine_server::{router, AppState, Config, RawConfig};
use serde_json::{json, Value};
use tower::ServiceExt;

use common::*;

struct Env {
    dir: tempfile::TempDir,
    media: PathBuf,
    config: Config,
}

fn env_with(f: impl FnOnce(&mut RawConfig)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(media.join("clip.mp4"), b"queued only").unwrap();
    let mut raw = raw_config(dir.path(), &media);
    raw.web_dir = Some(dir.path().join("no-dashboard"));
    f(&mut raw);
    let config = Config::from_raw(raw).unwrap();
    Env {
        media: std::fs::canonicalize(media).unwrap(),
        config,
        dir,
    }
}

fn app(e: &Env) -> Router {
    router(AppState::new(e.config.clone()))
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v, ctype)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post_json(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// An error answer in the API's shape, whose message contains every word.
#[track_caller]
fn assert_json_error(got: &(StatusCode, Value, String), status: StatusCode, words: &[&str]) {
    let (s, body, ctype) = got;
    assert_eq!(*s, status, "{body}");
    assert!(ctype.starts_with("application/json"), "{ctype}: {body}");
    let msg = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {body}"));
    for w in words {
        assert!(msg.contains(w), "{msg:?} lacks {w:?}");
    }
}

#[tokio::test]
async fn job_parameters_beyond_the_servers_maxima_get_a_400_naming_them() {
    let e = env_with(|r| {
        r.max_threads = Some(8);
        r.max_batch = Some(16);
    });
    let app = app(&e);
    for (params, words) in [
        (json!({"threads": 100000}), vec!["threads", "at most 8"]),
        (
            json!({"infer_workers": 1000}),
            vec!["infer_workers", "at most 8"],
        ),
        (
            json!({"decode_threads": 10000}),
            vec!["decode_threads", "at most 8"],
        ),
        (json!({"jobs": 1000}), vec!["jobs", "at most 8"]),
        (json!({"batch": 100000}), vec!["batch", "at most 16"]),
        (
            json!({"batch": 16, "infer_workers": 8}),
            vec!["batch × infer_workers", "at most 32"],
        ),
        (
            json!({"max_det": 1000000}),
            vec!["max_det", "at most 10000"],
        ),
        (
            json!({"track_buffer": 4000000000u32}),
            vec!["track_buffer", "at most 10000"],
        ),
    ] {
        let got = call(
            &app,
            post_json(
                "/api/v1/jobs",
                &json!({"video": "clip.mp4", "params": params}),
            ),
        )
        .await;
        assert_json_error(&got, StatusCode::BAD_REQUEST, &words);
    }
    // At the bounds: accepted.
    let (s, b, _) = call(
        &app,
        post_json(
            "/api/v1/jobs",
            &json!({"video": "clip.mp4", "params": {"threads": 8, "infer_workers": 2, "batch": 16, "decode_threads": 8}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    // The default maximum follows the machine's cores.
    let d = env_with(|_| {});
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(d.config.max_threads, cores * 2);
    assert_eq!(d.config.max_batch, 32);
    assert_eq!(d.config.max_pixels, peregrine_core::DEFAULT_MAX_PIXELS);
}

/// A 16000×16000 H.264 video of one frame (750 KB), made with the FFmpeg
/// CLI; decoding one frame of it takes about 400 MB.
fn huge_video(dir: &Path) -> PathBuf {
    let out = dir.join("huge.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("color=c=gray:s=16000x16000:r=1:d=1")
        .args([
            "-frames:v",
            "1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&out)
        .status()
        .expect("ffmpeg CLI");
    assert!(status.success(), "ffmpeg failed to make the test video");
    out
}

#[tokio::test]
async fn videos_over_the_pixel_limit_are_refused_for_jobs_uploads_and_frame_images() {
    let e = env_with(|r| r.max_upload_mb = Some(8));
    let huge = huge_video(&e.media);
    let app = app(&e);
    let got = call(
        &app,
        post_json(
            "/api/v1/jobs",
            &json!({"video": "huge.mp4", "params": {"end": 1}}),
        ),
    )
    .await;
    assert_json_error(
        &got,
        StatusCode::BAD_REQUEST,
        &["16000x16000", "256000000", "max_pixels"],
    );
    let bytes = std::fs::read(&huge).unwrap();
    let (ctype, body) = multipart(&[("file", Some("big.mp4"), &bytes)]);
    let req = Request::post("/api/v1/jobs")
        .header("content-type", ctype)
        .body(Body::from(body))
        .unwrap();
    let got = call(&app, req).await;
    assert_json_error(&got, StatusCode::BAD_REQUEST, &["max_pixels"]);
    assert_eq!(
        std::fs::read_dir(&e.config.upload_dir).unwrap().count(),
        0,
        "a refused upload leaves nothing"
    );

    // Frame images of a run of that video (analysed elsewhere with a higher
    // limit): eight at once are all refused before any decoding.
    let run = seed_run_on_file(&e.config.db, &huge, 16000, 16000, 1);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            call(&app, get(&format!("/api/v1/runs/{run}/frames/0.jpg"))).await
        }));
    }
    for t in tasks {
        assert_json_error(&t.await.unwrap(), StatusCode::BAD_REQUEST, &["max_pixels"]);
    }

    // A real video within the limit: eight concurrent frame images all
    // render (two at a time, the others wait their turn).
    let small = e.media.join("walk.mp4");
    std::fs::copy(
        data_dir().join("videos/gait_sideon_whitewall_640x352.mp4"),
        &small,
    )
    .unwrap();
    let run = seed_run_on_file(&e.config.db, &small, 640, 352, 8);
    let mut tasks = Vec::new();
    for n in 0..8 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let resp = app
                .oneshot(get(&format!("/api/v1/runs/{run}/frames/{n}.jpg")))
                .await
                .unwrap();
            let s = resp.status();
            (s, resp.into_body().collect().await.unwrap().to_bytes())
        }));
    }
    for t in tasks {
        let (s, body) = t.await.unwrap();
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        assert_eq!(&body[..2], &[0xFF, 0xD8], "not a JPEG");
    }
    // The same limit set lower refuses that video too.
    let mut config = e.config.clone();
    config.max_pixels = 640 * 352 - 1;
    let strict = router(AppState::new(config));
    let got = call(&strict, get(&format!("/api/v1/runs/{run}/frames/0.jpg"))).await;
    assert_json_error(&got, StatusCode::BAD_REQUEST, &["640x352", "max_pixels"]);
    let got = call(
        &strict,
        post_json("/api/v1/jobs", &json!({"video": "walk.mp4"})),
    )
    .await;
    assert_json_error(&got, StatusCode::BAD_REQUEST, &["640x352", "max_pixels"]);
}

fn with_headers(mut req: Request<Body>, headers: &[(&str, &str)]) -> Request<Body> {
    for (k, v) in headers {
        req.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(v).unwrap(),
        );
    }
    req
}

#[tokio::test]
async fn cross_site_and_rebinding_requests_are_refused() {
    let e = env_with(|r| r.allowed_hosts = Some(vec!["Peregrine.Example.com".into()]));
    let app = app(&e);
    let job = json!({"video": "clip.mp4"});
    // A page of another site posting a job (a form or fetch): refused.
    let got = call(
        &app,
        with_headers(
            post_json("/api/v1/jobs", &job),
            &[
                ("host", "localhost:8080"),
                ("origin", "http://evil.example"),
            ],
        ),
    )
    .await;
    assert_json_error(&got, StatusCode::FORBIDDEN, &["evil.example"]);
    for origin in [
        "null",
        "http://localhost:9999",
        "https://localhost.evil.example:8080",
    ] {
        let got = call(
            &app,
            with_headers(
                post_json("/api/v1/jobs/1/cancel", &json!({})),
                &[("host", "localhost:8080"), ("origin", origin)],
            ),
        )
        .await;
        assert_json_error(&got, StatusCode::FORBIDDEN, &["Origin"]);
    }
    // The dashboard (same origin), a configured name, and clients that send
    // no Origin (curl) are served.
    for headers in [
        vec![
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8080"),
        ],
        vec![
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ],
        vec![
            ("host", "127.0.0.1:8080"),
            ("origin", "https://peregrine.example.com"),
        ],
        vec![("host", "[::1]:8080")],
        vec![],
    ] {
        let (s, b, _) = call(
            &app,
            with_headers(post_json("/api/v1/jobs", &job), &headers),
        )
        .await;
        assert!(
            s == StatusCode::ACCEPTED || s == StatusCode::OK,
            "{headers:?}: {s} {b}"
        );
    }
    // DNS rebinding: a foreign name in Host, on reads too, the dashboard
    // and ops routes included.
    for path in ["/api/v1/jobs", "/api/v1/videos", "/", "/health"] {
        let got = call(
            &app,
            with_headers(get(path), &[("host", "attacker.example:8080")]),
        )
        .await;
        assert_json_error(
            &got,
            StatusCode::MISDIRECTED_REQUEST,
            &["attacker.example", "--allowed-host"],
        );
    }
    for host in ["localhost:8080", "peregrine.example.com", "10.1.2.3:80"] {
        let (s, b, _) = call(&app, with_headers(get("/api/v1/jobs"), &[("host", host)])).await;
        assert_eq!(s, StatusCode::OK, "{host}: {b}");
    }
    // With a token too.
    let t = env_with(|r| r.token = Some(TOKEN.into()));
    let got = call(
        &router(AppState::new(t.config.clone())),
        with_headers(
            post_json("/api/v1/jobs", &job),
            &[
                ("host", "localhost:8080"),
                ("origin", "http://evil.example"),
                ("authorization", &format!("Bearer {TOKEN}")),
            ],
        ),
    )
    .await;
    assert_json_error(&got, StatusCode::FORBIDDEN, &["Origin"]);
}

#[tokio::test]
async fn paging_and_numeric_values_out_of_range_get_a_json_400() {
    let e = env_with(|_| {});
    let run = seed_run(&e.config.db, 30, 2);
    let app = app(&e);
    let big = "9223372036854775808"; // 2^63
    for path in [
        format!("/api/v1/runs/{run}/detections?frame_from={big}"),
        format!("/api/v1/runs/{run}/detections?frame_to={big}"),
        format!("/api/v1/runs/{run}/detections?cursor={big}_1"),
        format!("/api/v1/runs/{run}/detections?cursor=3_-1"),
        format!("/api/v1/runs/{run}/detections?frame_from=18446744073709551616"),
        format!("/api/v1/runs/{run}/detections?limit=-1"),
        format!("/api/v1/runs/{run}/detections?track=x"),
        format!("/api/v1/jobs?cursor={big}"),
        "/api/v1/jobs?cursor=0".to_string(),
        "/api/v1/jobs?cursor=-5".to_string(),
        "/api/v1/jobs?limit=18446744073709551616".to_string(),
        "/api/v1/jobs?limit=abc".to_string(),
        format!("/api/v1/jobs/{big}"),
        "/api/v1/jobs/abc".to_string(),
        format!("/api/v1/runs/{big}"),
        format!("/api/v1/runs/{run}/frames/{big}.jpg"),
    ] {
        let got = call(&app, get(&path)).await;
        assert_json_error(&got, StatusCode::BAD_REQUEST, &[]);
    }
    // In range, the first page of what is asked for.
    let (s, p, _) = call(
        &app,
        get(&format!(
            "/api/v1/runs/{run}/detections?frame_from=9223372036854775807"
        )),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["items"].as_array().unwrap().len(), 0);
    // Methods a route does not have: JSON too.
    let got = call(&app, post_json("/api/v1/videos", &json!({}))).await;
    assert_json_error(&got, StatusCode::METHOD_NOT_ALLOWED, &[]);
}

#[tokio::test]
async fn a_json_body_over_64_kib_gets_a_json_413() {
    let e = env_with(|_| {});
    let app = app(&e);
    let huge = json!({"video": "clip.mp4", "model": "x".repeat(100_000)});
    let got = call(&app, post_json("/api/v1/jobs", &huge)).await;
    assert_json_error(&got, StatusCode::PAYLOAD_TOO_LARGE, &["65536"]);
    let got = call(
        &app,
        Request::post("/api/v1/jobs")
            .header("content-type", "application/json")
            .body(Body::from("{not json"))
            .unwrap(),
    )
    .await;
    assert_json_error(&got, StatusCode::BAD_REQUEST, &["body"]);
}

#[tokio::test]
async fn a_symlinked_folder_does_not_reveal_which_outside_files_exist() {
    let e = env_with(|_| {});
    let outside = e.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.mp4"), b"secret").unwrap();
    std::os::unix::fs::symlink(&outside, e.media.join("linked")).unwrap();
    let app = app(&e);
    let mut answers = Vec::new();
    for video in ["linked/secret.mp4", "linked/missing.mp4"] {
        let (s, b, _) = call(&app, post_json("/api/v1/jobs", &json!({"video": video}))).await;
        answers.push((s, b["error"].as_str().unwrap().replace(video, "V")));
    }
    assert_eq!(answers[0], answers[1], "existing vs missing outside file");
    assert_eq!(answers[0].0, StatusCode::NOT_FOUND);
    let (s, b, _) = call(
        &app,
        post_json("/api/v1/jobs", &json!({"video": "missing.mp4"})),
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str().unwrap().replace("missing.mp4", "V")),
        answers[0]
    );
}

#[tokio::test]
async fn uploads_working_files_cannot_be_named_by_jobs_and_are_cleaned_at_start() {
    let e = env_with(|r| r.max_upload_mb = Some(8));
    let up = e.config.upload_dir.clone();
    let video = std::fs::read(data_dir().join("videos/gait_sideon_whitewall_640x352.mp4")).unwrap();
    // Left by a crash mid-upload (a pid that cannot be alive), one being
    // written by another live process (pid 1), and a file of other origin.
    let dead = up.join("upload-1764600000000000000-2147483647-0.bin");
    let live = up.join("upload-1764600000000000000-1-0.bin");
    let other = up.join("notes.mp4");
    for p in [&dead, &live, &other] {
        std::fs::write(p, &video).unwrap();
    }
    let app = app(&e);
    for p in [&dead, &live, &other] {
        let (s, b, _) = call(
            &app,
            post_json("/api/v1/jobs", &json!({"video": p.to_str().unwrap()})),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{}: {b}", p.display());
    }
    // An accepted upload can be named by a later job.
    let (ctype, body) = multipart(&[("file", Some("walk.mp4"), &video)]);
    let req = Request::post("/api/v1/jobs")
        .header("content-type", ctype)
        .body(Body::from(body))
        .unwrap();
    let (s, b, _) = call(&app, req).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (_, j, _) = call(&app, get(&format!("/api/v1/jobs/{}", b["id"]))).await;
    let stored = j["video"].as_str().unwrap().to_string();
    let (s, b, _) = call(
        &app,
        post_json(
            "/api/v1/jobs",
            &json!({"video": stored, "params": {"end": 1}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");

    // Starting the service removes what a dead process left, nothing else.
    let service = peregrine_server::Service::start(e.config.clone()).unwrap();
    service.shutdown().await;
    assert!(!dead.exists(), "a crashed upload survived the restart");
    assert!(live.exists() && other.exists());
    assert!(e.config.upload_dir.join(&stored).exists());
}

#[tokio::test]
async fn the_openapi_document_lists_the_new_answers() {
    let doc = serde_json::to_value(peregrine_server::openapi()).unwrap();
    let responses = |path: &str, method: &str| {
        doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} missing"))
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    let post_jobs = responses("/api/v1/jobs", "post");
    for code in ["400", "403", "404", "413", "421", "503"] {
        assert!(
            post_jobs.contains(&code.to_string()),
            "POST /jobs lacks {code}"
        );
    }
    let frame = responses("/api/v1/runs/{id}/frames/{file}", "get");
    for code in ["400", "409", "421", "503"] {
        assert!(frame.contains(&code.to_string()), "frames lack {code}");
    }
    assert!(responses("/api/v1/jobs/{id}/cancel", "post").contains(&"403".to_string()));
    assert!(responses("/health", "get").contains(&"421".to_string()));
    let job_view = &doc["components"]["schemas"]["JobView"]["properties"];
    assert!(job_view["phase"].is_object(), "JobView lacks phase");
}
