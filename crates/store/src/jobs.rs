//! The service's durable job queue: the [`JobQueue`] operations and their
//! SQLite implementation, [`SqliteJobs`], in the same file as the results,
//! so a queued job survives a restart with no second system to run. A
//! second engine (PostgreSQL) implements the same trait.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::Value;

use crate::{RunStatus, StoreError};

/// Unix seconds now.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Job lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The parameters as the client gave them (canonical form).
    pub params: Value,
    /// What the worker runs, resolved at submission; `None` for a job
    /// queued by a version that did not write it.
    pub spec: Option<Value>,
    pub priority: i64,
    pub attempts: u32,
    pub restarts: u32,
    pub progress: f64,
    pub fps: Option<f64>,
    pub frames_done: u64,
    pub frames_total: u64,
    pub run_id: Option<i64>,
    pub run_status: Option<RunStatus>,
    pub cache_hit: bool,
    pub timings: Option<Value>,
    pub error: Option<String>,
    pub created_at: f64,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
}

/// A job to insert.
pub struct NewJob<'a> {
    pub video: &'a str,
    pub model: &'a str,
    pub params: &'a Value,
    /// The resolved job, stored for the worker (see [`JobRecord::spec`]).
    pub spec: Option<&'a Value>,
    pub priority: i64,
    /// Content fingerprints of the video and the model files as submitted,
    /// so a file replaced under the same name is a new job. `model_hash`
    /// also covers any other file the job reads beside the model (a class
    /// names file).
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
    pub spec: Option<Value>,
    pub attempts: u32,
}

/// How a finished attempt is recorded.
pub enum Outcome<'a> {
    Done {
        run_id: Option<i64>,
        run_status: RunStatus,
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

/// A running job's progress, as its worker reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Progress {
    pub frames_done: u64,
    pub frames_total: u64,
    pub fps: f64,
}

/// What a worker learns when it renews its hold on a running job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewal {
    /// The worker still holds the job. `false`: its lease ran out and the
    /// job went back to the queue (or to another worker); stop it and
    /// record nothing.
    pub held: bool,
    /// Cancellation was requested.
    pub cancel: bool,
}

/// A worker process as registered with a shared queue.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerRecord {
    pub id: String,
    pub host: String,
    pub pid: i64,
    /// Jobs it runs at once.
    pub slots: u32,
    pub started_at: f64,
    pub heartbeat_at: f64,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_s: f64,
    /// Jobs it holds now.
    pub jobs: Vec<i64>,
    /// Live streams it runs now (their names).
    pub streams: Vec<String>,
}

/// The job queue's operations, whatever holds the queue.
pub trait JobQueue {
    /// An existing live or finished job with the same key.
    fn find_same(&self, key: &str) -> Result<Option<(i64, JobState)>, StoreError>;
    fn insert(&self, job: &NewJob) -> Result<i64, StoreError>;
    fn get(&self, id: i64) -> Result<Option<JobRecord>, StoreError>;
    /// Newest first, before job id `before`, optionally in one state.
    fn list(
        &self,
        state: Option<JobState>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError>;
    /// Jobs per state (states without jobs left out).
    fn counts(&self) -> Result<Vec<(JobState, u64)>, StoreError>;
    /// Marks a queued job cancelled at once, or flags a running one (the
    /// worker then stops it). Returns the state before and after.
    fn request_cancel(&self, id: i64) -> Result<Option<(JobState, JobState)>, StoreError>;
    fn cancel_requested(&self, id: i64) -> Result<bool, StoreError>;
    /// Takes the most urgent queued job whose backoff has passed.
    fn claim(&self) -> Result<Option<Claimed>, StoreError>;
    /// Seconds until the earliest backed-off job becomes due.
    fn next_due_in(&self) -> Result<Option<f64>, StoreError>;
    fn finish(&self, id: i64, outcome: &Outcome) -> Result<(), StoreError>;
    /// Restart policy for jobs left `running` by a process that is gone
    /// (killed, crashed, power loss): the first time, the job is queued
    /// again; if it was already retried after a restart, it fails.
    /// Returns (requeued, failed).
    fn recover_orphans(&self) -> Result<(usize, usize), StoreError>;
    /// Whether running jobs hold a lease their worker must renew
    /// ([`JobQueue::renew`]): a queue shared by processes. A queue used by
    /// one process learns of cancellation in-process.
    fn leased(&self) -> bool {
        false
    }
    /// Extends the worker's lease on running job `id`, records its
    /// progress where other processes read it, and says whether the worker
    /// still holds the job and whether it was asked to cancel.
    fn renew(&self, id: i64, _progress: &Progress) -> Result<Renewal, StoreError> {
        Ok(Renewal {
            held: true,
            cancel: self.cancel_requested(id)?,
        })
    }
    /// Worker processes registered with the queue (none where workers are
    /// threads of the service).
    fn workers(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        Ok(Vec::new())
    }
}

const JOB_COLUMNS: &str =
    "id, state, video, model, params, priority, attempts, restarts, progress, \
    fps, frames_done, frames_total, run_id, run_status, cache_hit, timings, error, created_at, \
    started_at, finished_at, spec";

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
        run_status: r.get::<_, Option<String>>(13)?.and_then(|s| s.parse().ok()),
        cache_hit: r.get::<_, i64>(14)? != 0,
        timings: json(r.get(15)?),
        error: r.get(16)?,
        created_at: r.get(17)?,
        started_at: r.get(18)?,
        finished_at: r.get(19)?,
        spec: json(r.get(20)?),
    })
}

