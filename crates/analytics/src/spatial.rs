//! Counting lines, zones, per-interval counts and ground motion, frame by
//! frame.
//!
//! Lines follow supervision's `LineZone` (0.31) with one triggering anchor
//! and `minimum_crossing_threshold=1` exactly, down to the floating-point
//! operations:
//!
//! * A track's anchor is *in limits* when it lies strictly between the two
//!   perpendiculars through the segment's ends; outside them it is not
//!   looked at (a detour around the end of a segment never counts).
//! * In limits, its side is `cross(end - start, anchor - start) < 0`
//!   ("left" = `true`); an anchor exactly on the line is on the `false`
//!   side.
//! * The first side seen becomes the track's reference; every later
//!   in-limits observation on the other side is a crossing: to `true` is
//!   **in**, to `false` is **out**, counted under the detection's class in
//!   that frame, and the new side becomes the reference.
//! * A track absent from two consecutive analysed frames loses its state:
//!   when it comes back, its first side is a new reference, not a crossing.
//!
//! With image coordinates (y down), "in" is a move onto the side on the
//! left as seen on screen when walking from `start` to `end`: for a line
//! drawn left to right, crossing upwards.
//!
//! Zones: a track is inside when its anchor is inside the polygon
//! (even-odd rule, any simple polygon, concave included). An **entry** is
//! an observation inside after one outside, or a track's first observation
//! inside; an **exit** is an observation outside after one inside. A stay
//! ends at an exit, or when the track has been unseen for `idle_frames`
//! frames, or at the end of the input; its dwell time is from its first to
//! its last observation inside, and is counted in the interval where the
//! stay ended. Occupancy is per analysed frame: tracked boxes whose anchor
//! is inside, all classes and per class.

use std::collections::BTreeMap;

use peregrine_core::{
    ClassId, Detection, FrameMeta, GroundTrack, InOut, IntervalCounts, LineSpec, SpatialSpec,
    TrackId, ZoneInterval, ZoneSpec,
};

use crate::homography::Homography;

/// `cross(vector, p)` as supervision computes it: `(end - start) × (p -
/// start)`.
fn cross(start: (f64, f64), end: (f64, f64), p: (f64, f64)) -> f64 {
    let v = (end.0 - start.0, end.1 - start.1);
    v.0 * (p.1 - start.1) - v.1 * (p.0 - start.0)
}

/// A segment with its two limit vectors.
#[derive(Clone, Debug)]
struct LineGeom {
    start: (f64, f64),
    end: (f64, f64),
    limit_start: ((f64, f64), (f64, f64)),
    limit_end: ((f64, f64), (f64, f64)),
}

impl LineGeom {
    fn new(l: &LineSpec) -> Self {
        let (start, end) = (l.start, l.end);
        let dx = end.0 - start.0;
        let dy = end.1 - start.1;
        let magnitude = (dx.powi(2) + dy.powi(2)).sqrt();
        let (ux, uy) = (dx / magnitude, dy / magnitude);
        let (px, py) = (-uy, ux);
        Self {
            start,
            end,
            limit_start: (start, (start.0 + px, start.1 + py)),
            limit_end: (end, (end.0 - px, end.1 - py)),
        }
    }

    /// `None` outside the limits, else the side (`true` = left, "in").
    fn side(&self, p: (f64, f64)) -> Option<bool> {
        let c1 = cross(self.limit_start.0, self.limit_start.1, p) > 0.0;
        let c2 = cross(self.limit_end.0, self.limit_end.1, p) > 0.0;
        (c1 == c2).then(|| cross(self.start, self.end, p) < 0.0)
    }
}

#[derive(Clone, Copy, Debug)]
struct LineTrack {
    /// Entries in supervision's history deque (at most 2).
    seen: u8,
    confirmed: bool,
    absent: u32,
}

/// One line's crossing state and counts (supervision's `LineZone`).
#[derive(Clone, Debug)]
pub struct LineCounter {
    geom: LineGeom,
    tracks: BTreeMap<TrackId, LineTrack>,
    /// Crossings since the counts were last taken.
    counts: BTreeMap<ClassId, InOut>,
    /// The ids of the current frame, sorted (reused).
    present: Vec<TrackId>,
}

/// What one detection did at a line in one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crossing {
    In,
    Out,
}

