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

/// COCO-17 keypoint names, in the models' order.
pub const COCO_KEYPOINTS: [&str; 17] = [
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
];

/// COCO-17 skeleton: the limbs of the COCO keypoint annotation format, as
/// pairs of keypoint indices (0-based; COCO files write them 1-based).
pub const COCO_SKELETON: [(usize, usize); 19] = [
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
];

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
