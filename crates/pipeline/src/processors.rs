//! The processors every analysis can run between inference and the sink:
//! tracking and per-track statistics. Counting lines, zones and gait are
//! further [`FrameProcessor`]s in the same chain.

use peregrine_analytics::{SpatialCounter, TrackStats};
use peregrine_core::{
    FrameDetections, FrameProcessor, Processed, RunSpec, SourceId, SpatialSpec, TrackSpec,
};
use peregrine_track::{ByteTrackConfig, ByteTracker, ConfigError};

use crate::PipelineError;

/// When a processor chain hands frames on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Files: each frame waits for the next one to be tracked, so a track
    /// confirmed on its second frame also labels its first box.
    Complete,
    /// Live streams: each frame goes on as soon as it is tracked (its
    /// results are due within the latency budget).
    Prompt,
}

/// The processors of a run, in order, for files and live streams alike:
/// tracking, then per-track statistics, then counting (lines, zones or a
/// calibration); none with tracking off.
pub fn for_run(
    run: &RunSpec,
    source: SourceId,
    fps: f64,
    delivery: Delivery,
) -> Result<Vec<Box<dyn FrameProcessor>>, PipelineError> {
    let Some(spec) = &run.tracking else {
        return Ok(Vec::new());
    };
    let mut tracking = Tracking::new(spec, fps, run.untracked_min_score().unwrap_or(1.0))?;
    if delivery == Delivery::Prompt {
        tracking = tracking.without_hold_back();
    }
    let idle = tracking.idle_frames();
    let mut steps: Vec<Box<dyn FrameProcessor>> = vec![
        Box::new(tracking),
        Box::new(TrackStatistics::new(source, idle)),
    ];
    if let Some(spatial) = &run.spatial {
        steps.push(Box::new(
            Counting::new(spatial, source, idle).map_err(PipelineError::Spatial)?,
        ));
    }
    Ok(steps)
}

/// ByteTrack. Each frame is held back until the next one is tracked:
/// ByteTrack confirms a track born after the first frame on its second
/// frame, and the box it was born from then gets the id too. A frame is
/// handed on with its tracked boxes (down to the tracker's low threshold)
/// and the untracked ones scoring at least `untracked_min`
/// ([`peregrine_core::RunSpec::untracked_min_score`]).
pub struct Tracking {
    tracker: ByteTracker,
    untracked_min: f32,
    held: Option<FrameDetections>,
    hold_back: bool,
}

impl Tracking {
    pub fn new(spec: &TrackSpec, frame_rate: f64, untracked_min: f32) -> Result<Self, ConfigError> {
        Ok(Self {
            tracker: ByteTracker::new(ByteTrackConfig::from_spec(spec, frame_rate))?,
            untracked_min,
            held: None,
            hold_back: true,
        })
    }

    /// Hands each frame on as soon as it is tracked (live streams, where a
    /// frame's results are due within the latency budget): a track born
    /// on a frame gets its id from its second frame on.
    pub fn without_hold_back(mut self) -> Self {
        self.hold_back = false;
        self
    }

    /// Frames after which an unseen track is gone for good.
    pub fn idle_frames(&self) -> u64 {
        self.tracker.config().max_time_lost() + 1
    }

    fn release(&self, mut frame: FrameDetections, out: &mut Processed) {
        frame
            .detections
            .retain(|d| d.track_id.is_some() || d.score >= self.untracked_min);
        out.frames.push(frame);
    }
}

impl FrameProcessor for Tracking {
    fn name(&self) -> &'static str {
        "track"
    }

    fn frame(&mut self, mut frame: FrameDetections, out: &mut Processed) {
        self.tracker.update(frame.meta.index, &mut frame.detections);
        if !self.hold_back {
            self.release(frame, out);
            return;
        }
        let Some(mut prev) = self.held.replace(frame) else {
            return;
        };
        for &(i, id) in self.tracker.confirmed_births() {
            if let Some(d) = prev.detections.get_mut(i) {
                d.track_id = Some(id);
            }
        }
        self.release(prev, out);
    }

    fn finish(&mut self, out: &mut Processed) {
        if let Some(frame) = self.held.take() {
            self.release(frame, out);
        }
    }
}

/// Per-track statistics (path, speeds, region, class vote). A track unseen
/// for `idle_frames` is finished: its summary is handed to the sink and
/// dropped from memory, so memory follows the tracks alive, not the video.
pub struct TrackStatistics {
    stats: TrackStats,
    source: SourceId,
    idle_frames: u64,
    since_drain: u32,
}

/// Frames between looks for finished tracks.
const DRAIN_EVERY: u32 = 64;

impl TrackStatistics {
    pub fn new(source: SourceId, idle_frames: u64) -> Self {
        Self {
            stats: TrackStats::new(),
            source,
            idle_frames,
            since_drain: 0,
        }
    }
}

impl FrameProcessor for TrackStatistics {
    fn name(&self) -> &'static str {
        "track-stats"
    }

    fn frame(&mut self, frame: FrameDetections, out: &mut Processed) {
        self.stats.observe(&frame.meta, &frame.detections);
        self.since_drain += 1;
        if self.since_drain >= DRAIN_EVERY {
            self.since_drain = 0;
            out.tracks.extend(self.stats.drain_idle(
                self.source,
                frame.meta.index,
                self.idle_frames,
            ));
        }
        out.frames.push(frame);
    }

    fn finish(&mut self, out: &mut Processed) {
        out.tracks.extend(std::mem::take(&mut self.stats).finish());
    }
}

