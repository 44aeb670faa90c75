//! `peregrine analyze`.
//!
//! Flags are parsed into a raw clap struct, then validated into
//! `AnalyzeOptions` (typed, checked) before anything is opened.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use peregrine_core::{Labels, RunStatus};
use peregrine_infer::Family;
use peregrine_media::{discover_inputs, InputSpec};
use peregrine_pipeline::{
    analyze_all, AnalyzeOptions, AnalyzeParams, Analyzer, Engine, ProgressEvent, RunReport, Stage,
};
use peregrine_store::DbTarget;

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// Video files, folders of videos, or MOTChallenge sequence folders.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// ONNX detector model.
    #[arg(long, env = "PEREGRINE_MODEL")]
    pub model: Option<PathBuf>,
    /// Model family (yolox, nanodet, ultralytics); recognised from the model when omitted.
    #[arg(long)]
    pub family: Option<String>,
    /// Class names, one per line (default: NAME.names beside the model, else COCO).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Database: a SQLite file (`path` or `sqlite:path`) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "PEREGRINE_DB", default_value = "peregrine.db")]
    pub db: PathBuf,
    /// Seconds to wait for a database locked by another writer.
    #[arg(long, default_value_t = 5.0)]
    pub db_timeout: f64,
    /// fast | balanced | accurate (see docs/ARCHITECTURE.md).
    #[arg(long, default_value = "balanced")]
    pub mode: String,
    /// Analyse every Nth frame.
    #[arg(long)]
    pub every: Option<u32>,
    /// Analyse at most F frames per second of video.
    #[arg(long)]
    pub fps: Option<f64>,
    /// Start time in seconds.
    #[arg(long)]
    pub start: Option<f64>,
    /// End time in seconds.
    #[arg(long)]
    pub end: Option<f64>,
    /// Minimum detection score (default from --mode).
    #[arg(long)]
    pub conf: Option<f32>,
    /// NMS IoU threshold.
    #[arg(long, default_value_t = 0.45)]
    pub iou: f32,
    /// Only these classes, by name or index: person,car
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// Maximum detections per frame (default from --mode).
    #[arg(long)]
    pub max_det: Option<usize>,
    /// Class-agnostic NMS.
    #[arg(long)]
    pub agnostic: bool,
    /// Frames per inference call, for models with a dynamic batch dimension.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Total inference threads (split across --infer-workers).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Inference sessions working on alternate frames (default: one
    /// single-threaded session per thread).
    #[arg(long)]
    pub infer_workers: Option<usize>,
    /// FFmpeg decoder threads per input (0 = automatic).
    #[arg(long, default_value_t = 1)]
    pub decode_threads: usize,
    /// Inputs analysed at the same time.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Analyse again even when a stored run matches.
    #[arg(long)]
    pub no_cache: bool,
    /// One JSON object per input on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar and no summary table.
    #[arg(long, short)]
    pub quiet: bool,
    /// Skip tracking (detections only).
    #[arg(long)]
    pub no_track: bool,
    /// ByteTrack: score above which detections are "high" (default 0.5). New
    /// tracks need +0.1; with tracking on, a box no track claims is stored
    /// only when it scores at least that much (and --conf).
    #[arg(long)]
    pub track_thresh: Option<f32>,
    /// ByteTrack: highest IoU cost accepted in the first association.
    #[arg(long)]
    pub match_thresh: Option<f32>,
    /// ByteTrack: frames (at 30 fps) a lost track is kept.
    #[arg(long)]
    pub track_buffer: Option<u32>,
    /// Associate all classes jointly, a track's class by score-weighted vote
    /// (the default; kept for compatibility).
    #[arg(long, conflicts_with = "track_per_class")]
    pub track_all_classes: bool,
    /// Associate each class separately: a box whose class changes starts a
    /// new track.
    #[arg(long)]
    pub track_per_class: bool,
    /// Refuse videos whose frames have more pixels (width × height) than this
    /// (default 8192×4320).
    #[arg(long)]
    pub max_pixels: Option<u64>,
    /// Also write an annotated video (a folder when there are several inputs).
    #[arg(long)]
    pub render: Option<PathBuf>,
    #[command(flatten)]
    pub render_flags: crate::render_cmd::RenderFlags,
    #[command(flatten)]
    pub spatial: crate::counts_cmd::SpatialFlags,
}

/// Validated settings.
struct Plan {
    model_path: PathBuf,
    family: Option<Family>,
    labels: Labels,
    opts: AnalyzeOptions,
}

