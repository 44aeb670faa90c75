//! HTTP handlers under `/api/v1`, documented with utoipa so the OpenAPI
//! document is generated from the same code that routes requests.

use std::convert::Infallible;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::Stream;
use peregrine_core::Labels;
use peregrine_media::{InputKind, InputSpec, MediaError};
use peregrine_pipeline::AnalyzeParams;
use peregrine_render::RenderError;
use peregrine_store::{DetectionQuery, DetectionRow, TrackRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};

use crate::db::{JobRecord, JobState, Jobs, NewJob};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath as Path, ApiQuery as Query};
use crate::paths::{confine, confine_video, stored_upload_name};
use crate::state::AppState;

pub const MAX_PAGE: usize = 10_000;
pub const MAX_JSON_BODY: usize = 64 * 1024;
/// Most detections a job may keep per frame (`max_det`).
pub const MAX_DET: usize = 10_000;
/// Longest a job may keep lost tracks, in frames at 30 fps (`track_buffer`).
pub const MAX_TRACK_BUFFER: u32 = 10_000;
/// Largest frame number or keyset position (SQLite integers are i64).
const MAX_FRAME: u64 = i64::MAX as u64;
static UPLOAD_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

// ---------------------------------------------------------------- types

/// A job request. `params` takes the `peregrine analyze` flag names
/// (`conf`, `end`, `fps`, `classes`, `no_track`, ...).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    /// A video file (or MOTChallenge folder) inside a media root; relative
    /// paths are taken from the first root.
    pub video: String,
    /// Model file inside the model folder; the configured default when
    /// omitted.
    pub model: Option<String>,
    /// `peregrine analyze` flag names. Bounded by the server: `threads`,
    /// `infer_workers`, `decode_threads`, `jobs` ≤ max_threads (default
    /// twice the cores); `batch` ≤ max_batch (default 32); `batch ×
    /// infer_workers` ≤ 2 × max_batch; `max_det`, `track_buffer` ≤ 10000.
    #[schema(value_type = Object)]
    pub params: Option<Value>,
    /// Higher runs first (-100..=100, default 0).
    pub priority: Option<i64>,
}

/// Multipart upload: a `file` part plus optional `model`, `params` (JSON
/// text) and `priority` parts.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadJob {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    model: Option<String>,
    params: Option<String>,
    priority: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobCreated {
    pub id: i64,
    pub state: JobState,
    /// True when an identical job (same video, model and parameters)
    /// already existed and its id is returned instead.
    pub cached: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub id: i64,
    pub state: JobState,
    /// 0..1.
    pub progress: f64,
    pub fps: Option<f64>,
    /// Seconds left, while running with a known frame count.
    pub eta_s: Option<f64>,
    pub frames_done: u64,
    pub frames_total: u64,
    /// While running: `loading` (model, inference sessions) or `analysing`.
    pub phase: Option<String>,
    pub run_id: Option<i64>,
    /// complete | partial (damaged input analysed as far as it decodes).
    pub run_status: Option<String>,
    pub cache_hit: bool,
    pub error: Option<String>,
    pub video: String,
    pub model: String,
    #[schema(value_type = Object)]
    pub params: Value,
    pub priority: i64,
    pub attempts: u32,
    /// Per-stage timings: `{stage: {count, mean_ms, p50_ms, p95_ms, max_ms}}`.
    #[schema(value_type = Object)]
    pub timings: Option<Value>,
    /// Unix seconds.
    pub created_at: f64,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<JobView>,
    /// Pass as `cursor` for the next (older) page; null at the end.
    pub next_cursor: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// queued | running | done | failed | cancelled
    pub state: Option<String>,
    /// 1..=500, default 50.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page (a job id, at least 1).
    pub cursor: Option<i64>,
}

