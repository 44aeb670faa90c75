//! The job queue lives in the same SQLite file as the results (tables
//! created here, not in `peregrine-store`), so a queued job survives a
//! restart with no second system to run. Connections are pooled: each
//! pooled entry holds a `Store` (results) and a raw connection (jobs).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peregrine_store::Store;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;

const JOBS_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS jobs (
    id               INTEGER PRIMARY KEY,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    video            TEXT NOT NULL,
    model            TEXT NOT NULL,
    params           TEXT NOT NULL,
    job_key          TEXT NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    restarts         INTEGER NOT NULL DEFAULT 0,
    not_before       REAL NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    owner_pid        INTEGER,
    progress         REAL NOT NULL DEFAULT 0,
    fps              REAL,
    frames_done      INTEGER NOT NULL DEFAULT 0,
    frames_total     INTEGER NOT NULL DEFAULT 0,
    run_id           INTEGER,
    run_status       TEXT,
    cache_hit        INTEGER NOT NULL DEFAULT 0,
    timings          TEXT,
    error            TEXT,
    created_at       REAL NOT NULL,
    started_at       REAL,
    finished_at      REAL
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(state, priority DESC, id);
CREATE INDEX IF NOT EXISTS jobs_key ON jobs(job_key, state);
"#;

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Job lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|j| j.as_str() == s)
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

/// A job as stored.
#[derive(Clone, Debug)]
pub struct JobRecord {
    pub id: i64,
    pub state: JobState,
    pub video: String,
    pub model: String,
    pub params: Value,
    pub priority: i64,
    pub attempts: u32,
    pub restarts: u32,
    pub progress: f64,
    pub fps: Option<f64>,
    pub frames_done: u64,
    pub frames_total: u64,
    pub run_id: Option<i64>,
    pub run_status: Option<String>,
    pub cache_hit: bool,
    pub timings: Option<Value>,
    pub error: Option<String>,
    pub created_at: f64,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
}

const JOB_COLUMNS: &str =
    "id, state, video, model, params, priority, attempts, restarts, progress, \
    fps, frames_done, frames_total, run_id, run_status, cache_hit, timings, error, created_at, \
    started_at, finished_at";

fn job_from_row(r: &Row) -> rusqlite::Result<JobRecord> {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    Ok(JobRecord {
        id: r.get(0)?,
        state: JobState::parse(&r.get::<_, String>(1)?).unwrap_or(JobState::Failed),
        video: r.get(2)?,
        model: r.get(3)?,
        params: json(Some(r.get(4)?)).unwrap_or(Value::Null),
        priority: r.get(5)?,
        attempts: r.get(6)?,
        restarts: r.get(7)?,
        progress: r.get(8)?,
        fps: r.get(9)?,
        frames_done: r.get::<_, i64>(10)? as u64,
        frames_total: r.get::<_, i64>(11)? as u64,
        run_id: r.get(12)?,
        run_status: r.get(13)?,
        cache_hit: r.get::<_, i64>(14)? != 0,
        timings: json(r.get(15)?),
        error: r.get(16)?,
        created_at: r.get(17)?,
        started_at: r.get(18)?,
        finished_at: r.get(19)?,
    })
}

/// A job to insert.
pub struct NewJob<'a> {
    pub video: &'a str,
    pub model: &'a str,
    pub params: &'a Value,
    pub priority: i64,
    /// Content fingerprints of the video and the model files as submitted,
    /// so a file replaced under the same name is a new job.
    pub video_hash: &'a str,
    pub model_hash: &'a str,
}

impl NewJob<'_> {
    /// Identical video + model (path and content) + parameters share a key.
    pub fn key(&self) -> String {
        format!(
            "v2\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
            self.video, self.video_hash, self.model, self.model_hash, self.params
        )
    }
}

/// A claimed job, handed to a worker.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: i64,
    pub video: String,
    pub model: String,
    pub params: Value,
    pub attempts: u32,
}

/// How a finished attempt is recorded.
pub enum Outcome<'a> {
    Done {
        run_id: Option<i64>,
        run_status: &'a str,
        cache_hit: bool,
        fps: f64,
        frames: u64,
        timings: &'a Value,
    },
    Failed {
        run_id: Option<i64>,
        error: &'a str,
    },
    Cancelled {
        run_id: Option<i64>,
    },
    /// Back to the queue, not before `delay` from now.
    Retry {
        error: &'a str,
        delay: Duration,
    },
    /// Service shut down mid-run: queued again, attempt not counted.
    Requeue,
}

