//! Where inference runs: the CPU, or an NVIDIA GPU through ONNX Runtime's
//! CUDA or TensorRT execution provider.
//!
//! The GPU path needs three things beside the CPU one, each found at run
//! time so that one binary serves machines with and without a GPU:
//!
//! 1. the GPU build of ONNX Runtime (the PyPI wheel `onnxruntime-gpu`:
//!    `libonnxruntime.so` plus `libonnxruntime_providers_{shared,cuda,tensorrt}.so`)
//!    in `$PEREGRINE_ORT_GPU_DIR` or `/usr/local/lib/peregrine/gpu`;
//! 2. the NVIDIA driver (`libcuda.so.1`) with at least one GPU;
//! 3. the CUDA, cuDNN (and for TensorRT, TensorRT) libraries, from NVIDIA's
//!    PyPI wheels unpacked under the GPU folder's `nvidia/`, from the folders
//!    in `$PEREGRINE_CUDA_LIB_PATH`, or from the system library path.
//!    They are loaded ahead of the provider so it finds them by name.
//!
//! [`Device::Auto`] takes the CUDA provider when all of that is present and
//! the CPU otherwise, with the reason; an explicit `cuda` or `tensorrt`
//! fails with what is missing.

// dlopen of NVIDIA's libraries and calls into the driver API (libcuda).
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, CStr};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The device asked for (`--device`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    /// The best available: the CUDA provider when the GPU stack is complete,
    /// else the CPU.
    #[default]
    Auto,
    Cpu,
    /// CUDA execution provider on GPU `n`.
    Cuda(u32),
    /// TensorRT execution provider on GPU `n` (FP16 engines, cached on disk),
    /// with the CUDA provider for what TensorRT does not take.
    TensorRt(u32),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(0) => f.write_str("cuda"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::TensorRt(0) => f.write_str("tensorrt"),
            Device::TensorRt(n) => write!(f, "tensorrt:{n}"),
        }
    }
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let (kind, id) = match s.split_once(':') {
            Some((k, n)) => {
                let id = n
                    .parse::<u32>()
                    .map_err(|_| format!("device '{s}': '{n}' is not a GPU number"))?;
                (k, Some(id))
            }
            None => (s.as_str(), None),
        };
        match (kind, id) {
            ("auto", None) => Ok(Device::Auto),
            ("cpu", None) => Ok(Device::Cpu),
            ("cuda" | "gpu", id) => Ok(Device::Cuda(id.unwrap_or(0))),
            ("tensorrt" | "trt", id) => Ok(Device::TensorRt(id.unwrap_or(0))),
            ("auto" | "cpu", Some(_)) => Err(format!(
                "device '{s}': only cuda and tensorrt take a GPU number"
            )),
            _ => Err(format!(
                "unknown device '{s}' (expected cpu, cuda, cuda:N, tensorrt, tensorrt:N or auto)"
            )),
        }
    }
}

/// What a device request resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accelerator {
    Cpu,
    Cuda { id: u32, gpu: GpuInfo },
    TensorRt { id: u32, gpu: GpuInfo },
}

impl Accelerator {
    /// Short form recorded with runs: `cpu`, `cuda:0`, `tensorrt:0`.
    pub fn label(&self) -> String {
        match self {
            Accelerator::Cpu => "cpu".into(),
            Accelerator::Cuda { id, .. } => format!("cuda:{id}"),
            Accelerator::TensorRt { id, .. } => format!("tensorrt:{id}"),
        }
    }

    pub fn gpu(&self) -> Option<&GpuInfo> {
        match self {
            Accelerator::Cpu => None,
            Accelerator::Cuda { gpu, .. } | Accelerator::TensorRt { gpu, .. } => Some(gpu),
        }
    }
}

/// One GPU as the driver describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuInfo {
    pub name: String,
    /// Compute capability, e.g. (9, 0).
    pub capability: (i32, i32),
    /// CUDA version the driver supports, e.g. 13000 for 13.0.
    pub driver_cuda: i32,
}

