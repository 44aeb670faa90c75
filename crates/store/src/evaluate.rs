//! Scoring a stored run against ground truth, with its per-frame matching:
//! what `peregrine eval --run` and the service's `POST /runs/{id}/evals`
//! both do.
//!
//! A key design decision here is that this module only adapts inputs: a
//! run's detections are streamed out of the store into the same
//! MOTChallenge rows its `peregrine export --format mot` file holds (see
//! [`mot_row`]), so a run and its export always score the same, and the
//! metrics and matching come from `peregrine-eval` unchanged. Frames map
//! as the export writes them: MOT frame = run frame + 1, COCO image id =
//! run frame + 1 (or the image's `frame` field when it has one).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use peregrine_core::Labels;
use peregrine_eval::{
    discover, evaluate_sequence_matched, parse_coco_gt, CocoData, CocoDet, CocoMatching,
    CocoReport, EvalError, FileRole, FrameMatch, MatchKind, MotFile, MotMetrics, MotOptions,
    MotReport, MotRow, SeqInfo, SequencePaths, SequenceReport,
};
use serde_json::{json, Value};

use crate::evals::{MatchRow, NewEval};
use crate::{DetectionRow, Results, RunRecord, StoreError};

/// Why a run could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// The ground truth, the options or the run itself do not allow it
    /// (a client's mistake: one line, 400 in the service).
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<EvalError> for ScoreError {
    fn from(e: EvalError) -> Self {
        ScoreError::Input(e.to_string())
    }
}

fn input(msg: impl Into<String>) -> ScoreError {
    ScoreError::Input(msg.into())
}

/// Where the ground truth is.
#[derive(Clone, Copy, Debug)]
pub enum GroundTruth<'a> {
    /// MOTChallenge: a gt.txt or a sequence folder (gt/gt.txt,
    /// seqinfo.ini).
    MotPath(&'a Path),
    /// MOTChallenge text received as `name` (an upload).
    MotText { name: &'a str, text: &'a str },
    /// COCO JSON file.
    CocoPath(&'a Path),
    /// COCO JSON received as `name` (an upload).
    CocoBytes { name: &'a str, bytes: &'a [u8] },
}

/// What to score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalKind {
    /// Tracking (CLEAR MOT, IDF1, HOTA) against MOTChallenge ground truth,
    /// with detection AP of the same ground truth alongside.
    Mot,
    /// Detection (COCO AP) against MOTChallenge ground truth.
    Det,
    /// Detection (COCO AP) against COCO ground truth.
    Coco,
}

impl EvalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EvalKind::Mot => "mot",
            EvalKind::Det => "det",
            EvalKind::Coco => "coco",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ScoreOptions {
    /// Class of the run scored (MOT; COCO: `None` scores every class the
    /// ground truth names).
    pub class: Option<String>,
    pub force: bool,
    pub mot: MotOptions,
    /// COCO IoU threshold of the stored matching and PR curves (one of
    /// 0.5, 0.55, ..., 0.95). Tracking matching is motmetrics' 0.5.
    pub iou: f64,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        ScoreOptions {
            class: None,
            force: false,
            mot: MotOptions::default(),
            iou: 0.5,
        }
    }
}

/// The typed report, for printing.
#[derive(Clone, Debug)]
pub enum Report {
    Mot(Box<MotReport>),
    Det(CocoReport),
}

/// A scored run, ready to store.
#[derive(Clone, Debug)]
pub struct Scored {
    pub kind: EvalKind,
    pub report: Report,
    /// What is stored as the evaluation's metrics.
    pub metrics: Value,
    pub pr_curves: Option<Value>,
    pub matches: Vec<MatchRow>,
    /// Notes for the user (rows left out, an incomplete run).
    pub warnings: Vec<String>,
}

impl Scored {
    /// Stores the evaluation with its matching; returns its id.
    pub fn save(&self, store: &mut Results, run: i64, gt_name: &str) -> Result<i64, StoreError> {
        store.save_eval_matched(&NewEval {
            run_id: run,
            kind: self.kind.as_str(),
            gt_path: gt_name,
            metrics: &self.metrics,
            pr_curves: self.pr_curves.as_ref(),
            matches: &self.matches,
        })
    }
}

