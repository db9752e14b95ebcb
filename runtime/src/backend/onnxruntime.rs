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
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

use half::{bf16, f16};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{RunOptions, Session};
use ort::value::{DynValue, Tensor as OrtTensor, TensorElementType, ValueType};
use sandscore_untrusted::onnx::{self, Policy};

use super::{
    Backend, BackendError, Encoding, ExecutionContext, Graph, Target, TensorInfo, check_inputs,
};
use crate::tensor::{NamedTensor, Tensor, TensorType};

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

/// The places searched for the library, in order.
pub fn library_candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = explicit {
        out.push(p.to_path_buf());
        return out;
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        out.push(PathBuf::from(p));
        return out;
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        for d in [dir.clone(), dir.join("../lib")] {
            out.push(d.join(LIB_NAME));
            out.push(d.join(format!("{LIB_NAME}.1")));
        }
    }
    out
}

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
    let candidates = library_candidates(explicit);
    let Some(path) = candidates.iter().find(|p| p.exists()).cloned() else {
        let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "ONNX Runtime library not found (looked in: {}). Use the sandscore/onnxruntime-cpu \
             image, run `make ort` in the sandscore checkout, or set ORT_DYLIB_PATH to libonnxruntime.so.1.32.0 from the PyPI wheel \
             (pip download --no-deps onnxruntime==1.32.0; unzip it; the library is in onnxruntime/capi/)",
            looked.join(", ")
        ));
    };
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
    fn name(&self) -> &'static str {
        "onnxruntime"
    }

    fn platform(&self) -> &'static str {
        "onnxruntime_onnx"
    }

    fn encoding(&self) -> Encoding {
        Encoding::Onnx
    }

    fn version(&self) -> String {
        match self.ensure_loaded() {
            Ok(l) => library_version(&l.path).unwrap_or_else(|| l.path.display().to_string()),
            Err(e) => format!("not loaded: {e}"),
        }
    }

    fn recognizes(&self, path: &Path) -> bool {
        path.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
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
        let inputs = session
            .inputs()
            .iter()
            .map(|o| describe(o.name(), o.dtype()))
            .collect();
        let outputs = session
            .outputs()
            .iter()
            .map(|o| describe(o.name(), o.dtype()))
            .collect();
        Ok(Arc::new(OrtGraph {
            loaded,
            source,
            device,
            inputs,
            outputs,
            pool: SessionPool {
                idle: Mutex::new(PoolState {
                    sessions: vec![session],
                    created: 1,
                }),
                returned: Condvar::new(),
                max: self.options.max_sessions.max(1),
            },
        }))
    }
}

fn element_type(t: TensorElementType) -> Option<TensorType> {
    Some(match t {
        TensorElementType::Float16 => TensorType::Fp16,
        TensorElementType::Float32 => TensorType::Fp32,
        TensorElementType::Float64 => TensorType::Fp64,
        TensorElementType::Bfloat16 => TensorType::Bf16,
        TensorElementType::Uint8 => TensorType::U8,
        TensorElementType::Int32 => TensorType::I32,
        TensorElementType::Int64 => TensorType::I64,
        _ => return None,
    })
}

fn describe(name: &str, dtype: &ValueType) -> TensorInfo {
    let (ty, shape) = match dtype {
        ValueType::Tensor { ty, shape, .. } => (element_type(*ty), shape.iter().copied().collect()),
        // scikit-learn's ZipMap: a sequence of maps, surfaced as [N, classes].
        ValueType::Sequence(inner) if matches!(**inner, ValueType::Map { .. }) => {
            (Some(TensorType::Fp32), vec![-1, -1])
        }
        _ => (None, Vec::new()),
    };
    TensorInfo {
        name: name.to_string(),
        ty,
        shape,
        native_type: dtype.to_string(),
    }
}

struct PoolState {
    sessions: Vec<Session>,
    created: usize,
}

/// Sessions of one graph; a run takes one, creating it if the pool is not
/// yet at its size, or waits for one to come back.
struct SessionPool {
    idle: Mutex<PoolState>,
    returned: Condvar,
    max: usize,
}

struct OrtGraph {
    /// Used to create further sessions of this graph.
    loaded: Arc<Loaded>,
    source: Source,
    /// Where this graph's sessions run (after any fallback).
    device: Device,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    pool: SessionPool,
}

