//! Peregrine's evaluation metrics: multi-object tracking (CLEAR MOT,
//! Identity, HOTA) against MOTChallenge ground truth, and COCO-style
//! detection AP/AR.
//!
//! A key design decision in this crate is that every number is defined by a
//! reference tool rather than by a paper, because users compare them with
//! published tables: CLEAR and Identity follow py-motmetrics 1.4, HOTA
//! follows TrackEval 1.3, AP/AR follow pycocotools' `COCOeval`, each to the
//! last rounding rule (see `bench/eval/parity.py`, which checks them on real
//! data). Inputs are validated once when read, so scoring never fails
//! halfway; the crate is pure computation (files in, numbers out) and has
//! no notion of video, models or storage.

mod assign;
mod clear;
mod coco;
mod cocofile;
mod error;
mod hota;
mod matches;
mod motfile;
mod prepare;
mod sequences;

pub use clear::{Clear, Identity};
pub use coco::{
    coco_iou_thresholds, ClassStats, CocoData, CocoDet, CocoGt, CocoMatching, CocoReport, CocoStats,
};
pub use cocofile::{parse_coco_dets, parse_coco_gt, read_coco_dets, read_coco_gt};
pub use error::EvalError;
pub use hota::{alphas, Hota, HotaPerAlpha, ALPHAS};
pub use matches::{FrameCounts, FrameMatch, MatchKind, PrCurve, PrPoint};
pub use motfile::{FileRole, MotFile, MotRow, SeqInfo, MAX_FRAME};
pub use prepare::{Benchmark, Protocol};
pub use sequences::{discover, SequencePaths};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// How to read and preprocess MOTChallenge inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MotOptions {
    /// Column conventions; detected from the ground truth when `None`
    /// (9 columns: MOT16/17, otherwise MOT15).
    pub benchmark: Option<Benchmark>,
    pub protocol: Protocol,
}

/// All tracking metrics of one sequence (or of several combined).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MotMetrics {
    #[serde(flatten)]
    pub clear: Clear,
    #[serde(flatten)]
    pub identity: Identity,
    #[serde(flatten)]
    pub hota: Hota,
}

impl MotMetrics {
    /// Combines sequences the way the reference tools do: counts summed,
    /// ratios recomputed, HOTA association scores weighted by matches.
    pub fn combine<'a>(parts: impl IntoIterator<Item = &'a MotMetrics> + Clone) -> MotMetrics {
        MotMetrics {
            clear: Clear::combine(parts.clone().into_iter().map(|m| &m.clear)),
            identity: Identity::combine(parts.clone().into_iter().map(|m| &m.identity)),
            hota: Hota::combine(parts.into_iter().map(|m| &m.hota)),
        }
    }
}

/// One scored sequence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequenceReport {
    pub name: String,
    pub benchmark: Benchmark,
    #[serde(flatten)]
    pub metrics: MotMetrics,
}

/// Several sequences and their combined summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MotReport {
    pub protocol: Protocol,
    pub sequences: Vec<SequenceReport>,
    pub combined: MotMetrics,
}

/// Scores one sequence. `seq_length` (from `seqinfo.ini`) fixes the frame
/// range; rows outside it are an error.
pub fn evaluate_sequence(
    gt: &MotFile,
    pred: &MotFile,
    seq_length: Option<u32>,
    opts: MotOptions,
) -> Result<(Benchmark, MotMetrics), EvalError> {
    evaluate_sequence_inner(gt, pred, seq_length, opts, None)
}

/// [`evaluate_sequence`] with the CLEAR MOT matching of every frame
/// (matches, switches, misses, false positives), in frame order.
pub fn evaluate_sequence_matched(
    gt: &MotFile,
    pred: &MotFile,
    seq_length: Option<u32>,
    opts: MotOptions,
) -> Result<(Benchmark, MotMetrics, Vec<FrameMatch>), EvalError> {
    let mut events = Vec::new();
    let (b, m) = evaluate_sequence_inner(gt, pred, seq_length, opts, Some(&mut events))?;
    Ok((b, m, events))
}

fn evaluate_sequence_inner(
    gt: &MotFile,
    pred: &MotFile,
    seq_length: Option<u32>,
    opts: MotOptions,
    events: Option<&mut Vec<FrameMatch>>,
) -> Result<(Benchmark, MotMetrics), EvalError> {
    let benchmark = opts.benchmark.unwrap_or_else(|| Benchmark::detect(gt));
    let p = prepare::prepare(gt, pred, benchmark, opts.protocol, seq_length)?;
    let (clear, identity) = clear::clear_and_identity(&p, events);
    let hota = hota::hota(&p);
    Ok((
        benchmark,
        MotMetrics {
            clear,
            identity,
            hota,
        },
    ))
}

/// Scores a set of sequences (see [`discover`]), in parallel, and combines
/// them.
pub fn evaluate_sequences(
    seqs: &[SequencePaths],
    opts: MotOptions,
) -> Result<MotReport, EvalError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(seqs.len().max(1));
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<SequenceReport, EvalError>>>> =
        seqs.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(seq) = seqs.get(i) else { break };
                let r = score_one(seq, opts);
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(r);
                }
            });
        }
    });
    let mut sequences = Vec::with_capacity(seqs.len());
    for (slot, seq) in slots.into_iter().zip(seqs) {
        let r =
            slot.into_inner().ok().flatten().unwrap_or_else(|| {
                Err(EvalError::invalid(&seq.gt, "scoring worker did not finish"))
            });
        sequences.push(r?);
    }
    let combined = MotMetrics::combine(sequences.iter().map(|s| &s.metrics));
    Ok(MotReport {
        protocol: opts.protocol,
        sequences,
        combined,
    })
}

fn score_one(seq: &SequencePaths, opts: MotOptions) -> Result<SequenceReport, EvalError> {
    let gt = MotFile::read(&seq.gt, FileRole::GroundTruth)?;
    let pred = MotFile::read(&seq.pred, FileRole::Prediction)?;
    let (benchmark, metrics) = evaluate_sequence(&gt, &pred, seq.seq_length, opts)?;
    Ok(SequenceReport {
        name: seq.name.clone(),
        benchmark,
        metrics,
    })
}

/// Scores ground truth and predictions given as files or folders (see
/// [`discover`]).
pub fn evaluate_mot(
    gt: &std::path::Path,
    pred: &std::path::Path,
    opts: MotOptions,
) -> Result<MotReport, EvalError> {
    let seqs = discover(gt, pred)?;
    evaluate_sequences(&seqs, opts)
}
