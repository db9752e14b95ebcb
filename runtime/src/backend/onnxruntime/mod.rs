//! ONNX Runtime through the `ort` crate, loaded at run time (`load-dynamic`).
//!
//! Why not wasmtime-wasi-nn's own ONNX backend: it pins an `ort` release
//! candidate, panics the host on any non-FP32 input, reads outputs as f32
//! only and serialises every request on one model behind one mutex. Here each
//! graph keeps a small pool of ONNX Runtime sessions (ORT's `Run` is not safe
//! to call concurrently on one session through `ort`), grown on demand up to
//! the number of workers, so concurrent requests on one model run in parallel
//! at the cost of one copy of the weights per concurrent session.
//!
//! The shared library is found, in order: `--ort-lib` / `ORT_DYLIB_PATH`,
//! beside the `sandscore` binary, then in `../lib` next to it (the image
//! layout). It is the `libonnxruntime.so` of the PyPI `onnxruntime` wheel
//! pinned in `deps/requirements.lock`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use sandscore_untrusted::onnx::{self, Policy};

use super::native::LibrarySpec;
use super::{Backend, BackendError, Graph, Target};
use crate::backend::formats::{self, Format};

mod graph;
mod values;
mod watchdog;

use graph::OrtGraph;

/// File name prefix of the ONNX Runtime shared library.
const LIB_NAME: &str = "libonnxruntime.so";

/// Session settings applied to every graph.
#[derive(Clone, Debug)]
pub struct OrtOptions {
    /// Explicit library path; `None` searches the default places.
    pub library: Option<PathBuf>,
    /// Threads ONNX Runtime uses inside one operator (0 = ORT's default).
    pub intra_op_threads: usize,
    /// Graph optimisation level: `disable`, `basic`, `extended`, `layout` or `all`.
    pub optimization: String,
    /// Most sessions (concurrent runs) per graph.
    pub max_sessions: usize,
    /// CUDA device for graphs whose target is `gpu`.
    pub gpu_device: i32,
    /// ONNX Runtime's CUDA arena limit per session, in bytes (`None`: no limit).
    pub gpu_mem_limit: Option<usize>,
    /// Run a `gpu` graph on the CPU (with a warning) when CUDA cannot be
    /// used, instead of failing its load.
    pub gpu_fallback: bool,
}

/// Where a graph's sessions run.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Device {
    Cpu,
    Cuda(i32),
}

impl Default for OrtOptions {
    fn default() -> Self {
        OrtOptions {
            library: None,
            intra_op_threads: 1,
            optimization: "all".into(),
            max_sessions: 1,
            gpu_device: 0,
            gpu_mem_limit: None,
            gpu_fallback: false,
        }
    }
}

/// Parses a graph optimisation level name.
pub fn parse_optimization(name: &str) -> Result<GraphOptimizationLevel, String> {
    Ok(match name {
        "disable" => GraphOptimizationLevel::Disable,
        "basic" => GraphOptimizationLevel::Level1,
        "extended" => GraphOptimizationLevel::Level2,
        "layout" => GraphOptimizationLevel::Level3,
        "all" => GraphOptimizationLevel::All,
        other => {
            return Err(format!(
                "unknown graph optimisation level '{other}'; use disable, basic, extended, layout or all"
            ));
        }
    })
}

/// Where the library is looked for: the PyPI wheel's
/// `onnxruntime/capi/libonnxruntime.so.1.32.0`, copied beside the binary.
pub const LIBRARY: LibrarySpec = LibrarySpec {
    framework: "ONNX Runtime",
    env: "ORT_DYLIB_PATH",
    relative: &[LIB_NAME, "libonnxruntime.so.1"],
    image: "sandscore/onnxruntime-cpu",
    make: "ort",
};

/// Loaded library state: the ORT environment, where it came from, and the
/// session settings every graph uses.
struct Loaded {
    env: ort::environment::Environment,
    path: PathBuf,
    level: GraphOptimizationLevel,
    intra_op_threads: usize,
    gpu_mem_limit: Option<usize>,
}

impl Loaded {
    fn new_session(&self, source: &Source, device: Device) -> Result<Session, BackendError> {
        let invalid = |e: ort::Error| BackendError::InvalidModel(e.to_string());
        let mut builder = Session::builder(&self.env)
            .map_err(invalid)?
            .with_optimization_level(self.level)
            .map_err(|e| invalid(e.into()))?;
        if self.intra_op_threads > 0 {
            builder = builder
                .with_intra_threads(self.intra_op_threads)
                .map_err(|e| invalid(e.into()))?;
        }
        if let Device::Cuda(id) = device {
            let mut cuda = ort::ep::CUDA::default().with_device_id(id);
            if let Some(limit) = self.gpu_mem_limit {
                cuda = cuda.with_memory_limit(limit);
            }
            // Never a silent CPU fallback: registration failing is an error.
            builder = builder
                .with_execution_providers([cuda.build().error_on_failure()])
                .map_err(|e| {
                    BackendError::Unavailable(format!(
                        "the model asks for the GPU (CUDA device {id}), and ONNX Runtime's CUDA provider could not start: {}. The provider (libonnxruntime_providers_cuda.so), the CUDA 13 libraries and the driver's libcuda.so.1 come with the sandscore/onnxruntime-gpu image on an NVIDIA host; or run it on the CPU with --gpu-fallback cpu",
                        ort::Error::<()>::from(e).to_string().trim_end().trim_end_matches('.')
                    ))
                })?;
        }
        match source {
            Source::Memory(bytes) => builder.commit_from_memory(bytes).map_err(invalid),
            Source::File(path) => builder.commit_from_file(path).map_err(invalid),
        }
    }
}

