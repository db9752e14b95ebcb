//! The TensorFlow backend: a SavedModel as tf.saved_model.save wrote it,
//! served over V2 and through a module, equal to what the reloaded
//! SavedModel's own serving signature returned in Python
//! (examples/models/make_tensorflow.py). Heavy (the TF library is ~850 MB):
//! `make test-heavy` runs these.

mod common;

use common::{Server, assert_close, column, serve_module, tf_expected, tf_models};
use serde_json::{Value, json};

fn v2_request(input: &Value) -> Value {
    let rows = input.as_array().expect("rows");
    let flat: Vec<Value> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().clone())
        .collect();
    json!({ "inputs": [{ "name": "input", "shape": [rows.len(), 4], "datatype": "FP32", "data": flat }] })
}

#[test]
#[ignore = "heavy: needs the TensorFlow library and model: make test-heavy"]
fn v2_answers_equal_the_savedmodel_signature() {
    let exp = &tf_expected()["iris_tf"];
    let dir = tf_models();
    let server = Server::start(&["--model-dir", dir.to_str().unwrap(), "--workers", "2"]);
    let reply = server.post_json("/v2/models/iris_tf/infer", &v2_request(&exp["input"]));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body: Value = serde_json::from_str(&reply.text).unwrap();
    let output = |name: &str| {
        body["outputs"]
            .as_array()
            .and_then(|o| o.iter().find(|t| t["name"] == name))
            .unwrap_or_else(|| panic!("no output {name} in {body}"))
            .clone()
    };
    assert_close(
        &output("probabilities")["data"],
        &exp["probabilities"],
        1e-5,
    );
    assert_close(&output("logits")["data"], &exp["logits"], 1e-4);
    assert_eq!(
        output("probabilities")["shape"],
        json!([exp["input"].as_array().unwrap().len(), 3])
    );

    let meta: Value = serde_json::from_str(&server.get("/v2/models/iris_tf").text).unwrap();
    assert_eq!(meta["platform"], "tensorflow_savedmodel");
    assert_eq!(meta["inputs"][0]["name"], "input");
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 4]));
    // Wrong input name: a 400 that names the signature's inputs.
    let bad = server.post_json(
        "/v2/models/iris_tf/infer",
        &json!({ "inputs": [{ "name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4] }] }),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("input"), "{}", bad.text);
}

#[test]
#[ignore = "heavy: needs the TensorFlow library and model: make test-heavy"]
fn a_module_scores_the_savedmodel() {
    let exp = &tf_expected()["iris_tf"];
    let dir = tf_models();
    let server = serve_module("iris_native", Some(&dir), &[]);
    let reply = server.post_json("/score", &json!({ "data": exp["input"] }));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body: Value = serde_json::from_str(&reply.text).unwrap();
    assert_close(&column(&body, "probabilities"), &exp["probabilities"], 1e-5);
}
