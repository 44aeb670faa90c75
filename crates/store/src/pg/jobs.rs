//! The job queue on PostgreSQL, shared by any number of API and worker
//! processes.
//!
//! A worker claims the most urgent due job (priority, then age) with
//! `FOR UPDATE SKIP LOCKED`, so workers never wait on each other's claims,
//! and holds it under a lease (`lease_until`, in the database server's
//! clock) that it renews while the job runs. A job whose lease ran out
//! (its worker was killed or lost) goes back to the queue for another
//! worker, up to `max_attempts` attempts counted at each claim; after that
//! it fails. Every write a worker makes to a running job is conditional on
//! it still holding the job, so a worker that lost its lease can neither
//! complete it nor put it back: a job completes at most once.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use postgres::{Client, Row};
use serde_json::Value;

use super::{PgDb, PgStore};
use crate::jobs::{
    Claimed, JobQueue, JobRecord, JobState, NewJob, Outcome, Progress, Renewal, WorkerRecord,
};
use crate::StoreError;

/// The database server's clock, Unix seconds.
const NOW: &str = "extract(epoch from clock_timestamp())::float8";

const JOB_COLUMNS: &str =
    "id, state, video, model, params, priority, attempts, restarts, progress, \
    fps, frames_done, frames_total, run_id, run_status, cache_hit, timings, error, created_at, \
    started_at, finished_at, spec";

fn job_from_row(r: &Row) -> JobRecord {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    JobRecord {
        id: r.get(0),
        state: JobState::parse(r.get(1)).unwrap_or(JobState::Failed),
        video: r.get(2),
        model: r.get(3),
        params: json(Some(r.get(4))).unwrap_or(Value::Null),
        priority: r.get(5),
        attempts: r.get::<_, i32>(6) as u32,
        restarts: r.get::<_, i32>(7) as u32,
        progress: r.get(8),
        fps: r.get(9),
        frames_done: r.get::<_, i64>(10) as u64,
        frames_total: r.get::<_, i64>(11) as u64,
        run_id: r.get(12),
        run_status: r.get::<_, Option<String>>(13).and_then(|s| s.parse().ok()),
        cache_hit: r.get(14),
        timings: json(r.get(15)),
        error: r.get(16),
        created_at: r.get(17),
        started_at: r.get(18),
        finished_at: r.get(19),
        spec: json(r.get(20)),
    }
}

/// How a process takes part in the queue.
#[derive(Clone, Debug)]
pub struct Membership {
    /// This process's worker id (host, pid and a random part), written on
    /// the jobs it holds.
    pub worker: String,
    /// How long a claimed job stays held without renewal.
    pub lease: Duration,
    /// Attempts before a job whose lease ran out fails.
    pub max_attempts: u32,
}

impl Membership {
    /// A new worker identity for this process.
    pub fn new(lease: Duration, max_attempts: u32) -> Membership {
        let host = hostname();
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Membership {
            worker: format!("{host}:{}:{nonce:08x}", std::process::id()),
            lease,
            max_attempts: max_attempts.max(1),
        }
    }
}

/// This machine's name, as workers are listed.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The queue on one PostgreSQL connection.
pub struct PgJobs {
    db: PgDb,
    conn: Mutex<Client>,
    me: Membership,
}

impl PgJobs {
    /// Connects and migrates (the queue's tables are part of the schema).
    pub fn open(url: &str, timeout: Duration, me: Membership) -> Result<PgJobs, StoreError> {
        let store = PgStore::open(url, timeout)?;
        Ok(PgJobs {
            db: store.db,
            conn: store.conn,
            me,
        })
    }

    pub fn membership(&self) -> &Membership {
        &self.me
    }

