//! The Kubernetes and KServe targets: manifests written by the CLI and
//! checked against the Kubernetes 1.37 schemas (kubernetes-validate, strict)
//! and KServe's own generated API types (tests/k8s/validate.py, installed by
//! `make test` into its own venv from deps/k8s-validate.lock). No cluster
//! runs here, so nothing is applied.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use common::fixture::{Fixture, find, objects, text, toml};
use common::{guest, models};
use serde_json::Value;

fn validate(paths: &[&Path]) -> Output {
    let python = std::env::var_os("SANDSCORE_K8S_PYTHON").expect(
        "SANDSCORE_K8S_PYTHON is not set: run the tests with `make test` (it installs the validator)",
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/k8s/validate.py");
    Command::new(python)
        .arg(script)
        .args(paths)
        .output()
        .expect("run the validator")
}

/// `deploy --no-apply` of the deployment file `file` to `target`, writing
/// the manifests into `out_dir`.
fn deploy(fx: &Fixture, file: &Path, target: &str, out_dir: &Path) -> Output {
    fx.run(&[
        "deploy",
        "-f",
        file.to_str().unwrap(),
        "--target",
        target,
        "--out",
        out_dir.to_str().unwrap(),
        "--no-apply",
    ])
}

/// The onnx_mlp module with `models` deployed as `name`: the outcome and
/// where its manifests went.
fn write(fx: &Fixture, name: &str, models: &Path, extra: &str, target: &str) -> (Output, PathBuf) {
    let file = fx.file(&toml(name, &guest("onnx_mlp"), models, extra));
    let out_dir = fx.dir.join("k8s").join(name);
    (deploy(fx, &file, target, &out_dir), out_dir)
}

#[test]
fn manifests_are_valid_and_hardened() {
    let fx = Fixture::new("k8s");
    let (out, dir) = write(&fx, "mlp-k8s", &models(), "", "kubernetes");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("not applied (--no-apply)"),
        "{}",
        text(&out)
    );

    // Again with --no-apply: regenerated, not "exists".
    let (again, _) = write(&fx, "mlp-k8s", &models(), "", "kubernetes");
    assert!(again.status.success(), "{}", text(&again));
    // Asked to apply where no cluster answers: written, and a failure.
    let file = fx.file(&toml("mlp-apply", &guest("onnx_mlp"), &models(), ""));
    let apply_dir = fx.dir.join("k8s/mlp-apply");
    let applied = fx.run(&[
        "deploy",
        "-f",
        file.to_str().unwrap(),
        "--target",
        "kubernetes",
        "--out",
        apply_dir.to_str().unwrap(),
    ]);
    if sandscore_sdk_cannot_apply() {
        assert!(!applied.status.success(), "{}", text(&applied));
        assert!(
            text(&applied).contains("but not applied")
                && text(&applied).contains("kubectl apply -f"),
            "{}",
            text(&applied)
        );
        assert!(apply_dir.join("deployment.yaml").is_file());
    }

    let checked = validate(&[&dir]);
    let report = text(&checked);
    assert!(checked.status.success(), "{report}");
    for kind in [
        "ConfigMap/mlp-k8s-module",
        "ConfigMap/mlp-k8s-models",
        "Deployment/mlp-k8s",
        "Service/mlp-k8s",
    ] {
        assert!(
            report.contains(&format!("ok  {kind}")),
            "{kind} not validated:\n{report}"
        );
    }
    // Only the Deployment target's files: `kubectl apply -f DIR` applies
    // nothing of KServe's.
    let mut written: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["configmaps.yaml", "deployment.yaml"]);
    // Without a registry the image cannot be pulled: the tool says so.
    assert!(
        text(&out).contains("without a registry") && text(&out).contains("sandscore images push"),
        "{}",
        text(&out)
    );

    let deployment = objects(&dir.join("deployment.yaml"));
    let pod = &find(&deployment, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/v2/health/live");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/v2/health/ready");
    assert_eq!(c["ports"][1]["name"], "grpc");
    assert_eq!(c["ports"][1]["containerPort"], 8001);
    let service = find(&deployment, "Service");
    assert_eq!(
        service["spec"]["ports"][1]["appProtocol"],
        "kubernetes.io/h2c"
    );
    assert_eq!(c["resources"]["limits"]["memory"], "1Gi");
    assert!(
        c["args"]
            .as_array()
            .unwrap()
            .windows(2)
            .any(|w| w[0] == "--workers" && w[1] == "2")
    );
    for mount in c["volumeMounts"].as_array().unwrap() {
        assert!(
            mount["mountPath"] == "/tmp" || mount["readOnly"] == true,
            "writable mount {mount}"
        );
    }

    // The ConfigMaps carry the module and the model byte for byte.
    let configmaps = objects(&dir.join("configmaps.yaml"));
    let decode = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 text"))
            .expect("base64")
    };
    let module = configmaps
        .iter()
        .find(|o| o["metadata"]["name"] == "mlp-k8s-module")
        .unwrap();
    assert_eq!(
        decode(&module["binaryData"]["score.wasm"]),
        std::fs::read(guest("onnx_mlp")).unwrap()
    );
    let model_cm = configmaps
        .iter()
        .find(|o| o["metadata"]["name"] == "mlp-k8s-models")
        .unwrap();
    assert_eq!(
        decode(&model_cm["binaryData"]["mlp.onnx"]),
        std::fs::read(models().join("mlp.onnx")).unwrap()
    );

    let listing = String::from_utf8_lossy(&fx.run(&["endpoints"]).stdout).to_string();
    assert!(
        listing.contains("mlp-k8s") && listing.contains("written"),
        "{listing}"
    );
    let out = fx.run(&["delete", "mlp-k8s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        dir.join("deployment.yaml").exists(),
        "delete keeps the written files"
    );
}