impl GpuInfo {
    /// `NVIDIA H200 (compute 9.0)`.
    pub fn describe(&self) -> String {
        format!(
            "{} (compute {}.{})",
            self.name, self.capability.0, self.capability.1
        )
    }

    /// Part of TensorRT engine cache keys: engines are built for one GPU.
    pub fn cache_tag(&self) -> String {
        let name: String = self
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("{name}-sm{}{}", self.capability.0, self.capability.1)
    }
}

/// The outcome of resolving a [`Device`]: which library to load, which
/// provider to register, and why.
#[derive(Clone, Debug)]
pub struct Selection {
    /// What was asked for.
    pub requested: Device,
    pub accelerator: Accelerator,
    /// The ONNX Runtime library to load (the GPU build for a GPU).
    pub library: PathBuf,
    /// One line: why this device (for `auto`, what was missing).
    pub reason: String,
    /// Worth telling the user: a GPU is used, or `auto` found part of the
    /// GPU stack and fell back to the CPU. A machine with nothing of the
    /// GPU stack installed runs on the CPU without saying so.
    pub notable: bool,
}

impl Selection {
    /// The line a user sees: `inference on cuda:0: NVIDIA H200 (compute 9.0)`,
    /// `inference on cpu (auto: no NVIDIA driver ...)`.
    pub fn describe(&self) -> String {
        match self.accelerator {
            Accelerator::Cpu => format!("inference on cpu ({})", self.reason),
            _ => format!("inference on {}: {}", self.accelerator.label(), self.reason),
        }
    }
}

/// Shared libraries of the CUDA provider, in load order (dependencies first).
pub(crate) const CUDA_LIBS: &[&str] = &[
    "libcudart.so.13",
    "libcublasLt.so.13",
    "libcublas.so.13",
    "libcurand.so.10",
    "libcudnn.so.9",
    "libcudnn_graph.so.9",
    "libcudnn_ops.so.9",
    "libcudnn_heuristic.so.9",
    "libcudnn_adv.so.9",
    "libcudnn_cnn.so.9",
    "libcudnn_engines_precompiled.so.9",
    "libcudnn_engines_runtime_compiled.so.9",
];

/// Loaded when present: a few operators need them (FFT, run-time compiled
/// kernels); detector models do not.
pub(crate) const CUDA_OPTIONAL_LIBS: &[&str] = &["libnvrtc.so.13", "libcufft.so.12"];

/// TensorRT 10's libraries, for the TensorRT provider.
pub(crate) const TENSORRT_LIBS: &[&str] = &[
    "libnvinfer.so.10",
    "libnvinfer_plugin.so.10",
    "libnvonnxparser.so.10",
];

/// The lowest CUDA version the driver must support: the GPU build of ONNX
/// Runtime 1.31 is built against CUDA 13.
const NEEDED_DRIVER_CUDA: i32 = 13000;

/// Where the GPU build of ONNX Runtime is looked for.
pub fn gpu_ort_dir() -> PathBuf {
    std::env::var_os("PEREGRINE_ORT_GPU_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/local/lib/peregrine/gpu"))
}

/// Folders searched for the CUDA, cuDNN and TensorRT libraries, in order:
/// `$PEREGRINE_CUDA_LIB_PATH`, then every `lib` folder under the GPU
/// folder's `nvidia/` (the layout of NVIDIA's wheels). The system library
/// path is tried last, by name.
fn cuda_lib_dirs(gpu_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PEREGRINE_CUDA_LIB_PATH")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    let root = gpu_dir.join("nvidia");
    let mut stack = vec![(root, 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && depth < 3 {
                if p.file_name().is_some_and(|n| n == "lib") {
                    dirs.push(p.clone());
                }
                stack.push((p, depth + 1));
            }
        }
    }
    dirs
}

