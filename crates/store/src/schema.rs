//! Schema and migrations.

pub(crate) const VERSION: i64 = 1;

pub(crate) const SCHEMA: &str = r#"
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