/// One detection: the fields of `peregrine export --format jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DetectionItem {
    pub frame: u64,
    pub t: f64,
    pub class: String,
    pub class_id: u16,
    pub score: f32,
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    pub track_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub keypoints: Option<Vec<[f32; 3]>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DetectionPageBody {
    pub items: Vec<DetectionItem>,
    /// Opaque keyset cursor for the next page; null at the end.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetectionsQuery {
    /// 0..=2^63-1.
    pub frame_from: Option<u64>,
    /// 0..=2^63-1.
    pub frame_to: Option<u64>,
    /// Class name or id.
    pub class: Option<String>,
    pub track: Option<u32>,
    /// 1..=10000, default 1000.
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TrackView {
    pub track_id: u32,
    pub class: String,
    pub class_id: u16,
    pub first_frame: u64,
    pub last_frame: u64,
    pub first_t: f64,
    pub last_t: f64,
    pub frames: u64,
    pub mean_score: f64,
    pub path_px: f64,
    pub mean_speed: f64,
    pub max_speed: f64,
    /// Bounding region [x1, y1, x2, y2].
    pub region: [f32; 4],
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VideoItem {
    pub path: String,
    pub name: String,
    pub size: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// ok | degraded
    pub status: String,
    pub database: String,
    pub onnxruntime: String,
}

// ---------------------------------------------------------------- auth

/// Every `/api` route requires `Authorization: Bearer <token>` when a
/// token is configured.
pub async fn require_token(
    State(st): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &st.config.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(req).await)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---------------------------------------------------------------- jobs

fn view(j: JobRecord, st: &AppState) -> JobView {
    let mut v = JobView {
        id: j.id,
        state: j.state,
        progress: j.progress,
        fps: j.fps,
        eta_s: None,
        frames_done: j.frames_done,
        frames_total: j.frames_total,
        phase: None,
        run_id: j.run_id,
        run_status: j.run_status,
        cache_hit: j.cache_hit,
        error: j.error,
        video: j.video,
        model: j.model,
        params: j.params,
        priority: j.priority,
        attempts: j.attempts,
        timings: j.timings,
        created_at: j.created_at,
        started_at: j.started_at,
        finished_at: j.finished_at,
    };
    if v.state == JobState::Running {
        if let Some(live) = st.live(v.id) {
            let done = live.frames_done.load(Ordering::Relaxed);
            let total = live.frames_total.load(Ordering::Relaxed);
            let fps = live.fps();
            v.phase = Some(live.phase().to_string());
            v.frames_done = done;
            v.frames_total = total;
            v.fps = Some(fps);
            if total > 0 {
                v.progress = (done as f64 / total as f64).clamp(0.0, 0.99);
                if fps > 0.0 {
                    v.eta_s = Some(total.saturating_sub(done) as f64 / fps);
                }
            }
        }
    }
    v
}

async fn load_view(st: &AppState, id: i64) -> Result<JobView, ApiError> {
    let rec = st.db(move |c| Ok(Jobs(&c.jobs).get(id)?)).await?;
    let rec = rec.ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))?;
    Ok(view(rec, st))
}

struct Validated {
    video: PathBuf,
    model: PathBuf,
    params: Value,
    priority: i64,
    video_hash: String,
    model_hash: String,
}

/// Refuses resource parameters beyond this server's maxima, naming the
/// parameter and its bound.
fn check_bounds(
    st: &AppState,
    p: &AnalyzeParams,
    opts: &peregrine_pipeline::AnalyzeOptions,
) -> Result<(), ApiError> {
    let c = &st.config;
    let over = |name: &str, max: String, setting: &str, got: String| {
        ApiError::BadRequest(format!(
            "params: {name} must be at most {max} on this server ({setting}), got {got}"
        ))
    };
    for (name, v) in [
        ("threads", p.threads),
        ("infer_workers", p.infer_workers),
        ("decode_threads", p.decode_threads),
        ("jobs", p.jobs),
    ] {
        if let Some(v) = v.filter(|v| *v > c.max_threads) {
            return Err(over(
                name,
                c.max_threads.to_string(),
                "max_threads",
                v.to_string(),
            ));
        }
    }
    if let Some(b) = p.batch.filter(|b| *b > c.max_batch) {
        return Err(over(
            "batch",
            c.max_batch.to_string(),
            "max_batch",
            b.to_string(),
        ));
    }
    // Frames in flight (and so the frame pools) grow with their product.
    let e = &opts.engine;
    let in_flight = e.batch.saturating_mul(e.infer_workers);
    if in_flight > 2 * c.max_batch {
        return Err(over(
            "batch × infer_workers",
            (2 * c.max_batch).to_string(),
            "2 × max_batch",
            format!("{} × {} = {in_flight}", e.batch, e.infer_workers),
        ));
    }
    if let Some(m) = p.max_pixels.filter(|m| *m > c.max_pixels) {
        return Err(over(
            "max_pixels",
            c.max_pixels.to_string(),
            "max_pixels",
            m.to_string(),
        ));
    }
    if let Some(m) = p.max_det.filter(|m| *m > MAX_DET) {
        return Err(over("max_det", MAX_DET.to_string(), "fixed", m.to_string()));
    }
    if let Some(t) = p.track_buffer.filter(|t| *t > MAX_TRACK_BUFFER) {
        return Err(over(
            "track_buffer",
            MAX_TRACK_BUFFER.to_string(),
            "fixed",
            t.to_string(),
        ));
    }
    Ok(())
}

