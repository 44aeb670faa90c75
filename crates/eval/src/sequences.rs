//! Finding sequences: a pair of files, one sequence folder, or a
//! MOTChallenge tree of sequences with a folder of tracker results.
//!
//! A key design decision here is to accept both the MOTChallenge and the
//! TrackEval layouts (`<name>.txt` or `data/<name>.txt`) and to fail on a
//! sequence without results instead of scoring it as all misses: a missing
//! file is almost always a wrong path, not a tracker that found nothing.

use std::path::{Path, PathBuf};

use crate::motfile::SeqInfo;
use crate::EvalError;

/// The files of one sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequencePaths {
    pub name: String,
    pub gt: PathBuf,
    pub pred: PathBuf,
    /// From `seqinfo.ini` next to `gt/`, when there is one.
    pub seq_length: Option<u32>,
}

/// Pairs ground truth with predictions.
///
/// - `gt` a file: one sequence; `pred` is a file, or a folder holding
///   `<name>.txt` (name: the folder above `gt/`, else the file stem).
/// - `gt` a sequence folder (`gt/gt.txt` inside): one sequence, likewise.
/// - `gt` a folder of sequence folders: every sequence, sorted by name;
///   `pred` must be a folder with `<name>.txt` (or `data/<name>.txt`, the
///   TrackEval layout) for each. A sequence without predictions is an
///   error; extra prediction files are ignored.
pub fn discover(gt: &Path, pred: &Path) -> Result<Vec<SequencePaths>, EvalError> {
    if !gt.exists() {
        return Err(EvalError::invalid(gt, "not found"));
    }
    if !pred.exists() {
        return Err(EvalError::invalid(pred, "not found"));
    }
    if gt.is_file() {
        return Ok(vec![single(gt.to_path_buf(), pred)?]);
    }
    let own = gt.join("gt").join("gt.txt");
    if own.is_file() {
        return Ok(vec![single(own, pred)?]);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(gt)
        .map_err(|e| EvalError::io(gt, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("gt").join("gt.txt").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(EvalError::invalid(
            gt,
            "no sequences: expected gt/gt.txt inside it or inside its sub-folders",
        ));
    }
    if !pred.is_dir() {
        return Err(EvalError::invalid(
            pred,
            "several ground-truth sequences need a folder of <sequence>.txt results",
        ));
    }
    dirs.into_iter()
        .map(|d| single(d.join("gt").join("gt.txt"), pred))
        .collect()
}

fn single(gt: PathBuf, pred: &Path) -> Result<SequencePaths, EvalError> {
    let seq_dir = gt
        .parent()
        .filter(|p| p.file_name().is_some_and(|n| n == "gt"))
        .and_then(Path::parent);
    let info = match seq_dir.map(|d| d.join("seqinfo.ini")) {
        Some(ini) if ini.is_file() => Some(SeqInfo::read(&ini)?),
        _ => None,
    };
    // `<seq>/gt/gt.txt`, else `<seq>/gt.txt` (motmetrics' layout), else the
    // file stem.
    let stem_is_gt = gt.file_stem().is_some_and(|s| s == "gt");
    let name = seq_dir
        .and_then(|d| d.file_name())
        .or_else(|| {
            stem_is_gt
                .then(|| gt.parent().and_then(Path::file_name))
                .flatten()
        })
        .or_else(|| gt.file_stem())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sequence".to_string());
    let pred = if pred.is_dir() {
        let candidates = [
            pred.join(format!("{name}.txt")),
            pred.join("data").join(format!("{name}.txt")),
        ];
        candidates
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .ok_or_else(|| {
                EvalError::invalid(pred, format!("no results for sequence {name} ({name}.txt)"))
            })?
    } else {
        pred.to_path_buf()
    };
    Ok(SequencePaths {
        name,
        gt,
        pred,
        seq_length: info.map(|i| i.seq_length),
    })
}
