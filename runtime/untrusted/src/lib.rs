//! Model bytes a guest hands to wasi-nn `load` are hostile input to native
//! code: ONNX Runtime resolves an initializer's external data against the
//! server's working directory, and libxgboost indexes its arrays with the
//! numbers a model file gives it, unchecked. These checks run in safe Rust,
//! in time linear in the input and memory bounded by its nesting, before any
//! native library sees the bytes; a refusal names what was refused and why,
//! and nothing about the host.
//!
//! They close the classes of attack that are known to reach past a native
//! library's own checks. They do not make a native parser safe in general:
//! the host also runs guest-loaded models in a separate process (see the
//! runtime's `backend::isolated`), so that a crash the checks miss costs one
//! instance, never the server.

#![deny(missing_docs)]
#![deny(clippy::unwrap_used)]

pub mod onnx;
pub mod xgboost;
