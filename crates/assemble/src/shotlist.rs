//! Shot list parsing: JSON, TOML, CMX3600 EDL and OpenTimelineIO JSON into
//! one ordered list of [`ShotEntry`].
//!
//! A key design decision here is to parse every entry independently and keep
//! its problems beside it instead of stopping at the first one: validation
//! (see [`crate::plan`]) then reports all of them together, with shot numbers.
//! Points stay symbolic (seconds, frames, timecode) until the source is probed,
//! because frames and EDL timecodes mean nothing without the source's rate.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{AssembleError, Result, ShotProblem};

/// An in or out point as written in the shot list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Point {
    Seconds(f64),
    /// A frame index at the source's frame rate.
    Frame(i64),
    /// An EDL timecode at the source's nominal rate; `drop` for `;` drop-frame.
    Timecode {
        h: u32,
        m: u32,
        s: u32,
        f: u32,
        drop: bool,
    },
}

/// Where a shot's pictures come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ShotSource {
    File(PathBuf),
    /// Black picture and silence (OTIO gaps, EDL `BL` reels).
    Gap,
}

/// One entry of a shot list, before probing.
#[derive(Debug, Clone, PartialEq)]
pub struct ShotEntry {
    pub source: ShotSource,
    pub in_point: Point,
    pub out_point: Point,
    pub label: Option<String>,
    /// Problems found while parsing this entry (reported with the others).
    pub problems: Vec<ShotProblem>,
}

/// The input formats, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShotListFormat {
    Json,
    Toml,
    Edl,
    Otio,
}

impl ShotListFormat {
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(Self::Json),
            "toml" => Some(Self::Toml),
            "edl" => Some(Self::Edl),
            "otio" => Some(Self::Otio),
            _ => None,
        }
    }
}

