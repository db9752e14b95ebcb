//! The benchmark's scoring module, the same work the peers' `score.py` does:
//! `/score` takes `{"model": NAME, "data": [[f32…], …]}`, runs the model's
//! first input on those rows and answers `{"outputs": [[…], …]}` (the first
//! output, row by row); V2 `infer` passes tensors straight through.

use sandscore_guest::{Error, Model, Request, Response, Scorer, Tensor, export};
use serde::Deserialize;
use serde_json::json;

struct Bench;

#[derive(Deserialize)]
struct Input {
    model: String,
    input: String,
    data: Vec<Vec<f32>>,
}

impl Scorer for Bench {
    fn score(req: Request) -> Result<Response, Error> {
        let input: Input = req.json()?;
        let rows = input.data.len();
        let cols = input.data.first().map_or(0, Vec::len);
        let x = Tensor::new(
            input.input,
            &[rows as u32, cols as u32],
            &input.data.concat(),
        );
        let out = Model::by_name(&input.model)?.run(&[x])?;
        let first = out
            .first()
            .ok_or_else(|| Error::internal("the model has no outputs"))?;
        let values = first.to_vec::<f32>()?;
        let width = values.len() / rows.max(1);
        let rows: Vec<&[f32]> = values.chunks(width.max(1)).collect();
        Response::json(&json!({ "outputs": rows }))
    }

    fn infer(model: &str, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        Model::by_name(model)?.run(&inputs)
    }
}

export!(Bench);
