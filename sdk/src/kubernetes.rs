//! The Kubernetes and KServe targets: manifests written to a folder, and
//! applied with `kubectl` when it is installed. Writing them needs nothing:
//! the folder is what a GitOps repository or a CI job would take. Each
//! target writes only its own files:
//!
//! - `kubernetes`: `configmaps.yaml` (the module, and the models when no
//!   claim holds them) and `deployment.yaml` (a hardened Deployment:
//!   non-root, read-only root, no capabilities, probes on the health
//!   routes; and its Service)
//! - `kserve` ([`crate::kserve`]): `servingruntime.yaml` (one reusable
//!   runtime per image), `inferenceservice.yaml`, and `configmaps.yaml`
//!   only when no storage holds module and models

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
pub(crate) const PACKAGES_PATH: &str = "/python-packages";

/// The files a target may write, in apply order.
pub fn files(flavour: &str) -> &'static [&'static str] {
    if flavour == "kserve" {
        &crate::kserve::FILES
    } else {
        &FILES
    }
}

/// The Deployment target's files, in apply order.
const FILES: [&str; 2] = ["configmaps.yaml", "deployment.yaml"];
/// What earlier versions wrote for KServe beside the Deployment's files.
const LEGACY_KSERVE_FILE: &str = "kserve.yaml";

