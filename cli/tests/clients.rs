//! Real Open Inference Protocol clients, with their default settings,
//! against a server of the example models: tritonclient.http (binary tensor
//! data in and out by default, JSON, statistics, config, repository index,
//! error statuses), tritonclient.grpc (raw contents, the same RPCs, status
//! codes), and kserve 0.21's REST (binary and JSON) and gRPC clients.
//! Each client runs in its own venv (`make client-venvs`; the two cannot
//! share a process), and every answer is checked against ONNX Runtime's own
//! (the model generator's expected.json).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Server, models};

fn run_client(python_var: &str, script: &str, url: &str) {
    let python = std::env::var_os(python_var).unwrap_or_else(|| {
        panic!("{python_var} is not set: run the tests with `make test` (it installs the clients)")
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/clients")
        .join(script);
    let out = Command::new(python)
        .arg(&script)
        .arg(url)
        .arg(models().join("expected.json"))
        .output()
        .expect("run the client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().last() == Some("ok"),
        "{}:\n{stdout}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository in Triton's layout: the mlp as versions 1 and 2, both
/// served (`version_policy: { all: {} }`), and beside it a flat model file
/// of the types wasi-nn lacks.
fn triton_repo() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sandscore-triton-repo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(
        models().join("wide_types.onnx"),
        dir.join("wide_types.onnx"),
    )
    .expect("copy");
    for v in ["1", "2"] {
        std::fs::create_dir_all(dir.join("mlp").join(v)).expect("mkdir");
        std::fs::copy(
            models().join("mlp.onnx"),
            dir.join("mlp").join(v).join("model.onnx"),
        )
        .expect("copy");
    }
    std::fs::write(
        dir.join("mlp").join("config.pbtxt"),
        "name: \"mlp\"\nplatform: \"onnxruntime_onnx\"\nversion_policy: { all: {} }\n",
    )
    .expect("config");
    dir
}

#[test]
fn tritonclient_http_works_unchanged() {
    let repo = triton_repo();
    let server = Server::start(&["--model-dir", repo.to_str().expect("path")]);
    let url = server.base.trim_start_matches("http://").to_string();
    run_client("SANDSCORE_TRITON_PYTHON", "triton_http.py", &url);
}

#[test]
fn kserve_rest_client_works_unchanged() {
    let server = Server::start(&["--model-dir", models().to_str().expect("path")]);
    run_client("SANDSCORE_KSERVE_PYTHON", "kserve_rest.py", &server.base);
}

/// A server with gRPC on a free port, and that port.
fn grpc_server() -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let server = Server::start(&[
        "--model-dir",
        models().to_str().expect("path"),
        "--grpc-port",
        &port,
    ]);
    (server, format!("127.0.0.1:{port}"))
}

#[test]
fn tritonclient_grpc_works_unchanged() {
    let (_server, url) = grpc_server();
    run_client("SANDSCORE_TRITON_PYTHON", "triton_grpc.py", &url);
}

#[test]
fn kserve_grpc_client_works_unchanged() {
    let (_server, url) = grpc_server();
    run_client("SANDSCORE_KSERVE_PYTHON", "kserve_grpc.py", &url);
}

#[test]
fn tritonclient_loads_and_unloads_models_in_explicit_mode() {
    let repo = std::env::temp_dir().join(format!("sandscore-explicit-repo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(&repo).expect("mkdir");
    std::fs::copy(models().join("mlp.onnx"), repo.join("mlp.onnx")).expect("copy");
    let server = Server::start(&[
        "--model-dir",
        repo.to_str().expect("path"),
        "--model-control-mode",
        "explicit",
        "--load-model",
        "mlp",
    ]);
    // Copied in after the start: in the index, not loaded until asked.
    std::fs::copy(models().join("mlp.onnx"), repo.join("late.onnx")).expect("copy");
    let url = server.base.trim_start_matches("http://").to_string();
    run_client("SANDSCORE_TRITON_PYTHON", "triton_repository.py", &url);
}
