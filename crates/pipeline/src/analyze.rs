//! One run per input: cache lookup, run record, stage threads, the sink
//! (reorder, store), and the final status.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError};
use peregrine_analytics::{TrackStats, TrackSummary};
use peregrine_core::{Detection, FrameMeta, SourceId};
use peregrine_infer::Model;
use peregrine_media::{
    file_fingerprint, DecodeStats, Decoder, DecoderOptions, InputKind, InputSpec, MediaError,
    SourceInfo,
};
use peregrine_store::{NewRun, RunOutcome, RunRecord, RunStatus, Store, TrackRow, VideoRecord};
use peregrine_track::{ByteTrackConfig, ByteTracker};
use serde::Serialize;
use serde_json::{json, Value};

use crate::metrics::{Stage, StageTimings};
use crate::{source, AnalyzeOptions, FrameResult, InferStage, PipelineError};

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
    pub status: String,
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
        Self::failed(input, None, error, 0.0)
    }

    fn interrupted(input: &str, seconds: f64) -> Self {
        RunReport {
            status: RunStatus::Interrupted.as_str().into(),
            ..Self::failed(
                input,
                None,
                "interrupted before the analysis began".into(),
                seconds,
            )
        }
    }

    fn failed(input: &str, run_id: Option<i64>, error: String, seconds: f64) -> Self {
        RunReport {
            run_id,
            input: input.to_string(),
            status: RunStatus::Failed.as_str().into(),
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
            stage_timings: StageTimings::default(),
        }
    }

    fn cached(input: &str, run: &RunRecord, seconds: f64) -> Self {
        let decode = run.decode.clone().unwrap_or_default();
        let n = |k: &str| decode.get(k).and_then(Value::as_u64).unwrap_or(0);
        RunReport {
            run_id: Some(run.id),
            input: input.to_string(),
            status: run.status.as_str().into(),
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
            stage_timings: StageTimings::default(),
        }
    }

    pub fn succeeded(&self) -> bool {
        self.status == "complete" || self.status == "partial"
    }
}

/// Runs analyses against one model and one database. Create once, call
/// [`Analyzer::analyze`] from as many threads as inputs run at once.
pub struct Analyzer {
    model: Model,
    opts: AnalyzeOptions,
    db: PathBuf,
    db_timeout: Duration,
    infer: InferStage,
    cancel: Arc<AtomicBool>,
    progress: Option<Progress>,
}

fn input_name(spec: &InputSpec) -> String {
    spec.path.display().to_string()
}

/// Cache identity of an input: see `peregrine_media::file_fingerprint`.
/// For an image sequence, every image's name and size plus the first and
/// last images' sampled content.
fn fingerprint(spec: &InputSpec) -> Result<(String, u64), MediaError> {
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
    run_id: i64,
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
    error: Option<String>,
}

impl Analyzer {
    /// Opens the database once to fail early on a bad path, and starts the
    /// shared inference workers.
    pub fn new(
        model: Model,
        opts: AnalyzeOptions,
        db: PathBuf,
        db_timeout: Duration,
        cancel: Arc<AtomicBool>,
    ) -> Result<Analyzer, PipelineError> {
        Self::new_cancellable(model, opts, db, db_timeout, cancel, &AtomicBool::new(false))
    }