#[test]
fn the_validator_rejects_what_a_cluster_would() {
    let fx = Fixture::new("k8s-bad");
    let (out, dir) = write(&fx, "broken", &models(), "", "kubernetes");
    assert!(out.status.success(), "{}", text(&out));
    let (out, ks_dir) = write(&fx, "broken-ks", &models(), "", "kserve");
    assert!(out.status.success(), "{}", text(&out));
    for f in ["servingruntime.yaml", "inferenceservice.yaml"] {
        std::fs::copy(ks_dir.join(f), dir.join(f)).unwrap();
    }
    let cases = [
        (
            "deployment.yaml",
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystm: true",
            "readOnlyRootFilesystm",
        ),
        (
            "deployment.yaml",
            "replicas: 1",
            "replicas: two",
            "replicas",
        ),
        (
            "inferenceservice.yaml",
            "protocolVersion: v2",
            "protocolVersion: v2\n      modelFormatt: x",
            "modelFormatt",
        ),
        (
            "servingruntime.yaml",
            "multiModel: false",
            "multiModel: nope",
            "multiModel",
        ),
    ];
    for (file, from, to, named) in cases {
        let path = dir.join(file);
        let good = std::fs::read_to_string(&path).unwrap();
        assert!(good.contains(from), "{file} lacks {from}");
        std::fs::write(&path, good.replacen(from, to, 1)).unwrap();
        let checked = validate(&[&path]);
        assert!(
            !checked.status.success() && text(&checked).contains(named),
            "{file} with {to:?} passed or did not name {named}:\n{}",
            text(&checked)
        );
        std::fs::write(&path, good).unwrap();
    }
    assert!(validate(&[&dir]).status.success());
}

#[test]
fn claims_and_storage_uris_replace_the_model_configmap() {
    let fx = Fixture::new("k8s-claim");
    let extra = "[kubernetes]\nnamespace = \"scoring\"\nreplicas = 3\nmodel_claim = \"models-pvc\"\nstorage_uri = \"pvc://models-pvc/mlp\"\nregistry = \"registry.example.com/\"\n[resources]\ncpu = \"500m\"\nmemory = \"768Mi\"";
    let (out, dir) = write(&fx, "claimed", &models(), extra, "kubernetes");
    assert!(out.status.success(), "{}", text(&out));
    let checked = validate(&[&dir]);
    assert!(checked.status.success(), "{}", text(&checked));
    let configmaps = objects(&dir.join("configmaps.yaml"));
    assert_eq!(configmaps.len(), 1, "only the module's ConfigMap");
    let deployment = objects(&dir.join("deployment.yaml"));
    let dep = find(&deployment, "Deployment");
    assert_eq!(dep["metadata"]["namespace"], "scoring");
    assert_eq!(dep["spec"]["replicas"], 3);
    let pod = &dep["spec"]["template"]["spec"];
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["persistentVolumeClaim"]["claimName"] == "models-pvc"),
        "{pod}"
    );
    assert_eq!(
        pod["containers"][0]["image"]
            .as_str()
            .unwrap()
            .split(':')
            .next(),
        Some("registry.example.com/sandscore/onnxruntime-cpu")
    );
    assert_eq!(pod["containers"][0]["resources"]["requests"]["cpu"], "500m");
    assert!(
        !text(&out).contains("without a registry"),
        "a registry is set: {}",
        text(&out)
    );
}

