//! Live streams: start (`POST`), list and read with their counters, stop
//! (`DELETE`, the run finalised), and the counters as Server-Sent Events.
//! The streams themselves run in [`crate::streams::LiveStreams`].

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::Stream;
use peregrine_live::StreamReport;
use peregrine_pipeline::AnalyzeParams;
use peregrine_store::StoredStream;
use serde::Deserialize;
use serde_json::Value;

use super::jobs::{content_type, in_model_dir, json_body, MAX_DET, MAX_TRACK_BUFFER};
use super::wire::{CreateStream, StreamLatency, StreamView, StreamsEvent};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiPath as Path;
use crate::paths::confine;
use crate::state::AppState;
use crate::streams::{StreamSettings, STREAM_PARAMS};

/// URL schemes a stream's source may have.
const SCHEMES: &[&str] = &[
    "rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt",
];
const MAX_NAME: usize = 64;
const MAX_SOURCE: usize = 2048;
const MAX_FPS: f64 = 60.0;

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name != "events"
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "name: {name:?} is not a stream name (1-{MAX_NAME} letters, digits, '-', '_', '.'; \
             not starting with '.', not \"events\")"
        )))
    }
}

/// A URL of an allowed scheme, or a video file inside a media root (its
/// canonical path).
fn check_source(st: &AppState, source: &str) -> Result<String, ApiError> {
    if source.is_empty() || source.len() > MAX_SOURCE || source.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "source: empty, longer than {MAX_SOURCE} bytes, or holding control characters"
        )));
    }
    if let Some((scheme, rest)) = source.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        if !SCHEMES.contains(&scheme.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "source: scheme {scheme:?} is not allowed (use {})",
                SCHEMES.join(", ")
            )));
        }
        if rest.is_empty() || rest.starts_with('/') {
            return Err(ApiError::BadRequest(format!(
                "source: {source} names no host"
            )));
        }
        return Ok(source.to_string());
    }
    let rename = |m: String| m.replacen("video:", "source:", 1);
    let path = confine(source, &st.config.media_roots).map_err(|e| match e {
        ApiError::BadRequest(m) => ApiError::BadRequest(rename(m)),
        ApiError::Forbidden(m) => ApiError::Forbidden(rename(m)),
        ApiError::NotFound(m) => ApiError::NotFound(rename(m)),
        other => other,
    })?;
    if !path.is_file() {
        return Err(ApiError::BadRequest(format!(
            "source: {source} is not a file (and not a URL)"
        )));
    }
    Ok(path.to_string_lossy().into_owned())
}

/// A stream's `params`: the `analyze` parameters that apply to a live
/// stream ([`STREAM_PARAMS`]), within the job bounds.
fn stream_params(params: Option<Value>) -> Result<Option<AnalyzeParams>, ApiError> {
    let Some(v) = params.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let p: AnalyzeParams =
        serde_json::from_value(v).map_err(|e| ApiError::BadRequest(format!("params: {e}")))?;
    let given = serde_json::to_value(&p).map_err(ApiError::internal)?;
    if let Some(m) = given.as_object() {
        if let Some((k, _)) = m
            .iter()
            .find(|(k, v)| !v.is_null() && !STREAM_PARAMS.contains(&k.as_str()))
        {
            return Err(ApiError::BadRequest(format!(
                "params: {k} does not apply to a live stream (it takes {})",
                STREAM_PARAMS.join(", ")
            )));
        }
    }
    if p.max_det.is_some_and(|m| m > MAX_DET) {
        return Err(ApiError::BadRequest(format!(
            "params: max_det must be at most {MAX_DET}"
        )));
    }
    if p.track_buffer.is_some_and(|t| t > MAX_TRACK_BUFFER) {
        return Err(ApiError::BadRequest(format!(
            "params: track_buffer must be at most {MAX_TRACK_BUFFER}"
        )));
    }
    Ok(Some(p))
}

