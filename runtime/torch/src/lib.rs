//! The PyTorch backend's native side. The runtime never links libtorch
//! (~420 MB, C++): it opens this library at run time, like the other
//! backends' libraries, through the four functions below. This crate links
//! libtorch through `tch` and is built only by `make pytorch`.
//!
//! ABI (all pointers owned by the caller unless said otherwise):
//! - `sst_load(path, device, err, err_len) -> module` (null on failure,
//!   message in `err`); `device` is -1 for the CPU, else a CUDA device index
//! - `sst_load_data(bytes, len, device, err, err_len) -> module`: the same
//!   from a TorchScript file's bytes
//! - `sst_forward(module, inputs, n, outputs, n_out, err, err_len) -> 0 | -1`:
//!   runs `forward` on the inputs in order; `*outputs` is allocated here and
//!   released with `sst_free_outputs`
//! - `sst_free_outputs(outputs, n)`, `sst_free(module)`
//! - `sst_cuda_devices() -> count`: CUDA devices libtorch can use (0 on a
//!   CPU build or without a driver)
//!
//! Tensors cross the boundary in host memory; a module on a GPU gets its
//! inputs copied there and its outputs copied back.
//!
//! Element types use the runtime's codes: 0 FP16, 1 FP32, 2 FP64, 3 BF16,
//! 4 U8, 5 I32, 6 I64.

use std::ffi::{CStr, c_char};

use tch::{CModule, Device, IValue, Kind, Tensor};

/// A loaded module and the device it runs on.
pub struct Loaded {
    module: CModule,
    device: Device,
}

/// CUDA devices libtorch can use: 0 for a CPU libtorch or without a driver.
#[unsafe(no_mangle)]
pub extern "C" fn sst_cuda_devices() -> i64 {
    std::panic::catch_unwind(|| {
        if tch::Cuda::is_available() {
            tch::Cuda::device_count()
        } else {
            0
        }
    })
    .unwrap_or(0)
}

/// The device for the ABI's code, or why it cannot be used.
fn device(code: i32) -> Result<Device, String> {
    if code < 0 {
        return Ok(Device::Cpu);
    }
    if !tch::Cuda::is_available() {
        return Err(format!(
            "the model asks for the GPU (CUDA device {code}), and libtorch sees no CUDA device: this libtorch is a CPU build (libtorch_cuda.so is a stub), or no NVIDIA driver or GPU is visible"
        ));
    }
    let count = tch::Cuda::device_count();
    if i64::from(code) >= count {
        return Err(format!(
            "the model asks for CUDA device {code}, and libtorch sees {count} device(s)"
        ));
    }
    Ok(Device::Cuda(code as usize))
}

/// One tensor crossing the boundary.
#[repr(C)]
pub struct SstTensor {
    pub dtype: i32,
    pub ndim: u32,
    pub dims: *mut i64,
    pub data: *mut u8,
    pub len: usize,
}

fn kind(code: i32) -> Option<Kind> {
    Some(match code {
        0 => Kind::Half,
        1 => Kind::Float,
        2 => Kind::Double,
        3 => Kind::BFloat16,
        4 => Kind::Uint8,
        5 => Kind::Int,
        6 => Kind::Int64,
        _ => return None,
    })
}

fn code(kind: Kind) -> Option<i32> {
    Some(match kind {
        Kind::Half => 0,
        Kind::Float => 1,
        Kind::Double => 2,
        Kind::BFloat16 => 3,
        Kind::Uint8 => 4,
        Kind::Int => 5,
        Kind::Int64 => 6,
        _ => return None,
    })
}

/// Writes `msg` into the caller's buffer, NUL-terminated and truncated.
fn report(msg: &str, err: *mut c_char, err_len: usize) {
    if err.is_null() || err_len == 0 {
        return;
    }
    let bytes = msg.as_bytes();
    let n = bytes.len().min(err_len - 1);
    // SAFETY: the caller gives `err_len` writable bytes at `err`.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), err.cast::<u8>(), n);
        *err.add(n) = 0;
    }
}

/// Loads a TorchScript file onto `device` (-1: CPU, else CUDA index), in
/// inference mode.
///
/// # Safety
/// `path` is a NUL-terminated string; `err` has `err_len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sst_load(
    path: *const c_char,
    device_code: i32,
    err: *mut c_char,
    err_len: usize,
) -> *mut Loaded {
    // SAFETY: per the contract.
    let path = unsafe { CStr::from_ptr(path) }
        .to_string_lossy()
        .into_owned();
    let loaded = std::panic::catch_unwind(|| {
        let device = device(device_code)?;
        CModule::load_on_device(&path, device)
            .map(|m| eval(m, device))
            .map_err(|e| e.to_string())
    });
    finish(loaded, err, err_len)
}

/// A loaded module in eval mode, or null with the reason in `err`.
fn finish(
    loaded: std::thread::Result<Result<Loaded, String>>,
    err: *mut c_char,
    err_len: usize,
) -> *mut Loaded {
    match loaded {
        Ok(Ok(m)) => Box::into_raw(Box::new(m)),
        Ok(Err(e)) => {
            report(&e, err, err_len);
            std::ptr::null_mut()
        }
        Err(_) => {
            report("libtorch panicked while loading", err, err_len);
            std::ptr::null_mut()
        }
    }
}

/// Loads a TorchScript file's bytes onto `device`, in inference mode.
///
/// # Safety
/// `bytes` has `len` readable bytes; `err` has `err_len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sst_load_data(
    bytes: *const u8,
    len: usize,
    device_code: i32,
    err: *mut c_char,
    err_len: usize,
) -> *mut Loaded {
    // SAFETY: per the contract.
    let mut data = unsafe { slice(bytes, len) };
    finish(
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let device = device(device_code)?;
            CModule::load_data_on_device(&mut data, device)
                .map(|m| eval(m, device))
                .map_err(|e| e.to_string())
        })),
        err,
        err_len,
    )
}

