//! Bad input gets a one-line error naming the file (and line), or the
//! documented handling; never a panic.

use std::fs;
use std::path::{Path, PathBuf};

use peregrine_eval::{
    discover, evaluate_mot, read_coco_dets, read_coco_gt, Benchmark, MotOptions, Protocol,
};

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, text).unwrap();
    p
}

const GT: &str =
    "1,1,10,10,20,40,1,-1,-1,-1\n2,1,12,10,20,40,1,-1,-1,-1\n3,1,14,10,20,40,1,-1,-1,-1\n";

fn err(gt: &Path, pred: &Path) -> String {
    evaluate_mot(gt, pred, MotOptions::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn malformed_prediction_line_is_reported_with_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let gt = write(d.path(), "gt.txt", GT);
    let pred = write(
        d.path(),
        "pred.txt",
        "1,1,10,10,20,40,1\n2,1,12,ten,20,40,1\n",
    );
    let e = err(&gt, &pred);
    assert!(e.ends_with("pred.txt:2: y: not a number: \"ten\""), "{e}");
}

#[test]
fn nan_and_negative_sizes_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let gt = write(d.path(), "gt.txt", GT);
    let pred = write(d.path(), "nan.txt", "1,1,10,10,nan,40,1\n");
    assert!(err(&gt, &pred).ends_with("nan.txt:1: width is NaN"));
    let pred = write(
        d.path(),
        "neg.txt",
        "1,1,10,10,20,40,1\n1,2,10,10,20,-4,1\n",
    );
    assert!(err(&gt, &pred).ends_with("neg.txt:2: negative box size 20x-4"));
}

#[test]
fn unknown_columns_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let gt = write(d.path(), "gt.txt", GT);
    let pred = write(d.path(), "wide.txt", "1,1,10,10,20,40,1,-1,-1,-1,99\n");
    assert!(err(&gt, &pred)
        .ends_with("wide.txt:1: unknown column 11: MOTChallenge rows have at most 10 columns"));
}

#[test]
fn empty_ground_truth_is_an_error_and_empty_predictions_score_as_all_missed() {
    let d = tempfile::tempdir().unwrap();
    let empty = write(d.path(), "empty.txt", "");
    let gt = write(d.path(), "gt.txt", GT);
    assert!(err(&empty, &gt).ends_with("empty.txt: ground truth file has no rows"));
    let rep = evaluate_mot(&gt, &empty, MotOptions::default()).unwrap();
    let m = &rep.combined;
    assert_eq!((m.clear.fn_, m.clear.fp, m.clear.ml), (3, 0, 1));
    assert_eq!(m.clear.mota, 0.0);
    assert_eq!(m.hota.hota, 0.0);
}

#[test]
fn frames_outside_seqinfo_are_errors() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "seq/gt/gt.txt", GT);
    write(
        d.path(),
        "seq/seqinfo.ini",
        "[Sequence]\nname=seq\nseqLength=3\n",
    );
    write(
        d.path(),
        "res/seq.txt",
        "1,1,10,10,20,40,1\n9,1,10,10,20,40,1\n",
    );
    let e = err(&d.path().join("seq"), &d.path().join("res"));
    assert!(
        e.ends_with("seq.txt: frame 9 is outside the sequence (1..=3 per seqinfo.ini)"),
        "{e}"
    );
}

#[test]
fn without_seqinfo_extra_prediction_frames_are_false_positives() {
    let d = tempfile::tempdir().unwrap();
    let gt = write(d.path(), "gt.txt", GT);
    let pred = write(d.path(), "pred.txt", &format!("{GT}9,1,10,10,20,40,1\n"));
    let m = evaluate_mot(&gt, &pred, MotOptions::default())
        .unwrap()
        .combined;
    assert_eq!((m.clear.fp, m.clear.fn_, m.clear.num_frames), (1, 0, 4));
}

#[test]
fn duplicate_ids_in_a_frame_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let gt = write(d.path(), "gt.txt", GT);
    let pred = write(
        d.path(),
        "pred.txt",
        "2,5,10,10,20,40,1\n2,5,30,10,20,40,1\n",
    );
    assert!(err(&gt, &pred).ends_with("pred.txt: id 5 appears twice in frame 2"));
}

