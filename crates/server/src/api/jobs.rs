//! Jobs: submission (a JSON request or, through [`super::uploads`], an
//! upload), validated once into the [`JobSpec`] the worker runs; listing,
//! reading and cancelling.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use peregrine_core::Labels;
use peregrine_infer::Family;
use peregrine_media::{InputKind, InputSpec, MediaError};
use peregrine_pipeline::{AnalyzeOptions, AnalyzeParams};
use peregrine_store::jobs::{JobRecord, JobState, NewJob};
use serde_json::Value;

use super::check_pixels;
use super::wire::{CreateJob, JobCreated, JobPage, JobView, JobsQuery, UploadJob};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Viewer;
use crate::extract::{ApiPath as Path, ApiQuery as Query};
use crate::paths::{confine, confine_video, is_stored_upload_name, relative_shown, shown_path};
use crate::spec::{effective_max_pixels, GaitJob, JobSpec};
use crate::state::AppState;

pub const MAX_JSON_BODY: usize = 64 * 1024;
/// Most detections a job may keep per frame (`max_det`).
pub const MAX_DET: usize = 10_000;
/// Longest a job may keep lost tracks, in frames at 30 fps (`track_buffer`).
pub const MAX_TRACK_BUFFER: u32 = 10_000;

/// Original names of the uploads `jobs` analyse, by stored path.
pub(super) fn upload_names_of(
    c: &crate::db::Conns,
    jobs: &[JobRecord],
) -> Result<HashMap<String, String>, ApiError> {
    let mut paths: Vec<String> = jobs.iter().map(|j| j.video.clone()).collect();
    paths.sort();
    paths.dedup();
    Ok(c.store.upload_names(&paths)?.into_iter().collect())
}

fn view(j: JobRecord, st: &AppState, admin: bool, names: &HashMap<String, String>) -> JobView {
    let roots = crate::paths::display_roots(&st.config);
    let video = shown_path(&j.video, &roots, admin);
    let video_name = names
        .get(&j.video)
        .cloned()
        .unwrap_or_else(|| relative_shown(&j.video, &roots));
    let model_roots: Vec<PathBuf> = st.config.model_dir.iter().cloned().collect();
    let model = shown_path(&j.model, &model_roots, admin);
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
        run_status: j.run_status.map(|s| s.as_str().to_owned()),
        cache_hit: j.cache_hit,
        error: j.error,
        video,
        video_name,
        model,
        params: j.params,
        priority: j.priority,
        attempts: j.attempts,
        timings: j.timings,
        created_at: j.created_at,
        started_at: j.started_at,
        finished_at: j.finished_at,
        gait: None,
        report: None,
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

/// Job `id`'s record with the original names of its uploads (404 when
/// there is no such job).
async fn load_record(
    st: &AppState,
    id: i64,
) -> Result<(JobRecord, HashMap<String, String>), ApiError> {
    let (rec, names) = st
        .db(move |c| {
            let rec = c.jobs.get(id)?;
            let names = upload_names_of(c, rec.as_slice())?;
            Ok((rec, names))
        })
        .await?;
    let rec = rec.ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))?;
    Ok((rec, names))
}

pub(super) async fn load_view(st: &AppState, id: i64, admin: bool) -> Result<JobView, ApiError> {
    let (rec, names) = load_record(st, id).await?;
    Ok(view(rec, st, admin, &names))
}

/// A job that passed validation, ready to queue.
pub(super) struct Validated {
    /// What the worker will run.
    pub spec: JobSpec,
    /// The parameters as the client gave them, in canonical form: shown by
    /// the API and part of the job's key.
    params: Value,
    priority: i64,
    video_hash: String,
    /// The model's fingerprint, and its labels file's when one was named.
    model_hash: String,
}

