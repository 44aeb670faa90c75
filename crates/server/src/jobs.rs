//! The job runner: `workers` OS threads, each claiming the most urgent
//! queued job from the database and running the (blocking) pipeline on it.
//! Async handlers never touch video work; they read the database and the
//! live progress kept here.
//!
//! Policy: a job failing with a transient error (the database locked by
//! another writer) is queued again after `retry_backoff · 2^(attempt-1)`,
//! up to `max_attempts` attempts. Other failures are final. A graceful
//! shutdown puts running jobs back in the queue without counting the
//! attempt; a crash is handled at the next start by
//! [`JobQueue::recover_orphans`] (retried once, then failed).
//!
//! On PostgreSQL the queue is shared by processes: a running job is held
//! under a lease that a renewal thread extends every
//! [`RENEW_EVERY`] while the job runs, writing its progress to the job's
//! row (which every API process reads) and picking up cancellation
//! requested through any API process. A worker that loses its lease stops
//! the job and records nothing; one that dies loses it when the lease runs
//! out, and another worker retries the job.
//!
//! A job runs from its [`JobSpec`], resolved when it was submitted;
//! `analyzer_for` is the one place a spec becomes the pipeline's inputs.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use peregrine_pipeline::{Analyzer, ProgressEvent};
use peregrine_store::jobs::{Claimed, JobQueue, Outcome, Progress};
use peregrine_store::{RunStatus, StoreError};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::spec::JobSpec;
use crate::state::AppState;

/// Progress of a running job, updated from pipeline threads.
#[derive(Default)]
pub struct LiveJob {
    pub cancel: AtomicBool,
    pub frames_done: AtomicU64,
    pub frames_total: AtomicU64,
    /// fps × 1000.
    fps_milli: AtomicU64,
    /// 0: loading the model and building sessions; 1: analysing.
    phase: AtomicU8,
}

