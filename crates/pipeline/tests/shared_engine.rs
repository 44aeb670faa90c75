//! One engine serves runs with different settings at once, and a run's
//! results reach whatever implements the sink traits (here an in-memory
//! store, not SQLite).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use peregrine_core::{
    CachedRun, EngineSpec, FrameDetections, RunOutcome, RunSink, RunSpec, RunStart, RunStatus,
    RunStore, SinkError, SinkErrorKind, TrackSummary,
};
use peregrine_infer::Model;
use peregrine_media::{InputKind, InputSpec};
use peregrine_pipeline::{Analyzer, Engine};

fn data_dir() -> PathBuf {
    std::env::var_os("PEREGRINE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

fn clip() -> InputSpec {
    InputSpec {
        path: data_dir().join("videos/traffic_intersection_cctv_640x480.mp4"),
        kind: InputKind::File,
    }
}

/// What one run delivered.
#[derive(Default)]
struct Recorded {
    frames: Vec<FrameDetections>,
    tracks: Vec<TrackSummary>,
    outcome: Option<RunOutcome>,
    params: Option<serde_json::Value>,
}

/// Keeps runs in memory; `fail_frames_after` makes frame writes fail like
/// a busy database once that many batches were taken.
#[derive(Default)]
struct MemoryStore {
    runs: Mutex<Vec<Arc<Mutex<Recorded>>>>,
    fail_frames_after: Option<usize>,
}

struct MemorySink {
    id: i64,
    run: Arc<Mutex<Recorded>>,
    batches: usize,
    fail_after: Option<usize>,
}

impl RunStore for MemoryStore {
    fn cached(&self, _: &str) -> Result<Option<CachedRun>, SinkError> {
        Ok(None)
    }

    fn begin(&self, start: &RunStart) -> Result<Box<dyn RunSink>, SinkError> {
        let run = Arc::new(Mutex::new(Recorded {
            params: Some(start.params.clone()),
            ..Default::default()
        }));
        let mut runs = self.runs.lock().unwrap();
        runs.push(run.clone());
        Ok(Box::new(MemorySink {
            id: runs.len() as i64,
            run,
            batches: 0,
            fail_after: self.fail_frames_after,
        }))
    }
}

impl RunSink for MemorySink {
    fn run_id(&self) -> i64 {
        self.id
    }

    fn frames(&mut self, frames: &[FrameDetections]) -> Result<(), SinkError> {
        if self.fail_after.is_some_and(|n| self.batches >= n) {
            return Err(SinkError {
                kind: SinkErrorKind::Busy,
                message: "memory: busy".into(),
            });
        }
        self.batches += 1;
        self.run.lock().unwrap().frames.extend_from_slice(frames);
        Ok(())
    }

    fn tracks(&mut self, tracks: &[TrackSummary]) -> Result<(), SinkError> {
        self.run.lock().unwrap().tracks.extend_from_slice(tracks);
        Ok(())
    }

    fn finish(&mut self, outcome: &RunOutcome) -> Result<(), SinkError> {
        let mut r = self.run.lock().unwrap();
        assert!(r.outcome.is_none(), "a run is finished once");
        r.outcome = Some(outcome.clone());
        Ok(())
    }
}

fn engine() -> Engine {
    let model = Model::load(&data_dir().join("models/yolox_nano.onnx"), None).unwrap();
    Engine::start(
        model,
        EngineSpec {
            intra_threads: 1,
            infer_workers: 2,
            ..Default::default()
        },
    )
    .unwrap()
}

fn run_spec(conf: f32, track: bool) -> RunSpec {
    let mut r = RunSpec::default();
    r.detector.conf = conf;
    r.sampling.end = Some(2.0);
    if !track {
        r.tracking = None;
    }
    r
}

/// Two runs with different thresholds share one engine at the same time;
/// each frame is filtered by its own run's thresholds. Boxes scoring 0.6
/// or more survive NMS whatever the lower threshold (only a higher box can
/// suppress one), so the strict run holds exactly the loose run's boxes
/// from 0.6 up.
#[test]
fn runs_with_different_thresholds_share_one_engine() {
    let store = Arc::new(MemoryStore::default());
    let analyzer = Analyzer::new(engine(), store.clone(), Arc::new(AtomicBool::new(false)));
    let (loose, strict) = (run_spec(0.25, false), run_spec(0.6, false));
    let input = clip();
    let reports = std::thread::scope(|s| {
        let a = s.spawn(|| analyzer.analyze(&input, &loose, 0));
        let b = s.spawn(|| analyzer.analyze(&input, &strict, 1));
        [a.join().unwrap(), b.join().unwrap()]
    });
    for r in &reports {
        assert_eq!(r.status, RunStatus::Complete, "{:?}", r.error);
    }
    let runs = store.runs.lock().unwrap();
    let by_conf = |conf: f64| {
        let run = runs
            .iter()
            .map(|r| r.lock().unwrap())
            .find(|r| (r.params.as_ref().unwrap()["conf"].as_f64().unwrap() - conf).abs() < 1e-6)
            .expect("a run with that conf");
        run.frames.clone()
    };
    let (lo, hi) = (by_conf(0.25), by_conf(0.6));
    assert_eq!(lo.len(), 60, "2 s at 30 fps");
    assert_eq!(lo.len(), hi.len());
    let mut strict_boxes = 0;
    for (l, h) in lo.iter().zip(&hi) {
        assert_eq!(
            (l.meta.index, l.meta.pts),
            (h.meta.index, h.meta.pts),
            "same frames in order"
        );
        let kept: Vec<_> = l
            .detections
            .iter()
            .filter(|d| d.score >= 0.6)
            .cloned()
            .collect();
        assert_eq!(kept, h.detections, "frame {}", l.meta.index);
        strict_boxes += h.detections.len();
    }
    assert!(strict_boxes > 0, "the clip has confident boxes");
    assert!(
        lo.iter().map(|f| f.detections.len()).sum::<usize>() > strict_boxes,
        "the loose run keeps more"
    );
}

/// Tracking and statistics run as processors before the sink: every frame
/// arrives once and in order, tracked boxes carry ids, finished tracks
/// arrive once each, and the outcome's totals match what was written.
#[test]
fn a_sink_gets_every_frame_in_order_and_each_track_once() {
    let store = Arc::new(MemoryStore::default());
    let analyzer = Analyzer::new(engine(), store.clone(), Arc::new(AtomicBool::new(false)));
    let report = analyzer.analyze(&clip(), &run_spec(0.25, true), 0);
    assert_eq!(report.status, RunStatus::Complete, "{:?}", report.error);
    let runs = store.runs.lock().unwrap();
    let run = runs[0].lock().unwrap();
    let indices: Vec<u64> = run.frames.iter().map(|f| f.meta.index).collect();
    assert_eq!(indices, (0..60).collect::<Vec<_>>());
    let outcome = run.outcome.as_ref().unwrap();
    assert_eq!(outcome.frames, 60);
    let written: usize = run.frames.iter().map(|f| f.detections.len()).sum();
    assert_eq!(outcome.detections as usize, written);
    assert_eq!(outcome.tracks as usize, run.tracks.len());
    assert!(!run.tracks.is_empty());
    let mut ids: Vec<u32> = run.tracks.iter().map(|t| t.track_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), run.tracks.len(), "each track once");
    for d in run.frames.iter().flat_map(|f| &f.detections) {
        assert!(
            d.track_id.is_some() || d.score >= 0.6,
            "untracked boxes only from 0.6"
        );
        if let Some(id) = d.track_id {
            assert!(ids.binary_search(&id).is_ok(), "track {id} has a summary");
        }
    }
}

/// A sink that fails like a busy database fails the run, marked retryable,
/// with the sink's message.
#[test]
fn a_busy_sink_fails_the_run_as_retryable() {
    let store = Arc::new(MemoryStore {
        fail_frames_after: Some(0),
        ..Default::default()
    });
    let analyzer = Analyzer::new(engine(), store.clone(), Arc::new(AtomicBool::new(false)));
    let report = analyzer.analyze(&clip(), &run_spec(0.25, false), 0);
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.error.as_deref(), Some("memory: busy"));
    assert!(report.retryable);
    let runs = store.runs.lock().unwrap();
    let run = runs[0].lock().unwrap();
    assert_eq!(run.outcome.as_ref().unwrap().status, RunStatus::Failed);
}