fn validate_job(
    st: &AppState,
    video: PathBuf,
    model: Option<&str>,
    params: Option<Value>,
    priority: Option<i64>,
) -> Result<Validated, ApiError> {
    let params: AnalyzeParams =
        serde_json::from_value(params.unwrap_or(Value::Object(Default::default())))
            .map_err(|e| ApiError::BadRequest(format!("params: {e}")))?;
    let priority = priority.unwrap_or(0);
    if !(-100..=100).contains(&priority) {
        return Err(ApiError::BadRequest(
            "priority must be in -100..=100".into(),
        ));
    }
    let model = match model {
        Some(m) => {
            let dir = st.config.model_dir.as_ref().ok_or_else(|| {
                ApiError::BadRequest("model: no model folder is configured".into())
            })?;
            let p = if FsPath::new(m).is_absolute() {
                PathBuf::from(m)
            } else {
                dir.join(m)
            };
            confine(&p.to_string_lossy(), std::slice::from_ref(dir)).map_err(|e| match e {
                ApiError::Forbidden(_) => {
                    ApiError::Forbidden("model: must be inside the model folder".into())
                }
                ApiError::NotFound(_) => ApiError::NotFound(format!("model: {m} not found")),
                other => other,
            })?
        }
        None => st.config.default_model.clone().ok_or_else(|| {
            ApiError::BadRequest("model: none given and no default model configured".into())
        })?,
    };
    if !model.is_file() {
        return Err(ApiError::BadRequest("model: not a file".into()));
    }
    // Class filters resolve against the model's own names (NAME.names).
    let labels = peregrine_pipeline::model_labels(&model).map_err(|_| {
        let names = model.with_extension("names");
        let name = names.file_name().unwrap_or_default().to_string_lossy();
        ApiError::BadRequest(format!(
            "model: its class names file {name} is empty or unreadable"
        ))
    })?;
    let opts = params
        .resolve_for(labels)
        .map_err(|e| ApiError::BadRequest(format!("params: {e}")))?;
    check_bounds(st, &params, &opts)?;
    let model_hash = peregrine_media::file_fingerprint(&model)
        .map_err(|e| ApiError::internal(format!("model fingerprint: {e}")))?
        .hash;
    let video_hash = video_fingerprint(&video)?;
    // Canonical form: the fields given, aliases resolved, nulls dropped, so
    // identical requests get identical keys.
    let mut params = serde_json::to_value(&params).map_err(ApiError::internal)?;
    if let Value::Object(m) = &mut params {
        m.retain(|_, v| !v.is_null());
    }
    Ok(Validated {
        video,
        model,
        params,
        priority,
        video_hash,
        model_hash,
    })
}

/// The content identity of a job's video, as the analysis cache sees it: a
/// file's sampled fingerprint, or for a MOTChallenge folder its
/// `seqinfo.ini` plus the names and sizes of its images.
fn video_fingerprint(video: &FsPath) -> Result<String, ApiError> {
    if video.is_file() {
        return peregrine_media::file_fingerprint(video)
            .map(|f| f.hash)
            .map_err(|_| ApiError::BadRequest("video: cannot be read".into()));
    }
    let mut h = blake3::Hasher::new();
    h.update(&std::fs::read(video.join("seqinfo.ini")).unwrap_or_default());
    let img = video.join("img1");
    let mut files: Vec<(String, u64)> = std::fs::read_dir(&img)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?.len())))
        .collect();
    files.sort();
    for (name, size) in files {
        h.update(name.as_bytes());
        h.update(&size.to_le_bytes());
    }
    Ok(h.finalize().to_hex().to_string())
}

/// Refuses a video whose frames are larger than `max_pixels`.
pub(crate) fn check_pixels(width: u32, height: u32, max_pixels: u64) -> Result<(), String> {
    let pixels = width as u64 * height as u64;
    if pixels > max_pixels {
        return Err(format!(
            "video: {width}x{height} is {pixels} pixels, over this server's limit of \
             {max_pixels} (max_pixels)"
        ));
    }
    Ok(())
}

/// Probes a job's video (headers; FFmpeg may decode a first frame) and
/// refuses it if its frames are over the pixel limit. What FFmpeg cannot
/// open is left to the job, which fails with FFmpeg's reason; `strict`
/// (uploads) refuses it here.
fn probe_video(st: &AppState, video: &FsPath, strict: bool) -> Result<(), ApiError> {
    let spec = peregrine_media::discover_inputs(&[video.to_path_buf()])
        .ok()
        .and_then(|mut v| (v.len() == 1).then(|| v.remove(0)))
        .unwrap_or_else(|| InputSpec {
            path: video.to_path_buf(),
            kind: InputKind::File,
        });
    let size = match peregrine_media::probe_limited(&spec, st.config.max_pixels) {
        Ok(info) => Some((info.width, info.height)),
        Err(MediaError::TooLarge { width, height, .. }) => Some((width, height)),
        Err(_) => None,
    };
    match size {
        Some((w, h)) if w > 0 && h > 0 => {
            check_pixels(w, h, st.config.max_pixels).map_err(ApiError::BadRequest)
        }
        _ if strict => Err(ApiError::UnsupportedMedia(
            "upload is not a video FFmpeg can decode".into(),
        )),
        _ => Ok(()),
    }
}

