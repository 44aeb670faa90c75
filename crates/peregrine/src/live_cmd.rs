//! `peregrine live`: many live sources on one shared engine.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use peregrine_infer::Family;
use peregrine_live::{LiveOptions, LiveSet, StreamReport, StreamSpec, StreamState, StreamsFile};
use peregrine_media::LiveInputOptions;
use peregrine_pipeline::AnalyzeParams;
use peregrine_store::DbTarget;

#[derive(Args, Debug)]
pub struct LiveArgs {
    /// Sources: rtsp://, rtmp://, http(s):// (HLS, MPEG-TS), udp://, srt://
    /// URLs, or video files (played as cameras with --realtime).
    pub sources: Vec<String>,
    /// Stream names, in SOURCE order (default: 0, 1, ...).
    #[arg(long, value_delimiter = ',')]
    pub name: Vec<String>,
    /// Frames analysed per second, per stream.
    #[arg(long, default_value_t = 5.0)]
    pub fps: f64,
    /// Streams (by name) that keep their full rate under overload.
    #[arg(long, value_delimiter = ',')]
    pub priority: Vec<String>,
    /// Stop after S seconds (default: run until Ctrl-C / SIGTERM, or until
    /// every source has ended).
    #[arg(long)]
    pub duration: Option<f64>,
    /// ONNX detector model.
    #[arg(long, env = "PEREGRINE_MODEL")]
    pub model: Option<PathBuf>,
    /// Model family (yolox, nanodet, ultralytics); recognised when omitted.
    #[arg(long)]
    pub family: Option<String>,
    /// Database: a SQLite file (`path` or `sqlite:path`) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "PEREGRINE_DB", default_value = "peregrine.db")]
    pub db: PathBuf,
    /// One JSON object per stream, then a summary line, on stdout at exit.
    #[arg(long)]
    pub json: bool,
    /// Longest time from a frame's arrival to its stored results; frames
    /// that cannot make it are shed.
    #[arg(long, default_value_t = 100.0)]
    pub latency_budget_ms: f64,
    /// Streams from a TOML file: [[stream]] name, source, fps, priority, rank.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Seconds without a packet before a source counts as stalled.
    #[arg(long, default_value_t = 5.0)]
    pub stall_timeout: f64,
    /// Seconds a connection attempt may take.
    #[arg(long, default_value_t = 10.0)]
    pub open_timeout: f64,
    /// Longest wait between reconnection attempts, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub max_backoff: f64,
    /// RTSP transport: tcp or udp.
    #[arg(long, default_value = "tcp")]
    pub rtsp_transport: String,
    /// Play files at their native frame rate, as cameras would send them.
    #[arg(long)]
    pub realtime: bool,
    /// Play files again from the start when they end.
    #[arg(long = "loop")]
    pub looping: bool,
    /// No stream is shed below this many frames per second.
    #[arg(long, default_value_t = 1.0)]
    pub min_fps: f64,
    /// Decode every frame of every stream. By default a stream analysed
    /// well below its source's rate (its fps, or the rate it is shed to)
    /// skips decoding the frames it cannot use: non-reference frames when
    /// analysed frames are 3 or more apart, all but keyframes when the
    /// keyframe interval is at most the analysis period.
    #[arg(long)]
    pub decode_all: bool,
    /// Run the detector only on frames where something moves (every stream).
    #[arg(long)]
    pub motion_gate: bool,
    /// Motion gating: fraction of the picture that must change (0-1).
    #[arg(long, default_value_t = 0.005)]
    pub motion_min_area: f64,
    /// Minimum detection score.
    #[arg(long)]
    pub conf: Option<f32>,
    /// Only these classes, by name or index: person,car
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// Skip tracking.
    #[arg(long)]
    pub no_track: bool,
    /// Frames per inference call (dynamic-batch models), formed across streams.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Total inference threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Inference sessions (default: one per thread).
    #[arg(long)]
    pub infer_workers: Option<usize>,
    /// Publish events to this MQTT broker (mqtt://host:port): topics
    /// peregrine/<stream>/{state,detections,tracks}.
    #[arg(long)]
    pub mqtt: Option<String>,
    /// Seconds to wait for a database locked by another writer.
    #[arg(long, default_value_t = 5.0)]
    pub db_timeout: f64,
    /// Counting lines and zones, applied to every stream (coordinates in
    /// each stream's own pixels).
    #[command(flatten)]
    pub spatial: crate::counts_cmd::SpatialFlags,
}