impl LineCounter {
    pub fn new(line: &LineSpec) -> Self {
        Self {
            geom: LineGeom::new(line),
            tracks: BTreeMap::new(),
            counts: BTreeMap::new(),
            present: Vec::new(),
        }
    }

    /// One analysed frame: `(track, class, anchor)` of its tracked boxes.
    /// Returns the crossings, in input order.
    pub fn frame(&mut self, tracked: &[(TrackId, ClassId, (f64, f64))]) -> Vec<(usize, Crossing)> {
        self.present.clear();
        self.present.extend(tracked.iter().map(|t| t.0));
        self.present.sort_unstable();
        let present = &self.present;
        self.tracks.retain(|id, t| {
            if present.binary_search(id).is_ok() {
                t.absent = 0;
                true
            } else {
                t.absent += 1;
                t.absent < 2
            }
        });
        let mut out = Vec::new();
        for (i, &(id, class, p)) in tracked.iter().enumerate() {
            let Some(side) = self.geom.side(p) else {
                continue;
            };
            let t = self.tracks.entry(id).or_insert(LineTrack {
                seen: 0,
                confirmed: side,
                absent: 0,
            });
            t.seen = (t.seen + 1).min(2);
            if t.seen < 2 || side == t.confirmed {
                continue;
            }
            t.confirmed = side;
            let c = self.counts.entry(class).or_default();
            if side {
                c.n_in += 1;
                out.push((i, Crossing::In));
            } else {
                c.n_out += 1;
                out.push((i, Crossing::Out));
            }
        }
        out
    }

    fn take_counts(&mut self) -> BTreeMap<ClassId, InOut> {
        std::mem::take(&mut self.counts)
    }

    /// Tracks with crossing state (bounded: two frames after a track's
    /// last appearance it is forgotten).
    pub fn tracks_held(&self) -> usize {
        self.tracks.len()
    }
}

/// A polygon for point-in-polygon tests.
#[derive(Clone, Debug)]
pub struct Polygon {
    points: Vec<(f64, f64)>,
    bounds: (f64, f64, f64, f64),
}

impl Polygon {
    pub fn new(points: &[(f64, f64)]) -> Self {
        let mut b = (
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, y) in points {
            b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
        }
        Self {
            points: points.to_vec(),
            bounds: b,
        }
    }

