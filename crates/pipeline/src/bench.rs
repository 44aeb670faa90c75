//! Measurements behind `peregrine bench`: the decode limit and the model
//! limit on this machine, with the same code the pipeline runs.

use std::time::Instant;

use peregrine_core::Detection;
use peregrine_infer::{fill_tensor, DetectorConfig, InferError, Model, SessionConfig};
use peregrine_media::ffmpeg::frame::Video;
use peregrine_media::{
    Canvas, Decoder, DecoderOptions, HwDecode, InputSpec, LetterboxScaler, MediaError, Sampling,
};

use crate::PipelineError;

/// Frames processed and wall seconds.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Throughput {
    pub frames: u64,
    pub seconds: f64,
    pub fps: f64,
}

impl Throughput {
    fn new(frames: u64, seconds: f64) -> Self {
        Self {
            frames,
            seconds,
            fps: if seconds > 0.0 {
                frames as f64 / seconds
            } else {
                0.0
            },
        }
    }
}

/// Decodes every frame of `spec` and nothing else.
pub fn decode_throughput(
    spec: &InputSpec,
    threads: usize,
    hw: HwDecode,
) -> Result<(Throughput, Option<String>), MediaError> {
    let mut dec = Decoder::open(
        spec,
        &DecoderOptions {
            threads,
            sampling: Sampling::default(),
            hw,
            ..Default::default()
        },
    )?;
    let mut f = Video::empty();
    let t0 = Instant::now();
    let mut n = 0;
    while dec.next_frame(&mut f)?.is_some() {
        n += 1;
    }
    Ok((
        Throughput::new(n, t0.elapsed().as_secs_f64()),
        dec.stats().hw_decoder.clone(),
    ))
}

/// Runs the model on pre-letterboxed frames of `spec` in a tight loop:
/// `sessions` sessions with `threads` intra-op threads each, working on
/// alternate batches of `batch` frames (1 for fixed-batch models), about
/// `frames` frames in total.
pub fn model_throughput(
    model: &Model,
    spec: &InputSpec,
    sessions: usize,
    threads: usize,
    batch: usize,
    frames: u64,
) -> Result<Throughput, PipelineError> {
    let layout = model.canvas_layout();
    let mut dec = Decoder::open(spec, &DecoderOptions::default())?;
    let mut scaler = LetterboxScaler::new(layout);
    let mut f = Video::empty();
    let mut canvases = Vec::new();
    while canvases.len() < 16 {
        let Some(_) = dec.next_frame(&mut f)? else {
            break;
        };
        let mut c = Canvas::new(layout.width, layout.height);
        let lb = scaler.run(&f, &mut c)?;
        canvases.push((c, lb));
    }
    if canvases.is_empty() {
        return Err(PipelineError::Input {
            input: spec.path.display().to_string(),
            reason: "no frames".into(),
        });
    }
    let norm = model.spec().normalization();
    let sessions = sessions.max(1);
    let mut detectors = (0..sessions)
        .map(|_| {
            model.detector(
                &SessionConfig {
                    intra_threads: threads,
                    spin: false,
                },
                batch,
            )
        })
        .collect::<Result<Vec<_>, InferError>>()?;
    let batch = detectors[0].max_batch();
    let filter = model.filter(DetectorConfig::default());
    let filter = &filter;
    let filters = vec![filter; batch];
    let filters = &filters;
    // One batch: slots filled from consecutive canvases starting at `at`.
    let run_batch = |d: &mut peregrine_infer::Detector,
                     at: usize,
                     out: &mut Vec<Vec<Detection>>|
     -> Result<(), InferError> {
        let mut lbs = Vec::with_capacity(batch);
        for i in 0..batch {
            let (c, lb) = &canvases[(at + i) % canvases.len()];
            fill_tensor(&c.data, &norm, d.input_slot(i));
            lbs.push(*lb);
        }
        d.run(&lbs, filters, out).map(|_| ())
    };
    // Warm up each session twice (GPU sessions pick kernels on the first).
    for d in &mut detectors {
        let mut out = vec![Vec::new(); batch];
        run_batch(d, 0, &mut out)?;
        run_batch(d, 0, &mut out)?;
    }
    let batches = frames.div_ceil((sessions * batch) as u64);
    let canvases = &canvases;
    let t0 = Instant::now();
    let done: Result<u64, InferError> = std::thread::scope(|s| {
        let handles: Vec<_> = detectors
            .into_iter()
            .enumerate()
            .map(|(k, mut d)| {
                s.spawn(move || -> Result<u64, InferError> {
                    let mut out = vec![Vec::new(); batch];
                    for i in 0..batches {
                        let at = ((i as usize) * sessions + k) * batch % canvases.len();
                        run_batch(&mut d, at, &mut out)?;
                    }
                    Ok(batches * batch as u64)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .sum()
    });
    Ok(Throughput::new(done?, t0.elapsed().as_secs_f64()))
}
