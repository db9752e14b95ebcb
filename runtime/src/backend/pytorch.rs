//! PyTorch: TorchScript models (`*.pt` saved by `torch.jit.save`) through
//! libtorch. The runtime does not link libtorch (~420 MB of C++); it opens
//! `runtime/torch`'s small C ABI library (`libsandscore_torch.so`, which
//! links libtorch from beside it) at run time like the other backends'
//! libraries: `--torch-lib`, `TORCH_SHIM_PATH`, then
//! `torch/libsandscore_torch.so` beside the binary or in `../lib`.
//!
//! TorchScript's `forward` takes positional tensors and has no input names a
//! host can read, so the inputs are passed in the order of their names
//! (`input` alone, or `input_0`, `input_1`, …) and the outputs — a tensor,
//! or a tuple or list of tensors — are named `output_0`, `output_1`, ….
//! libtorch runs `forward` from several threads on one module, so
//! concurrent contexts share it.

use std::ffi::{CStr, CString, c_char};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::native::{self, Lazy, LibrarySpec, symbol};
use super::{Backend, BackendError, Graph, Signature, Target, TensorInfo};
use crate::backend::formats::{self, Format};
use crate::tensor::{NamedTensor, Tensor, TensorType};

/// Where the library is looked for.
pub const LIBRARY: LibrarySpec = LibrarySpec {
    framework: "PyTorch",
    env: "TORCH_SHIM_PATH",
    relative: &["torch/libsandscore_torch.so"],
    image: "sandscore/pytorch-cpu",
    make: "pytorch",
};

/// `SstTensor` of runtime/torch.
#[repr(C)]
#[derive(Clone, Copy)]
struct SstTensor {
    dtype: i32,
    ndim: u32,
    dims: *mut i64,
    data: *mut u8,
    len: usize,
}

type Module = *mut std::ffi::c_void;
const ERR_LEN: usize = 4096;

struct Api {
    load: unsafe extern "C" fn(*const c_char, i32, *mut c_char, usize) -> Module,
    load_data: unsafe extern "C" fn(*const u8, usize, i32, *mut c_char, usize) -> Module,
    cuda_devices: unsafe extern "C" fn() -> i64,
    free: unsafe extern "C" fn(Module),
    #[allow(clippy::type_complexity)]
    forward: unsafe extern "C" fn(
        Module,
        *const SstTensor,
        usize,
        *mut *mut SstTensor,
        *mut usize,
        *mut c_char,
        usize,
    ) -> i32,
    free_outputs: unsafe extern "C" fn(*mut SstTensor, usize),
}

impl Api {
    fn open(path: &Path) -> Result<Api, String> {
        let lib = native::open(path)?;
        // SAFETY: each symbol is declared as runtime/torch defines it.
        unsafe {
            Ok(Api {
                load: symbol(lib, path, "sst_load")?,
                load_data: symbol(lib, path, "sst_load_data")?,
                cuda_devices: symbol(lib, path, "sst_cuda_devices")?,
                free: symbol(lib, path, "sst_free")?,
                forward: symbol(lib, path, "sst_forward")?,
                free_outputs: symbol(lib, path, "sst_free_outputs")?,
            })
        }
    }
}

/// Settings of the backend.
#[derive(Clone, Debug, Default)]
pub struct TorchOptions {
    /// Explicit library path; `None` searches the default places.
    pub library: Option<PathBuf>,
    /// CUDA device for graphs whose target is `gpu`.
    pub gpu_device: i32,
    /// Run a `gpu` graph on the CPU (with a warning) when libtorch has no
    /// CUDA device.
    pub gpu_fallback: bool,
}

/// The PyTorch backend; libtorch is loaded on first use.
pub struct PyTorch {
    options: TorchOptions,
    api: Lazy<Api>,
}

impl PyTorch {
    /// A backend with these options; libtorch is not loaded until first use.
    pub fn new(options: TorchOptions) -> Self {
        PyTorch {
            options,
            api: Lazy::default(),
        }
    }

    fn api(&self) -> Result<&Arc<Api>, BackendError> {
        self.api
            .get(&LIBRARY, self.options.library.as_deref(), Api::open)
    }
}

fn code(ty: TensorType) -> Result<i32, BackendError> {
    Ok(match ty {
        TensorType::Fp16 => 0,
        TensorType::Fp32 => 1,
        TensorType::Fp64 => 2,
        TensorType::Bf16 => 3,
        TensorType::U8 => 4,
        TensorType::I32 => 5,
        TensorType::I64 => 6,
        other => {
            return Err(BackendError::Unsupported(format!(
                "{other} tensors are not supported by the PyTorch backend"
            )));
        }
    })
}

fn from_code(code: i32) -> Option<TensorType> {
    Some(match code {
        0 => TensorType::Fp16,
        1 => TensorType::Fp32,
        2 => TensorType::Fp64,
        3 => TensorType::Bf16,
        4 => TensorType::U8,
        5 => TensorType::I32,
        6 => TensorType::I64,
        _ => return None,
    })
}

