//! V2 responses: JSON tensors, or (Triton's binary tensor data extension)
//! a JSON header followed by each binary output's raw bytes.

use std::collections::HashMap;

use half::{bf16, f16};
use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};
use serde_json::Value;

use super::{RequestedOutput, truncate};
use crate::tensor::{NamedTensor, Tensor, TensorType, bytes_elements};

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
    /// A BYTES output holds bytes that are not UTF-8, which JSON cannot
    /// carry as text.
    #[error(
        "output '{0}' holds bytes that are not UTF-8 text; ask for it as binary data (parameters.binary_data: true)"
    )]
    NotText(String),
    /// The JSON would be larger than the response limit.
    #[error(
        "the response would be larger than the {0}-byte limit (--max-response); ask for fewer outputs or smaller batches"
    )]
    TooLarge(usize),
}

/// A tensor's elements as a flat JSON array (NaN and infinities as null;
/// BYTES as strings), written as they are read: no JSON value per element.
struct Data<'t>(&'t Tensor);

/// BYTES elements as JSON strings; an error for any that is not UTF-8.
fn text_elements<S: Serializer>(t: &Tensor, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::Error;
    let elements = bytes_elements(&t.data).ok_or_else(|| S::Error::custom("torn BYTES data"))?;
    let mut seq = s.serialize_seq(Some(elements.len()))?;
    for e in elements {
        let text = std::str::from_utf8(e).map_err(|_| S::Error::custom("BYTES not UTF-8"))?;
        seq.serialize_element(text)?;
    }
    seq.end()
}

impl Serialize for Data<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let Some(n) = t.ty.size() else {
            return text_elements(t, s);
        };
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
                TensorType::Bool => seq.serialize_element(&(c[0] != 0))?,
                TensorType::I8 => seq.serialize_element(&i8::from_le_bytes([c[0]]))?,
                TensorType::I16 => seq.serialize_element(&i16::from_le_bytes([c[0], c[1]]))?,
                TensorType::U16 => seq.serialize_element(&u16::from_le_bytes([c[0], c[1]]))?,
                TensorType::U32 => {
                    seq.serialize_element(&u32::from_le_bytes([c[0], c[1], c[2], c[3]]))?
                }
                TensorType::U64 => {
                    seq.serialize_element(&u64::from_le_bytes(c.try_into().unwrap_or_default()))?
                }
                // Written by `text_elements` above; never reached here.
                TensorType::Bytes => {}
            }
        }
        seq.end()
    }
}

/// The tensor's elements as a flat JSON array (NaN and infinities as null;
/// BYTES as strings, or null when they are not UTF-8 text).
pub fn tensor_data(t: &Tensor) -> Value {
    serde_json::to_value(Data(t)).unwrap_or(Value::Null)
}

#[derive(Serialize)]
struct OutputJson<'t> {
    name: &'t str,
    shape: &'t [u32],
    datatype: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryParameters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Data<'t>>,
}

#[derive(Serialize)]
struct BinaryParameters {
    binary_data_size: usize,
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

/// An encoded response.
#[derive(Debug, PartialEq)]
pub struct Encoded {
    /// The body: JSON, or a JSON header followed by binary outputs.
    pub body: Vec<u8>,
    /// The JSON header's length (`Inference-Header-Content-Length`) when
    /// binary outputs follow it.
    pub header_len: Option<usize>,
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

/// Encodes an inference response of at most `max_bytes`. `requested`
/// limits and orders outputs; an output comes as raw bytes after the JSON
/// header when it asks to, or when `binary_default` says so and it does not
/// say otherwise.
pub fn encode_response(
    model: &str,
    version: Option<&str>,
    id: Option<&str>,
    outputs: &[NamedTensor],
    requested: Option<&[RequestedOutput]>,
    binary_default: bool,
    max_bytes: usize,
) -> Result<Encoded, EncodeError> {
    let chosen: Vec<(&NamedTensor, bool)> = match requested {
        None => outputs.iter().map(|o| (o, binary_default)).collect(),
        Some(wanted) => {
            let by_name: HashMap<&str, &NamedTensor> =
                outputs.iter().map(|o| (o.name.as_str(), o)).collect();
            wanted
                .iter()
                .map(|w| {
                    by_name
                        .get(w.name.as_str())
                        .map(|&o| (o, w.binary.unwrap_or(binary_default)))
                        .ok_or_else(|| EncodeError::NoSuchOutput {
                            name: truncate(w.name.clone()),
                            have: outputs.iter().map(|o| o.name.clone()).collect(),
                        })
                })
                .collect::<Result<_, _>>()?
        }
    };
    let binary: usize = chosen
        .iter()
        .filter(|(_, b)| *b)
        .map(|(o, _)| o.tensor.data.len())
        .sum();
    if binary > max_bytes {
        return Err(EncodeError::TooLarge(max_bytes));
    }
    for (o, _) in chosen
        .iter()
        .filter(|(o, b)| !*b && o.tensor.ty == TensorType::Bytes)
    {
        let text = bytes_elements(&o.tensor.data)
            .is_some_and(|e| e.iter().all(|e| std::str::from_utf8(e).is_ok()));
        if !text {
            return Err(EncodeError::NotText(truncate(o.name.clone())));
        }
    }
    let body = ResponseJson {
        model_name: model,
        model_version: version,
        id,
        outputs: chosen
            .iter()
            .map(|&(o, as_bytes)| OutputJson {
                name: &o.name,
                shape: &o.tensor.shape,
                datatype: o.tensor.ty.v2_name(),
                parameters: as_bytes.then_some(BinaryParameters {
                    binary_data_size: o.tensor.data.len(),
                }),
                data: (!as_bytes).then_some(Data(&o.tensor)),
            })
            .collect(),
    };
    let mut w = Capped {
        out: Vec::new(),
        max: max_bytes - binary,
    };
    serde_json::to_writer(&mut w, &body).map_err(|_| EncodeError::TooLarge(max_bytes))?;
    let mut out = w.out;
    if !chosen.iter().any(|(_, b)| *b) {
        return Ok(Encoded {
            body: out,
            header_len: None,
        });
    }
    let header_len = out.len();
    out.reserve_exact(binary);
    for (o, _) in chosen.iter().filter(|(_, b)| *b) {
        out.extend_from_slice(&o.tensor.data);
    }
    Ok(Encoded {
        body: out,
        header_len: Some(header_len),
    })
}
