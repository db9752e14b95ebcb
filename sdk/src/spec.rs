//! The deployment description, versioned: `api_version = "sandscore/v1"`.
//! The JSON Schema is `spec/deployment.schema.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::SdkError;

/// The schema version this SDK reads and writes.
pub const API_VERSION: &str = "sandscore/v1";

/// Sandbox limits of a deployment; unset fields keep the runtime's defaults.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock limit of one request inside the module, in milliseconds
    /// (`--timeout`).
    pub timeout_ms: Option<u64>,
    /// Largest linear memory of one instance, in MiB (`--memory-limit`).
    pub memory_mb: Option<u64>,
    /// Instances that score in parallel (`--workers`).
    pub workers: Option<u32>,
    /// `pooled` or `isolated`.
    pub isolation: Option<String>,
}

/// CPU and memory for the container and Kubernetes targets, in Kubernetes
/// quantity notation (`"500m"`, `"2"`; `"512Mi"`, `"1Gi"`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPUs (default `"1"`).
    #[serde(default = "default_cpu")]
    pub cpu: String,
    /// Memory (default `"1Gi"`).
    #[serde(default = "default_memory")]
    pub memory: String,
    /// NVIDIA GPUs (`nvidia.com/gpu`) for the container and pod; none means
    /// one when any model's device is `gpu`, else none.
    pub gpu: Option<u32>,
}

fn default_cpu() -> String {
    "1".into()
}

fn default_memory() -> String {
    "1Gi".into()
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu: default_cpu(),
            memory: default_memory(),
            gpu: None,
        }
    }
}

/// Settings only the Kubernetes target reads.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSettings {
    /// Namespace of every object (none: the one `kubectl` uses).
    pub namespace: Option<String>,
    /// Pods of the Deployment (default 1).
    pub replicas: Option<u32>,
    /// A PersistentVolumeClaim holding the model directory; none puts the
    /// models in a ConfigMap, which only fits models under ~730 KiB.
    pub model_claim: Option<String>,
    /// Where KServe's storage initializer fetches the models from
    /// (`pvc://…`, `s3://…`, `gs://…`); none mounts them like the Deployment.
    pub storage_uri: Option<String>,
    /// Image registry prefix for the cluster (`registry.example.com/`).
    pub registry: Option<String>,
}

/// One deployment: a module, its models, where and how it runs.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// Schema version of the description ([`API_VERSION`]).
    pub api_version: String,
    /// Name of the endpoint (letters, digits, `-`).
    pub name: String,
    /// The scoring module (`.wasm`); none serves the models over V2 alone.
    pub module: Option<PathBuf>,
    /// The model directory.
    pub model_dir: Option<PathBuf>,
    /// Image for the container target (one of images/images.toml's).
    pub image: Option<String>,
    /// Environment variables the module sees.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Sandbox limits of the runtime.
    #[serde(default)]
    pub limits: Limits,
    /// Port; none picks a free one.
    pub port: Option<u16>,
    /// A folder of pure-Python packages a `score.py` imports (Azure ML's
    /// `AZUREML_EXTRA_PYTHON_LIB_PATH`), shipped with the deployment; the
    /// CLI resolves a `requirements.txt` beside the script into one.
    pub python_packages: Option<PathBuf>,
    /// A request that must score before the deployment counts as valid
    /// (a JSON file, relative to the deployment file).
    pub sample: Option<PathBuf>,
    /// Where each model runs: model name → `cpu` or `gpu` (default cpu).
    #[serde(default)]
    pub devices: BTreeMap<String, String>,
    /// What a `gpu` model does where CUDA cannot be used: `none` (fail,
    /// the default) or `cpu`.
    pub gpu_fallback: Option<String>,
    /// CPU, memory and GPUs for the container and Kubernetes targets.
    #[serde(default)]
    pub resources: Resources,
    /// Settings of the Kubernetes target.
    #[serde(default)]
    pub kubernetes: KubernetesSettings,
}

impl Deployment {
    /// A deployment of `module` named `name`, everything else default.
    pub fn new(name: &str, module: Option<PathBuf>, model_dir: Option<PathBuf>) -> Self {
        Deployment {
            api_version: API_VERSION.into(),
            name: name.into(),
            module,
            model_dir,
            image: None,
            env: BTreeMap::new(),
            limits: Limits::default(),
            port: None,
            python_packages: None,
            sample: None,
            devices: BTreeMap::new(),
            gpu_fallback: None,
            resources: Resources::default(),
            kubernetes: KubernetesSettings::default(),
        }
    }

    /// GPUs the deployment asks the engine or cluster for: `resources.gpu`,
    /// else one when any model runs on the GPU.
    pub fn gpus(&self) -> u32 {
        self.resources
            .gpu
            .unwrap_or(u32::from(self.devices.values().any(|d| d == "gpu")))
    }

