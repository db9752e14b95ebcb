//! Bad input and bad guests get a clear error with the right status, and the
//! server keeps serving.

mod common;

use common::{Server, guest, models};
use serde_json::json;

fn faulty(extra: &[&str]) -> Server {
    let g = guest("faulty");
    let mut args = vec!["--module", g.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start(&args)
}

#[test]
fn a_trapping_guest_gets_500_and_the_next_request_succeeds() {
    let server = faulty(&[]);
    for _ in 0..3 {
        let r = server.post_json("/score", &json!({"action": "panic"}));
        assert_eq!(r.status, 500, "{}", r.text);
        let msg = r.json()["message"].as_str().expect("message").to_string();
        assert!(msg.contains("trapped"), "{msg}");
        let ok = server.post_json("/score", &json!({"action": "ok"}));
        assert_eq!(ok.status, 200, "{}", ok.text);
        assert_eq!(ok.json(), json!({"ok": true}));
    }
}

#[test]
fn guest_errors_and_invalid_answers_are_500_with_the_reason() {
    let server = faulty(&[]);
    let r = server.post_json("/score", &json!({"action": "error"}));
    assert_eq!(r.status, 500);
    assert_eq!(r.json(), json!({"message": "asked to fail"}));
    let r = server.post_json("/score", &json!({"action": "bad-status"}));
    assert_eq!(r.status, 500);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("invalid HTTP status 42"),
        "{}",
        r.text
    );
    assert_eq!(server.post_json("/score", &json!({})).status, 200);
}

#[test]
fn a_looping_guest_is_stopped_at_the_deadline_with_504() {
    let server = faulty(&["--timeout", "300"]);
    let r = server.post_json("/score", &json!({"action": "loop"}));
    assert_eq!(r.status, 504, "{}", r.text);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("longer than"),
        "{}",
        r.text
    );
    let ok = server.post_json("/score", &json!({"action": "ok"}));
    assert_eq!(ok.status, 200, "{}", ok.text);
}

#[test]
fn malformed_and_mismatched_requests_are_400() {
    let server = common::serve_module("echo", None, &[]);

    let r = server.post("/score", "application/json", b"{\"a\": ".to_vec());
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("invalid JSON"),
        "{}",
        r.text
    );

    let r = server.post(
        "/v2/models/mlp/infer",
        "application/json",
        b"{\"inputs\": [".to_vec(),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("not valid inference JSON"),
        "{}",
        r.text
    );

    let wrong_count = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [1, 2, 3]}]});
    let r = server.post_json("/v2/models/mlp/infer", &wrong_count);
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("holds 64 elements but data has 3"),
        "{}",
        r.text
    );

    let wrong_shape = json!({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]});
    let r = server.post_json("/v2/models/mlp/infer", &wrong_shape);
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("must have shape [-1, 64]"),
        "{}",
        r.text
    );

    let wrong_type = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP64", "data": vec![0.5; 64]}]});
    let r = server.post_json("/v2/models/mlp/infer", &wrong_type);
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("must be FP32, got FP64"),
        "{}",
        r.text
    );

    let unknown_type =
        json!({"inputs": [{"name": "input", "shape": [1], "datatype": "COMPLEX", "data": [1]}]});
    let r = server.post_json("/v2/models/mlp/infer", &unknown_type);
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("'COMPLEX' is not supported"),
        "{}",
        r.text
    );

    let unknown_input =
        json!({"inputs": [{"name": "nope", "shape": [1], "datatype": "FP32", "data": [1]}]});
    let r = server.post_json("/v2/models/mlp/infer", &unknown_input);
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("unknown input 'nope'"),
        "{}",
        r.text
    );

    // Still serving.
    assert_eq!(server.post_json("/score", &json!({"x": 1})).status, 200);
}

#[test]
fn unknown_models_routes_and_content_types() {
    let m = models();
    let server = Server::start(&["--model-dir", m.to_str().unwrap(), "--max-body", "1"]);
    let body = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]});

    let r = server.post_json("/v2/models/nope/infer", &body);
    assert_eq!(r.status, 404);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("'nope' is not loaded"),
        "{}",
        r.text
    );
    assert_eq!(server.get("/v2/models/nope").status, 404);
    assert_eq!(server.get("/v2/models/nope/ready").status, 404);

    let r = server.post(
        "/v2/models/mlp/infer",
        "text/plain",
        body.to_string().into_bytes(),
    );
    assert_eq!(r.status, 415);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("send application/json"),
        "{}",
        r.text
    );

    // A body past --max-body: the server answers 413 as soon as it sees the
    // declared length, without reading the body.
    let reply = raw_request(
        &server,
        "POST /v2/models/mlp/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 3000000\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(
        reply.contains("larger than the 1048576-byte limit"),
        "{reply}"
    );

    let r = server.post_json("/score", &json!({}));
    assert_eq!(r.status, 404);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("no scoring module"),
        "{}",
        r.text
    );

    let r = server.get("/no/such/route");
    assert_eq!(r.status, 404);
    assert!(r.json()["message"].is_string());
}

