//! Recognising a detector's family from its inputs and outputs.

use std::path::Path;
use std::str::FromStr;

use crate::InferError;

/// Detector families Peregrine can decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// YOLOX: one output [N, anchors, 5 + C], raw grid.
    Yolox,
    /// NanoDet (GFL head): per-stride class scores and box distributions.
    Nanodet,
    /// Ultralytics YOLOv8 / YOLO11: one output [N, 4 + C (+ 3K), anchors].
    Ultralytics,
}

impl Family {
    pub fn name(&self) -> &'static str {
        match self {
            Family::Yolox => "yolox",
            Family::Nanodet => "nanodet",
            Family::Ultralytics => "ultralytics",
        }
    }
}

impl FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "yolox" => Ok(Family::Yolox),
            "nanodet" => Ok(Family::Nanodet),
            "ultralytics" | "yolov8" | "yolo11" | "yolov11" => Ok(Family::Ultralytics),
            other => Err(format!(
                "unknown model family {other:?} (expected yolox, nanodet, ultralytics)"
            )),
        }
    }
}

/// Batch dimension of the model input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchDim {
    Fixed(usize),
    Dynamic,
}

/// Pixel normalisation: `(x - mean[c]) * scale[c]`, channels in the model's
/// order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub scale: [f32; 3],
}

/// Where the outputs are, per family.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputLayout {
    Yolox {
        output: usize,
    },
    /// Output indices of (class scores, box distribution) per stride 8/16/32.
    Nanodet {
        levels: [(usize, usize); 3],
        reg_max: usize,
    },
    Ultralytics {
        output: usize,
        keypoints: usize,
    },
}

/// Everything the detector needs to know about a model, read from the model
/// itself.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub family: Family,
    pub input_name: String,
    pub input_width: u32,
    pub input_height: u32,
    pub batch: BatchDim,
    pub num_classes: usize,
    pub layout: OutputLayout,
    pub strides: [u32; 3],
}

impl ModelSpec {
    /// Number of anchor points over strides 8, 16, 32.
    pub fn anchors(&self) -> usize {
        anchors(self.input_width, self.input_height, &self.strides)
    }

    pub fn normalization(&self) -> Normalization {
        match self.family {
            Family::Yolox => Normalization {
                mean: [0.0; 3],
                scale: [1.0; 3],
            },
            Family::Nanodet => Normalization {
                mean: [103.53, 116.28, 123.675],
                scale: [1.0 / 57.375, 1.0 / 57.12, 1.0 / 58.395],
            },
            Family::Ultralytics => Normalization {
                mean: [0.0; 3],
                scale: [1.0 / 255.0; 3],
            },
        }
    }
}

fn anchors(w: u32, h: u32, strides: &[u32; 3]) -> usize {
    strides
        .iter()
        .map(|s| (w.div_ceil(*s) * h.div_ceil(*s)) as usize)
        .sum()
}

/// Shape of one model input or output: `-1` for a dynamic dimension.
pub type Dims = Vec<i64>;

