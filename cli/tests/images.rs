//! The prebuilt images, run as users run them: `docker run -p` with
//! `--read-only --cap-drop ALL --security-opt no-new-privileges`, a model
//! and a module mounted read-only, scored over HTTP, stopped with SIGTERM.
//! Needs built images and a Docker engine: `make test-images` runs these
//! (they are ignored by plain `cargo test`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    agent, assert_close, column, expected, guest, models, tf_expected, tf_models, tflite_expected,
    tflite_models, torch_expected, torch_models, xgb_expected, xgb_models,
};
use serde_json::{Value, json};

struct Image {
    name: String,
    tag: String,
    backends: String,
}

/// `make test-heavy` sets SANDSCORE_HEAVY=1 to test the heavy images
/// (TensorFlow); `make test-images` tests the others.
fn heavy_run() -> bool {
    std::env::var("SANDSCORE_HEAVY").is_ok_and(|v| v == "1")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn manifest() -> Vec<Image> {
    let out = Command::new("python3")
        .arg(repo().join("images/manifest.py"))
        .arg("list")
        .output()
        .expect("manifest.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with(" heavy") == heavy_run())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Image {
                name: f[0].into(),
                tag: f[1].into(),
                backends: f[5].into(),
            }
        })
        .collect()
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A container, removed on drop.
struct Container {
    id: String,
    base: String,
}

