//! Live streams across processes sharing a PostgreSQL database: every
//! process with workers (`peregrine worker`, `serve --workers N` with
//! N > 0) claims stored streams under a lease and runs the ones it holds
//! on its [`crate::streams::LiveStreams`], as jobs are claimed.
//!
//! Two threads per process: the *claimer* takes a stream nobody holds
//! (or whose lease ran out) about once a second, up to this process's
//! share, and starts it (the first loads the model); the *renewer* renews
//! the leases of every stream this process holds each
//! [`RENEW_EVERY`], stores their counters and latest picture, and stops a
//! stream whose row is gone (deleted) or whose lease another process took
//! over. Kept apart so a slow start never delays a renewal. A process
//! killed -9 stops renewing; its streams are claimed by another process
//! within [`STREAM_LEASE`] plus a claim tick and a start, under 10 s.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use peregrine_live::StreamState;
use peregrine_store::{DbTarget, PgStore};

use crate::error::ApiError;
use crate::state::AppState;
use crate::streams::StreamSettings;

/// How long a stream stays held without renewal.
pub const STREAM_LEASE: Duration = Duration::from_secs(4);
/// How often the holder renews (and reports counters).
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How often an idle process looks for a stream to claim.
pub const CLAIM_EVERY: Duration = Duration::from_secs(1);
/// Most streams one process runs (they share its engine).
pub const MAX_STREAMS: u32 = 16;
/// A worker counts towards the share of streams while its heartbeat (one
/// a second) is this recent. Shorter than [`STREAM_LEASE`], so a dead
/// worker no longer holds the survivors to a smaller share by the time its
/// streams' leases run out. Only the balance depends on it: a stream's
/// single owner is the lease's doing.
pub const ALIVE: Duration = Duration::from_secs(3);
/// A stream a process could not start waits this long for the next claim.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);
/// A stream's picture is stored at most this often.
const STILL_EVERY: Duration = Duration::from_secs(2);

/// What the claimer shares with the rest of the process: a wake-up (a
/// stream was created here) and the streams it is starting (held in the
/// database, not in the `LiveSet` yet).
#[derive(Default)]
pub struct ClaimWake {
    flag: Mutex<bool>,
    cv: Condvar,
    starting: Mutex<HashSet<String>>,
}

