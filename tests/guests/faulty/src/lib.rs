//! A module that misbehaves on request, for the tests: `{"action": …}` with
//! `panic`, `loop`, `error`, `bad-status`, `ok`. The host must turn each
//! fault into an error response and keep serving.

use sandscore_guest::{Error, Request, Response, Scorer, export};
use serde_json::{Value, json};

struct Faulty;

impl Scorer for Faulty {
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
            _ => Response::json(&json!({ "ok": true })),
        }
    }
}

export!(Faulty);
