//! Test harness: runs the real `sandscore` binary on an ephemeral port and
//! talks to it with a real HTTP client.
#![allow(dead_code)]

pub mod fixture;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Built guests (`make guests`), from SANDSCORE_GUESTS.
pub fn guest(name: &str) -> PathBuf {
    let dir = std::env::var_os("SANDSCORE_GUESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/guest")
        });
    let p = dir.join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run the tests with `make test`",
        p.display()
    );
    p
}

/// Serves the guest `module` with `model_dir` (the generated models when
/// `None`) and `extra` flags, waiting until it is ready.
pub fn serve_module(module: &str, model_dir: Option<&Path>, extra: &[&str]) -> Server {
    serve_module_env(module, model_dir, extra, &[])
        .unwrap_or_else(|log| panic!("server did not become ready:\n{log}"))
}

/// As [`serve_module`], with extra environment variables for the server;
/// `Err` with its output if it does not become ready.
pub fn serve_module_env(
    module: &str,
    model_dir: Option<&Path>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<Server, String> {
    serve_path(&guest(module), model_dir, extra, env)
}

/// As [`serve_module_env`], for the module file at `module`.
pub fn serve_path(
    module: &Path,
    model_dir: Option<&Path>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<Server, String> {
    let m = model_dir.map(Path::to_path_buf).unwrap_or_else(models);
    let mut args = vec![
        "--module",
        module.to_str().expect("path"),
        "--model-dir",
        m.to_str().expect("path"),
    ];
    args.extend_from_slice(extra);
    Server::try_start_env(&args, env)
}

/// Generated models (`make models`), from SANDSCORE_MODELS.
pub fn models() -> PathBuf {
    let dir = std::env::var_os("SANDSCORE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/models"));
    assert!(
        dir.join("expected.json").exists(),
        "{} has no models: run the tests with `make test`",
        dir.display()
    );
    dir
}

/// A folder of generated example models, from the environment variable the
/// Makefile sets, with the frameworks' own outputs in its expected.json.
fn model_set(var: &str, default: &str, make: &str) -> PathBuf {
    let dir = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target")
            .join(default)
    });
    assert!(
        dir.join("expected.json").exists(),
        "{} has no models: run these tests with `{make}`",
        dir.display()
    );
    dir
}