fn allowed_roots(st: &AppState) -> Vec<PathBuf> {
    let mut r = st.config.media_roots.clone();
    r.push(st.config.upload_dir.clone());
    r
}

async fn enqueue(st: &AppState, v: Validated) -> Result<Response, ApiError> {
    let video = v.video.to_string_lossy().into_owned();
    let model = v.model.to_string_lossy().into_owned();
    let (id, state, cached) = st
        .db(move |c| {
            let jobs = Jobs(&c.jobs);
            let job = NewJob {
                video: &video,
                model: &model,
                params: &v.params,
                priority: v.priority,
                video_hash: &v.video_hash,
                model_hash: &v.model_hash,
            };
            if let Some((id, state)) = jobs.find_same(&job.key())? {
                return Ok((id, state, true));
            }
            Ok((jobs.insert(&job)?, JobState::Queued, false))
        })
        .await?;
    if !cached {
        st.wake.notify();
        st.publish(id);
    }
    let status = if cached {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(JobCreated { id, state, cached })).into_response())
}

/// Reads a JSON request body of at most [`MAX_JSON_BODY`] bytes (413
/// beyond).
async fn json_body(body: Body) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let too_large = || ApiError::BodyTooLarge(format!("JSON body over {MAX_JSON_BODY} bytes"));
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
        if bytes.len() + chunk.len() > MAX_JSON_BODY {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Submit a job: JSON naming a video inside a media root, or a multipart
/// upload (size-limited; content probed, not the extension). Answers at
/// once; an identical job (same video content, model and parameters)
/// returns the existing id with `cached: true`. Resource parameters are
/// bounded by the server (`threads`, `infer_workers`, `decode_threads`,
/// `jobs` ≤ max_threads; `batch` ≤ max_batch; `batch × infer_workers` ≤
/// 2 × max_batch; `max_det`, `track_buffer` ≤ 10000), and videos by
/// `max_pixels`.
#[utoipa::path(
    post,
    path = "/api/v1/jobs",
    request_body(content(
        (CreateJob = "application/json"),
        (UploadJob = "multipart/form-data")
    )),
    responses(
        (status = 202, description = "Queued", body = JobCreated),
        (status = 200, description = "Identical job exists", body = JobCreated),
        (status = 400, description = "Invalid request, a parameter over its bound, or a video over the pixel limit", body = ErrorBody),
        (status = 403, description = "Path outside the media roots, or a request from another origin", body = ErrorBody),
        (status = 404, description = "Video or model not found", body = ErrorBody),
        (status = 413, description = "Upload or JSON body (64 KiB) too large", body = ErrorBody),
        (status = 415, description = "Not a video", body = ErrorBody),
        (status = 503, description = "Busy probing other videos", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "jobs"
)]
pub async fn create_job(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ctype.starts_with("multipart/form-data") {
        let mp = Multipart::from_request(req, &st)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        return upload_job(st, mp).await;
    }
    if !ctype.starts_with("application/json") {
        return Err(ApiError::UnsupportedMedia(
            "send application/json or multipart/form-data".into(),
        ));
    }
    // JSON requests are small; only uploads get the large body limit.
    let bytes = json_body(req.into_body()).await?;
    let body: CreateJob =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
    let roots = allowed_roots(&st);
    let st2 = st.clone();
    let v = tokio::task::spawn_blocking(move || {
        let video = confine_video(&body.video, &roots, &st2.config.upload_dir)?;
        if !(video.is_file() || video.join("seqinfo.ini").is_file()) {
            return Err(ApiError::BadRequest(
                "video: must be a video file or a MOTChallenge sequence folder".into(),
            ));
        }
        validate_job(
            &st2,
            video,
            body.model.as_deref(),
            body.params,
            body.priority,
        )
    })
    .await
    .map_err(ApiError::internal)??;
    // Probed last, once everything cheap is valid, within the media permits.
    let permit = st.media_permit().await?;
    let (st2, video) = (st.clone(), v.video.clone());
    tokio::task::spawn_blocking(move || probe_video(&st2, &video, false))
        .await
        .map_err(ApiError::internal)??;
    drop(permit);
    enqueue(&st, v).await
}

/// Removes a file when dropped unless kept.
struct TempUpload(Option<PathBuf>);

impl Drop for TempUpload {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The name of an upload being received: `upload-<nanos>-<pid>-<seq>.bin`.
fn temp_upload_name(nanos: u128, pid: u32, seq: u64) -> String {
    format!("upload-{nanos}-{pid}-{seq}.bin")
}

/// The process that wrote a temporary upload, if `name` is one.
fn temp_upload_pid(name: &str) -> Option<i64> {
    let mut parts = name
        .strip_prefix("upload-")?
        .strip_suffix(".bin")?
        .split('-');
    let (_nanos, pid, _seq) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    pid.parse().ok()
}

/// Deletes temporary uploads left in `dir` by a process that is gone (a
/// crash mid-upload) or by an earlier process with this one's id; called at
/// start, before any upload can be in flight. Returns how many.
pub fn remove_stale_uploads(dir: &FsPath) -> usize {
    let me = std::process::id() as i64;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(temp_upload_pid)
                .is_some_and(|pid| pid == me || !crate::db::process_alive(pid))
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

async fn upload_job(st: AppState, mut mp: Multipart) -> Result<Response, ApiError> {
    let limit = st.config.max_upload_bytes;
    let too_large = || ApiError::PayloadTooLarge {
        limit_mb: limit >> 20,
    };
    let field_err = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::BadRequest(format!("multipart: {}", e.body_text()))
        }
    };
    let mut upload: Option<TempUpload> = None;
    let mut upload_path: Option<PathBuf> = None;
    let mut upload_hash = None;
    let (mut model, mut params, mut priority) = (None, None, None);
    while let Some(mut field) = mp.next_field().await.map_err(field_err)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "file" => {
                if upload.is_some() {
                    return Err(ApiError::BadRequest("multipart: one file per job".into()));
                }
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let path = st.config.upload_dir.join(temp_upload_name(
                    nanos,
                    std::process::id(),
                    UPLOAD_SEQ.fetch_add(1, Ordering::Relaxed),
                ));
                let guard = TempUpload(Some(path.clone()));
                let mut f = tokio::fs::File::create(&path)
                    .await
                    .map_err(ApiError::internal)?;
                let mut size = 0u64;
                let mut hash = blake3::Hasher::new();
                while let Some(chunk) = field.chunk().await.map_err(field_err)? {
                    size += chunk.len() as u64;
                    if size > limit {
                        return Err(too_large());
                    }
                    hash.update(&chunk);
                    f.write_all(&chunk).await.map_err(ApiError::internal)?;
                }
                f.flush().await.map_err(ApiError::internal)?;
                if size == 0 {
                    return Err(ApiError::BadRequest("multipart: empty file".into()));
                }
                upload = Some(guard);
                upload_path = Some(path);
                upload_hash = Some(hash.finalize().to_hex());
            }
            "model" | "params" | "priority" => {
                let text = field.text().await.map_err(field_err)?;
                if text.len() > 64 * 1024 {
                    return Err(ApiError::BadRequest(format!("{name}: too long")));
                }
                match name.as_str() {
                    "model" => model = Some(text),
                    "params" => params = Some(text),
                    _ => priority = Some(text),
                }
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "multipart: unexpected part {other:?}"
                )))
            }
        }
    }
    let mut upload =
        upload.ok_or_else(|| ApiError::BadRequest("multipart: no file part".into()))?;
    let params = match params {
        Some(p) if !p.trim().is_empty() => Some(
            serde_json::from_str::<Value>(&p)
                .map_err(|e| ApiError::BadRequest(format!("params: {e}")))?,
        ),
        _ => None,
    };
    let priority = match priority {
        Some(p) if !p.trim().is_empty() => Some(
            p.trim()
                .parse::<i64>()
                .map_err(|_| ApiError::BadRequest("priority: not an integer".into()))?,
        ),
        _ => None,
    };
    let path = upload_path.expect("set with the upload");
    let st2 = st.clone();
    let v = tokio::task::spawn_blocking(move || {
        validate_job(&st2, path, model.as_deref(), params, priority)
    })
    .await
    .map_err(ApiError::internal)??;
    let permit = st.media_permit().await?;
    let (st2, video) = (st.clone(), v.video.clone());
    tokio::task::spawn_blocking(move || probe_video(&st2, &video, true))
        .await
        .map_err(ApiError::internal)??;
    drop(permit);
    // Accepted: the upload is kept under its content hash, so the same video
    // uploaded again is the same file (and, with the same model and
    // parameters, the same job) and takes no more disk. Stored files are
    // only ever created from accepted uploads and never deleted here.
    let hex = upload_hash.expect("set with the upload");
    let stored = st.config.upload_dir.join(stored_upload_name(&hex));
    if !stored.is_file() {
        let from = upload.0.take().expect("the temporary upload");
        if let Err(e) = tokio::fs::rename(&from, &stored).await {
            upload.0 = Some(from);
            return Err(ApiError::internal(e));
        }
    }
    // Any temporary copy left goes when `upload` drops.
    enqueue(&st, Validated { video: stored, ..v }).await
}

