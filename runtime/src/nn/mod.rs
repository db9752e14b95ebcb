//! The wasi-nn host: the guest's only way to reach a model.
//!
//! Graphs come from the preloaded [`registry::ModelRegistry`] (`load-by-name`)
//! or from bytes (`load`) handed to the backend for the encoding. Every
//! backend call is checked (inputs against the graph's declared inputs) and
//! fenced with `catch_unwind`, so a misbehaving backend or guest gets a wasi-nn
//! error, never a host crash. Models loaded from bytes run in a worker
//! process ([`crate::backend::isolated`]); everything the host holds for an
//! instance (tensors, outputs, errors) counts against one byte budget; and
//! a call past the request's deadline ends as a timeout.

pub mod registry;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::Resource;

use crate::backend::isolated::{Isolated, WorkerCommand};
use crate::backend::{BackendError, Backends, Encoding, ExecutionContext, Graph, Target, fenced};
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
    /// Where models loaded from bytes run: a worker process started with
    /// this command (one per instance), or in-process when `None`.
    pub worker: Option<WorkerCommand>,
    /// Bytes the host may hold for one instance at once: tensor data,
    /// model outputs and error messages together (past it: `too-large`, or
    /// a trap where WIT allows no error).
    pub max_host_bytes: usize,
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
            worker: None,
            max_host_bytes: 256 << 20,
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
    errors: usize,
    /// Bytes held in tensors and errors.
    held: usize,
    /// The current request's deadline (or `init`'s).
    deadline: Option<Instant>,
    /// The worker process of models loaded from bytes, once started.
    isolated: Option<Arc<Isolated>>,
}

/// Bytes an error resource is counted as, beyond its message.
const ERROR_OVERHEAD: usize = 64;

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
            errors: 0,
            held: 0,
            deadline: None,
            isolated: None,
        }
    }

    /// The deadline of the call in progress, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Sets the deadline that host calls (native compute, the worker
    /// process) must finish by.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
        if let Some(w) = &self.isolated {
            w.set_deadline(deadline);
        }
    }

    /// Bytes the host holds for this instance now.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Room for `bytes` more, within the instance's budget.
    fn fits(&self, bytes: usize) -> bool {
        self.held.saturating_add(bytes) <= self.limits.max_host_bytes
    }

    /// The worker process, started on first use.
    fn isolated(&mut self, command: &WorkerCommand) -> Result<Arc<Isolated>, BackendError> {
        if let Some(w) = &self.isolated {
            return Ok(Arc::clone(w));
        }
        let w = Isolated::start(command, self.deadline, self.limits.max_host_bytes)?;
        self.isolated = Some(Arc::clone(&w));
        Ok(w)
    }
}

/// What a backend failure does to the guest's call: a deadline past or a
/// dead native runtime ends the call (and so the instance); anything else
/// is a wasi-nn error the guest may handle.
fn fatal(e: &BackendError) -> Option<wasmtime::Error> {
    match e {
        BackendError::Deadline => Some(wasmtime::Trap::Interrupt.into()),
        BackendError::Crashed(m) => Some(wasmtime::Error::msg(format!(
            "wasi-nn: {m}; the instance was replaced"
        ))),
        _ => None,
    }
}

fn code_for(e: &BackendError) -> errors::ErrorCode {
    use errors::ErrorCode as C;
    match e {
        BackendError::Unavailable(_) => C::RuntimeError,
        BackendError::InvalidModel(_) => C::InvalidEncoding,
        BackendError::InvalidInput(_) => C::InvalidArgument,
        BackendError::Unsupported(_) => C::UnsupportedOperation,
        BackendError::Runtime(_) | BackendError::Crashed(_) => C::RuntimeError,
        BackendError::TooLarge(_) => C::TooLarge,
        BackendError::Deadline => C::Timeout,
    }
}

/// A wasi-nn call's result: a trap, a guest-visible error, or `T`.
type NnCall<T> = wasmtime::Result<Result<T, Resource<NnError>>>;
type NnResult<T> = NnCall<Resource<T>>;

/// Longest error message handed to a guest.
const MAX_ERROR_MESSAGE: usize = 4096;

