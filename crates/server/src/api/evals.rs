//! Evaluations of stored runs against ground truth, with their per-frame
//! matching (true positives, false positives, misses, identity switches),
//! the frames with the most errors, and the comparison of two runs of the
//! same video.
//!
//! A key design decision here is that scoring happens on a blocking thread
//! holding one pooled connection, with the real `peregrine-eval` code the
//! CLI uses (`peregrine_store::evaluate`), and is stored in one
//! transaction: what the dashboard shows is what `peregrine eval --run`
//! would have stored.

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use peregrine_core::{BBox, Labels};
use peregrine_eval::{MatchKind, MotOptions};
use peregrine_store::evaluate::{score_run, EvalKind, GroundTruth, ScoreError, ScoreOptions};
use peregrine_store::{EvalRecord, MatchQuery, MatchRow, Results, RunRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::jobs::{content_type, json_body};
use super::MAX_FRAME;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath as Path, ApiQuery as Query};
use crate::state::AppState;

/// Largest ground-truth file accepted (upload or media-root file; uploads
/// also within the service's upload limit).
pub const MAX_GT_BYTES: u64 = 64 * 1024 * 1024;
const MAX_MATCH_PAGE: usize = 10_000;
const MAX_LIST: usize = 1_000;

/// Ground-truth format.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EvalFormat {
    /// MOTChallenge gt.txt (or a sequence folder): tracking metrics (CLEAR
    /// MOT, IDF1, HOTA) with their matching, and detection AP alongside.
    Mot,
    /// MOTChallenge gt.txt scored as detection (COCO AP), with the
    /// per-frame TP/FP/FN at `iou`: for runs without tracks.
    Det,
    /// COCO JSON: detection AP per category, categories matched to the
    /// run's classes by name, image id = frame + 1 (or an image's `frame`).
    Coco,
}

impl EvalFormat {
    fn kind(self) -> EvalKind {
        match self {
            EvalFormat::Mot => EvalKind::Mot,
            EvalFormat::Det => EvalKind::Det,
            EvalFormat::Coco => EvalKind::Coco,
        }
    }
}

/// An evaluation request naming ground truth inside a media root.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEval {
    /// A gt.txt, a MOTChallenge sequence folder (gt/gt.txt, seqinfo.ini)
    /// or a COCO JSON file, inside a media root; relative paths are taken
    /// from the first root.
    #[schema(min_length = 1, pattern = "^[^\\x00]+$")]
    pub gt: String,
    pub format: EvalFormat,
    /// IoU threshold of the stored matching and PR curves for `det` and
    /// `coco` (0.5, 0.55, ..., 0.95; default 0.5, the matching behind
    /// AP50). `mot` matches at 0.5 (py-motmetrics) and accepts only 0.5.
    #[schema(minimum = 0.5, maximum = 0.95)]
    pub iou: Option<f64>,
    /// Class scored, by name or index of the run's classes: default person
    /// for `mot`/`det`; for `coco`, every class the ground truth names.
    #[schema(min_length = 1)]
    pub class: Option<String>,
    /// Score a run whose video does not look like the ground truth's
    /// sequence (other size or length).
    pub force: Option<bool>,
}

/// Multipart evaluation: a `gt` file part plus `format` and optional
/// `iou`, `class`, `force` parts (as in the JSON request).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadEval {
    /// gt.txt (MOTChallenge) or COCO JSON, at most 64 MiB.
    #[schema(value_type = String, format = Binary)]
    gt: Vec<u8>,
    #[schema(value_type = EvalFormat)]
    format: String,
    #[schema(nullable = false)]
    iou: Option<f64>,
    #[schema(nullable = false, min_length = 1)]
    class: Option<String>,
    #[schema(nullable = false)]
    force: Option<bool>,
}

