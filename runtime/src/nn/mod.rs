//! The wasi-nn host: the guest's only way to reach a model.
//!
//! Graphs come from the preloaded [`registry::ModelRegistry`] (`load-by-name`)
//! or from bytes (`load`) handed to the backend for the encoding. Every
//! backend call is checked (inputs against the graph's declared inputs) and
//! fenced with `catch_unwind`, so a misbehaving backend or guest gets a wasi-nn
//! error, never a host crash.

pub mod registry;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use wasmtime::component::Resource;

use crate::backend::{BackendError, Backends, Encoding, ExecutionContext, Graph, Target};
use crate::instance::bindings::wasi::nn::{errors, graph, inference, tensor};
use crate::instance::state::HostState;
use crate::tensor::{NamedTensor, Tensor};
use registry::ModelRegistry;

/// A graph resource held by a guest.
pub struct GraphRes(pub Arc<dyn Graph>);

/// An execution context resource held by a guest.
pub struct ContextRes(pub Box<dyn ExecutionContext>);

/// A tensor resource held by a guest.
pub struct TensorRes(pub Tensor);

/// A wasi-nn error resource.
#[derive(Debug)]
pub struct NnError {
    pub code: errors::ErrorCode,
    pub message: String,
}

/// What one instance may hold through wasi-nn at once.
#[derive(Clone, Debug)]
pub struct NnLimits {
    /// Largest tensor a guest may create, in bytes (larger traps).
    pub max_tensor_bytes: usize,
    /// Tensors alive at once (more traps).
    pub max_tensors: usize,
    /// Graphs open at once (more gets `too-large`).
    pub max_graphs: usize,
    /// Execution contexts alive at once (more gets `too-large`).
    pub max_contexts: usize,
    /// Largest model a guest may `load` from bytes (larger gets `too-large`).
    pub max_model_bytes: usize,
    /// Backends whose models a guest may `load` from bytes. TensorFlow
    /// graphs and TorchScript are programs that can read and write host
    /// files (`ReadFile`, `aten::from_file`), so they are left out unless
    /// the operator adds them: a guest's bytes would run outside the sandbox.
    pub guest_load: Vec<String>,
}

/// Backends a guest may `load` from bytes unless told otherwise: formats
/// that describe computation without file or network access.
pub const DEFAULT_GUEST_LOAD: [&str; 3] = ["onnxruntime", "tflite", "xgboost"];

impl Default for NnLimits {
    fn default() -> Self {
        NnLimits {
            max_tensor_bytes: 64 << 20,
            max_tensors: 256,
            max_graphs: 16,
            max_contexts: 32,
            max_model_bytes: 256 << 20,
            guest_load: DEFAULT_GUEST_LOAD.map(String::from).to_vec(),
        }
    }
}

/// Per-instance wasi-nn state.
pub struct NnState {
    pub models: Arc<ModelRegistry>,
    pub backends: Backends,
    pub limits: NnLimits,
    graphs: usize,
    contexts: usize,
    tensors: usize,
}

impl NnState {
    /// State over shared models and backends.
    pub fn new(models: Arc<ModelRegistry>, backends: Backends, limits: NnLimits) -> Self {
        NnState {
            models,
            backends,
            limits,
            graphs: 0,
            contexts: 0,
            tensors: 0,
        }
    }
}

fn code_for(e: &BackendError) -> errors::ErrorCode {
    use errors::ErrorCode as C;
    match e {
        BackendError::Unavailable(_) => C::RuntimeError,
        BackendError::InvalidModel(_) => C::InvalidEncoding,
        BackendError::InvalidInput(_) => C::InvalidArgument,
        BackendError::Unsupported(_) => C::UnsupportedOperation,
        BackendError::Runtime(_) => C::RuntimeError,
    }
}

/// Runs a backend call, turning a panic into a runtime error.
fn fenced<T>(f: impl FnOnce() -> Result<T, BackendError>) -> Result<T, BackendError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        Err(BackendError::Runtime(format!("backend panicked: {what}")))
    })
}

/// A wasi-nn call's result: a trap, a guest-visible error, or `T`.
type NnCall<T> = wasmtime::Result<Result<T, Resource<NnError>>>;
type NnResult<T> = NnCall<Resource<T>>;

