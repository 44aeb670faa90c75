//! ByteTracker on PETS09-S2L1 (124 frames, 7 fps).
//!
//! Fixtures (derived data, made by `bench/track`, see `bench/track/NOTES.md`):
//! `pets09_yolox_nano_dets.txt` is `detect_reference.py` output (YOLOX-Nano
//! via onnxruntime, person, conf ≥ 0.1) and
//! `pets09_supervision_0.26.1_tracks.txt` is supervision's ByteTrack on those
//! detections, as written by `compare_supervision.py`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use peregrine_core::{BBox, Detection, TrackId};
use peregrine_track::{ByteTrackConfig, ByteTracker};

const FRAMES: u64 = 124;

fn data_dir() -> PathBuf {
    std::env::var_os("PEREGRINE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// MOT lines as `(frame, id, box, score)`.
fn parse_mot(text: &str) -> Vec<(u64, i64, BBox, f32)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<f32> = l.split(',').map(|v| v.trim().parse().unwrap()).collect();
            (
                f[0] as u64,
                f[1] as i64,
                BBox::from_xywh(f[2], f[3], f[4], f[5]),
                f[6],
            )
        })
        .collect()
}

fn frames_of(rows: &[(u64, i64, BBox, f32)]) -> BTreeMap<u64, Vec<Detection>> {
    let mut by_frame: BTreeMap<u64, Vec<Detection>> = BTreeMap::new();
    for &(frame, _, bbox, score) in rows {
        by_frame
            .entry(frame)
            .or_default()
            .push(Detection::new(0, score, bbox));
    }
    by_frame
}

fn config() -> ByteTrackConfig {
    ByteTrackConfig {
        frame_rate: 7.0,
        ..Default::default()
    }
}

fn close(a: &BBox, b: &BBox) -> bool {
    [(a.x1, b.x1), (a.y1, b.y1), (a.x2, b.x2), (a.y2, b.y2)]
        .iter()
        .all(|(p, q)| (p - q).abs() < 0.02)
}

#[test]
fn same_tracks_as_supervision_on_yolox_detections() {
    let dets = parse_mot(&fixture("pets09_yolox_nano_dets.txt"));
    let reference = parse_mot(&fixture("pets09_supervision_0.26.1_tracks.txt"));
    let mut by_frame = frames_of(&dets);
    let mut tracker = ByteTracker::new(config()).unwrap();
    let mut ours = 0;
    for frame in 1..=FRAMES {
        if let Some(d) = by_frame.get_mut(&frame) {
            tracker.update(frame, d);
            ours += d.iter().filter(|d| d.track_id.is_some()).count();
        } else {
            tracker.update(frame, &mut []);
        }
    }
    assert_eq!(ours, reference.len(), "tracked detections");
    // Every reference row has its detection tracked, with ids mapping one-to-one.
    let mut to_ours: HashMap<i64, TrackId> = HashMap::new();
    let mut to_ref: HashMap<TrackId, i64> = HashMap::new();
    for (frame, ref_id, bbox, _) in reference {
        let d = by_frame[&frame]
            .iter()
            .find(|d| close(&d.bbox, &bbox))
            .unwrap_or_else(|| panic!("frame {frame}: no detection at {bbox:?}"));
        let id = d
            .track_id
            .unwrap_or_else(|| panic!("frame {frame}: {bbox:?} untracked"));
        assert_eq!(*to_ours.entry(ref_id).or_insert(id), id, "frame {frame}");
        assert_eq!(*to_ref.entry(id).or_insert(ref_id), ref_id, "frame {frame}");
    }
}

/// Feeds ground-truth boxes as detections every `stride` frames and counts
/// identity switches: for each ground-truth id, changes of the track id
/// between consecutive tracked observations.
fn gt_switches(stride: u64, consecutive: bool) -> (usize, usize, usize) {
    let path = data_dir().join("mot/PETS09-S2L1-480x360/gt/gt.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let gt = parse_mot(&text);
    let mut by_frame: BTreeMap<u64, Vec<(i64, Detection)>> = BTreeMap::new();
    for &(frame, id, bbox, _) in &gt {
        by_frame
            .entry(frame)
            .or_default()
            .push((id, Detection::new(0, 0.9, bbox)));
    }
    let mut tracker = ByteTracker::new(config()).unwrap();
    let mut last: BTreeMap<i64, TrackId> = BTreeMap::new();
    let (mut switches, mut tracked, mut total) = (0, 0, 0);
    for frame in (1..=FRAMES).step_by(stride as usize) {
        let Some(rows) = by_frame.get(&frame) else {
            continue;
        };
        let mut dets: Vec<Detection> = rows.iter().map(|(_, d)| d.clone()).collect();
        let index = if consecutive { frame / stride } else { frame };
        tracker.update(index, &mut dets);
        for ((gt_id, _), d) in rows.iter().zip(&dets) {
            total += 1;
            if let Some(id) = d.track_id {
                tracked += 1;
                if last.insert(*gt_id, id).is_some_and(|prev| prev != id) {
                    switches += 1;
                }
            }
        }
    }
    (switches, tracked, total)
}

#[test]
fn ground_truth_boxes_keep_identities_at_full_rate_and_sampled() {
    // Observed: stride 1: 0 switches, 672/676 tracked. Strides 2 and 3:
    // walkers 9 and 15 overlap (IoU ~0.7) for frames around 30 and swap
    // twice (4 switches), 6 at stride 3. At stride 3 (2.3 updates/s) walkers
    // move ~8 px between updates, half a box width: a newborn track has no
    // velocity yet, misses the 0.7 confirmation cost and is born again, so
    // 31 of 228 boxes stay untracked; that is ByteTrack's IoU-only birth
    // rule, not the gap handling (see `sampled_frames_need_true_indices`).
    for (stride, max_switches, max_untracked) in [(1, 0, 7), (2, 4, 7), (3, 6, 35)] {
        let (switches, tracked, total) = gt_switches(stride, false);
        eprintln!("stride {stride}: {switches} switches, {tracked}/{total} tracked");
        assert!(
            tracked + max_untracked >= total,
            "stride {stride}: {tracked}/{total} tracked"
        );
        assert!(
            switches <= max_switches,
            "stride {stride}: {switches} switches"
        );
    }
}

#[test]
fn sampled_frames_need_true_indices() {
    // Same sampled boxes, but indices renumbered as if consecutive: the
    // filter then under-predicts motion and does worse.
    for stride in [2, 3] {
        let (sw_true, tr_true, _) = gt_switches(stride, false);
        let (sw_naive, tr_naive, _) = gt_switches(stride, true);
        eprintln!(
            "stride {stride}: true indices {sw_true}/{tr_true}, renumbered {sw_naive}/{tr_naive}"
        );
        assert!(sw_true <= sw_naive && tr_true >= tr_naive);
        assert!(sw_true < sw_naive || tr_true > tr_naive);
    }
}
