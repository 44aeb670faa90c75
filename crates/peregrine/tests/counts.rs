//! `analyze --line/--zone` and `peregrine counts`: stored counts, the JSON
//! contract, replays equal to the analysis, bad input.

mod common;

use common::{analyze, peregrine, s, video};
use serde_json::Value;

const ROAD: &str = "road=250,300,1000,300";
const FAR: &str = "far=500,120,760,120";
const LANE: &str = "lane=200,720;600,250;760,250;1250,720";

fn counts(db: &std::path::Path, run: i64, extra: &[&str]) -> Value {
    let id = run.to_string();
    let mut args = vec!["counts", id.as_str(), "--db", s(db), "--json"];
    args.extend_from_slice(extra);
    let r = peregrine(&args, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn counts_are_stored_with_the_run_and_a_replay_equals_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let v = video("traffic_highway_1280x720.mp4");
    let spatial = [
        "--line",
        ROAD,
        "--line",
        FAR,
        "--zone",
        LANE,
        "--interval",
        "2",
        "--end",
        "6",
    ];
    let r = analyze(&v, &db, &spatial);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = r.json_lines()[0]["run_id"].as_i64().unwrap();
    let stored = counts(&db, run, &[]);

    // The contract: lines with in/out/by_class, zones with max/mean/
    // entries/exits/dwell_s, intervals.
    let lines = stored["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["name"], "road");
    let road_in = lines[0]["in"].as_u64().unwrap();
    let road_out = lines[0]["out"].as_u64().unwrap();
    assert!(
        road_in + road_out >= 3,
        "cars cross the road line: {}",
        lines[0]
    );
    let by_class = lines[0]["by_class"].as_object().unwrap();
    assert!(by_class.contains_key("car"), "{by_class:?}");
    let sum: u64 = by_class
        .values()
        .map(|c| c["in"].as_u64().unwrap() + c["out"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, road_in + road_out);
    let zone = &stored["zones"][0];
    assert_eq!(zone["name"], "lane");
    for k in ["max", "mean", "entries", "exits"] {
        assert!(zone[k].is_number(), "{k}: {zone}");
    }
    assert!(zone["max"].as_u64().unwrap() >= 1);
    assert!(zone["dwell_s"]["mean"].is_number() && zone["dwell_s"]["max"].is_number());
    let intervals = stored["intervals"].as_array().unwrap();
    assert_eq!(intervals.len(), 3, "6 s in 2 s intervals");
    let frames: u64 = intervals
        .iter()
        .map(|i| i["frames"].as_u64().unwrap())
        .sum();
    assert_eq!(frames, stored["frames"].as_u64().unwrap());
    let per_interval_in: u64 = intervals
        .iter()
        .map(|i| i["lines"][0]["in"].as_u64().unwrap())
        .sum();
    assert_eq!(per_interval_in, road_in);
    assert_eq!(stored["replayed"], false);

    // Replaying the stored tracks with the same lines and zones gives the
    // same document.
    let mut replayed = counts(&db, run, &spatial[..8]);
    assert_eq!(replayed["replayed"], true);
    replayed["replayed"] = false.into();
    assert_eq!(replayed, stored);

    // Other lines on the same run: a line across the whole frame height
    // counts differently, without re-running the model.
    let other = counts(&db, run, &["--line", "v=640,0,640,720"]);
    assert_eq!(other["lines"][0]["name"], "v");
    assert_eq!(
        other["intervals"].as_array().unwrap().len(),
        1,
        "default 60 s"
    );

    // Same lines: the cached run; a changed line: a new run.
    let again = analyze(&v, &db, &spatial);
    assert_eq!(again.json_lines()[0]["cache_hit"], true);
    let mut moved = spatial;
    moved[1] = "road=250,310,1000,310";
    let fresh = analyze(&v, &db, &moved);
    assert_eq!(fresh.json_lines()[0]["cache_hit"], false);

    // A heat map over a still: a PNG of the video's size.
    let png = dir.path().join("heat.png");
    let h = peregrine(
        &[
            "heatmap",
            &run.to_string(),
            "--db",
            s(&db),
            "-o",
            s(&png),
            "--class",
            "car",
        ],
        &[],
    );
    assert_eq!(h.code, 0, "{}", h.stderr);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let (w, hgt) = (
        u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
        u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
    );
    assert_eq!((w, hgt), (1280, 720));
    let bad = peregrine(
        &[
            "heatmap",
            &run.to_string(),
            "--db",
            s(&db),
            "-o",
            s(&png),
            "--class",
            "unicorn",
        ],
        &[],
    );
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("unicorn"), "{}", bad.stderr);
    let none = peregrine(
        &[
            "heatmap",
            &run.to_string(),
            "--db",
            s(&db),
            "-o",
            s(&png),
            "--track",
            "99999",
        ],
        &[],
    );
    assert_ne!(none.code, 0);
    assert!(
        none.stderr.contains("no tracked detections"),
        "{}",
        none.stderr
    );

    // render draws the lines and zones (a still, so the run's replay of
    // crossings runs before the drawing).
    let snaps = dir.path().join("snaps");
    let r = peregrine(
        &[
            "render",
            &run.to_string(),
            "--db",
            s(&db),
            "--snapshots",
            s(&snaps),
            "--at",
            "5",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read_dir(&snaps).unwrap().count(), 1);

    // The text table names every line and zone.
    let id = run.to_string();
    let table = peregrine(&["counts", &id, "--db", s(&db)], &[]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    for name in ["road", "far", "lane", "interval s"] {
        assert!(table.stdout.contains(name), "{}", table.stdout);
    }
}

/// A sampled run (every 3rd frame: gaps between observations) with a
/// calibration: replay still equals the analysis, ground units appear.
#[test]
fn sampled_calibrated_run_replays_equal_and_reports_metres() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let calib = dir.path().join("calib.toml");
    // The near carriageway's edges, about 14 m apart, over about 80 m
    // (seven 12 m dash periods).
    std::fs::write(
        &calib,
        "[[points]]\nimage = [60.0, 720.0]\nground = [0.0, 0.0]\n\
         [[points]]\nimage = [1200.0, 720.0]\nground = [14.0, 0.0]\n\
         [[points]]\nimage = [840.0, 200.0]\nground = [14.0, 80.0]\n\
         [[points]]\nimage = [490.0, 200.0]\nground = [0.0, 80.0]\n",
    )
    .unwrap();
    let v = video("traffic_highway_1280x720.mp4");
    let spatial = [
        "--line",
        ROAD,
        "--zone",
        LANE,
        "--calibration",
        s(&calib),
        "--interval",
        "2",
    ];
    let mut args = spatial.to_vec();
    args.extend(["--every", "3", "--end", "6"]);
    let r = analyze(&v, &db, &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = r.json_lines()[0]["run_id"].as_i64().unwrap();
    let stored = counts(&db, run, &[]);
    let mut replayed = counts(&db, run, &spatial);
    replayed["replayed"] = false.into();
    assert_eq!(replayed, stored);
    assert_eq!(stored["frames"], 60, "every 3rd of 180 frames");
    let area = stored["zones"][0]["area_m2"].as_f64().unwrap();
    assert!(area > 100.0, "{area}");
    let tracks = stored["tracks"].as_array().unwrap();
    assert!(!tracks.is_empty());
    let moving: Vec<&Value> = tracks
        .iter()
        .filter(|t| t["distance_m"].as_f64().unwrap() > 5.0)
        .collect();
    assert!(!moving.is_empty(), "{tracks:?}");
    for t in moving {
        let (ms, kmh) = (
            t["mean_speed_m_s"].as_f64().unwrap(),
            t["mean_speed_km_h"].as_f64().unwrap(),
        );
        assert!((kmh - 3.6 * ms).abs() < 1e-9);
        assert!(t["max_speed_m_s"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn bad_lines_zones_and_calibrations_fail_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let v = video("traffic_highway_1280x720.mp4");
    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "points = [ { image = [0, 0] } ]\n").unwrap();
    let three = dir.path().join("three.toml");
    std::fs::write(
        &three,
        "[[points]]\nimage = [0, 0]\nground = [0, 0]\n[[points]]\nimage = [1, 0]\nground = [1, 0]\n\
         [[points]]\nimage = [0, 1]\nground = [0, 1]\n",
    )
    .unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--line".into(), "a=1,2,3".into()], "--line"),
        (vec!["--line".into(), "a=1,2,x,4".into()], "not a number"),
        (vec!["--line".into(), "1,2,3,4".into()], "NAME="),
        (
            vec!["--zone".into(), "z=0,0;10,10".into()],
            "at least 3 points",
        ),
        (vec!["--zone".into(), "z=0,0;1;5,5".into()], "--zone z"),
        (
            vec![
                "--line".into(),
                ROAD.into(),
                "--anchor".into(),
                "feet".into(),
            ],
            "unknown anchor",
        ),
        (
            vec![
                "--line".into(),
                ROAD.into(),
                "--interval".into(),
                "0".into(),
            ],
            "--interval",
        ),
        (
            vec!["--line".into(), ROAD.into(), "--no-track".into()],
            "tracking",
        ),
        (
            vec!["--calibration".into(), s(&bad_toml).into()],
            "bad.toml",
        ),
        (vec!["--calibration".into(), s(&three).into()], "at least 4"),
        (
            vec!["--calibration".into(), "/nonexistent/c.toml".into()],
            "c.toml",
        ),
    ];
    for (extra, want) in cases {
        let args: Vec<&str> = extra.iter().map(String::as_str).collect();
        let r = analyze(&v, &db, &args);
        assert_ne!(r.code, 0, "{extra:?}");
        let err = r.stderr.trim();
        assert_eq!(err.lines().count(), 1, "{extra:?}: {err}");
        assert!(
            err.starts_with("peregrine: ") && err.contains(want),
            "{extra:?}: {err}"
        );
    }
    // A run without lines has no stored counts; a missing run is named.
    let r = analyze(&v, &db, &["--end", "0.5"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = r.json_lines()[0]["run_id"].as_i64().unwrap().to_string();
    // Without lines and zones the parameters (and so the cache key, made
    // of them) are as before counting existed: no "spatial" entry.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let params: String = conn
        .query_row("SELECT params FROM runs WHERE id = ?1", [&run], |r| {
            r.get(0)
        })
        .unwrap();
    let params: Value = serde_json::from_str(&params).unwrap();
    assert!(
        params.get("track").is_some() && params.get("spatial").is_none(),
        "{params}"
    );
    let c = peregrine(&["counts", &run, "--db", s(&db), "--json"], &[]);
    assert_ne!(c.code, 0);
    assert!(c.stderr.contains("without lines or zones"), "{}", c.stderr);
    let c = peregrine(&["counts", "999", "--db", s(&db)], &[]);
    assert_ne!(c.code, 0);
    assert_eq!(c.stderr.trim().lines().count(), 1, "{}", c.stderr);
    let c = peregrine(
        &["counts", &run, "--db", s(&db), "--line", "a=1,1,1,1"],
        &[],
    );
    assert_ne!(c.code, 0);
    assert!(c.stderr.contains("same point"), "{}", c.stderr);
}
