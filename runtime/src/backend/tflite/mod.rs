//! TensorFlow Lite models through LiteRT's C API, with `libLiteRt.so` from
//! the pinned `ai-edge-litert` wheel (2.1.4: 2.3 changed the C API), loaded
//! at run time.
//!
//! A `*.tflite` file is a model; its tensors are the first signature's
//! (`serving_default` for models converted from a SavedModel), by name. A
//! leading dimension the converter fixed at 1 is a batch: it takes any
//! size. LiteRT compiles a model for fixed input shapes, so a graph keeps
//! one compiled model per input shape seen (the most recent few), each
//! resized once; a graph runs one request at a time.

mod api;

use std::ffi::{c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use self::api::{Api, Handle, Layout, RankedType};
use super::native::{Lazy, LibrarySpec};
use super::{Backend, BackendError, Graph, Signature, Target, TensorInfo, check_inputs};
use crate::backend::formats::{self, Format};
use crate::tensor::{NamedTensor, Tensor, TensorType};

/// Where the library is looked for.
pub const LIBRARY: LibrarySpec = LibrarySpec {
    framework: "TensorFlow Lite (LiteRT)",
    env: "LITERT_LIB_PATH",
    relative: &["litert/libLiteRt.so"],
    image: "sandscore/tflite-cpu",
    make: "tflite",
};

/// Settings applied to every model.
#[derive(Clone, Debug, Default)]
pub struct TfliteOptions {
    /// Explicit library path; `None` searches the default places.
    pub library: Option<PathBuf>,
}

/// The library's function table and the one LiteRT environment.
struct Runtime {
    api: Api,
    env: Handle,
}

// SAFETY: the environment is created once and only read afterwards.
unsafe impl Send for Runtime {}
unsafe impl Sync for Runtime {}

impl Runtime {
    fn open(path: &Path) -> Result<Runtime, String> {
        let api = Api::open(path)?;
        let mut env: Handle = std::ptr::null_mut();
        // SAFETY: no options; LiteRT writes the handle.
        api.check(
            unsafe { (api.create_environment)(0, std::ptr::null(), &mut env) },
            "create environment",
        )?;
        Ok(Runtime { api, env })
    }
}

/// The TensorFlow Lite backend; the library is loaded on first use.
pub struct Tflite {
    options: TfliteOptions,
    runtime: Lazy<Runtime>,
}

impl Tflite {
    /// A backend with these options; nothing is loaded until first use.
    pub fn new(options: TfliteOptions) -> Self {
        Tflite {
            options,
            runtime: Lazy::default(),
        }
    }

    fn runtime(&self) -> Result<&Arc<Runtime>, BackendError> {
        self.runtime
            .get(&LIBRARY, self.options.library.as_deref(), Runtime::open)
    }
}

fn from_litert(t: u32) -> Option<TensorType> {
    Some(match t {
        1 => TensorType::Fp32,
        2 => TensorType::I32,
        3 => TensorType::U8,
        4 => TensorType::I64,
        10 => TensorType::Fp16,
        11 => TensorType::Fp64,
        19 => TensorType::Bf16,
        6 => TensorType::Bool,
        9 => TensorType::I8,
        7 => TensorType::I16,
        17 => TensorType::U16,
        16 => TensorType::U32,
        13 => TensorType::U64,
        _ => return None,
    })
}

impl Backend for Tflite {
    fn format(&self) -> &'static Format {
        &formats::TFLITE
    }

    fn version(&self) -> String {
        match self.runtime() {
            Ok(_) => "LiteRT 2.1 C API".into(),
            Err(e) => format!("not loaded: {e}"),
        }
    }

    fn sniff(&self, bytes: &[u8]) -> bool {
        // A TFLite flatbuffer carries the identifier "TFL3" at offset 4.
        bytes.get(4..8) == Some(b"TFL3")
    }

    fn load(&self, parts: &[&[u8]], target: Target) -> Result<Arc<dyn Graph>, BackendError> {
        if target != Target::Cpu {
            return Err(BackendError::Unsupported(format!(
                "execution target {target:?} is not available for TensorFlow Lite in this build; use cpu"
            )));
        }
        let [bytes] = parts else {
            return Err(BackendError::InvalidModel(format!(
                "a TFLite model is one builder, got {}",
                parts.len()
            )));
        };
        let rt = Arc::clone(self.runtime()?);
        Model::load(rt, bytes.to_vec())
            .map(|m| Arc::new(m) as Arc<dyn Graph>)
            .map_err(BackendError::InvalidModel)
    }
}

