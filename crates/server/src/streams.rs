//! Live streams managed by the service: one [`LiveSet`] per process, on one
//! engine from [`crate::engines::Engines`] (the model of the streams),
//! started with the first stream. The streams run on the live crate's OS
//! threads; request handlers only call [`LiveSet`] methods, and the ones
//! that may wait (building the engine, stopping a stream) on blocking
//! threads. Streams are stored (`streams` table). On SQLite the service
//! runs every stream and starts them again when it starts; on PostgreSQL
//! the processes with workers lease them ([`crate::stream_leases`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use peregrine_live::{LiveOptions, LiveSet, StreamReport, StreamSpec, Summary};
use peregrine_media::LiveInputOptions;
use peregrine_pipeline::AnalyzeParams;
use peregrine_store::Results;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;

/// A stream's settings as stored (the `spec` of its `streams` row).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamSettings {
    /// A URL, or a file's canonical path inside a media root.
    pub source: String,
    pub fps: f64,
    pub priority: bool,
    #[serde(default)]
    pub motion_gate: bool,
    /// The model's canonical path.
    pub model: PathBuf,
    /// The stream's `analyze` parameters (detector, tracking, counting),
    /// as the client gave them; `None`: the defaults.
    #[serde(default)]
    pub params: Option<AnalyzeParams>,
}

/// The `analyze` parameters a live stream may set; the others are the
/// engine's (shared by every stream) or a file's.
pub const STREAM_PARAMS: &[&str] = &[
    "conf",
    "iou",
    "classes",
    "max_det",
    "agnostic",
    "no_track",
    "track_thresh",
    "match_thresh",
    "track_buffer",
    "track_all_classes",
    "track_per_class",
    "line",
    "zone",
    "anchor",
    "interval",
    "calibration",
];

/// The running set and the model its engine runs.
pub struct Running {
    pub set: LiveSet,
    pub model: PathBuf,
}

