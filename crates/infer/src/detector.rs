//! Loading a model once and running it on many threads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;
use peregrine_core::{
    CanvasLayout, ChannelOrder, Detection, DetectorConfig, Keypoint, Letterbox, ResizeMode,
};

use crate::error::short;
use crate::family::{recognise, Dims};
use crate::postprocess::{
    decode_nanodet, decode_ultralytics, decode_yolox, keypoint_rows, DecodeParams,
};
use crate::{
    nms, Accelerator, BatchDim, Candidate, Family, InferError, ModelSpec, OutputLayout, Runtime,
};

/// ONNX Runtime session settings for one inference worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Intra-op threads of this session.
    pub intra_threads: usize,
    /// Let idle ORT threads spin: lower latency, burns CPU while waiting.
    pub spin: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            intra_threads: 2,
            spin: false,
        }
    }
}

/// A run's detector thresholds made ready for one model: the class filter
/// as a per-class mask. Built once per run and carried with each of its
/// frames, so one engine serves runs with different thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectFilter {
    cfg: DetectorConfig,
    allowed: Option<Vec<bool>>,
}

impl DetectFilter {
    /// `cfg` for a model of `num_classes` classes (class ids beyond are
    /// ignored).
    pub fn new(cfg: DetectorConfig, num_classes: usize) -> Self {
        let allowed = cfg.classes.as_ref().map(|cls| {
            let mut a = vec![false; num_classes];
            for &c in cls {
                if let Some(x) = a.get_mut(c as usize) {
                    *x = true;
                }
            }
            a
        });
        DetectFilter { cfg, allowed }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }
}

struct ModelInner {
    path: PathBuf,
    bytes: Vec<u8>,
    hash: String,
    spec: ModelSpec,
    runtime: Runtime,
    input_shape: Dims,
    output_shapes: Vec<(String, Dims)>,
}

/// A validated model: family recognised, shapes known. Cheap to clone.
#[derive(Clone)]
pub struct Model {
    inner: Arc<ModelInner>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.inner.path)
            .field("spec", &self.inner.spec)
            .finish()
    }
}

/// Which execution provider a session gets: the runtime's device, or the
/// CPU (the probe that reads a model's inputs and outputs).
enum Placement<'a> {
    Cpu,
    Device {
        spec: &'a ModelSpec,
        hash: &'a str,
        batch: usize,
    },
}

fn build_session(
    runtime: &Runtime,
    path: &Path,
    bytes: &[u8],
    cfg: &SessionConfig,
    placement: Placement<'_>,
) -> Result<Session, InferError> {
    let invalid = |e: String| InferError::InvalidModel {
        path: path.to_path_buf(),
        reason: e,
    };
    let mut builder = Session::builder(&runtime.env)
        .map_err(|e| invalid(short(e)))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| invalid(short(e)))?
        .with_intra_threads(cfg.intra_threads.max(1))
        .map_err(|e| invalid(short(e)))?
        .with_inter_threads(1)
        .map_err(|e| invalid(short(e)))?
        .with_intra_op_spinning(cfg.spin)
        .map_err(|e| invalid(short(e)))?;
    if let Placement::Device { spec, hash, batch } = placement {
        let device_error = |e: String| InferError::DeviceUnavailable {
            device: runtime.selection().requested,
            reason: format!("{}: {e}", path.display()),
        };
        match runtime.accelerator() {
            Accelerator::Cpu => {}
            Accelerator::Cuda { id, .. } => {
                builder = builder
                    .with_execution_providers([cuda_provider(*id)])
                    .map_err(|e| device_error(short(e)))?;
            }
            Accelerator::TensorRt { id, gpu } => {
                let trt = tensorrt_provider(*id, gpu, spec, hash, batch)
                    .map_err(|e| invalid(format!("TensorRT engine cache: {e}")))?;
                builder = builder
                    .with_execution_providers([trt, cuda_provider(*id)])
                    .map_err(|e| device_error(short(e)))?;
            }
        }
    }
    builder
        .commit_from_memory(bytes)
        .map_err(|e| invalid(short(e)))
}

