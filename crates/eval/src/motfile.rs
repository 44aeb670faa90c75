//! Reading MOTChallenge text files (`gt.txt`, tracker results, `seqinfo.ini`).
//!
//! A key design decision here is to validate every row once, at load time,
//! with the file and line in the error: the metric code downstream can then
//! assume finite, non-negative boxes, positive frame numbers and unique ids
//! per frame, and never has to fail (or panic) halfway through a sequence.
//!
//! Columns (comma or whitespace separated, as `motmetrics` reads them):
//! `frame, id, x, y, w, h, conf, [class | wx], [visibility | wy], [wz]`.
//! MOT15 files carry world coordinates in columns 8-10; MOT16/17/20 ground
//! truth carries `consider, class, visibility` in columns 7-9.

use std::path::{Path, PathBuf};

use crate::EvalError;

/// One row of a MOTChallenge file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotRow {
    /// 1-based frame number.
    pub frame: u32,
    pub id: i64,
    /// Left, top, width, height in pixels (MOTChallenge's 1-based left/top
    /// exactly as written in the file).
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    /// Confidence (tracker results) or the consider flag (ground truth).
    pub conf: f64,
    /// Column 8 truncated to an integer: the class in MOT16/17/20 ground
    /// truth, the world x coordinate in MOT15 files; -1 when absent.
    pub class: i64,
    /// Column 9: visibility in MOT16/17/20 ground truth; -1 when absent.
    pub visibility: f64,
}

/// A parsed MOTChallenge file.
#[derive(Clone, Debug)]
pub struct MotFile {
    pub path: PathBuf,
    pub rows: Vec<MotRow>,
    /// The largest number of columns on any row (6 to 10).
    pub columns: usize,
}

/// Which side of the comparison a file is: ground truth needs the consider
/// flag (column 7); tracker results may stop after the box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileRole {
    GroundTruth,
    Prediction,
}

/// Largest accepted frame number (about 4.6 days at 25 fps): frame-indexed
/// tables are sized by it, so a corrupt frame column must not size them.
pub const MAX_FRAME: u32 = 10_000_000;

const NAMES: [&str; 10] = [
    "frame",
    "id",
    "x",
    "y",
    "width",
    "height",
    "conf",
    "class",
    "visibility",
    "z",
];

impl MotFile {
    /// Reads and validates a file. An empty ground-truth file is an error;
    /// an empty tracker file is a valid result that found nothing.
    pub fn read(path: &Path, role: FileRole) -> Result<MotFile, EvalError> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        MotFile::parse(path, &text, role)
    }

    /// Parses file contents; `path` is only used in error messages.
    pub fn parse(path: &Path, text: &str, role: FileRole) -> Result<MotFile, EvalError> {
        let min_cols = match role {
            FileRole::GroundTruth => 7,
            FileRole::Prediction => 6,
        };
        let mut rows = Vec::with_capacity(text.len() / 40);
        let mut columns = 0;
        let mut vals = [0f64; 10];
        for (i, line) in text.lines().enumerate() {
            let lineno = i + 1;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let mut n = 0;
            for tok in line
                .split(|c: char| c == ',' || c.is_ascii_whitespace())
                .filter(|t| !t.is_empty())
            {
                if n == 10 {
                    return Err(EvalError::parse(
                        path,
                        lineno,
                        "unknown column 11: MOTChallenge rows have at most 10 columns",
                    ));
                }
                vals[n] = tok.parse::<f64>().map_err(|_| {
                    EvalError::parse(path, lineno, format!("{}: not a number: {tok:?}", NAMES[n]))
                })?;
                if vals[n].is_nan() {
                    return Err(EvalError::parse(
                        path,
                        lineno,
                        format!("{} is NaN", NAMES[n]),
                    ));
                }
                n += 1;
            }
            if line.contains(",,") || line.ends_with(',') {
                return Err(EvalError::parse(path, lineno, "empty column"));
            }
            if n < min_cols {
                let want = if min_cols == 7 {
                    "frame,id,x,y,w,h,conf (ground truth needs the consider flag)"
                } else {
                    "frame,id,x,y,w,h"
                };
                return Err(EvalError::parse(
                    path,
                    lineno,
                    format!("{n} columns, expected at least {min_cols}: {want}"),
                ));
            }
            columns = columns.max(n);
            let [frame, id, x, y, w, h, ..] = vals;
            if frame.fract() != 0.0 || !(1.0..=MAX_FRAME as f64).contains(&frame) {
                return Err(EvalError::parse(
                    path,
                    lineno,
                    format!("frame must be a whole number from 1 to {MAX_FRAME}, got {frame}"),
                ));
            }
            if id.fract() != 0.0 || !id.is_finite() {
                return Err(EvalError::parse(
                    path,
                    lineno,
                    format!("id must be a whole number, got {id}"),
                ));
            }
            for (k, v) in [(2, x), (3, y), (4, w), (5, h)] {
                if !v.is_finite() {
                    return Err(EvalError::parse(
                        path,
                        lineno,
                        format!("{} is {v}", NAMES[k]),
                    ));
                }
            }
            if w < 0.0 || h < 0.0 {
                return Err(EvalError::parse(
                    path,
                    lineno,
                    format!("negative box size {w}x{h}"),
                ));
            }
            let conf = if n > 6 { vals[6] } else { 1.0 };
            let class = if n > 7 && vals[7].is_finite() {
                vals[7].trunc() as i64
            } else {
                -1
            };
            let visibility = if n > 8 { vals[8] } else { -1.0 };
            rows.push(MotRow {
                frame: frame as u32,
                id: id as i64,
                x,
                y,
                w,
                h,
                conf,
                class,
                visibility,
            });
        }
        if rows.is_empty() && role == FileRole::GroundTruth {
            return Err(EvalError::invalid(path, "ground truth file has no rows"));
        }
        Ok(MotFile {
            path: path.to_path_buf(),
            rows,
            columns,
        })
    }

    /// The largest frame number in the file (0 when empty).
    pub fn max_frame(&self) -> u32 {
        self.rows.iter().map(|r| r.frame).max().unwrap_or(0)
    }
}

