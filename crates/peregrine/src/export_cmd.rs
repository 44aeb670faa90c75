//! `peregrine runs` and `peregrine export`: reading stored results.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use peregrine_core::Labels;
use peregrine_eval::MotRow;
use peregrine_store::{DbTarget, DetectionRow, Results, RunRecord, RunStatus};

#[derive(Args, Debug)]
pub struct RunsArgs {
    /// Database: a SQLite file (`path` or `sqlite:path`) or `postgres://USER@HOST:PORT/DB`.
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
    /// COCO keypoint JSON (images, annotations with keypoints, the
    /// person category with its keypoint names and skeleton).
    Coco,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Run id (see `peregrine runs`).
    pub run: i64,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: ExportFormat,
    /// Output file (stdout when omitted). A regular file is written to a
    /// temporary file and renamed, so a failed export never leaves a partial
    /// file; a FIFO, a device or a symbolic link's target is written in
    /// place.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Database: a SQLite file (`path` or `sqlite:path`) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "PEREGRINE_DB", default_value = "peregrine.db")]
    pub db: PathBuf,
    /// Class names file (default: the names the run was analysed with).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Export only these classes (names or ids): person,car. `all` exports
    /// every class. MOT format default: person, when the run's classes have
    /// it (MOTChallenge scores pedestrians, and its rows carry no class).
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// MOT format: also write detections without a track (id -1). Left out
    /// by default: MOTChallenge tracker results hold tracked boxes only.
    #[arg(long)]
    pub include_untracked: bool,
}

/// Opens existing results for reading, a SQLite file (never created) or a
/// PostgreSQL database (`postgres://...`).
pub fn open_results(db: &Path) -> Result<Results> {
    let target = DbTarget::from_path(db);
    if let DbTarget::Sqlite(path) = &target {
        if !path.exists() {
            anyhow::bail!("{}: database not found", path.display());
        }
    }
    Ok(Results::open(&target, std::time::Duration::from_secs(5))?)
}

fn file_name(p: &str) -> String {
    Path::new(p)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.to_string())
}

pub fn runs(args: RunsArgs) -> Result<ExitCode> {
    let store = open_results(&args.db)?;
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

fn write_row(
    out: &mut impl Write,
    format: ExportFormat,
    names: &[String],
    d: &DetectionRow,
    keypoint_columns: usize,
) -> std::io::Result<()> {
    let b = &d.bbox;
    let class = names
        .get(d.class_id as usize)
        .map(String::as_str)
        .unwrap_or("");
    match format {
        ExportFormat::Jsonl => {
            serde_json::to_writer(&mut *out, &d.item(class))?;
            writeln!(out)
        }
        ExportFormat::Csv => {
            write!(
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
            )?;
            for i in 0..keypoint_columns {
                match d.keypoints.get(i) {
                    Some(k) => write!(out, ",{:.2},{:.2},{:.4}", k.x, k.y, k.score)?,
                    None => write!(out, ",,,")?,
                }
            }
            writeln!(out)
        }
        // Written by `write_coco`.
        ExportFormat::Coco => Ok(()),
        ExportFormat::Mot => {
            let r = mot_row(d);
            writeln!(
                out,
                "{},{},{:.2},{:.2},{:.2},{:.2},{:.6},-1,-1,-1",
                r.frame, r.id, r.x, r.y, r.w, r.h, r.conf
            )
        }
    }
}

/// A detection as a MOTChallenge row: 1-based frame, track id (-1 when
/// untracked), left, top, width, height, confidence. Values are those the
/// export writes (2 decimals for boxes, 6 for scores), so a stored run
/// scores exactly as its exported file does.
pub fn mot_row(d: &DetectionRow) -> MotRow {
    peregrine_store::evaluate::mot_row(d)
}

/// Column name of keypoint `i`: COCO's name for the 17 COCO keypoints,
/// else `kpN`.
fn keypoint_name(i: usize) -> String {
    peregrine_core::COCO_KEYPOINTS
        .get(i)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("kp{i}"))
}

/// One stderr line when a run's rows do not cover its input: it is still
/// running, or it failed or was interrupted. `doing` says what the command
/// does with them ("exporting", "listing the tracks of").
pub fn warn_if_incomplete(run: &RunRecord, doing: &str) {
    if !run.status.is_incomplete() {
        return;
    }
    if run.status == RunStatus::Running {
        eprintln!(
            "peregrine: warning: run {} is still running; {doing} what is stored so far",
            run.id
        );
    } else {
        eprintln!(
            "peregrine: warning: run {} is incomplete ({}); {doing} the {} detections stored before it stopped",
            run.id,
            run.status.as_str(),
            run.detections
        );
    }
}