/// Job queries on one raw connection.
pub struct Jobs<'c>(pub &'c Connection);

impl Jobs<'_> {
    pub fn open(path: &Path, timeout: Duration) -> rusqlite::Result<Connection> {
        let c = Connection::open(path)?;
        c.busy_timeout(timeout)?;
        c.pragma_update(None, "journal_mode", "WAL")?;
        c.pragma_update(None, "synchronous", "NORMAL")?;
        c.execute_batch(JOBS_SCHEMA)?;
        Ok(c)
    }

    /// An existing live or finished job with the same key.
    pub fn find_same(&self, key: &str) -> rusqlite::Result<Option<(i64, JobState)>> {
        self.0
            .query_row(
                "SELECT id, state FROM jobs WHERE job_key = ?1 \
                 AND state IN ('queued', 'running', 'done') ORDER BY id DESC LIMIT 1",
                [key],
                |r| Ok((r.get(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map(|o| o.map(|(id, s)| (id, JobState::parse(&s).unwrap_or(JobState::Failed))))
    }

    pub fn insert(&self, j: &NewJob) -> rusqlite::Result<i64> {
        self.0.execute(
            "INSERT INTO jobs (state, video, model, params, job_key, priority, created_at) \
             VALUES ('queued', ?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                j.video,
                j.model,
                j.params.to_string(),
                j.key(),
                j.priority,
                now()
            ],
        )?;
        Ok(self.0.last_insert_rowid())
    }

    pub fn get(&self, id: i64) -> rusqlite::Result<Option<JobRecord>> {
        let mut st = self
            .0
            .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?;
        st.query_row([id], job_from_row).optional()
    }

    /// Newest first; keyset on id.
    pub fn list(
        &self,
        state: Option<JobState>,
        before: Option<i64>,
        limit: usize,
    ) -> rusqlite::Result<Vec<JobRecord>> {
        let mut st = self.0.prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE (?1 IS NULL OR state = ?1) AND id < ?2 \
             ORDER BY id DESC LIMIT ?3"
        ))?;
        let rows = st
            .query_map(
                params![
                    state.map(|s| s.as_str()),
                    before.unwrap_or(i64::MAX),
                    limit as i64
                ],
                job_from_row,
            )?
            .collect();
        rows
    }

    pub fn counts(&self) -> rusqlite::Result<Vec<(JobState, u64)>> {
        let mut st = self
            .0
            .prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .filter_map(|r| match r {
                Ok((s, n)) => JobState::parse(&s).map(|s| Ok((s, n as u64))),
                Err(e) => Some(Err(e)),
            })
            .collect();
        rows
    }

    /// Marks a queued job cancelled at once, or flags a running one (the
    /// worker then stops it). Returns the state before and after.
    pub fn request_cancel(&self, id: i64) -> rusqlite::Result<Option<(JobState, JobState)>> {
        let state = |c: &Connection| {
            c.query_row("SELECT state FROM jobs WHERE id = ?1", [id], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map(|o| o.and_then(|s| JobState::parse(&s)))
        };
        let Some(before) = state(self.0)? else {
            return Ok(None);
        };
        self.0.execute(
            "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND state IN ('queued', 'running')",
            [id],
        )?;
        self.0.execute(
            "UPDATE jobs SET state = 'cancelled', finished_at = ?2 WHERE id = ?1 AND state = 'queued'",
            params![id, now()],
        )?;
        Ok(state(self.0)?.map(|after| (before, after)))
    }

    pub fn cancel_requested(&self, id: i64) -> rusqlite::Result<bool> {
        self.0.query_row(
            "SELECT cancel_requested FROM jobs WHERE id = ?1",
            [id],
            |r| r.get::<_, i64>(0).map(|v| v != 0),
        )
    }

    /// Takes the most urgent queued job whose backoff has passed.
    pub fn claim(&self) -> rusqlite::Result<Option<Claimed>> {
        let t = now();
        self.0
            .query_row(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?1, \
                   owner_pid = ?2, progress = 0, frames_done = 0, error = NULL \
                 WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND not_before <= ?1 \
                             ORDER BY priority DESC, id LIMIT 1) \
                 RETURNING id, video, model, params, attempts",
                params![t, std::process::id()],
                |r| {
                    Ok(Claimed {
                        id: r.get(0)?,
                        video: r.get(1)?,
                        model: r.get(2)?,
                        params: serde_json::from_str(&r.get::<_, String>(3)?)
                            .unwrap_or(Value::Null),
                        attempts: r.get(4)?,
                    })
                },
            )
            .optional()
    }

    /// Seconds until the earliest backed-off job becomes due.
    pub fn next_due_in(&self) -> rusqlite::Result<Option<f64>> {
        self.0
            .query_row(
                "SELECT MIN(not_before) FROM jobs WHERE state = 'queued'",
                [],
                |r| r.get::<_, Option<f64>>(0),
            )
            .map(|o| o.map(|t| (t - now()).max(0.0)))
    }

    pub fn finish(&self, id: i64, o: &Outcome) -> rusqlite::Result<()> {
        let t = now();
        match o {
            Outcome::Done {
                run_id,
                run_status,
                cache_hit,
                fps,
                frames,
                timings,
            } => self.0.execute(
                "UPDATE jobs SET state = 'done', run_id = ?2, run_status = ?3, cache_hit = ?4, \
                 fps = ?5, frames_done = ?6, frames_total = ?6, progress = 1, timings = ?7, error = NULL, finished_at = ?8 \
                 WHERE id = ?1",
                params![id, run_id, run_status, *cache_hit as i64, fps, *frames as i64, timings.to_string(), t],
            )?,
            Outcome::Failed { run_id, error } => self.0.execute(
                "UPDATE jobs SET state = 'failed', run_id = ?2, error = ?3, finished_at = ?4 WHERE id = ?1",
                params![id, run_id, error, t],
            )?,
            Outcome::Cancelled { run_id } => self.0.execute(
                "UPDATE jobs SET state = 'cancelled', run_id = ?2, finished_at = ?3 WHERE id = ?1",
                params![id, run_id, t],
            )?,
            Outcome::Retry { error, delay } => self.0.execute(
                "UPDATE jobs SET state = 'queued', error = ?2, not_before = ?3, progress = 0 WHERE id = ?1",
                params![id, error, t + delay.as_secs_f64()],
            )?,
            Outcome::Requeue => self.0.execute(
                "UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0), progress = 0 \
                 WHERE id = ?1",
                [id],
            )?,
        };
        Ok(())
    }

    /// Restart policy for jobs left `running` by a process that is gone
    /// (killed, crashed, power loss): the first time, the job is queued
    /// again; if it was already retried after a restart, it fails.
    /// Returns (requeued, failed).
    pub fn recover_orphans(&self) -> rusqlite::Result<(usize, usize)> {
        let me = std::process::id() as i64;
        let orphans: Vec<(i64, u32)> = {
            let mut st = self
                .0
                .prepare("SELECT id, restarts, owner_pid FROM jobs WHERE state = 'running'")?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, u32>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .filter(|(_, _, pid)| pid.is_none_or(|p| p == me || !process_alive(p)))
                .map(|(id, restarts, _)| (id, restarts))
                .collect()
        };
        let (mut requeued, mut failed) = (0, 0);
        for (id, restarts) in orphans {
            if restarts == 0 {
                self.0.execute(
                    "UPDATE jobs SET state = 'queued', restarts = 1, progress = 0, frames_done = 0, \
                     error = 'interrupted by a service restart; retrying once' WHERE id = ?1",
                    [id],
                )?;
                requeued += 1;
            } else {
                self.0.execute(
                    "UPDATE jobs SET state = 'failed', finished_at = ?2, \
                     error = 'interrupted by a service restart again; not retried' WHERE id = ?1",
                    params![id, now()],
                )?;
                failed += 1;
            }
        }
        Ok((requeued, failed))
    }
}

