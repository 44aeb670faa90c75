//! The inference engine: one model, a pool of workers (one ONNX Runtime
//! session each), shared by every run of the process: the CLI's inputs,
//! the service's jobs, later camera streams. Built once, it lives as long
//! as any handle to it; each frame carries its run's thresholds and class
//! filter and the channel its result goes back on.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use peregrine_core::{Detection, DetectorConfig, EngineSpec, FrameMeta, Letterbox};
use peregrine_infer::{fill_tensor, DetectFilter, Detector, InferError, Model, SessionConfig};
use peregrine_media::Canvas;

use crate::Pooled;

/// One preprocessed frame on its way to inference.
pub struct InferItem {
    /// Position of the frame in its input's selected-frame order.
    pub seq: u64,
    pub meta: FrameMeta,
    pub canvas: Pooled<Canvas>,
    pub letterbox: Letterbox,
    /// The thresholds and class filter of the frame's run.
    pub filter: Arc<DetectFilter>,
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
    /// A failed session run fails every frame of its batch alike.
    pub detections: Result<Vec<Detection>, Arc<InferError>>,
    pub decode_ms: f64,
    /// Scaling plus tensor normalisation (ms).
    pub preprocess_ms: f64,
    /// This frame's share of its batch's session run (ms).
    pub infer_ms: f64,
    pub postprocess_ms: f64,
    /// Frames in the session run this frame was part of.
    pub batch: usize,
}

/// A running engine. Cheap to clone: clones share the workers, which stop
/// when the last handle is dropped and the runs using it have ended.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    model: Model,
    spec: EngineSpec,
    tx: Option<Sender<InferItem>>,
    workers: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Engine {
    /// Builds every worker's session up front, so a model or runtime
    /// problem fails before any input is touched.
    pub fn start(model: Model, spec: EngineSpec) -> Result<Engine, InferError> {
        Self::start_cancellable(model, spec, &|| false).map(|e| e.expect("never cancelled"))
    }

    /// Like [`Engine::start`], checking `cancelled` before each session is
    /// built (building one can take a while): `Ok(None)` once it says so,
    /// with the sessions built so far dropped.
    pub fn start_cancellable(
        model: Model,
        spec: EngineSpec,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Option<Engine>, InferError> {
        let workers = spec.infer_workers.max(1);
        let batch = model.max_batch(spec.batch);
        let session = SessionConfig {
            intra_threads: spec.intra_threads,
            spin: spec.spin,
        };
        let (tx, rx) = bounded::<InferItem>(workers * batch * 2);
        let mut detectors = Vec::with_capacity(workers);
        for _ in 0..workers {
            if cancelled() {
                return Ok(None);
            }
            detectors.push(model.detector(&session, batch)?);
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
        Ok(Some(Engine {
            inner: Arc::new(Inner {
                model,
                spec,
                tx: Some(tx),
                workers,
            }),
        }))
    }

    pub fn model(&self) -> &Model {
        &self.inner.model
    }

    pub fn spec(&self) -> &EngineSpec {
        &self.inner.spec
    }

    /// Frames per session run: the model's fixed batch, or the spec's.
    pub fn batch(&self) -> usize {
        self.inner.model.max_batch(self.inner.spec.batch)
    }

    /// A run's thresholds, ready to travel with its frames.
    pub fn filter(&self, cfg: DetectorConfig) -> Arc<DetectFilter> {
        Arc::new(self.inner.model.filter(cfg))
    }

    /// The workers' queue: a frame sent here is analysed in the next batch
    /// a worker forms, its result sent on the frame's reply channel. Live
    /// streams feed it from their scheduler.
    pub fn sender(&self) -> Sender<InferItem> {
        self.inner.tx.clone().expect("engine running")
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
        let filters: Vec<&DetectFilter> = batch.iter().map(|it| &*it.filter).collect();
        let result = det
            .run(&letterboxes, &filters, &mut outs[..n])
            .map_err(Arc::new);
        drop(filters);
        for (i, it) in batch.drain(..).enumerate() {
            let (detections, infer_ms, post_ms) = match &result {
                Ok(t) => (
                    Ok(std::mem::take(&mut outs[i])),
                    t.infer_ms / n as f64,
                    t.post_ms / n as f64,
                ),
                Err(e) => (Err(Arc::clone(e)), 0.0, 0.0),
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
                batch: n,
            });
        }
    }
}
