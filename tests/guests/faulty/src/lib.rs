//! A module that misbehaves, or probes the host, on request, for the tests.
//! `{"action": …}`: `panic`, `loop`, `error`, `bad-status`, `load-bytes`
//! (reads `/models/mlp.onnx` and loads it with wasi-nn `load`), `ok`.
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
            _ => Response::json(&json!({ "ok": true })),
        }
    }
}

export!(Faulty);