/// The module in inference mode (run inside `catch_unwind` by the callers).
fn eval(mut module: CModule, device: Device) -> Loaded {
    module.set_eval();
    Loaded { module, device }
}

/// Frees a module from `sst_load`.
///
/// # Safety
/// `module` came from `sst_load` and is freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sst_free(module: *mut Loaded) {
    if !module.is_null() {
        // SAFETY: per the contract.
        drop(unsafe { Box::from_raw(module) });
    }
}

/// `n` elements at `p`; empty (whatever `p` is) when `n` is 0.
///
/// # Safety
/// When `n > 0`, `p` points at `n` readable elements.
unsafe fn slice<'a, T>(p: *const T, n: usize) -> &'a [T] {
    if n == 0 || p.is_null() {
        &[]
    } else {
        // SAFETY: per the caller.
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

fn to_tensor(t: &SstTensor) -> Result<Tensor, String> {
    let k = kind(t.dtype).ok_or_else(|| format!("unknown element type {}", t.dtype))?;
    if (t.ndim > 0 && t.dims.is_null()) || (t.len > 0 && t.data.is_null()) {
        return Err("null tensor buffer".into());
    }
    // SAFETY: the caller describes `ndim` dims and `len` bytes.
    let (dims, data) = unsafe { (slice(t.dims, t.ndim as usize), slice(t.data, t.len)) };
    let elements = dims.iter().try_fold(1usize, |n, &d| {
        usize::try_from(d).ok().and_then(|d| n.checked_mul(d))
    });
    if elements.and_then(|n| n.checked_mul(k.elt_size_in_bytes())) != Some(t.len) {
        return Err(format!("{} bytes do not fill shape {dims:?}", t.len));
    }
    Ok(Tensor::from_data_size(data, dims, k))
}

fn from_tensor(t: &Tensor) -> Result<SstTensor, String> {
    let t = t.to_device(Device::Cpu).contiguous();
    let dtype = code(t.kind())
        .ok_or_else(|| format!("output type {:?} has no wasi-nn equivalent", t.kind()))?;
    let mut dims = t.size().into_boxed_slice();
    let numel = t.numel();
    let len = numel * t.kind().elt_size_in_bytes();
    let mut data = vec![0u8; len].into_boxed_slice();
    t.copy_data_u8(&mut data, numel);
    let out = SstTensor {
        dtype,
        ndim: dims.len() as u32,
        dims: dims.as_mut_ptr(),
        data: data.as_mut_ptr(),
        len,
    };
    std::mem::forget(dims);
    std::mem::forget(data);
    Ok(out)
}

/// The output tensors of a forward result: a tensor, or a tuple or list
/// of tensors.
fn tensors(v: IValue) -> Result<Vec<Tensor>, String> {
    match v {
        IValue::Tensor(t) => Ok(vec![t]),
        IValue::TensorList(ts) => Ok(ts),
        IValue::Tuple(vs) | IValue::GenericList(vs) => {
            let mut all = Vec::new();
            for v in vs {
                all.extend(tensors(v)?);
            }
            Ok(all)
        }
        other => Err(format!("forward returned {other:?}, not tensors")),
    }
}

fn forward(m: &Loaded, inputs: &[SstTensor]) -> Result<Vec<SstTensor>, String> {
    let _no_grad = tch::no_grad_guard();
    let args = inputs
        .iter()
        .map(|t| to_tensor(t).map(|t| IValue::Tensor(t.to_device(m.device))))
        .collect::<Result<Vec<_>, _>>()?;
    let out = tensors(m.module.forward_is(&args).map_err(|e| e.to_string())?)?;
    // Every output's type is checked before any is copied out, so a failure
    // leaves nothing allocated behind.
    if let Some(t) = out.iter().find(|t| code(t.kind()).is_none()) {
        return Err(format!(
            "output type {:?} has no wasi-nn equivalent",
            t.kind()
        ));
    }
    out.iter().map(from_tensor).collect()
}

/// Runs `forward`.
///
/// # Safety
/// `module` came from `sst_load`; `inputs` has `n` tensors; `outputs` and
/// `n_out` are writable; `err` has `err_len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sst_forward(
    module: *const Loaded,
    inputs: *const SstTensor,
    n: usize,
    outputs: *mut *mut SstTensor,
    n_out: *mut usize,
    err: *mut c_char,
    err_len: usize,
) -> i32 {
    // SAFETY: per the contract.
    let (m, inputs) = unsafe { (&*module, std::slice::from_raw_parts(inputs, n)) };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| forward(m, inputs))) {
        Ok(Ok(out)) => {
            let mut out = out.into_boxed_slice();
            // SAFETY: per the contract.
            unsafe {
                *n_out = out.len();
                *outputs = out.as_mut_ptr();
            }
            std::mem::forget(out);
            0
        }
        Ok(Err(e)) => {
            report(&e, err, err_len);
            -1
        }
        Err(_) => {
            report("libtorch panicked in forward", err, err_len);
            -1
        }
    }
}

/// Frees outputs from `sst_forward`.
///
/// # Safety
/// `outputs` and `n` are what one `sst_forward` returned; freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sst_free_outputs(outputs: *mut SstTensor, n: usize) {
    if outputs.is_null() {
        return;
    }
    // SAFETY: rebuilds the boxes `sst_forward` and `from_tensor` leaked.
    unsafe {
        let all = Box::from_raw(std::ptr::slice_from_raw_parts_mut(outputs, n));
        for t in all.iter() {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                t.dims,
                t.ndim as usize,
            )));
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                t.data, t.len,
            )));
        }
    }
}
