//! Peregrine's domain types: what a frame, a detection and a track are.
//!
//! A key design decision in this crate is that it has no I/O and no heavy
//! dependencies: every other crate depends on it, so it must stay small and
//! cheap to compile. Media, inference, tracking, storage and evaluation all
//! speak in these types and never in each other's.

mod detection;
mod frame;
mod geometry;
mod labels;
mod letterbox;

pub use detection::{ClassId, Detection, Keypoint, Keypoints, TrackId};
pub use frame::{FrameMeta, SourceId, DEFAULT_MAX_PIXELS};
pub use geometry::BBox;
pub use labels::{Labels, LabelsError, COCO_NAMES};
pub use letterbox::{CanvasLayout, ChannelOrder, Letterbox, ResizeMode};
