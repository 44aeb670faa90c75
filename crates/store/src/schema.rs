//! Schema and migrations.
//!
//! The schema evolves only by appending to [`MIGRATIONS`]; a released
//! migration is never edited, since databases in the field already carry its
//! result. `meta.schema_version` records the last one applied.

use rusqlite::Connection;

/// One step of the schema: applied once, in its own `BEGIN IMMEDIATE`
/// transaction, to a database whose `meta.schema_version` is below `version`.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Versions run 1, 2, 3, … in list order.
    pub version: i64,
    /// Named in the error when the step fails.
    pub name: &'static str,
    pub apply: Step,
}

/// What a migration does.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    /// A batch of statements.
    Sql(&'static str),
    /// Code, for steps that depend on what the database already holds.
    Code(fn(&Connection) -> rusqlite::Result<()>),
}

impl Step {
    pub(crate) fn run(&self, c: &Connection) -> rusqlite::Result<()> {
        match self {
            Step::Sql(sql) => c.execute_batch(sql),
            Step::Code(f) => f(c),
        }
    }
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "results",
        apply: Step::Sql(RESULTS),
    },
    Migration {
        version: 2,
        name: "jobs",
        apply: Step::Code(jobs),
    },
    Migration {
        version: 3,
        name: "counts",
        apply: Step::Sql(COUNTS),
    },
    Migration {
        version: 4,
        name: "live runs",
        apply: Step::Code(live_status),
    },
    Migration {
        version: 5,
        name: "streams",
        apply: Step::Sql(STREAMS),
    },
    Migration {
        version: 6,
        name: "eval matches",
        apply: Step::Sql(EVAL_MATCHES),
    },
    Migration {
        version: 7,
        name: "upload names, run listing",
        apply: Step::Sql(RUN_LISTING),
    },
];

/// Version 6: an evaluation's per-frame matching (see `crate::evals`):
/// one row per true positive, false positive, miss or identity switch,
/// the drawn box in the run's pixels (the prediction, or the ground truth
/// of a miss) and the ground-truth box of a match; a per-frame summary
/// indexed worst first for the errors view; the PR curves and the number
/// of match rows of an evaluation stored with its matching (in a table of
/// their own, so the version-1 `evals` table stays as it was).
const EVAL_MATCHES: &str = r#"
CREATE TABLE eval_details (
    eval_id   INTEGER PRIMARY KEY REFERENCES evals(id) ON DELETE CASCADE,
    pr_curves TEXT,
    matches   INTEGER NOT NULL
);

CREATE TABLE eval_matches (
    eval_id  INTEGER NOT NULL REFERENCES evals(id) ON DELETE CASCADE,
    frame    INTEGER NOT NULL,
    kind     TEXT NOT NULL CHECK (kind IN ('tp', 'fp', 'fn', 'idsw')),
    gt_id    INTEGER,
    track_id INTEGER,
    class_id INTEGER,
    score    REAL,
    iou      REAL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    gx1 REAL, gy1 REAL, gx2 REAL, gy2 REAL
);
CREATE INDEX eval_matches_by_frame ON eval_matches (eval_id, frame);
CREATE INDEX eval_matches_by_kind ON eval_matches (eval_id, kind, frame);

CREATE TABLE eval_frames (
    eval_id INTEGER NOT NULL REFERENCES evals(id) ON DELETE CASCADE,
    frame   INTEGER NOT NULL,
    tp      INTEGER NOT NULL,
    fp      INTEGER NOT NULL,
    fn      INTEGER NOT NULL,
    idsw    INTEGER NOT NULL,
    errors  INTEGER NOT NULL,
    PRIMARY KEY (eval_id, frame)
) WITHOUT ROWID;
CREATE INDEX eval_frames_worst ON eval_frames (eval_id, errors DESC, frame);
"#;

