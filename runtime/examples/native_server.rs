//! The benchmark's physical floor: a plain Rust server that answers V2
//! `infer` on ONNX models with nothing around the work. hyper, serde_json
//! straight into typed structs, ONNX Runtime through `ort` (two sessions per
//! model, one intra-op thread each), no sandbox, no framework, no logging,
//! no metrics, no batching. What sandscore's host path is measured against.
//!
//! Usage: native_server PORT MODEL_DIR LIBONNXRUNTIME   (serves every
//! `*.onnx` of MODEL_DIR at `/v2/models/{stem}/infer`, FP32 inputs only)

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

#[derive(Deserialize)]
struct InferRequest {
    inputs: Vec<Input>,
}

#[derive(Deserialize)]
struct Input {
    name: String,
    shape: Vec<i64>,
    data: Vec<f32>,
}

#[derive(Serialize)]
struct InferResponse<'a> {
    model_name: &'a str,
    outputs: Vec<Output>,
}

#[derive(Serialize)]
struct Output {
    name: String,
    datatype: &'static str,
    shape: Vec<i64>,
    data: Vec<f32>,
}

/// A model's sessions: a request takes the first one free.
struct Model {
    sessions: Vec<Mutex<Session>>,
}

type Models = Arc<HashMap<String, Model>>;

fn infer(model: &Model, name: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let request: InferRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut values = Vec::with_capacity(request.inputs.len());
    for input in request.inputs {
        let tensor = Tensor::from_array((input.shape, input.data)).map_err(|e| e.to_string())?;
        values.push((input.name, tensor.into_dyn()));
    }
    let mut session = model
        .sessions
        .iter()
        .find_map(|s| s.try_lock().ok())
        .map_or_else(|| model.sessions[0].lock(), Ok)
        .map_err(|_| "a session was poisoned".to_string())?;
    let outputs = session.run(values).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(outputs.len());
    for (output, value) in outputs.into_iter() {
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| e.to_string())?;
        out.push(Output {
            name: output.to_string(),
            datatype: "FP32",
            shape: shape.iter().copied().collect(),
            data: data.to_vec(),
        });
    }
    serde_json::to_vec(&InferResponse {
        model_name: name,
        outputs: out,
    })
    .map_err(|e| e.to_string())
}

async fn handle(
    models: Models,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let answer = |status: StatusCode, body: Vec<u8>| {
        Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default())
    };
    let path = req.uri().path().to_string();
    let name = path
        .strip_prefix("/v2/models/")
        .and_then(|p| p.strip_suffix("/infer"))
        .unwrap_or("");
    let Some(model) = models.get(name) else {
        return answer(
            StatusCode::NOT_FOUND,
            br#"{"error":"no such model"}"#.to_vec(),
        );
    };
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return answer(StatusCode::BAD_REQUEST, br#"{"error":"bad body"}"#.to_vec());
    };
    match tokio::task::block_in_place(|| infer(model, name, &body)) {
        Ok(json) => answer(StatusCode::OK, json),
        Err(e) => answer(
            StatusCode::BAD_REQUEST,
            serde_json::to_vec(&serde_json::json!({ "error": e })).unwrap_or_default(),
        ),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (port, dir, lib) = match args.as_slice() {
        [_, port, dir, lib] => (port.parse::<u16>()?, dir.clone(), lib.clone()),
        _ => return Err("usage: native_server PORT MODEL_DIR LIBONNXRUNTIME".into()),
    };
    let env = ort::init_from(&lib)?.with_telemetry(false).build()?;
    let mut models = HashMap::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "onnx") {
            continue;
        }
        let mut sessions = Vec::new();
        for _ in 0..2 {
            let session = Session::builder(&env)?
                .with_optimization_level(GraphOptimizationLevel::All)?
                .with_intra_threads(1)?
                .commit_from_file(&path)?;
            sessions.push(Mutex::new(session));
        }
        let stem = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        models.insert(stem, Model { sessions });
    }
    let models: Models = Arc::new(models);
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let models = Arc::clone(&models);
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(Arc::clone(&models), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
