//! The dashboard: static files from the built `web/dist`, with
//! `index.html` for client-side routes. Without a build, `/` says so and
//! the API works as usual.

use std::path::Path;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use tower_http::services::{ServeDir, ServeFile};

use crate::state::AppState;

const NO_DASHBOARD: &str = "Peregrine is running. The dashboard is not built \
(run scripts/setup-web.sh, or set PEREGRINE_WEB_DIR to a built web/dist).\n\
API: /api/v1 (OpenAPI document at /api/v1/openapi.json), /health, /metrics.\n";

pub fn attach(app: Router<AppState>, web_dir: Option<&Path>) -> Router<AppState> {
    match web_dir {
        Some(dir) => app
            .fallback_service(ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")))),
        None => app.fallback(|| async { (StatusCode::NOT_FOUND, NO_DASHBOARD).into_response() }),
    }
}