fn cuda_provider(id: u32) -> ort::ep::ExecutionProviderDispatch {
    ort::ep::CUDA::default()
        .with_device_id(id as i32)
        // Heuristic search: exhaustive benchmarking makes the first
        // batch of every session take seconds.
        .with_conv_algorithm_search(ort::ep::cuda::ConvAlgorithmSearch::Heuristic)
        .build()
        .error_on_failure()
}

/// TensorRT in FP16 with its engines cached on disk, one folder per model
/// (BLAKE3) and GPU; ONNX Runtime names each engine by graph, shapes and
/// precision inside it.
fn tensorrt_provider(
    id: u32,
    gpu: &crate::GpuInfo,
    spec: &ModelSpec,
    hash: &str,
    batch: usize,
) -> std::io::Result<ort::ep::ExecutionProviderDispatch> {
    let root = std::env::var_os("PEREGRINE_TRT_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("peregrine/tensorrt"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/peregrine/tensorrt"))
        })
        .unwrap_or_else(|| std::env::temp_dir().join("peregrine-tensorrt"));
    let dir = root.join(format!(
        "{}-{}",
        &hash[..hash.len().min(16)],
        gpu.cache_tag()
    ));
    std::fs::create_dir_all(&dir)?;
    let mut trt = ort::ep::TensorRT::default()
        .with_device_id(id as i32)
        .with_fp16(true)
        .with_engine_cache(true)
        .with_engine_cache_path(dir.display())
        .with_timing_cache(true)
        .with_timing_cache_path(dir.display());
    if spec.batch == BatchDim::Dynamic {
        let shape = |n: usize| {
            format!(
                "{}:{n}x3x{}x{}",
                spec.input_name, spec.input_height, spec.input_width
            )
        };
        trt = trt
            .with_profile_min_shapes(shape(1))
            .with_profile_opt_shapes(shape(batch.max(1)))
            .with_profile_max_shapes(shape(batch.max(1)));
    }
    Ok(trt.build().error_on_failure())
}

fn dims(v: &ort::value::ValueType) -> Dims {
    v.tensor_shape().map(|s| s.to_vec()).unwrap_or_default()
}

