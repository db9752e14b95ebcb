//! Native libraries the backends load at run time (dlopen), found the same
//! way for every backend: an explicit flag, an environment variable, then a
//! fixed relative path beside the binary and in `../lib` (the images'
//! layout). Loading happens on first use, so an image without a library
//! only fails when a model needs it, and then says where it looked and
//! which image has the library.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::BackendError;

/// Where one backend's library lives and what to tell a user who lacks it.
pub struct LibrarySpec {
    /// The framework, for messages ("XGBoost").
    pub framework: &'static str,
    /// Environment variable naming the library.
    pub env: &'static str,
    /// Paths relative to the binary's folder (and to `../lib`), tried in
    /// order.
    pub relative: &'static [&'static str],
    /// The image that carries it.
    pub image: &'static str,
    /// The `make` target that fetches it into a checkout.
    pub make: &'static str,
}

impl LibrarySpec {
    /// The places searched, in order.
    pub fn candidates(&self, explicit: Option<&Path>) -> Vec<PathBuf> {
        if let Some(p) = explicit {
            return vec![p.to_path_buf()];
        }
        if let Some(p) = std::env::var_os(self.env) {
            return vec![PathBuf::from(p)];
        }
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
            .map(|dir| {
                [dir.clone(), dir.join("../lib")]
                    .iter()
                    .flat_map(|d| self.relative.iter().map(move |r| d.join(r)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first candidate that exists, or a message that says where it
    /// looked and what to do.
    pub fn find(&self, explicit: Option<&Path>) -> Result<PathBuf, String> {
        let candidates = self.candidates(explicit);
        candidates.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
            let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            format!(
                "the {} library was not found (looked in: {}); use the {} image, run `make {}` in the sandscore checkout, or set {}",
                self.framework,
                looked.join(", "),
                self.image,
                self.make,
                self.env
            )
        })
    }
}

/// A library's function table, opened once.
pub struct Lazy<T>(OnceLock<Result<Arc<T>, String>>);

impl<T> Default for Lazy<T> {
    fn default() -> Self {
        Lazy(OnceLock::new())
    }
}

impl<T> Lazy<T> {
    /// The table, opening the first candidate that exists with `open`.
    pub fn get(
        &self,
        spec: &LibrarySpec,
        explicit: Option<&Path>,
        open: impl FnOnce(&Path) -> Result<T, String>,
    ) -> Result<&Arc<T>, BackendError> {
        self.0
            .get_or_init(|| {
                let path = spec.find(explicit)?;
                let table = open(&path)?;
                tracing::info!(library = %path.display(), "{} loaded", spec.framework);
                Ok(Arc::new(table))
            })
            .as_ref()
            .map_err(|e| BackendError::Unavailable(e.clone()))
    }
}

/// Opens a library for symbol lookup, for the rest of the process: native
/// runtimes keep threads and static state that crash the process at exit
/// if their code is unmapped first, so a library is never closed.
pub fn open(path: &Path) -> Result<&'static libloading::Library, String> {
    // SAFETY: loading runs the library's initialisers; the native runtimes
    // loaded here have none that assume a host other than this process.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| {
        // The loader's own words (a missing dependency, say) are the source.
        let why = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        format!("cannot load {}: {e}{why}", path.display())
    })?;
    Ok(Box::leak(Box::new(lib)))
}

/// `len` elements at `ptr` copied out; empty when `len` is 0, where native
/// libraries may hand back a null or dangling pointer.
///
/// # Safety
/// When `len > 0`, `ptr` points at `len` readable elements.
pub unsafe fn copied<T: Copy>(ptr: *const T, len: usize) -> Vec<T> {
    if len == 0 || ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: per the caller.
    unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
}

/// A function from `lib`, with a message naming the library if it lacks it.
///
/// # Safety
/// `T` must be the function's true signature.
pub unsafe fn symbol<T: Copy>(
    lib: &libloading::Library,
    path: &Path,
    name: &str,
) -> Result<T, String> {
    // SAFETY: the caller guarantees the signature.
    unsafe { lib.get::<T>(name.as_bytes()) }
        .map(|s| *s)
        .map_err(|e| format!("{} lacks {name}: {e}", path.display()))
}
