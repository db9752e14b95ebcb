//! Host bindings of the `sandscore:scoring/scorer` world (`spec/wit`): the
//! generated types and traits only, and the host-side values behind the
//! wasi-nn resources. A leaf: `nn` implements the wasi-nn traits, `instance`
//! the scoring ones, and neither needs the other to do so.
//!
//! wasi-nn is implemented here rather than through `wasmtime-wasi-nn` so that
//! backends, limits and error mapping are ours (see `backend::onnxruntime`
//! for what the upstream ONNX backend lacks).

// The generated items carry the WIT's own documentation where it has any.
#![allow(missing_docs)]

use std::sync::Arc;

use crate::backend::Graph;
use crate::tensor::{Tensor, TensorType};

wasmtime::component::bindgen!({
    world: "scorer",
    path: "../spec/wit",
    with: {
        "wasi:nn/graph.graph": crate::wit::GraphRes,
        "wasi:nn/tensor.tensor": crate::wit::TensorRes,
        "wasi:nn/inference.graph-execution-context": crate::wit::ContextRes,
        "wasi:nn/errors.error": crate::wit::NnError,
    },
    imports: { default: trappable },
});

/// A graph resource held by a guest.
pub struct GraphRes(pub Arc<dyn Graph>);

/// An execution context resource held by a guest: the graph it computes
/// (no backend keeps state per context).
pub struct ContextRes(pub Arc<dyn Graph>);

/// A tensor resource held by a guest.
pub struct TensorRes(pub Tensor);

/// A wasi-nn error resource.
#[derive(Debug)]
pub struct NnError {
    /// The wasi-nn error code the guest reads.
    pub code: wasi::nn::errors::ErrorCode,
    /// The message, capped and counted against the instance's budget.
    pub message: String,
}

pub use self::sandscore::scoring::types::{
    Error as GuestError, ErrorCode as GuestErrorCode, NamedTensor as WitTensor,
    Request as WitRequest, Response as WitResponse,
};
pub use self::wasi::nn::tensor::TensorType as WitTensorType;

impl From<WitTensorType> for TensorType {
    fn from(t: WitTensorType) -> Self {
        match t {
            WitTensorType::Fp16 => TensorType::Fp16,
            WitTensorType::Fp32 => TensorType::Fp32,
            WitTensorType::Fp64 => TensorType::Fp64,
            WitTensorType::Bf16 => TensorType::Bf16,
            WitTensorType::U8 => TensorType::U8,
            WitTensorType::I32 => TensorType::I32,
            WitTensorType::I64 => TensorType::I64,
        }
    }
}

/// A tensor type wasi-nn cannot carry (BOOL, INT8, …): a module never
/// sees one.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0} tensors cannot reach a module: wasi-nn carries FP16, FP32, FP64, BF16, UINT8, INT32 and INT64; serve the model without a module to use {0}"
)]
pub struct NotWasiNn(pub TensorType);

impl TryFrom<TensorType> for WitTensorType {
    type Error = NotWasiNn;

    fn try_from(t: TensorType) -> Result<Self, NotWasiNn> {
        Ok(match t {
            TensorType::Fp16 => WitTensorType::Fp16,
            TensorType::Fp32 => WitTensorType::Fp32,
            TensorType::Fp64 => WitTensorType::Fp64,
            TensorType::Bf16 => WitTensorType::Bf16,
            TensorType::U8 => WitTensorType::U8,
            TensorType::I32 => WitTensorType::I32,
            TensorType::I64 => WitTensorType::I64,
            other => return Err(NotWasiNn(other)),
        })
    }
}
