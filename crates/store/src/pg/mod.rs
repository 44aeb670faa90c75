//! The PostgreSQL engine: the same results as the SQLite file, in a
//! database that any number of processes on any number of machines share.
//!
//! The synchronous `postgres` client is used from OS threads (pipeline
//! sink threads, the service's blocking pool): no compute ever runs on an
//! async executor. Detections go in with binary `COPY`, one per batch of
//! frames the pipeline hands the sink.

mod counts;
mod evals;
mod jobs;
mod listing;
mod schema;
mod sink;
mod streams;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use peregrine_core::{BBox, Keypoint};
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls, Row};
use serde_json::Value;

pub use jobs::{hostname, Membership, PgJobs};
pub use schema::{PgMigration, PG_MIGRATIONS};
pub use sink::PgRunStore;
pub use streams::StreamClaim;

use crate::store::{DetectionPage, DetectionQuery, DetectionRow, RunRecord, TrackRow};
use crate::target::redact;
use crate::{RunStatus, StoreError, VideoRecord};

/// Advisory-lock key that serialises migrations of one database.
const MIGRATION_LOCK: i64 = 0x5052_4547_0000_0001;
/// Advisory locks held by a run's writer, one per run: `RUN_LOCK | id`.
/// A `running` run whose lock nobody holds lost its writer.
pub(crate) const RUN_LOCK: i64 = 0x5052_0000_0000_0000;

/// A database URL and how errors name it.
#[derive(Clone, Debug)]
pub(crate) struct PgDb {
    url: String,
    /// The URL without its password.
    name: PathBuf,
    connect_timeout: Duration,
}

impl PgDb {
    pub(crate) fn new(url: &str, connect_timeout: Duration) -> PgDb {
        PgDb {
            url: url.to_owned(),
            name: PathBuf::from(redact(url)),
            connect_timeout,
        }
    }

