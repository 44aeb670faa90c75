//! `peregrine runs` and `peregrine export`: reading stored results.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use peregrine_core::Labels;
use peregrine_pipeline::run_labels;
use peregrine_store::{DetectionRow, RunRecord, Store};
use serde::Serialize;

#[derive(Args, Debug)]
pub struct RunsArgs {
    #[arg(long, env = "PEREGRINE_DB", default_value = "peregrine.db")]
    pub db: PathBuf,
    /// A JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
    Mot,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Run id (see `peregrine runs`).
    pub run: i64,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: ExportFormat,
    /// Output file (stdout when omitted). Written to a temporary file and
    /// renamed, so a failed export never leaves a partial file.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[arg(long, env = "PEREGRINE_DB", default_value = "peregrine.db")]
    pub db: PathBuf,
    /// Class names file (default: the names the run was analysed with).
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

/// Opens an existing database for reading; never creates one.
pub fn open_existing(db: &Path) -> Result<Store> {
    if !db.exists() {
        anyhow::bail!("{}: database not found", db.display());
    }
    Ok(Store::open(db)?)
}

fn file_name(p: &str) -> String {
    Path::new(p)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.to_string())
}

pub fn runs(args: RunsArgs) -> Result<ExitCode> {
    let store = open_existing(&args.db)?;
    let runs: Vec<RunRecord> = store.runs()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &runs)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:>5}  {:<11} {:<40} {:>7} {:>9} {:>7}  {:<22} started",
        "run", "status", "video", "frames", "dets", "fps", "model"
    )?;
    for r in &runs {
        writeln!(
            out,
            "{:>5}  {:<11} {:<40} {:>7} {:>9} {:>7.1}  {:<22} {}",
            r.id,
            r.status.as_str(),
            file_name(&r.video_path),
            r.frames,
            r.detections,
            r.fps.unwrap_or(0.0),
            file_name(&r.model_path),
            r.started_at
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct JsonRow<'a> {
    frame: u64,
    t: f64,
    class: &'a str,
    class_id: u16,
    score: f32,
    x1: f32,
    y1: f32,
    x2: f32,
    y2: f32,
    track_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keypoints: Option<Vec<[f32; 3]>>,
}

fn write_row(
    out: &mut impl Write,
    format: ExportFormat,
    names: &[String],
    d: &DetectionRow,
) -> std::io::Result<()> {
    let b = &d.bbox;
    let class = names
        .get(d.class_id as usize)
        .map(String::as_str)
        .unwrap_or("");
    match format {
        ExportFormat::Jsonl => {
            let row = JsonRow {
                frame: d.frame,
                t: d.t,
                class,
                class_id: d.class_id,
                score: d.score,
                x1: b.x1,
                y1: b.y1,
                x2: b.x2,
                y2: b.y2,
                track_id: d.track_id,
                keypoints: (!d.keypoints.is_empty())
                    .then(|| d.keypoints.iter().map(|k| [k.x, k.y, k.score]).collect()),
            };
            serde_json::to_writer(&mut *out, &row)?;
            writeln!(out)
        }
        ExportFormat::Csv => writeln!(
            out,
            "{},{:.6},{},{},{:.6},{:.2},{:.2},{:.2},{:.2},{}",
            d.frame,
            d.t,
            class,
            d.class_id,
            d.score,
            b.x1,
            b.y1,
            b.x2,
            b.y2,
            d.track_id.map(|t| t.to_string()).unwrap_or_default()
        ),
        // MOTChallenge: 1-based frame, id (-1 when untracked), left, top,
        // width, height, confidence, then -1 for the 3D columns.
        ExportFormat::Mot => writeln!(
            out,
            "{},{},{:.2},{:.2},{:.2},{:.2},{:.6},-1,-1,-1",
            d.frame + 1,
            d.track_id.map(|t| t as i64).unwrap_or(-1),
            b.x1,
            b.y1,
            b.width(),
            b.height(),
            d.score
        ),
    }
}

pub fn export(args: ExportArgs) -> Result<ExitCode> {
    let store = open_existing(&args.db)?;
    let run = store.run(args.run)?;
    let labels = match &args.labels {
        Some(p) => Labels::from_file(p)?,
        None => run_labels(&run),
    };
    let names: Vec<String> = (0..labels.len() as u16).map(|i| labels.name(i)).collect();
    if run.status.as_str() == "running" {
        eprintln!(
            "peregrine: warning: run {} is still running; exporting what is stored so far",
            run.id
        );
    }
    let mut sink: Box<dyn Write> = match &args.output {
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
        Some(_) => Box::new(std::io::sink()),
    };
    let mut tmp = None;
    if let Some(out) = &args.output {
        let dir = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let f = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("{}: cannot create output file", out.display()))?;
        sink = Box::new(BufWriter::with_capacity(1 << 16, f.reopen()?));
        tmp = Some(f);
    }
    if matches!(args.format, ExportFormat::Csv) {
        writeln!(sink, "frame,t,class,class_id,score,x1,y1,x2,y2,track_id")?;
    }
    let written = store
        .for_each_detection(args.run, |d| write_row(&mut sink, args.format, &names, d))?
        .and_then(|_| sink.flush());
    match written {
        // A reader that stops early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        other => other.context("writing export")?,
    }
    drop(sink);
    if let (Some(f), Some(out)) = (tmp, &args.output) {
        f.persist(out)
            .with_context(|| format!("{}: cannot write output file", out.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct TracksArgs {
    /// Run id (see `peregrine runs`).
    pub run: i64,
    #[arg(long, env = "PEREGRINE_DB", default_value = "peregrine.db")]
    pub db: PathBuf,
    /// A JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Class names file (default: the names the run was analysed with).
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

pub fn tracks(args: TracksArgs) -> Result<ExitCode> {
    let store = open_existing(&args.db)?;
    let tracks = store.tracks(args.run)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &tracks)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let labels = match &args.labels {
        Some(p) => Labels::from_file(p)?,
        None => run_labels(&store.run(args.run)?),
    };
    writeln!(
        out,
        "{:>6}  {:<14} {:>7} {:>7} {:>8} {:>8} {:>6} {:>6} {:>9} {:>9} {:>9}",
        "track",
        "class",
        "first",
        "last",
        "from s",
        "to s",
        "seen",
        "score",
        "path px",
        "mean px/s",
        "max px/s"
    )?;
    for t in &tracks {
        writeln!(
            out,
            "{:>6}  {:<14} {:>7} {:>7} {:>8.2} {:>8.2} {:>6} {:>6.2} {:>9.1} {:>9.1} {:>9.1}",
            t.track_id,
            labels.name(t.class_id),
            t.first_frame,
            t.last_frame,
            t.first_t,
            t.last_t,
            t.frames,
            t.mean_score,
            t.path_px,
            t.mean_speed,
            t.max_speed
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
