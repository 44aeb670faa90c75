//! The models a job may name, and who the caller is.

use std::path::{Path as FsPath, PathBuf};

use axum::extract::State;
use axum::{Extension, Json};

use super::wire::{ModelItem, WhoAmI};
use crate::error::ApiError;
use crate::extract::Viewer;
use crate::state::AppState;

/// Most model files listed.
const MAX_MODELS: usize = 1000;

/// The family a model's file name tells, if it does.
fn family_from_name(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase();
    if n.contains("yolox") {
        Some("yolox")
    } else if n.contains("nanodet") {
        Some("nanodet")
    } else if n.contains("yolo") {
        Some("ultralytics")
    } else {
        None
    }
}

/// `.onnx` files in `dir` and its subfolders (two levels), sorted.
fn onnx_files(dir: &FsPath) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() && depth < 2 {
                dirs.push((p, depth + 1));
            } else if ft.is_file()
                && p.extension()
                    .is_some_and(|x| x.eq_ignore_ascii_case("onnx"))
                && out.len() < MAX_MODELS
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn list(st: &AppState) -> Vec<ModelItem> {
    let dir = st.config.model_dir.as_deref();
    let default = st.config.default_model.as_deref();
    let mut files = dir.map(onnx_files).unwrap_or_default();
    if let Some(d) = default {
        if !files.iter().any(|f| f == d) {
            files.insert(0, d.to_path_buf());
        }
    }
    files
        .into_iter()
        .filter_map(|f| {
            let name = f.file_name()?.to_string_lossy().into_owned();
            let path = dir
                .and_then(|d| f.strip_prefix(d).ok())
                .map(|r| r.to_string_lossy().into_owned())
                .unwrap_or_else(|| name.clone());
            Some(ModelItem {
                size: std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0),
                family: family_from_name(&name).map(str::to_owned),
                default: Some(f.as_path()) == default,
                name,
                path,
            })
        })
        .collect()
}

/// The models a job may name: `.onnx` files in the model folder (and two
/// levels of subfolders) and the default model, with paths relative to
/// the folder, as a job's `model` takes them.
#[utoipa::path(
    get,
    path = "/api/v1/models",
    responses((status = 200, body = Vec<ModelItem>)),
    security(("bearer" = [])),
    tag = "jobs"
)]
pub async fn models(State(st): State<AppState>) -> Result<Json<Vec<ModelItem>>, ApiError> {
    let st2 = st.clone();
    let items = tokio::task::spawn_blocking(move || list(&st2))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(items))
}

/// Whether the request carries the administrators' token (who then see
/// server-side absolute paths).
#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    responses((status = 200, body = WhoAmI)),
    security(("bearer" = [])),
    tag = "ops"
)]
pub async fn whoami(Extension(viewer): Extension<Viewer>) -> Json<WhoAmI> {
    Json(WhoAmI {
        admin: viewer.admin,
    })
}

#[cfg(test)]
mod tests {
    use super::family_from_name;

    #[test]
    fn families_from_file_names() {
        assert_eq!(family_from_name("yolox_nano.onnx"), Some("yolox"));
        assert_eq!(family_from_name("nanodet_m_416.onnx"), Some("nanodet"));
        assert_eq!(family_from_name("YOLO11n_pose.onnx"), Some("ultralytics"));
        assert_eq!(family_from_name("detector.onnx"), None);
    }
}
