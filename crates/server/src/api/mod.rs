//! HTTP handlers under `/api/v1`, by resource, documented with utoipa so
//! the OpenAPI document is generated from the same code that routes
//! requests: jobs (submission, validation into a [`crate::spec::JobSpec`],
//! listing, cancelling), uploads, job events (SSE), runs (results and frame
//! images) and ops (health, metrics, the media roots' videos). The wire
//! types are in [`wire`].

pub mod evals;
pub mod events;
pub mod gait;
pub mod jobs;
pub mod models;
pub mod ops;
pub mod runs;
pub mod streams;
pub mod uploads;
pub mod video;
pub mod wire;

pub use wire::*;

/// Largest frame number or keyset position (SQLite integers are i64).
const MAX_FRAME: u64 = i64::MAX as u64;

/// Refuses a video whose frames are larger than `max_pixels`.
pub(crate) fn check_pixels(width: u32, height: u32, max_pixels: u64) -> Result<(), String> {
    let pixels = width as u64 * height as u64;
    if pixels > max_pixels {
        return Err(format!(
            "video: {width}x{height} is {pixels} pixels, over this server's limit of \
             {max_pixels} (max_pixels)"
        ));
    }
    Ok(())
}
