//! Schema migrations: databases written before migrations existed, the
//! service's own jobs table, newer databases, concurrent opens and failing
//! steps.

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use peregrine_core::{BBox, Keypoint};
use peregrine_store::{DetectionQuery, DetectionRow, Migration, Step, Store, TrackRow, MIGRATIONS};
use rusqlite::types::Value as Sql;
use rusqlite::{params, Connection};
use serde_json::json;

/// The schema as released before migrations existed, verbatim: such
/// databases hold it with `schema_version` 1.
const V1_SCHEMA: &str = r#"
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

/// The jobs table as the service creates it itself, before migration 2.
const SERVICE_JOBS_SCHEMA: &str = r#"
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

fn latest() -> i64 {
    MIGRATIONS.last().unwrap().version
}

fn schema_version(c: &Connection) -> String {
    c.query_row(
        "SELECT value FROM meta WHERE key = 'schema_version'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// A database as the pre-migration code left it: the version-1 DDL and
/// `schema_version` 1.
fn v1_database(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.execute_batch(V1_SCHEMA).unwrap();
    c.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
        ["1"],
    )
    .unwrap();
    c
}

/// Every row of `table` in `order`, as SQLite holds it.
fn dump(c: &Connection, table: &str, order: &str) -> Vec<Vec<Sql>> {
    let mut st = c
        .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))
        .unwrap();
    let n = st.column_count();
    st.query_map([], |r| (0..n).map(|i| r.get::<_, Sql>(i)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn column_names(c: &Connection, table: &str) -> Vec<String> {
    let mut st = c
        .prepare(&format!(
            "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
        ))
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// (name, type, notnull, default, pk) of each column, in order.
fn column_info(c: &Connection, table: &str) -> Vec<Vec<Sql>> {
    let mut st = c
        .prepare(&format!(
            "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{table}') ORDER BY cid"
        ))
        .unwrap();
    st.query_map([], |r| (0..5).map(|i| r.get::<_, Sql>(i)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn index_sql(c: &Connection, table: &str) -> Vec<(String, String)> {
    let mut st = c
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 \
             AND sql IS NOT NULL ORDER BY name",
        )
        .unwrap();
    st.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Keypoints as the store has always laid them out: x, y, score as
/// little-endian f32.
fn blob(k: &[Keypoint]) -> Vec<u8> {
    k.iter()
        .flat_map(|p| [p.x, p.y, p.score])
        .flat_map(f32::to_le_bytes)
        .collect()
}

fn all_detections(s: &Store, run: i64) -> Vec<DetectionRow> {
    let mut all = Vec::new();
    s.for_each_detection(run, |d| {
        all.push(d.clone());
        Ok::<_, ()>(())
    })
    .unwrap()
    .unwrap();
    all
}

fn paged_detections(s: &Store, run: i64, mut q: DetectionQuery) -> Vec<DetectionRow> {
    let mut rows = Vec::new();
    loop {
        let page = s.detections_page(run, &q).unwrap();
        rows.extend(page.items);
        match page.next {
            Some(c) => q.after = Some(c),
            None => return rows,
        }
    }
}

/// The tables and indexes of version 1, with their SQL.
fn v1_objects(c: &Connection) -> Vec<Vec<Sql>> {
    dump(
        c,
        "sqlite_master WHERE tbl_name IN ('meta', 'videos', 'runs', 'detections', 'tracks', 'evals')",
        "name",
    )
}

#[test]
fn version_1_database_migrates_and_reads_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let c = v1_database(&path);
    c.execute(
        "INSERT INTO videos (path, content_hash, size, duration, fps, width, height, codec, frames_expected) \
         VALUES ('/videos/a.mp4', 'abc', 1000, 2.0, 25.0, 640, 480, 'h264', 50)",
        [],
    )
    .unwrap();
    let params_json =
        json!({"conf": 0.25, "classes": [0, 2], "labels": ["person", "bicycle", "car"]});
    let versions_json = json!({"peregrine": "0.1.0", "ort": "1.20"});
    c.execute(
        "INSERT INTO runs (video_id, cache_key, model_path, model_hash, params, versions, status, pid) \
         VALUES (1, 'key1', 'm.onnx', 'mh', ?1, ?2, 'running', ?3)",
        params![
            params_json.to_string(),
            versions_json.to_string(),
            std::process::id() as i64
        ],
    )
    .unwrap();
    let kp = [
        Keypoint {
            x: 1.5,
            y: 2.25,
            score: 0.875,
        },
        Keypoint {
            x: 3.0,
            y: 4.5,
            score: 0.5,
        },
    ];
    let expected = vec![
        DetectionRow {
            frame: 0,
            t: 0.0,
            class_id: 0,
            score: 0.9,
            bbox: BBox::new(1.0, 2.0, 11.0, 22.0),
            track_id: Some(1),
            keypoints: kp.to_vec(),
        },
        DetectionRow {
            frame: 0,
            t: 0.0,
            class_id: 2,
            score: 0.3,
            bbox: BBox::new(100.5, 50.25, 120.0, 70.0),
            track_id: None,
            keypoints: Vec::new(),
        },
        DetectionRow {
            frame: 1,
            t: 0.04,
            class_id: 0,
            score: 0.8,
            bbox: BBox::new(2.0, 3.0, 12.0, 23.0),
            track_id: Some(1),
            keypoints: kp[..1].to_vec(),
        },
        DetectionRow {
            frame: 3,
            t: 0.12,
            class_id: 2,
            score: 0.7,
            bbox: BBox::new(300.0, 200.0, 340.0, 230.0),
            track_id: Some(2),
            keypoints: Vec::new(),
        },
    ];
    for d in &expected {
        c.execute(
            "INSERT INTO detections (run_id, frame, t, class_id, score, x1, y1, x2, y2, track_id, keypoints) \
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                d.frame as i64,
                d.t,
                d.class_id,
                d.score,
                d.bbox.x1,
                d.bbox.y1,
                d.bbox.x2,
                d.bbox.y2,
                d.track_id,
                (!d.keypoints.is_empty()).then(|| blob(&d.keypoints))
            ],
        )
        .unwrap();
    }
    let tracks = vec![
        TrackRow {
            track_id: 1,
            class_id: 0,
            first_frame: 0,
            last_frame: 1,
            first_t: 0.0,
            last_t: 0.04,
            frames: 2,
            mean_score: 0.85,
            path_px: 1.5,
            mean_speed: 35.0,
            max_speed: 36.5,
            region: BBox::new(1.0, 2.0, 12.0, 23.0),
        },
        TrackRow {
            track_id: 2,
            class_id: 2,
            first_frame: 3,
            last_frame: 3,
            first_t: 0.12,
            last_t: 0.12,
            frames: 1,
            mean_score: 0.7,
            path_px: 0.0,
            mean_speed: 0.0,
            max_speed: 0.0,
            region: BBox::new(300.0, 200.0, 340.0, 230.0),
        },
    ];
    for t in &tracks {
        c.execute(
            "INSERT OR REPLACE INTO tracks (run_id, track_id, class_id, first_frame, last_frame, first_t, last_t, \
             frames, mean_score, path_px, mean_speed, max_speed, x1, y1, x2, y2) \
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
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
            ],
        )
        .unwrap();
    }
    c.execute(
        "UPDATE runs SET status = 'complete', error = NULL, frames = 4, detections = 4, tracks = 2, fps = 123.5, \
         timings = ?1, decode = ?2, finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 1",
        params![
            json!({"decode_ms": 1.5}).to_string(),
            json!({"frames_lost": 0}).to_string()
        ],
    )
    .unwrap();
    c.execute(
        "INSERT INTO evals (run_id, kind, gt_path, metrics) VALUES (1, 'coco', 'gt.json', ?1)",
        [json!({"map": 0.5}).to_string()],
    )
    .unwrap();

    let (started_at, finished_at): (String, String) = c
        .query_row(
            "SELECT started_at, finished_at FROM runs WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let tables = [
        ("videos", "id"),
        ("runs", "id"),
        ("detections", "rowid"),
        ("tracks", "run_id, track_id"),
        ("evals", "id"),
    ];
    let rows_before: Vec<_> = tables.iter().map(|(t, o)| dump(&c, t, o)).collect();
    let objects_before = v1_objects(&c);
    drop(c);

    let s = Store::open(&path).unwrap();

    let run = json!({
        "id": 1, "video_id": 1, "video_path": "/videos/a.mp4", "content_hash": "abc",
        "width": 640, "height": 480, "video_fps": 25.0, "cache_key": "key1",
        "model_path": "m.onnx", "model_hash": "mh", "params": params_json,
        "versions": versions_json, "status": "complete", "error": null,
        "frames": 4, "detections": 4, "tracks": 2, "fps": 123.5,
        "timings": {"decode_ms": 1.5}, "decode": {"frames_lost": 0},
        "started_at": started_at, "finished_at": finished_at,
    });
    assert_eq!(
        serde_json::to_value(s.runs().unwrap()).unwrap(),
        json!([run])
    );
    assert_eq!(serde_json::to_value(s.run(1).unwrap()).unwrap(), run);
    assert_eq!(
        serde_json::to_value(s.find_cached_run("key1").unwrap()).unwrap(),
        run
    );
    assert_eq!(all_detections(&s, 1), expected);
    let q = DetectionQuery {
        limit: 1,
        ..Default::default()
    };
    assert_eq!(paged_detections(&s, 1, q), expected);
    let one_track = DetectionQuery {
        track_id: Some(1),
        limit: 1,
        ..Default::default()
    };
    assert_eq!(
        paged_detections(&s, 1, one_track),
        expected[..1]
            .iter()
            .chain(&expected[2..3])
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(s.tracks(1).unwrap(), tracks);
    drop(s);

    let c = Connection::open(&path).unwrap();
    assert_eq!(schema_version(&c), latest().to_string());
    let rows_after: Vec<_> = tables.iter().map(|(t, o)| dump(&c, t, o)).collect();
    assert_eq!(rows_after, rows_before, "version-1 rows are untouched");
    // The one change to a version-1 table: runs may also be `live`
    // (migration "live runs"); its stored rows are untouched above.
    let live = "'failed', 'interrupted', 'live')";
    let expected: Vec<Vec<Sql>> = objects_before
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|v| match v {
                    Sql::Text(t) if t.starts_with("CREATE TABLE runs") => {
                        Sql::Text(t.replacen("'failed', 'interrupted')", live, 1))
                    }
                    other => other,
                })
                .collect()
        })
        .collect();
    // Migration "upload names, run listing" adds indexes on runs (for
    // the listing's orders); the version-1 objects are as they were.
    let (added, v1): (Vec<_>, Vec<_>) = v1_objects(&c).into_iter().partition(|row| {
        matches!(&row[1], Sql::Text(n) if n == "runs_by_started" || n == "runs_by_detections")
    });
    assert_eq!(added.len(), 2);
    assert_eq!(
        v1, expected,
        "version-1 tables are untouched but for the live status"
    );
    assert!(column_names(&c, "jobs").contains(&"spec".to_string()));
}

/// A job row as the service inserts and then claims it.
fn insert_service_job(c: &Connection) {
    c.execute(
        "INSERT INTO jobs (state, video, model, params, job_key, priority, created_at) \
         VALUES ('queued', '/videos/a.mp4', 'm.onnx', '{\"conf\":0.25}', 'jk', 3, 1700000000.5)",
        [],
    )
    .unwrap();
    c.execute(
        "UPDATE jobs SET state = 'running', attempts = 1, owner_pid = 4242, started_at = 1700000001.25 \
         WHERE id = 1",
        [],
    )
    .unwrap();
}

#[test]
fn jobs_table_created_by_the_service_gains_spec_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.db");
    drop(Store::open(&fresh).unwrap());
    let fresh = Connection::open(&fresh).unwrap();

    // A results database the service added its table to, and a file the
    // service created before any store opened it.
    for with_results in [true, false] {
        let path = dir.path().join(format!("service-{with_results}.db"));
        let c = if with_results {
            v1_database(&path)
        } else {
            Connection::open(&path).unwrap()
        };
        c.execute_batch(SERVICE_JOBS_SCHEMA).unwrap();
        insert_service_job(&c);
        let columns_before = column_names(&c, "jobs");
        let rows_before = dump(&c, "jobs", "id");
        drop(c);

        drop(Store::open(&path).unwrap());

        let c = Connection::open(&path).unwrap();
        assert_eq!(schema_version(&c), latest().to_string());
        let mut columns = columns_before.clone();
        columns.push("spec".into());
        assert_eq!(column_names(&c, "jobs"), columns);
        let mut row = rows_before[0].clone();
        row.push(Sql::Null);
        assert_eq!(dump(&c, "jobs", "id"), vec![row], "the job is kept");
        assert_eq!(
            column_info(&c, "jobs"),
            column_info(&fresh, "jobs"),
            "a migrated jobs table is the one a new database gets"
        );
        assert_eq!(index_sql(&c, "jobs"), index_sql(&fresh, "jobs"));
        assert_eq!(
            index_sql(&c, "jobs")
                .into_iter()
                .map(|(name, _)| name)
                .collect::<Vec<_>>(),
            ["jobs_by_run", "jobs_key", "jobs_queue"]
        );
    }
}

