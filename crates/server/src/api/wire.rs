//! The API's request and response bodies (one type per concept), as the
//! OpenAPI document describes them.

use peregrine_store::jobs::JobState;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// A job request. `params` takes the `peregrine analyze` flag names
/// (`conf`, `end`, `fps`, `classes`, `no_track`, ...).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    /// A video file (or MOTChallenge folder) inside a media root; relative
    /// paths are taken from the first root.
    #[schema(min_length = 1, pattern = "^[^\\x00]+$")]
    pub video: String,
    /// Model file inside the model folder; the configured default when
    /// omitted.
    #[schema(min_length = 1, pattern = "^[^\\x00]+$")]
    pub model: Option<String>,
    /// `peregrine analyze` flag names. Bounded by the server: `threads`,
    /// `infer_workers`, `decode_threads`, `jobs` ≤ max_threads (default
    /// twice the cores); `batch` ≤ max_batch (default 32); `batch ×
    /// infer_workers` ≤ 2 × max_batch; `max_det`, `track_buffer` ≤ 10000.
    /// As with the CLI, `family` (yolox, nanodet, ultralytics) names the
    /// model's family instead of recognising it, and `labels` gives its
    /// class names: a names file (one per line) inside the model folder, or
    /// an array of names; by default `NAME.names` beside the model, else
    /// COCO's.
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
    /// Higher runs first (-100..=100, default 0).
    #[schema(minimum = -100, maximum = 100)]
    pub priority: Option<i64>,
}

/// Multipart upload: a `file` part plus optional `model`, `params` (JSON
/// text) and `priority` parts.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadJob {
    /// The video (probed: not a video FFmpeg decodes is 415).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// As `model` of a JSON job.
    #[schema(nullable = false, min_length = 1, pattern = "^[^\\x00]+$")]
    model: Option<String>,
    /// As `params` of a JSON job, as JSON text (an object).
    #[schema(nullable = false, content_media_type = "application/json")]
    params: Option<String>,
    /// As `priority` of a JSON job.
    #[schema(nullable = false, minimum = -100, maximum = 100)]
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
    /// The video: its absolute path for administrators; for everyone
    /// else relative to the upload folder (`upload-<hash>`, which a JSON
    /// job may name) or the media root holding it.
    pub video: String,
    /// Display name: an upload's original file name, else as `video`.
    pub video_name: String,
    /// The model: absolute for administrators, else relative to the model
    /// folder (as a job names it).
    pub model: String,
    #[schema(value_type = Object)]
    pub params: Value,
    pub priority: i64,
    pub attempts: u32,
    /// Per-stage timings: `{stage: {count, mean_ms, p50_ms, p95_ms, max_ms}}`.
    #[schema(value_type = Option<Object>)]
    pub timings: Option<Value>,
    /// Unix seconds.
    pub created_at: f64,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    /// A gait job's metrics once its run is stored (`GET /api/v1/jobs/{id}`
    /// only): `{"input", "run_id", "subjects": [...]}` as `peregrine gait
    /// --json` prints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub gait: Option<Value>,
    /// A gait job's HTML report, once its run is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
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
    #[param(pattern = "^(queued|running|done|failed|cancelled)?$")]
    pub state: Option<String>,
    /// 1..=500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page (a job id, at least 1).
    #[param(minimum = 1)]
    pub cursor: Option<i64>,
}

pub use peregrine_store::DetectionItem;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DetectionPageBody<'a> {
    pub items: Vec<DetectionItem<'a>>,
    /// Opaque keyset cursor for the next page; null at the end.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetectionsQuery {
    /// 0..=2^63-1.
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub frame_from: Option<u64>,
    /// 0..=2^63-1.
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub frame_to: Option<u64>,
    /// Class name or id (of the run's class names).
    pub class: Option<String>,
    pub track: Option<u32>,
    /// 1..=10000, default 1000.
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}_[0-9]{1,18}$")]
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