/// A stream's counters as its runner reports them: a [`StreamReport`] of
/// this process, or the JSON of one another process stored with its
/// lease (PostgreSQL).
#[derive(Default, Deserialize)]
#[serde(default)]
struct Reported {
    state: String,
    frames_received: u64,
    frames_analysed: u64,
    frames_shed: u64,
    frames_over_budget: u64,
    frames_gated: u64,
    frames_skipped: u64,
    reconnects: u64,
    decode_errors: u64,
    detections: u64,
    tracks: u64,
    fps_analysed: f64,
    rate_allowed: f64,
    queue_depth: u64,
    connected_s: f64,
    latency_ms: StreamLatency,
    run_id: Option<i64>,
    error: Option<String>,
}

/// A stored stream with its counters: `local` when this process runs it,
/// else those its owner stored (`shared`: on PostgreSQL, where workers
/// lease streams). `failure`: why this process could not start it.
fn view(
    stored: &StoredStream,
    local: Option<&StreamReport>,
    failure: Option<String>,
    shared: bool,
) -> StreamView {
    let settings: Option<StreamSettings> = serde_json::from_value(stored.spec.clone()).ok();
    let reported: Option<Reported> = match local {
        Some(r) => serde_json::to_value(r)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok()),
        None => stored
            .report
            .clone()
            .and_then(|v| serde_json::from_value(v).ok()),
    };
    let r = reported.as_ref();
    StreamView {
        name: stored.name.clone(),
        source: settings
            .as_ref()
            .map(|s| s.source.clone())
            .unwrap_or_default(),
        fps: settings.as_ref().map_or(0.0, |s| s.fps),
        priority: settings.as_ref().is_some_and(|s| s.priority),
        motion_gate: settings.as_ref().is_some_and(|s| s.motion_gate),
        model: settings
            .as_ref()
            .map(|s| s.model.to_string_lossy().into_owned())
            .unwrap_or_default(),
        params: settings
            .as_ref()
            .and_then(|s| s.params.as_ref())
            .and_then(|p| serde_json::to_value(p).ok())
            .map(|mut v| {
                if let Value::Object(m) = &mut v {
                    m.retain(|_, x| !x.is_null());
                }
                v
            })
            .unwrap_or(Value::Object(Default::default())),
        created_at: stored.created_at,
        state: match r {
            Some(r) => r.state.clone(),
            // Claimed, not reporting yet.
            None if shared && stored.owner.is_some() => "connecting".into(),
            // Waiting for a worker's claim (again, after a failed start).
            None if shared => "queued".into(),
            // On SQLite the service starts it (at its start); a failure
            // to start is final until the service restarts.
            None if failure.is_none() => "connecting".into(),
            None => "failed".into(),
        },
        frames_received: r.map_or(0, |r| r.frames_received),
        frames_analysed: r.map_or(0, |r| r.frames_analysed),
        frames_shed: r.map_or(0, |r| r.frames_shed),
        frames_over_budget: r.map_or(0, |r| r.frames_over_budget),
        frames_gated: r.map_or(0, |r| r.frames_gated),
        frames_skipped: r.map_or(0, |r| r.frames_skipped),
        reconnects: r.map_or(0, |r| r.reconnects),
        decode_errors: r.map_or(0, |r| r.decode_errors),
        detections: r.map_or(0, |r| r.detections),
        tracks: r.map_or(0, |r| r.tracks),
        fps_analysed: r.map_or(0.0, |r| r.fps_analysed),
        rate_allowed: r.map_or(0.0, |r| r.rate_allowed),
        queue_depth: r.map_or(0, |r| r.queue_depth),
        connected_s: r.map_or(0.0, |r| r.connected_s),
        latency_ms: r.map(|r| r.latency_ms.clone()).unwrap_or_default(),
        run_id: r.and_then(|r| r.run_id),
        error: r
            .and_then(|r| r.error.clone())
            .or(failure)
            .or_else(|| stored.error.clone()),
        worker: stored.owner.clone(),
    }
}