/// Each file's objects, in apply order; a file without objects is not
/// written (an empty one would make `kubectl apply -f` fail).
pub type Manifests = Vec<(&'static str, Vec<Value>)>;

pub(crate) fn labels(d: &Deployment) -> Value {
    json!({
        "app.kubernetes.io/name": "sandscore",
        "app.kubernetes.io/instance": d.name,
        "app.kubernetes.io/managed-by": "sandscore",
    })
}

pub(crate) fn metadata(d: &Deployment, name: &str) -> Value {
    let mut m = json!({ "name": name, "labels": labels(d) });
    if let Some(ns) = &d.kubernetes.namespace {
        m["namespace"] = json!(ns);
    }
    m
}

/// Files under `dir`, relative paths in a stable order.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, SdkError> {
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

pub(crate) fn binary_configmap(
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
pub(crate) fn folder_configmap(
    d: &Deployment,
    name: &str,
    volume: &str,
    dir: &Path,
    what: &str,
) -> Result<(Value, Value), SdkError> {
    // Byte code is the interpreter's cache, not the deployment's.
    let rels: Vec<PathBuf> = files_under(dir)?
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

pub(crate) fn security_context() -> Value {
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
pub(crate) fn resources(d: &Deployment) -> Value {
    let mut r = json!({ "cpu": d.resources.cpu, "memory": d.resources.memory });
    if d.gpus() > 0 {
        r["nvidia.com/gpu"] = json!(d.gpus().to_string());
    }
    json!({ "requests": r, "limits": r })
}

/// The image reference a cluster pulls: the deployment's registry (or
/// `--registry`) before the image's `name:tag`.
pub fn image_reference(d: &Deployment, image: &Image) -> String {
    match d
        .kubernetes
        .registry
        .as_deref()
        .and_then(|r| crate::registry::normalize(r).ok())
    {
        Some(r) => format!("{r}/{}", image.reference()),
        None => image.reference(),
    }
}

/// Module, packages and models carried by ConfigMaps: the ConfigMaps, the
/// pod's volumes, the container's mounts and environment.
#[derive(Default)]
pub(crate) struct Carried {
    pub configmaps: Vec<Value>,
    pub volumes: Vec<Value>,
    pub mounts: Vec<Value>,
    pub env: Vec<Value>,
}

impl Carried {
    /// Adds `volume` to the pod and mounts it read-only at `path`.
    pub(crate) fn mount(&mut self, volume: Value, path: &str) {
        let name = volume["name"].clone();
        self.volumes.push(volume);
        self.mounts
            .push(json!({ "name": name, "mountPath": path, "readOnly": true }));
    }
}

/// Where a module sits in the pod, and the environment that names it.
fn module_env(path: &str) -> Value {
    json!({ "name": "AZUREML_ENTRY_SCRIPT", "value": path })
}

/// The module (a `.wasm` or a script's whole folder) and a script's
/// packages, as ConfigMaps mounted at `/app` and [`PACKAGES_PATH`].
pub(crate) fn carry_module(d: &Deployment, image: &Image) -> Result<Carried, SdkError> {
    let mut c = Carried::default();
    let module_cm = format!("{}-module", d.name);
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
            c.configmaps.push(cm);
            c.mount(volume, "/app");
            let name = m.file_name().unwrap_or_default().to_string_lossy();
            c.env.push(module_env(&format!("/app/{name}")));
        }
        Some(m) => {
            let size = std::fs::metadata(m)
                .map_err(|e| SdkError::Invalid(format!("{}: {e}", m.display())))?
                .len();
            if size > CONFIGMAP_BYTES {
                return Err(SdkError::Invalid(format!(
                    "the module is {} KiB; a ConfigMap holds at most {} KiB (put it in storage with the models and set kubernetes.storage_uri, or bake it into an image derived from {})",
                    size / 1024,
                    CONFIGMAP_BYTES / 1024,
                    image.reference()
                )));
            }
            c.configmaps.push(binary_configmap(
                d,
                &module_cm,
                &[("score.wasm".into(), m.clone())],
            )?);
            c.mount(
                json!({ "name": "module", "configMap": { "name": module_cm } }),
                "/app",
            );
            c.env.push(module_env("/app/score.wasm"));
        }
        None => c.env.push(module_env("")),
    }
    // A script's packages (its requirements.txt resolved on the host, or a
    // folder the deployment names): stamped, so the pod never resolves.
    if let Some(p) = &d.python_packages {
        let cm_name = format!("{}-packages", d.name);
        let (cm, volume) = folder_configmap(d, &cm_name, "packages", p, "the Python packages")?;
        c.configmaps.push(cm);
        c.mount(volume, PACKAGES_PATH);
        c.env
            .push(json!({ "name": "AZUREML_EXTRA_PYTHON_LIB_PATH", "value": PACKAGES_PATH }));
    }
    Ok(c)
}

/// The model directory as a ConfigMap volume named `models`, or why it
/// does not fit one.
pub(crate) fn models_configmap(d: &Deployment, dir: &Path) -> Result<(Value, Value), SdkError> {
    folder_configmap(d, &format!("{}-models", d.name), "models", dir, "the models").map_err(|e| {
        match e {
            SdkError::Invalid(m) if m.contains("too big for a ConfigMap") => SdkError::Invalid(format!(
                "{m}: put them in a PersistentVolumeClaim (kubernetes.model_claim) or in storage KServe reads (kubernetes.storage_uri)"
            )),
            e => e,
        }
    })
}

/// An HTTP probe of `path` on `port` (a number or a port's name).
pub(crate) fn probe(path: &str, port: Value, period: u32, failures: u32) -> Value {
    json!({
        "httpGet": { "path": path, "port": port },
        "periodSeconds": period,
        "failureThreshold": failures,
    })
}

/// The Deployment target's manifests: ConfigMaps, a Deployment, a Service.
fn deployment_manifests(d: &Deployment, image: &Image) -> Result<Manifests, SdkError> {
    let mut c = carry_module(d, image)?;
    c.volumes
        .push(json!({ "name": "tmp", "emptyDir": { "sizeLimit": "512Mi" } }));
    c.mounts.push(json!({ "name": "tmp", "mountPath": "/tmp" }));
    c.env
        .push(json!({ "name": "SANDSCORE_CACHE_DIR", "value": "/tmp/sandscore-cache" }));
    // Where the models come from: a claim, a ConfigMap, or nothing.
    let models = match (&d.model_dir, &d.kubernetes.model_claim) {
        (_, Some(claim)) => Some(json!({
            "name": "models",
            "persistentVolumeClaim": { "claimName": claim, "readOnly": true },
        })),
        (Some(dir), None) => {
            let (cm, volume) = models_configmap(d, dir)?;
            c.configmaps.push(cm);
            Some(volume)
        }
        (None, None) => None,
    };
    match models {
        Some(v) => {
            c.mount(v, "/models");
            c.env
                .push(json!({ "name": "AZUREML_MODEL_DIR", "value": "/models" }));
        }
        None => c
            .env
            .push(json!({ "name": "AZUREML_MODEL_DIR", "value": "" })),
    }
    c.env
        .push(json!({ "name": "SERVER_PORT", "value": PORT.to_string() }));
    c.env
        .push(json!({ "name": "SANDSCORE_GRPC_PORT", "value": GRPC_PORT.to_string() }));
    let mut args = vec![json!("serve")];
    args.extend(d.limit_args().into_iter().map(Value::from));
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
                        "image": image_reference(d, image),
                        "imagePullPolicy": "IfNotPresent",
                        "args": args,
                        "env": c.env,
                        "ports": [
                            { "name": "http", "containerPort": PORT, "protocol": "TCP" },
                            { "name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP" },
                        ],
                        "securityContext": security_context(),
                        "resources": resources(d),
                        "startupProbe": probe("/v2/health/live", json!("http"), 2, 30),
                        "livenessProbe": probe("/v2/health/live", json!("http"), 10, 3),
                        "readinessProbe": probe("/v2/health/ready", json!("http"), 5, 2),
                        "volumeMounts": c.mounts,
                    }],
                    "volumes": c.volumes,
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
    Ok(vec![
        (FILES[0], c.configmaps),
        (FILES[1], vec![deployment, service]),
    ])
}