    /// Even-odd rule (a ray to +x): correct for concave polygons. Points
    /// exactly on an edge may fall either way.
    pub fn contains(&self, (x, y): (f64, f64)) -> bool {
        let b = self.bounds;
        if x < b.0 || x > b.2 || y < b.1 || y > b.3 {
            return false;
        }
        let n = self.points.len();
        let mut inside = false;
        let mut j = n - 1;
        for i in 0..n {
            let (xi, yi) = self.points[i];
            let (xj, yj) = self.points[j];
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            j = i;
        }
        inside
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Stay {
    inside: bool,
    entered: f64,
    last_inside: f64,
}

/// Smoothing time constant of ground speed, seconds.
const SPEED_TAU_S: f64 = 0.5;

#[derive(Clone, Copy, Debug)]
struct GroundRunning {
    first_t: f64,
    last_t: f64,
    last: (f64, f64),
    distance: f64,
    smoothed: Option<f64>,
    max: Option<f64>,
}

impl GroundRunning {
    fn start(t: f64, p: (f64, f64)) -> Self {
        Self {
            first_t: t,
            last_t: t,
            last: p,
            distance: 0.0,
            smoothed: None,
            max: None,
        }
    }

    fn observe(&mut self, t: f64, p: (f64, f64)) {
        let step = (p.0 - self.last.0).hypot(p.1 - self.last.1);
        self.distance += step;
        let dt = t - self.last_t;
        if dt > 0.0 {
            let v = step / dt;
            let s = match self.smoothed {
                None => v,
                Some(prev) => prev + (1.0 - (-dt / SPEED_TAU_S).exp()) * (v - prev),
            };
            self.smoothed = Some(s);
            self.max = Some(self.max.map_or(s, |m: f64| m.max(s)));
        }
        self.last = p;
        self.last_t = t;
    }

    fn summary(&self, source: u32, track_id: TrackId) -> GroundTrack {
        let span = self.last_t - self.first_t;
        GroundTrack {
            source,
            track_id,
            distance_m: self.distance,
            mean_speed_m_s: (span > 0.0).then(|| self.distance / span),
            max_speed_m_s: self.max,
        }
    }
}

#[derive(Clone, Debug)]
struct TrackState {
    last_frame: u64,
    stays: Vec<Stay>,
    ground: Option<GroundRunning>,
}

/// Lines, zones, intervals and ground motion of one source. Memory is
/// bounded by the tracks alive and the number of lines and zones; finished
/// intervals and tracks are handed out as they complete.
#[derive(Clone, Debug)]
pub struct SpatialCounter {
    spec: SpatialSpec,
    lines: Vec<LineCounter>,
    zones: Vec<Polygon>,
    homography: Option<Homography>,
    tracks: BTreeMap<TrackId, TrackState>,
    idle_frames: u64,
    current: Option<IntervalCounts>,
    scratch: Vec<(TrackId, ClassId, (f64, f64))>,
    /// Per zone: occupancy of the current frame, all classes and by class
    /// (reused).
    occupancy: Vec<(u64, Vec<(ClassId, u64)>)>,
}

impl SpatialCounter {
    /// `idle_frames`: frames after which an unseen track has ended (the
    /// tracker's lost buffer).
    pub fn new(spec: &SpatialSpec, idle_frames: u64) -> Result<Self, String> {
        spec.validate()?;
        let homography = if spec.calibration.is_empty() {
            None
        } else {
            Some(
                Homography::from_pairs(&spec.calibration)
                    .map_err(|e| format!("calibration: {e}"))?,
            )
        };
        Ok(Self {
            lines: spec.lines.iter().map(LineCounter::new).collect(),
            zones: spec.zones.iter().map(|z| Polygon::new(&z.points)).collect(),
            spec: spec.clone(),
            homography,
            tracks: BTreeMap::new(),
            idle_frames,
            current: None,
            scratch: Vec::new(),
            occupancy: vec![(0, Vec::new()); spec.zones.len()],
        })
    }

    pub fn spec(&self) -> &SpatialSpec {
        &self.spec
    }

    fn empty_interval(&self, meta: &FrameMeta, index: u64) -> IntervalCounts {
        let len = self.spec.interval_s;
        IntervalCounts {
            source: meta.source,
            index,
            start_s: index as f64 * len,
            end_s: (index + 1) as f64 * len,
            frames: 0,
            lines: vec![BTreeMap::new(); self.lines.len()],
            zones: vec![ZoneInterval::default(); self.zones.len()],
        }
    }

    /// Adds one analysed frame (frames in presentation order). Intervals
    /// that are complete go to `counts`, tracks that ended to `ground`.
    pub fn observe(
        &mut self,
        meta: &FrameMeta,
        detections: &[Detection],
        counts: &mut Vec<IntervalCounts>,
        ground: &mut Vec<GroundTrack>,
    ) {
        let index = (meta.pts.max(0.0) / self.spec.interval_s).floor() as u64;
        if self.current.as_ref().is_some_and(|c| c.index != index) {
            self.flush_lines();
            counts.extend(self.current.take());
        }
        if self.current.is_none() {
            self.current = Some(self.empty_interval(meta, index));
        }
        let anchor = self.spec.anchor;
        let mut tracked = std::mem::take(&mut self.scratch);
        tracked.clear();
        tracked.extend(
            detections
                .iter()
                .filter_map(|d| Some((d.track_id?, d.class_id, anchor.point(&d.bbox)))),
        );
        for line in &mut self.lines {
            line.frame(&tracked);
        }
        let interval = self.current.as_mut().expect("set above");
        interval.frames += 1;
        let n_zones = self.zones.len();
        let mut occupancy = std::mem::take(&mut self.occupancy);
        for o in &mut occupancy {
            o.0 = 0;
            o.1.clear();
        }
        for &(id, class, p) in &tracked {
            let state = self.tracks.entry(id).or_insert_with(|| TrackState {
                last_frame: meta.index,
                stays: vec![Stay::default(); n_zones],
                ground: None,
            });
            state.last_frame = meta.index;
            for (z, poly) in self.zones.iter().enumerate() {
                let inside = poly.contains(p);
                let stay = &mut state.stays[z];
                let zi = &mut interval.zones[z];
                if inside {
                    let occ = &mut occupancy[z];
                    occ.0 += 1;
                    match occ.1.iter_mut().find(|(c, _)| *c == class) {
                        Some((_, n)) => *n += 1,
                        None => occ.1.push((class, 1)),
                    }
                    if !stay.inside {
                        zi.entries += 1;
                        stay.entered = meta.pts;
                    }
                    stay.last_inside = meta.pts;
                } else if stay.inside {
                    zi.exits += 1;
                    zi.dwell.add(stay.last_inside - stay.entered);
                }
                stay.inside = inside;
            }
            if let Some(h) = &self.homography {
                let g = h.map(p);
                match &mut state.ground {
                    Some(r) => r.observe(meta.pts, g),
                    None => state.ground = Some(GroundRunning::start(meta.pts, g)),
                }
            }
        }
        for (zi, (total, by_class)) in interval.zones.iter_mut().zip(&occupancy) {
            zi.occupancy.add(*total);
            for &(class, n) in by_class {
                zi.by_class.entry(class).or_default().add(n);
            }
            // Classes absent from this frame had 0 in it: their max is
            // unchanged and their sum gains nothing.
        }
        self.scratch = tracked;
        self.occupancy = occupancy;
        let idle = self.idle_frames;
        let now = meta.index;
        let source = meta.source;
        let mut ended = Vec::new();
        self.tracks.retain(|&id, t| {
            let gone = now.saturating_sub(t.last_frame) > idle;
            if gone {
                ended.push((id, t.clone()));
            }
            !gone
        });
        for (id, t) in ended {
            self.end_track(source, id, &t, ground);
        }
    }

    fn end_track(
        &mut self,
        source: u32,
        id: TrackId,
        t: &TrackState,
        ground: &mut Vec<GroundTrack>,
    ) {
        if let Some(interval) = self.current.as_mut() {
            for (z, stay) in t.stays.iter().enumerate() {
                if stay.inside {
                    interval.zones[z].dwell.add(stay.last_inside - stay.entered);
                }
            }
        }
        if let Some(g) = &t.ground {
            ground.push(g.summary(source, id));
        }
    }

    fn flush_lines(&mut self) {
        if let Some(c) = self.current.as_mut() {
            for (slot, line) in c.lines.iter_mut().zip(&mut self.lines) {
                for (class, n) in line.take_counts() {
                    let e = slot.entry(class).or_default();
                    e.n_in += n.n_in;
                    e.n_out += n.n_out;
                }
            }
        }
    }

    /// End of input: open stays end, every track's ground motion and the
    /// last interval are handed out.
    pub fn finish(
        &mut self,
        source: u32,
        counts: &mut Vec<IntervalCounts>,
        ground: &mut Vec<GroundTrack>,
    ) {
        let tracks = std::mem::take(&mut self.tracks);
        for (id, t) in &tracks {
            self.end_track(source, *id, t, ground);
        }
        self.flush_lines();
        counts.extend(self.current.take());
    }

    /// Tracks held (for memory checks).
    pub fn tracks_held(&self) -> usize {
        self.tracks.len()
            + self
                .lines
                .iter()
                .map(LineCounter::tracks_held)
                .sum::<usize>()
    }

    /// Area of each zone on the ground, m² (with a calibration).
    pub fn zone_areas_m2(&self) -> Option<Vec<f64>> {
        let h = self.homography.as_ref()?;
        Some(self.spec.zones.iter().map(|z| zone_area(h, z)).collect())
    }
}

fn zone_area(h: &Homography, z: &ZoneSpec) -> f64 {
    let ground: Vec<(f64, f64)> = z.points.iter().map(|&p| h.map(p)).collect();
    peregrine_core::polygon_area(&ground)
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_core::{Anchor, BBox, PointPair};

    fn meta(index: u64, pts: f64) -> FrameMeta {
        FrameMeta {
            source: 0,
            index,
            pts,
            width: 640,
            height: 480,
        }
    }

    /// A 10 × 20 box whose bottom-centre is `(x, y)`.
    fn at(id: TrackId, class: ClassId, x: f32, y: f32) -> Detection {
        let mut d = Detection::new(class, 0.9, BBox::new(x - 5.0, y - 20.0, x + 5.0, y));
        d.track_id = Some(id);
        d
    }

    fn spec(lines: Vec<LineSpec>, zones: Vec<ZoneSpec>, interval_s: f64) -> SpatialSpec {
        SpatialSpec {
            lines,
            zones,
            anchor: Anchor::BottomCenter,
            interval_s,
            calibration: Vec::new(),
        }
    }

    #[test]
    fn back_and_forth_counts_every_crossing_and_touching_is_the_out_side() {
        let mut l = LineCounter::new(&LineSpec::parse("stop=0,100,200,100").unwrap());
        let dirs = |l: &mut LineCounter, y: f64| l.frame(&[(1, 0, (50.0, y))]);
        assert!(dirs(&mut l, 50.0).is_empty()); // first side: reference
        assert_eq!(dirs(&mut l, 150.0), vec![(0, Crossing::Out)]);
        assert_eq!(dirs(&mut l, 60.0), vec![(0, Crossing::In)]);
        // On the line: cross product 0 reads as the "out" side.
        assert_eq!(dirs(&mut l, 100.0), vec![(0, Crossing::Out)]);
        assert!(dirs(&mut l, 140.0).is_empty());
        // Beyond the segment's end: not looked at.
        assert!(l.frame(&[(1, 0, (250.0, 20.0))]).is_empty());
        assert_eq!(l.tracks_held(), 1);
        l.frame(&[]);
        l.frame(&[]);
        assert_eq!(l.tracks_held(), 0, "forgotten after two absent frames");
    }

    #[test]
    fn concave_polygon_excludes_its_notch() {
        // A U: the notch (40..60, 0..60) is outside.
        let u = Polygon::new(&[
            (0.0, 0.0),
            (40.0, 0.0),
            (40.0, 60.0),
            (60.0, 60.0),
            (60.0, 0.0),
            (100.0, 0.0),
            (100.0, 100.0),
            (0.0, 100.0),
        ]);
        assert!(u.contains((20.0, 30.0)));
        assert!(u.contains((80.0, 30.0)));
        assert!(!u.contains((50.0, 30.0)), "in the notch");
        assert!(u.contains((50.0, 80.0)), "below the notch");
        assert!(!u.contains((150.0, 50.0)));
        assert!(!u.contains((50.0, -1.0)));
    }

    #[test]
    fn zone_entries_exits_dwell_occupancy_and_intervals() {
        let zone = ZoneSpec::parse("box=0,0;100,0;100,100;0,100").unwrap();
        let mut c = SpatialCounter::new(&spec(vec![], vec![zone], 1.0), 3).unwrap();
        let (mut counts, mut ground) = (Vec::new(), Vec::new());
        // 10 fps. Track 1 (class 2) enters at t 0.2, leaves at t 0.6
        // (last inside 0.5). Track 2 (class 0) is inside from t 0.4 and
        // is last seen at t 1.1, inside: its stay ends when it goes idle.
        for f in 0..20u64 {
            let t = f as f64 / 10.0;
            let mut dets = Vec::new();
            let x1 = if (2..=5).contains(&f) { 50.0 } else { 150.0 };
            dets.push(at(1, 2, x1, 50.0));
            if (4..=11).contains(&f) {
                dets.push(at(2, 0, 20.0, 20.0));
            }
            c.observe(&meta(f, t), &dets, &mut counts, &mut ground);
        }
        c.finish(0, &mut counts, &mut ground);
        assert_eq!(counts.len(), 2);
        let (a, b) = (&counts[0].zones[0], &counts[1].zones[0]);
        assert_eq!((counts[0].frames, counts[1].frames), (10, 10));
        assert_eq!((a.entries, a.exits, b.entries, b.exits), (2, 1, 0, 0));
        // Frames 4 and 5 hold both tracks.
        assert_eq!(a.occupancy.max, 2);
        assert_eq!(a.occupancy.sum, 4 + 6);
        assert_eq!(b.occupancy.sum, 2);
        assert_eq!(a.by_class[&2].sum, 4);
        assert_eq!(a.by_class[&0].max, 1);
        assert_eq!(a.dwell.count, 1);
        assert!((a.dwell.max_s - 0.3).abs() < 1e-9);
        // Track 2 is last seen at frame 11 and ends at frame 15 (idle 3).
        assert_eq!(b.dwell.count, 1);
        assert!((b.dwell.max_s - 0.7).abs() < 1e-9);
        assert!(ground.is_empty(), "no calibration, no ground motion");
        assert_eq!(c.tracks_held(), 0);
    }

    #[test]
    fn ground_distance_and_speed_in_metres() {
        // 10 px = 1 m (a pure scale), a track moving 10 px per 0.1 s: 10 m/s.
        let pp = |x: f64, y: f64| PointPair {
            image: (x, y),
            ground: (x / 10.0, y / 10.0),
        };
        let mut s = spec(
            vec![],
            vec![ZoneSpec::parse("z=0,0;100,0;100,100;0,100").unwrap()],
            60.0,
        );
        s.calibration = vec![
            pp(0.0, 0.0),
            pp(640.0, 0.0),
            pp(640.0, 480.0),
            pp(0.0, 480.0),
        ];
        let mut c = SpatialCounter::new(&s, 30).unwrap();
        assert!((c.zone_areas_m2().unwrap()[0] - 100.0).abs() < 1e-6);
        let (mut counts, mut ground) = (Vec::new(), Vec::new());
        for f in 0..11u64 {
            let d = at(4, 0, 10.0 * f as f32, 200.0);
            c.observe(&meta(f, f as f64 / 10.0), &[d], &mut counts, &mut ground);
        }
        c.finish(0, &mut counts, &mut ground);
        assert_eq!(ground.len(), 1);
        let g = ground[0];
        assert!((g.distance_m - 10.0).abs() < 1e-6);
        assert!((g.mean_speed_m_s.unwrap() - 10.0).abs() < 1e-6);
        assert!((g.max_speed_m_s.unwrap() - 10.0).abs() < 1e-6);
    }

    #[test]
    fn lines_count_into_the_interval_of_the_crossing_by_class() {
        let line = LineSpec::parse("l=0,100,200,100").unwrap();
        let mut c = SpatialCounter::new(&spec(vec![line], vec![], 1.0), 30).unwrap();
        let (mut counts, mut ground) = (Vec::new(), Vec::new());
        let ys = [50.0, 150.0, 150.0, 150.0, 50.0];
        for (f, y) in ys.iter().enumerate() {
            let t = f as f64 * 0.4; // frames at 0, .4, .8, 1.2, 1.6
            c.observe(
                &meta(f as u64, t),
                &[at(9, 3, 60.0, *y)],
                &mut counts,
                &mut ground,
            );
        }
        c.finish(0, &mut counts, &mut ground);
        assert_eq!(counts.len(), 2);
        assert_eq!(counts[0].lines[0][&3], InOut { n_in: 0, n_out: 1 });
        assert_eq!(counts[1].lines[0][&3], InOut { n_in: 1, n_out: 0 });
        assert_eq!((counts[1].start_s, counts[1].end_s), (1.0, 2.0));
    }

    #[test]
    fn bad_specs_are_refused_with_their_name() {
        for (arg, want) in [
            ("a=1,2,3", "4 numbers"),
            ("=1,2,3,4", "name is empty"),
            ("a=1,2,x,4", "not a number"),
            ("a=1,2,1,2", "same point"),
            ("nothing", "expected NAME="),
        ] {
            let e = LineSpec::parse(arg).unwrap_err();
            assert!(e.contains(want), "{arg}: {e}");
        }
        for (arg, want) in [
            ("z=0,0;1,1", "at least 3 points"),
            ("z=0,0;1,1;2,2", "no area"),
            ("z=0,0;1;2,2", "expected X,Y"),
        ] {
            let e = ZoneSpec::parse(arg).unwrap_err();
            assert!(e.contains(want), "{arg}: {e}");
        }
        let mut s = spec(
            vec![
                LineSpec::parse("a=0,0,1,1").unwrap(),
                LineSpec::parse("a=0,0,2,1").unwrap(),
            ],
            vec![],
            60.0,
        );
        assert!(SpatialCounter::new(&s, 30)
            .unwrap_err()
            .contains("used twice"));
        s.lines.pop();
        s.interval_s = 0.0;
        assert!(SpatialCounter::new(&s, 30)
            .unwrap_err()
            .contains("--interval"));
    }
}