/// List jobs, newest first, optionally by state; keyset pages.
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    params(JobsQuery),
    responses((status = 200, body = JobPage), (status = 400, body = ErrorBody)),
    security(("bearer" = [])),
    tag = "jobs"
)]
pub async fn list_jobs(
    State(st): State<AppState>,
    Query(q): Query<JobsQuery>,
) -> Result<Json<JobPage>, ApiError> {
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "state: {s:?} is not one of queued, running, done, failed, cancelled"
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be in 1..=500".into()));
    }
    let cursor = q.cursor;
    if cursor.is_some_and(|c| c < 1) {
        return Err(ApiError::BadRequest(
            "cursor must be a job id (at least 1)".into(),
        ));
    }
    let rows = st
        .db(move |c| Ok(Jobs(&c.jobs).list(state, cursor, limit + 1)?))
        .await?;
    let more = rows.len() > limit;
    let items: Vec<JobView> = rows.into_iter().take(limit).map(|j| view(j, &st)).collect();
    let next_cursor = if more {
        items.last().map(|j| j.id)
    } else {
        None
    };
    Ok(Json(JobPage { items, next_cursor }))
}

/// A job's state, progress, fps, ETA, per-stage timings and error.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}",
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = JobView),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "jobs"
)]
pub async fn get_job(
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<JobView>, ApiError> {
    load_view(&st, id).await.map(Json)
}

/// Cancel a job: a queued job is cancelled at once; a running one stops
/// within about 100 ms of the next check, in every phase: before and after
/// loading the model and building its inference sessions, per frame while
/// analysing, and after the last write (the job then ends `cancelled`, its
/// complete run kept).
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/cancel",
    params(("id" = i64, Path)),
    responses(
        (status = 202, description = "Cancellation requested or done", body = JobView),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already finished", body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "jobs"
)]
pub async fn cancel_job(
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let (before, after) = st
        .db(move |c| Ok(Jobs(&c.jobs).request_cancel(id)?))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))?;
    if before.is_terminal() {
        return Err(ApiError::Conflict(format!(
            "job {id} already ended ({})",
            before.as_str()
        )));
    }
    if after == JobState::Running {
        if let Some(live) = st.live(id) {
            live.cancel.store(true, Ordering::SeqCst);
        }
    }
    st.publish(id);
    Ok((StatusCode::ACCEPTED, Json(load_view(&st, id).await?)))
}

