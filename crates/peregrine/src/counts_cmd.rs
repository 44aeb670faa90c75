//! `peregrine counts`: a run's line crossings and zone occupancy, stored
//! or replayed with other lines and zones; the `--line`/`--zone` flags it
//! shares with `analyze`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use peregrine_analytics::{counts_json, SpatialCounter};
use peregrine_core::{
    Detection, GroundTrack, IntervalCounts, Labels, PointPair, SpatialSpec, TrackSpec,
};
use peregrine_pipeline::AnalyzeParams;
use peregrine_store::{Results, RunRecord};
use serde_json::Value;

use crate::export_cmd::{open_results, warn_if_incomplete};

/// Counting lines, zones and calibration (`analyze`, `counts`).
#[derive(Args, Debug, Clone, Default)]
pub struct SpatialFlags {
    /// Counting line NAME=X1,Y1,X2,Y2 in source-frame pixels (repeatable).
    #[arg(long = "line", value_name = "NAME=X1,Y1,X2,Y2")]
    pub lines: Vec<String>,
    /// Zone NAME=X,Y;X,Y;X,Y[;...] in source-frame pixels (repeatable).
    #[arg(long = "zone", value_name = "NAME=X,Y;X,Y;...")]
    pub zones: Vec<String>,
    /// Box point that stands for an object: bottom-center (default),
    /// center, top-center, center-left, center-right, top-left, ...
    #[arg(long)]
    pub anchor: Option<String>,
    /// Counting interval, seconds of video time (default 60).
    #[arg(long)]
    pub interval: Option<f64>,
    /// TOML file of four or more image ↔ ground point pairs (metres), for
    /// distances, speeds and zone areas in real units.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
}

/// `calib.toml`:
///
/// ```toml
/// [[points]]
/// image = [512.0, 700.0]   # pixels
/// ground = [0.0, 0.0]      # metres
/// ```
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CalibrationFile {
    points: Vec<PointPair>,
}

pub fn load_calibration(path: &Path) -> Result<Vec<PointPair>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read calibration", path.display()))?;
    let file: CalibrationFile = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a calibration file: {}",
            path.display(),
            e.message()
        )
    })?;
    if file.points.len() < 4 {
        bail!(
            "{}: a calibration needs at least 4 point pairs, got {}",
            path.display(),
            file.points.len()
        );
    }
    peregrine_analytics::Homography::from_pairs(&file.points)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(file.points)
}

impl SpatialFlags {
    /// Fills the spatial fields of analysis parameters.
    pub fn apply(&self, p: &mut AnalyzeParams) -> Result<()> {
        p.line = (!self.lines.is_empty()).then(|| self.lines.clone());
        p.zone = (!self.zones.is_empty()).then(|| self.zones.clone());
        p.anchor = self.anchor.clone();
        p.interval = self.interval;
        p.calibration = self
            .calibration
            .as_deref()
            .map(load_calibration)
            .transpose()?;
        Ok(())
    }

    fn any(&self) -> bool {
        !self.lines.is_empty() || !self.zones.is_empty() || self.calibration.is_some()
    }

    /// The spec these flags ask for, validated like `analyze`'s.
    fn spec(&self) -> Result<SpatialSpec> {
        let mut p = AnalyzeParams::default();
        self.apply(&mut p)?;
        let opts = p
            .resolve(&Labels::coco())
            .map_err(|e| anyhow::anyhow!("--{e}"))?;
        opts.run
            .spatial
            .context("no --line, --zone or --calibration")
    }
}

#[derive(Args, Debug)]
pub struct CountsArgs {
    /// Run id (see `peregrine runs`).
    pub run: i64,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// Database: a SQLite file (`path` or `sqlite:path`) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "PEREGRINE_DB", default_value = "peregrine.db")]
    pub db: PathBuf,
    /// Replay the run's stored tracks with these lines and zones instead
    /// of printing its stored counts.
    #[command(flatten)]
    pub spatial: SpatialFlags,
}

/// Frames after which an unseen track of `run` had ended, as the run's
/// tracker decided it.
fn run_idle_frames(run: &RunRecord) -> u64 {
    let mut spec = TrackSpec::default();
    if let Some(b) = run
        .params
        .pointer("/track/track_buffer")
        .and_then(Value::as_u64)
    {
        spec.track_buffer = b as u32;
    }
    peregrine_pipeline::processors::idle_frames(&spec, run.video_fps)
}

/// What a replay yields: intervals, tracks' ground motion, zone areas
/// (m², with a calibration).
pub type Replay = (Vec<IntervalCounts>, Vec<GroundTrack>, Option<Vec<f64>>);