/// Resolves `--classes` names or ids against the run's class names.
fn class_filter(classes: &[String], labels: &Labels) -> Result<Option<Vec<u16>>> {
    if classes.iter().all(|c| c.trim().is_empty())
        || classes.iter().any(|c| c.trim().eq_ignore_ascii_case("all"))
    {
        return Ok(None);
    }
    classes
        .iter()
        .filter(|c| !c.trim().is_empty())
        .map(|c| {
            labels
                .id_of(c)
                .map_err(|e| anyhow::anyhow!("--classes: {e}"))
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Where an export goes.
enum Destination {
    /// A regular file or a new path: a temporary file beside it, renamed
    /// over it once complete.
    Replace(PathBuf),
    /// A FIFO, a device or anything else that is not a regular file:
    /// written in place (renaming over it would replace it).
    InPlace,
}

fn destination(out: &Path) -> Result<Destination> {
    let link = match std::fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Destination::Replace(out.to_path_buf()))
        }
        Err(e) => {
            return Err(e).with_context(|| format!("{}: cannot write output file", out.display()))
        }
    };
    if link.is_dir() {
        anyhow::bail!("{}: is a directory", out.display());
    }
    if link.is_file() {
        return Ok(Destination::Replace(out.to_path_buf()));
    }
    // A symbolic link: its target is replaced, the link stays.
    if link.file_type().is_symlink() {
        if let Ok(target) = std::fs::metadata(out) {
            if target.is_dir() {
                anyhow::bail!("{}: is a directory", out.display());
            }
            if target.is_file() {
                let real = std::fs::canonicalize(out)
                    .with_context(|| format!("{}: cannot resolve link", out.display()))?;
                return Ok(Destination::Replace(real));
            }
        }
    }
    Ok(Destination::InPlace)
}

pub fn export(args: ExportArgs) -> Result<ExitCode> {
    let store = open_results(&args.db)?;
    let run = store.run(args.run)?;
    let labels = match &args.labels {
        Some(p) => Labels::from_file(p)?,
        None => run.labels(),
    };
    let mut classes = class_filter(&args.classes, &labels)?;
    if matches!(args.format, ExportFormat::Mot) && args.classes.is_empty() {
        // MOTChallenge rows have no class column and its benchmarks score
        // pedestrians: a file mixing cars and people scores neither. The
        // default matches `eval mot --run` (class person).
        if let Ok(person) = labels.id_of("person") {
            eprintln!(
                "peregrine: run {}: MOT export of class person only (--classes names others, --classes all every class)",
                run.id
            );
            classes = Some(vec![person]);
        }
    }
    let names: Vec<String> = (0..labels.len() as u16).map(|i| labels.name(i)).collect();
    let tracked_only = matches!(args.format, ExportFormat::Mot) && !args.include_untracked;
    let mut sink: Box<dyn Write> = Box::new(BufWriter::new(std::io::stdout().lock()));
    let mut tmp = None;
    if let Some(out) = &args.output {
        let cannot = || format!("{}: cannot write output file", out.display());
        match destination(out)? {
            Destination::Replace(path) => {
                let dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let f = tempfile::NamedTempFile::new_in(dir).with_context(cannot)?;
                sink = Box::new(BufWriter::with_capacity(1 << 16, f.reopen()?));
                tmp = Some((f, path));
            }
            Destination::InPlace => {
                // `create`: a dangling link's target is made.
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(out)
                    .with_context(cannot)?;
                sink = Box::new(BufWriter::with_capacity(1 << 16, f));
            }
        }
    }
    warn_if_incomplete(&run, "exporting");
    // A pose run (its first detection has keypoints) gets x, y and
    // confidence columns per keypoint, named after COCO's keypoints.
    let keypoint_columns = store
        .detections_page(
            args.run,
            &peregrine_store::DetectionQuery {
                limit: 1,
                ..Default::default()
            },
        )?
        .items
        .first()
        .map_or(0, |d| d.keypoints.len());
    if matches!(args.format, ExportFormat::Csv) {
        write!(sink, "frame,t,class,class_id,score,x1,y1,x2,y2,track_id")?;
        for i in 0..keypoint_columns {
            let n = keypoint_name(i);
            write!(sink, ",{n}_x,{n}_y,{n}_conf")?;
        }
        writeln!(sink)?;
    }
    if matches!(args.format, ExportFormat::Coco) {
        let written =
            crate::export_coco::write_coco(&store, &run, &names, classes.as_deref(), &mut sink)
                .and_then(|()| sink.flush().map_err(anyhow::Error::from));
        match written {
            Err(e)
                if e.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
            {
                return Ok(ExitCode::SUCCESS)
            }
            other => other.context("writing export")?,
        }
        drop(sink);
        if let Some((f, path)) = tmp {
            f.persist(&path)
                .with_context(|| format!("{}: cannot write output file", path.display()))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut untracked = 0u64;
    let written = store
        .for_each_detection(args.run, |d| {
            if classes.as_ref().is_some_and(|c| !c.contains(&d.class_id)) {
                return Ok(());
            }
            if tracked_only && d.track_id.is_none() {
                untracked += 1;
                return Ok(());
            }
            write_row(&mut sink, args.format, &names, d, keypoint_columns)
        })?
        .and_then(|_| sink.flush());
    match written {
        // A reader that stops early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        other => other.context("writing export")?,
    }
    drop(sink);
    if let Some((f, path)) = tmp {
        f.persist(&path)
            .with_context(|| format!("{}: cannot write output file", path.display()))?;
    }
    if untracked > 0 {
        eprintln!(
            "peregrine: run {}: {untracked} detections without a track id left out of the MOT export (--include-untracked writes them with id -1)",
            args.run
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct TracksArgs {
    /// Run id (see `peregrine runs`).
    pub run: i64,
    /// Database: a SQLite file (`path` or `sqlite:path`) or `postgres://USER@HOST:PORT/DB`.
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
    let store = open_results(&args.db)?;
    let run = store.run(args.run)?;
    let tracks = store.tracks(args.run)?;
    warn_if_incomplete(&run, "listing the tracks of");
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &tracks)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let labels = match &args.labels {
        Some(p) => Labels::from_file(p)?,
        None => run.labels(),
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
