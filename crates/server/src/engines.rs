//! Inference engines shared by every job of the process. Building one
//! (loading the model, one ONNX Runtime session per worker) costs far more
//! than a short clip's analysis, so jobs with the same model and engine
//! settings run on the same engine, one after another or at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use peregrine_core::EngineSpec;
use peregrine_infer::{Family, InferError, Model};
use peregrine_pipeline::Engine;

/// Engines kept ready at most; the one used longest ago goes first. A job
/// still running on an engine that is dropped from here keeps it alive
/// until it ends.
const KEPT: usize = 4;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    model: PathBuf,
    /// The model file's content fingerprint when the engine was asked for:
    /// a model replaced under the same name gets an engine of its own, so
    /// no job runs an old model under a new file's name.
    content: String,
    family: Option<Family>,
    spec: EngineSpec,
}

#[derive(Default)]
pub struct Engines {
    /// Engines with the tick of their last use.
    kept: Mutex<HashMap<Key, (Engine, u64)>>,
    tick: std::sync::atomic::AtomicU64,
}

impl Engines {
    /// The engine for `model` as the file is now (its family recognised
    /// unless given) with `spec`, built on first use. Building checks `cancelled` before each
    /// session and gives `Ok(None)` when it says so. Workers asking for the
    /// same engine while it is built wait for it rather than build another.
    pub fn get(
        &self,
        model: &Path,
        family: Option<Family>,
        spec: EngineSpec,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Option<Engine>, InferError> {
        let content = peregrine_media::file_fingerprint(model)
            .map_err(|e| match e {
                peregrine_media::MediaError::NotFound(_) => {
                    InferError::ModelNotFound(model.to_path_buf())
                }
                e => InferError::InvalidModel {
                    path: model.to_path_buf(),
                    reason: e.to_string(),
                },
            })?
            .hash;
        let key = Key {
            model: model.to_path_buf(),
            content,
            family,
            spec,
        };
        let tick = self.tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((engine, used)) = kept.get_mut(&key) {
            *used = tick;
            return Ok(Some(engine.clone()));
        }
        let model = Model::load(model, family)?;
        tracing::info!(model = %model.path().display(), "{}", model.device().describe());
        if cancelled() {
            return Ok(None);
        }
        let Some(engine) = Engine::start_cancellable(model, spec, cancelled)? else {
            return Ok(None);
        };
        if kept.len() >= KEPT {
            if let Some(oldest) = kept
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            {
                kept.remove(&oldest);
            }
        }
        kept.insert(key, (engine.clone(), tick));
        Ok(Some(engine))
    }
}