/// A stored evaluation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EvalView {
    pub id: i64,
    pub run_id: i64,
    /// `mot`, `det` or `coco`.
    pub kind: String,
    /// The ground truth: its path relative to the media root, `upload:`
    /// and the file name for uploads, or the file's name.
    pub gt: String,
    pub created_at: String,
    /// As `peregrine eval ... --json` prints them (`mot`: `sequences`,
    /// `combined` with mota, motp, idf1, hota, deta, assa, idsw, fp, fn,
    /// ..., and `detection`: COCO AP/AR overall and `per_class`;
    /// `det`/`coco`: the COCO AP/AR document).
    #[schema(value_type = Object)]
    pub metrics: Value,
    /// `{iou, classes: {name: [{recall, precision, score}]}}`: COCOeval's
    /// 101-point interpolated precision at `iou`, up to the highest recall
    /// reached; null for evaluations stored without them.
    #[schema(value_type = Option<Object>)]
    pub pr_curves: Option<Value>,
    /// Whether the per-frame matching is stored (`/evals/{id}/matches`).
    pub has_matches: bool,
    /// Match rows stored (null without matching).
    pub matches: Option<u64>,
}

/// One event of an evaluation's matching.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MatchItem {
    /// The run's frame index.
    pub frame: u64,
    /// `tp`, `fp`, `fn` or `idsw`.
    pub kind: String,
    pub gt_id: Option<i64>,
    pub track_id: Option<i64>,
    /// Class name (of the run's classes).
    pub class: String,
    pub class_id: Option<u16>,
    pub score: Option<f32>,
    pub iou: Option<f32>,
    /// The box drawn, in the video's pixels: the prediction for
    /// tp/fp/idsw, the ground truth for fn.
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    /// The ground-truth box `[x1, y1, x2, y2]` of a match or miss.
    pub gt_box: Option<[f32; 4]>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MatchPageBody {
    pub items: Vec<MatchItem>,
    /// Opaque keyset cursor for the next page; null at the end.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MatchesQuery {
    /// 0..=2^63-1.
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub frame_from: Option<u64>,
    /// 0..=2^63-1.
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub frame_to: Option<u64>,
    /// `tp`, `fp`, `fn` or `idsw`.
    #[param(pattern = "^(tp|fp|fn|idsw)$")]
    pub kind: Option<String>,
    /// 1..=10000, default 1000.
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}_[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// A frame's errors.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorItem {
    pub frame: u64,
    /// The frame's time in seconds (as stored detections'); null when the
    /// run did not record the frame.
    pub t: Option<f64>,
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub idsw: u64,
    /// fp + fn + idsw.
    pub errors: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorPageBody {
    pub items: Vec<ErrorItem>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ErrorsQuery {
    /// 1..=1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    #[param(pattern = "^[0-9]{1,18}_[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompareQuery {
    /// A run id.
    pub a: i64,
    /// Another run of the same video.
    pub b: i64,
    /// 1..=1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// A run, briefly.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunRef {
    pub id: i64,
    /// The model's file name.
    pub model: String,
    pub status: String,
    pub detections: u64,
    pub frames: u64,
}

/// How two runs differ on one frame: detections matched greedily by IoU
/// (≥ 0.5, same class, best pairs first).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CompareFrame {
    pub frame: u64,
    pub t: f64,
    pub a_count: u64,
    pub b_count: u64,
    pub only_a: u64,
    pub only_b: u64,
    pub matched: u64,
    /// Mean IoU of the matched pairs; null without any.
    pub mean_iou: Option<f64>,
    /// only_a + only_b.
    pub disagreement: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CompareBody {
    pub a: RunRef,
    pub b: RunRef,
    /// Each run's latest evaluation.
    pub evals_a: Option<EvalView>,
    pub evals_b: Option<EvalView>,
    /// Frames with a detection in either run.
    pub frames_compared: u64,
    /// Frames where the runs disagree at all.
    pub frames_disagreeing: u64,
    /// Worst first (disagreement, then frame), at most `limit`.
    pub frames: Vec<CompareFrame>,
}

fn cursor_pair(c: &str) -> Result<(u64, u64), ApiError> {
    let bad = || ApiError::BadRequest("cursor: invalid".into());
    let (a, b) = c.split_once('_').ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a > MAX_FRAME || b > MAX_FRAME {
        return Err(bad());
    }
    Ok((a, b))
}

/// A scoring failure; paths inside the media roots are shown relative to
/// them (clients never see the server's absolute paths).
fn score_err(e: ScoreError, roots: &[PathBuf]) -> ApiError {
    match e {
        ScoreError::Input(m) => {
            let mut m = m.replace("--force", "force: true");
            for r in roots {
                for r in [Some(r.clone()), std::fs::canonicalize(r).ok()]
                    .into_iter()
                    .flatten()
                {
                    m = m.replace(&format!("{}/", r.display()), "");
                }
            }
            ApiError::BadRequest(first_line(&m))
        }
        ScoreError::Store(e) => e.into(),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// The ground truth's name as shown: relative to the media root that
/// holds it, else its file name (with the sequence folder for
/// `<seq>/gt/gt.txt`): never an absolute server path.
fn display_gt(path: &str, roots: &[PathBuf]) -> String {
    let p = FsPath::new(path);
    if !p.is_absolute() {
        return path.to_string();
    }
    if let Some(rel) = crate::paths::relative_to_roots(p, roots) {
        return rel;
    }
    let comps: Vec<_> = p.components().rev().take(3).collect();
    let tail: Vec<String> = comps
        .iter()
        .rev()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if tail.len() == 3 && tail[1] == "gt" {
        tail.join("/")
    } else {
        tail.last().cloned().unwrap_or_default()
    }
}

fn eval_view(e: EvalRecord, roots: &[PathBuf]) -> EvalView {
    EvalView {
        id: e.id,
        run_id: e.run_id,
        kind: e.kind,
        gt: display_gt(&e.gt_path, roots),
        created_at: e.created_at,
        metrics: e.metrics,
        pr_curves: e.pr_curves,
        has_matches: e.matches.is_some(),
        matches: e.matches,
    }
}

fn match_item(m: &MatchRow, labels: &Labels) -> MatchItem {
    MatchItem {
        frame: m.frame,
        kind: m.kind.as_str().to_string(),
        gt_id: m.gt_id,
        track_id: m.track_id,
        class: m
            .class_id
            .and_then(|c| labels.get(c))
            .unwrap_or("")
            .to_string(),
        class_id: m.class_id,
        score: m.score,
        iou: m.iou,
        x1: m.bbox[0],
        y1: m.bbox[1],
        x2: m.bbox[2],
        y2: m.bbox[3],
        gt_box: m.gt_box,
    }
}

/// What a request asks to score.
struct EvalRequest {
    format: EvalFormat,
    iou: Option<f64>,
    class: Option<String>,
    force: bool,
    source: Source,
}

enum Source {
    /// Inside a media root, as the client named it.
    Path(String),
    Upload {
        name: String,
        bytes: Vec<u8>,
    },
}

fn check_iou(format: EvalFormat, iou: Option<f64>) -> Result<f64, ApiError> {
    let iou = iou.unwrap_or(0.5);
    let ok = peregrine_eval::coco_iou_thresholds()
        .iter()
        .any(|t| (t - iou).abs() < 1e-9);
    if !ok {
        return Err(ApiError::BadRequest(
            "iou: one of 0.5, 0.55, ..., 0.95".into(),
        ));
    }
    if format == EvalFormat::Mot && (iou - 0.5).abs() > 1e-9 {
        return Err(ApiError::BadRequest(
            "iou: format mot matches at 0.5 (py-motmetrics); use format det for other thresholds"
                .into(),
        ));
    }
    Ok(iou)
}

/// The ground truth file inside the media roots (400 outside them).
fn confine_gt(gt: &str, roots: &[PathBuf]) -> Result<PathBuf, ApiError> {
    match crate::paths::confine(gt, roots) {
        Ok(p) => Ok(p),
        Err(ApiError::NotFound(_)) => Err(ApiError::NotFound(format!("gt: {gt} not found"))),
        Err(ApiError::Forbidden(_)) => Err(ApiError::BadRequest(format!(
            "gt: {gt} is not inside a media root"
        ))),
        Err(_) => Err(ApiError::BadRequest("gt: empty or invalid path".into())),
    }
}

async fn read_request(st: &AppState, req: Request) -> Result<EvalRequest, ApiError> {
    let ctype = content_type(&req);
    if ctype.starts_with("multipart/form-data") {
        let mp = Multipart::from_request(req, st)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        // The service's upload limit applies when it is lower.
        let limit = MAX_GT_BYTES.min(st.config.max_upload_bytes);
        return read_multipart(mp, limit).await;
    }
    if !ctype.starts_with("application/json") {
        return Err(ApiError::UnsupportedMedia(
            "send application/json or multipart/form-data".into(),
        ));
    }
    let bytes = json_body(req.into_body()).await?;
    let body: CreateEval = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(first_line(&format!("body: {e}"))))?;
    if body.gt.is_empty() || body.gt.contains('\0') {
        return Err(ApiError::BadRequest("gt: empty or invalid path".into()));
    }
    Ok(EvalRequest {
        format: body.format,
        iou: body.iou,
        class: body.class,
        force: body.force.unwrap_or(false),
        source: Source::Path(body.gt),
    })
}

async fn read_multipart(mut mp: Multipart, limit: u64) -> Result<EvalRequest, ApiError> {
    let too_large = || ApiError::BodyTooLarge(format!("gt: larger than {limit} bytes"));
    let field_err = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::BadRequest(format!("multipart: {}", e.body_text()))
        }
    };
    let mut file: Option<(String, Vec<u8>)> = None;
    let (mut format, mut iou, mut class, mut force) = (None, None, None, None);
    while let Some(mut field) = mp.next_field().await.map_err(field_err)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "gt" => {
                if file.is_some() {
                    return Err(ApiError::BadRequest("multipart: one gt file".into()));
                }
                let fname = field
                    .file_name()
                    .map(|n| {
                        FsPath::new(n)
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    })
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "gt".to_string());
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(field_err)? {
                    if (bytes.len() + chunk.len()) as u64 > limit {
                        return Err(too_large());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                if bytes.is_empty() {
                    return Err(ApiError::BadRequest("gt: empty file".into()));
                }
                file = Some((fname, bytes));
            }
            "format" | "iou" | "class" | "force" => {
                let text = field.text().await.map_err(field_err)?;
                if text.len() > 1024 {
                    return Err(ApiError::BadRequest(format!("{name}: too long")));
                }
                let text = text.trim().to_string();
                match name.as_str() {
                    "format" => format = Some(text),
                    "iou" => iou = Some(text),
                    "class" => class = Some(text),
                    _ => force = Some(text),
                }
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "multipart: unexpected part {other:?}"
                )))
            }
        }
    }
    let (name, bytes) = file.ok_or_else(|| ApiError::BadRequest("multipart: no gt part".into()))?;
    let format = match format.as_deref() {
        Some("mot") => EvalFormat::Mot,
        Some("det") => EvalFormat::Det,
        Some("coco") => EvalFormat::Coco,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format: {other:?} is not mot, det or coco"
            )))
        }
        None => return Err(ApiError::BadRequest("multipart: no format part".into())),
    };
    let iou = match iou.filter(|s| !s.is_empty()) {
        Some(s) => Some(
            s.parse::<f64>()
                .map_err(|_| ApiError::BadRequest("iou: not a number".into()))?,
        ),
        None => None,
    };
    let force = match force.as_deref().filter(|s| !s.is_empty()) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => return Err(ApiError::BadRequest("force: true or false".into())),
    };
    Ok(EvalRequest {
        format,
        iou,
        class: class.filter(|c| !c.is_empty()),
        force,
        source: Source::Upload { name, bytes },
    })
}

