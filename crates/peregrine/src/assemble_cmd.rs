//! `peregrine assemble`: join the shots of a shot list (JSON, TOML, CMX3600
//! EDL, OTIO) into one video, by stream copy when possible.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use peregrine_assemble::Rational;
use peregrine_assemble::{AssembleError, AssembleOptions, EncodeSettings, Mode};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    /// Stream-copy the shots in the target format (the one most of the
    /// duration has, or --size/--fps), encode only the others to it.
    Auto,
    /// Stream copy only; fail with the reasons when impossible.
    Copy,
    /// Always decode, scale, pad and re-encode.
    Normalize,
}

#[derive(Args, Debug)]
pub struct AssembleArgs {
    /// Shot list: .json, .toml, .edl (CMX3600) or .otio.
    pub shot_list: PathBuf,
    /// Output video (written to a temporary file, renamed when complete).
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// Video encoder for the normalising path (libx264, h264_nvenc).
    #[arg(long, default_value = "libx264")]
    pub codec: String,
    /// Quality (x264 CRF; NVENC CQ), 0..51.
    #[arg(long, default_value_t = 20)]
    pub crf: u32,
    /// Encoder preset.
    #[arg(long, default_value = "veryfast")]
    pub preset: String,
    /// Target size WxH (default: auto: the size most of the duration has;
    /// normalize: the first shot's).
    #[arg(long)]
    pub size: Option<String>,
    /// Target frame rate, e.g. 25 or 30000/1001 (default: as --size).
    #[arg(long)]
    pub fps: Option<String>,
    /// Parallel segment encoders (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
    /// Keep encoded segments here and reuse them on the next run.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

fn parse_size(s: &str) -> Result<(u32, u32)> {
    let (w, h) = s.split_once(['x', 'X']).context("--size must be WxH")?;
    let (w, h): (u32, u32) = (w.parse()?, h.parse()?);
    if w < 2 || h < 2 || w > 16384 || h > 16384 {
        bail!("--size {s} out of range");
    }
    Ok((w, h))
}

fn parse_fps(s: &str) -> Result<Rational> {
    let r = match s.split_once('/') {
        Some((n, d)) => Rational(n.trim().parse()?, d.trim().parse()?),
        None if s.contains('.') => {
            let f: f64 = s.parse()?;
            Rational((f * 1000.0).round() as i32, 1000)
        }
        None => Rational(s.trim().parse()?, 1),
    };
    if r.numerator() <= 0 || r.denominator() <= 0 {
        bail!("--fps {s} must be positive");
    }
    Ok(r)
}

pub fn run(args: &AssembleArgs) -> Result<()> {
    if args.crf > 51 {
        bail!("--crf must be 0..51, got {}", args.crf);
    }
    let opts = AssembleOptions {
        output: args.output.clone(),
        mode: match args.mode {
            ModeArg::Auto => Mode::Auto,
            ModeArg::Copy => Mode::Copy,
            ModeArg::Normalize => Mode::Normalize,
        },
        encode: EncodeSettings {
            codec: args.codec.clone(),
            crf: args.crf,
            preset: args.preset.clone(),
            size: args.size.as_deref().map(parse_size).transpose()?,
            fps: args.fps.as_deref().map(parse_fps).transpose()?,
            ..EncodeSettings::default()
        },
        jobs: args.jobs,
        cache_dir: args.cache_dir.clone(),
    };
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = Arc::clone(&cancel);
        // Another subcommand may own the handler already; then Ctrl-C kills
        // the process and the temporary file is left hidden (never the target).
        let _ = ctrlc::set_handler(move || cancel.store(true, Ordering::Relaxed));
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} shots  {msg}  ETA {eta}")
            .expect("valid template"),
    );
    let mut progress = |p: peregrine_assemble::Progress| {
        bar.set_length(p.shots_total as u64);
        bar.set_position(p.shots_done as u64);
        let secs = p.elapsed.as_secs_f64().max(1e-3);
        bar.set_message(format!(
            "{:.0} fps, {} frames copied, {} encoded",
            p.frames_done as f64 / secs,
            p.frames_done - p.frames_encoded,
            p.frames_encoded
        ));
    };
    let result = peregrine_assemble::assemble_file(&args.shot_list, &opts, &mut progress, &cancel);
    bar.finish_and_clear();
    let summary = match result {
        Ok(s) => s,
        Err(AssembleError::Invalid(errors)) => {
            for e in &errors {
                eprintln!("{}: {e}", args.shot_list.display());
            }
            bail!(
                "{}: {} invalid shot(s); nothing was written",
                args.shot_list.display(),
                errors.len()
            );
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        let how = match summary.mode {
            Mode::Copy => "stream copy".to_owned(),
            Mode::Mixed => format!(
                "{} shots copied, {} encoded to {}",
                summary.copied_shots,
                summary.encoded_shots,
                summary.target.as_deref().unwrap_or("the target")
            ),
            _ => "normalised".to_owned(),
        };
        eprintln!(
            "{}: {} shots, {:.3} s, {how} in {:.2} s",
            summary.output.display(),
            summary.shots,
            summary.duration,
            summary.seconds
        );
        if let Some(why) = &summary.copy_refused {
            eprintln!("not stream-copied: {why}");
        }
    }
    Ok(())
}