    /// Reads a `sandscore.toml`; relative paths are taken from its folder.
    pub fn from_file(path: &Path) -> Result<Self, SdkError> {
        let err = |reason: String| SdkError::Spec {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut d: Deployment = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let absolute = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        d.module = d.module.as_ref().map(absolute);
        d.model_dir = d.model_dir.as_ref().map(absolute);
        d.sample = d.sample.as_ref().map(absolute);
        d.python_packages = d.python_packages.as_ref().map(absolute);
        d.check_fields().map_err(err)?;
        Ok(d)
    }

    /// Checks what can be checked without the runtime.
    pub fn check_fields(&self) -> Result<(), String> {
        if self.api_version != API_VERSION {
            return Err(format!(
                "api_version is '{}'; this SDK reads '{API_VERSION}'",
                self.api_version
            ));
        }
        // A DNS-1035 label short enough for the longest derived Kubernetes
        // name (`NAME-predictor`, `NAME-runtime`, `NAME-models`).
        let ok = (1..=40).contains(&self.name.len())
            && self.name.starts_with(|c: char| c.is_ascii_lowercase())
            && !self.name.ends_with('-')
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(format!(
                "name '{}' must be 1-40 lower-case letters, digits or '-', starting with a letter and not ending with '-'",
                self.name
            ));
        }
        if let Some(r) = &self.kubernetes.registry {
            crate::registry::normalize(r).map_err(|e| match e {
                crate::SdkError::Invalid(m) => format!("kubernetes.{m}"),
                e => e.to_string(),
            })?;
        }
        if let Some((m, d)) = self
            .devices
            .iter()
            .find(|(_, d)| *d != "cpu" && *d != "gpu")
        {
            return Err(format!("devices.{m} is '{d}'; use cpu or gpu"));
        }
        if let Some(f) = self
            .gpu_fallback
            .as_deref()
            .filter(|f| *f != "none" && *f != "cpu")
        {
            return Err(format!("gpu_fallback is '{f}'; use none or cpu"));
        }
        if let Some(i) = &self.limits.isolation
            && i != "pooled"
            && i != "isolated"
        {
            return Err(format!("limits.isolation is '{i}'; use pooled or isolated"));
        }
        for (what, q) in [
            ("cpu", &self.resources.cpu),
            ("memory", &self.resources.memory),
        ] {
            let least = if what == "cpu" {
                0.001
            } else {
                32.0 * 1024.0 * 1024.0
            };
            if crate::quantity::parse(q).is_none_or(|v| v < least) {
                return Err(format!(
                    "resources.{what} is '{q}'; use a Kubernetes quantity such as \"500m\", \"2\", \"512Mi\" or \"1Gi\" (at least 1m CPU and 32Mi memory)"
                ));
            }
        }
        Ok(())
    }

    /// The runtime flags this deployment means (module, models, limits, env).
    pub fn runtime_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(m) = &self.module {
            a.extend(["--module".to_string(), m.display().to_string()]);
        }
        if let Some(d) = &self.model_dir {
            a.extend(["--model-dir".to_string(), d.display().to_string()]);
        }
        if let Some(p) = &self.python_packages {
            a.extend(["--python-packages".to_string(), p.display().to_string()]);
        }
        a.extend(self.limit_args());
        a
    }

    /// The runtime flags of the limits and environment alone (the targets
    /// that mount module and models at fixed paths add those themselves).
    pub fn limit_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        let mut push = |k: &str, v: String| {
            a.push(k.to_string());
            a.push(v);
        };
        if let Some(t) = self.limits.timeout_ms {
            push("--timeout", t.to_string());
        }
        if let Some(m) = self.limits.memory_mb {
            push("--memory-limit", m.to_string());
        }
        if let Some(w) = self.limits.workers {
            push("--workers", w.to_string());
        }
        if let Some(i) = &self.limits.isolation {
            push("--isolation", i.clone());
        }
        for (k, v) in &self.env {
            push("--guest-env", format!("{k}={v}"));
        }
        for (model, device) in &self.devices {
            push("--model-device", format!("{model}={device}"));
        }
        if let Some(f) = &self.gpu_fallback {
            push("--gpu-fallback", f.clone());
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_file_and_resolves_paths() {
        let dir = std::env::temp_dir().join(format!("sandscore-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sandscore.toml");
        std::fs::write(
            &file,
            "api_version = \"sandscore/v1\"\nname = \"mlp\"\nmodule = \"m.wasm\"\nmodel_dir = \"/models\"\n[limits]\nworkers = 2\n[env]\nMODE = \"x\"\n",
        )
        .unwrap();
        let d = Deployment::from_file(&file).unwrap();
        assert_eq!(d.module, Some(dir.join("m.wasm")));
        assert_eq!(d.model_dir, Some(PathBuf::from("/models")));
        assert!(d.runtime_args().windows(2).any(|w| w == ["--workers", "2"]));
        assert!(
            d.runtime_args()
                .windows(2)
                .any(|w| w == ["--guest-env", "MODE=x"])
        );
        std::fs::write(&file, "api_version = \"sandscore/v9\"\nname = \"mlp\"\n").unwrap();
        assert!(
            Deployment::from_file(&file)
                .unwrap_err()
                .to_string()
                .contains("sandscore/v1")
        );
        std::fs::write(
            &file,
            "api_version = \"sandscore/v1\"\nname = \"Bad Name\"\n",
        )
        .unwrap();
        assert!(
            Deployment::from_file(&file)
                .unwrap_err()
                .to_string()
                .contains("lower-case")
        );
        std::fs::write(
            &file,
            "api_version = \"sandscore/v1\"\nname = \"x\"\n[devices]\nmlp = \"tpu\"\n",
        )
        .unwrap();
        assert!(
            Deployment::from_file(&file)
                .unwrap_err()
                .to_string()
                .contains("use cpu or gpu")
        );
        std::fs::write(
            &file,
            "api_version = \"sandscore/v1\"\nname = \"x\"\nmystery = 1\n",
        )
        .unwrap();
        assert!(
            Deployment::from_file(&file)
                .unwrap_err()
                .to_string()
                .contains("mystery")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
