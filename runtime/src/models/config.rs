//! Triton's per-model `config.pbtxt` (protobuf text format, the
//! `inference.ModelConfig` of `spec/proto/model_config.proto`), read with
//! the package's own descriptors in safe Rust, and its version policy.

use std::path::{Path, PathBuf};

use prost_reflect::{DescriptorPool, DynamicMessage};

use super::{ModelEntry, RegistryError};
use crate::backend::{BackendError, TensorInfo};
use crate::proto::{
    self, DataType, ModelConfig, ModelInput, ModelInstanceGroup, ModelOutput, model_instance_group,
    model_version_policy,
};
use crate::tensor::TensorType;

/// Largest `config.pbtxt` read (Triton's are a few KiB).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

fn invalid(name: &str, path: PathBuf, why: String) -> RegistryError {
    RegistryError::Load {
        name: name.to_string(),
        path,
        backend: "config.pbtxt",
        reason: BackendError::InvalidModel(why),
    }
}

/// `folder/config.pbtxt`, when there is one.
pub fn read(name: &str, folder: &Path) -> Result<Option<ModelConfig>, RegistryError> {
    let path = folder.join("config.pbtxt");
    let Ok(meta) = std::fs::metadata(&path) else {
        return Ok(None);
    };
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(invalid(
            name,
            path,
            format!(
                "{} bytes is over the {MAX_CONFIG_BYTES}-byte limit",
                meta.len()
            ),
        ));
    }
    let text =
        std::fs::read_to_string(&path).map_err(|e| invalid(name, path.clone(), e.to_string()))?;
    parse(&text).map(Some).map_err(|e| invalid(name, path, e))
}

/// `inference.ModelConfig`'s descriptor, decoded once.
fn descriptor() -> Result<prost_reflect::MessageDescriptor, String> {
    static POOL: std::sync::OnceLock<Result<DescriptorPool, String>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(proto::DESCRIPTORS).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)?
        .get_message_by_name("inference.ModelConfig")
        .ok_or_else(|| "no inference.ModelConfig descriptor".into())
}

/// Parses a `config.pbtxt`'s text.
pub fn parse(text: &str) -> Result<ModelConfig, String> {
    let desc = descriptor()?;
    let message =
        DynamicMessage::parse_text_format(desc, &list_colons(text)).map_err(|e| e.to_string())?;
    message
        .transcode_to::<ModelConfig>()
        .map_err(|e| e.to_string())
}

fn data_type(t: &TensorInfo) -> i32 {
    let d = match t.ty {
        Some(TensorType::Fp16) => DataType::TypeFp16,
        Some(TensorType::Fp32) => DataType::TypeFp32,
        Some(TensorType::Fp64) => DataType::TypeFp64,
        Some(TensorType::Bf16) => DataType::TypeBf16,
        Some(TensorType::U8) => DataType::TypeUint8,
        Some(TensorType::I32) => DataType::TypeInt32,
        Some(TensorType::I64) => DataType::TypeInt64,
        Some(TensorType::Bool) => DataType::TypeBool,
        Some(TensorType::I8) => DataType::TypeInt8,
        Some(TensorType::I16) => DataType::TypeInt16,
        Some(TensorType::U16) => DataType::TypeUint16,
        Some(TensorType::U32) => DataType::TypeUint32,
        Some(TensorType::U64) => DataType::TypeUint64,
        Some(TensorType::Bytes) => DataType::TypeString,
        None => DataType::TypeInvalid,
    };
    d as i32
}

/// `entry`'s configuration in Triton's terms: its `config.pbtxt` where it
/// has one, with what the model itself says filled in where the file is
/// silent (name, platform, backend, inputs, outputs, instances), else all
/// derived from the model.
pub fn model_config(entry: &ModelEntry, instances: usize) -> ModelConfig {
    let mut c = entry.config.as_deref().cloned().unwrap_or_default();
    if c.name.is_empty() {
        c.name = entry.name.clone();
    }
    if c.platform.is_empty() {
        c.platform = entry.backend.platform().into();
    }
    if c.backend.is_empty() {
        c.backend = entry.backend.name().into();
    }
    if c.input.is_empty() {
        c.input = entry
            .graph
            .inputs()
            .iter()
            .map(|t| ModelInput {
                name: t.name.clone(),
                data_type: data_type(t),
                dims: t.shape.clone(),
                ..Default::default()
            })
            .collect();
    }
    if c.output.is_empty() {
        c.output = entry
            .graph
            .outputs()
            .iter()
            .map(|t| ModelOutput {
                name: t.name.clone(),
                data_type: data_type(t),
                dims: t.shape.clone(),
                ..Default::default()
            })
            .collect();
    }
    if c.instance_group.is_empty() {
        let kind = if entry.graph.device().starts_with("cuda") {
            model_instance_group::Kind::Gpu
        } else {
            model_instance_group::Kind::Cpu
        };
        c.instance_group = vec![ModelInstanceGroup {
            name: entry.name.clone(),
            kind: kind as i32,
            count: i32::try_from(instances).unwrap_or(i32::MAX),
            ..Default::default()
        }];
    }
    c
}