fn expected_in(dir: PathBuf) -> Value {
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

/// XGBoost's example models, written by examples/models/make_xgboost.py.
pub fn xgb_models() -> PathBuf {
    model_set("SANDSCORE_XGB_MODELS", "models-xgboost", "make test")
}

/// XGBoost's own predictions for them.
pub fn xgb_expected() -> Value {
    expected_in(xgb_models())
}

/// The TensorFlow SavedModel, written by examples/models/make_tensorflow.py.
pub fn tf_models() -> PathBuf {
    model_set(
        "SANDSCORE_TF_MODELS",
        "models-tensorflow",
        "make test-heavy",
    )
}

/// What the SavedModel's own signature returned.
pub fn tf_expected() -> Value {
    expected_in(tf_models())
}

/// The TensorFlow Lite model, written by examples/models/make_tensorflow.py.
pub fn tflite_models() -> PathBuf {
    model_set(
        "SANDSCORE_TFLITE_MODELS",
        "models-tflite",
        "make test-heavy",
    )
}

/// The TorchScript model, written by examples/models/make_pytorch.py.
pub fn torch_models() -> PathBuf {
    model_set(
        "SANDSCORE_TORCH_MODELS",
        "models-pytorch",
        "make test-heavy",
    )
}

/// What torch.jit.load's module returned.
pub fn torch_expected() -> Value {
    expected_in(torch_models())
}

/// What LiteRT's own Python interpreter returned.
pub fn tflite_expected() -> Value {
    expected_in(tflite_models())
}

/// The frameworks' own outputs, written by examples/models/make_models.py.
pub fn expected() -> Value {
    let text = std::fs::read_to_string(models().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

/// `sandscore check --model-dir DIR EXTRA…`: whether it passed, and its stderr.
pub fn check_models(dir: &Path, extra: &[&str]) -> (bool, String) {
    let out = binary()
        .args(["check", "--model-dir", dir.to_str().expect("path")])
        .args(extra)
        .output()
        .expect("run check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sandscore serve` of the models in `dir` alone, with a short deadline
/// and one worker: what the deadline tests need.
pub fn serve_models_within(dir: &Path, timeout_ms: u64) -> Server {
    let timeout = timeout_ms.to_string();
    let dir = dir.to_str().expect("a UTF-8 path");
    Server::start(&["--model-dir", dir, "--timeout", &timeout, "--workers", "1"])
}

/// The sandscore binary.
pub fn binary() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sandscore"));
    // CI runs as root; the refusal itself is tested in sandbox.rs.
    c.env("RUST_LOG", "warn").env("SANDSCORE_ALLOW_ROOT", "1");
    c
}

/// A running server, stopped on drop.
pub struct Server {
    child: Child,
    pub base: String,
    log: Arc<Mutex<String>>,
}

/// Collects a pipe's lines into a shared string on a thread of its own.
fn drain(
    pipe: impl std::io::Read + Send + 'static,
    sink: Arc<Mutex<String>>,
    tx: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let (Some(tx), Some(url)) = (&tx, line.strip_prefix("listening on ")) {
                let _ = tx.send(url.to_string());
            }
            if let Ok(mut s) = sink.lock() {
                s.push_str(&line);
                s.push('\n');
            }
        }
    });
}

impl Server {
    /// Starts `sandscore serve` with `args` and waits until it is ready.
    pub fn start(args: &[&str]) -> Server {
        Server::try_start(args).unwrap_or_else(|log| panic!("server did not become ready:\n{log}"))
    }

    /// Starts a server; `Err` with its output if it exits or never gets ready.
    pub fn try_start(args: &[&str]) -> Result<Server, String> {
        Server::try_start_env(args, &[])
    }

    /// As [`Server::try_start`], with extra environment variables.
    pub fn try_start_env(args: &[&str], env: &[(&str, &str)]) -> Result<Server, String> {
        let mut server = Server::spawn(args, env)?;
        server.wait_ready()?;
        Ok(server)
    }

    /// Starts `sandscore serve` and returns once it listens (maybe not ready).
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Result<Server, String> {
        // Many servers run at once: gRPC only where a test asks for it.
        let grpc: &[&str] = if args.contains(&"--grpc-port") {
            &[]
        } else {
            &["--grpc-port", "0"]
        };
        let mut child = binary()
            .args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .args(grpc)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sandscore");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        drain(
            child.stdout.take().expect("stdout"),
            Arc::clone(&log),
            Some(tx),
        );
        drain(child.stderr.take().expect("stderr"), Arc::clone(&log), None);
        let base = rx.recv_timeout(Duration::from_secs(30));
        let mut server = Server {
            child,
            base: base.unwrap_or_default(),
            log,
        };
        if server.base.is_empty() {
            return Err(server.stop_and_log());
        }
        Ok(server)
    }

    /// Waits until `/v2/health/ready` answers 200; `Err` with the server's
    /// output if it exits or takes too long.
    pub fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = agent().get(self.url("/v2/health/ready")).call()
                && r.status() == 200
            {
                return Ok(());
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(self.stop_and_log());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "timed out waiting for readiness\n{}",
                    self.stop_and_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop_and_log(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        self.log()
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// An absolute URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a JSON body; returns status, headers and body.
    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post(path, "application/json", body.to_string().into_bytes())
    }

    /// POSTs a JSON body with an `x-request-id` header.
    pub fn post_json_with_id(&self, path: &str, body: &Value, id: &str) -> Reply {
        let r = agent()
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("x-request-id", id)
            .send(body.to_string())
            .expect("request");
        Reply::from(r)
    }

    /// POSTs raw bytes.
    pub fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let r = agent()
            .post(self.url(path))
            .header("content-type", content_type)
            .send(&body[..])
            .expect("request");
        Reply::from(r)
    }

    /// GETs a path with extra headers.
    pub fn get_with_headers(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut r = agent().get(self.url(path));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        Reply::from(r.call().expect("request"))
    }

    /// GETs a path.
    pub fn get(&self, path: &str) -> Reply {
        Reply::from(agent().get(self.url(path)).call().expect("request"))
    }

    /// The server's process id, for signal tests.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit, returning its status.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that returns 4xx/5xx as values.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// A response, read whole.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy where it is not UTF-8).
    pub text: String,
    /// The body's bytes.
    pub bytes: Vec<u8>,
}

