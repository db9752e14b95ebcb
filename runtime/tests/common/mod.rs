//! A fake backend for in-process tests, and the service and router set up
//! over it.
//!
//! A model file `NAME.fake` holds one word that decides what the model
//! does: `echo` (its output `y` is its input `x`), `error` (a runtime
//! error), `panic` (the backend panics).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use sandscore_runtime::backend::formats::{Format, Looks};
use sandscore_runtime::backend::{
    Backend, BackendError, Backends, Encoding, Graph, Signature, Target, TensorInfo,
};
use sandscore_runtime::service::{Service, ServiceConfig};
use sandscore_runtime::tensor::{NamedTensor, TensorType};

/// The fake backend.
pub struct Fake;

struct FakeGraph {
    behaviour: String,
    /// Its inputs and outputs.
    signature: Signature,
}

fn info(name: &str) -> TensorInfo {
    TensorInfo {
        name: name.into(),
        ty: Some(TensorType::Fp32),
        shape: vec![-1],
        native_type: "float".into(),
    }
}

/// The fake format: `.fake` files.
static FAKE: Format = Format {
    backend: "fake",
    framework: "Fake",
    platform: "fake_platform",
    encoding: Encoding::Ggml,
    looks: Looks::Extension(&["fake"]),
};

impl Backend for Fake {
    fn format(&self) -> &'static Format {
        &FAKE
    }
    fn version(&self) -> String {
        "0".into()
    }
    fn load(&self, parts: &[&[u8]], _target: Target) -> Result<Arc<dyn Graph>, BackendError> {
        let behaviour = parts
            .first()
            .map(|p| String::from_utf8_lossy(p).trim().to_string())
            .unwrap_or_default();
        if behaviour == "unloadable" {
            return Err(BackendError::InvalidModel(
                "a fake model that never loads".into(),
            ));
        }
        Ok(Arc::new(FakeGraph {
            behaviour,
            signature: Signature {
                inputs: vec![info("x")],
                outputs: vec![info("y")],
            },
        }))
    }
}

impl Graph for FakeGraph {
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn compute(
        &self,
        inputs: Vec<NamedTensor>,
        _deadline: Option<Instant>,
    ) -> Result<Vec<NamedTensor>, BackendError> {
        match self.behaviour.as_str() {
            "echo" => Ok(inputs
                .into_iter()
                .map(|i| NamedTensor {
                    name: "y".into(),
                    tensor: i.tensor,
                })
                .collect()),
            "panic" => panic!("the fake backend panics"),
            other => Err(BackendError::Runtime(format!(
                "fake model '{other}' failed"
            ))),
        }
    }
}

/// A model directory of fake models, `(name, behaviour)` each; a new one
/// per call (tests run in parallel).
pub fn fake_models(tag: &str, models: &[(&str, &str)]) -> PathBuf {
    static MADE: AtomicUsize = AtomicUsize::new(0);
    let n = MADE.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "sandscore-inprocess-{tag}-{}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (name, behaviour) in models {
        std::fs::write(dir.join(format!("{name}.fake")), behaviour).expect("write");
    }
    dir
}

/// A guest module built by `make guests` (SANDSCORE_GUESTS, or the
/// workspace's target folder).
pub fn guest(name: &str) -> PathBuf {
    let built = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/wasm32-wasip2/guest");
    let dir = std::env::var("SANDSCORE_GUESTS").unwrap_or_else(|_| built.into());
    let path = PathBuf::from(dir).join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `make test`",
        path.display()
    );
    path
}

/// A service over the fake backend alone.
pub fn service(config: ServiceConfig) -> Service {
    Service::start_with(&config, Backends::new(vec![Arc::new(Fake)]))
        .unwrap_or_else(|e| panic!("the service did not start: {e}"))
}

/// An FP32 tensor named `name`.
pub fn fp32(name: &str, values: &[f32]) -> NamedTensor {
    NamedTensor {
        name: name.into(),
        tensor: sandscore_runtime::tensor::Tensor::new(
            vec![values.len() as u32],
            TensorType::Fp32,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
        .expect("tensor"),
    }
}
