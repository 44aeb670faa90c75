//! One run per input: cache lookup, run record, stage threads, the sink
//! (reorder, store), and the final status.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError};
use peregrine_core::{
    CachedRun, FrameDetections, Processed, RunOutcome, RunSink, RunSpec, RunStart, RunStatus,
    RunStore, SourceId, VideoRecord,
};
use peregrine_media::{
    file_fingerprint, DecodeStats, Decoder, DecoderOptions, InputKind, InputSpec, MediaError,
    SourceInfo,
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::metrics::{Stage, StageTimings};
use crate::processors::{self, Chain, Delivery};
use crate::{result_params, run_params, source, Engine, FrameResult, PipelineError};

/// Progress notifications, for progress bars and job services.
#[derive(Debug)]
pub enum ProgressEvent<'a> {
    Start {
        source: SourceId,
        input: &'a str,
        /// Estimated frames to analyse (0 when unknown).
        total: u64,
    },
    Frames {
        source: SourceId,
        done: u64,
        fps: f64,
    },
    Finish {
        source: SourceId,
        report: &'a RunReport,
    },
}

pub type Progress = Arc<dyn Fn(&ProgressEvent) + Send + Sync>;

/// The outcome of analysing one input (one line of `analyze --json`).
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub run_id: Option<i64>,
    pub input: String,
    pub status: RunStatus,
    pub cache_hit: bool,
    pub frames: u64,
    pub detections: u64,
    pub tracks: u64,
    /// Frames analysed per second of wall time.
    pub fps: f64,
    pub seconds: f64,
    pub frames_lost: u64,
    pub corrupt_packets: u64,
    pub decode_errors: u64,
    pub corrupt_frames: u64,
    pub timings: Value,
    pub error: Option<String>,
    /// Whether the failure may pass if the input is tried again later (the
    /// store was busy with another writer).
    #[serde(skip)]
    pub retryable: bool,
    /// The per-frame stage histograms behind `timings` (empty for cache hits
    /// and failures before analysis), for services that aggregate them.
    #[serde(skip)]
    pub stage_timings: StageTimings,
}

impl RunReport {
    /// The report of an input that failed before its run began (it could
    /// not be found or opened), for callers that discover inputs
    /// themselves.
    pub fn failed_input(input: &str, error: String) -> Self {
        Self::failed(input, None, error, false, 0.0)
    }

    fn interrupted(input: &str, seconds: f64) -> Self {
        RunReport {
            status: RunStatus::Interrupted,
            error: Some("interrupted before the analysis began".into()),
            ..Self::failed(input, None, String::new(), false, seconds)
        }
    }

    fn failed(
        input: &str,
        run_id: Option<i64>,
        error: String,
        retryable: bool,
        seconds: f64,
    ) -> Self {
        RunReport {
            run_id,
            input: input.to_string(),
            status: RunStatus::Failed,
            cache_hit: false,
            frames: 0,
            detections: 0,
            tracks: 0,
            fps: 0.0,
            seconds,
            frames_lost: 0,
            corrupt_packets: 0,
            decode_errors: 0,
            corrupt_frames: 0,
            timings: json!({}),
            error: Some(error),
            retryable,
            stage_timings: StageTimings::default(),
        }
    }

    fn cached(input: &str, run: &CachedRun, seconds: f64) -> Self {
        let decode = run.decode.clone().unwrap_or_default();
        let n = |k: &str| decode.get(k).and_then(Value::as_u64).unwrap_or(0);
        RunReport {
            run_id: Some(run.id),
            input: input.to_string(),
            status: run.status,
            cache_hit: true,
            frames: run.frames,
            detections: run.detections,
            tracks: run.tracks,
            fps: run.fps.unwrap_or(0.0),
            seconds,
            frames_lost: n("frames_lost"),
            corrupt_packets: n("corrupt_packets"),
            decode_errors: n("decode_errors"),
            corrupt_frames: n("corrupt_frames"),
            timings: run.timings.clone().unwrap_or(json!({})),
            error: run.error.clone(),
            retryable: false,
            stage_timings: StageTimings::default(),
        }
    }

    pub fn succeeded(&self) -> bool {
        self.status.succeeded()
    }
}

/// Runs analyses on one engine into one store. Create once, call
/// [`Analyzer::analyze`] from as many threads as inputs run at once; each
/// call carries its own run settings.
pub struct Analyzer {
    engine: Engine,
    store: Arc<dyn RunStore>,
    cancel: Arc<AtomicBool>,
    progress: Option<Progress>,
}

