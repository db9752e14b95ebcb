//! Instances of the user's scoring module: compiled once, linked once
//! (`InstancePre`), instantiated per worker from the pooling allocator, each
//! `init`ialised once before its first request.
//!
//! A request borrows a warm instance from the [`pool::Pool`]. A trap or a
//! timeout (epoch interruption) poisons only that instance: it is dropped and
//! a fresh one takes its place, so the next request is served normally.

pub mod compile;
pub mod output;
mod poll;
pub mod pool;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimitsBuilder,
};
use wasmtime_wasi::{FsPerms, WasiCtx};

use crate::backend::Backends;
use crate::metrics::metrics;
use crate::models::ModelRegistry;
use crate::nn::{NnLimits, NnState};
use crate::wit::sandscore::scoring::{logging, types};
use crate::wit::{Scorer, ScorerPre};
use output::{GuestOutput, RequestTag};
use state::HostState;

/// Where guests see the model directory.
pub const GUEST_MODEL_DIR: &str = "/models";

/// Where guests see their scratch directory, when they have one.
pub const GUEST_SCRATCH_DIR: &str = "/scratch";

/// Whether instances outlive requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Warm instances are reused; globals survive between requests, as an
    /// Azure ML worker's do.
    Pooled,
    /// A fresh instance (and `init`) per request; nothing of one request is
    /// visible to the next.
    Isolated,
}

/// How often the engine's epoch advances; deadlines are counted in these.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Settings of the sandbox every instance runs in.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Instances that score in parallel.
    pub workers: usize,
    /// Wall-clock limit of one request inside the guest.
    pub timeout: Duration,
    /// Wall-clock limit of one instance's `init`.
    pub init_timeout: Duration,
    /// Largest linear memory of one instance, in bytes.
    pub memory_limit: usize,
    /// Use the pooling allocator (falls back to on-demand if it cannot reserve).
    pub pooling: bool,
    /// Largest table of one instance, in elements.
    pub table_elements: usize,
    /// Wasm stack of one call, in bytes; deeper recursion traps.
    pub max_stack: usize,
    /// Reuse instances, or make one per request.
    pub isolation: Isolation,
    /// Size cap of each instance's scratch directory in MiB; 0 = none.
    pub scratch_mb: u64,
    /// wasi-nn guards.
    pub nn: NnLimits,
    /// Requests that may wait for an instance; more get 503.
    pub max_queue: usize,
    /// Largest response body a module may return, in bytes.
    pub max_response_bytes: usize,
    /// Environment variables the module sees.
    pub guest_env: Vec<(String, String)>,
}

impl SandboxConfig {
    /// Most bytes one call may copy between guest and host: the largest of
    /// a model from bytes, a tensor and a response, with room for the rest
    /// of the call's arguments.
    pub fn hostcall_bytes(&self) -> usize {
        self.nn
            .max_model_bytes
            .max(self.nn.max_tensor_bytes)
            .max(self.max_response_bytes)
            .saturating_add(1 << 20)
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            workers: 1,
            timeout: Duration::from_secs(60),
            init_timeout: Duration::from_secs(300),
            memory_limit: 512 << 20,
            pooling: true,
            table_elements: 100_000,
            max_stack: 512 << 10,
            isolation: Isolation::Pooled,
            scratch_mb: 0,
            nn: NnLimits::default(),
            max_queue: 64,
            max_response_bytes: 64 << 20,
            guest_env: Vec::new(),
        }
    }
}

/// Why the sandbox could not be set up or an instance could not start.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// The WebAssembly engine could not be configured.
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
    /// The module could not be read or compiled.
    #[error(transparent)]
    Compile(#[from] compile::CompileError),
    /// The module does not implement the scorer world.
    #[error("the module does not implement the sandscore:scoring/scorer world: {0}")]
    World(String),
    /// Instantiating the module failed.
    #[error("cannot instantiate the module: {0}")]
    Instantiate(String),
    /// The module's `init` returned an error or trapped.
    #[error("the module's init failed: {0}")]
    Init(String),
    /// The module's `init` ran past its deadline (the duration given) and was stopped.
    #[error("the module's init ran past its {0:?} deadline (--init-timeout) and was stopped")]
    InitTimeout(Duration),
}