/// Scores the run against ground truth and stores the evaluation with its
/// per-frame matching: JSON naming a file inside a media root, or a
/// multipart upload. Bad ground truth (unreadable, wrong format, another
/// sequence than the run's video) is 400 with a one-line reason.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/evals",
    params(("id" = i64, Path)),
    request_body(content(
        (CreateEval = "application/json"),
        (UploadEval = "multipart/form-data")
    )),
    responses(
        (status = 201, description = "Scored and stored", body = EvalView),
        (status = 400, description = "Invalid request, ground truth outside the media roots, or ground truth that cannot be scored against this run", body = ErrorBody),
        (status = 404, description = "No such run, or no such ground-truth file", body = ErrorBody),
        (status = 413, description = "Ground truth over 64 MiB, or JSON body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Neither JSON nor multipart", body = ErrorBody),
        (status = 503, description = "Busy", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "evals"
)]
pub async fn create_eval(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    req: Request,
) -> Result<Response, ApiError> {
    let r = read_request(&st, req).await?;
    let iou = check_iou(r.format, r.iou)?;
    let roots = st.config.media_roots.clone();
    let view = st
        .db(move |c| {
            c.store.run(id)?;
            let opts = ScoreOptions {
                class: r.class.clone(),
                force: r.force,
                mot: MotOptions::default(),
                iou,
            };
            let kind = r.format.kind();
            let (scored, gt_name) = match &r.source {
                Source::Path(gt) => {
                    let path = confine_gt(gt, &roots)?;
                    // A file, or a sequence folder's gt/gt.txt.
                    let file = if path.is_dir() {
                        path.join("gt").join("gt.txt")
                    } else {
                        path.clone()
                    };
                    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                    if size > MAX_GT_BYTES {
                        return Err(ApiError::BadRequest(format!(
                            "gt: larger than {} MiB",
                            MAX_GT_BYTES >> 20
                        )));
                    }
                    let source = if kind == EvalKind::Coco {
                        GroundTruth::CocoPath(&path)
                    } else {
                        GroundTruth::MotPath(&path)
                    };
                    let s = score_run(&c.store, id, kind, source, &opts)
                        .map_err(|e| score_err(e, &roots))?;
                    (s, display_gt(&path.to_string_lossy(), &roots))
                }
                Source::Upload { name, bytes } => {
                    let source = if kind == EvalKind::Coco {
                        GroundTruth::CocoBytes { name, bytes }
                    } else {
                        let text = std::str::from_utf8(bytes).map_err(|_| {
                            ApiError::BadRequest(format!("gt: {name} is not UTF-8 text"))
                        })?;
                        GroundTruth::MotText { name, text }
                    };
                    let s = score_run(&c.store, id, kind, source, &opts)
                        .map_err(|e| score_err(e, &roots))?;
                    (s, format!("upload:{name}"))
                }
            };
            let eval_id = scored.save(&mut c.store, id, &gt_name)?;
            let rec = c
                .store
                .eval(eval_id)?
                .ok_or_else(|| ApiError::internal("stored evaluation not found"))?;
            Ok(eval_view(rec, &roots))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// A run's stored evaluations (from the service and from `peregrine eval
/// --run`), oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/evals",
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = Vec<EvalView>),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "evals"
)]
pub async fn list_evals(
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Vec<EvalView>>, ApiError> {
    let roots = st.config.media_roots.clone();
    let evals = st.db(move |c| Ok(c.store.evals(id)?)).await?;
    Ok(Json(
        evals.into_iter().map(|e| eval_view(e, &roots)).collect(),
    ))
}

fn no_eval(id: i64) -> ApiError {
    ApiError::NotFound(format!("evaluation {id} not found"))
}

/// One stored evaluation.
#[utoipa::path(
    get,
    path = "/api/v1/evals/{id}",
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = EvalView),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such evaluation", body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "evals"
)]
pub async fn get_eval(
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<EvalView>, ApiError> {
    let roots = st.config.media_roots.clone();
    let e = st
        .db(move |c| c.store.eval(id)?.ok_or_else(|| no_eval(id)))
        .await?;
    Ok(Json(eval_view(e, &roots)))
}

/// A keyset page of an evaluation's matching in frame order: every true
/// positive, false positive, miss and identity switch with its boxes.
#[utoipa::path(
    get,
    path = "/api/v1/evals/{id}/matches",
    params(("id" = i64, Path), MatchesQuery),
    responses(
        (status = 200, body = MatchPageBody),
        (status = 400, body = ErrorBody),
        (status = 404, description = "No such evaluation", body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "evals"
)]
pub async fn eval_matches(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<MatchesQuery>,
) -> Result<Json<MatchPageBody>, ApiError> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=MAX_MATCH_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be in 1..={MAX_MATCH_PAGE}"
        )));
    }
    for (name, v) in [("frame_from", q.frame_from), ("frame_to", q.frame_to)] {
        if v.is_some_and(|v| v > MAX_FRAME) {
            return Err(ApiError::BadRequest(format!(
                "{name} must be in 0..={MAX_FRAME}"
            )));
        }
    }
    let kind = q
        .kind
        .as_deref()
        .filter(|k| !k.is_empty())
        .map(|k| {
            MatchKind::parse(k).ok_or_else(|| {
                ApiError::BadRequest(format!("kind: {k:?} is not tp, fp, fn or idsw"))
            })
        })
        .transpose()?;
    let after = q
        .cursor
        .as_deref()
        .map(cursor_pair)
        .transpose()?
        .map(|(f, k)| (f, k as i64));
    let st2 = st.clone();
    let body = st
        .db(move |c| {
            let eval = c.store.eval(id)?.ok_or_else(|| no_eval(id))?;
            let labels = st2.labels_of(&c.store, eval.run_id)?;
            let query = MatchQuery {
                frame_from: q.frame_from,
                frame_to: q.frame_to,
                kind,
                limit,
                after,
            };
            let page = c
                .store
                .eval_matches(id, &query)?
                .ok_or_else(|| no_eval(id))?;
            Ok(MatchPageBody {
                items: page.items.iter().map(|m| match_item(m, &labels)).collect(),
                next_cursor: page.next.map(|(f, k)| format!("{f}_{k}")),
            })
        })
        .await?;
    Ok(Json(body))
}

