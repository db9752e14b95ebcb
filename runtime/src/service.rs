//! The scoring service behind every front end (HTTP, `score`, `check`):
//! models, the module's instance pool, and the rule that decides who answers
//! a tensor request.

use std::path::Path;
use std::sync::Arc;

use crate::admission::{Admission, Overloaded};
use crate::backend::{BackendError, Backends};
use crate::config::RuntimeArgs;
use crate::instance::bindings::{GuestErrorCode, WitRequest, WitResponse};
use crate::instance::compile::{self, Origin};
use crate::instance::pool::{CallError, Pool};
use crate::instance::{self, Factory, InstanceError};
use crate::nn::registry::{ModelRegistry, RegistryError};
use crate::tensor::NamedTensor;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Models(#[from] RegistryError),
    #[error(transparent)]
    Instance(#[from] InstanceError),
}

impl From<compile::CompileError> for StartError {
    fn from(e: compile::CompileError) -> Self {
        StartError::Instance(e.into())
    }
}

/// Why a tensor request produced no outputs.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("model '{0}' is not loaded; GET /v2 lists the models")]
    UnknownModel(String),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
}

/// The loaded module, when there is one.
pub struct ModuleInfo {
    /// File stem of the module, its name in logs and metadata.
    pub name: String,
    /// Whether the compiled code came from a cache or was compiled now.
    pub origin: Origin,
    /// Whether it is a Python script built by `sandscore build`.
    pub python: bool,
}

/// A ready scoring service.
pub struct Service {
    pub models: Arc<ModelRegistry>,
    pub backends: Backends,
    pub pool: Option<Pool>,
    pub module: Option<ModuleInfo>,
    /// Largest response body sent, in bytes (`--max-response`).
    pub max_response_bytes: usize,
    /// Bounds direct (module-less) inference like the pool bounds guests.
    direct: Admission,
    /// How long one direct inference may run (`--timeout`).
    direct_timeout: std::time::Duration,
}

/// The backends compiled into this build, configured from `args`.
pub fn backends(args: &RuntimeArgs) -> Result<Backends, BackendError> {
    #[allow(unused_mut)]
    let mut list: Vec<Arc<dyn crate::backend::Backend>> = Vec::new();
    #[cfg(feature = "onnxruntime")]
    {
        use crate::backend::onnxruntime::{OnnxRuntime, OrtOptions};
        list.push(Arc::new(OnnxRuntime::new(OrtOptions {
            library: args.ort_lib.clone(),
            intra_op_threads: args.intra_op_threads,
            optimization: args.graph_optimization.clone(),
            max_sessions: args.workers as usize,
            gpu_device: args.gpu_device,
            gpu_mem_limit: (args.gpu_mem_limit_mb > 0).then_some(args.gpu_mem_limit_mb << 20),
            gpu_fallback: args.gpu_fallback == "cpu",
        })?));
    }
    #[cfg(feature = "tensorflow")]
    {
        use crate::backend::tensorflow::{TensorFlow, TfOptions};
        list.push(Arc::new(TensorFlow::new(TfOptions {
            library: args.tensorflow_lib.clone(),
            threads: args.intra_op_threads,
        })));
    }
    #[cfg(feature = "pytorch")]
    {
        use crate::backend::pytorch::{PyTorch, TorchOptions};
        list.push(Arc::new(PyTorch::new(TorchOptions {
            library: args.torch_lib.clone(),
            gpu_device: args.gpu_device,
            gpu_fallback: args.gpu_fallback == "cpu",
        })));
    }
    #[cfg(feature = "tflite")]
    {
        use crate::backend::tflite::{Tflite, TfliteOptions};
        list.push(Arc::new(Tflite::new(TfliteOptions {
            library: args.litert_lib.clone(),
        })));
    }
    #[cfg(feature = "xgboost")]
    {
        use crate::backend::xgboost::{XgBoost, XgbOptions};
        list.push(Arc::new(XgBoost::new(XgbOptions {
            library: args.xgboost_lib.clone(),
            threads: args.intra_op_threads,
        })));
    }
    Backends::new(list)
        .with_overrides(&args.model_backends)?
        .with_devices(&args.model_devices)
}

