//! Counting lines, zones and ground calibration as a run asks for them
//! (`--line`, `--zone`, `--anchor`, `--interval`, `--calibration`), and
//! the per-interval counts a run produces. Plain data: the counting itself
//! is `peregrine_analytics::spatial`.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{BBox, ClassId, SourceId, TrackId};

/// The point of a box that stands for the object (supervision's
/// `Position`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    Center,
    CenterLeft,
    CenterRight,
    TopCenter,
    TopLeft,
    TopRight,
    #[default]
    BottomCenter,
    BottomLeft,
    BottomRight,
}

impl Anchor {
    pub const ALL: [Anchor; 9] = [
        Anchor::Center,
        Anchor::CenterLeft,
        Anchor::CenterRight,
        Anchor::TopCenter,
        Anchor::TopLeft,
        Anchor::TopRight,
        Anchor::BottomCenter,
        Anchor::BottomLeft,
        Anchor::BottomRight,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Anchor::Center => "center",
            Anchor::CenterLeft => "center-left",
            Anchor::CenterRight => "center-right",
            Anchor::TopCenter => "top-center",
            Anchor::TopLeft => "top-left",
            Anchor::TopRight => "top-right",
            Anchor::BottomCenter => "bottom-center",
            Anchor::BottomLeft => "bottom-left",
            Anchor::BottomRight => "bottom-right",
        }
    }

    /// The anchor of `b`, computed in `f32` as supervision computes it
    /// (`(x1 + x2) / 2` on a float32 array), then widened.
    pub fn point(&self, b: &BBox) -> (f64, f64) {
        let cx = (b.x1 + b.x2) / 2.0;
        let cy = (b.y1 + b.y2) / 2.0;
        let (x, y) = match self {
            Anchor::Center => (cx, cy),
            Anchor::CenterLeft => (b.x1, cy),
            Anchor::CenterRight => (b.x2, cy),
            Anchor::TopCenter => (cx, b.y1),
            Anchor::TopLeft => (b.x1, b.y1),
            Anchor::TopRight => (b.x2, b.y1),
            Anchor::BottomCenter => (cx, b.y2),
            Anchor::BottomLeft => (b.x1, b.y2),
            Anchor::BottomRight => (b.x2, b.y2),
        };
        (f64::from(x), f64::from(y))
    }
}

impl FromStr for Anchor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        Anchor::ALL
            .into_iter()
            .find(|a| a.name() == norm)
            .ok_or_else(|| {
                let names: Vec<&str> = Anchor::ALL.iter().map(Anchor::name).collect();
                format!("unknown anchor {s:?} (expected {})", names.join(", "))
            })
    }
}

/// A counting line: the segment from `start` to `end`, in pixels of the
/// source frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineSpec {
    pub name: String,
    pub start: (f64, f64),
    pub end: (f64, f64),
}

/// A zone: a simple polygon (convex or not), in pixels of the source frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZoneSpec {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One image ↔ ground correspondence of a calibration: `image` in pixels,
/// `ground` in metres.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointPair {
    pub image: (f64, f64),
    pub ground: (f64, f64),
}

/// Everything spatial a run counts. Part of the run's parameters and cache
/// key when present.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpatialSpec {
    pub lines: Vec<LineSpec>,
    pub zones: Vec<ZoneSpec>,
    pub anchor: Anchor,
    /// Length of a counting interval, seconds of video time.
    pub interval_s: f64,
    /// Image ↔ ground pairs (four or more) for real-world units.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calibration: Vec<PointPair>,
}

/// Default `--interval`: one minute of video.
pub const DEFAULT_INTERVAL_S: f64 = 60.0;

fn number(s: &str, what: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{what}: {s:?} is not a number"))?;
    if !v.is_finite() {
        return Err(format!("{what}: {s:?} is not a finite number"));
    }
    Ok(v)
}

fn split_name<'a>(arg: &'a str, flag: &str, form: &str) -> Result<(&'a str, &'a str), String> {
    let (name, rest) = arg
        .split_once('=')
        .ok_or_else(|| format!("{flag} {arg:?}: expected {form}"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!(
            "{flag} {arg:?}: the name is empty (expected {form})"
        ));
    }
    Ok((name, rest))
}

fn pair(s: &str, what: &str) -> Result<(f64, f64), String> {
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() != 2 {
        return Err(format!("{what}: expected X,Y, got {s:?}"));
    }
    Ok((number(parts[0], what)?, number(parts[1], what)?))
}

impl LineSpec {
    /// Parses `NAME=X1,Y1,X2,Y2`.
    pub fn parse(arg: &str) -> Result<Self, String> {
        const FORM: &str = "NAME=X1,Y1,X2,Y2";
        let (name, rest) = split_name(arg, "--line", FORM)?;
        let parts: Vec<&str> = rest.split(',').collect();
        if parts.len() != 4 {
            return Err(format!(
                "--line {arg:?}: expected {FORM} (4 numbers, got {})",
                parts.len()
            ));
        }
        let what = format!("--line {name}");
        let v = parts
            .iter()
            .map(|p| number(p, &what))
            .collect::<Result<Vec<_>, _>>()?;
        let line = LineSpec {
            name: name.to_string(),
            start: (v[0], v[1]),
            end: (v[2], v[3]),
        };
        line.validate()?;
        Ok(line)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.start == self.end {
            return Err(format!(
                "--line {}: start and end are the same point",
                self.name
            ));
        }
        Ok(())
    }
}