#[test]
fn new_and_empty_files_get_every_migration() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::File::create(&empty).unwrap();
    for path in [dir.path().join("new.db"), empty] {
        drop(Store::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        assert_eq!(schema_version(&c), latest().to_string());
        assert_eq!(column_names(&c, "jobs").last().unwrap(), "spec");
        assert!(column_names(&c, "detections").contains(&"keypoints".to_string()));
    }
}

#[test]
fn newer_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    let c = v1_database(&path);
    c.execute(
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(c);
    let bytes = std::fs::read(&path).unwrap();

    let err = Store::open(&path)
        .err()
        .expect("a newer database is refused");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: cannot open database: database schema version 99 is newer than this peregrine ({})",
            path.display(),
            latest()
        )
    );
    assert!(
        std::fs::read(&path).unwrap() == bytes,
        "the file is unchanged"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["newer.db"], "no WAL or journal was created");
}

#[test]
fn concurrent_opens_of_a_new_database_migrate_once() {
    // A step that fails when applied twice, so a migration run by two
    // openers shows.
    let once = Migration {
        version: latest() + 1,
        name: "once",
        apply: Step::Sql("ALTER TABLE jobs ADD COLUMN once INTEGER"),
    };
    let migrations: Arc<Vec<Migration>> =
        Arc::new(MIGRATIONS.iter().copied().chain([once]).collect());
    let dir = tempfile::tempdir().unwrap();
    for round in 0..8 {
        let path = Arc::new(dir.path().join(format!("race-{round}.db")));
        let start = Arc::new(Barrier::new(4));
        let openers: Vec<_> = (0..4)
            .map(|_| {
                let (path, start, migrations) = (path.clone(), start.clone(), migrations.clone());
                std::thread::spawn(move || {
                    start.wait();
                    Store::open_with_migrations(&path, Duration::from_secs(30), &migrations)
                        .map(drop)
                })
            })
            .collect();
        for o in openers {
            o.join().unwrap().unwrap();
        }
        let c = Connection::open(&*path).unwrap();
        assert_eq!(schema_version(&c), (latest() + 1).to_string());
        assert!(column_names(&c, "jobs").ends_with(&["spec".into(), "once".into()]));
    }
}

#[test]
fn failing_migration_rolls_back_and_keeps_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    drop(Store::open(&path).unwrap());
    let broken = Migration {
        version: latest() + 1,
        name: "broken",
        apply: Step::Sql(
            "CREATE TABLE half_done (x INTEGER); \
             ALTER TABLE jobs ADD COLUMN half_done INTEGER; \
             INSERT INTO no_such_table VALUES (1);",
        ),
    };
    let migrations: Vec<Migration> = MIGRATIONS.iter().copied().chain([broken]).collect();

    let err = Store::open_with_migrations(&path, Duration::from_secs(5), &migrations)
        .err()
        .expect("the broken step fails the open");
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(
        msg.starts_with(&format!(
            "{}: cannot open database: migration {} (broken) failed: no such table",
            path.display(),
            latest() + 1
        )),
        "{msg}"
    );

    let c = Connection::open(&path).unwrap();
    assert_eq!(schema_version(&c), latest().to_string());
    let half_done: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'half_done'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(half_done, 0, "the step's table was rolled back");
    assert!(!column_names(&c, "jobs").contains(&"half_done".to_string()));
    drop(c);
    drop(Store::open(&path).expect("the database still opens"));
}
