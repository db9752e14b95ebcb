//! The seam between the wasi-nn host and native inference runtimes.
//!
//! A backend is two small traits: [`Backend`] loads bytes into a [`Graph`],
//! and a graph computes. (wasi-nn's execution contexts only hold a graph:
//! no backend keeps per-context state.) Each native runtime (ONNX Runtime,
//! XGBoost, TensorFlow, LiteRT, libtorch) lives in one file or folder
//! behind one cargo feature, its name, platform and files in the
//! [`formats`] table, and is registered in [`Backends`], so the wasi-nn
//! host and the HTTP layer never name a concrete runtime.

pub mod batch;
pub mod configure;
pub mod formats;
pub mod isolated;
#[cfg(any(
    feature = "onnxruntime",
    feature = "pytorch",
    feature = "tensorflow",
    feature = "tflite",
    feature = "xgboost"
))]
pub mod native;
#[cfg(feature = "onnxruntime")]
pub mod onnxruntime;
#[cfg(feature = "pytorch")]
pub mod pytorch;
#[cfg(feature = "tensorflow")]
pub mod tensorflow;
#[cfg(feature = "tflite")]
pub mod tflite;
#[cfg(feature = "xgboost")]
pub mod xgboost;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::tensor::{NamedTensor, TensorType};
pub use formats::Format;

/// Model formats, as wasi-nn's `graph-encoding` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// OpenVINO IR.
    Openvino,
    /// ONNX.
    Onnx,
    /// TensorFlow (a SavedModel).
    Tensorflow,
    /// PyTorch (TorchScript).
    Pytorch,
    /// TensorFlow Lite.
    Tensorflowlite,
    /// GGML.
    Ggml,
    /// No format named: the backend is chosen from the model's bytes.
    Autodetect,
    /// Not a wasi-nn encoding: XGBoost models are loaded by name, or by
    /// `autodetect` from their bytes.
    Xgboost,
}

/// Where a graph should run, as wasi-nn's `execution-target` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// The CPU.
    Cpu,
    /// A GPU.
    Gpu,
    /// A TPU.
    Tpu,
}

/// What went wrong inside a backend. The wasi-nn host maps each kind to a
/// wasi-nn error code, the HTTP layer to a status.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The native library could not be found or loaded.
    #[error("{0}")]
    Unavailable(String),
    /// The model bytes could not be read by this backend.
    #[error("cannot load model: {0}")]
    InvalidModel(String),
    /// The inputs do not fit the model (names, types, shapes).
    #[error("{0}")]
    InvalidInput(String),
    /// The backend cannot do what was asked (a target, an output type).
    #[error("{0}")]
    Unsupported(String),
    /// Inference failed inside the native runtime.
    #[error("inference failed: {0}")]
    Runtime(String),
    /// A result (a model's outputs) is over the limit of what may be held.
    #[error("{0}")]
    TooLarge(String),
    /// The request's deadline passed inside the native runtime, which was
    /// stopped.
    #[error("the deadline passed while the model was running; it was stopped")]
    Deadline,
    /// The native runtime died (a worker process killed by a signal).
    #[error("{0}")]
    Crashed(String),
    /// Too many requests wait for the model (a batch queue is full).
    #[error("{0}")]
    Overloaded(String),
}

/// Runs a backend call, turning a panic into a runtime error: the one fence
/// every call into a backend goes through.
pub fn fenced<T>(f: impl FnOnce() -> Result<T, BackendError>) -> Result<T, BackendError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        Err(BackendError::Runtime(format!("backend panicked: {what}")))
    })
}

/// Description of one graph input or output.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// The input's or output's name in the graph.
    pub name: String,
    /// Element type, or `None` when the value is not a tensor wasi-nn can
    /// carry (a map, a sequence, a string tensor).
    pub ty: Option<TensorType>,
    /// Dimensions; `-1` where the dimension is dynamic.
    pub shape: Vec<i64>,
    /// The runtime's own name for the value's type, for messages and metadata.
    pub native_type: String,
}

