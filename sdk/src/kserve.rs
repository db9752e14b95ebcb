//! The KServe target, laid out as a platform team runs KServe: one
//! `ClusterServingRuntime` per image and version, which every
//! InferenceService of that image shares, and an InferenceService per
//! deployment that adds only what is its own (resources, limits, where its
//! module and models come from).
//!
//! Module and models reach the pod the KServe way: from `storageUri`
//! (the storage initializer copies it to `/mnt/models`, where the runtime
//! finds the module beside the models), from a PersistentVolumeClaim (as
//! `pvc://CLAIM`), or, when small and with no storage named, from
//! ConfigMaps mounted where the storage initializer would put them.
//!
//! The runtime is told the InferenceService's name (`--model-name={{.Name}}`,
//! which KServe fills in), so a client calls the model what it called the
//! service.

use serde_json::{Value, json};

use crate::images::Image;
use crate::kubernetes::{
    Carried, Manifests, carry_module, image_reference, metadata, models_configmap, probe,
    resources, security_context,
};
use crate::{Deployment, SdkError};

/// The file of the shared runtime.
pub const RUNTIME_FILE: &str = "servingruntime.yaml";
/// The KServe target's files, in apply order.
pub const FILES: [&str; 3] = ["configmaps.yaml", RUNTIME_FILE, "inferenceservice.yaml"];

/// KServe's HTTP port for a runtime, and the one sandscore's gRPC
/// listens on beside it (Knative routes one port; in raw deployment mode
/// a Service port can name it).
const HTTP_PORT: u16 = 8080;
const GRPC_PORT: u16 = 8081;
/// Where KServe's storage initializer puts the storage's files.
pub const MODELS_PATH: &str = "/mnt/models";

/// The shared runtime's name: `sandscore-IMAGE-TAG`, dots as dashes.
pub fn runtime_name(image: &Image) -> String {
    let short = image.name.trim_start_matches("sandscore/");
    let raw = format!("sandscore-{short}-{}", image.tag).to_ascii_lowercase();
    let name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name.trim_matches('-').chars().take(63).collect()
}

/// Where the pod's models come from: a storage URI (given, or the claim's).
fn storage_uri(d: &Deployment) -> Option<String> {
    d.kubernetes.storage_uri.clone().or_else(|| {
        d.kubernetes
            .model_claim
            .as_ref()
            .map(|c| format!("pvc://{c}"))
    })
}

/// The `ClusterServingRuntime` of `image`: the same for every deployment of
/// it (nothing of one deployment is in it), so applying it again changes
/// nothing.
fn serving_runtime(d: &Deployment, image: &Image) -> Value {
    let formats: Vec<Value> = image
        .model_formats()
        .iter()
        .map(|f| json!({ "name": f, "version": "1", "autoSelect": false }))
        .collect();
    let env = json!([
        { "name": "SERVER_PORT", "value": HTTP_PORT.to_string() },
        { "name": "SANDSCORE_GRPC_PORT", "value": GRPC_PORT.to_string() },
        { "name": "AZUREML_MODEL_DIR", "value": MODELS_PATH },
        { "name": "AZUREML_ENTRY_SCRIPT", "value": "" },
        { "name": "SANDSCORE_CACHE_DIR", "value": "/tmp/sandscore-cache" },
    ]);
    let mut meta = json!({
        "name": runtime_name(image),
        "labels": {
            "app.kubernetes.io/name": "sandscore",
            "app.kubernetes.io/component": "serving-runtime",
            "app.kubernetes.io/managed-by": "sandscore",
        },
    });
    // Runtimes are cluster-wide: no namespace.
    meta["labels"]["app.kubernetes.io/version"] = json!(label_value(&image.tag));
    let default_resources = json!({
        "requests": { "cpu": "1", "memory": "1Gi" },
        "limits": { "cpu": "1", "memory": "1Gi" },
    });
    json!({
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ClusterServingRuntime",
        "metadata": meta,
        "spec": {
            "annotations": {
                "prometheus.kserve.io/port": HTTP_PORT.to_string(),
                "prometheus.kserve.io/path": "/metrics",
            },
            "supportedModelFormats": formats,
            "protocolVersions": ["v2", "grpc-v2"],
            "multiModel": false,
            "containers": [{
                "name": "kserve-container",
                "image": image_reference(d, image),
                "imagePullPolicy": "IfNotPresent",
                "args": ["serve", "--model-name={{.Name}}"],
                "env": env,
                "ports": [{ "containerPort": HTTP_PORT, "protocol": "TCP" }],
                "securityContext": security_context(),
                "resources": default_resources,
                "startupProbe": probe("/v2/health/live", json!(HTTP_PORT), 2, 60),
                "livenessProbe": probe("/v2/health/live", json!(HTTP_PORT), 10, 3),
                "readinessProbe": probe("/v2/health/ready", json!(HTTP_PORT), 5, 2),
                "volumeMounts": [{ "name": "tmp", "mountPath": "/tmp" }],
            }],
            "volumes": [{ "name": "tmp", "emptyDir": { "sizeLimit": "512Mi" } }],
        },
    })
}