impl ClaimWake {
    fn starting(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.starting.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn notify(&self) {
        if let Ok(mut f) = self.flag.lock() {
            *f = true;
            self.cv.notify_all();
        }
    }

    fn wait(&self, timeout: Duration) {
        let Ok(f) = self.flag.lock() else { return };
        if let Ok((mut f, _)) = self.cv.wait_timeout_while(f, timeout, |f| !*f) {
            *f = false;
        }
    }
}

/// Whether this process runs leased streams: PostgreSQL and workers.
pub fn runs_streams(st: &AppState) -> bool {
    st.config.db_target().is_postgres() && st.config.workers > 0
}

/// Sleeps `d` in short naps, returning early at shutdown.
fn nap(st: &AppState, d: Duration) {
    let until = Instant::now() + d;
    while !st.shutdown.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// A connection, reopened after a failure.
struct Conn {
    url: String,
    timeout: Duration,
    store: Option<PgStore>,
}

impl Conn {
    fn get(&mut self) -> Option<&PgStore> {
        if self.store.is_none() {
            match PgStore::open(&self.url, self.timeout) {
                Ok(s) => self.store = Some(s),
                Err(e) => tracing::warn!(error = %e, "streams: cannot connect"),
            }
        }
        self.store.as_ref()
    }

    fn failed(&mut self, what: &str, e: &dyn std::fmt::Display) {
        tracing::warn!(error = %e, "streams: {what} failed");
        self.store = None;
    }
}

/// Starts the claimer and the renewer (PostgreSQL with workers only).
pub fn start(st: &AppState) -> Result<Vec<JoinHandle<()>>, std::io::Error> {
    let DbTarget::Postgres(url) = st.config.db_target() else {
        return Ok(Vec::new());
    };
    if !runs_streams(st) {
        return Ok(Vec::new());
    }
    let conn = |url: &str| Conn {
        url: url.to_owned(),
        timeout: st.config.db_timeout,
        store: None,
    };
    let (s1, c1) = (st.clone(), conn(&url));
    let claimer = std::thread::Builder::new()
        .name("stream-claim".into())
        .spawn(move || claim_loop(&s1, c1))?;
    let (s2, c2) = (st.clone(), conn(&url));
    let renewer = std::thread::Builder::new()
        .name("stream-lease".into())
        .spawn(move || renew_loop(&s2, c2))?;
    Ok(vec![claimer, renewer])
}

fn claim_loop(st: &AppState, mut conn: Conn) {
    let me = st.membership.worker.clone();
    while !st.shutdown.load(Ordering::SeqCst) {
        let model = st.streams.model().map(|m| m.to_string_lossy().into_owned());
        // `starting` is held from the claim until the claimed name is in it
        // (see the renewer's check for orphans).
        let mut starting = st.streams.claims.starting();
        let claimed = match conn.get() {
            Some(s) => s.claim_stream(&me, STREAM_LEASE, model.as_deref(), MAX_STREAMS, ALIVE),
            None => {
                drop(starting);
                nap(st, CLAIM_EVERY);
                continue;
            }
        };
        if let Ok(Some(c)) = &claimed {
            starting.insert(c.stream.name.clone());
        }
        drop(starting);
        let claim = match claimed {
            Ok(Some(c)) => c,
            Ok(None) => {
                st.streams.claims.wait(CLAIM_EVERY);
                continue;
            }
            Err(e) => {
                conn.failed("claim", &e);
                nap(st, CLAIM_EVERY);
                continue;
            }
        };
        let name = claim.stream.name.clone();
        tracing::info!(
            stream = %name,
            previous = claim.previous_owner.as_deref().unwrap_or("-"),
            claims = claim.claims,
            "stream claimed"
        );
        let started = serde_json::from_value::<StreamSettings>(claim.stream.spec)
            .map_err(|e| ApiError::BadRequest(format!("stored settings: {e}")))
            .and_then(|settings| st.streams.start(st, &name, &settings));
        st.streams.claims.starting().remove(&name);
        if let Err(e) = started {
            let why = match &e {
                ApiError::Internal(d) => d.clone(),
                other => other.to_string(),
            };
            tracing::error!(stream = %name, error = %why, "cannot start claimed stream");
            if let Some(s) = conn.get() {
                if let Err(e) = s.release_stream(&name, &me, Some(&why), RETRY_AFTER) {
                    conn.failed("release", &e);
                }
            }
        }
    }
}

fn renew_loop(st: &AppState, mut conn: Conn) {
    let me = st.membership.worker.clone();
    // When each stream's picture was last stored, and which frame it was.
    let mut stills: HashMap<String, (Instant, u64)> = HashMap::new();
    while !st.shutdown.load(Ordering::SeqCst) {
        let t0 = Instant::now();
        let Some(s) = conn.get() else {
            nap(st, RENEW_EVERY);
            continue;
        };
        // What runs here, read before the renewal: a stream the claimer
        // starts meanwhile is held, and is not mistaken for a lost one.
        let local = st.streams.snapshot();
        let held: HashSet<String> = match s.renew_streams(&me, STREAM_LEASE) {
            Ok(h) => h.into_iter().collect(),
            Err(e) => {
                conn.failed("renewal", &e);
                nap(st, RENEW_EVERY);
                continue;
            }
        };
        // A failed write: the connection is reopened once `s` is done with.
        let mut failed: Option<(&str, peregrine_store::StoreError)> = None;
        for report in &local {
            let name = &report.stream;
            if !held.contains(name) {
                // Deleted, or taken over after this process lost its lease.
                tracing::warn!(stream = %name, "stream no longer held here; stopping it");
                st.streams.stop(name);
                stills.remove(name);
                continue;
            }
            if matches!(report.state, StreamState::Stopped | StreamState::Failed) {
                // Ended here (its run refused by the store, say): let go,
                // so it is started again on a new run, here or elsewhere.
                let why = report
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("the stream {}", report.state.as_str()));
                tracing::warn!(stream = %name, error = %why, "stream ended; letting it go");
                st.streams.stop(name);
                stills.remove(name);
                if let Err(e) = s.release_stream(name, &me, Some(&why), RETRY_AFTER) {
                    failed = Some(("release", e));
                    break;
                }
                continue;
            }
            let still = st.streams.still(name).and_then(|still| {
                let due = stills
                    .get(name)
                    .is_none_or(|(at, index)| at.elapsed() >= STILL_EVERY && *index != still.index);
                if !due {
                    return None;
                }
                stills.insert(name.clone(), (Instant::now(), still.index));
                still.jpeg().ok()
            });
            let json = serde_json::to_value(report).unwrap_or_default();
            if let Err(e) = s.report_stream(name, &me, &json, still.as_deref()) {
                failed = Some(("report", e));
                break;
            }
        }
        if failed.is_none() {
            // Held but neither running nor being started here (a start
            // whose failure could not be recorded): let go of it. The
            // claimer holds `starting` from its claim until the name is in
            // it, so a stream claimed since the renewal is never taken for
            // an orphan.
            let starting = st.streams.claims.starting();
            let running: HashSet<String> = st
                .streams
                .snapshot()
                .into_iter()
                .map(|r| r.stream)
                .collect();
            for name in held
                .iter()
                .filter(|n| !running.contains(*n) && !starting.contains(*n))
            {
                tracing::warn!(stream = %name, "held but not running here; letting it go");
                if let Err(e) = s.release_stream(name, &me, None, Duration::ZERO) {
                    failed = Some(("release", e));
                    break;
                }
            }
        }
        if let Some((what, e)) = failed {
            conn.failed(what, &e);
        }
        stills.retain(|n, _| held.contains(n));
        nap(st, RENEW_EVERY.saturating_sub(t0.elapsed()));
    }
    // A clean stop finalises this process's runs, then lets go at once, so
    // another process takes the streams over without waiting for the
    // leases to run out.
    st.streams.shutdown();
    if let Some(s) = conn.get() {
        for name in s.renew_streams(&me, STREAM_LEASE).unwrap_or_default() {
            let _ = s.release_stream(&name, &me, None, Duration::ZERO);
        }
    }
}