/// A stored detection as a MOTChallenge row (1-based frame, track id or
/// -1, box to 2 decimals, score to 6), exactly as `peregrine export
/// --format mot` writes it.
pub fn mot_row(d: &DetectionRow) -> MotRow {
    let b = &d.bbox;
    let rounded =
        |v: f32, places: usize| -> f64 { format!("{v:.places$}").parse().unwrap_or(v as f64) };
    MotRow {
        frame: (d.frame + 1).min(u32::MAX as u64) as u32,
        id: d.track_id.map(i64::from).unwrap_or(-1),
        x: rounded(b.x1, 2),
        y: rounded(b.y1, 2),
        w: rounded((b.x2 - b.x1).max(0.0), 2),
        h: rounded((b.y2 - b.y1).max(0.0), 2),
        conf: rounded(d.score, 6),
        class: -1,
        visibility: -1.0,
    }
}

/// Scores run `run` against `gt`.
pub fn score_run(
    store: &Results,
    run: i64,
    kind: EvalKind,
    gt: GroundTruth,
    opts: &ScoreOptions,
) -> Result<Scored, ScoreError> {
    let rec = store.run(run)?;
    let warnings = Vec::new();
    let labels = rec.labels();
    match (kind, gt) {
        (EvalKind::Coco, GroundTruth::CocoPath(p)) => {
            let text = std::fs::read(p).map_err(|e| input(format!("{}: {e}", p.display())))?;
            let data = parse_coco_gt(p, &text)?;
            score_coco(store, &rec, &labels, data, p, &text, opts, warnings)
        }
        (EvalKind::Coco, GroundTruth::CocoBytes { name, bytes }) => {
            let p = Path::new(name);
            let data = parse_coco_gt(p, bytes)?;
            score_coco(store, &rec, &labels, data, p, bytes, opts, warnings)
        }
        (EvalKind::Coco, _) => Err(input(
            "format coco: the ground truth must be a COCO JSON file",
        )),
        (_, GroundTruth::CocoPath(_) | GroundTruth::CocoBytes { .. }) => Err(input(format!(
            "format {}: the ground truth must be MOTChallenge text (gt.txt), not COCO JSON",
            kind.as_str()
        ))),
        (k, GroundTruth::MotPath(p)) => {
            let seq = single_sequence(p)?;
            let gt_file = MotFile::read(&seq.gt, FileRole::GroundTruth)?;
            score_mot_gt(store, &rec, &labels, k, &seq, &gt_file, opts, warnings)
        }
        (k, GroundTruth::MotText { name, text }) => {
            let file_name = Path::new(name)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "gt.txt".into());
            let path = PathBuf::from(&file_name);
            let gt_file = MotFile::parse(&path, text, FileRole::GroundTruth)?;
            let seq = SequencePaths {
                name: Path::new(&file_name)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                gt: path.clone(),
                pred: path,
                seq_length: None,
            };
            score_mot_gt(store, &rec, &labels, k, &seq, &gt_file, opts, warnings)
        }
    }
}

/// The scored class of a MOT evaluation: `opts.class` or person (0).
fn mot_class(labels: &Labels, opts: &ScoreOptions) -> Result<u16, ScoreError> {
    match opts.class.as_deref().filter(|c| !c.trim().is_empty()) {
        None => Ok(0),
        Some(c) => labels.id_of(c).map_err(|e| input(format!("class: {e}"))),
    }
}