fn find_lib(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Loads `names` in order, each from the first folder that has it or else
/// by name from the system path, and keeps them loaded for the process.
fn preload(names: &[&str], dirs: &[PathBuf]) -> Result<(), String> {
    for name in names {
        let target = find_lib(name, dirs).unwrap_or_else(|| PathBuf::from(name));
        // SAFETY: these are NVIDIA's libraries, whose initialisers only
        // register themselves; loading them is what the provider would do.
        let lib = unsafe { libloading::Library::new(&target) }.map_err(|e| {
            let searched = if dirs.is_empty() {
                "the system library path".to_string()
            } else {
                format!(
                    "{} and the system library path",
                    dirs.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            format!(
                "{name} not found or not loadable (looked in {searched}: {})",
                first_line(&e)
            )
        })?;
        // Kept for the whole process: the provider looks it up by name.
        std::mem::forget(lib);
    }
    Ok(())
}

fn first_line(e: &impl fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or("").to_string()
}

type CuInit = unsafe extern "C" fn(u32) -> c_int;
type CuCount = unsafe extern "C" fn(*mut c_int) -> c_int;
type CuDriverVersion = unsafe extern "C" fn(*mut c_int) -> c_int;
type CuDeviceGet = unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
type CuDeviceName = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
type CuDeviceAttr = unsafe extern "C" fn(*mut c_int, c_int, c_int) -> c_int;

const ATTR_CC_MAJOR: c_int = 75;
const ATTR_CC_MINOR: c_int = 76;

/// Asks the NVIDIA driver for GPU `id`.
fn probe_gpu(id: u32) -> Result<GpuInfo, String> {
    // SAFETY: libcuda's driver API functions below are called with valid
    // out-pointers and the signatures of cuda.h.
    unsafe {
        let lib = libloading::Library::new("libcuda.so.1").map_err(|e| {
            format!(
                "no NVIDIA driver (libcuda.so.1 not loadable: {})",
                first_line(&e)
            )
        })?;
        let sym = |name: &[u8]| -> Result<*const (), String> {
            lib.get::<*const ()>(name)
                .map(|s| *s)
                .map_err(|e| format!("NVIDIA driver too old ({})", first_line(&e)))
        };
        let init: CuInit = std::mem::transmute(sym(b"cuInit\0")?);
        let count: CuCount = std::mem::transmute(sym(b"cuDeviceGetCount\0")?);
        let version: CuDriverVersion = std::mem::transmute(sym(b"cuDriverGetVersion\0")?);
        let get: CuDeviceGet = std::mem::transmute(sym(b"cuDeviceGet\0")?);
        let name_of: CuDeviceName = std::mem::transmute(sym(b"cuDeviceGetName\0")?);
        let attr: CuDeviceAttr = std::mem::transmute(sym(b"cuDeviceGetAttribute\0")?);
        let rc = init(0);
        if rc != 0 {
            return Err(format!(
                "NVIDIA driver present but no usable GPU (cuInit error {rc})"
            ));
        }
        let mut n = 0;
        count(&mut n);
        if n <= 0 {
            return Err("NVIDIA driver present but it reports no GPU".into());
        }
        if id as c_int >= n {
            return Err(format!(
                "GPU {id} does not exist (this machine has {n}: 0..{})",
                n - 1
            ));
        }
        let mut driver_cuda = 0;
        version(&mut driver_cuda);
        let mut dev = 0;
        get(&mut dev, id as c_int);
        let mut buf = [0 as c_char; 256];
        name_of(buf.as_mut_ptr(), buf.len() as c_int, dev);
        let name = CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned();
        let (mut major, mut minor) = (0, 0);
        attr(&mut major, ATTR_CC_MAJOR, dev);
        attr(&mut minor, ATTR_CC_MINOR, dev);
        // The driver stays loaded: the provider uses it.
        std::mem::forget(lib);
        if driver_cuda < NEEDED_DRIVER_CUDA {
            return Err(format!(
                "NVIDIA driver supports CUDA {}.{}; the GPU build of ONNX Runtime needs {}.{} (update the driver)",
                driver_cuda / 1000,
                driver_cuda % 1000 / 10,
                NEEDED_DRIVER_CUDA / 1000,
                NEEDED_DRIVER_CUDA % 1000 / 10
            ));
        }
        Ok(GpuInfo {
            name,
            capability: (major, minor),
            driver_cuda,
        })
    }
}

/// Why the GPU stack is not usable: the cause (one clause) and, where the
/// user can do something, how.
struct Missing {
    cause: String,
    hint: Option<&'static str>,
    /// Nothing of the GPU stack is installed.
    nothing: bool,
}

impl Missing {
    fn full(&self) -> String {
        match self.hint {
            Some(h) => format!("{} ({h})", self.cause),
            None => self.cause.clone(),
        }
    }
}

impl From<String> for Missing {
    fn from(cause: String) -> Self {
        Missing {
            cause,
            hint: None,
            nothing: false,
        }
    }
}

/// Checks the GPU stack for `id` and loads its libraries; the error says
/// the first thing missing.
fn gpu_stack(id: u32, tensorrt: bool) -> Result<(PathBuf, GpuInfo), Missing> {
    let dir = gpu_ort_dir();
    let lib = dir.join(crate::runtime::LIB_NAME);
    for f in [
        lib.clone(),
        dir.join("libonnxruntime_providers_shared.so"),
        dir.join("libonnxruntime_providers_cuda.so"),
    ] {
        if !f.is_file() {
            return Err(Missing {
                cause: format!(
                    "no GPU build of ONNX Runtime in {} ({} missing)",
                    dir.display(),
                    f.file_name().unwrap_or_default().to_string_lossy()
                ),
                hint: Some("scripts/setup.sh --gpu installs it; PEREGRINE_ORT_GPU_DIR names another folder"),
                nothing: f == lib,
            });
        }
    }
    if tensorrt && !dir.join("libonnxruntime_providers_tensorrt.so").is_file() {
        return Err(format!(
            "the GPU build of ONNX Runtime in {} has no TensorRT provider",
            dir.display()
        )
        .into());
    }
    let gpu = probe_gpu(id)?;
    let dirs = cuda_lib_dirs(&dir);
    preload(CUDA_LIBS, &dirs).map_err(|e| Missing {
        cause: format!("CUDA library {e}"),
        hint: Some("scripts/setup.sh --gpu installs them; PEREGRINE_CUDA_LIB_PATH adds folders"),
        nothing: false,
    })?;
    for name in CUDA_OPTIONAL_LIBS {
        let _ = preload(&[name], &dirs);
    }
    if tensorrt {
        preload(TENSORRT_LIBS, &dirs).map_err(|e| Missing {
            cause: format!("TensorRT library {e}"),
            hint: Some("PEREGRINE_TENSORRT=1 scripts/setup.sh --gpu installs them"),
            nothing: false,
        })?;
    }
    Ok((lib, gpu))
}

/// Resolves `device`; `cpu_library` finds the CPU build when the CPU is
/// chosen.
pub(crate) fn select(
    device: Device,
    cpu_library: impl FnOnce() -> Result<PathBuf, crate::InferError>,
) -> Result<Selection, crate::InferError> {
    let unavailable = |m: Missing| crate::InferError::DeviceUnavailable {
        device,
        reason: m.full(),
    };
    match device {
        Device::Cpu => Ok(Selection {
            requested: device,
            accelerator: Accelerator::Cpu,
            library: cpu_library()?,
            reason: "asked for".into(),
            notable: false,
        }),
        Device::Cuda(id) | Device::TensorRt(id) => {
            let tensorrt = matches!(device, Device::TensorRt(_));
            let (library, gpu) = gpu_stack(id, tensorrt).map_err(unavailable)?;
            Ok(Selection {
                requested: device,
                reason: gpu.describe(),
                accelerator: if tensorrt {
                    Accelerator::TensorRt { id, gpu }
                } else {
                    Accelerator::Cuda { id, gpu }
                },
                library,
                notable: true,
            })
        }
        Device::Auto => match gpu_stack(0, false) {
            Ok((library, gpu)) => Ok(Selection {
                requested: device,
                reason: format!("auto: {}", gpu.describe()),
                accelerator: Accelerator::Cuda { id: 0, gpu },
                library,
                notable: true,
            }),
            Err(why) => Ok(Selection {
                requested: device,
                accelerator: Accelerator::Cpu,
                library: cpu_library()?,
                reason: format!("auto: {}", why.cause),
                notable: !why.nothing,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print() {
        for (s, d) in [
            ("auto", Device::Auto),
            ("cpu", Device::Cpu),
            ("CUDA", Device::Cuda(0)),
            ("cuda:1", Device::Cuda(1)),
            ("gpu", Device::Cuda(0)),
            ("tensorrt", Device::TensorRt(0)),
            ("trt:2", Device::TensorRt(2)),
        ] {
            assert_eq!(s.parse::<Device>().unwrap(), d, "{s}");
        }
        assert_eq!(Device::Cuda(1).to_string(), "cuda:1");
        assert_eq!(Device::TensorRt(0).to_string(), "tensorrt");
        for bad in ["opencl", "cuda:x", "cpu:1", ""] {
            let e = bad.parse::<Device>().unwrap_err();
            assert!(e.contains("device"), "{bad}: {e}");
        }
    }

    #[test]
    fn wheel_layout_lib_folders_are_found() {
        let tmp = std::env::temp_dir().join(format!("peregrine-nv-{}", std::process::id()));
        for sub in [
            "nvidia/cublas/lib",
            "nvidia/cu13/lib",
            "nvidia/cudnn/include",
        ] {
            std::fs::create_dir_all(tmp.join(sub)).unwrap();
        }
        let mut dirs = cuda_lib_dirs(&tmp);
        dirs.sort();
        let rel: Vec<_> = dirs
            .iter()
            .filter_map(|d| d.strip_prefix(&tmp).ok())
            .map(|d| d.display().to_string())
            .collect();
        std::fs::remove_dir_all(&tmp).unwrap();
        assert_eq!(rel, ["nvidia/cu13/lib", "nvidia/cublas/lib"]);
    }

    /// Where `scripts/setup.sh --gpu` has run, its CUDA and cuDNN libraries
    /// are found and load (no driver needed to load them); elsewhere there
    /// is nothing to check.
    #[test]
    fn libraries_installed_by_setup_gpu_are_found_and_load() {
        let dir = gpu_ort_dir();
        if !dir.join("nvidia/.complete").is_file() {
            eprintln!("skipped: no GPU stack installed in {}", dir.display());
            return;
        }
        let dirs = cuda_lib_dirs(&dir);
        for name in CUDA_LIBS.iter().chain(CUDA_OPTIONAL_LIBS) {
            assert!(find_lib(name, &dirs).is_some(), "{name} in {dirs:?}");
        }
        // One cuDNN engine library links the driver itself.
        let driver = probe_gpu(0).is_ok();
        let loadable: Vec<&str> = CUDA_LIBS
            .iter()
            .copied()
            .filter(|n| driver || *n != "libcudnn_engines_runtime_compiled.so.9")
            .collect();
        preload(&loadable, &dirs).unwrap();
    }

    #[test]
    fn gpu_cache_tag_is_a_file_name() {
        let g = GpuInfo {
            name: "NVIDIA H200 NVL".into(),
            capability: (9, 0),
            driver_cuda: 13000,
        };
        assert_eq!(g.cache_tag(), "NVIDIA_H200_NVL-sm90");
    }
}
