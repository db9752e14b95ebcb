//! Typed views of tensors: build one from a slice, read one back as a `Vec`.

use crate::{Error, Tensor, TensorType};

/// A Rust element type that maps to one wasi-nn tensor type.
pub trait Element: Copy {
    /// The wasi-nn type.
    const TYPE: TensorType;
    /// Appends the little-endian bytes of `self`.
    fn put(self, out: &mut Vec<u8>);
    /// Reads one element from `size_of::<Self>()` bytes.
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! element {
    ($t:ty, $ty:expr) => {
        impl Element for $t {
            const TYPE: TensorType = $ty;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(bytes);
                <$t>::from_le_bytes(a)
            }
        }
    };
}

element!(f32, TensorType::Fp32);
element!(f64, TensorType::Fp64);
element!(u8, TensorType::U8);
element!(i32, TensorType::I32);
element!(i64, TensorType::I64);

/// Bytes per element of a wasi-nn type.
pub fn type_size(t: TensorType) -> usize {
    match t {
        TensorType::U8 => 1,
        TensorType::Fp16 | TensorType::Bf16 => 2,
        TensorType::Fp32 | TensorType::I32 => 4,
        TensorType::Fp64 | TensorType::I64 => 8,
    }
}

impl Tensor {
    /// A tensor named `name` of `shape` from row-major `values`.
    pub fn new<T: Element>(name: impl Into<String>, shape: &[u32], values: &[T]) -> Tensor {
        let mut data = Vec::with_capacity(std::mem::size_of_val(values));
        values.iter().for_each(|v| v.put(&mut data));
        Tensor {
            name: name.into(),
            shape: shape.to_vec(),
            datatype: T::TYPE,
            data,
        }
    }

    /// The elements as `T`; an error if the tensor holds another type.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>, Error> {
        if self.datatype != T::TYPE {
            return Err(Error::internal(format!(
                "tensor '{}' holds {:?}, not {:?}",
                self.name,
                self.datatype,
                T::TYPE
            )));
        }
        Ok(self
            .data
            .chunks_exact(type_size(T::TYPE))
            .map(T::get)
            .collect())
    }

    /// Number of elements the shape holds.
    pub fn elements(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product()
    }

    /// The tensor named `name` in `tensors`.
    pub fn find<'t>(tensors: &'t [Tensor], name: &str) -> Result<&'t Tensor, Error> {
        tensors.iter().find(|t| t.name == name).ok_or_else(|| {
            let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
            Error::internal(format!("no tensor named '{name}' (have {names:?})"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_round_trip() {
        let t = Tensor::new("x", &[2, 2], &[1.5f32, -2.0, 3.25, 4.0]);
        assert_eq!(t.datatype, TensorType::Fp32);
        assert_eq!(t.data.len(), 16);
        assert_eq!(t.to_vec::<f32>().unwrap(), vec![1.5, -2.0, 3.25, 4.0]);
        assert!(t.to_vec::<i64>().is_err());
        let ids = Tensor::new("ids", &[3], &[7i64, -1, 1 << 40]);
        assert_eq!(ids.to_vec::<i64>().unwrap(), vec![7, -1, 1 << 40]);
        assert_eq!(ids.elements(), 3);
    }
}
