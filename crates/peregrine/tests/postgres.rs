//! `--db postgres://...`: `analyze` writes to PostgreSQL and `runs`,
//! `tracks` and `export` read from it, with the same results as SQLite.
//! Skips (printing `SKIPPED`) only where no PostgreSQL server answers.

mod common;

use common::*;
use peregrine_store::pg::TestDb;

#[test]
fn a_video_analysed_into_postgres_reads_back_as_from_sqlite() {
    let Some(pg) = TestDb::create("cli") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lite = dir.path().join("p.db");
    let clip = video("traffic_intersection_cctv_640x480.mp4");
    let flags = ["--end", "1.5", "--threads", "1"];
    let a = analyze(&clip, &lite, &flags);
    assert_eq!(a.code, 0, "{}", a.stderr);
    let lite_run = a.json_lines()[0]["run_id"].as_u64().unwrap().to_string();
    let lite_db = s(&lite);

    let url = format!("sqlite:{lite_db}");
    let b = analyze(&clip, std::path::Path::new(&pg.url), &flags);
    assert_eq!(b.code, 0, "{}", b.stderr);
    let j = &b.json_lines()[0];
    assert_eq!(j["status"], "complete", "{j}");
    let pg_run = j["run_id"].as_u64().unwrap().to_string();

    // Detections (with track ids) and tracks are identical.
    let export = |db: &str, run: &str| {
        let r = peregrine(&["export", run, "--db", db], &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    };
    let rows = export(&url, &lite_run);
    assert!(rows.lines().count() > 20, "too few detections: {rows}");
    assert!(rows.contains("\"track_id\":1"), "no tracks: {rows}");
    assert_eq!(rows, export(&pg.url, &pg_run));
    let tracks = |db: &str, run: &str| {
        let r = peregrine(&["tracks", run, "--db", db, "--json"], &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    };
    assert_eq!(tracks(lite_db, &lite_run), tracks(&pg.url, &pg_run));

    // The second analysis of the same clip is served from the cache.
    let c = analyze(&clip, std::path::Path::new(&pg.url), &flags);
    assert_eq!(c.json_lines()[0]["cache_hit"], true, "{}", c.stdout);
    let runs = peregrine(&["runs", "--db", &pg.url, "--json"], &[]);
    assert_eq!(runs.code, 0, "{}", runs.stderr);
    let runs: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["status"], "complete");
}

#[test]
fn postgres_errors_are_one_line() {
    // No server on port 1: the URL (without its password) and the cause.
    let r = peregrine(
        &["runs", "--db", "postgres://me:secret@127.0.0.1:1/nowhere"],
        &[],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("postgres://me@127.0.0.1:1/nowhere") && !r.stderr.contains("secret"),
        "{}",
        r.stderr
    );
    // A command that reads SQLite only says so.
    let r = peregrine(&["counts", "1", "--db", "postgres://me@127.0.0.1:1/x"], &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("SQLite databases only"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}
