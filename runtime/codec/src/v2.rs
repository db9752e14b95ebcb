//! Open Inference Protocol V2 (KServe / Triton) JSON tensors.
//!
//! `data` may be flat or nested (row-major either way); its element count
//! must equal the product of `shape`, and each element must fit `datatype`.
//! Datatypes are the ones wasi-nn carries: FP16, FP32, FP64, BF16, UINT8,
//! INT32, INT64.

use half::{bf16, f16};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::tensor::{NamedTensor, Tensor, TensorType, element_count};

/// Why an inference request body was rejected (always a client error).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("request body is not valid inference JSON: {0}")]
    Json(String),
    #[error(
        "input '{name}': datatype '{datatype}' is not supported; use one of FP16, FP32, FP64, BF16, UINT8, INT32, INT64"
    )]
    Datatype { name: String, datatype: String },
    #[error("input '{name}': shape {shape:?} is invalid (dimensions must be 0..=4294967295)")]
    Shape { name: String, shape: Vec<i64> },
    #[error("input '{name}': shape {shape:?} holds {expected} elements but data has {actual}")]
    Count {
        name: String,
        shape: Vec<i64>,
        expected: usize,
        actual: usize,
    },
    #[error("input '{name}': element {index} ({value}) is not a valid {datatype}")]
    Element {
        name: String,
        index: usize,
        value: String,
        datatype: TensorType,
    },
    #[error("input '{name}' appears more than once")]
    DuplicateInput { name: String },
    #[error("the request has no inputs")]
    NoInputs,
}

#[derive(Deserialize)]
struct RequestInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: Value,
}

#[derive(Deserialize)]
struct RequestOutput {
    name: String,
}

#[derive(Deserialize)]
struct InferRequestJson {
    id: Option<String>,
    inputs: Vec<RequestInput>,
    outputs: Option<Vec<RequestOutput>>,
}

/// A decoded inference request.
#[derive(Debug, PartialEq)]
pub struct InferRequest {
    /// The client's request id, echoed in the response.
    pub id: Option<String>,
    pub inputs: Vec<NamedTensor>,
    /// Output names the client asked for; `None` means all.
    pub outputs: Option<Vec<String>>,
}

/// Decodes a V2 inference request body.
pub fn decode_request(body: &[u8]) -> Result<InferRequest, DecodeError> {
    let req: InferRequestJson =
        serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
    if req.inputs.is_empty() {
        return Err(DecodeError::NoInputs);
    }
    let mut inputs: Vec<NamedTensor> = Vec::with_capacity(req.inputs.len());
    for input in req.inputs {
        if inputs.iter().any(|i| i.name == input.name) {
            return Err(DecodeError::DuplicateInput { name: input.name });
        }
        let tensor = decode_tensor(&input)?;
        inputs.push(NamedTensor {
            name: input.name,
            tensor,
        });
    }
    Ok(InferRequest {
        id: req.id,
        inputs,
        outputs: req.outputs.map(|o| o.into_iter().map(|o| o.name).collect()),
    })
}

fn flatten<'v>(value: &'v Value, out: &mut Vec<&'v Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        other => out.push(other),
    }
}

