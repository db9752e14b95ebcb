//! The `sandscore` command: serve a scoring module, score one request,
//! check a deployment, print versions; and the deployment commands
//! (`deploy.rs`); build Python scripts into modules (`python.rs`).

mod advice;
mod args;
mod check;
mod deploy;
mod grpc_invoke;
mod images;
mod logs;
mod python;
mod serve;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use args::RuntimeArgs;
use clap::{Parser, Subcommand, ValueEnum};
use sandscore_runtime::backend::configure::configure;
use sandscore_runtime::service::{ScoreRequest, Service};
use serve::ServeArgs;

#[derive(Parser)]
#[command(
    name = "sandscore",
    version,
    about = "Serve WebAssembly scoring modules and their models, sandboxed"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, env = "SANDSCORE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain, global = true)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Plain,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the module and models over HTTP (Azure ML routes and V2).
    Serve(ServeArgs),
    /// Score one request read from stdin (or --input) and print the answer.
    Score(ScoreArgs),
    /// Validate a module against the scorer world and load every model.
    Check(check::CheckArgs),
    /// Print the versions of sandscore, wasmtime, the WIT world and backends.
    #[command(mut_args(args::show_only(&[&args::VERSION_FLAGS])))]
    Version(RuntimeArgs),
    /// Precompile a module for this build's engine, so a server starts
    /// without compiling (the .cwasm is used when it sits beside the .wasm).
    #[command(mut_args(args::show_only(&[&args::ENGINE_FLAGS, &args::COMPILE_FLAGS])))]
    Compile(CompileArgs),
    /// Build an Azure ML-style score.py (init() and run(raw_data), models
    /// through `import sandscore`) into a module, and precompile it.
    #[command(mut_args(args::show_only(&[&args::ENGINE_FLAGS, &args::BUILD_FLAGS])))]
    Build(python::BuildArgs),
    /// Start a new scoring-module project (Cargo.toml, src/lib.rs, a sample
    /// request, a sandscore.toml).
    Init(deploy::InitArgs),
    /// Deploy a sandscore.toml: a local process, a container, or
    /// Kubernetes/KServe manifests (validates first; nothing is left
    /// running on failure).
    Deploy(deploy::DeployArgs),
    /// List deployed endpoints.
    Endpoints,
    /// The prebuilt images: list them, push them to a registry.
    #[command(subcommand)]
    Images(images::ImagesCommand),
    /// Send a request to a deployed endpoint (/score, or a model's V2
    /// infer with --model) and print the answer.
    Invoke(deploy::InvokeArgs),
    /// Print a deployed endpoint's log.
    Logs(deploy::LogsArgs),
    /// Stop a deployed endpoint (draining in-flight requests) and forget it.
    Delete(deploy::NameArg),
    /// Serve models a guest loads from bytes, for a server (started by it,
    /// one per instance; speaks a private protocol on stdin and stdout).
    #[command(hide = true)]
    NnWorker(RuntimeArgs),
    /// Exit 0 when the local server is ready (a container HEALTHCHECK that
    /// needs no shell or curl).
    Health(HealthArgs),
}

