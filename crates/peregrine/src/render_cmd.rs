//! `peregrine render`: annotated video and stills from a stored run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use peregrine_core::Labels;
use peregrine_media::RenderOptions;
use peregrine_render::render_run;

use crate::export_cmd::{open_results, warn_if_incomplete};

/// Output options shared by `render` and `analyze --render`.
#[derive(Args, Debug, Clone, Default)]
pub struct RenderFlags {
    /// Write annotated stills into this folder (with --at).
    #[arg(long)]
    pub snapshots: Option<PathBuf>,
    /// Times in seconds for --snapshots: 10,20,30
    #[arg(long, value_delimiter = ',')]
    pub at: Vec<f64>,
    /// Quality, 0 (lossless) .. 51 (worst): x264 CRF, NVENC CQ.
    #[arg(long, default_value_t = 20)]
    pub crf: u32,
    /// Encoder preset (x264 names; NVENC maps them to p1..p7).
    #[arg(long, default_value = "veryfast")]
    pub preset: String,
    /// H.264 encoder: libx264, or h264_nvenc (NVIDIA GPU).
    #[arg(long, default_value = "libx264", value_parser = ["libx264", "h264_nvenc"])]
    pub codec: String,
}

impl RenderFlags {
    pub fn options(&self, video: Option<PathBuf>) -> Result<RenderOptions> {
        if self.snapshots.is_some() == self.at.is_empty() {
            bail!("--snapshots DIR and --at T1,T2,... go together");
        }
        if let Some(t) = self.at.iter().find(|t| !(t.is_finite() && **t >= 0.0)) {
            bail!("--at times must be non-negative seconds, got {t}");
        }
        if self.crf > 51 {
            bail!("--crf must be 0..51, got {}", self.crf);
        }
        Ok(RenderOptions {
            video,
            snapshots: self.snapshots.clone().map(|d| (d, self.at.clone())),
            crf: self.crf,
            preset: self.preset.clone(),
            codec: self.codec.clone(),
        })
    }

    pub fn wanted(&self) -> bool {
        self.snapshots.is_some()
    }
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// Run id (see `peregrine runs`).
    pub run: i64,
    /// Output video (.mp4, .mkv, .mov).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub flags: RenderFlags,
    /// Database: a SQLite file (`path` or `sqlite:path`) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "PEREGRINE_DB", default_value = "peregrine.db")]
    pub db: PathBuf,
    /// Class names file (default: the names the run was analysed with).
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

pub fn render_stored(db: &Path, run: i64, labels: &Labels, opts: &RenderOptions) -> Result<()> {
    let stats = render_run(&peregrine_store::DbTarget::from_path(db), run, labels, opts)?;
    if let Some(v) = &opts.video {
        eprintln!(
            "{}: {} frames{}",
            v.display(),
            stats.frames,
            if stats.audio_copied {
                ", audio copied"
            } else {
                ""
            }
        );
    }
    for s in &stats.snapshots {
        eprintln!("{}", s.display());
    }
    Ok(())
}

pub fn run(args: RenderArgs) -> Result<ExitCode> {
    if args.output.is_none() && !args.flags.wanted() {
        bail!("nothing to render: pass -o OUT.mp4 and/or --snapshots DIR --at T,...");
    }
    let store = open_results(&args.db)?;
    let run = store.run(args.run)?;
    if run.params.get("live").is_some() && run.video_path.contains("://") {
        bail!(
            "run {}: a live stream of {} (a camera's frames are not kept); only live runs of files can be rendered",
            args.run,
            run.video_path
        );
    }
    let labels = match &args.labels {
        Some(p) => Labels::from_file(p)?,
        None => run.labels(),
    };
    drop(store);
    let opts = args.flags.options(args.output.clone())?;
    warn_if_incomplete(&run, "rendering");
    render_stored(&args.db, args.run, &labels, &opts)?;
    Ok(ExitCode::SUCCESS)
}