impl HostState {
    fn nn_error<T>(&mut self, code: errors::ErrorCode, message: String) -> NnCall<T> {
        // Messages are capped, and count against the instance's budget
        // until the guest drops them.
        let message = crate::escape::capped(&message, MAX_ERROR_MESSAGE).into_owned();
        let cost = message.len() + ERROR_OVERHEAD;
        if self.nn.errors >= self.nn.limits.max_tensors || !self.nn.fits(cost) {
            wasmtime::bail!(
                "wasi-nn: {} error resources are alive, holding {} bytes; the module never drops them",
                self.nn.errors,
                self.nn.held
            );
        }
        tracing::debug!(?code, message = %crate::escape::log_text(&message), "wasi-nn error");
        let r = self.table.push(NnError { code, message })?;
        self.nn.errors += 1;
        self.nn.held += cost;
        Ok(Err(r))
    }

    fn backend_error<T>(&mut self, e: BackendError) -> NnCall<T> {
        if let Some(fatal) = fatal(&e) {
            return Err(fatal);
        }
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
        let loaded = match self.nn.limits.worker.clone() {
            Some(command) => self
                .nn
                .isolated(&command)
                .and_then(|w| w.load(backend.name(), &parts, target)),
            None => fenced(|| backend.load(&parts, target)),
        };
        match loaded {
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
        let mut seen = HashSet::with_capacity(inputs.len());
        let mut duplicate = None;
        for (name, t) in inputs {
            let TensorRes(tensor) = self.table.delete(t)?;
            self.nn.tensors = self.nn.tensors.saturating_sub(1);
            self.nn.held = self.nn.held.saturating_sub(tensor.data.len());
            if !seen.insert(name.clone()) {
                duplicate.get_or_insert_with(|| name.clone());
            }
            named.push(NamedTensor { name, tensor });
        }
        if let Some(name) = duplicate {
            return self.nn_error(
                errors::ErrorCode::InvalidArgument,
                format!(
                    "input '{}' is given more than once",
                    crate::escape::capped(&name, 128)
                ),
            );
        }
        let deadline = self.nn.deadline;
        let context = &mut self.table.get_mut(&ctx)?.0;
        match fenced(|| context.compute_until(named, deadline)) {
            Ok(outputs) => {
                let bytes: usize = outputs.iter().map(|o| o.tensor.data.len()).sum();
                let count = self.nn.tensors.saturating_add(outputs.len());
                if !self.nn.fits(bytes) || count > self.nn.limits.max_tensors {
                    drop(outputs);
                    return self.nn_error(
                        errors::ErrorCode::TooLarge,
                        format!(
                            "the model's {bytes} bytes of outputs do not fit: this instance holds {} of its {} bytes and {} tensors (--max-host-memory, --max-tensors)",
                            self.nn.held, self.nn.limits.max_host_bytes, self.nn.tensors
                        ),
                    );
                }
                let mut out = Vec::with_capacity(outputs.len());
                for o in outputs {
                    let len = o.tensor.data.len();
                    out.push((o.name, self.table.push(TensorRes(o.tensor))?));
                    self.nn.tensors += 1;
                    self.nn.held += len;
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
        if !self.nn.fits(data.len()) {
            wasmtime::bail!(
                "wasi-nn: a tensor of {} bytes does not fit: this instance already holds {} of its {} bytes (--max-host-memory)",
                data.len(),
                self.nn.held,
                limits.max_host_bytes
            );
        }
        let len = data.len();
        let r = self.table.push(TensorRes(Tensor {
            shape: dimensions,
            ty: ty.into(),
            data,
        }))?;
        self.nn.tensors += 1;
        self.nn.held += len;
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
        let TensorRes(tensor) = self.table.delete(t)?;
        self.nn.tensors = self.nn.tensors.saturating_sub(1);
        self.nn.held = self.nn.held.saturating_sub(tensor.data.len());
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
        let error = self.table.delete(e)?;
        self.nn.errors = self.nn.errors.saturating_sub(1);
        self.nn.held = self
            .nn
            .held
            .saturating_sub(error.message.len() + ERROR_OVERHEAD);
        Ok(())
    }
}