/// The KServe target's three files for `name`: ConfigMaps (none when
/// storage holds everything), the runtime, the InferenceService.
fn kserve(
    fx: &Fixture,
    name: &str,
    models: &Path,
    extra: &str,
) -> (Output, Vec<Value>, Value, Value) {
    let (out, dir) = write(fx, name, models, extra, "kserve");
    assert!(out.status.success(), "{}", text(&out));
    let checked = validate(&[&dir]);
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(!dir.join("deployment.yaml").exists(), "only KServe's files");
    let configmaps = if dir.join("configmaps.yaml").exists() {
        objects(&dir.join("configmaps.yaml"))
    } else {
        Vec::new()
    };
    let runtime = objects(&dir.join("servingruntime.yaml"));
    assert_eq!(runtime.len(), 1);
    let isvc = objects(&dir.join("inferenceservice.yaml"));
    assert_eq!(isvc.len(), 1);
    (out, configmaps, runtime[0].clone(), isvc[0].clone())
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

#[test]
fn kserve_shares_one_runtime_per_image_and_names_the_model_after_the_service() {
    let fx = Fixture::new("k8s-kserve");
    let (_, configmaps, runtime, isvc) = kserve(&fx, "winers", &models(), "");
    // The runtime holds nothing of one deployment: a second deployment of
    // the image writes the same object.
    let (_, _, again, _) = kserve(&fx, "other", &models(), "[resources]\ncpu = \"2\"");
    assert_eq!(runtime, again);
    assert_eq!(runtime["kind"], "ClusterServingRuntime");
    let name = runtime["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("sandscore-onnxruntime-cpu-"), "{name}");
    assert!(runtime["metadata"].get("namespace").is_none());
    let spec = &runtime["spec"];
    assert_eq!(
        spec["protocolVersions"],
        serde_json::json!(["v2", "grpc-v2"])
    );
    assert_eq!(spec["supportedModelFormats"][0]["name"], "onnx");
    let c = &spec["containers"][0];
    assert_eq!(c["name"], "kserve-container");
    assert_eq!(
        c["args"],
        serde_json::json!(["serve", "--model-name={{.Name}}"])
    );
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/v2/health/ready");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/v2/health/live");
    assert_eq!(env_value(c, "SANDSCORE_GRPC_PORT"), Some("8081"));
    assert_eq!(env_value(c, "AZUREML_MODEL_DIR"), Some("/mnt/models"));
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert!(
        spec.get("volumes")
            .unwrap()
            .to_string()
            .contains("emptyDir"),
        "only the scratch volume: {spec}"
    );
    // The InferenceService carries what is its own: the module and models
    // as ConfigMaps (no storage named), mounted where KServe puts storage.
    let model = &isvc["spec"]["predictor"]["model"];
    assert_eq!(model["runtime"], name);
    assert_eq!(model["protocolVersion"], "v2");
    assert!(model.get("storageUri").is_none());
    assert_eq!(
        env_value(model, "AZUREML_ENTRY_SCRIPT"),
        Some("/app/score.wasm")
    );
    let mounts = model["volumeMounts"].to_string();
    assert!(
        mounts.contains("/mnt/models") && mounts.contains("/app"),
        "{mounts}"
    );
    assert!(
        model["args"]
            .as_array()
            .unwrap()
            .windows(2)
            .any(|w| w[0] == "--workers" && w[1] == "2"),
        "{model}"
    );
    let names: Vec<&str> = configmaps
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["winers-module", "winers-models"]);
}

