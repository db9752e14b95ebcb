//! Open Inference Protocol V2 (KServe / Triton) JSON tensors.
//!
//! `data` may be flat or nested (row-major either way); its element count
//! must equal the product of `shape`, and each element must fit `datatype`.
//! Datatypes are the ones wasi-nn carries: FP16, FP32, FP64, BF16, UINT8,
//! INT32, INT64.

use std::collections::{HashMap, HashSet};

use half::{bf16, f16};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::tensor::{NamedTensor, Tensor, TensorType, element_count};

/// Why an inference request body was rejected (always a client error).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// The body is not well-formed V2 request JSON; holds the parser's message.
    #[error("request body is not valid inference JSON: {0}")]
    Json(String),
    /// An input names a datatype wasi-nn cannot carry.
    #[error(
        "input '{name}': datatype '{datatype}' is not supported; use one of FP16, FP32, FP64, BF16, UINT8, INT32, INT64"
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
    /// straight into the tensor's bytes: no JSON value per element.
    data: Box<RawValue>,
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
    /// The decoded input tensors, in request order.
    pub inputs: Vec<NamedTensor>,
    /// Output names the client asked for; `None` means all.
    pub outputs: Option<Vec<String>>,
}

/// Decodes a V2 inference request body, in time linear in its length.
pub fn decode_request(body: &[u8]) -> Result<InferRequest, DecodeError> {
    let req: InferRequestJson =
        serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
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
            Some(o.into_iter().map(|o| o.name).collect())
        }
    };
    let inputs = req
        .inputs
        .into_iter()
        .map(|input| {
            let tensor = decode_tensor(&input)?;
            Ok(NamedTensor {
                name: input.name,
                tensor,
            })
        })
        .collect::<Result<_, DecodeError>>()?;
    Ok(InferRequest {
        id: req.id,
        inputs,
        outputs,
    })
}

fn decode_tensor(input: &RequestInput) -> Result<Tensor, DecodeError> {
    let name = truncate(input.name.clone());
    let ty = TensorType::from_v2_name(&input.datatype).ok_or_else(|| DecodeError::Datatype {
        name: name.clone(),
        datatype: truncate(input.datatype.clone()),
    })?;
    let bad_shape = || DecodeError::Shape {
        name: name.clone(),
        shape: input.shape.iter().take(16).copied().collect(),
    };
    let shape: Vec<u32> = input
        .shape
        .iter()
        .map(|&d| u32::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| bad_shape())?;
    let expected = element_count(&shape)
        .filter(|n| n.checked_mul(ty.size()).is_some())
        .ok_or_else(bad_shape)?;
    let mut elements = Elements {
        ty,
        // Never more than the text could hold: a hostile shape cannot make
        // the decoder reserve more than the body's size calls for.
        data: Vec::with_capacity((expected * ty.size()).min(input.data.get().len() * ty.size())),
        count: 0,
        expected,
        bad: None,
    };
    let mut de = serde_json::Deserializer::from_str(input.data.get());
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
            TensorType::Fp16 => float.map(|x| d.extend(f16::from_f64(x).to_le_bytes())),
            TensorType::Bf16 => float.map(|x| d.extend(bf16::from_f64(x).to_le_bytes())),
            TensorType::Fp32 => float.map(|x| d.extend((x as f32).to_le_bytes())),
            TensorType::Fp64 => float.map(|x| d.extend(x.to_le_bytes())),
            TensorType::U8 => int.and_then(|x| u8::try_from(x).ok()).map(|x| d.push(x)),
            TensorType::I32 => int
                .and_then(|x| i32::try_from(x).ok())
                .map(|x| d.extend(x.to_le_bytes())),
            TensorType::I64 => int.map(|x| d.extend(x.to_le_bytes())),
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
        f.write_str("numbers, or arrays of them")
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
        self.0.reject(v.to_string());
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.reject(format!("{v:?}"));
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.0.reject("an object".into());
        Ok(())
    }
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

/// Why a response could not be encoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EncodeError {
    /// The client asked for an output the model does not have.
    #[error("requested output '{name}' does not exist; outputs are {have:?}")]
    NoSuchOutput {
        /// The requested output name (truncated if long).
        name: String,
        /// Names of the outputs the model produced.
        have: Vec<String>,
    },
    /// The JSON would be larger than the response limit.
    #[error(
        "the response would be larger than the {0}-byte limit (--max-response); ask for fewer outputs or smaller batches"
    )]
    TooLarge(usize),
}