fn raw_request(server: &Server, head: &str) -> String {
    use std::io::{Read, Write};
    let addr = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("write");
    let mut buf = vec![0; 4096];
    let n = stream.read(&mut buf).expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn check_rejects_a_module_that_does_not_implement_the_world() {
    let out = common::binary()
        .args(["check", "--no-cache", "--module"])
        .arg(guest("not-a-scorer"))
        .output()
        .expect("run check");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not implement the sandscore:scoring/scorer world"),
        "{err}"
    );
    assert!(
        err.contains("missing exports: init, score, infer"),
        "the reason names the missing exports: {err}"
    );
}

#[test]
fn check_reports_a_good_deployment_and_caches_compiled_code() {
    let cache = std::env::temp_dir().join(format!("sandscore-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let run = || {
        common::binary()
            .args(["check", "--module"])
            .arg(guest("onnx_mlp"))
            .arg("--model-dir")
            .arg(models())
            .arg("--cache-dir")
            .arg(&cache)
            .output()
            .expect("run check")
    };
    let first = run();
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(text.contains("onnx_mlp (Compiled)"), "{text}");
    assert!(
        text.contains("mlp") && text.contains("iris") && text.contains("embed"),
        "{text}"
    );
    assert!(text.contains("network    none"), "{text}");
    let second = run();
    let text = String::from_utf8_lossy(&second.stdout);
    assert!(
        text.contains("onnx_mlp (Cache)"),
        "a restart must not recompile: {text}"
    );
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn check_format_json_is_one_document_with_every_model_and_the_grants() {
    let out = common::binary()
        .arg("check")
        .arg("--format")
        .arg("json")
        .arg("--module")
        .arg(guest("onnx_mlp"))
        .arg("--model-dir")
        .arg(models())
        .arg("--timeout")
        .arg("1234")
        .output()
        .expect("run check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(report["module"]["name"], "onnx_mlp");
    let models = report["models"].as_array().expect("models");
    let names: Vec<&str> = models.iter().filter_map(|m| m["name"].as_str()).collect();
    for name in ["embed", "iris", "mlp"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    for m in models {
        assert_eq!(m["backend"], "onnxruntime", "{m}");
        assert_eq!(m["device"], "cpu", "{m}");
        assert!(m["inputs"][0]["datatype"].is_string(), "{m}");
    }
    let grants = &report["capabilities"];
    assert_eq!(grants["files"]["guest"], "/models");
    assert_eq!(grants["limits"]["timeout_ms"], 1234);
    assert_eq!(grants["env"], json!(["AZUREML_MODEL_DIR"]));
}

#[test]
fn a_module_whose_init_fails_stops_startup_with_the_reason() {
    let empty = std::env::temp_dir().join(format!("sandscore-empty-models-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("mkdir");
    let g = guest("onnx_mlp");
    let err = Server::try_start(&[
        "--module",
        g.to_str().unwrap(),
        "--model-dir",
        empty.to_str().unwrap(),
    ])
    .err()
    .expect("startup must fail");
    assert!(
        err.contains("init failed") && err.contains("no model named 'mlp'"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&empty);
}

#[test]
fn liveness_answers_while_loading_and_readiness_waits() {
    let dir = std::env::temp_dir().join(format!("sandscore-slow-init-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(models().join("mlp.onnx"), dir.join("mlp.onnx")).expect("copy model");
    std::fs::write(dir.join("slow-init"), b"").expect("marker");
    let g = guest("faulty");
    let mut server = Server::spawn(
        &[
            "--module",
            g.to_str().unwrap(),
            "--model-dir",
            dir.to_str().unwrap(),
        ],
        &[],
    )
    .expect("spawn");
    assert_eq!(server.get("/").text, "Healthy");
    assert_eq!(server.get("/v2/health/live").status, 200);
    let r = server.get("/v2/health/ready");
    assert_eq!(r.status, 503, "{}", r.text);
    let r = server.post_json("/score", &json!({}));
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("not ready"),
        "{}",
        r.text
    );
    server.wait_ready().expect("ready after init");
    assert_eq!(server.post_json("/score", &json!({})).status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_module_can_read_its_model_directory_and_load_a_graph_from_bytes() {
    let exp = common::expected();
    let m = models();
    let server = faulty(&["--model-dir", m.to_str().unwrap()]);
    let r = server.post_json("/score", &json!({"action": "load-bytes"}));
    assert_eq!(r.status, 200, "{}", r.text);
    common::assert_close(
        &r.json()["probabilities"],
        &exp["mlp"]["ort"]["zeros_probabilities"],
        1e-5,
    );
}

#[test]
fn a_precompiled_module_beside_the_wasm_is_used() {
    let dir = std::env::temp_dir().join(format!("sandscore-cwasm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let wasm = dir.join("echo.wasm");
    std::fs::copy(guest("echo"), &wasm).expect("copy");
    let out = common::binary()
        .args(["compile", "--module"])
        .arg(&wasm)
        .output()
        .expect("compile");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("echo.cwasm").exists());
    let out = common::binary()
        .args(["check", "--no-cache", "--module"])
        .arg(&wasm)
        .output()
        .expect("check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("echo (Precompiled)"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
