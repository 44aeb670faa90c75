//! `peregrine gait`: pose analysis of walking videos, then gait metrics
//! per walking subject (`peregrine_gait`), as JSON and an HTML report.
//!
//! Each input is analysed through the ordinary pipeline (pose model,
//! tracking, stored in the database, cached like `analyze`); the gait
//! metrics are then computed from the stored keypoints, one track at a
//! time, so memory is bounded by the longest track, not the video.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use peregrine_gait::GaitMode;
use peregrine_infer::Model;
use peregrine_media::discover_inputs;
use peregrine_pipeline::{analyze_all, AnalyzeParams, Analyzer, Engine, RunReport};
use peregrine_render::gait::RunGait;
use peregrine_store::{DbTarget, Results};
use serde_json::json;

#[derive(Args, Debug)]
pub struct GaitArgs {
    /// Videos of people walking, filmed side-on.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Pose model (COCO-17 keypoints), e.g. yolo11n_pose_int8.onnx.
    #[arg(long, env = "PEREGRINE_MODEL")]
    pub model: Option<PathBuf>,
    /// Database: a SQLite file (`path` or `sqlite:path`) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "PEREGRINE_DB", default_value = "peregrine.db")]
    pub db: PathBuf,
    /// fast | balanced | accurate (frame sampling, detector thresholds,
    /// smoothing; see README).
    #[arg(long, default_value = "balanced")]
    pub mode: String,
    /// Subject height in metres: step length and speed in metres.
    #[arg(long)]
    pub height: Option<f64>,
    /// Write an HTML report (a folder when there are several inputs).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// One JSON object per input on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress and no summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Inference threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Analyse again even when a stored run matches.
    #[arg(long)]
    pub no_cache: bool,
}

/// One input's result: the line of `--json`.
struct GaitResult {
    input: String,
    gait: RunGait,
}

fn summary(r: &GaitResult) {
    let name = Path::new(&r.input)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| r.input.clone());
    let run_id = r.gait.run.id;
    if r.gait.subjects.is_empty() {
        eprintln!("{name}: run {run_id}: no walking subject found");
    }
    let f = |v: Option<f64>, d: usize| v.map(|x| format!("{x:.d$}")).unwrap_or("-".into());
    for (i, g) in r.gait.subjects.iter().enumerate() {
        eprintln!(
            "{name}: run {} {} track {}: {} steps, cadence {} steps/min, step {} s, stride {} s, stance {} %, swing {} %, double support {} %, step length {} {}, speed {} {}",
            run_id,
            if i == 0 { "main subject" } else { "subject" },
            g.track_id,
            g.steps,
            f(g.cadence_spm, 1),
            f(g.step_time_s, 3),
            f(g.stride_time_s, 3),
            f(g.stance_pct, 1),
            f(g.swing_pct, 1),
            f(g.double_support_pct, 1),
            f(g.step_length, 3),
            g.length_unit,
            f(g.speed, 2),
            g.speed_unit,
        );
    }
}

