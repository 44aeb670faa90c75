//! ByteTrack (Zhang et al., ECCV 2022), following the reference
//! `byte_tracker.py` step by step.
//!
//! A key design decision in this module is that time is the caller's frame
//! index, not the number of `update` calls: with frame sampling the Kalman
//! filter predicts one step per real frame and the lost-track buffer counts
//! real frames, so results do not depend on the sampling stride. All per-frame
//! buffers live in the tracker and are reused.
//!
//! Classes: by default every detection may continue any track, as in the
//! reference (which is class-agnostic), and a track's class is a vote: the
//! class with the highest summed detection score over the track's history
//! (ties: the class seen first). A detector that calls one van "car" in one
//! frame and "truck" in the next then yields one track, reported as the
//! class it was called with more confidence. With
//! [`ByteTrackConfig::per_class`] each class runs in its own lane (a
//! `BTreeMap`, so iteration order is fixed) and a class change starts a new
//! track.

use std::collections::BTreeMap;

use peregrine_core::{BBox, ClassId, Detection, TrackId, TrackSpec};

use crate::assignment::Assigner;
use crate::kalman::{KalmanFilter, KalmanState, Xyah};

/// IoU above which a tracked and a lost track are duplicates (reference:
/// IoU distance < 0.15).
const DUPLICATE_IOU: f32 = 0.85;

/// ByteTrack parameters. Defaults are those of the reference
/// (`track_thresh 0.5, track_buffer 30, match_thresh 0.8`, 30 fps).
#[derive(Clone, Debug, PartialEq)]
pub struct ByteTrackConfig {
    /// Detections scoring above this are "high" (first association, births).
    /// Default 0.5.
    pub track_thresh: f32,
    /// Detections scoring above this and at most `track_thresh` are "low"
    /// (second association only); lower ones are ignored. Default 0.1.
    pub low_thresh: f32,
    /// Minimum score to start a new track. Default 0.6 (reference:
    /// `track_thresh + 0.1`).
    pub new_track_thresh: f32,
    /// Maximum (fused) IoU cost accepted in the first association. Default 0.8.
    pub match_thresh: f32,
    /// Maximum IoU cost in the second (low-score) association. Default 0.5.
    pub low_match_thresh: f32,
    /// Maximum fused cost between unconfirmed tracks and remaining high
    /// detections. Default 0.7.
    pub unconfirmed_match_thresh: f32,
    /// Multiply IoU by the detection score in the first and unconfirmed
    /// associations (reference: on, except for MOT20). Default true.
    pub fuse_score: bool,
    /// Frames a lost track is kept at 30 fps; scaled by `frame_rate / 30`.
    /// Default 30.
    pub track_buffer: u32,
    /// Frame rate of the input, frames per second. Default 30.
    pub frame_rate: f32,
    /// Track each class separately (a car never continues a person's track).
    /// Default false: all classes are associated jointly, as in the
    /// reference, and a track's class is decided by a score-weighted vote.
    pub per_class: bool,
}

impl Default for ByteTrackConfig {
    /// The reference's settings ([`TrackSpec::default`]) at 30 fps.
    fn default() -> Self {
        Self::from_spec(&TrackSpec::default(), 30.0)
    }
}

/// An invalid [`ByteTrackConfig`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("bytetrack: {name} = {value} is outside [0, 1]")]
    Threshold { name: &'static str, value: f32 },
    #[error("bytetrack: low_thresh {low} is above track_thresh {high}")]
    ThresholdOrder { low: f32, high: f32 },
    #[error("bytetrack: frame_rate {0} is not a positive number")]
    FrameRate(f32),
}

impl ByteTrackConfig {
    /// The tracker configuration for a run's tracking settings on an input
    /// at `frame_rate` (ignored unless a positive number); the settings a
    /// run cannot choose keep the reference's defaults.
    pub fn from_spec(spec: &TrackSpec, frame_rate: f64) -> Self {
        Self {
            track_thresh: spec.track_thresh,
            low_thresh: spec.low_thresh,
            new_track_thresh: spec.new_track_thresh,
            match_thresh: spec.match_thresh,
            low_match_thresh: 0.5,
            unconfirmed_match_thresh: 0.7,
            fuse_score: true,
            track_buffer: spec.track_buffer,
            frame_rate: if frame_rate.is_finite() && frame_rate > 0.0 {
                frame_rate as f32
            } else {
                30.0
            },
            per_class: spec.per_class,
        }
    }

