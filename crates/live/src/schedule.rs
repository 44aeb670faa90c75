//! The scheduler between the streams and the shared engine: admission
//! (with shedding, [`crate::shed`]) and deadline-ordered dispatch.
//!
//! Each admitted, preprocessed frame waits in its stream's queue (at most
//! [`PER_STREAM_QUEUE`] frames: a newer frame displaces the oldest) with a
//! deadline, the moment it was captured plus the latency budget. One
//! dispatcher thread hands the frame with the earliest deadline to the
//! engine whenever fewer than `capacity` frames (workers × batch) are in
//! the engine, so a worker forms its batch from whatever is due across all
//! streams and never waits to fill it; a frame whose deadline passes
//! before a worker is free is dropped (and counted as shed) rather than
//! analysed late. Every drop tells the shedder the engine is overloaded.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use peregrine_pipeline::InferItem;

use crate::shed::{max_level, rates, Demand, Gate, Load, Shedder};
use crate::stats::{lock, StreamStats};

/// Frames of one stream waiting for a worker.
pub const PER_STREAM_QUEUE: usize = 2;

/// What to do with a decoded frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Not one of the frames the stream's fps asks for.
    Skip,
    /// Asked for, but shed to keep up: counted.
    Shed,
    /// Preprocess it and [`Scheduler::submit`] it.
    Take,
}

struct Entry {
    deadline: Instant,
    item: InferItem,
}

struct Slot {
    demand: Demand,
    stats: Arc<StreamStats>,
    nominal: Gate,
    actual: Gate,
    queue: VecDeque<Entry>,
}

struct State {
    slots: Vec<Option<Slot>>,
    inflight: usize,
    shedder: Shedder,
    load: Load,
    next_tick: Instant,
    /// Frames analysed per batch size (index: size − 1).
    batch_frames: Vec<u64>,
    max_level_seen: u32,
    stop: bool,
}

/// Tuning of the scheduler.
#[derive(Clone, Copy, Debug)]
pub struct SchedulerConfig {
    /// Frames in the engine at once (workers × batch).
    pub capacity: usize,
    pub min_fps: f64,
    /// How often the shedding level is reconsidered.
    pub control_interval: Duration,
    /// Calm control intervals before the level steps down.
    pub calm_intervals: u32,
}

pub struct Scheduler {
    state: Mutex<State>,
    wake: Condvar,
    cfg: SchedulerConfig,
    epoch: Instant,
}

