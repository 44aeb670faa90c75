//! `peregrine eval`: score tracks and detections against ground truth, from
//! files or from stored runs.
//!
//! A key design decision here is that this module only adapts inputs: files
//! go straight to `peregrine-eval`, stored runs are streamed out of the store
//! into the same in-memory MOTChallenge rows a results file would give, so a
//! run and its `peregrine export --format mot` file always score the same.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use peregrine_eval::{
    discover, evaluate_sequence, read_coco_dets, read_coco_gt, Benchmark, CocoData, CocoReport,
    CocoStats, FileRole, MotFile, MotMetrics, MotOptions, MotReport, Protocol, SeqInfo,
    SequencePaths, SequenceReport,
};
use peregrine_store::Store;

use crate::export_cmd::{mot_row, warn_if_incomplete};
use serde_json::json;

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: EvalCommand,
}

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Tracking metrics (CLEAR MOT, IDF1, HOTA) against MOTChallenge ground truth.
    Mot(MotArgs),
    /// Detection metrics (COCO AP/AR) from COCO JSON or MOTChallenge boxes.
    Det(DetArgs),
    /// Side-by-side tracking and detection metrics of two stored runs.
    Compare(CompareArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BenchmarkArg {
    /// 9 columns: MOT16/17, otherwise MOT15.
    Auto,
    Mot15,
    Mot16,
    Mot17,
    Mot20,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProtocolArg {
    /// TrackEval/MOTChallenge: consider flag, pedestrians only, distractors removed.
    Motchallenge,
    /// py-motmetrics' eval_motchallenge: ground truth with conf >= 1, no class handling.
    Motmetrics,
}

#[derive(Args, Debug)]
pub struct GtOptions {
    /// Ground truth: a gt.txt, a sequence folder (gt/gt.txt, seqinfo.ini) or
    /// a folder of sequence folders.
    #[arg(long)]
    pub gt: PathBuf,
    /// Column conventions of the ground truth.
    #[arg(long, value_enum, default_value = "auto")]
    pub benchmark: BenchmarkArg,
    /// Which reference tool's preprocessing to follow.
    #[arg(long, value_enum, default_value = "motchallenge")]
    pub protocol: ProtocolArg,
}

#[derive(Args, Debug)]
pub struct RunSource {
    #[arg(long, env = "PEREGRINE_DB", default_value = "peregrine.db")]
    pub db: PathBuf,
    /// Class id of the run's detections to score (COCO: 0 = person).
    #[arg(long, default_value_t = 0)]
    pub class: u16,
    /// Score a run even when its video does not look like the ground
    /// truth's sequence (other size, fewer frames, other name).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct MotArgs {
    #[command(flatten)]
    pub gt: GtOptions,
    /// Tracker results: a file, or a folder of <sequence>.txt files.
    #[arg(long, conflicts_with = "run", required_unless_present = "run")]
    pub pred: Option<PathBuf>,
    /// A stored run (see `peregrine runs`); the metrics are stored with it.
    #[arg(long)]
    pub run: Option<i64>,
    #[command(flatten)]
    pub source: RunSource,
    /// JSON (lower-case keys: mota, idf1, hota, deta, assa, idsw, ...).
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DetFormat {
    /// From the ground-truth file name: .json is COCO, anything else MOTChallenge.
    Auto,
    Coco,
    Mot,
}

#[derive(Args, Debug)]
pub struct DetArgs {
    /// Ground truth: COCO JSON, or MOTChallenge as for `eval mot`.
    #[arg(long)]
    pub gt: PathBuf,
    /// Detections: COCO results JSON, or MOTChallenge boxes (score in column 7).
    #[arg(long, conflicts_with = "run", required_unless_present = "run")]
    pub pred: Option<PathBuf>,
    /// A stored run, scored against MOTChallenge ground truth.
    #[arg(long)]
    pub run: Option<i64>,
    #[command(flatten)]
    pub source: RunSource,
    #[arg(long, value_enum, default_value = "auto")]
    pub format: DetFormat,
    #[arg(long, value_enum, default_value = "auto")]
    pub benchmark: BenchmarkArg,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    pub run_a: i64,
    pub run_b: i64,
    #[command(flatten)]
    pub gt: GtOptions,
    #[command(flatten)]
    pub source: RunSource,
    #[arg(long)]
    pub json: bool,
}

/// Appends a line to the command's output (writing to a `String` cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let mut out = String::new();
    match &args.command {
        EvalCommand::Mot(a) => mot(a, &mut out)?,
        EvalCommand::Det(a) => det(a, &mut out)?,
        EvalCommand::Compare(a) => compare(a, &mut out)?,
    }
    emit(&out)
}

/// Writes the output; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}

fn options(g: &GtOptions) -> MotOptions {
    MotOptions {
        benchmark: benchmark(g.benchmark),
        protocol: match g.protocol {
            ProtocolArg::Motchallenge => Protocol::MotChallenge,
            ProtocolArg::Motmetrics => Protocol::MotMetrics,
        },
    }
}

fn benchmark(b: BenchmarkArg) -> Option<Benchmark> {
    match b {
        BenchmarkArg::Auto => None,
        BenchmarkArg::Mot15 => Some(Benchmark::Mot15),
        BenchmarkArg::Mot16 | BenchmarkArg::Mot17 => Some(Benchmark::Mot17),
        BenchmarkArg::Mot20 => Some(Benchmark::Mot20),
    }
}

fn mot(a: &MotArgs, out: &mut String) -> Result<()> {
    let opts = options(&a.gt);
    let report = match (&a.pred, a.run) {
        (Some(pred), _) => peregrine_eval::evaluate_mot(&a.gt.gt, pred, opts)?,
        (None, Some(run)) => {
            let store = open_store(&a.source.db)?;
            let report = score_run_mot(&store, run, &a.gt.gt, &a.source, opts)?;
            let gt = a.gt.gt.display().to_string();
            store
                .save_eval(run, "mot", &gt, &serde_json::to_value(&report)?)
                .with_context(|| format!("run {run}: storing the metrics"))?;
            report
        }
        (None, None) => bail!("eval mot: give --pred or --run"),
    };
    if a.json {
        outln!(out, "{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_mot(&report, out);
    }
    Ok(())
}

fn det(a: &DetArgs, out: &mut String) -> Result<()> {
    let coco = match a.format {
        DetFormat::Coco => true,
        DetFormat::Mot => false,
        DetFormat::Auto => {
            a.gt.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        }
    };
    let report = match (&a.pred, a.run) {
        (Some(pred), _) if coco => {
            let mut d = read_coco_gt(&a.gt)?;
            read_coco_dets(pred, &mut d)?;
            d.evaluate()
        }
        (Some(pred), _) => {
            let mut d = CocoData::default();
            for (i, seq) in discover(&a.gt, pred)?.iter().enumerate() {
                let gt = MotFile::read(&seq.gt, FileRole::GroundTruth)?;
                let p = MotFile::read(&seq.pred, FileRole::Prediction)?;
                d.add_mot(
                    &gt,
                    &p,
                    benchmark(a.benchmark),
                    seq.seq_length,
                    image_base(i),
                )?;
            }
            d.evaluate()
        }
        (None, Some(run)) => {
            if coco {
                bail!("eval det --run: stored runs are scored against MOTChallenge ground truth, not COCO JSON");
            }
            let store = open_store(&a.source.db)?;
            let report =
                run_det_data(&store, run, &a.gt, &a.source, benchmark(a.benchmark))?.evaluate();
            let gt = a.gt.display().to_string();
            store
                .save_eval(run, "det", &gt, &serde_json::to_value(&report)?)
                .with_context(|| format!("run {run}: storing the metrics"))?;
            report
        }
        (None, None) => bail!("eval det: give --pred or --run"),
    };
    if a.json {
        outln!(out, "{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_det(&report, out);
    }
    Ok(())
}

fn compare(a: &CompareArgs, out: &mut String) -> Result<()> {
    let opts = options(&a.gt);
    let store = open_store(&a.source.db)?;
    let mut sides = Vec::new();
    for run in [a.run_a, a.run_b] {
        let mot = score_run_mot(&store, run, &a.gt.gt, &a.source, opts)?;
        let det = run_det_data(&store, run, &a.gt.gt, &a.source, opts.benchmark)?.evaluate();
        sides.push((run, mot, det));
    }
    if a.json {
        let v: Vec<_> = sides
            .iter()
            .map(|(run, mot, det)| json!({"run": run, "mot": mot.combined, "det": det.overall}))
            .collect();
        outln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({"a": v[0], "b": v[1]}))?
        );
        return Ok(());
    }
    let (ra, ma, da) = &sides[0];
    let (rb, mb, db) = &sides[1];
    let (x, y) = (&ma.combined, &mb.combined);
    outln!(
        out,
        "{:<10} {:>12} {:>12} {:>10}",
        "metric",
        format!("run {ra}"),
        format!("run {rb}"),
        "b - a"
    );
    let rows: [(&str, f64, f64); 20] = [
        ("mota", x.clear.mota, y.clear.mota),
        ("motp", x.clear.motp, y.clear.motp),
        ("idf1", x.identity.idf1, y.identity.idf1),
        ("hota", x.hota.hota, y.hota.hota),
        ("deta", x.hota.deta, y.hota.deta),
        ("assa", x.hota.assa, y.hota.assa),
        ("loca", x.hota.loca, y.hota.loca),
        ("idsw", x.clear.idsw as f64, y.clear.idsw as f64),
        ("frag", x.clear.frag as f64, y.clear.frag as f64),
        ("fp", x.clear.fp as f64, y.clear.fp as f64),
        ("fn", x.clear.fn_ as f64, y.clear.fn_ as f64),
        ("mt", x.clear.mt as f64, y.clear.mt as f64),
        ("ml", x.clear.ml as f64, y.clear.ml as f64),
        ("ap", da.overall.ap, db.overall.ap),
        ("ap50", da.overall.ap50, db.overall.ap50),
        ("ap75", da.overall.ap75, db.overall.ap75),
        ("ap_small", da.overall.ap_small, db.overall.ap_small),
        ("ap_medium", da.overall.ap_medium, db.overall.ap_medium),
        ("ap_large", da.overall.ap_large, db.overall.ap_large),
        ("ar100", da.overall.ar100, db.overall.ar100),
    ];
    for (name, va, vb) in rows {
        if matches!(name, "idsw" | "frag" | "fp" | "fn" | "mt" | "ml") {
            outln!(out, "{name:<10} {va:>12} {vb:>12} {:>+10}", vb - va);
        } else {
            outln!(out, "{name:<10} {va:>12.4} {vb:>12.4} {:>+10.4}", vb - va);
        }
    }
    Ok(())
}

/// Image ids of sequence `i` when several are scored together.
fn image_base(i: usize) -> i64 {
    i as i64 * 1_000_000
}

fn open_store(db: &Path) -> Result<Store> {
    crate::export_cmd::sqlite_only(db)?;
    if !db.exists() {
        bail!("{}: database not found", db.display());
    }
    Ok(Store::open(db)?)
}

/// The one sequence a stored run is scored against: a gt.txt or a
/// sequence folder (gt/gt.txt, seqinfo.ini).
fn single_sequence(gt: &Path) -> Result<SequencePaths> {
    if !gt.exists() {
        bail!("{}: not found", gt.display());
    }
    let own = gt.join("gt").join("gt.txt");
    // Results are not read from a path for a run: point discover at the gt.
    let stand_in = if gt.is_file() {
        gt.to_path_buf()
    } else if own.is_file() {
        own
    } else {
        bail!(
            "{}: a stored run is one video; give its gt.txt or its sequence folder (gt/gt.txt inside)",
            gt.display()
        );
    };
    let mut seqs = discover(gt, &stand_in)?;
    seqs.pop()
        .with_context(|| format!("{}: no sequence", gt.display()))
}

/// A run's tracked detections of `class` as MOTChallenge rows (1-based
/// frames). Rows after the ground truth's last frame are left out: a run may
/// cover more of the video than is annotated.
fn run_rows(
    store: &Store,
    run: i64,
    class: u16,
    seq_length: Option<u32>,
    tracked_only: bool,
) -> Result<MotFile> {
    let rec = store.run(run)?;
    warn_if_incomplete(&rec, "scoring");
    let mut rows = Vec::new();
    let mut beyond = 0u64;
    let mut untracked = 0u64;
    store
        .for_each_detection(run, |d| -> Result<(), std::convert::Infallible> {
            if d.class_id != class {
                return Ok(());
            }
            if seq_length.is_some_and(|n| d.frame + 1 > n as u64) {
                beyond += 1;
                return Ok(());
            }
            if tracked_only && d.track_id.is_none() {
                untracked += 1;
                return Ok(());
            }
            rows.push(mot_row(d));
            Ok(())
        })?
        .unwrap_or_else(|never| match never {});
    if beyond > 0 {
        eprintln!("peregrine: run {run}: {beyond} detections after the ground truth's last frame left out");
    }
    if untracked > 0 {
        eprintln!("peregrine: run {run}: {untracked} detections without a track id left out");
    }
    if tracked_only && rows.is_empty() {
        bail!("run {run}: no tracked detections of class {class} (was tracking on?)");
    }
    Ok(MotFile {
        path: PathBuf::from(format!("run {run}")),
        rows,
        columns: 7,
    })
}

/// `seqinfo.ini` of a sequence whose ground truth is `<seq>/gt/gt.txt`.
fn seq_info(seq: &SequencePaths) -> Result<Option<SeqInfo>> {
    let ini = seq
        .gt
        .parent()
        .filter(|p| p.file_name().is_some_and(|n| n == "gt"))
        .and_then(Path::parent)
        .map(|d| d.join("seqinfo.ini"));
    match ini {
        Some(ini) if ini.is_file() => Ok(Some(SeqInfo::read(&ini)?)),
        _ => Ok(None),
    }
}

/// Refuses to score a run whose video is not the ground truth's sequence:
/// another image size, fewer frames than are annotated, or more frames and
/// a name that mentions neither the sequence nor its folder. A run scored
/// against the wrong sequence gives plausible-looking numbers, so this is
/// an error unless `--force`.
fn check_run_matches(
    store: &Store,
    run: i64,
    seq: &SequencePaths,
    gt_file: &MotFile,
    force: bool,
) -> Result<()> {
    let rec = store.run(run)?;
    let info = seq_info(seq)?;
    let video = store.video(rec.video_id)?;
    let frames_annotated = info
        .as_ref()
        .map(|i| i.seq_length)
        .unwrap_or_else(|| gt_file.max_frame()) as u64;
    let mut problems = Vec::new();
    if let Some((w, h)) = info.as_ref().and_then(|i| i.width.zip(i.height)) {
        if (rec.width, rec.height) != (w, h) {
            problems.push(format!(
                "its video is {}x{}, the sequence {w}x{h}",
                rec.width, rec.height
            ));
        }
    }
    let mut names: Vec<String> = vec![seq.name.clone()];
    if let Some(n) = info.as_ref().and_then(|i| i.name.clone()) {
        if n != seq.name {
            names.push(n);
        }
    }
    let video_path = rec.video_path.to_lowercase();
    let named = names
        .iter()
        .any(|n| !n.is_empty() && video_path.contains(&n.to_lowercase()));
    // 0: a length the container did not tell.
    if let Some(v) = video.as_ref().filter(|v| v.frames_expected > 0) {
        // Frame counts of container videos are estimates: allow 1 %.
        let slack = (frames_annotated / 100).max(1);
        if v.frames_expected + slack < frames_annotated {
            problems.push(format!(
                "its video has {} frames, the sequence {frames_annotated}",
                v.frames_expected
            ));
        } else if v.frames_expected > frames_annotated + slack && !named {
            problems.push(format!(
                "its video has {} frames, the sequence {frames_annotated}, and its name does not mention {}",
                v.frames_expected,
                names.join(" or ")
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let what = format!(
        "run {run} ({}) does not look like sequence {}: {}",
        file_name(&rec.video_path),
        seq.name,
        problems.join("; ")
    );
    if force {
        eprintln!("peregrine: warning: {what}; scoring it anyway (--force)");
        return Ok(());
    }
    bail!("{what} (--force scores it anyway)")
}

fn file_name(p: &str) -> String {
    Path::new(p)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.to_string())
}

fn score_run_mot(
    store: &Store,
    run: i64,
    gt: &Path,
    source: &RunSource,
    opts: MotOptions,
) -> Result<MotReport> {
    let class = source.class;
    let seq = single_sequence(gt)?;
    let gt_file = MotFile::read(&seq.gt, FileRole::GroundTruth)?;
    check_run_matches(store, run, &seq, &gt_file, source.force)?;
    let len = seq.seq_length.or(Some(gt_file.max_frame()));
    let pred = run_rows(store, run, class, len, true)?;
    let (benchmark, metrics) = evaluate_sequence(&gt_file, &pred, seq.seq_length, opts)?;
    let sequences = vec![SequenceReport {
        name: seq.name,
        benchmark,
        metrics,
    }];
    let combined = MotMetrics::combine(sequences.iter().map(|s| &s.metrics));
    Ok(MotReport {
        protocol: opts.protocol,
        sequences,
        combined,
    })
}

fn run_det_data(
    store: &Store,
    run: i64,
    gt: &Path,
    source: &RunSource,
    b: Option<Benchmark>,
) -> Result<CocoData> {
    let class = source.class;
    let seq = single_sequence(gt)?;
    let gt_file = MotFile::read(&seq.gt, FileRole::GroundTruth)?;
    check_run_matches(store, run, &seq, &gt_file, source.force)?;
    let len = seq.seq_length.or(Some(gt_file.max_frame()));
    let pred = run_rows(store, run, class, len, false)?;
    let mut d = CocoData::default();
    d.add_mot(&gt_file, &pred, b, len, 0)?;
    Ok(d)
}

fn print_mot(r: &MotReport, out: &mut String) {
    outln!(
        out,
        "{:<24} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} {:>5} {:>4} {:>4} {:>4}",
        "sequence",
        "MOTA",
        "MOTP",
        "IDF1",
        "HOTA",
        "DetA",
        "AssA",
        "IDSW",
        "FP",
        "FN",
        "Frag",
        "MT",
        "PT",
        "ML"
    );
    let mut line = |name: &str, m: &MotMetrics| {
        outln!(
            out,
            "{:<24} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>6} {:>6} {:>6} {:>5} {:>4} {:>4} {:>4}",
            name,
            m.clear.mota,
            m.clear.motp,
            m.identity.idf1,
            m.hota.hota,
            m.hota.deta,
            m.hota.assa,
            m.clear.idsw,
            m.clear.fp,
            m.clear.fn_,
            m.clear.frag,
            m.clear.mt,
            m.clear.pt,
            m.clear.ml
        );
    };
    for s in &r.sequences {
        line(&s.name, &s.metrics);
    }
    if r.sequences.len() > 1 {
        line("COMBINED", &r.combined);
    }
    outln!(
        out,
        "(MOTP is the mean 1 - IoU of matches, as py-motmetrics reports it)"
    );
}

fn print_det(r: &CocoReport, out: &mut String) {
    outln!(
        out,
        "{:<20} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "class",
        "AP",
        "AP50",
        "AP75",
        "APs",
        "APm",
        "APl",
        "AR1",
        "AR10",
        "AR100"
    );
    let mut line = |name: &str, s: &CocoStats| {
        outln!(
            out,
            "{:<20} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3}",
            name,
            s.ap,
            s.ap50,
            s.ap75,
            s.ap_small,
            s.ap_medium,
            s.ap_large,
            s.ar1,
            s.ar10,
            s.ar100
        );
    };
    line("all", &r.overall);
    if r.per_class.len() > 1 {
        for c in &r.per_class {
            line(&c.name, &c.stats);
        }
    }
    outln!(out, "(-1: no ground truth in that range)");
}
