//! What the interpreter is made of on disk: its compiled code (Cranelift
//! takes minutes for it, so the result is cached by content, as a
//! component's is) and the guest side of this host, written out for the
//! guest to import.

use std::path::{Path, PathBuf};
use std::time::Instant;

use wasmtime::{Engine, Module};

use crate::instance::InstanceError;
use crate::instance::compile::{Origin, cache_path};

/// Where the guest imports the driver and the shims from.
pub const GUEST_SHIM: &str = "/sandscore";

/// Where the guest sees the script's folder.
pub const GUEST_APP: &str = "/app";

/// The guest side, by path under [`GUEST_SHIM`].
const SHIM: [(&str, &str); 10] = [
    (
        "sandscore_reactor.py",
        include_str!("../../../guest/python-reactor/sandscore_reactor.py"),
    ),
    (
        "sandscore/__init__.py",
        include_str!("../../../guest/python-reactor/sandscore/__init__.py"),
    ),
    (
        "sandscore/_core.py",
        include_str!("../../../guest/python/sandscore/_core.py"),
    ),
    (
        "onnxruntime/__init__.py",
        include_str!("../../../guest/python-reactor/onnxruntime/__init__.py"),
    ),
    (
        "xgboost/__init__.py",
        include_str!("../../../guest/python-reactor/xgboost/__init__.py"),
    ),
    (
        "azureml/__init__.py",
        include_str!("../../../guest/python-reactor/azureml/__init__.py"),
    ),
    (
        "azureml/contrib/__init__.py",
        include_str!("../../../guest/python-reactor/azureml/contrib/__init__.py"),
    ),
    (
        "azureml/contrib/services/__init__.py",
        include_str!("../../../guest/python-reactor/azureml/contrib/services/__init__.py"),
    ),
    (
        "azureml/contrib/services/aml_request.py",
        include_str!("../../../guest/python-reactor/azureml/contrib/services/aml_request.py"),
    ),
    (
        "azureml/contrib/services/aml_response.py",
        include_str!("../../../guest/python-reactor/azureml/contrib/services/aml_response.py"),
    ),
];

/// Refuses to grant `dir` (read-only) when it is the root, the temporary
/// directory, or the home directory or one of its ancestors: folders that
/// hold far more than a script's own files.
pub fn check_grant(dir: &Path, what: &str) -> Result<(), InstanceError> {
    let canonical = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p);
    let home = std::env::var_os("HOME").map(|h| canonical(PathBuf::from(h)));
    let temp = canonical(std::env::temp_dir());
    let broad = dir.parent().is_none()
        || dir == temp
        || home.as_deref().is_some_and(|h| h.starts_with(dir));
    if broad {
        return Err(InstanceError::Instantiate(format!(
            "{what} would be {}, and the sandbox may read all of it: use a folder that holds only what the script needs",
            dir.display()
        )));
    }
    Ok(())
}

/// Extensions of native code, which the interpreter cannot load.
const NATIVE: [&str; 4] = ["so", "pyd", "dylib", "dll"];

