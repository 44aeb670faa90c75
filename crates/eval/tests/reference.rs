//! Frozen reference values (py-motmetrics 1.4.0, TrackEval 1.3.0,
//! pycocotools), computed by `bench/eval/parity.py --write-fixtures`.

use std::path::{Path, PathBuf};

use peregrine_eval::{
    evaluate_sequence, evaluate_sequences, Benchmark, CocoData, FileRole, MotFile, MotMetrics,
    MotOptions, Protocol, SequencePaths,
};
use serde_json::Value;

mod common;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn data_dir() -> PathBuf {
    std::env::var_os("PEREGRINE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

fn reference(key: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join("reference_values.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let mut cur = &v;
    for part in key.split('|') {
        cur = cur
            .get(part)
            .unwrap_or_else(|| panic!("fixture {key} missing"));
    }
    cur.clone()
}

fn read(path: &Path, role: FileRole) -> MotFile {
    MotFile::read(path, role).unwrap_or_else(|e| panic!("{e} (set PEREGRINE_TEST_DATA?)"))
}

/// Compares every key of `want` with the serialised metrics.
fn assert_close(label: &str, got: &MotMetrics, want: &Value, tol: f64) {
    let got = serde_json::to_value(got).unwrap();
    assert_close_json(label, &got, want, tol);
}

fn assert_close_json(label: &str, got: &Value, want: &Value, tol: f64) {
    let want = want.as_object().unwrap();
    assert!(!want.is_empty());
    for (k, w) in want {
        let w = w.as_f64().unwrap();
        let g = got[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{label}: {k} missing"));
        assert!((g - w).abs() <= tol, "{label}: {k} = {g}, reference {w}");
    }
}

fn score(gt: &MotFile, pred: &MotFile, protocol: Protocol) -> MotMetrics {
    let opts = MotOptions {
        benchmark: None,
        protocol,
    };
    evaluate_sequence(gt, pred, None, opts).unwrap().1
}

/// CLEAR/Identity against motmetrics, HOTA against TrackEval.
fn check_sequence(key: &str, gt: &MotFile, pred: &MotFile) {
    let r = reference(key);
    assert_close(
        key,
        &score(gt, pred, Protocol::MotMetrics),
        &r["motmetrics"],
        1e-6,
    );
    assert_close(
        key,
        &score(gt, pred, Protocol::MotChallenge),
        &r["trackeval"],
        1e-6,
    );
}

fn tud(seq: &str, file: &str) -> PathBuf {
    fixtures().join("motmetrics-data").join(seq).join(file)
}

#[test]
fn tud_campus_and_stadtmitte_match_references() {
    for seq in ["TUD-Campus", "TUD-Stadtmitte"] {
        let gt = read(&tud(seq, "gt.txt"), FileRole::GroundTruth);
        for (variant, file) in [("shipped", "test.txt"), ("shipped-mix", "test-mix.txt")] {
            let pred = read(&tud(seq, file), FileRole::Prediction);
            check_sequence(&format!("{seq}/{variant}"), &gt, &pred);
        }
    }
}

#[test]
fn tud_campus_headline_values() {
    // The values py-motmetrics documents for TUD-Campus.
    let gt = read(&tud("TUD-Campus", "gt.txt"), FileRole::GroundTruth);
    let pred = read(&tud("TUD-Campus", "test.txt"), FileRole::Prediction);
    let m = score(&gt, &pred, Protocol::MotMetrics);
    assert_eq!(
        (m.clear.fp, m.clear.fn_, m.clear.idsw, m.clear.frag),
        (13, 150, 7, 7)
    );
    assert_eq!((m.clear.mt, m.clear.pt, m.clear.ml), (1, 6, 1));
    assert!((m.clear.mota - 0.526462395543175).abs() < 1e-9);
    assert!((m.identity.idf1 - 0.557659208261618).abs() < 1e-9);
}

#[test]
fn combined_summary_matches_references() {
    for variant in ["shipped", "shipped-mix"] {
        let seqs: Vec<SequencePaths> = ["TUD-Campus", "TUD-Stadtmitte"]
            .iter()
            .map(|s| SequencePaths {
                name: s.to_string(),
                gt: tud(s, "gt.txt"),
                pred: tud(
                    s,
                    if variant == "shipped" {
                        "test.txt"
                    } else {
                        "test-mix.txt"
                    },
                ),
                seq_length: None,
            })
            .collect();
        let r = reference(&format!("mot15/combined/{variant}"));
        for (protocol, tool) in [
            (Protocol::MotMetrics, "motmetrics"),
            (Protocol::MotChallenge, "trackeval"),
        ] {
            let opts = MotOptions {
                benchmark: Some(Benchmark::Mot15),
                protocol,
            };
            let rep = evaluate_sequences(&seqs, opts).unwrap();
            assert_eq!(rep.sequences.len(), 2);
            assert_close(variant, &rep.combined, &r[tool], 1e-6);
        }
    }
}

/// The deterministic perturbation of `bench/eval/common.py::shift`.
fn shifted(gt: &MotFile) -> MotFile {
    let rows = gt
        .rows
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 7 != 3)
        .map(|(_, r)| {
            let mut r = *r;
            if r.id % 2 == 1 {
                r.x += 3.0;
            }
            if r.id % 3 == 0 {
                r.w *= 1.1;
            }
            r.conf = 1.0;
            r.class = -1;
            r.visibility = -1.0;
            r
        })
        .collect();
    MotFile {
        path: PathBuf::from("shifted.txt"),
        rows,
        columns: 10,
    }
}

#[test]
fn shared_sequences_match_references() {
    let mot = data_dir().join("mot");
    for seq in ["PETS09-S2L1-480x360", "MOT17-04-mini8"] {
        let gt = read(&mot.join(seq).join("gt/gt.txt"), FileRole::GroundTruth);
        let name = seq.trim_end_matches("-480x360");
        check_sequence(&format!("{name}/gt-shift"), &gt, &shifted(&gt));
    }
}

#[test]
fn mot17_distractors_change_hota_inputs() {
    // MOT17-04 has static persons (class 7): TrackEval drops predictions on
    // them, motmetrics' protocol scores them as false positives.
    let gt = read(
        &data_dir().join("mot/MOT17-04-mini8/gt/gt.txt"),
        FileRole::GroundTruth,
    );
    let pred = shifted(&gt);
    let a = score(&gt, &pred, Protocol::MotChallenge);
    let b = score(&gt, &pred, Protocol::MotMetrics);
    assert!(a.clear.fp < b.clear.fp, "{} vs {}", a.clear.fp, b.clear.fp);
}

#[test]
fn coco_ap_matches_pycocotools() {
    let cases = [
        (
            "TUD-Campus/shipped",
            tud("TUD-Campus", "gt.txt"),
            Some(tud("TUD-Campus", "test.txt")),
        ),
        ("TUD-Campus/gt-shift", tud("TUD-Campus", "gt.txt"), None),
        (
            "MOT17-04-mini8/gt-shift",
            data_dir().join("mot/MOT17-04-mini8/gt/gt.txt"),
            None,
        ),
    ];
    for (key, gt_path, pred_path) in cases {
        let gt = read(&gt_path, FileRole::GroundTruth);
        let pred = match pred_path {
            Some(p) => read(&p, FileRole::Prediction),
            None => shifted(&gt),
        };
        let mut d = CocoData::default();
        d.add_mot(&gt, &pred, None, None, 0).unwrap();
        let got = serde_json::to_value(d.evaluate()).unwrap();
        assert_close_json(key, &got, &reference(&format!("coco|{key}")), 1e-4);
    }
}

#[test]
fn perfect_tracks_score_one() {
    let gt = read(&tud("TUD-Stadtmitte", "gt.txt"), FileRole::GroundTruth);
    let m = score(&gt, &gt, Protocol::MotChallenge);
    assert_eq!(m.clear.mota, 1.0);
    assert_eq!(m.identity.idf1, 1.0);
    assert_eq!(
        (m.clear.idsw, m.clear.frag, m.clear.fp, m.clear.fn_),
        (0, 0, 0, 0)
    );
    assert!((m.hota.hota - 1.0).abs() < 1e-12);
    assert!(m.clear.motp.abs() < 1e-12);
}

#[test]
fn coco_multiclass_matches_pycocotools_overall_and_per_class() {
    let report = common::coco_multiclass().evaluate();
    let got = serde_json::to_value(&report).unwrap();
    assert_close_json(
        "overall",
        &got,
        &reference("coco|multiclass/TUD-Stadtmitte"),
        1e-4,
    );
    let per_class = reference("coco|multiclass/TUD-Stadtmitte/per_class");
    assert_eq!(report.per_class.len(), 3);
    for c in &report.per_class {
        let got = serde_json::to_value(c).unwrap();
        assert_close_json(&c.name, &got, &per_class[c.category_id.to_string()], 1e-4);
    }
}
