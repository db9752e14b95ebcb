//! The serving signature of a SavedModel, read from the `MetaGraphDef`
//! TensorFlow hands back when it loads one. Only the few protobuf fields
//! needed are declared (prost ignores the rest), so no .proto files or
//! build step are involved.

use std::collections::HashMap;

/// `tensorflow.MetaGraphDef`, field 5 only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaGraphDef {
    #[prost(map = "string, message", tag = "5")]
    pub signature_def: HashMap<String, SignatureDef>,
}

/// `tensorflow.SignatureDef`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SignatureDef {
    #[prost(map = "string, message", tag = "1")]
    pub inputs: HashMap<String, TensorInfo>,
    #[prost(map = "string, message", tag = "2")]
    pub outputs: HashMap<String, TensorInfo>,
    #[prost(string, tag = "3")]
    pub method_name: String,
}

/// `tensorflow.TensorInfo` (dense tensors: `name` is `op:index`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorInfo {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "2")]
    pub dtype: i32,
    #[prost(message, optional, tag = "3")]
    pub tensor_shape: Option<TensorShape>,
}

/// `tensorflow.TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShape {
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
    #[prost(bool, tag = "3")]
    pub unknown_rank: bool,
}

/// `tensorflow.TensorShapeProto.Dim` (`-1` is unknown).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// The signature a server should use: `serving_default`, else the only one.
pub fn serving(meta: &MetaGraphDef) -> Result<(&str, &SignatureDef), String> {
    if let Some((k, v)) = meta.signature_def.get_key_value("serving_default") {
        return Ok((k.as_str(), v));
    }
    let mut all = meta.signature_def.iter();
    match (all.next(), all.next()) {
        (Some((k, v)), None) => Ok((k.as_str(), v)),
        _ => {
            let mut names: Vec<&String> = meta.signature_def.keys().collect();
            names.sort();
            Err(format!(
                "the SavedModel has no serving_default signature (it has {names:?})"
            ))
        }
    }
}