#[allow(clippy::too_many_arguments)]
fn score_mot_gt(
    store: &Results,
    rec: &RunRecord,
    labels: &Labels,
    kind: EvalKind,
    seq: &SequencePaths,
    gt_file: &MotFile,
    opts: &ScoreOptions,
    mut warnings: Vec<String>,
) -> Result<Scored, ScoreError> {
    let class = mot_class(labels, opts)?;
    if let Some(w) = check_run_matches(store, rec, seq, gt_file, opts.force)? {
        warnings.push(w);
    }
    let len = seq.seq_length.or(Some(gt_file.max_frame()));
    let to_box = |b: [f64; 4]| {
        [
            b[0] as f32,
            b[1] as f32,
            (b[0] + b[2]) as f32,
            (b[1] + b[3]) as f32,
        ]
    };
    let det_rows = |events: &[FrameMatch], base: i64| -> Vec<MatchRow> {
        events
            .iter()
            .map(|e| match_row(e, e.frame - base, Some(class), to_box))
            .collect()
    };
    // Detection AP of the same ground truth, over every detection of the
    // class (tracked or not).
    // (What is left out is said once: for tracking, of the tracked rows.)
    let mut scratch = Vec::new();
    let notes = if kind == EvalKind::Mot {
        &mut scratch
    } else {
        &mut warnings
    };
    let all = run_rows(store, rec.id, class, len, false, notes)?;
    let mut data = CocoData::default();
    data.add_mot(gt_file, &all, opts.mot.benchmark, len, 0)?;
    let iou = if kind == EvalKind::Mot { 0.5 } else { opts.iou };
    let (det, m) = data.evaluate_matched(iou)?;
    let curves = Some(curves_json(&m, iou, |_| labels.name(class)));
    if kind == EvalKind::Det {
        return Ok(Scored {
            kind,
            metrics: serde_json::to_value(&det).unwrap_or(Value::Null),
            report: Report::Det(det),
            pr_curves: curves,
            matches: det_rows(&m.events, 1),
            warnings,
        });
    }
    let tracked = run_rows(store, rec.id, class, len, true, &mut warnings)?;
    if tracked.rows.is_empty() {
        return Err(input(format!(
            "run {}: no tracked detections of class {} (was tracking on? detection metrics need no tracks)",
            rec.id,
            labels.name(class)
        )));
    }
    let (benchmark, metrics, events) =
        evaluate_sequence_matched(gt_file, &tracked, seq.seq_length, opts.mot)?;
    let sequences = vec![SequenceReport {
        name: seq.name.clone(),
        benchmark,
        metrics,
    }];
    let combined = MotMetrics::combine(sequences.iter().map(|s| &s.metrics));
    let report = MotReport {
        protocol: opts.mot.protocol,
        sequences,
        combined,
    };
    let mut metrics = serde_json::to_value(&report).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut metrics {
        o.insert(
            "detection".into(),
            serde_json::to_value(&det).unwrap_or(Value::Null),
        );
    }
    Ok(Scored {
        kind,
        report: Report::Mot(Box::new(report)),
        metrics,
        pr_curves: curves,
        matches: det_rows(&events, 1),
        warnings,
    })
}

fn match_row(
    e: &FrameMatch,
    frame: i64,
    class: Option<u16>,
    to_box: impl Fn([f64; 4]) -> [f32; 4],
) -> MatchRow {
    let gt = e.gt_box.map(&to_box);
    let pred = e.pred_box.map(&to_box);
    MatchRow {
        frame: frame.max(0) as u64,
        kind: e.kind,
        gt_id: e.gt_id,
        track_id: e.pred_id.filter(|id| *id >= 0),
        class_id: class,
        score: e.score.map(|s| s as f32),
        iou: e.iou.map(|v| v as f32),
        bbox: match e.kind {
            MatchKind::Fn => gt.unwrap_or_default(),
            _ => pred.unwrap_or_default(),
        },
        gt_box: gt,
    }
}

/// `{class name: [{recall, precision, score}]}` with the threshold.
fn curves_json(m: &CocoMatching, iou: f64, name: impl Fn(i64) -> String) -> Value {
    let mut classes = serde_json::Map::new();
    for c in &m.curves {
        classes.insert(
            name(c.category_id),
            serde_json::to_value(&c.points).unwrap_or(Value::Null),
        );
    }
    json!({"iou": iou, "classes": classes})
}