    /// Checks ranges; [`ByteTracker::new`] calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("track_thresh", self.track_thresh),
            ("low_thresh", self.low_thresh),
            ("new_track_thresh", self.new_track_thresh),
            ("match_thresh", self.match_thresh),
            ("low_match_thresh", self.low_match_thresh),
            ("unconfirmed_match_thresh", self.unconfirmed_match_thresh),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::Threshold { name, value });
            }
        }
        if self.low_thresh > self.track_thresh {
            return Err(ConfigError::ThresholdOrder {
                low: self.low_thresh,
                high: self.track_thresh,
            });
        }
        if !(self.frame_rate.is_finite() && self.frame_rate > 0.0) {
            return Err(ConfigError::FrameRate(self.frame_rate));
        }
        Ok(())
    }

    /// Frames a lost track survives: `int(frame_rate / 30 * track_buffer)`.
    pub fn max_time_lost(&self) -> u64 {
        (self.frame_rate / 30.0 * self.track_buffer as f32) as u64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Tracked,
    Lost,
}

#[derive(Clone, Debug)]
struct Track {
    kf: KalmanState,
    state: State,
    /// Confirmed: matched on a second frame, or born on the first frame.
    activated: bool,
    /// Public id, given when the track is first reported.
    id: Option<TrackId>,
    /// Class with the highest summed score in `votes`.
    class_id: ClassId,
    /// Summed detection score per class, in order of first appearance.
    votes: Vec<(ClassId, f64)>,
    /// Born after the first frame: index of the detection it was born from
    /// in that frame, until the track is confirmed (or dropped).
    birth_det: Option<usize>,
    score: f32,
    start_frame: u64,
    /// Last frame with a matched detection.
    end_frame: u64,
    /// Detection matched in the current frame.
    det: Option<usize>,
    /// Box of the Kalman mean.
    bbox: BBox,
    drop: bool,
}

impl Track {
    fn refresh_bbox(&mut self) {
        let [cx, cy, a, h] = self.kf.xyah();
        let w = a * h;
        self.bbox = BBox::new(
            (cx - w / 2.0) as f32,
            (cy - h / 2.0) as f32,
            (cx + w / 2.0) as f32,
            (cy + h / 2.0) as f32,
        );
    }

    /// Reference `update` / `re_activate` (same effect without ids).
    fn absorb(&mut self, kf: &KalmanFilter, det: &Detection, index: usize, frame: u64) {
        kf.update(&mut self.kf, xyah(&det.bbox));
        self.state = State::Tracked;
        self.activated = true;
        self.end_frame = frame;
        self.score = det.score;
        self.vote(det);
        self.det = Some(index);
    }

    /// Adds `det`'s score to its class and re-elects the track's class.
    fn vote(&mut self, det: &Detection) {
        match self.votes.iter_mut().find(|(c, _)| *c == det.class_id) {
            Some((_, sum)) => *sum += f64::from(det.score),
            None => self.votes.push((det.class_id, f64::from(det.score))),
        }
        self.class_id = elect(&self.votes);
    }
}

/// The class with the highest summed score; on a tie, the one listed
/// first (seen first). `votes` is never empty.
fn elect(votes: &[(ClassId, f64)]) -> ClassId {
    let mut best = votes[0];
    for &v in &votes[1..] {
        if v.1 > best.1 {
            best = v;
        }
    }
    best.0
}

/// A confirmed track as seen after the last `update`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackView {
    pub id: TrackId,
    /// Class with the highest summed detection score so far.
    pub class_id: ClassId,
    /// Kalman-filtered box (predicted, for a lost track).
    pub bbox: BBox,
    /// Score of the last matched detection.
    pub score: f32,
    pub start_frame: u64,
    pub last_frame: u64,
    /// Not matched in the last frame, kept for re-identification.
    pub lost: bool,
}

fn xyah(b: &BBox) -> Xyah {
    let (cx, cy) = b.center();
    let h = f64::from(b.height());
    [f64::from(cx), f64::from(cy), f64::from(b.width()) / h, h]
}

#[derive(Debug, Default)]
struct Lane {
    tracks: Vec<Track>,
}

#[derive(Debug, Default)]
struct Scratch {
    keyed: Vec<(u32, usize)>,
    high: Vec<usize>,
    low: Vec<usize>,
    taken: Vec<bool>,
    rows: Vec<usize>,
    cols: Vec<usize>,
    cost: Vec<f32>,
    matches: Vec<(usize, usize)>,
    dups: Vec<usize>,
    assigner: Assigner,
}

