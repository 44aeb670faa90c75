//! The workbench's run endpoints (issue 16), on SQLite and PostgreSQL:
//! the listing of every run (keyset pages, filters, sorts, sources),
//! deleting runs, timelines, frame indexes, models, who is an
//! administrator; and the browser video (ranges, signed access, the
//! original or a transcode whose frames keep their stored times).
//!
//! PostgreSQL tests print `SKIPPED` and pass only where no server answers
//! (`PEREGRINE_TEST_PG`, default the local one).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use peregrine_core::{
    BBox, Detection, FrameDetections, FrameMeta, Keypoint, RunOutcome, RunSink, RunStart,
    RunStatus, RunStore, VideoRecord,
};
use peregrine_server::{router, AppState, Config};
use peregrine_store::jobs::{NewJob, Outcome};
use peregrine_store::pg::TestDb;
use peregrine_store::Results;
use serde_json::{json, Value};

use common::*;

const ADMIN: &str = "admin-token-456";
const T: Duration = Duration::from_secs(10);

/// Runs `f` on a thread of its own: PostgreSQL's synchronous client
/// cannot run on the test's async runtime.
fn off<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

struct Fixture {
    dir: tempfile::TempDir,
    media: PathBuf,
    config: Config,
    state: AppState,
    app: Router,
    _pg: Option<TestDb>,
}

impl Fixture {
    fn results(&self) -> Results {
        Results::open(&self.config.db_target(), T).unwrap()
    }

    fn store(&self) -> std::sync::Arc<dyn RunStore> {
        peregrine_store::open_run_store(&self.config.db_target(), T).unwrap()
    }
}

/// A service on SQLite, or on a PostgreSQL database of its own (`None`
/// when no server answers).
fn fixture(pg: bool) -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let mut raw = raw_config(dir.path(), &media);
    let db = if pg {
        let db = TestDb::create("wb_runs")?;
        raw.db = Some(PathBuf::from(&db.url));
        Some(db)
    } else {
        None
    };
    raw.token = Some(TOKEN.into());
    raw.admin_token = Some(ADMIN.into());
    raw.web_dir = Some(dir.path().join("no-dashboard"));
    let models = dir.path().join("models");
    std::fs::create_dir_all(models.join("more")).unwrap();
    std::fs::copy(model_path(), models.join("yolox_nano.onnx")).unwrap();
    std::fs::write(models.join("more/nanodet_m.onnx"), b"x").unwrap();
    std::fs::write(models.join("notes.txt"), b"x").unwrap();
    raw.model = Some(models.join("yolox_nano.onnx"));
    raw.model_dir = Some(models);
    let config = Config::from_raw(raw).unwrap();
    let state = AppState::new(config.clone());
    Some(Fixture {
        media: std::fs::canonicalize(&media).unwrap(),
        app: router(state.clone()),
        state,
        config,
        dir,
        _pg: db,
    })
}