impl Model {
    /// Reads, hashes and validates a model; `family` forces a family instead
    /// of recognising it.
    pub fn load(path: &Path, family: Option<Family>) -> Result<Model, InferError> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => InferError::ModelNotFound(path.to_path_buf()),
            _ => InferError::Io {
                path: path.to_path_buf(),
                source: e,
            },
        })?;
        if bytes.is_empty() {
            return Err(InferError::InvalidModel {
                path: path.to_path_buf(),
                reason: "file is empty".into(),
            });
        }
        let runtime = Runtime::get()?;
        let probe = build_session(
            &runtime,
            path,
            &bytes,
            &SessionConfig {
                intra_threads: 1,
                spin: false,
            },
            Placement::Cpu,
        )?;
        let inputs = probe.inputs();
        if inputs.len() != 1 {
            return Err(InferError::UnknownFamily {
                path: path.to_path_buf(),
                reason: format!(
                    "model has {} inputs; expected one image input",
                    inputs.len()
                ),
            });
        }
        let input_shape = dims(inputs[0].dtype());
        let output_shapes: Vec<(String, Dims)> = probe
            .outputs()
            .iter()
            .map(|o| (o.name().to_string(), dims(o.dtype())))
            .collect();
        let spec = recognise(
            path,
            (inputs[0].name(), &input_shape),
            &output_shapes,
            family,
        )?;
        Ok(Model {
            inner: Arc::new(ModelInner {
                path: path.to_path_buf(),
                hash: blake3::hash(&bytes).to_hex().to_string(),
                bytes,
                spec,
                runtime,
                input_shape,
                output_shapes,
            }),
        })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.inner.spec
    }

    /// The device this model's detectors run on, and why.
    pub fn device(&self) -> &crate::Selection {
        self.inner.runtime.selection()
    }

    /// Whether the model gives COCO-17 pose keypoints (what gait analysis
    /// reads); the error says what it gives instead.
    pub fn require_coco_pose(&self) -> Result<(), String> {
        match self.spec().layout {
            OutputLayout::Ultralytics { keypoints: 17, .. } => Ok(()),
            OutputLayout::Ultralytics { keypoints: 0, .. }
            | OutputLayout::Yolox { .. }
            | OutputLayout::Nanodet { .. } => Err(
                "not a pose model (it outputs no keypoints); gait needs a COCO-17 pose model such as yolo11n_pose_int8.onnx"
                    .into(),
            ),
            OutputLayout::Ultralytics { keypoints, .. } => Err(format!(
                "pose model with {keypoints} keypoints; gait needs the COCO-17 layout"
            )),
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// BLAKE3 of the model file, part of the result-cache key.
    pub fn hash(&self) -> &str {
        &self.inner.hash
    }

    pub fn input_shape(&self) -> &[i64] {
        &self.inner.input_shape
    }

    pub fn output_shapes(&self) -> &[(String, Dims)] {
        &self.inner.output_shapes
    }

    /// The canvas frames must be scaled into for this model.
    pub fn canvas_layout(&self) -> CanvasLayout {
        let s = &self.inner.spec;
        let (order, resize) = match s.family {
            Family::Yolox => (ChannelOrder::Bgr, ResizeMode::LetterboxTopLeft { pad: 114 }),
            Family::Nanodet => (ChannelOrder::Bgr, ResizeMode::Stretch),
            Family::Ultralytics => (ChannelOrder::Rgb, ResizeMode::LetterboxCenter { pad: 114 }),
        };
        CanvasLayout {
            width: s.input_width,
            height: s.input_height,
            order,
            resize,
        }
    }

    /// Largest batch one run may take: the fixed batch, or `wanted` when the
    /// batch dimension is dynamic.
    pub fn max_batch(&self, wanted: usize) -> usize {
        match self.inner.spec.batch {
            BatchDim::Fixed(n) => n,
            BatchDim::Dynamic => wanted.max(1),
        }
    }

    /// The thresholds of a run, ready for this model.
    pub fn filter(&self, cfg: DetectorConfig) -> DetectFilter {
        DetectFilter::new(cfg, self.inner.spec.num_classes)
    }

    /// Creates a detector (its own ONNX Runtime session) for one thread.
    pub fn detector(&self, session: &SessionConfig, batch: usize) -> Result<Detector, InferError> {
        let inner = &self.inner;
        let max_batch = self.max_batch(batch);
        let s = build_session(
            &inner.runtime,
            &inner.path,
            &inner.bytes,
            session,
            Placement::Device {
                spec: &inner.spec,
                hash: &inner.hash,
                batch: max_batch,
            },
        )?;
        let slot = 3 * (inner.spec.input_width * inner.spec.input_height) as usize;
        Ok(Detector {
            session: s,
            model: self.clone(),
            input: vec![0.0; slot * max_batch],
            slot,
            max_batch,
            cands: Vec::with_capacity(1024),
        })
    }
}

/// Time spent in one [`Detector::run`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunTiming {
    pub infer_ms: f64,
    pub post_ms: f64,
}

/// One thread's inference state: session, input buffer, scratch space.
pub struct Detector {
    session: Session,
    model: Model,
    input: Vec<f32>,
    slot: usize,
    max_batch: usize,
    cands: Vec<Candidate>,
}

impl Detector {
    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// The input tensor slot of batch item `i`, planar CHW floats.
    pub fn input_slot(&mut self, i: usize) -> &mut [f32] {
        &mut self.input[i * self.slot..(i + 1) * self.slot]
    }

