//! One stream's threads: the supervisor (connect, read, decode, admit,
//! preprocess, reconnect) and the sink (processors, store, latency).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, Sender};
use peregrine_analytics::counts_json;
use peregrine_core::{
    FrameDetections, FrameMeta, FrameProcessor, Labels, Processed, RunOutcome, RunSink, RunSpec,
    RunStart, RunStatus, RunStore, SourceId, SpatialSpec, TrackId, VideoRecord,
};
use peregrine_media::ffmpeg::format::Pixel;
use peregrine_media::ffmpeg::frame::Video;
use peregrine_media::{Canvas, LetterboxScaler, LiveInfo, LiveInput};
use peregrine_pipeline::processors::{self, Chain, Delivery};
use peregrine_pipeline::{run_params, Engine, FrameResult, InferItem, Pool};
use serde_json::json;

use crate::events::Events;
use crate::motion::MotionGate;
use crate::schedule::{Admit, Scheduler, PER_STREAM_QUEUE};
use crate::stats::{lock, LatencyMs, StreamState, StreamStats};
use crate::{LiveError, LiveOptions, StreamSpec};

/// The processors every live stream runs: the same chain as a file run
/// (tracking, per-track statistics, counting when the run has lines or
/// zones), each frame handed on as soon as it is tracked
/// ([`Delivery::Prompt`]).
pub fn stream_processors(
    run: &RunSpec,
    source: SourceId,
    fps: f64,
) -> Result<Vec<Box<dyn FrameProcessor>>, LiveError> {
    processors::for_run(run, source, fps, Delivery::Prompt)
        .map_err(|e| LiveError::Config(e.to_string()))
}

/// Everything one stream's threads need.
pub(crate) struct StreamCtx {
    pub spec: StreamSpec,
    pub source: SourceId,
    pub slot: usize,
    pub stats: Arc<StreamStats>,
    pub cancel: Arc<AtomicBool>,
    pub scheduler: Arc<Scheduler>,
    pub engine: Engine,
    pub store: Arc<dyn RunStore>,
    pub run: RunSpec,
    pub opts: LiveOptions,
    pub events: Option<Arc<Events>>,
}

/// How one connection ended.
enum End {
    Stop,
    Eof,
    Lost,
}

/// Preprocessed frames of one stream alive at once: its queue, the
/// engine's share, one being filled.
const CANVASES: usize = PER_STREAM_QUEUE + 4;

/// A small xorshift generator for backoff jitter.
struct Jitter(u64);

impl Jitter {
    fn new(seed: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let h = blake3::hash(seed.as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_bytes()[..8]);
        Self((u64::from_le_bytes(b) ^ nanos) | 1)
    }