fn input_name(spec: &InputSpec) -> String {
    spec.path.display().to_string()
}

/// Cache identity of an input: see `peregrine_media::file_fingerprint`.
/// For an image sequence, every image's name and size plus the first and
/// last images' sampled content. Runs record it as their video's
/// `content_hash` (with the total size).
pub fn input_fingerprint(spec: &InputSpec) -> Result<(String, u64), MediaError> {
    match &spec.kind {
        InputKind::File => file_fingerprint(&spec.path).map(|f| (f.hash, f.size)),
        InputKind::ImageSequence { pattern, .. } => {
            let dir = pattern.parent().unwrap_or(Path::new("."));
            let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
                .map_err(|e| MediaError::Io {
                    path: dir.to_path_buf(),
                    source: e,
                })?
                .filter_map(|e| e.ok())
                .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?.len())))
                .collect();
            files.sort();
            let mut h = blake3::Hasher::new();
            let mut total = 0;
            for (name, size) in &files {
                h.update(name.as_bytes());
                h.update(&size.to_le_bytes());
                total += size;
            }
            for (name, _) in files.first().into_iter().chain(files.last()) {
                h.update(file_fingerprint(&dir.join(name))?.hash.as_bytes());
            }
            Ok((h.finalize().to_hex().to_string(), total))
        }
    }
}

fn decode_json(s: &DecodeStats) -> Value {
    json!({
        "packets": s.packets,
        "corrupt_packets": s.corrupt_packets,
        "decode_errors": s.decode_errors,
        "corrupt_frames": s.corrupt_frames,
        "frames_decoded": s.frames_decoded,
        "frames_selected": s.frames_selected,
        "truncated": s.truncated,
        "frames_lost": s.frames_lost,
        "gaps": s.gaps,
        "first_gap_at": s.first_gap_at,
        "read_error": s.read_error,
        "skipped_nonref": s.skipped_nonref,
    })
}

/// Identity and clock of one run, for the stage threads' sink.
#[derive(Clone, Copy)]
struct RunContext {
    source: SourceId,
    t0: Instant,
    fps: f64,
}

/// What the sink saw.
#[derive(Default)]
struct SinkTotals {
    frames: u64,
    detections: u64,
    tracks: u64,
    timings: StageTimings,
    error: Option<PipelineError>,
}

impl SinkTotals {
    /// Keeps the first error: later ones are its consequences.
    fn fail(&mut self, e: impl Into<PipelineError>) {
        self.error.get_or_insert(e.into());
    }
}

impl Analyzer {
    /// `cancel` stops every analysis of this analyzer (Ctrl-C, shutdown).
    pub fn new(engine: Engine, store: Arc<dyn RunStore>, cancel: Arc<AtomicBool>) -> Analyzer {
        Analyzer {
            engine,
            store,
            cancel,
            progress: None,
        }
    }

