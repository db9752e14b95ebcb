//! The TensorFlow and TensorFlow Lite backends: a SavedModel as Keras
//! exported it, and the same model through TFLiteConverter, served over V2
//! and through a module, equal to what TensorFlow's and LiteRT's own Python
//! APIs returned (examples/models/make_tensorflow.py). Heavy (the TF
//! library is ~850 MB, and the TFLite model needs TF's converter):
//! `make test-heavy` runs these.

mod common;

use std::path::PathBuf;

use common::{
    Server, assert_close, column, serve_module, tf_expected, tf_models, tflite_expected,
    tflite_models,
};
use serde_json::{Value, json};

/// One of the two models: its folder, name, platform and expected outputs.
struct Case {
    dir: PathBuf,
    name: &'static str,
    platform: &'static str,
    expected: Value,
}

fn cases() -> [Case; 2] {
    [
        Case {
            dir: tf_models(),
            name: "iris_tf",
            platform: "tensorflow_savedmodel",
            expected: tf_expected()["iris_tf"].clone(),
        },
        Case {
            dir: tflite_models(),
            name: "iris_tflite",
            platform: "tensorflow_lite",
            expected: tflite_expected()["iris_tflite"].clone(),
        },
    ]
}

fn v2_request(rows: &[Value]) -> Value {
    let flat: Vec<Value> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().clone())
        .collect();
    json!({ "inputs": [{ "name": "input", "shape": [rows.len(), 4], "datatype": "FP32", "data": flat }] })
}

fn output(body: &Value, name: &str) -> Value {
    body["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no output {name} in {body}"))
        .clone()
}

