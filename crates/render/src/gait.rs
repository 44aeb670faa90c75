//! Gait of a stored pose run: its tracks read back one at a time, walking
//! subjects analysed by `peregrine_gait`, and the HTML report with key
//! frames drawn from the video. Shared by `peregrine gait` and the
//! service's `/runs/{id}/gait` endpoints.

use peregrine_core::Labels;
use peregrine_gait::report::{KeyFrame, Report, ReportSubject};
pub use peregrine_gait::SubjectGait;
use peregrine_gait::{analyse_track, walking_score, EventKind, GaitMode, PoseSample, PoseTrack};
use peregrine_store::{DetectionQuery, Results, RunRecord, StoreError};

use crate::FrameToDraw;

/// The gait of one stored run: its walking subjects, main subject first,
/// and, when asked for, the frames to show in a report (read from the
/// database, drawn later without it).
pub struct RunGait {
    pub run: RunRecord,
    pub mode: GaitMode,
    pub height_m: Option<f64>,
    pub subjects: Vec<SubjectGait>,
    key_frames: Vec<Vec<(FrameToDraw, String)>>,
}

/// Frames between analysed frames in a run: from its stored sampling
/// parameters (`every`, `fps`).
fn run_step(run: &RunRecord, video_fps: f64) -> u32 {
    let every = run
        .params
        .get("every")
        .and_then(|v| v.as_u64())
        .unwrap_or(1)
        .max(1) as f64;
    let by_fps = run
        .params
        .get("fps")
        .and_then(|v| v.as_f64())
        .filter(|f| *f > 0.0)
        .map_or(1.0, |f| (video_fps / f).round().max(1.0));
    every.max(by_fps) as u32
}

/// One track's detections with keypoints, a keyset page at a time.
fn load_track(store: &Results, run: i64, track: u32) -> Result<PoseTrack, StoreError> {
    let mut q = DetectionQuery {
        track_id: Some(track),
        limit: 5000,
        ..Default::default()
    };
    let mut samples = Vec::new();
    loop {
        let page = store.detections_page(run, &q)?;
        samples.extend(page.items.into_iter().map(|d| PoseSample {
            frame: d.frame,
            bbox: d.bbox,
            keypoints: d.keypoints,
        }));
        match page.next {
            Some(n) => q.after = Some(n),
            None => break,
        }
    }
    Ok(PoseTrack {
        track_id: track,
        samples,
    })
}

/// The stored frames nearest four consecutive events from the middle of
/// the pass, with captions.
fn key_frame_picks(g: &SubjectGait, t: &PoseTrack) -> Vec<(u64, String)> {
    let ev = &g.events;
    let mid = ev.len() / 2;
    let Some(start) = (0..ev.len())
        .filter(|&i| ev[i].kind == EventKind::HeelStrike)
        .min_by_key(|&i| i.abs_diff(mid.saturating_sub(2)))
    else {
        return Vec::new();
    };
    ev[start..]
        .iter()
        .take(4)
        .filter_map(|e| {
            let s = t.samples.iter().min_by(|a, b| {
                (a.frame as f64 - e.frame)
                    .abs()
                    .total_cmp(&(b.frame as f64 - e.frame).abs())
            })?;
            let kind = match e.kind {
                EventKind::HeelStrike => "heel strike",
                EventKind::ToeOff => "toe-off",
            };
            Some((
                s.frame,
                format!(
                    "{} {kind} · {:.2} s (frame {})",
                    e.foot.name(),
                    e.t,
                    s.frame
                ),
            ))
        })
        .collect()
}

impl RunGait {
    /// Reads run `run_id` and analyses its walking subjects. A walking
    /// track with fewer than two heel strikes is left out (nothing about
    /// its gait can be measured: a reflection in a window, say). With
    /// `key_frames`, the frames for a report are read too.
    pub fn read(
        store: &Results,
        run_id: i64,
        mode: GaitMode,
        height_m: Option<f64>,
        key_frames: bool,
    ) -> Result<RunGait, StoreError> {
        let run = store.run(run_id)?;
        let fps = if run.video_fps > 0.0 {
            run.video_fps
        } else {
            30.0
        };
        let mut cfg = mode.config(fps, run_step(&run, fps), height_m);
        cfg.frame_size = Some((run.width as f32, run.height as f32));
        let mut found = Vec::new();
        for t in store.tracks(run_id)? {
            // At least a second of frames before loading anything.
            if ((t.last_frame - t.first_frame) as f64) < fps || t.frames < 8 {
                continue;
            }
            let track = load_track(store, run_id, t.track_id)?;
            if track.samples.iter().any(|s| s.keypoints.len() < 17) {
                continue;
            }
            let Some(score) = walking_score(&track, fps) else {
                continue;
            };
            let Some(g) = analyse_track(&track, &cfg).filter(|g| g.steps >= 2) else {
                continue;
            };
            let mut frames = Vec::new();
            if key_frames {
                for (frame, caption) in key_frame_picks(&g, &track) {
                    frames.push((FrameToDraw::read(store, run_id, frame)?, caption));
                }
            }
            found.push((score, g, frames));
        }
        found.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (subjects, key_frames) = found.into_iter().map(|(_, g, f)| (g, f)).unzip();
        Ok(RunGait {
            run,
            mode,
            height_m,
            subjects,
            key_frames,
        })
    }

    /// The report page; key frames are decoded and drawn here (FFmpeg, no
    /// database). A frame that cannot be drawn is left out.
    pub fn report_html(&self, labels: &Labels) -> String {
        let subjects = self
            .subjects
            .iter()
            .enumerate()
            .map(|(i, gait)| {
                let key_frames = self
                    .key_frames
                    .get(i)
                    .into_iter()
                    .flatten()
                    .filter_map(|(f, caption)| {
                        f.jpeg(labels).ok().map(|jpeg| KeyFrame {
                            caption: caption.clone(),
                            jpeg,
                        })
                    })
                    .collect();
                ReportSubject { gait, key_frames }
            })
            .collect();
        peregrine_gait::report::html(&Report {
            input: &self.run.video_path,
            run_id: self.run.id,
            mode: self.mode.name(),
            height_m: self.height_m,
            subjects,
        })
    }
}
