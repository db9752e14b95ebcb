//! The tensor value every layer speaks: HTTP codecs decode into it, the
//! wasi-nn host hands it to backends, backends hand it back.
//!
//! Data stays as little-endian bytes (wasi-nn's own representation), so a
//! tensor crosses the component boundary and reaches a backend without being
//! re-encoded on the way.

use std::fmt;

/// Element types of V2 tensors: wasi-nn's own (`wasi:nn/tensor.tensor-type`),
/// then those only models served without a module take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TensorType {
    /// IEEE 754 half-precision float (V2 `FP16`), 2 bytes.
    Fp16,
    /// IEEE 754 single-precision float (V2 `FP32`), 4 bytes.
    Fp32,
    /// IEEE 754 double-precision float (V2 `FP64`), 8 bytes.
    Fp64,
    /// bfloat16 (V2 `BF16`), 2 bytes.
    Bf16,
    /// Unsigned 8-bit integer (V2 `UINT8`), 1 byte.
    U8,
    /// Signed 32-bit integer (V2 `INT32`), 4 bytes.
    I32,
    /// Signed 64-bit integer (V2 `INT64`), 8 bytes.
    I64,
    /// Boolean (V2 `BOOL`), 1 byte (0 or 1). Not a wasi-nn type.
    Bool,
    /// Signed 8-bit integer (V2 `INT8`), 1 byte. Not a wasi-nn type.
    I8,
    /// Signed 16-bit integer (V2 `INT16`), 2 bytes. Not a wasi-nn type.
    I16,
    /// Unsigned 16-bit integer (V2 `UINT16`), 2 bytes. Not a wasi-nn type.
    U16,
    /// Unsigned 32-bit integer (V2 `UINT32`), 4 bytes. Not a wasi-nn type.
    U32,
    /// Unsigned 64-bit integer (V2 `UINT64`), 8 bytes. Not a wasi-nn type.
    U64,
    /// Byte strings (V2 `BYTES`): each element a 4-byte little-endian
    /// length, then that many bytes (Triton's binary form). Not a wasi-nn type.
    Bytes,
}

impl TensorType {
    /// Every V2 type: wasi-nn's, then those only models served without a
    /// module take (where their backend does).
    pub const ALL: [TensorType; 14] = [
        TensorType::Fp16,
        TensorType::Fp32,
        TensorType::Fp64,
        TensorType::Bf16,
        TensorType::U8,
        TensorType::I32,
        TensorType::I64,
        TensorType::Bool,
        TensorType::I8,
        TensorType::I16,
        TensorType::U16,
        TensorType::U32,
        TensorType::U64,
        TensorType::Bytes,
    ];

    /// Bytes per element; `None` for BYTES, whose elements vary.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            TensorType::U8 | TensorType::Bool | TensorType::I8 => 1,
            TensorType::Fp16 | TensorType::Bf16 | TensorType::I16 | TensorType::U16 => 2,
            TensorType::Fp32 | TensorType::I32 | TensorType::U32 => 4,
            TensorType::Fp64 | TensorType::I64 | TensorType::U64 => 8,
            TensorType::Bytes => return None,
        })
    }

    /// Whether wasi-nn (and so a module) can carry it: the first seven of
    /// [`TensorType::ALL`].
    pub fn is_wasi_nn(self) -> bool {
        TensorType::ALL[..7].contains(&self)
    }

    /// The Open Inference Protocol V2 datatype name.
    pub fn v2_name(self) -> &'static str {
        match self {
            TensorType::Fp16 => "FP16",
            TensorType::Fp32 => "FP32",
            TensorType::Fp64 => "FP64",
            TensorType::Bf16 => "BF16",
            TensorType::U8 => "UINT8",
            TensorType::I32 => "INT32",
            TensorType::I64 => "INT64",
            TensorType::Bool => "BOOL",
            TensorType::I8 => "INT8",
            TensorType::I16 => "INT16",
            TensorType::U16 => "UINT16",
            TensorType::U32 => "UINT32",
            TensorType::U64 => "UINT64",
            TensorType::Bytes => "BYTES",
        }
    }

    /// Parses a V2 datatype name; `None` for names that are not one.
    pub fn from_v2_name(name: &str) -> Option<TensorType> {
        TensorType::ALL.into_iter().find(|t| t.v2_name() == name)
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.v2_name())
    }
}

/// A dense row-major tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<u32>,
    /// Element type.
    pub ty: TensorType,
    /// Little-endian element bytes; `len == elements(shape) * ty.size()`,
    /// or for BYTES each element length-prefixed ([`bytes_elements`]).
    pub data: Vec<u8>,
}

/// A tensor with the name of the graph input or output it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// Name of the graph input or output.
    pub name: String,
    /// The tensor itself.
    pub tensor: Tensor,
}

/// Why a tensor is not well formed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TensorError {
    /// The shape's element count (or byte size) overflows `usize`, or a
    /// BYTES shape holds more than [`MAX_BYTES_ELEMENTS`].
    #[error("shape {shape:?} has too many elements")]
    ShapeOverflow {
        /// The offending shape.
        shape: Vec<u32>,
    },
    /// BYTES data does not split into as many length-prefixed elements as
    /// the shape holds.
    #[error(
        "BYTES tensor of shape {shape:?} needs {expected} length-prefixed elements; the data does not hold them"
    )]
    BytesElements {
        /// Shape of the tensor.
        shape: Vec<u32>,
        /// Elements the shape holds.
        expected: usize,
    },
    /// The data's length does not match the shape and element type.
    #[error("{ty} tensor of shape {shape:?} needs {expected} bytes of data, got {actual}")]
    DataLength {
        /// Element type of the tensor.
        ty: TensorType,
        /// Shape of the tensor.
        shape: Vec<u32>,
        /// Bytes the shape and type call for.
        expected: usize,
        /// Bytes of data given.
        actual: usize,
    },
}