#[test]
#[ignore = "heavy: needs the TensorFlow and LiteRT libraries and models: make test-heavy"]
fn v2_answers_equal_the_frameworks_own() {
    for case in cases() {
        let server = Server::start(&["--model-dir", case.dir.to_str().unwrap(), "--workers", "2"]);
        let url = format!("/v2/models/{}/infer", case.name);
        let rows = case.expected["input"].as_array().unwrap();
        let probs = case.expected["probabilities"].as_array().unwrap();
        // Batches of different sizes, in an order that changes shape each time.
        for n in [rows.len(), 1, rows.len(), 3] {
            let reply = server.post_json(&url, &v2_request(&rows[..n]));
            assert_eq!(reply.status, 200, "{}: {}", case.name, reply.text);
            let body: Value = serde_json::from_str(&reply.text).unwrap();
            let p = output(&body, "probabilities");
            assert_eq!(p["shape"], json!([n, 3]), "{}", case.name);
            assert_close(&p["data"], &Value::Array(probs[..n].to_vec()), 1e-5);
        }
        let body: Value =
            serde_json::from_str(&server.post_json(&url, &v2_request(rows)).text).unwrap();
        assert_close(
            &output(&body, "logits")["data"],
            &case.expected["logits"],
            1e-4,
        );

        let meta: Value =
            serde_json::from_str(&server.get(&format!("/v2/models/{}", case.name)).text).unwrap();
        assert_eq!(meta["platform"], case.platform);
        assert_eq!(meta["inputs"][0]["name"], "input");
        assert_eq!(meta["inputs"][0]["shape"], json!([-1, 4]));
        // A wrong input name is a 400 naming the model's inputs.
        let bad = server.post_json(
            &url,
            &json!({ "inputs": [{ "name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4] }] }),
        );
        assert_eq!(bad.status, 400, "{}", bad.text);
        assert!(bad.text.contains("input"), "{}", bad.text);
    }
}

#[test]
#[ignore = "heavy: needs the TensorFlow and LiteRT libraries and models: make test-heavy"]
fn a_module_scores_both_formats() {
    for case in cases() {
        let server = serve_module("iris_native", Some(&case.dir), &[]);
        let reply = server.post_json("/score", &json!({ "data": case.expected["input"] }));
        assert_eq!(reply.status, 200, "{}: {}", case.name, reply.text);
        let body: Value = serde_json::from_str(&reply.text).unwrap();
        assert_close(
            &column(&body, "probabilities"),
            &case.expected["probabilities"],
            1e-5,
        );
    }
}

#[test]
#[ignore = "heavy: needs the TensorFlow and LiteRT libraries and models: make test-heavy"]
fn wasi_nn_load_reads_both_formats_from_bytes() {
    let rows = tf_expected()["iris_tf"]["input"]
        .as_array()
        .unwrap()
        .clone();
    let flat: Vec<Value> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().clone())
        .collect();
    let input = json!({ "name": "input", "shape": [rows.len(), 4], "data": flat });
    let files = [
        "iris_tf/saved_model.pb",
        "iris_tf/variables/variables.index",
        "iris_tf/variables/variables.data-00000-of-00001",
    ];
    // A TensorFlow graph can read host files: off unless the operator allows it.
    let server = serve_module("faulty", Some(&tf_models()), &[]);
    let refused = server.post_json(
        "/score",
        &json!({ "action": "load", "files": files, "encoding": "tensorflow", "input": input }),
    );
    assert_eq!(refused.status, 500, "{}", refused.text);
    assert!(refused.text.contains("--guest-load"), "{}", refused.text);
    drop(server);
    // A SavedModel is three builders.
    let server = serve_module(
        "faulty",
        Some(&tf_models()),
        &["--guest-load", "tensorflow"],
    );
    let files = [
        "iris_tf/saved_model.pb",
        "iris_tf/variables/variables.index",
        "iris_tf/variables/variables.data-00000-of-00001",
    ];
    let reply = server.post_json(
        "/score",
        &json!({ "action": "load", "files": files, "encoding": "tensorflow", "input": input }),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body: Value = serde_json::from_str(&reply.text).unwrap();
    assert_close(
        &body["probabilities"],
        &tf_expected()["iris_tf"]["probabilities"],
        1e-5,
    );
    drop(server);
    // A .tflite file, by its encoding and by autodetect.
    let server = serve_module("faulty", Some(&tflite_models()), &[]);
    for encoding in ["tensorflowlite", "autodetect"] {
        let reply = server.post_json(
            "/score",
            &json!({ "action": "load", "files": ["iris_tflite.tflite"], "encoding": encoding, "input": input }),
        );
        assert_eq!(reply.status, 200, "{encoding}: {}", reply.text);
        let body: Value = serde_json::from_str(&reply.text).unwrap();
        assert_close(
            &body["probabilities"],
            &tflite_expected()["iris_tflite"]["probabilities"],
            1e-5,
        );
    }
}

#[test]
#[ignore = "heavy: needs the TensorFlow library and models: make test-heavy"]
fn a_savedmodel_past_the_deadline_is_cancelled_by_tensorflow() {
    // TF_SessionRun's RunOptions.timeout_in_ms, set from the deadline.
    let dir = tf_models().join("hostile");
    let server = common::serve_models_within(&dir, 1500);
    let infer = |steps: i64| {
        server.post_json(
            "/v2/models/spin/infer",
            &json!({"inputs": [{"name": "steps", "shape": [1], "datatype": "INT64", "data": [steps]}]}),
        )
    };
    let r = infer(1000);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(output(&r.json(), "done")["data"], json!([1000]));
    let started = std::time::Instant::now();
    let r = infer(1 << 60);
    assert_eq!(r.status, 504, "{}", r.text);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "cancelled at the deadline (took {:?})",
        started.elapsed()
    );
    let r = infer(10);
    assert_eq!(r.status, 200, "the one worker is free again: {}", r.text);
}

#[test]
#[ignore = "heavy: needs the TensorFlow library and models: make test-heavy"]
fn a_savedmodel_on_the_gpu_without_one_says_so_or_falls_back_when_asked() {
    // TensorFlow with CUDA quietly runs on the CPU without a driver; a model
    // placed on the GPU must not.
    let server = common::gpu_refused_then_fallback(
        &tf_models(),
        "iris_tf",
        &[
            "'iris_tf'",
            "TensorFlow sees none",
            "libcuda.so.1",
            "--gpu-fallback cpu",
        ],
    );
    let expected = tf_expected()["iris_tf"].clone();
    let rows = expected["input"].as_array().unwrap();
    let reply = server.post_json("/v2/models/iris_tf/infer", &v2_request(rows));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body: Value = serde_json::from_str(&reply.text).unwrap();
    assert_close(
        &output(&body, "probabilities")["data"],
        &expected["probabilities"],
        1e-5,
    );
    let config: Value =
        serde_json::from_str(&server.get("/v2/models/iris_tf/config").text).unwrap();
    assert_eq!(
        config["instance_group"][0]["kind"], "KIND_CPU",
        "the fallback runs on the CPU: {config}"
    );
}

#[test]
#[ignore = "heavy: needs the TensorFlow library and models: make test-heavy"]
fn init_reads_a_savedmodels_signature() {
    let fx = common::fixture::Fixture::new("init-savedmodel");
    let project = fx.dir.join("tf-project");
    let out = fx.run(&[
        "init",
        project.to_str().unwrap(),
        "--model",
        tf_models().join("iris_tf").to_str().unwrap(),
    ]);
    let text = common::fixture::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("input FP32 [-1, 4]")
            && text.contains("model input: 'input', 4 numbers per row"),
        "{text}"
    );
    assert!(project.join("models/iris_tf/saved_model.pb").is_file());
    let toml = std::fs::read_to_string(project.join("sandscore.toml")).unwrap();
    assert!(toml.contains("image = \"tensorflow-cpu\""), "{toml}");
}