/// Counting lines, zones, per-interval counts and ground motion
/// ([`SpatialCounter`]), after tracking. Frames pass through unchanged;
/// finished intervals and tracks' ground motion go to the sink. The same
/// processor serves files and live streams, and `peregrine counts`
/// replays stored frames through the same counter.
pub struct Counting {
    counter: SpatialCounter,
    source: SourceId,
}

impl Counting {
    /// `idle_frames`: as for [`TrackStatistics`] (the tracker's lost
    /// buffer, [`Tracking::idle_frames`]).
    pub fn new(spec: &SpatialSpec, source: SourceId, idle_frames: u64) -> Result<Self, String> {
        Ok(Self {
            counter: SpatialCounter::new(spec, idle_frames)?,
            source,
        })
    }
}

impl FrameProcessor for Counting {
    fn name(&self) -> &'static str {
        "count"
    }

    fn frame(&mut self, frame: FrameDetections, out: &mut Processed) {
        self.counter.observe(
            &frame.meta,
            &frame.detections,
            &mut out.counts,
            &mut out.ground,
        );
        out.frames.push(frame);
    }

    fn finish(&mut self, out: &mut Processed) {
        self.counter
            .finish(self.source, &mut out.counts, &mut out.ground);
    }
}

/// Frames after which a track unseen is gone, for a tracker with `spec` at
/// `frame_rate`: what [`Tracking::idle_frames`] says, for replays of a
/// stored run.
pub fn idle_frames(spec: &TrackSpec, frame_rate: f64) -> u64 {
    ByteTrackConfig::from_spec(spec, frame_rate).max_time_lost() + 1
}

/// Processors run in order: each one's frames feed the next; the last
/// one's frames and everyone's finished tracks go to the sink.
pub struct Chain {
    steps: Vec<Box<dyn FrameProcessor>>,
    scratch: Processed,
}

impl Chain {
    pub fn new(steps: Vec<Box<dyn FrameProcessor>>) -> Self {
        Self {
            steps,
            scratch: Processed::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs `frame` through every step, appending what comes out to `out`.
    pub fn frame(&mut self, frame: FrameDetections, out: &mut Processed) {
        self.run(Some(frame), out);
    }

    /// End of input: every step, in order, hands on what it holds.
    pub fn finish(&mut self, out: &mut Processed) {
        self.run(None, out);
    }

    fn run(&mut self, frame: Option<FrameDetections>, out: &mut Processed) {
        let mut frames: Vec<FrameDetections> = frame.into_iter().collect();
        let finishing = frames.is_empty();
        for step in &mut self.steps {
            let stage = &mut self.scratch;
            for f in frames.drain(..) {
                step.frame(f, stage);
            }
            if finishing {
                step.finish(stage);
            }
            frames.append(&mut stage.frames);
            out.tracks.append(&mut stage.tracks);
            out.counts.append(&mut stage.counts);
            out.ground.append(&mut stage.ground);
        }
        out.frames.append(&mut frames);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_core::{BBox, Detection, FrameMeta};

    fn frame(index: u64, boxes: &[(f32, f32)]) -> FrameDetections {
        FrameDetections {
            meta: FrameMeta {
                source: 0,
                index,
                pts: index as f64 / 30.0,
                width: 640,
                height: 480,
            },
            detections: boxes
                .iter()
                .map(|&(x, s)| Detection::new(0, s, BBox::new(x, 10.0, x + 40.0, 90.0)))
                .collect(),
        }
    }

    /// Holds every frame until `finish`.
    struct HoldAll(Vec<FrameDetections>);
    impl FrameProcessor for HoldAll {
        fn name(&self) -> &'static str {
            "hold"
        }
        fn frame(&mut self, f: FrameDetections, _: &mut Processed) {
            self.0.push(f);
        }
        fn finish(&mut self, out: &mut Processed) {
            out.frames.append(&mut self.0);
        }
    }

    #[test]
    fn a_chain_hands_every_frame_on_in_order_through_holding_steps() {
        let tracking = Tracking::new(&TrackSpec::default(), 30.0, 0.6).unwrap();
        let idle = tracking.idle_frames();
        let mut chain = Chain::new(vec![
            Box::new(tracking),
            Box::new(HoldAll(Vec::new())),
            Box::new(TrackStatistics::new(0, idle)),
        ]);
        let mut out = Processed::default();
        for i in 0..10 {
            chain.frame(frame(i, &[(100.0 + 5.0 * i as f32, 0.9)]), &mut out);
        }
        assert!(out.frames.is_empty(), "HoldAll keeps frames until finish");
        chain.finish(&mut out);
        let indices: Vec<u64> = out.frames.iter().map(|f| f.meta.index).collect();
        assert_eq!(indices, (0..10).collect::<Vec<_>>());
        // Tracking gave the first box its id too (held one frame).
        assert!(out
            .frames
            .iter()
            .all(|f| f.detections[0].track_id == Some(1)));
        assert_eq!(out.tracks.len(), 1);
        assert_eq!(out.tracks[0].frames_seen, 10);
    }

    #[test]
    fn untracked_boxes_below_the_birth_threshold_are_dropped() {
        let mut t = Tracking::new(&TrackSpec::default(), 30.0, 0.6).unwrap();
        let mut out = Processed::default();
        // A lone 0.3 box never starts a track and is below 0.6.
        t.frame(frame(0, &[(100.0, 0.3), (300.0, 0.95)]), &mut out);
        t.finish(&mut out);
        assert_eq!(out.frames.len(), 1);
        let scores: Vec<f32> = out.frames[0].detections.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.95]);
    }
}
