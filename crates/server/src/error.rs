//! The one error type every handler returns. 4xx answers carry a message
//! written for the client and are not logged; 5xx answers are logged once
//! with their detail and the client sees only "internal error".

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("upload larger than {limit_mb} MiB")]
    PayloadTooLarge { limit_mb: u64 },
    /// A request body over its limit (413), with the limit in the message.
    #[error("{0}")]
    BodyTooLarge(String),
    /// `Host` names no name this server answers to (421).
    #[error("{0}")]
    MisdirectedRequest(String),
    #[error("{0}")]
    UnsupportedMedia(String),
    #[error("service busy, retry shortly")]
    Unavailable,
    /// What this service's database engine does not do yet (501).
    #[error("{0}")]
    NotImplemented(String),
    /// Detail for the log only.
    #[error("internal error")]
    Internal(String),
}

/// Error body: `{"error": "..."}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

impl ApiError {
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(detail.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } | ApiError::BodyTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::MisdirectedRequest(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<peregrine_store::StoreError> for ApiError {
    fn from(e: peregrine_store::StoreError) -> Self {
        match e {
            peregrine_store::StoreError::RunNotFound { run, .. } => {
                ApiError::NotFound(format!("run {run} not found"))
            }
            peregrine_store::StoreError::Locked { .. }
            | peregrine_store::StoreError::Unavailable { .. } => ApiError::Unavailable,
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "request failed");
        }
        let mut resp = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_detail() {
        let e = ApiError::internal("/secret/path.db: disk I/O error");
        assert_eq!(e.to_string(), "internal error");
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