#[allow(clippy::too_many_arguments)]
fn score_coco(
    store: &Results,
    rec: &RunRecord,
    labels: &Labels,
    mut data: CocoData,
    path: &Path,
    text: &[u8],
    opts: &ScoreOptions,
    mut warnings: Vec<String>,
) -> Result<Scored, ScoreError> {
    // Categories to the run's classes, by name.
    let only = opts
        .class
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        .map(|c| labels.id_of(c).map_err(|e| input(format!("class: {e}"))))
        .transpose()?;
    let mut class_of: HashMap<i64, u16> = HashMap::new();
    let mut cat_of: HashMap<u16, i64> = HashMap::new();
    for (&cat, name) in &data.categories {
        if let Some(i) = labels
            .names()
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
        {
            let i = i as u16;
            if only.is_none_or(|o| o == i) {
                class_of.insert(cat, i);
                cat_of.insert(i, cat);
            }
        }
    }
    if class_of.is_empty() {
        return Err(input(format!(
            "{}: no category names a class of run {}{}",
            path.display(),
            rec.id,
            only.map(|o| format!(" ({})", labels.name(o)))
                .unwrap_or_default()
        )));
    }
    data.categories.retain(|c, _| class_of.contains_key(c));
    // Images to frames: `frame` when the image has one, else id - 1.
    #[derive(serde::Deserialize)]
    struct Img {
        id: i64,
        #[serde(default)]
        frame: Option<i64>,
        #[serde(default)]
        width: Option<u32>,
        #[serde(default)]
        height: Option<u32>,
    }
    #[derive(serde::Deserialize)]
    struct Imgs {
        images: Vec<Img>,
    }
    let imgs: Imgs = serde_json::from_slice(text)
        .map_err(|e| input(format!("{}: invalid JSON: {e}", path.display())))?;
    let mut frame_image: BTreeMap<u64, i64> = BTreeMap::new();
    let mut image_frame: HashMap<i64, u64> = HashMap::new();
    for im in &imgs.images {
        let f = im.frame.unwrap_or(im.id - 1);
        if f < 0 {
            return Err(input(format!(
                "{}: image {} maps to frame {f} (image id = frame + 1, or give \"frame\")",
                path.display(),
                im.id
            )));
        }
        if let (Some(w), Some(h)) = (im.width, im.height) {
            if (w, h) != (rec.width, rec.height) && !opts.force {
                return Err(input(format!(
                    "{}: image {} is {w}x{h}, run {}'s video {}x{} (force scores it anyway)",
                    path.display(),
                    im.id,
                    rec.id,
                    rec.width,
                    rec.height
                )));
            }
        }
        frame_image.insert(f as u64, im.id);
        image_frame.insert(im.id, f as u64);
    }
    let mut unannotated = 0u64;
    store
        .for_each_detection(rec.id, |d| -> Result<(), std::convert::Infallible> {
            let Some(&cat) = cat_of.get(&d.class_id) else {
                return Ok(());
            };
            let Some(&image) = frame_image.get(&d.frame) else {
                unannotated += 1;
                return Ok(());
            };
            let b = &d.bbox;
            data.dets.push(CocoDet {
                image_id: image,
                category_id: cat,
                bbox: [
                    b.x1 as f64,
                    b.y1 as f64,
                    (b.x2 - b.x1).max(0.0) as f64,
                    (b.y2 - b.y1).max(0.0) as f64,
                ],
                score: d.score as f64,
            });
            Ok(())
        })?
        .unwrap_or_else(|never| match never {});
    if unannotated > 0 {
        warnings.push(format!(
            "run {}: {unannotated} detections on frames the ground truth has no image for left out",
            rec.id
        ));
    }
    let (report, m) = data.evaluate_matched(opts.iou)?;
    let to_box = |b: [f64; 4]| {
        [
            b[0] as f32,
            b[1] as f32,
            (b[0] + b[2]) as f32,
            (b[1] + b[3]) as f32,
        ]
    };
    let matches = m
        .events
        .iter()
        .map(|e| {
            let frame = image_frame.get(&e.frame).copied().unwrap_or_default();
            let class = e.category.and_then(|c| class_of.get(&c).copied());
            match_row(e, frame as i64, class, to_box)
        })
        .collect();
    let curves = curves_json(&m, m.iou, |c| {
        class_of
            .get(&c)
            .map(|&i| labels.name(i))
            .unwrap_or_else(|| c.to_string())
    });
    Ok(Scored {
        kind: EvalKind::Coco,
        metrics: serde_json::to_value(&report).unwrap_or(Value::Null),
        report: Report::Det(report),
        pr_curves: Some(curves),
        matches,
        warnings,
    })
}

/// The one sequence a stored run is scored against: a gt.txt or a
/// sequence folder (gt/gt.txt, seqinfo.ini).
pub fn single_sequence(gt: &Path) -> Result<SequencePaths, ScoreError> {
    if !gt.exists() {
        return Err(input(format!("{}: not found", gt.display())));
    }
    let own = gt.join("gt").join("gt.txt");
    // Results are not read from a path for a run: point discover at the gt.
    let stand_in = if gt.is_file() {
        gt.to_path_buf()
    } else if own.is_file() {
        own
    } else {
        return Err(input(format!(
            "{}: a stored run is one video; give its gt.txt or its sequence folder (gt/gt.txt inside)",
            gt.display()
        )));
    };
    let mut seqs = discover(gt, &stand_in)?;
    seqs.pop()
        .ok_or_else(|| input(format!("{}: no sequence", gt.display())))
}

