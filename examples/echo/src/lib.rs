//! `echo`: JSON in, JSON out, no model. The smallest scoring module, and the
//! one to copy when a module computes everything itself.

use sandscore_guest::{Error, Level, Request, Response, Scorer, export, log};
use serde_json::{Value, json};

struct Echo;

impl Scorer for Echo {
    fn score(req: Request) -> Result<Response, Error> {
        let value: Value = req.json()?;
        log(Level::Info, "echoing one request");
        Response::json(&json!({ "echo": value }))
    }
}

export!(Echo);
