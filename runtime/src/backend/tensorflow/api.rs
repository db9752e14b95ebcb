//! The slice of TensorFlow's C API (`tensorflow/c/c_api.h`) the backend
//! uses, resolved once from `libtensorflow_cc.so.2` (which pulls in
//! `libtensorflow_framework.so.2` from beside it).

use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::Path;

use crate::backend::native::{self, symbol};

/// Opaque C types.
pub type Status = c_void;
pub type GraphH = c_void;
pub type SessionOptions = c_void;
pub type Session = c_void;
pub type Operation = c_void;
pub type TfTensor = c_void;
pub type DeviceList = c_void;

/// `TF_Buffer`.
#[repr(C)]
pub struct Buffer {
    pub data: *const c_void,
    pub length: usize,
    pub deallocator: Option<unsafe extern "C" fn(*mut c_void, usize)>,
}

/// `TF_Output`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Output {
    pub oper: *mut Operation,
    pub index: c_int,
}

/// Function pointers into the library, which stays loaded with them.
pub struct Api {
    pub version: unsafe extern "C" fn() -> *const c_char,
    pub new_status: unsafe extern "C" fn() -> *mut Status,
    pub delete_status: unsafe extern "C" fn(*mut Status),
    pub get_code: unsafe extern "C" fn(*const Status) -> c_int,
    pub message: unsafe extern "C" fn(*const Status) -> *const c_char,
    pub new_graph: unsafe extern "C" fn() -> *mut GraphH,
    pub delete_graph: unsafe extern "C" fn(*mut GraphH),
    pub new_session_options: unsafe extern "C" fn() -> *mut SessionOptions,
    pub set_config: unsafe extern "C" fn(*mut SessionOptions, *const c_void, usize, *mut Status),
    pub delete_session_options: unsafe extern "C" fn(*mut SessionOptions),
    pub new_buffer: unsafe extern "C" fn() -> *mut Buffer,
    pub delete_buffer: unsafe extern "C" fn(*mut Buffer),
    #[allow(clippy::type_complexity)]
    pub load_saved_model: unsafe extern "C" fn(
        *const SessionOptions,
        *const Buffer,
        *const c_char,
        *const *const c_char,
        c_int,
        *mut GraphH,
        *mut Buffer,
        *mut Status,
    ) -> *mut Session,
    pub operation_by_name: unsafe extern "C" fn(*mut GraphH, *const c_char) -> *mut Operation,
    #[allow(clippy::type_complexity)]
    pub session_run: unsafe extern "C" fn(
        *mut Session,
        *const Buffer,
        *const Output,
        *const *mut TfTensor,
        c_int,
        *const Output,
        *mut *mut TfTensor,
        c_int,
        *const *const Operation,
        c_int,
        *mut Buffer,
        *mut Status,
    ),
    pub close_session: unsafe extern "C" fn(*mut Session, *mut Status),
    pub delete_session: unsafe extern "C" fn(*mut Session, *mut Status),
    pub allocate_tensor: unsafe extern "C" fn(c_int, *const i64, c_int, usize) -> *mut TfTensor,
    pub tensor_data: unsafe extern "C" fn(*const TfTensor) -> *mut c_void,
    pub tensor_byte_size: unsafe extern "C" fn(*const TfTensor) -> usize,
    pub tensor_type: unsafe extern "C" fn(*const TfTensor) -> c_int,
    pub num_dims: unsafe extern "C" fn(*const TfTensor) -> c_int,
    pub dim: unsafe extern "C" fn(*const TfTensor, c_int) -> i64,
    pub delete_tensor: unsafe extern "C" fn(*mut TfTensor),
    pub session_list_devices: unsafe extern "C" fn(*mut Session, *mut Status) -> *mut DeviceList,
    pub device_list_count: unsafe extern "C" fn(*const DeviceList) -> c_int,
    pub device_list_type:
        unsafe extern "C" fn(*const DeviceList, c_int, *mut Status) -> *const c_char,
    pub delete_device_list: unsafe extern "C" fn(*mut DeviceList),
}