fn message(buf: &[c_char]) -> String {
    // SAFETY: runtime/torch NUL-terminates what it writes; the buffer was
    // zeroed, so it is terminated even when nothing was written.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

impl Backend for PyTorch {
    fn format(&self) -> &'static Format {
        &formats::PYTORCH
    }

    fn version(&self) -> String {
        match self.api() {
            Ok(_) => "libtorch 2.13.0 (through runtime/torch)".into(),
            Err(e) => format!("not loaded: {e}"),
        }
    }

    fn load(&self, parts: &[&[u8]], target: Target) -> Result<Arc<dyn Graph>, BackendError> {
        let [bytes] = parts else {
            return Err(BackendError::InvalidModel(format!(
                "a TorchScript model is one builder, got {}",
                parts.len()
            )));
        };
        let (api, device) = self.ready(target)?;
        let mut err = vec![0 as c_char; ERR_LEN];
        // SAFETY: the bytes and an ERR_LEN buffer, as the ABI says.
        let module = unsafe {
            (api.load_data)(
                bytes.as_ptr(),
                bytes.len(),
                device,
                err.as_mut_ptr(),
                ERR_LEN,
            )
        };
        graph(api, module, device, &err)
    }

    fn load_path(&self, path: &Path, target: Target) -> Result<Arc<dyn Graph>, BackendError> {
        let (api, device) = self.ready(target)?;
        let c_path = CString::new(path.to_string_lossy().as_bytes())
            .map_err(|e| BackendError::InvalidModel(e.to_string()))?;
        let mut err = vec![0 as c_char; ERR_LEN];
        // SAFETY: a NUL-terminated path and an ERR_LEN buffer, as the ABI says.
        let module = unsafe { (api.load)(c_path.as_ptr(), device, err.as_mut_ptr(), ERR_LEN) };
        graph(api, module, device, &err)
    }
}

impl PyTorch {
    /// The library and the ABI's device code (-1 for the CPU, else the
    /// CUDA index) for `target`. A `gpu` target needs libtorch to see that
    /// CUDA device; without it the load fails saying so, or runs on the
    /// CPU with a warning under `--gpu-fallback cpu`.
    fn ready(&self, target: Target) -> Result<(Arc<Api>, i32), BackendError> {
        let api = Arc::clone(self.api()?);
        match target {
            Target::Cpu => Ok((api, -1)),
            Target::Tpu => Err(BackendError::Unsupported(
                "execution target tpu is not available for PyTorch; use cpu or gpu".into(),
            )),
            Target::Gpu => {
                let id = self.options.gpu_device;
                // SAFETY: no arguments; catches libtorch's exceptions itself.
                let count = unsafe { (api.cuda_devices)() };
                if i64::from(id) < count {
                    return Ok((api, id));
                }
                let why = format!(
                    "the model asks for the GPU (CUDA device {id}), and libtorch sees {count} CUDA device(s): the sandscore/pytorch-gpu image's CUDA libtorch needs an NVIDIA GPU and the host driver's libcuda.so.1 (the NVIDIA container toolkit mounts it), and the pytorch-cpu image's libtorch is a CPU build; or run it on the CPU with --gpu-fallback cpu"
                );
                if self.options.gpu_fallback {
                    tracing::warn!(reason = %why, "GPU unavailable; running the model on the CPU (--gpu-fallback cpu)");
                    Ok((api, -1))
                } else {
                    Err(BackendError::Unavailable(why))
                }
            }
        }
    }
}

/// A graph of a loaded module, or the library's reason for a null one.
fn graph(
    api: Arc<Api>,
    module: Module,
    device: i32,
    err: &[c_char],
) -> Result<Arc<dyn Graph>, BackendError> {
    if module.is_null() {
        return Err(BackendError::InvalidModel(message(err)));
    }
    Ok(Arc::new(TorchGraph {
        api,
        module,
        device,
        signature: Signature {
            inputs: vec![TensorInfo {
                name: "input".into(),
                ty: None,
                shape: Vec::new(),
                native_type: "TorchScript forward arguments (input, or input_0, input_1, …)".into(),
            }],
            outputs: vec![TensorInfo {
                name: "output_0".into(),
                ty: None,
                shape: Vec::new(),
                native_type: "forward's result (output_0, output_1, … for a tuple)".into(),
            }],
        },
    }))
}

/// Puts inputs in `forward`'s order: `input` alone, or `input_0` …
/// `input_{n-1}` by number (so `input_10` comes after `input_9`).
fn order_inputs(inputs: &mut [NamedTensor]) -> Result<(), BackendError> {
    if let [only] = inputs
        && only.name == "input"
    {
        return Ok(());
    }
    let index = |name: &str| {
        name.strip_prefix("input_")
            .and_then(|n| n.parse::<usize>().ok())
    };
    inputs.sort_by_key(|t| index(&t.name).unwrap_or(usize::MAX));
    for (k, t) in inputs.iter().enumerate() {
        if index(&t.name) != Some(k) {
            let names: Vec<&str> = inputs.iter().map(|t| t.name.as_str()).collect();
            return Err(BackendError::InvalidInput(format!(
                "TorchScript inputs are positional: name them input, or input_0 … input_{} (got {names:?})",
                inputs.len() - 1
            )));
        }
    }
    Ok(())
}

