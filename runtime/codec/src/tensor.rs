//! The tensor value every layer speaks: HTTP codecs decode into it, the
//! wasi-nn host hands it to backends, backends hand it back.
//!
//! Data stays as little-endian bytes (wasi-nn's own representation), so a
//! tensor crosses the component boundary and reaches a backend without being
//! re-encoded on the way.

use std::fmt;

/// Element types wasi-nn can carry (`wasi:nn/tensor.tensor-type`).
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
}

impl TensorType {
    /// Every numeric V2 type: wasi-nn's, then those only models served
    /// without a module take (where their backend does).
    pub const ALL: [TensorType; 13] = [
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
    ];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            TensorType::U8 | TensorType::Bool | TensorType::I8 => 1,
            TensorType::Fp16 | TensorType::Bf16 | TensorType::I16 | TensorType::U16 => 2,
            TensorType::Fp32 | TensorType::I32 | TensorType::U32 => 4,
            TensorType::Fp64 | TensorType::I64 | TensorType::U64 => 8,
        }
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
        }
    }

    /// Parses a V2 datatype name; `None` for names not served (BYTES).
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
    /// Little-endian element bytes; `len == elements(shape) * ty.size()`.
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
    /// The shape's element count (or byte size) overflows `usize`.
    #[error("shape {shape:?} has too many elements")]
    ShapeOverflow {
        /// The offending shape.
        shape: Vec<u32>,
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
        let expected = element_count(&self.shape)
            .and_then(|n| n.checked_mul(self.ty.size()))
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
        assert_eq!(TensorType::from_v2_name("BYTES"), None);
        assert!(TensorType::I32.is_wasi_nn() && !TensorType::Bool.is_wasi_nn());
    }
}
