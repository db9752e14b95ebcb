//! TensorFlow SavedModels through TensorFlow's C API, with
//! `libtensorflow_cc.so.2` (and `libtensorflow_framework.so.2` beside it)
//! from the pinned `tensorflow-cpu` wheel, or the `tensorflow` wheel's CUDA
//! build in the GPU image ([`device`] places a session), loaded at run
//! time.
//!
//! A model is a SavedModel folder in the model directory (the folder that
//! holds `saved_model.pb`), loaded with the `serve` tag; its tensors are the
//! `serving_default` signature's inputs and outputs, by their signature
//! names. A graph is one TF session: `TF_SessionRun` is thread safe, so
//! concurrent contexts share it. The library is found at `--tensorflow-lib`,
//! `TENSORFLOW_LIB_PATH`, then `tensorflow/libtensorflow_cc.so.2` beside the
//! binary or in `../lib`.

mod api;
mod device;
mod signature;

use std::ffi::{CString, c_int};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use prost::Message;

use self::api::{Api, Output, StatusBox};
use super::native::{Lazy, LibrarySpec};
use super::{Backend, BackendError, Graph, Signature, Target, TensorInfo, check_inputs};
use crate::backend::formats::{self, Format};
use crate::tensor::{NamedTensor, Tensor, TensorType};

/// Where the library is looked for.
pub const LIBRARY: LibrarySpec = LibrarySpec {
    framework: "TensorFlow",
    env: "TENSORFLOW_LIB_PATH",
    relative: &["tensorflow/libtensorflow_cc.so.2"],
    image: "sandscore/tensorflow-cpu",
    make: "tensorflow",
};

/// Settings applied to every session.
#[derive(Clone, Debug, Default)]
pub struct TfOptions {
    /// Explicit library path; `None` searches the default places.
    pub library: Option<PathBuf>,
    /// Threads inside one operation (0 = TensorFlow's default).
    pub threads: usize,
    /// The CUDA device `gpu` models run on.
    pub gpu_device: i32,
    /// Run a `gpu` model on the CPU (with a warning) when TensorFlow sees
    /// no GPU, instead of refusing it.
    pub gpu_fallback: bool,
}

/// The TensorFlow backend; the library (~850 MB) is loaded on first use.
pub struct TensorFlow {
    options: TfOptions,
    api: Lazy<Api>,
}

impl TensorFlow {
    /// A backend with these options; nothing is loaded until first use.
    pub fn new(options: TfOptions) -> Self {
        TensorFlow {
            options,
            api: Lazy::default(),
        }
    }

    fn api(&self) -> Result<&Arc<Api>, BackendError> {
        self.api
            .get(&LIBRARY, self.options.library.as_deref(), Api::open)
    }
}

/// TF_DataType ↔ wasi-nn tensor type.
fn from_tf(dtype: c_int) -> Option<TensorType> {
    Some(match dtype {
        1 => TensorType::Fp32,
        2 => TensorType::Fp64,
        3 => TensorType::I32,
        4 => TensorType::U8,
        9 => TensorType::I64,
        14 => TensorType::Bf16,
        19 => TensorType::Fp16,
        10 => TensorType::Bool,
        6 => TensorType::I8,
        5 => TensorType::I16,
        17 => TensorType::U16,
        22 => TensorType::U32,
        23 => TensorType::U64,
        _ => return None,
    })
}

/// TensorFlow's code for a type; `None` for BYTES, which sandscore does not
/// hand TensorFlow (its string tensors are laid out otherwise).
fn to_tf(ty: TensorType) -> Option<c_int> {
    Some(match ty {
        TensorType::Fp32 => 1,
        TensorType::Fp64 => 2,
        TensorType::I32 => 3,
        TensorType::U8 => 4,
        TensorType::I64 => 9,
        TensorType::Bf16 => 14,
        TensorType::Fp16 => 19,
        TensorType::Bool => 10,
        TensorType::I8 => 6,
        TensorType::I16 => 5,
        TensorType::U16 => 17,
        TensorType::U32 => 22,
        TensorType::U64 => 23,
        TensorType::Bytes => return None,
    })
}