fn secs(flag: &str, v: f64) -> Result<Duration> {
    if !(v.is_finite() && v > 0.0) {
        bail!("--{flag} must be a positive number of seconds (got {v})");
    }
    Ok(Duration::from_secs_f64(v))
}

/// The streams of the command line and of `--config`, validated.
fn streams(a: &LiveArgs) -> Result<Vec<StreamSpec>> {
    if !a.name.is_empty() && a.name.len() != a.sources.len() {
        bail!(
            "--name gives {} names for {} sources",
            a.name.len(),
            a.sources.len()
        );
    }
    let mut out: Vec<StreamSpec> = a
        .sources
        .iter()
        .enumerate()
        .map(|(i, source)| StreamSpec {
            name: a.name.get(i).cloned().unwrap_or_else(|| i.to_string()),
            source: source.clone(),
            fps: a.fps,
            priority: false,
            rank: 0,
            motion_gate: a.motion_gate,
        })
        .collect();
    if let Some(p) = &a.config {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("{}: cannot read stream config", p.display()))?;
        let file = StreamsFile::parse(&text).with_context(|| format!("{}", p.display()))?;
        out.extend(file.stream.into_iter().map(|mut s| {
            s.motion_gate |= a.motion_gate;
            s
        }));
    }
    if out.is_empty() {
        bail!("no sources: pass SOURCE... or --config streams.toml");
    }
    for s in &out {
        if s.source.is_empty() {
            bail!("stream {}: empty source", s.name);
        }
        if !s.source.contains("://") && !std::path::Path::new(&s.source).exists() {
            bail!("{}: file not found (not a URL either)", s.source);
        }
    }
    for p in &a.priority {
        match out.iter_mut().find(|s| &s.name == p) {
            Some(s) => s.priority = true,
            None => bail!("--priority {p}: no stream has that name"),
        }
    }
    Ok(out)
}