/// Recognises the family (or checks the requested one) from the model's
/// single image input and its outputs.
pub fn recognise(
    path: &Path,
    input: (&str, &Dims),
    outputs: &[(String, Dims)],
    requested: Option<Family>,
) -> Result<ModelSpec, InferError> {
    let fail = |reason: String| InferError::UnknownFamily {
        path: path.to_path_buf(),
        reason,
    };
    let (input_name, idims) = input;
    if idims.len() != 4 || idims[1] != 3 || idims[2] <= 0 || idims[3] <= 0 {
        return Err(fail(format!(
            "input {input_name:?} has shape {idims:?}; expected [N, 3, H, W] with fixed H and W"
        )));
    }
    let (h, w) = (idims[2] as u32, idims[3] as u32);
    let batch = if idims[0] > 0 {
        BatchDim::Fixed(idims[0] as usize)
    } else {
        BatchDim::Dynamic
    };
    let strides = [8, 16, 32];
    let n_anchors = anchors(w, h, &strides) as i64;
    let shapes: Vec<String> = outputs.iter().map(|(n, d)| format!("{n}{d:?}")).collect();
    let describe = shapes.join(", ");
    let base = |family, num_classes, layout| ModelSpec {
        family,
        input_name: input_name.to_string(),
        input_width: w,
        input_height: h,
        batch,
        num_classes,
        layout,
        strides,
    };

    let yolox = || -> Option<ModelSpec> {
        match outputs {
            [(_, d)] if d.len() == 3 && d[1] == n_anchors && d[2] > 5 => Some(base(
                Family::Yolox,
                (d[2] - 5) as usize,
                OutputLayout::Yolox { output: 0 },
            )),
            _ => None,
        }
    };
    let ultralytics = || -> Option<ModelSpec> {
        match outputs {
            [(_, d)] if d.len() == 3 && d[2] == n_anchors && d[1] > 4 => {
                let rows = d[1] as usize;
                // 4 box rows + 1 class + 17 COCO keypoints x 3 is the pose head.
                let (classes, keypoints) =
                    if rows > 5 && (rows - 5).is_multiple_of(3) && (rows - 5) / 3 == 17 {
                        (1, 17)
                    } else {
                        (rows - 4, 0)
                    };
                Some(base(
                    Family::Ultralytics,
                    classes,
                    OutputLayout::Ultralytics {
                        output: 0,
                        keypoints,
                    },
                ))
            }
            _ => None,
        }
    };
    let nanodet = || -> Option<ModelSpec> {
        if outputs.len() != 6 {
            return None;
        }
        let mut levels = [(usize::MAX, usize::MAX); 3];
        let mut classes = 0usize;
        let mut reg = 0usize;
        for (lvl, s) in strides.iter().enumerate() {
            let n = (w.div_ceil(*s) * h.div_ceil(*s)) as i64;
            let mut found: Vec<(usize, i64)> = outputs
                .iter()
                .enumerate()
                .filter(|(_, (_, d))| d.len() == 3 && d[1] == n)
                .map(|(i, (_, d))| (i, d[2]))
                .collect();
            if found.len() != 2 {
                return None;
            }
            found.sort_by_key(|&(_, c)| c);
            // Box distributions have 4 * (reg_max + 1) channels; the other
            // output is class scores. Tell them apart by divisibility when
            // both are multiples of 4 by preferring the known 32.
            let (cls, box_) = if found[1].1 == 32 && found[0].1 != 32 {
                (found[0], found[1])
            } else if found[0].1 == 32 {
                (found[1], found[0])
            } else {
                return None;
            };
            levels[lvl] = (cls.0, box_.0);
            classes = cls.1 as usize;
            reg = box_.1 as usize / 4 - 1;
        }
        Some(base(
            Family::Nanodet,
            classes,
            OutputLayout::Nanodet {
                levels,
                reg_max: reg,
            },
        ))
    };

    let found = match requested {
        Some(Family::Yolox) => yolox(),
        Some(Family::Nanodet) => nanodet(),
        Some(Family::Ultralytics) => ultralytics(),
        None => yolox().or_else(nanodet).or_else(ultralytics),
    };
    found.ok_or_else(|| {
        fail(match requested {
            Some(f) => format!(
                "outputs [{describe}] do not fit the {} layout for a {w}x{h} input",
                f.name()
            ),
            None => format!(
                "outputs [{describe}] fit no known model family (yolox, nanodet, ultralytics) for a {w}x{h} input"
            ),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(n: &str, d: &[i64]) -> (String, Dims) {
        (n.to_string(), d.to_vec())
    }

    #[test]
    fn recognises_yolox_with_dynamic_batch() {
        let s = recognise(
            Path::new("m.onnx"),
            ("images", &vec![-1, 3, 416, 416]),
            &[out("output", &[-1, 3549, 85])],
            None,
        )
        .unwrap();
        assert_eq!(s.family, Family::Yolox);
        assert_eq!(s.num_classes, 80);
        assert_eq!(s.batch, BatchDim::Dynamic);
        assert_eq!(s.anchors(), 3549);
    }

    #[test]
    fn recognises_ultralytics_detect_and_pose() {
        let det = recognise(
            Path::new("m.onnx"),
            ("images", &vec![1, 3, 640, 640]),
            &[out("output0", &[1, 84, 8400])],
            None,
        )
        .unwrap();
        assert_eq!((det.family, det.num_classes), (Family::Ultralytics, 80));
        let pose = recognise(
            Path::new("m.onnx"),
            ("images", &vec![1, 3, 640, 640]),
            &[out("output0", &[1, 56, 8400])],
            None,
        )
        .unwrap();
        assert_eq!(pose.num_classes, 1);
        assert_eq!(
            pose.layout,
            OutputLayout::Ultralytics {
                output: 0,
                keypoints: 17
            }
        );
    }

    #[test]
    fn recognises_nanodet_levels_in_any_order() {
        let outs = [
            out("cls8", &[1, 2704, 80]),
            out("dis8", &[1, 2704, 32]),
            out("cls16", &[1, 676, 80]),
            out("dis16", &[1, 676, 32]),
            out("dis32", &[1, 169, 32]),
            out("cls32", &[1, 169, 80]),
        ];
        let s = recognise(
            Path::new("n.onnx"),
            ("input.1", &vec![1, 3, 416, 416]),
            &outs,
            None,
        )
        .unwrap();
        assert_eq!(s.family, Family::Nanodet);
        assert_eq!(
            s.layout,
            OutputLayout::Nanodet {
                levels: [(0, 1), (2, 3), (5, 4)],
                reg_max: 7
            }
        );
    }

    #[test]
    fn unknown_layout_is_a_clear_error() {
        let err = recognise(
            Path::new("weird.onnx"),
            ("x", &vec![1, 3, 224, 224]),
            &[out("logits", &[1, 1000])],
            None,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("weird.onnx: outputs [logits[1, 1000]] fit no known model family"),
            "{msg}"
        );
        let err = recognise(
            Path::new("m.onnx"),
            ("images", &vec![1, 3, 416, 416]),
            &[out("output", &[1, 3549, 85])],
            Some(Family::Nanodet),
        )
        .unwrap_err();
        assert!(err.to_string().contains("do not fit the nanodet layout"));
    }
}