/// Every stored stream with its counters now, oldest first.
async fn all_views(st: &AppState) -> Result<Vec<StreamView>, ApiError> {
    let stored = st.db(|c| Ok(c.store.streams()?)).await?;
    let live = st.streams.snapshot();
    let shared = st.config.db_target().is_postgres();
    Ok(stored
        .iter()
        .map(|s| {
            let r = live.iter().find(|r| r.stream == s.name);
            view(s, r, st.streams.failure(&s.name), shared)
        })
        .collect())
}

async fn one_view(st: &AppState, name: String) -> Result<StreamView, ApiError> {
    let n = name.clone();
    let stored = st
        .db(move |c| Ok(c.store.stream(&n)?))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("stream {name} not found")))?;
    let live = st.streams.snapshot();
    let r = live.iter().find(|r| r.stream == name);
    let shared = st.config.db_target().is_postgres();
    Ok(view(&stored, r, st.streams.failure(&name), shared))
}

/// Start a live stream: stored (resumed when the service restarts) and
/// analysed at once on the service's shared engine; its results go to a
/// run of status `live` until it is stopped.
#[utoipa::path(
    post,
    path = "/api/v1/streams",
    request_body(content = CreateStream, content_type = "application/json"),
    responses(
        (status = 201, description = "Started", body = StreamView),
        (status = 400, description = "Invalid name, source, fps or model", body = ErrorBody),
        (status = 403, description = "File outside the media roots", body = ErrorBody),
        (status = 404, description = "File or model not found", body = ErrorBody),
        (status = 409, description = "Name taken, or a model other than the streams' engine", body = ErrorBody),
        (status = 413, description = "JSON body (64 KiB) too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "streams"
)]
pub async fn create_stream(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let ctype = content_type(&req);
    if !ctype.starts_with("application/json") {
        return Err(ApiError::UnsupportedMedia("send application/json".into()));
    }
    let bytes = json_body(req.into_body()).await?;
    let body: CreateStream =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
    check_name(&body.name)?;
    let fps = body.fps.unwrap_or(5.0);
    if !(fps.is_finite() && fps > 0.0 && fps <= MAX_FPS) {
        return Err(ApiError::BadRequest(format!(
            "fps: must be a number in (0, {MAX_FPS}], got {fps}"
        )));
    }
    let params = stream_params(body.params)?;
    let st2 = st.clone();
    let name = body.name.clone();
    tokio::task::spawn_blocking(move || {
        let source = check_source(&st2, &body.source)?;
        let model = match body.model.as_deref() {
            Some(m) => in_model_dir(&st2, "model", m)?,
            None => st2.config.default_model.clone().ok_or_else(|| {
                ApiError::BadRequest("model: none given and no default model configured".into())
            })?,
        };
        if !model.is_file() {
            return Err(ApiError::BadRequest("model: not a file".into()));
        }
        let settings = StreamSettings {
            source,
            fps,
            priority: body.priority.unwrap_or(false),
            motion_gate: body.motion_gate.unwrap_or(false),
            model,
            params,
        };
        let stored = StoredStream {
            name: body.name.clone(),
            spec: serde_json::to_value(&settings).map_err(ApiError::internal)?,
            created_at: peregrine_store::jobs::now(),
            ..Default::default()
        };
        let conns = st2.pool.get()?;
        let store = &conns.store;
        if !store.insert_stream(&stored)? {
            return Err(ApiError::Conflict(format!("stream {} exists", stored.name)));
        }
        if st2.config.db_target().is_postgres() {
            // A worker claims it (this process too, when it has workers).
            st2.streams.claims.notify();
            return Ok(());
        }
        if let Err(e) = st2.streams.start(&st2, &stored.name, &settings) {
            let _ = store.delete_stream(&stored.name);
            return Err(e);
        }
        Ok(())
    })
    .await
    .map_err(ApiError::internal)??;
    let v = one_view(&st, name).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// Every stream with its state and counters, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/streams",
    responses((status = 200, body = Vec<StreamView>)),
    security(("bearer" = [])),
    tag = "streams"
)]
pub async fn list_streams(State(st): State<AppState>) -> Result<Json<Vec<StreamView>>, ApiError> {
    Ok(Json(all_views(&st).await?))
}