    pub fn with_progress(mut self, p: Progress) -> Self {
        self.progress = Some(p);
        self
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn emit(&self, e: ProgressEvent) {
        if let Some(p) = &self.progress {
            p(&e);
        }
    }

    /// Analyses one input with `run`'s settings to completion (or failure)
    /// and reports it.
    pub fn analyze(&self, spec: &InputSpec, run: &RunSpec, source: SourceId) -> RunReport {
        self.analyze_cancellable(spec, run, source, &AtomicBool::new(false))
    }

    /// Like [`Analyzer::analyze`], with a stop flag for this input alone
    /// (the analyzer's own flag still stops everything). Setting it stops
    /// the stages within about 100 ms and records the run as interrupted.
    pub fn analyze_cancellable(
        &self,
        spec: &InputSpec,
        run: &RunSpec,
        source: SourceId,
        cancel: &AtomicBool,
    ) -> RunReport {
        let t0 = Instant::now();
        let report = match self.try_analyze(spec, run, source, t0, cancel) {
            Ok(r) => r,
            Err((None, PipelineError::Cancelled)) => {
                RunReport::interrupted(&input_name(spec), t0.elapsed().as_secs_f64())
            }
            Err((run_id, e)) => RunReport::failed(
                &input_name(spec),
                run_id,
                e.to_string(),
                e.is_transient(),
                t0.elapsed().as_secs_f64(),
            ),
        };
        self.emit(ProgressEvent::Finish {
            source,
            report: &report,
        });
        report
    }

    fn try_analyze(
        &self,
        spec: &InputSpec,
        run: &RunSpec,
        source: SourceId,
        t0: Instant,
        cancel: &AtomicBool,
    ) -> Result<RunReport, (Option<i64>, PipelineError)> {
        let input = input_name(spec);
        let early = |e: PipelineError| (None, e);
        // Every phase before the stages checks the stop flags, so a run
        // cancelled while opening or probing never begins.
        let stopped = || {
            if self.cancel.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) {
                Err(early(PipelineError::Cancelled))
            } else {
                Ok(())
            }
        };
        stopped()?;
        let decoder = Decoder::open(
            spec,
            &DecoderOptions {
                threads: run.decode_threads,
                sampling: run.sampling,
                fast: run.fast_decode,
                source,
                max_pixels: Some(run.max_pixels),
                hw: hw_decode(self.engine.model()),
            },
        )
        .map_err(|e| early(e.into()))?;
        let info = decoder.info().clone();
        if let Some(start) = run.sampling.start {
            if info.duration > 0.0 && start >= info.duration {
                return Err(early(PipelineError::Input {
                    input,
                    reason: format!(
                        "start {start} s is past the end of the video ({:.3} s long)",
                        info.duration
                    ),
                }));
            }
        }
        stopped()?;
        let (hash, size) = input_fingerprint(spec).map_err(|e| early(e.into()))?;
        stopped()?;
        let model = self.engine.model();
        let cache_key = {
            let mut h = blake3::Hasher::new();
            h.update(hash.as_bytes());
            h.update(model.hash().as_bytes());
            h.update(result_params(run, model).to_string().as_bytes());
            h.finalize().to_hex().to_string()
        };
        if !run.no_cache {
            if let Some(cached) = self.store.cached(&cache_key).map_err(|e| early(e.into()))? {
                return Ok(RunReport::cached(
                    &input,
                    &cached,
                    t0.elapsed().as_secs_f64(),
                ));
            }
        }
        stopped()?;
        let mut sink = self
            .store
            .begin(&RunStart {
                video: VideoRecord {
                    path: std::fs::canonicalize(&spec.path)
                        .unwrap_or_else(|_| spec.path.clone())
                        .display()
                        .to_string(),
                    content_hash: hash,
                    size,
                    duration: info.duration,
                    fps: info.fps,
                    width: info.width,
                    height: info.height,
                    codec: info.codec.clone(),
                    frames_expected: info.frames_expected,
                },
                cache_key,
                model_path: model.path().display().to_string(),
                model_hash: model.hash().to_string(),
                params: run_params(run, &self.engine),
                versions: json!({
                    "peregrine": env!("CARGO_PKG_VERSION"),
                    "ffmpeg": peregrine_media::ffmpeg_version(),
                    "onnxruntime": peregrine_infer::ORT_VERSION,
                    "device": model.device().accelerator.label(),
                }),
            })
            .map_err(|e| early(e.into()))?;
        let run_id = sink.run_id();

        // From here on the run exists: every exit path records an outcome.
        let total = estimate_frames(&info, run);
        self.emit(ProgressEvent::Start {
            source,
            input: &input,
            total,
        });
        let ctx = RunContext {
            source,
            t0,
            fps: info.fps,
        };
        let (totals, decode) = self.run_stages(sink.as_mut(), decoder, run, &ctx, cancel);
        let seconds = t0.elapsed().as_secs_f64();
        let (status, error) = self.outcome(run, &totals, &decode, cancel);
        let stats = decode.as_ref().ok().cloned().unwrap_or_default();
        let fps = if seconds > 0.0 {
            totals.frames as f64 / seconds
        } else {
            0.0
        };
        let timings = totals.timings.to_json();
        let outcome = RunOutcome {
            status,
            error: error.clone(),
            frames: totals.frames,
            detections: totals.detections,
            tracks: totals.tracks,
            fps,
            timings: timings.clone(),
            decode: decode_json(&stats),
        };
        if let Err(e) = sink.finish(&outcome) {
            return Err((Some(run_id), e.into()));
        }
        Ok(RunReport {
            run_id: Some(run_id),
            input,
            status,
            cache_hit: false,
            frames: totals.frames,
            detections: totals.detections,
            tracks: totals.tracks,
            fps,
            seconds,
            frames_lost: stats.frames_lost,
            corrupt_packets: stats.corrupt_packets,
            decode_errors: stats.decode_errors,
            corrupt_frames: stats.corrupt_frames,
            timings,
            error,
            retryable: totals
                .error
                .as_ref()
                .is_some_and(PipelineError::is_transient),
            stage_timings: totals.timings.clone(),
        })
    }