impl Reply {
    fn from(mut r: ureq::http::Response<ureq::Body>) -> Reply {
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let status = r.status().as_u16();
        let bytes = r.body_mut().read_to_vec().unwrap_or_default();
        Reply {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        }
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The error text of an Azure ML (`message`) or V2 (`error`) error
    /// body; empty when there is none.
    pub fn message(&self) -> String {
        let body: Value = serde_json::from_str(&self.text).unwrap_or_default();
        body["message"]
            .as_str()
            .or_else(|| body["error"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Asserts two numeric JSON arrays (any nesting) agree within `tol`.
pub fn assert_close(actual: &Value, expected: &Value, tol: f64) {
    let mut a = Vec::new();
    let mut e = Vec::new();
    flatten(actual, &mut a);
    flatten(expected, &mut e);
    assert_eq!(a.len(), e.len(), "length differs: {actual} vs {expected}");
    for (i, (x, y)) in a.iter().zip(&e).enumerate() {
        assert!(
            (x - y).abs() <= tol,
            "element {i}: {x} vs {y} (tolerance {tol})"
        );
    }
}

fn flatten(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        Value::Number(n) => out.push(n.as_f64().expect("number")),
        other => panic!("not a number: {other}"),
    }
}

/// Resident memory of a process, in bytes.
pub fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// True when the tests run as root.
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// `[p[key] for p in body["predictions"]]`: one field of every prediction.
pub fn column(body: &Value, key: &str) -> Value {
    let rows = body["predictions"]
        .as_array()
        .unwrap_or_else(|| panic!("no predictions in {body}"));
    Value::Array(rows.iter().map(|p| p[key].clone()).collect())
}

/// V2 infer on `mlp` (the expected input rows) answers the probabilities
/// ONNX Runtime's Python API computed.
pub fn v2_mlp_answers_like_ort(server: &Server) {
    let exp = expected();
    let rows = exp["mlp"]["input"].as_array().unwrap();
    let flat: Vec<Value> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().clone())
        .collect();
    let reply = server.post_json(
        "/v2/models/mlp/infer",
        &serde_json::json!({ "inputs": [{ "name": "input", "shape": [rows.len(), 64], "datatype": "FP32", "data": flat }] }),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body: Value = serde_json::from_str(&reply.text).unwrap();
    assert_close(
        &body["outputs"][0]["data"],
        &exp["mlp"]["ort"]["probabilities"],
        1e-5,
    );
}

/// A small classifier fitted and pickled into `dir` by CPython with the real
/// scikit-learn (`tests/scripts/make_pickle.py`): its rows, predictions and
/// probabilities.
pub fn native_pickle(dir: &Path) -> serde_json::Value {
    let python = std::env::var_os("SANDSCORE_NATIVE_PYTHON")
        .expect("SANDSCORE_NATIVE_PYTHON is not set: run the tests with `make test`");
    let maker = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/scripts/make_pickle.py");
    let out = std::process::Command::new(python)
        .arg(maker)
        .arg(dir)
        .output()
        .expect("run make_pickle.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("its JSON")
}

/// `script` run natively on `bodies` (`tests/scripts/native.py`: CPython
/// with the real numpy, pandas, scikit-learn and onnxruntime, as Azure ML's
/// server runs it), with `model_dir` as `AZUREML_MODEL_DIR`: each answer.
pub fn native_script(script: &Path, model_dir: &Path, bodies: &[Value]) -> Vec<Value> {
    use std::io::Write;
    let python = std::env::var_os("SANDSCORE_NATIVE_PYTHON")
        .expect("SANDSCORE_NATIVE_PYTHON is not set: run the tests with `make test`");
    let runner = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/scripts/native.py");
    let mut child = Command::new(python)
        .arg(runner)
        .arg(script)
        .arg(model_dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the script natively");
    let mut stdin = child.stdin.take().expect("stdin");
    for b in bodies {
        writeln!(stdin, "{b}").expect("write a body");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("native run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an answer"))
        .collect()
}

/// A model of `dir` placed on the GPU where there is none: refused, with
/// every one of `needles` in the reason; then the server that runs it on
/// the CPU under `--gpu-fallback cpu` (and says so in its log).
pub fn gpu_refused_then_fallback(dir: &Path, model: &str, needles: &[&str]) -> Server {
    let placed = format!("{model}=gpu");
    let (ok, err) = check_models(dir, &["--model-device", &placed]);
    assert!(!ok, "{model} loaded on a GPU that is not there? {err}");
    for needle in needles {
        assert!(err.contains(needle), "no {needle:?} in: {err}");
    }
    let server = Server::start(&[
        "--model-dir",
        dir.to_str().expect("path"),
        "--model-device",
        &placed,
        "--gpu-fallback",
        "cpu",
    ]);
    assert!(server.log().contains("GPU unavailable"), "{}", server.log());
    server
}
