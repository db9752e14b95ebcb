//! A module that misbehaves, or probes the host, on request, for the tests.
//! `{"action": …}`: `panic`, `loop`, `error`, `bad-status`, `load-bytes`
//! (reads `/models/mlp.onnx` and loads it with wasi-nn `load`), `load`
//! (reads `files` under /models, loads them as one graph's builders with
//! `encoding`, runs FP32 `input` {name, shape, data} and answers every
//! output as {name: values}), `ok`.
//! If `/models/slow-init` exists, `init` takes about a second.

use sandscore_guest::bindings::wasi::nn::graph::GraphEncoding;
use sandscore_guest::{Error, Model, Request, Response, Scorer, Tensor, export};
use serde_json::{Value, json};

struct Faulty;

impl Scorer for Faulty {
    fn init() -> Result<(), String> {
        if std::path::Path::new("/models/slow-init").exists() {
            std::thread::sleep(std::time::Duration::from_millis(1000));
        }
        Ok(())
    }

    fn score(req: Request) -> Result<Response, Error> {
        let v: Value = req.json()?;
        match v.get("action").and_then(Value::as_str).unwrap_or("ok") {
            "panic" => panic!("asked to panic"),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "error" => Err(Error::internal("asked to fail")),
            "bad-status" => Ok(Response::new(42, "x", "text/plain")),
            "load-bytes" => {
                let bytes = std::fs::read("/models/mlp.onnx")
                    .map_err(|e| Error::internal(format!("read: {e}")))?;
                let model = Model::from_bytes("mlp-bytes", &bytes, GraphEncoding::Onnx)?;
                let out = model.run(&[Tensor::new("input", &[1, 64], &[0.0f32; 64])])?;
                let probs: Vec<f32> = Tensor::find(&out, "probabilities")?.to_vec()?;
                Response::json(&json!({ "probabilities": probs }))
            }
            "load" => load(&v),
            _ => Response::json(&json!({ "ok": true })),
        }
    }
}

/// The `load` action: wasi-nn `load` from bytes with a chosen encoding.
fn load(v: &Value) -> Result<Response, Error> {
    use sandscore_guest::bindings::wasi::nn::graph;
    use sandscore_guest::bindings::wasi::nn::tensor::{Tensor as NnTensor, TensorType};
    let bad = |m: &str| Error::bad_request(m.to_string());
    let encoding = match v["encoding"].as_str().unwrap_or("autodetect") {
        "onnx" => GraphEncoding::Onnx,
        "tensorflow" => GraphEncoding::Tensorflow,
        "tensorflowlite" => GraphEncoding::Tensorflowlite,
        "pytorch" => GraphEncoding::Pytorch,
        _ => GraphEncoding::Autodetect,
    };
    let mut parts = Vec::new();
    for f in v["files"].as_array().ok_or_else(|| bad("files"))? {
        let path = format!("/models/{}", f.as_str().ok_or_else(|| bad("file"))?);
        parts.push(std::fs::read(&path).map_err(|e| Error::internal(format!("{path}: {e}")))?);
    }
    let nn = |e: sandscore_guest::bindings::wasi::nn::errors::Error| Error::internal(e.data());
    let g = graph::load(&parts, encoding, graph::ExecutionTarget::Cpu).map_err(nn)?;
    let ctx = g.init_execution_context().map_err(nn)?;
    let input = &v["input"];
    let shape: Vec<u32> =
        serde_json::from_value(input["shape"].clone()).map_err(|_| bad("shape"))?;
    let data: Vec<f32> = serde_json::from_value(input["data"].clone()).map_err(|_| bad("data"))?;
    let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    let t = NnTensor::new(&shape, TensorType::Fp32, &bytes);
    let name = input["name"].as_str().unwrap_or("input").to_string();
    let out = ctx.compute(vec![(name, t)]).map_err(nn)?;
    let mut answer = serde_json::Map::new();
    for (name, t) in out {
        let values: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        answer.insert(name, json!(values));
    }
    Response::json(&answer)
}

export!(Faulty);
