//! Validation: shot list entries plus probed sources become [`Shot`]s with
//! in/out points in seconds, or every problem of every shot at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use peregrine_media::{scan, MediaError, ScannedSource};

use crate::error::{AssembleError, Result, ShotError, ShotProblem};
use crate::shotlist::{Point, ShotEntry, ShotSource};

/// A validated shot: `in_s..out_s` in seconds from the source's first frame.
#[derive(Debug, Clone)]
pub struct Shot {
    /// 1-based position in the shot list.
    pub number: usize,
    pub label: Option<String>,
    /// `None` for a gap (black and silence).
    pub source: Option<Arc<ScannedSource>>,
    pub in_s: f64,
    pub out_s: f64,
}

impl Shot {
    pub fn duration_s(&self) -> f64 {
        self.out_s - self.in_s
    }
    pub fn path(&self) -> PathBuf {
        self.source
            .as_ref()
            .map_or_else(|| PathBuf::from("<gap>"), |s| s.path.clone())
    }
    /// This shot failed while being read, decoded or encoded, for `cause`.
    pub fn error(&self, cause: impl std::fmt::Display) -> AssembleError {
        AssembleError::Shot {
            shot: self.number,
            path: self.path(),
            cause: cause.to_string(),
        }
    }
}

fn to_seconds(p: Point, fps: Option<f64>) -> std::result::Result<f64, ShotProblem> {
    let s = match p {
        Point::Seconds(s) => s,
        Point::Frame(f) => {
            let fps = fps.ok_or_else(|| {
                ShotProblem::UnknownTimebase("frame numbers need the source's frame rate".into())
            })?;
            if f < 0 {
                return Err(ShotProblem::BadPoint(format!("negative frame {f}")));
            }
            f as f64 / fps
        }
        Point::Timecode { h, m, s, f, drop } => {
            let fps = fps.ok_or_else(|| {
                ShotProblem::UnknownTimebase("timecode needs the source's frame rate".into())
            })?;
            let nominal = fps.round() as u32;
            if f >= nominal {
                return Err(ShotProblem::UnknownTimebase(format!(
                    "timecode frame field {f} at {fps:.3} fps"
                )));
            }
            let mut frames = ((h * 60 + m) * 60 + s) as i64 * nominal as i64 + f as i64;
            if drop {
                if nominal != 30 && nominal != 60 {
                    return Err(ShotProblem::UnknownTimebase(format!(
                        "drop-frame timecode at {fps:.3} fps"
                    )));
                }
                let per = (nominal / 15) as i64; // frames dropped per minute
                let minutes = (h * 60 + m) as i64;
                frames -= per * (minutes - minutes / 10);
            }
            frames as f64 / fps
        }
    };
    if !(s.is_finite() && s >= 0.0) {
        return Err(ShotProblem::BadPoint(format!("{s} is not a time >= 0")));
    }
    Ok(s)
}

/// What is wrong with a source that could not be scanned.
fn source_problem(path: &std::path::Path, e: &MediaError) -> ShotProblem {
    match e {
        MediaError::NotFound(_) => ShotProblem::MissingSource(path.to_path_buf()),
        MediaError::NoVideoStream { .. } => ShotProblem::NoVideo(path.to_path_buf()),
        MediaError::Unreadable { reason, .. } => ShotProblem::Unreadable {
            path: path.to_path_buf(),
            cause: reason.clone(),
        },
        e => ShotProblem::Unreadable {
            path: path.to_path_buf(),
            cause: e.to_string(),
        },
    }
}

/// Scans every distinct source once and validates every shot; all problems
/// are returned together in [`AssembleError::Invalid`].
pub fn plan(entries: Vec<ShotEntry>) -> Result<Vec<Shot>> {
    let mut probed: HashMap<PathBuf, std::result::Result<Arc<ScannedSource>, MediaError>> =
        HashMap::new();
    for e in &entries {
        if let ShotSource::File(p) = &e.source {
            probed
                .entry(p.clone())
                .or_insert_with(|| scan(p).map(Arc::new));
        }
    }
    // Gaps given as EDL timecode use the first source's rate.
    let first_fps = entries.iter().find_map(|e| match &e.source {
        ShotSource::File(p) => probed.get(p)?.as_ref().ok().map(|s| s.fps()),
        ShotSource::Gap => None,
    });
    let mut shots = Vec::with_capacity(entries.len());
    let mut errors = Vec::new();
    for (i, e) in entries.into_iter().enumerate() {
        let number = i + 1;
        let mut problems = e.problems;
        let source = match &e.source {
            ShotSource::Gap => None,
            ShotSource::File(p) => match &probed[p] {
                Ok(info) => Some(Arc::clone(info)),
                Err(e) => {
                    problems.push(source_problem(p, e));
                    None
                }
            },
        };
        let is_file = matches!(e.source, ShotSource::File(_));
        let fps = match &source {
            Some(s) if s.fps() > 0.0 && s.fps().is_finite() => Some(s.fps()),
            Some(_) => None,
            None if is_file => None,
            None => first_fps,
        };
        let file_ok = !is_file || source.is_some();
        let (mut in_s, mut out_s) = (0.0, 0.0);
        if file_ok && problems.is_empty() {
            match (to_seconds(e.in_point, fps), to_seconds(e.out_point, fps)) {
                (Ok(i), Ok(o)) => {
                    in_s = i;
                    out_s = o;
                }
                (a, b) => problems.extend([a.err(), b.err()].into_iter().flatten()),
            }
            if problems.is_empty() && in_s >= out_s {
                problems.push(ShotProblem::InNotBeforeOut { in_s, out_s });
            }
            if let (Some(src), true) = (&source, problems.is_empty()) {
                let duration_s = src.duration_s();
                let half = 0.5 / fps.unwrap_or(1000.0);
                if out_s > duration_s + half {
                    problems.push(ShotProblem::OutBeyondDuration { out_s, duration_s });
                } else {
                    out_s = out_s.min(duration_s);
                }
            }
        }
        if problems.is_empty() {
            shots.push(Shot {
                number,
                label: e.label,
                source,
                in_s,
                out_s,
            });
        } else {
            errors.extend(problems.into_iter().map(|problem| ShotError {
                shot: number,
                label: e.label.clone(),
                problem,
            }));
        }
    }
    if errors.is_empty() {
        Ok(shots)
    } else {
        Err(AssembleError::Invalid(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_frame_timecode_skips_two_frames_per_minute_except_tenths() {
        let ntsc = 30000.0 / 1001.0;
        let tc = |m, s, f| Point::Timecode {
            h: 0,
            m,
            s,
            f,
            drop: true,
        };
        // 00:01:00;02 is frame 1800; 00:10:00;00 is frame 17982.
        let s = to_seconds(tc(1, 0, 2), Some(ntsc)).unwrap();
        assert!((s - 1800.0 / ntsc).abs() < 1e-9);
        let s = to_seconds(tc(10, 0, 0), Some(ntsc)).unwrap();
        assert!((s - 17982.0 / ntsc).abs() < 1e-9);
        assert!(matches!(
            to_seconds(tc(0, 1, 0), Some(25.0)),
            Err(ShotProblem::UnknownTimebase(_))
        ));
    }

    #[test]
    fn frames_need_a_rate() {
        assert!(matches!(
            to_seconds(Point::Frame(3), None),
            Err(ShotProblem::UnknownTimebase(_))
        ));
        assert_eq!(to_seconds(Point::Frame(50), Some(25.0)).unwrap(), 2.0);
        assert!(to_seconds(Point::Seconds(f64::NAN), None).is_err());
    }
}