fn check_pose_model(path: &Path, model: &Model) -> Result<()> {
    model
        .require_coco_pose()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub fn run(args: GaitArgs) -> Result<ExitCode> {
    let model_path = args
        .model
        .clone()
        .context("no model: pass --model PATH (a pose model) or set PEREGRINE_MODEL")?;
    let mode: GaitMode = args.mode.parse().map_err(|e| anyhow::anyhow!("--{e}"))?;
    if let Some(h) = args.height {
        if !(h.is_finite() && (0.5..=2.5).contains(&h)) {
            bail!("--height must be the subject's height in metres (0.5 to 2.5), got {h}");
        }
    }
    let params = AnalyzeParams {
        mode: Some(args.mode.clone()),
        fps: mode.sampling_fps(),
        classes: None,
        threads: Some(args.threads),
        no_cache: Some(args.no_cache),
        no_track: Some(false),
        ..Default::default()
    };
    let labels = peregrine_pipeline::model_labels(&model_path)?;
    let opts = params
        .resolve_for(labels)
        .map_err(|e| anyhow::anyhow!("--{e}"))?;

    let mut inputs = Vec::new();
    let mut failed = 0usize;
    let stdout = std::io::stdout();
    let print_failure = |input: &str, error: &str| {
        if args.json {
            let mut out = stdout.lock();
            let _ = serde_json::to_writer(
                &mut out,
                &json!({"input": input, "run_id": null, "subjects": [], "error": error}),
            );
            let _ = writeln!(out);
        }
    };
    for p in &args.inputs {
        match discover_inputs(std::slice::from_ref(p)) {
            Ok(found) => inputs.extend(found),
            Err(e) => {
                failed += 1;
                eprintln!("peregrine: {e}");
                print_failure(&p.display().to_string(), &e.to_string());
            }
        }
    }
    if inputs.is_empty() {
        return Ok(ExitCode::FAILURE);
    }
    let model = crate::load_model(&model_path, None)?;
    check_pose_model(&model_path, &model)?;
    let report_dir = inputs.len() > 1 && args.report.is_some();
    if report_dir {
        if let Some(d) = &args.report {
            std::fs::create_dir_all(d)
                .with_context(|| format!("{}: cannot create report folder", d.display()))?;
        }
    }
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let c = cancel.clone();
        let _ = ctrlc::set_handler(move || {
            if c.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let target = DbTarget::from_path(&args.db);
    let store = peregrine_store::open_run_store(&target, Duration::from_secs(5))?;
    let stop = || cancel.load(Ordering::Relaxed);
    let Some(engine) = Engine::start_cancellable(model, opts.engine, &stop)? else {
        return Ok(ExitCode::from(130));
    };
    let analyzer = Analyzer::new(engine, store, cancel.clone());
    let show = !args.quiet && std::io::stderr().is_terminal();
    let analyzer = match crate::analyze_cmd::progress_bars(show) {
        Some(p) => analyzer.with_progress(p),
        None => analyzer,
    };
    let mut on_report = |r: RunReport| {
        let run_id = match (r.succeeded(), r.run_id) {
            (true, Some(id)) => id,
            _ => {
                failed += 1;
                let msg = r.error.clone().unwrap_or_else(|| r.status.to_string());
                if msg.starts_with(&r.input) {
                    eprintln!("peregrine: {msg}");
                } else {
                    eprintln!("peregrine: {}: {msg}", r.input);
                }
                print_failure(&r.input, &msg);
                return;
            }
        };
        let read = Results::open(&target, Duration::from_secs(5))
            .map_err(anyhow::Error::from)
            .and_then(|store| {
                Ok(RunGait::read(
                    &store,
                    run_id,
                    mode,
                    args.height,
                    args.report.is_some(),
                )?)
            });
        let result = match read {
            Ok(gait) => GaitResult {
                input: r.input.clone(),
                gait,
            },
            Err(e) => {
                failed += 1;
                let msg = crate::one_line(&e);
                eprintln!("peregrine: {}: {msg}", r.input);
                print_failure(&r.input, &msg);
                return;
            }
        };
        if args.json {
            let mut out = stdout.lock();
            let _ = serde_json::to_writer(
                &mut out,
                &json!({"input": result.input, "run_id": run_id, "subjects": result.gait.subjects}),
            );
            let _ = writeln!(out);
            let _ = out.flush();
        }
        if !args.quiet {
            summary(&result);
        }
        if let Some(dest) = &args.report {
            let path = if report_dir {
                let stem = Path::new(&r.input)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| format!("run{run_id}"));
                dest.join(format!("{stem}.gait.html"))
            } else {
                dest.clone()
            };
            let page = result.gait.report_html(&result.gait.run.labels());
            if let Err(e) = std::fs::write(&path, page) {
                failed += 1;
                eprintln!(
                    "peregrine: {}: cannot write the report: {e}",
                    path.display()
                );
            } else if !args.quiet {
                eprintln!("report: {}", path.display());
            }
        }
    };
    analyze_all(&analyzer, &inputs, &opts.run, 1, &mut on_report);
    if cancel.load(Ordering::Relaxed) {
        return Ok(ExitCode::from(130));
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
