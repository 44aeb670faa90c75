//! A run's video for the browser's player: the original file when Chromium
//! plays it, else an H.264 MP4 made once on demand (on an OS thread of its
//! own, one per video however many requests ask) and kept in a cache
//! folder under the upload folder; served with HTTP ranges either way.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use peregrine_media::{BrowserCheck, InputKind, InputSpec};
use tokio::sync::watch;

use super::check_pixels;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiPath as Path;
use crate::state::AppState;

/// Transcodes running at once; a request for another video then gets 503.
const MAX_TRANSCODES: usize = 2;
/// How long a request waits for a transcode before answering 503.
const TRANSCODE_WAIT: Duration = Duration::from_secs(20);
/// Probe results and failures kept in memory.
const CACHED_CHECKS: usize = 4096;
/// Name of the cache folder inside the upload folder; bump the version
/// when what a transcode writes changes.
const CACHE_DIR: &str = ".browser";
const CACHE_VERSION: &str = "v1";

type Outcome = Option<Result<(), String>>;

/// Probe results and transcodes, by content hash.
#[derive(Default)]
pub struct VideoCache {
    checks: Mutex<HashMap<String, BrowserCheck>>,
    /// Running transcodes (their outcome channel) and failed ones.
    transcodes: Mutex<HashMap<String, watch::Receiver<Outcome>>>,
    started: AtomicU64,
}

impl VideoCache {
    /// Transcodes started by this process.
    pub fn transcodes_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    fn check(&self, hash: &str) -> Option<BrowserCheck> {
        self.checks.lock().ok()?.get(hash).cloned()
    }

    fn remember(&self, hash: &str, c: BrowserCheck) {
        if let Ok(mut m) = self.checks.lock() {
            if m.len() >= CACHED_CHECKS {
                m.clear();
            }
            m.insert(hash.to_owned(), c);
        }
    }
}

/// A content hash as a file name (hex digits only).
fn cache_name(hash: &str) -> Option<String> {
    let ok = !hash.is_empty() && hash.len() <= 128 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| format!("{hash}-{CACHE_VERSION}.mp4"))
}

fn cache_path(st: &AppState, hash: &str) -> Option<PathBuf> {
    Some(st.config.upload_dir.join(CACHE_DIR).join(cache_name(hash)?))
}

/// The run video's `t_offset` if it was probed already (listings never
/// probe).
pub(crate) fn cached_t_offset(st: &AppState, hash: &str) -> Option<f64> {
    st.videos.check(hash).map(|c| effective_offset(&c))
}

/// 0 when the browser gets the transcode; the original's offset otherwise.
fn effective_offset(c: &BrowserCheck) -> f64 {
    if c.playable {
        c.t_offset
    } else {
        0.0
    }
}

/// Probes the video (within the media permits) unless done before; `None`
/// when the file is gone, changed or unreadable.
pub(crate) async fn t_offset_of(st: &AppState, path: &str, hash: &str) -> Option<f64> {
    if let Some(c) = st.videos.check(hash) {
        return Some(effective_offset(&c));
    }
    let c = probe(st, path, hash).await.ok()?;
    Some(effective_offset(&c))
}

/// The input at `path` as the analysis opened it (a file, or an image
/// sequence such as a MOTChallenge folder) and its fingerprint now, as
/// its run recorded it; `None` when it is gone or unreadable.
fn input_now(path: &FsPath) -> Option<(String, InputSpec)> {
    if path.is_file() {
        let hash = peregrine_media::file_fingerprint(path).ok()?.hash;
        let spec = InputSpec {
            path: path.to_path_buf(),
            kind: InputKind::File,
        };
        return Some((hash, spec));
    }
    if !path.is_dir() {
        return None;
    }
    let mut specs = peregrine_media::discover_inputs(&[path.to_path_buf()]).ok()?;
    if specs.len() != 1 || !matches!(specs[0].kind, InputKind::ImageSequence { .. }) {
        return None;
    }
    let spec = specs.remove(0);
    let (hash, _) = peregrine_pipeline::input_fingerprint(&spec).ok()?;
    Some((hash, spec))
}

async fn probe(st: &AppState, path: &str, hash: &str) -> Result<BrowserCheck, ApiError> {
    if let Some(c) = st.videos.check(hash) {
        return Ok(c);
    }
    if FsPath::new(path).is_dir() {
        // An image sequence: always converted, its first image at 0.
        let c = BrowserCheck {
            playable: false,
            reason: Some("an image sequence".into()),
            t_offset: 0.0,
            width: 0,
            height: 0,
            mime: "video/mp4",
        };
        st.videos.remember(hash, c.clone());
        return Ok(c);
    }
    let _permit = st.media_permit().await?;
    let (p, max) = (PathBuf::from(path), st.config.max_pixels);
    let c = tokio::task::spawn_blocking(move || peregrine_media::browser_check(&p, max))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::UnsupportedMedia(format!("video: {}", one_line(&e.to_string()))))?;
    st.videos.remember(hash, c.clone());
    Ok(c)
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(300).collect()
}

