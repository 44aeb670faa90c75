//! Runs ByteTracker on a MOTChallenge detection file and writes MOT results.
//!
//! ```text
//! cargo run --release -p peregrine-track --example track_mot -- DETS OUT \
//!     [--frame-rate 30] [--track-thresh 0.5] [--new-track-thresh 0.6] \
//!     [--match-thresh 0.8] [--track-buffer 30] [--low-thresh 0.1] [--frames N]
//! ```
//! Input lines: `frame,-1,x,y,w,h,score,...` (frames 1-based, one class).
//! Output lines: `frame,id,x,y,w,h,score,-1,-1,-1` for tracked detections.
//! Every frame from 1 to the last one (or `--frames`) is fed, empty or not.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::process::ExitCode;

use peregrine_core::{BBox, Detection};
use peregrine_track::{ByteTrackConfig, ByteTracker};

fn parse_dets(text: &str, path: &str) -> Result<BTreeMap<u64, Vec<Detection>>, Box<dyn Error>> {
    let mut by_frame: BTreeMap<u64, Vec<Detection>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() < 7 {
            return Err(format!("{path}:{}: expected at least 7 fields", n + 1).into());
        }
        let num = |i: usize| -> Result<f32, Box<dyn Error>> {
            f[i].parse::<f32>()
                .map_err(|e| format!("{path}:{}: field {}: {e}", n + 1, i + 1).into())
        };
        let frame = num(0)? as u64;
        let bbox = BBox::from_xywh(num(2)?, num(3)?, num(4)?, num(5)?);
        by_frame
            .entry(frame)
            .or_default()
            .push(Detection::new(0, num(6)?, bbox));
    }
    Ok(by_frame)
}

fn run() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg = ByteTrackConfig::default();
    let mut frames: Option<u64> = None;
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(flag) = a.strip_prefix("--") {
            let v = it.next().ok_or_else(|| format!("--{flag} needs a value"))?;
            match flag {
                "frame-rate" => cfg.frame_rate = v.parse()?,
                "track-thresh" => cfg.track_thresh = v.parse()?,
                "new-track-thresh" => cfg.new_track_thresh = v.parse()?,
                "low-thresh" => cfg.low_thresh = v.parse()?,
                "match-thresh" => cfg.match_thresh = v.parse()?,
                "track-buffer" => cfg.track_buffer = v.parse()?,
                "frames" => frames = Some(v.parse()?),
                _ => return Err(format!("unknown flag --{flag}").into()),
            }
        } else {
            positional.push(a.clone());
        }
    }
    let [dets_path, out_path] = positional.as_slice() else {
        return Err("usage: track_mot DETS OUT [--frame-rate F] [--track-thresh T] ...".into());
    };
    let text = std::fs::read_to_string(dets_path).map_err(|e| format!("{dets_path}: {e}"))?;
    let mut by_frame = parse_dets(&text, dets_path)?;
    let last = frames.unwrap_or_else(|| by_frame.keys().next_back().copied().unwrap_or(0));

    let mut tracker = ByteTracker::new(cfg)?;
    let mut out = String::new();
    let mut empty = Vec::new();
    for frame in 1..=last {
        let dets = by_frame.get_mut(&frame).unwrap_or(&mut empty);
        tracker.update(frame, dets);
        for d in dets.iter() {
            if let Some(id) = d.track_id {
                let b = d.bbox;
                writeln!(
                    out,
                    "{frame},{id},{:.2},{:.2},{:.2},{:.2},{:.4},-1,-1,-1",
                    b.x1,
                    b.y1,
                    b.width(),
                    b.height(),
                    d.score
                )?;
            }
        }
    }
    std::fs::write(out_path, out).map_err(|e| format!("{out_path}: {e}"))?;
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("track_mot: {e}");
            ExitCode::FAILURE
        }
    }
}
