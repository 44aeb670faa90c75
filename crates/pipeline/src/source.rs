//! Per-input threads: decode, then preprocess (letterbox into a pooled
//! canvas), then hand off to the shared inference stage.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{bounded, Sender};
use peregrine_core::{CanvasLayout, FrameMeta};
use peregrine_infer::DetectFilter;
use peregrine_media::ffmpeg::frame::Video;
use peregrine_media::{Canvas, DecodeStats, Decoder, LetterboxScaler, MediaError};

use crate::{FrameResult, InferItem, Pool, Pooled};

pub(crate) struct SourceThreads {
    decode: JoinHandle<Result<DecodeStats, MediaError>>,
    preprocess: JoinHandle<Result<u64, MediaError>>,
}

impl SourceThreads {
    /// Waits for both threads: decode statistics and frames sent.
    pub(crate) fn join(self) -> (Result<DecodeStats, MediaError>, Result<u64, MediaError>) {
        let d = self.decode.join().unwrap_or_else(|_| {
            Err(MediaError::NoFrames {
                path: Default::default(),
                reason: "decode thread panicked".into(),
            })
        });
        let p = self.preprocess.join().unwrap_or_else(|_| {
            Err(MediaError::NoFrames {
                path: Default::default(),
                reason: "preprocess thread panicked".into(),
            })
        });
        (d, p)
    }
}

struct Decoded {
    meta: FrameMeta,
    frame: Pooled<Video>,
    decode_ms: f64,
}

/// Where an input's preprocessed frames go: the engine's queue, with the
/// run's thresholds, and the channel their results come back on.
pub(crate) struct Route {
    pub infer: Sender<InferItem>,
    pub filter: Arc<DetectFilter>,
    pub reply: Sender<FrameResult>,
}

/// Starts the decode and preprocess threads of one input. When the
/// engine's queue is full the preprocess thread waits (a file loses no
/// frame to a busy engine), and so, through the bounded queue and the
/// frame pool, does decoding.
pub(crate) fn spawn(
    mut decoder: Decoder,
    layout: CanvasLayout,
    depth: usize,
    route: Route,
    cancel: Arc<AtomicBool>,
) -> SourceThreads {
    let Route {
        infer,
        filter,
        reply,
    } = route;
    let depth = depth.max(2);
    let (tx, rx) = bounded::<Decoded>(depth);
    let frames = Pool::new((0..depth + 1).map(|_| Video::empty()));
    let cancel_d = cancel.clone();
    let decode = std::thread::Builder::new()
        .name("decode".into())
        .spawn(move || -> Result<DecodeStats, MediaError> {
            loop {
                if cancel_d.load(Ordering::Relaxed) {
                    break;
                }
                let Some(mut frame) = frames.take(&cancel_d) else {
                    break;
                };
                let t0 = Instant::now();
                match decoder.next_frame(&mut frame)? {
                    Some(meta) => {
                        let decode_ms = t0.elapsed().as_secs_f64() * 1e3;
                        if tx
                            .send(Decoded {
                                meta,
                                frame,
                                decode_ms,
                            })
                            .is_err()
                        {
                            break;
                        }
                    }
                    None => break,
                }
            }
            Ok(decoder.stats().clone())
        })
        .expect("spawn decode thread");

    let preprocess = std::thread::Builder::new()
        .name("preprocess".into())
        .spawn(move || -> Result<u64, MediaError> {
            let mut scaler = LetterboxScaler::new(layout);
            let canvases = Pool::new((0..depth).map(|_| Canvas::new(layout.width, layout.height)));
            let mut seq = 0u64;
            for d in rx {
                let Some(mut canvas) = canvases.take(&cancel) else {
                    break;
                };
                let t0 = Instant::now();
                let letterbox = scaler.run(&d.frame, &mut canvas)?;
                let scale_ms = t0.elapsed().as_secs_f64() * 1e3;
                drop(d.frame);
                let item = InferItem {
                    seq,
                    meta: d.meta,
                    canvas,
                    letterbox,
                    filter: Arc::clone(&filter),
                    decode_ms: d.decode_ms,
                    scale_ms,
                    reply: reply.clone(),
                };
                if infer.send(item).is_err() {
                    break;
                }
                seq += 1;
            }
            Ok(seq)
        })
        .expect("spawn preprocess thread");

    SourceThreads { decode, preprocess }
}
