//! Greedy non-maximum suppression.

use crate::Candidate;

/// Keeps the highest-scoring boxes, suppressing any later box of the same
/// class (or any class when `agnostic`) whose IoU with a kept box exceeds
/// `iou`. Sorts by score, descending (ties keep anchor order), and keeps at
/// most `max_det`. Same semantics as torchvision's `batched_nms`.
pub fn nms(cands: &mut Vec<Candidate>, iou: f32, agnostic: bool, max_det: usize) {
    cands.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.anchor.cmp(&b.anchor)));
    let mut kept = 0usize;
    for i in 0..cands.len() {
        let c = cands[i];
        let suppressed = cands[..kept]
            .iter()
            .any(|k| (agnostic || k.class_id == c.class_id) && k.bbox.iou(&c.bbox) > iou);
        if !suppressed {
            cands[kept] = c;
            kept += 1;
            if kept == max_det {
                break;
            }
        }
    }
    cands.truncate(kept);
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_core::BBox;

    fn cand(class_id: u16, score: f32, x: f32, anchor: u32) -> Candidate {
        Candidate {
            class_id,
            score,
            bbox: BBox::new(x, 0.0, x + 10.0, 10.0),
            anchor,
        }
    }

    #[test]
    fn suppresses_overlaps_within_a_class_only() {
        let mut c = vec![
            cand(0, 0.5, 1.0, 0), // IoU with the 0.9 box: 9/11 = 0.82
            cand(0, 0.9, 0.0, 1),
            cand(1, 0.8, 0.0, 2),  // other class: kept
            cand(0, 0.7, 20.0, 3), // no overlap: kept
        ];
        nms(&mut c, 0.45, false, 100);
        let kept: Vec<u32> = c.iter().map(|c| c.anchor).collect();
        assert_eq!(kept, vec![1, 2, 3]);
    }

    #[test]
    fn agnostic_and_max_det() {
        let mut c = vec![
            cand(0, 0.9, 0.0, 0),
            cand(1, 0.8, 0.5, 1),
            cand(2, 0.7, 40.0, 2),
        ];
        nms(&mut c, 0.45, true, 100);
        assert_eq!(c.len(), 2);
        let mut c = vec![
            cand(0, 0.9, 0.0, 0),
            cand(0, 0.8, 40.0, 1),
            cand(0, 0.7, 80.0, 2),
        ];
        nms(&mut c, 0.45, false, 2);
        assert_eq!(c.iter().map(|c| c.anchor).collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn threshold_is_strictly_greater() {
        // IoU exactly 1/3 with threshold 1/3: kept.
        let mut c = vec![cand(0, 0.9, 0.0, 0), cand(0, 0.8, 5.0, 1)];
        nms(&mut c, 1.0 / 3.0 + 1e-6, false, 10);
        assert_eq!(c.len(), 2);
    }
}
