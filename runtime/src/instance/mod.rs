//! Instances of the user's scoring module: compiled once, linked once
//! (`InstancePre`), instantiated per worker from the pooling allocator, each
//! `init`ialised once before its first request.
//!
//! A request borrows a warm instance from the [`pool::Pool`]. A trap or a
//! timeout (epoch interruption) poisons only that instance: it is dropped and
//! a fresh one takes its place, so the next request is served normally.

pub mod bindings;
pub mod compile;
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
use crate::nn::NnState;
use crate::nn::registry::ModelRegistry;
use bindings::{Scorer, ScorerPre};
use state::HostState;

/// Where guests see the model directory.
pub const GUEST_MODEL_DIR: &str = "/models";

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
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            workers: 1,
            timeout: Duration::from_secs(60),
            init_timeout: Duration::from_secs(300),
            memory_limit: 512 << 20,
            pooling: true,
        }
    }
}

/// Why the sandbox could not be set up or an instance could not start.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
    #[error(transparent)]
    Compile(#[from] compile::CompileError),
    #[error("the module does not implement the sandscore:scoring/scorer world: {0}")]
    World(String),
    #[error("cannot instantiate the module: {0}")]
    Instantiate(String),
    #[error("the module's init failed: {0}")]
    Init(String),
}

fn engine_config(cfg: &SandboxConfig, pooling: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    if pooling {
        // Room for every worker, its replacement and short-lived `check` or
        // `score` instances.
        let slots = (cfg.workers as u32).saturating_mul(2).saturating_add(4);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(8))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(4))
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
    Ok(engine)
}

/// Epoch ticks that cover `d`.
pub fn ticks(d: Duration) -> u64 {
    (d.as_nanos() / EPOCH_TICK.as_nanos()).max(1) as u64 + 1
}

/// Everything needed to make a ready instance.
pub struct Factory {
    pub engine: Engine,
    pre: ScorerPre<HostState>,
    pub models: Arc<ModelRegistry>,
    pub backends: Backends,
    model_dir: Option<PathBuf>,
    pub config: SandboxConfig,
}

/// One instance and its store.
pub struct Worker {
    pub store: Store<HostState>,
    pub scorer: Scorer,
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
        Scorer::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(world)?;
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

    fn store(&self) -> Result<Store<HostState>, InstanceError> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(dir) = &self.model_dir {
            wasi.preopened_dir(dir, GUEST_MODEL_DIR, FsPerms::ReadOnly)
                .map_err(|e| {
                    InstanceError::Instantiate(format!(
                        "cannot open model directory {}: {e:#}",
                        dir.display()
                    ))
                })?;
            wasi.env("AZUREML_MODEL_DIR", GUEST_MODEL_DIR);
        }
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            nn: NnState::new(Arc::clone(&self.models), self.backends.clone()),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.config.memory_limit)
                .trap_on_grow_failure(true)
                .build(),
            request_id: String::new(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        Ok(store)
    }

    /// A new instance with `init` already run.
    pub fn instantiate(&self) -> Result<Worker, InstanceError> {
        let mut store = self.store()?;
        store.set_epoch_deadline(ticks(self.config.init_timeout));
        let scorer = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| InstanceError::Instantiate(format!("{e:#}")))?;
        match scorer.call_init(&mut store) {
            Ok(Ok(())) => Ok(Worker { store, scorer }),
            Ok(Err(message)) => Err(InstanceError::Init(message)),
            Err(trap) => Err(InstanceError::Init(format!("trapped: {trap:#}"))),
        }
    }
}
