//! Stored frames (with and without detections) and counts.

use std::collections::BTreeMap;

use peregrine_core::{
    Anchor, BBox, Detection, Dwell, FrameMeta, GroundTrack, InOut, IntervalCounts, LineSpec,
    Occupancy, SpatialSpec, ZoneInterval, ZoneSpec,
};
use peregrine_store::{NewRun, Store, VideoRecord};
use serde_json::json;

fn spec() -> SpatialSpec {
    SpatialSpec {
        lines: vec![
            LineSpec::parse("a=0,0,10,0").unwrap(),
            LineSpec::parse("b=0,5,10,5").unwrap(),
        ],
        zones: vec![ZoneSpec::parse("z=0,0;10,0;10,10").unwrap()],
        anchor: Anchor::Center,
        interval_s: 10.0,
        calibration: vec![],
    }
}

fn store_with_run(dir: &std::path::Path, params: serde_json::Value) -> (Store, i64) {
    let s = Store::open(&dir.join("p.db")).unwrap();
    let vid = s
        .upsert_video(&VideoRecord {
            path: "/v.mp4".into(),
            content_hash: "h".into(),
            size: 1,
            duration: 1.0,
            fps: 10.0,
            width: 64,
            height: 48,
            codec: "h264".into(),
            frames_expected: 10,
        })
        .unwrap();
    let run = s
        .begin_run(&NewRun {
            video_id: vid,
            cache_key: "k".into(),
            model_path: "m".into(),
            model_hash: "m".into(),
            params,
            versions: json!({}),
        })
        .unwrap();
    (s, run)
}

#[test]
fn frames_without_detections_are_replayed_too() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, run) = store_with_run(dir.path(), json!({}));
    let meta = |i: u64| FrameMeta {
        source: 0,
        index: i * 2,
        pts: i as f64 * 0.2,
        width: 64,
        height: 48,
    };
    let det = Detection::new(1, 0.9, BBox::new(1.0, 2.0, 3.0, 4.0));
    let frames: Vec<(FrameMeta, Vec<Detection>)> = (0..6)
        .map(|i| {
            (
                meta(i),
                if i % 3 == 1 {
                    vec![det.clone(), det.clone()]
                } else {
                    vec![]
                },
            )
        })
        .collect();
    s.insert_frames(run, frames.iter().map(|(m, d)| (m, d.as_slice())))
        .unwrap();
    let mut seen = Vec::new();
    s.for_each_frame::<()>(run, 64, 48, |m, rows| {
        seen.push((m.index, m.pts, rows.len(), (m.width, m.height)));
        Ok(())
    })
    .unwrap()
    .unwrap();
    let want: Vec<_> = (0..6u64)
        .map(|i| {
            (
                i * 2,
                i as f64 * 0.2,
                if i % 3 == 1 { 2 } else { 0 },
                (64, 48),
            )
        })
        .collect();
    assert_eq!(seen, want);
}

#[test]
fn counts_round_trip_in_the_runs_order_of_lines_and_zones() {
    let dir = tempfile::tempdir().unwrap();
    let sp = spec();
    let (mut s, run) = store_with_run(dir.path(), json!({"spatial": sp}));
    let record = s.run(run).unwrap();
    assert_eq!(record.spatial(), Some(sp.clone()));
    let iv = |index: u64, n: u64| IntervalCounts {
        source: 0,
        index,
        start_s: index as f64 * 10.0,
        end_s: (index + 1) as f64 * 10.0,
        frames: 100,
        lines: vec![
            BTreeMap::from([
                (2, InOut { n_in: n, n_out: 1 }),
                (0, InOut { n_in: 0, n_out: 3 }),
            ]),
            BTreeMap::new(),
        ],
        zones: vec![ZoneInterval {
            occupancy: Occupancy { max: n, sum: 7 * n },
            by_class: BTreeMap::from([(2, Occupancy { max: n, sum: 5 })]),
            entries: n,
            exits: 1,
            dwell: Dwell {
                count: 2,
                sum_s: 3.5,
                max_s: 2.25,
            },
        }],
    };
    let counts = vec![iv(0, 4), iv(3, 9)];
    let ground = vec![GroundTrack {
        source: 0,
        track_id: 7,
        distance_m: 12.5,
        mean_speed_m_s: Some(2.5),
        max_speed_m_s: None,
    }];
    s.insert_spatial(run, &sp, &counts, &ground).unwrap();
    assert_eq!(s.count_intervals(run, &sp).unwrap(), counts);
    assert_eq!(s.ground_tracks(run).unwrap(), ground);
    let doc = s.counts_json(&record).unwrap().unwrap();
    assert_eq!(doc["lines"][0]["in"], 13);
    assert_eq!(doc["lines"][0]["out"], 8);
    assert_eq!(doc["lines"][0]["by_class"]["car"]["in"], 13);
    assert_eq!(doc["lines"][1]["in"], 0);
    assert_eq!(doc["zones"][0]["max"], 9);
    assert_eq!(doc["zones"][0]["mean"], 0.455);
    assert_eq!(doc["zones"][0]["dwell_s"]["mean"], 1.75);
    assert_eq!(doc["intervals"][1]["start_s"], 30.0);
    assert!(doc.get("tracks").is_none(), "no calibration");
}