pub(crate) fn process_alive(pid: i64) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// One pooled pair of connections.
pub struct Conns {
    pub store: Store,
    pub jobs: Connection,
}

/// A small connection pool; callers bound concurrency with a semaphore, so
/// the pool never holds more idle entries than that.
pub struct Pool {
    path: PathBuf,
    timeout: Duration,
    idle: Mutex<Vec<Conns>>,
}

pub struct PooledConns<'p> {
    pool: &'p Pool,
    conns: Option<Conns>,
}

impl std::ops::Deref for PooledConns<'_> {
    type Target = Conns;
    fn deref(&self) -> &Conns {
        self.conns.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for PooledConns<'_> {
    fn deref_mut(&mut self) -> &mut Conns {
        self.conns.as_mut().expect("present until drop")
    }
}

impl Drop for PooledConns<'_> {
    fn drop(&mut self) {
        if let (Some(c), Ok(mut idle)) = (self.conns.take(), self.pool.idle.lock()) {
            idle.push(c);
        }
    }
}

impl Pool {
    pub fn new(path: &Path, timeout: Duration) -> Pool {
        Pool {
            path: path.to_path_buf(),
            timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn open(&self) -> Result<Conns, ApiError> {
        let store = Store::open_with_timeout(&self.path, self.timeout)?;
        store.map_for_reads()?;
        let jobs = Jobs::open(&self.path, self.timeout)?;
        Ok(Conns { store, jobs })
    }

    pub fn get(&self) -> Result<PooledConns<'_>, ApiError> {
        let reused = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conns = match reused {
            Some(c) => c,
            None => self.open()?,
        };
        Ok(PooledConns {
            pool: self,
            conns: Some(conns),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> (tempfile::TempDir, Connection) {
        let d = tempfile::tempdir().unwrap();
        let c = Jobs::open(&d.path().join("j.db"), Duration::from_secs(1)).unwrap();
        (d, c)
    }

    fn job(video: &str, priority: i64) -> (String, Value, i64) {
        (video.to_string(), serde_json::json!({}), priority)
    }

    #[test]
    fn claims_by_priority_then_age() {
        let (_d, c) = conn();
        let j = Jobs(&c);
        let mut ids = vec![];
        for (v, p, pr) in [job("a", 0), job("b", 5), job("c", 5)] {
            ids.push(
                j.insert(&NewJob {
                    video: &v,
                    model: "m",
                    params: &p,
                    priority: pr,
                    video_hash: "h",
                    model_hash: "m",
                })
                .unwrap(),
            );
        }
        let order: Vec<i64> = (0..3).map(|_| j.claim().unwrap().unwrap().id).collect();
        assert_eq!(order, vec![ids[1], ids[2], ids[0]]);
        assert!(j.claim().unwrap().is_none());
    }

    #[test]
    fn retry_waits_for_backoff() {
        let (_d, c) = conn();
        let j = Jobs(&c);
        let p = serde_json::json!({});
        let id = j
            .insert(&NewJob {
                video: "v",
                model: "m",
                params: &p,
                priority: 0,
                video_hash: "h",
                model_hash: "m",
            })
            .unwrap();
        assert_eq!(j.claim().unwrap().unwrap().attempts, 1);
        j.finish(
            id,
            &Outcome::Retry {
                error: "locked",
                delay: Duration::from_secs(60),
            },
        )
        .unwrap();
        assert!(j.claim().unwrap().is_none(), "claimed before its backoff");
        assert!(j.next_due_in().unwrap().unwrap() > 50.0);
    }

    #[test]
    fn orphaned_running_jobs_are_retried_once_then_failed() {
        let (_d, c) = conn();
        let j = Jobs(&c);
        let p = serde_json::json!({});
        let id = j
            .insert(&NewJob {
                video: "v",
                model: "m",
                params: &p,
                priority: 0,
                video_hash: "h",
                model_hash: "m",
            })
            .unwrap();
        j.claim().unwrap().unwrap();
        // A pid that cannot be alive.
        c.execute("UPDATE jobs SET owner_pid = 2147483647", [])
            .unwrap();
        assert_eq!(j.recover_orphans().unwrap(), (1, 0));
        assert_eq!(j.get(id).unwrap().unwrap().state, JobState::Queued);
        j.claim().unwrap().unwrap();
        c.execute("UPDATE jobs SET owner_pid = 2147483647", [])
            .unwrap();
        assert_eq!(j.recover_orphans().unwrap(), (0, 1));
        assert_eq!(j.get(id).unwrap().unwrap().state, JobState::Failed);
    }

    #[test]
    fn running_jobs_of_a_live_process_are_left_alone() {
        let (_d, c) = conn();
        let j = Jobs(&c);
        let p = serde_json::json!({});
        j.insert(&NewJob {
            video: "v",
            model: "m",
            params: &p,
            priority: 0,
            video_hash: "h",
            model_hash: "m",
        })
        .unwrap();
        j.claim().unwrap().unwrap();
        // pid 1 is always alive and is not us.
        c.execute("UPDATE jobs SET owner_pid = 1", []).unwrap();
        assert_eq!(j.recover_orphans().unwrap(), (0, 0));
    }
}
