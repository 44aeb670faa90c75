//! Peregrine's domain types: what a frame, a detection and a track are,
//! what a run asks for and where its results go.
//!
//! A key design decision in this crate is that it has no I/O and no heavy
//! dependencies: every other crate depends on it, so it must stay small and
//! cheap to compile. Media, inference, tracking, storage and evaluation all
//! speak in these types and never in each other's, and the layers meet at
//! the small traits of [`run`]: a store and its run sinks, frame
//! processors.

mod detection;
mod frame;
mod geometry;
mod labels;
mod letterbox;
pub mod run;
mod spatial;
mod spec;

pub use detection::{
    ClassId, Detection, Keypoint, Keypoints, TrackId, COCO_KEYPOINTS, COCO_SKELETON,
};
pub use frame::{FrameMeta, SourceId, DEFAULT_MAX_PIXELS};
pub use geometry::BBox;
pub use labels::{Labels, LabelsError, COCO_NAMES};
pub use letterbox::{CanvasLayout, ChannelOrder, Letterbox, ResizeMode};
pub use run::{
    CachedRun, FrameDetections, FrameProcessor, Processed, RunOutcome, RunSink, RunStart,
    RunStatus, RunStore, SinkError, SinkErrorKind, TrackSummary, VideoRecord,
};
pub use spatial::{
    polygon_area, Anchor, Dwell, GroundTrack, InOut, IntervalCounts, LineSpec, Occupancy,
    PointPair, SpatialSpec, ZoneInterval, ZoneSpec, DEFAULT_INTERVAL_S,
};
pub use spec::{DetectorConfig, EngineSpec, Mode, RunSpec, Sampling, TrackSpec};
