//! Gait analysis from pose keypoint tracks.
//!
//! Input: the stored detections of one tracked person with COCO-17
//! keypoints ([`PoseTrack`]). Output: gait events (heel strike and toe-off
//! per foot), spatio-temporal metrics, knee and hip flexion curves per
//! gait cycle and left/right symmetry ([`SubjectGait`]), and a
//! self-contained HTML report ([`report::html`]).
//!
//! The steps, in order (see [`analyse_track`]):
//!
//! 1. keypoints under the confidence threshold are dropped, the track is
//!    laid on a uniform frame grid;
//! 2. leg labels swapped by the model are corrected by following each
//!    leg physically ([`series`]);
//! 3. gaps up to 0.2 s are bridged linearly, longer ones split the track;
//! 4. coordinates are smoothed with a Savitzky-Golay filter (zero phase:
//!    the whole pass is known, so unlike a causal One-Euro filter it
//!    shifts no peak in time, which event timing depends on);
//! 5. events by the coordinate method of Zeni et al. (2008);
//! 6. metrics per cycle, then means.
//!
//! Pure: no I/O, depends on `peregrine-core` only.

mod analysis;
mod events;
mod mode;
pub mod report;
pub mod series;

pub use analysis::{
    analyse_subjects, analyse_track, walking_score, AngleCycle, GaitConfig, PerFoot, Sides,
    SubjectGait, Symmetry,
};
pub use events::{EventKind, Foot, GaitEvent};
pub use mode::GaitMode;
pub use series::{kp, PoseSample, PoseTrack, SavGol};
