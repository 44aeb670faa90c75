//! Live streams across worker processes on one PostgreSQL database: an
//! API process alone (`serve --workers 0`) stores two RTSP cameras
//! (scripts/rtsp_server.py), two `peregrine worker` processes lease one
//! each; the owner of one is killed with SIGKILL and the other worker runs
//! that stream within 10 s on a new run that keeps storing detections
//! (the dead worker's run left `interrupted`).
//! Skips (printing `SKIPPED`) only where no PostgreSQL server answers.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use peregrine_store::pg::TestDb;
use serde_json::{json, Value};

const CLIP: &str = "traffic_intersection_cctv_640x480";
const CLIP2: &str = "ped_pets09s2l1_campus_480x360";

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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// scripts/rtsp_server.py serving the two clips in real time (as
/// crates/peregrine/tests/live.rs starts it).
fn rtsp_server(port: u16) -> Child {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/rtsp_server.py");
    for attempt in 0..20 {
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .args(["--port", &port.to_string()])
            .args(["--garbage-port", &free_port().to_string()])
            .args(["--only", &format!("{CLIP},{CLIP2}")])
            .arg("--videos")
            .arg(data_dir().join("videos"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start scripts/rtsp_server.py with /usr/bin/python3 (run scripts/setup.sh)");
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        if line.starts_with("ready") {
            return child;
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(attempt < 19, "rtsp_server.py did not start");
        std::thread::sleep(Duration::from_millis(250));
    }
    unreachable!()
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

fn wait_until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stream(api: &str, name: &str) -> Value {
    let (code, v) = call("GET", &format!("{api}/api/v1/streams/{name}"), None);
    assert_eq!(code, 200, "{v}");
    v
}

/// The pid in a worker id (`host:pid:nonce`).
fn pid_of(worker: &str) -> u32 {
    worker.split(':').nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_stream_moves_to_another_worker_within_10_s_of_a_kill_9() {
    let Some(pg) = TestDb::create("stream_workers") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let videos = data_dir().join("videos");
    let model = model("yolox_nano.onnx");
    let (videos_s, model_s) = (s(&videos).to_owned(), s(&model).to_owned());
    let mut procs = Procs(Vec::new());
    let port = free_port();
    procs.0.push(rtsp_server(port));

    let listen = format!("127.0.0.1:{}", free_port());
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
        ],
        &dir.path().join("api.log"),
    ));
    let api = format!("http://{listen}");
    wait_until("the API", Duration::from_secs(60), || {
        (call("GET", &format!("{api}/health"), None).0 == 200).then_some(())
    });
    for n in 0..2 {
        procs.0.push(spawn(
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
            ],
            &dir.path().join(format!("worker{n}.log")),
        ));
    }
    // Both workers registered before the cameras come, so they share them.
    wait_until("two workers", Duration::from_secs(60), || {
        let (_, w) = call("GET", &format!("{api}/api/v1/workers"), None);
        (w.as_array().map_or(0, Vec::len) == 2).then_some(())
    });
    let logs = || {
        (0..2)
            .map(|n| {
                std::fs::read_to_string(dir.path().join(format!("worker{n}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    for (name, clip) in [("cam1", CLIP), ("cam2", CLIP2)] {
        let (code, v) = call(
            "POST",
            &format!("{api}/api/v1/streams"),
            Some(
                json!({"name": name, "source": format!("rtsp://127.0.0.1:{port}/{clip}"), "fps": 3}),
            ),
        );
        assert_eq!(code, 201, "{v}");
        assert_eq!(v["worker"], Value::Null, "stored for the workers: {v}");
    }
    let running = |name: &str, not_owner: Option<&str>, not_run: Option<i64>| {
        let v = stream(&api, name);
        let ok = v["state"] == "live"
            && v["frames_analysed"].as_u64().unwrap_or(0) >= 1
            && v["worker"].is_string()
            && v["worker"].as_str() != not_owner
            && v["run_id"].is_i64()
            && v["run_id"].as_i64() != not_run;
        ok.then_some(v)
    };
    let cam1 = wait_until("cam1 running", Duration::from_secs(90), || {
        running("cam1", None, None)
    });
    let cam2 = wait_until("cam2 running", Duration::from_secs(90), || {
        running("cam2", None, None)
    });
    let owner = cam1["worker"].as_str().unwrap().to_owned();
    assert_ne!(
        cam2["worker"],
        cam1["worker"],
        "two workers, two streams: one each\n{}",
        logs()
    );
    let old_run = cam1["run_id"].as_i64().unwrap();

    // kill -9 the owner of cam1.
    let victim = procs
        .0
        .iter_mut()
        .find(|c| c.id() == pid_of(&owner))
        .expect("the owner is one of the workers");
    victim.kill().unwrap();
    victim.wait().unwrap();
    let killed = Instant::now();
    let moved = wait_until("cam1 on the other worker", Duration::from_secs(30), || {
        running("cam1", Some(&owner), Some(old_run))
    });
    let took = killed.elapsed();
    eprintln!("cam1 running again on the other worker {took:.1?} after the kill");
    assert!(
        took < Duration::from_secs(10),
        "re-assigned after {took:?}\n{}",
        logs()
    );
    let survivor = moved["worker"].as_str().unwrap().to_owned();
    assert_eq!(
        moved["worker"],
        stream(&api, "cam2")["worker"],
        "both on the survivor"
    );
    // The workers list shows what the survivor runs (the dead one drops
    // out of it after 30 s of silence, or runs nothing meanwhile).
    wait_until(
        "the survivor listed with both streams",
        Duration::from_secs(5),
        || {
            let (_, workers) = call("GET", &format!("{api}/api/v1/workers"), None);
            let list = workers.as_array()?.clone();
            let me = list.iter().find(|w| w["id"] == survivor.as_str())?;
            let dead = list.iter().find(|w| w["id"] == owner.as_str());
            (me["streams"] == json!(["cam1", "cam2"])
                && dead.is_none_or(|d| d["streams"] == json!([])))
            .then_some(())
        },
    );
    // The new run keeps storing detections; the dead worker's run is
    // interrupted.
    let new_run = moved["run_id"].as_i64().unwrap();
    let frames = |run: i64| {
        let (_, r) = call("GET", &format!("{api}/api/v1/runs/{run}"), None);
        (
            r["status"].as_str().unwrap_or("").to_owned(),
            r["frames"].as_u64().unwrap_or(0),
        )
    };
    let (status, first) = frames(new_run);
    assert_eq!(status, "live");
    wait_until("more frames stored", Duration::from_secs(30), || {
        (frames(new_run).1 >= first + 5).then_some(())
    });
    let (_, dets) = call(
        "GET",
        &format!("{api}/api/v1/runs/{new_run}/detections?limit=10"),
        None,
    );
    assert!(
        !dets["items"].as_array().unwrap().is_empty(),
        "detections stored: {dets}"
    );
    assert_eq!(frames(old_run).0, "interrupted");

    // Stopped through the API: the survivor finalises its run.
    let (code, v) = call("DELETE", &format!("{api}/api/v1/streams/cam1"), None);
    assert_eq!(code, 200, "{v}");
    wait_until("cam1's run complete", Duration::from_secs(15), || {
        (frames(new_run).0 == "complete").then_some(())
    });
}