/// `seqinfo.ini`: the sequence length fixes the frame range to score; the
/// image size tells whether a video is of this sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeqInfo {
    pub name: Option<String>,
    pub seq_length: u32,
    /// `imWidth` and `imHeight`, when given.
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl SeqInfo {
    pub fn read(path: &Path) -> Result<SeqInfo, EvalError> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        SeqInfo::parse(path, &text)
    }

    /// Parses file contents; `path` is only used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<SeqInfo, EvalError> {
        let mut name = None;
        let mut len = None;
        let (mut width, mut height) = (None, None);
        for (i, line) in text.lines().enumerate() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k.trim() {
                "name" => name = Some(v.trim().to_string()),
                // Only informative: a malformed size is not a reason to refuse
                // the sequence.
                "imWidth" => width = v.trim().parse::<u32>().ok(),
                "imHeight" => height = v.trim().parse::<u32>().ok(),
                "seqLength" => {
                    len = Some(v.trim().parse::<u32>().map_err(|_| {
                        EvalError::parse(
                            path,
                            i + 1,
                            format!("seqLength: not a whole number: {v:?}"),
                        )
                    })?)
                }
                _ => {}
            }
        }
        let seq_length = len.ok_or_else(|| EvalError::invalid(path, "no seqLength"))?;
        if seq_length > MAX_FRAME {
            return Err(EvalError::invalid(
                path,
                format!("seqLength {seq_length} is above the supported maximum {MAX_FRAME}"),
            ));
        }
        Ok(SeqInfo {
            name,
            seq_length,
            width,
            height,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, role: FileRole) -> Result<MotFile, EvalError> {
        MotFile::parse(Path::new("t.txt"), text, role)
    }

    #[test]
    fn reads_mot15_and_mot17_rows() {
        let f = parse(
            "1,2,10,20,30,40,1,-1,-1,-1\n\n2 3 1.5 2 3 4 0.5 1 0.8\n",
            FileRole::Prediction,
        )
        .unwrap();
        assert_eq!(f.rows.len(), 2);
        assert_eq!(f.columns, 10);
        assert_eq!(f.rows[1].frame, 2);
        assert_eq!(f.rows[1].class, 1);
        assert_eq!(f.rows[1].visibility, 0.8);
        assert_eq!(f.rows[0].class, -1);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let cases = [
            (
                "1,1,0,0,5,5,1\n1,2,0,0,x,5,1\n",
                "t.txt:2: width: not a number",
            ),
            ("1,1,0,0,5,5,1\n1,2,0,0,NaN,5,1\n", "t.txt:2: width is NaN"),
            ("1,1,0,0,-5,5,1\n", "t.txt:1: negative box size"),
            (
                "0,1,0,0,5,5,1\n",
                "t.txt:1: frame must be a whole number from 1 to 10000000, got 0",
            ),
            (
                "99999999,1,0,0,5,5,1\n",
                "t.txt:1: frame must be a whole number from 1",
            ),
            ("1.5,1,0,0,5,5,1\n", "t.txt:1: frame must be"),
            ("1,1,0,0,5,5\n", "t.txt:1: 6 columns, expected at least 7"),
            ("1,1,0,0,5,5,1,1,1,1,7\n", "t.txt:1: unknown column 11"),
            ("1,1,0,0,5,,1\n", "t.txt:1: empty column"),
            ("1,1,0,0,inf,5,1\n", "t.txt:1: width is inf"),
        ];
        for (text, want) in cases {
            let e = parse(text, FileRole::GroundTruth).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e:?} does not start with {want:?}");
        }
    }

    #[test]
    fn seqinfo_gives_length_name_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let ini = dir.path().join("seqinfo.ini");
        std::fs::write(
            &ini,
            "[Sequence]\nname=PETS09-S2L1\nseqLength=124\nimWidth=480\nimHeight=360\n",
        )
        .unwrap();
        let info = SeqInfo::read(&ini).unwrap();
        assert_eq!(info.name.as_deref(), Some("PETS09-S2L1"));
        assert_eq!(
            (info.seq_length, info.width, info.height),
            (124, Some(480), Some(360))
        );
        std::fs::write(&ini, "seqLength=5\nimWidth=wide\n").unwrap();
        let info = SeqInfo::read(&ini).unwrap();
        assert_eq!((info.width, info.height), (None, None));
    }

    #[test]
    fn empty_files() {
        let e = parse("\n\n", FileRole::GroundTruth)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "t.txt: ground truth file has no rows");
        assert!(parse("", FileRole::Prediction).unwrap().rows.is_empty());
    }
}
