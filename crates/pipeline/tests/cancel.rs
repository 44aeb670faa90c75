//! Cancellation reaches the phases before the stages: building inference
//! sessions, and opening and probing an input.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use peregrine_infer::Model;
use peregrine_media::{InputKind, InputSpec};
use peregrine_pipeline::{AnalyzeOptions, Analyzer, PipelineError};
use peregrine_store::Store;

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
fn a_stopped_analyzer_builds_no_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let opts = AnalyzeOptions {
        infer_workers: 64,
        ..Default::default()
    };
    for (shared, own) in [(true, false), (false, true)] {
        let r = Analyzer::new_cancellable(
            model(),
            opts.clone(),
            dir.path().join("p.db"),
            Duration::from_secs(5),
            Arc::new(AtomicBool::new(shared)),
            &AtomicBool::new(own),
        );
        assert!(matches!(r, Err(PipelineError::Cancelled)), "{:?}", r.err());
    }
}

/// A run cancelled before its stages start is reported interrupted and
/// leaves no run behind.
#[test]
fn a_run_cancelled_before_it_begins_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let analyzer = Analyzer::new(
        model(),
        AnalyzeOptions::default(),
        db.clone(),
        Duration::from_secs(5),
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    let spec = InputSpec {
        path: data_dir().join("videos/traffic_intersection_cctv_640x480.mp4"),
        kind: InputKind::File,
    };
    let report = analyzer.analyze_cancellable(&spec, 0, &AtomicBool::new(true));
    assert_eq!(
        (report.status.as_str(), report.run_id, report.frames),
        ("interrupted", None, 0)
    );
    assert!(Store::open(&db).unwrap().runs().unwrap().is_empty());
}