#[derive(clap::Args)]
struct CompileArgs {
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Output file [default: the module's path with .cwasm].
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(clap::Args)]
struct HealthArgs {
    /// Port the server listens on.
    #[arg(long, env = "SERVER_PORT", default_value_t = 5001)]
    port: u16,
    /// Path to ask.
    #[arg(long, default_value = "/v2/health/ready")]
    path: String,
}

#[derive(clap::Args)]
struct ScoreArgs {
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Content type of the request.
    #[arg(long, default_value = "application/json")]
    content_type: String,
    /// Read the request from this file instead of stdin.
    #[arg(long)]
    input: Option<PathBuf>,
}

/// Settings where an empty value means "none" (the images set them, and a
/// deployment clears one with `-e NAME=`); clap would reject an empty value.
const CLEARABLE_ENV: [&str; 2] = ["AZUREML_ENTRY_SCRIPT", "AZUREML_MODEL_DIR"];

fn main() -> ExitCode {
    // TensorFlow logs every load at INFO on stderr unless told otherwise.
    if std::env::var_os("TF_CPP_MIN_LOG_LEVEL").is_none() {
        // SAFETY: first thing in main, before any other thread exists.
        unsafe { std::env::set_var("TF_CPP_MIN_LOG_LEVEL", "2") };
    }
    for name in CLEARABLE_ENV {
        if std::env::var_os(name).is_some_and(|v| v.is_empty()) {
            // SAFETY: first thing in main, before any other thread exists.
            unsafe { std::env::remove_var(name) };
        }
    }
    let mut cli = Cli::parse();
    // An empty AZUREML_ENTRY_SCRIPT (the images set one) means "no module".
    match &mut cli.command {
        Command::Serve(a) => a.runtime.normalize(),
        Command::Score(a) => a.runtime.normalize(),
        Command::Check(a) => a.runtime.normalize(),
        Command::Version(a) => a.normalize(),
        Command::Compile(a) => a.runtime.normalize(),
        Command::Build(a) => a.runtime.normalize(),
        Command::Health(_)
        | Command::NnWorker(_)
        | Command::Init(_)
        | Command::Deploy(_)
        | Command::Endpoints
        | Command::Images(_)
        | Command::Invoke(_)
        | Command::Logs(_)
        | Command::Delete(_) => {}
    }
    // A score.py given as the module is built into one first (cached).
    // Root is refused before any build or install, not after it.
    let runs = matches!(
        cli.command,
        Command::Serve(_) | Command::Score(_) | Command::Check(_)
    );
    let runtime = match &mut cli.command {
        Command::Serve(a) => Some(&mut a.runtime),
        Command::Score(a) => Some(&mut a.runtime),
        Command::Check(a) => Some(&mut a.runtime),
        Command::Compile(a) => Some(&mut a.runtime),
        _ => None,
    };
    if let Some(r) = runtime
        && let Err(e) = (if runs {
            r.check_user().map_err(anyhow::Error::msg)
        } else {
            Ok(())
        })
        .and_then(|()| python::resolve(r))
    {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Serve(args) => {
            logs::init(cli.log_format, "info");
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")
                .and_then(|rt| rt.block_on(serve::run(args)))
        }
        Command::Score(args) => {
            logs::init(cli.log_format, "warn");
            score(args)
        }
        Command::Check(args) => {
            logs::init(cli.log_format, "warn");
            check::run(args)
        }
        Command::Version(args) => version(args),
        Command::NnWorker(args) => {
            logs::init(cli.log_format, "warn");
            configure(&args.backend_config())
                .context("cannot set up the backends")
                .and_then(|b| {
                    sandscore_runtime::backend::isolated::worker::serve(b)
                        .context("the worker's pipe to the server failed")
                })
        }
        Command::Health(args) => health(args),
        Command::Compile(args) => compile_module(args),
        Command::Build(args) => python::build(args),
        Command::Init(args) => deploy::init(args),
        Command::Deploy(args) => deploy::deploy(args),
        Command::Endpoints => deploy::endpoints(),
        Command::Images(c) => images::run(c),
        Command::Invoke(args) => deploy::invoke(args),
        Command::Logs(args) => deploy::logs(args),
        Command::Delete(args) => deploy::delete(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn score(args: ScoreArgs) -> anyhow::Result<()> {
    args.runtime.check_user().map_err(anyhow::Error::msg)?;
    if args.runtime.module.is_none() {
        bail!("`score` needs a module: pass --module M.wasm (or set AZUREML_ENTRY_SCRIPT)");
    }
    let mut body = Vec::new();
    match &args.input {
        Some(p) => {
            body = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        None => {
            std::io::stdin()
                .read_to_end(&mut body)
                .context("cannot read the request from stdin")?;
        }
    }
    let service = Service::start(&args.runtime.service_config()).map_err(advice::explained)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let request = ScoreRequest {
        body,
        content_type: args.content_type,
        headers: Vec::new(),
        method: "POST",
        query: String::new(),
    };
    let answer = rt.block_on(service.score(request, "cli".into()))?;
    std::io::stdout().write_all(&answer.body)?;
    println!();
    if answer.status >= 400 {
        bail!("the module answered HTTP {}", answer.status);
    }
    Ok(())
}

fn compile_module(args: CompileArgs) -> anyhow::Result<()> {
    let script = args
        .runtime
        .module
        .as_ref()
        .is_none_or(|m| sandscore_sdk::python::is_script(m));
    if script && let Some(python) = args.runtime.python() {
        // The interpreter a score.py runs in: compiled once, shipped beside it.
        let config = args.runtime.sandbox();
        if args.output.is_none() && sandscore_runtime::reactor::precompiled_fits(&python, &config) {
            println!("{} (up to date)", python.code().display());
            return Ok(());
        }
        let out = args.output.clone().unwrap_or_else(|| python.code());
        eprintln!(
            "sandscore: compiling the Python runtime {} (a minute or two on 2 cores)",
            python.module().display()
        );
        sandscore_runtime::reactor::precompile(&python, &config, &out)?;
        println!("{}", out.display());
        return Ok(());
    }
    let Some(module) = &args.runtime.module else {
        bail!(
            "`compile` needs a module: pass --module M.wasm (or --python-runtime DIR to precompile the Python runtime)"
        );
    };
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| module.with_extension("cwasm"));
    precompile(&args.runtime, module, &out)?;
    println!("{}", out.display());
    Ok(())
}

/// Compiles `module` for the engine `runtime` configures and writes `out`.
fn precompile(
    runtime: &RuntimeArgs,
    module: &std::path::Path,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let engine = sandscore_runtime::instance::engine(&runtime.sandbox())?;
    let (component, _) = sandscore_runtime::instance::compile::load(&engine, module, None)?;
    let bytes = component
        .serialize()
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    std::fs::write(out, bytes).with_context(|| format!("cannot write {}", out.display()))
}

fn health(args: HealthArgs) -> anyhow::Result<()> {
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("nothing listens on {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {} HTTP/1.0\r\nHost: localhost\r\n\r\n",
        args.path
    )?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let status = String::from_utf8_lossy(&head[..n]);
    let line = status.lines().next().unwrap_or("");
    if line.split_whitespace().nth(1) == Some("200") {
        println!("ready");
        Ok(())
    } else {
        bail!("not ready: {line}")
    }
}

fn version(args: RuntimeArgs) -> anyhow::Result<()> {
    println!("sandscore  {}", sandscore_runtime::VERSION);
    println!("wasmtime   {}", sandscore_runtime::WASMTIME_VERSION);
    println!("wit        {}", sandscore_runtime::WIT_PACKAGES.join(", "));
    for b in configure(&args.backend_config())?.iter() {
        println!("backend    {} {}", b.name(), b.version());
    }
    Ok(())
}
