//! `onnx-mlp`: rows of 64 features in, a class and its probabilities out,
//! through the `mlp` ONNX model (64 → 32 → 10, softmax).
//!
//! `/score` takes `{"data": [[64 numbers], …]}` and answers
//! `{"predictions": [{"class": k, "probabilities": [10 numbers]}, …]}`.
//! V2 `infer` on model `mlp` returns the model's outputs plus `class`
//! (INT64, one per row), computed here.

use sandscore_guest::{Error, Model, Request, Response, Scorer, Tensor, export};
use serde::Deserialize;
use serde_json::json;

const MODEL: &str = "mlp";
const FEATURES: usize = 64;

struct Mlp;

#[derive(Deserialize)]
struct Input {
    data: Vec<Vec<f32>>,
}

fn argmax(p: &[f32]) -> i64 {
    p.iter()
        .enumerate()
        .fold((0usize, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0 as i64
}

fn classes(probabilities: &Tensor) -> Result<Vec<i64>, Error> {
    let p = probabilities.to_vec::<f32>()?;
    let width = probabilities.shape.last().copied().unwrap_or(1).max(1) as usize;
    Ok(p.chunks(width).map(argmax).collect())
}

impl Scorer for Mlp {
    fn init() -> Result<(), String> {
        Model::by_name(MODEL).map(|_| ()).map_err(|e| e.message)
    }

    fn score(req: Request) -> Result<Response, Error> {
        let input: Input = req.json()?;
        if input.data.is_empty() {
            return Err(Error::bad_request("'data' must hold at least one row"));
        }
        if let Some((i, row)) = input
            .data
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() != FEATURES)
        {
            return Err(Error::bad_request(format!(
                "row {i} has {} values; the model takes {FEATURES}",
                row.len()
            )));
        }
        let rows = input.data.len() as u32;
        let x = Tensor::new("input", &[rows, FEATURES as u32], &input.data.concat());
        let out = Model::by_name(MODEL)?.run(&[x])?;
        let probs = Tensor::find(&out, "probabilities")?;
        let values = probs.to_vec::<f32>()?;
        let width = values.len() / rows as usize;
        let predictions: Vec<_> = values
            .chunks(width)
            .map(|p| json!({ "class": argmax(p), "probabilities": p }))
            .collect();
        Response::json(&json!({ "predictions": predictions }))
    }

    fn infer(model: &str, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        if model != MODEL {
            return Err(Error::unsupported(format!(
                "this module serves '{MODEL}' only"
            )));
        }
        let mut out = Model::by_name(MODEL)?.run(&inputs)?;
        let class = classes(Tensor::find(&out, "probabilities")?)?;
        out.push(Tensor::new("class", &[class.len() as u32], &class));
        Ok(out)
    }
}

export!(Mlp);