/// What a graph takes and gives.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signature {
    /// Inputs, in the graph's order.
    pub inputs: Vec<TensorInfo>,
    /// Outputs, in the graph's order.
    pub outputs: Vec<TensorInfo>,
}

/// A native inference runtime that turns model bytes into graphs.
pub trait Backend: Send + Sync {
    /// The format it reads: its name, platform, encoding and files.
    fn format(&self) -> &'static Format;
    /// Short name used in logs, metadata and `sandscore version`.
    fn name(&self) -> &'static str {
        self.format().backend
    }
    /// The platform string V2 model metadata reports (Triton's names).
    fn platform(&self) -> &'static str {
        self.format().platform
    }
    /// The wasi-nn encoding this backend reads.
    fn encoding(&self) -> Encoding {
        self.format().encoding
    }
    /// The native library version, when it is loaded.
    fn version(&self) -> String;
    /// Whether a file in the model directory is a model for this backend.
    fn recognizes(&self, path: &Path) -> bool {
        self.format().recognizes(path)
    }
    /// Whether model bytes look like this backend's format (wasi-nn
    /// `autodetect`).
    fn sniff(&self, _bytes: &[u8]) -> bool {
        false
    }
    /// Loads a graph from the parts wasi-nn `load` passes.
    fn load(&self, parts: &[&[u8]], target: Target) -> Result<Arc<dyn Graph>, BackendError>;
    /// Loads a graph from the model directory: `path` is the file the
    /// backend recognized (for formats that are folders, the file that
    /// marks one). By default, its bytes through [`Backend::load`].
    fn load_path(&self, path: &Path, target: Target) -> Result<Arc<dyn Graph>, BackendError> {
        let bytes = std::fs::read(path)
            .map_err(|e| BackendError::InvalidModel(format!("{}: {e}", path.display())))?;
        self.load(&[&bytes], target)
    }
}

/// A loaded model. Shared by every instance; must serve concurrent contexts.
pub trait Graph: Send + Sync {
    /// Its declared inputs and outputs.
    fn signature(&self) -> &Signature;
    /// Graph inputs.
    fn inputs(&self) -> &[TensorInfo] {
        &self.signature().inputs
    }
    /// Graph outputs.
    fn outputs(&self) -> &[TensorInfo] {
        &self.signature().outputs
    }
    /// Where the graph runs, after any fallback: `cpu`, `cuda:0`, ….
    fn device(&self) -> String {
        "cpu".into()
    }
    /// Runs the graph on named inputs, returning every output by name;
    /// stopped with [`BackendError::Deadline`] once `deadline` passes where
    /// the native runtime can be stopped from outside (ONNX Runtime's
    /// terminate flag, TensorFlow's run timeout). Each backend checks the
    /// inputs against its declared ones ([`check_inputs`]) in its own terms
    /// (XGBoost has no input names, TorchScript no declared inputs).
    fn compute(
        &self,
        inputs: Vec<NamedTensor>,
        deadline: Option<Instant>,
    ) -> Result<Vec<NamedTensor>, BackendError>;
    /// Whether `compute` stops at its deadline from outside the calling
    /// thread whatever the inputs (ONNX Runtime's terminate flag, watched
    /// by its own thread): only such work may run on an async thread.
    fn stops_at_deadline(&self) -> bool {
        false
    }
    /// The batching in front of this graph, when its computes are batched
    /// (so an async caller can wait without holding a thread).
    fn batched(&self) -> Option<&batch::Batched> {
        None
    }
}

/// The backends compiled into this binary, in the order discovery tries them.
#[derive(Clone, Default)]
pub struct Backends {
    list: Vec<Arc<dyn Backend>>,
    /// Model files whose backend is set explicitly: file name → backend.
    overrides: Vec<(String, Arc<dyn Backend>)>,
    /// Models placed on a device by name (the rest run on the CPU).
    devices: Vec<(String, Target)>,
    /// Models batched by name (`--dynamic-batching`; `*` for every model),
    /// where no `config.pbtxt` says how.
    batching: Vec<(String, batch::BatchSettings)>,
}