impl LiveJob {
    pub fn fps(&self) -> f64 {
        self.fps_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// `loading` or `analysing`.
    pub fn phase(&self) -> &'static str {
        match self.phase.load(Ordering::Relaxed) {
            0 => "loading",
            _ => "analysing",
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

/// Wakes idle workers when a job is queued.
#[derive(Default)]
pub struct Wake {
    pending: Mutex<bool>,
    cv: Condvar,
}

impl Wake {
    pub fn notify(&self) {
        if let Ok(mut p) = self.pending.lock() {
            *p = true;
        }
        self.cv.notify_all();
    }

    fn wait(&self, timeout: Duration) {
        let Ok(mut p) = self.pending.lock() else {
            return;
        };
        if !*p {
            p = match self.cv.wait_timeout(p, timeout) {
                Ok((g, _)) => g,
                Err(_) => return,
            };
        }
        *p = false;
    }
}

/// A job changed (state or progress); subscribers re-read it.
pub type JobEvents = broadcast::Sender<i64>;

pub fn start_workers(state: &AppState) -> Vec<std::thread::JoinHandle<()>> {
    (0..state.config.workers)
        .map(|n| {
            let st = state.clone();
            std::thread::Builder::new()
                .name(format!("job-worker-{n}"))
                .spawn(move || worker_loop(st))
                .expect("spawn worker thread")
        })
        .collect()
}

/// Lowers this thread's CPU priority. On Linux every thread it then starts
/// (pipeline stages, ONNX Runtime's pool) inherits the nice value, so the
/// HTTP server's threads preempt video work instead of queueing behind it.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::warn!(error = %e, nice, "cannot lower the analysis priority");
    }
}

/// How often a running job's lease is renewed (and its progress and
/// cancellation exchanged) on a shared queue: cancellation reaches the
/// worker within this.
pub const RENEW_EVERY: Duration = Duration::from_millis(400);

fn open_queue(state: &AppState) -> Result<Box<dyn JobQueue + Send>, StoreError> {
    crate::db::open_queue(
        &state.config.db_target(),
        state.config.db_timeout,
        &state.membership,
    )
}

fn worker_loop(state: AppState) {
    lower_priority(state.config.analysis_nice);
    let mut queue: Option<Box<dyn JobQueue + Send>> = None;
    while !state.shutdown.load(Ordering::SeqCst) {
        let q = match &queue {
            Some(q) => &**q,
            None => match open_queue(&state) {
                Ok(q) => &**queue.insert(q),
                Err(e) => {
                    tracing::error!(error = %e, "job worker cannot open the database");
                    state.wake.wait(Duration::from_secs(1));
                    continue;
                }
            },
        };
        match q.claim() {
            Ok(Some(job)) => run_job(&state, q, job),
            // A lost connection is opened again.
            Err(e @ StoreError::Unavailable { .. }) => {
                tracing::error!(error = %e, "claiming a job failed");
                queue = None;
                state.wake.wait(Duration::from_secs(1));
            }
            Ok(None) => {
                let due = q.next_due_in().ok().flatten().unwrap_or(1.0);
                state
                    .wake
                    .wait(Duration::from_secs_f64(due.clamp(0.05, 1.0)));
            }
            Err(e) => {
                tracing::error!(error = %e, "claiming a job failed");
                state.wake.wait(Duration::from_secs(1));
            }
        }
    }
}

/// The result of one attempt, before it is written.
enum Attempt {
    Done {
        run_id: Option<i64>,
        run_status: RunStatus,
        cache_hit: bool,
        fps: f64,
        frames: u64,
        timings: Value,
    },
    Failed {
        run_id: Option<i64>,
        error: String,
    },
    Transient(String),
    Cancelled(Option<i64>),
    Requeue,
}

/// Renews the lease on `id` every [`RENEW_EVERY`] until `done`, on a
/// connection of its own; sets `live.cancel` when cancellation is
/// requested or the lease is lost (then `lost` too).
fn keep_lease(state: &AppState, id: i64, live: &LiveJob, done: &AtomicBool, lost: &AtomicBool) {
    let mut queue: Option<Box<dyn JobQueue + Send>> = None;
    while !done.load(Ordering::SeqCst) {
        std::thread::park_timeout(RENEW_EVERY);
        if done.load(Ordering::SeqCst) {
            return;
        }
        let q = match &queue {
            Some(q) => q,
            None => match open_queue(state) {
                Ok(q) => queue.insert(q),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew the job's lease");
                    continue;
                }
            },
        };
        let progress = Progress {
            frames_done: live.frames_done.load(Ordering::Relaxed),
            frames_total: live.frames_total.load(Ordering::Relaxed),
            fps: live.fps(),
        };
        match q.renew(id, &progress) {
            Ok(r) if !r.held => {
                tracing::warn!("lease lost: the job went to another worker; stopping it");
                lost.store(true, Ordering::SeqCst);
                live.cancel.store(true, Ordering::SeqCst);
                return;
            }
            Ok(r) if r.cancel => live.cancel.store(true, Ordering::SeqCst),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "renewing the job's lease failed");
                queue = None;
            }
        }
    }
}