fn decode_tensor(input: &RequestInput) -> Result<Tensor, DecodeError> {
    let name = input.name.clone();
    let ty = TensorType::from_v2_name(&input.datatype).ok_or_else(|| DecodeError::Datatype {
        name: name.clone(),
        datatype: input.datatype.clone(),
    })?;
    let shape: Vec<u32> = input
        .shape
        .iter()
        .map(|&d| u32::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| DecodeError::Shape {
            name: name.clone(),
            shape: input.shape.clone(),
        })?;
    let expected = element_count(&shape)
        .filter(|n| n.checked_mul(ty.size()).is_some())
        .ok_or_else(|| DecodeError::Shape {
            name: name.clone(),
            shape: input.shape.clone(),
        })?;
    let mut flat = Vec::new();
    flatten(&input.data, &mut flat);
    if flat.len() != expected {
        return Err(DecodeError::Count {
            name,
            shape: input.shape.clone(),
            expected,
            actual: flat.len(),
        });
    }
    let mut data = Vec::with_capacity(expected * ty.size());
    // Floats: null is NaN (the encoder writes NaN as null; XGBoost reads NaN
    // as a missing value), as MLServer's NumPy decoding does.
    let float = |v: &Value| v.as_f64().or_else(|| v.is_null().then_some(f64::NAN));
    for (index, v) in flat.iter().enumerate() {
        let bad = || DecodeError::Element {
            name: name.clone(),
            index,
            value: truncate(v.to_string()),
            datatype: ty,
        };
        match ty {
            TensorType::Fp16 => data.extend(f16::from_f64(float(v).ok_or_else(bad)?).to_le_bytes()),
            TensorType::Bf16 => {
                data.extend(bf16::from_f64(float(v).ok_or_else(bad)?).to_le_bytes())
            }
            TensorType::Fp32 => data.extend((float(v).ok_or_else(bad)? as f32).to_le_bytes()),
            TensorType::Fp64 => data.extend(float(v).ok_or_else(bad)?.to_le_bytes()),
            TensorType::U8 => {
                let x = v
                    .as_u64()
                    .and_then(|x| u8::try_from(x).ok())
                    .ok_or_else(bad)?;
                data.push(x);
            }
            TensorType::I32 => {
                let x = v
                    .as_i64()
                    .and_then(|x| i32::try_from(x).ok())
                    .ok_or_else(bad)?;
                data.extend(x.to_le_bytes());
            }
            TensorType::I64 => data.extend(v.as_i64().ok_or_else(bad)?.to_le_bytes()),
        }
    }
    Ok(Tensor { shape, ty, data })
}

