//! `peregrine bench`: the hardware limits the benchmark suite compares
//! against (decode-only and model-only throughput), as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use peregrine_infer::Model;
use peregrine_media::discover_inputs;
use peregrine_pipeline::bench::{decode_throughput, model_throughput};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Subcommand, Debug)]
pub enum BenchWhat {
    /// Decode every frame of a video, nothing else.
    Decode {
        input: PathBuf,
        /// FFmpeg decoder threads (0 = automatic).
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Run the model on pre-letterboxed frames of a video in a tight loop.
    Model {
        input: PathBuf,
        #[arg(long, env = "PEREGRINE_MODEL")]
        model: PathBuf,
        /// Sessions working on alternate frames.
        #[arg(long, default_value_t = 1)]
        sessions: usize,
        /// Intra-op threads per session.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(long, default_value_t = 500)]
        frames: u64,
    },
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let out = match args.what {
        BenchWhat::Decode { input, threads } => {
            let spec = discover_inputs(&[input])?
                .into_iter()
                .next()
                .context("no input")?;
            serde_json::to_value(decode_throughput(&spec, threads)?)?
        }
        BenchWhat::Model {
            input,
            model,
            sessions,
            threads,
            frames,
        } => {
            let spec = discover_inputs(&[input])?
                .into_iter()
                .next()
                .context("no input")?;
            let model = Model::load(&model, None)?;
            serde_json::to_value(model_throughput(&model, &spec, sessions, threads, frames)?)?
        }
    };
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}