impl Api {
    /// Loads the library and resolves every function.
    pub fn open(path: &Path) -> Result<Api, String> {
        let lib = native::open(path)?;
        // SAFETY: each symbol is declared with its c_api.h signature.
        unsafe {
            Ok(Api {
                version: symbol(lib, path, "TF_Version")?,
                new_status: symbol(lib, path, "TF_NewStatus")?,
                delete_status: symbol(lib, path, "TF_DeleteStatus")?,
                get_code: symbol(lib, path, "TF_GetCode")?,
                message: symbol(lib, path, "TF_Message")?,
                new_graph: symbol(lib, path, "TF_NewGraph")?,
                delete_graph: symbol(lib, path, "TF_DeleteGraph")?,
                new_session_options: symbol(lib, path, "TF_NewSessionOptions")?,
                set_config: symbol(lib, path, "TF_SetConfig")?,
                delete_session_options: symbol(lib, path, "TF_DeleteSessionOptions")?,
                new_buffer: symbol(lib, path, "TF_NewBuffer")?,
                delete_buffer: symbol(lib, path, "TF_DeleteBuffer")?,
                load_saved_model: symbol(lib, path, "TF_LoadSessionFromSavedModel")?,
                operation_by_name: symbol(lib, path, "TF_GraphOperationByName")?,
                session_run: symbol(lib, path, "TF_SessionRun")?,
                close_session: symbol(lib, path, "TF_CloseSession")?,
                delete_session: symbol(lib, path, "TF_DeleteSession")?,
                allocate_tensor: symbol(lib, path, "TF_AllocateTensor")?,
                tensor_data: symbol(lib, path, "TF_TensorData")?,
                tensor_byte_size: symbol(lib, path, "TF_TensorByteSize")?,
                tensor_type: symbol(lib, path, "TF_TensorType")?,
                num_dims: symbol(lib, path, "TF_NumDims")?,
                dim: symbol(lib, path, "TF_Dim")?,
                delete_tensor: symbol(lib, path, "TF_DeleteTensor")?,
                session_list_devices: symbol(lib, path, "TF_SessionListDevices")?,
                device_list_count: symbol(lib, path, "TF_DeviceListCount")?,
                device_list_type: symbol(lib, path, "TF_DeviceListType")?,
                delete_device_list: symbol(lib, path, "TF_DeleteDeviceList")?,
            })
        }
    }
}

/// A `TF_Status`, deleted on drop.
pub struct StatusBox<'a> {
    api: &'a Api,
    pub ptr: *mut Status,
}

impl<'a> StatusBox<'a> {
    pub fn new(api: &'a Api) -> Self {
        // SAFETY: TF_NewStatus has no preconditions.
        StatusBox {
            api,
            ptr: unsafe { (api.new_status)() },
        }
    }

    /// Whether the status is `TF_DEADLINE_EXCEEDED` (a run past its
    /// `timeout_in_ms`).
    pub fn deadline_exceeded(&self) -> bool {
        const TF_DEADLINE_EXCEEDED: c_int = 4;
        // SAFETY: the status is live.
        unsafe { (self.api.get_code)(self.ptr) == TF_DEADLINE_EXCEEDED }
    }

    /// `Err` with TensorFlow's message when the status is not OK.
    pub fn check(&self) -> Result<(), String> {
        // SAFETY: the status is live; the message is owned by it.
        unsafe {
            if (self.api.get_code)(self.ptr) == 0 {
                return Ok(());
            }
            let m = (self.api.message)(self.ptr);
            Err(if m.is_null() {
                "unknown TensorFlow error".into()
            } else {
                CStr::from_ptr(m).to_string_lossy().into_owned()
            })
        }
    }
}

impl Drop for StatusBox<'_> {
    fn drop(&mut self) {
        // SAFETY: created by TF_NewStatus, deleted once.
        unsafe { (self.api.delete_status)(self.ptr) }
    }
}
