//! The backends of this build, set up from plain settings: where each
//! native library is, how many threads it may use, which model runs on
//! which device. The caller (the `sandscore` command, a test) fills these
//! in however it likes; nothing here reads flags or the environment.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Backend, BackendError, Backends};

/// How the native runtimes are found and run.
#[derive(Clone, Debug)]
pub struct BackendConfig {
    /// `libonnxruntime.so` (else beside the binary, then `../lib`).
    pub ort_lib: Option<PathBuf>,
    /// libxgboost.so, in the xgboost-cpu wheel's layout.
    pub xgboost_lib: Option<PathBuf>,
    /// TensorFlow's `libtensorflow_cc.so.2`.
    pub tensorflow_lib: Option<PathBuf>,
    /// LiteRT's `libLiteRt.so`.
    pub litert_lib: Option<PathBuf>,
    /// runtime/torch's `libsandscore_torch.so`.
    pub torch_lib: Option<PathBuf>,
    /// Threads inside one operator (ORT), op (TF) or prediction (XGBoost);
    /// 0 = the library's default.
    pub intra_op_threads: usize,
    /// ONNX Runtime graph optimisation level, by name (`all`, `basic`, …).
    pub graph_optimization: String,
    /// ONNX Runtime sessions per model: one per concurrent request.
    pub max_sessions: usize,
    /// CUDA device of `gpu` models.
    pub gpu_device: i32,
    /// ONNX Runtime's GPU arena limit per session, in bytes.
    pub gpu_mem_limit: Option<usize>,
    /// Run a `gpu` model on the CPU where CUDA cannot be used (else fail).
    pub gpu_fallback_cpu: bool,
    /// `FILE=BACKEND` pairs: a model file's backend, by name.
    pub model_backends: Vec<String>,
    /// `NAME=cpu|gpu` pairs: where each model runs.
    pub model_devices: Vec<String>,
    /// `NAME=MAX[/DELAY_US]` pairs: models batched without a config.pbtxt.
    pub dynamic_batching: Vec<String>,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            ort_lib: None,
            xgboost_lib: None,
            tensorflow_lib: None,
            litert_lib: None,
            torch_lib: None,
            intra_op_threads: 1,
            graph_optimization: "all".into(),
            max_sessions: 1,
            gpu_device: 0,
            gpu_mem_limit: None,
            gpu_fallback_cpu: false,
            model_backends: Vec::new(),
            model_devices: Vec::new(),
            dynamic_batching: Vec::new(),
        }
    }
}

/// The backends compiled into this build, configured from `config`, in the
/// order discovery tries them.
pub fn configure(config: &BackendConfig) -> Result<Backends, BackendError> {
    #[allow(unused_mut)]
    let mut list: Vec<Arc<dyn Backend>> = Vec::new();
    #[cfg(feature = "onnxruntime")]
    {
        use super::onnxruntime::{OnnxRuntime, OrtOptions};
        list.push(Arc::new(OnnxRuntime::new(OrtOptions {
            library: config.ort_lib.clone(),
            intra_op_threads: config.intra_op_threads,
            optimization: config.graph_optimization.clone(),
            max_sessions: config.max_sessions,
            gpu_device: config.gpu_device,
            gpu_mem_limit: config.gpu_mem_limit,
            gpu_fallback: config.gpu_fallback_cpu,
        })?));
    }
    #[cfg(feature = "tensorflow")]
    {
        use super::tensorflow::{TensorFlow, TfOptions};
        list.push(Arc::new(TensorFlow::new(TfOptions {
            library: config.tensorflow_lib.clone(),
            threads: config.intra_op_threads,
            gpu_device: config.gpu_device,
            gpu_fallback: config.gpu_fallback_cpu,
        })));
    }
    #[cfg(feature = "pytorch")]
    {
        use super::pytorch::{PyTorch, TorchOptions};
        list.push(Arc::new(PyTorch::new(TorchOptions {
            library: config.torch_lib.clone(),
            gpu_device: config.gpu_device,
            gpu_fallback: config.gpu_fallback_cpu,
        })));
    }
    #[cfg(feature = "tflite")]
    {
        use super::tflite::{Tflite, TfliteOptions};
        list.push(Arc::new(Tflite::new(TfliteOptions {
            library: config.litert_lib.clone(),
        })));
    }
    #[cfg(feature = "xgboost")]
    {
        use super::xgboost::{XgBoost, XgbOptions};
        list.push(Arc::new(XgBoost::new(XgbOptions {
            library: config.xgboost_lib.clone(),
            threads: config.intra_op_threads,
        })));
    }
    Backends::new(list)
        .with_overrides(&config.model_backends)?
        .with_devices(&config.model_devices)?
        .with_batching(&config.dynamic_batching)
}