    /// Uniform in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Pixel formats whose first plane is the luma, full size.
fn luma_planar(f: Pixel) -> bool {
    matches!(
        f,
        Pixel::YUV420P
            | Pixel::YUVJ420P
            | Pixel::YUV422P
            | Pixel::YUVJ422P
            | Pixel::YUV444P
            | Pixel::YUVJ444P
            | Pixel::NV12
            | Pixel::NV21
            | Pixel::GRAY8
    )
}

fn is_file(url: &str) -> bool {
    !url.contains("://")
}

/// The supervisor: runs until the stream is stopped (or, for a file
/// without `--loop`, ends), reconnecting with capped, jittered
/// exponential backoff.
pub(crate) fn run_stream(ctx: StreamCtx) {
    let t0 = Instant::now();
    let stats = ctx.stats.clone();
    let layout = ctx.engine.model().canvas_layout();
    let filter = ctx.engine.filter(ctx.run.detector_config());
    let canvases = Pool::new((0..CANVASES).map(|_| Canvas::new(layout.width, layout.height)));
    let mut scaler = LetterboxScaler::new(layout);
    let mut frame = Video::empty();
    let mut sink: Option<(Sender<FrameResult>, JoinHandle<()>)> = None;
    let mut backoff = ctx.opts.backoff_initial;
    let mut jitter = Jitter::new(&ctx.spec.name);
    let budget = ctx.opts.latency_budget;
    let cancelled = || ctx.cancel.load(Ordering::Relaxed);
    let mut last_index: Option<u64> = None;
    let mut seq = 0u64;
    let mut failed = false;
    let mut grabber = crate::still::Grabber::default();
    let mut last_still: Option<Instant> = None;
    let mut gate = ctx
        .spec
        .motion_gate
        .then(|| MotionGate::new(ctx.opts.motion_min_area));
    set_state(&ctx, StreamState::Connecting);
    'connections: while !cancelled() {
        let mut input = match LiveInput::open(&ctx.spec.source, &ctx.opts.input, ctx.cancel.clone())
        {
            Ok(i) => i,
            Err(e) => {
                if cancelled() {
                    break;
                }
                stats.error(&e);
                if sink.is_some() {
                    set_state(&ctx, StreamState::Reconnecting);
                }
                wait_backoff(&ctx, &mut backoff, &mut jitter);
                continue;
            }
        };
        let info = input.info().clone();
        if sink.is_none() {
            match start_run(&ctx, &info, t0) {
                Ok(s) => sink = Some(s),
                Err(e) => {
                    stats.error(&e);
                    failed = true;
                    break;
                }
            }
        }
        let Some((reply, _)) = &sink else {
            unreachable!("the run started above")
        };
        set_state(&ctx, StreamState::Live);
        stats.connected();
        let fps = info.fps;
        let mut got_frames = false;
        let mut skipped_seen = 0u64;
        let end = loop {
            if cancelled() {
                break End::Stop;
            }
            // Decoding follows the rate the shedder allows this stream now.
            input.set_analysed_rate(stats.rate_mhz.load(Ordering::Relaxed) as f64 / 1000.0);
            let next = input.next_frame(&mut frame);
            count_skipped(&stats, &input, &mut skipped_seen);
            let captured = match next {
                Ok(Some(t)) => t,
                Ok(None) => break if cancelled() { End::Stop } else { End::Eof },
                Err(e) => {
                    stats.error(&e);
                    break End::Lost;
                }
            };
            got_frames = true;
            stats.frames_received.fetch_add(1, Ordering::Relaxed);
            let pts = captured.saturating_duration_since(t0).as_secs_f64();
            // The frame's position on the stream's clock: monotonic across
            // reconnects, moving on by the time an outage lasted.
            let index = match last_index {
                Some(l) => ((pts * fps).round() as u64).max(l + 1),
                None => (pts * fps).round() as u64,
            };
            last_index = Some(index);
            match ctx.scheduler.admit(ctx.slot, captured) {
                Admit::Skip => continue,
                Admit::Shed => {
                    stats.frames_shed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Admit::Take => {}
            }
            if let Some(g) = &mut gate {
                if luma_planar(frame.format())
                    && !g.moving(
                        frame.data(0),
                        frame.stride(0),
                        frame.width() as usize,
                        frame.height() as usize,
                    )
                {
                    // Nothing moves: the detector is not run, tracks coast.
                    stats.frames_gated.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            let Some(mut canvas) = canvases.try_take() else {
                stats.frames_shed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let t = Instant::now();
            let letterbox = match scaler.run(&frame, &mut canvas) {
                Ok(l) => l,
                Err(e) => {
                    stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                    stats.error(&e);
                    continue;
                }
            };
            let item = InferItem {
                seq,
                meta: FrameMeta {
                    source: ctx.source,
                    index,
                    pts,
                    width: frame.width(),
                    height: frame.height(),
                },
                canvas,
                letterbox,
                filter: Arc::clone(&filter),
                decode_ms: 0.0,
                scale_ms: t.elapsed().as_secs_f64() * 1e3,
                reply: reply.clone(),
            };
            seq += 1;
            ctx.scheduler.submit(ctx.slot, item, captured + budget);
            if ctx.opts.stills
                && last_still.is_none_or(|t| t.elapsed() >= crate::still::STILL_INTERVAL)
            {
                last_still = Some(Instant::now());
                if let Some(p) = grabber.grab(&frame, index) {
                    *lock(&stats.pending_still) = Some(p);
                }
            }
        };
        let s = input.stats();
        stats
            .decode_errors
            .fetch_add(s.decode_errors + s.corrupt_packets, Ordering::Relaxed);
        stats.disconnected();
        drop(input);
        match end {
            End::Stop => break 'connections,
            End::Eof if is_file(&ctx.spec.source) && !ctx.opts.input.looping => break 'connections,
            End::Eof => stats.error(format!("{}: the source ended the stream", ctx.spec.source)),
            End::Lost => {}
        }
        if got_frames {
            backoff = ctx.opts.backoff_initial;
        }
        stats.reconnects.fetch_add(1, Ordering::Relaxed);
        set_state(&ctx, StreamState::Reconnecting);
        wait_backoff(&ctx, &mut backoff, &mut jitter);
    }
    // Results still queued or in the engine reach the sink, which ends
    // once the last of them has been written.
    if let Some((reply, thread)) = sink {
        drop(reply);
        let _ = thread.join();
    } else if !failed {
        failed = true;
        let msg = lock(&stats.last_error).clone();
        stats.error(format!(
            "never connected{}",
            msg.map(|m| format!(": {m}")).unwrap_or_default()
        ));
    }
    set_state(
        &ctx,
        if failed {
            StreamState::Failed
        } else {
            StreamState::Stopped
        },
    );
}

/// Frames the input left undecoded since the last call: received, and
/// skipped; and the level it skips at now.
fn count_skipped(stats: &StreamStats, input: &LiveInput, seen: &mut u64) {
    let skipped = input.frames_skipped();
    if skipped > *seen {
        let new = skipped - *seen;
        stats.frames_skipped.fetch_add(new, Ordering::Relaxed);
        stats.frames_received.fetch_add(new, Ordering::Relaxed);
        *seen = skipped;
    }
    stats.set_decode_skip(input.skip());
}

/// Sets the stream's state, and tells MQTT.
fn set_state(ctx: &StreamCtx, state: StreamState) {
    ctx.stats.set_state(state);
    if let Some(e) = &ctx.events {
        e.publish(
            &ctx.spec.name,
            "state",
            &json!({ "state": state.as_str(), "source": ctx.spec.source }),
            true,
        );
    }
}

/// Sleeps a jittered backoff (half to all of it), then doubles it up to
/// the cap. A stop request ends the wait at once.
fn wait_backoff(ctx: &StreamCtx, backoff: &mut Duration, jitter: &mut Jitter) {
    let wait = backoff.mul_f64(0.5 + 0.5 * jitter.next());
    let until = Instant::now() + wait;
    while Instant::now() < until && !ctx.cancel.load(Ordering::Relaxed) {
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
    }
    *backoff = (*backoff * 2).min(ctx.opts.backoff_max);
}

/// Records the stream's run (status `live`) and starts its sink thread.
fn start_run(
    ctx: &StreamCtx,
    info: &LiveInfo,
    t0: Instant,
) -> Result<(Sender<FrameResult>, JoinHandle<()>), LiveError> {
    let model = ctx.engine.model();
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let identity = format!(
        "live\0{}\0{}\0{started}\0{}",
        ctx.spec.name,
        ctx.spec.source,
        std::process::id()
    );
    let hash = blake3::hash(identity.as_bytes()).to_hex().to_string();
    let mut params = run_params(&ctx.run, &ctx.engine);
    if let Some(o) = params.as_object_mut() {
        o.insert(
            "live".into(),
            json!({
                "stream": ctx.spec.name,
                "source": ctx.spec.source,
                "fps": ctx.spec.fps,
                "priority": ctx.spec.priority,
                "rank": ctx.spec.rank,
                "motion_gate": ctx.spec.motion_gate,
                "latency_budget_ms": ctx.opts.latency_budget.as_secs_f64() * 1e3,
                "format": info.format,
            }),
        );
    }
    let start = RunStart {
        video: VideoRecord {
            path: ctx.spec.source.clone(),
            content_hash: hash.clone(),
            size: 0,
            duration: 0.0,
            fps: info.fps,
            width: info.width,
            height: info.height,
            codec: info.codec.clone(),
            frames_expected: 0,
        },
        cache_key: format!("live:{hash}"),
        model_path: model.path().display().to_string(),
        model_hash: model.hash().to_string(),
        params,
        versions: json!({
            "peregrine": env!("CARGO_PKG_VERSION"),
            "ffmpeg": peregrine_media::ffmpeg_version(),
            "onnxruntime": peregrine_infer::ORT_VERSION,
            "device": model.device().accelerator.label(),
        }),
    };
    let chain = Chain::new(stream_processors(&ctx.run, ctx.source, info.fps)?);
    let sink = ctx
        .store
        .begin_live(&start)
        .map_err(|e| LiveError::Store(e.to_string()))?;
    *lock(&ctx.stats.run_id) = Some(sink.run_id());
    // Room for every frame of this stream that can be queued or in the
    // engine, so a worker never waits on this stream's sink.
    let (tx, rx) = bounded::<FrameResult>(CANVASES + 4);
    let sink_ctx = SinkCtx {
        name: ctx.spec.name.clone(),
        events: ctx.events.clone(),
        labels: ctx
            .run
            .class_names
            .clone()
            .map_or_else(Labels::coco, Labels::from_names),
        spatial: ctx.run.spatial.clone(),
        tracked: ctx.run.tracking.is_some(),
        stats: ctx.stats.clone(),
        scheduler: ctx.scheduler.clone(),
        t0,
        budget: ctx.opts.latency_budget,
    };
    let thread = std::thread::Builder::new()
        .name(format!("live-sink-{}", ctx.spec.name))
        .spawn(move || run_sink(rx, sink, chain, sink_ctx))
        .map_err(|e| LiveError::Config(format!("cannot start a thread: {e}")))?;
    Ok((tx, thread))
}

struct SinkCtx {
    name: String,
    events: Option<Arc<Events>>,
    labels: Labels,
    /// The run's lines and zones: counts go out on MQTT per interval.
    spatial: Option<SpatialSpec>,
    /// Tracking on: stills draw tracked boxes tagged, the rest thin.
    tracked: bool,
    stats: Arc<StreamStats>,
    scheduler: Arc<Scheduler>,
    t0: Instant,
    budget: Duration,
}

/// Makes the picture waiting for frame `index` the stream's still.
fn keep_still(c: &SinkCtx, index: u64, detections: &[peregrine_core::Detection]) {
    let mut pending = lock(&c.stats.pending_still);
    if pending.as_ref().is_some_and(|p| p.index == index) {
        if let Some(p) = pending.take() {
            drop(pending);
            *lock(&c.stats.still) = Some(crate::still::Still::new(
                p, detections, &c.labels, c.tracked,
            ));
        }
    }
}

/// Results most written in one transaction.
const SINK_BATCH: usize = 64;

/// The sink thread: results through the stream's processors into its run,
/// one transaction per batch of whatever has arrived, then the run's
/// final status once the stream has ended.
fn run_sink(rx: Receiver<FrameResult>, mut sink: Box<dyn RunSink>, mut chain: Chain, c: SinkCtx) {
    let mut out = Processed::default();
    let mut store_error: Option<String> = None;
    let mut infer_errors = 0u64;
    let mut tracks_open: HashSet<TrackId> = HashSet::new();
    while let Ok(first) = rx.recv() {
        let mut results = vec![first];
        while results.len() < SINK_BATCH {
            match rx.try_recv() {
                Ok(r) => results.push(r),
                Err(_) => break,
            }
        }
        for r in results {
            c.scheduler.completed(r.batch);
            match r.detections {
                Ok(detections) => chain.frame(
                    FrameDetections {
                        meta: r.meta,
                        detections,
                    },
                    &mut out,
                ),
                Err(e) => {
                    infer_errors += 1;
                    c.stats.error(&e);
                }
            }
        }
        // The still shows a frame as stored: tracked, after the processors.
        for f in &out.frames {
            keep_still(&c, f.meta.index, &f.detections);
        }
        publish(&c, &out, &mut tracks_open);
        write(sink.as_mut(), &mut out, &c, &mut store_error);
    }
    chain.finish(&mut out);
    publish(&c, &out, &mut tracks_open);
    write(sink.as_mut(), &mut out, &c, &mut store_error);
    let s = &c.stats;
    let reconnects = s.reconnects.load(Ordering::Relaxed);
    let decode_errors = s.decode_errors.load(Ordering::Relaxed);
    let analysed = s.frames_analysed.load(Ordering::Relaxed);
    let connected = s.connected_secs();
    let latency = LatencyMs::of(&lock(&s.latency));
    let status = if store_error.is_some() || (analysed == 0 && infer_errors > 0) {
        RunStatus::Failed
    } else if reconnects > 0 || decode_errors > 0 || infer_errors > 0 {
        RunStatus::Partial
    } else {
        RunStatus::Complete
    };
    let outcome = RunOutcome {
        status,
        error: store_error.or_else(|| lock(&s.last_error).clone()),
        frames: analysed,
        detections: s.detections.load(Ordering::Relaxed),
        tracks: s.tracks.load(Ordering::Relaxed),
        fps: if connected > 0.0 {
            analysed as f64 / connected
        } else {
            0.0
        },
        timings: json!({ "latency_ms": latency }),
        decode: json!({
            "frames_received": s.frames_received.load(Ordering::Relaxed),
            "frames_analysed": analysed,
            "frames_shed": s.frames_shed.load(Ordering::Relaxed),
            "frames_gated": s.frames_gated.load(Ordering::Relaxed),
            "frames_skipped": s.frames_skipped.load(Ordering::Relaxed),
            "frames_over_budget": s.over_budget.load(Ordering::Relaxed),
            "reconnects": reconnects,
            "decode_errors": decode_errors,
            "infer_errors": infer_errors,
            "connected_s": connected,
        }),
    };
    if let Err(e) = sink.finish(&outcome) {
        s.error(&e);
    }
}

/// Tells MQTT about the frames and track ends about to be written.
fn publish(c: &SinkCtx, out: &Processed, open: &mut HashSet<TrackId>) {
    let Some(e) = &c.events else { return };
    for f in &out.frames {
        let mut classes: BTreeMap<String, u32> = BTreeMap::new();
        for d in &f.detections {
            *classes.entry(c.labels.name(d.class_id)).or_default() += 1;
            if let Some(id) = d.track_id {
                if open.insert(id) {
                    e.publish(
                        &c.name,
                        "tracks",
                        &json!({
                            "event": "start", "track_id": id, "class": c.labels.name(d.class_id),
                            "frame": f.meta.index, "t": f.meta.pts,
                        }),
                        false,
                    );
                }
            }
        }
        e.publish(
            &c.name,
            "detections",
            &json!({
                "frame": f.meta.index, "t": f.meta.pts,
                "count": f.detections.len(), "classes": classes,
            }),
            false,
        );
    }
    for t in &out.tracks {
        open.remove(&t.track_id);
        e.publish(
            &c.name,
            "tracks",
            &json!({ "event": "end", "class": c.labels.name(t.class_id), "track": t }),
            false,
        );
    }
}

/// Commits the frames and ended tracks gathered so far; each frame's
/// latency runs to the commit.
fn write(sink: &mut dyn RunSink, out: &mut Processed, c: &SinkCtx, error: &mut Option<String>) {
    if !out.frames.is_empty() {
        let res = sink.frames(&out.frames);
        let now = Instant::now();
        match res {
            Ok(()) => {
                let mut late = 0;
                let mut h = lock(&c.stats.latency);
                for f in &out.frames {
                    let captured = c.t0 + Duration::from_secs_f64(f.meta.pts);
                    let ms = now.saturating_duration_since(captured).as_secs_f64() * 1e3;
                    h.record_ms(ms);
                    if ms > c.budget.as_secs_f64() * 1e3 {
                        late += 1;
                    }
                    c.stats
                        .detections
                        .fetch_add(f.detections.len() as u64, Ordering::Relaxed);
                }
                drop(h);
                c.stats
                    .frames_analysed
                    .fetch_add(out.frames.len() as u64, Ordering::Relaxed);
                c.stats.over_budget.fetch_add(late, Ordering::Relaxed);
                c.scheduler.over_budget(late);
            }
            Err(e) => {
                c.stats.error(&e);
                error.get_or_insert(e.to_string());
            }
        }
        out.frames.clear();
    }
    if !out.tracks.is_empty() {
        match sink.tracks(&out.tracks) {
            Ok(()) => {
                c.stats
                    .tracks
                    .fetch_add(out.tracks.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                c.stats.error(&e);
                error.get_or_insert(e.to_string());
            }
        }
        out.tracks.clear();
    }
    if !out.counts.is_empty() || !out.ground.is_empty() {
        if let Err(e) = sink.spatial(&out.counts, &out.ground) {
            c.stats.error(&e);
            error.get_or_insert(e.to_string());
        }
        if let (Some(e), Some(spec)) = (&c.events, &c.spatial) {
            for interval in &out.counts {
                let doc = counts_json(spec, std::slice::from_ref(interval), &[], None, &c.labels);
                e.publish(&c.name, "counts", &doc, false);
            }
        }
        out.counts.clear();
        out.ground.clear();
    }
}