impl OrtGraph {
    fn take_session(&self) -> Result<Session, BackendError> {
        let poisoned = |_| BackendError::Runtime("session pool lock poisoned".into());
        let mut state = self.pool.idle.lock().map_err(poisoned)?;
        loop {
            if let Some(s) = state.sessions.pop() {
                return Ok(s);
            }
            if state.created < self.pool.max {
                state.created += 1;
                drop(state);
                let made = self.loaded.new_session(&self.source, self.device);
                if made.is_err()
                    && let Ok(mut st) = self.pool.idle.lock()
                {
                    st.created -= 1;
                }
                return made;
            }
            state = self.pool.returned.wait(state).map_err(poisoned)?;
        }
    }

    fn give_back(&self, session: Session) {
        if let Ok(mut state) = self.pool.idle.lock() {
            state.sessions.push(session);
        }
        self.pool.returned.notify_one();
    }

    fn run(
        &self,
        inputs: Vec<NamedTensor>,
        deadline: Option<Instant>,
    ) -> Result<Vec<NamedTensor>, BackendError> {
        check_inputs(&self.inputs, &inputs)?;
        let values = inputs
            .into_iter()
            .map(|i| Ok((i.name, to_value(i.tensor)?)))
            .collect::<Result<Vec<(String, DynValue)>, BackendError>>()?;
        let mut session = self.take_session()?;
        let result = run_session(&mut session, values, deadline);
        self.give_back(session);
        result
    }
}

/// Stops a run at its deadline through ORT's terminate flag: a timer on the
/// async runtime the call came from (a request's), cancelled when the run
/// ends first. Without a runtime (benchmarks, tools) there is no deadline.
struct Watchdog {
    options: Arc<RunOptions>,
    timer: Option<tokio::task::JoinHandle<()>>,
    deadline: Instant,
}

impl Watchdog {
    fn arm(deadline: Instant) -> Result<Self, BackendError> {
        let options = Arc::new(
            RunOptions::new().map_err(|e| BackendError::Runtime(format!("run options: {e}")))?,
        );
        let timer = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let flag = Arc::clone(&options);
            rt.spawn(async move {
                tokio::time::sleep_until(deadline.into()).await;
                if let Err(e) = flag.terminate() {
                    tracing::warn!("cannot stop an ONNX Runtime run at its deadline: {e}");
                }
            })
        });
        Ok(Watchdog {
            options,
            timer,
            deadline,
        })
    }

    /// Whether the run was (or would now be) stopped by the deadline.
    fn fired(&self) -> bool {
        self.timer.is_some() && Instant::now() >= self.deadline
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }
}

fn run_session(
    session: &mut Session,
    values: Vec<(String, DynValue)>,
    deadline: Option<Instant>,
) -> Result<Vec<NamedTensor>, BackendError> {
    let watchdog = deadline.map(Watchdog::arm).transpose()?;
    let outputs = match &watchdog {
        Some(w) => session.run_with_options(values, &*w.options),
        None => session.run(values),
    };
    let outputs = outputs.map_err(|e| match &watchdog {
        Some(w) if w.fired() => BackendError::Deadline,
        _ => BackendError::Runtime(e.to_string()),
    })?;
    outputs
        .into_iter()
        .map(|(name, value)| {
            Ok(NamedTensor {
                name: name.to_string(),
                tensor: from_value(name, &value)?,
            })
        })
        .collect()
}

impl Graph for OrtGraph {
    fn device(&self) -> String {
        match self.device {
            Device::Cpu => "cpu".into(),
            Device::Cuda(id) => format!("cuda:{id}"),
        }
    }

    fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    fn init_execution_context(self: Arc<Self>) -> Result<Box<dyn ExecutionContext>, BackendError> {
        Ok(Box::new(OrtContext { graph: self }))
    }
}

struct OrtContext {
    graph: Arc<OrtGraph>,
}