/// Refuses resource parameters beyond this server's maxima, naming the
/// parameter and its bound.
fn check_bounds(st: &AppState, p: &AnalyzeParams, opts: &AnalyzeOptions) -> Result<(), ApiError> {
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

/// A job's `params` object, with the two entries that are the service's
/// own (the CLI's `--family` and `--labels`, not analysis parameters) taken
/// out before the rest is read as [`AnalyzeParams`].
struct JobParams {
    analyze: AnalyzeParams,
    family: Option<Family>,
    labels: Option<Value>,
    gait: Option<GaitJob>,
}

fn job_params(params: Option<Value>) -> Result<JobParams, ApiError> {
    let mut params = params.unwrap_or(Value::Object(Default::default()));
    let mut take = |name: &str| {
        params
            .as_object_mut()
            .and_then(|m| m.remove(name))
            .filter(|v| !v.is_null())
    };
    let (family, labels, gait) = (take("family"), take("labels"), take("gait"));
    let analyze =
        serde_json::from_value(params).map_err(|e| ApiError::BadRequest(format!("params: {e}")))?;
    let family = family
        .map(|f| match f {
            Value::String(s) => s.parse::<Family>(),
            other => Err(format!(
                "{other} is not a model family (expected yolox, nanodet, ultralytics)"
            )),
        })
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("params: family: {e}")))?;
    let gait = gait
        .map(|g| GaitJob::parse(&g))
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("params: gait: {e}")))?
        .flatten();
    Ok(JobParams {
        analyze,
        family,
        labels,
        gait,
    })
}

/// A path inside the model folder, as a client names a model or a labels
/// file (`what`): relative to the folder, or absolute within it.
pub(super) fn in_model_dir(st: &AppState, what: &str, given: &str) -> Result<PathBuf, ApiError> {
    let dir =
        st.config.model_dir.as_ref().ok_or_else(|| {
            ApiError::BadRequest(format!("{what}: no model folder is configured"))
        })?;
    let p = if FsPath::new(given).is_absolute() {
        PathBuf::from(given)
    } else {
        dir.join(given)
    };
    let path = confine(&p.to_string_lossy(), std::slice::from_ref(dir)).map_err(|e| match e {
        ApiError::Forbidden(_) => {
            ApiError::Forbidden(format!("{what}: must be inside the model folder"))
        }
        ApiError::NotFound(_) => ApiError::NotFound(format!("{what}: {given} not found")),
        ApiError::BadRequest(_) => ApiError::BadRequest(format!("{what}: empty or invalid path")),
        other => other,
    })?;
    if !path.is_file() {
        return Err(ApiError::NotFound(format!("{what}: {given} is not a file")));
    }
    Ok(path)
}

/// The class names a job runs with, as the CLI picks them: the client's
/// `labels` (a names file in the model folder, or a list of names), else
/// `NAME.names` beside the model, else COCO's (`None`). With a names file,
/// also its fingerprint, so an edited file makes a new job.
fn job_labels(
    st: &AppState,
    model: &FsPath,
    labels: Option<&Value>,
) -> Result<(Option<Labels>, Option<String>), ApiError> {
    const WHAT: &str = "params: labels";
    match labels {
        None => {
            let labels = peregrine_pipeline::model_labels(model).map_err(|_| {
                let names = model.with_extension("names");
                let name = names.file_name().unwrap_or_default().to_string_lossy();
                ApiError::BadRequest(format!(
                    "model: its class names file {name} is empty or unreadable"
                ))
            })?;
            Ok((labels, None))
        }
        Some(Value::String(file)) => {
            let path = in_model_dir(st, WHAT, file)?;
            let labels = Labels::from_file(&path).map_err(|_| {
                ApiError::BadRequest(format!("{WHAT}: {file} is empty or unreadable"))
            })?;
            let hash = peregrine_media::file_fingerprint(&path)
                .map_err(|e| ApiError::internal(format!("labels fingerprint: {e}")))?
                .hash;
            Ok((Some(labels), Some(hash)))
        }
        Some(Value::Array(items)) => {
            let names: Option<Vec<String>> = items
                .iter()
                .map(|n| {
                    n.as_str()
                        .filter(|n| !n.trim().is_empty())
                        .map(String::from)
                })
                .collect();
            match names {
                Some(names) if !names.is_empty() => Ok((Some(Labels::from_names(names)), None)),
                _ => Err(ApiError::BadRequest(format!(
                    "{WHAT}: a list of names must hold at least one name, each a non-empty string"
                ))),
            }
        }
        Some(other) => Err(ApiError::BadRequest(format!(
            "{WHAT}: {other} is neither a names file in the model folder nor a list of names"
        ))),
    }
}