struct EventState {
    st: AppState,
    rx: tokio::sync::broadcast::Receiver<i64>,
    id: i64,
    pending: Option<JobView>,
    ended: bool,
}

fn job_event(v: &JobView) -> Event {
    let name = if v.state.is_terminal() { "end" } else { "job" };
    Event::default()
        .event(name)
        .json_data(v)
        .unwrap_or_else(|_| Event::default().event(name))
}

/// Server-Sent Events: a `job` event (JobView) on every change, about 4 per
/// second while running, and a final `end` event when the job ends.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}/events",
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "text/event-stream of JobView", content_type = "text/event-stream", body = JobView),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "jobs"
)]
pub async fn job_events(
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let rx = st.events.subscribe();
    let first = load_view(&st, id).await?;
    let init = EventState {
        st,
        rx,
        id,
        pending: Some(first),
        ended: false,
    };
    let stream = futures_util::stream::unfold(init, |mut s| async move {
        if s.ended {
            return None;
        }
        if let Some(v) = s.pending.take() {
            s.ended = v.state.is_terminal();
            return Some((Ok(job_event(&v)), s));
        }
        loop {
            if s.st.shutdown.load(Ordering::SeqCst) {
                return None;
            }
            match tokio::time::timeout(Duration::from_secs(1), s.rx.recv()).await {
                Ok(Ok(x)) if x == s.id => break,
                Ok(Ok(_)) | Err(_) => continue,
                Ok(Err(RecvError::Lagged(_))) => break,
                Ok(Err(RecvError::Closed)) => return None,
            }
        }
        let v = load_view(&s.st, s.id).await.ok()?;
        s.ended = v.state.is_terminal();
        Some((Ok(job_event(&v)), s))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

// ---------------------------------------------------------------- runs

fn parse_cursor(c: &str) -> Result<(u64, i64), ApiError> {
    let bad = || ApiError::BadRequest("cursor: invalid".into());
    let (f, r) = c.split_once('_').ok_or_else(bad)?;
    let (f, r): (u64, i64) = (f.parse().map_err(|_| bad())?, r.parse().map_err(|_| bad())?);
    if f > MAX_FRAME || r < 0 {
        return Err(bad());
    }
    Ok((f, r))
}

/// A keyset page of a run's detections in (frame, insertion) order: one
/// indexed range query per page, no OFFSET.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/detections",
    params(("id" = i64, Path), DetectionsQuery),
    responses(
        (status = 200, body = DetectionPageBody),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "runs"
)]
pub async fn detections(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<DetectionsQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be in 1..={MAX_PAGE}"
        )));
    }
    let after = q.cursor.as_deref().map(parse_cursor).transpose()?;
    for (name, v) in [("frame_from", q.frame_from), ("frame_to", q.frame_to)] {
        if v.is_some_and(|v| v > MAX_FRAME) {
            return Err(ApiError::BadRequest(format!(
                "{name} must be in 0..={MAX_FRAME}"
            )));
        }
    }
    let class = q.class.filter(|c| !c.is_empty());
    let (frame_from, frame_to, track_id) = (q.frame_from, q.frame_to, q.track);
    // Serialised on the blocking thread straight into a right-sized buffer,
    // with class names borrowed from the run's labels: a 1000-row page is
    // ~130 KB of JSON.
    let st2 = st.clone();
    let body = st
        .db(move |c| {
            let labels = st2.labels_of(&c.store, id)?;
            // A class name of the run's labels, or a class index.
            let class_id = class
                .as_deref()
                .map(|c| {
                    labels
                        .id_of(c)
                        .map_err(|_| ApiError::BadRequest(format!("class: unknown class {c:?}")))
                })
                .transpose()?;
            let query = DetectionQuery {
                frame_from,
                frame_to,
                class_id,
                track_id,
                limit,
                after,
            };
            let page = c.store.detections_page(id, &query)?;
            let out = PageOut {
                items: page
                    .items
                    .iter()
                    .map(|d| detection_out(d, &labels))
                    .collect(),
                next_cursor: page.next.map(|(f, r)| format!("{f}_{r}")),
            };
            let mut buf = Vec::with_capacity(64 + out.items.len() * 192);
            serde_json::to_writer(&mut buf, &out).map_err(ApiError::internal)?;
            Ok(buf)
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The wire form of [`DetectionItem`] (same fields, same order), borrowing
/// the class name.
#[derive(Serialize)]
struct DetectionOut<'a> {
    frame: u64,
    t: f64,
    class: &'a str,
    class_id: u16,
    score: f32,
    x1: f32,
    y1: f32,
    x2: f32,
    y2: f32,
    track_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keypoints: Option<Vec<[f32; 3]>>,
}

#[derive(Serialize)]
struct PageOut<'a> {
    items: Vec<DetectionOut<'a>>,
    next_cursor: Option<String>,
}