/// 503 with `Retry-After`.
fn busy(msg: &str, retry_s: u32) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, retry_s.to_string())],
        Json(ErrorBody {
            error: msg.to_owned(),
        }),
    )
        .into_response()
}

/// Starts (or joins) the transcode of `src` into `target`; the receiver
/// gets the outcome. `None` when too many other videos are transcoding.
fn transcode(
    st: &AppState,
    hash: &str,
    src: InputSpec,
    target: PathBuf,
) -> Option<watch::Receiver<Outcome>> {
    let mut map = st.videos.transcodes.lock().ok()?;
    if let Some(rx) = map.get(hash) {
        // A failed one is retried only by a new process (or once the file
        // is gone from the map), not on every request.
        return Some(rx.clone());
    }
    let running = map.values().filter(|rx| rx.borrow().is_none()).count();
    if running >= MAX_TRANSCODES {
        return None;
    }
    if map.len() >= CACHED_CHECKS {
        map.retain(|_, rx| rx.borrow().is_none());
    }
    let (tx, rx) = watch::channel(None);
    map.insert(hash.to_owned(), rx.clone());
    drop(map);
    st.videos.started.fetch_add(1, Ordering::Relaxed);
    let (max_pixels, nice) = (st.config.max_pixels, st.config.analysis_nice);
    let st2 = st.clone();
    let key = hash.to_owned();
    let spawned = std::thread::Builder::new()
        .name("transcode".into())
        .spawn(move || {
            // Like analyses: requests preempt this work on a busy machine.
            let _ = rustix::process::setpriority_process(None, nice);
            let result = (|| {
                if let Some(dir) = target.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
                }
                let started = std::time::Instant::now();
                let stats = peregrine_media::transcode_for_browser(&src, &target, max_pixels, 2)
                    .map_err(|e| one_line(&e.to_string()))?;
                tracing::info!(
                    video = %src.path.display(),
                    frames = stats.frames,
                    skipped = stats.skipped,
                    seconds = started.elapsed().as_secs_f64(),
                    "transcoded for the browser"
                );
                Ok(())
            })();
            if let Err(e) = &result {
                tracing::warn!(video = %src.path.display(), error = %e, "transcode failed");
            } else if let Ok(mut m) = st2.videos.transcodes.lock() {
                // Done: the file in the cache answers from now on.
                m.remove(&key);
            }
            let _ = tx.send(Some(result));
        });
    if spawned.is_err() {
        if let Ok(mut m) = st.videos.transcodes.lock() {
            m.remove(hash);
        }
        return None;
    }
    Some(rx)
}

/// Whether a `Range` value is one byte range: `bytes=START-[END]` or
/// `bytes=-SUFFIX`, numbers of at most 18 digits (the document's pattern).
fn one_range(v: &[u8]) -> bool {
    let Some(r) = v.strip_prefix(b"bytes=") else {
        return false;
    };
    let Some(dash) = r.iter().position(|&b| b == b'-') else {
        return false;
    };
    let (a, b) = (&r[..dash], &r[dash + 1..]);
    let digits =
        |x: &[u8], min: usize| (min..=18).contains(&x.len()) && x.iter().all(u8::is_ascii_digit);
    if a.is_empty() {
        digits(b, 1)
    } else {
        digits(a, 1) && digits(b, 0)
    }
}