/// The frames with errors (fp + fn + idsw > 0), worst first, ties by
/// frame, keyset paged.
#[utoipa::path(
    get,
    path = "/api/v1/evals/{id}/errors",
    params(("id" = i64, Path), ErrorsQuery),
    responses(
        (status = 200, body = ErrorPageBody),
        (status = 400, body = ErrorBody),
        (status = 404, description = "No such evaluation", body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "evals"
)]
pub async fn eval_errors(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<ErrorsQuery>,
) -> Result<Json<ErrorPageBody>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be in 1..={MAX_LIST}"
        )));
    }
    let after = q.cursor.as_deref().map(cursor_pair).transpose()?;
    let page = st
        .db(move |c| {
            c.store
                .eval_errors(id, limit, after)?
                .ok_or_else(|| no_eval(id))
        })
        .await?;
    Ok(Json(ErrorPageBody {
        items: page
            .items
            .iter()
            .map(|e| ErrorItem {
                frame: e.frame,
                t: e.t,
                tp: e.counts.tp,
                fp: e.counts.fp,
                fn_: e.counts.fn_,
                idsw: e.counts.idsw,
                errors: e.counts.errors(),
            })
            .collect(),
        next_cursor: page.next.map(|(e, f)| format!("{e}_{f}")),
    }))
}