fn plan(a: &AnalyzeArgs) -> Result<Plan> {
    let model_path = a
        .model
        .clone()
        .context("no model: pass --model PATH or set PEREGRINE_MODEL")?;
    let family = a
        .family
        .as_deref()
        .map(str::parse::<Family>)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    // --labels, else NAME.names beside the model, else COCO.
    let labels = match &a.labels {
        Some(p) => Some(Labels::from_file(p)?),
        None => peregrine_pipeline::model_labels(&model_path)?,
    };

    let mut params = AnalyzeParams {
        mode: Some(a.mode.clone()),
        every: a.every,
        fps: a.fps,
        start: a.start,
        end: a.end,
        conf: a.conf,
        iou: Some(a.iou),
        classes: (!a.classes.is_empty()).then(|| a.classes.clone()),
        max_det: a.max_det,
        agnostic: Some(a.agnostic),
        batch: Some(a.batch),
        threads: Some(a.threads),
        infer_workers: a.infer_workers,
        decode_threads: Some(a.decode_threads),
        jobs: Some(a.jobs),
        no_cache: Some(a.no_cache),
        no_track: Some(a.no_track),
        track_thresh: a.track_thresh,
        match_thresh: a.match_thresh,
        track_buffer: a.track_buffer,
        track_all_classes: Some(a.track_all_classes),
        track_per_class: Some(a.track_per_class),
        max_pixels: a.max_pixels,
        ..AnalyzeParams::default()
    };
    a.spatial.apply(&mut params)?;
    // Messages name the option as a flag on the command line.
    let opts = params
        .resolve_for(labels.clone())
        .map_err(|e| anyhow::anyhow!("--{e}"))?;
    let labels = labels.unwrap_or_else(Labels::coco);
    Ok(Plan {
        model_path,
        family,
        labels,
        opts,
    })
}

pub(crate) fn progress_bars(show: bool) -> Option<peregrine_pipeline::Progress> {
    if !show {
        return None;
    }
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    let bars: Mutex<Vec<Option<ProgressBar>>> = Mutex::new(Vec::new());
    let style = ProgressStyle::with_template(
        "{prefix:.bold} [{bar:30}] {pos}/{len} frames {msg} ETA {eta}",
    )
    .expect("valid template")
    .progress_chars("=> ");
    Some(Arc::new(move |e: &ProgressEvent| {
        let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
        match *e {
            ProgressEvent::Start {
                source,
                input,
                total,
            } => {
                let i = source as usize;
                if bars.len() <= i {
                    bars.resize(i + 1, None);
                }
                let pb = multi.add(ProgressBar::new(total));
                pb.set_style(style.clone());
                let name = std::path::Path::new(input)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| input.to_string());
                pb.set_prefix(name);
                bars[i] = Some(pb);
            }
            ProgressEvent::Frames { source, done, fps } => {
                if let Some(Some(pb)) = bars.get(source as usize) {
                    if done > pb.length().unwrap_or(0) {
                        pb.set_length(done);
                    }
                    pb.set_position(done);
                    pb.set_message(format!("{fps:.0} fps"));
                }
            }
            ProgressEvent::Finish { source, .. } => {
                if let Some(Some(pb)) = bars.get(source as usize) {
                    pb.finish_and_clear();
                }
            }
        }
    }))
}

fn print_summary(r: &RunReport) {
    let name = std::path::Path::new(&r.input)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| r.input.clone());
    let run = r
        .run_id
        .map(|i| i.to_string())
        .unwrap_or_else(|| "-".into());
    if !r.succeeded() {
        return;
    }
    let cache = if r.cache_hit { " (cached)" } else { "" };
    eprintln!(
        "{name}: run {run} {}{cache}: {} frames, {} detections, {} tracks, {:.1} fps, {:.2} s",
        r.status, r.frames, r.detections, r.tracks, r.fps, r.seconds
    );
    if r.cache_hit {
        return;
    }
    eprintln!(
        "  {:<12} {:>9} {:>9} {:>9}",
        "stage", "p50 ms", "p95 ms", "max ms"
    );
    for s in Stage::ALL {
        if let Some(v) = r.timings.get(s.name()) {
            let f = |k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0);
            eprintln!(
                "  {:<12} {:>9.3} {:>9.3} {:>9.3}",
                s.name(),
                f("p50_ms"),
                f("p95_ms"),
                f("max_ms")
            );
        }
    }
    if r.frames_lost > 0 || r.corrupt_packets > 0 || r.decode_errors > 0 || r.corrupt_frames > 0 {
        eprintln!(
            "  damage: {} frames lost, {} corrupt packets, {} decode errors, {} concealed frames",
            r.frames_lost, r.corrupt_packets, r.decode_errors, r.corrupt_frames
        );
    }
}

