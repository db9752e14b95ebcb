//! The Kubernetes and KServe targets: manifests written to a folder, and
//! applied with `kubectl` when it is installed. Writing them needs nothing:
//! the folder is what a GitOps repository or a CI job would take.
//!
//! - `configmaps.yaml`: the module (and the models, when no claim holds them)
//! - `deployment.yaml`: a hardened Deployment (non-root, read-only root,
//!   no capabilities, probes on the health routes) and its Service
//! - `kserve.yaml`: a `ServingRuntime` for the image and an
//!   `InferenceService` speaking the V2 protocol

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::check::CheckReport;
use crate::images::{self, Image};
use crate::store::{self, Placement, Record};
use crate::{Deployment, SdkError};

/// What a ConfigMap may hold before base64: the API server's limit is 1 MiB
/// of object, and binaryData grows by a third.
const CONFIGMAP_BYTES: u64 = 750_000;
/// The port the image listens on under a plain Deployment, and under KServe
/// (which expects 8080).
const PORT: u16 = 5001;
const GRPC_PORT: u16 = 8001;
/// Where a script's packages folder is mounted in the pod.
const PACKAGES_PATH: &str = "/python-packages";
const KSERVE_PORT: u16 = 8080;
/// KServe's port for a runtime's gRPC (named `h2c` where an
/// InferenceService exposes it).
const KSERVE_GRPC_PORT: u16 = 8081;

/// The files written, in apply order.
pub const FILES: [&str; 3] = ["configmaps.yaml", "deployment.yaml", "kserve.yaml"];

/// The objects of each file, for `deployment` run from `image`.
pub struct Manifests {
    /// Objects of `configmaps.yaml`: ConfigMaps of the module and (unless a
    /// claim holds them) the models.
    pub configmaps: Vec<Value>,
    /// Objects of `deployment.yaml`: the Deployment and its Service.
    pub deployment: Vec<Value>,
    /// Objects of `kserve.yaml`: the `ServingRuntime` and `InferenceService`.
    pub kserve: Vec<Value>,
}

fn labels(d: &Deployment) -> Value {
    json!({
        "app.kubernetes.io/name": "sandscore",
        "app.kubernetes.io/instance": d.name,
        "app.kubernetes.io/managed-by": "sandscore",
    })
}

fn metadata(d: &Deployment, name: &str) -> Value {
    let mut m = json!({ "name": name, "labels": labels(d) });
    if let Some(ns) = &d.kubernetes.namespace {
        m["namespace"] = json!(ns);
    }
    m
}

/// Files under `dir`, relative paths in a stable order.
fn files(dir: &Path) -> Result<Vec<PathBuf>, SdkError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d)
            .map_err(|e| SdkError::Invalid(format!("{}: {e}", d.display())))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn binary_configmap(
    d: &Deployment,
    name: &str,
    entries: &[(String, PathBuf)],
) -> Result<Value, SdkError> {
    let mut data = serde_json::Map::new();
    for (key, path) in entries {
        let bytes = std::fs::read(path)
            .map_err(|e| SdkError::Invalid(format!("{}: {e}", path.display())))?;
        data.insert(
            key.clone(),
            json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
        );
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(d, name),
        "binaryData": data,
    }))
}

/// A ConfigMap of every file under `dir` (each keyed by its relative path)
/// and the volume that lays them out again as they were; `what` names the
/// folder in errors.
fn folder_configmap(
    d: &Deployment,
    name: &str,
    volume: &str,
    dir: &Path,
    what: &str,
) -> Result<(Value, Value), SdkError> {
    // Byte code is the interpreter's cache, not the deployment's.
    let rels: Vec<PathBuf> = files(dir)?
        .into_iter()
        .filter(|r| !r.components().any(|c| c.as_os_str() == "__pycache__"))
        .collect();
    let total: u64 = rels
        .iter()
        .filter_map(|r| std::fs::metadata(dir.join(r)).ok())
        .map(|m| m.len())
        .sum();
    if total > CONFIGMAP_BYTES {
        return Err(SdkError::Invalid(format!(
            "{what} ({}) are {} KiB, too big for a ConfigMap (at most {} KiB)",
            dir.display(),
            total / 1024,
            CONFIGMAP_BYTES / 1024
        )));
    }
    let entries: Vec<(String, PathBuf)> = rels.iter().map(|r| (key(r), dir.join(r))).collect();
    for (i, (k, _)) in entries.iter().enumerate() {
        if let Some((_, other)) = entries[..i].iter().find(|(o, _)| o == k) {
            return Err(SdkError::Invalid(format!(
                "{} and {} would share the ConfigMap key '{k}'; rename one{}",
                other.display(),
                entries[i].1.display(),
                if volume == "models" {
                    ", or use kubernetes.model_claim"
                } else {
                    ""
                }
            )));
        }
    }
    let cm = binary_configmap(d, name, &entries)?;
    let items: Vec<Value> = rels
        .iter()
        .map(|r| json!({ "key": key(r), "path": r.to_string_lossy() }))
        .collect();
    Ok((
        cm,
        json!({ "name": volume, "configMap": { "name": name, "items": items } }),
    ))
}