/// Most elements one BYTES tensor may hold: each becomes a string of its
/// own in a backend, so their number, not only their bytes, is bounded.
pub const MAX_BYTES_ELEMENTS: usize = 1 << 20;

/// How many elements BYTES tensor data holds, without collecting them;
/// `None` when it does not split into length-prefixed elements.
pub fn bytes_count(mut data: &[u8]) -> Option<usize> {
    let mut n = 0usize;
    while !data.is_empty() {
        let (len, rest) = data.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
        data = rest.get(len..)?;
        n += 1;
    }
    Some(n)
}

/// The elements of BYTES tensor data (each a 4-byte little-endian length,
/// then that many bytes), or `None` when the data does not split that way.
/// Never reserves room for more than [`MAX_BYTES_ELEMENTS`].
pub fn bytes_elements(mut data: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::with_capacity((data.len() / 4).min(MAX_BYTES_ELEMENTS));
    while !data.is_empty() {
        let (len, rest) = data.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
        if len > rest.len() {
            return None;
        }
        let (element, rest) = rest.split_at(len);
        out.push(element);
        data = rest;
    }
    Some(out)
}

/// Appends one BYTES element to tensor data: its length, then its bytes.
/// `None` (and nothing appended) for an element of 4 GiB or more.
pub fn push_bytes_element(data: &mut Vec<u8>, element: &[u8]) -> Option<()> {
    let len = u32::try_from(element.len()).ok()?;
    data.extend_from_slice(&len.to_le_bytes());
    data.extend_from_slice(element);
    Some(())
}

/// Number of elements a shape holds, or `None` on overflow.
pub fn element_count(shape: &[u32]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
}

impl Tensor {
    /// Builds a tensor, checking that the data length fits the shape and type.
    pub fn new(shape: Vec<u32>, ty: TensorType, data: Vec<u8>) -> Result<Tensor, TensorError> {
        let t = Tensor { shape, ty, data };
        t.validate()?;
        Ok(t)
    }

    /// Checks that the data length fits the shape and type.
    pub fn validate(&self) -> Result<(), TensorError> {
        let Some(size) = self.ty.size() else {
            let expected = element_count(&self.shape)
                .filter(|&n| n <= MAX_BYTES_ELEMENTS)
                .ok_or_else(|| TensorError::ShapeOverflow {
                    shape: self.shape.clone(),
                })?;
            return match bytes_count(&self.data) {
                Some(n) if n == expected => Ok(()),
                _ => Err(TensorError::BytesElements {
                    shape: self.shape.clone(),
                    expected,
                }),
            };
        };
        let expected = element_count(&self.shape)
            .and_then(|n| n.checked_mul(size))
            .ok_or_else(|| TensorError::ShapeOverflow {
                shape: self.shape.clone(),
            })?;
        if expected != self.data.len() {
            return Err(TensorError::DataLength {
                ty: self.ty,
                shape: self.shape.clone(),
                expected,
                actual: self.data.len(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_length_must_match_shape() {
        assert!(Tensor::new(vec![2, 3], TensorType::Fp32, vec![0; 24]).is_ok());
        let err = Tensor::new(vec![2, 3], TensorType::I64, vec![0; 24]).unwrap_err();
        assert_eq!(
            err,
            TensorError::DataLength {
                ty: TensorType::I64,
                shape: vec![2, 3],
                expected: 48,
                actual: 24
            }
        );
    }

    #[test]
    fn bytes_elements_are_length_prefixed() {
        let mut data = Vec::new();
        for e in [&b"cat"[..], b"", b"\xff\x00"] {
            push_bytes_element(&mut data, e).unwrap();
        }
        assert_eq!(
            bytes_elements(&data).unwrap(),
            vec![&b"cat"[..], b"", b"\xff\x00"]
        );
        assert!(Tensor::new(vec![3], TensorType::Bytes, data.clone()).is_ok());
        assert!(Tensor::new(vec![2], TensorType::Bytes, data.clone()).is_err());
        // A length running past the end, and a torn length prefix.
        assert_eq!(bytes_elements(&[9, 0, 0, 0, 1]), None);
        assert_eq!(bytes_elements(&[0, 0]), None);
        assert_eq!(bytes_elements(&[255, 255, 255, 255]), None);
    }

    #[test]
    fn overflowing_shape_is_rejected() {
        let shape = vec![u32::MAX, u32::MAX, u32::MAX];
        assert!(matches!(
            Tensor::new(shape, TensorType::Fp64, vec![]),
            Err(TensorError::ShapeOverflow { .. })
        ));
    }

    #[test]
    fn v2_names_round_trip() {
        for t in TensorType::ALL {
            assert_eq!(TensorType::from_v2_name(t.v2_name()), Some(t));
        }
        assert_eq!(TensorType::from_v2_name("STRING"), None);
        assert!(TensorType::I32.is_wasi_nn() && !TensorType::Bool.is_wasi_nn());
    }
}
