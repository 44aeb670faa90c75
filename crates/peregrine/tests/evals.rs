//! Issue 16, items 3 and 4: evaluations stored with their per-frame
//! matching (by `peregrine eval --run` and by `POST /runs/{id}/evals`),
//! read back through the API, errors worst first, and the comparison of
//! two runs of the same video; on SQLite and on PostgreSQL. Real data:
//! PETS09-S2L1 (124 frames, MOT15 ground truth) analysed with YOLOX-Nano.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const TOKEN: &str = "evals-token";

fn pets09() -> PathBuf {
    data_dir().join("mot/PETS09-S2L1-480x360")
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `peregrine serve` on `db` with the test data as its media root.
fn serve(db: &str, dir: &Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let m = model("yolox_nano.onnx");
    let child = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--token", TOKEN, "--db", db, "--workers", "1"])
        .args(["--media-root", s(&data_dir())])
        .args(["--upload-dir", s(&dir.join("uploads"))])
        .args(["--model", s(&m)])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "server did not start: {}",
        std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
    );
}

impl Server {
    /// One HTTP/1.0 request; the status and the body as JSON.
    fn call(&self, method: &str, path: &str, ctype: Option<&str>, body: &[u8]) -> (u16, Value) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(c) = ctype {
            head.push_str(&format!("Content-Type: {c}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let text = String::from_utf8_lossy(&out);
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let v = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
        (status, v)
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None, b"")
    }

    fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(
            "POST",
            path,
            Some("application/json"),
            body.to_string().as_bytes(),
        )
    }

    /// A multipart upload: `gt` as a file named `name`, and text fields.
    fn post_upload(
        &self,
        path: &str,
        name: &str,
        gt: &[u8],
        fields: &[(&str, &str)],
    ) -> (u16, Value) {
        let b = "peregrineboundary7MA4YWxk";
        let mut body = Vec::new();
        for (k, v) in fields {
            body.extend_from_slice(
                format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"gt\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(gt);
        body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
        self.call(
            "POST",
            path,
            Some(&format!("multipart/form-data; boundary={b}")),
            &body,
        )
    }

    /// Every page of a keyset-paged list.
    fn all_pages(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let sep = if path.contains('?') { '&' } else { '?' };
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}{sep}cursor={c}"),
                None => path.to_string(),
            };
            let (st, page) = self.get(&url);
            assert_eq!(st, 200, "{url}: {page}");
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return items,
            }
        }
    }
}

fn analyze_run(db: &str, input: &Path, extra: &[&str]) -> i64 {
    let r = analyze(input, Path::new(db), extra);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json_lines()[0]["run_id"].as_i64().unwrap()
}

fn count(matches: &[Value], kind: &str) -> u64 {
    matches.iter().filter(|m| m["kind"] == kind).count() as u64
}

