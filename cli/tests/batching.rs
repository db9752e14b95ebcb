//! Dynamic batching: requests arriving together run as one backend call and
//! each gets exactly its own answer, equal to ONNX Runtime's own (the
//! generator's `expected.json`); a bad request fails alone; a deadline
//! passes inside the queue; sandboxed guest instances batch together on a
//! named model; batch sizes reach statistics and `/metrics`.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{Server, assert_close, expected, guest, models};
use serde_json::{Value, json};

fn v2(row: &Value) -> Value {
    json!({ "inputs": [{ "name": "input", "shape": [1, 64], "datatype": "FP32", "data": row }] })
}

/// The batch sizes `model`'s statistics report: (rows, backend calls).
fn batch_sizes(server: &Server, model: &str) -> Vec<(u64, u64)> {
    let stats = server.get(&format!("/v2/models/{model}/stats")).json();
    stats["model_stats"][0]["batch_stats"]
        .as_array()
        .expect("batch_stats")
        .iter()
        .map(|b| {
            (
                b["batch_size"].as_u64().expect("size"),
                b["compute_infer"]["count"].as_u64().expect("count"),
            )
        })
        .collect()
}

/// The mlp's input rows and ONNX Runtime's probabilities for each.
fn mlp_truth() -> (Vec<Value>, Vec<Value>) {
    let exp = expected();
    let rows = exp["mlp"]["input"].as_array().expect("rows").clone();
    let want = exp["mlp"]["ort"]["probabilities"]
        .as_array()
        .expect("probs")
        .clone();
    (rows, want)
}

/// Sends each body to `path` from its own thread, all at once.
fn together(server: &Arc<Server>, path: &str, bodies: Vec<Value>) -> Vec<(u16, Value)> {
    let threads: Vec<_> = bodies
        .into_iter()
        .map(|b| {
            let (server, path) = (Arc::clone(server), path.to_string());
            std::thread::spawn(move || {
                let r = server.post_json(&path, &b);
                let body = serde_json::from_str(&r.text).unwrap_or(Value::Null);
                (r.status, body)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect()
}

#[test]
fn batched_answers_equal_onnx_runtimes_and_a_bad_request_fails_alone() {
    let (rows, want) = mlp_truth();
    // A 100 ms window: requests sent together land in one batch.
    let server = Arc::new(Server::start(&[
        "--model-dir",
        models().to_str().expect("path"),
        "--dynamic-batching",
        "mlp=8/100000",
    ]));
    for _round in 0..3 {
        let mut bodies: Vec<Value> = rows.iter().map(v2).collect();
        // Malformed for this model (63 features), and more rows than a
        // request may hold: refused, each alone.
        bodies.push(json!({ "inputs": [{ "name": "input", "shape": [1, 63], "datatype": "FP32", "data": vec![0.5; 63] }] }));
        bodies.push(json!({ "inputs": [{ "name": "input", "shape": [9, 64], "datatype": "FP32", "data": vec![0.5; 9 * 64] }] }));
        let answers = together(&server, "/v2/models/mlp/infer", bodies);
        for (i, (status, body)) in answers.iter().take(rows.len()).enumerate() {
            assert_eq!(*status, 200, "row {i}: {body}");
            let out = &body["outputs"]
                .as_array()
                .expect("outputs")
                .iter()
                .find(|o| o["name"] == "probabilities")
                .expect("probabilities")["data"];
            assert_close(out, &want[i], 1e-5);
        }
        let (bad_status, bad) = &answers[rows.len()];
        assert_eq!(*bad_status, 400, "{bad}");
        let (big_status, big) = &answers[rows.len() + 1];
        assert_eq!(*big_status, 400, "{big}");
        assert!(big.to_string().contains("max_batch_size"), "{big}");
    }
    let sizes = batch_sizes(&server, "mlp");
    assert!(
        sizes.iter().any(|(rows, _)| *rows > 1),
        "no batch held more than one request: {sizes:?}"
    );
    let metrics = server.get("/metrics").text;
    assert!(
        metrics.contains("sandscore_model_batch_rows_bucket{model=\"mlp\""),
        "{metrics}"
    );
}

#[test]
fn a_request_whose_deadline_passes_in_the_queue_is_answered_without_running() {
    let exp = expected();
    // The batch window (1 s) is longer than the deadline (300 ms).
    let server = Server::start(&[
        "--model-dir",
        models().to_str().expect("path"),
        "--dynamic-batching",
        "mlp=8/1000000",
        "--timeout",
        "300",
    ]);
    let started = std::time::Instant::now();
    let r = server.post_json("/v2/models/mlp/infer", &v2(&exp["mlp"]["input"][0]));
    assert_eq!(r.status, 504, "{}", r.text);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Nothing ran for it, and the server goes on.
    assert!(batch_sizes(&server, "mlp").is_empty());
}

#[test]
fn a_config_pbtxt_batches_and_guest_instances_batch_together() {
    // Triton's layout, the batching in config.pbtxt.
    let repo = std::env::temp_dir().join(format!("sandscore-batch-repo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(repo.join("mlp/1")).expect("mkdir");
    std::fs::copy(models().join("mlp.onnx"), repo.join("mlp/1/model.onnx")).expect("copy");
    std::fs::write(
        repo.join("mlp/config.pbtxt"),
        "max_batch_size: 8\ndynamic_batching {\n  max_queue_delay_microseconds: 100000\n  preferred_batch_size: [ 4 ]\n}\n",
    )
    .expect("write");
    let server = Arc::new(Server::start(&[
        "--model-dir",
        repo.to_str().expect("path"),
        "--module",
        guest("onnx_mlp").to_str().expect("path"),
        "--workers",
        "4",
    ]));
    let (rows, want) = mlp_truth();
    // Four sandboxed instances, each a wasi-nn compute on the named model.
    let bodies: Vec<Value> = rows
        .iter()
        .take(4)
        .map(|r| json!({ "data": [r] }))
        .collect();
    for (i, (status, body)) in together(&server, "/score", bodies).iter().enumerate() {
        assert_eq!(*status, 200, "{body}");
        assert_close(&body["predictions"][0]["probabilities"], &want[i], 1e-5);
    }
    let sizes = batch_sizes(&server, "mlp");
    assert!(
        sizes.iter().any(|(rows, _)| *rows > 1),
        "the guests' computes did not share a batch: {sizes:?}"
    );
    let config = server.get("/v2/models/mlp/config").json();
    assert_eq!(config["max_batch_size"], 8, "{config}");
    let _ = std::fs::remove_dir_all(Path::new(&repo));
}

#[test]
fn a_bad_batching_flag_names_what_it_takes() {
    let err = Server::try_start(&[
        "--model-dir",
        models().to_str().expect("path"),
        "--dynamic-batching",
        "mlp=0",
    ])
    .err()
    .expect("refused");
    assert!(
        err.contains("--dynamic-batching mlp=0") && err.contains("batch size from 1"),
        "{err}"
    );
}
