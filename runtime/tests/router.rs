//! The HTTP face in process: requests through the router with
//! `tower::ServiceExt::oneshot`, no socket, over a fake backend.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use sandscore_runtime::http::{AppState, router};
use sandscore_runtime::service::ServiceConfig;
use serde_json::{Value, json};
use tower::ServiceExt;

fn app(ready: bool) -> axum::Router {
    let state = AppState::new(1 << 20, Duration::from_secs(5), 8 << 10);
    if ready {
        let dir = common::fake_models("router", &[("echo", "echo")]);
        let service = common::service(ServiceConfig {
            model_dir: Some(dir),
            ..ServiceConfig::default()
        });
        let _ = state.service.set(Arc::new(service));
    }
    router(Arc::new(state))
}

async fn send(app: axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.oneshot(req).await.expect("a response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

fn post(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_routes_answer_from_the_service() {
    let (status, body) = send(app(true), get("/v2/models/echo")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["platform"], "fake_platform");
    assert_eq!(
        body["inputs"],
        json!([{"name": "x", "datatype": "FP32", "shape": [-1]}])
    );

    let request =
        json!({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.5, 2.5]}]});
    let (status, body) = send(app(true), post("/v2/models/echo/infer", &request)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outputs"][0]["name"], "y");
    assert_eq!(body["outputs"][0]["data"], json!([1.5, 2.5]));
    assert_eq!(body["model_version"], "1");

    let (status, body) = send(app(true), get("/v2/models/nope/ready")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("'nope' is not loaded"),
        "{body}"
    );
    let (status, body) = send(
        app(true),
        post("/v2/models/echo/infer", &json!({"inputs": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_ml_routes_and_errors_have_their_own_shape() {
    let (status, body) = send(app(true), post("/score", &json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("no scoring module"),
        "{body}"
    );
    let (status, body) = send(app(true), get("/")).await;
    assert_eq!((status, body), (StatusCode::OK, json!("Healthy")));
    let (status, _) = send(app(true), get("/etc/passwd")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn before_the_service_is_ready_only_liveness_answers() {
    let (status, _) = send(app(false), get("/v2/health/live")).await;
    assert_eq!(status, StatusCode::OK);
    let resp = app(false)
        .oneshot(get("/v2/health/ready"))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        resp.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn heads_past_the_limit_get_431_and_ids_are_sanitised() {
    let big = Request::get("/v2/health/live")
        .header("x-padding", "a".repeat(9 << 10))
        .body(Body::empty())
        .expect("request");
    let (status, _) = send(app(true), big).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let forged = Request::get("/v2/health/live")
        .header("x-request-id", "abc method=FORGED")
        .body(Body::empty())
        .expect("request");
    let resp = app(true).oneshot(forged).await.expect("response");
    let id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        !id.is_empty() && !id.contains(' '),
        "a safe id replaces it: {id}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_label_requests_by_route_template() {
    let request = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]});
    let (status, _) = send(app(true), post("/v2/models/echo/infer", &request)).await;
    assert_eq!(status, StatusCode::OK);
    let resp = app(true).oneshot(get("/metrics")).await.expect("response");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.lines()
            .any(|l| l.starts_with("sandscore_http_requests_total")
                && l.contains("route=\"/v2/models/{name}/infer\"")
                && l.contains("model=\"echo\"")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_tensor_data_goes_in_and_comes_out_raw() {
    let x: Vec<u8> = [1.5f32, -2.0, 0.25]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let header = json!({
        "inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "parameters": {"binary_data_size": 12}}],
        "parameters": {"binary_data_output": true}
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&x);
    let req = Request::post("/v2/models/echo/infer")
        .header("content-type", "application/octet-stream")
        .header("inference-header-content-length", header.len())
        .body(Body::from(body))
        .expect("request");
    let resp = app(true).oneshot(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let n: usize = resp
        .headers()
        .get("inference-header-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a binary answer says where its JSON ends");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let head: Value = serde_json::from_slice(&bytes[..n]).expect("JSON header");
    assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 12);
    assert_eq!(&bytes[n..], &x[..], "the output's raw bytes, as sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_model_is_404_before_its_body_is_read() {
    let req = Request::post("/v2/models/no-such-model/infer")
        .header("content-type", "application/json")
        .body(Body::from("{\"inputs\": []}"))
        .expect("request");
    let (status, body) = send(app(true), req).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = send(app(true), get("/v2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["extensions"],
        json!([
            "binary_tensor_data",
            "model_configuration",
            "model_repository",
            "statistics"
        ])
    );
}
