//! Tensors into ORT values and back: every numeric element type, bool and
//! strings (V2 BYTES, UTF-8 as ONNX requires), and scikit-learn's ZipMap
//! outputs (a sequence of maps) as a tensor.

use half::{bf16, f16};
use ort::value::{DynValue, Tensor as OrtTensor, TensorElementType, ValueType};

use crate::backend::{BackendError, TensorInfo};
use crate::tensor::{Tensor, TensorType, bytes_elements, push_bytes_element};

fn element_type(t: TensorElementType) -> Option<TensorType> {
    Some(match t {
        TensorElementType::Float16 => TensorType::Fp16,
        TensorElementType::Float32 => TensorType::Fp32,
        TensorElementType::Float64 => TensorType::Fp64,
        TensorElementType::Bfloat16 => TensorType::Bf16,
        TensorElementType::Uint8 => TensorType::U8,
        TensorElementType::Int32 => TensorType::I32,
        TensorElementType::Int64 => TensorType::I64,
        TensorElementType::Bool => TensorType::Bool,
        TensorElementType::Int8 => TensorType::I8,
        TensorElementType::Int16 => TensorType::I16,
        TensorElementType::Uint16 => TensorType::U16,
        TensorElementType::Uint32 => TensorType::U32,
        TensorElementType::Uint64 => TensorType::U64,
        TensorElementType::String => TensorType::Bytes,
        _ => return None,
    })
}

pub(super) fn describe(name: &str, dtype: &ValueType) -> TensorInfo {
    let (ty, shape) = match dtype {
        ValueType::Tensor { ty, shape, .. } => (element_type(*ty), shape.iter().copied().collect()),
        // scikit-learn's ZipMap: a sequence of maps, surfaced as [N, classes].
        ValueType::Sequence(inner) if matches!(**inner, ValueType::Map { .. }) => {
            (Some(TensorType::Fp32), vec![-1, -1])
        }
        _ => (None, Vec::new()),
    };
    TensorInfo {
        name: name.to_string(),
        ty,
        shape,
        native_type: dtype.to_string(),
    }
}

/// Reads little-endian elements of `N` bytes.
fn elements<const N: usize, T>(data: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
        .collect()
}

/// BYTES elements as the UTF-8 strings an ORT string tensor holds; an
/// element with invalid UTF-8 or a NUL byte is refused by name and index.
fn strings(name: &str, t: &Tensor) -> Result<(Vec<i64>, Vec<String>), BackendError> {
    let bad = |i: usize, why: &str| {
        BackendError::InvalidInput(format!(
            "input '{name}': BYTES element {i} {why}; ONNX Runtime strings are UTF-8 text"
        ))
    };
    let elements = bytes_elements(&t.data).ok_or_else(|| bad(0, "is torn"))?;
    let text = elements
        .into_iter()
        .enumerate()
        .map(|(i, e)| match std::str::from_utf8(e) {
            Ok(s) if !s.contains('\0') => Ok(s.to_owned()),
            Ok(_) => Err(bad(i, "holds a NUL byte")),
            Err(_) => Err(bad(i, "is not UTF-8")),
        })
        .collect::<Result<_, _>>()?;
    Ok((t.shape.iter().map(|&d| i64::from(d)).collect(), text))
}

/// The tensor as an ORT value, for the input called `name`.
pub(super) fn to_value(name: &str, t: Tensor) -> Result<DynValue, BackendError> {
    let shape: Vec<i64> = t.shape.iter().map(|&d| i64::from(d)).collect();
    let d = &t.data;
    let made =
        match t.ty {
            TensorType::Fp16 => OrtTensor::from_array((shape, elements(d, f16::from_le_bytes)))
                .map(|v| v.into_dyn()),
            TensorType::Fp32 => OrtTensor::from_array((shape, elements(d, f32::from_le_bytes)))
                .map(|v| v.into_dyn()),
            TensorType::Fp64 => OrtTensor::from_array((shape, elements(d, f64::from_le_bytes)))
                .map(|v| v.into_dyn()),
            TensorType::Bf16 => OrtTensor::from_array((shape, elements(d, bf16::from_le_bytes)))
                .map(|v| v.into_dyn()),
            TensorType::U8 => OrtTensor::from_array((shape, t.data.clone())).map(|v| v.into_dyn()),
            TensorType::I32 => OrtTensor::from_array((shape, elements(d, i32::from_le_bytes)))
                .map(|v| v.into_dyn()),
            TensorType::I64 => OrtTensor::from_array((shape, elements(d, i64::from_le_bytes)))
                .map(|v| v.into_dyn()),
            TensorType::Bool => {
                OrtTensor::from_array((shape, d.iter().map(|&b| b != 0).collect::<Vec<bool>>()))
                    .map(|v| v.into_dyn())
            }
            TensorType::I8 => {
                OrtTensor::from_array((shape, elements(d, i8::from_le_bytes))).map(|v| v.into_dyn())
            }
            TensorType::I16 => OrtTensor::from_array((shape, elements(d, i16::from_le_bytes)))
                .map(|v| v.into_dyn()),
            TensorType::U16 => OrtTensor::from_array((shape, elements(d, u16::from_le_bytes)))
                .map(|v| v.into_dyn()),
            TensorType::U32 => OrtTensor::from_array((shape, elements(d, u32::from_le_bytes)))
                .map(|v| v.into_dyn()),
            TensorType::U64 => OrtTensor::from_array((shape, elements(d, u64::from_le_bytes)))
                .map(|v| v.into_dyn()),
            TensorType::Bytes => {
                let (shape, text) = strings(name, &t)?;
                OrtTensor::from_string_array((shape, text.as_slice())).map(|v| v.into_dyn())
            }
        };
    made.map_err(|e| BackendError::InvalidInput(e.to_string()))
}

