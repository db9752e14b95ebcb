//! The wasi-nn host: the guest's only way to reach a model.
//!
//! Graphs come from the preloaded [`ModelRegistry`] (`load-by-name`)
//! or from bytes (`load`) handed to the backend for the encoding. Every
//! backend call is checked (inputs against the graph's declared inputs) and
//! fenced with `catch_unwind`, so a misbehaving backend or guest gets a wasi-nn
//! error, never a host crash. Models loaded from bytes run in a worker
//! process ([`crate::backend::isolated`]); everything the host holds for an
//! instance (tensors, outputs, errors) counts against one byte budget; and
//! a call past the request's deadline ends as a timeout.

mod host;

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::backend::isolated::{Isolated, WorkerCommand};
use crate::backend::{BackendError, Backends, Graph, formats};
use crate::models::ModelRegistry;
use crate::wit::wasi::nn::{errors, graph, inference, tensor};
use crate::wit::{GraphRes, NnError};

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
pub const DEFAULT_GUEST_LOAD: [&str; 3] = [
    formats::ONNX.backend,
    formats::TFLITE.backend,
    formats::XGBOOST.backend,
];

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
    /// The preloaded models the guest can open by name.
    pub models: Arc<ModelRegistry>,
    /// The backends available for graphs loaded from bytes.
    pub backends: Backends,
    /// The caps on what this instance may hold and load.
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

/// What the wasi-nn host works on: one instance's wasi-nn state and its
/// resource table, borrowed from whatever store data holds them.
pub struct NnView<'a> {
    /// The instance's wasi-nn state.
    pub nn: &'a mut NnState,
    /// The store's resource table (graphs, contexts, tensors, errors).
    pub table: &'a mut ResourceTable,
}

struct HasNn;

impl HasData for HasNn {
    type Data<'a> = NnView<'a>;
}

/// Links the wasi-nn interfaces into `linker`, each call reaching the host
/// through the view `project` makes of the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    project: fn(&mut T) -> NnView<'_>,
) -> wasmtime::Result<()> {
    graph::add_to_linker::<T, HasNn>(linker, project)?;
    tensor::add_to_linker::<T, HasNn>(linker, project)?;
    inference::add_to_linker::<T, HasNn>(linker, project)?;
    errors::add_to_linker::<T, HasNn>(linker, project)
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
        BackendError::Runtime(_) | BackendError::Crashed(_) | BackendError::Overloaded(_) => {
            C::RuntimeError
        }
        BackendError::TooLarge(_) => C::TooLarge,
        BackendError::Deadline => C::Timeout,
    }
}

/// A wasi-nn call's result: a trap, a guest-visible error, or `T`.
type NnCall<T> = wasmtime::Result<Result<T, Resource<NnError>>>;
type NnResult<T> = NnCall<Resource<T>>;

/// Longest error message handed to a guest.
const MAX_ERROR_MESSAGE: usize = 4096;

impl NnView<'_> {
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