/// Compiled models kept per graph, one per input shapes.
const COMPILED_KEPT: usize = 4;

/// The mutable part of a model: its compiled forms by input shapes, most
/// recently used last.
#[derive(Default)]
struct Compiled {
    by_shapes: Vec<(Vec<Vec<i32>>, Handle)>,
}

// SAFETY: only used under the graph's mutex.
unsafe impl Send for Compiled {}

struct Model {
    rt: Arc<Runtime>,
    /// LiteRT reads the model from these bytes; they live as long as it.
    _bytes: Vec<u8>,
    model: Handle,
    /// Its inputs and outputs.
    signature: Signature,
    output_types: Vec<u32>,
    /// Input shapes as the model file declares them.
    declared_shapes: Vec<Vec<i32>>,
    compiled: Mutex<Compiled>,
}

// SAFETY: the model handle is only read after loading; the compiled model
// is behind a mutex.
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

impl Model {
    fn load(rt: Arc<Runtime>, bytes: Vec<u8>) -> Result<Model, String> {
        let api = &rt.api;
        let mut model: Handle = std::ptr::null_mut();
        // SAFETY: `bytes` is kept in the returned Model for the handle's life.
        api.check(
            unsafe {
                (api.create_model_from_buffer)(bytes.as_ptr().cast(), bytes.len(), &mut model)
            },
            "read model",
        )?;
        let mut owned = Model {
            rt: Arc::clone(&rt),
            _bytes: bytes,
            model,
            signature: Signature::default(),
            output_types: Vec::new(),
            declared_shapes: Vec::new(),
            compiled: Mutex::new(Compiled::default()),
        };
        // SAFETY: handles are checked before use and owned by `owned`.
        unsafe {
            let mut sig: Handle = std::ptr::null_mut();
            api.check((api.model_signature)(model, 0, &mut sig), "signature")?;
            let (mut n_in, mut n_out) = (0usize, 0usize);
            api.check((api.num_inputs)(sig, &mut n_in), "signature inputs")?;
            api.check((api.num_outputs)(sig, &mut n_out), "signature outputs")?;
            let mut shapes = Vec::new();
            for i in 0..n_in {
                let (info, ranked) = describe(api, sig, i, true)?;
                shapes.push(ranked.layout.dims().to_vec());
                owned.signature.inputs.push(info);
            }
            for i in 0..n_out {
                let (info, ranked) = describe(api, sig, i, false)?;
                owned.output_types.push(ranked.element_type);
                owned.signature.outputs.push(info);
            }
            owned.declared_shapes = shapes.clone();
            // Compile once now, so a model LiteRT cannot compile fails at startup.
            let handle = owned.compile(&shapes)?;
            owned
                .compiled
                .get_mut()
                .map_err(|e| e.to_string())?
                .by_shapes
                .push((shapes, handle));
        }
        // A dimension the converter fixed at 1 in front is a batch: any size.
        for info in &mut owned.signature.inputs {
            if info.shape.first() == Some(&1) && info.shape.len() > 1 {
                info.shape[0] = -1;
            }
        }
        Ok(owned)
    }
}

impl Model {
    /// A compiled model with its inputs resized to `shapes`.
    fn compile(&self, shapes: &[Vec<i32>]) -> Result<Handle, String> {
        let api = &self.rt.api;
        // SAFETY: the model handle is live; the compiled handle is destroyed
        // here on failure, else owned by the caller.
        unsafe {
            let mut options: Handle = std::ptr::null_mut();
            api.check((api.create_options)(&mut options), "options")?;
            let mut compiled: Handle = std::ptr::null_mut();
            let made = api
                .check((api.set_accelerators)(options, api::HW_CPU), "CPU options")
                .and_then(|_| {
                    api.check(
                        (api.create_compiled_model)(
                            self.rt.env,
                            self.model,
                            options,
                            &mut compiled,
                        ),
                        "compile",
                    )
                });
            (api.destroy_options)(options);
            made?;
            for (i, dims) in shapes.iter().enumerate() {
                if self.declared_shapes.get(i) == Some(dims) {
                    continue;
                }
                let resized = api.check(
                    (api.resize_input)(compiled, 0, i, dims.as_ptr().cast::<c_int>(), dims.len()),
                    "resize input",
                );
                if let Err(e) = resized {
                    (api.destroy_compiled_model)(compiled);
                    return Err(e);
                }
            }
            Ok(compiled)
        }
    }

