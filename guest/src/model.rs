//! Models through wasi-nn. Handles are cached per instance, so
//! `Model::by_name` in every request costs a map lookup after the first.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::bindings::wasi::nn::{errors, graph, inference, tensor};
use crate::{Error, ErrorCode, Tensor};

/// An opened model and its execution context.
pub struct Model {
    name: String,
    _graph: graph::Graph,
    context: inference::GraphExecutionContext,
}

thread_local! {
    static OPEN: RefCell<HashMap<String, Rc<Model>>> = RefCell::new(HashMap::new());
}

fn nn_error(model: &str, e: errors::Error) -> Error {
    let code = match e.code() {
        errors::ErrorCode::InvalidArgument => ErrorCode::BadRequest,
        errors::ErrorCode::NotFound => ErrorCode::NotFound,
        _ => ErrorCode::Internal,
    };
    Error {
        code,
        message: format!("model '{model}': {}", e.data()),
    }
}

impl Model {
    /// Opens a model the host preloaded from its model directory.
    pub fn by_name(name: &str) -> Result<Rc<Model>, Error> {
        if let Some(m) = OPEN.with(|o| o.borrow().get(name).cloned()) {
            return Ok(m);
        }
        let g = graph::load_by_name(name).map_err(|e| nn_error(name, e))?;
        let m = Rc::new(Model::from_graph(name, g)?);
        OPEN.with(|o| o.borrow_mut().insert(name.to_string(), Rc::clone(&m)));
        Ok(m)
    }

    /// Loads a model from bytes (e.g. an ONNX file the module carries).
    pub fn from_bytes(
        name: &str,
        bytes: &[u8],
        encoding: graph::GraphEncoding,
    ) -> Result<Model, Error> {
        let g = graph::load(&[bytes.to_vec()], encoding, graph::ExecutionTarget::Cpu)
            .map_err(|e| nn_error(name, e))?;
        Model::from_graph(name, g)
    }

    fn from_graph(name: &str, g: graph::Graph) -> Result<Model, Error> {
        let context = g.init_execution_context().map_err(|e| nn_error(name, e))?;
        Ok(Model {
            name: name.to_string(),
            _graph: g,
            context,
        })
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the model on named inputs and returns every output.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        let named: Vec<inference::NamedTensor> = inputs
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    tensor::Tensor::new(&t.shape, t.datatype, &t.data),
                )
            })
            .collect();
        let outputs = self
            .context
            .compute(named)
            .map_err(|e| nn_error(&self.name, e))?;
        Ok(outputs
            .into_iter()
            .map(|(name, t)| Tensor {
                name,
                shape: t.dimensions(),
                datatype: t.ty(),
                data: t.data(),
            })
            .collect())
    }
}