struct TorchGraph {
    api: Arc<Api>,
    module: Module,
    /// The ABI's device code: -1 for the CPU, else the CUDA index.
    device: i32,
    /// Its inputs and outputs.
    signature: Signature,
}

// SAFETY: libtorch's Module::forward may run on several threads at once in
// inference mode; the handle is freed only on drop.
unsafe impl Send for TorchGraph {}
unsafe impl Sync for TorchGraph {}

impl Drop for TorchGraph {
    fn drop(&mut self) {
        // SAFETY: from sst_load, freed once.
        unsafe { (self.api.free)(self.module) }
    }
}

impl Graph for TorchGraph {
    fn device(&self) -> String {
        if self.device < 0 {
            "cpu".into()
        } else {
            format!("cuda:{}", self.device)
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn compute(
        &self,
        mut inputs: Vec<NamedTensor>,
        _deadline: Option<Instant>,
    ) -> Result<Vec<NamedTensor>, BackendError> {
        if inputs.is_empty() {
            return Err(BackendError::InvalidInput(
                "forward needs at least one input tensor".into(),
            ));
        }
        for i in &inputs {
            i.tensor
                .validate()
                .map_err(|e| BackendError::InvalidInput(format!("input '{}': {e}", i.name)))?;
        }
        order_inputs(&mut inputs)?;
        let mut dims: Vec<Vec<i64>> = inputs
            .iter()
            .map(|i| i.tensor.shape.iter().map(|&d| i64::from(d)).collect())
            .collect();
        let feeds: Vec<SstTensor> = inputs
            .iter()
            .zip(dims.iter_mut())
            .map(|(i, d)| {
                Ok(SstTensor {
                    dtype: code(i.tensor.ty)?,
                    ndim: d.len() as u32,
                    dims: d.as_mut_ptr(),
                    // The library only reads inputs.
                    data: i.tensor.data.as_ptr().cast_mut(),
                    len: i.tensor.data.len(),
                })
            })
            .collect::<Result<_, BackendError>>()?;
        let api = &self.api;
        let mut out: *mut SstTensor = std::ptr::null_mut();
        let mut n_out = 0usize;
        let mut err = vec![0 as c_char; ERR_LEN];
        // SAFETY: `feeds` describe live buffers for the call's duration; the
        // outputs are copied below and released with sst_free_outputs.
        let rc = unsafe {
            (api.forward)(
                self.module,
                feeds.as_ptr(),
                feeds.len(),
                &mut out,
                &mut n_out,
                err.as_mut_ptr(),
                ERR_LEN,
            )
        };
        if rc != 0 {
            return Err(BackendError::Runtime(message(&err)));
        }
        // SAFETY: sst_forward returned `n_out` tensors at `out` (dangling
        // when there are none); the records are copied, their buffers read below.
        let raw: Vec<SstTensor> = unsafe { native::copied(out, n_out) };
        let converted: Result<Vec<NamedTensor>, BackendError> = raw
            .iter()
            .enumerate()
            .map(|(k, t)| {
                let ty = from_code(t.dtype).ok_or_else(|| {
                    BackendError::Unsupported(format!("output {k} has type code {}", t.dtype))
                })?;
                // SAFETY: the library filled `ndim` dims and `len` bytes.
                let (shape, data) = unsafe {
                    (
                        native::copied(t.dims, t.ndim as usize),
                        native::copied(t.data, t.len),
                    )
                };
                let shape = shape.iter().map(|&d| d.max(0) as u32).collect();
                let tensor = Tensor::new(shape, ty, data)
                    .map_err(|e| BackendError::Runtime(e.to_string()))?;
                Ok(NamedTensor {
                    name: format!("output_{k}"),
                    tensor,
                })
            })
            .collect();
        // SAFETY: released once, after the copies above.
        unsafe { (api.free_outputs)(out, n_out) };
        converted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(names: &[&str]) -> Vec<NamedTensor> {
        names
            .iter()
            .map(|n| NamedTensor {
                name: n.to_string(),
                tensor: Tensor::new(vec![1], TensorType::Fp32, vec![0; 4]).unwrap(),
            })
            .collect()
    }

    #[test]
    fn inputs_go_in_numeric_order() {
        let mut v = named(&[
            "input_10", "input_2", "input_0", "input_1", "input_3", "input_4", "input_5",
            "input_6", "input_7", "input_8", "input_9",
        ]);
        order_inputs(&mut v).unwrap();
        let order: Vec<&str> = v.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(order[2], "input_2");
        assert_eq!(order[10], "input_10");
        assert!(order_inputs(&mut named(&["input"])).is_ok());
        assert!(order_inputs(&mut named(&["input_0", "input_2"])).is_err());
        assert!(order_inputs(&mut named(&["x", "y"])).is_err());
    }
}