    /// The compiled model for `shapes`, made (and the oldest dropped) if new.
    fn compiled_for(&self, kept: &mut Compiled, shapes: Vec<Vec<i32>>) -> Result<Handle, String> {
        if let Some(at) = kept.by_shapes.iter().position(|(s, _)| *s == shapes) {
            let entry = kept.by_shapes.remove(at);
            let handle = entry.1;
            kept.by_shapes.push(entry);
            return Ok(handle);
        }
        let handle = self.compile(&shapes)?;
        if kept.by_shapes.len() >= COMPILED_KEPT {
            let (_, old) = kept.by_shapes.remove(0);
            // SAFETY: no longer referenced; destroyed once.
            unsafe { (self.rt.api.destroy_compiled_model)(old) };
        }
        kept.by_shapes.push((shapes, handle));
        Ok(handle)
    }
}

/// Name, type and shape of signature input or output `i`.
///
/// # Safety
/// `sig` must be a live signature of a live model.
unsafe fn describe(
    api: &Api,
    sig: Handle,
    i: usize,
    input: bool,
) -> Result<(TensorInfo, RankedType), String> {
    let mut name = std::ptr::null();
    let mut tensor: Handle = std::ptr::null_mut();
    let mut ranked = RankedType::default();
    // SAFETY: per the caller; LiteRT writes the out-parameters.
    unsafe {
        if input {
            api.check((api.input_name)(sig, i, &mut name), "input name")?;
            api.check((api.input_tensor)(sig, i, &mut tensor), "input tensor")?;
        } else {
            api.check((api.output_name)(sig, i, &mut name), "output name")?;
            api.check((api.output_tensor)(sig, i, &mut tensor), "output tensor")?;
        }
        api.check((api.ranked_type)(tensor, &mut ranked), "tensor type")?;
        let info = TensorInfo {
            name: Api::string(name),
            ty: from_litert(ranked.element_type),
            shape: ranked.layout.dims().iter().map(|&d| i64::from(d)).collect(),
            native_type: format!("LiteRtElementType {}", ranked.element_type),
        };
        Ok((info, ranked))
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let api = &self.rt.api;
        // SAFETY: each handle created in `load` and destroyed once.
        unsafe {
            if let Ok(c) = self.compiled.get_mut() {
                for (_, handle) in c.by_shapes.drain(..) {
                    (api.destroy_compiled_model)(handle);
                }
            }
            (api.destroy_model)(self.model);
        }
    }
}

impl Graph for Model {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn compute(
        &self,
        inputs: Vec<NamedTensor>,
        _deadline: Option<Instant>,
    ) -> Result<Vec<NamedTensor>, BackendError> {
        let m = self;
        check_inputs(&m.signature.inputs, &inputs)?;
        let api = &m.rt.api;
        let runtime = BackendError::Runtime;
        // Inputs in the signature's order.
        let ordered: Vec<&Tensor> = m
            .signature
            .inputs
            .iter()
            .map(|info| {
                inputs
                    .iter()
                    .find(|x| x.name == info.name)
                    .map(|x| &x.tensor)
                    .ok_or_else(|| {
                        BackendError::InvalidInput(format!("missing input '{}'", info.name))
                    })
            })
            .collect::<Result<_, _>>()?;
        let shapes: Vec<Vec<i32>> = ordered
            .iter()
            .map(|t| t.shape.iter().map(|&d| d as i32).collect())
            .collect();
        let mut kept = m
            .compiled
            .lock()
            .map_err(|_| runtime("model lock poisoned".into()))?;
        let compiled = m
            .compiled_for(&mut kept, shapes.clone())
            .map_err(BackendError::InvalidInput)?;
        let mut buffers = Buffers(api, Vec::new());
        let mut feeds = Vec::with_capacity(m.signature.inputs.len());
        for (t, dims) in ordered.iter().zip(&shapes) {
            let ty = match t.ty {
                TensorType::Fp32 => 1,
                TensorType::I32 => 2,
                TensorType::U8 => 3,
                TensorType::I64 => 4,
                TensorType::Fp16 => 10,
                TensorType::Fp64 => 11,
                TensorType::Bf16 => 19,
                TensorType::Bool => 6,
                TensorType::I8 => 9,
                TensorType::I16 => 7,
                TensorType::U16 => 17,
                TensorType::U32 => 16,
                TensorType::U64 => 13,
                TensorType::Bytes => {
                    return Err(BackendError::Unsupported(
                        "LiteRT string tensors are not served".into(),
                    ));
                }
            };
            let b = buffers
                .add(m.rt.env, ty, dims, t.data.len())
                .map_err(runtime)?;
            write(api, b, &t.data).map_err(runtime)?;
            feeds.push(b);
        }
        let mut layouts = vec![Layout::default(); m.signature.outputs.len()];
        // SAFETY: `layouts` has room for every output.
        api.check(
            unsafe { (api.output_layouts)(compiled, 0, layouts.len(), layouts.as_mut_ptr(), true) },
            "output shapes",
        )
        .map_err(runtime)?;
        let mut fetches = Vec::with_capacity(m.signature.outputs.len());
        for (i, info) in m.signature.outputs.iter().enumerate() {
            let ty = info.ty.ok_or_else(|| {
                BackendError::Unsupported(format!("output '{}' is {}", info.name, info.native_type))
            })?;
            let dims = layouts[i].dims().to_vec();
            let size = ty.size().ok_or_else(|| {
                BackendError::Unsupported(format!("output '{}' is {ty}", info.name))
            })?;
            let bytes = element_count(&dims) * size;
            fetches.push(
                buffers
                    .add(m.rt.env, m.output_types[i], &dims, bytes)
                    .map_err(runtime)?,
            );
        }
        // SAFETY: buffers sized for the compiled model's current shapes.
        api.check(
            unsafe {
                (api.run)(
                    compiled,
                    0,
                    feeds.len(),
                    feeds.as_mut_ptr(),
                    fetches.len(),
                    fetches.as_mut_ptr(),
                )
            },
            "run",
        )
        .map_err(runtime)?;
        let mut out = Vec::with_capacity(fetches.len());
        for (i, info) in m.signature.outputs.iter().enumerate() {
            let ty = info.ty.unwrap_or(TensorType::Fp32);
            let dims = layouts[i].dims();
            let size = ty.size().unwrap_or(0);
            let data = read(api, fetches[i], element_count(dims) * size).map_err(runtime)?;
            let shape = dims.iter().map(|&d| d.max(0) as u32).collect();
            let tensor = Tensor::new(shape, ty, data).map_err(|e| runtime(e.to_string()))?;
            out.push(NamedTensor {
                name: info.name.clone(),
                tensor,
            });
        }
        Ok(out)
    }
}

