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

/// Per-instance wasi-nn state.
pub struct NnState {
    pub models: Arc<ModelRegistry>,
    pub backends: Backends,
}

impl NnState {
    /// State over shared models and backends.
    pub fn new(models: Arc<ModelRegistry>, backends: Backends) -> Self {
        NnState { models, backends }
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

type NnResult<T> = wasmtime::Result<Result<Resource<T>, Resource<NnError>>>;

impl HostState {
    fn nn_error<T>(&mut self, code: errors::ErrorCode, message: String) -> NnResult<T> {
        tracing::debug!(?code, %message, "wasi-nn error");
        Ok(Err(self.table.push(NnError { code, message })?))
    }

    fn backend_error<T>(&mut self, e: BackendError) -> NnResult<T> {
        self.nn_error(code_for(&e), e.to_string())
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
        let wanted = encoding(enc);
        let backend = match wanted {
            Encoding::Autodetect => {
                let mut all = self.nn.backends.iter();
                match (all.next(), all.next()) {
                    (Some(only), None) => Some(Arc::clone(only)),
                    _ => None,
                }
            }
            e => self.nn.backends.for_encoding(e).cloned(),
        };
        let Some(backend) = backend else {
            return self.nn_error(
                errors::ErrorCode::InvalidEncoding,
                format!("no backend for encoding {wanted:?} in this image"),
            );
        };
        let target = match target {
            graph::ExecutionTarget::Cpu => Target::Cpu,
            graph::ExecutionTarget::Gpu => Target::Gpu,
            graph::ExecutionTarget::Tpu => Target::Tpu,
        };
        let parts: Vec<&[u8]> = builders.iter().map(Vec::as_slice).collect();
        match fenced(|| backend.load(&parts, target)) {
            Ok(g) => Ok(Ok(self.table.push(GraphRes(g))?)),
            Err(e) => self.backend_error(e),
        }
    }

    fn load_by_name(&mut self, name: String) -> NnResult<GraphRes> {
        match self.nn.models.get(&name) {
            Some(entry) => {
                let g = Arc::clone(&entry.graph);
                Ok(Ok(self.table.push(GraphRes(g))?))
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
        let graph = Arc::clone(&self.table.get(&g)?.0);
        match fenced(|| graph.init_execution_context()) {
            Ok(ctx) => Ok(Ok(self.table.push(ContextRes(ctx))?)),
            Err(e) => self.backend_error(e),
        }
    }

    fn drop(&mut self, g: Resource<GraphRes>) -> wasmtime::Result<()> {
        self.table.delete(g)?;
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
            named.push(NamedTensor { name, tensor });
        }
        let context = &mut self.table.get_mut(&ctx)?.0;
        match fenced(|| context.compute(named)) {
            Ok(outputs) => {
                let mut out = Vec::with_capacity(outputs.len());
                for o in outputs {
                    out.push((o.name, self.table.push(TensorRes(o.tensor))?));
                }
                Ok(Ok(out))
            }
            Err(e) => Ok(Err(self.table.push(NnError {
                code: code_for(&e),
                message: e.to_string(),
            })?)),
        }
    }

    fn drop(&mut self, ctx: Resource<ContextRes>) -> wasmtime::Result<()> {
        self.table.delete(ctx)?;
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
        // Checked when computed: a constructor cannot fail in WIT.
        Ok(self.table.push(TensorRes(Tensor {
            shape: dimensions,
            ty: ty.into(),
            data,
        }))?)
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