fn shape_u32(name: &str, shape: &[i64]) -> Result<Vec<u32>, BackendError> {
    shape
        .iter()
        .map(|&d| {
            u32::try_from(d).map_err(|_| {
                BackendError::Unsupported(format!("output '{name}' has dimension {d}"))
            })
        })
        .collect()
}

macro_rules! extract {
    ($name:expr, $value:expr, $elem:ty, $ty:expr) => {{
        let (shape, data) = $value
            .try_extract_tensor::<$elem>()
            .map_err(|e| BackendError::Runtime(e.to_string()))?;
        let mut bytes = Vec::with_capacity(std::mem::size_of_val(data));
        for x in data {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        Ok(Tensor {
            shape: shape_u32($name, shape)?,
            ty: $ty,
            data: bytes,
        })
    }};
}

pub(super) fn from_value(name: &str, value: &DynValue) -> Result<Tensor, BackendError> {
    match value.dtype() {
        ValueType::Tensor { ty, .. } => match ty {
            TensorElementType::Float16 => extract!(name, value, f16, TensorType::Fp16),
            TensorElementType::Float32 => extract!(name, value, f32, TensorType::Fp32),
            TensorElementType::Float64 => extract!(name, value, f64, TensorType::Fp64),
            TensorElementType::Bfloat16 => extract!(name, value, bf16, TensorType::Bf16),
            TensorElementType::Uint8 => extract!(name, value, u8, TensorType::U8),
            TensorElementType::Int32 => extract!(name, value, i32, TensorType::I32),
            TensorElementType::Int64 => extract!(name, value, i64, TensorType::I64),
            TensorElementType::Int8 => extract!(name, value, i8, TensorType::I8),
            TensorElementType::Int16 => extract!(name, value, i16, TensorType::I16),
            TensorElementType::Uint16 => extract!(name, value, u16, TensorType::U16),
            TensorElementType::Uint32 => extract!(name, value, u32, TensorType::U32),
            TensorElementType::Uint64 => extract!(name, value, u64, TensorType::U64),
            TensorElementType::Bool => {
                let (shape, data) = value
                    .try_extract_tensor::<bool>()
                    .map_err(|e| BackendError::Runtime(e.to_string()))?;
                Ok(Tensor {
                    shape: shape_u32(name, shape)?,
                    ty: TensorType::Bool,
                    data: data.iter().map(|&b| u8::from(b)).collect(),
                })
            }
            TensorElementType::String => {
                let (shape, text) = value
                    .try_extract_strings()
                    .map_err(|e| BackendError::Runtime(e.to_string()))?;
                let mut data = Vec::with_capacity(text.iter().map(|s| s.len() + 4).sum());
                for s in &text {
                    push_bytes_element(&mut data, s.as_bytes()).ok_or_else(|| {
                        BackendError::Runtime(format!("output '{name}': a string of 4 GiB"))
                    })?;
                }
                Ok(Tensor {
                    shape: shape_u32(name, shape)?,
                    ty: TensorType::Bytes,
                    data,
                })
            }
            other => Err(BackendError::Unsupported(format!(
                "output '{name}' is a {other:?} tensor, which sandscore does not carry"
            ))),
        },
        ValueType::Sequence(inner) if matches!(**inner, ValueType::Map { .. }) => {
            zipmap_to_tensor(name, value)
        }
        other => Err(BackendError::Unsupported(format!(
            "output '{name}' is {other}, which wasi-nn cannot carry"
        ))),
    }
}

/// scikit-learn's ZipMap output (one `map<label, float>` per row) as an FP32
/// tensor [rows, classes], columns in ascending label order.
fn zipmap_to_tensor(name: &str, value: &DynValue) -> Result<Tensor, BackendError> {
    let err = |e: ort::Error| BackendError::Runtime(format!("output '{name}': {e}"));
    let rows = value
        .try_extract_sequence::<ort::value::DynMapValueType>()
        .map_err(err)?;
    let mut columns = 0usize;
    let mut data = Vec::new();
    for row in &rows {
        let mut probs: Vec<(i64, f32)> = match row.try_extract_key_values::<i64, f32>() {
            Ok(kv) => kv,
            Err(_) => {
                let mut kv = row.try_extract_key_values::<String, f32>().map_err(err)?;
                kv.sort_by(|a, b| a.0.cmp(&b.0));
                kv.into_iter()
                    .enumerate()
                    .map(|(i, (_, v))| (i as i64, v))
                    .collect()
            }
        };
        probs.sort_by_key(|(k, _)| *k);
        if columns != 0 && columns != probs.len() {
            return Err(BackendError::Runtime(format!(
                "output '{name}': rows have different class counts"
            )));
        }
        columns = probs.len();
        data.extend(probs.into_iter().flat_map(|(_, p)| p.to_le_bytes()));
    }
    Ok(Tensor {
        shape: vec![rows.len() as u32, columns as u32],
        ty: TensorType::Fp32,
        data,
    })
}