#[test]
fn non_mot_classes_are_errors_under_mot17_conventions() {
    let d = tempfile::tempdir().unwrap();
    let gt = write(
        d.path(),
        "gt.txt",
        "1,1,10,10,20,40,1,1,1\n1,2,50,10,20,40,0,42,1\n",
    );
    let pred = write(d.path(), "pred.txt", "1,1,10,10,20,40,1\n");
    let e = err(&gt, &pred);
    assert!(e.ends_with("class 42 in frame 1 is not a MOTChallenge class (1-13); use the MOT15 conventions for files without classes"), "{e}");
    // The motmetrics protocol has no class handling: it scores the file.
    let opts = MotOptions {
        benchmark: Some(Benchmark::Mot17),
        protocol: Protocol::MotMetrics,
    };
    assert_eq!(
        evaluate_mot(&gt, &pred, opts).unwrap().combined.clear.mota,
        1.0
    );
}

#[test]
fn consider_flag_and_distractors() {
    // Pedestrian 1 scored; pedestrian 2 not considered; 3 is a static
    // person (distractor): a prediction on it is removed, not a false positive.
    let d = tempfile::tempdir().unwrap();
    let gt = write(
        d.path(),
        "gt.txt",
        "1,1,10,10,20,40,1,1,1\n1,2,100,10,20,40,0,1,1\n1,3,200,10,20,40,0,7,1\n",
    );
    let pred = write(
        d.path(),
        "pred.txt",
        "1,1,10,10,20,40,1\n1,7,201,10,20,40,1\n",
    );
    let m = evaluate_mot(&gt, &pred, MotOptions::default())
        .unwrap()
        .combined;
    assert_eq!((m.clear.num_objects, m.clear.fp, m.clear.fn_), (1, 0, 0));
    let opts = MotOptions {
        benchmark: None,
        protocol: Protocol::MotMetrics,
    };
    let m = evaluate_mot(&gt, &pred, opts).unwrap().combined;
    assert_eq!((m.clear.num_objects, m.clear.fp), (1, 1));
}

#[test]
fn a_sequence_without_results_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "gt/a/gt/gt.txt", GT);
    write(d.path(), "gt/b/gt/gt.txt", GT);
    write(d.path(), "res/a.txt", GT);
    let e = discover(&d.path().join("gt"), &d.path().join("res"))
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("res: no results for sequence b (b.txt)"), "{e}");
    write(d.path(), "res/data/b.txt", GT);
    let seqs = discover(&d.path().join("gt"), &d.path().join("res")).unwrap();
    assert_eq!(
        seqs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
}

#[test]
fn missing_paths_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let gt = write(d.path(), "gt.txt", GT);
    assert!(err(&gt, &d.path().join("nope.txt")).ends_with("nope.txt: not found"));
}

#[test]
fn coco_inputs_are_validated() {
    let d = tempfile::tempdir().unwrap();
    let gt = write(
        d.path(),
        "gt.json",
        r#"{"images":[{"id":1}],"annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,10,10],"area":100,"iscrowd":0}],"categories":[{"id":1,"name":"person"}]}"#,
    );
    let mut data = read_coco_gt(&gt).unwrap();
    let bad = write(
        d.path(),
        "bad.json",
        r#"[{"image_id":1,"category_id":1,"bbox":[0,0,10],"score":0.5}]"#,
    );
    let e = read_coco_dets(&bad, &mut data).unwrap_err().to_string();
    assert!(
        e.ends_with("bad.json: result 0: bbox has 3 numbers, expected 4"),
        "{e}"
    );
    let other = write(
        d.path(),
        "other.json",
        r#"[{"image_id":7,"category_id":1,"bbox":[0,0,10,10],"score":0.5}]"#,
    );
    let e = read_coco_dets(&other, &mut data).unwrap_err().to_string();
    assert!(
        e.ends_with("other.json: result 0: image 7 is not in the ground truth"),
        "{e}"
    );
    let broken = write(d.path(), "broken.json", "[{");
    let e = read_coco_dets(&broken, &mut data).unwrap_err().to_string();
    assert!(e.contains("broken.json: invalid JSON"), "{e}");
    let ok = write(
        d.path(),
        "ok.json",
        r#"[{"image_id":1,"category_id":1,"bbox":[0,0,10,10],"score":0.5}]"#,
    );
    read_coco_dets(&ok, &mut data).unwrap();
    let r = data.evaluate();
    // pycocotools' precision is tp / (tp + fp + eps): just under 1.
    assert!((r.overall.ap - 1.0).abs() < 1e-12);
    assert_eq!(r.overall.ap_medium, -1.0); // no ground truth in range
    assert_eq!(r.per_class[0].name, "person");
}