impl HostState {
    fn nn_error<T>(&mut self, code: errors::ErrorCode, message: String) -> NnCall<T> {
        tracing::debug!(?code, %message, "wasi-nn error");
        Ok(Err(self.table.push(NnError { code, message })?))
    }

    fn backend_error<T>(&mut self, e: BackendError) -> NnCall<T> {
        self.nn_error(code_for(&e), e.to_string())
    }

    /// `Some(error)` when no more graphs may be opened.
    fn graph_slot<T>(&mut self) -> Option<NnResult<T>> {
        let max = self.nn.limits.max_graphs;
        (self.nn.graphs >= max).then(|| {
            self.nn_error(
                errors::ErrorCode::TooLarge,
                format!(
                    "{max} graphs are already open, the most one instance may hold; drop one first"
                ),
            )
        })
    }

    fn push_graph(&mut self, g: Arc<dyn Graph>) -> NnResult<GraphRes> {
        let r = self.table.push(GraphRes(g))?;
        self.nn.graphs += 1;
        Ok(Ok(r))
    }
}

fn encoding(e: graph::GraphEncoding) -> Encoding {
    use graph::GraphEncoding as G;
    match e {
        G::Openvino => Encoding::Openvino,
        G::Onnx => Encoding::Onnx,
        G::Tensorflow => Encoding::Tensorflow,
        G::Pytorch => Encoding::Pytorch,
        G::Tensorflowlite => Encoding::Tensorflowlite,
        G::Ggml => Encoding::Ggml,
        G::Autodetect => Encoding::Autodetect,
    }
}

impl graph::Host for HostState {
    fn load(
        &mut self,
        builders: Vec<graph::GraphBuilder>,
        enc: graph::GraphEncoding,
        target: graph::ExecutionTarget,
    ) -> NnResult<GraphRes> {
        let size: usize = builders.iter().map(Vec::len).sum();
        if size > self.nn.limits.max_model_bytes {
            return self.nn_error(
                errors::ErrorCode::TooLarge,
                format!(
                    "a model of {size} bytes is over the {}-byte limit",
                    self.nn.limits.max_model_bytes
                ),
            );
        }
        if let Some(e) = self.graph_slot() {
            return e;
        }
        let wanted = encoding(enc);
        let backend = match wanted {
            Encoding::Autodetect => {
                let head = builders.first().map(Vec::as_slice).unwrap_or_default();
                self.nn.backends.for_bytes(head).cloned()
            }
            e => self.nn.backends.for_encoding(e).cloned(),
        };
        let Some(backend) = backend else {
            return self.nn_error(
                errors::ErrorCode::InvalidEncoding,
                format!("no backend for encoding {wanted:?} in this image"),
            );
        };
        if !self
            .nn
            .limits
            .guest_load
            .iter()
            .any(|b| b == backend.name())
        {
            return self.nn_error(
                errors::ErrorCode::InvalidEncoding,
                format!(
                    "loading {} models from bytes is off: their graphs can reach host files outside the sandbox; put the model in the model directory and open it by name, or let the operator allow it (--guest-load)",
                    backend.name()
                ),
            );
        }
        let target = match target {
            graph::ExecutionTarget::Cpu => Target::Cpu,
            graph::ExecutionTarget::Gpu => Target::Gpu,
            graph::ExecutionTarget::Tpu => Target::Tpu,
        };
        let parts: Vec<&[u8]> = builders.iter().map(Vec::as_slice).collect();
        match fenced(|| backend.load(&parts, target)) {
            Ok(g) => self.push_graph(g),
            Err(e) => self.backend_error(e),
        }
    }

    fn load_by_name(&mut self, name: String) -> NnResult<GraphRes> {
        if let Some(e) = self.graph_slot() {
            return e;
        }
        match self.nn.models.get(&name) {
            Some(entry) => {
                let g = Arc::clone(&entry.graph);
                self.push_graph(g)
            }
            None => {
                let names = self.nn.models.names();
                self.nn_error(
                    errors::ErrorCode::NotFound,
                    format!("no model named '{name}'; loaded models: {names:?}"),
                )
            }
        }
    }
}

