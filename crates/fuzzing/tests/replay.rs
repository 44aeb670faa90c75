//! Every fuzz target over its seed corpus and the crash inputs kept in
//! `fuzz/regressions/<target>/`: the targets compile and hold their
//! invariants with every change, without a sanitizer build. Also checks
//! that `fuzz/` has a libFuzzer entry for each target and no other.

use std::path::{Path, PathBuf};

use peregrine_fuzzing::{seeds::seeds, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("regressions").join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                format!("regressions/{target}/{}", e.file_name().to_string_lossy()),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn replay(target: &str) {
    let t = TARGETS.iter().find(|t| t.name == target).unwrap();
    let mut inputs = seeds(target);
    inputs.extend(regressions(target));
    assert!(!inputs.is_empty(), "{target}: no seeds");
    for (name, bytes) in &inputs {
        let r = std::panic::catch_unwind(|| (t.run)(bytes));
        assert!(r.is_ok(), "fuzz target {target} fails on {name}");
    }
}

#[test]
fn each_target_has_a_libfuzzer_entry() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let mut listed: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".rs")
                .map(String::from)
        })
        .collect();
    listed.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(listed, names, "fuzz/fuzz_targets/*.rs and TARGETS differ");
    for n in &names {
        let src = std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{n}.rs"))).unwrap();
        assert!(
            src.contains(&format!("peregrine_fuzzing::run(\"{n}\", data)")),
            "fuzz/fuzz_targets/{n}.rs does not run target {n}"
        );
        assert!(
            manifest.contains(&format!("name = \"{n}\"")),
            "fuzz/Cargo.toml has no [[bin]] {n}"
        );
    }
}

#[test]
fn shotlist() {
    replay("shotlist");
}

#[test]
fn motfile() {
    replay("motfile");
}

#[test]
fn seqinfo() {
    replay("seqinfo");
}

#[test]
fn coco() {
    replay("coco");
}

#[test]
fn labels() {
    replay("labels");
}

#[test]
fn config_toml() {
    replay("config_toml");
}

#[test]
fn job_request() {
    replay("job_request");
}

#[test]
fn video() {
    replay("video");
}
