//! The shared inference stage: a pool of workers, one ONNX Runtime session
//! each, batching frames from any number of inputs.

use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use peregrine_core::{Detection, FrameMeta, Letterbox};
use peregrine_infer::{fill_tensor, Detector, InferError, Model};
use peregrine_media::Canvas;

use crate::{AnalyzeOptions, Pooled};

/// One preprocessed frame on its way to inference.
pub struct InferItem {
    /// Position of the frame in its input's selected-frame order.
    pub seq: u64,
    pub meta: FrameMeta,
    pub canvas: Pooled<Canvas>,
    pub letterbox: Letterbox,
    /// Time spent decoding this frame (ms).
    pub decode_ms: f64,
    /// Time spent scaling into the canvas (ms).
    pub scale_ms: f64,
    /// Where the result goes: the input's sink.
    pub reply: Sender<FrameResult>,
}

/// Detections of one frame, or why there are none.
pub struct FrameResult {
    pub seq: u64,
    pub meta: FrameMeta,
    pub detections: Result<Vec<Detection>, String>,
    pub decode_ms: f64,
    /// Scaling plus tensor normalisation (ms).
    pub preprocess_ms: f64,
    /// This frame's share of its batch's session run (ms).
    pub infer_ms: f64,
    pub postprocess_ms: f64,
}

/// Handle on the running workers. Dropping the last sender (all inputs
/// done, then [`InferStage::shutdown`]) stops them.
pub struct InferStage {
    tx: Option<Sender<InferItem>>,
    workers: Vec<JoinHandle<()>>,
}

impl InferStage {
    /// Builds every worker's session up front, so a model or runtime problem
    /// fails before any input is touched.
    pub fn start(model: &Model, opts: &AnalyzeOptions) -> Result<InferStage, InferError> {
        Self::start_cancellable(model, opts, &|| false).map(|s| s.expect("never cancelled"))
    }

    /// Like [`InferStage::start`], checking `cancelled` before each session
    /// is built (building one can take a while): `Ok(None)` once it says
    /// so, with the sessions built so far dropped.
    pub fn start_cancellable(
        model: &Model,
        opts: &AnalyzeOptions,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Option<InferStage>, InferError> {
        let workers = opts.infer_workers.max(1);
        let batch = model.max_batch(opts.batch);
        let (tx, rx) = bounded::<InferItem>(workers * batch * 2);
        let mut detectors = Vec::with_capacity(workers);
        for _ in 0..workers {
            if cancelled() {
                return Ok(None);
            }
            detectors.push(model.detector(&opts.session, opts.detector_config(), batch)?);
        }
        if cancelled() {
            return Ok(None);
        }
        let workers = detectors
            .into_iter()
            .enumerate()
            .map(|(i, det)| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("infer-{i}"))
                    .spawn(move || worker(det, rx))
                    .expect("spawn inference thread")
            })
            .collect();
        Ok(Some(InferStage {
            tx: Some(tx),
            workers,
        }))
    }

    pub fn sender(&self) -> Sender<InferItem> {
        self.tx.clone().expect("stage running")
    }

    pub fn shutdown(mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for InferStage {
    fn drop(&mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(mut det: Detector, rx: Receiver<InferItem>) {
    let norm = det.model().spec().normalization();
    let max_batch = det.max_batch();
    let mut batch: Vec<InferItem> = Vec::with_capacity(max_batch);
    let mut letterboxes = Vec::with_capacity(max_batch);
    let mut outs: Vec<Vec<Detection>> = vec![Vec::new(); max_batch];
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(it) => batch.push(it),
                Err(_) => break,
            }
        }
        let n = batch.len();
        let t0 = Instant::now();
        letterboxes.clear();
        for (i, it) in batch.iter().enumerate() {
            fill_tensor(&it.canvas.data, &norm, det.input_slot(i));
            letterboxes.push(it.letterbox);
        }
        let fill_ms = t0.elapsed().as_secs_f64() * 1e3 / n as f64;
        let result = det.run(&letterboxes, &mut outs[..n]);
        for (i, it) in batch.drain(..).enumerate() {
            let (detections, infer_ms, post_ms) = match &result {
                Ok(t) => (
                    Ok(std::mem::take(&mut outs[i])),
                    t.infer_ms / n as f64,
                    t.post_ms / n as f64,
                ),
                Err(e) => (Err(e.to_string()), 0.0, 0.0),
            };
            let InferItem {
                seq,
                meta,
                canvas,
                decode_ms,
                scale_ms,
                reply,
                ..
            } = it;
            drop(canvas); // back to its pool before the sink runs
            let _ = reply.send(FrameResult {
                seq,
                meta,
                detections,
                decode_ms,
                preprocess_ms: scale_ms + fill_ms,
                infer_ms,
                postprocess_ms: post_ms,
            });
        }
    }
}
