//! sandscore's host: serves a WebAssembly scoring module and its models over
//! HTTP, with the module sandboxed in wasmtime and models reachable only
//! through wasi-nn.
//!
//! The data path, one folder per step:
//! [`http`] (routes) → [`codec`] (wire formats to tensors) → [`service`]
//! (who answers) → [`instance`] (the module's sandboxed instances) → [`nn`]
//! (the wasi-nn host) → [`backend`] (native runtimes) → and back out through
//! [`codec`].

pub mod admission;
pub mod backend;
pub mod blocking;
/// Wire formats (the `sandscore-codec` crate).
pub mod codec {
    pub use sandscore_codec::{query, v2};
}
pub mod config;
pub mod escape;
pub mod http;
pub mod instance;
pub mod metrics;
pub mod nn;
pub mod server;
pub mod service;
pub use sandscore_codec::tensor;

/// This build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The wasmtime release this build embeds (pinned in `runtime/Cargo.toml`).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// The WIT packages a module is checked against.
pub const WIT_PACKAGES: [&str; 2] = ["sandscore:scoring@0.1.0", "wasi:nn@0.2.0-rc-2024-10-28"];