fn run_ref(r: &RunRecord) -> RunRef {
    RunRef {
        id: r.id,
        model: FsPath::new(&r.model_path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| r.model_path.clone()),
        status: r.status.as_str().to_string(),
        detections: r.detections,
        frames: r.frames,
    }
}

/// Per frame: (t, [(class, box)]).
type FrameBoxes = BTreeMap<u64, (f64, Vec<(u16, BBox)>)>;

fn frame_boxes(store: &Results, run: i64) -> Result<FrameBoxes, ApiError> {
    let mut m: FrameBoxes = BTreeMap::new();
    store
        .for_each_detection(run, |d| -> Result<(), std::convert::Infallible> {
            m.entry(d.frame)
                .or_insert_with(|| (d.t, Vec::new()))
                .1
                .push((d.class_id, d.bbox));
            Ok(())
        })?
        .unwrap_or_else(|never| match never {});
    Ok(m)
}

fn iou(a: &BBox, b: &BBox) -> f64 {
    let f = |v: f32| v as f64;
    let iw = (f(a.x2).min(f(b.x2)) - f(a.x1).max(f(b.x1))).max(0.0);
    let ih = (f(a.y2).min(f(b.y2)) - f(a.y1).max(f(b.y1))).max(0.0);
    let inter = iw * ih;
    let area = |r: &BBox| (f(r.x2) - f(r.x1)).max(0.0) * (f(r.y2) - f(r.y1)).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        (inter / union).min(1.0)
    }
}

