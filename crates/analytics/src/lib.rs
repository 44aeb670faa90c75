//! Per-track statistics for Peregrine, accumulated frame by frame.
//!
//! A key design decision in this crate is that nothing per frame is kept:
//! each track holds a fixed-size running state (sums, extrema, last centre),
//! so memory grows with the number of tracks, never with the video length,
//! and long streams can hand finished tracks out with
//! [`TrackStats::drain_idle`].

pub mod heatmap;
pub mod homography;
mod report;
pub mod spatial;

use std::collections::BTreeMap;

pub use homography::{Homography, HomographyError};
pub use peregrine_core::TrackSummary;
use peregrine_core::{BBox, ClassId, Detection, FrameMeta, SourceId, TrackId};
pub use report::counts_json;
pub use spatial::{Crossing, LineCounter, Polygon, SpatialCounter};

#[derive(Clone, Debug)]
struct Running {
    /// Summed score per class, in order of first appearance.
    votes: Vec<(ClassId, f64)>,
    first_frame: u64,
    last_frame: u64,
    first_time: f64,
    last_time: f64,
    frames_seen: u64,
    score_sum: f64,
    path_length: f64,
    speed_sum: f64,
    speed_count: u64,
    max_speed: f64,
    last_center: (f64, f64),
    region: BBox,
}

fn center(b: &BBox) -> (f64, f64) {
    let (x, y) = b.center();
    (f64::from(x), f64::from(y))
}

fn union(a: &BBox, b: &BBox) -> BBox {
    BBox::new(
        a.x1.min(b.x1),
        a.y1.min(b.y1),
        a.x2.max(b.x2),
        a.y2.max(b.y2),
    )
}

impl Running {
    fn start(meta: &FrameMeta, d: &Detection) -> Self {
        Self {
            votes: vec![(d.class_id, f64::from(d.score))],
            first_frame: meta.index,
            last_frame: meta.index,
            first_time: meta.pts,
            last_time: meta.pts,
            frames_seen: 1,
            score_sum: f64::from(d.score),
            path_length: 0.0,
            speed_sum: 0.0,
            speed_count: 0,
            max_speed: 0.0,
            last_center: center(&d.bbox),
            region: d.bbox,
        }
    }

    fn observe(&mut self, meta: &FrameMeta, d: &Detection) {
        let c = center(&d.bbox);
        let step = (c.0 - self.last_center.0).hypot(c.1 - self.last_center.1);
        self.path_length += step;
        let dt = meta.pts - self.last_time;
        if dt > 0.0 {
            let speed = step / dt;
            self.speed_sum += speed;
            self.speed_count += 1;
            self.max_speed = self.max_speed.max(speed);
        }
        self.last_center = c;
        self.last_frame = meta.index;
        self.last_time = meta.pts;
        self.frames_seen += 1;
        self.score_sum += f64::from(d.score);
        match self.votes.iter_mut().find(|(c, _)| *c == d.class_id) {
            Some((_, sum)) => *sum += f64::from(d.score),
            None => self.votes.push((d.class_id, f64::from(d.score))),
        }
        self.region = union(&self.region, &d.bbox);
    }

    fn class_id(&self) -> ClassId {
        let mut best = self.votes[0];
        for &v in &self.votes[1..] {
            if v.1 > best.1 {
                best = v;
            }
        }
        best.0
    }

    fn summary(&self, source: SourceId, track_id: TrackId) -> TrackSummary {
        let speeds = self.speed_count > 0;
        TrackSummary {
            source,
            track_id,
            class_id: self.class_id(),
            first_frame: self.first_frame,
            last_frame: self.last_frame,
            first_time_s: self.first_time,
            last_time_s: self.last_time,
            frames_seen: self.frames_seen,
            mean_score: self.score_sum / self.frames_seen as f64,
            path_length_px: self.path_length,
            mean_speed_px_s: speeds.then(|| self.speed_sum / self.speed_count as f64),
            max_speed_px_s: speeds.then_some(self.max_speed),
            region: self.region,
        }
    }
}

