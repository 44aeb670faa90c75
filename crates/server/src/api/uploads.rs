//! Uploaded videos: received into a temporary file (size-limited, hashed
//! while written), probed, and kept under their content hash once the job
//! is accepted.

use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Multipart;
use axum::http::StatusCode;
use axum::response::Response;
use peregrine_store::pid_alive;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::jobs::{enqueue, probe_permitted, validate_job};
use crate::error::ApiError;
use crate::paths::stored_upload_name;
use crate::state::AppState;

static UPLOAD_SEQ: AtomicU64 = AtomicU64::new(0);

/// Removes a file when dropped unless kept.
struct TempUpload(Option<PathBuf>);

impl Drop for TempUpload {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The name of an upload being received: `upload-<nanos>-<pid>-<seq>.bin`.
fn temp_upload_name(nanos: u128, pid: u32, seq: u64) -> String {
    format!("upload-{nanos}-{pid}-{seq}.bin")
}

/// The process that wrote a temporary upload, if `name` is one.
fn temp_upload_pid(name: &str) -> Option<i64> {
    let mut parts = name
        .strip_prefix("upload-")?
        .strip_suffix(".bin")?
        .split('-');
    let (_nanos, pid, _seq) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    pid.parse().ok()
}

/// Deletes temporary uploads left in `dir` by a process that is gone (a
/// crash mid-upload) or by an earlier process with this one's id; called at
/// start, before any upload can be in flight. Returns how many.
pub fn remove_stale_uploads(dir: &FsPath) -> usize {
    let me = std::process::id() as i64;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(temp_upload_pid)
                .is_some_and(|pid| pid == me || !pid_alive(pid))
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// A job submitted as a multipart upload (see [`super::jobs::create_job`]).
pub(super) async fn upload_job(st: AppState, mut mp: Multipart) -> Result<Response, ApiError> {
    let limit = st.config.max_upload_bytes;
    let too_large = || ApiError::PayloadTooLarge {
        limit_mb: limit >> 20,
    };
    let field_err = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::BadRequest(format!("multipart: {}", e.body_text()))
        }
    };
    let mut upload: Option<TempUpload> = None;
    let mut upload_path: Option<PathBuf> = None;
    let mut upload_hash = None;
    let mut upload_name: Option<String> = None;
    let (mut model, mut params, mut priority) = (None, None, None);
    while let Some(mut field) = mp.next_field().await.map_err(field_err)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "file" => {
                if upload.is_some() {
                    return Err(ApiError::BadRequest("multipart: one file per job".into()));
                }
                upload_name = field
                    .file_name()
                    .and_then(peregrine_store::clean_upload_name);
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let path = st.config.upload_dir.join(temp_upload_name(
                    nanos,
                    std::process::id(),
                    UPLOAD_SEQ.fetch_add(1, Ordering::Relaxed),
                ));
                let guard = TempUpload(Some(path.clone()));
                let mut f = tokio::fs::File::create(&path)
                    .await
                    .map_err(ApiError::internal)?;
                let mut size = 0u64;
                let mut hash = blake3::Hasher::new();
                while let Some(chunk) = field.chunk().await.map_err(field_err)? {
                    size += chunk.len() as u64;
                    if size > limit {
                        return Err(too_large());
                    }
                    hash.update(&chunk);
                    f.write_all(&chunk).await.map_err(ApiError::internal)?;
                }
                f.flush().await.map_err(ApiError::internal)?;
                if size == 0 {
                    return Err(ApiError::BadRequest("multipart: empty file".into()));
                }
                upload = Some(guard);
                upload_path = Some(path);
                upload_hash = Some(hash.finalize().to_hex());
            }
            "model" | "params" | "priority" => {
                let text = field.text().await.map_err(field_err)?;
                if text.len() > 64 * 1024 {
                    return Err(ApiError::BadRequest(format!("{name}: too long")));
                }
                match name.as_str() {
                    "model" => model = Some(text),
                    "params" => params = Some(text),
                    _ => priority = Some(text),
                }
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "multipart: unexpected part {other:?}"
                )))
            }
        }
    }
    let mut upload =
        upload.ok_or_else(|| ApiError::BadRequest("multipart: no file part".into()))?;
    let params = match params {
        Some(p) if !p.trim().is_empty() => Some(
            serde_json::from_str::<Value>(&p)
                .map_err(|e| ApiError::BadRequest(format!("params: {e}")))?,
        ),
        _ => None,
    };
    let priority = match priority {
        Some(p) if !p.trim().is_empty() => Some(
            p.trim()
                .parse::<i64>()
                .map_err(|_| ApiError::BadRequest("priority: not an integer".into()))?,
        ),
        _ => None,
    };
    let path = upload_path.expect("set with the upload");
    let st2 = st.clone();
    let mut v = tokio::task::spawn_blocking(move || {
        validate_job(&st2, path, model.as_deref(), params, priority)
    })
    .await
    .map_err(ApiError::internal)??;
    probe_permitted(&st, &v.spec.video, true).await?;
    // Accepted: the upload is kept under its content hash, so the same video
    // uploaded again is the same file (and, with the same model and
    // parameters, the same job) and takes no more disk. Stored files are
    // only ever created from accepted uploads and never deleted here.
    let hex = upload_hash.expect("set with the upload");
    let stored = st.config.upload_dir.join(stored_upload_name(&hex));
    if !stored.is_file() {
        let from = upload.0.take().expect("the temporary upload");
        if let Err(e) = tokio::fs::rename(&from, &stored).await {
            upload.0 = Some(from);
            return Err(ApiError::internal(e));
        }
    }
    // Any temporary copy left goes when `upload` drops.
    if let Some(name) = upload_name {
        let path = stored.to_string_lossy().into_owned();
        st.db(move |c| Ok(c.store.save_upload_name(&path, &name)?))
            .await?;
    }
    v.spec.video = stored;
    enqueue(&st, v).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_upload_names_carry_their_writer() {
        let name = temp_upload_name(12, 345, 6);
        assert_eq!(temp_upload_pid(&name), Some(345));
        for other in [
            "upload-0123abcd",
            "upload-1-2.bin",
            "upload-1-2-3-4.bin",
            "x-1-2-3.bin",
        ] {
            assert_eq!(temp_upload_pid(other), None, "{other}");
        }
    }
}
