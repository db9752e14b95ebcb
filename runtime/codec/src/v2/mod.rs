//! Open Inference Protocol V2 (KServe / Triton) tensors: JSON, and Triton's
//! binary tensor data extension (a JSON header of
//! `Inference-Header-Content-Length` bytes, then each binary input's raw
//! little-endian bytes in input order), which tritonclient and kserve's
//! REST client send by default.
//!
//! JSON `data` may be flat or nested (row-major either way); its element
//! count must equal the product of `shape`, and each element must fit
//! `datatype`. Binary data must be exactly the shape's size in bytes.
//! Datatypes: every V2 type, BOOL and BYTES included (what a module can see
//! is wasi-nn's FP16, FP32, FP64, BF16, UINT8, INT32, INT64; the service
//! says so for the rest). BYTES elements are JSON strings, or in binary
//! data each a 4-byte little-endian length and its bytes.

use std::collections::HashSet;

use half::{bf16, f16};
use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::tensor::{
    MAX_BYTES_ELEMENTS, NamedTensor, Tensor, TensorType, element_count, push_bytes_element,
};

/// Why an inference request body was rejected (always a client error).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// The body is not well-formed V2 request JSON; holds the parser's message.
    #[error("request body is not valid inference JSON: {0}")]
    Json(String),
    /// An input names a datatype wasi-nn cannot carry.
    #[error(
        "input '{name}': datatype '{datatype}' is not supported; use one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, BF16, FP32, FP64, BYTES"
    )]
    Datatype {
        /// Name of the input (truncated if long).
        name: String,
        /// The datatype as the client sent it (truncated if long).
        datatype: String,
    },
    /// An input's shape has a dimension outside `0..=u32::MAX`, or holds too
    /// many elements to address.
    #[error("input '{name}': shape {shape:?} is invalid (dimensions must be 0..=4294967295)")]
    Shape {
        /// Name of the input (truncated if long).
        name: String,
        /// The shape as the client sent it (at most its first 16 dimensions).
        shape: Vec<i64>,
    },
    /// An input's data has a different number of elements than its shape holds.
    #[error("input '{name}': shape {shape:?} holds {expected} elements but data has {actual}")]
    Count {
        /// Name of the input (truncated if long).
        name: String,
        /// The shape as the client sent it.
        shape: Vec<i64>,
        /// Elements the shape holds (the product of its dimensions).
        expected: usize,
        /// Elements found in `data`.
        actual: usize,
    },
    /// An element of an input's data does not fit its datatype.
    #[error("input '{name}': element {index} ({value}) is not a valid {datatype}")]
    Element {
        /// Name of the input (truncated if long).
        name: String,
        /// Row-major (flat) index of the first offending element.
        index: usize,
        /// The offending element as text (truncated if long).
        value: String,
        /// The datatype the element had to fit.
        datatype: TensorType,
    },
    /// Two inputs share a name.
    #[error("input '{name}' appears more than once")]
    DuplicateInput {
        /// The repeated input name (truncated if long).
        name: String,
    },
    /// The same output is requested twice.
    #[error("output '{name}' is requested more than once")]
    DuplicateOutput {
        /// The repeated output name (truncated if long).
        name: String,
    },
    /// The request carries more inputs or outputs than are accepted.
    #[error("the request has {count} {what}; at most {max} are accepted")]
    TooMany {
        /// What there are too many of: `"inputs"` or `"outputs"`.
        what: &'static str,
        /// How many the request has.
        count: usize,
        /// The most accepted ([`MAX_INPUTS`] or [`MAX_OUTPUTS`]).
        max: usize,
    },
    /// The request's `inputs` list is empty.
    #[error("the request has no inputs")]
    NoInputs,
    /// The binary tensor data does not fit the JSON header's account of it.
    #[error("{0}")]
    Binary(String),
}

/// Most inputs one request may carry.
pub const MAX_INPUTS: usize = 1024;
/// Most outputs one request may ask for.
pub const MAX_OUTPUTS: usize = 1024;

#[derive(Deserialize)]
struct RequestInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    /// Kept as text until the datatype and shape are known, then decoded
    /// straight into the tensor's bytes: no JSON value per element. Absent
    /// when the tensor comes as binary data.
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    parameters: Option<InputParameters>,
}

