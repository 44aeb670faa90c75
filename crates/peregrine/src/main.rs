//! `peregrine`: the command-line interface.

mod analyze_cmd;
mod assemble_cmd;
mod bench_cmd;
mod counts_cmd;
mod eval_cmd;
mod export_cmd;
mod export_coco;
mod gait_cmd;
mod heatmap_cmd;
mod live_cmd;
mod render_cmd;
mod serve_cmd;
mod worker_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "peregrine",
    version,
    about = "Fast video analytics: detect, track, store, query."
)]
struct Cli {
    /// Where inference runs: cpu, cuda[:N], tensorrt[:N], or auto (the GPU
    /// when its libraries and driver are present, else the CPU; one line
    /// says which and why).
    #[arg(long, global = true, env = "PEREGRINE_DEVICE", default_value = "auto")]
    device: peregrine_infer::Device,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Detect objects in videos and store the results.
    Analyze(Box<analyze_cmd::AnalyzeArgs>),
    /// List stored runs.
    Runs(export_cmd::RunsArgs),
    /// List a run's tracks with their statistics.
    Tracks(export_cmd::TracksArgs),
    /// Score detections and tracks against ground truth (MOT, COCO).
    Eval(eval_cmd::EvalArgs),
    /// Stream a run's detections out as JSON lines, CSV, MOTChallenge text or COCO keypoint JSON.
    Export(export_cmd::ExportArgs),
    /// Draw a stored run onto its video: annotated H.264 video and stills.
    Render(render_cmd::RenderArgs),
    /// Line crossings and zone occupancy of a run, stored or replayed.
    Counts(counts_cmd::CountsArgs),
    /// Heat map of a run's object positions over a still of its video (PNG).
    Heatmap(heatmap_cmd::HeatmapArgs),
    /// Gait metrics of people walking (pose model): cadence, steps, stance, symmetry, report.
    Gait(Box<gait_cmd::GaitArgs>),
    /// Join a shot list (JSON, TOML, EDL, OTIO) into one video.
    Assemble(assemble_cmd::AssembleArgs),
    /// Analyse live streams (RTSP, RTMP, HLS, UDP, SRT, files as cameras) on one shared engine.
    Live(Box<live_cmd::LiveArgs>),
    /// Run the HTTP service: job queue, API, dashboard.
    Serve(serve_cmd::ServeArgs),
    /// Print the service's OpenAPI document (JSON), for generating API clients.
    Openapi(serve_cmd::OpenapiArgs),
    /// Run analysis workers on a PostgreSQL job queue shared with `serve --workers 0`.
    Worker(worker_cmd::WorkerArgs),
    /// Measure decode-only and model-only throughput (used by bench/run.sh).
    Bench(bench_cmd::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Needs no inference device.
    if let Command::Openapi(a) = cli.command {
        return match serve_cmd::openapi(a) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("peregrine: {}", one_line(&e));
                ExitCode::FAILURE
            }
        };
    }
    if let Err(e) = peregrine_infer::Runtime::select_device(cli.device) {
        eprintln!("peregrine: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Analyze(a) => analyze_cmd::run(*a),
        Command::Runs(a) => export_cmd::runs(a),
        Command::Export(a) => export_cmd::export(a),
        Command::Tracks(a) => export_cmd::tracks(a),
        Command::Eval(a) => eval_cmd::run(&a).map(|()| ExitCode::SUCCESS),
        Command::Render(a) => render_cmd::run(a),
        Command::Bench(a) => bench_cmd::run(a),
        Command::Counts(a) => counts_cmd::run(a),
        Command::Heatmap(a) => heatmap_cmd::run(a),
        Command::Serve(a) => serve_cmd::run(a),
        Command::Worker(a) => worker_cmd::run(a),
        Command::Openapi(a) => serve_cmd::openapi(a),
        Command::Gait(a) => gait_cmd::run(*a),
        Command::Live(a) => live_cmd::run(*a),
        Command::Assemble(a) => assemble_cmd::run(&a).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("peregrine: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Loads a model and, the first time in this process, says on stderr where
/// inference runs and why, when that is news: a GPU is used, or `auto` fell
/// back to the CPU although part of the GPU stack is installed.
pub(crate) fn load_model(
    path: &std::path::Path,
    family: Option<peregrine_infer::Family>,
) -> Result<peregrine_infer::Model, peregrine_infer::InferError> {
    static SAID: std::sync::Once = std::sync::Once::new();
    let model = peregrine_infer::Model::load(path, family)?;
    if model.device().notable {
        SAID.call_once(|| eprintln!("peregrine: {}", model.device().describe()));
    }
    Ok(model)
}

/// The error and its causes on one line, without repeating a cause that
/// the message already contains.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out.replace('\n', " ")
}