fn truncate(mut s: String) -> String {
    if s.len() > 40 {
        let mut cut = 40;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// The tensor's elements as a flat JSON array (NaN and infinities as null).
pub fn tensor_data(t: &Tensor) -> Value {
    let n = t.ty.size();
    let items = t.data.chunks_exact(n).map(|c| match t.ty {
        TensorType::Fp16 => number(f16::from_le_bytes([c[0], c[1]]).to_f64()),
        TensorType::Bf16 => number(bf16::from_le_bytes([c[0], c[1]]).to_f64()),
        TensorType::Fp32 => number(f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        TensorType::Fp64 => number(f64::from_le_bytes(c.try_into().unwrap_or_default())),
        TensorType::U8 => Value::from(c[0]),
        TensorType::I32 => Value::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        TensorType::I64 => Value::from(i64::from_le_bytes(c.try_into().unwrap_or_default())),
    });
    Value::Array(items.collect())
}

/// Encodes an inference response. `requested` limits and orders outputs.
pub fn encode_response(
    model: &str,
    version: Option<&str>,
    id: Option<&str>,
    outputs: Vec<NamedTensor>,
    requested: Option<&[String]>,
) -> Result<Value, String> {
    let chosen: Vec<&NamedTensor> = match requested {
        None => outputs.iter().collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                outputs.iter().find(|o| &o.name == n).ok_or_else(|| {
                    let have: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
                    format!("requested output '{n}' does not exist; outputs are {have:?}")
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let mut body = Map::new();
    body.insert("model_name".into(), json!(model));
    if let Some(v) = version {
        body.insert("model_version".into(), json!(v));
    }
    if let Some(id) = id {
        body.insert("id".into(), json!(id));
    }
    let outs: Vec<Value> = chosen
        .into_iter()
        .map(|o| {
            json!({
                "name": o.name,
                "shape": o.tensor.shape,
                "datatype": o.tensor.ty.v2_name(),
                "data": tensor_data(&o.tensor),
            })
        })
        .collect();
    body.insert("outputs".into(), Value::Array(outs));
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(body: Value) -> Result<Tensor, DecodeError> {
        decode_request(body.to_string().as_bytes()).map(|mut r| r.inputs.remove(0).tensor)
    }

    #[test]
    fn nested_and_flat_data_decode_the_same() {
        let flat = one(json!({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2.5, 3, 4]}]})).unwrap();
        let nested = one(json!({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2.5], [3, 4]]}]})).unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.data[4..8], 2.5f32.to_le_bytes());
    }

    #[test]
    fn null_is_nan_for_floats_only() {
        let t = one(
            json!({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, null]}]}),
        )
        .unwrap();
        assert!(f32::from_le_bytes(t.data[4..8].try_into().unwrap()).is_nan());
        assert_eq!(tensor_data(&t), json!([1.0, null]));
        assert!(matches!(
            one(
                json!({"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [null]}]})
            ),
            Err(DecodeError::Element { .. })
        ));
    }

    #[test]
    fn every_type_round_trips() {
        for ty in TensorType::ALL {
            let body = json!({"inputs": [{"name": "x", "shape": [3], "datatype": ty.v2_name(), "data": [0, 1, 2]}]});
            let t = one(body).unwrap();
            assert_eq!(t.ty, ty);
            assert_eq!(
                tensor_data(&t),
                json!([0.0, 1.0, 2.0])
                    .as_array()
                    .map(|a| {
                        if matches!(ty, TensorType::U8 | TensorType::I32 | TensorType::I64) {
                            json!([0, 1, 2])
                        } else {
                            Value::Array(a.clone())
                        }
                    })
                    .unwrap()
            );
        }
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        let err = |v: Value| one(v).unwrap_err();
        assert!(matches!(
            err(
                json!({"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2]}]})
            ),
            DecodeError::Count {
                expected: 3,
                actual: 2,
                ..
            }
        ));
        assert!(matches!(
            err(
                json!({"inputs": [{"name": "x", "shape": [1], "datatype": "BOOL", "data": [true]}]})
            ),
            DecodeError::Datatype { .. }
        ));
        assert!(matches!(
            err(json!({"inputs": [{"name": "x", "shape": [-1], "datatype": "FP32", "data": []}]})),
            DecodeError::Shape { .. }
        ));
        assert!(matches!(
            err(
                json!({"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1.5]}]})
            ),
            DecodeError::Element { index: 0, .. }
        ));
        assert!(matches!(
            err(
                json!({"inputs": [{"name": "x", "shape": [1], "datatype": "UINT8", "data": [256]}]})
            ),
            DecodeError::Element { .. }
        ));
        assert!(matches!(
            err(
                json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": ["a"]}]})
            ),
            DecodeError::Element { .. }
        ));
        assert!(matches!(err(json!({"inputs": []})), DecodeError::NoInputs));
        assert!(matches!(
            decode_request(b"{\"inputs\": [").unwrap_err(),
            DecodeError::Json(_)
        ));
        assert!(matches!(
            err(
                json!({"inputs": [{"name": "x", "shape": [4294967295u64, 4294967295u64, 4294967295u64], "datatype": "FP64", "data": []}]})
            ),
            DecodeError::Shape { .. }
        ));
    }

    #[test]
    fn requested_outputs_filter_and_order() {
        let t = |v: i64| NamedTensor {
            name: format!("o{v}"),
            tensor: Tensor::new(vec![1], TensorType::I64, v.to_le_bytes().to_vec()).unwrap(),
        };
        let body = encode_response(
            "m",
            Some("1"),
            Some("r"),
            vec![t(1), t(2)],
            Some(&["o2".to_string()]),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"model_name": "m", "model_version": "1", "id": "r", "outputs": [{"name": "o2", "shape": [1], "datatype": "INT64", "data": [2]}]})
        );
        assert!(encode_response("m", None, None, vec![t(1)], Some(&["nope".to_string()])).is_err());
    }
}
