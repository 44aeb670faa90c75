//! Job submission through the real router, in process: the request body
//! as JSON or as a multipart upload, validated into a job as a client's
//! would be.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use peregrine_server::{AppState, Config, RawConfig};
use serde_json::Value;
use tower::ServiceExt;

/// The multipart boundary of fuzzed uploads.
pub const BOUNDARY: &str = "peregrinefuzz";

/// Answers `POST /api/v1/jobs` documents.
const DOCUMENTED: &[u16] = &[200, 202, 400, 403, 404, 413, 415, 503];

struct Server {
    app: axum::Router,
    rt: tokio::runtime::Runtime,
    upload_dir: PathBuf,
    _dir: tempfile::TempDir,
}

/// Test data: `PEREGRINE_TEST_DATA`, else `../shared/data` from the
/// repository root.
pub fn data_dir() -> PathBuf {
    std::env::var_os("PEREGRINE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

/// A service without job workers (jobs are validated and queued, never
/// run): media root the test data's videos, the YOLOX model as default,
/// database and uploads in a temporary folder (in memory where there is
/// `/dev/shm`).
fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("temporary folder");
        let data = data_dir();
        let raw = RawConfig {
            listen: Some("127.0.0.1:0".into()),
            db: Some(dir.path().join("jobs.db")),
            media_roots: Some(vec![data.join("videos")]),
            model: Some(data.join("models/yolox_nano.onnx")),
            upload_dir: Some(dir.path().join("uploads")),
            max_upload_mb: Some(4),
            ..Default::default()
        };
        let config = Config::from_raw(raw).expect("fuzz service config (PEREGRINE_TEST_DATA)");
        let upload_dir = config.upload_dir.clone();
        peregrine_store::Store::open(&config.db).expect("database");
        let app = peregrine_server::router(AppState::new(config));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Server {
            app,
            rt,
            upload_dir,
            _dir: dir,
        }
    })
}

fn call(s: &Server, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    s.rt.block_on(async {
        let resp = s.app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default();
        (status, body)
    })
}

fn post(s: &Server, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let req = Request::post("/api/v1/jobs")
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("request");
    let (status, bytes) = call(s, req);
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{status}: body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, v)
}

/// Every answer is one the document states, with the documented body;
/// an accepted job's parameters, as the API shows them, submitted again
/// give the same job (the canonical form is stable).
pub fn job_request(data: &[u8]) {
    let Some((sel, body)) = crate::split_selector(data) else {
        return;
    };
    let s = server();
    let multipart = sel % 2 == 1;
    let ctype = if multipart {
        format!("multipart/form-data; boundary={BOUNDARY}")
    } else {
        "application/json".to_string()
    };
    let (status, v) = post(s, &ctype, body.to_vec());
    assert!(
        DOCUMENTED.contains(&status.as_u16()),
        "undocumented answer {status}: {v}"
    );
    if !status.is_success() {
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(!msg.is_empty(), "{status} without an error message: {v}");
        assert!(status != StatusCode::SERVICE_UNAVAILABLE || msg.contains("busy"));
        return;
    }
    let id = v["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{status} without a job id: {v}"));
    assert_eq!(v["cached"].as_bool(), Some(status == StatusCode::OK), "{v}");
    // The job as the API shows it, submitted again as JSON.
    let req = Request::get(format!("/api/v1/jobs/{id}"))
        .body(Body::empty())
        .expect("request");
    let (st, bytes) = call(s, req);
    assert_eq!(st, StatusCode::OK);
    let job: Value = serde_json::from_slice(&bytes).expect("job view is JSON");
    let again = serde_json::json!({
        "video": job["video"],
        "model": job["model"],
        "params": job["params"],
        "priority": job["priority"],
    });
    let (st2, v2) = post(s, "application/json", again.to_string().into_bytes());
    assert_eq!(
        (st2, v2["id"].as_i64()),
        (StatusCode::OK, Some(id)),
        "job {id} shown as {again} is not the same job when submitted again: {v2}"
    );
    if multipart {
        // Accepted uploads are kept under their content hash; a fuzzing
        // run would fill the disk with them.
        if let Ok(rd) = std::fs::read_dir(&s.upload_dir) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// A multipart body of the given parts (`name`, `filename`, content), as
/// [`job_request`] reads it after its selector byte.
pub fn multipart_body(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, filename, content) in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match filename {
            Some(f) => out.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}
