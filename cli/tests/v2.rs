//! Open Inference Protocol V2: the model served without a module (as Triton
//! does) and through a module's tensor entry point, compared with
//! onnxruntime's own outputs.

mod common;

use common::{Server, assert_close, expected, models, serve_module};
use serde_json::{Value, json};

fn models_only() -> Server {
    let m = models();
    Server::start(&["--model-dir", m.to_str().unwrap()])
}

fn output<'v>(body: &'v Value, name: &str) -> &'v Value {
    body["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no output {name} in {body}"))
}

fn mlp_request(exp: &Value, nested: bool) -> Value {
    let rows = exp["mlp"]["input"].as_array().expect("rows");
    let data = if nested {
        exp["mlp"]["input"].clone()
    } else {
        Value::Array(
            rows.iter()
                .flat_map(|r| r.as_array().expect("row").clone())
                .collect(),
        )
    };
    json!({"id": "req-1", "inputs": [{"name": "input", "shape": [rows.len(), 64], "datatype": "FP32", "data": data}]})
}

#[test]
fn server_and_model_metadata() {
    let server = models_only();
    assert_eq!(server.get("/v2").json()["name"], "sandscore");
    assert_eq!(server.get("/v2/health/live").status, 200);
    assert_eq!(server.get("/v2/health/ready").status, 200);
    let meta = server.get("/v2/models/mlp").json();
    assert_eq!(meta["platform"], "onnxruntime_onnx");
    assert_eq!(
        meta["inputs"],
        json!([{"name": "input", "datatype": "FP32", "shape": [-1, 64]}])
    );
    assert_eq!(
        meta["outputs"],
        json!([{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}])
    );
    assert_eq!(server.get("/v2/models/mlp/versions/1").status, 200);
    assert_eq!(server.get("/v2/models/mlp/ready").json()["ready"], true);
    assert_eq!(server.get("/v2/models/mlp/versions/1/ready").status, 200);
    assert_eq!(server.get("/v2/models/mlp/versions/7").status, 404);
}

