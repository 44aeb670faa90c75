//! Processes sharing one PostgreSQL database: two API processes
//! (`serve --workers 0`) and two `peregrine worker` processes, twelve jobs. One worker is
//! killed with SIGKILL in the middle of a job: every job still completes
//! exactly once (one complete run each, the killed attempt's run left
//! `interrupted`), with the same detections as a SQLite CLI run; SSE on the
//! second API process follows a job run by a worker (through
//! `LISTEN/NOTIFY`); a cancellation sent to one API process stops the job
//! on its worker; `GET /api/v1/workers` lists the workers with their job.
//! Skips (printing `SKIPPED`) only where no PostgreSQL server answers.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use peregrine_store::pg::TestDb;
use serde_json::{json, Value};

const CLIP: &str = "traffic_intersection_cctv_640x480.mp4";

/// Child processes killed when the test ends, however it ends.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(args: &[&str], log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(args)
        .env_remove("PEREGRINE_MODEL")
        .env_remove("PEREGRINE_DB")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start peregrine")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `curl` a JSON API: (status, body).
fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let mut c = Command::new("curl");
    c.args(["-s", "-m", "10", "-w", "\n%{http_code}", "-X", method, url]);
    if let Some(b) = body {
        c.args(["-H", "Content-Type: application/json", "-d", &b.to_string()]);
    }
    let out = c.output().expect("curl on PATH");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn job(api: &str, id: i64) -> Value {
    let (code, j) = call("GET", &format!("{api}/api/v1/jobs/{id}"), None);
    assert_eq!(code, 200, "{j}");
    j
}