fn engine_config(cfg: &SandboxConfig, pooling: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(cfg.max_stack);
    if pooling {
        // Room for every worker, its replacement and short-lived `check` or
        // `score` instances.
        let slots = (cfg.workers as u32).saturating_mul(2).saturating_add(4);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(8))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(4))
            .table_elements(cfg.table_elements)
            .max_memory_size(cfg.memory_limit);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Builds the engine and starts its epoch ticker.
pub fn engine(cfg: &SandboxConfig) -> Result<Engine, InstanceError> {
    let engine = match Engine::new(&engine_config(cfg, cfg.pooling)) {
        Ok(e) => e,
        Err(e) if cfg.pooling => {
            tracing::warn!(error = %format!("{e:#}"), "pooling allocator unavailable; using on-demand allocation");
            Engine::new(&engine_config(cfg, false))
                .map_err(|e| InstanceError::Engine(format!("{e:#}")))?
        }
        Err(e) => return Err(InstanceError::Engine(format!("{e:#}"))),
    };
    start_ticker(&engine)?;
    Ok(engine)
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] while it lives.
pub fn start_ticker(engine: &Engine) -> Result<(), InstanceError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => break,
                }
            }
        })
        .map_err(|e| InstanceError::Engine(e.to_string()))?;
    Ok(())
}

/// Epoch ticks that cover `d`.
pub fn ticks(d: Duration) -> u64 {
    (d.as_nanos() / EPOCH_TICK.as_nanos()).max(1) as u64 + 1
}

/// Everything needed to make a ready instance.
pub struct Factory {
    /// The engine every instance runs in.
    pub engine: Engine,
    pre: ScorerPre<HostState>,
    /// The preloaded models every instance can open.
    pub models: Arc<ModelRegistry>,
    /// The backends every instance's wasi-nn host uses.
    pub backends: Backends,
    model_dir: Option<PathBuf>,
    /// The sandbox settings instances are made with.
    pub config: SandboxConfig,
}

/// A store and what was granted to it, before instantiation.
struct Parts {
    store: Store<HostState>,
    tag: RequestTag,
    outputs: [GuestOutput; 2],
    scratch: Option<tempfile::TempDir>,
}

/// One instance, its store, and what it was granted.
pub struct Worker {
    /// The instance's store.
    pub store: Store<HostState>,
    /// The instantiated scorer, its exports bound to the store.
    pub scorer: Scorer,
    /// The id its log lines carry.
    pub tag: RequestTag,
    /// Its stdout and stderr.
    pub outputs: [GuestOutput; 2],
    /// Its scratch directory, removed with it.
    pub scratch: Option<tempfile::TempDir>,
}

