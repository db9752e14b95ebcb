//! The prebuilt images a deployment can name, read from the manifest the
//! images are built from (images/images.toml, compiled in), so the SDK and
//! `make images` never disagree on names and tags.

use serde::Deserialize;

use crate::SdkError;

const MANIFEST: &str = include_str!("../../images/images.toml");

/// One prebuilt image.
#[derive(Clone, Debug, Deserialize)]
pub struct Image {
    /// Repository, e.g. `sandscore/onnxruntime-cpu`.
    pub name: String,
    /// Tag of the image in the repository.
    pub tag: String,
    /// `cpu` or `gpu`.
    pub device: String,
    /// Backends built into it (`onnxruntime`, …).
    pub backends: Vec<String>,
    /// The image it is built on; the Debian one has the Python that builds
    /// a `score.py` at start.
    #[serde(default)]
    pub base: String,
    /// Whether it carries the Python runtime, which runs a `score.py` as it
    /// is (with its code precompiled).
    #[serde(default)]
    pub python_runtime: bool,
}

/// The base whose images build Python scripts (python3 + componentize-py).
pub const PYTHON_BASE: &str = "sandscore/base:bookworm";

impl Image {
    /// `name:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }

    /// The model formats KServe should route to it (`supportedModelFormats`).
    pub fn model_formats(&self) -> Vec<&'static str> {
        self.backends
            .iter()
            .filter_map(|b| match b.as_str() {
                "onnxruntime" => Some("onnx"),
                "xgboost" => Some("xgboost"),
                "tensorflow" => Some("tensorflow"),
                "tflite" => Some("tflite"),
                "pytorch" => Some("pytorch"),
                _ => None,
            })
            .collect()
    }
}

#[derive(Deserialize)]
struct Manifest {
    image: Vec<Image>,
}

/// Every image of the manifest.
pub fn all() -> Vec<Image> {
    toml::from_str::<Manifest>(MANIFEST)
        .map(|m| m.image)
        .unwrap_or_default()
}

/// The image a deployment runs: its `image` (a manifest name with or
/// without the `sandscore/` prefix and tag, or any `name:tag` of a derived
/// image), else ONNX Runtime when it has models and the minimal image when
/// it has none.
pub fn resolve(image: Option<&str>, has_models: bool) -> Result<Image, SdkError> {
    let wanted = image.unwrap_or(if has_models {
        "onnxruntime-cpu"
    } else {
        "minimal-cpu"
    });
    let images = all();
    let short = |i: &Image| i.name.trim_start_matches("sandscore/").to_string();
    if let Some(i) = images
        .iter()
        .find(|i| wanted == i.name || wanted == short(i) || wanted == i.reference())
    {
        return Ok(i.clone());
    }
    if let Some((name, tag)) = wanted.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        // A derived image: assume it serves what an ONNX Runtime image does
        // (with its Python runtime).
        return Ok(Image {
            name: name.into(),
            tag: tag.into(),
            device: "cpu".into(),
            backends: vec!["onnxruntime".into()],
            base: String::new(),
            python_runtime: true,
        });
    }
    let known: Vec<String> = images.iter().map(short).collect();
    Err(SdkError::Invalid(format!(
        "image '{wanted}' is not one of sandscore's ({}) and has no tag; name a prebuilt image or a derived image as name:tag",
        known.join(", ")
    )))
}

/// The image deployment `d` runs: its `image`, else the ONNX Runtime GPU
/// image when a model runs on the GPU, else as [`resolve`] picks. A CPU
/// image for GPU models is refused unless `gpu_fallback = "cpu"` lets them
/// run on the CPU.
pub fn for_deployment(d: &crate::Deployment) -> Result<Image, SdkError> {
    let gpu = d.gpus() > 0;
    let image = match (&d.image, gpu) {
        (None, true) => resolve(Some("onnxruntime-gpu"), true)?,
        (image, _) => resolve(image.as_deref(), d.model_dir.is_some())?,
    };
    // A derived image (not in the manifest, so no base known) may be built
    // on the GPU image: only sandscore's own CPU images are refused.
    let on_gpu = d.devices.values().any(|v| v == "gpu");
    let known_cpu = image.device != "gpu" && !image.base.is_empty();
    if on_gpu && known_cpu && d.gpu_fallback.as_deref() != Some("cpu") {
        // The GPU image of the same framework.
        let gpu_image = all()
            .into_iter()
            .find(|i| i.device == "gpu" && i.backends == image.backends)
            .map_or_else(
                || "onnxruntime-gpu".to_string(),
                |i| i.name.trim_start_matches("sandscore/").to_string(),
            );
        return Err(SdkError::Invalid(format!(
            "devices put models on the GPU but {} is a CPU image; set image = \"{gpu_image}\" (or gpu_fallback = \"cpu\" to run them on the CPU)",
            image.reference()
        )));
    }
    let script = d.module.as_deref().is_some_and(crate::python::is_script);
    if script && !image.base.is_empty() && !image.python_runtime && image.base != PYTHON_BASE {
        let with: Vec<String> = all()
            .into_iter()
            .filter(|i| i.python_runtime)
            .map(|i| i.name.trim_start_matches("sandscore/").to_string())
            .collect();
        return Err(SdkError::Invalid(format!(
            "{} has neither the Python runtime nor a Python to build a score.py; use an image with the runtime ({}), or build a component first (`sandscore build --component score.py`) and deploy the .wasm",
            image.reference(),
            with.join(", ")
        )));
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_through_the_manifest() {
        let ort = resolve(Some("onnxruntime-cpu"), true).unwrap();
        assert!(ort.reference().starts_with("sandscore/onnxruntime-cpu:"));
        assert_eq!(ort.model_formats(), ["onnx"]);
        assert_eq!(resolve(None, true).unwrap().name, ort.name);
        assert_eq!(resolve(None, false).unwrap().name, "sandscore/minimal-cpu");
        assert_eq!(
            resolve(Some("me/extended:1"), true).unwrap().reference(),
            "me/extended:1"
        );
        assert!(resolve(Some("nonesuch"), true).is_err());
    }

    #[test]
    fn gpu_models_pick_the_gpu_image_and_refuse_a_cpu_one() {
        let mut d = crate::Deployment::new("x", None, Some("m".into()));
        assert_eq!(for_deployment(&d).unwrap().device, "cpu");
        d.devices.insert("mlp".into(), "gpu".into());
        let gpu = for_deployment(&d).unwrap();
        assert_eq!(
            (gpu.name.as_str(), gpu.device.as_str()),
            ("sandscore/onnxruntime-gpu", "gpu")
        );
        d.image = Some("onnxruntime-cpu".into());
        let e = for_deployment(&d).unwrap_err().to_string();
        assert!(
            e.contains("is a CPU image") && e.contains("onnxruntime-gpu"),
            "{e}"
        );
        d.image = Some("tensorflow-cpu".into());
        let e = for_deployment(&d).unwrap_err().to_string();
        assert!(e.contains("\"tensorflow-gpu\""), "{e}");
        d.image = Some("me/derived-from-gpu:1".into());
        assert!(for_deployment(&d).is_ok(), "a derived image may carry CUDA");
        d.image = Some("onnxruntime-cpu".into());
        d.gpu_fallback = Some("cpu".into());
        assert_eq!(for_deployment(&d).unwrap().device, "cpu");
    }
}
