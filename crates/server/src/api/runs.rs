//! Stored runs: the record, keyset pages of detections, tracks, and frame
//! images rendered on demand.

use std::path::Path as FsPath;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use peregrine_core::Labels;
use peregrine_render::FrameToDraw;
use peregrine_store::{
    Deleted, DetectionQuery, DetectionRow, RunCursor, RunListItem, RunListQuery, RunSort,
    RunStatus, TimelineQuery, TrackRow,
};
use serde_json::Value;

use super::wire::{
    DetectionItem, DetectionPageBody, DetectionsQuery, FramesIndex, RunPage, RunSummary, RunsQuery,
    TimelineBinView, TimelineBody, TimelineParams, TrackView,
};
use super::{check_pixels, MAX_FRAME};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{video_access, ApiPath as Path, ApiQuery as Query, Viewer};
use crate::paths::{display_roots, relative_shown};
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
            let class_id = class_id_of(&labels, class.as_deref(), id)?;
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

/// A class name of run `id`'s labels, or a class index, as its id (404
/// when the run has no such class).
fn class_id_of(
    labels: &Labels,
    class: Option<&str>,
    id: i64,
) -> Result<Option<peregrine_core::ClassId>, ApiError> {
    class
        .map(|c| {
            labels
                .id_of(c)
                .map_err(|_| ApiError::NotFound(format!("class: run {id} has no class {c:?}")))
        })
        .transpose()
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

/// A stored run (video, model, parameters, status, counts, timings) with
/// its [`RunSummary`] fields. `video_path` is the server's absolute path
/// for administrators; for everyone else it is the path shown as `video`'s
/// relative form (see `/api/v1/whoami`).
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}",
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = Object, description = "The run record and the RunSummary fields"),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "runs"
)]
pub async fn get_run(
    State(st): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let roots = root_strings(&st);
    let (run, item) = st
        .db(move |c| {
            let run = c.store.run(id)?;
            let q = RunListQuery {
                limit: 1,
                sort: RunSort::StartedDesc,
                after: None,
                video: None,
                model: None,
                status: None,
                since: None,
                until: None,
                roots,
                run: Some(id),
            };
            let item = c.store.list_runs(&q)?.items.into_iter().next();
            Ok((run, item))
        })
        .await?;
    let item = item.ok_or_else(|| ApiError::NotFound(format!("run {id} not found")))?;
    let t_offset = super::video::t_offset_of(&st, &item.video_path, &item.content_hash).await;
    let mut doc = serde_json::to_value(&run).map_err(ApiError::internal)?;
    let summary = serde_json::to_value(summary(&st, item, viewer.admin, t_offset))
        .map_err(ApiError::internal)?;
    if let (Value::Object(d), Value::Object(sm)) = (&mut doc, summary) {
        for (k, v) in sm {
            d.insert(k, v);
        }
        if !viewer.admin {
            let roots = display_roots(&st.config);
            d.insert(
                "video_path".into(),
                Value::String(relative_shown(&run.video_path, &roots)),
            );
            let model_roots: Vec<std::path::PathBuf> =
                st.config.model_dir.iter().cloned().collect();
            d.insert(
                "model_path".into(),
                Value::String(relative_shown(&run.model_path, &model_roots)),
            );
        }
    }
    Ok(Json(doc))
}

/// Display roots as the store's listing takes them.
fn root_strings(st: &AppState) -> Vec<String> {
    display_roots(&st.config)
        .iter()
        .map(|r| r.to_string_lossy().trim_end_matches('/').to_owned())
        .filter(|r| !r.is_empty())
        .collect()
}