fn req(method: &str, path: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

async fn get(f: &Fixture, path: &str) -> (StatusCode, Value) {
    call(&f.app, req("GET", path, Some(TOKEN))).await
}

/// The raw answer: status, headers, body bytes.
async fn raw(app: &Router, r: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let resp = app.clone().oneshot(r).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

fn video(path: &str, hash: &str, frames: u64) -> VideoRecord {
    VideoRecord {
        path: path.into(),
        content_hash: hash.into(),
        size: 1,
        duration: frames as f64 / 25.0,
        fps: 25.0,
        width: 640,
        height: 480,
        codec: "h264".into(),
        frames_expected: frames,
    }
}

/// `frames` frames of `per_frame` detections: class 0 for even `i`, 2 for
/// odd; score 0.5 + (i % 5) / 10; track `i + 1`; keypoints if `pose`.
fn frames(n: u64, per_frame: usize, pose: bool) -> Vec<FrameDetections> {
    (0..n)
        .map(|f| FrameDetections {
            meta: FrameMeta {
                source: 0,
                index: f,
                pts: f as f64 / 25.0,
                width: 640,
                height: 480,
            },
            detections: (0..per_frame)
                .map(|i| {
                    let mut d = Detection::new(
                        if i % 2 == 0 { 0 } else { 2 },
                        0.5 + (i % 5) as f32 / 10.0,
                        BBox::new(i as f32, 1.0, i as f32 + 20.0, 40.0),
                    );
                    d.track_id = Some(i as u32 + 1);
                    if pose {
                        d.keypoints = vec![
                            Keypoint {
                                x: 1.0,
                                y: 2.0,
                                score: 0.9
                            };
                            17
                        ];
                    }
                    d
                })
                .collect(),
        })
        .collect()
}

struct Seed<'a> {
    video: VideoRecord,
    model: &'a str,
    frames: u64,
    per_frame: usize,
    pose: bool,
    /// `Running` and `Live` runs are left open (the sink is returned).
    status: RunStatus,
}

fn seed(store: &dyn RunStore, s: Seed) -> (i64, Option<Box<dyn RunSink>>) {
    let start = RunStart {
        cache_key: format!("{}-{}-{:?}", s.video.path, s.model, s.status),
        video: s.video,
        model_path: s.model.into(),
        model_hash: "mh".into(),
        params: json!({"track": {}}),
        versions: json!({}),
    };
    let mut sink = if s.status == RunStatus::Live {
        store.begin_live(&start).unwrap()
    } else {
        store.begin(&start).unwrap()
    };
    let all = frames(s.frames, s.per_frame, s.pose);
    for batch in all.chunks(500) {
        sink.frames(batch).unwrap();
    }
    let id = sink.run_id();
    if matches!(s.status, RunStatus::Running | RunStatus::Live) {
        return (id, Some(sink));
    }
    sink.finish(&RunOutcome {
        status: s.status,
        error: (s.status == RunStatus::Failed).then(|| "boom".into()),
        frames: s.frames,
        detections: s.frames * s.per_frame as u64,
        tracks: s.per_frame as u64,
        fps: 10.0,
        timings: json!({}),
        decode: json!({}),
    })
    .unwrap();
    (id, None)
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

/// Every page of `query` (limit `limit`), concatenated.
async fn walk(f: &Fixture, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut path = format!("/api/v1/runs?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (s, page) = get(f, &path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit);
        out.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
    panic!("more than 100 pages");
}

async fn listing_filters_sorts_sources_and_deletion(pg: bool) {
    let Some(f) = off(|| fixture(pg)) else { return };
    let (r1, r2, r3, r4, r5, r6, job, upload, live, running) = off(|| seed_listing(&f));
    listing_checks(&f, [r1, r2, r3, r4, r5, r6], job, &upload).await;
    off(move || drop((live, running, f)));
}

type Open = Option<Box<dyn RunSink>>;

#[allow(clippy::type_complexity)]
fn seed_listing(f: &Fixture) -> (i64, i64, i64, i64, i64, i64, i64, String, Open, Open) {
    let store = f.store();
    let media = f.media.display().to_string();
    let upload = f
        .config
        .upload_dir
        .join(format!("upload-{}", "ab".repeat(16)))
        .display()
        .to_string();
    let (r1, _) = seed(
        &*store,
        Seed {
            video: video(&format!("{media}/a/Clip1.mp4"), "h1", 10),
            model: "/models/yolox_nano.onnx",
            frames: 10,
            per_frame: 2,
            pose: false,
            status: RunStatus::Complete,
        },
    );
    let (r2, _) = seed(
        &*store,
        Seed {
            video: video(&format!("{media}/b.mp4"), "h2", 5),
            model: "/models/nanodet_m.onnx",
            frames: 5,
            per_frame: 5,
            pose: false,
            status: RunStatus::Complete,
        },
    );
    let (r3, _) = seed(
        &*store,
        Seed {
            video: video(&upload, "h3", 3),
            model: "/models/yolo11n_pose.onnx",
            frames: 3,
            per_frame: 1,
            pose: true,
            status: RunStatus::Complete,
        },
    );
    let (r4, live) = seed(
        &*store,
        Seed {
            video: video("rtsp://camera/front", "h4", 0),
            model: "/models/yolox_nano.onnx",
            frames: 4,
            per_frame: 1,
            pose: false,
            status: RunStatus::Live,
        },
    );
    let (r5, running) = seed(
        &*store,
        Seed {
            video: video("/elsewhere/secret/x.mp4", "h5", 6),
            model: "/models/yolox_nano.onnx",
            frames: 6,
            per_frame: 3,
            pose: false,
            status: RunStatus::Running,
        },
    );
    let (r6, _) = seed(
        &*store,
        Seed {
            video: video(&format!("{media}/b.mp4"), "h2", 5),
            model: "/models/yolox_nano.onnx",
            frames: 2,
            per_frame: 1,
            pose: false,
            status: RunStatus::Failed,
        },
    );
    let results = f.results();
    results.save_upload_name(&upload, "My Walk.mp4").unwrap();
    // Sinks are Send only as the store's types; keep them boxed here.
    results
        .save_upload_name(&upload, "second name.mp4")
        .unwrap();
    // A job made r2.
    let q =
        peregrine_server::db::open_queue(&f.config.db_target(), T, &f.state.membership).unwrap();
    let job = q
        .insert(&NewJob {
            video: &format!("{media}/b.mp4"),
            model: "/models/nanodet_m.onnx",
            params: &json!({}),
            spec: None,
            priority: 0,
            video_hash: "h2",
            model_hash: "mh",
        })
        .unwrap();
    let claimed = q.claim().unwrap().unwrap();
    assert_eq!(claimed.id, job);
    q.finish(
        job,
        &Outcome::Done {
            run_id: Some(r2),
            run_status: RunStatus::Complete,
            cache_hit: false,
            fps: 1.0,
            frames: 5,
            timings: &json!({}),
        },
    )
    .unwrap();
    (r1, r2, r3, r4, r5, r6, job, upload, live, running)
}

async fn listing_checks(f: &Fixture, runs: [i64; 6], job: i64, _upload: &str) {
    let [r1, r2, r3, r4, r5, r6] = runs;
    // Every run, newest first, in pages of 2 that never repeat or skip.
    let all = walk(f, "", 2).await;
    let got: Vec<i64> = all.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let mut want = vec![r1, r2, r3, r4, r5, r6];
    want.sort_by(|a, b| b.cmp(a));
    assert_eq!(got, want);
    let oldest_first = walk(f, "sort=started_at", 4).await;
    let got: Vec<i64> = oldest_first
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    want.reverse();
    assert_eq!(got, want);
    let by = |id: i64| all.iter().find(|r| r["id"] == id).unwrap().clone();
    let one = by(r1);
    assert_eq!(one["video"], "a/Clip1.mp4");
    assert_eq!(
        one["video_path"],
        Value::Null,
        "absolute paths are for admins"
    );
    assert_eq!(one["model"], "yolox_nano.onnx");
    assert_eq!(
        (&one["source"], &one["job_id"], &one["status"]),
        (&json!("cli"), &Value::Null, &json!("complete"))
    );
    assert_eq!(
        (
            &one["frames"],
            &one["detections"],
            &one["tracks"],
            &one["evals"]
        ),
        (&json!(10), &json!(20), &json!(2), &json!(0))
    );
    assert_eq!(
        (&one["width"], &one["height"], &one["pose"]),
        (&json!(640), &json!(480), &json!(false))
    );
    assert!(one["started_at"].as_str().unwrap().ends_with('Z'));
    let access = one["video_url"].as_str().unwrap();
    assert!(
        access.starts_with(&format!("/api/v1/runs/{r1}/video?access=")),
        "{access}"
    );
    assert_eq!(
        (&by(r2)["source"], &by(r2)["job_id"]),
        (&json!("job"), &json!(job))
    );
    assert_eq!(
        by(r3)["video"],
        "My Walk.mp4",
        "the first upload name stays"
    );
    assert_eq!(by(r3)["pose"], true);
    assert_eq!(
        (&by(r4)["source"], &by(r4)["status"]),
        (&json!("live"), &json!("live"))
    );
    assert_eq!(by(r4)["video"], "front");
    // A run still being written shows what its rows hold.
    let five = by(r5);
    assert_eq!(
        (&five["status"], &five["detections"], &five["frames"]),
        (&json!("running"), &json!(18), &json!(6))
    );
    assert_eq!(
        five["video"], "x.mp4",
        "outside the roots: the file name only"
    );
    // Administrators see absolute paths.
    let (s, admin) = call(&f.app, req("GET", "/api/v1/runs?limit=500", Some(ADMIN))).await;
    assert_eq!(s, StatusCode::OK);
    let a5 = admin["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == r5)
        .unwrap();
    assert_eq!(a5["video_path"], "/elsewhere/secret/x.mp4");
    let (s, b) = get(f, &format!("/api/v1/runs/{r4}/video")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b["error"].as_str().unwrap().contains("live stream"), "{b}");
    let (_, me) = call(&f.app, req("GET", "/api/v1/whoami", Some(ADMIN))).await;
    assert_eq!(me, json!({"admin": true}));
    let (_, me) = get(f, "/api/v1/whoami").await;
    assert_eq!(me, json!({"admin": false}));

    // Filters.
    let only = |q: &'static str| {
        let f: &Fixture = f;
        async move {
            let (s, page) = get(f, &format!("/api/v1/runs?{q}")).await;
            assert_eq!(s, StatusCode::OK, "{q}: {page}");
            let mut v = ids(&page);
            v.sort();
            v
        }
    };
    assert_eq!(only("video=clip1").await, vec![r1]);
    assert_eq!(only("video=WALK").await, vec![r3]);
    assert_eq!(only("video=b.mp4").await, vec![r2, r6]);
    // The hidden part of a path does not match.
    assert_eq!(only("video=media").await, Vec::<i64>::new());
    assert_eq!(only("video=secret").await, Vec::<i64>::new());
    assert_eq!(only("model=NANODET").await, vec![r2]);
    assert_eq!(only("model=yolox&status=complete").await, vec![r1]);
    assert_eq!(only("status=live").await, vec![r4]);
    assert_eq!(only("status=running").await, vec![r5]);
    assert_eq!(only("status=failed").await, vec![r6]);
    assert_eq!(only("since=2000-01-01").await.len(), 6);
    assert_eq!(
        only("since=2999-01-01T00:00:00%2B02:00").await,
        Vec::<i64>::new()
    );
    assert_eq!(only("until=2000-01-01T00:00:00Z").await, Vec::<i64>::new());
    assert_eq!(only("until=2999-01-01").await.len(), 6);
    // Sorted by detections, in pages of one.
    let by_det = walk(f, "status=complete&sort=detections", 1).await;
    let got: Vec<i64> = by_det.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(got, vec![r3, r1, r2]);
    let by_det = walk(f, "status=complete&sort=-detections", 2).await;
    let got: Vec<i64> = by_det.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(got, vec![r2, r1, r3]);

    // Bad input: one-line 400s.
    let (_, p) = get(f, "/api/v1/runs?sort=-detections&limit=1").await;
    let det_cursor = p["next_cursor"].as_str().unwrap().to_owned();
    for bad in [
        "cursor=garbage".to_owned(),
        "cursor=s2026_x".to_owned(),
        format!("cursor={det_cursor}"),
        "sort=name".into(),
        "status=done".into(),
        "since=yesterday".into(),
        "until=2026-02-30".into(),
        "limit=0".into(),
        "limit=501".into(),
    ] {
        let (s, b) = get(f, &format!("/api/v1/runs?{bad}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
        assert!(!b["error"].as_str().unwrap().contains('\n'));
    }
    let (s, _) = call(&f.app, req("GET", "/api/v1/runs", None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // One run's page gains the summary; paths hidden from non-admins.
    let (s, run) = get(f, &format!("/api/v1/runs/{r5}")).await;
    assert_eq!(s, StatusCode::OK, "{run}");
    assert_eq!(
        (&run["video_path"], &run["source"], &run["video"]),
        (&json!("x.mp4"), &json!("cli"), &json!("x.mp4"))
    );
    assert_eq!(run["model_path"], "yolox_nano.onnx");
    assert_eq!(
        run["t_offset"],
        Value::Null,
        "the file is not there to probe"
    );
    let (_, run) = call(
        &f.app,
        req("GET", &format!("/api/v1/runs/{r5}"), Some(ADMIN)),
    )
    .await;
    assert_eq!(run["video_path"], "/elsewhere/secret/x.mp4");

    // Deleting: running and live runs are refused, others go with every
    // row; the job that made one keeps its record.
    for (id, what) in [(r4, "live"), (r5, "running")] {
        let (s, b) = call(
            &f.app,
            req("DELETE", &format!("/api/v1/runs/{id}"), Some(TOKEN)),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert!(b["error"].as_str().unwrap().contains(what), "{b}");
    }
    let rows = || off(|| f.results().rows_of_run(r2).unwrap());
    off(|| {
        f.results()
            .save_eval(r2, "mot", "gt.txt", &json!({"MOTA": 0.5}))
            .unwrap()
    });
    assert!(rows() > 25);
    let (s, b) = call(
        &f.app,
        req("DELETE", &format!("/api/v1/runs/{r2}"), Some(TOKEN)),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(rows(), 0);
    for path in [
        format!("/api/v1/runs/{r2}"),
        format!("/api/v1/runs/{r2}/detections"),
        format!("/api/v1/runs/{r2}/timeline"),
        format!("/api/v1/runs/{r2}/frames_index"),
        format!("/api/v1/runs/{r2}/video"),
    ] {
        let (s, b) = get(f, &path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {b}");
    }
    let (s, b) = call(
        &f.app,
        req("DELETE", &format!("/api/v1/runs/{r2}"), Some(TOKEN)),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, j) = get(f, &format!("/api/v1/jobs/{job}")).await;
    assert_eq!(
        (s, &j["run_id"], &j["state"]),
        (StatusCode::OK, &Value::Null, &json!("done"))
    );
    assert_eq!(ids(&get(f, "/api/v1/runs?limit=500").await.1).len(), 5);
    let (s, _) = call(&f.app, req("DELETE", "/api/v1/runs/x", Some(TOKEN))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_filtered_sorted_and_deleted_on_sqlite() {
    listing_filters_sorts_sources_and_deletion(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_filtered_sorted_and_deleted_on_postgres() {
    listing_filters_sorts_sources_and_deletion(true).await;
}

/// A 100k-detection run: its timeline with and without filters, against
/// counts made here from what was written, and its frame index.
async fn timeline_and_frames_index(pg: bool) {
    let Some(f) = off(|| fixture(pg)) else { return };
    let (frames_n, per) = (2000u64, 50usize);
    let t0 = Instant::now();
    let (run, _) = off(|| {
        seed(
            &*f.store(),
            Seed {
                video: video("/v/big.mp4", "hbig", frames_n),
                model: "m.onnx",
                frames: frames_n,
                per_frame: per,
                pose: false,
                status: RunStatus::Complete,
            },
        )
    });
    eprintln!(
        "seeded 100k detections in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let engine = if pg { "PostgreSQL" } else { "SQLite" };
    let expect = |bins: u64, keep: &dyn Fn(usize) -> bool| -> Vec<u64> {
        let mut c = vec![0u64; bins as usize];
        for fr in 0..frames_n {
            let n = (0..per).filter(|&i| keep(i)).count() as u64;
            c[(fr * bins / frames_n) as usize] += n;
        }
        c
    };
    let counts = |b: &Value| -> Vec<u64> {
        b["bins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["count"].as_u64().unwrap())
            .collect()
    };
    // Warm (labels cached, pages in memory), then timed.
    let _ = get(&f, &format!("/api/v1/runs/{run}/timeline")).await;
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let (s, b) = get(&f, &format!("/api/v1/runs/{run}/timeline?bins=200")).await;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["frames"], frames_n);
        assert_eq!(counts(&b), expect(200, &|_| true));
        assert_eq!(
            b["bins"][0],
            json!({"frame_from": 0, "frame_to": 9, "count": 500})
        );
    }
    times.sort_by(f64::total_cmp);
    eprintln!(
        "{engine}: timeline of a {} detection run, 200 bins: median {:.1} ms, max {:.1} ms",
        frames_n * per as u64,
        times[2],
        times[4]
    );
    let (s, b) = get(
        &f,
        &format!("/api/v1/runs/{run}/timeline?bins=7&class=car&min_score=0.75"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Class 2 is odd i; score 0.5 + (i % 5) / 10 >= 0.75 is i % 5 >= 3.
    assert_eq!(counts(&b), expect(7, &|i| i % 2 == 1 && i % 5 >= 3));
    let t = Instant::now();
    let (s, b) = get(&f, &format!("/api/v1/runs/{run}/timeline?bins=100&track=7")).await;
    eprintln!(
        "{engine}: one track's timeline: {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(counts(&b), expect(100, &|i| i == 6));
    // More bins than frames: one per frame.
    let (_, b) = get(&f, &format!("/api/v1/runs/{run}/timeline?bins=5000")).await;
    assert_eq!(b["bins"].as_array().unwrap().len(), 2000);
    for bad in ["bins=0", "bins=5001", "min_score=2", "bins=x", "track=-1"] {
        let (s, b) = get(&f, &format!("/api/v1/runs/{run}/timeline?{bad}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
    }
    let (s, _) = get(&f, &format!("/api/v1/runs/{run}/timeline?class=unicorn")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(&f, "/api/v1/runs/999999/timeline").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, ix) = get(&f, &format!("/api/v1/runs/{run}/frames_index")).await;
    assert_eq!(s, StatusCode::OK);
    let fr = ix["frame"].as_array().unwrap();
    let ts = ix["t"].as_array().unwrap();
    assert_eq!((fr.len(), ts.len()), (2000, 2000));
    assert_eq!(
        (&fr[1999], ts[1999].as_f64().unwrap()),
        (&json!(1999), 1999.0 / 25.0)
    );
    off(move || drop(f));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timelines_count_a_100k_detection_run_on_sqlite() {
    timeline_and_frames_index(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timelines_count_a_100k_detection_run_on_postgres() {
    timeline_and_frames_index(true).await;
}

#[tokio::test]
async fn models_are_listed_relative_to_the_model_folder() {
    let f = fixture(false).unwrap();
    let (s, m) = get(&f, "/api/v1/models").await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let m = m.as_array().unwrap();
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(
        (&m[0]["path"], &m[0]["family"], &m[0]["default"]),
        (
            &json!("more/nanodet_m.onnx"),
            &json!("nanodet"),
            &json!(false)
        )
    );
    assert_eq!(
        (
            &m[1]["path"],
            &m[1]["name"],
            &m[1]["family"],
            &m[1]["default"]
        ),
        (
            &json!("yolox_nano.onnx"),
            &json!("yolox_nano.onnx"),
            &json!("yolox"),
            &json!(true)
        )
    );
    assert_eq!(m[1]["size"], std::fs::metadata(model_path()).unwrap().len());
    assert!(!serde_json::to_string(m)
        .unwrap()
        .contains(f.dir.path().to_str().unwrap()));
}

/// The frame times the analysis stores for `video` (its decoder's).
fn stored_times(video: &Path) -> Vec<f64> {
    let spec = peregrine_media::discover_inputs(&[video.to_path_buf()])
        .unwrap()
        .remove(0);
    let mut d = peregrine_media::Decoder::open(&spec, &Default::default()).unwrap();
    let mut frame = peregrine_media::ffmpeg::frame::Video::empty();
    let mut out = Vec::new();
    while let Some(m) = d.next_frame(&mut frame).unwrap() {
        out.push(m.pts);
    }
    out
}

/// Presentation times of `file`'s video frames as FFmpeg (the demuxer
/// Chromium uses) gives them, and the video stream's start.
fn presented_times(file: &Path) -> Vec<f64> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg("frame=best_effort_timestamp_time")
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

fn seed_on_file(f: &Fixture, file: &Path) -> i64 {
    let info = peregrine_media::probe(
        &peregrine_media::discover_inputs(&[file.to_path_buf()]).unwrap()[0],
    )
    .unwrap();
    seed_run_on_file(&f.config.db, file, info.width, info.height, 3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_video_is_served_with_ranges_and_signed_access() {
    let f = fixture(false).unwrap();
    let file = data_dir().join("videos/traffic_intersection_cctv_640x480.mp4");
    let run = seed_on_file(&f, &file);
    let bytes = std::fs::read(&file).unwrap();
    let path = format!("/api/v1/runs/{run}/video");
    let (s, h, body) = raw(&f.app, req("GET", &path, Some(TOKEN))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "video/mp4");
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["x-peregrine-t-offset"], "0");
    assert_eq!(body, bytes);
    let ranged = |range: &str| {
        let mut r = req("GET", &path, Some(TOKEN));
        r.headers_mut().insert("range", range.parse().unwrap());
        r
    };
    let (s, h, body) = raw(&f.app, ranged("bytes=100-199")).await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h["content-range"], format!("bytes 100-199/{}", bytes.len()));
    assert_eq!(body, &bytes[100..200]);
    let (s, _, body) = raw(&f.app, ranged("bytes=-10")).await;
    assert_eq!(
        (s, body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &bytes[bytes.len() - 10..])
    );
    let (s, _, body) = raw(&f.app, ranged(&format!("bytes={}-", bytes.len() - 5))).await;
    assert_eq!(
        (s, body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &bytes[bytes.len() - 5..])
    );
    for bad in [format!("bytes={}-", bytes.len()), "bytes=500-100".into()] {
        let (s, h, _) = raw(&f.app, ranged(&bad)).await;
        assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE, "{bad}");
        assert_eq!(h["content-type"], "application/json", "{bad}");
    }
    for bad in ["bytes=0-1,5-9", "pages=1-2", "bytes=x-"] {
        let (s, _, b) = raw(&f.app, ranged(bad)).await;
        assert_eq!(
            s,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            String::from_utf8_lossy(&b)
        );
    }
    // A media element cannot send the token: the summary's signed address
    // opens this run's video, and nothing else.
    let (_, one) = get(&f, &format!("/api/v1/runs/{run}")).await;
    assert_eq!(one["t_offset"], 0.0);
    let url = one["video_url"].as_str().unwrap().to_owned();
    let (s, _, body) = raw(&f.app, req("GET", &url, None)).await;
    assert_eq!((s, body.len()), (StatusCode::OK, bytes.len()));
    let other = seed_on_file(&f, &file);
    for bad in [
        url.replace(&format!("/runs/{run}/"), &format!("/runs/{other}/")),
        format!("{}0", &url[..url.len() - 1]),
        format!("{path}?access=99999999999.00"),
        format!("{path}?access=x"),
        format!(
            "/api/v1/runs/{run}/detections?{}",
            url.split_once('?').unwrap().1
        ),
    ] {
        let (s, _, _) = raw(&f.app, req("GET", &bad, None)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad}");
    }
    let (s, b) = get(&f, "/api/v1/runs/424242/video").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

    // A file that changed since the run, or is gone: refused.
    let copy = f.media.join("copy.mp4");
    std::fs::copy(&file, &copy).unwrap();
    let run = seed_on_file(&f, &copy);
    let (s, _, _) = raw(
        &f.app,
        req("GET", &format!("/api/v1/runs/{run}/video"), Some(TOKEN)),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let mut changed = bytes.clone();
    changed[bytes.len() / 2] ^= 0xff;
    changed.truncate(bytes.len() - 1000);
    std::fs::write(&copy, &changed).unwrap();
    let (s, b) = get(&f, &format!("/api/v1/runs/{run}/video")).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    std::fs::remove_file(&copy).unwrap();
    let (s, b) = get(&f, &format!("/api/v1/runs/{run}/video")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
}

/// The browser's clock for the sample videos: the originals it plays keep
/// the stored times (t_offset 0); the AVIs are transcoded once, however
/// many ask at once, into MP4s whose frames carry exactly the stored times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn videos_keep_the_stored_frame_times_in_the_browser() {
    let f = fixture(false).unwrap();
    let videos = data_dir().join("videos");
    // Played as they are: the decoder's times are the demuxer's.
    for name in [
        "gait_sideon_whitewall_640x352.mp4",
        "gait_sideon_livingroom_960x540.mp4",
    ] {
        let file = videos.join(name);
        let run = seed_on_file(&f, &file);
        let (s, h, _) = raw(
            &f.app,
            req("HEAD", &format!("/api/v1/runs/{run}/video"), Some(TOKEN)),
        )
        .await;
        assert_eq!(
            (s, &h["x-peregrine-t-offset"]),
            (StatusCode::OK, &"0".parse().unwrap()),
            "{name}"
        );
        let (stored, shown) = (stored_times(&file), presented_times(&file));
        assert_eq!(stored.len(), shown.len(), "{name}");
        let worst = stored
            .iter()
            .zip(&shown)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-4, "{name}: off by {worst} s");
        // Variable frame rate: the index is what maps time to frames.
        let gaps: Vec<f64> = shown.windows(2).map(|w| w[1] - w[0]).collect();
        let (lo, hi) = gaps
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), g| (l.min(*g), h.max(*g)));
        eprintln!(
            "{name}: {} frames, frame gaps {lo:.4}..{hi:.4} s, stored = shown within {worst:.1e} s",
            stored.len()
        );
    }
    for name in [
        "traffic_highway_cctv_320x240.avi",
        "ped_concourse_overhead_1280x720_badindex.avi",
    ] {
        let file = videos.join(name);
        let run = seed_on_file(&f, &file);
        let path = format!("/api/v1/runs/{run}/video");
        let before = f.state.videos.transcodes_started();
        let t = Instant::now();
        let answers = futures_util::future::join_all(
            (0..3).map(|_| raw(&f.app, req("GET", &path, Some(TOKEN)))),
        )
        .await;
        eprintln!(
            "{name}: transcoded and served in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        assert_eq!(
            f.state.videos.transcodes_started() - before,
            1,
            "{name}: one transcode"
        );
        let (s, h, body) = &answers[0];
        assert_eq!(
            (*s, &h["content-type"]),
            (StatusCode::OK, &"video/mp4".parse().unwrap()),
            "{name}"
        );
        assert_eq!(h["x-peregrine-t-offset"], "0");
        for (s2, _, b2) in &answers[1..] {
            assert_eq!((s2, b2.len()), (s, body.len()));
        }
        let served = f.dir.path().join(format!("{name}.served.mp4"));
        std::fs::write(&served, body).unwrap();
        let (stored, shown) = (stored_times(&file), presented_times(&served));
        assert_eq!(stored.len(), shown.len(), "{name}: the same frames");
        let worst = stored
            .iter()
            .zip(&shown)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-3, "{name}: off by {worst} s");
        let info = std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=codec_name,pix_fmt",
                "-of",
                "csv=p=0",
            ])
            .arg(&served)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&info.stdout).trim(), "h264,yuv420p");
        // faststart: the index comes before the media data.
        let pos = |tag: &[u8]| body.windows(4).position(|w| w == tag).unwrap();
        assert!(pos(b"moov") < pos(b"mdat"), "{name}: moov first");
        // Served from the cache from now on, with ranges.
        let mut r = req("GET", &path, Some(TOKEN));
        r.headers_mut()
            .insert("range", "bytes=0-9".parse().unwrap());
        let (s, _, b) = raw(&f.app, r).await;
        assert_eq!(
            (s, b.as_slice()),
            (StatusCode::PARTIAL_CONTENT, &body[..10])
        );
        assert_eq!(f.state.videos.transcodes_started() - before, 1);
        eprintln!(
            "{name}: {} frames, stored = shown within {worst:.1e} s",
            stored.len()
        );
    }
    let cache: Vec<_> = std::fs::read_dir(f.config.upload_dir.join(".browser"))
        .unwrap()
        .collect();
    assert_eq!(cache.len(), 2, "no partial files left");
}

/// Jobs show paths relative to the upload folder, media root and model
/// folder, with the upload's original name, except to administrators; the
/// relative upload name can be submitted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_paths_are_relative_except_for_administrators() {
    let f = fixture(false).unwrap();
    let bytes = std::fs::read(data_dir().join("videos/gait_sideon_whitewall_640x352.mp4")).unwrap();
    let (ctype, body) = multipart(&[
        ("params", None, br#"{"end": 1}"#),
        ("file", Some("C:\\clips\\Walk Test.mp4"), &bytes),
    ]);
    let upload = |token: &str| {
        Request::post("/api/v1/jobs")
            .header("content-type", ctype.clone())
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(body.clone()))
            .unwrap()
    };
    let (s, created) = call(&f.app, upload(TOKEN)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let path = format!("/api/v1/jobs/{}", created["id"]);
    let (_, j) = get(&f, &path).await;
    let stored = j["video"].as_str().unwrap().to_owned();
    assert!(
        stored.starts_with("upload-") && !stored.contains('/'),
        "{j}"
    );
    assert_eq!(j["video_name"], "Walk Test.mp4");
    assert_eq!(j["model"], "yolox_nano.onnx");
    let (_, page) = get(&f, "/api/v1/jobs").await;
    assert_eq!(page["items"][0]["video"], stored.as_str());
    assert_eq!(page["items"][0]["video_name"], "Walk Test.mp4");
    let home = f.dir.path().to_str().unwrap();
    assert!(!j.to_string().contains(home) && !page.to_string().contains(home));
    // Administrators see where the files are.
    let (_, a) = call(&f.app, req("GET", &path, Some(ADMIN))).await;
    let abs = f.config.upload_dir.join(&stored);
    assert_eq!(a["video"], abs.to_str().unwrap());
    assert_eq!(a["video_name"], "Walk Test.mp4");
    assert_eq!(
        a["model"],
        f.config
            .model_dir
            .as_ref()
            .unwrap()
            .join("yolox_nano.onnx")
            .to_str()
            .unwrap()
    );
    // The name a non-administrator sees names the stored upload.
    let (s, again) = call(
        &f.app,
        Request::post("/api/v1/jobs")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::from(
                json!({"video": stored, "params": {"end": 2}}).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{again}");
    let (_, j2) = get(&f, &format!("/api/v1/jobs/{}", again["id"])).await;
    assert_eq!(
        (&j2["video"], &j2["video_name"]),
        (&json!(stored), &json!("Walk Test.mp4"))
    );
    // A media-root video is shown relative to the root.
    std::fs::create_dir_all(f.media.join("cams")).unwrap();
    std::fs::write(f.media.join("cams/a.mp4"), &bytes).unwrap();
    let (s, c) = call(
        &f.app,
        Request::post("/api/v1/jobs")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::from(
                json!({"video": "cams/a.mp4", "params": {"end": 1}}).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{c}");
    let (_, j3) = get(&f, &format!("/api/v1/jobs/{}", c["id"])).await;
    assert_eq!(
        (&j3["video"], &j3["video_name"]),
        (&json!("cams/a.mp4"), &json!("cams/a.mp4"))
    );
    // The media listing gives what a job takes: relative paths, absolute
    // for administrators.
    std::fs::write(f.media.join("top.mp4"), &bytes).unwrap();
    let (_, vids) = get(&f, "/api/v1/videos").await;
    assert_eq!(
        vids,
        json!([{"path": "top.mp4", "name": "top.mp4", "size": bytes.len()}])
    );
    let (_, vids) = call(&f.app, req("GET", "/api/v1/videos", Some(ADMIN))).await;
    assert_eq!(vids[0]["path"], f.media.join("top.mp4").to_str().unwrap());
    // The admin token must differ from the token.
    let mut raw = raw_config(f.dir.path(), &f.media);
    raw.token = Some(TOKEN.into());
    raw.admin_token = Some(TOKEN.into());
    assert!(Config::from_raw(raw)
        .unwrap_err()
        .to_string()
        .contains("admin_token"));
}

/// A run of a MOTChallenge folder (an image sequence: the ground truth's
/// usual form) plays as a transcode with one frame per image at the
/// sequence's frame rate, the times its analysis stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_sequence_plays_with_its_stored_frame_times() {
    let f = fixture(false).unwrap();
    let seq = std::fs::canonicalize(data_dir().join("mot/PETS09-S2L1-480x360")).unwrap();
    let spec = peregrine_media::discover_inputs(std::slice::from_ref(&seq))
        .unwrap()
        .remove(0);
    let (hash, size) = peregrine_pipeline::input_fingerprint(&spec).unwrap();
    let mut v = video(seq.to_str().unwrap(), &hash, 124);
    v.size = size;
    let (run, _) = seed(
        &*f.store(),
        Seed {
            video: v,
            model: "m.onnx",
            frames: 3,
            per_frame: 1,
            pose: false,
            status: RunStatus::Complete,
        },
    );
    let (s, h, body) = raw(
        &f.app,
        req("GET", &format!("/api/v1/runs/{run}/video"), Some(TOKEN)),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    assert_eq!(
        (&h["content-type"], &h["x-peregrine-t-offset"]),
        (&"video/mp4".parse().unwrap(), &"0".parse().unwrap())
    );
    let served = f.dir.path().join("seq.mp4");
    std::fs::write(&served, &body).unwrap();
    let (stored, shown) = (stored_times(&seq), presented_times(&served));
    assert_eq!((stored.len(), shown.len()), (124, 124));
    let worst = stored
        .iter()
        .zip(&shown)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-3, "off by {worst} s");
    assert!(
        (shown[7] - 1.0).abs() < 1e-6,
        "7 fps: frame 7 at 1 s, got {}",
        shown[7]
    );
    let (_, one) = get(&f, &format!("/api/v1/runs/{run}")).await;
    assert_eq!(one["t_offset"], 0.0);
}

/// Every sample video: what the browser gets (the original, or the
/// transcode) presents each frame at its stored time plus `t_offset`.
/// About a minute of decoding: `cargo test -p peregrine-server --test
/// workbench every_sample -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn every_sample_video_keeps_its_stored_times() {
    let f = fixture(false).unwrap();
    let mut names: Vec<PathBuf> = std::fs::read_dir(data_dir().join("videos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for file in names {
        let run = seed_on_file(&f, &file);
        let path = format!("/api/v1/runs/{run}/video");
        let (s, h, body) = raw(&f.app, req("GET", &path, Some(TOKEN))).await;
        assert_eq!(s, StatusCode::OK, "{}", file.display());
        let offset: f64 = h["x-peregrine-t-offset"].to_str().unwrap().parse().unwrap();
        let served = f.dir.path().join("served.bin");
        std::fs::write(&served, &body).unwrap();
        let (stored, shown) = (stored_times(&file), presented_times(&served));
        assert_eq!(stored.len(), shown.len(), "{}", file.display());
        let worst = stored
            .iter()
            .zip(&shown)
            .map(|(a, b)| (a + offset - b).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "{}: {} frames, {}, t_offset {offset}, shown = stored + t_offset within {worst:.1e} s",
            file.file_name().unwrap().to_string_lossy(),
            stored.len(),
            if body.len() as u64 == std::fs::metadata(&file).unwrap().len() {
                "original"
            } else {
                "transcoded"
            },
        );
        assert!(worst < 1e-3, "{}: off by {worst}", file.display());
    }
}