/// Serves `file` for `req` with ranges (206, 416 for a range outside the
/// file), as `mime`.
async fn serve(
    file: &FsPath,
    req: Request,
    mime: &'static str,
    t_offset: f64,
) -> Result<Response, ApiError> {
    let resp = tower_http::services::ServeFile::new(file)
        .try_call(req)
        .await
        .map_err(ApiError::internal)?;
    let mut resp = resp.map(Body::new);
    let ok = resp.status().is_success();
    let h = resp.headers_mut();
    if ok {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    if let Ok(v) = HeaderValue::from_str(&t_offset.to_string()) {
        h.insert("x-peregrine-t-offset", v);
    }
    Ok(resp)
}

/// The run's video for a `<video>` element, with HTTP range requests
/// (206; 416 for a range outside the file): the original file when
/// Chromium plays it (MP4/MOV with H.264, VP9 or AV1, WebM with VP8, VP9 or
/// AV1, 8-bit 4:2:0, playable audio), otherwise (other files, image
/// sequences such as MOTChallenge folders) an H.264 MP4 made once on demand
/// (every frame at its stored time, no audio).
/// While that is being made, requests wait up to 20 s, then get 503 with
/// `Retry-After`. `X-Peregrine-T-Offset` gives the seconds to add to a
/// stored frame time for the video's `currentTime` (see `RunSummary`). A
/// `<video>` element, which cannot send the token, uses the run's
/// `video_url` (a signed `access` value).
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/video",
    params(
        ("id" = i64, Path),
        ("access" = Option<String>, Query, description = "Signed access from the run's `video_url` (instead of the token)"),
        ("Range" = Option<String>, Header, pattern = "^bytes=([0-9]{1,18}-[0-9]{0,18}|-[0-9]{1,18})$", description = "One range, `bytes=START-[END]` or `bytes=-SUFFIX`")
    ),
    responses(
        (status = 200, description = "The whole video", content(
            (Vec<u8> = "video/mp4"),
            (Vec<u8> = "video/webm")
        )),
        (status = 206, description = "The requested range", content(
            (Vec<u8> = "video/mp4"),
            (Vec<u8> = "video/webm")
        )),
        (status = 400, description = "Invalid id or Range, or the video is over the pixel limit", body = ErrorBody),
        (status = 404, description = "No such run, or its video file is gone", body = ErrorBody),
        (status = 409, description = "The video file changed since the run analysed it", body = ErrorBody),
        (status = 415, description = "FFmpeg cannot read or convert the video", body = ErrorBody),
        (status = 416, description = "Range outside the file", body = ErrorBody),
        (status = 503, description = "Being converted for the browser (see Retry-After), or busy", body = ErrorBody)
    ),
    security(("bearer" = [])),
    tag = "runs"
)]
pub async fn video(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    req: Request,
) -> Result<Response, ApiError> {
    if let Some(r) = req.headers().get(header::RANGE) {
        if !one_range(r.as_bytes()) {
            return Err(ApiError::BadRequest(
                "Range: one range, bytes=START-[END] or bytes=-SUFFIX".into(),
            ));
        }
    }
    let run = st.db(move |c| Ok(c.store.run(id)?)).await?;
    let path = PathBuf::from(&run.video_path);
    let hash = run.content_hash.clone();
    check_pixels(run.width, run.height, st.config.max_pixels).map_err(ApiError::BadRequest)?;
    // The file must still be the one analysed: else the run's boxes would
    // be drawn over another video.
    let p2 = path.clone();
    let same = tokio::task::spawn_blocking(move || input_now(&p2))
        .await
        .map_err(ApiError::internal)?;
    let spec = match same {
        None if run.status == peregrine_store::RunStatus::Live
            || run.cache_key.starts_with("live:") =>
        {
            return Err(ApiError::NotFound(format!(
                "run {id} is a live stream's: there is no stored video to play"
            )))
        }
        None => {
            return Err(ApiError::NotFound(format!(
                "run {id}: its video file is no longer there"
            )))
        }
        Some((h, _)) if h != hash => {
            return Err(ApiError::Conflict(format!(
                "run {id}: its video file has changed since it was analysed"
            )))
        }
        Some((_, spec)) => spec,
    };
    let check = probe(&st, &run.video_path, &hash).await?;
    if check.playable {
        return serve(&path, req, check.mime, check.t_offset).await;
    }
    let target = cache_path(&st, &hash)
        .ok_or_else(|| ApiError::internal(format!("run {id}: content hash {hash:?}")))?;
    if target.is_file() {
        return serve(&target, req, "video/mp4", 0.0).await;
    }
    let Some(mut rx) = transcode(&st, &hash, spec, target.clone()) else {
        return Ok(busy(
            "other videos are being converted for the browser; retry shortly",
            10,
        ));
    };
    let outcome = {
        let waited = tokio::time::timeout(TRANSCODE_WAIT, rx.wait_for(|o| o.is_some())).await;
        match waited {
            Err(_) => {
                return Ok(busy(
                    "the video is being converted for the browser; retry shortly",
                    5,
                ))
            }
            Ok(Err(_)) => Some(Err("the conversion stopped".to_owned())),
            Ok(Ok(o)) => o.clone(),
        }
    };
    match outcome {
        Some(Ok(())) => serve(&target, req, "video/mp4", 0.0).await,
        Some(Err(e)) => Err(ApiError::UnsupportedMedia(format!(
            "run {id}: the video cannot be converted for the browser ({e})"
        ))),
        None => Ok(busy("the video is being converted; retry shortly", 5)),
    }
}

#[cfg(test)]
mod tests {
    use super::cache_name;

    #[test]
    fn ranges_are_single_byte_ranges() {
        for ok in ["bytes=0-", "bytes=0-99", "bytes=-10", "bytes=5-5"] {
            assert!(super::one_range(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "bytes=",
            "bytes=-",
            "bytes=0-1,5-9",
            "pages=1-2",
            "bytes= 1-2",
            "bytes=1234567890123456789-",
        ] {
            assert!(!super::one_range(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn cache_names_are_hex_only() {
        assert_eq!(cache_name("ab12").as_deref(), Some("ab12-v1.mp4"));
        for bad in ["", "../x", "ab/12", "seed-1", "a b"] {
            assert_eq!(cache_name(bad), None, "{bad}");
        }
    }
}
