//! The per-frame matching adds up to the metrics: CLEAR MOT events to
//! FP, FN, IDSW and matches; COCO events to each category's ground truth
//! and PR curves to AP50, on the real TUD files the reference tests use.

use std::collections::{HashMap, HashSet};

use peregrine_eval::{
    evaluate_sequence, evaluate_sequence_matched, FileRole, MatchKind, MotFile, MotOptions,
    Protocol,
};

mod common;

fn tud(seq: &str, file: &str) -> MotFile {
    let p = common::tud_path(seq, file);
    let role = if file == "gt.txt" {
        FileRole::GroundTruth
    } else {
        FileRole::Prediction
    };
    MotFile::read(&p, role).unwrap()
}

#[test]
fn clear_mot_events_sum_to_the_metrics() {
    let mut switches = 0;
    for seq in ["TUD-Campus", "TUD-Stadtmitte"] {
        for pred in ["test.txt", "test-mix.txt"] {
            for protocol in [Protocol::MotChallenge, Protocol::MotMetrics] {
                let gt = tud(seq, "gt.txt");
                let p = tud(seq, pred);
                let opts = MotOptions {
                    protocol,
                    ..MotOptions::default()
                };
                let (_, plain) = evaluate_sequence(&gt, &p, None, opts).unwrap();
                let (_, m, events) = evaluate_sequence_matched(&gt, &p, None, opts).unwrap();
                assert_eq!(plain, m, "{seq}/{pred}: matching changes no metric");
                let n = |k: MatchKind| events.iter().filter(|e| e.kind == k).count() as u64;
                let c = &m.clear;
                let label = format!("{seq}/{pred}/{protocol:?}");
                assert_eq!(n(MatchKind::Fp), c.fp, "{label}");
                assert_eq!(n(MatchKind::Fn), c.fn_, "{label}");
                assert_eq!(n(MatchKind::Idsw), c.idsw, "{label}");
                assert_eq!(
                    n(MatchKind::Tp) + n(MatchKind::Idsw),
                    c.num_detections,
                    "{label}"
                );
                switches += c.idsw;
                // Frame order; within a frame each object and each track
                // once; matches within 0.5 IoU and carrying both boxes.
                assert!(events.windows(2).all(|w| w[0].frame <= w[1].frame));
                let mut seen: HashSet<(i64, bool, i64)> = HashSet::new();
                for e in &events {
                    if let Some(g) = e.gt_id {
                        assert!(seen.insert((e.frame, true, g)), "{label}: {e:?}");
                    }
                    if let Some(h) = e.pred_id {
                        assert!(seen.insert((e.frame, false, h)), "{label}: {e:?}");
                    }
                    match e.kind {
                        MatchKind::Tp | MatchKind::Idsw => {
                            assert!(e.iou.unwrap() >= 0.5 - 1e-9, "{label}: {e:?}");
                            assert!(e.gt_box.is_some() && e.pred_box.is_some());
                            assert!(e.score.is_some());
                        }
                        MatchKind::Fp => assert!(e.gt_box.is_none() && e.pred_box.is_some()),
                        MatchKind::Fn => assert!(e.gt_box.is_some() && e.pred_box.is_none()),
                    }
                }
                // An identity switch is an object matched to another
                // track than the one it last had.
                let mut last: HashMap<i64, i64> = HashMap::new();
                for e in events
                    .iter()
                    .filter(|e| e.pred_id.is_some() && e.gt_id.is_some())
                {
                    let (g, h) = (e.gt_id.unwrap(), e.pred_id.unwrap());
                    let switched = last.get(&g).is_some_and(|&p| p != h);
                    if e.kind == MatchKind::Idsw {
                        assert!(switched, "{label}: {e:?}");
                    }
                    last.insert(g, h);
                }
            }
        }
    }
    assert!(switches > 0, "the files exercise identity switches");
}

#[test]
fn coco_events_and_curves_add_up_to_ap() {
    let d = common::coco_multiclass();
    for iou in [0.5, 0.75] {
        let (report, m) = d.evaluate_matched(iou).unwrap();
        assert_eq!(report, d.evaluate(), "matching changes no metric");
        assert_eq!(m.iou, iou);
        for cat in 1..=3i64 {
            let n = |k: MatchKind| {
                m.events
                    .iter()
                    .filter(|e| e.kind == k && e.category == Some(cat))
                    .count()
            };
            // Every non-crowd ground-truth box is matched or missed.
            let boxes =
                d.gt.iter()
                    .filter(|g| g.category_id == cat && !g.iscrowd)
                    .count();
            assert_eq!(n(MatchKind::Tp) + n(MatchKind::Fn), boxes, "class {cat}");
            assert_eq!(n(MatchKind::Idsw), 0);
            // AP at this threshold is the mean of the 101 interpolated
            // precisions; unreached recall points count as 0.
            let curve = m.curves.iter().find(|c| c.category_id == cat).unwrap();
            let ap: f64 = curve.points.iter().map(|p| p.precision).sum::<f64>() / 101.0;
            let stats = &report.per_class[(cat - 1) as usize].stats;
            if iou == 0.5 {
                assert!(
                    (ap - stats.ap50).abs() < 1e-12,
                    "class {cat}: {ap} vs {}",
                    stats.ap50
                );
            } else {
                assert!(
                    (ap - stats.ap75).abs() < 1e-12,
                    "class {cat}: {ap} vs {}",
                    stats.ap75
                );
            }
            // Recall reached = matched share of the boxes.
            let last = curve.points.last().unwrap();
            let recall = n(MatchKind::Tp) as f64 / boxes as f64;
            assert!(last.recall <= recall + 1e-12 && recall - last.recall < 0.01 + 1e-12);
            assert!(curve
                .points
                .windows(2)
                .all(|w| w[0].precision >= w[1].precision && w[0].score >= w[1].score));
        }
        for e in &m.events {
            if e.kind == MatchKind::Tp {
                assert!(e.iou.unwrap() >= iou - 1e-9);
            }
        }
        // Image 1 holds 120 extra detections of class 1: only the 100 best
        // of its class are scored, as COCOeval does.
        let scored = m
            .events
            .iter()
            .filter(|e| e.frame == 1 && e.category == Some(1) && e.kind != MatchKind::Fn)
            .count();
        assert!(scored <= 100, "{scored}");
    }
    let err = d.evaluate_matched(0.42).unwrap_err().to_string();
    assert!(err.contains("not a COCO IoU threshold"), "{err}");
}