impl Service {
    /// Loads models, compiles and links the module, and starts its instances.
    /// Blocking: call it from a blocking thread.
    pub fn start(args: &RuntimeArgs) -> Result<Service, StartError> {
        let backends = backends(args)?;
        // Models and the module load side by side: neither needs the other
        // until they are linked.
        let sandbox = args.sandbox();
        let python = args.module.as_deref().is_some_and(compile::is_python);
        if python {
            python_fits(&sandbox)?;
        }
        let (models, compiled) = std::thread::scope(|s| {
            let module = args.module.as_ref().map(|path| {
                let sandbox = &sandbox;
                s.spawn(move || -> Result<_, StartError> {
                    let engine = instance::engine(sandbox)?;
                    let (component, origin) =
                        compile::load(&engine, path, args.cache().as_deref())?;
                    Ok((engine, component, origin))
                })
            });
            let models = match &args.model_dir {
                Some(dir) => ModelRegistry::load_dir(dir, &backends).map_err(StartError::from),
                None => Ok(ModelRegistry::default()),
            };
            let compiled = module.map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(StartError::Instance(InstanceError::Engine(
                        "the compiling thread panicked".into(),
                    )))
                })
            });
            (models, compiled)
        });
        let models = Arc::new(models?);
        let (pool, module) = match (compiled.transpose()?, &args.module) {
            (Some((engine, component, origin)), Some(path)) => {
                let factory = Factory::new(
                    engine,
                    &component,
                    Arc::clone(&models),
                    backends.clone(),
                    args.model_dir.as_deref(),
                    sandbox,
                )?;
                let pool = Pool::start(Arc::new(factory))?;
                let name = module_name(path);
                tracing::info!(module = %name, ?origin, workers = pool.size(), "module ready");
                (
                    Some(pool),
                    Some(ModuleInfo {
                        name,
                        origin,
                        python,
                    }),
                )
            }
            _ => (None, None),
        };
        for m in models.iter() {
            crate::metrics::metrics()
                .model_load_seconds
                .with_label_values(&[m.name.as_str()])
                .set(m.load_seconds);
        }
        Ok(Service {
            models,
            backends,
            pool,
            module,
            max_response_bytes: args.max_response_mb.saturating_mul(1 << 20),
            direct: Admission::new(args.workers as usize, args.max_queue),
            direct_timeout: std::time::Duration::from_millis(args.timeout_ms.max(1)),
        })
    }

    /// Scores one `/score` request through the module.
    pub async fn score(
        &self,
        request: WitRequest,
        request_id: String,
    ) -> Result<Option<WitResponse>, CallError> {
        match &self.pool {
            Some(pool) => pool.score(request, request_id).await.map(Some),
            None => Ok(None),
        }
    }

    /// Runs a tensor request for `model`: the module's `infer` answers when
    /// it implements it; otherwise (or without a module) the model runs
    /// directly, as Triton would.
    pub async fn infer(
        &self,
        model: &str,
        inputs: Vec<NamedTensor>,
        request_id: String,
    ) -> Result<Vec<NamedTensor>, InferError> {
        if let Some(pool) = &self.pool {
            match pool
                .infer(model.to_string(), inputs.clone(), request_id)
                .await
            {
                Err(CallError::Guest(e)) if e.code == GuestErrorCode::Unsupported => {}
                other => return other.map_err(InferError::from),
            }
        }
        let entry = self
            .models
            .get(model)
            .ok_or_else(|| InferError::UnknownModel(model.to_string()))?;
        let graph = Arc::clone(&entry.graph);
        let _slot = self.direct.enter().await?;
        let deadline = std::time::Instant::now() + self.direct_timeout;
        crate::blocking::run(move || run_direct(graph, inputs, deadline))
            .await
            .map_err(|e| {
                InferError::Backend(BackendError::Runtime(format!(
                    "inference thread failed: {e}"
                )))
            })?
    }
}

fn run_direct(
    graph: Arc<dyn crate::backend::Graph>,
    inputs: Vec<NamedTensor>,
    deadline: std::time::Instant,
) -> Result<Vec<NamedTensor>, InferError> {
    crate::backend::fenced(|| {
        graph
            .init_execution_context()?
            .compute_until(inputs, Some(deadline))
    })
    .map_err(InferError::from)
}

/// A module's display name: its file stem.
pub fn module_name(path: &Path) -> String {
    path.file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// A Python module's CPython starts with about 13.25 MiB of linear memory
/// (more when the script's imports leave more in the build-time snapshot)
/// and a 5686-element table; limits below these, with some headroom, fail
/// here with the reason rather than as a failed instantiation. Isolated
/// mode works, at a price worth saying.
fn python_fits(sandbox: &instance::SandboxConfig) -> Result<(), StartError> {
    const MEMORY: usize = 16 << 20;
    const TABLE: usize = 8192;
    if sandbox.memory_limit < MEMORY || sandbox.table_elements < TABLE {
        return Err(StartError::Instance(InstanceError::Instantiate(format!(
            "a Python module needs at least {} MiB of memory (--memory-limit, now {} MiB) and {TABLE} table elements (--table-elements, now {}): CPython alone starts with about 13.25 MiB and 5686 elements",
            MEMORY >> 20,
            sandbox.memory_limit >> 20,
            sandbox.table_elements
        ))));
    }
    if sandbox.isolation == instance::Isolation::Isolated {
        tracing::warn!(
            "isolated mode with a Python module: every request instantiates CPython's 13 MiB heap and runs init() again (about 1.5 ms and a fresh model handle per request); pooled mode keeps initialised instances warm"
        );
    }
    Ok(())
}