    /// Runs the first `letterboxes.len()` input slots and writes each image's
    /// detections, in source-frame pixels, into `out[i]` (cleared first),
    /// keeping what `filters[i]` (its run's thresholds) allows.
    pub fn run(
        &mut self,
        letterboxes: &[Letterbox],
        filters: &[&DetectFilter],
        out: &mut [Vec<Detection>],
    ) -> Result<RunTiming, InferError> {
        let n = letterboxes.len();
        assert!(n >= 1 && n <= self.max_batch && out.len() >= n && filters.len() >= n);
        let spec = self.model.inner.spec.clone();
        let path = &self.model.inner.path;
        let t0 = Instant::now();
        let shape = [n, 3, spec.input_height as usize, spec.input_width as usize];
        let run_err = |e: ort::Error| InferError::Run {
            path: path.clone(),
            reason: short(e),
        };
        let tensor =
            TensorRef::from_array_view((shape, &self.input[..n * self.slot])).map_err(run_err)?;
        let outputs = self.session.run(ort::inputs![tensor]).map_err(run_err)?;
        let t1 = Instant::now();
        let extract = |i: usize| -> Result<&[f32], InferError> {
            outputs[i]
                .try_extract_tensor::<f32>()
                .map(|(_, d)| d)
                .map_err(|e| InferError::Run {
                    path: path.clone(),
                    reason: short(e),
                })
        };
        for (b, (lb, filter)) in letterboxes.iter().zip(filters).enumerate() {
            let params = DecodeParams {
                conf: filter.cfg.conf,
                allowed: filter.allowed.as_deref(),
            };
            self.cands.clear();
            let mut kp_source: Option<(&[f32], usize)> = None;
            match &spec.layout {
                OutputLayout::Yolox { output } => {
                    let all = extract(*output)?;
                    let per = all.len() / n;
                    decode_yolox(
                        &all[b * per..(b + 1) * per],
                        &spec,
                        &params,
                        &mut self.cands,
                    );
                }
                OutputLayout::Ultralytics { output, .. } => {
                    let all = extract(*output)?;
                    let per = all.len() / n;
                    let img = &all[b * per..(b + 1) * per];
                    decode_ultralytics(img, &spec, &params, &mut self.cands);
                    if keypoint_rows(&spec) > 0 {
                        kp_source =
                            Some((img, per / (4 + spec.num_classes + keypoint_rows(&spec))));
                    }
                }
                OutputLayout::Nanodet { levels, reg_max } => {
                    let mut lv: [(&[f32], &[f32]); 3] = [(&[], &[]); 3];
                    for (l, (ci, ri)) in levels.iter().enumerate() {
                        let c = extract(*ci)?;
                        let r = extract(*ri)?;
                        let (pc, pr) = (c.len() / n, r.len() / n);
                        lv[l] = (&c[b * pc..(b + 1) * pc], &r[b * pr..(b + 1) * pr]);
                    }
                    decode_nanodet(&lv, *reg_max, &spec, &params, &mut self.cands);
                }
            }
            let cfg = &filter.cfg;
            nms(&mut self.cands, cfg.iou, cfg.agnostic, cfg.max_det);
            let dets = &mut out[b];
            dets.clear();
            for c in &self.cands {
                let mut d = Detection::new(c.class_id, c.score, lb.to_source(c.bbox));
                if !d.bbox.is_valid() {
                    continue;
                }
                if let Some((img, na)) = kp_source {
                    let base = 4 + spec.num_classes;
                    let k = keypoint_rows(&spec) / 3;
                    d.keypoints = (0..k)
                        .map(|j| {
                            let v = |r: usize| img[(base + 3 * j + r) * na + c.anchor as usize];
                            let (x, y) = lb.point_to_source(v(0), v(1));
                            Keypoint { x, y, score: v(2) }
                        })
                        .collect();
                }
                dets.push(d);
            }
        }
        let t2 = Instant::now();
        Ok(RunTiming {
            infer_ms: (t1 - t0).as_secs_f64() * 1e3,
            post_ms: (t2 - t1).as_secs_f64() * 1e3,
        })
    }
}