/// The listing's view of a run for this viewer.
fn summary(st: &AppState, r: RunListItem, admin: bool, t_offset: Option<f64>) -> RunSummary {
    let source = if r.live {
        "live"
    } else if r.job_id.is_some() {
        "job"
    } else {
        "cli"
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut video_url = format!("/api/v1/runs/{}/video", r.id);
    if let Some(a) = video_access(st, r.id, now) {
        video_url.push_str(&format!("?access={a}"));
    }
    RunSummary {
        id: r.id,
        video_id: r.video_id,
        video: r.video_name,
        video_path: admin.then_some(r.video_path),
        model: std::path::Path::new(&r.model_path).file_name().map_or_else(
            || r.model_path.clone(),
            |n| n.to_string_lossy().into_owned(),
        ),
        status: r.status.as_str().to_owned(),
        source: source.to_owned(),
        job_id: r.job_id,
        frames: r.frames,
        detections: r.detections,
        tracks: r.tracks,
        fps: r.fps,
        width: r.width,
        height: r.height,
        video_fps: r.video_fps,
        duration: r.duration,
        started_at: r.started_at,
        finished_at: r.finished_at,
        evals: r.evals,
        pose: r.pose,
        t_offset,
        video_url,
    }
}

/// `YYYY-MM-DD` or RFC 3339 (`YYYY-MM-DDTHH:MM[:SS[.fff]]` with `Z` or an
/// offset) as stored run times are written: UTC, `YYYY-MM-DDTHH:MM:SS.sssZ`.
pub(crate) fn parse_instant(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        (!t.is_empty() && t.bytes().all(|c| c.is_ascii_digit())).then(|| t.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let days_in = |y: i64, m: i64| match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    };
    if !(1..=12).contains(&mo) || d < 1 || d > days_in(y, mo) {
        return None;
    }
    let (mut h, mut mi, mut sec, mut ms, mut off) = (0i64, 0i64, 0i64, 0i64, 0i64);
    if b.len() > 10 {
        if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 16 || b[13] != b':' {
            return None;
        }
        h = num(11..13)?;
        mi = num(14..16)?;
        let mut i = 16;
        if b.get(i) == Some(&b':') {
            sec = num(i + 1..i + 3)?;
            i += 3;
            if b.get(i) == Some(&b'.') {
                let start = i + 1;
                let mut end = start;
                while b.get(end).is_some_and(u8::is_ascii_digit) {
                    end += 1;
                }
                if end == start {
                    return None;
                }
                let frac = &s[start..end.min(start + 3)];
                ms = format!("{frac:0<3}").parse().ok()?;
                i = end;
            }
        }
        match b.get(i) {
            Some(b'Z' | b'z') if i + 1 == b.len() => {}
            Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
                let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
                if oh > 23 || om > 59 {
                    return None;
                }
                off = (oh * 60 + om) * if *sign == b'+' { 1 } else { -1 };
            }
            _ => return None,
        }
        if h > 23 || mi > 59 || sec > 60 {
            return None;
        }
    }
    // Days since 1970-01-01 (Howard Hinnant's algorithm), then back.
    let days = {
        let y = if mo <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (mo + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146097 + doe - 719468
    };
    let total_min = days * 1440 + h * 60 + mi - off;
    let (days, rem) = (total_min.div_euclid(1440), total_min.rem_euclid(1440));
    let (y, mo, d) = {
        let z = days + 719468;
        let era = z.div_euclid(146097);
        let doe = z - era * 146097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        (yoe + era * 400 + i64::from(m <= 2), m, d)
    };
    if !(0..=9999).contains(&y) {
        return None;
    }
    Some(format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{sec:02}.{ms:03}Z",
        rem / 60,
        rem % 60
    ))
}

