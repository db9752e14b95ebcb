//! Host bindings of the `sandscore:scoring/scorer` world (`spec/wit`).
//!
//! wasi-nn is implemented here rather than through `wasmtime-wasi-nn` so that
//! backends, limits and error mapping are ours (see `backend::onnxruntime`
//! for what the upstream ONNX backend lacks); its resources are mapped onto
//! the types in [`crate::nn`].

wasmtime::component::bindgen!({
    world: "scorer",
    path: "../spec/wit",
    with: {
        "wasi:nn/graph.graph": crate::nn::GraphRes,
        "wasi:nn/tensor.tensor": crate::nn::TensorRes,
        "wasi:nn/inference.graph-execution-context": crate::nn::ContextRes,
        "wasi:nn/errors.error": crate::nn::NnError,
    },
    imports: { default: trappable },
});

pub use self::sandscore::scoring::types::{
    Error as GuestError, ErrorCode as GuestErrorCode, NamedTensor as WitTensor,
    Request as WitRequest, Response as WitResponse,
};
pub use self::wasi::nn::tensor::TensorType as WitTensorType;

use crate::tensor::TensorType;

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

impl From<TensorType> for WitTensorType {
    fn from(t: TensorType) -> Self {
        match t {
            TensorType::Fp16 => WitTensorType::Fp16,
            TensorType::Fp32 => WitTensorType::Fp32,
            TensorType::Fp64 => WitTensorType::Fp64,
            TensorType::Bf16 => WitTensorType::Bf16,
            TensorType::U8 => WitTensorType::U8,
            TensorType::I32 => WitTensorType::I32,
            TensorType::I64 => WitTensorType::I64,
        }
    }
}
