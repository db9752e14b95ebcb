//! The PyTorch backend: a TorchScript module as torch.jit.save wrote it,
//! served over V2 and through a module, equal to what torch.jit.load's
//! module returned in Python (examples/models/make_pytorch.py). Heavy
//! (libtorch is ~425 MB and runtime/torch builds against it):
//! `make test-heavy` runs these.

mod common;

use common::{Server, assert_close, column, serve_module, torch_expected, torch_models};
use serde_json::{Value, json};

fn v2_request(rows: &[Value], name: &str) -> Value {
    let flat: Vec<Value> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().clone())
        .collect();
    json!({ "inputs": [{ "name": name, "shape": [rows.len(), 4], "datatype": "FP32", "data": flat }] })
}

#[test]
#[ignore = "heavy: needs libtorch and runtime/torch: make test-heavy"]
fn v2_answers_equal_torchscript_in_python() {
    let exp = &torch_expected()["iris_torch"];
    let dir = torch_models();
    let server = Server::start(&["--model-dir", dir.to_str().unwrap(), "--workers", "2"]);
    let rows = exp["input"].as_array().unwrap();
    let probs = exp["probabilities"].as_array().unwrap();
    for n in [rows.len(), 1, 3] {
        let reply = server.post_json(
            "/v2/models/iris_torch/infer",
            &v2_request(&rows[..n], "input"),
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
        let body: Value = serde_json::from_str(&reply.text).unwrap();
        let outputs = body["outputs"].as_array().unwrap();
        assert_eq!(
            outputs.len(),
            2,
            "forward returns (probabilities, logits): {body}"
        );
        assert_eq!(outputs[0]["name"], "output_0");
        assert_eq!(outputs[0]["shape"], json!([n, 3]));
        assert_close(
            &outputs[0]["data"],
            &Value::Array(probs[..n].to_vec()),
            1e-5,
        );
        if n == rows.len() {
            assert_close(&outputs[1]["data"], &exp["logits"], 1e-4);
        }
    }
    let meta: Value = serde_json::from_str(&server.get("/v2/models/iris_torch").text).unwrap();
    assert_eq!(meta["platform"], "pytorch_libtorch");
    // libtorch's own complaint about a wrong shape comes back as an error,
    // and the server keeps serving.
    let bad = server.post_json(
        "/v2/models/iris_torch/infer",
        &json!({ "inputs": [{ "name": "input", "shape": [1, 5], "datatype": "FP32", "data": [1, 2, 3, 4, 5] }] }),
    );
    assert!(bad.status >= 400, "{}", bad.text);
    assert!(
        bad.text.contains("shape") || bad.text.contains("size"),
        "{}",
        bad.text
    );
    let again = server.post_json("/v2/models/iris_torch/infer", &v2_request(rows, "input"));
    assert_eq!(again.status, 200, "{}", again.text);
}

#[test]
#[ignore = "heavy: needs libtorch and runtime/torch: make test-heavy"]
fn a_module_scores_the_torchscript_model() {
    let exp = &torch_expected()["iris_torch"];
    let dir = torch_models();
    let server = serve_module("iris_native", Some(&dir), &[]);
    let reply = server.post_json("/score", &json!({ "data": exp["input"] }));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body: Value = serde_json::from_str(&reply.text).unwrap();
    assert_close(&column(&body, "probabilities"), &exp["probabilities"], 1e-5);
}

#[test]
#[ignore = "heavy: needs libtorch and runtime/torch: make test-heavy"]
fn wasi_nn_load_reads_torchscript_bytes() {
    let exp = &torch_expected()["iris_torch"];
    let rows = exp["input"].as_array().unwrap();
    let flat: Vec<Value> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().clone())
        .collect();
    let request = json!({ "action": "load", "files": ["iris_torch.pt"], "encoding": "pytorch",
                          "input": { "name": "input", "shape": [rows.len(), 4], "data": flat } });
    // TorchScript can read host files: off unless the operator allows it.
    let server = serve_module("faulty", Some(&torch_models()), &[]);
    let refused = server.post_json("/score", &request);
    assert!(
        refused.status == 500 && refused.text.contains("--guest-load"),
        "{}",
        refused.text
    );
    drop(server);
    let server = serve_module(
        "faulty",
        Some(&torch_models()),
        &["--guest-load", "pytorch"],
    );
    let reply = server.post_json("/score", &request);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body: Value = serde_json::from_str(&reply.text).unwrap();
    assert_close(&body["output_0"], &exp["probabilities"], 1e-5);
}

#[test]
#[ignore = "heavy: needs libtorch and runtime/torch: make test-heavy"]
fn a_gpu_placement_on_cpu_libtorch_fails_clearly_or_falls_back() {
    let server = common::gpu_refused_then_fallback(
        &torch_models(),
        "iris_torch",
        &[
            "'iris_torch'",
            "CUDA device 0",
            "0 CUDA device(s)",
            "--gpu-fallback cpu",
        ],
    );
    let exp = &torch_expected()["iris_torch"];
    let rows = exp["input"].as_array().unwrap();
    let reply = server.post_json("/v2/models/iris_torch/infer", &v2_request(rows, "input"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body: Value = serde_json::from_str(&reply.text).unwrap();
    assert_close(&body["outputs"][0]["data"], &exp["probabilities"], 1e-5);
    assert!(server.log().contains("GPU unavailable"), "{}", server.log());
}
