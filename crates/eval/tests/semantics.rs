//! Small hand-checked cases for the rules the reference tools fix and the
//! papers leave open. Each expectation was also confirmed with py-motmetrics
//! 1.4.0 (CLEAR, Identity) or TrackEval 1.3.0 (HOTA) on the same rows.

use std::path::Path;

use peregrine_eval::{evaluate_sequence, FileRole, MotFile, MotMetrics, MotOptions, Protocol};

fn score(gt: &str, pred: &str) -> MotMetrics {
    let gt = MotFile::parse(Path::new("gt.txt"), gt, FileRole::GroundTruth).unwrap();
    let pred = MotFile::parse(Path::new("pred.txt"), pred, FileRole::Prediction).unwrap();
    let opts = MotOptions {
        benchmark: None,
        protocol: Protocol::MotMetrics,
    };
    evaluate_sequence(&gt, &pred, None, opts).unwrap().1
}

#[test]
fn an_established_pair_is_kept_over_a_closer_newcomer() {
    // motmetrics keeps o1-h1 in frame 3 (IoU 0.6) although h2 fits
    // perfectly: no switch, h2 is a false positive, MOTP uses 1 - 0.6.
    let gt = "1,1,0,0,100,100,1\n2,1,0,0,100,100,1\n3,1,0,0,100,100,1\n";
    let pred = "1,1,0,0,100,100,1\n2,1,0,0,100,100,1\n3,1,0,0,100,60,1\n3,2,0,0,100,100,1\n";
    let m = score(gt, pred);
    assert_eq!(
        (m.clear.idsw, m.clear.fp, m.clear.num_detections),
        (0, 1, 3)
    );
    assert!((m.clear.motp - 0.4 / 3.0).abs() < 1e-12);
}

#[test]
fn a_new_hypothesis_after_a_gap_is_a_switch_and_a_fragmentation() {
    // o1 in frames 1-5; h1 covers 1-2, nothing in 3, h2 covers 4-5.
    let gt: String = (1..=5).map(|f| format!("{f},1,0,0,50,50,1\n")).collect();
    let pred = "1,1,0,0,50,50,1\n2,1,0,0,50,50,1\n4,2,0,0,50,50,1\n5,2,0,0,50,50,1\n";
    let m = score(&gt, pred);
    assert_eq!((m.clear.idsw, m.clear.frag, m.clear.fn_), (1, 1, 1));
    // Tracked in 4 of 5 frames: 0.8 is "mostly tracked".
    assert_eq!((m.clear.mt, m.clear.pt, m.clear.ml), (1, 0, 0));
    // IDF1: the best single id covers 2 of 5 frames.
    assert_eq!(
        (m.identity.idtp, m.identity.idfn, m.identity.idfp),
        (2, 3, 2)
    );
    assert_eq!(m.clear.num_ascend, 1);
}

#[test]
fn iou_exactly_half_still_matches() {
    // IoU 0.5 gives distance 0.5, which motmetrics' `dist > 0.5` keeps.
    let m = score("1,1,0,0,100,100,1\n", "1,1,0,0,100,50,1\n");
    assert_eq!((m.clear.num_detections, m.clear.fp), (1, 0));
}

#[test]
fn hota_counts_only_the_alphas_a_match_clears() {
    // One frame, IoU 0.57: a match for alpha 0.05..0.55 (11 of 19).
    let m = score("1,1,0,0,100,100,1\n", "1,1,0,0,100,57,1\n");
    assert!((m.hota.hota - 11.0 / 19.0).abs() < 1e-12);
    assert!((m.hota.deta - 11.0 / 19.0).abs() < 1e-12);
    // TrackEval's LocA is 1 where nothing matched (max(1e-10, 0) / max(1e-10, 0)).
    let want = (11.0 * 0.57 + 8.0) / 19.0;
    assert!((m.hota.loca - want).abs() < 1e-12, "{}", m.hota.loca);
}

#[test]
fn identity_uses_the_global_optimum_not_the_first_match() {
    // o1 is covered by h1 for 1 frame, then by h2 for 3 frames: IDTP 3.
    let gt: String = (1..=4).map(|f| format!("{f},1,0,0,50,50,1\n")).collect();
    let pred = "1,1,0,0,50,50,1\n2,2,0,0,50,50,1\n3,2,0,0,50,50,1\n4,2,0,0,50,50,1\n";
    let m = score(&gt, pred);
    assert_eq!(m.identity.idtp, 3);
    assert!((m.identity.idf1 - 0.75).abs() < 1e-12);
}
