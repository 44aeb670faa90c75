//! Multi-object tracking for Peregrine: ByteTrack with its Kalman filter and
//! thresholded optimal assignment. Pure and synchronous: no I/O, no async, so
//! the pipeline runs it on its own thread and tests run it on plain data.

pub mod assignment;
pub mod kalman;
mod tracker;

pub use tracker::{ByteTrackConfig, ByteTracker, ConfigError, TrackView};