    fn client(&self) -> MutexGuard<'_, Client> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, e: postgres::Error) -> StoreError {
        self.db.err(e)
    }

    /// Registers (or refreshes) this worker process with `slots` job
    /// slots; called every heartbeat.
    pub fn heartbeat(&self, slots: u32) -> Result<(), StoreError> {
        self.client()
            .execute(
                &format!(
                    "INSERT INTO workers (id, host, pid, slots, started_at, heartbeat_at) \
                     VALUES ($1, $2, $3, $4, {NOW}, {NOW}) \
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, slots = excluded.slots"
                ),
                &[
                    &self.me.worker,
                    &hostname(),
                    &i64::from(std::process::id()),
                    &(slots as i32),
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Removes this worker from the list (a clean stop).
    pub fn deregister(&self) -> Result<(), StoreError> {
        self.client()
            .execute("DELETE FROM workers WHERE id = $1", &[&self.me.worker])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Removes workers whose last heartbeat is older than `stale`.
    pub fn deregister_stale(&self, stale: Duration) -> Result<(), StoreError> {
        self.client()
            .execute(
                &format!("DELETE FROM workers WHERE heartbeat_at < {NOW} - $1"),
                &[&stale.as_secs_f64()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Jobs whose lease ran out go back to the queue, or fail once they
    /// have had `max_attempts` attempts. Returns (requeued, failed).
    fn expire_leases(&self, c: &mut Client) -> Result<(usize, usize), postgres::Error> {
        let rows = c.query(
            &format!(
                "UPDATE jobs SET \
                   state = CASE WHEN attempts >= $1 THEN 'failed' ELSE 'queued' END, \
                   finished_at = CASE WHEN attempts >= $1 THEN {NOW} END, \
                   error = CASE WHEN attempts >= $1 \
                     THEN 'its worker stopped renewing its lease (' || worker || '); no attempts left' \
                     ELSE 'its worker stopped renewing its lease (' || worker || '); retrying' END, \
                   worker = NULL, lease_until = NULL, progress = 0, frames_done = 0 \
                 WHERE state = 'running' AND lease_until < {NOW} RETURNING state"
            ),
            &[&(self.me.max_attempts as i32)],
        )?;
        let failed = rows
            .iter()
            .filter(|r| r.get::<_, &str>(0) == "failed")
            .count();
        Ok((rows.len() - failed, failed))
    }
}

impl JobQueue for PgJobs {
    fn find_same(&self, key: &str) -> Result<Option<(i64, JobState)>, StoreError> {
        Ok(self
            .client()
            .query_opt(
                "SELECT id, state FROM jobs WHERE job_key = $1 \
                 AND state IN ('queued', 'running', 'done') ORDER BY id DESC LIMIT 1",
                &[&key.as_bytes()],
            )
            .map_err(|e| self.err(e))?
            .map(|r| {
                (
                    r.get(0),
                    JobState::parse(r.get(1)).unwrap_or(JobState::Failed),
                )
            }))
    }

    fn insert(&self, j: &NewJob) -> Result<i64, StoreError> {
        self.client()
            .query_one(
                &format!(
                    "INSERT INTO jobs (state, video, model, params, spec, job_key, priority, created_at) \
                     VALUES ('queued', $1, $2, $3, $4, $5, $6, {NOW}) RETURNING id"
                ),
                &[
                    &j.video,
                    &j.model,
                    &j.params.to_string(),
                    &j.spec.map(Value::to_string),
                    &j.key().into_bytes(),
                    &j.priority,
                ],
            )
            .map(|r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn get(&self, id: i64) -> Result<Option<JobRecord>, StoreError> {
        Ok(self
            .client()
            .query_opt(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"),
                &[&id],
            )
            .map_err(|e| self.err(e))?
            .map(|r| job_from_row(&r)))
    }

    fn list(
        &self,
        state: Option<JobState>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let rows = self
            .client()
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE ($1::text IS NULL OR state = $1) AND id < $2 \
                     ORDER BY id DESC LIMIT $3"
                ),
                &[
                    &state.map(|s| s.as_str()),
                    &before.unwrap_or(i64::MAX),
                    &(limit as i64),
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(job_from_row).collect())
    }

    fn counts(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        let rows = self
            .client()
            .query("SELECT state, count(*) FROM jobs GROUP BY state", &[])
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .filter_map(|r| JobState::parse(r.get(0)).map(|s| (s, r.get::<_, i64>(1) as u64)))
            .collect())
    }

    fn request_cancel(&self, id: i64) -> Result<Option<(JobState, JobState)>, StoreError> {
        let mut c = self.client();
        let e = |e| self.db.err(e);
        let mut tx = c.transaction().map_err(e)?;
        let Some(before) = tx
            .query_opt("SELECT state FROM jobs WHERE id = $1 FOR UPDATE", &[&id])
            .map_err(e)?
            .and_then(|r| JobState::parse(r.get(0)))
        else {
            return Ok(None);
        };
        let after = tx
            .query_one(
                &format!(
                    "UPDATE jobs SET cancel_requested = cancel_requested OR state IN ('queued', 'running'), \
                     state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END, \
                     finished_at = CASE WHEN state = 'queued' THEN {NOW} ELSE finished_at END \
                     WHERE id = $1 RETURNING state"
                ),
                &[&id],
            )
            .map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(JobState::parse(after.get(0)).map(|after| (before, after)))
    }

    fn cancel_requested(&self, id: i64) -> Result<bool, StoreError> {
        self.client()
            .query_one("SELECT cancel_requested FROM jobs WHERE id = $1", &[&id])
            .map(|r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn claim(&self) -> Result<Option<Claimed>, StoreError> {
        let mut c = self.client();
        self.expire_leases(&mut c).map_err(|e| self.db.err(e))?;
        let row = c
            .query_opt(
                &format!(
                    "WITH next AS ( \
                       SELECT id FROM jobs WHERE state = 'queued' AND not_before <= {NOW} \
                       ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                     UPDATE jobs j SET state = 'running', attempts = attempts + 1, started_at = {NOW}, \
                       worker = $1, lease_until = {NOW} + $2, progress = 0, frames_done = 0, error = NULL \
                     FROM next WHERE j.id = next.id \
                     RETURNING j.id, j.video, j.model, j.params, j.attempts, j.spec"
                ),
                &[&self.me.worker, &self.me.lease.as_secs_f64()],
            )
            .map_err(|e| self.db.err(e))?;
        Ok(row.map(|r| {
            let json = |s: &str| serde_json::from_str(s).unwrap_or(Value::Null);
            Claimed {
                id: r.get(0),
                video: r.get(1),
                model: r.get(2),
                params: json(r.get(3)),
                attempts: r.get::<_, i32>(4) as u32,
                spec: r.get::<_, Option<&str>>(5).map(json),
            }
        }))
    }

    fn next_due_in(&self) -> Result<Option<f64>, StoreError> {
        self.client()
            .query_one(
                &format!(
                    "SELECT greatest(min(not_before) - {NOW}, 0) FROM jobs WHERE state = 'queued'"
                ),
                &[],
            )
            .map(|r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Recorded only while this worker holds the job: after its lease ran
    /// out the job is someone else's, and this attempt leaves no trace.
    fn finish(&self, id: i64, o: &Outcome) -> Result<(), StoreError> {
        let me = &self.me.worker;
        let held = "WHERE id = $1 AND state = 'running' AND worker = $2";
        let mut c = self.client();
        let r = match o {
            Outcome::Done {
                run_id,
                run_status,
                cache_hit,
                fps,
                frames,
                timings,
            } => c.execute(
                &format!(
                    "UPDATE jobs SET state = 'done', run_id = $3, run_status = $4, cache_hit = $5, \
                     fps = $6, frames_done = $7, frames_total = $7, progress = 1, timings = $8, error = NULL, \
                     finished_at = {NOW}, worker = NULL, lease_until = NULL {held}"
                ),
                &[
                    &id,
                    me,
                    run_id,
                    &run_status.as_str(),
                    cache_hit,
                    fps,
                    &(*frames as i64),
                    &timings.to_string(),
                ],
            ),
            Outcome::Failed { run_id, error } => c.execute(
                &format!(
                    "UPDATE jobs SET state = 'failed', run_id = $3, error = $4, finished_at = {NOW}, \
                     worker = NULL, lease_until = NULL {held}"
                ),
                &[&id, me, run_id, error],
            ),
            Outcome::Cancelled { run_id } => c.execute(
                &format!(
                    "UPDATE jobs SET state = 'cancelled', run_id = $3, finished_at = {NOW}, \
                     worker = NULL, lease_until = NULL {held}"
                ),
                &[&id, me, run_id],
            ),
            Outcome::Retry { error, delay } => c.execute(
                &format!(
                    "UPDATE jobs SET state = 'queued', error = $3, not_before = {NOW} + $4, progress = 0, \
                     worker = NULL, lease_until = NULL {held}"
                ),
                &[&id, me, error, &delay.as_secs_f64()],
            ),
            Outcome::Requeue => c.execute(
                &format!(
                    "UPDATE jobs SET state = 'queued', attempts = greatest(attempts - 1, 0), progress = 0, \
                     worker = NULL, lease_until = NULL {held}"
                ),
                &[&id, me],
            ),
        };
        r.map(drop).map_err(|e| self.db.err(e))
    }

    /// Leases are the restart policy here: jobs of workers that stopped
    /// renewing go back to the queue (or fail after `max_attempts`).
    fn recover_orphans(&self) -> Result<(usize, usize), StoreError> {
        let mut c = self.client();
        self.expire_leases(&mut c).map_err(|e| self.db.err(e))
    }

    fn leased(&self) -> bool {
        true
    }

    fn renew(&self, id: i64, p: &Progress) -> Result<Renewal, StoreError> {
        let progress = if p.frames_total > 0 {
            (p.frames_done as f64 / p.frames_total as f64).clamp(0.0, 0.99)
        } else {
            0.0
        };
        let row = self
            .client()
            .query_opt(
                &format!(
                    "UPDATE jobs SET lease_until = {NOW} + $3, frames_done = $4, frames_total = $5, \
                     fps = $6, progress = $7 \
                     WHERE id = $1 AND state = 'running' AND worker = $2 RETURNING cancel_requested"
                ),
                &[
                    &id,
                    &self.me.worker,
                    &self.me.lease.as_secs_f64(),
                    &(p.frames_done as i64),
                    &(p.frames_total as i64),
                    &p.fps,
                    &progress,
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(match row {
            Some(r) => Renewal {
                held: true,
                cancel: r.get(0),
            },
            None => Renewal {
                held: false,
                cancel: false,
            },
        })
    }

    fn workers(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        let rows = self
            .client()
            .query(
                &format!(
                    "SELECT w.id, w.host, w.pid, w.slots, w.started_at, w.heartbeat_at, {NOW} - w.heartbeat_at, \
                     coalesce(array_agg(j.id ORDER BY j.id) FILTER (WHERE j.id IS NOT NULL), '{{}}'), \
                     array(SELECT s.name FROM streams s WHERE s.owner = w.id AND s.lease_until >= {NOW} ORDER BY s.name) \
                     FROM workers w LEFT JOIN jobs j ON j.worker = w.id AND j.state = 'running' \
                     GROUP BY w.id ORDER BY w.started_at, w.id"
                ),
                &[],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| WorkerRecord {
                id: r.get(0),
                host: r.get(1),
                pid: r.get(2),
                slots: r.get::<_, i32>(3) as u32,
                started_at: r.get(4),
                heartbeat_at: r.get(5),
                heartbeat_age_s: r.get(6),
                jobs: r.get(7),
                streams: r.get(8),
            })
            .collect())
    }
}