/// Expands each argument into inputs; an argument that cannot be used
/// (missing, empty, a folder without videos) becomes a failed report of its
/// own, so it is reported like any other input's failure.
fn discover(paths: &[PathBuf]) -> (Vec<InputSpec>, Vec<RunReport>) {
    let mut inputs = Vec::new();
    let mut failures = Vec::new();
    for p in paths {
        match discover_inputs(std::slice::from_ref(p)) {
            Ok(found) => inputs.extend(found),
            Err(e) => failures.push(RunReport::failed_input(
                &p.display().to_string(),
                e.to_string(),
            )),
        }
    }
    (inputs, failures)
}

pub fn run(args: AnalyzeArgs) -> Result<ExitCode> {
    let plan = plan(&args)?;
    let (inputs, failures) = discover(&args.inputs);
    let render_opts = args.render_flags.options(None)?;
    let render_dir = inputs.len() + failures.len() > 1 && args.render.is_some();
    if render_dir {
        if let Some(d) = &args.render {
            std::fs::create_dir_all(d)
                .with_context(|| format!("{}: cannot create render folder", d.display()))?;
        }
    }
    let model = if inputs.is_empty() {
        None
    } else {
        Some(crate::load_model(&plan.model_path, plan.family)?)
    };
    if let Some(model) = &model {
        let wanted = plan.opts.engine.batch;
        let batch = model.max_batch(wanted);
        if wanted > 1 && batch != wanted {
            eprintln!(
                "peregrine: warning: {} has a fixed batch size of {batch}; --batch {wanted} is ignored",
                plan.model_path.display(),
            );
        }
    }
    if let Some(model) = &model {
        if model.spec().num_classes > plan.labels.len() && args.labels.is_some() {
            eprintln!(
                "peregrine: warning: {} has {} classes but the labels file names {}",
                plan.model_path.display(),
                model.spec().num_classes,
                plan.labels.len()
            );
        }
    }
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let c = cancel.clone();
        // A second signal while stopping exits at once.
        let _ = ctrlc::set_handler(move || {
            if c.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let mut failed = 0usize;
    let mut damaged = 0usize;
    let stdout = std::io::stdout();
    let mut on_report = |r: RunReport| {
        if r.status == RunStatus::Partial {
            damaged += 1;
        }
        if !r.succeeded() {
            failed += 1;
        }
        if r.error.is_some() {
            let msg = r.error.clone().unwrap_or_else(|| r.status.to_string());
            if msg.starts_with(&r.input) {
                eprintln!("peregrine: {msg}");
            } else {
                eprintln!("peregrine: {}: {msg}", r.input);
            }
        }
        if args.json {
            let mut out = stdout.lock();
            let _ = serde_json::to_writer(&mut out, &r);
            let _ = writeln!(out);
            let _ = out.flush();
        }
        if !args.quiet {
            print_summary(&r);
        }
        if let (true, Some(run)) = (r.succeeded(), r.run_id) {
            if args.render.is_some() || args.render_flags.wanted() {
                let video = args.render.as_ref().map(|p| {
                    if render_dir {
                        let stem = std::path::Path::new(&r.input)
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_else(|| format!("run{run}"));
                        p.join(format!("{stem}.annotated.mp4"))
                    } else {
                        p.clone()
                    }
                });
                let mut o = render_opts.clone();
                o.video = video;
                if let Err(e) = crate::render_cmd::render_stored(&args.db, run, &plan.labels, &o) {
                    failed += 1;
                    eprintln!("peregrine: {}", crate::one_line(&e));
                }
            }
        }
    };
    for r in failures {
        on_report(r);
    }
    if let Some(model) = model {
        // The database first, so a bad path fails before the sessions are
        // built.
        let store = peregrine_store::open_run_store(
            &DbTarget::from_path(&args.db),
            Duration::from_secs_f64(args.db_timeout.max(0.0)),
        )?;
        let stop = || cancel.load(Ordering::Relaxed);
        let Some(engine) = Engine::start_cancellable(model, plan.opts.engine, &stop)? else {
            return Ok(ExitCode::from(130));
        };
        let analyzer = Analyzer::new(engine, store, cancel.clone());
        let analyzer = match progress_bars(show_progress) {
            Some(p) => analyzer.with_progress(p),
            None => analyzer,
        };
        analyze_all(
            &analyzer,
            &inputs,
            &plan.opts.run,
            plan.opts.jobs,
            &mut on_report,
        );
    }
    if cancel.load(Ordering::Relaxed) {
        return Ok(ExitCode::from(130));
    }
    // 1: an input failed; 3: inputs were damaged (truncated) and what could
    // be decoded was analysed and stored.
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else if damaged > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