/// A live stream to start (`POST /api/v1/streams`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStream {
    /// 1-64 characters: letters, digits, `-`, `_`, `.`; not starting with
    /// `.`, and not `events`.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"
    )]
    pub name: String,
    /// A URL (rtsp, rtsps, rtmp, rtmps, http, https, udp, tcp, srt) or a
    /// video file inside a media root (played at its native rate, looped).
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub source: String,
    /// Frames analysed per second (0 < fps ≤ 60, default 5).
    #[schema(exclusive_minimum = 0, maximum = 60)]
    pub fps: Option<f64>,
    /// Never shed under overload (default false).
    pub priority: Option<bool>,
    /// Model file inside the model folder; the configured default when
    /// omitted. Every stream of a service runs the same model.
    #[schema(min_length = 1, pattern = "^[^\\x00]+$")]
    pub model: Option<String>,
    /// Run the detector only on frames where something moves.
    pub motion_gate: Option<bool>,
    /// The `analyze` parameters that apply to a live stream: `conf`, `iou`,
    /// `classes`, `max_det`, `agnostic`, `no_track`, `track_thresh`,
    /// `match_thresh`, `track_buffer`, `track_per_class`, and counting:
    /// `line`, `zone`, `anchor`, `interval`, `calibration`.
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
}

/// Latency from a frame's last packet read to its results stored, ms.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct StreamLatency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// A live stream: its settings and its counters now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StreamView {
    pub name: String,
    pub source: String,
    pub fps: f64,
    pub priority: bool,
    pub motion_gate: bool,
    pub model: String,
    /// The stream's `analyze` parameters, as given.
    #[schema(value_type = Object)]
    pub params: Value,
    /// Seconds since the Unix epoch.
    pub created_at: f64,
    /// connecting, live, reconnecting, stopped or failed; on PostgreSQL
    /// also queued (waiting for a worker to claim it).
    pub state: String,
    pub frames_received: u64,
    pub frames_analysed: u64,
    pub frames_shed: u64,
    pub frames_over_budget: u64,
    pub frames_gated: u64,
    /// Frames received but never decoded: the stream's decoding follows
    /// its analysed rate (non-reference frames, or keyframes only).
    pub frames_skipped: u64,
    pub reconnects: u64,
    pub decode_errors: u64,
    pub detections: u64,
    pub tracks: u64,
    /// Frames analysed per second connected.
    pub fps_analysed: f64,
    /// Analysed rate the load shedder allows now.
    pub rate_allowed: f64,
    pub queue_depth: u64,
    pub connected_s: f64,
    pub latency_ms: StreamLatency,
    /// The stream's run (status `live` while it runs).
    pub run_id: Option<i64>,
    pub error: Option<String>,
    /// PostgreSQL: the worker process running the stream (its id, as
    /// `GET /api/v1/workers` lists it); null while none holds it, and on
    /// SQLite, where the service runs every stream itself.
    pub worker: Option<String>,
}