    fn outcome(
        &self,
        run: &RunSpec,
        totals: &SinkTotals,
        decode: &Result<DecodeStats, MediaError>,
        cancel: &AtomicBool,
    ) -> (RunStatus, Option<String>) {
        if let Some(e) = &totals.error {
            return (RunStatus::Failed, Some(e.to_string()));
        }
        if self.cancel.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) {
            return (
                RunStatus::Interrupted,
                Some("interrupted before the end of the input".into()),
            );
        }
        decode_outcome(decode, run.sampling.start)
    }

    /// Runs the stage threads for one input, passes their results through
    /// the run's processors in frame order and writes them to the sink in
    /// batches.
    fn run_stages(
        &self,
        sink: &mut dyn RunSink,
        decoder: Decoder,
        run: &RunSpec,
        ctx: &RunContext,
        cancel: &AtomicBool,
    ) -> (SinkTotals, Result<DecodeStats, MediaError>) {
        let RunContext { source, t0, fps } = *ctx;
        let depth = self.engine.spec().queue_depth();
        let local_cancel = Arc::new(AtomicBool::new(false));
        let (reply_tx, reply_rx) = bounded::<FrameResult>(depth * 4);
        let mut totals = SinkTotals::default();
        let mut chain = match processors::for_run(run, source, fps, Delivery::Complete) {
            Ok(steps) => Chain::new(steps),
            Err(e) => {
                totals.fail(e);
                local_cancel.store(true, Ordering::Relaxed);
                Chain::new(Vec::new())
            }
        };
        let threads = source::spawn(
            decoder,
            self.engine.model().canvas_layout(),
            depth,
            source::WhenFull::Block,
            source::Route {
                infer: self.engine.sender(),
                filter: self.engine.filter(run.detector_config()),
                reply: reply_tx,
            },
            local_cancel.clone(),
        );
        let mut pending: BTreeMap<u64, FrameResult> = BTreeMap::new();
        let mut next_seq = 0u64;
        let mut out = Processed::default();
        let mut last_flush = Instant::now();
        let mut last_progress = Instant::now();
        loop {
            match reply_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(r) => {
                    pending.insert(r.seq, r);
                    while let Some(r) = pending.remove(&next_seq) {
                        next_seq += 1;
                        let t = &mut totals.timings;
                        t.record_ms(Stage::Decode, r.decode_ms);
                        t.record_ms(Stage::Preprocess, r.preprocess_ms);
                        t.record_ms(Stage::Infer, r.infer_ms);
                        t.record_ms(Stage::Postprocess, r.postprocess_ms);
                        match r.detections {
                            Ok(detections) => {
                                let frame = FrameDetections {
                                    meta: r.meta,
                                    detections,
                                };
                                if chain.is_empty() {
                                    out.frames.push(frame);
                                } else {
                                    let t = Instant::now();
                                    chain.frame(frame, &mut out);
                                    totals
                                        .timings
                                        .record_ms(Stage::Track, t.elapsed().as_secs_f64() * 1e3);
                                }
                            }
                            Err(e) => totals.fail(e),
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if totals.error.is_some()
                || self.cancel.load(Ordering::Relaxed)
                || cancel.load(Ordering::Relaxed)
            {
                local_cancel.store(true, Ordering::Relaxed);
            }
            if out.frames.len() >= STORE_BATCH_FRAMES
                || (!out.frames.is_empty() && last_flush.elapsed() > Duration::from_millis(500))
            {
                write(sink, &mut out, &mut totals);
                last_flush = Instant::now();
            }
            if last_progress.elapsed() > Duration::from_millis(100) {
                last_progress = Instant::now();
                let done = totals.frames + out.frames.len() as u64;
                let secs = t0.elapsed().as_secs_f64();
                self.emit(ProgressEvent::Frames {
                    source,
                    done,
                    fps: if secs > 0.0 { done as f64 / secs } else { 0.0 },
                });
            }
        }
        chain.finish(&mut out);
        write(sink, &mut out, &mut totals);
        let (decode, preprocess) = threads.join();
        let decode = match (decode, preprocess) {
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            (Ok(s), Ok(_)) => Ok(s),
        };
        (totals, decode)
    }
}

/// Frames written per sink call (one database transaction).
const STORE_BATCH_FRAMES: usize = 128;

/// Hands the frames and finished tracks gathered so far to the sink. The
/// frames count once their write was tried (a failed write fails the run).
fn write(sink: &mut dyn RunSink, out: &mut Processed, totals: &mut SinkTotals) {
    if !out.frames.is_empty() {
        let t = Instant::now();
        let n = out.frames.len();
        if let Err(e) = sink.frames(&out.frames) {
            totals.fail(e);
        }
        let per_frame = t.elapsed().as_secs_f64() * 1e3 / n as f64;
        for f in out.frames.drain(..) {
            totals.timings.record_ms(Stage::Store, per_frame);
            totals.frames += 1;
            totals.detections += f.detections.len() as u64;
        }
    }
    if !out.tracks.is_empty() {
        totals.tracks += out.tracks.len() as u64;
        if let Err(e) = sink.tracks(&out.tracks) {
            totals.fail(e);
        }
        out.tracks.clear();
    }
    if !out.counts.is_empty() || !out.ground.is_empty() {
        if let Err(e) = sink.spatial(&out.counts, &out.ground) {
            totals.fail(e);
        }
        out.counts.clear();
        out.ground.clear();
    }
}

fn estimate_frames(info: &SourceInfo, run: &RunSpec) -> u64 {
    let s = &run.sampling;
    let mut secs = info.duration;
    if let Some(end) = s.end {
        secs = secs.min(end);
    }
    secs -= s.start.unwrap_or(0.0);
    if secs <= 0.0 || info.fps <= 0.0 {
        return 0;
    }
    (secs * info.fps / s.frame_stride(info.fps)).ceil() as u64
}

/// Analyses `inputs` with `run`'s settings, `jobs` at a time, calling
/// `on_report` as each ends.
pub fn analyze_all(
    analyzer: &Analyzer,
    inputs: &[InputSpec],
    run: &RunSpec,
    jobs: usize,
    mut on_report: impl FnMut(RunReport),
) {
    let next = AtomicUsize::new(0);
    let (tx, rx) = bounded::<RunReport>(inputs.len().max(1));
    std::thread::scope(|scope| {
        for j in 0..jobs.clamp(1, inputs.len().max(1)) {
            let tx = tx.clone();
            let next = &next;
            std::thread::Builder::new()
                .name(format!("job-{j}"))
                .spawn_scoped(scope, move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(spec) = inputs.get(i) else { break };
                    let _ = tx.send(analyzer.analyze(spec, run, i as SourceId));
                })
                .expect("spawn job thread");
        }
        drop(tx);
        for r in rx {
            on_report(r);
        }
    });
}

/// NVDEC when inference runs on an NVIDIA GPU: decoding then costs the CPU
/// little, which is what limits a GPU machine.
pub fn hw_decode(model: &peregrine_infer::Model) -> peregrine_media::HwDecode {
    match model.device().accelerator {
        peregrine_infer::Accelerator::Cpu => peregrine_media::HwDecode::Off,
        _ => peregrine_media::HwDecode::Nvdec,
    }
}

/// A run's status from its decoding alone: failed (with FFmpeg's reason, or
/// no frame decoded, or none at or after `start`), partial (truncated or
/// damaged input, analysed as far as it decodes, with what was lost) or
/// complete.
pub fn decode_outcome(
    decode: &Result<DecodeStats, MediaError>,
    start: Option<f64>,
) -> (RunStatus, Option<String>) {
    match decode {
        Err(e) => (RunStatus::Failed, Some(e.to_string())),
        Ok(s) if s.frames_selected == 0 && s.frames_decoded > 0 && start.is_some() => (
            RunStatus::Failed,
            Some(format!(
                "no frame at or after start {} s: the video ends before it",
                start.unwrap_or_default()
            )),
        ),
        Ok(s) if s.frames_decoded == 0 => (
            RunStatus::Failed,
            Some(format!(
                "no frame could be decoded ({} packets, {} decode errors)",
                s.packets, s.decode_errors
            )),
        ),
        Ok(s) if s.truncated => (
            RunStatus::Partial,
            Some(format!(
                "input is truncated: {} frames decoded, about {} frames lost{}",
                s.frames_decoded,
                s.frames_lost,
                s.read_error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )),
        ),
        Ok(s) if s.frames_lost > 0 => (
            RunStatus::Partial,
            Some(format!(
                "input is damaged: {} frames decoded, about {} frames lost in {} gap{}{}",
                s.frames_decoded,
                s.frames_lost,
                s.gaps,
                if s.gaps == 1 { "" } else { "s" },
                s.first_gap_at
                    .map(|t| format!(" (the first ends at {t:.2} s)"))
                    .unwrap_or_default()
            )),
        ),
        Ok(_) => (RunStatus::Complete, None),
    }
}