fn export(db: &str, run: &str) -> String {
    let r = peregrine(&["export", run, "--db", db], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
}

#[test]
fn jobs_survive_a_killed_worker_and_reach_every_api_process() {
    let Some(pg) = TestDb::create("workers") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let videos: PathBuf = data_dir().join("videos");
    let model = model("yolox_nano.onnx");
    let (videos_s, model_s) = (s(&videos).to_owned(), s(&model).to_owned());
    let mut procs = Procs(Vec::new());
    let mut api = Vec::new();
    for n in 0..2 {
        let listen = format!("127.0.0.1:{}", free_port());
        let upload = dir.path().join(format!("up{n}"));
        procs.0.push(spawn(
            &[
                "serve",
                "--listen",
                &listen,
                "--db",
                &pg.url,
                "--media-root",
                &videos_s,
                "--model",
                &model_s,
                "--workers",
                "0",
                "--upload-dir",
                s(&upload),
            ],
            &dir.path().join(format!("api{n}.log")),
        ));
        api.push(format!("http://{listen}"));
    }
    for a in &api {
        wait_until("the API", || {
            call("GET", &format!("{a}/health"), None).0 == 200
        });
    }
    let (a, b) = (&api[0], &api[1]);

    // Queued through A before any worker runs: a long job first (priority),
    // then short ones, each with its own parameters.
    let submit = |params: Value, priority: i64| -> i64 {
        let (code, r) = call(
            "POST",
            &format!("{a}/api/v1/jobs"),
            Some(json!({"video": CLIP, "params": params, "priority": priority})),
        );
        assert_eq!(code, 202, "{r}");
        r["id"].as_i64().unwrap()
    };
    let long_params = json!({"end": 12.0, "fps": 10.0, "threads": 1});
    let long = submit(long_params, 10);
    let short: Vec<i64> = (0..11)
        .map(|i| {
            submit(
                json!({"end": 0.6 + 0.2 * i as f64, "fps": 5.0, "threads": 1}),
                0,
            )
        })
        .collect();

    // SSE on B follows the long job from `queued`: B runs no job, so every
    // later event comes from the workers through the database.
    let sse_log = dir.path().join("sse.txt");
    procs.0.push(
        Command::new("curl")
            .args([
                "-sN",
                "-m",
                "170",
                &format!("{b}/api/v1/jobs/{long}/events"),
            ])
            .stdout(std::fs::File::create(&sse_log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until("the SSE stream", || {
        std::fs::read_to_string(&sse_log).is_ok_and(|t| t.contains("\"queued\""))
    });

    let mut workers = Vec::new();
    for n in 0..2 {
        let w = spawn(
            &[
                "worker",
                "--db",
                &pg.url,
                "--media-root",
                &videos_s,
                "--model",
                &model_s,
                "--jobs",
                "1",
                "--lease-s",
                "2",
            ],
            &dir.path().join(format!("worker{n}.log")),
        );
        workers.push(w.id() as i64);
        procs.0.push(w);
    }

    // The long job running, as B's workers list shows it: its worker is
    // killed mid-job.
    let mut holder = 0;
    wait_until("the long job on a worker", || {
        let (_, list) = call("GET", &format!("{b}/api/v1/workers"), None);
        let held = list.as_array().into_iter().flatten().find(|w| {
            w["jobs"]
                .as_array()
                .is_some_and(|j| j.contains(&json!(long)))
        });
        holder = held.and_then(|w| w["pid"].as_i64()).unwrap_or(0);
        holder != 0 && job(b, long)["frames_done"].as_u64().unwrap_or(0) > 0
    });
    assert!(workers.contains(&holder));
    let victim = procs
        .0
        .iter_mut()
        .find(|c| c.id() as i64 == holder)
        .unwrap();
    victim.kill().unwrap();
    victim.wait().unwrap();

    let all: Vec<i64> = std::iter::once(long).chain(short.iter().copied()).collect();
    wait_until("every job to end", || {
        all.iter()
            .all(|&id| job(b, id)["state"] != "queued" && job(b, id)["state"] != "running")
    });
    for &id in &all {
        let j = job(a, id);
        assert_eq!(j["state"], "done", "{j}");
    }
    assert_eq!(job(a, long)["attempts"], 2, "the long job ran again");

    // One complete run per job; the killed attempt's run is interrupted.
    let runs = peregrine(&["runs", "--db", &pg.url, "--json"], &[]);
    let runs: Value = serde_json::from_str(&runs.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    let complete: Vec<&Value> = runs.iter().filter(|r| r["status"] == "complete").collect();
    assert_eq!(complete.len(), all.len(), "{runs:?}");
    let keys: std::collections::HashSet<&str> = complete
        .iter()
        .map(|r| r["cache_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), all.len(), "two complete runs of one job");
    assert_eq!(
        runs.iter().filter(|r| r["status"] == "interrupted").count(),
        1,
        "{runs:?}"
    );

    // The same detections as the CLI analysing the same clip into SQLite.
    let lite = dir.path().join("cli.db");
    let cli = analyze(
        &videos.join(CLIP),
        &lite,
        &["--end", "12", "--fps", "10", "--threads", "1"],
    );
    assert_eq!(cli.code, 0, "{}", cli.stderr);
    let cli_run = cli.json_lines()[0]["run_id"].as_u64().unwrap().to_string();
    let job_run = job(a, long)["run_id"].as_i64().unwrap().to_string();
    let rows = export(s(&lite), &cli_run);
    assert!(rows.lines().count() > 100, "{rows}");
    let from_job = export(&pg.url, &job_run);
    let first_diff = rows.lines().zip(from_job.lines()).position(|(a, b)| a != b);
    assert!(
        rows == from_job,
        "CLI {} rows, job {} rows; first difference at row {first_diff:?}: {:?} vs {:?}",
        rows.lines().count(),
        from_job.lines().count(),
        first_diff.and_then(|i| rows.lines().nth(i)),
        first_diff.and_then(|i| from_job.lines().nth(i)),
    );

    // B's read paths serve the run from PostgreSQL: keyset pages hold
    // exactly the exported rows, and the tracks are there.
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let (code, page) = call(
            "GET",
            &format!("{b}/api/v1/runs/{job_run}/detections?limit=97{cursor}"),
            None,
        );
        assert_eq!(code, 200, "{page}");
        paged.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let exported: Vec<Value> = rows
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(paged, exported);
    let (code, tracks) = call("GET", &format!("{b}/api/v1/runs/{job_run}/tracks"), None);
    assert_eq!(code, 200, "{tracks}");
    assert!(!tracks.as_array().unwrap().is_empty());

    // SSE on B saw the job run and end.
    wait_until("the end event", || {
        std::fs::read_to_string(&sse_log).is_ok_and(|t| t.contains("event: end"))
    });
    let sse = std::fs::read_to_string(&sse_log).unwrap();
    assert!(sse.contains("\"running\""), "{sse}");
    assert!(sse.contains("\"done\""), "{sse}");

    // Cancellation sent to B reaches the surviving worker.
    let (code, r) = call(
        "POST",
        &format!("{a}/api/v1/jobs"),
        Some(json!({"video": CLIP, "params": {"fps": 9.0, "end": 25.0, "threads": 1}})),
    );
    assert_eq!(code, 202, "{r}");
    let id = r["id"].as_i64().unwrap();
    wait_until("the job to run", || {
        job(b, id)["frames_done"].as_u64().unwrap_or(0) > 0
    });
    let (code, r) = call("POST", &format!("{b}/api/v1/jobs/{id}/cancel"), None);
    assert_eq!(code, 202, "{r}");
    wait_until("the job to stop", || job(a, id)["state"] == "cancelled");
    let (_, list) = call("GET", &format!("{a}/api/v1/workers"), None);
    let alive = list
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["pid"].as_i64() != Some(holder))
        .expect("the surviving worker is listed");
    assert_eq!(alive["slots"], 1);
    wait_until("the worker to be idle", || {
        let (_, list) = call("GET", &format!("{a}/api/v1/workers"), None);
        list.as_array()
            .unwrap()
            .iter()
            .filter(|w| w["pid"].as_i64() != Some(holder))
            .all(|w| w["jobs"].as_array().is_some_and(Vec::is_empty))
    });
}

#[test]
fn worker_refuses_a_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let r = peregrine(
        &["worker", "--db", s(&db), "--media-root", s(dir.path())],
        &[],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("needs a PostgreSQL database"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}