impl ZoneSpec {
    /// Parses `NAME=X,Y;X,Y;X,Y[;...]`.
    pub fn parse(arg: &str) -> Result<Self, String> {
        const FORM: &str = "NAME=X,Y;X,Y;X,Y[;...]";
        let (name, rest) = split_name(arg, "--zone", FORM)?;
        let what = format!("--zone {name}");
        let points = rest
            .split(';')
            .filter(|p| !p.trim().is_empty())
            .map(|p| pair(p, &what))
            .collect::<Result<Vec<_>, _>>()?;
        let zone = ZoneSpec {
            name: name.to_string(),
            points,
        };
        zone.validate()?;
        Ok(zone)
    }

    /// At least three points and a non-zero area.
    pub fn validate(&self) -> Result<(), String> {
        if self.points.len() < 3 {
            return Err(format!(
                "--zone {}: a polygon needs at least 3 points, got {}",
                self.name,
                self.points.len()
            ));
        }
        if polygon_area(&self.points) == 0.0 {
            return Err(format!("--zone {}: the polygon has no area", self.name));
        }
        Ok(())
    }
}

/// Area of a simple polygon (shoelace formula), in the square of its unit.
pub fn polygon_area(points: &[(f64, f64)]) -> f64 {
    let n = points.len();
    let mut twice = 0.0;
    for i in 0..n {
        let (x1, y1) = points[i];
        let (x2, y2) = points[(i + 1) % n];
        twice += x1 * y2 - x2 * y1;
    }
    (twice / 2.0).abs()
}

impl SpatialSpec {
    /// Checks names (unique per kind, non-empty), geometry, interval and
    /// calibration size.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.interval_s.is_finite() && self.interval_s > 0.0) {
            return Err(format!(
                "--interval must be a positive number of seconds, got {}",
                self.interval_s
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for l in &self.lines {
            l.validate()?;
            if !seen.insert(&l.name) {
                return Err(format!("--line {}: the name is used twice", l.name));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for z in &self.zones {
            z.validate()?;
            if !seen.insert(&z.name) {
                return Err(format!("--zone {}: the name is used twice", z.name));
            }
        }
        if !self.calibration.is_empty() && self.calibration.len() < 4 {
            return Err(format!(
                "calibration: needs at least 4 point pairs, got {}",
                self.calibration.len()
            ));
        }
        Ok(())
    }
}

/// In/out crossings of one class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InOut {
    #[serde(rename = "in")]
    pub n_in: u64,
    #[serde(rename = "out")]
    pub n_out: u64,
}

/// Per-frame occupancy of one class (or all classes) over an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Occupancy {
    pub max: u64,
    /// Sum over the interval's frames (mean = sum / frames).
    pub sum: u64,
}

impl Occupancy {
    pub fn add(&mut self, n: u64) {
        self.max = self.max.max(n);
        self.sum += n;
    }

    pub fn merge(&mut self, o: &Occupancy) {
        self.max = self.max.max(o.max);
        self.sum += o.sum;
    }
}

/// Dwell times of the stays that ended in an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dwell {
    pub count: u64,
    pub sum_s: f64,
    pub max_s: f64,
}

impl Dwell {
    pub fn add(&mut self, s: f64) {
        self.count += 1;
        self.sum_s += s;
        self.max_s = self.max_s.max(s);
    }

    pub fn merge(&mut self, o: &Dwell) {
        self.count += o.count;
        self.sum_s += o.sum_s;
        self.max_s = self.max_s.max(o.max_s);
    }

    pub fn mean_s(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_s / self.count as f64)
    }
}

/// One zone over one interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ZoneInterval {
    /// All classes together.
    pub occupancy: Occupancy,
    pub by_class: BTreeMap<ClassId, Occupancy>,
    pub entries: u64,
    pub exits: u64,
    pub dwell: Dwell,
}

/// Counts of one interval of video time, `[start_s, end_s)`. Lines and
/// zones are in the order of the [`SpatialSpec`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntervalCounts {
    pub source: SourceId,
    /// `floor(pts / interval_s)`.
    pub index: u64,
    pub start_s: f64,
    pub end_s: f64,
    /// Frames analysed in the interval.
    pub frames: u64,
    pub lines: Vec<BTreeMap<ClassId, InOut>>,
    pub zones: Vec<ZoneInterval>,
}

/// A track's motion on the ground plane (with a calibration).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroundTrack {
    pub source: SourceId,
    pub track_id: TrackId,
    pub distance_m: f64,
    /// Distance over the time between first and last observation; `None`
    /// for a track seen at one instant only.
    pub mean_speed_m_s: Option<f64>,
    /// Largest smoothed speed.
    pub max_speed_m_s: Option<f64>,
}