#[derive(Default)]
pub struct LiveStreams {
    running: RwLock<Option<Arc<Running>>>,
    /// Held while the set is built (loading the model), so it is built once.
    build: Mutex<()>,
    /// Why a stored stream could not be started (shown by the API).
    failures: Mutex<HashMap<String, String>>,
    /// PostgreSQL: wakes this process's stream claimer.
    pub claims: crate::stream_leases::ClaimWake,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LiveStreams {
    /// The running set, if a stream was ever started.
    pub fn running(&self) -> Option<Arc<Running>> {
        self.running
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every stream's counters now (empty before the first stream).
    pub fn snapshot(&self) -> Vec<StreamReport> {
        self.running().map(|r| r.set.snapshot()).unwrap_or_default()
    }

    /// The Prometheus text of every stream, empty when none ever ran.
    pub fn prometheus(&self) -> String {
        match self.running() {
            Some(r) => {
                let reports = r.set.snapshot();
                let summary: Summary = r.set.summary_now();
                peregrine_live::prometheus_text(&reports, &summary)
            }
            None => String::new(),
        }
    }

    /// A stream's latest analysed picture with its detections.
    pub fn still(&self, name: &str) -> Option<Arc<peregrine_live::Still>> {
        self.running()?.set.still(name)
    }

    pub fn failure(&self, name: &str) -> Option<String> {
        lock(&self.failures).get(name).cloned()
    }

    /// The set for `model`, built on first use. Blocking.
    fn running_for(
        &self,
        st: &AppState,
        model: &std::path::Path,
    ) -> Result<Arc<Running>, ApiError> {
        let check = |r: Arc<Running>| {
            if r.model == model {
                Ok(r)
            } else {
                Err(ApiError::Conflict(format!(
                    "model: this service's streams share one engine, running {}; \
                     every stream must use that model",
                    r.model.display()
                )))
            }
        };
        if let Some(r) = self.running() {
            return check(r);
        }
        let _building = lock(&self.build);
        if let Some(r) = self.running() {
            return check(r);
        }
        // No set is built once the service is stopping (see `shutdown`).
        if st.shutdown.load(Ordering::SeqCst) {
            return Err(ApiError::Unavailable);
        }
        let labels = peregrine_pipeline::model_labels(model).map_err(|_| {
            ApiError::BadRequest("model: its class names file is empty or unreadable".into())
        })?;
        let mut opts = AnalyzeParams::default()
            .resolve_for(labels)
            .map_err(|e| ApiError::BadRequest(format!("params: {e}")))?;
        opts.run.max_pixels = st.config.max_pixels;
        let shutdown = st.shutdown.clone();
        let engine = st
            .engines
            .get(model, None, opts.engine, &|| {
                shutdown.load(Ordering::SeqCst)
            })
            .map_err(|e| ApiError::BadRequest(format!("model: {e}")))?
            .ok_or(ApiError::Unavailable)?;
        let store = peregrine_store::open_run_store(&st.config.db_target(), st.config.db_timeout)?;
        let live = LiveOptions {
            input: LiveInputOptions {
                // Files inside the media roots play as cameras would send
                // them, again and again.
                realtime: true,
                looping: true,
                max_pixels: st.config.max_pixels,
                ..Default::default()
            },
            stills: true,
            ..Default::default()
        };
        let set = LiveSet::start(engine, store, opts.run, live);
        let r = Arc::new(Running {
            set,
            model: model.to_path_buf(),
        });
        *self.running.write().unwrap_or_else(|p| p.into_inner()) = Some(r.clone());
        Ok(r)
    }

    /// Starts analysing a stream. Blocking (the first stream loads the
    /// model).
    pub fn start(&self, st: &AppState, name: &str, s: &StreamSettings) -> Result<(), ApiError> {
        let run = match &s.params {
            Some(p) => {
                let labels = peregrine_pipeline::model_labels(&s.model).map_err(|_| {
                    ApiError::BadRequest(
                        "model: its class names file is empty or unreadable".into(),
                    )
                })?;
                let mut opts = p
                    .resolve_for(labels)
                    .map_err(|e| ApiError::BadRequest(format!("params: {e}")))?;
                opts.run.max_pixels = st.config.max_pixels;
                Some(opts.run)
            }
            None => None,
        };
        let r = self.running_for(st, &s.model)?;
        r.set
            .add_with_run(
                StreamSpec {
                    name: name.to_string(),
                    source: s.source.clone(),
                    fps: s.fps,
                    priority: s.priority,
                    rank: 0,
                    motion_gate: s.motion_gate,
                },
                run,
            )
            .map_err(|e| ApiError::Conflict(e.to_string()))?;
        lock(&self.failures).remove(name);
        Ok(())
    }

    /// Stops a stream and finalises its run. Blocking (joins its threads).
    pub fn stop(&self, name: &str) -> Option<StreamReport> {
        lock(&self.failures).remove(name);
        self.running()?.set.remove(name)
    }

    /// The model of this process's streams' engine, once one is built.
    pub fn model(&self) -> Option<PathBuf> {
        self.running().map(|r| r.model.clone())
    }

    /// Starts every stored stream (at service start, on SQLite; on
    /// PostgreSQL streams are leased instead). Blocking.
    pub fn resume(&self, st: &AppState) {
        if st.config.db_target().is_postgres() {
            return;
        }
        let stored = match Results::open(&st.config.db_target(), st.config.db_timeout)
            .and_then(|s| s.streams())
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the stored streams");
                return;
            }
        };
        for s in stored {
            if st.shutdown.load(Ordering::SeqCst) {
                return;
            }
            // Added meanwhile by a request.
            if self.snapshot().iter().any(|r| r.stream == s.name) {
                continue;
            }
            let started = serde_json::from_value::<StreamSettings>(s.spec)
                .map_err(|e| ApiError::BadRequest(format!("stored settings: {e}")))
                .and_then(|settings| self.start(st, &s.name, &settings));
            match started {
                Ok(()) => tracing::info!(stream = %s.name, "stream resumed"),
                Err(e) => {
                    let why = match &e {
                        ApiError::Internal(d) => d.clone(),
                        other => other.to_string(),
                    };
                    tracing::error!(stream = %s.name, error = %why, "cannot resume stream");
                    lock(&self.failures).insert(s.name.clone(), why);
                }
            }
        }
    }

    /// Stops every stream (each run finalised) and the set. Blocking. Call
    /// once `AppState::shutdown` is set: no set is built after it.
    pub fn shutdown(&self) {
        let _building = lock(&self.build);
        let r = self
            .running
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(r) = r {
            match Arc::try_unwrap(r) {
                Ok(r) => {
                    let _ = r.set.stop();
                }
                // A request still holds it: the last holder's drop stops it.
                Err(r) => drop(r),
            }
        }
    }
}