#[test]
fn infer_without_a_module_matches_onnxruntime() {
    let exp = expected();
    let server = models_only();
    for nested in [false, true] {
        let r = server.post_json("/v2/models/mlp/infer", &mlp_request(&exp, nested));
        assert_eq!(r.status, 200, "{}", r.text);
        let body = r.json();
        assert_eq!(body["model_name"], "mlp");
        assert_eq!(body["id"], "req-1");
        let probs = output(&body, "probabilities");
        assert_eq!(probs["datatype"], "FP32");
        assert_eq!(probs["shape"], json!([5, 10]));
        assert_close(&probs["data"], &exp["mlp"]["ort"]["probabilities"], 1e-5);
    }
    let r = server.post_json("/v2/models/mlp/versions/1/infer", &mlp_request(&exp, false));
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn infer_on_scikit_learn_and_int64_models() {
    let exp = expected();
    let server = models_only();
    let rows = exp["iris"]["input"].as_array().expect("rows").len();
    let r = server.post_json(
        "/v2/models/iris/infer",
        &json!({"inputs": [{"name": "input", "shape": [rows, 4], "datatype": "FP32", "data": exp["iris"]["input"]}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(
        output(&body, "output_label")["data"],
        exp["iris"]["sklearn"]["label"]
    );
    assert_close(
        &output(&body, "output_probability")["data"],
        &exp["iris"]["ort"]["output_probability"],
        1e-5,
    );

    let ids = &exp["embed"]["input"];
    let r = server.post_json(
        "/v2/models/embed/infer",
        &json!({"inputs": [{"name": "input_ids", "shape": [3, 6], "datatype": "INT64", "data": ids}],
                "outputs": [{"name": "top_dimension"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(
        body["outputs"].as_array().map(Vec::len),
        Some(1),
        "only the requested output"
    );
    assert_eq!(output(&body, "top_dimension")["datatype"], "INT64");
    assert_eq!(
        output(&body, "top_dimension")["data"],
        exp["embed"]["ort"]["top_dimension"]
    );
}

#[test]
fn every_wasi_nn_tensor_type_goes_in_and_comes_out() {
    let exp = expected();
    let server = models_only();
    let values = exp["types"]["input"].as_object().expect("types");
    let inputs: Vec<Value> = values
        .iter()
        .map(|(ty, data)| json!({"name": format!("x_{}", ty.to_lowercase()), "shape": [3], "datatype": ty, "data": data}))
        .collect();
    let r = server.post_json("/v2/models/types/infer", &json!({ "inputs": inputs }));
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    for (ty, data) in values {
        let out = output(&body, &format!("y_{}", ty.to_lowercase()));
        assert_eq!(out["datatype"], ty.as_str());
        assert_eq!(out["shape"], json!([3]));
        assert_eq!(&out["data"], data, "{ty} changed on the way through");
    }
}

#[test]
fn infer_through_the_module_tensor_entry_point() {
    let exp = expected();
    let server = serve_module("onnx_mlp", None, &[]);
    let r = server.post_json("/v2/models/mlp/infer", &mlp_request(&exp, true));
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_close(
        &output(&body, "probabilities")["data"],
        &exp["mlp"]["ort"]["probabilities"],
        1e-5,
    );
    // `class` exists only when the module answers.
    let class = output(&body, "class");
    assert_eq!(class["datatype"], "INT64");
    assert_eq!(class["data"], exp["mlp"]["numpy"]["class"]);

    // The module declines other models; the host runs them directly.
    let r = server.post_json(
        "/v2/models/embed/infer",
        &json!({"inputs": [{"name": "input_ids", "shape": [3, 6], "datatype": "INT64", "data": exp["embed"]["input"]}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_close(
        &output(&r.json(), "embedding")["data"],
        &exp["embed"]["ort"]["embedding"],
        1e-5,
    );
}

#[test]
fn types_wasi_nn_lacks_work_without_a_module_and_are_named_with_one() {
    let exp = expected();
    let wide = &exp["wide_types"];
    let inputs: Vec<Value> = wide["input"]
        .as_object()
        .expect("wide types")
        .iter()
        .map(|(ty, data)| {
            let n = data.as_array().map_or(0, Vec::len);
            json!({"name": format!("x_{}", ty.to_lowercase()), "shape": [n], "datatype": ty, "data": data})
        })
        .collect();
    let body = json!({ "inputs": inputs });
    let server = models_only();
    let r = server.post_json("/v2/models/wide_types/infer", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let answer = r.json();
    for (ty, want) in wide["numpy"].as_object().expect("numpy") {
        let out = output(&answer, &format!("y_{}", ty.to_lowercase()));
        assert_eq!(out["datatype"], ty.as_str());
        assert_eq!(&out["data"], want, "{ty}: ONNX Runtime and NumPy differ");
    }
    // Through a module, wasi-nn's types only: the error names the type.
    let server = serve_module("onnx_mlp", Some(&models()), &[]);
    let r = server.post_json("/v2/models/wide_types/infer", &body);
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("cannot reach a module"), "{}", r.text);
}

/// A folder holding `files` of the generated models, and `module` as
/// `score.wasm` when given: what KServe's storage initializer lays out.
fn storage(tag: &str, files: &[&str], module: Option<&str>) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sandscore-storage-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    for f in files {
        std::fs::copy(models().join(f), dir.join(f)).expect("copy model");
    }
    if let Some(m) = module {
        std::fs::copy(common::guest(m), dir.join("score.wasm")).expect("copy module");
    }
    dir
}

#[test]
fn the_one_model_answers_to_the_services_name_and_the_module_is_found_beside_it() {
    let exp = expected();
    let dir = storage("alias", &["mlp.onnx"], Some("onnx_mlp"));
    let server = Server::start(&[
        "--model-dir",
        dir.to_str().unwrap(),
        "--model-name",
        "winers",
    ]);
    for name in ["winers", "mlp"] {
        let r = server.post_json(
            &format!("/v2/models/{name}/infer"),
            &mlp_request(&exp, false),
        );
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        assert_close(
            &output(&r.json(), "probabilities")["data"],
            &exp["mlp"]["ort"]["probabilities"],
            1e-5,
        );
    }
    assert_eq!(server.get("/v2/models/winers").json()["name"], "winers");
    assert_eq!(server.get("/v2/models/winers/ready").status, 200);
    // score.wasm in the model directory is the module: /score answers.
    let r = server.post_json("/score", &json!({ "data": exp["mlp"]["input"] }));
    assert_eq!(r.status, 200, "{}", r.text);
    let _ = std::fs::remove_dir_all(&dir);

    // Several models keep their own names: the alias names none of them.
    let dir = storage("several", &["mlp.onnx", "iris.onnx"], None);
    let server = Server::start(&[
        "--model-dir",
        dir.to_str().unwrap(),
        "--model-name",
        "winers",
    ]);
    assert_eq!(server.get("/v2/models/winers").status, 404);
    assert_eq!(server.get("/v2/models/mlp").status, 200);
    assert_eq!(
        server.post_json("/score", &json!({})).status,
        404,
        "no module here"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