pub fn run(a: LiveArgs) -> Result<ExitCode> {
    let specs = streams(&a)?;
    if !(a.fps.is_finite() && a.fps > 0.0) {
        bail!("--fps must be a positive number (got {})", a.fps);
    }
    let budget = secs("latency-budget-ms", a.latency_budget_ms / 1e3)
        .map_err(|_| anyhow::anyhow!("--latency-budget-ms must be positive"))?;
    if !(a.min_fps.is_finite() && a.min_fps > 0.0) {
        bail!("--min-fps must be a positive number (got {})", a.min_fps);
    }
    if !(0.0..=1.0).contains(&a.motion_min_area) {
        bail!(
            "--motion-min-area must be in [0, 1] (got {})",
            a.motion_min_area
        );
    }
    let transport = match a.rtsp_transport.as_str() {
        "tcp" | "udp" => a.rtsp_transport.clone(),
        other => bail!("--rtsp-transport must be tcp or udp (got {other:?})"),
    };
    let duration = a.duration.map(|d| secs("duration", d)).transpose()?;
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
    let labels = peregrine_pipeline::model_labels(&model_path)?;
    let mut params = AnalyzeParams {
        conf: a.conf,
        classes: (!a.classes.is_empty()).then(|| a.classes.clone()),
        no_track: Some(a.no_track),
        batch: Some(a.batch),
        threads: Some(a.threads),
        infer_workers: a.infer_workers,
        ..Default::default()
    };
    a.spatial.apply(&mut params)?;
    let opts = params
        .resolve_for(labels)
        .map_err(|e| anyhow::anyhow!("--{e}"))?;
    let opts_live = LiveOptions {
        latency_budget: budget,
        min_fps: a.min_fps,
        input: LiveInputOptions {
            rtsp_transport: Some(transport),
            stall_timeout: secs("stall-timeout", a.stall_timeout)?,
            open_timeout: secs("open-timeout", a.open_timeout)?,
            realtime: a.realtime,
            looping: a.looping,
            decode_all: a.decode_all,
            ..Default::default()
        },
        backoff_max: secs("max-backoff", a.max_backoff)?,
        motion_min_area: a.motion_min_area,
        ..Default::default()
    };

    let cancel = Arc::new(AtomicBool::new(false));
    {
        let c = cancel.clone();
        // SIGINT and SIGTERM stop cleanly; a second one exits at once.
        let _ = ctrlc::set_handler(move || {
            if c.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    // SIGTERM is how service managers stop a process: a normal end, exit
    // 0 once everything is flushed (SIGINT exits 130). The action runs
    // before the ctrlc handler, which the registry chains.
    let terminated = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    {
        const SIGTERM: std::ffi::c_int = 15;
        let t = terminated.clone();
        // SAFETY: the action only stores to an atomic (async-signal-safe).
        #[allow(unsafe_code)]
        let _ = unsafe {
            signal_hook_registry::register(SIGTERM, move || t.store(true, Ordering::SeqCst))
        };
    }
    let store = peregrine_store::open_run_store(
        &DbTarget::from_path(&a.db),
        Duration::from_secs_f64(a.db_timeout.max(0.0)),
    )?;
    let model = crate::load_model(&model_path, family)?;
    let stop = || cancel.load(Ordering::Relaxed);
    let Some(engine) = peregrine_pipeline::Engine::start_cancellable(model, opts.engine, &stop)?
    else {
        return Ok(ExitCode::from(130));
    };
    let events = a
        .mqtt
        .as_deref()
        .map(peregrine_live::Events::connect)
        .transpose()?;
    let mut set = LiveSet::start(engine, store, opts.run, opts_live);
    if let Some(e) = &events {
        set = set.with_events(e.clone());
    }
    for s in specs {
        set.add(s)?;
    }
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        if duration.is_some_and(|d| t0.elapsed() >= d) {
            break;
        }
        if set.all_ended() {
            break;
        }
    }
    let (reports, summary) = set.stop();
    if let Some(e) = &events {
        e.close(Duration::from_millis(300));
    }
    let failed = reports
        .iter()
        .filter(|r| r.state == StreamState::Failed)
        .count();
    for r in &reports {
        if let (StreamState::Failed, Some(e)) = (r.state, &r.error) {
            eprintln!("peregrine: stream {}: {e}", r.stream);
        }
    }
    if a.json {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for r in &reports {
            serde_json::to_writer(&mut out, &json_line(r))?;
            writeln!(out)?;
        }
        serde_json::to_writer(&mut out, &serde_json::json!({ "summary": summary }))?;
        writeln!(out)?;
        out.flush()?;
    } else {
        for r in &reports {
            eprintln!(
                "{}: {} run {}: {} received ({} not decoded), {} analysed ({:.2} fps), {} shed, {} reconnects, latency p50 {:.1} ms p95 {:.1} ms",
                r.stream,
                r.state.as_str(),
                r.run_id.map_or("-".into(), |i| i.to_string()),
                r.frames_received,
                r.frames_skipped,
                r.frames_analysed,
                r.fps_analysed,
                r.frames_shed,
                r.reconnects,
                r.latency_ms.p50,
                r.latency_ms.p95
            );
        }
        eprintln!(
            "total: {} analysed ({:.1} fps), {} shed, batch mean {:.2}",
            summary.frames_analysed,
            summary.fps_analysed,
            summary.frames_shed,
            summary.batch_size_mean
        );
    }
    Ok(if terminated.load(Ordering::Relaxed) {
        ExitCode::SUCCESS
    } else if cancel.load(Ordering::Relaxed) {
        ExitCode::from(130)
    } else if failed == reports.len() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A stream's `--json` line: the contract's keys first, then the rest.
fn json_line(r: &StreamReport) -> serde_json::Value {
    serde_json::to_value(r).unwrap_or_default()
}