/// The stored matching of `eval` adds up to its `combined` CLEAR counts;
/// its errors come worst first and agree with the matching frame by
/// frame.
fn check_mot_matching(srv: &Server, eval: &Value) {
    let id = eval["id"].as_i64().unwrap();
    let c = &eval["metrics"]["combined"];
    let matches = srv.all_pages(&format!("/api/v1/evals/{id}/matches?limit=97"));
    assert_eq!(matches.len() as u64, eval["matches"].as_u64().unwrap());
    assert_eq!(count(&matches, "fp"), c["fp"].as_u64().unwrap());
    assert_eq!(count(&matches, "fn"), c["fn"].as_u64().unwrap());
    assert_eq!(count(&matches, "idsw"), c["idsw"].as_u64().unwrap());
    assert_eq!(
        count(&matches, "tp") + count(&matches, "idsw"),
        c["num_detections"].as_u64().unwrap()
    );
    assert!(count(&matches, "tp") > 100, "a real run matches people");
    let mut per_frame: BTreeMap<u64, [u64; 4]> = BTreeMap::new();
    for (i, m) in matches.iter().enumerate() {
        let f = m["frame"].as_u64().unwrap();
        assert!(f < 124, "{m}");
        if i > 0 {
            assert!(
                matches[i - 1]["frame"].as_u64().unwrap() <= f,
                "frame order"
            );
        }
        assert!(m["x2"].as_f64().unwrap() > m["x1"].as_f64().unwrap(), "{m}");
        assert_eq!(m["class"], "person", "{m}");
        let k = ["tp", "fp", "fn", "idsw"]
            .iter()
            .position(|k| m["kind"] == *k)
            .unwrap();
        per_frame.entry(f).or_default()[k] += 1;
        match k {
            0 | 3 => {
                assert!(m["iou"].as_f64().unwrap() >= 0.5 - 1e-6, "{m}");
                assert!(m["gt_box"].is_array() && m["track_id"].is_i64() && m["gt_id"].is_i64());
            }
            1 => assert!(m["gt_box"].is_null() && m["gt_id"].is_null(), "{m}"),
            _ => assert!(m["track_id"].is_null() && m["gt_box"].is_array(), "{m}"),
        }
    }
    let errors = srv.all_pages(&format!("/api/v1/evals/{id}/errors?limit=7"));
    let worst: Vec<(u64, u64)> = errors
        .iter()
        .map(|e| (e["errors"].as_u64().unwrap(), e["frame"].as_u64().unwrap()))
        .collect();
    let mut sorted = worst.clone();
    sorted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(worst, sorted, "errors come worst first, ties by frame");
    assert!(worst[0].0 > worst[worst.len() - 1].0);
    let with_errors = per_frame
        .values()
        .filter(|k| k[1] + k[2] + k[3] > 0)
        .count();
    assert_eq!(errors.len(), with_errors, "every frame with an error, once");
    for e in &errors {
        let k = per_frame[&e["frame"].as_u64().unwrap()];
        let got = [&e["tp"], &e["fp"], &e["fn"], &e["idsw"]].map(|v| v.as_u64().unwrap());
        assert_eq!(got, k, "{e}");
        assert_eq!(e["errors"].as_u64().unwrap(), k[1] + k[2] + k[3]);
        assert!(e["t"].as_f64().is_some(), "{e}");
    }
    // Filters: one kind in a frame range.
    let fps = srv.all_pages(&format!(
        "/api/v1/evals/{id}/matches?kind=fp&frame_from=10&frame_to=60&limit=5"
    ));
    let want: u64 = per_frame.range(10..=60).map(|(_, k)| k[1]).sum();
    assert_eq!(fps.len() as u64, want);
    assert!(fps.iter().all(|m| m["kind"] == "fp"));
}

/// MOTChallenge rows as COCO ground truth of one category.
fn coco_from_mot(text: &str, category: &str) -> Value {
    let mut anns = Vec::new();
    let mut frames = std::collections::BTreeSet::new();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let v: Vec<f64> = line.split(',').map(|x| x.trim().parse().unwrap()).collect();
        frames.insert(v[0] as i64);
        anns.push(json!({
            "id": i + 1, "image_id": v[0] as i64, "category_id": 1,
            "bbox": [v[2], v[3], v[4], v[5]], "area": v[4] * v[5], "iscrowd": 0,
        }));
    }
    let images: Vec<Value> = (1..=*frames.last().unwrap())
        .map(|i| json!({"id": i, "width": 480, "height": 360}))
        .collect();
    json!({"images": images, "annotations": anns, "categories": [{"id": 1, "name": category}]})
}