/// Greedy class-aware matching at IoU ≥ 0.5, best pairs first.
pub fn compare_frame(frame: u64, t: f64, a: &[(u16, BBox)], b: &[(u16, BBox)]) -> CompareFrame {
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, (ca, ba)) in a.iter().enumerate() {
        for (j, (cb, bb)) in b.iter().enumerate() {
            if ca == cb {
                let v = iou(ba, bb);
                if v >= 0.5 {
                    pairs.push((v, i, j));
                }
            }
        }
    }
    pairs.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    let (mut ua, mut ub) = (vec![false; a.len()], vec![false; b.len()]);
    let (mut matched, mut sum) = (0u64, 0.0);
    for (v, i, j) in pairs {
        if !ua[i] && !ub[j] {
            ua[i] = true;
            ub[j] = true;
            matched += 1;
            sum += v;
        }
    }
    let (na, nb) = (a.len() as u64, b.len() as u64);
    CompareFrame {
        frame,
        t,
        a_count: na,
        b_count: nb,
        only_a: na - matched,
        only_b: nb - matched,
        matched,
        mean_iou: (matched > 0).then(|| sum / matched as f64),
        disagreement: na + nb - 2 * matched,
    }
}

/// Two runs of the same video side by side: each run's latest evaluation
/// and the frames where their detections disagree most (greedy
/// class-aware matching at IoU ≥ 0.5 per frame), worst first. Runs of
/// different videos (by content) are refused.
#[utoipa::path(
    get,
    path = "/api/v1/compare",
    params(CompareQuery),
    responses(
        (status = 200, body = CompareBody),
        (status = 400, description = "Invalid query, or runs of different videos", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "evals"
)]
pub async fn compare(
    State(st): State<AppState>,
    Query(q): Query<CompareQuery>,
) -> Result<Json<CompareBody>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be in 1..={MAX_LIST}"
        )));
    }
    let roots = st.config.media_roots.clone();
    let body = st
        .db(move |c| {
            let ra = c.store.run(q.a)?;
            let rb = c.store.run(q.b)?;
            if ra.content_hash != rb.content_hash {
                return Err(ApiError::BadRequest(format!(
                    "runs {} and {} are of different videos",
                    ra.id, rb.id
                )));
            }
            let latest = |run: i64| -> Result<Option<EvalView>, ApiError> {
                Ok(c.store.evals(run)?.pop().map(|e| eval_view(e, &roots)))
            };
            let (evals_a, evals_b) = (latest(ra.id)?, latest(rb.id)?);
            let fa = frame_boxes(&c.store, ra.id)?;
            let fb = frame_boxes(&c.store, rb.id)?;
            let mut frames: Vec<CompareFrame> = Vec::new();
            let keys: std::collections::BTreeSet<u64> =
                fa.keys().chain(fb.keys()).copied().collect();
            for f in keys {
                let (ta, a) = fa
                    .get(&f)
                    .map(|(t, v)| (Some(*t), v.as_slice()))
                    .unwrap_or((None, &[]));
                let (tb, b) = fb
                    .get(&f)
                    .map(|(t, v)| (Some(*t), v.as_slice()))
                    .unwrap_or((None, &[]));
                frames.push(compare_frame(f, ta.or(tb).unwrap_or_default(), a, b));
            }
            let compared = frames.len() as u64;
            let disagreeing = frames.iter().filter(|f| f.disagreement > 0).count() as u64;
            frames.sort_by(|x, y| {
                y.disagreement
                    .cmp(&x.disagreement)
                    .then(x.frame.cmp(&y.frame))
            });
            frames.truncate(limit);
            Ok(CompareBody {
                a: run_ref(&ra),
                b: run_ref(&rb),
                evals_a,
                evals_b,
                frames_compared: compared,
                frames_disagreeing: disagreeing,
                frames,
            })
        })
        .await?;
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x1: f32, y1: f32, x2: f32, y2: f32) -> BBox {
        BBox::new(x1, y1, x2, y2)
    }

    #[test]
    fn compare_matches_greedily_within_a_class() {
        let a = [
            (0, b(0.0, 0.0, 10.0, 10.0)),
            (0, b(20.0, 0.0, 30.0, 10.0)),
            (2, b(50.0, 50.0, 60.0, 60.0)),
        ];
        // The first overlaps both of a's people; the best pair wins, the
        // car of another class never matches, one box of b is new.
        let bb = [
            (0, b(1.0, 0.0, 11.0, 10.0)),
            (1, b(50.0, 50.0, 60.0, 60.0)),
            (0, b(100.0, 0.0, 110.0, 10.0)),
        ];
        let f = compare_frame(7, 0.5, &a, &bb);
        assert_eq!((f.a_count, f.b_count, f.matched), (3, 3, 1));
        assert_eq!((f.only_a, f.only_b, f.disagreement), (2, 2, 4));
        let iou = f.mean_iou.unwrap();
        assert!((iou - 90.0 / 110.0).abs() < 1e-9, "{iou}");
        let same = compare_frame(0, 0.0, &a, &a);
        assert_eq!((same.disagreement, same.mean_iou), (0, Some(1.0)));
        let none = compare_frame(0, 0.0, &[], &a);
        assert_eq!((none.only_b, none.mean_iou), (3, None));
    }

    #[test]
    fn ground_truth_names_never_show_server_paths() {
        let roots = vec![PathBuf::from("/srv/media")];
        assert_eq!(
            display_gt("/srv/media/mot/seq/gt/gt.txt", &roots),
            "mot/seq/gt/gt.txt"
        );
        assert_eq!(display_gt("/home/u/seq/gt/gt.txt", &roots), "seq/gt/gt.txt");
        assert_eq!(display_gt("/home/u/coco/val.json", &roots), "val.json");
        assert_eq!(display_gt("upload:gt.txt", &roots), "upload:gt.txt");
        let e = score_err(
            ScoreError::Input("/srv/media/a/gt.txt:3: bad\nmore".into()),
            &roots,
        );
        assert_eq!(e.to_string(), "a/gt.txt:3: bad");
    }

    #[test]
    fn iou_is_a_coco_threshold_and_mot_matches_at_half() {
        assert_eq!(check_iou(EvalFormat::Det, None).unwrap(), 0.5);
        assert_eq!(check_iou(EvalFormat::Coco, Some(0.75)).unwrap(), 0.75);
        assert!(check_iou(EvalFormat::Det, Some(0.52)).is_err());
        assert!(check_iou(EvalFormat::Mot, Some(0.75)).is_err());
        assert!(cursor_pair("3_4").is_ok());
        for bad in ["3", "a_1", "1_-2", "99999999999999999999_1"] {
            assert!(cursor_pair(bad).is_err(), "{bad}");
        }
    }
}
