use serde::{Deserialize, Serialize};

use crate::BBox;

/// Index into the model's label list (COCO: 0 = person, 2 = car, ...).
pub type ClassId = u16;

/// Identity given by the tracker; unique within one run.
pub type TrackId = u32;

/// One keypoint in source-frame pixels with the model's confidence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Keypoint {
    pub x: f32,
    pub y: f32,
    pub score: f32,
}

/// Keypoints of one pose detection, in the model's keypoint order
/// (COCO-17 for the YOLO pose models).
pub type Keypoints = Vec<Keypoint>;

/// One object found in one frame, in source-frame pixel coordinates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub class_id: ClassId,
    pub score: f32,
    pub bbox: BBox,
    /// Set by the tracker; `None` when tracking is off or the detection was
    /// not matched to a confirmed track.
    pub track_id: Option<TrackId>,
    /// Pose keypoints; empty for plain detectors.
    pub keypoints: Keypoints,
}

impl Detection {
    pub fn new(class_id: ClassId, score: f32, bbox: BBox) -> Self {
        Self {
            class_id,
            score,
            bbox,
            track_id: None,
            keypoints: Vec::new(),
        }
    }
}
