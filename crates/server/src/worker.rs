//! Processes sharing one PostgreSQL database: `peregrine worker` (job
//! workers without the API), the workers' registration and heartbeat, and
//! the `LISTEN/NOTIFY` bridge that brings every job change made by any
//! process to this one's SSE subscribers and idle workers.

use std::sync::atomic::Ordering;
use std::time::Duration;

use peregrine_store::jobs::JobQueue;
use peregrine_store::pg::{Listener, PgJobs};
use peregrine_store::DbTarget;

use crate::config::{Config, ConfigError};
use crate::state::AppState;
use crate::ServerError;

/// The channel the jobs table's trigger notifies (payload: job id).
pub const JOBS_CHANNEL: &str = "peregrine_jobs";
/// How often a worker process says it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// Workers silent for longer are dropped from the list.
pub const WORKER_STALE: Duration = Duration::from_secs(30);

fn url(state: &AppState) -> Option<String> {
    match state.config.db_target() {
        DbTarget::Postgres(url) => Some(url),
        DbTarget::Sqlite(_) => None,
    }
}

/// Listens for job changes on the shared database, on a thread of its own
/// (reconnecting after a lost connection): each one is published to this
/// process's SSE subscribers and wakes its idle workers.
pub fn listen_for_jobs(state: &AppState) -> Result<(), ServerError> {
    let Some(url) = url(state) else {
        return Ok(());
    };
    let st = state.clone();
    std::thread::Builder::new()
        .name("job-notify".into())
        .spawn(move || {
            let mut listener: Option<Listener> = None;
            while !st.shutdown.load(Ordering::SeqCst) {
                let l = match &mut listener {
                    Some(l) => l,
                    None => match Listener::open(&url, JOBS_CHANNEL, st.config.db_timeout) {
                        Ok(l) => listener.insert(l),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot listen for job changes");
                            std::thread::sleep(Duration::from_secs(1));
                            continue;
                        }
                    },
                };
                match l.wait(Duration::from_millis(500)) {
                    Ok(ids) => {
                        for id in ids.iter().filter_map(|p| p.parse::<i64>().ok()) {
                            st.publish(id);
                        }
                        if !ids.is_empty() {
                            st.wake.notify();
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "job notifications lost; listening again");
                        listener = None;
                    }
                }
            }
        })?;
    Ok(())
}

/// Registers this process's workers and renews the registration every
/// [`HEARTBEAT_EVERY`] until shutdown; drops workers silent for
/// [`WORKER_STALE`].
pub fn start_heartbeat(
    state: &AppState,
) -> Result<Option<std::thread::JoinHandle<()>>, ServerError> {
    let Some(url) = url(state) else {
        return Ok(None);
    };
    if state.config.workers == 0 {
        return Ok(None);
    }
    let st = state.clone();
    let h = std::thread::Builder::new()
        .name("worker-heartbeat".into())
        .spawn(move || {
            let slots = st.config.workers as u32;
            let mut q: Option<PgJobs> = None;
            while !st.shutdown.load(Ordering::SeqCst) {
                if q.is_none() {
                    match PgJobs::open(&url, st.config.db_timeout, st.membership.clone()) {
                        Ok(c) => q = Some(c),
                        Err(e) => tracing::warn!(error = %e, "heartbeat: cannot connect"),
                    }
                }
                if let Some(c) = &q {
                    if let Err(e) = c
                        .heartbeat(slots)
                        .and_then(|()| c.deregister_stale(WORKER_STALE))
                    {
                        tracing::warn!(error = %e, "heartbeat failed");
                        q = None;
                    }
                }
                // Short naps, so a shutdown is not kept waiting.
                for _ in 0..10 {
                    if st.shutdown.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(HEARTBEAT_EVERY / 10);
                }
            }
            if let Some(c) = q {
                let _ = c.deregister();
            }
        })?;
    Ok(Some(h))
}

/// `peregrine worker`: `config.workers` job workers on the PostgreSQL
/// queue and the live streams this process leases
/// ([`crate::stream_leases`]), no HTTP, until Ctrl-C or SIGTERM (running
/// jobs then go back to the queue, streams to the other workers).
pub fn run_worker(config: Config) -> Result<(), ServerError> {
    if !config.db_target().is_postgres() {
        return Err(ConfigError::Invalid {
            setting: "db",
            reason: "peregrine worker needs a PostgreSQL database (postgres://...) shared with the API; \
                     with a SQLite file, `peregrine serve --workers N` runs the jobs"
                .into(),
        }
        .into());
    }
    if config.workers == 0 {
        return Err(ConfigError::Invalid {
            setting: "jobs",
            reason: "must be at least 1".into(),
        }
        .into());
    }
    let target = config.db_target();
    let db_err = |e: peregrine_store::StoreError| ServerError::Database {
        path: target.display_name().into(),
        reason: e.to_string(),
    };
    let state = AppState::new(config);
    let url = url(&state).unwrap_or_default();
    let q =
        PgJobs::open(&url, state.config.db_timeout, state.membership.clone()).map_err(db_err)?;
    let (requeued, failed) = q.recover_orphans().map_err(db_err)?;
    if requeued + failed > 0 {
        tracing::warn!(
            requeued,
            failed,
            "jobs of workers that stopped renewing their lease"
        );
    }
    q.heartbeat(state.config.workers as u32).map_err(db_err)?;
    drop(q);
    listen_for_jobs(&state)?;
    let heartbeat = start_heartbeat(&state)?;
    let workers = crate::jobs::start_workers(&state);
    let streams = crate::stream_leases::start(&state)?;
    tracing::info!(
        worker = %state.membership.worker,
        jobs = state.config.workers,
        db = %target,
        "worker started"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(crate::shutdown_signal());
    state.shutdown.store(true, Ordering::SeqCst);
    state.wake.notify();
    for w in workers.into_iter().chain(streams) {
        let _ = w.join();
    }
    // Streams not stopped by the lease thread (it failed to start).
    state.streams.shutdown();
    if let Some(h) = heartbeat {
        let _ = h.join();
    }
    Ok(())
}