impl Backends {
    /// Backends from explicit instances.
    pub fn new(list: Vec<Arc<dyn Backend>>) -> Self {
        Backends {
            list,
            overrides: Vec::new(),
            devices: Vec::new(),
            batching: Vec::new(),
        }
    }

    /// Sets the backend of model files by name, from `FILE=BACKEND` pairs
    /// (`--model-backend`), overriding what the files look like; an
    /// unknown backend is an error that lists the ones there are.
    pub fn with_overrides(mut self, pairs: &[String]) -> Result<Self, BackendError> {
        for pair in pairs {
            let Some((file, name)) = pair.split_once('=') else {
                return Err(BackendError::Unsupported(format!(
                    "--model-backend '{pair}' is not FILE=BACKEND"
                )));
            };
            let Some(backend) = self.list.iter().find(|b| b.name() == name) else {
                let names: Vec<&str> = self.list.iter().map(|b| b.name()).collect();
                return Err(BackendError::Unsupported(format!(
                    "--model-backend {pair}: no backend '{name}' in this build (it has {})",
                    names.join(", ")
                )));
            };
            self.overrides.push((file.to_string(), Arc::clone(backend)));
        }
        Ok(self)
    }

    /// The file names `--model-backend` set a backend for.
    pub fn overridden(&self) -> impl Iterator<Item = &str> {
        self.overrides.iter().map(|(f, _)| f.as_str())
    }

    /// Places models by name from `NAME=cpu|gpu` pairs (`--model-device`).
    pub fn with_devices(mut self, pairs: &[String]) -> Result<Self, BackendError> {
        for pair in pairs {
            let target = match pair.split_once('=') {
                Some((name, "cpu")) => (name, Target::Cpu),
                Some((name, "gpu")) => (name, Target::Gpu),
                _ => {
                    return Err(BackendError::Unsupported(format!(
                        "--model-device '{pair}' is not NAME=cpu or NAME=gpu"
                    )));
                }
            };
            self.devices.push((target.0.to_string(), target.1));
        }
        Ok(self)
    }

    /// Batches models by name from `NAME=MAX[/DELAY_US]` pairs
    /// (`--dynamic-batching`; `*` names every model).
    pub fn with_batching(mut self, pairs: &[String]) -> Result<Self, BackendError> {
        for pair in pairs {
            let parsed = pair
                .split_once('=')
                .ok_or_else(|| "is not NAME=MAX_BATCH_SIZE[/DELAY_US]".to_string())
                .and_then(|(name, v)| Ok((name.to_string(), batch::BatchSettings::parse(v)?)));
            match parsed {
                Ok(p) => self.batching.push(p),
                Err(why) => {
                    return Err(BackendError::Unsupported(format!(
                        "--dynamic-batching {pair}: {why}"
                    )));
                }
            }
        }
        Ok(self)
    }

    /// How the model `name` batches, when a flag says (a `config.pbtxt`
    /// with `dynamic_batching` says so for its model first).
    pub fn batching_for(&self, name: &str) -> Option<&batch::BatchSettings> {
        self.batching
            .iter()
            .find(|(n, _)| n == name)
            .or_else(|| self.batching.iter().find(|(n, _)| n == "*"))
            .map(|(_, s)| s)
    }

    /// Where the model named `name` runs.
    pub fn target_for(&self, name: &str) -> Target {
        self.devices
            .iter()
            .find(|(n, _)| n == name)
            .map_or(Target::Cpu, |(_, t)| *t)
    }

    /// The backend for a wasi-nn encoding (`autodetect` is resolved by the
    /// caller from the model bytes).
    pub fn for_encoding(&self, encoding: Encoding) -> Option<&Arc<dyn Backend>> {
        self.list.iter().find(|b| b.encoding() == encoding)
    }

