//! The Kubernetes and KServe manifests, run as the kubelet would run them:
//! each pod's container started in Docker from what the manifests say (the
//! image, its args, env, user, read-only root, dropped capabilities,
//! memory and CPU limits), with its volumes laid out as the cluster lays
//! them out (ConfigMap items as files, an emptyDir as a tmpfs, KServe's
//! storage copied to /mnt/models as its storage initializer copies it), and
//! KServe's merge of an InferenceService into its runtime (args appended,
//! env by name). A real client then scores through it. Needs built images
//! and Docker: `make test-images`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::fixture::{Fixture, find, objects, text, toml};
use common::{agent, assert_close, expected, guest, models};
use serde_json::{Value, json};

fn docker(args: &[String]) -> Output {
    Command::new("docker").args(args).output().expect("docker")
}

/// One container of a pod, as the kubelet would start it.
#[derive(Default)]
struct Pod {
    image: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    /// (host folder, mount path)
    mounts: Vec<(PathBuf, String)>,
    /// emptyDir mount paths
    tmpfs: Vec<String>,
    user: String,
    read_only: bool,
    drop_all: bool,
    no_new_privileges: bool,
    memory: String,
    cpus: String,
    port: u16,
    ready_path: String,
}

/// A Kubernetes quantity of memory as Docker takes it (`1Gi` → `1g`).
fn docker_memory(q: &str) -> String {
    q.replace("Gi", "g").replace("Mi", "m")
}

/// A CPU quantity as Docker's `--cpus` (`500m` → `0.5`).
fn docker_cpus(q: &str) -> String {
    match q.strip_suffix('m') {
        Some(milli) => format!("{}", milli.parse::<f64>().expect("cpu") / 1000.0),
        None => q.to_string(),
    }
}

/// Lays the pod's volumes out under `root` as the kubelet does: a
/// ConfigMap's items (or every key) as files, a claim as `claims[name]`.
fn volumes(
    volumes: &[Value],
    configmaps: &[Value],
    claims: &BTreeMap<String, PathBuf>,
    root: &Path,
) -> BTreeMap<String, Option<PathBuf>> {
    let decode = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64"))
            .expect("base64")
    };
    let mut out = BTreeMap::new();
    for v in volumes {
        let name = v["name"].as_str().expect("volume name").to_string();
        if v.get("emptyDir").is_some() {
            out.insert(name, None);
        } else if let Some(cm) = v.get("configMap") {
            let cm_name = &cm["name"];
            let data = &configmaps
                .iter()
                .find(|c| &c["metadata"]["name"] == cm_name)
                .unwrap_or_else(|| panic!("no ConfigMap {cm_name}"))["binaryData"];
            let dir = root.join(&name);
            let items: Vec<(String, String)> = match cm["items"].as_array() {
                Some(items) => items
                    .iter()
                    .map(|i| {
                        (
                            i["key"].as_str().expect("key").into(),
                            i["path"].as_str().expect("path").into(),
                        )
                    })
                    .collect(),
                None => data
                    .as_object()
                    .expect("binaryData")
                    .keys()
                    .map(|k| (k.clone(), k.clone()))
                    .collect(),
            };
            for (key, path) in items {
                let file = dir.join(path);
                std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
                std::fs::write(&file, decode(&data[&key])).expect("write item");
            }
            out.insert(name, Some(dir));
        } else if let Some(claim) = v.get("persistentVolumeClaim") {
            let dir = claims
                .get(claim["claimName"].as_str().expect("claim"))
                .expect("a folder for the claim");
            out.insert(name, Some(dir.clone()));
        } else {
            panic!("a volume the test cannot lay out: {v}");
        }
    }
    out
}

