//! `--db postgres://...`: `analyze`, `gait` and `live` write to PostgreSQL
//! and `runs`, `tracks`, `export`, `counts`, `heatmap` and `render` read
//! from it, with the same results as SQLite.
//! Skips (printing `SKIPPED`) only where no PostgreSQL server answers.

mod common;

use common::*;
use peregrine_store::pg::TestDb;
use peregrine_store::PgStore;

#[test]
fn a_video_analysed_into_postgres_reads_back_as_from_sqlite() {
    let Some(pg) = TestDb::create("cli") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lite = dir.path().join("p.db");
    let clip = video("traffic_intersection_cctv_640x480.mp4");
    let flags = ["--end", "1.5", "--threads", "1"];
    let a = analyze(&clip, &lite, &flags);
    assert_eq!(a.code, 0, "{}", a.stderr);
    let lite_run = a.json_lines()[0]["run_id"].as_u64().unwrap().to_string();
    let lite_db = s(&lite);

    let url = format!("sqlite:{lite_db}");
    let b = analyze(&clip, std::path::Path::new(&pg.url), &flags);
    assert_eq!(b.code, 0, "{}", b.stderr);
    let j = &b.json_lines()[0];
    assert_eq!(j["status"], "complete", "{j}");
    let pg_run = j["run_id"].as_u64().unwrap().to_string();

    // Detections (with track ids) and tracks are identical.
    let export = |db: &str, run: &str| {
        let r = peregrine(&["export", run, "--db", db], &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    };
    let rows = export(&url, &lite_run);
    assert!(rows.lines().count() > 20, "too few detections: {rows}");
    assert!(rows.contains("\"track_id\":1"), "no tracks: {rows}");
    assert_eq!(rows, export(&pg.url, &pg_run));
    let tracks = |db: &str, run: &str| {
        let r = peregrine(&["tracks", run, "--db", db, "--json"], &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    };
    assert_eq!(tracks(lite_db, &lite_run), tracks(&pg.url, &pg_run));

    // The second analysis of the same clip is served from the cache.
    let c = analyze(&clip, std::path::Path::new(&pg.url), &flags);
    assert_eq!(c.json_lines()[0]["cache_hit"], true, "{}", c.stdout);
    let runs = peregrine(&["runs", "--db", &pg.url, "--json"], &[]);
    assert_eq!(runs.code, 0, "{}", runs.stderr);
    let runs: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["status"], "complete");
}

#[test]
fn postgres_errors_are_one_line() {
    // No server on port 1: the URL (without its password) and the cause.
    let r = peregrine(
        &["runs", "--db", "postgres://me:secret@127.0.0.1:1/nowhere"],
        &[],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("postgres://me@127.0.0.1:1/nowhere") && !r.stderr.contains("secret"),
        "{}",
        r.stderr
    );
    // The read commands go to the same engine, with the same one line.
    for cmd in ["counts", "heatmap", "render"] {
        let mut args = vec![cmd, "1", "--db", "postgres://me:secret@127.0.0.1:1/x"];
        if cmd != "counts" {
            args.extend(["-o", "/tmp/never.png"]);
        }
        let r = peregrine(&args, &[]);
        assert_eq!(r.code, 1, "{cmd}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{cmd}: {}", r.stderr);
        assert!(
            r.stderr.contains("postgres://me@127.0.0.1:1/x") && !r.stderr.contains("secret"),
            "{cmd}: {}",
            r.stderr
        );
    }
}

const ROAD: &str = "road=250,300,1000,300";
const LANE: &str = "lane=200,720;600,250;760,250;1250,720";

/// `counts`, `heatmap`, `render` (and `analyze --snapshots`) and `gait`
/// give the same output from a PostgreSQL database as from a SQLite file.
#[test]
fn read_commands_give_the_same_from_postgres_as_from_sqlite() {
    let Some(pg) = TestDb::create("cli_read") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lite = dir.path().join("p.db");
    let lite_db = s(&lite).to_owned();
    let clip = video("traffic_highway_1280x720.mp4");
    let flags = |snaps: &str| {
        vec![
            "--line".to_owned(),
            ROAD.into(),
            "--zone".into(),
            LANE.into(),
            "--interval".into(),
            "1".into(),
            "--end".into(),
            "3".into(),
            "--fps".into(),
            "10".into(),
            "--threads".into(),
            "1".into(),
            "--snapshots".into(),
            snaps.into(),
            "--at".into(),
            "1.5".into(),
        ]
    };
    let mut run_of = Vec::new();
    for (db, tag) in [(lite_db.as_str(), "lite"), (pg.url.as_str(), "pg")] {
        let snaps = dir.path().join(format!("analyze_{tag}"));
        let f = flags(s(&snaps));
        let f: Vec<&str> = f.iter().map(String::as_str).collect();
        let r = analyze(&clip, std::path::Path::new(db), &f);
        assert_eq!(r.code, 0, "{tag}: {}", r.stderr);
        let j = &r.json_lines()[0];
        assert_eq!(j["status"], "complete", "{j}");
        run_of.push(j["run_id"].as_u64().unwrap().to_string());
    }
    let dbs = [lite_db.as_str(), pg.url.as_str()];
    let both = |args: &dyn Fn(&str, &str, &str) -> Vec<String>| -> Vec<String> {
        dbs.iter()
            .zip(&run_of)
            .zip(["lite", "pg"])
            .map(|((db, run), tag)| {
                let a = args(db, run, tag);
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                let r = peregrine(&a, &[]);
                assert_eq!(r.code, 0, "{a:?}: {}", r.stderr);
                r.stdout
            })
            .collect()
    };
    let no_run_id = |t: &str| {
        let mut v: serde_json::Value = serde_json::from_str(t).unwrap();
        v.as_object_mut().unwrap().remove("run_id");
        v
    };

    // Stored counts, and a replay with another line.
    let stored = both(&|db, run, _| {
        ["counts", run, "--db", db, "--json"]
            .map(String::from)
            .to_vec()
    });
    assert_eq!(no_run_id(&stored[0]), no_run_id(&stored[1]));
    let lines = no_run_id(&stored[0])["lines"].clone();
    assert_eq!(lines[0]["name"], "road", "{lines}");
    let replay = both(&|db, run, _| {
        [
            "counts",
            run,
            "--db",
            db,
            "--json",
            "--line",
            "v=640,0,640,720",
        ]
        .map(String::from)
        .to_vec()
    });
    assert_eq!(no_run_id(&replay[0]), no_run_id(&replay[1]));
    assert_eq!(no_run_id(&replay[0])["replayed"], true);
    let table = both(&|db, run, _| ["counts", run, "--db", db].map(String::from).to_vec());
    assert_eq!(table[0], table[1]);

    // The heat map, byte for byte.
    let d = dir.path().to_owned();
    both(&|db, run, tag| {
        let png = d.join(format!("heat_{tag}.png"));
        ["heatmap", run, "--db", db, "-o", s(&png)]
            .map(String::from)
            .to_vec()
    });
    let heat = |tag: &str| std::fs::read(dir.path().join(format!("heat_{tag}.png"))).unwrap();
    assert_eq!(&heat("lite")[1..4], b"PNG");
    assert!(heat("lite") == heat("pg"), "the heat maps differ");

    // Rendered stills are the same, from `render` and from `analyze`.
    both(&|db, run, tag| {
        let out = d.join(format!("render_{tag}.mp4"));
        let snaps = d.join(format!("render_{tag}"));
        [
            "render",
            run,
            "--db",
            db,
            "-o",
            s(&out),
            "--snapshots",
            s(&snaps),
            "--at",
            "1.5",
        ]
        .map(String::from)
        .to_vec()
    });
    let stills = |folder: &str| -> Vec<Vec<u8>> {
        let mut files: Vec<_> = std::fs::read_dir(dir.path().join(folder))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    };
    let lite_stills = stills("render_lite");
    assert_eq!(lite_stills.len(), 1);
    assert!(lite_stills == stills("render_pg"), "render stills differ");
    assert!(
        stills("analyze_lite") == stills("analyze_pg"),
        "analyze stills differ"
    );
    assert!(
        std::fs::metadata(dir.path().join("render_pg.mp4"))
            .unwrap()
            .len()
            > 10_000
    );

    // Gait of a pose run.
    let walk = video("gait_sideon_whitewall_640x352.mp4");
    let pose = model("yolo11n_pose_int8.onnx");
    let gait = both(&|db, _, _| {
        [
            "gait",
            s(&walk),
            "--model",
            s(&pose),
            "--db",
            db,
            "--json",
            "-q",
            "--threads",
            "1",
        ]
        .map(String::from)
        .to_vec()
    });
    let subjects = |t: &str| no_run_id(t.lines().next().unwrap())["subjects"].clone();
    assert_eq!(subjects(&gait[0]), subjects(&gait[1]));
    assert!(
        subjects(&gait[1])[0]["steps"].as_u64().unwrap() >= 4,
        "{}",
        gait[1]
    );
}

/// `peregrine live --db postgres://...`: a file played as a camera, its
/// run `live` in the database while it runs, then complete with every
/// analysed frame.
#[test]
fn live_writes_its_runs_to_postgres() {
    let Some(pg) = TestDb::create("cli_live") else {
        return;
    };
    let clip = video("traffic_intersection_cctv_640x480.mp4");
    let m = model("yolox_nano.onnx");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args([
            "live",
            s(&clip),
            "--name",
            "cam",
            "--fps",
            "5",
            "--realtime",
            "--loop",
        ])
        .args([
            "--model",
            s(&m),
            "--db",
            &pg.url,
            "--json",
            "--threads",
            "1",
        ])
        .env_remove("PEREGRINE_MODEL")
        .env_remove("PEREGRINE_DB")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let store = PgStore::open(&pg.url, std::time::Duration::from_secs(5)).unwrap();
    let t0 = std::time::Instant::now();
    let mut live = (0i64, String::new());
    while t0.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(300));
        // A live run reports what its rows hold.
        if let Some(r) = store.runs().unwrap().first() {
            if r.frames >= 5 {
                live = (r.id, r.status.as_str().to_owned());
                break;
            }
        }
    }
    assert_eq!(live.1, "live", "detections stored while live");
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["run_id"].as_i64(), Some(live.0), "{first}");
    let r = store.run(live.0).unwrap();
    assert_eq!(r.status.as_str(), "complete");
    assert_eq!(
        r.frames,
        first["frames_analysed"].as_u64().unwrap(),
        "every analysed frame stored: {first}"
    );
    // Read back through the CLI like any run.
    let runs = peregrine(&["runs", "--db", &pg.url, "--json"], &[]);
    assert!(runs.stdout.contains("\"complete\""), "{}", runs.stdout);
}
