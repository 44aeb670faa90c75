//! `peregrine heatmap`: where a run's objects were, over a still of its
//! video.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use peregrine_render::{heatmap_png, HeatmapOptions};

use crate::export_cmd::{open_results, warn_if_incomplete};

#[derive(Args, Debug)]
pub struct HeatmapArgs {
    /// Run id (see `peregrine runs`).
    pub run: i64,
    /// Output PNG.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Only this class (name or index).
    #[arg(long)]
    pub class: Option<String>,
    /// Only this track.
    #[arg(long)]
    pub track: Option<u32>,
    /// Box point accumulated (default: the run's --anchor, else bottom-center).
    #[arg(long)]
    pub anchor: Option<String>,
    /// Grid cell in pixels.
    #[arg(long, default_value_t = 4)]
    pub cell: u32,
    /// Frame of the video underneath (default: the middle analysed frame).
    #[arg(long)]
    pub frame: Option<u64>,
    /// Database: a SQLite file (`path` or `sqlite:path`) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "PEREGRINE_DB", default_value = "peregrine.db")]
    pub db: PathBuf,
}

pub fn run(args: HeatmapArgs) -> Result<ExitCode> {
    if args.output.extension().and_then(|e| e.to_str()) != Some("png") {
        bail!(
            "{}: the heat map is written as PNG (name it .png)",
            args.output.display()
        );
    }
    if args.cell == 0 {
        bail!("--cell must be at least 1 pixel");
    }
    let anchor = args
        .anchor
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: String| anyhow::anyhow!("--anchor: {e}"))?;
    let store = open_results(&args.db)?;
    let run = store.run(args.run)?;
    warn_if_incomplete(&run, "drawing");
    let class = match &args.class {
        Some(c) => Some(
            run.labels()
                .id_of(c)
                .map_err(|e| anyhow::anyhow!("--class: {e}"))?,
        ),
        None => None,
    };
    let (png, points) = heatmap_png(
        &store,
        args.run,
        &HeatmapOptions {
            class,
            track: args.track,
            anchor,
            cell: args.cell,
            frame: args.frame,
        },
    )?;
    if points == 0 {
        bail!(
            "run {}: no tracked detections match (--class, --track)",
            args.run
        );
    }
    std::fs::write(&args.output, png)
        .with_context(|| format!("{}: cannot write", args.output.display()))?;
    eprintln!("{}: {points} anchors", args.output.display());
    Ok(ExitCode::SUCCESS)
}
