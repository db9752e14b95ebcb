//! The XGBoost backend: models as xgboost saved them (JSON and UBJSON),
//! scored over V2 and through a module, equal to xgboost's own Python
//! predictions (examples/models/make_xgboost.py); missing values as null.

mod common;

use common::{Server, assert_close, column, serve_module, xgb_expected, xgb_models};
use serde_json::{Value, json};

fn v2_request(input: &Value) -> Value {
    let rows = input.as_array().expect("rows");
    let width = rows[0].as_array().expect("row").len();
    let flat: Vec<Value> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().clone())
        .collect();
    json!({ "inputs": [{ "name": "input", "shape": [rows.len(), width], "datatype": "FP32", "data": flat }] })
}

fn predictions(reply: &common::Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body: Value = serde_json::from_str(&reply.text).expect("JSON");
    let out = &body["outputs"][0];
    assert_eq!(out["name"], "predictions");
    out["data"].clone()
}

#[test]
fn v2_answers_equal_xgboost_for_json_and_ubjson_models() {
    let exp = xgb_expected();
    let dir = xgb_models();
    let server = Server::start(&["--model-dir", dir.to_str().unwrap(), "--workers", "2"]);
    // Multi-class softprob, saved as JSON, with a missing value (null).
    let iris = &exp["iris_xgb"];
    let reply = server.post_json("/v2/models/iris_xgb/infer", &v2_request(&iris["input"]));
    assert_close(&predictions(&reply), &iris["predict_proba"], 1e-6);
    assert_close(&predictions(&reply), &iris["booster_predict"], 1e-6);
    // Binary logistic, saved as UBJSON: one probability per row.
    let cancer = &exp["cancer_xgb"];
    let reply = server.post_json("/v2/models/cancer_xgb/infer", &v2_request(&cancer["input"]));
    assert_close(&predictions(&reply), &cancer["booster_predict"], 1e-6);
    let positive: Vec<Value> = cancer["predict_proba"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].clone())
        .collect();
    assert_close(&predictions(&reply), &Value::Array(positive), 1e-6);

    // Metadata says what the booster takes and gives.
    let meta: Value = serde_json::from_str(&server.get("/v2/models/iris_xgb").text).unwrap();
    assert_eq!(meta["platform"], "xgboost");
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 4]));
    assert_eq!(meta["outputs"][0]["shape"], json!([-1, 3]));
    // A wrong width is a 400 naming the shape, and the server keeps serving.
    let bad = server.post_json(
        "/v2/models/iris_xgb/infer",
        &json!({ "inputs": [{ "name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3] }] }),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("shape"), "{}", bad.text);
    let again = server.post_json("/v2/models/iris_xgb/infer", &v2_request(&iris["input"]));
    assert_close(&predictions(&again), &iris["predict_proba"], 1e-6);
}

#[test]
fn a_module_scores_the_xgboost_model() {
    let exp = xgb_expected();
    let dir = xgb_models();
    let server = serve_module("iris_native", Some(&dir), &[]);
    let iris = &exp["iris_xgb"];
    let reply = server.post_json("/score", &json!({ "data": iris["input"] }));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body: Value = serde_json::from_str(&reply.text).unwrap();
    assert_close(
        &column(&body, "probabilities"),
        &iris["predict_proba"],
        1e-6,
    );
    assert_eq!(column(&body, "class"), iris["predict"]);
}

/// Rows of the iris sample without missing values, and their expected
/// probabilities.
fn complete_rows(exp: &Value) -> (Vec<Value>, Vec<Value>) {
    let rows = exp["input"].as_array().unwrap();
    let probs = exp["predict_proba"].as_array().unwrap();
    rows.iter()
        .zip(probs)
        .filter(|(r, _)| r.as_array().unwrap().iter().all(Value::is_number))
        .map(|(r, p)| (r.clone(), p.clone()))
        .unzip()
}

#[test]
fn autodetect_loads_a_booster_from_bytes() {
    let exp = &xgb_expected()["iris_xgb"];
    let (rows, probs) = complete_rows(exp);
    let flat: Vec<Value> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().clone())
        .collect();
    let server = serve_module("faulty", Some(&xgb_models()), &[]);
    let reply = server.post_json(
        "/score",
        &json!({ "action": "load", "files": ["iris_xgb.json"], "encoding": "autodetect",
                 "input": { "name": "input", "shape": [rows.len(), 4], "data": flat } }),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body: Value = serde_json::from_str(&reply.text).unwrap();
    assert_close(&body["predictions"], &Value::Array(probs), 1e-6);
}

#[test]
fn a_model_backend_can_be_named_for_a_file() {
    let dir = std::env::temp_dir().join(format!("sandscore-override-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        xgb_models().join("iris_xgb.json"),
        dir.join("booster.model"),
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    // Unrecognized by its name, so skipped; named, it loads.
    let server = Server::start(&["--model-dir", d]);
    assert_eq!(server.get("/v2/models/booster").status, 404);
    drop(server);
    let server = Server::start(&["--model-dir", d, "--model-backend", "booster.model=xgboost"]);
    let exp = &xgb_expected()["iris_xgb"];
    let (rows, probs) = complete_rows(exp);
    let reply = server.post_json("/v2/models/booster/infer", &v2_request(&Value::Array(rows)));
    assert_close(&predictions(&reply), &Value::Array(probs), 1e-6);
    drop(server);
    // A file name that matches nothing is refused, not ignored.
    let (ok, err) = common::check_models(&dir, &["--model-backend", "booster.modle=xgboost"]);
    assert!(
        !ok && err.contains("booster.modle") && err.contains("not in the model directory"),
        "{err}"
    );
    // A backend the build lacks is refused with the ones it has.
    let (ok, err) = common::check_models(&dir, &["--model-backend", "booster.model=catboost"]);
    assert!(
        !ok && err.contains("catboost") && err.contains("xgboost"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_empty_batch_is_answered_and_the_server_keeps_serving() {
    let server = Server::start(&["--model-dir", xgb_models().to_str().unwrap()]);
    let empty =
        json!({ "inputs": [{ "name": "input", "shape": [0, 4], "datatype": "FP32", "data": [] }] });
    let reply = server.post_json("/v2/models/iris_xgb/infer", &empty);
    assert!(
        reply.status == 200 || reply.status == 400,
        "{}: {}",
        reply.status,
        reply.text
    );
    let exp = &xgb_expected()["iris_xgb"];
    let again = server.post_json("/v2/models/iris_xgb/infer", &v2_request(&exp["input"]));
    assert_close(&predictions(&again), &exp["predict_proba"], 1e-6);
}
