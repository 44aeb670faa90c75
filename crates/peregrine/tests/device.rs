//! `--device`: the CPU fallback and the errors of a missing GPU stack. These
//! run everywhere (CI has no GPU); the GPU itself is exercised by
//! `bench/gpu/device.sh` on a machine that has one.

mod common;

use common::*;

/// A GPU folder that holds nothing, so the outcome does not depend on what
/// this machine has installed.
fn no_gpu_build() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn clip() -> std::path::PathBuf {
    video("ped_pets09s2l1_campus_480x360.mp4")
}

/// Whether this machine has an NVIDIA driver (then the no-driver checks
/// do not apply).
fn has_nvidia_driver() -> bool {
    [
        "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
        "/usr/local/nvidia/lib64/libcuda.so.1",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists())
}

/// `peregrine [--device DEVICE] bench model CLIP --frames 4` with the GPU
/// build looked for in `gpu`.
fn model_bench(device: Option<&str>, gpu: &std::path::Path) -> Run {
    let (m, c) = (model("yolox_nano.onnx"), clip());
    let mut args = Vec::new();
    if let Some(d) = device {
        args.extend(["--device", d]);
    }
    args.extend(["bench", "model", s(&c), "--model", s(&m), "--frames", "4"]);
    peregrine(&args, &[("PEREGRINE_ORT_GPU_DIR", s(gpu))])
}

/// `peregrine --device DEVICE analyze CLIP --end SECONDS` into `db`, with
/// the GPU build looked for in `gpu`.
fn analyze_on(device: &str, gpu: &std::path::Path, db: &std::path::Path, end: &str) -> Run {
    let m = model("yolox_nano.onnx");
    peregrine(
        &[
            "--device",
            device,
            "analyze",
            s(&clip()),
            "--model",
            s(&m),
            "--db",
            s(db),
            "--end",
            end,
            "--json",
            "-q",
        ],
        &[("PEREGRINE_ORT_GPU_DIR", s(gpu))],
    )
}

#[test]
fn explicit_gpu_devices_without_a_gpu_build_fail_in_one_line_and_store_nothing() {
    let gpu = no_gpu_build();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    for device in ["cuda", "tensorrt", "cuda:1"] {
        let r = analyze_on(device, gpu.path(), &db, "1");
        assert_ne!(r.code, 0, "{device}: {}", r.stderr);
        let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{device}: one line: {}", r.stderr);
        assert!(
            lines[0].starts_with(&format!(
                "peregrine: device {device}: no GPU build of ONNX Runtime"
            )),
            "{device}: {}",
            lines[0]
        );
        assert!(
            lines[0].contains(s(gpu.path())),
            "names the folder: {}",
            lines[0]
        );
        assert!(
            lines[0].contains("setup.sh --gpu"),
            "says how: {}",
            lines[0]
        );
    }
    // Refused before the database was even created.
    let runs = peregrine(&["runs", "--db", s(&db), "--json"], &[]);
    assert_eq!(runs.code, 1, "{}", runs.stdout);
    assert!(
        runs.stderr.contains("database not found"),
        "{}",
        runs.stderr
    );
}

/// With a GPU build present but no NVIDIA driver (as on CI), an explicit
/// GPU device names the driver; on a machine with a GPU this checks only
/// that a broken GPU build is refused in one line.
#[test]
fn a_gpu_build_without_a_driver_names_what_is_missing() {
    let gpu = no_gpu_build();
    for f in [
        "libonnxruntime.so.1.31.1",
        "libonnxruntime_providers_shared.so",
        "libonnxruntime_providers_cuda.so",
    ] {
        std::fs::write(gpu.path().join(f), b"not a library").unwrap();
    }
    let r = model_bench(Some("cuda"), gpu.path());
    assert_ne!(r.code, 0);
    let line = r.stderr.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.starts_with("peregrine: "), "{line}");
    if !has_nvidia_driver() {
        assert!(
            line.contains("device cuda: no NVIDIA driver (libcuda.so.1"),
            "{line}"
        );
        // `auto` falls back to the CPU and, since a GPU build is installed,
        // says why in one line.
        let r = model_bench(None, gpu.path());
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(
            r.stderr.trim(),
            "peregrine: inference on cpu (auto: no NVIDIA driver (libcuda.so.1 not loadable: dlopen failed))"
        );
    }
}

#[test]
fn auto_without_a_gpu_stack_matches_the_cpu_run_exactly() {
    let gpu = no_gpu_build();
    let dir = tempfile::tempdir().unwrap();
    let mut exports = Vec::new();
    for device in ["auto", "cpu"] {
        let db = dir.path().join(format!("{device}.db"));
        let r = analyze_on(device, gpu.path(), &db, "2");
        assert_eq!(r.code, 0, "{device}: {}", r.stderr);
        // Nothing of the GPU stack installed: the CPU, without a word.
        assert!(!r.stderr.contains("inference on"), "{device}: {}", r.stderr);
        let e = peregrine(&["export", "1", "--db", s(&db)], &[]);
        assert_eq!(e.code, 0, "{}", e.stderr);
        exports.push(e.stdout);
    }
    assert!(
        exports[0].lines().count() > 10,
        "detections: {}",
        exports[0]
    );
    assert_eq!(
        exports[0], exports[1],
        "auto on a machine without a GPU is the CPU path"
    );
}

#[test]
fn model_bench_batches_and_nvdec_falls_back_to_software() {
    let gpu = no_gpu_build();
    let env = [("PEREGRINE_ORT_GPU_DIR", s(gpu.path()))];
    let r = peregrine(
        &[
            "bench",
            "model",
            s(&clip()),
            "--model",
            s(&model("yolox_nano_dynbatch.onnx")),
            "--batch",
            "4",
            "--frames",
            "8",
        ],
        &env,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(j["batch"], 4, "{j}");
    assert_eq!(j["device"], "cpu", "{j}");
    assert_eq!(j["frames"], 8, "{j}");

    let soft = peregrine(&["bench", "decode", s(&clip())], &env);
    let hw = peregrine(&["bench", "decode", s(&clip()), "--nvdec"], &env);
    assert_eq!(soft.code, 0, "{}", soft.stderr);
    assert_eq!(hw.code, 0, "{}", hw.stderr);
    let soft: serde_json::Value = serde_json::from_str(soft.stdout.trim()).unwrap();
    let hw: serde_json::Value = serde_json::from_str(hw.stdout.trim()).unwrap();
    assert_eq!(soft["decoder"], "software");
    assert_eq!(
        hw["frames"], soft["frames"],
        "every frame decoded either way"
    );
    if !has_nvidia_driver() {
        assert_eq!(hw["decoder"], "software", "no GPU: software decoding: {hw}");
    }
}

#[test]
fn unknown_device_is_a_usage_error() {
    let r = peregrine(&["--device", "tpu", "runs"], &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown device 'tpu'"), "{}", r.stderr);
}
