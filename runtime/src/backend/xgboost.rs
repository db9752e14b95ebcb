//! XGBoost through its C API, `libxgboost.so` loaded at run time.
//!
//! The library is the PyPI `xgboost-cpu` wheel's, pinned in
//! `deps/requirements.lock`; it finds its OpenMP runtime by a relative path
//! (`$ORIGIN/../../xgboost_cpu.libs`), so the wheel's layout is kept: the
//! search looks for `xgboost/lib/libxgboost.so` under `--xgboost-lib`'s
//! folder, `XGBOOST_LIB_PATH`, beside the binary, then `../lib`.
//!
//! Models are what `Booster.save_model` writes (JSON or UBJSON); the
//! library tells the two apart itself. A graph is one booster: XGBoost's
//! prediction is thread safe and keeps its output buffer per thread, so
//! concurrent contexts share it without a lock. The single input is FP32
//! `[rows, features]` (NaN is a missing value, as in XGBoost); the single
//! output `predictions` is what `Booster.predict` returns — probabilities
//! `[rows, classes]` for `multi:softprob`, `[rows]` for binary and
//! regression objectives.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::native::{self, Lazy, LibrarySpec, symbol};
use super::{Backend, BackendError, Graph, Signature, Target, TensorInfo, check_inputs};
use crate::backend::formats::{self, Format};
use crate::tensor::{NamedTensor, Tensor, TensorType};

type Handle = *mut c_void;
type Ulong = u64;

/// The C functions used, resolved once.
struct Api {
    last_error: unsafe extern "C" fn() -> *const c_char,
    version: unsafe extern "C" fn(*mut c_int, *mut c_int, *mut c_int),
    create: unsafe extern "C" fn(*const Handle, Ulong, *mut Handle) -> c_int,
    free: unsafe extern "C" fn(Handle) -> c_int,
    load_buffer: unsafe extern "C" fn(Handle, *const c_void, Ulong) -> c_int,
    set_param: unsafe extern "C" fn(Handle, *const c_char, *const c_char) -> c_int,
    num_feature: unsafe extern "C" fn(Handle, *mut Ulong) -> c_int,
    save_config: unsafe extern "C" fn(Handle, *mut Ulong, *mut *const c_char) -> c_int,
    predict_dense: unsafe extern "C" fn(
        Handle,
        *const c_char,
        *const c_char,
        Handle,
        *mut *const Ulong,
        *mut Ulong,
        *mut *const f32,
    ) -> c_int,
}

impl Api {
    fn open(path: &Path) -> Result<Api, String> {
        let lib = native::open(path)?;
        // SAFETY: each symbol is declared with its c_api.h signature.
        unsafe {
            Ok(Api {
                last_error: symbol(lib, path, "XGBGetLastError")?,
                version: symbol(lib, path, "XGBoostVersion")?,
                create: symbol(lib, path, "XGBoosterCreate")?,
                free: symbol(lib, path, "XGBoosterFree")?,
                load_buffer: symbol(lib, path, "XGBoosterLoadModelFromBuffer")?,
                set_param: symbol(lib, path, "XGBoosterSetParam")?,
                num_feature: symbol(lib, path, "XGBoosterGetNumFeature")?,
                save_config: symbol(lib, path, "XGBoosterSaveJsonConfig")?,
                predict_dense: symbol(lib, path, "XGBoosterPredictFromDense")?,
            })
        }
    }

