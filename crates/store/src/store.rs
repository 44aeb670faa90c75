use std::path::{Path, PathBuf};
use std::time::Duration;

use peregrine_core::{BBox, Detection, FrameMeta, Keypoint};
pub use peregrine_core::{RunOutcome, RunStatus, VideoRecord};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use serde_json::Value;

use crate::schema::{Migration, MIGRATIONS};
use crate::StoreError;

/// What is known when a run starts.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub video_id: i64,
    pub cache_key: String,
    pub model_path: String,
    pub model_hash: String,
    pub params: Value,
    pub versions: Value,
}

/// A stored run with its video.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub video_id: i64,
    pub video_path: String,
    pub content_hash: String,
    pub width: u32,
    pub height: u32,
    pub video_fps: f64,
    pub cache_key: String,
    pub model_path: String,
    pub model_hash: String,
    pub params: Value,
    pub versions: Value,
    pub status: RunStatus,
    pub error: Option<String>,
    pub frames: u64,
    pub detections: u64,
    pub tracks: u64,
    pub fps: Option<f64>,
    pub timings: Option<Value>,
    pub decode: Option<Value>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// One stored detection.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DetectionRow {
    pub frame: u64,
    pub t: f64,
    pub class_id: u16,
    pub score: f32,
    pub bbox: BBox,
    pub track_id: Option<u32>,
    pub keypoints: Vec<Keypoint>,
}

/// One detection: the fields of `peregrine export --format jsonl`.
// One type for the JSONL export and the service's detection pages, so the
// two never drift apart. The class name is borrowed from the run's labels
// when written, so a page of 1000 rows allocates no names.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DetectionItem<'a> {
    pub frame: u64,
    pub t: f64,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub class: std::borrow::Cow<'a, str>,
    pub class_id: u16,
    pub score: f32,
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    pub track_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub keypoints: Option<Vec<[f32; 3]>>,
}

impl DetectionRow {
    /// The row as written out, named `class` (empty when the run's labels
    /// have no name for its class id).
    pub fn item<'a>(&self, class: &'a str) -> DetectionItem<'a> {
        DetectionItem {
            frame: self.frame,
            t: self.t,
            class: std::borrow::Cow::Borrowed(class),
            class_id: self.class_id,
            score: self.score,
            x1: self.bbox.x1,
            y1: self.bbox.y1,
            x2: self.bbox.x2,
            y2: self.bbox.y2,
            track_id: self.track_id,
            keypoints: (!self.keypoints.is_empty())
                .then(|| self.keypoints.iter().map(|k| [k.x, k.y, k.score]).collect()),
        }
    }
}

/// Per-track summary row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrackRow {
    pub track_id: u32,
    pub class_id: u16,
    pub first_frame: u64,
    pub last_frame: u64,
    pub first_t: f64,
    pub last_t: f64,
    pub frames: u64,
    pub mean_score: f64,
    pub path_px: f64,
    pub mean_speed: f64,
    pub max_speed: f64,
    pub region: BBox,
}

/// Filters and position for one page of detections.
#[derive(Clone, Debug, Default)]
pub struct DetectionQuery {
    pub frame_from: Option<u64>,
    pub frame_to: Option<u64>,
    pub class_id: Option<u16>,
    pub track_id: Option<u32>,
    pub limit: usize,
    /// Keyset cursor: (frame, rowid) of the last row of the previous page.
    pub after: Option<(u64, i64)>,
}

/// A page query's SQL parameters, the same for every engine.
pub(crate) struct PageBounds {
    pub limit: usize,
    /// The cursor: the previous page's last (frame, key); (-1, -1) first.
    pub after_frame: i64,
    pub after_key: i64,
    /// First frame to read: `frame_from`, or the cursor's frame if later.
    pub from: i64,
    pub to: i64,
}

impl DetectionQuery {
    pub(crate) fn bounds(&self) -> PageBounds {
        let (after_frame, after_key) = self.after.map(|(f, r)| (f as i64, r)).unwrap_or((-1, -1));
        PageBounds {
            limit: self.limit.clamp(1, 10_000),
            after_frame,
            after_key,
            from: (self.frame_from.unwrap_or(0) as i64).max(after_frame),
            to: self
                .frame_to
                .map(|f| f.min(i64::MAX as u64) as i64)
                .unwrap_or(i64::MAX),
        }
    }
}