#[derive(Deserialize)]
struct InputParameters {
    binary_data_size: Option<u64>,
}

#[derive(Deserialize)]
struct RequestOutput {
    name: String,
    #[serde(default)]
    parameters: Option<OutputParameters>,
}

#[derive(Deserialize)]
struct OutputParameters {
    binary_data: Option<bool>,
}

#[derive(Deserialize)]
struct RequestParameters {
    binary_data_output: Option<bool>,
}

#[derive(Deserialize)]
struct InferRequestJson {
    id: Option<String>,
    inputs: Vec<RequestInput>,
    outputs: Option<Vec<RequestOutput>>,
    #[serde(default)]
    parameters: Option<RequestParameters>,
}

/// An output the client asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestedOutput {
    /// Its name.
    pub name: String,
    /// Whether it should come as raw bytes (`parameters.binary_data`);
    /// `None` follows the request's `binary_data_output`.
    pub binary: Option<bool>,
}

/// A decoded inference request.
#[derive(Debug, PartialEq)]
pub struct InferRequest {
    /// The client's request id, echoed in the response.
    pub id: Option<String>,
    /// The decoded input tensors, in request order.
    pub inputs: Vec<NamedTensor>,
    /// Outputs the client asked for; `None` means all.
    pub outputs: Option<Vec<RequestedOutput>>,
    /// Whether outputs come as raw bytes unless they say otherwise
    /// (`parameters.binary_data_output`).
    pub binary_outputs: bool,
}

/// Decodes a V2 inference request body of JSON alone, in time linear in
/// its length.
pub fn decode_request(body: &[u8]) -> Result<InferRequest, DecodeError> {
    decode_request_with(body, None)
}

/// Decodes a V2 inference request body whose first `header_len` bytes are
/// JSON (the `Inference-Header-Content-Length` header) and the rest binary
/// tensor data; all of it JSON when `header_len` is `None`.
pub fn decode_request_with(
    body: &[u8],
    header_len: Option<usize>,
) -> Result<InferRequest, DecodeError> {
    let (json, mut binary) = match header_len {
        None => (body, None),
        Some(n) if n <= body.len() => (&body[..n], Some(&body[n..])),
        Some(n) => {
            return Err(DecodeError::Binary(format!(
                "Inference-Header-Content-Length is {n} but the body has {} bytes",
                body.len()
            )));
        }
    };
    let req: InferRequestJson =
        serde_json::from_slice(json).map_err(|e| DecodeError::Json(e.to_string()))?;
    if req.inputs.is_empty() {
        return Err(DecodeError::NoInputs);
    }
    if req.inputs.len() > MAX_INPUTS {
        return Err(DecodeError::TooMany {
            what: "inputs",
            count: req.inputs.len(),
            max: MAX_INPUTS,
        });
    }
    let mut seen = HashSet::with_capacity(req.inputs.len());
    for input in &req.inputs {
        if !seen.insert(input.name.as_str()) {
            return Err(DecodeError::DuplicateInput {
                name: truncate(input.name.clone()),
            });
        }
    }
    let outputs = match req.outputs {
        None => None,
        Some(o) if o.len() > MAX_OUTPUTS => {
            return Err(DecodeError::TooMany {
                what: "requested outputs",
                count: o.len(),
                max: MAX_OUTPUTS,
            });
        }
        Some(o) => {
            let mut seen = HashSet::with_capacity(o.len());
            if let Some(dup) = o.iter().find(|o| !seen.insert(o.name.as_str())) {
                return Err(DecodeError::DuplicateOutput {
                    name: truncate(dup.name.clone()),
                });
            }
            Some(
                o.into_iter()
                    .map(|o| RequestedOutput {
                        binary: o.parameters.and_then(|p| p.binary_data),
                        name: o.name,
                    })
                    .collect(),
            )
        }
    };
    let mut inputs = Vec::with_capacity(req.inputs.len());
    for input in req.inputs {
        let size = input.parameters.as_ref().and_then(|p| p.binary_data_size);
        let tensor = match (size, &input.data, binary.as_mut()) {
            (Some(_), Some(_), _) => {
                return Err(DecodeError::Binary(format!(
                    "input '{}' has both data and binary_data_size",
                    truncate(input.name)
                )));
            }
            (Some(size), None, Some(rest)) => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size > rest.len() {
                    return Err(DecodeError::Binary(format!(
                        "input '{}' has binary_data_size {size} but only {} bytes of binary data are left",
                        truncate(input.name),
                        rest.len()
                    )));
                }
                let (mine, after) = rest.split_at(size);
                *rest = after;
                binary_tensor(&input, mine)?
            }
            (Some(_), None, None) => {
                return Err(DecodeError::Binary(format!(
                    "input '{}' has binary_data_size, but the request has no Inference-Header-Content-Length header",
                    truncate(input.name)
                )));
            }
            (None, Some(data), _) => decode_tensor(&input, data)?,
            (None, None, _) => {
                return Err(DecodeError::Json(format!(
                    "input '{}' has neither data nor binary_data_size",
                    truncate(input.name)
                )));
            }
        };
        inputs.push(NamedTensor {
            name: input.name,
            tensor,
        });
    }
    if let Some(rest) = binary.filter(|r| !r.is_empty()) {
        return Err(DecodeError::Binary(format!(
            "{} bytes of binary data follow the inputs' binary_data_size",
            rest.len()
        )));
    }
    Ok(InferRequest {
        id: req.id,
        inputs,
        outputs,
        binary_outputs: req
            .parameters
            .and_then(|p| p.binary_data_output)
            .unwrap_or(false),
    })
}