/// The counts of `spec` over `run`'s stored frames and tracks: the same
/// counter the analysis runs, fed the frames it stored.
pub fn replay(store: &Results, run: &RunRecord, spec: &SpatialSpec) -> Result<Replay> {
    let mut counter =
        SpatialCounter::new(spec, run_idle_frames(run)).map_err(anyhow::Error::msg)?;
    let (mut counts, mut ground) = (Vec::new(), Vec::new());
    let mut dets: Vec<Detection> = Vec::new();
    store
        .for_each_frame(run.id, run.width, run.height, |meta, rows| {
            dets.clear();
            dets.extend(rows.iter().map(|r| {
                let mut d = Detection::new(r.class_id, r.score, r.bbox);
                d.track_id = r.track_id;
                d
            }));
            counter.observe(meta, &dets, &mut counts, &mut ground);
            Ok::<(), ()>(())
        })?
        .ok();
    counter.finish(0, &mut counts, &mut ground);
    Ok((counts, ground, counter.zone_areas_m2()))
}

/// The document `counts --json` prints.
pub fn counts_document(store: &Results, run: &RunRecord, flags: &SpatialFlags) -> Result<Value> {
    if flags.any() {
        if run.params.get("track").is_none_or(Value::is_null) {
            bail!(
                "run {}: analysed without tracking (--no-track); nothing to count",
                run.id
            );
        }
        let spec = flags.spec()?;
        let (counts, ground, areas) = replay(store, run, &spec)?;
        let mut doc = counts_json(&spec, &counts, &ground, areas.as_deref(), &run.labels());
        doc["run_id"] = run.id.into();
        doc["replayed"] = true.into();
        return Ok(doc);
    }
    match store.counts_json(run)? {
        Some(doc) => Ok(doc),
        None => bail!(
            "run {}: analysed without lines or zones; pass --line/--zone to replay its tracks",
            run.id
        ),
    }
}

fn print_table(doc: &Value) {
    let f = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.2}"));
    println!(
        "run {} (interval {} s, anchor {})",
        doc["run_id"],
        doc["interval_s"],
        doc["anchor"].as_str().unwrap_or("")
    );
    let lines = doc["lines"].as_array().cloned().unwrap_or_default();
    let zones = doc["zones"].as_array().cloned().unwrap_or_default();
    if !lines.is_empty() {
        println!("{:<16} {:>8} {:>8}  by class", "line", "in", "out");
        for l in &lines {
            let classes: Vec<String> = l["by_class"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| format!("{k} {}/{}", v["in"], v["out"]))
                        .collect()
                })
                .unwrap_or_default();
            println!(
                "{:<16} {:>8} {:>8}  {}",
                l["name"].as_str().unwrap_or(""),
                l["in"].to_string(),
                l["out"].to_string(),
                classes.join(", ")
            );
        }
    }
    if !zones.is_empty() {
        println!(
            "{:<16} {:>6} {:>8} {:>8} {:>8} {:>10} {:>10}",
            "zone", "max", "mean", "entries", "exits", "dwell s", "max dwell"
        );
        for z in &zones {
            println!(
                "{:<16} {:>6} {:>8} {:>8} {:>8} {:>10} {:>10}",
                z["name"].as_str().unwrap_or(""),
                z["max"].to_string(),
                f(&z["mean"]),
                z["entries"].to_string(),
                z["exits"].to_string(),
                f(&z["dwell_s"]["mean"]),
                f(&z["dwell_s"]["max"])
            );
        }
    }
    let intervals = doc["intervals"].as_array().cloned().unwrap_or_default();
    if !intervals.is_empty() {
        let mut head = format!("{:<15}", "interval s");
        for l in &lines {
            head.push_str(&format!(
                " {:>14}",
                format!("{} in/out", l["name"].as_str().unwrap_or(""))
            ));
        }
        for z in &zones {
            head.push_str(&format!(
                " {:>16}",
                format!("{} max/mean", z["name"].as_str().unwrap_or(""))
            ));
        }
        println!("{head}");
        for iv in &intervals {
            let mut row = format!(
                "{:<15}",
                format!(
                    "{}-{}",
                    iv["start_s"].as_f64().unwrap_or(0.0),
                    iv["end_s"].as_f64().unwrap_or(0.0)
                )
            );
            for l in iv["lines"].as_array().into_iter().flatten() {
                row.push_str(&format!(" {:>14}", format!("{}/{}", l["in"], l["out"])));
            }
            for z in iv["zones"].as_array().into_iter().flatten() {
                row.push_str(&format!(
                    " {:>16}",
                    format!("{}/{}", z["max"], f(&z["mean"]))
                ));
            }
            println!("{row}");
        }
    }
    if let Some(tracks) = doc["tracks"].as_array() {
        println!(
            "{:<8} {:>12} {:>12} {:>12}",
            "track", "distance m", "mean km/h", "max km/h"
        );
        for t in tracks {
            println!(
                "{:<8} {:>12} {:>12} {:>12}",
                t["track_id"].to_string(),
                f(&t["distance_m"]),
                f(&t["mean_speed_km_h"]),
                f(&t["max_speed_km_h"])
            );
        }
    }
}

pub fn run(args: CountsArgs) -> Result<ExitCode> {
    let store = open_results(&args.db)?;
    let run = store.run(args.run)?;
    warn_if_incomplete(&run, "counting");
    let doc = counts_document(&store, &run, &args.spatial)?;
    if args.json {
        println!("{doc}");
    } else {
        print_table(&doc);
    }
    Ok(ExitCode::SUCCESS)
}