    /// The backend for `autodetect`: the one that recognizes the bytes, else
    /// the only backend there is.
    pub fn for_bytes(&self, bytes: &[u8]) -> Option<&Arc<dyn Backend>> {
        self.list
            .iter()
            .find(|b| b.sniff(bytes))
            .or(match self.list.as_slice() {
                [only] => Some(only),
                _ => None,
            })
    }

    /// The backend for a model file: the one set for its name (a file name,
    /// or `FOLDER/FILE`), else the one that recognizes it, if any.
    pub fn for_path(&self, path: &Path) -> Option<&Arc<dyn Backend>> {
        let named = |want: &str| {
            let want = Path::new(want);
            path.ends_with(want)
        };
        self.overrides
            .iter()
            .find(|(file, _)| named(file))
            .map(|(_, b)| b)
            .or_else(|| self.list.iter().find(|b| b.recognizes(path)))
    }

    /// Every backend.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Backend>> {
        self.list.iter()
    }
}

/// Checks named inputs against a graph's declared inputs before a backend
/// sees them: every declared input present, no unknown names, element types
/// equal, ranks equal and fixed dimensions equal.
pub fn check_inputs(declared: &[TensorInfo], inputs: &[NamedTensor]) -> Result<(), BackendError> {
    for input in inputs {
        input
            .tensor
            .validate()
            .map_err(|e| BackendError::InvalidInput(format!("input '{}': {e}", input.name)))?;
        let Some(info) = declared.iter().find(|d| d.name == input.name) else {
            let names: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
            return Err(BackendError::InvalidInput(format!(
                "unknown input '{}'; the model's inputs are {names:?}",
                input.name
            )));
        };
        if info.ty != Some(input.tensor.ty) {
            return Err(BackendError::InvalidInput(format!(
                "input '{}' must be {}, got {}",
                info.name,
                info.ty
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| info.native_type.clone()),
                input.tensor.ty
            )));
        }
        let shape = &input.tensor.shape;
        let fits = info.shape.len() == shape.len()
            && info
                .shape
                .iter()
                .zip(shape)
                .all(|(&want, &got)| want < 0 || want == i64::from(got));
        if !fits {
            return Err(BackendError::InvalidInput(format!(
                "input '{}' must have shape {:?} (-1 is any size), got {:?}",
                info.name, info.shape, shape
            )));
        }
    }
    for info in declared {
        if !inputs.iter().any(|i| i.name == info.name) {
            return Err(BackendError::InvalidInput(format!(
                "missing input '{}' ({} {:?})",
                info.name,
                info.ty
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| info.native_type.clone()),
                info.shape
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    fn declared() -> Vec<TensorInfo> {
        vec![TensorInfo {
            name: "x".into(),
            ty: Some(TensorType::Fp32),
            shape: vec![-1, 4],
            native_type: "tensor(float)".into(),
        }]
    }

    fn input(name: &str, shape: Vec<u32>, ty: TensorType) -> NamedTensor {
        let n = crate::tensor::element_count(&shape).unwrap() * ty.size().unwrap();
        NamedTensor {
            name: name.into(),
            tensor: Tensor::new(shape, ty, vec![0; n]).unwrap(),
        }
    }

    #[test]
    fn accepts_dynamic_batch() {
        check_inputs(&declared(), &[input("x", vec![3, 4], TensorType::Fp32)]).unwrap();
    }

    #[test]
    fn rejects_wrong_type_shape_name_and_missing() {
        let msg = |r: Result<(), BackendError>| r.unwrap_err().to_string();
        assert!(
            msg(check_inputs(
                &declared(),
                &[input("x", vec![3, 4], TensorType::I64)]
            ))
            .contains("must be FP32")
        );
        assert!(
            msg(check_inputs(
                &declared(),
                &[input("x", vec![3, 5], TensorType::Fp32)]
            ))
            .contains("shape")
        );
        assert!(
            msg(check_inputs(
                &declared(),
                &[input("y", vec![3, 4], TensorType::Fp32)]
            ))
            .contains("unknown input 'y'")
        );
        assert!(msg(check_inputs(&declared(), &[])).contains("missing input 'x'"));
    }
}