/// Version 7: the original file names of uploads (kept under their content
/// hash, `path` is the stored file's path as jobs and runs record it; the
/// first name a content was uploaded under is kept), and indexes for the
/// run listing's keyset orders and its link from a run to its job.
const RUN_LISTING: &str = r#"
CREATE TABLE upload_names (
    path       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) WITHOUT ROWID;
CREATE INDEX runs_by_started ON runs (started_at, id);
CREATE INDEX runs_by_detections ON runs (detections, id);
CREATE INDEX jobs_by_run ON jobs (run_id) WHERE run_id IS NOT NULL;
"#;

/// Version 5: the live streams a service manages, resumed when it starts
/// again (`spec`: the stream's settings as JSON).
const STREAMS: &str = r#"
CREATE TABLE streams (
    name       TEXT PRIMARY KEY,
    spec       TEXT NOT NULL,
    created_at REAL NOT NULL
) WITHOUT ROWID;
"#;

/// Version 1: the results schema as first released. Every statement is
/// `IF NOT EXISTS`, as databases written before migrations existed ran it on
/// each open.
const RESULTS: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS videos (
    id              INTEGER PRIMARY KEY,
    path            TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    size            INTEGER NOT NULL,
    duration        REAL NOT NULL,
    fps             REAL NOT NULL,
    width           INTEGER NOT NULL,
    height          INTEGER NOT NULL,
    codec           TEXT NOT NULL,
    frames_expected INTEGER NOT NULL,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (content_hash, path)
);

CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    video_id    INTEGER NOT NULL REFERENCES videos(id),
    cache_key   TEXT NOT NULL,
    model_path  TEXT NOT NULL,
    model_hash  TEXT NOT NULL,
    params      TEXT NOT NULL,
    versions    TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'complete', 'partial', 'failed', 'interrupted')),
    error       TEXT,
    frames      INTEGER NOT NULL DEFAULT 0,
    detections  INTEGER NOT NULL DEFAULT 0,
    tracks      INTEGER NOT NULL DEFAULT 0,
    fps         REAL,
    timings     TEXT,
    decode      TEXT,
    pid         INTEGER,
    started_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_cache_key ON runs (cache_key, status);
CREATE INDEX IF NOT EXISTS runs_by_video ON runs (video_id);