/// One page of detections and the cursor of the next one.
#[derive(Clone, Debug)]
pub struct DetectionPage {
    pub items: Vec<DetectionRow>,
    pub next: Option<(u64, i64)>,
}

/// A connection to a Peregrine database file.
pub struct Store {
    pub(crate) conn: Connection,
    pub(crate) db: DbFile,
}

/// The database file and how long writers wait for its lock: what every
/// error names. Kept apart from the connection so that a closure mapping
/// errors can borrow it while a transaction borrows the connection.
pub(crate) struct DbFile {
    path: PathBuf,
    busy_timeout: Duration,
}

impl DbFile {
    pub(crate) fn err(&self, e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
        match e.sqlite_error_code() {
            Some(DatabaseBusy) | Some(DatabaseLocked) => StoreError::Locked {
                path: self.path.clone(),
                waited_ms: self.busy_timeout.as_millis() as u64,
            },
            _ if is_disk_full(&self.path, &e) => StoreError::DiskFull {
                path: self.path.clone(),
            },
            _ => StoreError::Sql {
                path: self.path.clone(),
                reason: e.to_string(),
            },
        }
    }

    /// `meta.schema_version`; 0 for a database no migration has touched
    /// (an empty file, or one holding only the service's jobs table).
    fn schema_version(&self, c: &Connection) -> Result<i64, StoreError> {
        let has_meta = c
            .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'")
            .and_then(|mut s| s.exists([]))
            .map_err(|e| self.err(e))?;
        if !has_meta {
            return Ok(0);
        }
        let value: Option<String> = c
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match value {
            None => Ok(0),
            Some(v) => v.parse().map_err(|_| StoreError::Sql {
                path: self.path.clone(),
                reason: format!("database schema version {v:?} is not a number"),
            }),
        }
    }

    /// Refuses a database migrated by a newer peregrine than this one.
    fn check_not_newer(&self, version: i64, latest: i64) -> Result<(), StoreError> {
        if version > latest {
            return Err(StoreError::Sql {
                path: self.path.clone(),
                reason: format!(
                    "database schema version {version} is newer than this peregrine ({latest})"
                ),
            });
        }
        Ok(())
    }
}

pub(crate) fn keypoints_blob(k: &[Keypoint]) -> Option<Vec<u8>> {
    if k.is_empty() {
        return None;
    }
    let mut b = Vec::with_capacity(k.len() * 12);
    for p in k {
        b.extend_from_slice(&p.x.to_le_bytes());
        b.extend_from_slice(&p.y.to_le_bytes());
        b.extend_from_slice(&p.score.to_le_bytes());
    }
    Some(b)
}

pub(crate) fn keypoints_from_blob(b: Option<Vec<u8>>) -> Vec<Keypoint> {
    let Some(b) = b else { return Vec::new() };
    b.chunks_exact(12)
        .map(|c| {
            let f = |i: usize| f32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
            Keypoint {
                x: f(0),
                y: f(4),
                score: f(8),
            }
        })
        .collect()
}

/// SQLite reports a full file system as SQLITE_FULL when a write to the
/// database or its WAL fails, but as a plain I/O error when it cannot grow
/// the WAL index (`-shm`). An I/O error is taken for a full disk when a page
/// cannot be written beside the database either.
fn is_disk_full(path: &Path, e: &rusqlite::Error) -> bool {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => true,
        Some(rusqlite::ErrorCode::SystemIoFailure) => no_room_beside(path),
        _ => false,
    }
}

/// Whether writing one page into the database's folder fails with ENOSPC.
fn no_room_beside(db: &Path) -> bool {
    use std::io::Write;
    let dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(format!(".peregrine-space-probe-{}", std::process::id()));
    let full = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(mut f) => f
            .write_all(&[0u8; 4096])
            .and_then(|_| f.sync_all())
            .is_err_and(|e| e.kind() == std::io::ErrorKind::StorageFull),
        Err(e) => e.kind() == std::io::ErrorKind::StorageFull,
    };
    let _ = std::fs::remove_file(&probe);
    full
}

