//! sandscore's host as a library: serves a WebAssembly scoring module and
//! its models, with the module sandboxed in wasmtime and models reachable
//! only through wasi-nn. The `sandscore` command (`cli/`) is one program
//! over it; nothing here reads flags.
//!
//! The data path, one module per step, each naming only those after it:
//! [`server`] (connections) → [`http`] (routes; [`codec`] for wire
//! formats) → [`service`] (who answers; the only thing front ends see) →
//! [`instance`] (the module's sandboxed instances) → [`nn`] (the wasi-nn
//! host, on a view of the store) → [`models`] and [`backend`] (native
//! runtimes). [`wit`] holds the generated bindings both `instance` and
//! `nn` implement.

pub mod admission;
pub mod backend;
pub mod blocking;
/// Wire formats (the `sandscore-codec` crate).
pub mod codec {
    pub use sandscore_codec::{query, v2};
}
pub mod escape;
pub mod grpc;
pub mod http;
pub mod instance;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod proto;
pub mod reactor;
pub mod server;
pub mod service;
pub use sandscore_codec::tensor;
pub mod wit;

/// This build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The wasmtime release this build embeds (pinned in `runtime/Cargo.toml`).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// The WIT packages a module is checked against.
pub const WIT_PACKAGES: [&str; 2] = ["sandscore:scoring@0.1.0", "wasi:nn@0.2.0-rc-2024-10-28"];
