//! The slice of LiteRT's C API (`litert/c/*.h`, LiteRT 2.1) the backend
//! uses, resolved once from `libLiteRt.so`. Struct layouts follow the
//! headers: a layout is a bitfield byte (rank in bits 0–6, has-strides in
//! bit 7) and eight dimensions and strides.

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::path::Path;

use crate::backend::native::{self, symbol};

pub type Status = c_uint;
pub type Handle = *mut c_void;

/// Most dimensions a LiteRT tensor has.
pub const MAX_RANK: usize = 8;
pub const HW_CPU: c_int = 1;
pub const BUFFER_HOST: c_uint = 1;
pub const LOCK_READ: c_uint = 0;
pub const LOCK_WRITE: c_uint = 1;

/// `LiteRtLayout`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Layout {
    pub bits: u8,
    pub dimensions: [i32; MAX_RANK],
    pub strides: [u32; MAX_RANK],
}

impl Layout {
    pub fn rank(&self) -> usize {
        (self.bits & 0x7f) as usize
    }

    pub fn dims(&self) -> &[i32] {
        &self.dimensions[..self.rank().min(MAX_RANK)]
    }

    pub fn with_dims(dims: &[i32]) -> Layout {
        let mut l = Layout {
            bits: dims.len() as u8 & 0x7f,
            ..Layout::default()
        };
        l.dimensions[..dims.len()].copy_from_slice(dims);
        l
    }
}

/// `LiteRtRankedTensorType`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct RankedType {
    pub element_type: c_uint,
    pub layout: Layout,
}

/// `LiteRtStatus` names (the library does not export its own lookup).
fn status_name(status: Status) -> String {
    let name = match status {
        1 => "invalid argument",
        2 => "memory allocation failure",
        3 => "runtime failure",
        4 => "missing input tensor",
        5 => "unsupported",
        6 => "not found",
        7 => "timeout expired",
        8 => "wrong version",
        9 => "unknown error",
        500 => "file I/O error",
        501 => "invalid flatbuffer",
        502 => "dynamic loading error",
        504 => "compilation error",
        1000 => "index out of bounds",
        5001 => "shape inference failed",
        _ => return format!("LiteRT status {status}"),
    };
    format!("{name} (LiteRT status {status})")
}

/// Function pointers into the library, which stays loaded with them.
pub struct Api {
    pub create_environment: unsafe extern "C" fn(c_int, *const c_void, *mut Handle) -> Status,
    pub create_model_from_buffer: unsafe extern "C" fn(*const c_void, usize, *mut Handle) -> Status,
    pub destroy_model: unsafe extern "C" fn(Handle),
    pub create_options: unsafe extern "C" fn(*mut Handle) -> Status,
    pub set_accelerators: unsafe extern "C" fn(Handle, c_int) -> Status,
    pub destroy_options: unsafe extern "C" fn(Handle),
    pub create_compiled_model: unsafe extern "C" fn(Handle, Handle, Handle, *mut Handle) -> Status,
    pub destroy_compiled_model: unsafe extern "C" fn(Handle),
    pub model_signature: unsafe extern "C" fn(Handle, usize, *mut Handle) -> Status,
    pub num_inputs: unsafe extern "C" fn(Handle, *mut usize) -> Status,
    pub num_outputs: unsafe extern "C" fn(Handle, *mut usize) -> Status,
    pub input_name: unsafe extern "C" fn(Handle, usize, *mut *const c_char) -> Status,
    pub output_name: unsafe extern "C" fn(Handle, usize, *mut *const c_char) -> Status,
    pub input_tensor: unsafe extern "C" fn(Handle, usize, *mut Handle) -> Status,
    pub output_tensor: unsafe extern "C" fn(Handle, usize, *mut Handle) -> Status,
    pub ranked_type: unsafe extern "C" fn(Handle, *mut RankedType) -> Status,
    pub resize_input: unsafe extern "C" fn(Handle, usize, usize, *const c_int, usize) -> Status,
    pub output_layouts: unsafe extern "C" fn(Handle, usize, usize, *mut Layout, bool) -> Status,
    pub create_buffer:
        unsafe extern "C" fn(Handle, c_uint, *const RankedType, usize, *mut Handle) -> Status,
    pub destroy_buffer: unsafe extern "C" fn(Handle),
    pub lock_buffer: unsafe extern "C" fn(Handle, *mut *mut c_void, c_uint) -> Status,
    pub unlock_buffer: unsafe extern "C" fn(Handle) -> Status,
    pub buffer_size: unsafe extern "C" fn(Handle, *mut usize) -> Status,
    pub run: unsafe extern "C" fn(Handle, usize, usize, *mut Handle, usize, *mut Handle) -> Status,
}

impl Api {
    /// Loads the library and resolves every function.
    pub fn open(path: &Path) -> Result<Api, String> {
        let lib = native::open(path)?;
        // SAFETY: each symbol is declared with its LiteRT 2.1 C signature.
        unsafe {
            Ok(Api {
                create_environment: symbol(lib, path, "LiteRtCreateEnvironment")?,
                create_model_from_buffer: symbol(lib, path, "LiteRtCreateModelFromBuffer")?,
                destroy_model: symbol(lib, path, "LiteRtDestroyModel")?,
                create_options: symbol(lib, path, "LiteRtCreateOptions")?,
                set_accelerators: symbol(lib, path, "LiteRtSetOptionsHardwareAccelerators")?,
                destroy_options: symbol(lib, path, "LiteRtDestroyOptions")?,
                create_compiled_model: symbol(lib, path, "LiteRtCreateCompiledModel")?,
                destroy_compiled_model: symbol(lib, path, "LiteRtDestroyCompiledModel")?,
                model_signature: symbol(lib, path, "LiteRtGetModelSignature")?,
                num_inputs: symbol(lib, path, "LiteRtGetNumSignatureInputs")?,
                num_outputs: symbol(lib, path, "LiteRtGetNumSignatureOutputs")?,
                input_name: symbol(lib, path, "LiteRtGetSignatureInputName")?,
                output_name: symbol(lib, path, "LiteRtGetSignatureOutputName")?,
                input_tensor: symbol(lib, path, "LiteRtGetSignatureInputTensorByIndex")?,
                output_tensor: symbol(lib, path, "LiteRtGetSignatureOutputTensorByIndex")?,
                ranked_type: symbol(lib, path, "LiteRtGetRankedTensorType")?,
                resize_input: symbol(lib, path, "LiteRtCompiledModelResizeInputTensor")?,
                output_layouts: symbol(lib, path, "LiteRtGetCompiledModelOutputTensorLayouts")?,
                create_buffer: symbol(lib, path, "LiteRtCreateManagedTensorBuffer")?,
                destroy_buffer: symbol(lib, path, "LiteRtDestroyTensorBuffer")?,
                lock_buffer: symbol(lib, path, "LiteRtLockTensorBuffer")?,
                unlock_buffer: symbol(lib, path, "LiteRtUnlockTensorBuffer")?,
                buffer_size: symbol(lib, path, "LiteRtGetTensorBufferSize")?,
                run: symbol(lib, path, "LiteRtRunCompiledModel")?,
            })
        }
    }

    /// `Err` naming the call and LiteRT's status when `status` is not OK.
    pub fn check(&self, status: Status, what: &str) -> Result<(), String> {
        if status == 0 {
            return Ok(());
        }
        Err(format!("{what}: {}", status_name(status)))
    }

    /// A C string LiteRT owns, copied.
    ///
    /// # Safety
    /// `p` is null or a NUL-terminated string.
    pub unsafe fn string(p: *const c_char) -> String {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: per the caller.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    }
}
