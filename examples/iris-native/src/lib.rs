//! `iris-native`: one module for iris classifiers in their frameworks' own
//! formats — `iris_xgb` (saved by xgboost), `iris_tf` (a TensorFlow
//! SavedModel), `iris_tflite` (converted to TensorFlow Lite) or
//! `iris_torch` (TorchScript) — whichever the model directory holds. The
//! module opens the model by name and runs it the same way whatever the
//! framework; only the output's name differs (`predictions` from XGBoost,
//! `probabilities` from the TensorFlow signatures, `output_0` — forward's
//! first result — from TorchScript).
//!
//! `/score` takes `{"data": [[4 numbers or null], …]}` (null is a missing
//! value, which XGBoost understands) and answers
//! `{"predictions": [{"class": k, "probabilities": [3 numbers]}, …]}`.

use std::cell::Cell;

use sandscore_guest::{Error, Model, Request, Response, Scorer, Tensor, export};
use serde::Deserialize;
use serde_json::json;

/// The models this module knows, in the order it looks for them.
const MODELS: [&str; 4] = ["iris_xgb", "iris_tf", "iris_tflite", "iris_torch"];
const OUTPUTS: [&str; 4] = ["predictions", "probabilities", "probabilities", "output_0"];
const FEATURES: usize = 4;

thread_local! {
    /// Index into MODELS of the model found by `init`.
    static FOUND: Cell<usize> = const { Cell::new(0) };
}

struct Iris;

#[derive(Deserialize)]
struct Input {
    data: Vec<Vec<Option<f32>>>,
}

fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &v)| if v > b.1 { (i, v) } else { b },
        )
        .0
}

impl Scorer for Iris {
    fn init() -> Result<(), String> {
        let found = MODELS
            .iter()
            .position(|m| Model::by_name(m).is_ok())
            .ok_or_else(|| format!("none of the models {MODELS:?} is in the model directory"))?;
        FOUND.set(found);
        Ok(())
    }

    fn score(req: Request) -> Result<Response, Error> {
        let input: Input = req.json()?;
        if input.data.is_empty() || input.data.iter().any(|r| r.len() != FEATURES) {
            return Err(Error::bad_request(format!(
                "'data' must be one or more rows of {FEATURES} numbers (null for missing)"
            )));
        }
        let rows = input.data.len() as u32;
        let values: Vec<f32> = input
            .data
            .iter()
            .flatten()
            .map(|v| v.unwrap_or(f32::NAN))
            .collect();
        let x = Tensor::new("input", &[rows, FEATURES as u32], &values);
        let found = FOUND.get();
        let out = Model::by_name(MODELS[found])?.run(&[x])?;
        let probs: Vec<f32> = Tensor::find(&out, OUTPUTS[found])?.to_vec()?;
        let width = probs.len() / rows as usize;
        let predictions: Vec<_> = probs
            .chunks(width)
            .map(|p| json!({ "class": argmax(p), "probabilities": p }))
            .collect();
        Response::json(&json!({ "predictions": predictions }))
    }
}

export!(Iris);