/// Class names as `peregrine export` writes them (empty when out of range).
fn detection_out<'a>(d: &DetectionRow, labels: &'a Labels) -> DetectionOut<'a> {
    DetectionOut {
        frame: d.frame,
        t: d.t,
        class: labels.get(d.class_id).unwrap_or(""),
        class_id: d.class_id,
        score: d.score,
        x1: d.bbox.x1,
        y1: d.bbox.y1,
        x2: d.bbox.x2,
        y2: d.bbox.y2,
        track_id: d.track_id,
        keypoints: (!d.keypoints.is_empty())
            .then(|| d.keypoints.iter().map(|k| [k.x, k.y, k.score]).collect()),
    }
}

fn track_view(t: &TrackRow, labels: &Labels) -> TrackView {
    TrackView {
        track_id: t.track_id,
        class: labels.get(t.class_id).unwrap_or("").to_owned(),
        class_id: t.class_id,
        first_frame: t.first_frame,
        last_frame: t.last_frame,
        first_t: t.first_t,
        last_t: t.last_t,
        frames: t.frames,
        mean_score: t.mean_score,
        path_px: t.path_px,
        mean_speed: t.mean_speed,
        max_speed: t.max_speed,
        region: [t.region.x1, t.region.y1, t.region.x2, t.region.y2],
    }
}

/// A run's tracks with their statistics.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/tracks",
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = Vec<TrackView>),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "runs"
)]
pub async fn tracks(
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Vec<TrackView>>, ApiError> {
    let st2 = st.clone();
    let (rows, labels) = st
        .db(move |c| Ok((c.store.tracks(id)?, st2.labels_of(&c.store, id)?)))
        .await?;
    Ok(Json(rows.iter().map(|t| track_view(t, &labels)).collect()))
}

/// A stored run (video, model, parameters, status, counts, timings).
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}",
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = Object),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "runs"
)]
pub async fn get_run(
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let run = st.db(move |c| Ok(c.store.run(id)?)).await?;
    Ok(Json(serde_json::to_value(run).map_err(ApiError::internal)?))
}