/// Where a graph's sessions are made from. A model with external data is
/// read from its file, so ONNX Runtime resolves the data against the
/// model's folder (where the check has confined it), never the server's
/// working directory; every other model from memory.
enum Source {
    Memory(Vec<u8>),
    File(PathBuf),
}

/// The ONNX Runtime backend. The library is loaded on first use, so a
/// deployment without ONNX models never needs it.
pub struct OnnxRuntime {
    options: OrtOptions,
    level: GraphOptimizationLevel,
    loaded: OnceLock<Result<Arc<Loaded>, String>>,
}

impl OnnxRuntime {
    /// A backend with these options; fails only on invalid options.
    pub fn new(options: OrtOptions) -> Result<Self, BackendError> {
        let level = parse_optimization(&options.optimization).map_err(BackendError::Unsupported)?;
        Ok(OnnxRuntime {
            options,
            level,
            loaded: OnceLock::new(),
        })
    }

    /// A plain ONNX Runtime session with exactly the options graphs get, for
    /// benchmarks and diagnostics that compare against native ORT.
    pub fn native_session(&self, model: &[u8]) -> Result<Session, BackendError> {
        self.ensure_loaded()?
            .new_session(&Source::Memory(model.to_vec()), Device::Cpu)
    }

    fn ensure_loaded(&self) -> Result<&Arc<Loaded>, BackendError> {
        self.loaded
            .get_or_init(|| {
                load_library(self.options.library.as_deref()).map(|(env, path)| {
                    Arc::new(Loaded {
                        env,
                        path,
                        level: self.level,
                        intra_op_threads: self.options.intra_op_threads,
                        gpu_mem_limit: self.options.gpu_mem_limit,
                    })
                })
            })
            .as_ref()
            .map_err(|e| BackendError::Unavailable(e.clone()))
    }
}

fn load_library(
    explicit: Option<&Path>,
) -> Result<(ort::environment::Environment, PathBuf), String> {
    let path = LIBRARY.find(explicit)?;
    let env = ort::init_from(&path)
        .map_err(|e| format!("cannot load ONNX Runtime: {e}"))?
        .with_name("sandscore")
        // A scoring host does not report models or usage to anyone.
        .with_telemetry(false)
        .build()
        .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", path.display()))?;
    tracing::info!(library = %path.display(), "ONNX Runtime loaded");
    Ok((env, path))
}

/// The version string the library reports (`OrtGetApiBase()->GetVersionString()`).
fn library_version(path: &Path) -> Option<String> {
    // SAFETY: the library is already loaded by ort (this only takes another
    // reference), and `OrtGetApiBase` has had this signature since ORT 1.0.
    unsafe {
        let lib = libloading::Library::new(path).ok()?;
        let get: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
            lib.get(b"OrtGetApiBase").ok()?;
        let base = get();
        if base.is_null() {
            return None;
        }
        let v = ((*base).GetVersionString)();
        if v.is_null() {
            return None;
        }
        Some(std::ffi::CStr::from_ptr(v).to_string_lossy().into_owned())
    }
}

impl Backend for OnnxRuntime {
    fn format(&self) -> &'static Format {
        &formats::ONNX
    }

    fn version(&self) -> String {
        match self.ensure_loaded() {
            Ok(l) => library_version(&l.path).unwrap_or_else(|| l.path.display().to_string()),
            Err(e) => format!("not loaded: {e}"),
        }
    }

    fn sniff(&self, bytes: &[u8]) -> bool {
        // A ModelProto starts with field 1, ir_version (a varint): tag 0x08.
        bytes.first() == Some(&0x08)
    }

    fn load(&self, parts: &[&[u8]], target: Target) -> Result<Arc<dyn Graph>, BackendError> {
        let [bytes] = parts else {
            return Err(BackendError::InvalidModel(format!(
                "an ONNX graph is one builder, got {}",
                parts.len()
            )));
        };
        onnx::check(bytes, Policy::Inline).map_err(refused)?;
        self.load_source(Source::Memory(bytes.to_vec()), target)
    }

    fn load_path(&self, path: &Path, target: Target) -> Result<Arc<dyn Graph>, BackendError> {
        let bytes = std::fs::read(path)
            .map_err(|e| BackendError::InvalidModel(format!("{}: {e}", path.display())))?;
        let folder = onnx::folder_of(path);
        let facts = onnx::check(&bytes, Policy::Within(&folder)).map_err(refused)?;
        let source = if facts.external_tensors > 0 {
            Source::File(path.to_path_buf())
        } else {
            Source::Memory(bytes)
        };
        self.load_source(source, target)
    }
}

fn refused(e: onnx::OnnxError) -> BackendError {
    BackendError::InvalidModel(e.to_string())
}

impl OnnxRuntime {
    fn load_source(&self, source: Source, target: Target) -> Result<Arc<dyn Graph>, BackendError> {
        let wanted = match target {
            Target::Cpu => Device::Cpu,
            Target::Gpu => Device::Cuda(self.options.gpu_device),
            Target::Tpu => {
                return Err(BackendError::Unsupported(
                    "execution target tpu is not available for ONNX Runtime; use cpu or gpu".into(),
                ));
            }
        };
        let loaded = Arc::clone(self.ensure_loaded()?);
        let (session, device) = match loaded.new_session(&source, wanted) {
            Ok(s) => (s, wanted),
            Err(BackendError::Unavailable(why)) if self.options.gpu_fallback => {
                tracing::warn!(reason = %why, "GPU unavailable; running the model on the CPU (--gpu-fallback cpu)");
                (loaded.new_session(&source, Device::Cpu)?, Device::Cpu)
            }
            Err(e) => return Err(e),
        };
        Ok(Arc::new(OrtGraph::new(
            loaded,
            source,
            device,
            session,
            self.options.max_sessions,
        )))
    }
}
