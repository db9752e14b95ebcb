//! `iris-sklearn`: a scikit-learn pipeline (StandardScaler +
//! LogisticRegression) exported with skl2onnx, ZipMap included, so ONNX-ML
//! operators run. The host surfaces ZipMap's per-row maps as an FP32
//! [rows, classes] tensor.
//!
//! `/score` takes `{"data": [[sepal_length, sepal_width, petal_length,
//! petal_width], …]}` and answers
//! `{"predictions": [{"label": k, "probabilities": [p0, p1, p2]}, …]}`.

use sandscore_guest::{Error, Model, Request, Response, Scorer, Tensor, export};
use serde::Deserialize;
use serde_json::json;

const MODEL: &str = "iris";

struct Iris;

#[derive(Deserialize)]
struct Input {
    data: Vec<[f32; 4]>,
}

impl Scorer for Iris {
    fn init() -> Result<(), String> {
        Model::by_name(MODEL).map(|_| ()).map_err(|e| e.message)
    }

    fn score(req: Request) -> Result<Response, Error> {
        let input: Input = req.json()?;
        if input.data.is_empty() {
            return Err(Error::bad_request(
                "'data' must hold at least one row of 4 measurements",
            ));
        }
        let rows = input.data.len();
        let flat: Vec<f32> = input.data.iter().flatten().copied().collect();
        let out = Model::by_name(MODEL)?.run(&[Tensor::new("input", &[rows as u32, 4], &flat)])?;
        let labels = Tensor::find(&out, "output_label")?.to_vec::<i64>()?;
        let probs = Tensor::find(&out, "output_probability")?.to_vec::<f32>()?;
        let width = probs.len() / rows;
        let predictions: Vec<_> = labels
            .iter()
            .zip(probs.chunks(width))
            .map(|(label, p)| json!({ "label": label, "probabilities": p }))
            .collect();
        Response::json(&json!({ "predictions": predictions }))
    }
}

export!(Iris);