/// Tensor buffers created for one run, destroyed on drop.
struct Buffers<'a>(&'a Api, Vec<Handle>);

impl Drop for Buffers<'_> {
    fn drop(&mut self) {
        for &b in &self.1 {
            // SAFETY: each buffer created for this run, destroyed once.
            unsafe { (self.0.destroy_buffer)(b) }
        }
    }
}

impl Buffers<'_> {
    /// A host buffer of `ty` and `dims`, `bytes` long.
    fn add(&mut self, env: Handle, ty: u32, dims: &[i32], bytes: usize) -> Result<Handle, String> {
        let ranked = RankedType {
            element_type: ty,
            layout: Layout::with_dims(dims),
        };
        let mut b: Handle = std::ptr::null_mut();
        // SAFETY: LiteRT allocates the buffer and writes the handle.
        self.0.check(
            unsafe { (self.0.create_buffer)(env, api::BUFFER_HOST, &ranked, bytes, &mut b) },
            "tensor buffer",
        )?;
        self.1.push(b);
        Ok(b)
    }
}

fn element_count(dims: &[i32]) -> usize {
    dims.iter().map(|&d| d.max(0) as usize).product()
}

fn write(api: &Api, buffer: Handle, data: &[u8]) -> Result<(), String> {
    let mut host: *mut c_void = std::ptr::null_mut();
    // SAFETY: the buffer holds at least `data.len()` bytes (it was created
    // with that size); locked while written.
    unsafe {
        api.check(
            (api.lock_buffer)(buffer, &mut host, api::LOCK_WRITE),
            "lock input",
        )?;
        if !data.is_empty() && !host.is_null() {
            std::ptr::copy_nonoverlapping(data.as_ptr(), host.cast::<u8>(), data.len());
        }
        api.check((api.unlock_buffer)(buffer), "unlock input")
    }
}

fn read(api: &Api, buffer: Handle, len: usize) -> Result<Vec<u8>, String> {
    let mut size = 0usize;
    let mut host: *mut c_void = std::ptr::null_mut();
    // SAFETY: reads at most the buffer's size while it is locked.
    unsafe {
        api.check((api.buffer_size)(buffer, &mut size), "output size")?;
        api.check(
            (api.lock_buffer)(buffer, &mut host, api::LOCK_READ),
            "lock output",
        )?;
        let data = crate::backend::native::copied(host.cast::<u8>().cast_const(), len.min(size));
        api.check((api.unlock_buffer)(buffer), "unlock output")?;
        Ok(data)
    }
}