#[test]
fn kserve_storage_holds_module_and_models_and_is_never_a_configmap() {
    let fx = Fixture::new("k8s-kserve-storage");
    // A model too big for a ConfigMap is fine when storage holds it.
    let big = fx.dir.join("big");
    std::fs::create_dir_all(&big).unwrap();
    std::fs::copy(models().join("mlp.onnx"), big.join("mlp.onnx")).unwrap();
    std::fs::write(big.join("notes.txt"), vec![b'x'; 1_600_000]).unwrap();
    let (out, configmaps, runtime, isvc) = kserve(
        &fx,
        "stored",
        &big,
        "[kubernetes]\nstorage_uri = \"s3://bucket/stored\"\nregistry = \"registry.example.com:5000/team\"",
    );
    assert!(configmaps.is_empty(), "{configmaps:?}");
    let model = &isvc["spec"]["predictor"]["model"];
    assert_eq!(model["storageUri"], "s3://bucket/stored");
    assert!(isvc["spec"]["predictor"].get("volumes").is_none(), "{isvc}");
    assert_eq!(
        env_value(model, "AZUREML_ENTRY_SCRIPT"),
        Some("/mnt/models/onnx_mlp.wasm")
    );
    assert!(
        runtime["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .starts_with("registry.example.com:5000/team/sandscore/onnxruntime-cpu:"),
        "{runtime}"
    );
    // What the storage must hold is said.
    assert!(
        text(&out).contains("s3://bucket/stored must hold") && text(&out).contains("onnx_mlp.wasm"),
        "{}",
        text(&out)
    );
    // A claim is KServe storage too: pvc://CLAIM.
    let (_, configmaps, _, isvc) = kserve(
        &fx,
        "claimed",
        &models(),
        "[kubernetes]\nmodel_claim = \"models-pvc\"",
    );
    assert!(configmaps.is_empty());
    assert_eq!(
        isvc["spec"]["predictor"]["model"]["storageUri"],
        "pvc://models-pvc"
    );
    // --registry on the command line wins over the file.
    let file = fx.file(&toml(
        "flagged",
        &guest("onnx_mlp"),
        &models(),
        "[kubernetes]\nregistry = \"a.example/\"",
    ));
    let dir = fx.dir.join("k8s/flagged");
    let out = fx.run(&[
        "deploy",
        "-f",
        file.to_str().unwrap(),
        "--target",
        "kserve",
        "--out",
        dir.to_str().unwrap(),
        "--no-apply",
        "--registry",
        "b.example",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let runtime = &objects(&dir.join("servingruntime.yaml"))[0];
    assert!(
        runtime["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .starts_with("b.example/sandscore/"),
        "{runtime}"
    );
}

#[test]
fn gpu_models_ask_the_cluster_for_a_gpu_and_run_the_gpu_image() {
    let fx = Fixture::new("k8s-gpu");
    // No GPU here: the module and models are checked on the CPU, the
    // manifests keep the GPU placement for the cluster.
    let (out, dir) = write(
        &fx,
        "ongpu",
        &models(),
        "[devices]\nmlp = \"gpu\"",
        "kubernetes",
    );
    assert!(out.status.success(), "{}", text(&out));
    let checked = validate(&[&dir]);
    assert!(checked.status.success(), "{}", text(&checked));
    let deployment = objects(&dir.join("deployment.yaml"));
    let container = &find(&deployment, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    for side in ["requests", "limits"] {
        assert_eq!(
            container["resources"][side]["nvidia.com/gpu"], "1",
            "{container}"
        );
    }
    assert!(
        container["image"]
            .as_str()
            .unwrap()
            .starts_with("sandscore/onnxruntime-gpu:"),
        "{container}"
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        args.windows(2).any(|w| w == ["--model-device", "mlp=gpu"]),
        "{args:?}"
    );
    assert!(
        !args.contains(&"--gpu-fallback"),
        "the check's CPU fallback must not reach the cluster: {args:?}"
    );
    let (_, _, runtime, isvc) = kserve(&fx, "ongpu-ks", &models(), "[devices]\nmlp = \"gpu\"");
    let model = &isvc["spec"]["predictor"]["model"];
    assert_eq!(
        model["resources"]["limits"]["nvidia.com/gpu"], "1",
        "{model}"
    );
    assert!(
        runtime["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .starts_with("sandscore/onnxruntime-gpu:"),
        "{runtime}"
    );

    // A CPU image for GPU models is refused before anything is written.
    let (out, _) = write(
        &fx,
        "cpuimage",
        &models(),
        "image = \"onnxruntime-cpu\"\n[devices]\nmlp = \"gpu\"",
        "kubernetes",
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("is a CPU image"), "{}", text(&out));
}

#[test]
fn a_python_script_travels_as_source_and_runs_in_the_pods_python_runtime() {
    let fx = Fixture::new("k8s-python");
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/python/onnx-mlp/score.py");
    let file = fx.file(&toml("pyscore", &script, &models(), ""));
    let out_dir = fx.dir.join("k8s/pyscore");
    let out = deploy(&fx, &file, "kubernetes", &out_dir);
    assert!(out.status.success(), "{}", text(&out));
    let checked = validate(&[&out_dir]);
    assert!(checked.status.success(), "{}", text(&checked));
    let configmaps = objects(&out_dir.join("configmaps.yaml"));
    let module = configmaps
        .iter()
        .find(|c| c["metadata"]["name"] == "pyscore-module")
        .expect("module ConfigMap");
    let source = module["binaryData"]["score.py"]
        .as_str()
        .expect("score.py in the ConfigMap");
    let source = base64::engine::general_purpose::STANDARD
        .decode(source)
        .unwrap();
    assert_eq!(source, std::fs::read(&script).unwrap());
    let deployment = objects(&out_dir.join("deployment.yaml"));
    let env = &find(&deployment, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "AZUREML_ENTRY_SCRIPT" && e["value"] == "/app/score.py"),
        "{env}"
    );
    // An image with neither the Python runtime nor a Python cannot run it.
    let file = fx.file(&toml(
        "pylite",
        &script,
        &models(),
        "image = \"tflite-cpu\"",
    ));
    let out = deploy(&fx, &file, "kubernetes", &out_dir);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("has neither the Python runtime")
            && text(&out).contains("onnxruntime-cpu, sklearn-cpu, xgboost-cpu")
            && text(&out).contains("sandscore build --component"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_scripts_vendored_packages_and_requirements_travel_with_it() {
    let fx = Fixture::new("k8s-python-packages");
    let app = fx.dir.join("app");
    std::fs::create_dir_all(app.join("vendored")).unwrap();
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/scripts/requirements");
    for f in ["score.py", "requirements.txt"] {
        std::fs::copy(here.join(f), app.join(f)).unwrap();
    }
    std::fs::write(app.join("vendored/__init__.py"), "HELP = 1\n").unwrap();
    let file = fx.file(&toml("pypkgs", &app.join("score.py"), &models(), ""));
    let out_dir = fx.dir.join("k8s/pypkgs");
    let out = deploy(&fx, &file, "kubernetes", &out_dir);
    assert!(out.status.success(), "{}", text(&out));
    let checked = validate(&[&out_dir]);
    assert!(checked.status.success(), "{}", text(&checked));
    let configmaps = objects(&out_dir.join("configmaps.yaml"));
    let cm = |name: &str| {
        configmaps
            .iter()
            .find(|c| c["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no ConfigMap {name}"))
            .clone()
    };
    let module = cm("pypkgs-module");
    for key in ["score.py", "requirements.txt", "vendored___init__.py"] {
        assert!(
            module["binaryData"][key].is_string(),
            "no {key} in {module}"
        );
    }
    // The requirements were resolved here, stamped, and ship as a folder.
    let packages = cm("pypkgs-packages");
    for key in [".sandscore-requirements", "sortedcontainers___init__.py"] {
        assert!(packages["binaryData"][key].is_string(), "no {key}");
    }
    let deployment = objects(&out_dir.join("deployment.yaml"));
    let pod = &find(&deployment, "Deployment")["spec"]["template"]["spec"];
    let volumes = pod["volumes"].to_string();
    assert!(
        volumes.contains(r#""path":"vendored/__init__.py""#)
            && volumes.contains(r#""path":"sortedcontainers/__init__.py""#),
        "{volumes}"
    );
    let container = &pod["containers"][0];
    assert!(
        container["env"].as_array().unwrap().iter().any(|e| {
            e["name"] == "AZUREML_EXTRA_PYTHON_LIB_PATH" && e["value"] == "/python-packages"
        }),
        "{}",
        container["env"]
    );
    assert!(
        container["volumeMounts"]
            .to_string()
            .contains(r#""mountPath":"/python-packages""#),
        "{}",
        container["volumeMounts"]
    );
}

#[test]
fn models_too_big_for_a_configmap_say_what_to_do() {
    let fx = Fixture::new("k8s-big");
    let big = fx.dir.join("big-models");
    std::fs::create_dir_all(&big).unwrap();
    std::fs::write(big.join("huge.onnx"), vec![0u8; 2_000_000]).unwrap();
    let (out, dir) = write(&fx, "big", &big, "", "kubernetes");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("kubernetes.model_claim"),
        "{}",
        text(&out)
    );
    assert!(!dir.exists(), "nothing written");
    assert_eq!(
        String::from_utf8_lossy(&fx.run(&["endpoints"]).stdout).trim(),
        ""
    );
    // A bad quantity is refused before anything is written.
    let (out, _) = write(
        &fx,
        "cpu",
        &models(),
        "[resources]\ncpu = \"lots\"",
        "kubernetes",
    );
    assert!(
        !out.status.success() && text(&out).contains("resources.cpu"),
        "{}",
        text(&out)
    );
}

#[test]
fn deployment_files_follow_their_schema() {
    let fx = Fixture::new("schema");
    let full = toml(
        "everything",
        &guest("onnx_mlp"),
        &models(),
        "image = \"onnxruntime-cpu\"\nport = 5001\nsample = \"request.json\"\ngpu_fallback = \"cpu\"\n[devices]\nmlp = \"gpu\"\n[env]\nMODE = \"x\"\n[resources]\ncpu = \"500m\"\nmemory = \"1Gi\"\ngpu = 2\n[kubernetes]\nnamespace = \"ns\"\nreplicas = 2\nmodel_claim = \"c\"\nstorage_uri = \"pvc://c/m\"\nregistry = \"r/\"",
    ) + "timeout_ms = 100\nmemory_mb = 64\nisolation = \"pooled\"\n";
    let schema = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spec/deployment.schema.json");
    let check = |body: &str| {
        let file = fx.file(body);
        let python = std::env::var_os("SANDSCORE_K8S_PYTHON").expect("run with `make test`");
        Command::new(python)
            .args([
                "-c",
                "import json, sys, tomllib, jsonschema\njsonschema.validate(tomllib.load(open(sys.argv[1], 'rb')), json.load(open(sys.argv[2])))",
            ])
            .arg(&file)
            .arg(&schema)
            .output()
            .expect("python")
    };
    let out = check(&full);
    assert!(out.status.success(), "{}", text(&out));
    let row = vec![0.0f32; 64];
    std::fs::write(
        fx.dir.join("request.json"),
        serde_json::json!({ "data": [row] }).to_string(),
    )
    .unwrap();
    // The SDK reads the same file (a full run of `deploy` would start it).
    let out = deploy(
        &fx,
        &fx.dir.join("sandscore.toml"),
        "kubernetes",
        &fx.dir.join("out"),
    );
    assert!(out.status.success(), "{}", text(&out));
    let bad = full.replace("[resources]", "[resources]\ngpus = 1");
    let out = check(&bad);
    assert!(
        !out.status.success() && text(&out).contains("gpus"),
        "{}",
        text(&out)
    );
    let refused = fx.run(&["deploy", "-f", fx.file(&bad).to_str().unwrap()]);
    assert!(
        !refused.status.success() && text(&refused).contains("gpus"),
        "{}",
        text(&refused)
    );
}

#[test]
fn names_keys_and_images_a_cluster_would_refuse_are_refused_first() {
    let fx = Fixture::new("k8s-refuse");
    // Service names must start with a letter.
    let (out, _) = write(&fx, "1model", &models(), "", "kubernetes");
    assert!(
        !out.status.success() && text(&out).contains("starting with a letter"),
        "{}",
        text(&out)
    );
    // Two model files that would share one ConfigMap key.
    let dir = fx.dir.join("clash");
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::copy(models().join("mlp.onnx"), dir.join("a/b.onnx")).unwrap();
    std::fs::copy(models().join("mlp.onnx"), dir.join("a_b.onnx")).unwrap();
    let file = fx.file(&toml("clash", &guest("echo"), &dir, ""));
    let out = deploy(&fx, &file, "kubernetes", &fx.dir.join("k8s/clash"));
    assert!(
        !out.status.success() && text(&out).contains("share the ConfigMap key"),
        "{}",
        text(&out)
    );
    // An XGBoost model in the ONNX Runtime image would crash-loop in the pod.
    let file = fx.file(&toml(
        "wrong-image",
        &guest("echo"),
        &common::xgb_models(),
        "image = \"onnxruntime-cpu\"",
    ));
    let out = deploy(&fx, &file, "kubernetes", &fx.dir.join("k8s/wrong-image"));
    assert!(
        !out.status.success()
            && text(&out).contains("xgboost")
            && text(&out).contains("xgboost-cpu"),
        "{}",
        text(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&fx.run(&["endpoints"]).stdout).trim(),
        ""
    );
}

/// Whether no cluster answers here (kubectl missing, or reaching none): as
/// the SDK decides it.
fn sandscore_sdk_cannot_apply() -> bool {
    Command::new("kubectl")
        .args(["get", "--raw", "/readyz", "--request-timeout=5s"])
        .output()
        .map_or(true, |o| !o.status.success())
}