/// Checks everything about a job that can be checked before it runs, and
/// resolves it into the [`JobSpec`] its worker will run.
pub(super) fn validate_job(
    st: &AppState,
    video: PathBuf,
    model: Option<&str>,
    params: Option<Value>,
    priority: Option<i64>,
) -> Result<Validated, ApiError> {
    let JobParams {
        analyze: params,
        family,
        labels,
        gait,
    } = job_params(params)?;
    if gait.is_some() && params.no_track == Some(true) {
        return Err(ApiError::BadRequest(
            "params: gait needs tracking (no_track must not be set)".into(),
        ));
    }
    let priority = priority.unwrap_or(0);
    if !(-100..=100).contains(&priority) {
        return Err(ApiError::BadRequest(
            "priority must be in -100..=100".into(),
        ));
    }
    let model = match model {
        Some(m) => in_model_dir(st, "model", m)?,
        None => st.config.default_model.clone().ok_or_else(|| {
            ApiError::BadRequest("model: none given and no default model configured".into())
        })?,
    };
    if !model.is_file() {
        return Err(ApiError::BadRequest("model: not a file".into()));
    }
    // Class filters resolve against the names the job runs with.
    let (class_names, labels_hash) = job_labels(st, &model, labels.as_ref())?;
    let mut opts = params
        .resolve_for(class_names)
        .map_err(|e| ApiError::BadRequest(format!("params: {e}")))?;
    check_bounds(st, &params, &opts)?;
    let mut model_hash = peregrine_media::file_fingerprint(&model)
        .map_err(|e| ApiError::internal(format!("model fingerprint: {e}")))?
        .hash;
    if let Some(h) = labels_hash {
        model_hash = format!("{model_hash}+{h}");
    }
    let video_hash = video_fingerprint(&video)?;
    // Canonical form: the fields given, aliases resolved, nulls dropped, so
    // identical requests get identical keys.
    let mut shown = serde_json::to_value(&params).map_err(ApiError::internal)?;
    if let Value::Object(m) = &mut shown {
        m.retain(|_, v| !v.is_null());
        if let Some(f) = family {
            m.insert("family".into(), f.name().into());
        }
        if let Some(l) = labels {
            m.insert("labels".into(), l);
        }
        if let Some(g) = &gait {
            m.insert(
                "gait".into(),
                serde_json::to_value(g).map_err(ApiError::internal)?,
            );
        }
    }
    Ok(Validated {
        spec: {
            opts.run.max_pixels = effective_max_pixels(params.max_pixels, st.config.max_pixels);
            JobSpec {
                video,
                model,
                family,
                engine: opts.engine,
                run: opts.run,
                gait,
            }
        },
        params: shown,
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

/// [`probe_video`] within the media permits, on a blocking thread.
pub(super) async fn probe_permitted(
    st: &AppState,
    video: &FsPath,
    strict: bool,
) -> Result<(), ApiError> {
    let _permit = st.media_permit().await?;
    let (st2, video) = (st.clone(), video.to_path_buf());
    tokio::task::spawn_blocking(move || probe_video(&st2, &video, strict))
        .await
        .map_err(ApiError::internal)?
}

fn allowed_roots(st: &AppState) -> Vec<PathBuf> {
    let mut r = st.config.media_roots.clone();
    r.push(st.config.upload_dir.clone());
    r
}

/// Queues a validated job, or answers with the identical one already there.
pub(super) async fn enqueue(st: &AppState, v: Validated) -> Result<Response, ApiError> {
    let video = v.spec.video.to_string_lossy().into_owned();
    let model = v.spec.model.to_string_lossy().into_owned();
    let spec = serde_json::to_value(&v.spec).map_err(ApiError::internal)?;
    let (id, state, cached) = st
        .db(move |c| {
            let job = NewJob {
                video: &video,
                model: &model,
                params: &v.params,
                spec: Some(&spec),
                priority: v.priority,
                video_hash: &v.video_hash,
                model_hash: &v.model_hash,
            };
            if let Some((id, state)) = c.jobs.find_same(&job.key())? {
                return Ok((id, state, true));
            }
            Ok((c.jobs.insert(&job)?, JobState::Queued, false))
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
pub(super) async fn json_body(body: Body) -> Result<Vec<u8>, ApiError> {
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

/// The request's content type, lower-cased ("" when absent).
pub(super) fn content_type(req: &Request) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Submit a job: JSON naming a video inside a media root, or a multipart
/// upload (size-limited; content probed, not the extension). Answers at
/// once; an identical job (same video content, model and parameters)
/// returns the existing id with `cached: true`. Resource parameters are
/// bounded by the server (`threads`, `infer_workers`, `decode_threads`,
/// `jobs` ≤ max_threads; `batch` ≤ max_batch; `batch × infer_workers` ≤
/// 2 × max_batch; `max_det`, `track_buffer` ≤ 10000), and videos by
/// `max_pixels`. `params.family` and `params.labels` choose the model's
/// family and class names as `peregrine analyze --family --labels` do.
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
    let ctype = content_type(&req);
    if ctype.starts_with("multipart/form-data") {
        let mp = Multipart::from_request(req, &st)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        return super::uploads::upload_job(st, mp).await;
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
        // An upload as non-administrators see it (`upload-<hash>`) names
        // the stored file in the upload folder.
        let named = if is_stored_upload_name(&body.video) {
            st2.config
                .upload_dir
                .join(&body.video)
                .to_string_lossy()
                .into_owned()
        } else {
            body.video.clone()
        };
        let video = confine_video(&named, &roots, &st2.config.upload_dir)?;
        if !(video.is_file() || video.join("seqinfo.ini").is_file()) {
            return Err(ApiError::NotFound(format!(
                "video: {} is not a video file or a MOTChallenge sequence folder",
                body.video
            )));
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
    probe_permitted(&st, &v.spec.video, false).await?;
    enqueue(&st, v).await
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
    Extension(viewer): Extension<Viewer>,
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
    let (rows, names) = st
        .db(move |c| {
            let rows = c.jobs.list(state, cursor, limit + 1)?;
            let names = upload_names_of(c, &rows)?;
            Ok((rows, names))
        })
        .await?;
    let more = rows.len() > limit;
    let items: Vec<JobView> = rows
        .into_iter()
        .take(limit)
        .map(|j| view(j, &st, viewer.admin, &names))
        .collect();
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
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<i64>,
) -> Result<Json<JobView>, ApiError> {
    let (rec, names) = load_record(&st, id).await?;
    let gait = rec
        .spec
        .as_ref()
        .and_then(|s| serde_json::from_value::<JobSpec>(s.clone()).ok())
        .and_then(|s| s.gait);
    let mut v = view(rec, &st, viewer.admin, &names);
    if let (Some(g), Some(run_id)) = (gait, v.run_id) {
        // The metrics of the stored run, computed from its keypoints.
        let (mode, height) = (g.mode(), g.height);
        let (admin, roots) = (viewer.admin, crate::paths::display_roots(&st.config));
        let doc = st
            .db(move |c| {
                let g =
                    peregrine_render::gait::RunGait::read(&c.store, run_id, mode, height, false)?;
                Ok(serde_json::json!({
                    "input": shown_path(&g.run.video_path, &roots, admin),
                    "run_id": g.run.id,
                    "subjects": g.subjects,
                }))
            })
            .await?;
        let mut report = format!("/api/v1/runs/{run_id}/gait/report?mode={}", g.mode);
        if let Some(h) = height {
            report.push_str(&format!("&height={h}"));
        }
        v.gait = Some(doc);
        v.report = Some(report);
    }
    Ok(Json(v))
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
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let (before, after) = st
        .db(move |c| Ok(c.jobs.request_cancel(id)?))
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
    Ok((
        StatusCode::ACCEPTED,
        Json(load_view(&st, id, viewer.admin).await?),
    ))
}