/// Frame `n` of the run's video with its detections drawn, as JPEG,
/// rendered on demand (`/frames/12.jpg`). Renders run at most two at a
/// time (a few more wait; beyond that 503); videos over the server's pixel
/// limit are refused, and so is a video whose file no longer has the
/// content the run analysed (it would draw the run's boxes on another
/// video).
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/frames/{file}",
    params(("id" = i64, Path), ("file" = String, Path, description = "`<frame>.jpg`, frame in 0..=2^63-1")),
    responses(
        (status = 200, content_type = "image/jpeg", body = Vec<u8>),
        (status = 400, description = "Frame number out of range, or the video is over the pixel limit", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The video file changed since the run analysed it", body = ErrorBody),
        (status = 503, description = "Too many frame images being rendered", body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "runs"
)]
pub async fn frame(
    State(st): State<AppState>,
    Path((id, file)): Path<(i64, String)>,
) -> Result<Response, ApiError> {
    let n: u64 = file
        .strip_suffix(".jpg")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| ApiError::NotFound("frames are named <number>.jpg".into()))?;
    if n > MAX_FRAME {
        return Err(ApiError::BadRequest(format!(
            "frame must be in 0..={MAX_FRAME}"
        )));
    }
    // Cheap checks first, without a render permit.
    let max_pixels = st.config.max_pixels;
    st.db(move |c| {
        let run = c.store.run(id)?;
        let video = FsPath::new(&run.video_path);
        if video.is_file() {
            let now = peregrine_media::file_fingerprint(video).map_err(|_| {
                ApiError::NotFound(format!("frame {n} of run {id} is not available"))
            })?;
            if now.hash != run.content_hash {
                return Err(ApiError::Conflict(format!(
                    "run {id}: its video file has changed since it was analysed"
                )));
            }
        }
        check_pixels(run.width, run.height, max_pixels).map_err(ApiError::BadRequest)
    })
    .await?;
    let _permit = st.media_permit().await?;
    let st2 = st.clone();
    let jpeg = st
        .db(move |c| {
            let labels = st2.labels_of(&c.store, id)?;
            peregrine_render::render_frame_jpeg(&c.store, id, n, &labels).map_err(|e| match e {
                RenderError::Store(s) => ApiError::from(s),
                RenderError::Media(_) | RenderError::Input { .. } => {
                    ApiError::NotFound(format!("frame {n} of run {id} is not available"))
                }
                other => ApiError::internal(other),
            })
        })
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        Body::from(jpeg),
    )
        .into_response())
}

/// Videos in the media roots (not recursive).
#[utoipa::path(
    get,
    path = "/api/v1/videos",
    responses((status = 200, body = Vec<VideoItem>)),
    security(("bearer" = [])),
    tag = "videos"
)]
pub async fn videos(State(st): State<AppState>) -> Result<Json<Vec<VideoItem>>, ApiError> {
    let roots = st.config.media_roots.clone();
    let items = tokio::task::spawn_blocking(move || {
        const EXT: &[&str] = &[
            "mp4", "m4v", "mkv", "mov", "avi", "ts", "webm", "mpg", "mpeg", "flv", "wmv",
        ];
        let mut out = Vec::new();
        for root in roots {
            let Ok(rd) = std::fs::read_dir(&root) else {
                continue;
            };
            for e in rd.flatten().take(10_000) {
                let p = e.path();
                let ok_ext = p
                    .extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| EXT.contains(&x.to_ascii_lowercase().as_str()));
                // Symlinks leaving the root are not listed.
                let Ok(canon) = std::fs::canonicalize(&p) else {
                    continue;
                };
                if !ok_ext || !canon.starts_with(&root) || !canon.is_file() {
                    continue;
                }
                out.push(VideoItem {
                    name: e.file_name().to_string_lossy().into_owned(),
                    size: canon.metadata().map(|m| m.len()).unwrap_or(0),
                    path: canon.to_string_lossy().into_owned(),
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(items))
}

// ---------------------------------------------------------------- ops

/// Liveness (the process answers) plus readiness of the database and ONNX
/// Runtime; 503 when either is not ready.
#[utoipa::path(
    get,
    path = "/health",
    responses((status = 200, body = Health), (status = 503, body = Health)),
    tag = "ops"
)]
pub async fn health(State(st): State<AppState>) -> (StatusCode, Json<Health>) {
    let db = st
        .db(|c| {
            c.jobs
                .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(ApiError::from)
        })
        .await;
    let ort = tokio::task::spawn_blocking(peregrine_infer::Runtime::get)
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    if let Err(e) = &ort {
        tracing::warn!(error = %e, "ONNX Runtime not ready");
    }
    let ok = db.is_ok() && ort.is_ok();
    let word = |b: bool| if b { "ok" } else { "unavailable" }.to_string();
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Health {
            status: if ok { "ok" } else { "degraded" }.into(),
            database: word(db.is_ok()),
            onnxruntime: word(ort.is_ok()),
        }),
    )
}

/// Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, content_type = "text/plain", body = String)),
    tag = "ops"
)]
pub async fn metrics(State(st): State<AppState>) -> Result<Response, ApiError> {
    let counts = st.db(|c| Ok(Jobs(&c.jobs).counts()?)).await?;
    let text = st.metrics.render(&crate::metrics::Snapshot {
        jobs_by_state: counts,
    });
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

pub async fn api_not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}