    /// Like [`Analyzer::new`], giving up with [`PipelineError::Cancelled`]
    /// as soon as `cancel` or `stop` is set, checked before each inference
    /// session is built (loading a large model into many sessions takes a
    /// while): a job cancelled while loading stops promptly.
    pub fn new_cancellable(
        model: Model,
        opts: AnalyzeOptions,
        db: PathBuf,
        db_timeout: Duration,
        cancel: Arc<AtomicBool>,
        stop: &AtomicBool,
    ) -> Result<Analyzer, PipelineError> {
        let cancelled = || cancel.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed);
        if cancelled() {
            return Err(PipelineError::Cancelled);
        }
        Store::open_with_timeout(&db, db_timeout)?;
        let infer = InferStage::start_cancellable(&model, &opts, &cancelled)?
            .ok_or(PipelineError::Cancelled)?;
        Ok(Analyzer {
            model,
            opts,
            db,
            db_timeout,
            infer,
            cancel,
            progress: None,
        })
    }

    pub fn with_progress(mut self, p: Progress) -> Self {
        self.progress = Some(p);
        self
    }

    pub fn options(&self) -> &AnalyzeOptions {
        &self.opts
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    fn emit(&self, e: ProgressEvent) {
        if let Some(p) = &self.progress {
            p(&e);
        }
    }

    /// Analyses one input to completion (or failure) and reports it.
    pub fn analyze(&self, spec: &InputSpec, source: SourceId) -> RunReport {
        self.analyze_cancellable(spec, source, &AtomicBool::new(false))
    }

    /// Like [`Analyzer::analyze`], with a stop flag for this input alone
    /// (the analyzer's own flag still stops everything). Setting it stops
    /// the stages within about 100 ms and records the run as interrupted.
    pub fn analyze_cancellable(
        &self,
        spec: &InputSpec,
        source: SourceId,
        cancel: &AtomicBool,
    ) -> RunReport {
        let t0 = Instant::now();
        let report = match self.try_analyze(spec, source, t0, cancel) {
            Ok(r) => r,
            Err((None, PipelineError::Cancelled)) => {
                RunReport::interrupted(&input_name(spec), t0.elapsed().as_secs_f64())
            }
            Err((run_id, e)) => RunReport::failed(
                &input_name(spec),
                run_id,
                e.to_string(),
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
        let mut store =
            Store::open_with_timeout(&self.db, self.db_timeout).map_err(|e| early(e.into()))?;
        stopped()?;
        let decoder = Decoder::open(
            spec,
            &DecoderOptions {
                threads: self.opts.decode_threads,
                sampling: self.opts.sampling,
                fast: self.opts.fast_decode,
                source,
                max_pixels: Some(self.opts.max_pixels),
            },
        )
        .map_err(|e| early(e.into()))?;
        let info = decoder.info().clone();
        if let Some(start) = self.opts.sampling.start {
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
        let (hash, size) = fingerprint(spec).map_err(|e| early(e.into()))?;
        stopped()?;
        let params = self.opts.result_params(&self.model);
        let cache_key = {
            let mut h = blake3::Hasher::new();
            h.update(hash.as_bytes());
            h.update(self.model.hash().as_bytes());
            h.update(params.to_string().as_bytes());
            h.finalize().to_hex().to_string()
        };
        if !self.opts.no_cache {
            if let Some(run) = store
                .find_cached_run(&cache_key)
                .map_err(|e| early(e.into()))?
            {
                return Ok(RunReport::cached(&input, &run, t0.elapsed().as_secs_f64()));
            }
        }
        stopped()?;
        let video_id = store
            .upsert_video(&VideoRecord {
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
            })
            .map_err(|e| early(e.into()))?;
        let run_id = store
            .begin_run(&NewRun {
                video_id,
                cache_key,
                model_path: self.model.path().display().to_string(),
                model_hash: self.model.hash().to_string(),
                params: self.opts.all_params(&self.model),
                versions: json!({
                    "peregrine": env!("CARGO_PKG_VERSION"),
                    "ffmpeg": peregrine_media::ffmpeg_version(),
                    "onnxruntime": "1.31.1",
                }),
            })
            .map_err(|e| early(e.into()))?;

        // From here on the run exists: every exit path records an outcome.
        let total = estimate_frames(&info, &self.opts);
        self.emit(ProgressEvent::Start {
            source,
            input: &input,
            total,
        });
        let ctx = RunContext {
            run_id,
            source,
            t0,
            fps: info.fps,
        };
        let (totals, decode) = self.run_stages(&mut store, decoder, &ctx, cancel);
        let seconds = t0.elapsed().as_secs_f64();
        let (status, error) = self.outcome(&totals, &decode, cancel);
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
        if let Err(e) = store.finish_run(run_id, &outcome) {
            return Err((Some(run_id), e.into()));
        }
        Ok(RunReport {
            run_id: Some(run_id),
            input,
            status: status.as_str().into(),
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
            stage_timings: totals.timings.clone(),
        })
    }

    fn outcome(
        &self,
        totals: &SinkTotals,
        decode: &Result<DecodeStats, MediaError>,
        cancel: &AtomicBool,
    ) -> (RunStatus, Option<String>) {
        if let Some(e) = &totals.error {
            return (RunStatus::Failed, Some(e.clone()));
        }
        if self.cancel.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) {
            return (
                RunStatus::Interrupted,
                Some("interrupted before the end of the input".into()),
            );
        }
        match decode {
            Err(e) => (RunStatus::Failed, Some(e.to_string())),
            Ok(s)
                if s.frames_selected == 0
                    && s.frames_decoded > 0
                    && self.opts.sampling.start.is_some() =>
            {
                (
                    RunStatus::Failed,
                    Some(format!(
                        "no frame at or after start {} s: the video ends before it",
                        self.opts.sampling.start.unwrap_or_default()
                    )),
                )
            }
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

    /// Runs the stage threads for one input and sinks their results into the
    /// store in batched transactions.
    fn run_stages(
        &self,
        store: &mut Store,
        decoder: Decoder,
        ctx: &RunContext,
        cancel: &AtomicBool,
    ) -> (SinkTotals, Result<DecodeStats, MediaError>) {
        let RunContext {
            run_id,
            source,
            t0,
            fps: source_fps,
        } = *ctx;
        let depth = self.opts.queue_depth.max(2);
        let local_cancel = Arc::new(AtomicBool::new(false));
        let (reply_tx, reply_rx) = bounded::<FrameResult>(depth * 4);
        let threads = source::spawn(
            decoder,
            self.model.canvas_layout(),
            depth,
            self.infer.sender(),
            reply_tx,
            local_cancel.clone(),
        );
        let mut totals = SinkTotals::default();
        let untracked_min = self.opts.untracked_min_score();
        let mut tracker = match self.opts.tracking.clone().map(|mut t| {
            if source_fps.is_finite() && source_fps > 0.0 {
                t.frame_rate = source_fps as f32;
            }
            TrackStep::new(t, untracked_min.unwrap_or(1.0))
        }) {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                totals.error = Some(e.to_string());
                local_cancel.store(true, Ordering::Relaxed);
                None
            }
            None => None,
        };
        // A track idle longer than the tracker's lost buffer is finished:
        // its summary is written and dropped from memory.
        let idle_frames = tracker
            .as_ref()
            .map(|t| t.tracker.config().max_time_lost() + 1)
            .unwrap_or(0);
        let mut stats = TrackStats::new();
        let mut last_index = 0u64;
        let mut pending: BTreeMap<u64, FrameResult> = BTreeMap::new();
        let mut next_seq = 0u64;
        let mut batch: Vec<(FrameMeta, Vec<Detection>)> =
            Vec::with_capacity(self.opts.store_batch_frames);
        let mut last_flush = Instant::now();
        let mut last_progress = Instant::now();
        let write_tracks = |store: &mut Store, done: Vec<TrackSummary>, totals: &mut SinkTotals| {
            if done.is_empty() {
                return;
            }
            totals.tracks += done.len() as u64;
            let rows: Vec<TrackRow> = done.iter().map(track_row).collect();
            if let Err(e) = store.upsert_tracks(run_id, &rows) {
                totals.error.get_or_insert(e.to_string());
            }
        };
        let flush = |store: &mut Store,
                     batch: &mut Vec<(FrameMeta, Vec<Detection>)>,
                     totals: &mut SinkTotals| {
            if batch.is_empty() {
                return;
            }
            let t = Instant::now();
            let n = batch.len();
            match store.insert_frames(run_id, batch.iter().map(|(m, d)| (m, d.as_slice()))) {
                Ok(_) => {}
                Err(e) => {
                    if totals.error.is_none() {
                        totals.error = Some(e.to_string());
                    }
                }
            }
            let per_frame = t.elapsed().as_secs_f64() * 1e3 / n as f64;
            for _ in 0..n {
                totals.timings.record_ms(Stage::Store, per_frame);
            }
            batch.clear();
        };
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
                            Ok(dets) => {
                                let ready = match tracker.as_mut() {
                                    Some(tr) => {
                                        let t = Instant::now();
                                        let ready = tr.push(r.meta, dets, &mut stats);
                                        totals.timings.record_ms(
                                            Stage::Track,
                                            t.elapsed().as_secs_f64() * 1e3,
                                        );
                                        ready
                                    }
                                    None => Some((r.meta, dets)),
                                };
                                if let Some((meta, dets)) = ready {
                                    last_index = meta.index;
                                    totals.frames += 1;
                                    totals.detections += dets.len() as u64;
                                    batch.push((meta, dets));
                                }
                            }
                            Err(e) => {
                                if totals.error.is_none() {
                                    totals.error = Some(e);
                                }
                            }
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
            if batch.len() >= self.opts.store_batch_frames
                || (!batch.is_empty() && last_flush.elapsed() > Duration::from_millis(500))
            {
                flush(store, &mut batch, &mut totals);
                if tracker.is_some() {
                    let done = stats.drain_idle(source, last_index, idle_frames);
                    write_tracks(store, done, &mut totals);
                }
                last_flush = Instant::now();
            }
            if last_progress.elapsed() > Duration::from_millis(100) {
                last_progress = Instant::now();
                let secs = t0.elapsed().as_secs_f64();
                self.emit(ProgressEvent::Frames {
                    source,
                    done: totals.frames,
                    fps: if secs > 0.0 {
                        totals.frames as f64 / secs
                    } else {
                        0.0
                    },
                });
            }
        }
        if let Some((meta, dets)) = tracker.as_mut().and_then(|t| t.finish(&mut stats)) {
            totals.frames += 1;
            totals.detections += dets.len() as u64;
            batch.push((meta, dets));
        }
        flush(store, &mut batch, &mut totals);
        write_tracks(store, stats.finish(), &mut totals);
        let (decode, preprocess) = threads.join();
        let decode = match (decode, preprocess) {
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            (Ok(s), Ok(_)) => Ok(s),
        };
        (totals, decode)
    }
}

/// The sink's tracking step. Each frame is held back until the next one is
/// tracked: ByteTrack confirms a track born after the first frame on its
/// second frame, and the box it was born from then gets the id too. With
/// tracking on, a frame keeps its tracked boxes (down to the tracker's low
/// threshold) and the untracked ones scoring at least
/// [`AnalyzeOptions::untracked_min_score`].
struct TrackStep {
    tracker: ByteTracker,
    untracked_min: f32,
    held: Option<(FrameMeta, Vec<Detection>)>,
}

impl TrackStep {
    fn new(cfg: ByteTrackConfig, untracked_min: f32) -> Result<Self, peregrine_track::ConfigError> {
        Ok(Self {
            untracked_min,
            tracker: ByteTracker::new(cfg)?,
            held: None,
        })
    }

    /// Tracks `dets`; returns the previous frame, complete, to be stored.
    fn push(
        &mut self,
        meta: FrameMeta,
        mut dets: Vec<Detection>,
        stats: &mut TrackStats,
    ) -> Option<(FrameMeta, Vec<Detection>)> {
        self.tracker.update(meta.index, &mut dets);
        let (prev_meta, mut prev) = self.held.replace((meta, dets))?;
        for &(i, id) in self.tracker.confirmed_births() {
            if let Some(d) = prev.get_mut(i) {
                d.track_id = Some(id);
            }
        }
        Some(self.release(prev_meta, prev, stats))
    }

    /// The frame still held, at the end of the input.
    fn finish(&mut self, stats: &mut TrackStats) -> Option<(FrameMeta, Vec<Detection>)> {
        let (meta, dets) = self.held.take()?;
        Some(self.release(meta, dets, stats))
    }

    fn release(
        &self,
        meta: FrameMeta,
        mut dets: Vec<Detection>,
        stats: &mut TrackStats,
    ) -> (FrameMeta, Vec<Detection>) {
        stats.observe(&meta, &dets);
        dets.retain(|d| d.track_id.is_some() || d.score >= self.untracked_min);
        (meta, dets)
    }
}

fn track_row(t: &TrackSummary) -> TrackRow {
    TrackRow {
        track_id: t.track_id,
        class_id: t.class_id,
        first_frame: t.first_frame,
        last_frame: t.last_frame,
        first_t: t.first_time_s,
        last_t: t.last_time_s,
        frames: t.frames_seen,
        mean_score: t.mean_score,
        path_px: t.path_length_px,
        mean_speed: t.mean_speed_px_s.unwrap_or(0.0),
        max_speed: t.max_speed_px_s.unwrap_or(0.0),
        region: t.region,
    }
}

fn estimate_frames(info: &SourceInfo, opts: &AnalyzeOptions) -> u64 {
    let s = &opts.sampling;
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

/// Analyses `inputs`, `jobs` at a time, calling `on_report` as each ends.
pub fn analyze_all(
    analyzer: &Analyzer,
    inputs: &[InputSpec],
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
                    let _ = tx.send(analyzer.analyze(spec, i as SourceId));
                })
                .expect("spawn job thread");
        }
        drop(tx);
        for r in rx {
            on_report(r);
        }
    });
}
