//! Turning a `.wasm` file into a ready [`Component`] without paying for
//! Cranelift on every start.
//!
//! Order: a `.cwasm` path is deserialized directly; otherwise a `.cwasm`
//! beside the module, then the cache directory (keyed by the module's sha256
//! and the engine's compatibility hash), then a fresh compile whose result is
//! written back to the cache. A stale or foreign `.cwasm` is ignored, never
//! fatal. Deserializing trusts the file: only this process writes the cache.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Why a module could not be turned into a component.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The module file could not be read.
    #[error(
        "cannot read module {path}: {source}. Mount or copy your module there, or point --module (AZUREML_ENTRY_SCRIPT) at it; an empty AZUREML_ENTRY_SCRIPT serves the models alone"
    )]
    Read {
        /// The module's path.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid component, or a `.cwasm` this engine cannot use.
    #[error("{path} is not a valid WebAssembly component: {message}")]
    Invalid {
        /// The module's path.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// How a component was obtained, for logs and `check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Deserialized from a `.cwasm` given or lying beside the module.
    Precompiled,
    /// Deserialized from the compiled-code cache directory.
    Cache,
    /// Compiled from the `.wasm` now.
    Compiled,
}

/// The marker every component `sandscore build` makes from a Python script
/// carries (a constant of guest/python/sandscore/_world.py, in its heap
/// snapshot), so the runtime can size and warn for Python.
const PYTHON_MARKER: &[u8] = b"sandscore:python-guest";

/// Whether the module at `path` (a `.wasm`, or a `.cwasm` made from one:
/// both carry the snapshot) is a Python script built by `sandscore build`.
pub fn is_python(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| memchr::memmem::find(&b, PYTHON_MARKER).is_some())
}

/// The cache file for a module in `dir`.
pub fn cache_path(engine: &Engine, dir: &Path, wasm: &[u8]) -> PathBuf {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let digest = hex::encode(Sha256::digest(wasm));
    dir.join(format!("{digest}-{:016x}.cwasm", h.finish()))
}

fn try_deserialize(engine: &Engine, path: &Path) -> Option<Component> {
    if !path.is_file() {
        return None;
    }
    // SAFETY: the file is either the user's own precompiled module or one
    // this process wrote; wasmtime checks its header and engine settings.
    match unsafe { Component::deserialize_file(engine, path) } {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "precompiled module not usable; compiling instead");
            None
        }
    }
}

/// Loads the component at `path`, using and filling `cache_dir`.
pub fn load(
    engine: &Engine,
    path: &Path,
    cache_dir: Option<&Path>,
) -> Result<(Component, Origin), CompileError> {
    let started = Instant::now();
    if path.extension().is_some_and(|e| e == "cwasm") {
        return try_deserialize(engine, path)
            .map(|c| (c, Origin::Precompiled))
            .ok_or_else(|| CompileError::Invalid {
                path: path.to_path_buf(),
                message:
                    "precompiled for another wasmtime version or settings; pass the .wasm instead"
                        .into(),
            });
    }
    if let Some(c) = try_deserialize(engine, &path.with_extension("cwasm")) {
        return Ok((c, Origin::Precompiled));
    }
    let wasm = std::fs::read(path).map_err(|source| CompileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let cached = cache_dir.map(|d| cache_path(engine, d, &wasm));
    if let Some(c) = cached.as_deref().and_then(|p| try_deserialize(engine, p)) {
        tracing::info!(module = %path.display(), ms = started.elapsed().as_secs_f64() * 1e3, "module loaded from cache");
        return Ok((c, Origin::Cache));
    }
    let component = Component::new(engine, &wasm).map_err(|e| CompileError::Invalid {
        path: path.to_path_buf(),
        message: format!("{e:#}"),
    })?;
    tracing::info!(module = %path.display(), ms = started.elapsed().as_secs_f64() * 1e3, "module compiled");
    if let Some(file) = cached
        && let Err(e) = write_cache(&component, &file)
    {
        tracing::warn!(path = %file.display(), error = %e, "cannot write compiled-code cache; the next start compiles again");
    }
    Ok((component, Origin::Compiled))
}

fn write_cache(component: &Component, file: &Path) -> std::io::Result<()> {
    let bytes = component
        .serialize()
        .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file)
}
