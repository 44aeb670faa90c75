//! Gait of a stored pose run: the metrics (`peregrine gait --json`'s
//! object) and the HTML report, computed on demand from the run's stored
//! keypoints. A gait job is a job with a pose model and `params.gait`
//! (`{"mode": "fast", "fps": 15, "gait": {"mode": "fast"}}` for the fast
//! gait mode's sampling); its view carries these metrics, and its
//! `run_id` leads here.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use peregrine_gait::GaitMode;
use peregrine_render::gait::RunGait;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath as Path, ApiQuery as Query};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GaitQuery {
    /// fast | balanced (default) | accurate: smoothing and keypoint
    /// confidence (the sampling is the run's).
    #[param(pattern = "^(fast|balanced|accurate)$")]
    pub mode: Option<String>,
    /// Subject height in metres (0.5 to 2.5): step length and speed in
    /// metres.
    #[param(minimum = 0.5, maximum = 2.5)]
    pub height: Option<f64>,
}

fn parse(q: &GaitQuery) -> Result<(GaitMode, Option<f64>), ApiError> {
    let mode = q
        .mode
        .as_deref()
        .unwrap_or("balanced")
        .parse::<GaitMode>()
        .map_err(ApiError::BadRequest)?;
    if let Some(h) = q.height {
        if !(h.is_finite() && (0.5..=2.5).contains(&h)) {
            return Err(ApiError::BadRequest(format!(
                "height must be in metres, 0.5 to 2.5, got {h}"
            )));
        }
    }
    Ok((mode, q.height))
}

/// Gait metrics of a pose run's walking subjects, main subject first:
/// `{"input", "run_id", "subjects": [{"track_id", "steps", "cadence_spm",
/// ..., "events"}]}` as `peregrine gait --json` prints.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/gait",
    params(("id" = i64, Path), GaitQuery),
    responses(
        (status = 200, body = Object),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "runs"
)]
pub async fn gait(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<GaitQuery>,
) -> Result<Json<Value>, ApiError> {
    let (mode, height) = parse(&q)?;
    let g = st
        .db(move |c| Ok(RunGait::read(&c.store, id, mode, height, false)?))
        .await?;
    Ok(Json(json!({
        "input": g.run.video_path,
        "run_id": g.run.id,
        "subjects": g.subjects,
    })))
}

/// The gait report of a pose run: one self-contained HTML page (metrics,
/// event timeline, joint angle curves, key frames with skeletons).
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/gait/report",
    params(("id" = i64, Path), GaitQuery),
    responses(
        (status = 200, content_type = "text/html", body = String),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, description = "Too many frame images being rendered", body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "runs"
)]
pub async fn gait_report(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<GaitQuery>,
) -> Result<Response, ApiError> {
    let (mode, height) = parse(&q)?;
    let st2 = st.clone();
    let (g, labels) = st
        .db(move |c| {
            let g = RunGait::read(&c.store, id, mode, height, true)?;
            Ok((g, st2.labels_of(&c.store, id)?))
        })
        .await?;
    // Key frames are decoded and drawn within the media permits, holding
    // no connection.
    let _permit = st.media_permit().await?;
    let html = tokio::task::spawn_blocking(move || g.report_html(&labels))
        .await
        .map_err(ApiError::internal)?;
    Ok((
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Body::from(html),
    )
        .into_response())
}
