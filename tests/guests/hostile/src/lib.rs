//! A module written to misbehave, for the sandbox tests. Each request names
//! one `action` (and maybe `path`, `addr`, `mb`); what it tries is what a
//! hostile or buggy `score.py` would try. Anything the host refuses comes
//! back as an error response carrying the refusal.

use std::sync::atomic::{AtomicU64, Ordering};

use sandscore_guest::bindings::wasi::nn::{graph, tensor};
use sandscore_guest::{Error, Model, Request, Response, Scorer, Tensor, TensorType, export};
use serde_json::{Value, json};

struct Hostile;

static REQUESTS: AtomicU64 = AtomicU64::new(0);

fn refused(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{what} refused: {e}"))
}

#[allow(unconditional_recursion)] // The point: recursion without end.
fn recurse(n: u64) -> u64 {
    // Not a tail call: every frame stays on the stack.
    std::hint::black_box(recurse(std::hint::black_box(n + 1))) + 1
}

impl Scorer for Hostile {
    fn score(req: Request) -> Result<Response, Error> {
        let v: Value = req.json()?;
        let arg = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mb = v.get("mb").and_then(Value::as_u64).unwrap_or(1) as usize;
        let count = REQUESTS.fetch_add(1, Ordering::SeqCst) + 1;
        match arg("action").as_str() {
            "read" => {
                let path = arg("path");
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| refused(&format!("reading {path}"), e))?;
                Response::json(&json!({ "leaked": text }))
            }
            "list" => {
                let path = arg("path");
                let names: Vec<String> = std::fs::read_dir(&path)
                    .map_err(|e| refused(&format!("listing {path}"), e))?
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                Response::json(&json!({ "entries": names }))
            }
            "write" => {
                let path = arg("path");
                std::fs::write(&path, vec![b'x'; mb << 20])
                    .map_err(|e| refused(&format!("writing {path}"), e))?;
                Response::json(&json!({ "wrote": path }))
            }
            "socket" => {
                let addr = arg("addr");
                std::net::TcpStream::connect(&addr)
                    .map_err(|e| refused(&format!("connecting to {addr}"), e))?;
                Response::json(&json!({ "connected": addr }))
            }
            "env" => {
                let vars: Vec<(String, String)> = std::env::vars().collect();
                Response::json(&json!({ "env": vars }))
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recurse" => Response::json(&json!({ "depth": recurse(0) })),
            "panic" => panic!("hostile panic"),
            "loop" => loop {
                std::hint::black_box(count);
            },
            "big-body" => Ok(Response::new(
                200,
                vec![b'x'; mb << 20],
                "application/octet-stream",
            )),
            "huge-tensor" => {
                let data = vec![0u8; mb << 20];
                let t = tensor::Tensor::new(&[(data.len() / 4) as u32], TensorType::Fp32, &data);
                Response::json(&json!({ "dims": t.dimensions() }))
            }
            "mismatched-tensor" => {
                let bad = Tensor {
                    name: "input".into(),
                    shape: vec![1, 64],
                    datatype: TensorType::Fp32,
                    data: vec![0; 12],
                };
                Model::by_name("mlp")?.run(&[bad])?;
                Response::json(&json!({ "ran": true }))
            }
            "wrong-type" => {
                Model::by_name("mlp")?.run(&[Tensor::new("input", &[1, 64], &[1i64; 64])])?;
                Response::json(&json!({ "ran": true }))
            }
            "graphs" => {
                let mut open = Vec::new();
                loop {
                    match graph::load_by_name("mlp") {
                        Ok(g) => open.push(g),
                        Err(e) => {
                            return Err(refused(&format!("graph {}", open.len() + 1), e.data()));
                        }
                    }
                }
            }
            "tensors" => {
                let mut live = Vec::new();
                loop {
                    live.push(tensor::Tensor::new(&[1], TensorType::Fp32, &[0, 0, 0, 0]));
                }
            }
            "stdout" => {
                println!("hello from the guest's stdout");
                eprintln!("and from its stderr");
                Response::json(&json!({ "printed": true }))
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(mb as u64));
                Response::json(&json!({ "slept_ms": mb }))
            }
            "count" => Response::json(&json!({ "count": count })),
            // Error resources kept alive: each is host memory.
            "leak-errors" => {
                let mut kept = Vec::new();
                loop {
                    if let Err(e) = graph::load_by_name(&"x".repeat(mb)) {
                        kept.push(e);
                    }
                }
            }
            "forge-log" => {
                sandscore_guest::log(
                    sandscore_guest::Level::Info,
                    "harmless\nINFO forged line request_id=admin",
                );
                print!("out\r\0\u{1b}[2Jforged\n");
                Response::json(&json!({ "logged": true }))
            }
            "status" => Ok(Response::new(mb as u16, "odd", "text/plain")),
            "huge-error" => Err(Error::internal("e".repeat(mb << 20))),
            other => Err(Error::bad_request(format!("unknown action '{other}'"))),
        }
    }
}

export!(Hostile);