fn layout(input: &RequestInput) -> Result<(TensorType, Vec<u32>, usize), DecodeError> {
    input_layout(&input.name, &input.datatype, &input.shape)
}

/// An input's datatype and shape, checked as every front end needs them
/// (V2 JSON, the binary extension, gRPC): the type, the dimensions, and the
/// element count.
pub fn input_layout(
    name: &str,
    datatype: &str,
    dims: &[i64],
) -> Result<(TensorType, Vec<u32>, usize), DecodeError> {
    let name = truncate(name.to_string());
    let ty = TensorType::from_v2_name(datatype).ok_or_else(|| DecodeError::Datatype {
        name: name.clone(),
        datatype: truncate(datatype.to_string()),
    })?;
    let bad_shape = || DecodeError::Shape {
        name: name.clone(),
        shape: dims.iter().take(16).copied().collect(),
    };
    let shape: Vec<u32> = dims
        .iter()
        .map(|&d| u32::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| bad_shape())?;
    let expected = element_count(&shape)
        .filter(|n| n.checked_mul(ty.size().unwrap_or(1)).is_some())
        .ok_or_else(bad_shape)?;
    if ty == TensorType::Bytes && expected > MAX_BYTES_ELEMENTS {
        return Err(DecodeError::TooMany {
            what: "BYTES elements in one input",
            count: expected,
            max: MAX_BYTES_ELEMENTS,
        });
    }
    Ok((ty, shape, expected))
}

/// A tensor from its raw little-endian bytes (one copy, out of the body).
fn binary_tensor(input: &RequestInput, bytes: &[u8]) -> Result<Tensor, DecodeError> {
    let (ty, shape, expected) = layout(input)?;
    let Some(size) = ty.size() else {
        return Tensor::new(shape, ty, bytes.to_vec()).map_err(|e| {
            DecodeError::Binary(format!("input '{}': {e}", truncate(input.name.clone())))
        });
    };
    if bytes.len() != expected * size {
        return Err(DecodeError::Binary(format!(
            "input '{}': shape {:?} of {} needs {} bytes, binary_data_size is {}",
            truncate(input.name.clone()),
            input.shape,
            ty,
            expected * size,
            bytes.len()
        )));
    }
    Ok(Tensor {
        shape,
        ty,
        data: bytes.to_vec(),
    })
}