fn run_job(state: &AppState, queue: &dyn JobQueue, job: Claimed) {
    let span = tracing::info_span!("job", id = job.id, attempt = job.attempts, video = %job.video);
    let _enter = span.enter();
    tracing::info!("started");
    state.metrics.job_started();
    let live = Arc::new(LiveJob::default());
    state.live_insert(job.id, live.clone());
    state.publish(job.id);
    let done = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicBool::new(false));
    let renewal = queue.leased().then(|| {
        let (st, live, done, lost) = (state.clone(), live.clone(), done.clone(), lost.clone());
        let id = job.id;
        std::thread::Builder::new()
            .name(format!("job-lease-{id}"))
            .spawn(move || keep_lease(&st, id, &live, &done, &lost))
    });
    let attempt = if queue.cancel_requested(job.id).unwrap_or(false) {
        Attempt::Cancelled(None)
    } else {
        execute(state, &job, &live)
    };
    done.store(true, Ordering::SeqCst);
    if let Some(Ok(h)) = renewal {
        h.thread().unpark();
        let _ = h.join();
    }
    if lost.load(Ordering::SeqCst) {
        // Another worker holds the job now: this attempt records nothing.
        tracing::warn!("attempt abandoned after its lease was lost");
        state.live_remove(job.id);
        state.publish(job.id);
        return;
    }
    let delay = state
        .config
        .retry_backoff
        .saturating_mul(1 << job.attempts.saturating_sub(1).min(10));
    let outcome = match &attempt {
        Attempt::Done {
            run_id,
            run_status,
            cache_hit,
            fps,
            frames,
            timings,
        } => Outcome::Done {
            run_id: *run_id,
            run_status: *run_status,
            cache_hit: *cache_hit,
            fps: *fps,
            frames: *frames,
            timings,
        },
        Attempt::Failed { run_id, error } => Outcome::Failed {
            run_id: *run_id,
            error,
        },
        Attempt::Transient(e) if job.attempts < state.config.max_attempts => {
            state.metrics.retried();
            Outcome::Retry { error: e, delay }
        }
        Attempt::Transient(e) => Outcome::Failed {
            run_id: None,
            error: e,
        },
        Attempt::Cancelled(run_id) => Outcome::Cancelled { run_id: *run_id },
        Attempt::Requeue => Outcome::Requeue,
    };
    let mut written = queue.finish(job.id, &outcome);
    for _ in 0..3 {
        if written.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        written = queue.finish(job.id, &outcome);
    }
    if let Err(e) = written {
        tracing::error!(error = %e, "recording the job's outcome failed");
    }
    match &outcome {
        Outcome::Done { cache_hit, .. } => tracing::info!(cache_hit, "done"),
        Outcome::Failed { error, .. } => tracing::warn!(%error, "failed"),
        Outcome::Retry { error, delay } => tracing::warn!(%error, ?delay, "retrying"),
        Outcome::Cancelled { .. } => tracing::info!("cancelled"),
        Outcome::Requeue => tracing::info!("queued again at shutdown"),
    }
    state.live_remove(job.id);
    state.publish(job.id);
    if matches!(outcome, Outcome::Retry { .. }) {
        state.wake.notify();
    }
}

fn execute(state: &AppState, job: &Claimed, live: &Arc<LiveJob>) -> Attempt {
    let failed = |error: String| Attempt::Failed {
        run_id: None,
        error,
    };
    // Cancellation is checked between every step that can take a while,
    // not only per frame: a job stops in any phase.
    let stopped = || {
        if live.cancelled() {
            Some(Attempt::Cancelled(None))
        } else if state.shutdown.load(Ordering::SeqCst) {
            Some(Attempt::Requeue)
        } else {
            None
        }
    };
    let spec = match job_spec(state, job) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let video = spec.video.to_string_lossy();
    let input = match peregrine_media::discover_inputs(std::slice::from_ref(&spec.video)) {
        Ok(mut v) if v.len() == 1 => v.remove(0),
        Ok(_) => return failed(format!("{video}: not a single video")),
        Err(e) => return failed(e.to_string()),
    };
    // The pixel limit, before any frame buffer is allocated (the file may
    // have been replaced since it was submitted). What FFmpeg cannot open is
    // left to the analysis, which reports FFmpeg's reason.
    match peregrine_media::probe_limited(&input, state.config.max_pixels) {
        Ok(info) => {
            if let Err(e) =
                crate::api::check_pixels(info.width, info.height, state.config.max_pixels)
            {
                return failed(format!("{video}: {e}"));
            }
        }
        Err(e @ peregrine_media::MediaError::TooLarge { .. }) => return failed(e.to_string()),
        Err(_) => {}
    }
    if let Some(a) = stopped() {
        return a;
    }
    let analyzer = match analyzer_for(state, &spec, live, stopped) {
        Ok(a) => a,
        Err(a) => return a,
    };
    let progress = {
        let live = live.clone();
        let st = state.clone();
        let id = job.id;
        let last = Mutex::new(Instant::now());
        Arc::new(move |e: &ProgressEvent| {
            match e {
                ProgressEvent::Start { total, .. } => {
                    live.frames_total.store(*total, Ordering::Relaxed)
                }
                ProgressEvent::Frames { done, fps, .. } => {
                    live.frames_done.store(*done, Ordering::Relaxed);
                    live.fps_milli
                        .store((fps.max(0.0) * 1000.0) as u64, Ordering::Relaxed);
                }
                ProgressEvent::Finish { .. } => return,
            }
            if let Ok(mut t) = last.lock() {
                if t.elapsed() >= Duration::from_millis(250) {
                    *t = Instant::now();
                    st.publish(id);
                }
            }
        })
    };
    // Building the inference sessions may take a while: checked again.
    if let Some(a) = stopped() {
        return a;
    }
    live.phase.store(1, Ordering::Relaxed);
    state.publish(job.id);
    let analyzer = analyzer.with_progress(progress);
    let report = analyzer.analyze_cancellable(&input, &spec.run, 0, &live.cancel);
    drop(analyzer);
    state
        .metrics
        .run_finished(report.frames, report.cache_hit, &report.stage_timings);
    match report.status {
        // Cancelled after the last frame, while the run was being written
        // (or served from the cache): the run is kept, the job is cancelled
        // as asked.
        RunStatus::Complete | RunStatus::Partial if live.cancelled() => {
            Attempt::Cancelled(report.run_id)
        }
        run_status @ (RunStatus::Complete | RunStatus::Partial) => Attempt::Done {
            run_id: report.run_id,
            run_status,
            cache_hit: report.cache_hit,
            fps: report.fps,
            frames: report.frames,
            timings: report.timings.clone(),
        },
        RunStatus::Interrupted if live.cancelled() => Attempt::Cancelled(report.run_id),
        RunStatus::Interrupted if state.shutdown.load(Ordering::SeqCst) => Attempt::Requeue,
        _ => {
            let error = report
                .error
                .clone()
                .unwrap_or_else(|| format!("run ended {}", report.status));
            if report.retryable {
                Attempt::Transient(error)
            } else {
                Attempt::Failed {
                    run_id: report.run_id,
                    error,
                }
            }
        }
    }
}