impl Container {
    fn run(image: &str, mounts: &[(&Path, &str)], extra: &[&str]) -> Container {
        let mut args: Vec<String> = [
            "run",
            "-d",
            "-p",
            "127.0.0.1::5001",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (host, inside) in mounts {
            args.push("-v".into());
            args.push(format!("{}:{inside}:ro", host.display()));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(image.into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let id = docker(&refs);
        let port = docker(&["port", &id, "5001/tcp"]);
        let port = port
            .lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .expect("published port")
            .to_string();
        Container {
            id,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn post(&self, path: &str, body: &Value) -> Option<(u16, String)> {
        let mut r = agent()
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body.to_string())
            .ok()?;
        Some((
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ))
    }

    /// Polls until a score succeeds; returns the answer and the time it took.
    fn first_score(&self, body: &Value, started: Instant) -> (Value, Duration) {
        let deadline = started + Duration::from_secs(120);
        loop {
            if let Some((200, text)) = self.post("/score", body) {
                return (
                    serde_json::from_str(&text).expect("JSON"),
                    started.elapsed(),
                );
            }
            assert!(
                Instant::now() < deadline,
                "no successful score in 120 s; logs:\n{}",
                self.logs()
            );
            assert!(
                docker(&["inspect", "-f", "{{.State.Running}}", &self.id]) == "true",
                "the container exited; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn logs(&self) -> String {
        let out = Command::new("docker")
            .args(["logs", &self.id])
            .output()
            .expect("logs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // -v: also the anonymous /tmp volume.
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.id])
            .output();
    }
}

/// What every image must do once it scored: run as uid 10001, pass its own
/// health check, write nothing outside its mounts and /tmp, stop on SIGTERM
/// with exit status 0.
fn check_hardening(c: &Container, mounts: &[&str]) {
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", &c.id]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("the container's main process");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    let uids: Vec<&str> = uid_line.split_whitespace().skip(1).collect();
    assert_eq!(
        uids, ["10001"; 4],
        "real, effective, saved and fs uid of the server"
    );
    let caps = status
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .expect("CapEff line");
    assert!(
        caps.ends_with("0000000000000000"),
        "no capabilities: {caps}"
    );
    // The working directory is empty: nothing a relative path resolves to.
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).expect("the server's cwd");
    assert!(
        cwd.ends_with("opt/sandscore/empty"),
        "the server runs in its empty directory, not {}",
        cwd.display()
    );
    let inside = std::fs::read_dir(format!("/proc/{pid}/root/opt/sandscore/empty"))
        .map(|d| d.count())
        .expect("the working directory, seen from the host");
    assert_eq!(inside, 0, "the working directory holds nothing");
    docker(&["exec", &c.id, "/opt/sandscore/bin/sandscore", "health"]);
    let changed = docker(&["diff", &c.id]);
    for line in changed.lines() {
        let path = line.split_whitespace().nth(1).unwrap_or("");
        let is_mount = mounts
            .iter()
            .any(|m| path == *m || m.starts_with(&format!("{path}/")));
        assert!(
            is_mount,
            "the container wrote {line:?} outside its mounts (all changes: {changed})"
        );
    }
    docker(&["stop", "-t", "20", &c.id]);
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.ExitCode}}", &c.id]),
        "0",
        "exit status after SIGTERM; logs:\n{}",
        c.logs()
    );
}

/// An image whose backend reads a framework's own format: its iris model's
/// folder, the model's name, and the framework's own probabilities (the
/// `iris-native` module serves all of them).
fn native_iris(image: &Image) -> Option<(PathBuf, &'static str, Value)> {
    let (dir, name, expected, key) = if image.backends.contains("pytorch") {
        (
            torch_models(),
            "iris_torch",
            torch_expected(),
            "probabilities",
        )
    } else if image.backends.contains("tflite") {
        (
            tflite_models(),
            "iris_tflite",
            tflite_expected(),
            "probabilities",
        )
    } else if image.backends.contains("tensorflow") {
        (tf_models(), "iris_tf", tf_expected(), "probabilities")
    } else if image.backends.contains("xgboost") {
        (xgb_models(), "iris_xgb", xgb_expected(), "predict_proba")
    } else {
        return None;
    };
    let case = json!({ "input": expected[name]["input"], "probabilities": expected[name][key] });
    Some((dir, name, case))
}

/// The module to mount, its models, and the request it gets.
fn module_for(image: &Image) -> (&'static str, PathBuf, Value) {
    let exp = expected();
    if let Some((dir, _, case)) = native_iris(image) {
        ("iris_native", dir, json!({ "data": case["input"] }))
    } else if image.name.contains("sklearn") {
        (
            "iris_sklearn",
            models(),
            json!({ "data": exp["iris"]["input"] }),
        )
    } else if image.backends.contains("onnxruntime") {
        ("onnx_mlp", models(), json!({ "data": exp["mlp"]["input"] }))
    } else {
        ("echo", models(), json!({ "hello": "image" }))
    }
}

fn check_answer(image: &Image, answer: &Value) {
    let exp = expected();
    let preds = |k: &str| column(answer, k);
    if let Some((_, name, case)) = native_iris(image) {
        assert_close(&preds("probabilities"), &case["probabilities"], 1e-5);
        if name == "iris_xgb" {
            assert_eq!(preds("class"), xgb_expected()["iris_xgb"]["predict"]);
        }
    } else if image.name.contains("sklearn") {
        assert_eq!(preds("label"), exp["iris"]["sklearn"]["label"]);
        assert_close(
            &preds("probabilities"),
            &exp["iris"]["sklearn"]["probabilities"],
            1e-5,
        );
    } else if image.backends.contains("onnxruntime") {
        assert_close(
            &preds("probabilities"),
            &exp["mlp"]["ort"]["probabilities"],
            1e-5,
        );
    } else {
        assert_eq!(answer, &json!({"echo": {"hello": "image"}}));
    }
}

#[test]
#[ignore = "needs built images and a Docker engine: make test-images"]
fn every_image_serves_hardened_and_stops_cleanly() {
    for image in manifest() {
        let (module, m, request) = module_for(&image);
        let wasm = guest(module);
        let reference = format!("{}:{}", image.name, image.tag);
        let labels = docker(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.Labels}}",
            &reference,
        ]);
        let labels: Value = serde_json::from_str(&labels).expect("labels");
        assert_eq!(
            labels["org.opencontainers.image.version"],
            image.tag.as_str(),
            "{labels}"
        );
        assert_eq!(
            labels["org.opencontainers.image.title"],
            image.name.as_str(),
            "{labels}"
        );
        let size: u64 = docker(&["image", "inspect", "-f", "{{.Size}}", &reference])
            .parse()
            .expect("size");

        let started = Instant::now();
        let (c, mounts) = if image.backends == "-" {
            (
                Container::run(
                    &reference,
                    &[(&wasm, "/app/score.wasm")],
                    &["-e", "AZUREML_MODEL_DIR="],
                ),
                vec!["/app/score.wasm"],
            )
        } else {
            (
                Container::run(
                    &reference,
                    &[(&m, "/models"), (&wasm, "/app/score.wasm")],
                    &[],
                ),
                vec!["/models", "/app/score.wasm"],
            )
        };
        let (answer, took) = c.first_score(&request, started);
        check_answer(&image, &answer);
        // A log that says what happened, without ONNX Runtime's telemetry
        // notices (no CA bundle, no device id) in every container.
        let logs = c.logs();
        assert!(!logs.contains("telemetry"), "{logs}");
        println!(
            "{reference:<44} {:>4} MB, docker run to first score {:>6.0} ms",
            size >> 20,
            took.as_secs_f64() * 1e3
        );
        check_hardening(&c, &mounts);
    }
}

