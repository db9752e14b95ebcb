//! Guest SDK for sandscore scoring modules.
//!
//! A scoring module is the WebAssembly equivalent of an Azure ML `score.py`:
//! `init` runs once per instance, `score` answers each `/score` request, and
//! `infer` optionally answers Open Inference Protocol V2 tensor requests. The
//! module reaches models only through wasi-nn; [`Model::by_name`] opens one of
//! the models the host preloaded from its model directory.
//!
//! Build with `cargo build --target wasm32-wasip2` as a `cdylib`.
//!
//! ```rust,ignore
//! use sandscore_guest::{Error, Model, Request, Response, Scorer, Tensor, export};
//!
//! struct Classifier;
//!
//! impl Scorer for Classifier {
//!     fn init() -> Result<(), String> {
//!         // Fail fast if the model is missing: the host refuses to start.
//!         Model::by_name("mlp").map(|_| ()).map_err(|e| e.message)
//!     }
//!
//!     fn score(req: Request) -> Result<Response, Error> {
//!         #[derive(serde::Deserialize)]
//!         struct Input { data: Vec<Vec<f32>> }
//!         let input: Input = req.json()?;                   // 400 on bad JSON
//!         let rows = input.data.len() as u32;
//!         let cols = input.data.first().map_or(0, Vec::len) as u32;
//!         let x = Tensor::new("input", &[rows, cols], &input.data.concat());
//!         let out = Model::by_name("mlp")?.run(&[x])?;       // wasi-nn compute
//!         let probs: Vec<f32> = Tensor::find(&out, "probabilities")?.to_vec()?;
//!         Response::json(&serde_json::json!({ "probabilities": probs }))
//!     }
//! }
//!
//! export!(Classifier);
//! ```

mod model;
mod tensor;

/// Raw bindings of the `sandscore:scoring/scorer` world (spec/wit).
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "scorer",
        path: "../spec/wit",
        pub_export_macro: true,
        export_macro_name: "__export_scorer_world",
        default_bindings_module: "sandscore_guest::bindings",
        generate_all,
    });
}

pub use bindings::sandscore::scoring::logging::Level;
pub use bindings::sandscore::scoring::types::{
    Error, ErrorCode, NamedTensor as Tensor, Request, Response,
};
pub use bindings::wasi::nn::tensor::TensorType;
pub use model::Model;
pub use tensor::Element;

/// What a scoring module implements. Only `score` is required.
pub trait Scorer {
    /// Runs once per instance before its first request. An `Err` stops the
    /// server from starting, with the message.
    fn init() -> Result<(), String> {
        Ok(())
    }

    /// Answers one `/score` request.
    fn score(req: Request) -> Result<Response, Error>;

    /// Answers one V2 tensor request for `model`. The default says
    /// "unsupported", and the host then runs the model directly.
    fn infer(model: &str, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        let _ = inputs;
        Err(Error::unsupported(format!(
            "this module does not handle tensor requests for '{model}'"
        )))
    }
}

/// Exports a [`Scorer`] implementation as the module's entry points.
#[macro_export]
macro_rules! export {
    ($ty:ty) => {
        const _: () = {
            struct __SandscoreExport;
            impl $crate::bindings::Guest for __SandscoreExport {
                fn init() -> ::core::result::Result<(), ::std::string::String> {
                    <$ty as $crate::Scorer>::init()
                }
                fn score(req: $crate::Request) -> ::core::result::Result<$crate::Response, $crate::Error> {
                    <$ty as $crate::Scorer>::score(req)
                }
                fn infer(
                    model: ::std::string::String,
                    inputs: ::std::vec::Vec<$crate::Tensor>,
                ) -> ::core::result::Result<::std::vec::Vec<$crate::Tensor>, $crate::Error> {
                    <$ty as $crate::Scorer>::infer(&model, inputs)
                }
            }
            $crate::bindings::__export_scorer_world!(__SandscoreExport with_types_in $crate::bindings);
        };
    };
}

impl Error {
    fn with(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }

    /// The request is malformed or does not fit the model (HTTP 400).
    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::with(ErrorCode::BadRequest, message)
    }

    /// Something the request names does not exist (HTTP 404).
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::with(ErrorCode::NotFound, message)
    }

    /// The content type is not accepted (HTTP 415).
    pub fn unsupported_media_type(message: impl Into<String>) -> Error {
        Error::with(ErrorCode::UnsupportedMediaType, message)
    }

    /// The entry point is not implemented.
    pub fn unsupported(message: impl Into<String>) -> Error {
        Error::with(ErrorCode::Unsupported, message)
    }

    /// The module failed (HTTP 500).
    pub fn internal(message: impl Into<String>) -> Error {
        Error::with(ErrorCode::Internal, message)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::bad_request(format!("invalid JSON: {e}"))
    }
}

impl Request {
    /// The body parsed as JSON; a parse error becomes HTTP 400.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        if !self.content_type.is_empty() && !self.content_type.to_ascii_lowercase().contains("json")
        {
            return Err(Error::unsupported_media_type(format!(
                "content type '{}' is not JSON",
                self.content_type
            )));
        }
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body)
            .map_err(|e| Error::bad_request(format!("body is not UTF-8: {e}")))
    }

    /// The first value of a header (names are lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Response {
    /// A 200 response with a JSON body.
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Response, Error> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::internal(format!("cannot encode JSON: {e}")))?;
        Ok(Response {
            status: 200,
            body,
            content_type: "application/json".into(),
        })
    }

    /// A response with any status, body and content type.
    pub fn new(status: u16, body: impl Into<Vec<u8>>, content_type: impl Into<String>) -> Response {
        Response {
            status,
            body: body.into(),
            content_type: content_type.into(),
        }
    }
}

/// Writes a log line through the host, tagged with the request id.
pub fn log(level: Level, message: &str) {
    bindings::sandscore::scoring::logging::log(level, message);
}