/// The job as submitted: its stored spec, or for a job queued by a version
/// that stored none, resolved now from its parameters.
fn job_spec(state: &AppState, job: &Claimed) -> Result<JobSpec, String> {
    match &job.spec {
        Some(spec) => serde_json::from_value(spec.clone()).map_err(|e| format!("spec: {e}")),
        None => JobSpec::legacy(&job.video, &job.model, &job.params, state.config.max_pixels),
    }
}

/// The one translation from a job's spec to the pipeline's inputs: the
/// store, and the shared engine for the job's model, family and engine
/// settings (built on first use, checking for cancellation before each
/// session). `Err` is how the attempt ends instead.
fn analyzer_for(
    state: &AppState,
    spec: &JobSpec,
    live: &LiveJob,
    stopped: impl Fn() -> Option<Attempt>,
) -> Result<Analyzer, Attempt> {
    let failed = |error: String| Attempt::Failed {
        run_id: None,
        error,
    };
    // The database first, so a bad or locked database fails before any
    // session is built.
    let store = peregrine_store::open_run_store(&state.config.db_target(), state.config.db_timeout)
        .map_err(|e| match e {
            e @ (StoreError::Locked { .. } | StoreError::Unavailable { .. }) => {
                Attempt::Transient(e.to_string())
            }
            e => failed(e.to_string()),
        })?;
    let cancelled = || live.cancelled() || state.shutdown.load(Ordering::SeqCst);
    let engine = match state
        .engines
        .get(&spec.model, spec.family, spec.engine, &cancelled)
    {
        Ok(Some(e)) => e,
        Ok(None) => return Err(stopped().unwrap_or(Attempt::Cancelled(None))),
        Err(e) => return Err(failed(e.to_string())),
    };
    if spec.gait.is_some() {
        if let Err(e) = engine.model().require_coco_pose() {
            return Err(failed(format!("{}: {e}", spec.model.display())));
        }
    }
    if let Some(a) = stopped() {
        return Err(a);
    }
    Ok(Analyzer::new(engine, store, state.shutdown.clone()))
}