/// Multi-object tracker; one per video stream.
#[derive(Debug)]
pub struct ByteTracker {
    cfg: ByteTrackConfig,
    kf: KalmanFilter,
    max_time_lost: u64,
    lanes: BTreeMap<u32, Lane>,
    last_frame: Option<u64>,
    next_id: TrackId,
    /// Tracks confirmed by the last update: (index of the detection each was
    /// born from in the previous update, id).
    births: Vec<(usize, TrackId)>,
    scratch: Scratch,
}

/// What one lane step needs besides its tracks.
struct Step<'a> {
    cfg: &'a ByteTrackConfig,
    kf: &'a KalmanFilter,
    max_time_lost: u64,
    frame: u64,
    steps: u64,
    first: bool,
}

impl ByteTracker {
    pub fn new(cfg: ByteTrackConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(Self {
            max_time_lost: cfg.max_time_lost(),
            cfg,
            kf: KalmanFilter::default(),
            lanes: BTreeMap::new(),
            last_frame: None,
            next_id: 1,
            births: Vec::new(),
            scratch: Scratch::default(),
        })
    }

    pub fn config(&self) -> &ByteTrackConfig {
        &self.cfg
    }

    /// Associates the detections of frame `frame_index` (the true index in
    /// the input, counting skipped frames) with the tracks, and sets
    /// `track_id` on each detection that belongs to a confirmed track (`None`
    /// otherwise). Indices must increase; a repeated or smaller one is taken
    /// as the frame after the previous one. Detections with an invalid box or
    /// a non-finite score are ignored. Each detection keeps the class it
    /// came with; the track's class is in [`ByteTracker::tracks`].
    pub fn update(&mut self, frame_index: u64, detections: &mut [Detection]) {
        for d in detections.iter_mut() {
            d.track_id = None;
        }
        self.births.clear();
        let (frame, steps, first) = match self.last_frame {
            None => (frame_index, 1, true),
            Some(last) if frame_index > last => (frame_index, frame_index - last, false),
            Some(last) => (last + 1, 1, false),
        };
        self.last_frame = Some(frame);

        let Self {
            cfg,
            kf,
            max_time_lost,
            lanes,
            next_id,
            births,
            scratch,
            ..
        } = self;
        let mut keyed = std::mem::take(&mut scratch.keyed);
        keyed.clear();
        for (i, d) in detections.iter().enumerate() {
            if d.bbox.is_valid() && d.score.is_finite() {
                keyed.push((lane_key(cfg, d.class_id), i));
            }
        }
        if cfg.per_class {
            keyed.sort_unstable();
        }
        for w in keyed.chunk_by(|a, b| a.0 == b.0) {
            lanes.entry(w[0].0).or_default();
        }
        let step = Step {
            cfg,
            kf,
            max_time_lost: *max_time_lost,
            frame,
            steps,
            first,
        };
        let mut at = 0;
        for (&key, lane) in lanes.iter_mut() {
            while at < keyed.len() && keyed[at].0 < key {
                at += 1;
            }
            let start = at;
            while at < keyed.len() && keyed[at].0 == key {
                at += 1;
            }
            step_lane(&step, lane, &keyed[start..at], detections, scratch);
            for t in &mut lane.tracks {
                if let (State::Tracked, true, Some(i)) = (t.state, t.activated, t.det) {
                    let id = *t.id.get_or_insert_with(|| {
                        let id = *next_id;
                        *next_id += 1;
                        id
                    });
                    detections[i].track_id = Some(id);
                    if let Some(b) = t.birth_det.take() {
                        births.push((b, id));
                    }
                }
            }
        }
        lanes.retain(|_, l| !l.tracks.is_empty());
        scratch.keyed = keyed;
    }

    /// The tracks the last [`update`](Self::update) confirmed that were born
    /// in the update before it, as (index of the birth detection in that
    /// update's slice, id). ByteTrack reports a track born after the first
    /// frame only from its second frame on; a caller that still holds the
    /// previous frame's detections can give the first box its id with this.
    /// The track's class vote already counts that box.
    pub fn confirmed_births(&self) -> &[(usize, TrackId)] {
        &self.births
    }