/// The job queue in a SQLite file, on its own connection.
pub struct SqliteJobs {
    conn: Connection,
    path: PathBuf,
}

impl SqliteJobs {
    /// Opens the queue in the database at `path`; writers wait up to
    /// `timeout` for a lock.
    pub fn open(path: &Path, timeout: Duration) -> Result<SqliteJobs, StoreError> {
        let open_err = |e: rusqlite::Error| StoreError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        // The store creates (migrates) the schema, the jobs table included.
        crate::Store::open_with_timeout(path, timeout)?;
        let c = Connection::open(path).map_err(open_err)?;
        c.busy_timeout(timeout).map_err(open_err)?;
        c.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        Ok(SqliteJobs {
            conn: c,
            path: path.to_path_buf(),
        })
    }

    /// Query failures name the database; the queue's callers treat them all
    /// alike (a lock timeout included), so they are not told apart here.
    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::Sql {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    fn state_of(&self, id: i64) -> rusqlite::Result<Option<JobState>> {
        self.conn
            .query_row("SELECT state FROM jobs WHERE id = ?1", [id], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map(|o| o.and_then(|s| JobState::parse(&s)))
    }

    fn request_cancel_sql(&self, id: i64) -> rusqlite::Result<Option<(JobState, JobState)>> {
        let Some(before) = self.state_of(id)? else {
            return Ok(None);
        };
        self.conn.execute(
            "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND state IN ('queued', 'running')",
            [id],
        )?;
        self.conn.execute(
            "UPDATE jobs SET state = 'cancelled', finished_at = ?2 WHERE id = ?1 AND state = 'queued'",
            params![id, now()],
        )?;
        Ok(self.state_of(id)?.map(|after| (before, after)))
    }

    fn finish_sql(&self, id: i64, o: &Outcome) -> rusqlite::Result<usize> {
        let t = now();
        match o {
            Outcome::Done {
                run_id,
                run_status,
                cache_hit,
                fps,
                frames,
                timings,
            } => self.conn.execute(
                "UPDATE jobs SET state = 'done', run_id = ?2, run_status = ?3, cache_hit = ?4, \
                 fps = ?5, frames_done = ?6, frames_total = ?6, progress = 1, timings = ?7, error = NULL, finished_at = ?8 \
                 WHERE id = ?1",
                params![id, run_id, run_status.as_str(), *cache_hit as i64, fps, *frames as i64, timings.to_string(), t],
            ),
            Outcome::Failed { run_id, error } => self.conn.execute(
                "UPDATE jobs SET state = 'failed', run_id = ?2, error = ?3, finished_at = ?4 WHERE id = ?1",
                params![id, run_id, error, t],
            ),
            Outcome::Cancelled { run_id } => self.conn.execute(
                "UPDATE jobs SET state = 'cancelled', run_id = ?2, finished_at = ?3 WHERE id = ?1",
                params![id, run_id, t],
            ),
            Outcome::Retry { error, delay } => self.conn.execute(
                "UPDATE jobs SET state = 'queued', error = ?2, not_before = ?3, progress = 0 WHERE id = ?1",
                params![id, error, t + delay.as_secs_f64()],
            ),
            Outcome::Requeue => self.conn.execute(
                "UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0), progress = 0 \
                 WHERE id = ?1",
                [id],
            ),
        }
    }

    fn recover_orphans_sql(&self) -> rusqlite::Result<(usize, usize)> {
        let me = std::process::id() as i64;
        let orphans: Vec<(i64, u32)> = {
            let mut st = self
                .conn
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
                .filter(|(_, _, pid)| pid.is_none_or(|p| p == me || !crate::pid_alive(p)))
                .map(|(id, restarts, _)| (id, restarts))
                .collect()
        };
        let (mut requeued, mut failed) = (0, 0);
        for (id, restarts) in orphans {
            if restarts == 0 {
                self.conn.execute(
                    "UPDATE jobs SET state = 'queued', restarts = 1, progress = 0, frames_done = 0, \
                     error = 'interrupted by a service restart; retrying once' WHERE id = ?1",
                    [id],
                )?;
                requeued += 1;
            } else {
                self.conn.execute(
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

impl JobQueue for SqliteJobs {
    fn find_same(&self, key: &str) -> Result<Option<(i64, JobState)>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, state FROM jobs WHERE job_key = ?1 \
                 AND state IN ('queued', 'running', 'done') ORDER BY id DESC LIMIT 1",
                [key],
                |r| Ok((r.get(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map(|o| o.map(|(id, s)| (id, JobState::parse(&s).unwrap_or(JobState::Failed))))
            .map_err(|e| self.err(e))
    }

    fn insert(&self, j: &NewJob) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO jobs (state, video, model, params, spec, job_key, priority, created_at) \
                 VALUES ('queued', ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    j.video,
                    j.model,
                    j.params.to_string(),
                    j.spec.map(Value::to_string),
                    j.key(),
                    j.priority,
                    now()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    fn get(&self, id: i64) -> Result<Option<JobRecord>, StoreError> {
        self.conn
            .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))
            .and_then(|mut st| st.query_row([id], job_from_row).optional())
            .map_err(|e| self.err(e))
    }

    fn list(
        &self,
        state: Option<JobState>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE (?1 IS NULL OR state = ?1) AND id < ?2 \
                 ORDER BY id DESC LIMIT ?3"
            ))
            .and_then(|mut st| {
                st.query_map(
                    params![
                        state.map(|s| s.as_str()),
                        before.unwrap_or(i64::MAX),
                        limit as i64
                    ],
                    job_from_row,
                )?
                .collect()
            })
            .map_err(|e| self.err(e))
    }

    fn counts(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        self.conn
            .prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state")
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                    .filter_map(|r| match r {
                        Ok((s, n)) => JobState::parse(&s).map(|s| Ok((s, n as u64))),
                        Err(e) => Some(Err(e)),
                    })
                    .collect()
            })
            .map_err(|e| self.err(e))
    }

    fn request_cancel(&self, id: i64) -> Result<Option<(JobState, JobState)>, StoreError> {
        self.request_cancel_sql(id).map_err(|e| self.err(e))
    }

    fn cancel_requested(&self, id: i64) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT cancel_requested FROM jobs WHERE id = ?1",
                [id],
                |r| r.get::<_, i64>(0).map(|v| v != 0),
            )
            .map_err(|e| self.err(e))
    }

    fn claim(&self) -> Result<Option<Claimed>, StoreError> {
        let t = now();
        self.conn
            .query_row(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?1, \
                   owner_pid = ?2, progress = 0, frames_done = 0, error = NULL \
                 WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND not_before <= ?1 \
                             ORDER BY priority DESC, id LIMIT 1) \
                 RETURNING id, video, model, params, attempts, spec",
                params![t, std::process::id()],
                |r| {
                    let json = |s: String| serde_json::from_str(&s).unwrap_or(Value::Null);
                    Ok(Claimed {
                        id: r.get(0)?,
                        video: r.get(1)?,
                        model: r.get(2)?,
                        params: json(r.get(3)?),
                        attempts: r.get(4)?,
                        spec: r.get::<_, Option<String>>(5)?.map(json),
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn next_due_in(&self) -> Result<Option<f64>, StoreError> {
        self.conn
            .query_row(
                "SELECT MIN(not_before) FROM jobs WHERE state = 'queued'",
                [],
                |r| r.get::<_, Option<f64>>(0),
            )
            .map(|o| o.map(|t| (t - now()).max(0.0)))
            .map_err(|e| self.err(e))
    }

    fn finish(&self, id: i64, outcome: &Outcome) -> Result<(), StoreError> {
        self.finish_sql(id, outcome)
            .map(drop)
            .map_err(|e| self.err(e))
    }

    fn recover_orphans(&self) -> Result<(usize, usize), StoreError> {
        self.recover_orphans_sql().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> (tempfile::TempDir, SqliteJobs) {
        let d = tempfile::tempdir().unwrap();
        let q = SqliteJobs::open(&d.path().join("j.db"), Duration::from_secs(1)).unwrap();
        (d, q)
    }

    fn insert(q: &SqliteJobs, video: &str, priority: i64) -> i64 {
        q.insert(&NewJob {
            video,
            model: "m",
            params: &serde_json::json!({}),
            spec: None,
            priority,
            video_hash: "h",
            model_hash: "m",
        })
        .unwrap()
    }

    #[test]
    fn claims_by_priority_then_age() {
        let (_d, q) = queue();
        let ids: Vec<i64> = [("a", 0), ("b", 5), ("c", 5)]
            .into_iter()
            .map(|(v, p)| insert(&q, v, p))
            .collect();
        let order: Vec<i64> = (0..3).map(|_| q.claim().unwrap().unwrap().id).collect();
        assert_eq!(order, vec![ids[1], ids[2], ids[0]]);
        assert!(q.claim().unwrap().is_none());
    }

    #[test]
    fn retry_waits_for_backoff() {
        let (_d, q) = queue();
        let id = insert(&q, "v", 0);
        assert_eq!(q.claim().unwrap().unwrap().attempts, 1);
        q.finish(
            id,
            &Outcome::Retry {
                error: "locked",
                delay: Duration::from_secs(60),
            },
        )
        .unwrap();
        assert!(q.claim().unwrap().is_none(), "claimed before its backoff");
        assert!(q.next_due_in().unwrap().unwrap() > 50.0);
    }

    #[test]
    fn orphaned_running_jobs_are_retried_once_then_failed() {
        let (_d, q) = queue();
        let id = insert(&q, "v", 0);
        q.claim().unwrap().unwrap();
        // A pid that cannot be alive.
        q.conn
            .execute("UPDATE jobs SET owner_pid = 2147483647", [])
            .unwrap();
        assert_eq!(q.recover_orphans().unwrap(), (1, 0));
        assert_eq!(q.get(id).unwrap().unwrap().state, JobState::Queued);
        q.claim().unwrap().unwrap();
        q.conn
            .execute("UPDATE jobs SET owner_pid = 2147483647", [])
            .unwrap();
        assert_eq!(q.recover_orphans().unwrap(), (0, 1));
        assert_eq!(q.get(id).unwrap().unwrap().state, JobState::Failed);
    }

    #[test]
    fn running_jobs_of_a_live_process_are_left_alone() {
        let (_d, q) = queue();
        insert(&q, "v", 0);
        q.claim().unwrap().unwrap();
        // pid 1 is always alive and is not us.
        q.conn.execute("UPDATE jobs SET owner_pid = 1", []).unwrap();
        assert_eq!(q.recover_orphans().unwrap(), (0, 0));
    }

    #[test]
    fn the_spec_is_stored_and_claimed_with_the_job() {
        let (_d, q) = queue();
        let spec = serde_json::json!({"video": "v", "class_names": ["a", "b"]});
        let id = q
            .insert(&NewJob {
                video: "v",
                model: "m",
                params: &serde_json::json!({"labels": ["a", "b"]}),
                spec: Some(&spec),
                priority: 0,
                video_hash: "h",
                model_hash: "m",
            })
            .unwrap();
        assert_eq!(q.get(id).unwrap().unwrap().spec.as_ref(), Some(&spec));
        assert_eq!(q.claim().unwrap().unwrap().spec, Some(spec));
    }

    #[test]
    fn run_statuses_parse_strictly() {
        for s in [RunStatus::Complete, RunStatus::Partial, RunStatus::Failed] {
            assert_eq!(s.as_str().parse::<RunStatus>(), Ok(s));
        }
        assert!("Complete".parse::<RunStatus>().is_err());
    }
}
