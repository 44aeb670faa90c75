//! Cancellation reaches the phases before the stages: building inference
//! sessions, and opening and probing an input.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use peregrine_core::{EngineSpec, RunSpec, RunStatus};
use peregrine_infer::Model;
use peregrine_media::{InputKind, InputSpec};
use peregrine_pipeline::{Analyzer, Engine};
use peregrine_store::{SqliteRunStore, Store};

fn data_dir() -> PathBuf {
    std::env::var_os("PEREGRINE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

fn model() -> Model {
    Model::load(&data_dir().join("models/yolox_nano.onnx"), None).unwrap()
}

/// Regression: a job cancelled while its sessions were being built went on
/// building all of them (with `threads: 100000`, for minutes).
#[test]
fn a_stopped_engine_builds_no_sessions() {
    let spec = EngineSpec {
        infer_workers: 64,
        ..Default::default()
    };
    let asked = std::sync::atomic::AtomicUsize::new(0);
    let r = Engine::start_cancellable(model(), spec, &|| {
        asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 2
    });
    assert!(matches!(r, Ok(None)), "{:?}", r.err());
    // Asked before each session: two built, the third never started.
    assert_eq!(asked.into_inner(), 3);
}

/// A run cancelled before its stages start is reported interrupted and
/// leaves no run behind.
#[test]
fn a_run_cancelled_before_it_begins_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let engine = Engine::start(model(), EngineSpec::default()).unwrap();
    let store = SqliteRunStore::open(&db, Duration::from_secs(5)).unwrap();
    let analyzer = Analyzer::new(engine, Arc::new(store), Arc::new(AtomicBool::new(false)));
    let spec = InputSpec {
        path: data_dir().join("videos/traffic_intersection_cctv_640x480.mp4"),
        kind: InputKind::File,
    };
    let report =
        analyzer.analyze_cancellable(&spec, &RunSpec::default(), 0, &AtomicBool::new(true));
    assert_eq!(
        (report.status, report.run_id, report.frames),
        (RunStatus::Interrupted, None, 0)
    );
    assert!(Store::open(&db).unwrap().runs().unwrap().is_empty());
}