    pub(crate) fn connect(&self) -> Result<Client, StoreError> {
        let mut cfg: postgres::Config = self.url.parse().map_err(|e| StoreError::Open {
            path: self.name.clone(),
            reason: format!("invalid PostgreSQL URL: {e}"),
        })?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(self.connect_timeout.max(Duration::from_secs(1)));
        }
        cfg.application_name("peregrine");
        // `IF NOT EXISTS` notices and the like are not worth a log line.
        if cfg.get_options().is_none() {
            cfg.options("-c client_min_messages=warning");
        }
        cfg.connect(NoTls).map_err(|e| match self.err(e) {
            StoreError::Sql { path, reason } | StoreError::Unavailable { path, reason } => {
                StoreError::Open { path, reason }
            }
            other => other,
        })
    }

    /// One-line errors naming the database; transient failures (a lost
    /// connection, a serialization failure or deadlock, no free
    /// connection) are [`StoreError::Unavailable`].
    pub(crate) fn err(&self, e: postgres::Error) -> StoreError {
        let path = self.name.clone();
        let reason = match e.as_db_error() {
            Some(d) => format!("{} ({})", d.message(), d.code().code()),
            None => e.to_string(),
        };
        let transient = [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ];
        match e.code() {
            Some(c) if *c == SqlState::DISK_FULL => StoreError::DiskFull { path },
            Some(c) if transient.contains(c) => StoreError::Unavailable { path, reason },
            Some(_) => StoreError::Sql { path, reason },
            None => StoreError::Unavailable { path, reason },
        }
    }

    pub(crate) fn name(&self) -> &std::path::Path {
        &self.name
    }

    pub(crate) fn not_found(&self, run: i64) -> StoreError {
        StoreError::RunNotFound {
            path: self.name.clone(),
            run,
        }
    }

    /// Brings the schema to the last of `migrations`, each step in its own
    /// transaction under [`MIGRATION_LOCK`] with the version re-read there:
    /// a step another process applied meanwhile is skipped. A database from
    /// a newer peregrine is refused and left as it is.
    pub(crate) fn migrate(
        &self,
        c: &mut Client,
        migrations: &[PgMigration],
    ) -> Result<(), StoreError> {
        let latest = migrations.last().map_or(0, |m| m.version);
        let e = |e| self.err(e);
        let current = |c: &mut postgres::Transaction| -> Result<i64, StoreError> {
            c.query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
                .map(|r| r.get::<_, i64>(0))
                .map_err(e)
        };
        // An up-to-date database (every open but the first) costs one
        // query.
        let exists: bool = c
            .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
            .map_err(e)?
            .get(0);
        let at: i64 = if exists {
            c.query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
                .map_err(e)?
                .get(0)
        } else {
            0
        };
        if at == latest {
            return Ok(());
        }
        for m in migrations {
            let mut tx = c.transaction().map_err(e)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .map_err(e)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_version (
                    version    BIGINT PRIMARY KEY,
                    name       TEXT NOT NULL,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .map_err(e)?;
            let now = current(&mut tx)?;
            if now > latest {
                return Err(StoreError::Sql {
                    path: self.name.clone(),
                    reason: format!(
                        "database schema version {now} is newer than this peregrine ({latest})"
                    ),
                });
            }
            if now < m.version {
                let failed = |err: postgres::Error| match self.err(err) {
                    StoreError::Sql { path, reason } => StoreError::Sql {
                        path,
                        reason: format!("migration {} ({}) failed: {reason}", m.version, m.name),
                    },
                    other => other,
                };
                tx.batch_execute(m.sql).map_err(failed)?;
                tx.execute(
                    "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                    &[&m.version, &m.name],
                )
                .map_err(failed)?;
            }
            tx.commit().map_err(e)?;
        }
        Ok(())
    }

    /// Marks `running` and `live` runs whose writer is gone as
    /// interrupted: a writer holds its run's advisory lock on its
    /// connection, which the server drops when the process dies, whatever
    /// machine it ran on.
    pub(crate) fn reap_stale_runs(&self, c: &mut Client) -> Result<u64, StoreError> {
        c.execute(
            "UPDATE runs r SET status = 'interrupted', \
               error = coalesce(error, 'the process writing this run exited before it finished'), \
               finished_at = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
             WHERE status IN ('running', 'live') AND NOT EXISTS ( \
               SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.objsubid = 1 \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND ((l.classid::bigint << 32) | l.objid::bigint) = ($1::bigint | r.id))",
            &[&RUN_LOCK],
        )
        .map_err(|e| self.err(e))
    }
}

/// Reads of stored results on one PostgreSQL connection: the methods of
/// [`crate::Store`] that the CLI and the service read with.
pub struct PgStore {
    db: PgDb,
    conn: Mutex<Client>,
}

/// A run that never recorded its totals reports what its rows hold, as on
/// SQLite.
const RUN_COLUMNS: &str = "r.id, r.video_id, v.path, v.content_hash, v.width, v.height, v.fps, \
    r.cache_key, r.model_path, r.model_hash, r.params, r.versions, r.status, r.error, \
    CASE WHEN r.status IN ('running', 'live', 'interrupted', 'failed') AND r.frames = 0 AND r.detections = 0 \
      THEN (SELECT count(DISTINCT d.frame) FROM detections d WHERE d.run_id = r.id) ELSE r.frames END, \
    CASE WHEN r.status IN ('running', 'live', 'interrupted', 'failed') AND r.frames = 0 AND r.detections = 0 \
      THEN (SELECT count(*) FROM detections d WHERE d.run_id = r.id) ELSE r.detections END, \
    CASE WHEN r.status IN ('running', 'live', 'interrupted', 'failed') AND r.frames = 0 AND r.detections = 0 \
      THEN (SELECT count(DISTINCT d.track_id) FROM detections d WHERE d.run_id = r.id) ELSE r.tracks END, \
    r.fps, r.timings, r.decode, r.started_at, r.finished_at";

fn json(s: Option<String>) -> Option<Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

