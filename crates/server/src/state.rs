//! Shared service state.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use peregrine_core::Labels;
use peregrine_store::pg::Membership;
use peregrine_store::Results;
use tokio::sync::{broadcast, Semaphore};

use crate::config::Config;
use crate::db::{Conns, Pool};
use crate::engines::Engines;
use crate::error::ApiError;
use crate::jobs::{JobEvents, LiveJob, Wake};
use crate::metrics::Metrics;
use crate::streams::LiveStreams;

/// Database work running at once from request handlers (each holds a
/// pooled connection on a blocking thread); more requests wait their turn.
const DB_CONCURRENCY: usize = 16;
/// FFmpeg work done for requests at once: frame images rendered for the
/// frame viewer and videos probed at submission (a decoded frame of a large
/// video is hundreds of MB, so this bounds the memory requests can use).
const MEDIA_CONCURRENCY: usize = 2;
/// Requests that may wait for a media permit; more get 503.
const MEDIA_WAITING: usize = 16;
/// Runs whose class names are kept in memory (COCO runs share one list).
const RUN_LABELS_CACHED: usize = 4096;

pub struct Inner {
    pub config: Config,
    /// This process's identity in a shared (PostgreSQL) queue.
    pub membership: Membership,
    /// When the service started, Unix seconds.
    pub started_at: f64,
    pub pool: Pool,
    pub db_permits: Semaphore,
    pub media_permits: Semaphore,
    media_waiting: std::sync::atomic::AtomicUsize,
    pub live: Mutex<HashMap<i64, Arc<LiveJob>>>,
    pub events: JobEvents,
    pub wake: Wake,
    /// Stops every analysis (shutdown).
    pub shutdown: Arc<AtomicBool>,
    pub metrics: Metrics,
    /// Inference engines shared by the job workers.
    pub engines: Engines,
    /// Live streams, on one engine of [`Inner::engines`].
    pub streams: LiveStreams,
    /// Browser playability of runs' videos and their transcodes.
    pub videos: crate::api::video::VideoCache,
    /// COCO's class names, shared by every run that uses them.
    coco: Arc<Labels>,
    /// Class names of stored runs, by run id (a run's never change).
    run_labels: Mutex<HashMap<i64, Arc<Labels>>>,
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(config: Config) -> AppState {
        let membership = Membership::new(config.lease, config.max_attempts);
        let pool = Pool::new(config.db_target(), config.db_timeout, membership.clone());
        AppState(Arc::new(Inner {
            membership,
            started_at: peregrine_store::jobs::now(),
            pool,
            db_permits: Semaphore::new(DB_CONCURRENCY),
            media_permits: Semaphore::new(MEDIA_CONCURRENCY),
            media_waiting: std::sync::atomic::AtomicUsize::new(0),
            live: Mutex::new(HashMap::new()),
            events: broadcast::channel(1024).0,
            wake: Wake::default(),
            shutdown: Arc::new(AtomicBool::new(false)),
            metrics: Metrics::default(),
            engines: Engines::default(),
            streams: LiveStreams::default(),
            videos: Default::default(),
            coco: Arc::new(Labels::coco()),
            run_labels: Mutex::new(HashMap::new()),
            config,
        }))
    }

    /// The class names run `id` was analysed with (its `labels`, or COCO).
    pub fn labels_of(&self, store: &Results, id: i64) -> Result<Arc<Labels>, ApiError> {
        if let Some(l) = self
            .run_labels
            .lock()
            .ok()
            .and_then(|m| m.get(&id).cloned())
        {
            return Ok(l);
        }
        let l = store.run(id)?.labels();
        let l = if l == *self.coco {
            Arc::clone(&self.coco)
        } else {
            Arc::new(l)
        };
        if let Ok(mut m) = self.run_labels.lock() {
            if m.len() >= RUN_LABELS_CACHED {
                m.clear();
            }
            m.insert(id, Arc::clone(&l));
        }
        Ok(l)
    }

    /// A permit for FFmpeg work on behalf of a request (probe, frame
    /// render); 503 when too many requests already wait for one.
    pub async fn media_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        use std::sync::atomic::Ordering;
        if let Ok(p) = self.media_permits.try_acquire() {
            return Ok(p);
        }
        // Counted while waiting, also when the request goes away meanwhile.
        struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let waiting = Waiting(&self.media_waiting);
        if waiting.0.fetch_add(1, Ordering::SeqCst) >= MEDIA_WAITING {
            return Err(ApiError::Unavailable);
        }
        self.media_permits
            .acquire()
            .await
            .map_err(|_| ApiError::Unavailable)
    }

    pub fn live(&self, id: i64) -> Option<Arc<LiveJob>> {
        self.live.lock().ok().and_then(|m| m.get(&id).cloned())
    }

    pub fn live_insert(&self, id: i64, job: Arc<LiveJob>) {
        if let Ok(mut m) = self.live.lock() {
            m.insert(id, job);
        }
    }

    pub fn live_remove(&self, id: i64) {
        if let Ok(mut m) = self.live.lock() {
            m.remove(&id);
        }
    }

    /// Tells SSE subscribers that job `id` changed.
    pub fn publish(&self, id: i64) {
        let _ = self.events.send(id);
    }

    /// Runs database work on a blocking thread with a pooled connection.
    pub async fn db<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conns) -> Result<T, ApiError> + Send + 'static,
    {
        let _permit = self
            .db_permits
            .acquire()
            .await
            .map_err(|_| ApiError::Unavailable)?;
        let st = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = st.pool.get()?;
            f(&mut c)
        })
        .await
        .map_err(ApiError::internal)?
    }
}
