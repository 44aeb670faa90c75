//! Helpers shared by the CLI integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn data_dir() -> PathBuf {
    std::env::var_os("PEREGRINE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

pub fn video(name: &str) -> PathBuf {
    data_dir().join("videos").join(name)
}

pub fn model(name: &str) -> PathBuf {
    data_dir().join("models").join(name)
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect()
    }
}

pub fn peregrine(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_peregrine"));
    c.args(args)
        .env_remove("PEREGRINE_MODEL")
        .env_remove("PEREGRINE_DB");
    for (k, v) in envs {
        c.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().expect("run peregrine");
    let r = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    assert!(
        !r.stderr.contains("panicked"),
        "peregrine panicked: {}",
        r.stderr
    );
    r
}

/// `peregrine analyze INPUT --model yolox_nano.onnx --db DB --json -q EXTRA...`
pub fn analyze(input: &Path, db: &Path, extra: &[&str]) -> Run {
    let m = model("yolox_nano.onnx");
    let mut args = vec![
        "analyze",
        s(input),
        "--model",
        s(&m),
        "--db",
        s(db),
        "--json",
        "-q",
    ];
    args.extend_from_slice(extra);
    peregrine(&args, &[])
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn ffmpeg(args: &[&str]) {
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg on PATH");
    assert!(st.success(), "ffmpeg {args:?}");
}