fn run_from_row(r: &Row) -> RunRecord {
    RunRecord {
        id: r.get(0),
        video_id: r.get(1),
        video_path: r.get(2),
        content_hash: r.get(3),
        width: r.get::<_, i64>(4) as u32,
        height: r.get::<_, i64>(5) as u32,
        video_fps: r.get(6),
        cache_key: r.get(7),
        model_path: r.get(8),
        model_hash: r.get(9),
        params: json(r.get(10)).unwrap_or(Value::Null),
        versions: json(r.get(11)).unwrap_or(Value::Null),
        status: RunStatus::parse(r.get(12)),
        error: r.get(13),
        frames: r.get::<_, i64>(14) as u64,
        detections: r.get::<_, i64>(15) as u64,
        tracks: r.get::<_, i64>(16) as u64,
        fps: r.get(17),
        timings: json(r.get(18)),
        decode: json(r.get(19)),
        started_at: r.get(20),
        finished_at: r.get(21),
    }
}

/// Keypoints as SQLite stores them: little-endian `f32` triples.
pub(crate) fn keypoints_blob(k: &[Keypoint]) -> Option<Vec<u8>> {
    crate::store::keypoints_blob(k)
}

const DETECTION_COLUMNS: &str = "frame, t, class_id, score, x1, y1, x2, y2, track_id, keypoints";

fn detection_from_row(r: &Row) -> DetectionRow {
    DetectionRow {
        frame: r.get::<_, i64>(0) as u64,
        t: r.get(1),
        class_id: r.get::<_, i32>(2) as u16,
        score: r.get(3),
        bbox: BBox::new(r.get(4), r.get(5), r.get(6), r.get(7)),
        track_id: r.get::<_, Option<i64>>(8).map(|t| t as u32),
        keypoints: crate::store::keypoints_from_blob(r.get(9)),
    }
}

impl PgStore {
    /// Connects, migrates, and marks runs whose writer is gone as
    /// interrupted.
    pub fn open(url: &str, timeout: Duration) -> Result<PgStore, StoreError> {
        Self::open_with_migrations(url, timeout, PG_MIGRATIONS)
    }

    /// [`PgStore::open`] up to the last of `migrations` (tests bring a
    /// database to an older version with it).
    #[doc(hidden)]
    pub fn open_with_migrations(
        url: &str,
        timeout: Duration,
        migrations: &[PgMigration],
    ) -> Result<PgStore, StoreError> {
        let db = PgDb::new(url, timeout);
        let mut c = db.connect()?;
        db.migrate(&mut c, migrations)?;
        if migrations.len() == PG_MIGRATIONS.len() {
            db.reap_stale_runs(&mut c)?;
        }
        Ok(PgStore {
            db,
            conn: Mutex::new(c),
        })
    }

    /// The URL without its password.
    pub fn path(&self) -> &std::path::Path {
        self.db.name()
    }