fn decode_tensor(input: &RequestInput, data: &RawValue) -> Result<Tensor, DecodeError> {
    let name = truncate(input.name.clone());
    let (ty, shape, expected) = layout(input)?;
    let mut elements = Elements {
        ty,
        // Never more than the text could hold: a hostile shape cannot make
        // the decoder reserve more than the body's size calls for.
        data: Vec::with_capacity(match ty.size() {
            Some(size) => (expected * size).min(data.get().len() * size),
            None => data.get().len(),
        }),
        count: 0,
        expected,
        bad: None,
    };
    let mut de = serde_json::Deserializer::from_str(data.get());
    let walked = Flat(&mut elements).deserialize(&mut de);
    if let Some((index, value)) = elements.bad {
        return Err(DecodeError::Element {
            name,
            index,
            value,
            datatype: ty,
        });
    }
    walked.map_err(|e| DecodeError::Json(e.to_string()))?;
    if elements.count != expected {
        return Err(DecodeError::Count {
            name,
            shape: input.shape.clone(),
            expected,
            actual: elements.count,
        });
    }
    Ok(Tensor {
        shape,
        ty,
        data: elements.data,
    })
}

/// A tensor's elements as they are decoded: row-major, however nested.
struct Elements {
    ty: TensorType,
    data: Vec<u8>,
    count: usize,
    expected: usize,
    /// The first element that does not fit the datatype.
    bad: Option<(usize, String)>,
}

/// One JSON number (or null), as the decoder saw it.
#[derive(Clone, Copy)]
enum Number {
    U(u64),
    I(i64),
    F(f64),
    Null,
}

impl Elements {
    fn push(&mut self, n: Number) {
        let index = self.count;
        self.count += 1;
        if self.bad.is_some() || index >= self.expected {
            return;
        }
        // Floats: null is NaN (the encoder writes NaN as null; XGBoost reads
        // NaN as a missing value), as MLServer's NumPy decoding does.
        let float = match n {
            Number::U(x) => Some(x as f64),
            Number::I(x) => Some(x as f64),
            Number::F(x) => Some(x),
            Number::Null => Some(f64::NAN),
        };
        let int = match n {
            Number::U(x) => i64::try_from(x).ok(),
            Number::I(x) => Some(x),
            _ => None,
        };
        let d = &mut self.data;
        let ok = match self.ty {
            // BOOL is true/false in JSON; 0 and 1 are taken too.
            TensorType::Bool => int.filter(|x| *x == 0 || *x == 1).map(|x| d.push(x as u8)),
            TensorType::I8 => int
                .and_then(|x| i8::try_from(x).ok())
                .map(|x| d.extend(x.to_le_bytes())),
            TensorType::I16 => int
                .and_then(|x| i16::try_from(x).ok())
                .map(|x| d.extend(x.to_le_bytes())),
            TensorType::U16 => int
                .and_then(|x| u16::try_from(x).ok())
                .map(|x| d.extend(x.to_le_bytes())),
            TensorType::U32 => int
                .and_then(|x| u32::try_from(x).ok())
                .map(|x| d.extend(x.to_le_bytes())),
            TensorType::U64 => match n {
                Number::U(x) => Some(x),
                Number::I(x) => u64::try_from(x).ok(),
                _ => None,
            }
            .map(|x| d.extend(x.to_le_bytes())),
            TensorType::Fp16 => float.map(|x| d.extend(f16::from_f64(x).to_le_bytes())),
            TensorType::Bf16 => float.map(|x| d.extend(bf16::from_f64(x).to_le_bytes())),
            TensorType::Fp32 => float.map(|x| d.extend((x as f32).to_le_bytes())),
            TensorType::Fp64 => float.map(|x| d.extend(x.to_le_bytes())),
            TensorType::U8 => int.and_then(|x| u8::try_from(x).ok()).map(|x| d.push(x)),
            TensorType::I32 => int
                .and_then(|x| i32::try_from(x).ok())
                .map(|x| d.extend(x.to_le_bytes())),
            TensorType::I64 => int.map(|x| d.extend(x.to_le_bytes())),
            // BYTES elements are strings (`visit_str`), never numbers.
            TensorType::Bytes => None,
        };
        if ok.is_none() {
            let text = match n {
                Number::U(x) => x.to_string(),
                Number::I(x) => x.to_string(),
                Number::F(x) => x.to_string(),
                Number::Null => "null".into(),
            };
            self.bad = Some((index, text));
        }
    }