impl ExecutionContext for OrtContext {
    fn compute(&mut self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, BackendError> {
        self.graph.run(inputs, None)
    }

    fn compute_until(
        &mut self,
        inputs: Vec<NamedTensor>,
        deadline: Option<Instant>,
    ) -> Result<Vec<NamedTensor>, BackendError> {
        self.graph.run(inputs, deadline)
    }
}

/// Reads little-endian elements of `N` bytes.
fn elements<const N: usize, T>(data: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
        .collect()
}

fn to_value(t: Tensor) -> Result<DynValue, BackendError> {
    let shape: Vec<i64> = t.shape.iter().map(|&d| i64::from(d)).collect();
    let d = &t.data;
    let made =
        match t.ty {
            TensorType::Fp16 => OrtTensor::from_array((shape, elements(d, f16::from_le_bytes)))
                .map(|v| v.into_dyn()),
            TensorType::Fp32 => OrtTensor::from_array((shape, elements(d, f32::from_le_bytes)))
                .map(|v| v.into_dyn()),
            TensorType::Fp64 => OrtTensor::from_array((shape, elements(d, f64::from_le_bytes)))
                .map(|v| v.into_dyn()),
            TensorType::Bf16 => OrtTensor::from_array((shape, elements(d, bf16::from_le_bytes)))
                .map(|v| v.into_dyn()),
            TensorType::U8 => OrtTensor::from_array((shape, t.data.clone())).map(|v| v.into_dyn()),
            TensorType::I32 => OrtTensor::from_array((shape, elements(d, i32::from_le_bytes)))
                .map(|v| v.into_dyn()),
            TensorType::I64 => OrtTensor::from_array((shape, elements(d, i64::from_le_bytes)))
                .map(|v| v.into_dyn()),
        };
    made.map_err(|e| BackendError::InvalidInput(e.to_string()))
}

fn shape_u32(name: &str, shape: &[i64]) -> Result<Vec<u32>, BackendError> {
    shape
        .iter()
        .map(|&d| {
            u32::try_from(d).map_err(|_| {
                BackendError::Unsupported(format!("output '{name}' has dimension {d}"))
            })
        })
        .collect()
}

macro_rules! extract {
    ($name:expr, $value:expr, $elem:ty, $ty:expr) => {{
        let (shape, data) = $value
            .try_extract_tensor::<$elem>()
            .map_err(|e| BackendError::Runtime(e.to_string()))?;
        let mut bytes = Vec::with_capacity(std::mem::size_of_val(data));
        for x in data {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        Ok(Tensor {
            shape: shape_u32($name, shape)?,
            ty: $ty,
            data: bytes,
        })
    }};
}

fn from_value(name: &str, value: &DynValue) -> Result<Tensor, BackendError> {
    match value.dtype() {
        ValueType::Tensor { ty, .. } => match ty {
            TensorElementType::Float16 => extract!(name, value, f16, TensorType::Fp16),
            TensorElementType::Float32 => extract!(name, value, f32, TensorType::Fp32),
            TensorElementType::Float64 => extract!(name, value, f64, TensorType::Fp64),
            TensorElementType::Bfloat16 => extract!(name, value, bf16, TensorType::Bf16),
            TensorElementType::Uint8 => extract!(name, value, u8, TensorType::U8),
            TensorElementType::Int32 => extract!(name, value, i32, TensorType::I32),
            TensorElementType::Int64 => extract!(name, value, i64, TensorType::I64),
            other => Err(BackendError::Unsupported(format!(
                "output '{name}' is a {other:?} tensor, which wasi-nn cannot carry"
            ))),
        },
        ValueType::Sequence(inner) if matches!(**inner, ValueType::Map { .. }) => {
            zipmap_to_tensor(name, value)
        }
        other => Err(BackendError::Unsupported(format!(
            "output '{name}' is {other}, which wasi-nn cannot carry"
        ))),
    }
}

/// scikit-learn's ZipMap output (one `map<label, float>` per row) as an FP32
/// tensor [rows, classes], columns in ascending label order.
fn zipmap_to_tensor(name: &str, value: &DynValue) -> Result<Tensor, BackendError> {
    let err = |e: ort::Error| BackendError::Runtime(format!("output '{name}': {e}"));
    let rows = value
        .try_extract_sequence::<ort::value::DynMapValueType>()
        .map_err(err)?;
    let mut columns = 0usize;
    let mut data = Vec::new();
    for row in &rows {
        let mut probs: Vec<(i64, f32)> = match row.try_extract_key_values::<i64, f32>() {
            Ok(kv) => kv,
            Err(_) => {
                let mut kv = row.try_extract_key_values::<String, f32>().map_err(err)?;
                kv.sort_by(|a, b| a.0.cmp(&b.0));
                kv.into_iter()
                    .enumerate()
                    .map(|(i, (_, v))| (i as i64, v))
                    .collect()
            }
        };
        probs.sort_by_key(|(k, _)| *k);
        if columns != 0 && columns != probs.len() {
            return Err(BackendError::Runtime(format!(
                "output '{name}': rows have different class counts"
            )));
        }
        columns = probs.len();
        data.extend(probs.into_iter().flat_map(|(_, p)| p.to_le_bytes()));
    }
    Ok(Tensor {
        shape: vec![rows.len() as u32, columns as u32],
        ty: TensorType::Fp32,
        data,
    })
}