    pub(crate) fn client(&self) -> MutexGuard<'_, Client> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn err(&self, e: postgres::Error) -> StoreError {
        self.db.err(e)
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.client()
            .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
            .map(|r| r.get(0))
            .map_err(|e| self.err(e))
    }

    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN videos v ON v.id = r.video_id ORDER BY r.id"
        );
        let rows = self.client().query(&sql, &[]).map_err(|e| self.err(e))?;
        Ok(rows.iter().map(run_from_row).collect())
    }

    pub fn run(&self, id: i64) -> Result<RunRecord, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN videos v ON v.id = r.video_id WHERE r.id = $1"
        );
        self.client()
            .query_opt(&sql, &[&id])
            .map_err(|e| self.err(e))?
            .map(|r| run_from_row(&r))
            .ok_or_else(|| self.db.not_found(id))
    }

    /// The newest complete (or partial) run with this cache key.
    pub fn find_cached_run(&self, cache_key: &str) -> Result<Option<RunRecord>, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN videos v ON v.id = r.video_id \
             WHERE r.cache_key = $1 AND r.status IN ('complete', 'partial') ORDER BY r.id DESC LIMIT 1"
        );
        Ok(self
            .client()
            .query_opt(&sql, &[&cache_key])
            .map_err(|e| self.err(e))?
            .map(|r| run_from_row(&r)))
    }

    /// The video a run analysed, as probed when the run started.
    pub fn video(&self, id: i64) -> Result<Option<VideoRecord>, StoreError> {
        Ok(self
            .client()
            .query_opt(
                "SELECT path, content_hash, size, duration, fps, width, height, codec, frames_expected \
                 FROM videos WHERE id = $1",
                &[&id],
            )
            .map_err(|e| self.err(e))?
            .map(|r| VideoRecord {
                path: r.get(0),
                content_hash: r.get(1),
                size: r.get::<_, i64>(2) as u64,
                duration: r.get(3),
                fps: r.get(4),
                width: r.get::<_, i64>(5) as u32,
                height: r.get::<_, i64>(6) as u32,
                codec: r.get(7),
                frames_expected: r.get::<_, i64>(8) as u64,
            }))
    }

    pub(crate) fn require_run(&self, run_id: i64) -> Result<(), StoreError> {
        let found = self
            .client()
            .query_opt("SELECT 1 FROM runs WHERE id = $1", &[&run_id])
            .map_err(|e| self.err(e))?;
        found.map(drop).ok_or_else(|| self.db.not_found(run_id))
    }

    pub fn tracks(&self, run_id: i64) -> Result<Vec<TrackRow>, StoreError> {
        self.require_run(run_id)?;
        let rows = self
            .client()
            .query(
                "SELECT track_id, class_id, first_frame, last_frame, first_t, last_t, frames, mean_score, \
                 path_px, mean_speed, max_speed, x1, y1, x2, y2 FROM tracks WHERE run_id = $1 ORDER BY track_id",
                &[&run_id],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| TrackRow {
                track_id: r.get::<_, i64>(0) as u32,
                class_id: r.get::<_, i32>(1) as u16,
                first_frame: r.get::<_, i64>(2) as u64,
                last_frame: r.get::<_, i64>(3) as u64,
                first_t: r.get(4),
                last_t: r.get(5),
                frames: r.get::<_, i64>(6) as u64,
                mean_score: r.get(7),
                path_px: r.get(8),
                mean_speed: r.get(9),
                max_speed: r.get(10),
                region: BBox::new(r.get(11), r.get(12), r.get(13), r.get(14)),
            })
            .collect())
    }

    /// Streams a run's detections in (frame, insertion) order to `f`; rows
    /// come off the connection as they are read, so memory stays constant.
    pub fn for_each_detection<E>(
        &self,
        run_id: i64,
        mut f: impl FnMut(&DetectionRow) -> Result<(), E>,
    ) -> Result<Result<(), E>, StoreError> {
        self.require_run(run_id)?;
        let mut c = self.client();
        let sql = format!(
            "SELECT {DETECTION_COLUMNS} FROM detections WHERE run_id = $1 ORDER BY frame, seq"
        );
        let mut rows = c
            .query_raw(&sql, [&run_id as &(dyn postgres::types::ToSql + Sync)])
            .map_err(|e| self.db.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.db.err(e))? {
            if let Err(e) = f(&detection_from_row(&row)) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// One keyset page of detections, as [`crate::Store::detections_page`];
    /// the cursor's second half is the detection's `seq`.
    pub fn detections_page(
        &self,
        run_id: i64,
        q: &DetectionQuery,
    ) -> Result<DetectionPage, StoreError> {
        self.require_run(run_id)?;
        let crate::store::PageBounds {
            limit,
            after_frame,
            after_key: after_seq,
            from,
            to,
        } = q.bounds();
        let class = q.class_id.map(i32::from);
        let track = q.track_id.map(i64::from);
        let n = (limit + 1) as i64;
        let sql = format!(
            "SELECT {DETECTION_COLUMNS}, seq FROM detections WHERE run_id = $1 \
             AND frame >= $2 AND frame <= $3 AND (frame > $4 OR seq > $5) \
             AND ($6::int4 IS NULL OR class_id = $6) AND ($7::int8 IS NULL OR track_id = $7) \
             ORDER BY frame, seq LIMIT $8"
        );
        let rows = self
            .client()
            .query(
                &sql,
                &[
                    &run_id,
                    &from,
                    &to,
                    &after_frame,
                    &after_seq,
                    &class,
                    &track,
                    &n,
                ],
            )
            .map_err(|e| self.err(e))?;
        let mut items = Vec::with_capacity(rows.len().min(limit));
        let mut last = None;
        for row in &rows {
            if items.len() == limit {
                return Ok(DetectionPage { items, next: last });
            }
            let d = detection_from_row(row);
            last = Some((d.frame, row.get::<_, i64>(10)));
            items.push(d);
        }
        Ok(DetectionPage { items, next: None })
    }

    /// Stores evaluation metrics computed for a run.
    pub fn save_eval(
        &self,
        run_id: i64,
        kind: &str,
        gt_path: &str,
        metrics: &Value,
    ) -> Result<i64, StoreError> {
        self.require_run(run_id)?;
        self.client()
            .query_one(
                "INSERT INTO evals (run_id, kind, gt_path, metrics) VALUES ($1, $2, $3, $4) RETURNING id",
                &[&run_id, &kind, &gt_path, &metrics.to_string()],
            )
            .map(|r| r.get(0))
            .map_err(|e| self.err(e))
    }
}

/// A database of its own for one test, dropped with it: created on the
/// server `PEREGRINE_TEST_PG` names (default `postgres://postgres@127.0.0.1:5432/postgres`).
#[doc(hidden)]
pub struct TestDb {
    admin: String,
    name: String,
    /// The new database's URL.
    pub url: String,
}

impl TestDb {
    /// `None`, with a line saying why on stderr, when no server answers:
    /// the caller skips its test.
    pub fn create(tag: &str) -> Option<TestDb> {
        let admin = std::env::var("PEREGRINE_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut c = match PgDb::new(&admin, Duration::from_secs(3)).connect() {
            Ok(c) => c,
            Err(e) => {
                eprintln!(
                    "SKIPPED: no PostgreSQL server for the test ({e}); set PEREGRINE_TEST_PG"
                );
                return None;
            }
        };
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "peregrine_test_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .and_then(|()| c.batch_execute(&format!("CREATE DATABASE {name}")))
            .expect("create the test database");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Some(TestDb {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut c) = PgDb::new(&self.admin, Duration::from_secs(3)).connect() {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A connection that listens on one `LISTEN/NOTIFY` channel.
pub struct Listener {
    db: PgDb,
    conn: Client,
}

impl Listener {
    /// Connects and listens on `channel` (a plain identifier).
    pub fn open(url: &str, channel: &str, timeout: Duration) -> Result<Listener, StoreError> {
        let db = PgDb::new(url, timeout);
        let mut conn = db.connect()?;
        conn.batch_execute(&format!("LISTEN {channel}"))
            .map_err(|e| db.err(e))?;
        Ok(Listener { db, conn })
    }

    /// The payloads of the notifications that arrive within `timeout`
    /// (at least one unless it passes), with any already pending.
    pub fn wait(&mut self, timeout: Duration) -> Result<Vec<String>, StoreError> {
        let mut n = self.conn.notifications();
        let first = n.timeout_iter(timeout).next().map_err(|e| self.db.err(e))?;
        let Some(first) = first else {
            return Ok(Vec::new());
        };
        let mut out = vec![first.payload().to_owned()];
        let mut pending = n.iter();
        while let Some(x) = pending.next().map_err(|e| self.db.err(e))? {
            out.push(x.payload().to_owned());
        }
        Ok(out)
    }
}