impl graph::HostGraph for HostState {
    fn init_execution_context(&mut self, g: Resource<GraphRes>) -> NnResult<ContextRes> {
        if self.nn.contexts >= self.nn.limits.max_contexts {
            let max = self.nn.limits.max_contexts;
            return self.nn_error(
                errors::ErrorCode::TooLarge,
                format!("{max} execution contexts are already open, the most one instance may hold; drop one first"),
            );
        }
        let graph = Arc::clone(&self.table.get(&g)?.0);
        match fenced(|| graph.init_execution_context()) {
            Ok(ctx) => {
                let r = self.table.push(ContextRes(ctx))?;
                self.nn.contexts += 1;
                Ok(Ok(r))
            }
            Err(e) => self.backend_error(e),
        }
    }

    fn drop(&mut self, g: Resource<GraphRes>) -> wasmtime::Result<()> {
        self.table.delete(g)?;
        self.nn.graphs = self.nn.graphs.saturating_sub(1);
        Ok(())
    }
}

impl inference::Host for HostState {}

impl inference::HostGraphExecutionContext for HostState {
    fn compute(
        &mut self,
        ctx: Resource<ContextRes>,
        inputs: Vec<inference::NamedTensor>,
    ) -> wasmtime::Result<Result<Vec<inference::NamedTensor>, Resource<NnError>>> {
        let mut named = Vec::with_capacity(inputs.len());
        for (name, t) in inputs {
            let TensorRes(tensor) = self.table.delete(t)?;
            self.nn.tensors = self.nn.tensors.saturating_sub(1);
            named.push(NamedTensor { name, tensor });
        }
        let context = &mut self.table.get_mut(&ctx)?.0;
        match fenced(|| context.compute(named)) {
            Ok(outputs) => {
                let mut out = Vec::with_capacity(outputs.len());
                for o in outputs {
                    out.push((o.name, self.table.push(TensorRes(o.tensor))?));
                    self.nn.tensors += 1;
                }
                Ok(Ok(out))
            }
            Err(e) => self.backend_error(e),
        }
    }

    fn drop(&mut self, ctx: Resource<ContextRes>) -> wasmtime::Result<()> {
        self.table.delete(ctx)?;
        self.nn.contexts = self.nn.contexts.saturating_sub(1);
        Ok(())
    }
}

impl tensor::Host for HostState {}

impl tensor::HostTensor for HostState {
    fn new(
        &mut self,
        dimensions: tensor::TensorDimensions,
        ty: tensor::TensorType,
        data: tensor::TensorData,
    ) -> wasmtime::Result<Resource<TensorRes>> {
        // A constructor cannot return an error in WIT: past a limit it traps.
        // Shape against data length is checked when computed.
        let limits = &self.nn.limits;
        if data.len() > limits.max_tensor_bytes {
            wasmtime::bail!(
                "wasi-nn: a tensor of {} bytes is over the {}-byte limit",
                data.len(),
                limits.max_tensor_bytes
            );
        }
        if self.nn.tensors >= limits.max_tensors {
            wasmtime::bail!(
                "wasi-nn: {} tensors are alive, the most one instance may hold",
                limits.max_tensors
            );
        }
        let r = self.table.push(TensorRes(Tensor {
            shape: dimensions,
            ty: ty.into(),
            data,
        }))?;
        self.nn.tensors += 1;
        Ok(r)
    }

    fn dimensions(&mut self, t: Resource<TensorRes>) -> wasmtime::Result<tensor::TensorDimensions> {
        Ok(self.table.get(&t)?.0.shape.clone())
    }

    fn ty(&mut self, t: Resource<TensorRes>) -> wasmtime::Result<tensor::TensorType> {
        Ok(self.table.get(&t)?.0.ty.into())
    }

    fn data(&mut self, t: Resource<TensorRes>) -> wasmtime::Result<tensor::TensorData> {
        Ok(self.table.get(&t)?.0.data.clone())
    }

    fn drop(&mut self, t: Resource<TensorRes>) -> wasmtime::Result<()> {
        self.table.delete(t)?;
        self.nn.tensors = self.nn.tensors.saturating_sub(1);
        Ok(())
    }
}

impl errors::Host for HostState {}

impl errors::HostError for HostState {
    fn code(&mut self, e: Resource<NnError>) -> wasmtime::Result<errors::ErrorCode> {
        Ok(self.table.get(&e)?.code)
    }

    fn data(&mut self, e: Resource<NnError>) -> wasmtime::Result<String> {
        Ok(self.table.get(&e)?.message.clone())
    }

    fn drop(&mut self, e: Resource<NnError>) -> wasmtime::Result<()> {
        self.table.delete(e)?;
        Ok(())
    }
}
