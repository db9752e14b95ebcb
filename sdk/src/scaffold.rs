//! `sandscore init`: a new scoring-module project that builds on its own.
//! The guest SDK and the WIT world are written into the project (`vendor/`),
//! compiled into this binary, so the project needs nothing but crates.io and
//! matches the runtime that made it.

use std::path::{Path, PathBuf};

use crate::SdkError;

/// What the new project scores.
#[derive(Clone, Debug)]
pub struct Options {
    /// Project folder; its last component names the crate and the endpoint.
    pub dir: PathBuf,
    /// A model file copied into `models/` (its stem names the model).
    pub model_file: Option<PathBuf>,
    /// The model's input tensor name.
    pub input: String,
    /// Features per row.
    pub features: usize,
}

/// The guest SDK and the WIT it is generated from, as this build has them.
const VENDORED: [(&str, &str); 5] = [
    (
        "vendor/sandscore-guest/src/lib.rs",
        include_str!("../../guest/src/lib.rs"),
    ),
    (
        "vendor/sandscore-guest/src/model.rs",
        include_str!("../../guest/src/model.rs"),
    ),
    (
        "vendor/sandscore-guest/src/tensor.rs",
        include_str!("../../guest/src/tensor.rs"),
    ),
    (
        "vendor/spec/wit/scoring.wit",
        include_str!("../../spec/wit/scoring.wit"),
    ),
    (
        "vendor/spec/wit/deps/wasi-nn/wasi-nn.wit",
        include_str!("../../spec/wit/deps/wasi-nn/wasi-nn.wit"),
    ),
];

const LIB_RS: &str = include_str!("scaffold/lib.rs.tmpl");

fn write(dir: &Path, rel: &str, text: &str) -> Result<(), SdkError> {
    let path = dir.join(rel);
    let err = |e: std::io::Error| SdkError::Invalid(format!("{}: {e}", path.display()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    std::fs::write(&path, text).map_err(err)
}

/// Copies a model file, or a model folder (a SavedModel) with everything
/// in it.
fn copy_model(from: &Path, to: &Path) -> std::io::Result<()> {
    if !from.is_dir() {
        return std::fs::copy(from, to).map(drop);
    }
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        copy_model(&e.path(), &to.join(e.file_name()))?;
    }
    Ok(())
}

/// Creates the project; refuses a folder that exists and is not empty.
/// Returns the files written.
pub fn init(o: &Options) -> Result<Vec<String>, SdkError> {
    let dir = &o.dir;
    if std::fs::read_dir(dir).is_ok_and(|mut e| e.next().is_some()) {
        return Err(SdkError::Invalid(format!(
            "{} exists and is not empty; pick a new folder",
            dir.display()
        )));
    }
    let name: String = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("scorer")
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(SdkError::Invalid(format!(
            "'{}' cannot name a crate; start the folder name with a letter",
            dir.display()
        )));
    }
    let model = o
        .model_file
        .as_ref()
        .and_then(|f| f.file_stem())
        .and_then(|s| s.to_str())
        .unwrap_or("model")
        .to_string();
    if o.features == 0 {
        return Err(SdkError::Invalid("features must be at least 1".into()));
    }
    // Both go into Rust source and docs as they are, so only plain names.
    for (what, v) in [("model file name", &model), ("input name", &o.input)] {
        let plain = !v.is_empty()
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
        if !plain {
            return Err(SdkError::Invalid(format!(
                "the {what} '{v}' may hold only letters, digits and _ . : -"
            )));
        }
    }
    // The image that reads the model, by its file's extension.
    let ext = o
        .model_file
        .as_ref()
        .and_then(|f| f.extension())
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let saved_model = o
        .model_file
        .as_ref()
        .is_some_and(|f| f.join("saved_model.pb").is_file());
    let (image, ext) = match ext.as_deref() {
        _ if saved_model => ("tensorflow-cpu", String::new()),
        Some("json" | "ubj") => ("xgboost-cpu", ext.clone().unwrap_or_default()),
        Some("tflite") => ("tflite-cpu", "tflite".into()),
        Some("pt" | "pth") => ("pytorch-cpu", ext.clone().unwrap_or_default()),
        _ => ("onnxruntime-cpu", "onnx".into()),
    };
    let version = env!("CARGO_PKG_VERSION");
    let mut written = Vec::new();
    let mut put = |rel: &str, text: &str| -> Result<(), SdkError> {
        write(dir, rel, text)?;
        written.push(rel.to_string());
        Ok(())
    };
    put(
        "Cargo.toml",
        &format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
sandscore-guest = {{ path = "vendor/sandscore-guest" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

# Small modules compile and start faster.
[profile.release]
opt-level = "s"
lto = true
strip = true
codegen-units = 1

# Not part of any enclosing workspace.
[workspace]
"#
        ),
    )?;
    put(
        "vendor/sandscore-guest/Cargo.toml",
        &format!(
            r#"[package]
name = "sandscore-guest"
description = "Guest SDK for sandscore scoring modules (vendored by sandscore init {version})"
version = "{version}"
edition = "2024"
license = "Apache-2.0"
publish = false

[dependencies]
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"
wit-bindgen = "0.61"
"#
        ),
    )?;
    for (rel, text) in VENDORED {
        put(rel, text)?;
    }
    put(
        "src/lib.rs",
        &LIB_RS
            .replace("{{name}}", &name)
            .replace("{{model}}", &model)
            .replace("{{input}}", &o.input)
            .replace("{{features}}", &o.features.to_string()),
    )?;
    let row: Vec<String> = (0..o.features)
        .map(|i| format!("{}", i as f32 / o.features as f32))
        .collect();
    put(
        "request.json",
        &format!("{{\"data\": [[{}]]}}\n", row.join(", ")),
    )?;
    let wasm = name.replace('-', "_");
    put(
        "sandscore.toml",
        &format!(
            r#"# Deploy with `sandscore deploy` (add --target container|kubernetes|kserve).
# Schema: spec/deployment.schema.json of sandscore {version}.
api_version = "sandscore/v1"
name = "{name}"
module = "target/wasm32-wasip2/release/{wasm}.wasm"
model_dir = "models"
sample = "request.json"      # must score before a deployment counts as valid
image = "{image}"    # the container and Kubernetes targets run this image

[limits]
workers = 2
timeout_ms = 10000
"#
        ),
    )?;
    put(".gitignore", "/target\n")?;
    let models = dir.join("models");
    std::fs::create_dir_all(&models)
        .map_err(|e| SdkError::Invalid(format!("{}: {e}", models.display())))?;
    match &o.model_file {
        Some(f) => {
            let to = models.join(f.file_name().unwrap_or_default());
            copy_model(f, &to).map_err(|e| SdkError::Invalid(format!("{}: {e}", f.display())))?;
            written.push(format!(
                "models/{}",
                to.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
        None => put(
            "models/README.md",
            &format!(
                "Put the model here as `{model}.{ext}` (its stem is the name `src/lib.rs` opens).\n"
            ),
        )?,
    }
    Ok(written)
}
