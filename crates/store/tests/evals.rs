//! Evaluations with their matching through both engines: stored in one
//! transaction, read back identically (records, keyset pages of matches
//! with filters, errors worst first with frame times), and deleted with
//! their run. PostgreSQL parts print `SKIPPED` and pass only where no
//! server answers.

use std::time::Duration;

use peregrine_core::{
    BBox, Detection, FrameDetections, FrameMeta, RunOutcome, RunStart, RunStatus, RunStore,
    VideoRecord,
};
use peregrine_eval::MatchKind;
use peregrine_store::pg::TestDb;
use peregrine_store::{
    DbTarget, MatchQuery, MatchRow, NewEval, PgRunStore, Results, SqliteRunStore,
};
use serde_json::json;

const T: Duration = Duration::from_secs(5);

fn write_run(store: &dyn RunStore) -> i64 {
    let start = RunStart {
        video: VideoRecord {
            path: "/videos/a.mp4".into(),
            content_hash: "abc".into(),
            size: 10,
            duration: 2.0,
            fps: 10.0,
            width: 640,
            height: 480,
            codec: "h264".into(),
            frames_expected: 20,
        },
        cache_key: "k".into(),
        model_path: "m.onnx".into(),
        model_hash: "mh".into(),
        params: json!({}),
        versions: json!({}),
    };
    let mut sink = store.begin(&start).unwrap();
    let frames: Vec<FrameDetections> = (0..20u64)
        .map(|i| FrameDetections {
            meta: FrameMeta {
                source: 0,
                index: i,
                pts: i as f64 / 10.0,
                width: 640,
                height: 480,
            },
            detections: vec![Detection::new(0, 0.5, BBox::new(1.0, 2.0, 3.0, 4.0))],
        })
        .collect();
    sink.frames(&frames).unwrap();
    sink.finish(&RunOutcome {
        status: RunStatus::Complete,
        error: None,
        frames: 20,
        detections: 20,
        tracks: 0,
        fps: 1.0,
        timings: json!({}),
        decode: json!({}),
    })
    .unwrap();
    sink.run_id()
}

/// Frame f has f % 5 errors of varied kinds and one match; frame 25 was
/// never analysed (no time).
fn matches() -> Vec<MatchRow> {
    let kinds = [MatchKind::Fp, MatchKind::Fn, MatchKind::Idsw];
    let mut out = Vec::new();
    for f in (0..20u64).chain([25]) {
        out.push(MatchRow {
            frame: f,
            kind: MatchKind::Tp,
            gt_id: Some(f as i64),
            track_id: Some(i64::from(u32::MAX)),
            class_id: Some(0),
            score: Some(0.75),
            iou: Some(0.625),
            bbox: [1.5, 2.5, 3.5, 4.5],
            gt_box: Some([1.0, 2.0, 3.0, 4.0]),
        });
        for e in 0..(f % 5) {
            let kind = kinds[(e as usize + f as usize) % 3];
            out.push(MatchRow {
                frame: f,
                kind,
                gt_id: (kind != MatchKind::Fp).then_some(7),
                track_id: (kind != MatchKind::Fn).then_some(9),
                class_id: Some(0),
                score: (kind != MatchKind::Fn).then_some(0.25),
                iou: (kind == MatchKind::Idsw).then_some(0.5),
                bbox: [e as f32, 0.0, 10.0, 10.0],
                gt_box: (kind != MatchKind::Fp).then_some([0.0, 0.0, 9.0, 9.0]),
            });
        }
    }
    out
}

