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
use peregrine_core::Labels;
use peregrine_gait::report::{KeyFrame, Report, ReportSubject};
use peregrine_gait::{
    analyse_track, walking_score, EventKind, GaitConfig, PoseSample, PoseTrack, SavGol, SubjectGait,
};
use peregrine_infer::{Model, OutputLayout};
use peregrine_media::discover_inputs;
use peregrine_pipeline::{analyze_all, AnalyzeParams, Analyzer, Engine, RunReport};
use peregrine_store::{DetectionQuery, SqliteRunStore, Store};
use serde_json::json;

#[derive(Args, Debug)]
pub struct GaitArgs {
    /// Videos of people walking, filmed side-on.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Pose model (COCO-17 keypoints), e.g. yolo11n_pose_int8.onnx.
    #[arg(long, env = "PEREGRINE_MODEL")]
    pub model: Option<PathBuf>,
    /// SQLite database file.
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

/// What a `--mode` changes.
#[derive(Clone, Copy, Debug)]
struct ModePlan {
    /// Frames analysed per second of video at most (`None`: every frame).
    fps: Option<f64>,
    /// Savitzky-Golay window in seconds and polynomial order.
    window_s: f64,
    order: usize,
    min_keypoint_conf: f32,
}

fn mode_plan(mode: &str) -> Result<ModePlan> {
    Ok(match mode {
        // Half the frames of a 30 fps video: about twice as fast, events
        // within one analysed frame (67 ms).
        "fast" => ModePlan {
            fps: Some(15.0),
            window_s: 0.2,
            order: 2,
            min_keypoint_conf: 0.5,
        },
        "balanced" => ModePlan {
            fps: Some(30.0),
            window_s: 0.2,
            order: 2,
            min_keypoint_conf: 0.5,
        },
        // Every frame, the detector's low threshold (fewer missed
        // frames), a cubic fit over a longer window (less noise, peaks
        // kept).
        "accurate" => ModePlan {
            fps: None,
            window_s: 0.3,
            order: 3,
            min_keypoint_conf: 0.4,
        },
        other => bail!("--mode must be fast, balanced or accurate, got {other:?}"),
    })
}

impl ModePlan {
    fn config(&self, video_fps: f64, step: u32, height_m: Option<f64>) -> GaitConfig {
        let mut c = GaitConfig::new(video_fps, step);
        let rate = video_fps / step.max(1) as f64;
        let half = ((self.window_s * rate / 2.0).round() as usize).max(2);
        c.smoothing = SavGol {
            window: 2 * half + 1,
            order: self.order,
        };
        c.min_keypoint_conf = self.min_keypoint_conf;
        c.height_m = height_m;
        c
    }
}

/// One input's result: the line of `--json`.
struct GaitResult {
    input: String,
    run_id: i64,
    subjects: Vec<SubjectGait>,
    key_frames: Vec<Vec<KeyFrame>>,
}

/// Reads one track's detections with keypoints, a page at a time.
fn load_track(store: &Store, run: i64, track: u32) -> Result<PoseTrack> {
    let mut q = DetectionQuery {
        track_id: Some(track),
        limit: 5000,
        ..Default::default()
    };
    let mut samples = Vec::new();
    loop {
        let page = store.detections_page(run, &q)?;
        for d in &page.items {
            samples.push(PoseSample {
                frame: d.frame,
                bbox: d.bbox,
                keypoints: d.keypoints.clone(),
            });
        }
        match page.next {
            Some(n) => q.after = Some(n),
            None => break,
        }
    }
    Ok(PoseTrack {
        track_id: track,
        samples,
    })
}

/// Frames to show for a subject: the stored frames nearest to four
/// consecutive events from the middle of the pass.
fn key_frame_picks(g: &SubjectGait, t: &PoseTrack) -> Vec<(u64, String)> {
    let ev = &g.events;
    if ev.is_empty() {
        return Vec::new();
    }
    let mid = ev.len() / 2;
    let start = (0..ev.len())
        .filter(|&i| ev[i].kind == EventKind::HeelStrike)
        .min_by_key(|&i| i.abs_diff(mid.saturating_sub(2)))
        .unwrap_or(0);
    ev[start..]
        .iter()
        .take(4)
        .filter_map(|e| {
            let s = t.samples.iter().min_by(|a, b| {
                (a.frame as f64 - e.frame)
                    .abs()
                    .total_cmp(&(b.frame as f64 - e.frame).abs())
            })?;
            let kind = match e.kind {
                EventKind::HeelStrike => "heel strike",
                EventKind::ToeOff => "toe-off",
            };
            Some((
                s.frame,
                format!(
                    "{} {kind} · {:.2} s (frame {})",
                    e.foot.name(),
                    e.t,
                    s.frame
                ),
            ))
        })
        .collect()
}

/// Gait analysis of stored run `run_id`.
fn analyse_run(
    db: &Path,
    report: &RunReport,
    run_id: i64,
    plan: &ModePlan,
    height_m: Option<f64>,
    want_frames: bool,
) -> Result<GaitResult> {
    let store = Store::open(db)?;
    let run = store.run(run_id)?;
    let fps = if run.video_fps > 0.0 {
        run.video_fps
    } else {
        30.0
    };
    let step = match plan.fps {
        Some(f) if f > 0.0 => (fps / f).round().max(1.0) as u32,
        _ => 1,
    };
    let mut cfg = plan.config(fps, step, height_m);
    cfg.frame_size = Some((run.width as f32, run.height as f32));
    let labels: Labels = run.labels();
    let mut found: Vec<(f64, SubjectGait, Vec<KeyFrame>)> = Vec::new();
    for t in store.tracks(run_id)? {
        // At least a second of frames before loading anything.
        if ((t.last_frame - t.first_frame) as f64) < fps || t.frames < 8 {
            continue;
        }
        let track = load_track(&store, run_id, t.track_id)?;
        if track.samples.iter().any(|s| s.keypoints.len() < 17) {
            continue;
        }
        let Some(score) = walking_score(&track, fps) else {
            continue;
        };
        // Fewer than two heel strikes: nothing about the gait can be
        // measured (e.g. a reflection moving across a window).
        let Some(g) = analyse_track(&track, &cfg).filter(|g| g.steps >= 2) else {
            continue;
        };
        let mut frames = Vec::new();
        if want_frames {
            for (frame, caption) in key_frame_picks(&g, &track) {
                match peregrine_render::render_frame_jpeg(&store, run_id, frame, &labels) {
                    Ok(jpeg) => frames.push(KeyFrame { caption, jpeg }),
                    Err(e) => eprintln!(
                        "peregrine: warning: {}: frame {frame} for the report: {e}",
                        report.input
                    ),
                }
            }
        }
        found.push((score, g, frames));
    }
    found.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (subjects, key_frames) = found.into_iter().map(|(_, g, f)| (g, f)).unzip();
    Ok(GaitResult {
        input: report.input.clone(),
        run_id,
        subjects,
        key_frames,
    })
}

fn summary(r: &GaitResult) {
    let name = Path::new(&r.input)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| r.input.clone());
    if r.subjects.is_empty() {
        eprintln!("{name}: run {}: no walking subject found", r.run_id);
    }
    let f = |v: Option<f64>, d: usize| v.map(|x| format!("{x:.d$}")).unwrap_or("-".into());
    for (i, g) in r.subjects.iter().enumerate() {
        eprintln!(
            "{name}: run {} {} track {}: {} steps, cadence {} steps/min, step {} s, stride {} s, stance {} %, swing {} %, double support {} %, step length {} {}, speed {} {}",
            r.run_id,
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
    match model.spec().layout {
        OutputLayout::Ultralytics { keypoints: 17, .. } => Ok(()),
        OutputLayout::Ultralytics { keypoints: 0, .. } | OutputLayout::Yolox { .. } | OutputLayout::Nanodet { .. } => bail!(
            "{}: not a pose model (it outputs no keypoints); gait needs a COCO-17 pose model such as yolo11n_pose_int8.onnx",
            path.display()
        ),
        OutputLayout::Ultralytics { keypoints, .. } => bail!(
            "{}: pose model with {keypoints} keypoints; gait needs the COCO-17 layout",
            path.display()
        ),
    }
}

pub fn run(args: GaitArgs) -> Result<ExitCode> {
    let model_path = args
        .model
        .clone()
        .context("no model: pass --model PATH (a pose model) or set PEREGRINE_MODEL")?;
    let plan = mode_plan(&args.mode)?;
    if let Some(h) = args.height {
        if !(h.is_finite() && (0.5..=2.5).contains(&h)) {
            bail!("--height must be the subject's height in metres (0.5 to 2.5), got {h}");
        }
    }
    let params = AnalyzeParams {
        mode: Some(args.mode.clone()),
        fps: plan.fps,
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
    let model = Model::load(&model_path, None)?;
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
    let store = SqliteRunStore::open(&args.db, Duration::from_secs(5))?;
    let stop = || cancel.load(Ordering::Relaxed);
    let Some(engine) = Engine::start_cancellable(model, opts.engine, &stop)? else {
        return Ok(ExitCode::from(130));
    };
    let analyzer = Analyzer::new(engine, Arc::new(store), cancel.clone());
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
        let result = match analyse_run(
            &args.db,
            &r,
            run_id,
            &plan,
            args.height,
            args.report.is_some(),
        ) {
            Ok(g) => g,
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
                &json!({"input": result.input, "run_id": result.run_id, "subjects": result.subjects}),
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
            let subjects = result
                .subjects
                .iter()
                .zip(result.key_frames)
                .map(|(gait, key_frames)| ReportSubject { gait, key_frames })
                .collect();
            let page = peregrine_gait::report::html(&Report {
                input: &result.input,
                run_id,
                mode: &args.mode,
                height_m: args.height,
                subjects,
            });
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
