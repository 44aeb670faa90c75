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
    discover, read_coco_dets, read_coco_gt, Benchmark, CocoData, CocoReport, CocoStats, FileRole,
    MotFile, MotMetrics, MotOptions, MotReport, Protocol,
};
use peregrine_store::evaluate::{
    score_run, EvalKind, GroundTruth, Report, ScoreError, ScoreOptions, Scored,
};
use peregrine_store::Results;

use crate::export_cmd::{open_results, warn_if_incomplete};
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
    /// The database: a SQLite file (`path` or `sqlite:path`) or
    /// `postgres://...`. Evaluations of runs are stored there with their
    /// per-frame matching.
    #[arg(long, env = "PEREGRINE_DB", default_value = "peregrine.db")]
    pub db: PathBuf,
    /// Class id of the run's detections to score: default 0 (COCO's
    /// person) against MOTChallenge ground truth; every class the ground
    /// truth's categories name against COCO JSON.
    #[arg(long)]
    pub class: Option<u16>,
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
            let mut store = open_results(&a.source.db)?;
            let scored = score(
                &store,
                run,
                EvalKind::Mot,
                GroundTruth::MotPath(&a.gt.gt),
                &a.source,
                opts,
            )?;
            save(&mut store, run, &scored, &a.gt.gt)?;
            match scored.report {
                Report::Mot(r) => *r,
                Report::Det(_) => bail!("eval mot: scored as detection"),
            }
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
            let mut store = open_results(&a.source.db)?;
            let (kind, gt) = if coco {
                (EvalKind::Coco, GroundTruth::CocoPath(&a.gt))
            } else {
                (EvalKind::Det, GroundTruth::MotPath(&a.gt))
            };
            let opts = MotOptions {
                benchmark: benchmark(a.benchmark),
                ..MotOptions::default()
            };
            let scored = score(&store, run, kind, gt, &a.source, opts)?;
            save(&mut store, run, &scored, &a.gt)?;
            match scored.report {
                Report::Det(r) => r,
                Report::Mot(_) => bail!("eval det: scored as tracking"),
            }
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
    let store = open_results(&a.source.db)?;
    let mut sides = Vec::new();
    for run in [a.run_a, a.run_b] {
        let s = score(
            &store,
            run,
            EvalKind::Mot,
            GroundTruth::MotPath(&a.gt.gt),
            &a.source,
            opts,
        )?;
        let det: CocoReport = serde_json::from_value(s.metrics["detection"].clone())?;
        let Report::Mot(mot) = s.report else {
            bail!("eval compare: scored as detection");
        };
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

/// Scores a stored run (see `peregrine_store::evaluate`), printing its
/// warnings.
fn score(
    store: &Results,
    run: i64,
    kind: EvalKind,
    gt: GroundTruth,
    source: &RunSource,
    mot: MotOptions,
) -> Result<Scored> {
    let rec = store.run(run)?;
    warn_if_incomplete(&rec, "scoring");
    let opts = ScoreOptions {
        class: source.class.map(|c| c.to_string()),
        force: source.force,
        mot,
        iou: 0.5,
    };
    let scored = score_run(store, run, kind, gt, &opts).map_err(|e| match e {
        ScoreError::Input(m) => anyhow::anyhow!(m),
        ScoreError::Store(e) => e.into(),
    })?;
    for w in &scored.warnings {
        eprintln!("peregrine: {w}");
    }
    Ok(scored)
}

/// Stores the evaluation with its per-frame matching.
fn save(store: &mut Results, run: i64, scored: &Scored, gt: &Path) -> Result<()> {
    let name = gt.display().to_string();
    scored
        .save(store, run, &name)
        .with_context(|| format!("run {run}: storing the metrics"))?;
    Ok(())
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
