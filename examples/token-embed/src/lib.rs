//! `token-embed`: INT64 token ids in, a mean embedding and its strongest
//! dimension out, through the `embed` ONNX model (Gather → ReduceMean →
//! ArgMax). Shows integer tensors crossing wasi-nn both ways.
//!
//! `/score` takes `{"tokens": [[ids…], …]}` (rows of equal length) and
//! answers `{"embeddings": [[…], …], "top_dimension": [k, …]}`.

use sandscore_guest::{Error, Model, Request, Response, Scorer, Tensor, export};
use serde::Deserialize;
use serde_json::json;

const MODEL: &str = "embed";

struct Embed;

#[derive(Deserialize)]
struct Input {
    tokens: Vec<Vec<i64>>,
}

impl Scorer for Embed {
    fn init() -> Result<(), String> {
        Model::by_name(MODEL).map(|_| ()).map_err(|e| e.message)
    }

    fn score(req: Request) -> Result<Response, Error> {
        let input: Input = req.json()?;
        let rows = input.tokens.len();
        let len = input.tokens.first().map_or(0, Vec::len);
        if rows == 0 || len == 0 || input.tokens.iter().any(|r| r.len() != len) {
            return Err(Error::bad_request(
                "'tokens' must be non-empty rows of equal length",
            ));
        }
        let ids = Tensor::new(
            "input_ids",
            &[rows as u32, len as u32],
            &input.tokens.concat(),
        );
        let out = Model::by_name(MODEL)?.run(&[ids])?;
        let emb = Tensor::find(&out, "embedding")?;
        let dim = emb.shape.last().copied().unwrap_or(1).max(1) as usize;
        let values = emb.to_vec::<f32>()?;
        let embeddings: Vec<&[f32]> = values.chunks(dim).collect();
        let top = Tensor::find(&out, "top_dimension")?.to_vec::<i64>()?;
        Response::json(&json!({ "embeddings": embeddings, "top_dimension": top }))
    }
}

export!(Embed);
