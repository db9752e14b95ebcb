//! Every example scored over HTTP, compared with the frameworks' own outputs
//! (onnxruntime's Python API, scikit-learn, NumPy) stored by the generator.

mod common;

use common::{Server, assert_close, column, expected, guest, models, serve_module};
use serde_json::{Value, json};

fn serve(module: &str) -> Server {
    serve_module(module, None, &[])
}

#[test]
fn echo_round_trips_json_and_query_parameters() {
    let server = serve("echo");
    let body = json!({"a": [1, 2, 3], "b": {"c": "d"}});
    let r = server.post_json("/score", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({ "echo": body }));

    let r = server.get("/score?rows=3&name=iris&flag=true");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"echo": {"rows": 3, "name": "iris", "flag": true}})
    );

    let r = server.get("/");
    assert_eq!((r.status, r.text.as_str()), (200, "Healthy"));
}

#[test]
fn request_ids_are_echoed_or_generated() {
    let server = serve("echo");
    let r = server.post_json_with_id("/score", &json!({}), "trace-42");
    assert_eq!(r.header("x-request-id"), Some("trace-42"));
    let generated = server.post_json("/score", &json!({}));
    let id = generated.header("x-request-id").expect("generated id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let other = server.post_json("/score", &json!({}));
    assert_ne!(other.header("x-request-id"), Some(id));
}

#[test]
fn swagger_serves_the_openapi_document() {
    let server = serve("echo");
    let doc = server.get("/swagger.json").json();
    assert_eq!(doc["openapi"], "3.0.3");
    for path in ["/score", "/v2/models/{name}/infer", "/v2/health/ready"] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from /swagger.json"
        );
    }
    // Every response object is OpenAPI's: a `description` string, or a
    // `$ref` (an unquoted comma in YAML's flow style once split one).
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
        for (method, op) in item.as_object().expect("path item") {
            if !methods.contains(&method.as_str()) {
                continue;
            }
            for (status, r) in op["responses"].as_object().expect("responses") {
                let keys: Vec<&String> = r.as_object().expect("a response").keys().collect();
                assert!(
                    r["description"].is_string() || r["$ref"].is_string(),
                    "{method} {path} {status}: {r}"
                );
                assert!(
                    keys.iter().all(
                        |k| ["description", "$ref", "content", "headers"].contains(&k.as_str())
                    ),
                    "{method} {path} {status} has keys {keys:?}"
                );
            }
        }
    }
    // Each loaded model has its own path, whose schema names its tensors.
    let request = &doc["components"]["schemas"]["mlp.InferRequest"];
    let input = &request["properties"]["inputs"]["items"]["oneOf"][0]["properties"];
    assert_eq!(input["name"]["enum"], json!(["input"]), "{request}");
    assert_eq!(input["datatype"]["enum"], json!(["FP32"]), "{request}");
    assert_eq!(input["shape"]["minItems"], 2, "{request}");
    assert!(doc["paths"].get("/v2/models/mlp/infer").is_some());
    // And the whole document is valid OpenAPI, by openapi-spec-validator.
    let python = std::env::var_os("SANDSCORE_K8S_PYTHON").expect("run with `make test`");
    let file = std::env::temp_dir().join(format!("swagger-{}.json", std::process::id()));
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))\nprint('valid')",
        ])
        .arg(&file)
        .output()
        .expect("python");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn onnx_mlp_matches_onnxruntime() {
    let exp = expected();
    let server = serve("onnx_mlp");
    let r = server.post_json("/score", &json!({ "data": exp["mlp"]["input"] }));
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_close(
        &column(&body, "probabilities"),
        &exp["mlp"]["ort"]["probabilities"],
        1e-5,
    );
    assert_eq!(column(&body, "class"), exp["mlp"]["numpy"]["class"]);
}

#[test]
fn iris_pipeline_matches_scikit_learn() {
    let exp = expected();
    let server = serve("iris_sklearn");
    let r = server.post_json("/score", &json!({ "data": exp["iris"]["input"] }));
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(column(&body, "label"), exp["iris"]["sklearn"]["label"]);
    assert_close(
        &column(&body, "probabilities"),
        &exp["iris"]["sklearn"]["probabilities"],
        1e-5,
    );
}

#[test]
fn int64_token_ids_in_and_out() {
    let exp = expected();
    let server = serve("token_embed");
    let r = server.post_json("/score", &json!({ "tokens": exp["embed"]["input"] }));
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_close(&body["embeddings"], &exp["embed"]["ort"]["embedding"], 1e-5);
    assert_eq!(body["top_dimension"], exp["embed"]["ort"]["top_dimension"]);
}

#[test]
fn score_command_answers_one_request_without_a_server() {
    let exp = expected();
    let out = common::binary()
        .args(["score", "--module"])
        .arg(guest("onnx_mlp"))
        .arg("--model-dir")
        .arg(models())
        .arg("--no-cache")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let body = json!({ "data": exp["mlp"]["input"] }).to_string();
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(body.as_bytes())?;
            child.wait_with_output()
        })
        .expect("run score");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_close(
        &column(&body, "probabilities"),
        &exp["mlp"]["ort"]["probabilities"],
        1e-5,
    );
}

#[test]
fn concurrent_requests_on_several_workers_all_answer_correctly() {
    let exp = expected();
    let server = serve_module("onnx_mlp", None, &["--workers", "3"]);
    let body = json!({ "data": exp["mlp"]["input"] });
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                for _ in 0..10 {
                    let r = server.post_json("/score", &body);
                    assert_eq!(r.status, 200, "{}", r.text);
                    assert_close(
                        &column(&r.json(), "probabilities"),
                        &exp["mlp"]["ort"]["probabilities"],
                        1e-5,
                    );
                }
            });
        }
    });
}
