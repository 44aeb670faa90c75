//! Detection write throughput through the pipeline's interface, SQLite
//! (batched inserts) against PostgreSQL (binary `COPY`), side by side in
//! one run: the same synthetic run (FRAMES frames of PER_FRAME detections,
//! written in batches of 128 frames as the pipeline does) into each, best
//! of ROUNDS. Used by `bench/scale/run.sh`.
//!
//!   cargo run --release -p peregrine-store --example write_rate -- \
//!       postgres://postgres@127.0.0.1:5432/postgres [FRAMES] [PER_FRAME] [ROUNDS]
//!
//! The URL names an existing database; the example writes into a database
//! of its own beside it and drops it.

use std::time::{Duration, Instant};

use peregrine_core::{
    BBox, Detection, FrameDetections, FrameMeta, RunOutcome, RunStart, RunStatus, RunStore,
    VideoRecord,
};
use peregrine_store::{PgRunStore, SqliteRunStore};
use serde_json::json;

fn start(key: &str) -> RunStart {
    RunStart {
        video: VideoRecord {
            path: "/bench.mp4".into(),
            content_hash: "bench".into(),
            size: 1,
            duration: 1.0,
            fps: 30.0,
            width: 1280,
            height: 720,
            codec: "h264".into(),
            frames_expected: 0,
        },
        cache_key: key.into(),
        model_path: "m".into(),
        model_hash: "m".into(),
        params: json!({}),
        versions: json!({}),
    }
}

fn frames(n: u64, per: usize) -> Vec<FrameDetections> {
    (0..n)
        .map(|i| FrameDetections {
            meta: FrameMeta {
                source: 0,
                index: i,
                pts: i as f64 / 30.0,
                width: 1280,
                height: 720,
            },
            detections: (0..per)
                .map(|k| {
                    let mut d = Detection::new(
                        (k % 80) as u16,
                        0.5,
                        BBox::new(k as f32, i as f32 % 700.0, k as f32 + 40.0, 700.0),
                    );
                    d.track_id = Some(k as u32 + 1);
                    d
                })
                .collect(),
        })
        .collect()
}

/// Seconds to write `all` as one run.
fn write(store: &dyn RunStore, key: &str, all: &[FrameDetections]) -> f64 {
    let t = Instant::now();
    let mut sink = store.begin(&start(key)).expect("begin");
    for batch in all.chunks(128) {
        sink.frames(batch).expect("frames");
    }
    sink.finish(&RunOutcome {
        status: RunStatus::Complete,
        error: None,
        frames: all.len() as u64,
        detections: 0,
        tracks: 0,
        fps: 0.0,
        timings: json!({}),
        decode: json!({}),
    })
    .expect("finish");
    t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .cloned()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let arg = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (n, per, rounds) = (arg(1, 3000), arg(2, 30) as usize, arg(3, 3));
    std::env::set_var("PEREGRINE_TEST_PG", &url);
    let pg = peregrine_store::pg::TestDb::create("bench").expect("a PostgreSQL server");
    let dir = tempfile::tempdir().expect("temp dir");
    let lite = SqliteRunStore::open(&dir.path().join("bench.db"), Duration::from_secs(5)).unwrap();
    let pgs = PgRunStore::open(&pg.url, Duration::from_secs(5)).unwrap();
    let all = frames(n, per);
    let rows = (n as usize * per) as f64;
    let (mut best_lite, mut best_pg) = (f64::MAX, f64::MAX);
    // Alternating rounds, so both see the same machine load.
    for r in 0..rounds {
        best_lite = best_lite.min(write(&lite, &format!("l{r}"), &all));
        best_pg = best_pg.min(write(&pgs, &format!("p{r}"), &all));
    }
    println!("| engine | rows | best of {rounds} (s) | rows/s | vs SQLite |");
    println!("|---|---|---|---|---|");
    println!(
        "| SQLite (WAL, batched INSERT, 128 frames/transaction) | {rows} | {best_lite:.3} | {:.0} | 1.00 |",
        rows / best_lite
    );
    println!(
        "| PostgreSQL 15 (binary COPY, 128 frames/transaction) | {rows} | {best_pg:.3} | {:.0} | {:.2} |",
        rows / best_pg,
        best_lite / best_pg
    );
}