/// A ConfigMap key for a relative path (keys allow `[-._a-zA-Z0-9]`).
fn key(rel: &Path) -> String {
    rel.to_string_lossy()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn security_context() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "capabilities": { "drop": ["ALL"] },
        "seccompProfile": { "type": "RuntimeDefault" },
    })
}

/// Requests equal to limits (Guaranteed QoS); GPUs as the NVIDIA device
/// plugin's extended resource.
fn resources(d: &Deployment) -> Value {
    let mut r = json!({ "cpu": d.resources.cpu, "memory": d.resources.memory });
    if d.gpus() > 0 {
        r["nvidia.com/gpu"] = json!(d.gpus().to_string());
    }
    json!({ "requests": r, "limits": r })
}

/// The manifests of `d`; fails when the module or models do not fit where
/// they are meant to go.
pub fn manifests(d: &Deployment) -> Result<Manifests, SdkError> {
    d.check_fields().map_err(SdkError::Invalid)?;
    let image: Image = images::for_deployment(d)?;
    let reference = format!(
        "{}{}",
        d.kubernetes.registry.as_deref().unwrap_or(""),
        image.reference()
    );
    let module_cm = format!("{}-module", d.name);
    let models_cm = format!("{}-models", d.name);
    let mut configmaps = Vec::new();
    let mut volumes = vec![json!({ "name": "tmp", "emptyDir": { "sizeLimit": "512Mi" } })];
    let mut mounts = vec![json!({ "name": "tmp", "mountPath": "/tmp" })];
    let mut env = vec![json!({ "name": "SANDSCORE_CACHE_DIR", "value": "/tmp/sandscore-cache" })];
    match &d.module {
        // A Python script travels as its folder, vendored packages and
        // requirements.txt included, and runs in the image's Python runtime.
        Some(m) if crate::python::is_script(m) => {
            let dir = match m.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let (cm, volume) =
                folder_configmap(d, &module_cm, "module", dir, "the script's folder")?;
            configmaps.push(cm);
            volumes.push(volume);
            mounts.push(json!({ "name": "module", "mountPath": "/app", "readOnly": true }));
            let name = m.file_name().unwrap_or_default().to_string_lossy();
            env.push(json!({ "name": "AZUREML_ENTRY_SCRIPT", "value": format!("/app/{name}") }));
        }
        Some(m) => {
            let size = std::fs::metadata(m)
                .map_err(|e| SdkError::Invalid(format!("{}: {e}", m.display())))?
                .len();
            if size > CONFIGMAP_BYTES {
                return Err(SdkError::Invalid(format!(
                    "the module is {} KiB; a ConfigMap holds at most {} KiB (bake it into an image derived from {})",
                    size / 1024,
                    CONFIGMAP_BYTES / 1024,
                    image.reference()
                )));
            }
            configmaps.push(binary_configmap(
                d,
                &module_cm,
                &[("score.wasm".into(), m.clone())],
            )?);
            volumes.push(json!({ "name": "module", "configMap": { "name": module_cm } }));
            mounts.push(json!({ "name": "module", "mountPath": "/app", "readOnly": true }));
            env.push(json!({ "name": "AZUREML_ENTRY_SCRIPT", "value": "/app/score.wasm" }));
        }
        None => env.push(json!({ "name": "AZUREML_ENTRY_SCRIPT", "value": "" })),
    }
    // A script's packages (its requirements.txt resolved on the host, or a
    // folder the deployment names): stamped, so the pod never resolves.
    if let Some(p) = &d.python_packages {
        let cm_name = format!("{}-packages", d.name);
        let (cm, volume) = folder_configmap(d, &cm_name, "packages", p, "the Python packages")?;
        configmaps.push(cm);
        volumes.push(volume);
        mounts.push(json!({ "name": "packages", "mountPath": PACKAGES_PATH, "readOnly": true }));
        env.push(json!({ "name": "AZUREML_EXTRA_PYTHON_LIB_PATH", "value": PACKAGES_PATH }));
    }
    // Where the models come from: a claim, a ConfigMap, or nothing.
    let models_volume = match (&d.model_dir, &d.kubernetes.model_claim) {
        (_, Some(claim)) => Some(json!({
            "name": "models",
            "persistentVolumeClaim": { "claimName": claim, "readOnly": true },
        })),
        (Some(dir), None) => {
            let (cm, volume) = folder_configmap(d, &models_cm, "models", dir, "the models")
                .map_err(|e| match e {
                    SdkError::Invalid(m) if m.contains("too big for a ConfigMap") => SdkError::Invalid(format!(
                        "{m}: put them in a PersistentVolumeClaim and set kubernetes.model_claim (and kubernetes.storage_uri for KServe)"
                    )),
                    e => e,
                })?;
            configmaps.push(cm);
            Some(volume)
        }
        (None, None) => None,
    };
    let mut args = vec![json!("serve")];
    args.extend(d.limit_args().into_iter().map(Value::from));

    // The plain Deployment and its Service.
    let mut dep_env = env.clone();
    let mut dep_volumes = volumes.clone();
    let mut dep_mounts = mounts.clone();
    match &models_volume {
        Some(v) => {
            dep_volumes.push(v.clone());
            dep_mounts.push(json!({ "name": "models", "mountPath": "/models", "readOnly": true }));
            dep_env.push(json!({ "name": "AZUREML_MODEL_DIR", "value": "/models" }));
        }
        None => dep_env.push(json!({ "name": "AZUREML_MODEL_DIR", "value": "" })),
    }
    dep_env.push(json!({ "name": "SERVER_PORT", "value": PORT.to_string() }));
    dep_env.push(json!({ "name": "SANDSCORE_GRPC_PORT", "value": GRPC_PORT.to_string() }));
    let probe = |path: &str, period: u32, failures: u32| {
        json!({
            "httpGet": { "path": path, "port": "http" },
            "periodSeconds": period,
            "failureThreshold": failures,
        })
    };
    let selector = json!({
        "app.kubernetes.io/name": "sandscore",
        "app.kubernetes.io/instance": d.name,
    });
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(d, &d.name),
        "spec": {
            "replicas": d.kubernetes.replicas.unwrap_or(1),
            "selector": { "matchLabels": selector },
            "template": {
                "metadata": { "labels": labels(d) },
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    "terminationGracePeriodSeconds": 40,
                    "containers": [{
                        "name": "sandscore",
                        "image": reference,
                        "args": args,
                        "env": dep_env,
                        "ports": [
                            { "name": "http", "containerPort": PORT, "protocol": "TCP" },
                            { "name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP" },
                        ],
                        "securityContext": security_context(),
                        "resources": resources(d),
                        "startupProbe": probe("/v2/health/live", 2, 30),
                        "livenessProbe": probe("/v2/health/live", 10, 3),
                        "readinessProbe": probe("/v2/health/ready", 5, 2),
                        "volumeMounts": dep_mounts,
                    }],
                    "volumes": dep_volumes,
                },
            },
        },
    });
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(d, &d.name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [
                { "name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP" },
                {
                    "name": "grpc",
                    "port": GRPC_PORT,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "kubernetes.io/h2c",
                },
            ],
        },
    });

    // KServe: the runtime carries the image and the module; the models come
    // from storage_uri (KServe's storage initializer puts them in
    // /mnt/models), else from the same volume as the Deployment's.
    let runtime_name = format!("{}-runtime", d.name);
    let mut ks_env = env;
    ks_env.push(json!({ "name": "SERVER_PORT", "value": KSERVE_PORT.to_string() }));
    ks_env.push(json!({ "name": "SANDSCORE_GRPC_PORT", "value": KSERVE_GRPC_PORT.to_string() }));
    let mut ks_volumes = volumes;
    let mut ks_mounts = mounts;
    let storage_uri = d.kubernetes.storage_uri.clone();
    match (&storage_uri, &models_volume) {
        (Some(_), _) => ks_env.push(json!({ "name": "AZUREML_MODEL_DIR", "value": "/mnt/models" })),
        (None, Some(v)) => {
            ks_volumes.push(v.clone());
            ks_mounts.push(json!({ "name": "models", "mountPath": "/models", "readOnly": true }));
            ks_env.push(json!({ "name": "AZUREML_MODEL_DIR", "value": "/models" }));
        }
        (None, None) => ks_env.push(json!({ "name": "AZUREML_MODEL_DIR", "value": "" })),
    }
    let formats: Vec<Value> = image
        .model_formats()
        .iter()
        .map(|f| json!({ "name": f, "version": "1", "autoSelect": false }))
        .collect();
    let format = image.model_formats().first().copied().unwrap_or("onnx");
    let serving_runtime = json!({
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": metadata(d, &runtime_name),
        "spec": {
            "supportedModelFormats": formats,
            // REST on the container's one port (Knative allows one); gRPC on
            // 8081 for an InferenceService that names an `h2c` port.
            "protocolVersions": ["v2", "grpc-v2"],
            "containers": [{
                "name": "kserve-container",
                "image": reference,
                "args": args,
                "env": ks_env,
                "ports": [{ "containerPort": KSERVE_PORT, "protocol": "TCP" }],
                "securityContext": security_context(),
                "resources": resources(d),
                "volumeMounts": ks_mounts,
            }],
            "volumes": ks_volumes,
        },
    });
    let mut model = json!({
        "modelFormat": { "name": format },
        "runtime": runtime_name,
        "protocolVersion": "v2",
        "resources": resources(d),
    });
    if let Some(uri) = storage_uri {
        model["storageUri"] = json!(uri);
    }
    let inference_service = json!({
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata(d, &d.name),
        "spec": { "predictor": { "model": model } },
    });
    Ok(Manifests {
        configmaps,
        deployment: vec![deployment, service],
        kserve: vec![serving_runtime, inference_service],
    })
}