impl Backend for TensorFlow {
    fn format(&self) -> &'static Format {
        &formats::TENSORFLOW
    }

    fn version(&self) -> String {
        match self.api() {
            // SAFETY: TF_Version returns a static C string.
            Ok(api) => unsafe { std::ffi::CStr::from_ptr((api.version)()) }
                .to_string_lossy()
                .into_owned(),
            Err(e) => format!("not loaded: {e}"),
        }
    }

    /// A SavedModel from bytes is three builders, its files in this order:
    /// `saved_model.pb`, `variables/variables.index`,
    /// `variables/variables.data-00000-of-00001`. They are written to a
    /// private temporary folder that TensorFlow reads once.
    fn load(&self, parts: &[&[u8]], target: Target) -> Result<Arc<dyn Graph>, BackendError> {
        let [pb, index, data] = parts else {
            return Err(BackendError::InvalidModel(format!(
                "a SavedModel from bytes is three builders (saved_model.pb, variables.index, variables.data-00000-of-00001), got {}; or put the folder in the model directory and load it by name",
                parts.len()
            )));
        };
        let io =
            |e: std::io::Error| BackendError::InvalidModel(format!("staging the SavedModel: {e}"));
        let dir = tempfile::tempdir().map_err(io)?;
        std::fs::create_dir(dir.path().join("variables")).map_err(io)?;
        for (rel, bytes) in [
            ("saved_model.pb", pb),
            ("variables/variables.index", index),
            ("variables/variables.data-00000-of-00001", data),
        ] {
            std::fs::write(dir.path().join(rel), bytes).map_err(io)?;
        }
        self.load_path(&dir.path().join("saved_model.pb"), target)
    }

    /// A `gpu` model's session must see a GPU: without one the load fails
    /// saying why, or runs on the CPU under `--gpu-fallback cpu`.
    fn load_path(&self, path: &Path, target: Target) -> Result<Arc<dyn Graph>, BackendError> {
        match target {
            Target::Cpu => Ok(Arc::new(self.open(path, false)?)),
            Target::Tpu => Err(BackendError::Unsupported(
                "execution target tpu is not available for TensorFlow; use cpu or gpu".into(),
            )),
            Target::Gpu => {
                let graph = self.open(path, true)?;
                // SAFETY: the graph owns a live session.
                let gpus = unsafe { device::gpus(&graph.api, graph.session) }.unwrap_or(0);
                if gpus > 0 {
                    return Ok(Arc::new(graph));
                }
                drop(graph);
                let why = device::no_gpu(self.options.gpu_device);
                if !self.options.gpu_fallback {
                    return Err(BackendError::Unavailable(why));
                }
                tracing::warn!(reason = %why, "GPU unavailable; running the model on the CPU (--gpu-fallback cpu)");
                Ok(Arc::new(self.open(path, false)?))
            }
        }
    }
}

