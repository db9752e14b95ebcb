//! gRPC tensors to and from the service's: raw or typed input contents in,
//! raw output contents out (BYTES raw as Triton frames them: each element's
//! 4-byte little-endian length, then its bytes).

use tonic::Status;

use crate::codec::v2::{MAX_INPUTS, MAX_OUTPUTS, input_layout};
use crate::proto::{ModelInferRequest, model_infer_response};
use crate::tensor::{NamedTensor, Tensor, TensorType, push_bytes_element};

fn bad(message: String) -> Status {
    Status::invalid_argument(message)
}

/// The request's inputs: `raw_input_contents` (one per input, in order)
/// when there are any, else each input's typed contents.
pub fn inputs(r: &mut ModelInferRequest) -> Result<Vec<NamedTensor>, Status> {
    if r.inputs.is_empty() {
        return Err(bad("the request has no inputs".into()));
    }
    if r.inputs.len() > MAX_INPUTS || r.outputs.len() > MAX_OUTPUTS {
        return Err(bad(format!(
            "the request has {} inputs and {} outputs; at most {MAX_INPUTS} of each are accepted",
            r.inputs.len(),
            r.outputs.len()
        )));
    }
    if !r.raw_input_contents.is_empty() && r.raw_input_contents.len() != r.inputs.len() {
        return Err(bad(format!(
            "{} raw_input_contents for {} inputs",
            r.raw_input_contents.len(),
            r.inputs.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    r.inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let name = crate::escape::capped(&input.name, 64);
            if !seen.insert(input.name.as_str()) {
                return Err(bad(format!("input '{name}' appears more than once")));
            }
            let (ty, shape, _) = input_layout(&input.name, &input.datatype, &input.shape)
                .map_err(|e| bad(e.to_string()))?;
            let data = match r.raw_input_contents.get_mut(i) {
                // Moved, not copied: the request's bytes become the tensor's.
                Some(raw) => std::mem::take(raw),
                None => typed(input.contents.as_ref(), ty)
                    .map_err(|e| bad(format!("input '{name}': {e}")))?,
            };
            let tensor =
                Tensor::new(shape, ty, data).map_err(|e| bad(format!("input '{name}': {e}")))?;
            Ok(NamedTensor {
                name: input.name.clone(),
                tensor,
            })
        })
        .collect()
}

/// Typed contents as little-endian bytes of `ty`.
fn typed(
    contents: Option<&crate::proto::InferTensorContents>,
    ty: TensorType,
) -> Result<Vec<u8>, String> {
    let Some(c) = contents else {
        return Err("neither raw_input_contents nor contents".into());
    };
    // Each element narrowed to `ty`'s width, refused where it does not fit.
    fn narrow<S: Copy + std::fmt::Display, T: TryFrom<S>, const N: usize>(
        values: &[S],
        ty: TensorType,
        bytes: fn(T) -> [u8; N],
    ) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(values.len() * N);
        for &v in values {
            let x = T::try_from(v).map_err(|_| format!("{v} is not a valid {ty}"))?;
            out.extend(bytes(x));
        }
        Ok(out)
    }
    Ok(match ty {
        TensorType::Fp32 => narrow(&c.fp32_contents, ty, f32::to_le_bytes)?,
        TensorType::Fp64 => narrow(&c.fp64_contents, ty, f64::to_le_bytes)?,
        TensorType::I32 => narrow(&c.int_contents, ty, i32::to_le_bytes)?,
        TensorType::I64 => narrow(&c.int64_contents, ty, i64::to_le_bytes)?,
        TensorType::I8 => narrow(&c.int_contents, ty, i8::to_le_bytes)?,
        TensorType::I16 => narrow(&c.int_contents, ty, i16::to_le_bytes)?,
        TensorType::U8 => narrow(&c.uint_contents, ty, u8::to_le_bytes)?,
        TensorType::U16 => narrow(&c.uint_contents, ty, u16::to_le_bytes)?,
        TensorType::U32 => narrow(&c.uint_contents, ty, u32::to_le_bytes)?,
        TensorType::U64 => narrow(&c.uint64_contents, ty, u64::to_le_bytes)?,
        TensorType::Bool => c.bool_contents.iter().map(|&b| u8::from(b)).collect(),
        TensorType::Bytes => {
            let mut out = Vec::with_capacity(c.bytes_contents.iter().map(|b| b.len() + 4).sum());
            for b in &c.bytes_contents {
                push_bytes_element(&mut out, b).ok_or("an element of 4 GiB or more")?;
            }
            out
        }
        TensorType::Fp16 | TensorType::Bf16 => {
            return Err(format!(
                "{ty} has no typed contents; send raw_input_contents"
            ));
        }
    })
}

/// The outputs `requested` (all when empty, in the model's order) as
/// metadata and raw contents, at most `max_bytes` of them.
pub fn outputs(
    outputs: Vec<NamedTensor>,
    requested: &[&str],
    max_bytes: usize,
) -> Result<(Vec<model_infer_response::InferOutputTensor>, Vec<Vec<u8>>), Status> {
    let chosen: Vec<NamedTensor> = if requested.is_empty() {
        outputs
    } else {
        let have: Vec<String> = outputs.iter().map(|o| o.name.clone()).collect();
        let mut outputs = outputs;
        requested
            .iter()
            .map(|name| {
                let at = outputs
                    .iter()
                    .position(|o| o.name == *name)
                    .ok_or_else(|| {
                        bad(format!(
                            "requested output '{}' does not exist; outputs are {have:?}",
                            crate::escape::capped(name, 64)
                        ))
                    })?;
                Ok(outputs.swap_remove(at))
            })
            .collect::<Result<_, Status>>()?
    };
    let total: usize = chosen.iter().map(|o| o.tensor.data.len()).sum();
    if total > max_bytes {
        return Err(Status::resource_exhausted(format!(
            "the response would be larger than the {max_bytes}-byte limit (--max-response)"
        )));
    }
    Ok(chosen
        .into_iter()
        .map(|o| {
            let meta = model_infer_response::InferOutputTensor {
                name: o.name,
                datatype: o.tensor.ty.v2_name().into(),
                shape: o.tensor.shape.iter().map(|&d| i64::from(d)).collect(),
                ..Default::default()
            };
            (meta, o.tensor.data)
        })
        .unzip())
}