fn yaml(objects: &[Value]) -> Result<String, SdkError> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(o).map_err(|e| SdkError::Invalid(e.to_string()))?);
    }
    Ok(out)
}

/// Writes the three files into `dir`.
pub fn write(d: &Deployment, dir: &Path) -> Result<Vec<PathBuf>, SdkError> {
    write_manifests(&manifests(d)?, dir)
}

fn write_manifests(m: &Manifests, dir: &Path) -> Result<Vec<PathBuf>, SdkError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| SdkError::Invalid(format!("{}: {e}", dir.display())))?;
    let mut written = Vec::new();
    for (file, objects) in FILES.iter().zip([&m.configmaps, &m.deployment, &m.kserve]) {
        let path = dir.join(file);
        // An empty file would make `kubectl apply -f` fail: leave none.
        if objects.is_empty() {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        std::fs::write(&path, yaml(objects)?)
            .map_err(|e| SdkError::Invalid(format!("{}: {e}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

/// Why the manifests cannot be applied here: `kubectl` is missing, or it
/// reaches no cluster; `None` when they can.
pub fn cannot_apply() -> Option<String> {
    let ready = Command::new("kubectl")
        .args(["get", "--raw", "/readyz", "--request-timeout=5s"])
        .output();
    match ready {
        Err(_) => Some("kubectl is not installed".into()),
        Ok(o) if !o.status.success() => Some(format!(
            "kubectl reaches no cluster: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
        )),
        Ok(_) => None,
    }
}

/// The files a flavour applies: `kubernetes` (Deployment + Service) or
/// `kserve` (ServingRuntime + InferenceService), ConfigMaps first.
pub fn applied_files(dir: &Path, flavour: &str) -> Vec<PathBuf> {
    let second = if flavour == "kserve" {
        FILES[2]
    } else {
        FILES[1]
    };
    [FILES[0], second]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .collect()
}

fn kubectl(verb: &str, files: &[PathBuf]) -> Result<(), SdkError> {
    let mut cmd = Command::new("kubectl");
    cmd.arg(verb);
    if verb == "delete" {
        // Objects someone already deleted do not block the rest.
        cmd.arg("--ignore-not-found");
    }
    for f in files {
        cmd.arg("-f").arg(f);
    }
    let out = cmd
        .output()
        .map_err(|e| SdkError::Engine(format!("kubectl {verb}: {e}")))?;
    if !out.status.success() {
        return Err(SdkError::Engine(format!(
            "kubectl {verb}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Validates the deployment with the `runtime` binary (as the local target
/// does), writes the manifests into `dir`, applies the `flavour`'s files
/// when `apply` and kubectl reaches a cluster, and records the deployment;
/// the second value says why nothing was applied.
pub fn deploy(
    d: &Deployment,
    runtime: &Path,
    flavour: &str,
    dir: &Path,
    apply: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<(Record, Option<String>), SdkError> {
    // Manifests written and never applied are regenerated; anything that
    // runs must be deleted first.
    if let Ok(r) = store::load(&d.name) {
        let written_only = matches!(
            r.placement,
            Placement::Kubernetes { applied: false, .. } | Placement::Kserve { applied: false, .. }
        );
        if !written_only {
            return Err(SdkError::Exists(d.name.clone()));
        }
    }
    let m = manifests(d)?;
    progress("validating module and models");
    // The GPU is the cluster's, not this machine's: models placed on it are
    // checked here on the CPU; the manifests keep the deployment's settings.
    let here = Deployment {
        gpu_fallback: Some("cpu".into()),
        ..d.clone()
    };
    let report = crate::local::validate(&here, runtime)?;
    image_reads_models(d, &report)?;
    progress(&format!("writing manifests to {}", dir.display()));
    write_manifests(&m, dir)?;
    let why_not = if apply {
        progress("looking for a cluster");
        cannot_apply()
    } else {
        Some("--no-apply".into())
    };
    let applied = why_not.is_none();
    if apply && let Some(why) = &why_not {
        let files: Vec<String> = applied_files(dir, flavour)
            .iter()
            .map(|f| format!("-f {}", f.display()))
            .collect();
        return Err(SdkError::NotApplied(format!(
            "the manifests are written to {}, but not applied: {why}. Apply them with `kubectl apply {}`, or pass --no-apply to only write them",
            dir.display(),
            files.join(" ")
        )));
    }
    if applied {
        progress("kubectl apply");
        let files = applied_files(dir, flavour);
        if let Err(e) = kubectl("apply", &files) {
            // Take back what a partial apply left in the cluster.
            let _ = kubectl("delete", &files);
            return Err(e);
        }
    }
    let ns = d.kubernetes.namespace.as_deref().unwrap_or("default");
    let url = if flavour == "kserve" {
        format!("http://{}-predictor.{ns}.svc.cluster.local", d.name)
    } else {
        format!("http://{}.{ns}.svc.cluster.local:{PORT}", d.name)
    };
    let manifests = dir.to_path_buf();
    let placement = if flavour == "kserve" {
        Placement::Kserve { manifests, applied }
    } else {
        Placement::Kubernetes { manifests, applied }
    };
    let record = Record::new(d, placement, url);
    store::save(&record)?;
    Ok((record, why_not))
}

/// Fails when the image lacks a backend one of the models needs: the local
/// runtime validated them with every backend, the pods will have only the
/// image's.
fn image_reads_models(d: &Deployment, report: &CheckReport) -> Result<(), SdkError> {
    let image = images::for_deployment(d)?;
    for m in &report.models {
        let (model, backend) = (&m.name, &m.backend);
        if !image.backends.iter().any(|b| b == backend) {
            let reader = images::all()
                .into_iter()
                .find(|i| i.backends.iter().any(|b| b == backend))
                .map(|i| i.name.trim_start_matches("sandscore/").to_string())
                .unwrap_or_else(|| "an image with it".into());
            return Err(SdkError::Invalid(format!(
                "model '{model}' needs the {backend} backend, which {} lacks; set image = \"{reader}\"",
                image.reference()
            )));
        }
    }
    Ok(())
}

/// `kubectl delete` of what was applied.
pub fn remove(record: &Record) -> Result<(), SdkError> {
    match &record.placement {
        Placement::Kubernetes {
            manifests,
            applied: true,
        }
        | Placement::Kserve {
            manifests,
            applied: true,
        } => kubectl(
            "delete",
            &applied_files(manifests, record.placement.target()),
        ),
        _ => Ok(()),
    }
}
