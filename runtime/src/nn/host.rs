//! The wasi-nn interfaces on an [`NnView`]: graphs, contexts, tensors and
//! errors, each checked against the instance's limits and budget.

use std::collections::HashSet;
use std::sync::Arc;

use wasmtime::component::Resource;

use super::{ERROR_OVERHEAD, NnResult, NnView};
use crate::backend::{Encoding, Target, fenced};
use crate::tensor::{NamedTensor, Tensor};
use crate::wit::wasi::nn::{errors, graph, inference, tensor};
use crate::wit::{ContextRes, GraphRes, NnError, TensorRes};

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

impl graph::Host for NnView<'_> {
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

impl graph::HostGraph for NnView<'_> {
    fn init_execution_context(&mut self, g: Resource<GraphRes>) -> NnResult<ContextRes> {
        if self.nn.contexts >= self.nn.limits.max_contexts {
            let max = self.nn.limits.max_contexts;
            return self.nn_error(
                errors::ErrorCode::TooLarge,
                format!("{max} execution contexts are already open, the most one instance may hold; drop one first"),
            );
        }
        let graph = Arc::clone(&self.table.get(&g)?.0);
        let r = self.table.push(ContextRes(graph))?;
        self.nn.contexts += 1;
        Ok(Ok(r))
    }

    fn drop(&mut self, g: Resource<GraphRes>) -> wasmtime::Result<()> {
        self.table.delete(g)?;
        self.nn.graphs = self.nn.graphs.saturating_sub(1);
        Ok(())
    }
}

impl inference::Host for NnView<'_> {}

impl inference::HostGraphExecutionContext for NnView<'_> {
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
        let graph = Arc::clone(&self.table.get(&ctx)?.0);
        match fenced(|| graph.compute(named, deadline)) {
            Ok(outputs) => {
                if let Some(o) = outputs.iter().find(|o| !o.tensor.ty.is_wasi_nn()) {
                    let message = format!(
                        "output '{}': {}",
                        crate::escape::capped(&o.name, 128),
                        crate::wit::NotWasiNn(o.tensor.ty)
                    );
                    return self.nn_error(errors::ErrorCode::UnsupportedOperation, message);
                }
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

impl tensor::Host for NnView<'_> {}

impl tensor::HostTensor for NnView<'_> {
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
        // Every tensor a guest holds is of a wasi-nn type (compute refuses
        // outputs of other types).
        Ok(self.table.get(&t)?.0.ty.try_into()?)
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

impl errors::Host for NnView<'_> {}

impl errors::HostError for NnView<'_> {
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
