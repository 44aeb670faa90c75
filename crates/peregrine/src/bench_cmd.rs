//! `peregrine bench`: the hardware limits the benchmark suite compares
//! against (decode-only and model-only throughput), as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use peregrine_media::{discover_inputs, HwDecode};
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
        /// Decode on an NVIDIA GPU (NVDEC, FFmpeg's cuvid decoders); falls
        /// back to software where that does not open.
        #[arg(long)]
        nvdec: bool,
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
        /// Frames per inference call (dynamic-batch models; fixed ones keep theirs).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long, default_value_t = 500)]
        frames: u64,
    },
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let out = match args.what {
        BenchWhat::Decode {
            input,
            threads,
            nvdec,
        } => {
            let spec = discover_inputs(&[input])?
                .into_iter()
                .next()
                .context("no input")?;
            let hw = if nvdec {
                HwDecode::Nvdec
            } else {
                HwDecode::Off
            };
            let (t, decoder) = decode_throughput(&spec, threads, hw)?;
            let mut v = serde_json::to_value(t)?;
            v["decoder"] = decoder.unwrap_or_else(|| "software".into()).into();
            v
        }
        BenchWhat::Model {
            input,
            model,
            sessions,
            threads,
            batch,
            frames,
        } => {
            let spec = discover_inputs(&[input])?
                .into_iter()
                .next()
                .context("no input")?;
            let model = crate::load_model(&model, None)?;
            let mut v = serde_json::to_value(model_throughput(
                &model, &spec, sessions, threads, batch, frames,
            )?)?;
            v["device"] = model.device().accelerator.label().into();
            v["batch"] = model.max_batch(batch).into();
            v
        }
    };
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}