impl Pod {
    /// The container `c` of a pod whose volumes are laid out in `laid`.
    fn of(c: &Value, laid: &BTreeMap<String, Option<PathBuf>>) -> Pod {
        let sc = &c["securityContext"];
        let port = c["ports"][0]["containerPort"].as_u64().expect("port") as u16;
        let mut pod = Pod {
            image: c["image"].as_str().expect("image").into(),
            args: strings(&c["args"]),
            user: format!("{}:{}", sc["runAsUser"], sc["runAsGroup"]),
            read_only: sc["readOnlyRootFilesystem"] == true,
            drop_all: sc["capabilities"]["drop"] == json!(["ALL"]),
            no_new_privileges: sc["allowPrivilegeEscalation"] == false,
            memory: docker_memory(c["resources"]["limits"]["memory"].as_str().expect("memory")),
            cpus: docker_cpus(c["resources"]["limits"]["cpu"].as_str().expect("cpu")),
            port,
            ready_path: c["readinessProbe"]["httpGet"]["path"]
                .as_str()
                .expect("readiness probe")
                .into(),
            ..Pod::default()
        };
        for e in c["env"].as_array().into_iter().flatten() {
            pod.env.insert(
                e["name"].as_str().expect("name").into(),
                e["value"].as_str().unwrap_or_default().into(),
            );
        }
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let path = m["mountPath"].as_str().expect("mountPath").to_string();
            match laid.get(m["name"].as_str().expect("name")) {
                Some(Some(dir)) => pod.mounts.push((dir.clone(), path)),
                Some(None) => pod.tmpfs.push(path),
                None => panic!("mount of an undeclared volume: {m}"),
            }
        }
        pod
    }

    /// Starts it: the container's id and its published HTTP address.
    fn start(&self) -> Running {
        let mut a: Vec<String> = vec!["run".into(), "-d".into()];
        let mut push = |x: &str, y: String| {
            a.push(x.into());
            a.push(y);
        };
        push("-p", format!("127.0.0.1::{}", self.port));
        push("--user", self.user.clone());
        push("--memory", self.memory.clone());
        push("--cpus", self.cpus.clone());
        for (k, v) in &self.env {
            push("-e", format!("{k}={v}"));
        }
        for (host, path) in &self.mounts {
            push("-v", format!("{}:{path}:ro", host.display()));
        }
        for path in &self.tmpfs {
            push("--tmpfs", format!("{path}:rw,size=512m,mode=1777"));
        }
        if self.drop_all {
            push("--cap-drop", "ALL".into());
        }
        if self.no_new_privileges {
            push("--security-opt", "no-new-privileges".into());
        }
        if self.read_only {
            a.push("--read-only".into());
        }
        a.push(self.image.clone());
        a.extend(self.args.iter().cloned());
        let out = docker(&a);
        assert!(out.status.success(), "docker run: {}", text(&out));
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let port = docker(&["port".into(), id.clone(), format!("{}/tcp", self.port)]);
        let port = String::from_utf8_lossy(&port.stdout)
            .lines()
            .next()
            .and_then(|l| l.rsplit(':').next().map(str::to_string))
            .expect("published port");
        let running = Running {
            id,
            base: format!("http://127.0.0.1:{port}"),
        };
        running.wait(&self.ready_path);
        running
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

/// A started container, removed on drop.
struct Running {
    id: String,
    base: String,
}

impl Running {
    fn logs(&self) -> String {
        text(&docker(&["logs".into(), self.id.clone()]))
    }

    /// Polls the readiness probe's path as the kubelet does.
    fn wait(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if agent()
                .get(format!("{}{path}", self.base))
                .call()
                .is_ok_and(|r| r.status() == 200)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not ready in 120 s; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn infer(&self, model: &str) -> Value {
        let exp = expected();
        let rows = exp["mlp"]["input"].as_array().expect("rows").len();
        let body = json!({ "inputs": [{
            "name": "input", "shape": [rows, 64], "datatype": "FP32", "data": exp["mlp"]["input"],
        }] });
        let mut r = agent()
            .post(format!("{}/v2/models/{model}/infer", self.base))
            .header("content-type", "application/json")
            .send(body.to_string())
            .unwrap_or_else(|e| panic!("infer {model}: {e}; logs:\n{}", self.logs()));
        serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("JSON")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = docker(&["rm".into(), "-f".into(), "-v".into(), self.id.clone()]);
    }
}

fn probabilities(answer: &Value) -> &Value {
    &answer["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .find(|o| o["name"] == "probabilities")
        .expect("probabilities")["data"]
}

fn deploy(fx: &Fixture, body: &str, target: &str) -> PathBuf {
    let file = fx.file(body);
    let out_dir = fx.dir.join("k8s").join(target);
    let out = fx.run(&[
        "deploy",
        "-f",
        file.to_str().expect("path"),
        "--target",
        target,
        "--out",
        out_dir.to_str().expect("path"),
        "--no-apply",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    out_dir
}

/// KServe's merge of an InferenceService's model into its runtime's
/// container: args appended, env and mounts merged by key, the rest
/// replaced; `{{.Name}}` filled with the service's name.
fn kserve_container(runtime: &Value, isvc: &Value) -> Value {
    let mut c = runtime["spec"]["containers"][0].clone();
    let model = &isvc["spec"]["predictor"]["model"];
    let name = isvc["metadata"]["name"].as_str().expect("name");
    let mut args = strings(&c["args"]);
    args.extend(strings(&model["args"]));
    c["args"] = json!(
        args.iter()
            .map(|a| a.replace("{{.Name}}", name))
            .collect::<Vec<_>>()
    );
    for (field, key) in [("env", "name"), ("volumeMounts", "mountPath")] {
        let mut merged: Vec<Value> = c[field].as_array().cloned().unwrap_or_default();
        for item in model[field].as_array().into_iter().flatten() {
            merged.retain(|m| m[key] != item[key]);
            merged.push(item.clone());
        }
        c[field] = json!(merged);
    }
    if model.get("resources").is_some() {
        c["resources"] = model["resources"].clone();
    }
    c
}

#[test]
#[ignore = "needs built images and a Docker engine: make test-images"]
fn a_kserve_inference_service_with_storage_runs_as_kserve_would_run_it() {
    let fx = Fixture::new("pod-kserve-storage");
    // Built once on the host: the module and its precompiled code travel in
    // the storage, so the pod compiles nothing.
    let module = fx.dir.join("onnx_mlp.wasm");
    std::fs::copy(guest("onnx_mlp"), &module).expect("copy");
    let out = fx.run(&[
        "compile",
        "--module",
        module.to_str().expect("path"),
        "--allow-root",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let body = toml(
        "winers",
        &module,
        &models(),
        "[kubernetes]\nstorage_uri = \"s3://models/winers\"",
    );
    let dir = deploy(&fx, &body, "kserve");
    assert!(
        !dir.join("configmaps.yaml").exists(),
        "storage holds module and models: no ConfigMap"
    );
    let runtime = &objects(&dir.join("servingruntime.yaml"))[0];
    let isvc = find(
        &objects(&dir.join("inferenceservice.yaml")),
        "InferenceService",
    )
    .clone();
    assert_eq!(
        isvc["spec"]["predictor"]["model"]["storageUri"],
        "s3://models/winers"
    );
    // What the storage initializer does: the storage's files in /mnt/models.
    let storage = fx.dir.join("storage");
    std::fs::create_dir_all(&storage).expect("mkdir");
    for f in ["mlp.onnx", "iris.onnx"] {
        std::fs::copy(models().join(f), storage.join(f)).expect("copy model");
    }
    for f in ["onnx_mlp.wasm", "onnx_mlp.cwasm"] {
        std::fs::copy(fx.dir.join(f), storage.join(f)).expect("copy module");
    }
    let c = kserve_container(runtime, &isvc);
    let mut laid = volumes(
        runtime["spec"]["volumes"].as_array().expect("volumes"),
        &[],
        &BTreeMap::new(),
        &fx.dir.join("volumes"),
    );
    laid.insert("kserve-provision-location".into(), Some(storage));
    let mut c = c;
    c["volumeMounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({ "name": "kserve-provision-location", "mountPath": "/mnt/models" }));
    let running = Pod::of(&c, &laid).start();
    // Two models: each keeps its own name, the module scores.
    let answer = running.infer("mlp");
    assert_close(
        probabilities(&answer),
        &expected()["mlp"]["ort"]["probabilities"],
        1e-5,
    );
    let logs = running.logs();
    assert!(
        logs.contains("module ready") && logs.contains("Precompiled"),
        "the host's compiled code is used: {logs}"
    );
}

#[test]
#[ignore = "needs built images and a Docker engine: make test-images"]
fn a_kserve_model_answers_to_its_inference_services_name_through_kserves_client() {
    let fx = Fixture::new("pod-kserve-configmaps");
    let just_mlp = fx.dir.join("models");
    std::fs::create_dir_all(&just_mlp).expect("mkdir");
    std::fs::copy(models().join("mlp.onnx"), just_mlp.join("mlp.onnx")).expect("copy");
    let body = toml("winers", &guest("onnx_mlp"), &just_mlp, "");
    let dir = deploy(&fx, &body, "kserve");
    let configmaps = objects(&dir.join("configmaps.yaml"));
    let runtime = &objects(&dir.join("servingruntime.yaml"))[0];
    let isvc = find(
        &objects(&dir.join("inferenceservice.yaml")),
        "InferenceService",
    )
    .clone();
    let c = kserve_container(runtime, &isvc);
    let mut all_volumes = runtime["spec"]["volumes"]
        .as_array()
        .cloned()
        .expect("volumes");
    all_volumes.extend(
        isvc["spec"]["predictor"]["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    let laid = volumes(
        &all_volumes,
        &configmaps,
        &BTreeMap::new(),
        &fx.dir.join("volumes"),
    );
    let running = Pod::of(&c, &laid).start();
    // The name the user called the service, through KServe's own client.
    let python = std::env::var("SANDSCORE_KSERVE_PYTHON").expect("SANDSCORE_KSERVE_PYTHON");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/kserve_rest.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&running.base)
        .arg(models().join("expected.json"))
        .arg("winers")
        .output()
        .expect("run the KServe client");
    assert!(
        out.status.success() && text(&out).trim_end().ends_with("ok"),
        "{}\nlogs:\n{}",
        text(&out),
        running.logs()
    );
    let mut r = agent()
        .get(format!("{}/v2/models/winers", running.base))
        .call()
        .expect("metadata");
    let meta: Value =
        serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("JSON");
    assert_eq!(meta["name"], "winers", "{meta}");
}

#[test]
#[ignore = "needs built images and a Docker engine: make test-images"]
fn a_deployment_pod_runs_as_the_kubelet_would_run_it() {
    let fx = Fixture::new("pod-deployment");
    let claim = fx.dir.join("claim");
    std::fs::create_dir_all(&claim).expect("mkdir");
    std::fs::copy(models().join("mlp.onnx"), claim.join("mlp.onnx")).expect("copy");
    let body = toml(
        "mlp-pod",
        &guest("onnx_mlp"),
        &claim,
        "[kubernetes]\nmodel_claim = \"models\"\n[resources]\ncpu = \"500m\"\nmemory = \"768Mi\"",
    );
    let dir = deploy(&fx, &body, "kubernetes");
    assert!(
        !dir.join("inferenceservice.yaml").exists() && !dir.join("servingruntime.yaml").exists(),
        "the Deployment target writes only its own files"
    );
    let configmaps = objects(&dir.join("configmaps.yaml"));
    let deployment = objects(&dir.join("deployment.yaml"));
    let pod = &find(&deployment, "Deployment")["spec"]["template"]["spec"];
    let claims = BTreeMap::from([("models".to_string(), claim.clone())]);
    let laid = volumes(
        pod["volumes"].as_array().expect("volumes"),
        &configmaps,
        &claims,
        &fx.dir.join("volumes"),
    );
    let spec = Pod::of(&pod["containers"][0], &laid);
    assert_eq!(spec.user, "10001:10001");
    assert!(spec.read_only && spec.drop_all && spec.no_new_privileges);
    let running = spec.start();
    let answer = running.infer("mlp");
    assert_close(
        probabilities(&answer),
        &expected()["mlp"]["ort"]["probabilities"],
        1e-5,
    );
    // The module ConfigMap's score.wasm scores /score too.
    let mut r = agent()
        .post(format!("{}/score", running.base))
        .header("content-type", "application/json")
        .send(json!({ "data": expected()["mlp"]["input"] }).to_string())
        .expect("score");
    let score: Value =
        serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("JSON");
    assert_close(
        &common::column(&score, "probabilities"),
        &expected()["mlp"]["ort"]["probabilities"],
        1e-5,
    );
}