/// A tensor's elements as a flat JSON array (NaN and infinities as null),
/// written as they are read: no JSON value per element.
struct Data<'t>(&'t Tensor);

impl Serialize for Data<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let n = t.ty.size();
        let mut seq = s.serialize_seq(Some(t.data.len() / n))?;
        let float = |x: f64| x.is_finite().then_some(x);
        for c in t.data.chunks_exact(n) {
            match t.ty {
                TensorType::Fp16 => {
                    seq.serialize_element(&float(f16::from_le_bytes([c[0], c[1]]).to_f64()))?
                }
                TensorType::Bf16 => {
                    seq.serialize_element(&float(bf16::from_le_bytes([c[0], c[1]]).to_f64()))?
                }
                TensorType::Fp32 => {
                    seq.serialize_element(&float(f64::from(f32::from_le_bytes([
                        c[0], c[1], c[2], c[3],
                    ]))))?
                }
                TensorType::Fp64 => seq.serialize_element(&float(f64::from_le_bytes(
                    c.try_into().unwrap_or_default(),
                )))?,
                TensorType::U8 => seq.serialize_element(&c[0])?,
                TensorType::I32 => {
                    seq.serialize_element(&i32::from_le_bytes([c[0], c[1], c[2], c[3]]))?
                }
                TensorType::I64 => {
                    seq.serialize_element(&i64::from_le_bytes(c.try_into().unwrap_or_default()))?
                }
            }
        }
        seq.end()
    }
}

/// The tensor's elements as a flat JSON array (NaN and infinities as null).
pub fn tensor_data(t: &Tensor) -> Value {
    serde_json::to_value(Data(t)).unwrap_or(Value::Null)
}

#[derive(Serialize)]
struct OutputJson<'t> {
    name: &'t str,
    shape: &'t [u32],
    datatype: &'static str,
    data: Data<'t>,
}

#[derive(Serialize)]
struct ResponseJson<'t> {
    model_name: &'t str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_version: Option<&'t str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'t str>,
    outputs: Vec<OutputJson<'t>>,
}

/// A writer that refuses to grow past a limit.
struct Capped {
    out: Vec<u8>,
    max: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.max {
            return Err(std::io::Error::other("over the limit"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Encodes an inference response as JSON of at most `max_bytes`.
/// `requested` limits and orders outputs.
pub fn encode_response(
    model: &str,
    version: Option<&str>,
    id: Option<&str>,
    outputs: &[NamedTensor],
    requested: Option<&[String]>,
    max_bytes: usize,
) -> Result<Vec<u8>, EncodeError> {
    let chosen: Vec<&NamedTensor> = match requested {
        None => outputs.iter().collect(),
        Some(names) => {
            let by_name: HashMap<&str, &NamedTensor> =
                outputs.iter().map(|o| (o.name.as_str(), o)).collect();
            names
                .iter()
                .map(|n| {
                    by_name
                        .get(n.as_str())
                        .copied()
                        .ok_or_else(|| EncodeError::NoSuchOutput {
                            name: truncate(n.clone()),
                            have: outputs.iter().map(|o| o.name.clone()).collect(),
                        })
                })
                .collect::<Result<_, _>>()?
        }
    };
    let body = ResponseJson {
        model_name: model,
        model_version: version,
        id,
        outputs: chosen
            .into_iter()
            .map(|o| OutputJson {
                name: &o.name,
                shape: &o.tensor.shape,
                datatype: o.tensor.ty.v2_name(),
                data: Data(&o.tensor),
            })
            .collect(),
    };
    let mut w = Capped {
        out: Vec::new(),
        max: max_bytes,
    };
    serde_json::to_writer(&mut w, &body).map_err(|_| EncodeError::TooLarge(max_bytes))?;
    Ok(w.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
            &[t(1), t(2)],
            Some(&["o2".to_string()]),
            1 << 20,
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
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
                Some(&["nope".to_string()]),
                1 << 20
            )
            .is_err()
        );
        // The limit holds before the body is built past it.
        assert_eq!(
            encode_response("m", None, None, &[t(1), t(2)], None, 40),
            Err(EncodeError::TooLarge(40))
        );
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