/// `config` as Triton's HTTP API writes it: JSON with the proto's field
/// names and enum names.
pub fn config_json(config: &ModelConfig) -> serde_json::Value {
    let json = || -> Option<serde_json::Value> {
        let desc = descriptor().ok()?;
        let message =
            DynamicMessage::decode(desc, prost::Message::encode_to_vec(config).as_slice()).ok()?;
        let options = prost_reflect::SerializeOptions::new().use_proto_field_name(true);
        message
            .serialize_with_options(serde_json::value::Serializer, &options)
            .ok()
    };
    json().unwrap_or(serde_json::Value::Null)
}

/// The text with a `:` before every list that follows a field name without
/// one (`input [ {…} ]`, as Triton's configs write repeated messages: the
/// text format allows it, the parser wants the colon). Strings and
/// comments are left as they are.
fn list_colons(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    for c in text.chars() {
        if comment {
            comment = c != '\n';
        } else if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
        } else if c == '"' || c == '\'' {
            quote = Some(c);
        } else if c == '#' {
            comment = true;
        } else if c == '[' {
            let before = out.trim_end().chars().next_back();
            if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == '_') {
                out.push(':');
            }
        }
        out.push(c);
    }
    out
}

/// Which versions a model serves (Triton's `version_policy`).
#[derive(Clone, Debug, PartialEq)]
pub enum Policy {
    /// The highest `n` versions (Triton's default: 1).
    Latest(u32),
    /// Every version.
    All,
    /// These versions.
    Specific(Vec<i64>),
}

impl Policy {
    /// The policy a configuration sets.
    pub fn of(config: &ModelConfig) -> Policy {
        match config
            .version_policy
            .as_ref()
            .and_then(|p| p.policy_choice.as_ref())
        {
            Some(model_version_policy::PolicyChoice::All(_)) => Policy::All,
            Some(model_version_policy::PolicyChoice::Specific(s)) => {
                Policy::Specific(s.versions.clone())
            }
            Some(model_version_policy::PolicyChoice::Latest(l)) => {
                Policy::Latest(l.num_versions.max(1))
            }
            None => Policy::Latest(1),
        }
    }

    /// The versions served of those `available` (ascending).
    pub fn select<T>(&self, available: Vec<(u64, T)>) -> Vec<(u64, T)> {
        match self {
            Policy::All => available,
            Policy::Specific(wanted) => available
                .into_iter()
                .filter(|(v, _)| wanted.iter().any(|w| u64::try_from(*w).ok() == Some(*v)))
                .collect(),
            Policy::Latest(n) => {
                let skip = available.len().saturating_sub(*n as usize);
                available.into_iter().skip(skip).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_triton_config_reads_with_its_policy() {
        let c = parse(
            r#"
            name: "mlp"
            platform: "onnxruntime_onnx"
            max_batch_size: 8
            input [ { name: "input", data_type: TYPE_FP32, dims: [ 64 ] } ]
            version_policy: { specific: { versions: [1, 3] } }
            instance_group [ { count: 2, kind: KIND_CPU } ]
            "#,
        )
        .expect("a valid config");
        assert_eq!((c.name.as_str(), c.max_batch_size), ("mlp", 8));
        assert_eq!(c.input[0].dims, [64]);
        assert_eq!(Policy::of(&c), Policy::Specific(vec![1, 3]));
        let v = |list: &[u64]| list.iter().map(|&v| (v, ())).collect::<Vec<_>>();
        assert_eq!(Policy::of(&c).select(v(&[1, 2, 3])), v(&[1, 3]));
        assert_eq!(Policy::Latest(1).select(v(&[1, 2, 3])), v(&[3]));
        assert_eq!(Policy::All.select(v(&[1, 2])), v(&[1, 2]));
        // A `[` inside a string is not a list.
        assert_eq!(parse("name: \"a [b]\"").expect("a string").name, "a [b]");
        assert!(parse("name: ").is_err());
        assert!(parse("no_such_field: 1").is_err());
    }
}
