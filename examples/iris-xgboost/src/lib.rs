//! `iris-xgboost`: the iris classifier trained and saved by xgboost
//! (`iris_xgb.json`), served unconverted through the XGBoost backend.
//!
//! `/score` takes `{"data": [[4 numbers or null], …]}` (null is a missing
//! value, as NaN is to XGBoost) and answers
//! `{"predictions": [{"class": k, "probabilities": [3 numbers]}, …]}`, what
//! `XGBClassifier.predict` and `predict_proba` give.

use sandscore_guest::{Error, Model, Request, Response, Scorer, Tensor, export};
use serde::Deserialize;
use serde_json::json;

const MODEL: &str = "iris_xgb";
const FEATURES: usize = 4;

struct Iris;

#[derive(Deserialize)]
struct Input {
    data: Vec<Vec<Option<f32>>>,
}

impl Scorer for Iris {
    fn init() -> Result<(), String> {
        Model::by_name(MODEL).map(|_| ()).map_err(|e| e.message)
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
        let out = Model::by_name(MODEL)?.run(&[x])?;
        let probs: Vec<f32> = Tensor::find(&out, "predictions")?.to_vec()?;
        let width = probs.len() / rows as usize;
        let predictions: Vec<_> = probs
            .chunks(width)
            .map(|p| {
                let class = p
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f32::NEG_INFINITY),
                        |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                    )
                    .0;
                json!({ "class": class, "probabilities": p })
            })
            .collect();
        Response::json(&json!({ "predictions": predictions }))
    }
}

export!(Iris);