impl TensorFlow {
    /// Loads the SavedModel at `path` into a session on the CPU, or
    /// `on_gpu` on CUDA device `--gpu-device`.
    fn open(&self, path: &Path, on_gpu: bool) -> Result<TfGraph, BackendError> {
        let id = self.options.gpu_device;
        let api = Arc::clone(self.api()?);
        let dir = path.parent().unwrap_or(Path::new("."));
        let invalid = BackendError::InvalidModel;
        let export_dir =
            CString::new(dir.to_string_lossy().as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let status = StatusBox::new(&api);
        // SAFETY: every handle below is created here and owned by `TfGraph`
        // (or freed before returning on failure); pointers passed to the C
        // API outlive the calls.
        unsafe {
            let graph = (api.new_graph)();
            let mut owned = TfGraph {
                api: Arc::clone(&api),
                graph,
                device: if on_gpu {
                    format!("cuda:{id}")
                } else {
                    "cpu".into()
                },
                session: std::ptr::null_mut(),
                signature: Signature::default(),
                feeds: Vec::new(),
                fetches: Vec::new(),
            };
            let options = (api.new_session_options)();
            let proto = device::config(self.options.threads, on_gpu, id);
            (api.set_config)(options, proto.as_ptr().cast(), proto.len(), status.ptr);
            if let Err(e) = status.check() {
                (api.delete_session_options)(options);
                return Err(BackendError::Runtime(format!("session options: {e}")));
            }
            let meta = (api.new_buffer)();
            let tags = [c"serve".as_ptr()];
            let session = (api.load_saved_model)(
                options,
                std::ptr::null(),
                export_dir.as_ptr(),
                tags.as_ptr(),
                1,
                graph,
                meta,
                status.ptr,
            );
            (api.delete_session_options)(options);
            owned.session = session;
            let loaded = status.check();
            let bytes = if (*meta).data.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts((*meta).data.cast::<u8>(), (*meta).length).to_vec()
            };
            (api.delete_buffer)(meta);
            loaded.map_err(invalid)?;
            let meta = signature::MetaGraphDef::decode(bytes.as_slice())
                .map_err(|e| invalid(format!("MetaGraphDef: {e}")))?;
            let (_, sig) = signature::serving(&meta).map_err(invalid)?;
            let mut ins: Vec<_> = sig.inputs.iter().collect();
            let mut outs: Vec<_> = sig.outputs.iter().collect();
            ins.sort_by_key(|(k, _)| k.as_str());
            outs.sort_by_key(|(k, _)| k.as_str());
            for (key, info) in ins {
                owned.signature.inputs.push(describe(key, info));
                owned
                    .feeds
                    .push(resolve(&api, graph, &info.name).map_err(invalid)?);
            }
            for (key, info) in outs {
                owned.signature.outputs.push(describe(key, info));
                owned
                    .fetches
                    .push(resolve(&api, graph, &info.name).map_err(invalid)?);
            }
            Ok(owned)
        }
    }
}

fn describe(key: &str, info: &signature::TensorInfo) -> TensorInfo {
    let shape = info
        .tensor_shape
        .as_ref()
        .map(|s| s.dim.iter().map(|d| d.size).collect())
        .unwrap_or_default();
    TensorInfo {
        name: key.to_string(),
        ty: from_tf(info.dtype),
        shape,
        native_type: format!("DataType {} ({})", info.dtype, info.name),
    }
}

/// `op:index` → a graph output.
///
/// # Safety
/// `graph` must be live.
unsafe fn resolve(api: &Api, graph: *mut api::GraphH, name: &str) -> Result<Output, String> {
    let (op, index) = name.rsplit_once(':').unwrap_or((name, "0"));
    let index: c_int = index
        .parse()
        .map_err(|_| format!("bad tensor name {name}"))?;
    let op_c = CString::new(op).map_err(|e| e.to_string())?;
    // SAFETY: the caller keeps `graph` live; the name is a C string.
    let oper = unsafe { (api.operation_by_name)(graph, op_c.as_ptr()) };
    if oper.is_null() {
        return Err(format!("the signature names {name}, which the graph lacks"));
    }
    Ok(Output { oper, index })
}

/// A loaded SavedModel: graph, session, and the signature's tensors.
struct TfGraph {
    api: Arc<Api>,
    graph: *mut api::GraphH,
    /// `cpu` or `cuda:N`.
    device: String,
    session: *mut api::Session,
    /// Its inputs and outputs.
    signature: Signature,
    feeds: Vec<Output>,
    fetches: Vec<Output>,
}

// SAFETY: TF_SessionRun may be called from many threads on one session, and
// the graph is only read after loading.
unsafe impl Send for TfGraph {}
unsafe impl Sync for TfGraph {}

impl Drop for TfGraph {
    fn drop(&mut self) {
        let status = StatusBox::new(&self.api);
        // SAFETY: handles created in `load_path`, each freed once.
        unsafe {
            if !self.session.is_null() {
                (self.api.close_session)(self.session, status.ptr);
                (self.api.delete_session)(self.session, status.ptr);
            }
            (self.api.delete_graph)(self.graph);
        }
    }
}

impl Graph for TfGraph {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn device(&self) -> String {
        self.device.clone()
    }

