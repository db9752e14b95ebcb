//! Settings shared by `serve`, `score` and `check`, from flags or the
//! environment variables Azure ML users already set.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::instance::SandboxConfig;

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

    /// Instances that score in parallel (also ONNX Runtime sessions per model).
    #[arg(long, env = "WORKER_COUNT", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
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
    #[arg(long, env = "SANDSCORE_NO_CACHE")]
    pub no_cache: bool,

    /// Path of libonnxruntime.so [default: beside the binary, then ../lib].
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<PathBuf>,

    /// Threads ONNX Runtime uses inside one operator (0 = its default).
    #[arg(long, env = "SANDSCORE_INTRA_OP_THREADS", default_value_t = 1)]
    pub intra_op_threads: usize,

    /// ONNX Runtime graph optimisation: disable, basic, extended, layout, all.
    #[arg(long, env = "SANDSCORE_GRAPH_OPTIMIZATION", default_value = "all")]
    pub graph_optimization: String,
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
        }
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