    fn reject(&mut self, text: String) {
        if self.bad.is_none() {
            self.bad = Some((self.count, truncate(text)));
        }
        self.count += 1;
    }
}

/// Walks nested arrays, handing every leaf to [`Elements`].
struct Flat<'e>(&'e mut Elements);

impl<'de> DeserializeSeed<'de> for Flat<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flat<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("numbers or strings, or arrays of them")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Flat(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.push(Number::U(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push(Number::I(v));
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push(Number::F(v));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.push(Number::Null);
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        if self.0.ty == TensorType::Bool {
            self.0.push(Number::U(u64::from(v)));
        } else {
            self.0.reject(v.to_string());
        }
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        let e = &mut *self.0;
        if e.ty != TensorType::Bytes {
            e.reject(format!("{v:?}"));
        } else {
            let index = e.count;
            e.count += 1;
            if e.bad.is_none() && index < e.expected {
                // A string of 4 GiB cannot come in a body this size; refused
                // all the same rather than trusted.
                if push_bytes_element(&mut e.data, v.as_bytes()).is_none() {
                    e.bad = Some((index, "a string of 4 GiB or more".into()));
                }
            }
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.0.reject("an object".into());
        Ok(())
    }
}

pub(crate) fn truncate(mut s: String) -> String {
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

mod encode;

pub use encode::{EncodeError, Encoded, encode_response, tensor_data};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn wanted(name: &str, binary: Option<bool>) -> RequestedOutput {
        RequestedOutput {
            name: name.into(),
            binary,
        }
    }

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
        let float = |t: TensorType| {
            matches!(
                t,
                TensorType::Fp16 | TensorType::Fp32 | TensorType::Fp64 | TensorType::Bf16
            )
        };
        for ty in TensorType::ALL
            .into_iter()
            .filter(|t| !matches!(t, TensorType::Bool | TensorType::Bytes))
        {
            let body = json!({"inputs": [{"name": "x", "shape": [3], "datatype": ty.v2_name(), "data": [0, 1, 2]}]});
            let t = one(body).unwrap();
            assert_eq!(t.ty, ty);
            let want = if float(ty) {
                json!([0.0, 1.0, 2.0])
            } else {
                json!([0, 1, 2])
            };
            assert_eq!(tensor_data(&t), want, "{ty}");
        }
        let b = one(json!({"inputs": [{"name": "b", "shape": [3], "datatype": "BOOL", "data": [true, false, 1]}]})).unwrap();
        assert_eq!(
            (b.data.as_slice(), tensor_data(&b)),
            (&[1u8, 0, 1][..], json!([true, false, true]))
        );
        // Each integer type holds its own range only.
        for (ty, out) in [
            ("INT8", 128),
            ("UINT16", 65_536),
            ("UINT32", -1),
            ("BOOL", 2),
        ] {
            let body =
                json!({"inputs": [{"name": "x", "shape": [1], "datatype": ty, "data": [out]}]});
            assert!(
                matches!(one(body), Err(DecodeError::Element { .. })),
                "{ty} {out}"
            );
        }
        let big = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "UINT64", "data": [u64::MAX]}]});
        assert_eq!(one(big).unwrap().data, u64::MAX.to_le_bytes());
    }

    #[test]
    fn bytes_are_strings_in_json_and_length_prefixed_in_binary() {
        let s = one(json!({"inputs": [{"name": "s", "shape": [1, 3], "datatype": "BYTES", "data": [["cat", "", "é"]]}]})).unwrap();
        assert_eq!(s.ty, TensorType::Bytes);
        assert_eq!(
            s.data,
            [
                &[3, 0, 0, 0][..],
                b"cat",
                &[0; 4],
                &[2, 0, 0, 0],
                "é".as_bytes()
            ]
            .concat()
        );
        assert_eq!(tensor_data(&s), json!(["cat", "", "é"]));
        // The same tensor as binary data decodes to the same bytes.
        let header = json!({"inputs": [{"name": "s", "shape": [1, 3], "datatype": "BYTES", "parameters": {"binary_data_size": s.data.len()}}]});
        let (body, n) = framed(header, &[&s.data]);
        assert_eq!(
            decode_request_with(&body, Some(n)).unwrap().inputs[0].tensor,
            s
        );
        // Numbers are not strings; strings are not numbers; counts hold.
        for (ty, data) in [("BYTES", json!([1])), ("FP32", json!(["1"]))] {
            let body =
                json!({"inputs": [{"name": "x", "shape": [1], "datatype": ty, "data": data}]});
            assert!(
                matches!(one(body), Err(DecodeError::Element { .. })),
                "{ty}"
            );
        }
        let body =
            json!({"inputs": [{"name": "x", "shape": [2], "datatype": "BYTES", "data": ["a"]}]});
        assert!(matches!(one(body), Err(DecodeError::Count { .. })));
        // Their number is bounded, not only their bytes: each would become
        // a string of its own in a backend.
        let body =
            json!({"inputs": [{"name": "x", "shape": [1 << 21], "datatype": "BYTES", "data": []}]});
        assert!(matches!(one(body), Err(DecodeError::TooMany { .. })));
        // Binary BYTES data whose prefixes do not add up to the shape.
        for blob in [&[5u8, 0, 0, 0, b'a'][..], &[1, 0, 0, 0, b'a', 0, 0]] {
            let header = json!({"inputs": [{"name": "s", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": blob.len()}}]});
            let (body, n) = framed(header, &[blob]);
            assert!(matches!(
                decode_request_with(&body, Some(n)),
                Err(DecodeError::Binary(_))
            ));
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
                json!({"inputs": [{"name": "x", "shape": [1], "datatype": "STRING", "data": ["a"]}]})
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
            &[t(1), t(2)],
            Some(&[wanted("o2", None)]),
            false,
            1 << 20,
        )
        .unwrap();
        assert_eq!(body.header_len, None);
        let body: Value = serde_json::from_slice(&body.body).unwrap();
        assert_eq!(
            body,
            json!({"model_name": "m", "model_version": "1", "id": "r", "outputs": [{"name": "o2", "shape": [1], "datatype": "INT64", "data": [2]}]})
        );
        assert!(
            encode_response(
                "m",
                None,
                None,
                &[t(1)],
                Some(&[wanted("nope", None)]),
                false,
                1 << 20
            )
            .is_err()
        );
        // The limit holds before the body is built past it.
        assert_eq!(
            encode_response("m", None, None, &[t(1), t(2)], None, false, 40),
            Err(EncodeError::TooLarge(40))
        );
    }

    /// A binary request as tritonclient frames it: JSON header, then bytes.
    fn framed(header: Value, blobs: &[&[u8]]) -> (Vec<u8>, usize) {
        let mut body = header.to_string().into_bytes();
        let n = body.len();
        for b in blobs {
            body.extend_from_slice(b);
        }
        (body, n)
    }

    #[test]
    fn binary_inputs_decode_to_the_same_tensors_as_json() {
        let xs: Vec<u8> = [1.5f32, -2.0, 3.25, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let ids: Vec<u8> = [7i64, 9].iter().flat_map(|v| v.to_le_bytes()).collect();
        let (body, n) = framed(
            json!({"inputs": [
                {"name": "x", "shape": [2, 2], "datatype": "FP32", "parameters": {"binary_data_size": 16}},
                {"name": "k", "shape": [1], "datatype": "INT32", "data": [5]},
                {"name": "ids", "shape": [2], "datatype": "INT64", "parameters": {"binary_data_size": 16}}
            ], "parameters": {"binary_data_output": true}}),
            &[&xs, &ids],
        );
        let binary = decode_request_with(&body, Some(n)).unwrap();
        let json = decode_request(
            json!({"inputs": [
                {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1.5, -2.0, 3.25, 4.0]},
                {"name": "k", "shape": [1], "datatype": "INT32", "data": [5]},
                {"name": "ids", "shape": [2], "datatype": "INT64", "data": [7, 9]}
            ]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(binary.inputs, json.inputs);
        assert!(binary.binary_outputs && !json.binary_outputs);
    }

    #[test]
    fn binary_data_that_does_not_add_up_is_refused() {
        let input = |size: u64| json!({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": size}}]});
        let err = |header: Value, blobs: &[&[u8]]| {
            let (body, n) = framed(header, blobs);
            decode_request_with(&body, Some(n)).unwrap_err()
        };
        // Too few bytes for the size, a size that is not the shape's, bytes
        // left over, and a size with no header at all.
        assert!(matches!(err(input(8), &[&[0; 4]]), DecodeError::Binary(_)));
        assert!(matches!(err(input(4), &[&[0; 4]]), DecodeError::Binary(_)));
        assert!(matches!(err(input(8), &[&[0; 12]]), DecodeError::Binary(_)));
        assert!(matches!(
            err(input(u64::MAX), &[&[0; 8]]),
            DecodeError::Binary(_)
        ));
        assert!(matches!(
            decode_request(input(8).to_string().as_bytes()),
            Err(DecodeError::Binary(_))
        ));
        assert!(matches!(
            decode_request_with(b"{}", Some(99)),
            Err(DecodeError::Binary(_))
        ));
    }

    #[test]
    fn binary_outputs_follow_the_header_in_order() {
        let t = |name: &str, v: &[f32]| NamedTensor {
            name: name.into(),
            tensor: Tensor::new(
                vec![v.len() as u32],
                TensorType::Fp32,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
            .unwrap(),
        };
        let outs = [t("a", &[1.0, 2.0]), t("b", &[3.0])];
        // All binary by the request's flag, except `b`, which asks for JSON.
        let e = encode_response(
            "m",
            None,
            None,
            &outs,
            Some(&[wanted("a", None), wanted("b", Some(false))]),
            true,
            1 << 20,
        )
        .unwrap();
        let n = e.header_len.expect("a header");
        let header: Value = serde_json::from_slice(&e.body[..n]).unwrap();
        assert_eq!(header["outputs"][0]["parameters"]["binary_data_size"], 8);
        assert!(header["outputs"][0].get("data").is_none());
        assert_eq!(header["outputs"][1]["data"], json!([3.0]));
        assert_eq!(&e.body[n..], &outs[0].tensor.data[..]);
        // The limit counts the binary part too.
        assert_eq!(
            encode_response("m", None, None, &outs, None, true, 10),
            Err(EncodeError::TooLarge(10))
        );
        // BYTES that are not text go as binary data, never as mangled JSON.
        let raw = NamedTensor {
            name: "s".into(),
            tensor: Tensor::new(vec![1], TensorType::Bytes, vec![1, 0, 0, 0, 0xff]).unwrap(),
        };
        let outs = [raw];
        assert_eq!(
            encode_response("m", None, None, &outs, None, false, 1 << 20),
            Err(EncodeError::NotText("s".into()))
        );
        let e = encode_response("m", None, None, &outs, None, true, 1 << 20).unwrap();
        assert_eq!(&e.body[e.header_len.unwrap()..], &[1, 0, 0, 0, 0xff]);
    }

    #[test]
    fn counts_and_duplicates_are_bounded() {
        let input = |i: usize| json!({"name": format!("x{i}"), "shape": [1], "datatype": "FP32", "data": [1]});
        let many: Vec<Value> = (0..=MAX_INPUTS).map(input).collect();
        assert!(matches!(
            decode_request(json!({"inputs": many}).to_string().as_bytes()),
            Err(DecodeError::TooMany { .. })
        ));
        let twice = json!({"inputs": [input(0)], "outputs": [{"name": "y"}, {"name": "y"}]});
        assert!(matches!(
            decode_request(twice.to_string().as_bytes()),
            Err(DecodeError::DuplicateOutput { .. })
        ));
        let dup = json!({"inputs": [input(0), input(0)]});
        assert!(matches!(
            decode_request(dup.to_string().as_bytes()),
            Err(DecodeError::DuplicateInput { .. })
        ));
        // A shape promising far more than the data holds reserves nothing big.
        let liar = json!({"inputs": [{"name": "x", "shape": [1u64 << 31, 2], "datatype": "FP64", "data": [1]}]});
        assert!(matches!(
            decode_request(liar.to_string().as_bytes()),
            Err(DecodeError::Count { actual: 1, .. })
        ));
    }
}