/// Every run in the database (CLI, service jobs, live streams), newest
/// first by default; keyset pages (the cursor holds the sort key and the
/// id, no OFFSET), filtered by video or model name, status and start time.
#[utoipa::path(
    get,
    path = "/api/v1/runs",
    params(RunsQuery),
    responses(
        (status = 200, body = RunPage),
        (status = 400, description = "A bad filter, sort or cursor", body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "runs"
)]
pub async fn list_runs(
    State(st): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<RunPage>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be in 1..=500".into()));
    }
    let sort_s = q
        .sort
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("-started_at");
    let sort = RunSort::parse(sort_s).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "sort: {sort_s:?} is not one of -started_at, started_at, -detections, detections"
        ))
    })?;
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(RunCursor::decode(c, sort).ok_or_else(|| {
            ApiError::BadRequest("cursor: invalid (or from another sort order)".into())
        })?),
    };
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            let parsed = RunStatus::parse(s);
            if parsed.as_str() != s {
                return Err(ApiError::BadRequest(format!(
                    "status: {s:?} is not one of complete, partial, failed, running, interrupted, live"
                )));
            }
            Some(parsed)
        }
    };
    let instant = |name: &str, v: Option<String>| -> Result<Option<String>, ApiError> {
        match v.filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse_instant(&v).map(Some).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name}: {v:?} is not an RFC 3339 time (2026-12-04T21:00:00Z) or a date"
                ))
            }),
        }
    };
    let (since, until) = (instant("since", q.since)?, instant("until", q.until)?);
    for (name, v) in [("video", &q.video), ("model", &q.model)] {
        if v.as_ref()
            .is_some_and(|v| v.chars().count() > 1024 || v.contains('\0'))
        {
            return Err(ApiError::BadRequest(format!("{name}: too long or invalid")));
        }
    }
    let query = RunListQuery {
        limit,
        sort,
        after,
        video: q.video,
        model: q.model,
        status,
        since,
        until,
        roots: root_strings(&st),
        run: None,
    };
    let page = st.db(move |c| Ok(c.store.list_runs(&query)?)).await?;
    let items = page
        .items
        .into_iter()
        .map(|r| {
            let t = super::video::cached_t_offset(&st, &r.content_hash);
            summary(&st, r, viewer.admin, t)
        })
        .collect();
    Ok(Json(RunPage {
        items,
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// Deletes a run with its detections, frames, tracks, evaluations and
/// counts. A run still being written (`running`, `live`) is refused (409).
/// Jobs that made it keep their record, without the link.
#[utoipa::path(
    delete,
    path = "/api/v1/runs/{id}",
    params(("id" = i64, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The run is still running or live", body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "runs"
)]
pub async fn delete_run(
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let done = st.db(move |c| Ok(c.store.delete_run(id)?)).await?;
    match done {
        Deleted::Done => Ok(StatusCode::NO_CONTENT),
        Deleted::NotFound => Err(ApiError::NotFound(format!("run {id} not found"))),
        Deleted::Active(s) => Err(ApiError::Conflict(format!(
            "run {id} is {}: stop it before deleting it",
            s.as_str()
        ))),
    }
}

/// A run's detections counted per bin of frames, for a timeline strip:
/// `bins` equal spans over its analysed frames, optionally of one class,
/// one track, or at least a score. One range scan of the run's index.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/timeline",
    params(("id" = i64, Path), TimelineParams),
    responses(
        (status = 200, body = TimelineBody),
        (status = 400, body = ErrorBody),
        (status = 404, description = "No such run, or a class the run does not have", body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "runs"
)]
pub async fn timeline(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<TimelineParams>,
) -> Result<Json<TimelineBody>, ApiError> {
    let bins = q.bins.unwrap_or(200);
    if !(1..=5000).contains(&bins) {
        return Err(ApiError::BadRequest("bins must be in 1..=5000".into()));
    }
    if q.min_score.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
        return Err(ApiError::BadRequest("min_score must be in 0..=1".into()));
    }
    let class = q.class.filter(|c| !c.is_empty());
    let st2 = st.clone();
    let t = st
        .db(move |c| {
            let labels = st2.labels_of(&c.store, id)?;
            let class_id = class_id_of(&labels, class.as_deref(), id)?;
            let tq = TimelineQuery {
                bins,
                class_id,
                track_id: q.track,
                min_score: q.min_score,
            };
            Ok(c.store.timeline(id, &tq)?)
        })
        .await?;
    Ok(Json(TimelineBody {
        frames: t.frames,
        bins: t
            .bins
            .into_iter()
            .map(|b| TimelineBinView {
                frame_from: b.frame_from,
                frame_to: b.frame_to,
                count: b.count,
            })
            .collect(),
    }))
}

/// Every analysed frame's index and stored time (two parallel arrays), so
/// the player maps its clock to frames exactly where the frame rate varies
/// or frames were skipped.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/frames_index",
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = FramesIndex),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "runs"
)]
pub async fn frames_index(
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<FramesIndex>, ApiError> {
    let (run, times) = st
        .db(move |c| Ok((c.store.run(id)?, c.store.frame_times(id)?)))
        .await?;
    let t_offset = super::video::t_offset_of(&st, &run.video_path, &run.content_hash).await;
    let (frame, t) = times
        .into_iter()
        .map(|(f, t)| (f, (t * 1e6).round() / 1e6))
        .unzip();
    Ok(Json(FramesIndex { t_offset, frame, t }))
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

#[cfg(test)]
mod tests {
    use super::parse_instant;

    #[test]
    fn instants_become_stored_utc_times() {
        for (given, want) in [
            ("2026-12-04", "2026-12-04T00:00:00.000Z"),
            ("2026-12-04T21:25:25Z", "2026-12-04T21:25:25.000Z"),
            ("2026-12-04T21:25:25.1234Z", "2026-12-04T21:25:25.123Z"),
            ("2026-12-04T21:25Z", "2026-12-04T21:25:00.000Z"),
            ("2026-12-04T01:00:00+02:00", "2026-12-03T23:00:00.000Z"),
            ("2026-12-31T23:30:00-01:00", "2027-01-01T00:30:00.000Z"),
            ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000Z"),
        ] {
            assert_eq!(parse_instant(given).as_deref(), Some(want), "{given}");
        }
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2025-02-29",
            "2026-12-04T25:00Z",
            "2026-12-04T10:00",
            "2026-12-04T10:00:00+2",
            "2026-12-04X",
            "2026-12-04T10:00:00.Z",
            "２026-12-04",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }
}