#[test]
#[ignore = "needs built images and a Docker engine: make test-images"]
fn the_sandbox_holds_inside_the_container() {
    let dir = std::env::temp_dir().join(format!("sandscore-image-sandbox-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(models().join("mlp.onnx"), dir.join("mlp.onnx")).expect("copy");
    let wasm = guest("hostile");
    let c = Container::run(
        "sandscore/onnxruntime-cpu:latest",
        &[(&dir, "/models"), (&wasm, "/app/score.wasm")],
        &[],
    );
    let _ = c.first_score(&json!({"action": "count"}), Instant::now());
    let denied = [
        json!({"action": "write", "path": "/models/x.bin"}),
        json!({"action": "read", "path": "/etc/passwd"}),
        json!({"action": "socket", "addr": "127.0.0.1:5001"}),
    ];
    for body in denied {
        let (status, text) = c.post("/score", &body).expect("answer");
        assert_eq!(status, 500, "{body}: {text}");
        assert!(text.contains("refused"), "{body}: {text}");
    }
    assert!(!dir.join("x.bin").exists());
    check_hardening(&c, &["/models", "/app/score.wasm"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs built images and a Docker engine: make test-images"]
fn scratch_space_lives_in_the_tmp_volume() {
    let wasm = guest("hostile");
    let c = Container::run(
        "sandscore/minimal-cpu:latest",
        &[(&wasm, "/app/score.wasm")],
        &["-e", "AZUREML_MODEL_DIR=", "-e", "SANDSCORE_SCRATCH_MB=2"],
    );
    let _ = c.first_score(&json!({"action": "count"}), Instant::now());
    let (status, text) = c
        .post(
            "/score",
            &json!({"action": "write", "path": "/scratch/a.bin", "mb": 1}),
        )
        .expect("answer");
    assert_eq!(status, 200, "{text}");
    let (status, text) = c
        .post(
            "/score",
            &json!({"action": "write", "path": "/scratch/b.bin", "mb": 3}),
        )
        .expect("answer");
    assert_eq!(status, 500, "{text}");
    check_hardening(&c, &["/app/score.wasm"]);
}

#[test]
#[ignore = "needs built images and a Docker engine: make test-images"]
fn extra_models_and_modules_need_no_image_build() {
    // One image, two deployments: different model sets and modules mounted.
    let exp = expected();
    let m = models();
    for (module, request, check) in [
        (
            "token_embed",
            json!({ "tokens": exp["embed"]["input"] }),
            "embeddings",
        ),
        (
            "iris_sklearn",
            json!({ "data": exp["iris"]["input"] }),
            "predictions",
        ),
    ] {
        let wasm = guest(module);
        let c = Container::run(
            "sandscore/onnxruntime-cpu:latest",
            &[(&m, "/models"), (&wasm, "/app/score.wasm")],
            &[],
        );
        let (answer, _) = c.first_score(&request, Instant::now());
        assert!(answer.get(check).is_some(), "{answer}");
    }
    // Models alone, answered over V2 (no module).
    let c = Container::run(
        "sandscore/onnxruntime-cpu:latest",
        &[(&m, "/models")],
        &["-e", "AZUREML_ENTRY_SCRIPT="],
    );
    let started = Instant::now();
    let body = json!({"inputs": [{"name": "input_ids", "shape": [3, 6], "datatype": "INT64", "data": exp["embed"]["input"]}]});
    let answer = loop {
        if let Some((200, text)) = c.post("/v2/models/embed/infer", &body) {
            break serde_json::from_str::<Value>(&text).expect("JSON");
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{}", c.logs());
        std::thread::sleep(Duration::from_millis(25));
    };
    assert_close(
        &answer["outputs"][0]["data"],
        &exp["embed"]["ort"]["embedding"],
        1e-5,
    );
}

#[test]
#[ignore = "needs built images and a Docker engine: make test-images"]
fn a_derived_image_bakes_in_model_and_module_and_an_apt_package() {
    let ctx = std::env::temp_dir().join(format!("sandscore-extend-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&ctx);
    std::fs::create_dir_all(ctx.join("models")).expect("mkdir");
    std::fs::copy(models().join("mlp.onnx"), ctx.join("models/mlp.onnx")).expect("copy model");
    std::fs::copy(guest("onnx_mlp"), ctx.join("score.wasm")).expect("copy module");
    std::fs::copy(
        repo().join("images/examples/extend/Dockerfile"),
        ctx.join("Dockerfile"),
    )
    .expect("copy Dockerfile");
    let out = Command::new("docker")
        .args(["build", "-q", "-t", "sandscore-test/extended:latest"])
        .arg(&ctx)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = Container::run("sandscore-test/extended:latest", &[], &[]);
    let exp = expected();
    let (answer, took) = c.first_score(&json!({ "data": exp["mlp"]["input"] }), Instant::now());
    assert_close(
        &column(&answer, "probabilities"),
        &exp["mlp"]["ort"]["probabilities"],
        1e-5,
    );
    println!(
        "derived image: docker run to first score {:.0} ms",
        took.as_secs_f64() * 1e3
    );
    assert_eq!(
        docker(&["exec", &c.id, "jq", "--version"])
            .split('-')
            .next(),
        Some("jq")
    );
    check_hardening(&c, &[]);
    let _ = std::fs::remove_dir_all(&ctx);
}

/// Containers of one deployment, by the label the SDK puts on them.
fn labelled(name: &str) -> String {
    docker(&[
        "ps",
        "-a",
        "-q",
        "--filter",
        &format!("label=io.sandscore.deployment={name}"),
    ])
}

/// Where a container's mounts go and whether they are writable
/// (`/models=false …`).
fn mounts(id: &str) -> String {
    docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Destination}}={{.RW}} {{end}}",
        id,
    ])
}

/// `sandscore deploy -f FILE --target container`.
fn deploy_container(fx: &common::fixture::Fixture, file: &Path) -> std::process::Output {
    fx.run(&[
        "deploy",
        "-f",
        file.to_str().unwrap(),
        "--target",
        "container",
    ])
}

/// `sandscore invoke NAME` with the mlp rows of expected.json: the answer.
fn invoke_mlp(fx: &common::fixture::Fixture, name: &str) -> Value {
    let request = fx.dir.join("request.json");
    std::fs::write(
        &request,
        json!({ "data": expected()["mlp"]["input"] }).to_string(),
    )
    .unwrap();
    let out = fx.run(&["invoke", name, "--data", request.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::fixture::text(&out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
#[ignore = "needs built images and a Docker engine: make test-images"]
fn the_container_target_deploys_a_scaffolded_project() {
    use common::fixture::{Fixture, scaffold, text};
    let fx = Fixture::new("container");
    let project = scaffold(&fx);
    let file = project.join("sandscore.toml");
    let out = deploy_container(&fx, &file);
    assert!(out.status.success(), "{}", text(&out));
    let progress = String::from_utf8_lossy(&out.stderr).to_string();
    for step in [
        "checking the image",
        "validating module and models inside the image",
        "waiting for readiness",
    ] {
        assert!(
            progress.contains(step),
            "no progress line '{step}':\n{progress}"
        );
    }
    let listing = String::from_utf8_lossy(&fx.run(&["endpoints"]).stdout).to_string();
    assert!(
        listing.contains("hello-model")
            && listing.contains("container")
            && listing.contains("running"),
        "{listing}"
    );
    let id = labelled("hello-model");
    assert!(!id.is_empty(), "no container labelled for the deployment");
    assert_eq!(
        docker(&["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", &id]),
        "unless-stopped"
    );
    assert_eq!(
        docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}}",
            &id
        ]),
        "true [ALL] [no-new-privileges]"
    );
    let mounts = mounts(&id);
    assert!(
        mounts.contains("/app/score.wasm=false") && mounts.contains("/models=false"),
        "module and models must be mounted read-only: {mounts}"
    );

    let exp = expected();
    let answer = invoke_mlp(&fx, "hello-model");
    assert_close(
        &answer["probabilities"]["values"],
        &exp["mlp"]["ort"]["probabilities"],
        1e-5,
    );
    // The same model over the container's published gRPC port.
    let rows = exp["mlp"]["input"].as_array().expect("rows");
    let flat: Vec<Value> = rows
        .iter()
        .flat_map(|r| r.as_array().cloned().unwrap_or_default())
        .collect();
    let request = fx.dir.join("v2-request.json");
    std::fs::write(
        &request,
        json!({"inputs": [{"name": "input", "shape": [rows.len(), 64], "datatype": "FP32", "data": flat}]})
            .to_string(),
    )
    .expect("write");
    let out = fx.run(&[
        "invoke",
        "hello-model",
        "--grpc",
        "--model",
        "mlp",
        "--data",
        request.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let over_grpc: Value = serde_json::from_slice(&out.stdout).expect("V2 JSON");
    assert_close(
        &over_grpc["outputs"][0]["data"],
        &exp["mlp"]["ort"]["probabilities"],
        1e-5,
    );
    // The container's own log (the access log is off by default).
    let logs = fx.run(&["logs", "hello-model"]);
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("module ready module=score"),
        "{}",
        text(&logs)
    );

    let out = fx.run(&["delete", "hello-model"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(labelled("hello-model"), "", "container left behind");
    assert_eq!(
        String::from_utf8_lossy(&fx.run(&["endpoints"]).stdout).trim(),
        ""
    );
}

#[test]
#[ignore = "needs built images and a Docker engine: make test-images"]
fn broken_container_deployments_leave_nothing_behind() {
    use common::fixture::{Fixture, text, toml};
    let fx = Fixture::new("container-bad");
    let empty = fx.dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let deploy = |name: &str, models: &Path, extra: &str| {
        let file = fx.file(&toml(name, &guest("onnx_mlp"), models, extra));
        deploy_container(&fx, &file)
    };
    let out = deploy("no-model", &empty, "image = \"onnxruntime-cpu\"");
    assert!(
        !out.status.success() && text(&out).contains("no model named 'mlp'"),
        "{}",
        text(&out)
    );
    let out = deploy("no-image", &models(), "image = \"sandscore-test/absent:0\"");
    assert!(
        !out.status.success()
            && text(&out).contains("sandscore-test/absent:0 is not in docker's store"),
        "{}",
        text(&out)
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = deploy("taken", &models(), &format!("port = {port}"));
    assert!(
        !out.status.success() && text(&out).contains(&format!("port {port} is taken")),
        "{}",
        text(&out)
    );
    for name in ["no-model", "no-image", "taken"] {
        assert_eq!(labelled(name), "", "{name} left a container");
    }
    assert_eq!(
        String::from_utf8_lossy(&fx.run(&["endpoints"]).stdout).trim(),
        ""
    );
}

/// The GPU images, each with its host layout (the libraries it ships, as
/// `make ort-gpu tensorflow-gpu pytorch-gpu` laid them out), a model
/// directory and the model to place on the GPU.
fn gpu_images() -> Vec<(&'static str, &'static str, PathBuf, PathBuf, &'static str)> {
    let layout = |var: &str| {
        PathBuf::from(
            std::env::var_os(var).unwrap_or_else(|| panic!("{var} is not set: make test-heavy")),
        )
    };
    vec![
        (
            "sandscore/onnxruntime-gpu:latest",
            "onnxruntime",
            layout("SANDSCORE_ORT_GPU"),
            models(),
            "mlp",
        ),
        (
            "sandscore/tensorflow-gpu:latest",
            "tensorflow",
            layout("SANDSCORE_TF_GPU"),
            tf_models(),
            "iris_tf",
        ),
        (
            "sandscore/pytorch-gpu:latest",
            "pytorch",
            layout("SANDSCORE_TORCH_GPU"),
            torch_models(),
            "iris_torch",
        ),
    ]
}

/// Shared libraries under `dir`, as paths inside the image's /opt/sandscore/lib.
fn shipped_libraries(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["", "cuda", "tensorflow", "torch"] {
        for e in std::fs::read_dir(dir.join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_file() && name.contains(".so") {
                let rel = if sub.is_empty() {
                    name
                } else {
                    format!("{sub}/{name}")
                };
                out.push(format!("/opt/sandscore/lib/{rel}"));
            }
        }
    }
    out.sort();
    out
}

#[test]
#[ignore = "needs the built GPU images (heavy) and Docker: make test-heavy"]
fn the_gpu_images_carry_every_cuda_library_but_the_driver() {
    if !heavy_run() {
        eprintln!("the GPU images are heavy: make test-heavy tests them");
        return;
    }
    for (image, backend, layout, dir, model) in gpu_images() {
        let env = docker(&["image", "inspect", "-f", "{{json .Config.Env}}", image]);
        for var in [
            "NVIDIA_VISIBLE_DEVICES=all",
            "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
            "LD_LIBRARY_PATH=/opt/sandscore/lib/cuda",
        ] {
            assert!(env.contains(var), "{image}: no {var} in {env}");
        }
        let labels = docker(&["image", "inspect", "-f", "{{json .Config.Labels}}", image]);
        assert!(
            labels.contains(r#""io.sandscore.device":"gpu""#),
            "{image}: {labels}"
        );
        assert_eq!(
            docker(&["image", "inspect", "-f", "{{.Config.User}}", image]),
            "10001:10001"
        );
        // Every library the image ships resolves, inside the image, by its
        // own dynamic loader: all but the driver's (libcuda.so.1 and
        // libnvidia-ml.so.1, which the NVIDIA container toolkit mounts).
        let libraries = shipped_libraries(&layout);
        assert!(libraries.len() > 5, "{image}: {libraries:?}");
        for lib in &libraries {
            let out = Command::new("docker")
                .args([
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "--entrypoint",
                    "/lib64/ld-linux-x86-64.so.2",
                ])
                .args([image, "--list", lib])
                .output()
                .expect("docker run");
            let listing = String::from_utf8_lossy(&out.stdout);
            let missing: Vec<&str> = listing
                .lines()
                .filter(|l| l.contains("not found"))
                .filter(|l| !l.contains("libcuda.so.1") && !l.contains("libnvidia-ml.so.1"))
                .collect();
            assert!(missing.is_empty(), "{image}: {lib} misses {missing:?}");
        }
        // No GPU or driver here: the model placed on the GPU is refused,
        // naming it and the driver's library, or runs on the CPU when asked.
        let m = dir.canonicalize().expect("models");
        let run = |extra: &[&str]| {
            Command::new("docker")
                .args(["run", "--rm", "--read-only", "--network", "none"])
                .args(["-e", "AZUREML_ENTRY_SCRIPT=", "-v"])
                .arg(format!("{}:/models:ro", m.display()))
                .arg(image)
                .args(["check", "--model-device", &format!("{model}=gpu")])
                .args(extra)
                .output()
                .expect("docker run")
        };
        let out = run(&[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{image}: loaded on a GPU that is not there? {err}"
        );
        assert!(
            err.contains("libcuda.so.1") && err.contains(&format!("'{model}'")),
            "{image}: {err}"
        );
        let out = run(&["--gpu-fallback", "cpu"]);
        assert!(
            out.status.success(),
            "{image} ({backend}): the CPU fallback: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A test script of tests/scripts, by name.
fn test_script(name: &str) -> PathBuf {
    repo().join("tests/scripts").join(name).join("score.py")
}

#[test]
#[ignore = "needs built images and a Docker engine: make test-images"]
fn unchanged_scripts_run_in_each_images_python_runtime_as_they_do_natively() {
    let xgb = common::xgb_models();
    let cases = [
        (
            "onnxruntime-cpu",
            "onnx_numpy",
            models(),
            json!({ "data": expected()["mlp"]["input"] }),
        ),
        (
            "sklearn-cpu",
            "sklearn_pandas",
            models(),
            json!({ "data": expected()["iris"]["input"] }),
        ),
        (
            "xgboost-cpu",
            "xgboost_booster",
            xgb.clone(),
            json!({ "data": common::xgb_expected()["iris_xgb"]["input"] }),
        ),
    ];
    for (image, name, model_dir, body) in cases {
        let script = test_script(name);
        let app = script
            .parent()
            .expect("folder")
            .canonicalize()
            .expect("folder");
        let models = model_dir.canonicalize().expect("models");
        let started = Instant::now();
        let c = Container::run(
            &format!("sandscore/{image}:latest"),
            &[(&models, "/models"), (&app, "/app/src")],
            &["-e", "AZUREML_ENTRY_SCRIPT=/app/src/score.py"],
        );
        let (answer, took) = c.first_score(&body, started);
        let want = &common::native_script(&script, &model_dir, std::slice::from_ref(&body))[0];
        for (key, value) in want.as_object().expect("an object") {
            match value {
                Value::Array(_) if value.to_string().contains('.') => {
                    assert_close(&answer[key], value, 1e-5)
                }
                _ => assert_eq!(&answer[key], value, "{image} {key}"),
            }
        }
        // The image's precompiled interpreter: nothing compiles at start.
        let logs = c.logs();
        assert!(
            logs.contains("Python runtime loaded from its precompiled code"),
            "{image}: {logs}"
        );
        println!(
            "{image}: docker run of {name}/score.py to first score {:.2} s",
            took.as_secs_f64()
        );
        check_hardening(&c, &["/models", "/app/src"]);
    }
}

#[test]
#[ignore = "needs built images and a Docker engine: make test-images"]
fn the_sklearn_image_serves_pickles_with_only_a_model_directory_mounted() {
    let dir = std::env::temp_dir().join(format!("sandscore-image-pickles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let want = common::native_pickle(&dir);
    // Readable by the image's uid 10001.
    let _ = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&dir)
        .status();
    let started = Instant::now();
    let c = Container::run("sandscore/sklearn-cpu:latest", &[(&dir, "/models")], &[]);
    let (answer, took) = c.first_score(&json!({ "data": want["rows"] }), started);
    assert_eq!(answer["predictions"], want["predictions"]);
    assert_close(&answer["probabilities"], &want["probabilities"], 1e-5);
    println!(
        "sklearn-cpu: docker run to first pickle score {:.2} s",
        took.as_secs_f64()
    );
    check_hardening(&c, &["/models"]);
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs built images and a Docker engine: make test-images"]
fn the_container_target_deploys_a_python_script_with_its_requirements() {
    use common::fixture::{Fixture, text, toml};
    let fx = Fixture::new("container-python");
    // The script and its requirements.txt (a package the runtime does not
    // bundle), resolved on the host and mounted: the container has no pip.
    let app = fx.dir.join("app");
    std::fs::create_dir_all(&app).expect("mkdir");
    for f in ["score.py", "requirements.txt"] {
        std::fs::copy(
            repo().join("tests/scripts/requirements").join(f),
            app.join(f),
        )
        .expect("copy");
    }
    let file = fx.file(&toml(
        "pyscript",
        &app.join("score.py"),
        &models(),
        "image = \"onnxruntime-cpu\"",
    ));
    let out = deploy_container(&fx, &file);
    assert!(out.status.success(), "{}", text(&out));
    let id = labelled("pyscript");
    let mounts = mounts(&id);
    assert!(
        mounts.contains("/app/src=false")
            && mounts.contains("/app/packages=false")
            && mounts.contains("/models=false"),
        "the script's folder, its packages and the models, read-only: {mounts}"
    );
    let body = json!({ "data": [[3.0, 1.0, 2.0, 5.0], [0.5, 0.25, 4.0, 1.0]] });
    let request = fx.dir.join("request.json");
    std::fs::write(&request, body.to_string()).expect("write");
    let out = fx.run(&[
        "invoke",
        "pyscript",
        "--data",
        request.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let want = &common::native_script(
        &app.join("score.py"),
        &models(),
        std::slice::from_ref(&body),
    )[0];
    assert_eq!(&answer, want);
    let logs = text(&fx.run(&["logs", "pyscript"]));
    assert!(
        logs.contains("Python runtime loaded from its precompiled code")
            && !logs.contains("installing"),
        "{logs}"
    );
    let out = fx.run(&["delete", "pyscript"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(labelled("pyscript"), "", "container left behind");
}

#[test]
#[ignore = "needs built images and a Docker engine: make test-images"]
fn the_onnxruntime_image_answers_grpc_clients_on_8001() {
    let image = manifest()
        .into_iter()
        .find(|i| i.name == "sandscore/onnxruntime-cpu")
        .expect("the onnxruntime image in the manifest");
    let reference = format!("{}:{}", image.name, image.tag);
    let c = Container::run(
        &reference,
        &[(&models(), "/models")],
        &["-p", "127.0.0.1::8001", "-e", "AZUREML_ENTRY_SCRIPT="],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while agent()
        .get(format!("{}/v2/health/ready", c.base))
        .call()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(Instant::now() < deadline, "the container did not get ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let port = docker(&["port", &c.id, "8001/tcp"]);
    let port = port
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .expect("gRPC published");
    let python = std::env::var_os("SANDSCORE_TRITON_PYTHON").expect("run with `make test-images`");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/triton_grpc.py");
    let out = Command::new(python)
        .arg(script)
        .arg(format!("127.0.0.1:{port}"))
        .arg(models().join("expected.json"))
        .output()
        .expect("run tritonclient.grpc");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().last() == Some("ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