-- One row per detection. The rowid orders rows within a frame; keyset
-- pagination walks (run_id, frame, rowid).
CREATE TABLE IF NOT EXISTS detections (
    run_id    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    frame     INTEGER NOT NULL,
    t         REAL NOT NULL,
    class_id  INTEGER NOT NULL,
    score     REAL NOT NULL,
    x1        REAL NOT NULL,
    y1        REAL NOT NULL,
    x2        REAL NOT NULL,
    y2        REAL NOT NULL,
    track_id  INTEGER,
    keypoints BLOB
);
CREATE INDEX IF NOT EXISTS detections_by_run_frame ON detections (run_id, frame);
CREATE INDEX IF NOT EXISTS detections_by_run_track ON detections (run_id, track_id, frame)
    WHERE track_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS tracks (
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    track_id    INTEGER NOT NULL,
    class_id    INTEGER NOT NULL,
    first_frame INTEGER NOT NULL,
    last_frame  INTEGER NOT NULL,
    first_t     REAL NOT NULL,
    last_t      REAL NOT NULL,
    frames      INTEGER NOT NULL,
    mean_score  REAL NOT NULL,
    path_px     REAL NOT NULL,
    mean_speed  REAL NOT NULL,
    max_speed   REAL NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    PRIMARY KEY (run_id, track_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS evals (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    gt_path    TEXT NOT NULL,
    metrics    TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS evals_by_run ON evals (run_id);
"#;

/// The service's job queue, created until now by the service itself with
/// this same DDL (the same columns and indexes) in the same file. `spec`
/// holds a job's validated, typed spec; a jobs table the service created
/// before this migration gains it by `ALTER TABLE` and keeps its rows.
const JOBS: &str = r#"
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
    finished_at      REAL,
    spec             TEXT
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(state, priority DESC, id);
CREATE INDEX IF NOT EXISTS jobs_key ON jobs(job_key, state);
"#;

/// Version 2: the jobs table, with `spec` added where it predates it.
fn jobs(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch(JOBS)?;
    let has_spec = c
        .prepare("SELECT 1 FROM pragma_table_info('jobs') WHERE name = 'spec'")?
        .exists([])?;
    if !has_spec {
        c.execute_batch("ALTER TABLE jobs ADD COLUMN spec TEXT")?;
    }
    Ok(())
}

/// Version 3: every analysed frame (so a replay sees frames without
/// detections too), per-interval counts of lines and zones, and tracks'
/// ground motion. Lines and zones are named as in the run's
/// `params.spatial`.
const COUNTS: &str = r#"
CREATE TABLE frames (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    frame  INTEGER NOT NULL,
    t      REAL NOT NULL,
    PRIMARY KEY (run_id, frame)
) WITHOUT ROWID;

CREATE TABLE count_intervals (
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx     INTEGER NOT NULL,
    source  INTEGER NOT NULL,
    start_s REAL NOT NULL,
    end_s   REAL NOT NULL,
    frames  INTEGER NOT NULL,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;

CREATE TABLE line_counts (
    run_id   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL,
    line     TEXT NOT NULL,
    class_id INTEGER NOT NULL,
    n_in     INTEGER NOT NULL,
    n_out    INTEGER NOT NULL,
    PRIMARY KEY (run_id, idx, line, class_id)
) WITHOUT ROWID;

CREATE TABLE zone_counts (
    run_id    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx       INTEGER NOT NULL,
    zone      TEXT NOT NULL,
    occ_max   INTEGER NOT NULL,
    occ_sum   INTEGER NOT NULL,
    entries   INTEGER NOT NULL,
    exits     INTEGER NOT NULL,
    dwell_n   INTEGER NOT NULL,
    dwell_sum REAL NOT NULL,
    dwell_max REAL NOT NULL,
    PRIMARY KEY (run_id, idx, zone)
) WITHOUT ROWID;

CREATE TABLE zone_class_counts (
    run_id   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL,
    zone     TEXT NOT NULL,
    class_id INTEGER NOT NULL,
    occ_max  INTEGER NOT NULL,
    occ_sum  INTEGER NOT NULL,
    PRIMARY KEY (run_id, idx, zone, class_id)
) WITHOUT ROWID;

CREATE TABLE track_ground (
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    track_id   INTEGER NOT NULL,
    distance_m REAL NOT NULL,
    mean_speed REAL,
    max_speed  REAL,
    PRIMARY KEY (run_id, track_id)
) WITHOUT ROWID;
"#;

/// Version 4: `live` joins the statuses a run may have (a live stream's
/// run while it receives frames). SQLite cannot alter a CHECK constraint,
/// and rebuilding `runs` would cascade-delete every run's rows, so the
/// table's stored definition is rewritten in place, the way SQLite's
/// documentation describes for constraint changes that leave the stored
/// rows valid (every existing status is still allowed).
fn live_status(c: &Connection) -> rusqlite::Result<()> {
    let sql: String = c.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'",
        [],
        |r| r.get(0),
    )?;
    if sql.contains("'live'") {
        return Ok(());
    }
    let old = "'failed', 'interrupted')";
    if !sql.contains(old) {
        return Err(rusqlite::Error::InvalidParameterName(
            "the runs table's status constraint is not the one this migration knows".into(),
        ));
    }
    let new_sql = sql.replacen(old, "'failed', 'interrupted', 'live')", 1);
    let version: i64 = c.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
    c.execute_batch("PRAGMA writable_schema = ON")?;
    let res = c.execute(
        "UPDATE sqlite_master SET sql = ?1 WHERE type = 'table' AND name = 'runs'",
        [&new_sql],
    );
    c.execute_batch(&format!(
        "PRAGMA schema_version = {}; PRAGMA writable_schema = OFF",
        version + 1
    ))?;
    res.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn versions_count_up_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "migration {}", m.name);
        }
    }
}