    /// XGBoost's message for the last failed call on this thread.
    fn error(&self) -> String {
        // SAFETY: XGBGetLastError returns a thread-local C string or null.
        unsafe {
            let p = (self.last_error)();
            if p.is_null() {
                "unknown XGBoost error".into()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    fn check(&self, rc: c_int) -> Result<(), String> {
        if rc == 0 { Ok(()) } else { Err(self.error()) }
    }
}

/// Settings applied to every booster.
#[derive(Clone, Debug, Default)]
pub struct XgbOptions {
    /// Explicit library path; `None` searches the default places.
    pub library: Option<PathBuf>,
    /// Threads per prediction (0 = XGBoost's default, all cores).
    pub threads: usize,
}

/// Where the library is looked for.
pub const LIBRARY: LibrarySpec = LibrarySpec {
    framework: "XGBoost",
    env: "XGBOOST_LIB_PATH",
    relative: &["xgboost/lib/libxgboost.so"],
    image: "sandscore/xgboost-cpu",
    make: "xgboost",
};

/// The XGBoost backend; the library is loaded on first use.
pub struct XgBoost {
    options: XgbOptions,
    api: Lazy<Api>,
}

impl XgBoost {
    /// A backend with these options; nothing is loaded until first use.
    pub fn new(options: XgbOptions) -> Self {
        XgBoost {
            options,
            api: Lazy::default(),
        }
    }

    fn api(&self) -> Result<&Arc<Api>, BackendError> {
        self.api
            .get(&LIBRARY, self.options.library.as_deref(), Api::open)
    }
}

impl Backend for XgBoost {
    fn format(&self) -> &'static Format {
        &formats::XGBOOST
    }

    fn version(&self) -> String {
        match self.api() {
            Ok(api) => {
                let (mut a, mut b, mut c) = (0, 0, 0);
                // SAFETY: XGBoostVersion writes three ints.
                unsafe { (api.version)(&mut a, &mut b, &mut c) };
                format!("{a}.{b}.{c}")
            }
            Err(e) => format!("not loaded: {e}"),
        }
    }

    fn sniff(&self, bytes: &[u8]) -> bool {
        formats::looks_like_xgboost(bytes)
    }

    fn load(&self, parts: &[&[u8]], target: Target) -> Result<Arc<dyn Graph>, BackendError> {
        if let [bytes] = parts {
            sandscore_untrusted::xgboost::check(bytes)
                .map_err(|e| BackendError::InvalidModel(e.to_string()))?;
        }
        self.load_unchecked(parts, target)
    }

    /// The operator's models: JSON ones are checked like a guest's, UBJSON
    /// ones (which the check does not read) are trusted as the operator's.
    fn load_path(&self, path: &Path, target: Target) -> Result<Arc<dyn Graph>, BackendError> {
        let bytes = std::fs::read(path)
            .map_err(|e| BackendError::InvalidModel(format!("{}: {e}", path.display())))?;
        if sandscore_untrusted::xgboost::is_json(&bytes) {
            return self.load(&[&bytes], target);
        }
        self.load_unchecked(&[&bytes], target)
    }
}

impl XgBoost {
    fn load_unchecked(
        &self,
        parts: &[&[u8]],
        target: Target,
    ) -> Result<Arc<dyn Graph>, BackendError> {
        if target != Target::Cpu {
            return Err(BackendError::Unsupported(format!(
                "execution target {target:?} is not available for XGBoost in this build; use cpu"
            )));
        }
        let [bytes] = parts else {
            return Err(BackendError::InvalidModel(format!(
                "an XGBoost model is one builder, got {}",
                parts.len()
            )));
        };
        let api = Arc::clone(self.api()?);
        let invalid = BackendError::InvalidModel;
        let mut handle: Handle = std::ptr::null_mut();
        // SAFETY: a booster with no training matrices, then the model bytes;
        // the handle is freed by Booster's Drop from here on.
        api.check(unsafe { (api.create)(std::ptr::null(), 0, &mut handle) })
            .map_err(invalid)?;
        let booster = Booster {
            api: Arc::clone(&api),
            handle,
        };
        api.check(unsafe {
            (api.load_buffer)(handle, bytes.as_ptr().cast(), bytes.len() as Ulong)
        })
        .map_err(invalid)?;
        let threads = CString::new(self.options.threads.to_string()).unwrap_or_default();
        api.check(unsafe { (api.set_param)(handle, c"nthread".as_ptr(), threads.as_ptr()) })
            .map_err(invalid)?;
        let mut features: Ulong = 0;
        api.check(unsafe { (api.num_feature)(handle, &mut features) })
            .map_err(invalid)?;
        let classes = booster.num_class().map_err(invalid)?;
        let outputs = vec![TensorInfo {
            name: "predictions".into(),
            ty: Some(TensorType::Fp32),
            // multi:softmax gives the class itself, one per row.
            shape: if classes > 1 && !booster.objective().is_ok_and(|o| o == "multi:softmax") {
                vec![-1, classes]
            } else {
                vec![-1]
            },
            native_type: "float32".into(),
        }];
        let inputs = vec![TensorInfo {
            name: "input".into(),
            ty: Some(TensorType::Fp32),
            shape: vec![-1, features as i64],
            native_type: "float32 (dense; NaN = missing)".into(),
        }];
        Ok(Arc::new(XgbGraph {
            booster,
            signature: Signature { inputs, outputs },
        }))
    }
}

/// A booster handle, freed on drop.
struct Booster {
    api: Arc<Api>,
    handle: Handle,
}

// SAFETY: XGBoost's prediction entry points are thread safe on one booster
// (their output buffers are thread-local); nothing here mutates it after
// loading.
unsafe impl Send for Booster {}
unsafe impl Sync for Booster {}

impl Drop for Booster {
    fn drop(&mut self) {
        // SAFETY: the handle came from XGBoosterCreate and is freed once.
        unsafe { (self.api.free)(self.handle) };
    }
}

impl Booster {
    /// The objective's name (`multi:softprob`, `binary:logistic`, …).
    fn objective(&self) -> Result<String, String> {
        Ok(self.config()?["learner"]["objective"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// `num_class` from the model's configuration (0 or 1: one output per row).
    fn num_class(&self) -> Result<i64, String> {
        Ok(
            self.config()?["learner"]["learner_model_param"]["num_class"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        )
    }

    /// The model's configuration as XGBoost saves it.
    fn config(&self) -> Result<serde_json::Value, String> {
        let mut len: Ulong = 0;
        let mut text: *const c_char = std::ptr::null();
        self.api
            .check(unsafe { (self.api.save_config)(self.handle, &mut len, &mut text) })?;
        // SAFETY: XGBoost returns `len` bytes it owns until the next call.
        let bytes = unsafe { native::copied(text.cast::<u8>(), len as usize) };
        serde_json::from_slice(&bytes).map_err(|e| format!("model configuration: {e}"))
    }
}

struct XgbGraph {
    booster: Booster,
    /// Its inputs and outputs.
    signature: Signature,
}

impl Graph for XgbGraph {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn compute(
        &self,
        inputs: Vec<NamedTensor>,
        _deadline: Option<Instant>,
    ) -> Result<Vec<NamedTensor>, BackendError> {
        let g = self;
        // One input: accept it under any name, as XGBoost has no input names.
        let inputs: Vec<NamedTensor> = inputs
            .into_iter()
            .map(|mut t| {
                t.name = "input".into();
                t
            })
            .collect();
        check_inputs(&g.signature.inputs, &inputs)?;
        let x = &inputs[0].tensor;
        let values: Vec<f32> = x
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let interface = CString::new(format!(
            "{{\"data\": [{}, true], \"shape\": [{}, {}], \"typestr\": \"<f4\", \"version\": 3}}",
            values.as_ptr() as usize,
            x.shape[0],
            x.shape[1]
        ))
        .map_err(|e| BackendError::Runtime(e.to_string()))?;
        let api = &g.booster.api;
        let mut shape: *const Ulong = std::ptr::null();
        let mut dims: Ulong = 0;
        let mut out: *const f32 = std::ptr::null();
        // SAFETY: `values` outlives the call; XGBoost returns a shape and a
        // result buffer it owns (thread-local), copied out before any other
        // call on this thread.
        let rc = unsafe {
            (api.predict_dense)(
                g.booster.handle,
                interface.as_ptr(),
                PREDICT_CONFIG.as_ptr(),
                std::ptr::null_mut(),
                &mut shape,
                &mut dims,
                &mut out,
            )
        };
        api.check(rc).map_err(BackendError::Runtime)?;
        // SAFETY: XGBoost returned `dims` dimensions and their product of
        // results; `copied` handles an empty result's null pointer.
        let shape: Vec<u32> = unsafe { native::copied(shape, dims as usize) }
            .iter()
            .map(|&d| d as u32)
            .collect();
        let n: usize = shape.iter().map(|&d| d as usize).product();
        let result = unsafe { native::copied(out, n) };
        let bytes: Vec<u8> = result.iter().flat_map(|v| v.to_le_bytes()).collect();
        let tensor = Tensor::new(shape, TensorType::Fp32, bytes)
            .map_err(|e| BackendError::Runtime(e.to_string()))?;
        Ok(vec![NamedTensor {
            name: "predictions".into(),
            tensor,
        }])
    }
}

/// Prediction settings: normal output, no training, all trees.
const PREDICT_CONFIG: &CStr =
    c"{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, \"strict_shape\": false, \"missing\": NaN, \"cache_id\": 0}";

#[cfg(test)]
mod tests {
    use crate::backend::formats::looks_like_xgboost as sniff;

    #[test]
    fn sniffs_json_and_ubjson_boosters_only() {
        assert!(sniff(br#"{"learner":{"attributes":{}}}"#));
        assert!(sniff(b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner{"));
        assert!(!sniff(br#"{"mlp": {"input": [[1]]}}"#));
        assert!(!sniff(b"\x08\x07\x12\x07pytorch"));
    }
}