fn exercise(db: &str) {
    let dir = tempfile::tempdir().unwrap();
    let a = analyze_run(db, &pets09(), &["--classes", "person"]);
    // Another setting on the same video: detections only, a higher
    // threshold.
    let b = analyze_run(
        db,
        &pets09(),
        &["--classes", "person", "--no-track", "--conf", "0.5"],
    );
    let other = analyze_run(
        db,
        &video("traffic_intersection_cctv_640x480.mp4"),
        &["--end", "0.5"],
    );

    // The CLI stores its evaluation with the matching.
    let r = peregrine(
        &[
            "eval",
            "mot",
            "--gt",
            s(&pets09()),
            "--run",
            &a.to_string(),
            "--db",
            db,
            "--json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let cli: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(cli["combined"]["mota"].as_f64().unwrap() > 0.5, "{cli}");

    let srv = serve(db, dir.path());
    let (st, list) = srv.get(&format!("/api/v1/runs/{a}/evals"));
    assert_eq!(st, 200, "{list}");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let stored = &list[0];
    assert_eq!(stored["kind"], "mot");
    assert_eq!(stored["has_matches"], true);
    assert_eq!(
        stored["gt"], "mot/PETS09-S2L1-480x360",
        "relative to the media root"
    );
    assert_eq!(stored["metrics"]["combined"], cli["combined"]);
    assert!(stored["metrics"]["detection"]["ap50"].as_f64().unwrap() > 0.5);
    let curve = stored["pr_curves"]["classes"]["person"].as_array().unwrap();
    assert!(curve.len() > 50, "{curve:?}");
    check_mot_matching(&srv, stored);
    let (st, one) = srv.get(&format!("/api/v1/evals/{}", stored["id"]));
    assert_eq!((st, &one), (200, stored));

    // The service scores the same, from the media root and uploaded.
    let (st, from_root) = srv.post_json(
        &format!("/api/v1/runs/{a}/evals"),
        &json!({"gt": "mot/PETS09-S2L1-480x360", "format": "mot"}),
    );
    assert_eq!(st, 201, "{from_root}");
    assert_eq!(from_root["metrics"]["combined"], cli["combined"]);
    check_mot_matching(&srv, &from_root);
    let gt_text = std::fs::read(pets09().join("gt/gt.txt")).unwrap();
    let (st, det) = srv.post_upload(
        &format!("/api/v1/runs/{a}/evals"),
        "gt.txt",
        &gt_text,
        &[("format", "det"), ("iou", "0.5")],
    );
    assert_eq!(st, 201, "{det}");
    assert_eq!(det["kind"], "det");
    assert_eq!(det["gt"], "upload:gt.txt");
    assert_eq!(det["pr_curves"]["iou"], 0.5);
    assert_eq!(
        det["metrics"]["ap50"],
        stored["metrics"]["detection"]["ap50"]
    );
    let det_matches = srv.all_pages(&format!("/api/v1/evals/{}/matches?limit=10000", det["id"]));
    assert!(count(&det_matches, "tp") > 100 && count(&det_matches, "idsw") == 0);
    // AP50 is the mean of the stored curve's 101 interpolated precisions.
    let points = det["pr_curves"]["classes"]["person"].as_array().unwrap();
    let ap: f64 = points
        .iter()
        .map(|p| p["precision"].as_f64().unwrap())
        .sum::<f64>()
        / 101.0;
    assert!((ap - det["metrics"]["ap50"].as_f64().unwrap()).abs() < 1e-9);

    // The same ground truth as COCO JSON (image id = frame + 1 = the MOT
    // frame): the same detection scores, from the run's unrounded boxes.
    let coco = coco_from_mot(&String::from_utf8(gt_text.clone()).unwrap(), "person");
    let (st, ec) = srv.post_upload(
        &format!("/api/v1/runs/{a}/evals"),
        "gt.json",
        coco.to_string().as_bytes(),
        &[("format", "coco")],
    );
    assert_eq!(st, 201, "{ec}");
    assert_eq!(ec["kind"], "coco");
    let (x, y) = (
        ec["metrics"]["ap50"].as_f64().unwrap(),
        det["metrics"]["ap50"].as_f64().unwrap(),
    );
    assert!((x - y).abs() < 0.01, "COCO {x} vs MOT-as-detection {y}");
    assert_eq!(ec["metrics"]["per_class"][0]["name"], "person");
    assert!(ec["pr_curves"]["classes"]["person"].is_array(), "{ec}");
    let coco_matches = srv.all_pages(&format!("/api/v1/evals/{}/matches?limit=10000", ec["id"]));
    let (ct, dt) = (count(&coco_matches, "tp"), count(&det_matches, "tp"));
    assert!(ct.abs_diff(dt) <= 3, "{ct} vs {dt}");
    assert_eq!(
        count(&coco_matches, "tp") + count(&coco_matches, "fn"),
        count(&det_matches, "tp") + count(&det_matches, "fn"),
        "every ground-truth box once"
    );
    let unicorns = coco_from_mot("1,1,10,10,20,40,1,-1,-1,-1\n", "unicorn");
    let (st, e) = srv.post_upload(
        &format!("/api/v1/runs/{a}/evals"),
        "gt.json",
        unicorns.to_string().as_bytes(),
        &[("format", "coco")],
    );
    assert_eq!(st, 400, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("no category names a class"),
        "{e}"
    );

    // Compare: two thresholds of one video; their disagreements first.
    let (st, eb) = srv.post_json(
        &format!("/api/v1/runs/{b}/evals"),
        &json!({"gt": "mot/PETS09-S2L1-480x360/gt/gt.txt", "format": "mot"}),
    );
    assert_eq!(
        st, 400,
        "a run without tracks has no tracking metrics: {eb}"
    );
    assert!(
        eb["error"]
            .as_str()
            .unwrap()
            .contains("no tracked detections"),
        "{eb}"
    );
    let (st, eb) = srv.post_json(
        &format!("/api/v1/runs/{b}/evals"),
        &json!({"gt": "mot/PETS09-S2L1-480x360/gt/gt.txt", "format": "det", "iou": 0.75}),
    );
    assert_eq!(st, 201, "{eb}");
    assert_eq!(eb["pr_curves"]["iou"], 0.75);
    let (st, cmp) = srv.get(&format!("/api/v1/compare?a={a}&b={b}&limit=20"));
    assert_eq!(st, 200, "{cmp}");
    assert_eq!(cmp["a"]["id"], a);
    assert_eq!(cmp["b"]["id"], b);
    assert_eq!(cmp["evals_a"]["id"], ec["id"], "the latest evaluation");
    assert_eq!(cmp["evals_b"]["id"], eb["id"]);
    let frames = cmp["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 20);
    assert!(cmp["frames_disagreeing"].as_u64().unwrap() > 0, "{cmp}");
    let d: Vec<u64> = frames
        .iter()
        .map(|f| f["disagreement"].as_u64().unwrap())
        .collect();
    assert!(d.windows(2).all(|w| w[0] >= w[1]), "{d:?}");
    assert!(d[0] > 0);
    for f in frames {
        let n = |k: &str| f[k].as_u64().unwrap();
        assert_eq!(n("only_a") + n("matched"), n("a_count"));
        assert_eq!(n("only_b") + n("matched"), n("b_count"));
        assert_eq!(n("only_a") + n("only_b"), n("disagreement"));
        let iou = f["mean_iou"].as_f64();
        assert!(iou.is_none_or(|v| (0.5..=1.0).contains(&v)), "{f}");
    }
    let (st, e) = srv.get(&format!("/api/v1/compare?a={a}&b={other}"));
    assert_eq!(st, 400, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("different videos"),
        "{e}"
    );

    // Bad input: one-line 4xx answers, nothing stored.
    let evals_before = srv.get(&format!("/api/v1/runs/{a}/evals")).1;
    for path in [
        "/api/v1/runs/999999/evals".to_string(),
        "/api/v1/evals/999999".into(),
        "/api/v1/evals/999999/matches".into(),
        "/api/v1/evals/999999/errors".into(),
        "/api/v1/compare?a=999999&b=1".into(),
    ] {
        let (st, e) = srv.get(&path);
        assert_eq!(st, 404, "{path}: {e}");
    }
    let post = |body: Value| srv.post_json(&format!("/api/v1/runs/{a}/evals"), &body);
    let (st, e) = srv.post_json(
        "/api/v1/runs/999999/evals",
        &json!({"gt": "mot/PETS09-S2L1-480x360", "format": "mot"}),
    );
    assert_eq!(st, 404, "{e}");
    let cases: [(Value, u16, &str); 6] = [
        (
            json!({"gt": "../../etc/passwd", "format": "mot"}),
            400,
            "not inside a media root",
        ),
        (
            json!({"gt": "/etc/passwd", "format": "mot"}),
            400,
            "not inside a media root",
        ),
        (
            json!({"gt": "mot/nope/gt.txt", "format": "mot"}),
            404,
            "not found",
        ),
        (
            json!({"gt": "mot/PETS09-S2L1-480x360/gt/gt.txt", "format": "coco"}),
            400,
            "invalid JSON",
        ),
        (
            json!({"gt": "mot/PETS09-S2L1-480x360", "format": "mot", "iou": 0.42}),
            400,
            "iou",
        ),
        (
            json!({"gt": "mot/PETS09-S2L1-480x360", "format": "yolo"}),
            400,
            "unknown variant",
        ),
    ];
    for (body, want, text) in cases {
        let (st, e) = post(body.clone());
        assert_eq!(st, want, "{body}: {e}");
        let msg = e["error"].as_str().unwrap();
        assert!(msg.contains(text) && !msg.contains('\n'), "{body}: {msg}");
        assert!(!msg.contains(s(&data_dir())), "no server paths: {msg}");
    }
    let (st, e) = srv.post_upload(
        &format!("/api/v1/runs/{a}/evals"),
        "gt.txt",
        b"this is not a ground truth file\n",
        &[("format", "mot")],
    );
    assert_eq!(st, 400, "{e}");
    assert!(!e["error"].as_str().unwrap().contains('\n'), "{e}");
    let (st, e) = srv.post_upload(
        &format!("/api/v1/runs/{a}/evals"),
        "gt.json",
        br#"{"images": [{"id": 1}], "annotations": [], "categories": []}"#,
        &[("format", "mot")],
    );
    assert_eq!(st, 400, "a COCO file is not MOT ground truth: {e}");
    let (st, e) = srv.post_json(
        &format!("/api/v1/runs/{other}/evals"),
        &json!({"gt": "mot/PETS09-S2L1-480x360", "format": "mot"}),
    );
    assert_eq!(st, 400, "{e}");
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("does not look like sequence") && msg.contains("force"),
        "{msg}"
    );
    assert_eq!(srv.get(&format!("/api/v1/runs/{a}/evals")).1, evals_before);
}

#[test]
fn evaluations_and_comparison_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    exercise(s(&db));
    // Deleting a run deletes its evaluations' matching with it.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("PRAGMA foreign_keys = ON; DELETE FROM runs WHERE id = 1;")
        .unwrap();
    for table in ["eval_matches", "eval_frames", "eval_details"] {
        let left: i64 = c
            .query_row(
                &format!(
                    "SELECT count(*) FROM {table} t JOIN evals e ON e.id = t.eval_id WHERE e.run_id = 1"
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        let orphans: i64 = c
            .query_row(
                &format!(
                    "SELECT count(*) FROM {table} WHERE eval_id NOT IN (SELECT id FROM evals)"
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!((left, orphans), (0, 0), "{table}");
    }
}

#[test]
fn evaluations_and_comparison_on_postgres() {
    let Some(pg) = peregrine_store::pg::TestDb::create("evals") else {
        return;
    };
    exercise(&pg.url);
}
