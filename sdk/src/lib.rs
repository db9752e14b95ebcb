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
pub mod kserve;
pub mod kubernetes;
pub mod local;
pub mod python;
pub mod quantity;
pub mod registry;
pub mod requirements;
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
    /// A deployment file could not be read, parsed or accepted.
    #[error("cannot read deployment file {path}: {reason}")]
    Spec {
        /// The deployment file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The deployment, its files or its module failed validation; holds why.
    #[error("validation failed: {0}")]
    Invalid(String),
    /// The `sandscore` runtime binary could not be run, or its output not read.
    #[error("cannot start the runtime ({binary}): {reason}")]
    Runtime {
        /// The runtime binary that was run.
        binary: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// The deployment's port is already in use; holds the port.
    #[error(
        "port {0} is taken; pick another `port` in the deployment, or leave it out for a free one"
    )]
    PortTaken(u16),
    /// The deployed endpoint did not become ready; holds why, with the
    /// server's output.
    #[error("the endpoint did not become ready: {0}")]
    NotReady(String),
    /// No deployment of this name is in the store; holds the name.
    #[error("no deployment named '{0}'; `sandscore endpoints` lists them")]
    Unknown(String),
    /// A deployment of this name already exists; holds the name.
    #[error("a deployment named '{0}' exists; delete it first (`sandscore delete {0}`)")]
    Exists(String),
    /// The container engine (Docker, Podman) or `kubectl` is missing, failed,
    /// or cannot do what was asked; holds the step and what went wrong.
    #[error("{0}")]
    Engine(String),
    /// The deployment's image is not in the container engine's store.
    #[error(
        "image {image} is not in {engine}'s store; build it with `make images` (or pull it from your registry)"
    )]
    ImageMissing {
        /// The image reference (`name:tag`).
        image: String,
        /// The container engine that lacks it.
        engine: String,
    },
    /// An HTTP request to an endpoint failed or got a bad answer; holds why.
    #[error("{0}")]
    Http(String),
    /// The deployment state store (or a log file) could not be read or
    /// written; holds why.
    #[error("state store: {0}")]
    Store(String),
    /// Building a Python `score.py` into a module failed; holds why.
    #[error("{0}")]
    Python(String),
    /// Manifests were written but `kubectl apply` could not run; holds why
    /// and what to do.
    #[error("{0}")]
    NotApplied(String),
}
