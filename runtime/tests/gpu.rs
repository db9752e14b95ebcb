//! The GPU switches, on a machine without a GPU (CI's): a model placed on
//! the GPU fails its load saying what is missing — never a silent move to
//! the CPU — unless the deployment allows the CPU fallback, and then it
//! serves the same answers as ONNX Runtime on the CPU. Running on a GPU
//! needs a machine with one and the CUDA build of ONNX Runtime.

mod common;

use common::{Server, assert_close, expected, models};
use serde_json::{Value, json};

#[test]
fn a_gpu_model_without_cuda_says_what_is_missing() {
    let m = models();
    let (ok, err) = common::check_models(&m, &["--model-device", "mlp=gpu"]);
    assert!(!ok, "loaded on the GPU without one?");
    for needle in [
        "'mlp'",
        "CUDA",
        "sandscore/onnxruntime-gpu",
        "--gpu-fallback cpu",
    ] {
        assert!(err.contains(needle), "no {needle:?} in: {err}");
    }
    let (ok, err) = common::check_models(&m, &["--model-device", "mlp=tpu"]);
    assert!(!ok && err.contains("NAME=cpu or NAME=gpu"), "{err}");
}

#[test]
fn the_cpu_fallback_serves_the_cpu_answers_and_says_so() {
    let m = models();
    let server = Server::start(&[
        "--model-dir",
        m.to_str().unwrap(),
        "--model-device",
        "mlp=gpu",
        "--gpu-fallback",
        "cpu",
    ]);
    let exp = expected();
    let rows = exp["mlp"]["input"].as_array().unwrap();
    let flat: Vec<Value> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().clone())
        .collect();
    let reply = server.post_json(
        "/v2/models/mlp/infer",
        &json!({ "inputs": [{ "name": "input", "shape": [rows.len(), 64], "datatype": "FP32", "data": flat }] }),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body: Value = serde_json::from_str(&reply.text).unwrap();
    assert_close(
        &body["outputs"][0]["data"],
        &exp["mlp"]["ort"]["probabilities"],
        1e-5,
    );
    assert!(server.log().contains("GPU unavailable"), "{}", server.log());
}