    /// Confirmed tracks, tracked and lost, in a fixed order.
    pub fn tracks(&self) -> impl Iterator<Item = TrackView> + '_ {
        self.lanes.values().flat_map(|l| {
            l.tracks.iter().filter_map(|t| {
                Some(TrackView {
                    id: t.id?,
                    class_id: t.class_id,
                    bbox: t.bbox,
                    score: t.score,
                    start_frame: t.start_frame,
                    last_frame: t.end_frame,
                    lost: t.state == State::Lost,
                })
            })
        })
    }
}

fn lane_key(cfg: &ByteTrackConfig, class_id: ClassId) -> u32 {
    if cfg.per_class {
        u32::from(class_id)
    } else {
        0
    }
}

/// Fills `cost` with `1 − IoU` (times the score when fusing) for
/// `rows × cols` of tracks × detections.
fn fill_cost(
    cost: &mut Vec<f32>,
    tracks: &[Track],
    rows: &[usize],
    dets: &[Detection],
    cols: &[usize],
    fuse: bool,
) {
    cost.clear();
    for &r in rows {
        let tb = tracks[r].bbox;
        cost.extend(cols.iter().map(|&c| {
            let d = &dets[c];
            let iou = tb.iou(&d.bbox);
            1.0 - if fuse { iou * d.score } else { iou }
        }));
    }
}