/// A tag as a label value (`[-._a-zA-Z0-9]`, at most 63).
fn label_value(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect()
}

/// The module's path in the pod when the storage holds it beside the
/// models: its own file name under `/mnt/models`.
fn stored_module(d: &Deployment) -> Value {
    let name = d
        .module
        .as_ref()
        .and_then(|m| m.file_name())
        .map(|n| format!("{MODELS_PATH}/{}", n.to_string_lossy()))
        .unwrap_or_default();
    json!({ "name": "AZUREML_ENTRY_SCRIPT", "value": name })
}

/// The KServe target's manifests.
pub fn manifests(d: &Deployment, image: &Image) -> Result<Manifests, SdkError> {
    let mut c = Carried::default();
    let storage = storage_uri(d);
    match &storage {
        // Never a ConfigMap when storage holds the deployment: the module
        // (and a script's packages) are expected in it, beside the models.
        Some(_) => {
            c.env.push(stored_module(d));
            if d.python_packages.is_some() {
                c.env.push(json!({
                    "name": "AZUREML_EXTRA_PYTHON_LIB_PATH",
                    "value": format!("{MODELS_PATH}/python-packages"),
                }));
            }
        }
        None => {
            c = carry_module(d, image)?;
            if let Some(dir) = &d.model_dir {
                let (cm, volume) = models_configmap(d, dir)?;
                c.configmaps.push(cm);
                c.mount(volume, MODELS_PATH);
            }
        }
    }
    let mut model = json!({
        "modelFormat": { "name": image.model_formats().first().copied().unwrap_or("onnx") },
        "runtime": runtime_name(image),
        "protocolVersion": "v2",
        "resources": resources(d),
    });
    if let Some(uri) = &storage {
        model["storageUri"] = json!(uri);
    }
    let args = d.limit_args();
    if !args.is_empty() {
        // KServe appends these to the runtime's own.
        model["args"] = json!(args);
    }
    if !c.env.is_empty() {
        model["env"] = json!(c.env);
    }
    if !c.mounts.is_empty() {
        model["volumeMounts"] = json!(c.mounts);
    }
    let mut predictor = json!({ "model": model });
    if let Some(r) = d.kubernetes.replicas {
        predictor["minReplicas"] = json!(r);
    }
    if !c.volumes.is_empty() {
        predictor["volumes"] = json!(c.volumes);
    }
    let inference_service = json!({
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata(d, &d.name),
        "spec": { "predictor": predictor },
    });
    Ok(vec![
        (FILES[0], c.configmaps),
        (FILES[1], vec![serving_runtime(d, image)]),
        (FILES[2], vec![inference_service]),
    ])
}

/// What the storage must hold for the pod to start, when storage holds
/// the deployment.
pub fn storage_steps(d: &Deployment) -> Vec<String> {
    let Some(uri) = storage_uri(d) else {
        return Vec::new();
    };
    let mut what = Vec::new();
    if let Some(dir) = &d.model_dir {
        what.push(format!("the files of {}", dir.display()));
    }
    if let Some(m) = &d.module {
        let compiled = m.with_extension("cwasm");
        what.push(if crate::python::is_script(m) {
            format!("{} and the files beside it", m.display())
        } else if compiled.is_file() {
            format!("{} and {}", m.display(), compiled.display())
        } else {
            m.display().to_string()
        });
    }
    if let Some(p) = &d.python_packages {
        what.push(format!("{} as python-packages/", p.display()));
    }
    if what.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "{uri} must hold {} at its top (KServe copies it to {MODELS_PATH}, where the runtime reads it)",
        what.join(", ")
    )]
}