/// One stream with its state and counters.
#[utoipa::path(
    get,
    path = "/api/v1/streams/{name}",
    params(("name" = String, Path)),
    responses((status = 200, body = StreamView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])),
    tag = "streams"
)]
pub async fn get_stream(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<StreamView>, ApiError> {
    Ok(Json(one_view(&st, name).await?))
}

/// Stop a stream: its run is finalised with everything analysed so far,
/// and it is no longer resumed. Answers with its final counters.
#[utoipa::path(
    delete,
    path = "/api/v1/streams/{name}",
    params(("name" = String, Path)),
    responses((status = 200, body = StreamView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])),
    tag = "streams"
)]
pub async fn delete_stream(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<StreamView>, ApiError> {
    let st2 = st.clone();
    let v = tokio::task::spawn_blocking(move || {
        let c = st2.pool.get()?;
        let stored = c
            .store
            .stream(&name)?
            .ok_or_else(|| ApiError::NotFound(format!("stream {name} not found")))?;
        let failure = st2.streams.failure(&name);
        // Stopped here when this process runs it; on PostgreSQL its owner
        // elsewhere stops it at its next renewal, finding the row gone.
        let report = st2.streams.stop(&name);
        c.store.delete_stream(&name)?;
        let shared = st2.config.db_target().is_postgres();
        Ok::<_, ApiError>(view(&stored, report.as_ref(), failure, shared))
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(v))
}

/// The stream's latest analysed frame with its detections drawn, as JPEG
/// (one frame a second is kept per stream; 404 before the first).
#[utoipa::path(
    get,
    path = "/api/v1/streams/{name}/frame.jpg",
    params(("name" = String, Path)),
    responses(
        (status = 200, content_type = "image/jpeg", body = Vec<u8>),
        (status = 404, description = "No such stream, or no frame analysed yet", body = ErrorBody),
        (status = 503, description = "Too many images being rendered", body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "streams"
)]
pub async fn stream_frame(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let none = || ApiError::NotFound(format!("stream {name}: no analysed frame"));
    let jpeg = match st.streams.still(&name) {
        Some(still) => {
            let _permit = st.media_permit().await?;
            tokio::task::spawn_blocking(move || still.jpeg())
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?
        }
        // Run by another process: the picture its owner stored last.
        None if st.config.db_target().is_postgres() => {
            let n = name.clone();
            st.db(move |c| Ok(c.store.postgres().map(|p| p.stream_still(&n)).transpose()?))
                .await?
                .flatten()
                .ok_or_else(none)?
        }
        None => return Err(none()),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        jpeg,
    )
        .into_response())
}

/// Server-Sent Events: a `streams` event (every stream's StreamView) each
/// second, until the service stops.
#[utoipa::path(
    get,
    path = "/api/v1/streams/events",
    responses(
        (status = 200, description = "text/event-stream of StreamView lists", content_type = "text/event-stream", body = StreamsEvent),
    ),
    security(("bearer" = [])),
    tag = "streams"
)]
pub async fn stream_events(
    State(st): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold((st, true), |(st, first)| async move {
        if !first {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if st.shutdown.load(Ordering::SeqCst) {
            return None;
        }
        let ev = match all_views(&st).await {
            Ok(list) => Event::default()
                .event("streams")
                .json_data(&list)
                .unwrap_or_else(|_| Event::default().event("streams")),
            Err(e) => Event::default().event("error").data(e.to_string()),
        };
        Some((Ok(ev), (st, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