/// Everything readable about the evaluation, engine-neutral.
fn read_back(r: &mut Results, run: i64) -> serde_json::Value {
    let rows = matches();
    let metrics = json!({"combined": {"fp": 3}});
    let curves =
        json!({"iou": 0.5, "classes": {"a": [{"recall": 0.0, "precision": 1.0, "score": 0.9}]}});
    let id = r
        .save_eval_matched(&NewEval {
            run_id: run,
            kind: "mot",
            gt_path: "seq/gt/gt.txt",
            metrics: &metrics,
            pr_curves: Some(&curves),
            matches: &rows,
        })
        .unwrap();
    let old = r
        .save_eval(run, "det", "x.txt", &json!({"ap": 0.5}))
        .unwrap();
    let evals = r.evals(run).unwrap();
    assert_eq!(evals.len(), 2);
    assert_eq!(evals[0].matches, Some(rows.len() as u64));
    assert_eq!(evals[0].pr_curves.as_ref(), Some(&curves));
    assert_eq!(evals[0].metrics, metrics);
    assert_eq!(evals[1].id, old);
    assert_eq!(evals[1].matches, None, "stored without matching");
    assert!(
        evals[0].created_at.ends_with('Z'),
        "{}",
        evals[0].created_at
    );
    assert!(r.eval(id + 1000).unwrap().is_none());
    assert!(r.eval_errors(id + 1000, 5, None).unwrap().is_none());
    assert!(r
        .eval_matches(id + 1000, &MatchQuery::default())
        .unwrap()
        .is_none());

    // Pages of 4, whole and filtered, reassemble the rows in order.
    let mut pages = Vec::new();
    for (kind, from, to) in [
        (None, None, None),
        (Some(MatchKind::Fn), None, None),
        (Some(MatchKind::Idsw), Some(3), Some(12)),
    ] {
        let mut got = Vec::new();
        let mut after = None;
        loop {
            let q = MatchQuery {
                frame_from: from,
                frame_to: to,
                kind,
                limit: 4,
                after,
            };
            let p = r.eval_matches(id, &q).unwrap().unwrap();
            got.extend(p.items);
            match p.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let want: Vec<MatchRow> = rows
            .iter()
            .filter(|m| kind.is_none_or(|k| m.kind == k))
            .filter(|m| from.is_none_or(|f| m.frame >= f) && to.is_none_or(|t| m.frame <= t))
            .cloned()
            .collect();
        assert_eq!(got, want, "{kind:?}");
        pages.push(format!("{got:?}"));
    }
    // Errors: worst first, ties by frame, with the frame's time.
    let mut errors = Vec::new();
    let mut after = None;
    loop {
        let p = r.eval_errors(id, 3, after).unwrap().unwrap();
        errors.extend(p.items);
        match p.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let keys: Vec<(u64, u64)> = errors
        .iter()
        .map(|e| (e.counts.errors(), e.frame))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(keys, sorted);
    assert_eq!(keys[0], (4, 4));
    // Frames with no error (f % 5 == 0) are not listed.
    assert_eq!(errors.len(), 21 - 4 - 1);
    for e in &errors {
        assert_eq!(e.counts.tp, 1);
        let t = if e.frame == 25 {
            None
        } else {
            Some(e.frame as f64 / 10.0)
        };
        assert_eq!(e.t, t, "{e:?}");
    }
    json!({"pages": pages, "errors": format!("{errors:?}"), "eval": format!("{:?}", evals[0].matches)})
}

#[test]
fn evaluations_read_back_alike_and_go_with_their_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.db");
    let lite_run = write_run(&SqliteRunStore::open(&file, T).unwrap());
    let mut lite = Results::open(&DbTarget::Sqlite(file.clone()), T).unwrap();
    let a = read_back(&mut lite, lite_run);
    drop(lite);
    let c = rusqlite::Connection::open(&file).unwrap();
    c.execute_batch("PRAGMA foreign_keys = ON; DELETE FROM runs;")
        .unwrap();
    for t in ["evals", "eval_details", "eval_matches", "eval_frames"] {
        let n: i64 = c
            .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "{t}");
    }

    let Some(pg) = TestDb::create("evals") else {
        return;
    };
    let pg_run = write_run(&PgRunStore::open(&pg.url, T).unwrap());
    let mut p = Results::open(&DbTarget::parse(&pg.url), T).unwrap();
    assert_eq!(read_back(&mut p, pg_run), a);
    let mut c = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
    c.batch_execute("DELETE FROM runs").unwrap();
    for t in ["evals", "eval_details", "eval_matches", "eval_frames"] {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{t}");
    }
}

/// Timing of a large matching (200,000 rows over 20,000 frames) on both
/// engines: the store and the first and a deep page of errors. Run with
/// `--ignored --nocapture`; numbers go to the report, not to asserts.
#[test]
#[ignore]
fn large_matching_timings() {
    let rows: Vec<MatchRow> = (0..200_000u64)
        .map(|i| MatchRow {
            frame: i / 10,
            kind: [MatchKind::Tp, MatchKind::Fp, MatchKind::Fn, MatchKind::Idsw]
                [(i % 7 % 4) as usize],
            gt_id: Some(i as i64 % 50),
            track_id: Some(i as i64 % 60),
            class_id: Some(0),
            score: Some(0.5),
            iou: Some(0.7),
            bbox: [1.0, 2.0, 3.0, 4.0],
            gt_box: Some([1.0, 2.0, 3.0, 4.0]),
        })
        .collect();
    let metrics = json!({});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.db");
    let lite_run = write_run(&SqliteRunStore::open(&file, T).unwrap());
    let pg = TestDb::create("evals_large");
    let mut targets = vec![(DbTarget::Sqlite(file.clone()), lite_run)];
    if let Some(pg) = &pg {
        let run = write_run(&PgRunStore::open(&pg.url, T).unwrap());
        targets.push((DbTarget::parse(&pg.url), run));
    }
    for (target, run) in targets {
        let mut r = Results::open(&target, T).unwrap();
        let t0 = std::time::Instant::now();
        let id = r
            .save_eval_matched(&NewEval {
                run_id: run,
                kind: "mot",
                gt_path: "gt.txt",
                metrics: &metrics,
                pr_curves: None,
                matches: &rows,
            })
            .unwrap();
        let store = t0.elapsed();
        let t1 = std::time::Instant::now();
        let first = r.eval_errors(id, 50, None).unwrap().unwrap();
        let first_t = t1.elapsed();
        let mut after = first.next;
        for _ in 0..100 {
            after = r.eval_errors(id, 50, after).unwrap().unwrap().next;
        }
        let t2 = std::time::Instant::now();
        r.eval_errors(id, 50, after).unwrap().unwrap();
        let deep_t = t2.elapsed();
        let t3 = std::time::Instant::now();
        let q = MatchQuery {
            frame_from: Some(15_000),
            frame_to: Some(15_099),
            limit: 1000,
            ..Default::default()
        };
        let page = r.eval_matches(id, &q).unwrap().unwrap();
        let m_t = t3.elapsed();
        println!(
            "{}: store 200k rows {:.0} ms; errors page 1 {:.2} ms, page 102 {:.2} ms; 100 frames of matches ({} rows) {:.2} ms",
            if target.is_postgres() { "postgres" } else { "sqlite" },
            store.as_secs_f64() * 1e3,
            first_t.as_secs_f64() * 1e3,
            deep_t.as_secs_f64() * 1e3,
            page.items.len(),
            m_t.as_secs_f64() * 1e3
        );
    }
}