/// Refuses an extra packages folder that is not there, or that holds native
/// code (a compiled extension cannot run in the sandbox), naming the file
/// and what the runtime bundles instead. Bounded like a repository stamp.
pub fn check_packages(dir: &Path) -> Result<(), InstanceError> {
    if !dir.is_dir() {
        return Err(InstanceError::Instantiate(format!(
            "the extra packages folder {} (AZUREML_EXTRA_PYTHON_LIB_PATH, --python-packages) is not a folder",
            dir.display()
        )));
    }
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    let mut seen = 0usize;
    while let Some((folder, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > 100_000 {
                return Ok(());
            }
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() && depth < 16 => stack.push((path, depth + 1)),
                // A link is named by its own extension, wherever it points.
                Ok(t) if t.is_file() || t.is_symlink() => {
                    let native = path
                        .extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| NATIVE.contains(&e));
                    if native {
                        return Err(InstanceError::Instantiate(format!(
                            "{} is native code, which cannot run in the sandbox; the Python runtime bundles numpy, pandas, scipy, scikit-learn, joblib, statsmodels, matplotlib, pyyaml, lxml and more (README: Python scoring scripts); use pure-Python packages otherwise",
                            path.display()
                        )));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The guest side written to a fresh folder (removed with the reactor).
pub fn shim() -> Result<tempfile::TempDir, InstanceError> {
    let fail = |e: std::io::Error| {
        InstanceError::Instantiate(format!("cannot write the Python guest's files: {e}"))
    };
    let dir = tempfile::Builder::new()
        .prefix("sandscore-python-")
        .tempdir()
        .map_err(fail)?;
    for (path, text) in SHIM {
        let file = dir.path().join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        std::fs::write(&file, text).map_err(fail)?;
    }
    Ok(dir)
}

/// The interpreter's compiled code: shipped beside it (the images), else
/// from the cache, else compiled now and written to the cache.
pub fn module(
    engine: &Engine,
    runtime: &super::PythonRuntime,
    cache_dir: Option<&Path>,
) -> Result<(Module, Origin), InstanceError> {
    let started = Instant::now();
    // The runtime's own folder is as trusted as this binary (`sandscore
    // compile --python-runtime` wrote it), and only this process writes the
    // cache; wasmtime checks the header, its version and the engine
    // settings of both.
    let shipped = runtime.code();
    if let Some(m) = load(engine, &shipped, started, "its precompiled code") {
        return Ok((m, Origin::Cache));
    }
    let wasm = runtime.module();
    let wasm = wasm.as_path();
    let bytes = std::fs::read(wasm)
        .map_err(|e| InstanceError::Instantiate(format!("cannot read {}: {e}", wasm.display())))?;
    let cached = cache_dir.map(|d| cache_path(engine, d, &bytes));
    if let Some(m) = cached
        .as_deref()
        .and_then(|file| load(engine, file, started, "the compiled-code cache"))
    {
        return Ok((m, Origin::Cache));
    }
    tracing::info!(
        "compiling the Python runtime (once per machine and version; a few minutes on 2 cores)"
    );
    let module = Module::new(engine, &bytes).map_err(|e| {
        InstanceError::Instantiate(format!("cannot compile {}: {e:#}", wasm.display()))
    })?;
    tracing::info!(
        ms = started.elapsed().as_secs_f64() * 1e3,
        "Python runtime compiled"
    );
    if let Some(file) = cached {
        let written = module
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
            .and_then(|code| {
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let tmp = file.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&tmp, code)?;
                std::fs::rename(&tmp, &file)
            });
        if let Err(e) = written {
            tracing::warn!(path = %file.display(), error = %e, "cannot write the compiled-code cache; the next start compiles again");
        }
    }
    Ok((module, Origin::Compiled))
}

/// The compiled interpreter in `file`, when it is there and fits `engine`
/// (else a warning says why not, and the caller goes on).
fn load(engine: &Engine, file: &Path, started: Instant, from: &str) -> Option<Module> {
    if !file.is_file() {
        return None;
    }
    // SAFETY: see `module`: files this runtime's own build wrote.
    match unsafe { Module::deserialize_file(engine, file) } {
        Ok(m) => {
            tracing::info!(
                ms = started.elapsed().as_secs_f64() * 1e3,
                "Python runtime loaded from {from}"
            );
            Some(m)
        }
        Err(e) => {
            tracing::warn!(path = %file.display(), error = %format!("{e:#}"), "the Python runtime's code in {from} does not fit this machine or build; going on without it");
            None
        }
    }
}

/// Compiles the interpreter for the engine `config` makes and writes it to
/// `out` (through a temporary file, so a reader never sees half of it):
/// what the images ship as [`super::PythonRuntime::code`].
pub fn precompile(
    runtime: &super::PythonRuntime,
    config: &crate::instance::SandboxConfig,
    out: &Path,
) -> Result<(), InstanceError> {
    let engine = super::engine(config)?;
    let wasm = runtime.module();
    let bytes = std::fs::read(&wasm)
        .map_err(|e| InstanceError::Instantiate(format!("cannot read {}: {e}", wasm.display())))?;
    let code = engine.precompile_module(&bytes).map_err(|e| {
        InstanceError::Instantiate(format!("cannot compile {}: {e:#}", wasm.display()))
    })?;
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, code)
        .and_then(|()| std::fs::rename(&tmp, out))
        .map_err(|e| InstanceError::Instantiate(format!("cannot write {}: {e}", out.display())))
}

/// Whether the runtime's shipped code ([`super::PythonRuntime::code`]) loads
/// in the engine `config` makes: a `make` step compiles again only when not.
pub fn precompiled_fits(
    runtime: &super::PythonRuntime,
    config: &crate::instance::SandboxConfig,
) -> bool {
    let code = runtime.code();
    code.is_file()
        && super::engine(config).is_ok_and(|engine| {
            // SAFETY: as in `module`: the runtime's own folder.
            unsafe { Module::deserialize_file(&engine, &code) }.is_ok()
        })
}