/// Removes a database file this process just created, with its WAL and
/// shared-memory companions, so a failed creation leaves nothing behind.
fn remove_new_database(path: &Path) {
    let _ = std::fs::remove_file(path);
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Whether a process with this pid is alive, by the presence of
/// `/proc/<pid>` (Linux); a pid of 0 or below never is.
pub fn pid_alive(pid: i64) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// A run that never recorded its totals (still running, or killed before
/// its last update) reports what its stored rows hold: frames with
/// detections, detections, distinct track ids.
const RUN_COLUMNS: &str = "r.id, r.video_id, v.path, v.content_hash, v.width, v.height, v.fps, \
    r.cache_key, r.model_path, r.model_hash, r.params, r.versions, r.status, r.error, \
    CASE WHEN r.status IN ('running', 'live', 'interrupted', 'failed') AND r.frames = 0 AND r.detections = 0 \
      THEN (SELECT count(DISTINCT d.frame) FROM detections d WHERE d.run_id = r.id) ELSE r.frames END, \
    CASE WHEN r.status IN ('running', 'live', 'interrupted', 'failed') AND r.frames = 0 AND r.detections = 0 \
      THEN (SELECT count(*) FROM detections d WHERE d.run_id = r.id) ELSE r.detections END, \
    CASE WHEN r.status IN ('running', 'live', 'interrupted', 'failed') AND r.frames = 0 AND r.detections = 0 \
      THEN (SELECT count(DISTINCT d.track_id) FROM detections d WHERE d.run_id = r.id) ELSE r.tracks END, \
    r.fps, r.timings, r.decode, r.started_at, r.finished_at";

fn run_from_row(row: &rusqlite::Row) -> rusqlite::Result<RunRecord> {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    Ok(RunRecord {
        id: row.get(0)?,
        video_id: row.get(1)?,
        video_path: row.get(2)?,
        content_hash: row.get(3)?,
        width: row.get(4)?,
        height: row.get(5)?,
        video_fps: row.get(6)?,
        cache_key: row.get(7)?,
        model_path: row.get(8)?,
        model_hash: row.get(9)?,
        params: json(row.get(10)?).unwrap_or(Value::Null),
        versions: json(row.get(11)?).unwrap_or(Value::Null),
        status: RunStatus::parse(&row.get::<_, String>(12)?),
        error: row.get(13)?,
        frames: row.get::<_, i64>(14)? as u64,
        detections: row.get::<_, i64>(15)? as u64,
        tracks: row.get::<_, i64>(16)? as u64,
        fps: row.get(17)?,
        timings: json(row.get(18)?),
        decode: json(row.get(19)?),
        started_at: row.get(20)?,
        finished_at: row.get(21)?,
    })
}

pub(crate) fn detection_from_row(row: &rusqlite::Row) -> rusqlite::Result<DetectionRow> {
    Ok(DetectionRow {
        frame: row.get::<_, i64>(0)? as u64,
        t: row.get(1)?,
        class_id: row.get(2)?,
        score: row.get(3)?,
        bbox: BBox::new(row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?),
        track_id: row.get(8)?,
        keypoints: keypoints_from_blob(row.get(9)?),
    })
}

impl Store {
    /// Opens (creating if needed) a database with a 5 s lock timeout.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with_timeout(path, Duration::from_secs(5))
    }

    /// Opens a database; writers wait up to `busy_timeout` for a lock held by
    /// another process before failing with [`StoreError::Locked`].
    pub fn open_with_timeout(path: &Path, busy_timeout: Duration) -> Result<Store, StoreError> {
        Self::open_with_migrations(path, busy_timeout, MIGRATIONS)
    }

    /// [`Store::open_with_timeout`] bringing the schema to the last of
    /// `migrations` rather than of [`MIGRATIONS`]: tests inject a failing
    /// step through it.
    #[doc(hidden)]
    pub fn open_with_migrations(
        path: &Path,
        busy_timeout: Duration,
        migrations: &[Migration],
    ) -> Result<Store, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        if path.is_dir() {
            return Err(open_err("is a directory".into()));
        }
        let created = !path.exists();
        let store = Self::connect(path, busy_timeout, migrations);
        // Only a full disk: any other failure may come from another
        // process creating the same file at this moment.
        if created && matches!(store, Err(StoreError::DiskFull { .. })) {
            remove_new_database(path);
        }
        store
    }

    fn connect(
        path: &Path,
        busy_timeout: Duration,
        migrations: &[Migration],
    ) -> Result<Store, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        let db = DbFile {
            path: path.to_path_buf(),
            busy_timeout,
        };
        let conn_err = |e: rusqlite::Error| match db.err(e) {
            StoreError::Sql { reason, .. } => open_err(reason),
            other => other,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(conn_err)?;
        conn.busy_timeout(busy_timeout).map_err(conn_err)?;
        let mut store = Store { conn, db };
        if let Err(e) = store.init(migrations) {
            drop(store);
            return Err(match e {
                StoreError::Sql { reason, .. } => open_err(reason),
                other => other,
            });
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.db.path
    }

    /// The version is checked before anything is written (the switch to
    /// WAL included), so a database from a newer peregrine is left as it
    /// was.
    fn init(&mut self, migrations: &[Migration]) -> Result<(), StoreError> {
        let latest = migrations.last().map_or(0, |m| m.version);
        let version = self.db.schema_version(&self.conn)?;
        self.db.check_not_newer(version, latest)?;
        let c = &self.conn;
        // Switching to WAL needs the file to itself for a moment, and
        // SQLite answers "busy" at once rather than through the busy
        // handler while another opener is switching or migrating: retry
        // for as long as a busy database is waited for.
        let deadline = std::time::Instant::now() + self.db.busy_timeout;
        loop {
            match c.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())) {
                Ok(()) => break,
                Err(e)
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(self.db.err(e)),
            }
        }
        c.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
        )
        .map_err(|e| self.db.err(e))?;
        if version < latest {
            self.migrate(migrations, version, latest)?;
        }
        self.reap_stale_runs()
    }

    /// Applies the migrations above `version`, each in its own `BEGIN
    /// IMMEDIATE` transaction with the version it reaches. The version is
    /// read again under the write lock: another process opening the same
    /// database may have applied the step while this one waited, and then
    /// it is skipped. A failing step rolls back whole, version included.
    fn migrate(
        &mut self,
        migrations: &[Migration],
        version: i64,
        latest: i64,
    ) -> Result<(), StoreError> {
        let db = &self.db;
        for m in migrations.iter().filter(|m| m.version > version) {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| db.err(e))?;
            let now = db.schema_version(&tx)?;
            db.check_not_newer(now, latest)?;
            if now >= m.version {
                continue;
            }
            let failed = |e: rusqlite::Error| match db.err(e) {
                StoreError::Sql { path, reason } => StoreError::Sql {
                    path,
                    reason: format!("migration {} ({}) failed: {reason}", m.version, m.name),
                },
                other => other,
            };
            m.apply.run(&tx).map_err(failed)?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [m.version.to_string()],
            )
            .map_err(failed)?;
            tx.commit().map_err(failed)?;
        }
        Ok(())
    }

    /// Marks `running` runs whose process is gone as interrupted.
    fn reap_stale_runs(&self) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, pid FROM runs WHERE status IN ('running', 'live')")
            .map_err(|e| self.db.err(e))?;
        let stale: Vec<i64> = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
            })
            .map_err(|e| self.db.err(e))?
            .filter_map(Result::ok)
            .filter(|(_, pid)| !pid.is_some_and(pid_alive))
            .map(|(id, _)| id)
            .collect();
        for id in stale {
            self.conn
                .execute(
                    "UPDATE runs SET status = 'interrupted', \
                     error = coalesce(error, 'the process writing this run exited before it finished'), \
                     finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                     WHERE id = ?1 AND status IN ('running', 'live')",
                    [id],
                )
                .map_err(|e| self.db.err(e))?;
        }
        Ok(())
    }

    /// Inserts the video or returns the id of the same (hash, path).
    pub fn upsert_video(&self, v: &VideoRecord) -> Result<i64, StoreError> {
        self.insert_returning_id(
            "INSERT INTO videos (path, content_hash, size, duration, fps, width, height, codec, frames_expected) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (content_hash, path) DO UPDATE SET duration = excluded.duration \
             RETURNING id",
            params![
                v.path,
                v.content_hash,
                v.size as i64,
                v.duration,
                v.fps,
                v.width,
                v.height,
                v.codec,
                v.frames_expected as i64
            ],
        )
    }

    /// Runs an `INSERT ... RETURNING id` to its end. `query_row` stops at
    /// the first row, before the statement's implicit commit: a commit that
    /// then fails (a full disk) went unnoticed, and the returned id named a
    /// row that had been rolled back.
    fn insert_returning_id(&self, sql: &str, p: impl rusqlite::Params) -> Result<i64, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.db.err(e))?;
        let mut rows = stmt.query(p).map_err(|e| self.db.err(e))?;
        let id = match rows.next().map_err(|e| self.db.err(e))? {
            Some(row) => row.get(0).map_err(|e| self.db.err(e))?,
            None => return Err(self.db.err(rusqlite::Error::QueryReturnedNoRows)),
        };
        while rows.next().map_err(|e| self.db.err(e))?.is_some() {}
        Ok(id)
    }

    /// The newest complete (or partial) run with this cache key.
    pub fn find_cached_run(&self, cache_key: &str) -> Result<Option<RunRecord>, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN videos v ON v.id = r.video_id \
             WHERE r.cache_key = ?1 AND r.status IN ('complete', 'partial') ORDER BY r.id DESC LIMIT 1"
        );
        self.conn
            .query_row(&sql, [cache_key], run_from_row)
            .optional()
            .map_err(|e| self.db.err(e))
    }

    pub fn begin_run(&self, r: &NewRun) -> Result<i64, StoreError> {
        self.begin_run_as(r, RunStatus::Running)
    }

    /// Records a run with status `running` or, for a live stream, `live`.
    pub fn begin_run_as(&self, r: &NewRun, status: RunStatus) -> Result<i64, StoreError> {
        self.insert_returning_id(
            "INSERT INTO runs (video_id, cache_key, model_path, model_hash, params, versions, status, pid) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?8, ?7) RETURNING id",
            params![
                r.video_id,
                r.cache_key,
                r.model_path,
                r.model_hash,
                r.params.to_string(),
                r.versions.to_string(),
                std::process::id() as i64,
                status.as_str()
            ],
        )
    }

    /// Appends the detections of several frames in one transaction.
    pub fn insert_frames<'a>(
        &mut self,
        run_id: i64,
        frames: impl IntoIterator<Item = (&'a FrameMeta, &'a [Detection])>,
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction().map_err(|e| self.db.err(e))?;
        let mut n = 0;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO detections (run_id, frame, t, class_id, score, x1, y1, x2, y2, track_id, keypoints) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(|e| self.db.err(e))?;
            let mut frame_stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO frames (run_id, frame, t) VALUES (?1, ?2, ?3)",
                )
                .map_err(|e| self.db.err(e))?;
            for (meta, dets) in frames {
                frame_stmt
                    .execute(params![run_id, meta.index as i64, meta.pts])
                    .map_err(|e| self.db.err(e))?;
                for d in dets {
                    stmt.execute(params![
                        run_id,
                        meta.index as i64,
                        meta.pts,
                        d.class_id,
                        d.score,
                        d.bbox.x1,
                        d.bbox.y1,
                        d.bbox.x2,
                        d.bbox.y2,
                        d.track_id,
                        keypoints_blob(&d.keypoints)
                    ])
                    .map_err(|e| self.db.err(e))?;
                    n += 1;
                }
            }
        }
        tx.commit().map_err(|e| self.db.err(e))?;
        Ok(n)
    }

    /// Writes track summaries; a track already stored for the run is
    /// replaced. Called as tracks finish, so summaries never pile up in
    /// memory.
    pub fn upsert_tracks(&mut self, run_id: i64, tracks: &[TrackRow]) -> Result<(), StoreError> {
        let e = |e| self.db.err(e);
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO tracks (run_id, track_id, class_id, first_frame, last_frame, first_t, last_t, \
                     frames, mean_score, path_px, mean_speed, max_speed, x1, y1, x2, y2) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )
                .map_err(e)?;
            for t in tracks {
                stmt.execute(params![
                    run_id,
                    t.track_id,
                    t.class_id,
                    t.first_frame as i64,
                    t.last_frame as i64,
                    t.first_t,
                    t.last_t,
                    t.frames as i64,
                    t.mean_score,
                    t.path_px,
                    t.mean_speed,
                    t.max_speed,
                    t.region.x1,
                    t.region.y1,
                    t.region.x2,
                    t.region.y2
                ])
                .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    pub fn finish_run(&self, run_id: i64, o: &RunOutcome) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE runs SET status = ?2, error = ?3, frames = ?4, detections = ?5, tracks = ?6, fps = ?7, \
                 timings = ?8, decode = ?9, finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
                params![
                    run_id,
                    o.status.as_str(),
                    o.error,
                    o.frames as i64,
                    o.detections as i64,
                    o.tracks as i64,
                    o.fps,
                    o.timings.to_string(),
                    o.decode.to_string()
                ],
            )
            .map_err(|e| self.db.err(e))?;
        Ok(())
    }

    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN videos v ON v.id = r.video_id ORDER BY r.id"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.db.err(e))?;
        let rows = stmt
            .query_map([], run_from_row)
            .map_err(|e| self.db.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.db.err(e))?;
        Ok(rows)
    }

    pub fn run(&self, id: i64) -> Result<RunRecord, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN videos v ON v.id = r.video_id WHERE r.id = ?1"
        );
        self.conn
            .query_row(&sql, [id], run_from_row)
            .optional()
            .map_err(|e| self.db.err(e))?
            .ok_or(StoreError::RunNotFound {
                path: self.db.path.clone(),
                run: id,
            })
    }

    /// The video a run analysed, as probed when the run started.
    pub fn video(&self, id: i64) -> Result<Option<VideoRecord>, StoreError> {
        self.conn
            .query_row(
                "SELECT path, content_hash, size, duration, fps, width, height, codec, frames_expected \
                 FROM videos WHERE id = ?1",
                [id],
                |r| {
                    Ok(VideoRecord {
                        path: r.get(0)?,
                        content_hash: r.get(1)?,
                        size: r.get::<_, i64>(2)? as u64,
                        duration: r.get(3)?,
                        fps: r.get(4)?,
                        width: r.get(5)?,
                        height: r.get(6)?,
                        codec: r.get(7)?,
                        frames_expected: r.get::<_, i64>(8)? as u64,
                    })
                },
            )
            .optional()
            .map_err(|e| self.db.err(e))
    }

    /// Memory-maps up to 256 MiB of the database for reads: pages come from
    /// the OS page cache without a copy. For read-heavy connections (the
    /// service's page queries); writers leave it off so their resident
    /// memory does not grow with the database.
    pub fn map_for_reads(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("PRAGMA mmap_size = 268435456;")
            .map_err(|e| self.db.err(e))
    }

    /// Fails with [`StoreError::RunNotFound`] unless the run exists (one
    /// primary-key probe, cheaper than loading the run).
    pub(crate) fn require_run(&self, run_id: i64) -> Result<(), StoreError> {
        let exists = self
            .conn
            .prepare_cached("SELECT 1 FROM runs WHERE id = ?1")
            .and_then(|mut s| s.exists([run_id]))
            .map_err(|e| self.db.err(e))?;
        if exists {
            Ok(())
        } else {
            Err(StoreError::RunNotFound {
                path: self.db.path.clone(),
                run: run_id,
            })
        }
    }

    /// Streams a run's detections in (frame, insertion) order to `f`, one
    /// row at a time: memory stays constant whatever the run's size.
    pub fn for_each_detection<E>(
        &self,
        run_id: i64,
        mut f: impl FnMut(&DetectionRow) -> Result<(), E>,
    ) -> Result<Result<(), E>, StoreError> {
        self.run(run_id)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT frame, t, class_id, score, x1, y1, x2, y2, track_id, keypoints \
                 FROM detections WHERE run_id = ?1 ORDER BY frame, rowid",
            )
            .map_err(|e| self.db.err(e))?;
        let mut rows = stmt.query([run_id]).map_err(|e| self.db.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.db.err(e))? {
            let d = detection_from_row(row).map_err(|e| self.db.err(e))?;
            if let Err(e) = f(&d) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// One keyset page of detections; no OFFSET scans. The index range
    /// starts at `max(frame_from, cursor frame)`, so a deep page costs the
    /// same as the first; `(frame > f OR rowid > r)` only drops the cursor
    /// frame's rows already returned. A track filter uses the
    /// `(run_id, track_id, frame)` index.
    pub fn detections_page(
        &self,
        run_id: i64,
        q: &DetectionQuery,
    ) -> Result<DetectionPage, StoreError> {
        self.require_run(run_id)?;
        let PageBounds {
            limit,
            after_frame,
            after_key: after_rowid,
            from,
            to,
        } = q.bounds();
        const ALL: &str =
            "SELECT frame, t, class_id, score, x1, y1, x2, y2, track_id, keypoints, rowid \
             FROM detections WHERE run_id = ?1 \
             AND frame >= ?2 AND frame <= ?3 AND (frame > ?4 OR rowid > ?5) \
             AND (?6 IS NULL OR class_id = ?6) ORDER BY frame, rowid LIMIT ?7";
        const ONE_TRACK: &str =
            "SELECT frame, t, class_id, score, x1, y1, x2, y2, track_id, keypoints, rowid \
             FROM detections WHERE run_id = ?1 AND track_id = ?8 \
             AND frame >= ?2 AND frame <= ?3 AND (frame > ?4 OR rowid > ?5) \
             AND (?6 IS NULL OR class_id = ?6) ORDER BY frame, rowid LIMIT ?7";
        let n = (limit + 1) as i64;
        let mut stmt = self
            .conn
            .prepare_cached(if q.track_id.is_some() { ONE_TRACK } else { ALL })
            .map_err(|e| self.db.err(e))?;
        let mut rows = match q.track_id {
            Some(t) => stmt.query(params![
                run_id,
                from,
                to,
                after_frame,
                after_rowid,
                q.class_id,
                n,
                t
            ]),
            None => stmt.query(params![
                run_id,
                from,
                to,
                after_frame,
                after_rowid,
                q.class_id,
                n
            ]),
        }
        .map_err(|e| self.db.err(e))?;
        let mut items = Vec::with_capacity(limit.min(1024));
        let mut last = None;
        while let Some(row) = rows.next().map_err(|e| self.db.err(e))? {
            if items.len() == limit {
                return Ok(DetectionPage { items, next: last });
            }
            let d = detection_from_row(row).map_err(|e| self.db.err(e))?;
            last = Some((d.frame, row.get::<_, i64>(10).map_err(|e| self.db.err(e))?));
            items.push(d);
        }
        Ok(DetectionPage { items, next: None })
    }

    pub fn tracks(&self, run_id: i64) -> Result<Vec<TrackRow>, StoreError> {
        self.run(run_id)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT track_id, class_id, first_frame, last_frame, first_t, last_t, frames, mean_score, \
                 path_px, mean_speed, max_speed, x1, y1, x2, y2 FROM tracks WHERE run_id = ?1 ORDER BY track_id",
            )
            .map_err(|e| self.db.err(e))?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok(TrackRow {
                    track_id: r.get(0)?,
                    class_id: r.get(1)?,
                    first_frame: r.get::<_, i64>(2)? as u64,
                    last_frame: r.get::<_, i64>(3)? as u64,
                    first_t: r.get(4)?,
                    last_t: r.get(5)?,
                    frames: r.get::<_, i64>(6)? as u64,
                    mean_score: r.get(7)?,
                    path_px: r.get(8)?,
                    mean_speed: r.get(9)?,
                    max_speed: r.get(10)?,
                    region: BBox::new(r.get(11)?, r.get(12)?, r.get(13)?, r.get(14)?),
                })
            })
            .map_err(|e| self.db.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.db.err(e))?;
        Ok(rows)
    }

    /// Stores evaluation metrics computed for a run.
    pub fn save_eval(
        &self,
        run_id: i64,
        kind: &str,
        gt_path: &str,
        metrics: &Value,
    ) -> Result<i64, StoreError> {
        self.run(run_id)?;
        self.insert_returning_id(
            "INSERT INTO evals (run_id, kind, gt_path, metrics) VALUES (?1, ?2, ?3, ?4) RETURNING id",
            params![run_id, kind, gt_path, metrics.to_string()],
        )
    }
}