/// Reads and parses a shot list; relative sources resolve against its folder.
pub fn read_shot_list(path: &Path) -> Result<Vec<ShotEntry>> {
    let fail = |cause: String| AssembleError::ShotList {
        path: path.to_path_buf(),
        cause,
    };
    let format = ShotListFormat::from_path(path).ok_or_else(|| {
        fail("unknown shot list format (expected .json, .toml, .edl or .otio)".into())
    })?;
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("unreadable: {e}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let shots = parse_shot_list(&text, format, base).map_err(fail)?;
    if shots.is_empty() {
        return Err(fail("the shot list has no shots".into()));
    }
    Ok(shots)
}

/// Parses shot list text; `base` resolves relative source paths.
pub fn parse_shot_list(
    text: &str,
    format: ShotListFormat,
    base: &Path,
) -> std::result::Result<Vec<ShotEntry>, String> {
    match format {
        ShotListFormat::Json => {
            let v: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
            parse_simple(v, base)
        }
        ShotListFormat::Toml => {
            let t: toml::Value = toml::from_str(text).map_err(|e| format!("invalid TOML: {e}"))?;
            let v = serde_json::to_value(t).map_err(|e| format!("invalid TOML: {e}"))?;
            parse_simple(v, base)
        }
        ShotListFormat::Edl => parse_edl(text, base),
        ShotListFormat::Otio => {
            let v: Value =
                serde_json::from_str(text).map_err(|e| format!("invalid OTIO JSON: {e}"))?;
            parse_otio(&v, base)
        }
    }
}

fn resolve(base: &Path, source: &str) -> PathBuf {
    let p = Path::new(source);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShot {
    source: Option<String>,
    #[serde(rename = "in")]
    in_s: Option<f64>,
    out: Option<f64>,
    in_frame: Option<i64>,
    out_frame: Option<i64>,
    label: Option<String>,
}

fn parse_simple(v: Value, base: &Path) -> std::result::Result<Vec<ShotEntry>, String> {
    let Some(list) = v.get("shots").and_then(Value::as_array) else {
        return Err("expected a top-level \"shots\" array".into());
    };
    Ok(list.iter().map(|s| parse_simple_shot(s, base)).collect())
}

fn parse_simple_shot(v: &Value, base: &Path) -> ShotEntry {
    let mut entry = ShotEntry {
        source: ShotSource::Gap,
        in_point: Point::Seconds(0.0),
        out_point: Point::Seconds(0.0),
        label: v.get("label").and_then(Value::as_str).map(str::to_owned),
        problems: Vec::new(),
    };
    let raw: RawShot = match serde_json::from_value(v.clone()) {
        Ok(r) => r,
        Err(e) => {
            entry.problems.push(ShotProblem::Malformed(e.to_string()));
            return entry;
        }
    };
    entry.label = raw.label;
    match raw.source.as_deref() {
        Some(s) if !s.trim().is_empty() => entry.source = ShotSource::File(resolve(base, s)),
        _ => entry
            .problems
            .push(ShotProblem::Malformed("missing \"source\"".into())),
    }
    let mut point = |secs: Option<f64>, frame: Option<i64>, name: &str| match (secs, frame) {
        (Some(s), None) => Some(Point::Seconds(s)),
        (None, Some(f)) => Some(Point::Frame(f)),
        (Some(_), Some(_)) => {
            entry.problems.push(ShotProblem::Malformed(format!(
                "both \"{name}\" and \"{name}_frame\" given"
            )));
            None
        }
        (None, None) => {
            entry.problems.push(ShotProblem::Malformed(format!(
                "missing \"{name}\" (seconds) or \"{name}_frame\""
            )));
            None
        }
    };
    let i = point(raw.in_s, raw.in_frame, "in");
    let o = point(raw.out, raw.out_frame, "out");
    if let Some(i) = i {
        entry.in_point = i;
    }
    if let Some(o) = o {
        entry.out_point = o;
    }
    entry
}

fn parse_timecode(tc: &str) -> Option<Point> {
    let drop = tc.contains(';');
    let parts: Vec<u32> = tc
        .split([':', ';', '.'])
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s, f] = parts[..] else {
        return None;
    };
    (m < 60 && s < 60).then_some(Point::Timecode { h, m, s, f, drop })
}

/// CMX3600: `NNN REEL TRACK TRANS [DUR] SRC_IN SRC_OUT REC_IN REC_OUT`, with
/// `* FROM CLIP NAME:` / `* SOURCE FILE:` comments naming the file. Events
/// are taken in list order; only events on the video track are used.
fn parse_edl(text: &str, base: &Path) -> std::result::Result<Vec<ShotEntry>, String> {
    let mut shots: Vec<ShotEntry> = Vec::new();
    // Reel name of the last event, to fall back on when no comment names a file.
    let mut reels: Vec<Option<String>> = Vec::new();
    let mut named: Vec<bool> = Vec::new();
    let mut fcm_problem: Option<String> = None;
    let mut last_is_video = false;
    for (lineno, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with("TITLE:") {
            continue;
        }
        if let Some(fcm) = t.strip_prefix("FCM:") {
            let fcm = fcm.trim().to_ascii_uppercase();
            fcm_problem = match fcm.as_str() {
                "NON-DROP FRAME" | "DROP FRAME" => None,
                other => Some(format!("EDL frame code mode \"{other}\"")),
            };
            continue;
        }
        if let Some(c) = t.strip_prefix('*') {
            if !last_is_video {
                continue;
            }
            let c = c.trim();
            let name = c
                .strip_prefix("FROM CLIP NAME:")
                .or_else(|| c.strip_prefix("SOURCE FILE:"));
            if let (Some(name), Some(shot)) = (name, shots.last_mut()) {
                let is_file = c.starts_with("SOURCE FILE:");
                // SOURCE FILE wins over FROM CLIP NAME.
                if is_file || !named.last().copied().unwrap_or(false) {
                    if shot.source != ShotSource::Gap {
                        shot.source = ShotSource::File(resolve(base, name.trim()));
                    }
                    if let Some(n) = named.last_mut() {
                        *n = is_file || *n;
                    }
                    if shot.label.is_none() && !is_file {
                        shot.label = Some(name.trim().to_owned());
                    }
                }
            }
            continue;
        }
        let tokens: Vec<&str> = t.split_whitespace().collect();
        if tokens
            .first()
            .is_none_or(|n| !n.chars().all(|c| c.is_ascii_digit()))
        {
            // Other directives (M2 motion effects, SPLIT, ...) are ignored.
            last_is_video = false;
            continue;
        }
        if tokens.len() < 8 {
            return Err(format!("line {}: event has too few fields", lineno + 1));
        }
        let (reel, track, trans) = (tokens[1], tokens[2], tokens[3]);
        let tcs = &tokens[tokens.len() - 4..];
        last_is_video = track.contains('V') || track == "B";
        if !last_is_video {
            continue;
        }
        let mut entry = ShotEntry {
            source: if reel.eq_ignore_ascii_case("BL") || reel.eq_ignore_ascii_case("BLACK") {
                ShotSource::Gap
            } else {
                ShotSource::File(resolve(base, reel))
            },
            in_point: Point::Seconds(0.0),
            out_point: Point::Seconds(0.0),
            label: None,
            problems: Vec::new(),
        };
        if !trans.eq_ignore_ascii_case("C") {
            entry.problems.push(ShotProblem::Malformed(format!(
                "transition \"{trans}\" is not supported (cuts only)"
            )));
        }
        if let Some(p) = &fcm_problem {
            entry.problems.push(ShotProblem::UnknownTimebase(p.clone()));
        }
        match (parse_timecode(tcs[0]), parse_timecode(tcs[1])) {
            (Some(i), Some(o)) => {
                entry.in_point = i;
                entry.out_point = o;
            }
            _ => entry.problems.push(ShotProblem::BadPoint(format!(
                "bad timecode \"{}\" or \"{}\"",
                tcs[0], tcs[1]
            ))),
        }
        if entry.source == ShotSource::Gap {
            // A black event lasts its record duration; keep it symbolic.
            if let (Some(ri), Some(ro)) = (parse_timecode(tcs[2]), parse_timecode(tcs[3])) {
                entry.in_point = ri;
                entry.out_point = ro;
            }
        }
        shots.push(entry);
        reels.push(Some(reel.to_owned()));
        named.push(false);
    }
    Ok(shots)
}

fn rational_time(v: &Value) -> std::result::Result<f64, ShotProblem> {
    let value = v.get("value").and_then(Value::as_f64);
    let rate = v.get("rate").and_then(Value::as_f64);
    match (value, rate) {
        (Some(_), Some(r)) if !(r.is_finite() && r > 0.0) => {
            Err(ShotProblem::UnknownTimebase(format!("OTIO rate {r}")))
        }
        (Some(value), Some(rate)) => Ok(value / rate),
        _ => Err(ShotProblem::Malformed(
            "RationalTime needs numeric \"value\" and \"rate\"".into(),
        )),
    }
}

fn schema(v: &Value) -> &str {
    v.get("OTIO_SCHEMA").and_then(Value::as_str).unwrap_or("")
}

fn time_range(v: &Value) -> std::result::Result<(f64, f64), ShotProblem> {
    let start = rational_time(v.get("start_time").unwrap_or(&Value::Null))?;
    let dur = rational_time(v.get("duration").unwrap_or(&Value::Null))?;
    Ok((start, start + dur))
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn url_to_path(base: &Path, url: &str) -> PathBuf {
    let raw = url.strip_prefix("file://").unwrap_or(url);
    // Minimal percent-decoding of the file URL.
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Two hex digits after `%`, checked as bytes: slicing the text
        // there could split a multi-byte character.
        if let [b'%', h, l, ..] = bytes[i..] {
            if let (Some(h), Some(l)) = (hex_digit(h), hex_digit(l)) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    resolve(base, &String::from_utf8_lossy(&out))
}

/// OpenTimelineIO: a `Timeline` whose `Stack` holds exactly one video `Track`
/// (or a bare `Track`); its `Clip`s and `Gap`s become shots in order.
fn parse_otio(v: &Value, base: &Path) -> std::result::Result<Vec<ShotEntry>, String> {
    let track = if schema(v).starts_with("Timeline.") {
        let stack = v.get("tracks").ok_or("OTIO timeline has no \"tracks\"")?;
        let children = stack
            .get("children")
            .and_then(Value::as_array)
            .ok_or("OTIO stack has no \"children\"")?;
        let videos: Vec<&Value> = children
            .iter()
            .filter(|t| {
                schema(t).starts_with("Track.")
                    && t.get("kind").and_then(Value::as_str) == Some("Video")
            })
            .collect();
        match videos[..] {
            [one] => one,
            [] => return Err("OTIO timeline has no video track".into()),
            _ => {
                return Err(format!(
                    "OTIO timeline has {} video tracks; only one is supported",
                    videos.len()
                ))
            }
        }
    } else if schema(v).starts_with("Track.") {
        v
    } else {
        return Err(format!("unsupported OTIO root \"{}\"", schema(v)));
    };
    let items = track
        .get("children")
        .and_then(Value::as_array)
        .ok_or("OTIO track has no \"children\"")?;
    let mut shots = Vec::new();
    for item in items {
        let kind = schema(item);
        let mut entry = ShotEntry {
            source: ShotSource::Gap,
            in_point: Point::Seconds(0.0),
            out_point: Point::Seconds(0.0),
            label: item
                .get("name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            problems: Vec::new(),
        };
        if kind.starts_with("Transition.") {
            entry.problems.push(ShotProblem::Malformed(
                "transitions are not supported".into(),
            ));
            shots.push(entry);
            continue;
        }
        let is_clip = kind.starts_with("Clip.");
        if !is_clip && !kind.starts_with("Gap.") {
            entry.problems.push(ShotProblem::Malformed(format!(
                "unsupported OTIO item \"{kind}\""
            )));
            shots.push(entry);
            continue;
        }
        let media = if is_clip {
            // Clip.1: media_reference; Clip.2: media_references[active key].
            item.get("media_reference").or_else(|| {
                let key = item
                    .get("active_media_reference_key")
                    .and_then(Value::as_str)
                    .unwrap_or("DEFAULT_MEDIA");
                item.get("media_references").and_then(|m| m.get(key))
            })
        } else {
            None
        };
        if is_clip {
            match media
                .and_then(|m| m.get("target_url"))
                .and_then(Value::as_str)
            {
                Some(url) => entry.source = ShotSource::File(url_to_path(base, url)),
                None => entry.problems.push(ShotProblem::Malformed(
                    "clip has no external media reference (target_url)".into(),
                )),
            }
        }
        let range = item
            .get("source_range")
            .filter(|r| !r.is_null())
            .or_else(|| {
                media
                    .and_then(|m| m.get("available_range"))
                    .filter(|r| !r.is_null())
            });
        match range.map(time_range) {
            Some(Ok((i, o))) => {
                if is_clip {
                    entry.in_point = Point::Seconds(i);
                    entry.out_point = Point::Seconds(o);
                } else {
                    entry.out_point = Point::Seconds(o - i);
                }
            }
            Some(Err(p)) => entry.problems.push(p),
            None => entry.problems.push(ShotProblem::Malformed(
                "no source_range (nor media available_range)".into(),
            )),
        }
        shots.push(entry);
    }
    Ok(shots)
}
