//! Finding and loading the ONNX Runtime shared library.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::device::{select, Selection};
use crate::error::short;
use crate::{Accelerator, Device, InferError};

/// The ONNX Runtime release Peregrine is built and tested against (the one
/// `scripts/setup.sh` installs).
macro_rules! ort_version {
    () => {
        "1.31.1"
    };
}

/// The ONNX Runtime release loaded at run time, recorded with every run.
pub const ORT_VERSION: &str = ort_version!();
pub(crate) const LIB_NAME: &str = concat!("libonnxruntime.so.", ort_version!());

/// A loaded ONNX Runtime: the library plus its environment. Created once per
/// process and shared.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) env: Arc<ort::environment::Environment>,
    selection: Arc<Selection>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.selection.library)
            .field("device", &self.selection.accelerator.label())
            .finish()
    }
}

fn candidates() -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        c.push(PathBuf::from(p));
        return c;
    }
    if let Some(dir) = std::env::var_os("PEREGRINE_ORT_DIR") {
        c.push(Path::new(&dir).join(LIB_NAME));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        c.push(dir.join(LIB_NAME));
    }
    c.push(PathBuf::from("/usr/local/lib/peregrine").join(LIB_NAME));
    c.push(PathBuf::from("/usr/local/lib").join(LIB_NAME));
    c.push(PathBuf::from("/usr/lib").join(LIB_NAME));
    c
}

/// The ONNX Runtime library this process would load, if one is installed.
pub fn ort_library_path() -> Result<PathBuf, InferError> {
    let c = candidates();
    c.iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| InferError::RuntimeNotFound {
            searched: c
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

static DEVICE: OnceLock<Device> = OnceLock::new();

enum LoadFailure {
    /// The library was found but did not load: the search is re-run for a
    /// typed error.
    Library(String),
    /// The device asked for is not available.
    Device(Device, String),
}

impl Runtime {
    /// Chooses the device for this process; must come before the first
    /// [`Runtime::get`] (a later call with another device is refused).
    /// Without it, `$PEREGRINE_DEVICE` or else [`Device::Auto`] is used.
    pub fn select_device(device: Device) -> Result<(), InferError> {
        let chosen = *DEVICE.get_or_init(|| device);
        if chosen == device {
            Ok(())
        } else {
            Err(InferError::DeviceUnavailable {
                device,
                reason: format!("this process already runs on {chosen}"),
            })
        }
    }

    fn device() -> Device {
        *DEVICE.get_or_init(|| {
            std::env::var("PEREGRINE_DEVICE")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_default()
        })
    }

    /// Loads ONNX Runtime once per process, for the selected device; later
    /// calls return the same runtime (or the same error).
    pub fn get() -> Result<Runtime, InferError> {
        static RUNTIME: OnceLock<Result<Runtime, LoadFailure>> = OnceLock::new();
        // Only the cause is kept: the error below names the library again.
        let r = RUNTIME.get_or_init(|| {
            Self::load(Self::device()).map_err(|e| match e {
                InferError::RuntimeLoad { reason, .. } => LoadFailure::Library(reason),
                InferError::DeviceUnavailable { device, reason } => {
                    LoadFailure::Device(device, reason)
                }
                other => LoadFailure::Library(other.to_string()),
            })
        });
        match r {
            Ok(rt) => Ok(rt.clone()),
            Err(LoadFailure::Device(device, reason)) => Err(InferError::DeviceUnavailable {
                device: *device,
                reason: reason.clone(),
            }),
            Err(LoadFailure::Library(msg)) => {
                // Re-run the search so the caller gets a typed error.
                let lib = ort_library_path()?;
                Err(InferError::RuntimeLoad {
                    path: lib,
                    reason: msg.clone(),
                })
            }
        }
    }

    /// The device inference runs on and why (one line, for the user).
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    pub fn accelerator(&self) -> &Accelerator {
        &self.selection.accelerator
    }

    fn load(device: Device) -> Result<Runtime, InferError> {
        let selection = select(device, ort_library_path)?;
        let library = selection.library.clone();
        let builder = ort::init_from(&library).map_err(|e| InferError::RuntimeLoad {
            path: library.clone(),
            reason: short(e),
        })?;
        let env = builder
            .with_name("peregrine")
            .with_telemetry(false)
            .build()
            .map_err(|e| InferError::RuntimeLoad {
                path: library.clone(),
                reason: short(e),
            })?;
        Ok(Runtime {
            env: Arc::new(env),
            selection: Arc::new(selection),
        })
    }
}