impl Scheduler {
    pub fn new(cfg: SchedulerConfig) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                slots: Vec::new(),
                inflight: 0,
                shedder: Shedder::new(cfg.calm_intervals),
                load: Load::default(),
                next_tick: Instant::now() + cfg.control_interval,
                batch_frames: Vec::new(),
                max_level_seen: 0,
                stop: false,
            }),
            wake: Condvar::new(),
            cfg,
            epoch: Instant::now(),
        })
    }

    /// A new stream; its slot number.
    pub(crate) fn add(&self, demand: Demand, stats: Arc<StreamStats>) -> usize {
        let mut st = lock(&self.state);
        // Golden-ratio phases spread any number of streams evenly over
        // the period, so their frames do not reach the engine together.
        let phase = st.slots.len() as f64 * 0.618_033_988_75;
        let slot = Slot {
            demand,
            stats,
            nominal: Gate::with_phase(demand.fps, phase),
            actual: Gate::new(demand.fps),
            queue: VecDeque::new(),
        };
        let i = match st.slots.iter().position(Option::is_none) {
            Some(i) => {
                st.slots[i] = Some(slot);
                i
            }
            None => {
                st.slots.push(Some(slot));
                st.slots.len() - 1
            }
        };
        self.replan(&mut st);
        i
    }

    /// Forgets a stream (its thread has ended); its queued frames are
    /// dropped.
    pub(crate) fn remove(&self, slot: usize) {
        let mut st = lock(&self.state);
        if let Some(s) = st.slots.get_mut(slot).and_then(Option::take) {
            s.stats.queued.store(0, Ordering::Relaxed);
        }
        self.replan(&mut st);
        self.wake.notify_all();
    }

    /// Applies the current level to every stream's gate.
    fn replan(&self, st: &mut State) {
        let demands: Vec<Demand> = st.slots.iter().flatten().map(|s| s.demand).collect();
        let top = max_level(&demands, self.cfg.min_fps);
        st.shedder.set_max_level(top);
        let level = st.shedder.level();
        st.max_level_seen = st.max_level_seen.max(level);
        let r = rates(&demands, level, self.cfg.min_fps);
        for (s, rate) in st.slots.iter_mut().flatten().zip(r) {
            if (s.actual.rate() - rate).abs() > 1e-9 {
                s.actual.set_rate(rate);
            }
            s.stats
                .rate_mhz
                .store((rate * 1000.0).round() as u64, Ordering::Relaxed);
        }
    }

    /// Decides on a frame of `slot` read at `captured`.
    pub fn admit(&self, slot: usize, captured: Instant) -> Admit {
        let t = captured.saturating_duration_since(self.epoch).as_secs_f64();
        let mut st = lock(&self.state);
        let Some(s) = st.slots.get_mut(slot).and_then(Option::as_mut) else {
            return Admit::Skip;
        };
        if !s.nominal.take(t) {
            return Admit::Skip;
        }
        if s.demand.priority || s.actual.take(t) {
            Admit::Take
        } else {
            Admit::Shed
        }
    }

    /// Queues an admitted frame, due by `deadline`. A stream with a full
    /// queue loses its oldest frame (shed).
    pub fn submit(&self, slot: usize, item: InferItem, deadline: Instant) {
        let mut st = lock(&self.state);
        let st = &mut *st;
        let Some(s) = st.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if s.queue.len() >= PER_STREAM_QUEUE {
            s.queue.pop_front();
            s.stats.frames_shed.fetch_add(1, Ordering::Relaxed);
            st.load.dropped += 1;
        }
        s.queue.push_back(Entry { deadline, item });
        s.stats
            .queued
            .store(s.queue.len() as u64, Ordering::Relaxed);
        self.wake.notify_all();
    }

    /// A frame's result came back from a session run of `batch` frames.
    pub fn completed(&self, batch: usize) {
        let mut st = lock(&self.state);
        st.inflight = st.inflight.saturating_sub(1);
        st.load.analysed += 1;
        let b = batch.max(1);
        if st.batch_frames.len() < b {
            st.batch_frames.resize(b, 0);
        }
        st.batch_frames[b - 1] += 1;
        self.wake.notify_all();
    }

    /// `n` frames were committed later than the budget.
    pub fn over_budget(&self, n: u64) {
        lock(&self.state).load.over_budget += n;
    }

    /// Session runs per batch size, and the mean batch size.
    pub fn batches(&self) -> (Vec<u64>, f64) {
        let st = lock(&self.state);
        let runs: Vec<u64> = st
            .batch_frames
            .iter()
            .enumerate()
            .map(|(i, f)| f / (i as u64 + 1))
            .collect();
        let frames: u64 = st.batch_frames.iter().sum();
        let n: u64 = runs.iter().sum();
        (
            runs,
            if n == 0 {
                0.0
            } else {
                frames as f64 / n as f64
            },
        )
    }

    pub fn max_level_seen(&self) -> u32 {
        lock(&self.state).max_level_seen
    }

    pub fn level(&self) -> u32 {
        lock(&self.state).shedder.level()
    }

    /// Ends [`Scheduler::dispatch`] once the queues are empty.
    pub fn stop(&self) {
        lock(&self.state).stop = true;
        self.wake.notify_all();
    }

    /// The dispatcher loop: runs on its own thread until [`Scheduler::stop`].
    pub fn dispatch(&self, engine: Sender<InferItem>) {
        let mut st = lock(&self.state);
        loop {
            let now = Instant::now();
            // Expired frames are dropped, never analysed late.
            let mut expired = 0;
            for s in st.slots.iter_mut().flatten() {
                while s.queue.front().is_some_and(|e| e.deadline <= now) {
                    s.queue.pop_front();
                    s.stats.frames_shed.fetch_add(1, Ordering::Relaxed);
                    expired += 1;
                }
                s.stats
                    .queued
                    .store(s.queue.len() as u64, Ordering::Relaxed);
            }
            st.load.dropped += expired;
            if now >= st.next_tick {
                let load = std::mem::take(&mut st.load);
                st.shedder.tick(load);
                st.next_tick = now + self.cfg.control_interval;
                self.replan(&mut st);
            }
            let empty = st.slots.iter().flatten().all(|s| s.queue.is_empty());
            if st.stop && empty {
                return;
            }
            if st.inflight < self.cfg.capacity {
                let next = st
                    .slots
                    .iter_mut()
                    .flatten()
                    .filter_map(|s| s.queue.front().map(|e| e.deadline))
                    .min();
                if let Some(d) = next {
                    let s = st
                        .slots
                        .iter_mut()
                        .flatten()
                        .find(|s| s.queue.front().is_some_and(|e| e.deadline == d))
                        .expect("the earliest deadline's stream");
                    let entry = s.queue.pop_front().expect("non-empty queue");
                    s.stats
                        .queued
                        .store(s.queue.len() as u64, Ordering::Relaxed);
                    st.inflight += 1;
                    drop(st);
                    if engine.send(entry.item).is_err() {
                        return;
                    }
                    st = lock(&self.state);
                    continue;
                }
            }
            st = self
                .wake
                .wait_timeout(st, Duration::from_millis(20))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use crossbeam_channel::{bounded, Receiver};
    use peregrine_core::{
        CanvasLayout, ChannelOrder, DetectorConfig, FrameMeta, Letterbox, ResizeMode,
    };
    use peregrine_infer::DetectFilter;
    use peregrine_media::Canvas;
    use peregrine_pipeline::{FrameResult, Pool};

    use super::*;

    /// An engine of one worker taking `per_frame` per frame, whatever the
    /// frame: a deterministic stand-in for an overloaded model.
    fn slow_engine(rx: Receiver<InferItem>, per_frame: Duration) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            for it in rx {
                std::thread::sleep(per_frame);
                let _ = it.reply.send(FrameResult {
                    seq: it.seq,
                    meta: it.meta,
                    detections: Ok(Vec::new()),
                    decode_ms: 0.0,
                    preprocess_ms: 0.0,
                    infer_ms: 0.0,
                    postprocess_ms: 0.0,
                    batch: 1,
                });
            }
        })
    }

    /// Six cameras at 30 fps on an engine that does 100 frames a second
    /// (1.8× overload), two of them priority: the priority streams keep
    /// (nearly) their full rate, the others are shed but keep at least the
    /// minimum rate, and every frame is either analysed or counted shed.
    #[test]
    fn overload_sheds_others_and_keeps_priority_streams_at_full_rate() {
        let sched = Scheduler::new(SchedulerConfig {
            capacity: 1,
            min_fps: 1.0,
            control_interval: Duration::from_millis(100),
            calm_intervals: 4,
        });
        let (etx, erx) = bounded::<InferItem>(4);
        let engine = slow_engine(erx, Duration::from_millis(10));
        let dispatcher = {
            let s = sched.clone();
            std::thread::spawn(move || s.dispatch(etx))
        };
        let layout = CanvasLayout {
            width: 8,
            height: 8,
            order: ChannelOrder::Bgr,
            resize: ResizeMode::Stretch,
        };
        let filter = Arc::new(DetectFilter::new(DetectorConfig::default(), 80));
        let seconds = 4.0;
        let fps = 30.0;
        let mut streams = Vec::new();
        for i in 0..6 {
            let priority = i < 2;
            let stats = Arc::new(StreamStats::default());
            let slot = sched.add(
                Demand {
                    fps,
                    priority,
                    rank: 0,
                },
                stats.clone(),
            );
            let (rtx, rrx) = bounded::<FrameResult>(16);
            let s = sched.clone();
            let sink = std::thread::spawn(move || {
                let mut n = 0u64;
                for r in rrx {
                    s.completed(r.batch);
                    n += 1;
                }
                n
            });
            let s = sched.clone();
            let filter = filter.clone();
            let producer = std::thread::spawn(move || {
                let pool = Pool::new((0..6).map(|_| Canvas::new(8, 8)));
                let t0 = Instant::now();
                let mut offered = 0u64;
                let mut shed = 0u64;
                for k in 0.. {
                    let due = t0 + Duration::from_secs_f64(k as f64 / fps);
                    if due > t0 + Duration::from_secs_f64(seconds) {
                        break;
                    }
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let now = Instant::now();
                    offered += 1;
                    match s.admit(slot, now) {
                        // Only before the stream's first grid point.
                        Admit::Skip => {
                            assert!(k < 2, "a 30 fps source at 30 fps skips frame {k}");
                            offered -= 1;
                        }
                        Admit::Shed => shed += 1,
                        Admit::Take => {
                            let Some(canvas) = pool.try_take() else {
                                shed += 1;
                                continue;
                            };
                            let item = InferItem {
                                seq: k,
                                meta: FrameMeta {
                                    source: i,
                                    index: k,
                                    pts: k as f64 / fps,
                                    width: 8,
                                    height: 8,
                                },
                                canvas,
                                letterbox: Letterbox::compute(8, 8, &layout),
                                filter: filter.clone(),
                                decode_ms: 0.0,
                                scale_ms: 0.0,
                                reply: rtx.clone(),
                            };
                            s.submit(slot, item, now + Duration::from_millis(100));
                        }
                    }
                }
                (offered, shed)
            });
            streams.push((priority, slot, stats, producer, sink));
        }
        let mut results = Vec::new();
        for (priority, slot, stats, producer, sink) in streams {
            let (offered, shed_at_admission) = producer.join().unwrap();
            // Queued frames drain or expire within the budget.
            std::thread::sleep(Duration::from_millis(300));
            sched.remove(slot);
            let analysed = sink.join().unwrap();
            let shed = shed_at_admission + stats.frames_shed.load(Ordering::Relaxed);
            assert_eq!(analysed + shed, offered, "every frame accounted for");
            results.push((priority, offered, analysed));
        }
        sched.stop();
        dispatcher.join().unwrap();
        engine.join().unwrap();
        assert!(sched.max_level_seen() > 0, "the overload was seen");
        for (priority, offered, analysed) in &results {
            if *priority {
                assert!(
                    *analysed as f64 >= 0.8 * *offered as f64,
                    "priority stream kept its rate: {results:?}"
                );
            } else {
                assert!(
                    (*analysed as f64) < 0.8 * *offered as f64,
                    "others are shed: {results:?}"
                );
                assert!(
                    *analysed as f64 >= 0.5 * seconds,
                    "others keep about the minimum rate: {results:?}"
                );
            }
        }
    }
}
