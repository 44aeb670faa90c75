//! Operations: health, Prometheus metrics, the media roots' videos, and
//! the answer for unknown API paths.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::wire::{Health, VideoItem};
use crate::error::ApiError;
use crate::state::AppState;

/// Analysis workers and the jobs and live streams they hold now. On PostgreSQL: every
/// `peregrine worker` process (and `serve` with workers) registered with
/// the shared queue, with its last heartbeat; on SQLite: this service's
/// own worker threads, as one entry.
#[utoipa::path(
    get,
    path = "/api/v1/workers",
    responses((status = 200, body = Vec<peregrine_store::jobs::WorkerRecord>)),
    security(("bearer" = [])),
    tag = "ops"
)]
pub async fn workers(
    State(st): State<AppState>,
) -> Result<Json<Vec<peregrine_store::jobs::WorkerRecord>>, ApiError> {
    if st.config.db_target().is_postgres() {
        return Ok(Json(st.db(|c| Ok(c.jobs.workers()?)).await?));
    }
    let mut jobs: Vec<i64> = st
        .live
        .lock()
        .map(|m| m.keys().copied().collect())
        .unwrap_or_default();
    jobs.sort_unstable();
    Ok(Json(vec![peregrine_store::jobs::WorkerRecord {
        id: st.membership.worker.clone(),
        host: peregrine_store::pg::hostname(),
        pid: i64::from(std::process::id()),
        slots: st.config.workers as u32,
        started_at: st.started_at,
        heartbeat_at: peregrine_store::jobs::now(),
        heartbeat_age_s: 0.0,
        jobs,
        streams: st
            .streams
            .snapshot()
            .into_iter()
            .map(|r| r.stream)
            .collect(),
    }]))
}

/// Videos in the media roots (not recursive). `path` is what a job's
/// `video` takes: relative to its media root, or absolute for
/// administrators.
#[utoipa::path(
    get,
    path = "/api/v1/videos",
    responses((status = 200, body = Vec<VideoItem>)),
    security(("bearer" = [])),
    tag = "videos"
)]
pub async fn videos(
    State(st): State<AppState>,
    axum::Extension(viewer): axum::Extension<crate::extract::Viewer>,
) -> Result<Json<Vec<VideoItem>>, ApiError> {
    let roots = st.config.media_roots.clone();
    let admin = viewer.admin;
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
                let path = if admin {
                    canon.to_string_lossy().into_owned()
                } else {
                    canon
                        .strip_prefix(&root)
                        .map(|r| r.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                out.push(VideoItem {
                    name: e.file_name().to_string_lossy().into_owned(),
                    size: canon.metadata().map(|m| m.len()).unwrap_or(0),
                    path,
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

/// Liveness (the process answers) plus readiness of the database and ONNX
/// Runtime; 503 when either is not ready.
#[utoipa::path(
    get,
    path = "/health",
    responses((status = 200, body = Health), (status = 503, body = Health)),
    tag = "ops"
)]
pub async fn health(State(st): State<AppState>) -> (StatusCode, Json<Health>) {
    // The cheapest query the queue has: a primary-key lookup.
    let db = st.db(|c| Ok(c.jobs.get(0)?)).await;
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
    let counts = st.db(|c| Ok(c.jobs.counts()?)).await?;
    let mut text = st.metrics.render(&crate::metrics::Snapshot {
        jobs_by_state: counts,
    });
    // Per live stream: frames received, analysed, shed; state; latency.
    text.push_str(&st.streams.prometheus());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

pub async fn api_not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}
