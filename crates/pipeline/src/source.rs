//! Per-input threads: decode, then preprocess (letterbox into a pooled
//! canvas), then hand off to the shared inference stage.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, SendTimeoutError, Sender};
use peregrine_core::{CanvasLayout, FrameMeta};
use peregrine_infer::DetectFilter;
use peregrine_media::ffmpeg::frame::Video;
use peregrine_media::{Canvas, DecodeStats, FrameSource, LetterboxScaler, MediaError};

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

/// What an input's decode thread does when the frames it decoded are not
/// taken as fast as it decodes them (the engine is busy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait: every kept frame is analysed, the source is read more slowly.
    /// For files.
    #[default]
    Block,
    /// Drop the oldest decoded frame still waiting for the new one: what is
    /// analysed stays current and the backlog never grows. For live
    /// sources, which cannot be read more slowly.
    DropOldest,
}

/// The decoder's statistics at the end of its thread.
fn finish(decoder: &impl FrameSource, dropped: u64) -> DecodeStats {
    let mut stats = decoder.stats().clone();
    stats.frames_dropped = dropped;
    stats
}

/// Starts the decode and preprocess threads of one input. The queue
/// between them holds `depth` frames; when it is full, `when_full`
/// decides. When the engine's queue is full the preprocess thread waits.
pub(crate) fn spawn(
    mut decoder: impl FrameSource + 'static,
    layout: CanvasLayout,
    depth: usize,
    when_full: WhenFull,
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
    // Decoded frames: `depth` in the queue and one being scaled.
    let frames = Pool::new((0..depth + 1).map(|_| Video::empty()));
    let cancel_d = cancel.clone();
    let oldest = rx.clone();
    let decode = std::thread::Builder::new()
        .name("decode".into())
        .spawn(move || -> Result<DecodeStats, MediaError> {
            let mut dropped = 0u64;
            loop {
                if cancel_d.load(Ordering::Relaxed) {
                    break;
                }
                // With the queue full every frame buffer is taken: the
                // oldest waiting frame gives its buffer back.
                if when_full == WhenFull::DropOldest && tx.is_full() && oldest.try_recv().is_ok() {
                    dropped += 1;
                }
                let Some(mut frame) = frames.take(&cancel_d) else {
                    break;
                };
                let t0 = Instant::now();
                match decoder.next_frame(&mut frame)? {
                    Some(meta) => {
                        let decode_ms = t0.elapsed().as_secs_f64() * 1e3;
                        let mut item = Decoded {
                            meta,
                            frame,
                            decode_ms,
                        };
                        // `oldest` keeps the queue's receiving side alive,
                        // so a send into a full queue whose preprocess
                        // thread has stopped (cancelled) would wait
                        // forever: wait in steps, watching the flag.
                        loop {
                            match tx.send_timeout(item, Duration::from_millis(50)) {
                                Ok(()) => break,
                                Err(SendTimeoutError::Timeout(back))
                                    if !cancel_d.load(Ordering::Relaxed) =>
                                {
                                    item = back
                                }
                                Err(_) => return Ok(finish(&decoder, dropped)),
                            }
                        }
                    }
                    None => break,
                }
            }
            Ok(finish(&decoder, dropped))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use peregrine_core::{ChannelOrder, DetectorConfig, ResizeMode};
    use peregrine_media::ffmpeg::format::Pixel;

    use super::*;

    /// `n` small grey frames, as fast as they are asked for (a camera does
    /// not wait).
    struct Synthetic {
        next: u64,
        n: u64,
        stats: DecodeStats,
    }

    impl FrameSource for Synthetic {
        fn next_frame(&mut self, frame: &mut Video) -> Result<Option<FrameMeta>, MediaError> {
            if self.next == self.n {
                return Ok(None);
            }
            if frame.width() == 0 {
                *frame = Video::new(Pixel::YUV420P, 64, 48);
            }
            for plane in 0..3 {
                frame.data_mut(plane).fill(128);
            }
            let index = self.next;
            self.next += 1;
            self.stats.frames_selected += 1;
            Ok(Some(FrameMeta {
                source: 0,
                index,
                pts: index as f64 / 30.0,
                width: 64,
                height: 48,
            }))
        }

        fn stats(&self) -> &DecodeStats {
            &self.stats
        }
    }

    /// Runs `n` frames through the source threads into an engine queue
    /// read slowly; returns the frame indices it saw and the stats.
    fn through_slow_engine(n: u64, when_full: WhenFull) -> (Vec<u64>, DecodeStats) {
        peregrine_media::init();
        let layout = CanvasLayout {
            width: 32,
            height: 32,
            order: ChannelOrder::Bgr,
            resize: ResizeMode::Stretch,
        };
        let (infer, engine) = bounded::<InferItem>(1);
        let (reply, _results) = bounded::<FrameResult>(1);
        let filter = Arc::new(DetectFilter::new(DetectorConfig::default(), 80));
        let threads = spawn(
            Synthetic {
                next: 0,
                n,
                stats: DecodeStats::default(),
            },
            layout,
            2,
            when_full,
            Route {
                infer,
                filter,
                reply,
            },
            Arc::new(AtomicBool::new(false)),
        );
        let mut seen = Vec::new();
        for item in engine {
            seen.push(item.meta.index);
            std::thread::sleep(Duration::from_millis(3));
        }
        let (decode, sent) = threads.join();
        assert_eq!(sent.unwrap(), seen.len() as u64);
        (seen, decode.unwrap())
    }

    #[test]
    fn blocking_sources_hand_on_every_frame() {
        let (seen, stats) = through_slow_engine(60, WhenFull::Block);
        assert_eq!(seen, (0..60).collect::<Vec<_>>());
        assert_eq!(stats.frames_dropped, 0);
    }

    #[test]
    fn live_sources_drop_the_oldest_frames_and_keep_the_newest() {
        let (seen, stats) = through_slow_engine(60, WhenFull::DropOldest);
        assert!(
            seen.len() < 60,
            "a slow engine makes the source drop frames"
        );
        assert_eq!(
            stats.frames_dropped + seen.len() as u64,
            60,
            "every frame counted once"
        );
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");
        assert_eq!(seen.last(), Some(&59), "the newest frame is analysed");
    }

    /// Regression: cancelling while the decode queue was full and the
    /// preprocess thread had stopped left the decode thread waiting in
    /// `send` forever (the queue's receiver lives on in the decode thread
    /// for `DropOldest`), so a Ctrl-C'd `analyze` hung.
    #[test]
    fn cancelling_with_a_full_queue_ends_both_threads() {
        peregrine_media::init();
        let layout = CanvasLayout {
            width: 32,
            height: 32,
            order: ChannelOrder::Bgr,
            resize: ResizeMode::Stretch,
        };
        // An engine that never reads: preprocess blocks on it, the decode
        // queue fills up.
        let (infer, engine) = bounded::<InferItem>(1);
        let (reply, _results) = bounded::<FrameResult>(1);
        let filter = Arc::new(DetectFilter::new(DetectorConfig::default(), 80));
        let cancel = Arc::new(AtomicBool::new(false));
        let threads = spawn(
            Synthetic {
                next: 0,
                n: 1000,
                stats: DecodeStats::default(),
            },
            layout,
            2,
            WhenFull::Block,
            Route {
                infer,
                filter,
                reply,
            },
            cancel.clone(),
        );
        std::thread::sleep(Duration::from_millis(200));
        cancel.store(true, Ordering::Relaxed);
        // The preprocess thread leaves when its send fails.
        drop(engine);
        let (done_tx, done_rx) = bounded(1);
        std::thread::spawn(move || {
            let _ = done_tx.send(threads.join().0.is_ok());
        });
        assert_eq!(
            done_rx.recv_timeout(Duration::from_secs(20)),
            Ok(true),
            "decode thread still waiting after cancel"
        );
    }
}
