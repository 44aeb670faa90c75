//! `--mode` of gait analysis: frame sampling, smoothing and keypoint
//! confidence, trading speed for accuracy.

use std::str::FromStr;

use crate::analysis::GaitConfig;
use crate::series::SavGol;

/// Speed/accuracy trade-off of a gait analysis. The pose model's input
/// size is fixed (640×640 for the YOLO11 pose model), so it is not one of
/// the knobs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GaitMode {
    /// At most 15 analysed frames per second: half the inference at 30 fps.
    Fast,
    /// At most 30 analysed frames per second.
    #[default]
    Balanced,
    /// Every frame, a cubic fit over a longer window, keypoints down to 0.4
    /// confidence.
    Accurate,
}

impl FromStr for GaitMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fast" => Ok(GaitMode::Fast),
            "balanced" => Ok(GaitMode::Balanced),
            "accurate" => Ok(GaitMode::Accurate),
            other => Err(format!(
                "mode must be fast, balanced or accurate, got {other:?}"
            )),
        }
    }
}

impl GaitMode {
    pub fn name(&self) -> &'static str {
        match self {
            GaitMode::Fast => "fast",
            GaitMode::Balanced => "balanced",
            GaitMode::Accurate => "accurate",
        }
    }

    /// Frames analysed per second of video at most (`None`: every frame).
    pub fn sampling_fps(&self) -> Option<f64> {
        match self {
            GaitMode::Fast => Some(15.0),
            GaitMode::Balanced => Some(30.0),
            GaitMode::Accurate => None,
        }
    }

    /// The analysis settings for a video at `video_fps` analysed every
    /// `step` frames.
    pub fn config(&self, video_fps: f64, step: u32, height_m: Option<f64>) -> GaitConfig {
        let (window_s, order, conf) = match self {
            GaitMode::Fast | GaitMode::Balanced => (0.2, 2, 0.5),
            GaitMode::Accurate => (0.3, 3, 0.4),
        };
        let mut c = GaitConfig::new(video_fps, step);
        let rate = video_fps / step.max(1) as f64;
        let half = ((window_s * rate / 2.0).round() as usize).max(2);
        c.smoothing = SavGol {
            window: 2 * half + 1,
            order,
        };
        c.min_keypoint_conf = conf;
        c.height_m = height_m;
        c
    }
}