/// Accumulates [`TrackSummary`]s from tracked detections, keyed by source
/// and track id (ids are unique per source).
#[derive(Clone, Debug, Default)]
pub struct TrackStats {
    tracks: BTreeMap<(SourceId, TrackId), Running>,
}

impl TrackStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one frame; detections without a `track_id` are ignored. Frames
    /// of one source must come in presentation order.
    pub fn observe(&mut self, meta: &FrameMeta, detections: &[Detection]) {
        for d in detections {
            let Some(id) = d.track_id else { continue };
            self.tracks
                .entry((meta.source, id))
                .and_modify(|r| r.observe(meta, d))
                .or_insert_with(|| Running::start(meta, d));
        }
    }

    /// Number of tracks held.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Current summaries, ordered by source then track id.
    pub fn summaries(&self) -> Vec<TrackSummary> {
        self.tracks
            .iter()
            .map(|(&(s, id), r)| r.summary(s, id))
            .collect()
    }

    /// Removes and returns the tracks of `source` last seen more than
    /// `idle_frames` frames before `frame_index`: they are finished once the
    /// tracker's lost buffer is past.
    pub fn drain_idle(
        &mut self,
        source: SourceId,
        frame_index: u64,
        idle_frames: u64,
    ) -> Vec<TrackSummary> {
        let mut out = Vec::new();
        self.tracks.retain(|&(s, id), r| {
            let idle = s == source && frame_index.saturating_sub(r.last_frame) > idle_frames;
            if idle {
                out.push(r.summary(s, id));
            }
            !idle
        });
        out
    }

    /// All summaries, consuming the accumulator.
    pub fn finish(self) -> Vec<TrackSummary> {
        self.summaries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(index: u64, pts: f64) -> FrameMeta {
        FrameMeta {
            source: 0,
            index,
            pts,
            width: 640,
            height: 480,
        }
    }

    fn tracked(id: TrackId, score: f32, bbox: BBox) -> Detection {
        let mut d = Detection::new(0, score, bbox);
        d.track_id = Some(id);
        d
    }

    #[test]
    fn hand_computed_track() {
        // Track 7, 10×20 boxes, at 10 fps with frame 2 skipped:
        //   frame 0, t 0.0: centre (5, 10), score 0.9
        //   frame 1, t 0.1: centre (8, 14), score 0.7  → step 5 (3-4-5), 50 px/s
        //   frame 3, t 0.3: centre (8, 20), score 0.8  → step 6, 6/0.2 = 30 px/s
        // path 11, mean speed (50+30)/2 = 40, max 50, mean score 2.4/3 = 0.8
        // region (0,0)-(13,30)
        let mut s = TrackStats::new();
        s.observe(
            &meta(0, 0.0),
            &[tracked(7, 0.9, BBox::new(0.0, 0.0, 10.0, 20.0))],
        );
        s.observe(
            &meta(1, 0.1),
            &[
                tracked(7, 0.7, BBox::new(3.0, 4.0, 13.0, 24.0)),
                Detection::new(0, 0.99, BBox::new(0.0, 0.0, 500.0, 500.0)),
            ],
        );
        s.observe(
            &meta(3, 0.3),
            &[tracked(7, 0.8, BBox::new(3.0, 10.0, 13.0, 30.0))],
        );
        let got = s.finish();
        assert_eq!(got.len(), 1);
        let t = &got[0];
        assert_eq!(
            (t.track_id, t.class_id, t.first_frame, t.last_frame),
            (7, 0, 0, 3)
        );
        assert_eq!(
            (t.first_time_s, t.last_time_s, t.frames_seen),
            (0.0, 0.3, 3)
        );
        assert!((t.mean_score - 0.8).abs() < 1e-6);
        assert!((t.path_length_px - 11.0).abs() < 1e-9);
        assert!((t.mean_speed_px_s.unwrap() - 40.0).abs() < 1e-6);
        assert!((t.max_speed_px_s.unwrap() - 50.0).abs() < 1e-6);
        assert_eq!(t.region, BBox::new(0.0, 0.0, 13.0, 30.0));
    }

    #[test]
    fn single_observation_has_no_speed_and_sources_are_separate() {
        let mut s = TrackStats::new();
        let b = BBox::new(0.0, 0.0, 4.0, 4.0);
        s.observe(&meta(5, 0.5), &[tracked(1, 0.5, b)]);
        let mut m = meta(5, 0.5);
        m.source = 1;
        s.observe(&m, &[tracked(1, 0.6, b)]);
        let got = s.summaries();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].source, got[1].source), (0, 1));
        assert_eq!(got[0].mean_speed_px_s, None);
        assert_eq!(got[0].max_speed_px_s, None);
        assert_eq!(got[0].path_length_px, 0.0);
        let json = serde_json::to_value(&got[1]).unwrap();
        assert_eq!(json["track_id"], 1);
        assert_eq!(json["mean_speed_px_s"], serde_json::Value::Null);
        assert_eq!(json["region"]["x2"], 4.0);
    }

    #[test]
    fn track_class_is_the_score_weighted_vote() {
        // Class 2 at 0.9 twice (1.8), then class 7 at 0.5 four times: 7
        // leads from its fourth box on (2.0 > 1.8). A tie goes to the class
        // seen first.
        let b = BBox::new(0.0, 0.0, 4.0, 4.0);
        let obs = |class, score| {
            let mut d = tracked(1, score, b);
            d.class_id = class;
            d
        };
        let mut s = TrackStats::new();
        let mut classes = Vec::new();
        for (f, (c, score)) in [(2, 0.9), (2, 0.9), (7, 0.5), (7, 0.5), (7, 0.5), (7, 0.5)]
            .into_iter()
            .enumerate()
        {
            s.observe(&meta(f as u64, f as f64), &[obs(c, score)]);
            classes.push(s.summaries()[0].class_id);
        }
        assert_eq!(classes, [2, 2, 2, 2, 2, 7]);
        let mut tie = TrackStats::new();
        tie.observe(&meta(0, 0.0), &[obs(3, 0.5)]);
        tie.observe(&meta(1, 1.0), &[obs(1, 0.5)]);
        assert_eq!(tie.finish()[0].class_id, 3);
    }

    #[test]
    fn memory_is_bounded_by_tracks_and_idle_tracks_drain() {
        let mut s = TrackStats::new();
        for f in 0..1000u64 {
            let x = f as f32;
            let mut dets = vec![tracked(1, 0.9, BBox::new(x, 0.0, x + 10.0, 10.0))];
            if f < 100 {
                dets.push(tracked(2, 0.9, BBox::new(0.0, 50.0, 10.0, 60.0)));
            }
            s.observe(&meta(f, f as f64 / 25.0), &dets);
        }
        assert_eq!(s.len(), 2);
        let done = s.drain_idle(0, 1000, 30);
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].track_id, done[0].frames_seen), (2, 100));
        assert_eq!(done[0].path_length_px, 0.0);
        assert_eq!(s.len(), 1);
        // Track 1: 1 px per frame at 25 fps → 25 px/s, path 999 px.
        let t = &s.summaries()[0];
        assert!((t.path_length_px - 999.0).abs() < 1e-9);
        assert!((t.mean_speed_px_s.unwrap() - 25.0).abs() < 1e-6);
    }

    #[test]
    fn repeated_timestamp_counts_path_but_not_speed() {
        let mut s = TrackStats::new();
        s.observe(
            &meta(0, 1.0),
            &[tracked(3, 1.0, BBox::new(0.0, 0.0, 2.0, 2.0))],
        );
        s.observe(
            &meta(1, 1.0),
            &[tracked(3, 1.0, BBox::new(3.0, 4.0, 5.0, 6.0))],
        );
        let t = &s.summaries()[0];
        assert_eq!(t.path_length_px, 5.0);
        assert_eq!(t.mean_speed_px_s, None);
    }
}
