//! Deploying scoring modules, the way Azure ML users deploy with an SDK:
//! describe a deployment (in code or a `sandscore.toml`), validate it, deploy
//! it to a target, then invoke it, read its logs and delete it.
//!
//! The SDK drives the `sandscore` runtime binary (`check --format json`
//! to validate ([`check`]),
//! `serve` to run), so it needs nothing of the runtime's internals and works
//! against any installed runtime. Targets: [`local`] processes,
//! [`container`]s of the prebuilt images, and [`kubernetes`] manifests
//! (a Deployment, or a KServe runtime and InferenceService). [`scaffold`]
//! starts a new module project; [`python`] builds an Azure ML `score.py`
//! into a module. State of deployments lives in a small
//! store ([`store`]) so a later process can list and delete them.

pub mod check;
pub mod container;
pub mod endpoint;
mod http;
pub mod images;
pub mod kubernetes;
pub mod local;
pub mod python;
pub mod quantity;
pub mod scaffold;
pub mod spec;
pub mod store;
pub mod target;

pub use endpoint::Endpoint;
pub use spec::Deployment;

use std::path::PathBuf;

/// What went wrong, naming the step and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("cannot read deployment file {path}: {reason}")]
    Spec { path: PathBuf, reason: String },
    #[error("validation failed: {0}")]
    Invalid(String),
    #[error("cannot start the runtime ({binary}): {reason}")]
    Runtime { binary: PathBuf, reason: String },
    #[error(
        "port {0} is taken; pick another `port` in the deployment, or leave it out for a free one"
    )]
    PortTaken(u16),
    #[error("the endpoint did not become ready: {0}")]
    NotReady(String),
    #[error("no deployment named '{0}'; `sandscore endpoints` lists them")]
    Unknown(String),
    #[error("a deployment named '{0}' exists; delete it first (`sandscore delete {0}`)")]
    Exists(String),
    #[error("{0}")]
    Engine(String),
    #[error(
        "image {image} is not in {engine}'s store; build it with `make images` (or pull it from your registry)"
    )]
    ImageMissing { image: String, engine: String },
    #[error("{0}")]
    Http(String),
    #[error("state store: {0}")]
    Store(String),
    #[error("{0}")]
    Python(String),
}