impl Worker {
    /// Bytes in the scratch directory (0 without one).
    pub fn scratch_bytes(&self) -> u64 {
        fn size(dir: &Path) -> u64 {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|e| match e.file_type() {
                            Ok(t) if t.is_dir() => size(&e.path()),
                            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        self.scratch.as_ref().map_or(0, |d| size(d.path()))
    }
}

/// The world's exports, checked by name first so that a module built for
/// another world hears everything it lacks at once.
const EXPORTS: [&str; 3] = ["init", "score", "infer"];

fn check_exports(
    engine: &Engine,
    component: &wasmtime::component::Component,
) -> Result<(), InstanceError> {
    let ty = component.component_type();
    let have: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let missing: Vec<&str> = EXPORTS
        .into_iter()
        .filter(|e| !have.iter().any(|h| h == e))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let have = if have.is_empty() {
        "nothing".to_string()
    } else {
        have.join(", ")
    };
    Err(InstanceError::World(format!(
        "missing exports: {}; it exports {have}. Build it as a cdylib for wasm32-wasip2 with `sandscore_guest::export!`",
        missing.join(", ")
    )))
}

impl Factory {
    /// Links `component` against WASI and wasi-nn, checking that it
    /// implements the scorer world.
    pub fn new(
        engine: Engine,
        component: &wasmtime::component::Component,
        models: Arc<ModelRegistry>,
        backends: Backends,
        model_dir: Option<&Path>,
        config: SandboxConfig,
    ) -> Result<Self, InstanceError> {
        check_exports(&engine, component)?;
        let mut linker: Linker<HostState> = Linker::new(&engine);
        let world = |e: wasmtime::Error| InstanceError::World(format!("{e:#}"));
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(world)?;
        poll::shadow(&mut linker).map_err(world)?;
        types::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s).map_err(world)?;
        logging::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(world)?;
        crate::nn::add_to_linker(&mut linker, HostState::nn_view).map_err(world)?;
        let pre = linker.instantiate_pre(component).map_err(world)?;
        let pre = ScorerPre::new(pre).map_err(world)?;
        Ok(Factory {
            engine,
            pre,
            models,
            backends,
            model_dir: model_dir.map(Path::to_path_buf),
            config,
        })
    }

    fn store(&self) -> Result<Parts, InstanceError> {
        let setup = |what: &str, e: String| InstanceError::Instantiate(format!("{what}: {e}"));
        let tag = RequestTag::default();
        let outputs = [
            GuestOutput::new("stdout", tag.clone()),
            GuestOutput::new("stderr", tag.clone()),
        ];
        let mut wasi = WasiCtx::builder();
        wasi.stdout(outputs[0].clone())
            .stderr(outputs[1].clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for (k, v) in &self.config.guest_env {
            wasi.env(k, v);
        }
        if let Some(dir) = &self.model_dir {
            wasi.preopened_dir(dir, GUEST_MODEL_DIR, FsPerms::ReadOnly)
                .map_err(|e| {
                    setup(
                        &format!("cannot open model directory {}", dir.display()),
                        format!("{e:#}"),
                    )
                })?;
            wasi.env("AZUREML_MODEL_DIR", GUEST_MODEL_DIR);
        }
        let scratch = if self.config.scratch_mb > 0 {
            let dir = tempfile::Builder::new()
                .prefix("sandscore-scratch-")
                .tempdir()
                .map_err(|e| setup("cannot make a scratch directory", e.to_string()))?;
            wasi.preopened_dir(dir.path(), GUEST_SCRATCH_DIR, FsPerms::ReadWrite)
                .map_err(|e| setup("cannot open the scratch directory", format!("{e:#}")))?;
            Some(dir)
        } else {
            None
        };
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            nn: NnState::new(
                Arc::clone(&self.models),
                self.backends.clone(),
                self.config.nn.clone(),
            ),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.config.memory_limit)
                .table_elements(self.config.table_elements)
                .instances(64)
                .tables(64)
                .memories(8)
                .trap_on_grow_failure(true)
                .build(),
            tag: tag.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_hostcall_fuel(self.config.hostcall_bytes());
        store.epoch_deadline_trap();
        Ok(Parts {
            store,
            tag,
            outputs,
            scratch,
        })
    }

    /// A new instance with `init` already run, within `--init-timeout`.
    pub fn instantiate(&self) -> Result<Worker, InstanceError> {
        self.instantiate_within(self.config.init_timeout)
    }

    /// A new instance whose `init` must finish within `limit`.
    pub fn instantiate_within(&self, limit: Duration) -> Result<Worker, InstanceError> {
        let Parts {
            mut store,
            tag,
            outputs,
            scratch,
        } = self.store()?;
        store.set_epoch_deadline(ticks(limit));
        store
            .data_mut()
            .nn
            .set_deadline(std::time::Instant::now().checked_add(limit));
        let scorer = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| InstanceError::Instantiate(format!("{e:#}")))?;
        metrics().instances_created.inc();
        let init = scorer.call_init(&mut store);
        outputs.iter().for_each(GuestOutput::flush_partial);
        match init {
            Ok(Ok(())) => Ok(Worker {
                store,
                scorer,
                tag,
                outputs,
                scratch,
            }),
            Ok(Err(message)) => Err(InstanceError::Init(message)),
            Err(trap) if matches!(trap.downcast_ref(), Some(wasmtime::Trap::Interrupt)) => {
                Err(InstanceError::InitTimeout(limit))
            }
            Err(trap) => Err(InstanceError::Init(format!("trapped: {trap:#}"))),
        }
    }
}
