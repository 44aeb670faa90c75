//! Regressions from issue 10 in `export`, `eval`, `runs`, `tracks`,
//! `render`, the store's disk-full handling and `scripts/setup.sh`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

fn pets09() -> PathBuf {
    data_dir().join("mot/PETS09-S2L1-480x360")
}

/// Analyses `input` into `db` with extra flags; returns the run id.
fn analyze_run(db: &Path, input: &Path, extra: &[&str]) -> i64 {
    let r = analyze(input, db, extra);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json_lines()[0]["run_id"].as_i64().unwrap()
}

/// One second of the traffic sample: a small, cheap run.
fn small_run(db: &Path) -> i64 {
    analyze_run(
        db,
        &video("traffic_intersection_cctv_640x480.mp4"),
        &["--end", "1"],
    )
}

fn eval_json(args: &[&str]) -> serde_json::Value {
    let r = peregrine(args, &[]);
    assert_eq!(r.code, 0, "eval {args:?}: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

fn evals_stored(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM evals", [], |r| r.get(0))
        .unwrap()
}

/// Issue 10, item 3: the MOT export held untracked boxes (id -1) of every
/// class, so `eval mot --pred` refused it ("id -1 appears twice") and other
/// tools scored it far below the run itself.
#[test]
fn mot_export_round_trips_through_eval_mot() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    // All classes, as a new user runs it.
    let run = analyze_run(&db, &pets09(), &[]).to_string();
    let export = |extra: &[&str], name: &str| -> (PathBuf, String) {
        let out = dir.path().join(name);
        let mut args = vec!["export", &run, "--db", s(&db), "--format", "mot", "-o"];
        args.push(s(&out));
        args.extend_from_slice(extra);
        let r = peregrine(&args, &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        (out, r.stderr)
    };
    let (all, _) = export(&["--classes", "all"], "all.txt");
    let text = std::fs::read_to_string(&all).unwrap();
    assert!(!text.is_empty());
    for line in text.lines() {
        let id: i64 = line.split(',').nth(1).unwrap().parse().unwrap();
        assert!(id > 0, "untracked row in the MOT export: {line}");
    }
    let (with_untracked, _) = export(
        &["--include-untracked", "--classes", "all"],
        "untracked.txt",
    );
    let jsonl = peregrine(&["export", &run, "--db", s(&db)], &[]).json_lines();
    let untracked = jsonl.iter().filter(|r| r["track_id"].is_null()).count();
    let lines = std::fs::read_to_string(&with_untracked).unwrap();
    assert_eq!(lines.lines().count(), jsonl.len());
    assert_eq!(
        lines
            .lines()
            .filter(|l| l.split(',').nth(1) == Some("-1"))
            .count(),
        untracked
    );

    // The whole export is a valid tracker result file.
    let gt = s(&pets09()).to_string();
    eval_json(&["eval", "mot", "--gt", &gt, "--pred", s(&all), "--json"]);

    // People only: exactly what `eval mot --run` scores.
    let (people, _) = export(&["--classes", "person"], "people.txt");
    let text = std::fs::read_to_string(&people).unwrap();
    let person_rows = jsonl
        .iter()
        .filter(|r| r["class"] == "person" && !r["track_id"].is_null())
        .count();
    assert_eq!(text.lines().count(), person_rows);
    let from_file = eval_json(&["eval", "mot", "--gt", &gt, "--pred", s(&people), "--json"]);
    let from_run = eval_json(&[
        "eval",
        "mot",
        "--gt",
        &gt,
        "--run",
        &run,
        "--db",
        s(&db),
        "--json",
    ]);
    assert_eq!(from_file, from_run);
    assert!(from_run["sequences"][0]["mota"].as_f64().unwrap() > 0.6);
    // The MOT default is that same class (MOTChallenge scores pedestrians),
    // so the plain round trip equals `eval mot --run` too.
    let (default, note) = export(&[], "default.txt");
    assert!(note.contains("person only"), "{note}");
    assert_eq!(
        std::fs::read_to_string(&default).unwrap(),
        std::fs::read_to_string(&people).unwrap()
    );

    // --classes filters the other formats too.
    let cars = peregrine(
        &[
            "export",
            &run,
            "--db",
            s(&db),
            "--classes",
            "person",
            "--format",
            "csv",
        ],
        &[],
    );
    assert_eq!(cars.code, 0, "{}", cars.stderr);
    let rows: Vec<&str> = cars.stdout.lines().skip(1).collect();
    assert_eq!(
        rows.len(),
        jsonl.iter().filter(|r| r["class"] == "person").count()
    );
    assert!(rows.iter().all(|r| r.split(',').nth(2) == Some("person")));
    let bad = peregrine(
        &["export", &run, "--db", s(&db), "--classes", "unicorn"],
        &[],
    );
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("unknown class \"unicorn\""),
        "{}",
        bad.stderr
    );
}

/// Issue 10, item 5: a run of another video was scored against PETS09
/// (MOTA -0.444, exit 0) and the metrics stored with it.
#[test]
fn eval_mot_refuses_a_run_of_another_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let run = small_run(&db).to_string();
    let gt = pets09();
    for cmd in [["mot"], ["det"]] {
        let r = peregrine(
            &[
                "eval",
                cmd[0],
                "--gt",
                s(&gt),
                "--run",
                &run,
                "--db",
                s(&db),
            ],
            &[],
        );
        assert_eq!(r.code, 1, "{}", r.stderr);
        let msg = r.stderr.trim();
        assert_eq!(msg.lines().count(), 1, "{msg}");
        assert!(
            msg.contains("does not look like sequence PETS09-S2L1-480x360")
                && msg.contains("640x480")
                && msg.contains("480x360")
                && msg.contains("--force"),
            "{msg}"
        );
    }
    assert_eq!(evals_stored(&db), 0, "a refused evaluation is not stored");
    let r = peregrine(
        &[
            "eval",
            "mot",
            "--gt",
            s(&gt),
            "--run",
            &run,
            "--db",
            s(&db),
            "--force",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("scoring it anyway"), "{}", r.stderr);
    assert_eq!(evals_stored(&db), 1);
}

/// A run of the sequence itself is scored, and one of PETS09 is refused
/// against another sequence of the same kind (size differs).
#[test]
fn eval_mot_accepts_its_own_sequence_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let run = analyze_run(&db, &pets09(), &["--classes", "person"]).to_string();
    eval_json(&[
        "eval",
        "mot",
        "--gt",
        s(&pets09()),
        "--run",
        &run,
        "--db",
        s(&db),
        "--json",
    ]);
    let other = data_dir().join("mot/MOT17-04-mini8");
    let r = peregrine(
        &[
            "eval",
            "mot",
            "--gt",
            s(&other),
            "--run",
            &run,
            "--db",
            s(&db),
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("1920x1080"), "{}", r.stderr);
    assert_eq!(evals_stored(&db), 1);
}

fn is_fifo(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(p).unwrap().file_type().is_fifo()
}

/// Issue 10, item 9: `export -o` renamed a temporary file over FIFOs,
/// symbolic links and device files.
#[test]
fn export_writes_into_fifos_links_and_devices() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let run = small_run(&db).to_string();
    let expected = peregrine(&["export", &run, "--db", s(&db)], &[]);
    assert_eq!(expected.code, 0);
    assert!(!expected.stdout.is_empty());

    // A FIFO, read by another thread.
    let fifo = dir.path().join("fifo");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let r = peregrine(&["export", &run, "--db", s(&db), "-o", s(&fifo)], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Checked before joining: a reader of a replaced FIFO waits forever.
    assert!(is_fifo(&fifo), "the FIFO is still a FIFO");
    assert_eq!(reader.join().unwrap(), expected.stdout);

    // A symbolic link: the target gets the content, the link stays.
    let target = dir.path().join("target.jsonl");
    std::fs::write(&target, "old content\n").unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let r = peregrine(&["export", &run, "--db", s(&db), "-o", s(&link)], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_link(&link).unwrap(), target);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), expected.stdout);

    // A link to a FIFO is written through as well.
    let fifo_link = dir.path().join("fifo_link");
    std::os::unix::fs::symlink(&fifo, &fifo_link).unwrap();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let r = peregrine(&["export", &run, "--db", s(&db), "-o", s(&fifo_link)], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(is_fifo(&fifo));
    assert!(std::fs::symlink_metadata(&fifo_link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(reader.join().unwrap(), expected.stdout);

    // A character device: a null device of our own where this process may
    // make one (root), so a regression cannot replace the system's
    // /dev/null; otherwise /dev/null itself (not replaceable without root).
    let own_null = dir.path().join("null");
    let made = std::process::Command::new("mknod")
        .arg(&own_null)
        .args(["c", "1", "3"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|st| st.success());
    let null = if made {
        own_null.as_path()
    } else {
        Path::new("/dev/null")
    };
    for null in [null, Path::new("/dev/null")] {
        let r = peregrine(&["export", &run, "--db", s(&db), "-o", s(null)], &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        use std::os::unix::fs::FileTypeExt;
        let kind = std::fs::symlink_metadata(null).unwrap().file_type();
        assert!(kind.is_char_device(), "{} replaced", null.display());
    }

    // A regular file is still replaced whole.
    let plain = dir.path().join("plain.jsonl");
    std::fs::write(&plain, "x".repeat(1 << 20)).unwrap();
    let r = peregrine(&["export", &run, "--db", s(&db), "-o", s(&plain)], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), expected.stdout);
    let r = peregrine(&["export", &run, "--db", s(&db), "-o", s(dir.path())], &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("is a directory"), "{}", r.stderr);
}

fn detections_in(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .ok()
        .and_then(|c| {
            c.query_row("SELECT count(*) FROM detections", [], |r| r.get(0))
                .ok()
        })
        .unwrap_or(0)
}

/// Issue 10, item 13: a killed run listed 0 frames and 0 detections while
/// its rows remained, and `export`, `tracks` and `render` used them
/// silently.
#[test]
fn interrupted_run_shows_its_rows_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args([
            "analyze",
            s(&video("sport_soccer_broadcast_1280x720.mp4")),
            "--model",
            s(&model("yolox_nano.onnx")),
            "--db",
            s(&db),
            "-q",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while detections_in(&db) < 50 {
        assert!(t.elapsed() < Duration::from_secs(120), "run never wrote");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let (dets, frames): (i64, i64) = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT count(*), count(DISTINCT frame) FROM detections WHERE run_id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let runs = peregrine(&["runs", "--db", s(&db), "--json"], &[]);
    let v: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    assert_eq!(v[0]["status"], "interrupted");
    assert_eq!(v[0]["detections"].as_i64().unwrap(), dets);
    assert_eq!(v[0]["frames"].as_i64().unwrap(), frames);
    let table = peregrine(&["runs", "--db", s(&db)], &[]);
    let row = table.stdout.lines().nth(1).unwrap();
    assert!(row.contains(&format!(" {dets} ")), "{row}");

    let warned = |r: &Run| {
        let lines: Vec<&str> = r.stderr.lines().filter(|l| l.contains("warning")).collect();
        assert_eq!(lines.len(), 1, "{}", r.stderr);
        assert!(
            lines[0].contains("run 1 is incomplete (interrupted)")
                && lines[0].contains(&format!("{dets} detections")),
            "{}",
            r.stderr
        );
    };
    let export = peregrine(&["export", "1", "--db", s(&db)], &[]);
    assert_eq!(export.code, 0);
    assert_eq!(export.json_lines().len() as i64, dets);
    warned(&export);
    let tracks = peregrine(&["tracks", "1", "--db", s(&db), "--json"], &[]);
    assert_eq!(tracks.code, 0);
    serde_json::from_str::<serde_json::Value>(&tracks.stdout).unwrap();
    warned(&tracks);
    let stills = dir.path().join("stills");
    let render = peregrine(
        &[
            "render",
            "1",
            "--db",
            s(&db),
            "--snapshots",
            s(&stills),
            "--at",
            "0",
        ],
        &[],
    );
    assert_eq!(render.code, 0, "{}", render.stderr);
    warned(&render);
}

/// A tmpfs of `kib` KiB mounted on a temporary folder, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(kib: u64) -> Result<SmallDisk, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the file system is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let p = self.path().join("filler");
        let mut f = std::fs::File::create(&p).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).and_then(|_| f.flush()).is_ok() {}
        p
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Issue 10, item 14: on a full disk the second run failed with "FOREIGN
/// KEY constraint failed", and a new database was left as an empty file.
#[test]
fn full_disk_is_reported_and_leaves_nothing_broken() {
    let disk = match SmallDisk::mount(4096) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skipping full_disk_is_reported_and_leaves_nothing_broken: cannot mount a tmpfs here (needs root): {e}");
            return;
        }
    };
    let db = disk.path().join("p.db");
    let run = small_run(&db).to_string();
    let before = peregrine(&["export", &run, "--db", s(&db)], &[]).stdout;
    assert!(!before.is_empty());

    let filler = disk.fill();
    let traffic = video("traffic_intersection_cctv_640x480.mp4");
    let model = model("yolox_nano.onnx");
    let second = [
        "analyze",
        s(&traffic),
        "--model",
        s(&model),
        "--end",
        "2",
        "--no-cache",
        "--db",
        s(&db),
    ];
    // No room at all (the WAL index cannot grow), then a little room (the
    // run starts and its writes fail part way).
    let full = std::fs::metadata(&filler).unwrap().len();
    for free_kib in [0u64, 8, 48, 160] {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&filler)
            .unwrap()
            .set_len(full - free_kib * 1024)
            .unwrap();
        let r = peregrine(&second, &[]);
        assert_ne!(r.code, 0, "{free_kib} KiB free: {}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("disk full writing {}", db.display())),
            "{free_kib} KiB free: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("FOREIGN KEY"), "{}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(full)
        .unwrap();

    // A new database on the full disk: reported, and no file left behind.
    let fresh = disk.path().join("new.db");
    let r = peregrine(
        &[
            "analyze",
            s(&traffic),
            "--model",
            s(&model),
            "--end",
            "1",
            "--db",
            s(&fresh),
        ],
        &[],
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains(&format!("disk full writing {}", fresh.display())),
        "{}",
        r.stderr
    );
    let left: Vec<_> = std::fs::read_dir(disk.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("new.db"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // With space again, the first run is intact and a new run works.
    std::fs::remove_file(filler).unwrap();
    let runs = peregrine(&["runs", "--db", s(&db), "--json"], &[]);
    let v: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    assert_eq!(v[0]["status"], "complete");
    // Runs cut short by the full disk never look finished.
    for r in v.as_array().unwrap().iter().skip(1) {
        assert_ne!(r["status"], "complete", "{r}");
    }
    assert_eq!(
        peregrine(&["export", &run, "--db", s(&db)], &[]).stdout,
        before
    );
    let r = peregrine(&second, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// Issue 10, item 15: the ONNX Runtime load error printed twice; option
/// errors carried a stray `--`; a missing ground truth was not "not found".
#[test]
fn error_messages_are_said_once_and_plainly() {
    let traffic = video("traffic_intersection_cctv_640x480.mp4");
    let m = model("yolox_nano.onnx");
    let base = ["analyze", s(&traffic), "--model", s(&m), "--db"];
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");

    // A file that is not a library: found, but it does not load.
    let fake = dir.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&fake, "not a library").unwrap();
    let mut args = base.to_vec();
    args.push(s(&db));
    let r = peregrine(&args, &[("ORT_DYLIB_PATH", s(&fake))]);
    assert_ne!(r.code, 0);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert_eq!(
        r.stderr.matches("cannot load ONNX Runtime").count(),
        1,
        "{}",
        r.stderr
    );

    for (flag, value, want) in [
        ("--classes", "unicorn", "unknown class \"unicorn\""),
        ("--mode", "turbo", "unknown mode \"turbo\""),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(&[s(&db), flag, value]);
        let r = peregrine(&args, &[]);
        assert_eq!(r.code, 1);
        let msg = r.stderr.trim();
        assert!(msg.contains(want), "{msg}");
        assert!(!msg.contains("--unknown"), "stray --: {msg}");
        assert!(msg.contains(flag), "names the flag: {msg}");
    }

    let run = small_run(&db).to_string();
    for cmd in ["mot", "det"] {
        let r = peregrine(
            &["eval", cmd, "--gt", "/nope", "--run", &run, "--db", s(&db)],
            &[],
        );
        assert_eq!(r.code, 1);
        assert_eq!(r.stderr.trim(), "peregrine: /nope: not found");
    }
}

/// Issue 10, item 16: setup left the binary in target/release, so the
/// README's `peregrine ...` commands found nothing on the PATH.
#[test]
fn setup_links_the_binary_onto_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A copy of the repository's script in a checkout-like tree whose
    // release binary is this build's.
    let root = dir.path().join("checkout");
    std::fs::create_dir_all(root.join("scripts")).unwrap();
    std::fs::create_dir_all(root.join("target/release")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup.sh");
    std::fs::copy(&script, root.join("scripts/setup.sh")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_peregrine"),
        root.join("target/release/peregrine"),
    )
    .unwrap();
    let bin = dir.path().join("bin");
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/setup.sh"))
        .arg("--link")
        .env("PEREGRINE_BIN_DIR", &bin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = std::process::Command::new("sh")
        .args(["-c", "command -v peregrine && peregrine --version"])
        .env("PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.starts_with(&format!("{}/peregrine", bin.display())));
    assert!(stdout.contains("peregrine "), "{stdout}");
}