fn step_lane(
    s: &Step<'_>,
    lane: &mut Lane,
    group: &[(u32, usize)],
    dets: &[Detection],
    scratch: &mut Scratch,
) {
    let cfg = s.cfg;
    let frame = s.frame;
    let Scratch {
        high,
        low,
        taken,
        rows,
        cols,
        cost,
        matches,
        dups,
        assigner,
        ..
    } = scratch;
    let tracks = &mut lane.tracks;

    // Confirmed tracks whose buffer ran out during skipped frames: the
    // reference would have dropped them at the end of frame `frame - 1`.
    let purge_after = s.max_time_lost + 1;
    tracks.retain(|t| {
        !t.activated || frame.saturating_sub(1).saturating_sub(t.end_frame) <= purge_after
    });
    for t in tracks.iter_mut() {
        t.det = None;
        t.drop = false;
        // Reference `multi_predict` on tracked + lost; lost tracks do not
        // grow or shrink (vh = 0).
        if t.activated || t.state == State::Lost {
            for _ in 0..s.steps {
                if t.state == State::Lost {
                    t.kf.mean[7] = 0.0;
                }
                s.kf.predict(&mut t.kf);
            }
            t.refresh_bbox();
        }
    }

    high.clear();
    low.clear();
    for &(_, i) in group {
        let score = dets[i].score;
        if score > cfg.track_thresh {
            high.push(i);
        } else if score > cfg.low_thresh {
            low.push(i);
        }
    }
    // Indexed by detection.
    taken.clear();
    taken.resize(dets.len(), false);

    // Stage 1: high detections against confirmed tracked + lost tracks.
    rows.clear();
    rows.extend((0..tracks.len()).filter(|&t| tracks[t].activated));
    fill_cost(cost, tracks, rows, dets, high, cfg.fuse_score);
    matches.clear();
    assigner.solve(cost, rows.len(), high.len(), cfg.match_thresh, matches);
    for &(r, c) in matches.iter() {
        tracks[rows[r]].absorb(s.kf, &dets[high[c]], high[c], frame);
        taken[high[c]] = true;
    }

    // Stage 2: low detections against still-unmatched tracked tracks.
    rows.retain(|&t| tracks[t].det.is_none() && tracks[t].state == State::Tracked);
    fill_cost(cost, tracks, rows, dets, low, false);
    matches.clear();
    assigner.solve(cost, rows.len(), low.len(), cfg.low_match_thresh, matches);
    for &(r, c) in matches.iter() {
        tracks[rows[r]].absorb(s.kf, &dets[low[c]], low[c], frame);
    }
    for &t in rows.iter() {
        if tracks[t].det.is_none() {
            tracks[t].state = State::Lost;
        }
    }

    // Stage 3: unconfirmed tracks against the remaining high detections.
    rows.clear();
    rows.extend((0..tracks.len()).filter(|&t| !tracks[t].activated));
    cols.clear();
    cols.extend(high.iter().copied().filter(|&i| !taken[i]));
    fill_cost(cost, tracks, rows, dets, cols, cfg.fuse_score);
    matches.clear();
    assigner.solve(
        cost,
        rows.len(),
        cols.len(),
        cfg.unconfirmed_match_thresh,
        matches,
    );
    for &(r, c) in matches.iter() {
        tracks[rows[r]].absorb(s.kf, &dets[cols[c]], cols[c], frame);
        taken[cols[c]] = true;
    }
    for &t in rows.iter() {
        if tracks[t].det.is_none() {
            tracks[t].drop = true;
        }
    }

    // Stage 4: births from unmatched confident detections.
    for &i in high.iter() {
        let d = &dets[i];
        if taken[i] || d.score < cfg.new_track_thresh {
            continue;
        }
        let mut t = Track {
            kf: s.kf.initiate(xyah(&d.bbox)),
            state: State::Tracked,
            activated: s.first,
            id: None,
            class_id: d.class_id,
            votes: vec![(d.class_id, f64::from(d.score))],
            birth_det: (!s.first).then_some(i),
            score: d.score,
            start_frame: frame,
            end_frame: frame,
            det: Some(i),
            bbox: d.bbox,
            drop: false,
        };
        t.refresh_bbox();
        tracks.push(t);
    }

    // Stage 5: expire lost tracks, then drop duplicates of tracked/lost pairs.
    for t in tracks.iter_mut() {
        if t.state == State::Tracked && t.det.is_some() {
            t.refresh_bbox();
        }
        // The reference marks a lost track removed once `frame - end >
        // max_time_lost` but only drops it from the lost list at the end of
        // the next frame, so it can still be re-found then.
        if t.state == State::Lost && frame - t.end_frame > purge_after {
            t.drop = true;
        }
    }
    // Every pair is judged on its own, as in `remove_duplicate_stracks`.
    dups.clear();
    for p in 0..tracks.len() {
        if tracks[p].state != State::Tracked || tracks[p].drop {
            continue;
        }
        for q in 0..tracks.len() {
            if tracks[q].state != State::Lost || tracks[q].drop {
                continue;
            }
            if tracks[p].bbox.iou(&tracks[q].bbox) > DUPLICATE_IOU {
                let age_p = frame - tracks[p].start_frame;
                let age_q = tracks[q].end_frame - tracks[q].start_frame;
                dups.push(if age_p > age_q { q } else { p });
            }
        }
    }
    for &t in dups.iter() {
        tracks[t].drop = true;
    }
    tracks.retain(|t| !t.drop);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, y: f32, score: f32) -> Detection {
        Detection::new(0, score, BBox::from_xywh(x, y, 40.0, 80.0))
    }

    fn ids(t: &mut ByteTracker, frame: u64, dets: &mut [Detection]) -> Vec<Option<TrackId>> {
        t.update(frame, dets);
        dets.iter().map(|d| d.track_id).collect()
    }

    fn tracker() -> ByteTracker {
        ByteTracker::new(ByteTrackConfig::default()).unwrap()
    }

    #[test]
    fn config_defaults_and_validation() {
        let c = ByteTrackConfig::default();
        assert_eq!(c.max_time_lost(), 30);
        let c7 = ByteTrackConfig {
            frame_rate: 7.0,
            ..c.clone()
        };
        assert_eq!(c7.max_time_lost(), 7); // int(7/30·30)
        let c15 = ByteTrackConfig {
            frame_rate: 15.0,
            track_buffer: 50,
            ..c.clone()
        };
        assert_eq!(c15.max_time_lost(), 25);
        let bad = ByteTrackConfig {
            match_thresh: 1.5,
            ..c.clone()
        };
        assert!(matches!(
            ByteTracker::new(bad),
            Err(ConfigError::Threshold {
                name: "match_thresh",
                ..
            })
        ));
        let bad = ByteTrackConfig {
            frame_rate: 0.0,
            ..c.clone()
        };
        assert_eq!(bad.validate(), Err(ConfigError::FrameRate(0.0)));
        let bad = ByteTrackConfig {
            low_thresh: 0.6,
            ..c
        };
        assert!(matches!(
            bad.validate(),
            Err(ConfigError::ThresholdOrder { .. })
        ));
    }

    #[test]
    fn two_tracks_crossing_keep_their_ids() {
        // A moves right, B moves left, 15 px/frame; boxes overlap vertically
        // by 50 of 80 px and cross at frame 10.
        let mut t = tracker();
        let mut seen = Vec::new();
        for f in 0..21u64 {
            let x = 15.0 * f as f32;
            let mut d = [det(x, 100.0, 0.9), det(300.0 - x, 130.0, 0.9)];
            seen.push(ids(&mut t, f, &mut d));
        }
        assert_eq!(seen[0], vec![Some(1), Some(2)]);
        assert!(seen.iter().all(|s| *s == seen[0]), "{seen:?}");
    }

    #[test]
    fn low_score_detection_rescues_track() {
        for (low_thresh, rescued) in [(0.1, true), (0.35, false)] {
            let cfg = ByteTrackConfig {
                low_thresh,
                ..Default::default()
            };
            let mut t = ByteTracker::new(cfg).unwrap();
            for f in 0..5 {
                assert_eq!(ids(&mut t, f, &mut [det(100.0, 100.0, 0.9)]), [Some(1)]);
            }
            // Occluded: score drops to 0.3, below track_thresh 0.5.
            let got = ids(&mut t, 5, &mut [det(101.0, 100.0, 0.3)]);
            assert_eq!(got, [if rescued { Some(1) } else { None }]);
            let lost = t.tracks().filter(|v| v.lost).count();
            assert_eq!(lost, usize::from(!rescued));
        }
    }

    #[test]
    fn low_score_detection_never_starts_a_track() {
        let mut t = tracker();
        for f in 0..5 {
            // 0.55 is "high" (> 0.5) but below new_track_thresh 0.6.
            assert_eq!(ids(&mut t, f, &mut [det(100.0, 100.0, 0.55)]), [None]);
        }
        assert_eq!(t.tracks().count(), 0);
    }

    #[test]
    fn new_track_confirmed_on_second_frame_and_ids_stay_dense() {
        let mut t = tracker();
        assert_eq!(ids(&mut t, 0, &mut [det(0.0, 0.0, 0.9)]), [Some(1)]);
        // Births after the first frame are unconfirmed for one frame.
        let got = ids(&mut t, 1, &mut [det(0.0, 0.0, 0.9), det(300.0, 0.0, 0.9)]);
        assert_eq!(got, [Some(1), None]);
        // A one-frame flicker never gets an id, nor consumes one.
        let got = ids(
            &mut t,
            2,
            &mut [
                det(0.0, 0.0, 0.9),
                det(300.0, 0.0, 0.9),
                det(600.0, 0.0, 0.9),
            ],
        );
        assert_eq!(got, [Some(1), Some(2), None]);
        let got = ids(&mut t, 3, &mut [det(0.0, 0.0, 0.9), det(300.0, 0.0, 0.9)]);
        assert_eq!(got, [Some(1), Some(2)]);
        let got = ids(&mut t, 4, &mut [det(900.0, 0.0, 0.9)]);
        assert_eq!(got, [None]);
        let got = ids(&mut t, 5, &mut [det(900.0, 0.0, 0.9)]);
        assert_eq!(got, [Some(3)]);
    }

    /// Static object seen on frames 0..=9, then back at `back`; `every_frame`
    /// feeds the empty frames in between, otherwise they are skipped.
    fn reappear(back: u64, every_frame: bool) -> Option<TrackId> {
        let mut t = tracker();
        for f in 0..10 {
            assert_eq!(ids(&mut t, f, &mut [det(100.0, 100.0, 0.9)]), [Some(1)]);
        }
        if every_frame {
            for f in 10..back {
                t.update(f, &mut []);
            }
        }
        let id = ids(&mut t, back, &mut [det(100.0, 100.0, 0.9)])[0];
        // A new track is unconfirmed on its first frame.
        id.or_else(|| ids(&mut t, back + 1, &mut [det(100.0, 100.0, 0.9)])[0])
    }

    #[test]
    fn lost_track_recovered_within_buffer_then_removed() {
        // Last seen on frame 9; buffer 30 frames. As in the reference, the
        // track is marked removed at the end of frame 9 + 30 + 1 = 40 but
        // leaves the lost list only at the end of frame 41, so it can be
        // re-found up to and including frame 41.
        for every_frame in [true, false] {
            assert_eq!(reappear(25, every_frame), Some(1));
            assert_eq!(reappear(41, every_frame), Some(1));
            assert_eq!(
                reappear(42, every_frame),
                Some(2),
                "every_frame {every_frame}"
            );
        }
    }

    #[test]
    fn regression_lost_track_refound_the_frame_after_its_removal_mark() {
        // Found by bench/track against supervision (7 fps, buffer 10 → 2
        // frames): a track last seen on frame 103 was re-found on 107.
        let cfg = ByteTrackConfig {
            frame_rate: 7.0,
            track_buffer: 10,
            ..Default::default()
        };
        assert_eq!(cfg.max_time_lost(), 2);
        for (back, want) in [(107, Some(1)), (108, None)] {
            let mut t = ByteTracker::new(cfg.clone()).unwrap();
            for f in 100..=103 {
                t.update(f, &mut [det(100.0, 100.0, 0.9)]);
            }
            for f in 104..back {
                t.update(f, &mut []);
            }
            assert_eq!(ids(&mut t, back, &mut [det(100.0, 100.0, 0.9)]), [want]);
        }
    }

    #[test]
    fn lost_buffer_scales_with_frame_rate() {
        // 15 fps: buffer 15 frames; last seen on 9, re-found up to 9 + 15 + 2.
        let cfg = ByteTrackConfig {
            frame_rate: 15.0,
            ..Default::default()
        };
        for (back, want) in [(26, Some(1)), (27, None)] {
            let mut t = ByteTracker::new(cfg.clone()).unwrap();
            for f in 0..10 {
                t.update(f, &mut [det(100.0, 100.0, 0.9)]);
            }
            assert_eq!(ids(&mut t, back, &mut [det(100.0, 100.0, 0.9)]), [want]);
        }
    }

    /// 12 objects on straight lines, some flickering, with low-score frames.
    fn scene(frame: u64) -> Vec<Detection> {
        (0..12u64)
            .filter(|k| (frame + k) % 7 != 0)
            .map(|k| {
                let x = 20.0 + 60.0 * k as f32 + (k as f32 - 6.0) * frame as f32;
                let y = 50.0 + 10.0 * k as f32 + 0.5 * frame as f32;
                let score = if (frame * 3 + k) % 5 == 0 { 0.3 } else { 0.8 };
                det(x, y, score)
            })
            .collect()
    }

    #[test]
    fn same_input_gives_same_ids() {
        let run = || {
            let mut t = tracker();
            (0..60)
                .map(|f| ids(&mut t, f, &mut scene(f)))
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert!(a.iter().flatten().any(|id| id.is_some()));
    }

    #[test]
    fn every_third_frame_keeps_id_of_linear_motion() {
        let mut t = tracker();
        for f in (0..90).step_by(3) {
            let x = 5.0 + 8.0 * f as f32;
            assert_eq!(
                ids(&mut t, f, &mut [det(x, 100.0, 0.9)]),
                [Some(1)],
                "frame {f}"
            );
        }
    }

    #[test]
    fn gap_after_full_rate_predicts_every_skipped_frame() {
        // 10 px/frame learned at full rate, then 6 frames skipped: the box
        // moved 60 px, more than its 40 px width, so a single predict step
        // would miss it (IoU 0).
        let mut t = tracker();
        for f in 0..15u64 {
            t.update(f, &mut [det(10.0 * f as f32, 100.0, 0.9)]);
        }
        let f = 14 + 6;
        assert_eq!(
            ids(&mut t, f, &mut [det(10.0 * f as f32, 100.0, 0.9)]),
            [Some(1)]
        );
    }

    #[test]
    fn per_class_separates_classes_and_joint_does_not() {
        for per_class in [true, false] {
            let cfg = ByteTrackConfig {
                per_class,
                ..Default::default()
            };
            let mut t = ByteTracker::new(cfg).unwrap();
            for f in 0..5 {
                assert_eq!(ids(&mut t, f, &mut [det(100.0, 100.0, 0.9)]), [Some(1)]);
            }
            // Same box, now labelled as class 2.
            let mut d = [det(100.0, 100.0, 0.9)];
            d[0].class_id = 2;
            let got = ids(&mut t, 5, &mut d);
            assert_eq!(got, [if per_class { None } else { Some(1) }]);
        }
    }

    /// A van the detector calls car (2) for three frames, then truck (7)
    /// for three, and so on, 24 frames; returns the ids given per frame
    /// and the tracks' classes at the end.
    fn van(per_class: bool, scores: (f32, f32)) -> (Vec<Option<TrackId>>, Vec<ClassId>) {
        let cfg = ByteTrackConfig {
            per_class,
            ..Default::default()
        };
        let mut t = ByteTracker::new(cfg).unwrap();
        let mut got = Vec::new();
        for f in 0..24u64 {
            let truck = (f / 3) % 2 == 1;
            let mut d = det(
                100.0 + 2.0 * f as f32,
                100.0,
                if truck { scores.1 } else { scores.0 },
            );
            d.class_id = if truck { 7 } else { 2 };
            got.extend(ids(&mut t, f, &mut [d]));
        }
        (got, t.tracks().map(|v| v.class_id).collect())
    }

    #[test]
    fn class_flipping_object_is_one_track_unless_per_class() {
        let (got, classes) = van(false, (0.8, 0.9));
        assert!(got.iter().all(|&id| id == Some(1)), "{got:?}");
        // Equal counts; truck scored higher.
        assert_eq!(classes, [7]);
        let (_, classes) = van(false, (0.9, 0.8));
        assert_eq!(classes, [2]);
        // Per class: the car lane and the truck lane each hold a track.
        let (got, classes) = van(true, (0.8, 0.9));
        let distinct: std::collections::BTreeSet<_> = got.iter().flatten().collect();
        assert_eq!(distinct.len(), 2, "{got:?}");
        assert_eq!(classes, [2, 7]);
    }

    #[test]
    fn detections_keep_their_class_and_track_class_is_voted() {
        // Two boxes at 0.9 as class 2, then class 5 at 0.55: 5 leads once
        // its sum passes 1.8, on its fourth box.
        let mut t = tracker();
        let mut classes = Vec::new();
        for f in 0..8u64 {
            let mut d = [det(100.0, 100.0, if f < 2 { 0.9 } else { 0.55 })];
            d[0].class_id = if f < 2 { 2 } else { 5 };
            t.update(f, &mut d);
            assert_eq!(d[0].class_id, if f < 2 { 2 } else { 5 });
            assert_eq!(d[0].track_id, Some(1));
            classes.push(t.tracks().next().unwrap().class_id);
        }
        assert_eq!(classes, [2, 2, 2, 2, 2, 5, 5, 5]);
    }

    #[test]
    fn confirmed_births_name_the_box_a_track_was_born_from() {
        let mut t = tracker();
        t.update(0, &mut [det(0.0, 0.0, 0.9)]);
        assert_eq!(t.confirmed_births(), []);
        // Born on frame 1 at index 1, untracked there.
        let got = ids(&mut t, 1, &mut [det(0.0, 0.0, 0.9), det(300.0, 0.0, 0.9)]);
        assert_eq!(got, [Some(1), None]);
        assert_eq!(t.confirmed_births(), []);
        // Confirmed on frame 2 (now at index 0): its frame-1 box is index 1.
        let got = ids(&mut t, 2, &mut [det(300.0, 0.0, 0.9), det(0.0, 0.0, 0.9)]);
        assert_eq!(got, [Some(2), Some(1)]);
        assert_eq!(t.confirmed_births(), [(1, 2)]);
        t.update(3, &mut [det(300.0, 0.0, 0.9), det(0.0, 0.0, 0.9)]);
        assert_eq!(t.confirmed_births(), []);
    }

    #[test]
    fn lost_track_drifting_onto_older_track_is_removed_as_duplicate() {
        // B static at x=200; A at x=180 moving +2 px/frame, seen on frames
        // 0..=4 then lost: its prediction drifts onto B (IoU > 0.85) and,
        // B being older, A is dropped long before its 30-frame buffer ends.
        let lost_at_15 = |with_b: bool| {
            let mut t = tracker();
            for f in 0..16u64 {
                let mut d = Vec::new();
                if with_b {
                    d.push(det(200.0, 100.0, 0.9));
                }
                if f < 5 {
                    d.push(det(180.0 + 2.0 * f as f32, 100.0, 0.9));
                }
                t.update(f, &mut d);
            }
            t.tracks().filter(|v| v.lost).count()
        };
        assert_eq!(lost_at_15(false), 1);
        assert_eq!(lost_at_15(true), 0);
    }

    #[test]
    fn invalid_boxes_are_ignored() {
        let mut t = tracker();
        let mut d = [
            Detection::new(0, 0.9, BBox::new(10.0, 10.0, 10.0, 50.0)),
            Detection::new(0, f32::NAN, BBox::new(0.0, 0.0, 10.0, 10.0)),
            det(100.0, 100.0, 0.9),
        ];
        assert_eq!(ids(&mut t, 0, &mut d), [None, None, Some(1)]);
    }
}
