//! Stored runs: the record, keyset pages of detections, tracks, and frame
//! images rendered on demand.

use std::path::Path as FsPath;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use peregrine_core::Labels;
use peregrine_render::FrameToDraw;
use peregrine_store::{DetectionQuery, DetectionRow, TrackRow};
use serde_json::Value;

use super::wire::{DetectionItem, DetectionPageBody, DetectionsQuery, TrackView};
use super::{check_pixels, MAX_FRAME};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath as Path, ApiQuery as Query};
use crate::state::AppState;

pub const MAX_PAGE: usize = 10_000;

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
        (status = 404, description = "No such run, or a class the run does not have", body = ErrorBody)
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
                    labels.id_of(c).map_err(|_| {
                        ApiError::NotFound(format!("class: run {id} has no class {c:?}"))
                    })
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
            let out = DetectionPageBody {
                items: page
                    .items
                    .iter()
                    .map(|d| detection_item(d, &labels))
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

/// Class names as `peregrine export` writes them (empty when out of range).
fn detection_item<'a>(d: &DetectionRow, labels: &'a Labels) -> DetectionItem<'a> {
    d.item(labels.get(d.class_id).unwrap_or(""))
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

/// A run's line crossings and zone occupancy: totals and per interval,
/// the document `peregrine counts RUN --json` prints.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/counts",
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = Object, description = "`{lines, zones, intervals, ...}`"),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such run, or a run analysed without lines or zones", body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "runs"
)]
pub async fn counts(
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let doc = st
        .db(move |c| {
            let run = c.store.run(id)?;
            Ok(c.store.counts_json(&run)?)
        })
        .await?;
    doc.map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("run {id}: analysed without lines or zones")))
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
    let unavailable = move || ApiError::NotFound(format!("frame {n} of run {id} is not available"));
    // The database part: cheap checks, then the frame's detections.
    let max_pixels = st.config.max_pixels;
    let st2 = st.clone();
    let (frame, labels) = st
        .db(move |c| {
            let frame = FrameToDraw::read(&c.store, id, n)?;
            let run = frame.run();
            let video = FsPath::new(&run.video_path);
            if video.is_file() {
                let now = peregrine_media::file_fingerprint(video).map_err(|_| unavailable())?;
                if now.hash != run.content_hash {
                    return Err(ApiError::Conflict(format!(
                        "run {id}: its video file has changed since it was analysed"
                    )));
                }
            }
            check_pixels(run.width, run.height, max_pixels).map_err(ApiError::BadRequest)?;
            let labels = st2.labels_of(&c.store, id)?;
            Ok((frame, labels))
        })
        .await?;
    // The FFmpeg part, within the media permits and holding no connection.
    let _permit = st.media_permit().await?;
    let jpeg = tokio::task::spawn_blocking(move || frame.jpeg(&labels))
        .await
        .map_err(ApiError::internal)?
        .map_err(|_| unavailable())?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        Body::from(jpeg),
    )
        .into_response())
}