/// A run's detections of `class` as MOTChallenge rows (1-based frames).
/// Rows after the ground truth's last frame are left out: a run may cover
/// more of the video than is annotated.
fn run_rows(
    store: &Results,
    run: i64,
    class: u16,
    seq_length: Option<u32>,
    tracked_only: bool,
    warnings: &mut Vec<String>,
) -> Result<MotFile, ScoreError> {
    let mut rows = Vec::new();
    let mut beyond = 0u64;
    let mut untracked = 0u64;
    store
        .for_each_detection(run, |d| -> Result<(), std::convert::Infallible> {
            if d.class_id != class {
                return Ok(());
            }
            if seq_length.is_some_and(|n| d.frame + 1 > n as u64) {
                beyond += 1;
                return Ok(());
            }
            if tracked_only && d.track_id.is_none() {
                untracked += 1;
                return Ok(());
            }
            rows.push(mot_row(d));
            Ok(())
        })?
        .unwrap_or_else(|never| match never {});
    if beyond > 0 {
        warnings.push(format!(
            "run {run}: {beyond} detections after the ground truth's last frame left out"
        ));
    }
    if untracked > 0 {
        warnings.push(format!(
            "run {run}: {untracked} detections without a track id left out"
        ));
    }
    Ok(MotFile {
        path: PathBuf::from(format!("run {run}")),
        rows,
        columns: 7,
    })
}

/// `seqinfo.ini` of a sequence whose ground truth is `<seq>/gt/gt.txt`.
fn seq_info(seq: &SequencePaths) -> Result<Option<SeqInfo>, ScoreError> {
    let ini = seq
        .gt
        .parent()
        .filter(|p| p.file_name().is_some_and(|n| n == "gt"))
        .and_then(Path::parent)
        .map(|d| d.join("seqinfo.ini"));
    match ini {
        Some(ini) if ini.is_file() => Ok(Some(SeqInfo::read(&ini)?)),
        _ => Ok(None),
    }
}

/// Refuses to score a run whose video is not the ground truth's sequence:
/// another image size, fewer frames than are annotated, or more frames and
/// a name that mentions neither the sequence nor its folder. A run scored
/// against the wrong sequence gives plausible-looking numbers, so this is
/// an error unless `force` (then the returned warning says so).
pub fn check_run_matches(
    store: &Results,
    rec: &RunRecord,
    seq: &SequencePaths,
    gt_file: &MotFile,
    force: bool,
) -> Result<Option<String>, ScoreError> {
    let run = rec.id;
    let info = seq_info(seq)?;
    let video = store.video(rec.video_id)?;
    let frames_annotated = info
        .as_ref()
        .map(|i| i.seq_length)
        .unwrap_or_else(|| gt_file.max_frame()) as u64;
    let mut problems = Vec::new();
    if let Some((w, h)) = info.as_ref().and_then(|i| i.width.zip(i.height)) {
        if (rec.width, rec.height) != (w, h) {
            problems.push(format!(
                "its video is {}x{}, the sequence {w}x{h}",
                rec.width, rec.height
            ));
        }
    }
    let mut names: Vec<String> = vec![seq.name.clone()];
    if let Some(n) = info.as_ref().and_then(|i| i.name.clone()) {
        if n != seq.name {
            names.push(n);
        }
    }
    let video_path = rec.video_path.to_lowercase();
    let named = names
        .iter()
        .any(|n| !n.is_empty() && video_path.contains(&n.to_lowercase()));
    // 0: a length the container did not tell.
    if let Some(v) = video.as_ref().filter(|v| v.frames_expected > 0) {
        // Frame counts of container videos are estimates: allow 1 %.
        let slack = (frames_annotated / 100).max(1);
        if v.frames_expected + slack < frames_annotated {
            problems.push(format!(
                "its video has {} frames, the sequence {frames_annotated}",
                v.frames_expected
            ));
        } else if v.frames_expected > frames_annotated + slack && !named {
            problems.push(format!(
                "its video has {} frames, the sequence {frames_annotated}, and its name does not mention {}",
                v.frames_expected,
                names.join(" or ")
            ));
        }
    }
    if problems.is_empty() {
        return Ok(None);
    }
    let what = format!(
        "run {run} ({}) does not look like sequence {}: {}",
        file_name(&rec.video_path),
        seq.name,
        problems.join("; ")
    );
    if force {
        return Ok(Some(format!(
            "warning: {what}; scoring it anyway (--force)"
        )));
    }
    Err(input(format!("{what} (--force scores it anyway)")))
}

fn file_name(p: &str) -> String {
    Path::new(p)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.to_string())
}