    fn compute(
        &self,
        inputs: Vec<NamedTensor>,
        deadline: Option<Instant>,
    ) -> Result<Vec<NamedTensor>, BackendError> {
        let options = match deadline {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(BackendError::Deadline);
                }
                Some(run_options(
                    u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1),
                ))
            }
            None => None,
        };
        let options = options.as_ref().map(|proto| api::Buffer {
            data: proto.as_ptr().cast(),
            length: proto.len(),
            deallocator: None,
        });
        let g = self;
        let api = &*g.api;
        check_inputs(&g.signature.inputs, &inputs)?;
        let runtime = |e: String| BackendError::Runtime(e);
        // Feed in the graph's declared order.
        let mut fed = Owned(api, Vec::with_capacity(g.signature.inputs.len()));
        for info in &g.signature.inputs {
            let t = inputs
                .iter()
                .find(|i| i.name == info.name)
                .map(|i| &i.tensor)
                .ok_or_else(|| {
                    BackendError::InvalidInput(format!("missing input '{}'", info.name))
                })?;
            let dims: Vec<i64> = t.shape.iter().map(|&d| i64::from(d)).collect();
            let ty = to_tf(t.ty).ok_or_else(|| {
                BackendError::Unsupported(format!("input '{}' is {}", info.name, t.ty))
            })?;
            // SAFETY: TensorFlow allocates `len` bytes, filled before use.
            unsafe {
                let tensor =
                    (api.allocate_tensor)(ty, dims.as_ptr(), dims.len() as c_int, t.data.len());
                if tensor.is_null() {
                    return Err(runtime(format!("cannot allocate input '{}'", info.name)));
                }
                fed.1.push(tensor);
                if !t.data.is_empty() {
                    let dst = (api.tensor_data)(tensor).cast::<u8>();
                    std::ptr::copy_nonoverlapping(t.data.as_ptr(), dst, t.data.len());
                }
            }
        }
        let mut got = Owned(api, vec![std::ptr::null_mut(); g.fetches.len()]);
        let status = StatusBox::new(api);
        // SAFETY: arrays sized as passed; outputs become ours (freed by `got`).
        unsafe {
            (api.session_run)(
                g.session,
                options
                    .as_ref()
                    .map_or(std::ptr::null(), |b| b as *const api::Buffer),
                g.feeds.as_ptr(),
                fed.1.as_ptr(),
                fed.1.len() as c_int,
                g.fetches.as_ptr(),
                got.1.as_mut_ptr(),
                got.1.len() as c_int,
                std::ptr::null(),
                0,
                std::ptr::null_mut(),
                status.ptr,
            );
        }
        if options.is_some() && status.deadline_exceeded() {
            return Err(BackendError::Deadline);
        }
        status.check().map_err(runtime)?;
        let mut out = Vec::with_capacity(g.signature.outputs.len());
        for (info, &t) in g.signature.outputs.iter().zip(&got.1) {
            // SAFETY: `t` is a live output tensor owned by `got`.
            let (ty, shape, bytes) = unsafe {
                let ty = (api.tensor_type)(t);
                let dims = (0..(api.num_dims)(t))
                    .map(|i| u32::try_from((api.dim)(t, i)).unwrap_or(0))
                    .collect::<Vec<u32>>();
                let len = (api.tensor_byte_size)(t);
                let data = (api.tensor_data)(t).cast::<u8>();
                (ty, dims, crate::backend::native::copied(data, len))
            };
            let ty = from_tf(ty).ok_or_else(|| {
                BackendError::Unsupported(format!(
                    "output '{}' has TensorFlow type {ty}, which wasi-nn cannot carry",
                    info.name
                ))
            })?;
            let tensor = Tensor::new(shape, ty, bytes).map_err(|e| runtime(e.to_string()))?;
            out.push(NamedTensor {
                name: info.name.clone(),
                tensor,
            });
        }
        Ok(out)
    }
}

/// TF tensors this call allocated or received, deleted on drop.
struct Owned<'a>(&'a Api, Vec<*mut api::TfTensor>);

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        for &t in &self.1 {
            if !t.is_null() {
                // SAFETY: each tensor is owned here and deleted once.
                unsafe { (self.0.delete_tensor)(t) }
            }
        }
    }
}

/// A serialized `tensorflow.RunOptions` with `timeout_in_ms` (field 2, an
/// int64) set: TensorFlow cancels the run itself when it passes.
fn run_options(timeout_ms: u64) -> Vec<u8> {
    let mut proto = Vec::with_capacity(11);
    prost::encoding::uint64::encode(2, &timeout_ms, &mut proto);
    proto
}