/// One event of `GET /api/v1/jobs/{id}/events` (Server-Sent Events).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JobEvent {
    /// `job` on a change; `end` when the job has ended (the last event).
    #[schema(pattern = "^(job|end)$")]
    event: String,
    /// The job's [`JobView`] as JSON.
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// One event of `GET /api/v1/streams/events` (Server-Sent Events).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StreamsEvent {
    /// `streams` each second; `error` when the streams cannot be read
    /// (`data` is then the reason).
    #[schema(pattern = "^(streams|error)$")]
    event: String,
    /// Every stream's [`StreamView`], oldest first, as a JSON array.
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// A run as the run listing shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunSummary {
    pub id: i64,
    pub video_id: i64,
    /// Display name: an upload's original file name, else the path relative
    /// to the upload folder or media root holding it, else its file name.
    pub video: String,
    /// The video's absolute path on the server: administrators only (null
    /// for everyone else).
    pub video_path: Option<String>,
    /// The model's file name.
    pub model: String,
    /// complete | partial | failed | running | interrupted | live
    pub status: String,
    /// `job`: made by a service job (`job_id`); `live`: a live stream's
    /// run; `cli`: anything else (`peregrine analyze`).
    #[schema(pattern = "^(cli|job|live)$")]
    pub source: String,
    pub job_id: Option<i64>,
    /// Analysed frames.
    pub frames: u64,
    pub detections: u64,
    pub tracks: u64,
    /// Analysis speed, frames per second (null while running).
    pub fps: Option<f64>,
    pub width: u32,
    pub height: u32,
    pub video_fps: f64,
    /// Seconds.
    pub duration: f64,
    /// UTC, `YYYY-MM-DDTHH:MM:SS.sssZ`.
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Stored evaluations.
    pub evals: u64,
    /// Its detections carry keypoints (a pose model's run).
    pub pose: bool,
    /// Seconds to add to a stored frame time `t` to get the `currentTime`
    /// at which the browser shows that frame in `video_url` (0 for every
    /// transcoded video and for files whose streams start at 0). Known once
    /// the video was probed (`GET /api/v1/runs/{id}` and the video itself);
    /// null in listings until then.
    pub t_offset: Option<f64>,
    /// Where a `<video>` element plays the run's video: carries a signed
    /// `access` value (valid 12 hours) when the service has a token, as a
    /// media element cannot send the `Authorization` header.
    pub video_url: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunPage {
    pub items: Vec<RunSummary>,
    /// Pass as `cursor` (with the same `sort`) for the next page; null at
    /// the end.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// 1..=500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page (given with the same `sort`: a
    /// cursor of another order is refused).
    #[param(pattern = "^((s[-0-9:.TZ]{1,40}|d[0-9]{1,18})_[0-9]{1,18})?$")]
    pub cursor: Option<String>,
    /// Case-insensitive substring of the video's display name.
    #[param(max_length = 1024, pattern = "^[^\\x00]*$")]
    pub video: Option<String>,
    /// Case-insensitive substring of the model's file name.
    #[param(max_length = 1024, pattern = "^[^\\x00]*$")]
    pub model: Option<String>,
    /// complete | partial | failed | running | interrupted | live
    #[param(pattern = "^(complete|partial|failed|running|interrupted|live)?$")]
    pub status: Option<String>,
    /// Runs started at or after this instant (RFC 3339, or a date `YYYY-MM-DD` meaning its start in UTC).
    #[param(
        pattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?([Zz]|[+-][0-9]{2}:[0-9]{2}))?)?$"
    )]
    pub since: Option<String>,
    /// Runs started before this instant (RFC 3339, or a date).
    #[param(
        pattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?([Zz]|[+-][0-9]{2}:[0-9]{2}))?)?$"
    )]
    pub until: Option<String>,
    /// `-started_at` (default), `started_at`, `-detections`, `detections`.
    #[param(pattern = "^(-?started_at|-?detections)?$")]
    pub sort: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineParams {
    /// 1..=5000, default 200 (fewer when the run has fewer frames).
    #[param(minimum = 1, maximum = 5000)]
    pub bins: Option<u64>,
    /// Class name or id (of the run's class names).
    pub class: Option<String>,
    pub track: Option<u32>,
    /// Only detections scoring at least this (0..=1).
    #[param(minimum = 0, maximum = 1)]
    pub min_score: Option<f32>,
}

/// Detections per bin of frames.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TimelineBody {
    /// Frames the bins span: the last analysed frame's index + 1.
    pub frames: u64,
    pub bins: Vec<TimelineBinView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TimelineBinView {
    pub frame_from: u64,
    /// Inclusive.
    pub frame_to: u64,
    pub count: u64,
}

/// Every analysed frame's index and stored time, for mapping the player's
/// clock to frames exactly (frame rates vary, frames may be skipped).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FramesIndex {
    /// As in [`RunSummary::t_offset`]: the browser shows frame `frame[i]`
    /// from `currentTime = t[i] + t_offset`.
    pub t_offset: Option<f64>,
    /// Frame indices, ascending.
    pub frame: Vec<u64>,
    /// Their stored times in seconds (microsecond precision).
    pub t: Vec<f64>,
}

/// A model a job may name.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelItem {
    /// The file name.
    pub name: String,
    /// Relative to the model folder: what a job's `model` takes.
    pub path: String,
    pub size: u64,
    /// yolox | nanodet | ultralytics, as the file name tells; null when it
    /// does not (the family is recognised when the model loads).
    pub family: Option<String>,
    /// The service's default model (used when a job names none).
    pub default: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// The request carried the administrators' token.
    pub admin: bool,
}
