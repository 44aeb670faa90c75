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

fn view(stored: &StoredStream, live: Option<&StreamReport>, failure: Option<String>) -> StreamView {
    let settings: Option<StreamSettings> = serde_json::from_value(stored.spec.clone()).ok();
    let mut v = StreamView {
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
        state: "failed".into(),
        frames_received: 0,
        frames_analysed: 0,
        frames_shed: 0,
        frames_over_budget: 0,
        frames_gated: 0,
        reconnects: 0,
        decode_errors: 0,
        detections: 0,
        tracks: 0,
        fps_analysed: 0.0,
        rate_allowed: 0.0,
        queue_depth: 0,
        connected_s: 0.0,
        latency_ms: StreamLatency::default(),
        run_id: None,
        error: failure,
    };
    match live {
        Some(r) => {
            v.state = r.state.as_str().into();
            v.frames_received = r.frames_received;
            v.frames_analysed = r.frames_analysed;
            v.frames_shed = r.frames_shed;
            v.frames_over_budget = r.frames_over_budget;
            v.frames_gated = r.frames_gated;
            v.reconnects = r.reconnects;
            v.decode_errors = r.decode_errors;
            v.detections = r.detections;
            v.tracks = r.tracks;
            v.fps_analysed = r.fps_analysed;
            v.rate_allowed = r.rate_allowed;
            v.queue_depth = r.queue_depth;
            v.connected_s = r.connected_s;
            v.latency_ms = StreamLatency {
                p50: r.latency_ms.p50,
                p95: r.latency_ms.p95,
                p99: r.latency_ms.p99,
                max: r.latency_ms.max,
            };
            v.run_id = r.run_id;
            v.error = r.error.clone().or(v.error);
        }
        None if v.error.is_none() => {
            // Stored, not started yet (the service is resuming it).
            v.state = "connecting".into();
        }
        None => {}
    }
    v
}

/// Every stored stream with its counters now, oldest first.
async fn all_views(st: &AppState) -> Result<Vec<StreamView>, ApiError> {
    let stored = st.db(|c| Ok(c.sqlite("live streams")?.streams()?)).await?;
    let live = st.streams.snapshot();
    Ok(stored
        .iter()
        .map(|s| {
            let r = live.iter().find(|r| r.stream == s.name);
            view(s, r, st.streams.failure(&s.name))
        })
        .collect())
}

async fn one_view(st: &AppState, name: String) -> Result<StreamView, ApiError> {
    let n = name.clone();
    let stored = st
        .db(move |c| Ok(c.sqlite("live streams")?.stream(&n)?))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("stream {name} not found")))?;
    let live = st.streams.snapshot();
    let r = live.iter().find(|r| r.stream == name);
    Ok(view(&stored, r, st.streams.failure(&name)))
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
        };
        let conns = st2.pool.get()?;
        let store = conns.sqlite("live streams")?;
        if !store.insert_stream(&stored)? {
            return Err(ApiError::Conflict(format!("stream {} exists", stored.name)));
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
            .sqlite("live streams")?
            .stream(&name)?
            .ok_or_else(|| ApiError::NotFound(format!("stream {name} not found")))?;
        let failure = st2.streams.failure(&name);
        let report = st2.streams.stop(&name);
        c.sqlite("live streams")?.delete_stream(&name)?;
        Ok::<_, ApiError>(view(&stored, report.as_ref(), failure))
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
    let still = st
        .streams
        .still(&name)
        .ok_or_else(|| ApiError::NotFound(format!("stream {name}: no analysed frame")))?;
    let _permit = st.media_permit().await?;
    let jpeg = tokio::task::spawn_blocking(move || still.jpeg())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
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
