//! Finding and loading the ONNX Runtime shared library.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::error::short;
use crate::InferError;

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
    library: PathBuf,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.library)
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

impl Runtime {
    /// Loads ONNX Runtime once per process; later calls return the same
    /// runtime (or the same error).
    pub fn get() -> Result<Runtime, InferError> {
        static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
        // Only the cause is kept: the error below names the library again.
        let r = RUNTIME.get_or_init(|| {
            Self::load().map_err(|e| match e {
                InferError::RuntimeLoad { reason, .. } => reason,
                other => other.to_string(),
            })
        });
        match r {
            Ok(rt) => Ok(rt.clone()),
            Err(msg) => {
                // Re-run the search so the caller gets a typed error.
                let lib = ort_library_path()?;
                Err(InferError::RuntimeLoad {
                    path: lib,
                    reason: msg.clone(),
                })
            }
        }
    }

    fn load() -> Result<Runtime, InferError> {
        let library = ort_library_path()?;
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
            library,
        })
    }
}