/// The manifests of `d` for `flavour` (`kubernetes` or `kserve`); fails
/// when the module or models do not fit where they are meant to go.
pub fn manifests(d: &Deployment, flavour: &str) -> Result<Manifests, SdkError> {
    d.check_fields().map_err(SdkError::Invalid)?;
    let image: Image = images::for_deployment(d)?;
    if flavour == "kserve" {
        crate::kserve::manifests(d, &image)
    } else {
        deployment_manifests(d, &image)
    }
}

/// What a person must still do for the manifests to run: push the image
/// to the cluster's registry, fill the storage KServe reads.
pub fn next_steps(d: &Deployment, flavour: &str) -> Result<Vec<String>, SdkError> {
    let image = images::for_deployment(d)?;
    let mut steps = Vec::new();
    if d.kubernetes.registry.as_deref().is_none_or(str::is_empty) {
        steps.push(format!(
            "the manifests name {} without a registry: a cluster pulls it only from one. Push the images with `sandscore images push REGISTRY` and set [kubernetes] registry (or pass --registry)",
            image.reference()
        ));
    }
    if flavour == "kserve" {
        steps.extend(crate::kserve::storage_steps(d));
    }
    Ok(steps)
}

fn yaml(objects: &[Value]) -> Result<String, SdkError> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(o).map_err(|e| SdkError::Invalid(e.to_string()))?);
    }
    Ok(out)
}

/// Writes `flavour`'s files into `dir`.
pub fn write(d: &Deployment, flavour: &str, dir: &Path) -> Result<Vec<PathBuf>, SdkError> {
    write_manifests(&manifests(d, flavour)?, dir)
}

fn write_manifests(m: &Manifests, dir: &Path) -> Result<Vec<PathBuf>, SdkError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| SdkError::Invalid(format!("{}: {e}", dir.display())))?;
    let mut written = Vec::new();
    for (file, objects) in m {
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

/// The files of `flavour` written in `dir`, in apply order.
pub fn applied_files(dir: &Path, flavour: &str) -> Vec<PathBuf> {
    files(flavour)
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .collect()
}

/// The files `delete` takes back: all but KServe's runtime, which every
/// InferenceService of its image shares.
fn deleted_files(dir: &Path, flavour: &str) -> Vec<PathBuf> {
    applied_files(dir, flavour)
        .into_iter()
        .filter(|p| !p.ends_with(crate::kserve::RUNTIME_FILE))
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
    let m = manifests(d, flavour)?;
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
    // The other target's files (from an earlier deploy of this name) would
    // be applied by `kubectl apply -f DIR` too.
    for other in FILES
        .iter()
        .chain(&crate::kserve::FILES)
        .chain(&[LEGACY_KSERVE_FILE])
    {
        if !files(flavour).contains(other) {
            let _ = std::fs::remove_file(dir.join(other));
        }
    }
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
            // Take back what a partial apply left in the cluster (not a
            // runtime others may share).
            let _ = kubectl("delete", &deleted_files(dir, flavour));
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
            &deleted_files(manifests, record.placement.target()),
        ),
        _ => Ok(()),
    }
}
